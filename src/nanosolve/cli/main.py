"""``nanosolve``: build structures, simulate patterns, inspect files.

Units everywhere: lengths and r in Å, Q in Å⁻¹, 2θ in degrees, wavelengths in Å, B in Å².
"""

from __future__ import annotations

from pathlib import Path

import typer

from nanosolve.cli import bench as bench_cli
from nanosolve.cli import build, dataset
from nanosolve.cli import cdvae as cdvae_cli
from nanosolve.cli import crystalnet as crystalnet_cli
from nanosolve.cli import report as report_cli
from nanosolve.cli import solve as solve_cli
from nanosolve.cli import train as train_cli
from nanosolve.cli.common import (
    check_wavelength_option,
    console,
    friendly_errors,
    install_usage_errors,
    output_file,
    output_folder,
)
from nanosolve.errors import InputError, ResourceError
from nanosolve.scattering.pattern import KINDS, X_LABELS
from nanosolve.scattering.readers.lab import LAB_EXTENSIONS

PATTERN_EXTENSIONS = (".xy", ".xye", ".dat", ".csv", ".chi", ".gr", ".sq", ".fq", ".iq", ".txt") + LAB_EXTENSIONS
#: Extensions ``simulate -o`` writes (whitespace columns; comma-separated for .csv).
PATTERN_WRITE_EXTENSIONS = (".xy", ".xye", ".dat", ".csv", ".chi", ".gr", ".sq", ".fq", ".iq", ".txt")

