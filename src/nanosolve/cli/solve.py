"""``nanosolve solve``: structure solution from measured data (today: nanoparticle PDFs with DeepStruc)."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from nanosolve.cli.common import console, friendly_errors


@friendly_errors
def solve(
    file: Path = typer.Argument(..., help="measured data: a PDF G(r) (.gr; r in Å, G in Å⁻²)"),
    model: str = typer.Option("auto", "--model", help="auto (by data kind) or deepstruc"),
    element: str = typer.Option(None, "--element", "-e", help="the metal (e.g. Au); default: guessed from the "
                                                             "first PDF peak"),
    k: int = typer.Option(20, "-k", help="number of candidate structures to sample"),
    out: Path = typer.Option(None, "-o", "--out", help="output folder (default: <file stem>_solve)"),
    model_dir: Path = typer.Option(None, "--model-dir", help="trained DeepStruc run (config.json + best.pt); "
                                                            "default: the shipped CVAE"),
    seed: int = typer.Option(0, help="seed of the latent samples"),
    qmin: float = typer.Option(None, help="Qmin of the data (Å⁻¹); default: file header, else 0.7"),
    qmax: float = typer.Option(None, help="Qmax of the data (Å⁻¹); default: file header, else 30"),
    qdamp: float = typer.Option(None, help="Qdamp of the data (Å⁻¹); default: file header, else 0.04"),
    rmin: float = typer.Option(1.0, help="fit range start (Å)"),
    delta2: bool = typer.Option(False, "--delta2/--no-delta2", help="also refine delta2 (Å²)"),
    show: int = typer.Option(10, help="rows of the printed table"),
):
    """Solve a structure from FILE: DeepStruc samples K candidate nanoparticles from a PDF, each is
    refined against the data (scale, lattice expansion, Biso), ranked by Rw; writes best-first xyz
    files (01_... is the best), fit.png (data / model / difference) and summary.json."""
    from rich.table import Table

    from nanosolve.solve import read_input, settings_from_metadata, solve_pdf

    if k < 1:
        from nanosolve.errors import InputError

        raise InputError(f"-k must be >= 1, got {k}")
    with warnings.catch_warnings():  # a guessed x unit of a non-PDF file is moot: it is refused below
        warnings.simplefilter("ignore", UserWarning)
        pattern = read_input(file)
    settings = settings_from_metadata(pattern.metadata, qmin=qmin, qmax=qmax, qdamp=qdamp, rmin=rmin,
                                      refine_delta2=delta2)
    out = out or file.with_name(f"{file.stem}_solve")
    with console.status(f"solving {file.name}: sampling {k} candidates and refining them"):
        result = solve_pdf(pattern, element=element, k=k, seed=seed, model_dir=model_dir, model=model,
                           settings=settings, out_dir=out)
    s = result.summary
    cols = ["rank", "file", "atoms", "Rw", "scale", "expansion", "Biso (Å²)"] + (["δ2 (Å²)"] if delta2 else [])
    t = Table(*cols,
              title=f"{file.name}: DeepStruc ({s['model_kind']}) candidates, {s['element']}"
                    + (" (element guessed)" if s["element_guessed"] else ""))
    for c in s["candidates"][:show]:
        t.add_row(str(c["rank"]), c["file"], str(c["n_atoms"]), f"{c['rw']:.4f}", f"{c['scale']:.3g}",
                  f"{100 * c['expansion']:+.2f} %", f"{c['biso']:.3f}", *([f"{c['delta2']:.3f}"] if delta2 else []))
    console.print(t)
    console.print(f"wrote {len(s['candidates'])} xyz files, {s['fit_plot']} and summary.json into {out}/ "
                  f"({s['seconds']:.1f} s)", highlight=False)