install_usage_errors()  # bad option values -> one `error: <option>: <problem>` line, exit 2
app = typer.Typer(
    help="nanosolve: atomic structures of crystals and nanomaterials from scattering data "
         "(powder XRD, PDF, SAXS). Lengths and r in Å, Q in Å⁻¹, 2θ in degrees, wavelengths in Å.",
    no_args_is_help=True, pretty_exceptions_enable=False,
)
def _print_version(value: bool) -> None:
    if value:
        from nanosolve import __version__

        typer.echo(f"nanosolve {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """nanosolve: atomic structures of crystals and nanomaterials from scattering data."""


app.add_typer(build.app, name="build")
app.add_typer(dataset.app, name="dataset")
app.add_typer(train_cli.app, name="train")
app.add_typer(bench_cli.app, name="bench")
predict_app = typer.Typer(help="Predict structures or densities with trained models.", no_args_is_help=True)
predict_app.command("crystalnet")(crystalnet_cli.predict_command)
app.add_typer(predict_app, name="predict")
app.add_typer(cdvae_cli.generate_app, name="generate")
app.add_typer(cdvae_cli.evaluate_app, name="evaluate")
app.command("solve")(solve_cli.solve)
app.command("report")(report_cli.report)


def _out_paths(out: Path | None, structure: Path, kind: str) -> tuple[Path, Path]:
    data = out or structure.with_name(f"{structure.stem}_{kind}.{'gr' if kind == 'gr' else 'xy'}")
    return data, data.with_suffix(".png")


@app.command()
@friendly_errors
def simulate(
    kind: str = typer.Argument(..., help=f"pattern kind: {', '.join(KINDS)} (xrd/nd = x-ray/neutron powder "
                                         "diffraction, saxs/sans small angle, iq/sq/fq total scattering, gr PDF)"),
    structure: Path = typer.Argument(..., help="structure file: CIF (crystal) or xyz (particle); "
                                               "anything ase reads"),
    wavelength: str = typer.Option(None, "--wavelength", "-w",
                                   help="Å or a name (CuKa, MoKa...): xrd/nd output on 2θ (degrees); "
                                        "without one, on Q (Å⁻¹)"),
    out: Path = typer.Option(None, "-o", "--out", help="output columns (.xy/.dat/.gr/.csv); a PNG plot is "
                                                        "written beside it"),
    qmin: float = typer.Option(None, help="lowest Q (Å⁻¹)"),
    qmax: float = typer.Option(None, help="highest Q (Å⁻¹)"),
    qstep: float = typer.Option(None, help="Q step (Å⁻¹)"),
    rmin: float = typer.Option(0.0, help="G(r): lowest r (Å)"),
    rmax: float = typer.Option(30.0, help="G(r): highest r (Å)"),
    rstep: float = typer.Option(0.01, help="G(r): r step (Å)"),
    qdamp: float = typer.Option(0.04, help="G(r): instrumental damping (Å⁻¹)"),
    biso: float = typer.Option(0.3, help="isotropic displacement B (Å²)"),
    fwhm: float = typer.Option(None, help="xrd/nd of a crystal: instrumental FWHM (° 2θ, or Å⁻¹ on Q)"),
    size: float = typer.Option(None, help="xrd/nd of a crystal: crystallite size (Å) for finite-size broadening"),
    size_model: str = typer.Option("scherrer", help="finite-size model: scherrer (physical Laue width) or "
                                                    "pxrdnet (sinc²(Qτ/2) convolution)"),
    diameter: float = typer.Option(None, help="crystal: PDF envelope diameter / sphere cut for Debye kinds (Å)"),
    plot: bool = typer.Option(True, help="write a PNG plot beside the output"),
):
    """Simulate a pattern of a crystal or particle and write it as columns (+ a PNG plot).

    Crystals use the Bragg simulator for xrd/nd and the crystal PDF for gr; particles use the Debye
    equation. The written x column is 2θ (degrees) for xrd/nd with a wavelength, Q (Å⁻¹) otherwise,
    and r (Å) for gr.
    """
    from nanosolve.scattering.plot import plot_patterns
    from nanosolve.scattering.simulate import simulate as run
    from nanosolve.scattering.writers import write_pattern
    from nanosolve.structures.io import read_structure

    if kind not in KINDS:
        raise InputError(f"unknown pattern kind {kind!r}; expected one of {', '.join(KINDS)}")
    data, png = _out_paths(out, structure, kind)
    output_file(data, PATTERN_WRITE_EXTENSIONS)
    s = read_structure(structure)
    with console.status(f"simulating {kind} of {structure.name}"):
        try:
            pattern = run(kind, s, wavelength, qmin=qmin, qmax=qmax, qstep=qstep, rmin=rmin, rmax=rmax,
                          rstep=rstep, qdamp=qdamp, biso=biso, fwhm=fwhm, size=size, size_model=size_model,
                          diameter=diameter)
        except ResourceError as exc:  # name the structure the estimate is about
            raise ResourceError(f"{structure}: {exc}") from None
    write_pattern(pattern, data)
    console.print(f"wrote {data}  ({pattern!r})", highlight=False)
    if plot:
        plot_patterns(pattern, png, title=f"{s.formula} — {structure.name}")
        console.print(f"wrote {png}", highlight=False)


@app.command()
@friendly_errors
def info(file: Path = typer.Argument(..., help="a pattern (.xy .xye .dat .csv .chi .gr .xrdml .brml .raw "
                                               ".gsa .fxye, powder CIF) or a "
                                               "structure (CIF, xyz, POSCAR...)"),
         wavelength: str = typer.Option(None, "--wavelength", "-w", help="Å, if the file does not say")):
    """Describe a file: for a pattern its kind, x unit and range, points and wavelength (Å); for a
    structure its formula, cell (Å, degrees), space group and atom count."""
    from rich.table import Table

    from nanosolve.scattering.readers import read_patterns
    from nanosolve.structures import Crystal
    from nanosolve.structures.io import read_cif, read_structure

    if not file.exists():
        raise InputError("file not found", file)
    check_wavelength_option(wavelength)
    ext = file.suffix.lower()
    patterns, structures = [], []
    if ext in PATTERN_EXTENSIONS:
        patterns = read_patterns(file, wavelength=wavelength)
    elif ext in (".cif", ".mcif"):
        # A powder CIF holds profiles and phases; a plain CIF only phases. Report whatever is there.
        errors = []
        for reader, bucket in ((lambda: read_patterns(file, wavelength=wavelength), patterns), (lambda: read_cif(file), structures)):
            try:
                bucket.extend(reader())
            except InputError as exc:
                errors.append(exc)
        if not patterns and not structures:
            # a file with powder-profile items is a pattern first: its reading error is the one to show
            raise errors[0] if "_pd_" in file.read_text(errors="replace") else errors[-1]
    else:
        try:
            structures = [read_structure(file)]
        except InputError as exc:  # neither a pattern format nor a structure: say both
            raise InputError(f"unknown file format {ext or '(no extension)'}: not a pattern file "
                             f"({' '.join(PATTERN_EXTENSIONS)}, powder CIF; see docs/formats.md) and "
                             f"{exc.problem}", file) from None
    if patterns:
        t = Table("pattern", "kind", "x unit", "range", "points", "wavelength (Å)", title=str(file))
        for p in patterns:
            t.add_row(str(p.metadata.get("block", file.stem)), p.kind, X_LABELS[p.x_unit],
                      f"{p.x.min():.5g} – {p.x.max():.5g}", str(len(p)),
                      f"{p.wavelength:.5f}" if p.wavelength else "unknown")
        console.print(t)
    if structures:
        t = Table("structure", "formula", "cell a b c (Å) / α β γ (°)", "space group", "atoms", title=str(file))
        for s in structures:
            if isinstance(s, Crystal):
                try:
                    sym = s.symmetry()
                    sg = f"{sym.symbol} ({sym.number}, {sym.crystal_system})"
                except Exception:  # spglib gives up on some partially occupied cells; say so, do not fail
                    sg = "not determined"
                cell = "{:.4f} {:.4f} {:.4f} / {:.2f} {:.2f} {:.2f}".format(*s.cell_params)
                atoms = f"{len(s)} sites" + ("" if s.is_ordered else " (partial occupancy)")
            else:
                sg, cell, atoms = "— (finite particle)", f"diameter {s.diameter:.2f} Å", str(len(s))
            t.add_row(s.name or file.stem, s.formula, cell, sg, atoms)
        console.print(t)


@app.command()
@friendly_errors
def demo(out: Path = typer.Option(Path("nanosolve-demo"), "-o", "--out", help="output folder")):
    """The built-in examples: a rock-salt MgO crystal and a 20 Å MgO nanoparticle cut from it (simulates
    powder XRD (Cu Kα), neutron diffraction, the PDF and SAXS; writes the columns, the structures and
    one PNG figure), then solves the shipped simulated PDF of a Au nanoparticle with DeepStruc (ranked
    candidates as xyz, fit plot, JSON summary)."""
    from nanosolve._io import staged_folder
    from nanosolve.scattering.plot import plot_patterns
    from nanosolve.scattering.simulate import simulate as run
    from nanosolve.scattering.writers import write_pattern
    from nanosolve.structures.builders.chili_types import build_chili_crystal
    from nanosolve.structures.builders.cut import cut_nanoparticle
    from nanosolve.structures.io import write_structure

    out = output_folder(out, "-o", overwrite=True)  # an existing file refused; earlier demo files replaced
    crystal = build_chili_crystal("rocksalt", "Mg")
    particle = cut_nanoparticle(crystal, 10.0)
    jobs = [("xrd", crystal, "CuKa", "MgO crystal, Cu Kα XRD"),
            ("nd", crystal, 1.54, "MgO crystal, neutron powder diffraction"),
            ("xrd", particle, "CuKa", f"MgO particle ({len(particle)} atoms), Debye XRD"),
            ("gr", particle, None, "MgO particle, x-ray PDF G(r)"),
            ("saxs", particle, None, "MgO particle, SAXS")]
    patterns, labels = [], []
    from rich.progress import track

    # each part written beside its folder and moved in when complete; other files in OUT stay
    with staged_folder(out) as work:
        write_structure(crystal, work / "MgO_rocksalt.cif")
        write_structure(particle, work / "MgO_particle_r10.xyz")
        for kind, s, wl, label in track(jobs, description="simulating", console=console):
            p = run(kind, s, wl)
            tag = "crystal" if s is crystal else "particle"
            write_pattern(p, work / f"MgO_{tag}_{kind}.{'gr' if kind == 'gr' else 'xy'}")
            patterns.append(p)
            labels.append(label)
        png = plot_patterns(patterns, work / "MgO_patterns.png", labels=labels)
    console.print(f"wrote {len(jobs)} patterns, 2 structures and {out / png.name} into {out}/", highlight=False)

    from nanosolve.solve import example_pdf, read_input, settings_from_metadata, solve_pdf

    example = read_input(example_pdf())
    with console.status("solving the shipped example PDF (simulated, 75-atom Au decahedron) with DeepStruc"), \
            staged_folder(out / "solve_example") as work:
        res = solve_pdf(example, element="Au", k=10, seed=0, settings=settings_from_metadata(example.metadata),
                        out_dir=work)
    best = res.summary["candidates"][0]
    console.print(f"DeepStruc on {example_pdf().name}: best candidate {best['file']} with {best['n_atoms']} atoms, "
                  f"Rw {best['rw']:.3f} (fit plot and all candidates in {out / 'solve_example'}/)", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
