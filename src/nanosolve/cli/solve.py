"""``nanosolve solve``: structure solution from measured data (today: nanoparticle PDFs with DeepStruc)."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from nanosolve.cli.common import (
    SEED,
    check_number,
    check_wavelength_option,
    console,
    friendly_errors,
    output_folder,
    results_folder,
)


def _naming(progress, work: Path, out: Path):
    """``progress(stage, detail)`` that names OUT where the library names the folder it writes into."""

    def call(stage, detail=None):
        progress(stage, detail.replace(str(work), str(out)) if isinstance(detail, str) else detail)

    return call


def _check_options(formula, element, size, qmin, qmax, qdamp, rmin, k, wavelength=None, steps=None,
                   langevin_steps=None, top=None, profile_top=None, time_budget=None, lattice_a=None) -> None:
    """Every option of ``solve`` range-checked before the input is read."""
    from nanosolve.solve.limits import check_k
    from nanosolve.structures.elements import normalize_symbol
    from nanosolve.structures.formula import parse_formula

    check_wavelength_option(wavelength)
    # upper bounds: beyond them a run takes days (the lower ones are typer's min=)
    check_number("--steps", steps, 1, 100_000)
    check_number("--langevin-steps", langevin_steps, 1, 10_000)
    check_number("--top", top, 0, 10_000)
    check_number("--profile-top", profile_top, 0, 1_000)
    check_number("--size", size, 0, 1e4, lo_open=True, unit="Å")
    check_number("--qmin", qmin, 0, 200, unit="Å⁻¹")
    check_number("--qmax", qmax, 0, 200, lo_open=True, unit="Å⁻¹")
    check_number("--qdamp", qdamp, 0, 10, unit="Å⁻¹")
    check_number("--rmin", rmin, 0, 1e4, unit="Å")
    check_number("--time-budget", time_budget, 0, unit="s")  # 0 = unbounded; NaN and inf refused
    check_number("--lattice-a", lattice_a, 1, 20, unit="Å")  # every metal's lattice constant, with room
    if qmin is not None and qmax is not None and not qmax > qmin:
        from nanosolve.errors import InputError

        raise InputError(f"must exceed --qmin ({qmin:g}), got {qmax:g}", "--qmax")
    if formula is not None:
        parse_formula(formula, option="--formula")  # strict, size-capped: before anything is built from it
    if element is not None:
        from nanosolve.errors import InputError

        try:
            normalize_symbol(element)
        except InputError:
            raise InputError(f"unknown element {element!r}", "--element") from None
    if k is not None:
        check_k(k, "powder" if formula else "pdf")


def _read_with_x_unit(file: Path, wavelength, x_unit: str):
    """FILE read with the x unit the user gives (--x-unit; d converted to 2θ with the wavelength)."""
    from nanosolve.solve.rietveld import read_measured

    return read_measured(file, wavelength, x_unit)


def _rietveld_settings(top, background_file, extra_phase, preferred_orientation, kalpha2=None, parsimony=None):
    """RietveldSettings from the Rietveld / real-data options, checked before the solve's work."""
    from nanosolve.errors import InputError
    from nanosolve.solve.rietveld import PARSIMONY_ALPHA, RIETVELD_TOP, RietveldSettings

    po = None
    if preferred_orientation:
        parts = preferred_orientation.replace(",", " ").split()
        if len(parts) == 1 and len(parts[0]) == 3 and parts[0].isdigit():
            parts = list(parts[0])  # '001'
        try:
            po = tuple(int(v) for v in parts)
        except ValueError:
            raise InputError(f"give three integers, e.g. '0 0 1', got {preferred_orientation!r}",
                             "--preferred-orientation") from None
    st = RietveldSettings(top=RIETVELD_TOP if top is None else top, extra_phases=tuple(extra_phase or ()),
                          background_file=background_file, preferred_orientation=po,
                          kalpha2="auto" if kalpha2 is None else kalpha2,
                          parsimony_alpha=PARSIMONY_ALPHA if parsimony is None else (parsimony or None))
    st.validate()
    return st


@friendly_errors
def solve(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="measured data: a PDF G(r) (.gr; r in Å, G in Å⁻²) or a powder pattern "
                                          "(.xy/.xye/.dat/.csv/.chi or an IUCr powder CIF; 2θ needs a wavelength)"),
    model: str = typer.Option("auto", "--model", help="auto (PDF -> deepstruc, powder pattern -> pxrdnet), "
                                                      "deepstruc or pxrdnet"),
    formula: str = typer.Option(None, "--formula", "-f", help="powder: the composition, any multiple (Fe2O3 = "
                                                              "Fe4O6); Z is searched, --z pins it"),
    z: int = typer.Option(None, "--z", min=1, max=200, help="powder: formula units per cell (default: Z = 1, 2, 3, 4, 6, 8 "
                                                   "... up to 48 atoms searched and ranked together)"),
    time_budget: float = typer.Option(None, "--time-budget", min=0,
                                      help="powder: total wall time of the solve (s); the stages stop starting new "
                                           "work as it runs out and say so; 0 = unbounded "
                                           "[default: nanosolve.solve.pxrd.TIME_BUDGET, 300]"),
    random_search: int = typer.Option(None, "--random-search", min=0, max=10_000,
                                      help="powder: pyxtal random crystals in the space groups that fit the "
                                           "composition and Z, ranked beside the other candidates; 0 = off "
                                           "[default: nanosolve.solve.pxrd.RANDOM_SEARCH]"),
    coordinate_search: int = typer.Option(None, "--coordinate-search", min=0, max=100,
                                          help="powder, sharp data: structure types whose free Wyckoff coordinates "
                                               "are searched against the pattern as measured after the screen; "
                                               "0 = off [default: nanosolve.solve.pxrd.COORDINATE_SEARCH]"),
    size: float = typer.Option(10.0, "--size", help="powder: crystallite size τ (Å) of the shipped PXRDNet model"),
    wavelength: str = typer.Option(None, "--wavelength", "-w", help="powder: Å or a name (CuKa, MoKa) when the "
                                                                    "file does not give it"),
    steps: int = typer.Option(None, min=1, help="powder: latent-optimisation steps (default: the model's)"),
    langevin_steps: int = typer.Option(None, min=1, help="powder: Langevin steps per noise level (default: the model's)"),
    top: int = typer.Option(None, min=0, help="powder: best candidates refined against the input (lattice ±20 %, scale; "
                                       "~1-2 s each) [default: nanosolve.solve.pxrd.REFINE_TOP, 10]"),
    method: str = typer.Option("pxrdnet", help="powder: pxrdnet (latent optimisation), cdvae-search (prior "
                                               "samples) or random (random coordinates) — the baselines"),
    broaden: bool = typer.Option(True, "--broaden/--no-broaden", help="powder: broaden sharp measured peaks to the "
                                                                     "model's crystallite size first"),
    background: bool = typer.Option(None, "--background/--no-background",
                                    help="powder: subtract a rolling background first [default: with --broaden "
                                         "only; it would remove the signal of nano-broadened data]"),
    positions: bool = typer.Option(None, "--positions/--no-positions", help="also refine atomic positions "
                                                                           "(default: on)"),
    distinct: bool = typer.Option(None, "--distinct/--no-distinct",
                                  help="powder: refine the best structurally distinct candidates, copies after "
                                       "them [default: off, nanosolve.solve.pxrd.DISTINCT]"),
    prototypes: bool = typer.Option(None, "--prototypes/--no-prototypes",
                                    help="powder: also rank the AFLOW prototypes of the formula's stoichiometry "
                                         "(isotypic substitutions) and the orderings of two of its elements on "
                                         "one site of a prototype (double perovskites...) beside the model's candidates "
                                         "[default: on, nanosolve.solve.pxrd.PROTOTYPES]"),
    symmetrize: bool = typer.Option(None, "--symmetrize/--no-symmetrize",
                                    help="powder: also rank the best model candidates snapped onto the space group "
                                         "spglib finds (0.05-0.5 Å) [default: on, nanosolve.solve.pxrd.SYMMETRIZE]"),
    profile_top: int = typer.Option(None, "--profile-top", min=0,
                                    help="powder, sharp data: best candidates refined against the pattern as "
                                         "measured (own 2θ grid, width, zero, background) and re-ranked by "
                                         "R_wp; 0 = off [default: nanosolve.solve.pxrd.PROFILE_TOP]"),
    rietveld_top: int = typer.Option(None, "--rietveld-top", min=0, max=1000,
                                     help="powder, sharp data: best measured-profile fits then Rietveld-refined "
                                          "under their space group (free Wyckoff coordinates, B_iso per element, "
                                          "TCH profile) and re-ranked by R_wp; 0 = off "
                                          "[default: nanosolve.solve.rietveld.RIETVELD_TOP]"),
    background_file: Path = typer.Option(None, "--background-file",
                                         help="powder: a measured empty-holder / capillary pattern (same columns as "
                                              "FILE), refined as a scaled component of the Rietveld fit"),
    x_unit: str = typer.Option(None, "--x-unit", help="powder: x column of FILE: 2theta (°), q (Å⁻¹) or d (Å; "
                                                      "needs the wavelength) [default: the reader's guess]"),
    extra_phase: list[Path] = typer.Option(None, "--extra-phase",
                                           help="powder: CIF of a known impurity phase (repeatable), refined beside "
                                                "each candidate in the Rietveld fit (own scale, lattice, width); "
                                                "weight fractions reported"),
    preferred_orientation: str = typer.Option(None, "--preferred-orientation",
                                              help="powder: March-Dollase texture direction of the candidate, "
                                                   "three Miller indices, e.g. '0 0 1'"),
    kalpha2: bool = typer.Option(None, "--kalpha2/--no-kalpha2",
                                 help="powder: the pattern holds the Cu or Mo Kα1 + Kα2 doublet (the Rietveld fit "
                                      "models both lines) or not [default: decided by the fit of the best "
                                      "candidate for a Cu / Mo wavelength]"),
    parsimony: float = typer.Option(None, "--parsimony", min=0.0, max=0.5,
                                    help="powder: significance level of Hamilton's R-ratio test that orders the "
                                         "Rietveld fits (a structure with more free parameters must fit "
                                         "significantly better); 0 = by R_wp alone "
                                         "[default: nanosolve.solve.parsimony.ALPHA]"),
    element: str = typer.Option(None, "--element", "-e", help="the metal (e.g. Au); default: guessed from the "
                                                             "first PDF peak"),
    k: int = typer.Option(None, "-k", min=1, help="number of candidate structures (default: 20 for a PDF, 100 for a "
                                            "powder pattern)"),
    out: Path = typer.Option(None, "-o", "--out", help="output folder (default: <file stem>_solve)"),
    model_dir: Path = typer.Option(None, "--model-dir", help="trained run (config.json + best.pt); default: the "
                                                            "shipped DeepStruc CVAE / PXRDNet model"),
    seed: int = typer.Option(0, **SEED, help="seed of the latent samples"),
    qmin: float = typer.Option(None, help="Qmin of the data (Å⁻¹); default: file header, else 0.7"),
    qmax: float = typer.Option(None, help="Qmax of the data (Å⁻¹); default: file header, else 30"),
    qdamp: float = typer.Option(None, help="Qdamp of the instrument (Å⁻¹), best from a calibrant (Ni, Si) "
                                           "measured on the same setup; default: the file header, else fitted per "
                                           "candidate (it then trades off with the particle size)"),
    rmin: float = typer.Option(1.0, help="fit range start (Å)"),
    delta2: bool = typer.Option(False, "--delta2/--no-delta2", help="also refine delta2 (Å²)"),
    source: str = typer.Option("both", "--source", help="PDF: candidates from the DeepStruc model (cvae), the "
                                                        "cluster library (library) or both"),
    rmax: float = typer.Option(None, "--rmax", help="PDF: fit range end (Å); default: where the data end"),
    lattice_a: float = typer.Option(None, "--lattice-a", help="PDF: lattice constant (Å) to start the library "
                                                              "clusters from instead of the element's"),
    max_atoms: int = typer.Option(4000, "--max-atoms", min=13, max=100_000, help="PDF: largest library cluster (atoms)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors (no progress, no table)"),
    show: int = typer.Option(10, min=0, help="rows of the printed table"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the results of an earlier run in the output "
                                                              "folder (only the files that run wrote)"),
):
    """Solve a structure from FILE. A PDF: DeepStruc samples K candidate nanoparticles, each refined
    against the data (scale, lattice expansion, Biso, then every atom position unless --no-positions),
    ranked by Rw; writes best-first xyz files.
    A powder pattern + --formula: PXRDNet optimises K latent codes against the pattern, decodes them
    with the formula forced, ranks them together with the known structure types of the formula's
    stoichiometry (AFLOW prototypes, --no-prototypes to leave them out) and with symmetrised
    variants of the best ones (--no-symmetrize to leave them out) by fit to the input and refines the
    best; with sharp data (--broaden) the best --profile-top are then refined against the pattern as
    measured and re-ranked by R_wp; writes best-first CIFs. Both write fit.png (data / model / difference) and summary.json;
    01_... is the best."""
    from rich.table import Table

    from nanosolve.cli.progress import mute, stage_progress

    mute(console, quiet, ctx)
    from nanosolve.solve import choose_model, read_input, solve_pdf

    _check_options(formula, element, size, qmin, qmax, qdamp, rmin, k, wavelength, steps, langevin_steps, top,
                   profile_top, time_budget, lattice_a)
    with warnings.catch_warnings():  # a guessed x unit of a non-PDF file is moot: it is refused below
        warnings.simplefilter("ignore", UserWarning)
        pattern = read_input(file, wavelength) if x_unit is None else _read_with_x_unit(file, wavelength, x_unit)
    out = output_folder(out or file.with_name(f"{file.stem}_solve"), "-o", overwrite)
    if choose_model(pattern, model) == "pxrdnet":
        from nanosolve.cli.pxrdnet import solve_powder

        solve_powder(pattern, file, formula, model_dir, size, 100 if k is None else k, steps, langevin_steps, top,
                     positions, distinct, prototypes, symmetrize, broaden, background, method, seed, out, show,
                     profile_top, rietveld=_rietveld_settings(rietveld_top, background_file, extra_phase,
                                                              preferred_orientation, kalpha2, parsimony),
                     z=z, time_budget=time_budget, random_search=random_search, overwrite=overwrite,
                     coordinate_search=coordinate_search)
        return
    k = 20 if k is None else k
    from nanosolve.solve.pdf_solve import PdfSolveSettings

    check_number("--rmax", rmax, rmin, 1e4, lo_open=True, unit="Å")
    pdf_settings = PdfSolveSettings(source=source, rmin=rmin, rmax=rmax, qmin=qmin, qmax=qmax, qdamp=qdamp,
                                    lattice_a=lattice_a, max_atoms=max_atoms, k=k, seed=seed, fit_delta2=True,
                                    positions_top=0 if positions is False else 2)
    from nanosolve.scattering.memory import guard_pdf_fit

    r_fit = pattern.x[(pattern.x >= rmin) & (pattern.x <= (rmax or float("inf")))]  # the [Q × r] fit kernel
    guard_pdf_fit(r_fit.size, float(r_fit.max() if r_fit.size else pattern.x.max()), qmax or 30.0,
                  what=f"PDF fit of {file.name}")
    # written into a folder beside OUT and moved in at the end: a failed run leaves OUT as it was
    with stage_progress(console, quiet) as progress, results_folder(out, overwrite) as work:
        result = solve_pdf(pattern, element=element, k=k, seed=seed, model_dir=model_dir, model=model,
                           out_dir=work, progress=_naming(progress, work, out), pdf_settings=pdf_settings)
    s = result.summary
    a = s["answer"]
    t = Table("rank", "source", "motif", "atoms", "d (nm)", "a (Å)", "Biso (Å²)", "Rw", "Rw positions", "flags",
              title=f"{file.name}: {s['element']}" + (" (element guessed)" if s["element_guessed"] else "")
                    + f", r = {s['fit_range'][0]:.3g}-{s['fit_range'][1]:.3g} Å, {s['n_library']} library + "
                      f"{s['n_cvae']} DeepStruc candidates; Rw with atom positions fixed")
    for c in s["candidates"][:show]:
        flags = list(c["at_bound"]) and ["at bound: " + ",".join(c["at_bound"])]
        flags = (flags or []) + ([] if c["sanity"]["plausible"] else ["loose"])
        t.add_row(str(c["rank"]), c["source"], c["motif"], str(c["n_atoms"]), f"{c['diameter_nm']:.2f}",
                  f"{c['lattice_a']:.3f}", f"{c['biso']:.3f}", f"{c['rw']:.4f}",
                  "" if c["rw_positions"] is None else f"{c['rw_positions']:.4f}", "; ".join(flags))
    console.print(t)
    cmp_ = s["motif_comparison"]
    console.print(f"answer: {a['motif']} ({a['source']}), {a['n_atoms']} atoms, {a['diameter_nm']:.2f} nm, "
                  f"a = {a['lattice_a']:.3f} Å, Biso {a['biso']:.2f} Å², Rw {a['rw']:.3f}"
                  + (f"; next motif {cmp_[1]['motif']} Rw +{cmp_[1]['delta_rw']:.3f}"
                     + ("" if cmp_[1].get("worse_beyond_noise") else " (within noise)") if len(cmp_) > 1 else ""),
                  highlight=False)
    sizes = a.get("sizes_within_noise")
    if sizes and sizes["n_atoms"][0] != sizes["n_atoms"][1]:
        console.print(f"sizes within noise of the best fit: {sizes['n_atoms'][0]}-{sizes['n_atoms'][1]} atoms "
                      f"({sizes['diameter_nm'][0]:.2f}-{sizes['diameter_nm'][1]:.2f} nm)"
                      + ("; Qdamp was fitted and trades off with size: give --qdamp from a calibrant to narrow it"
                         if a.get("qdamp_fitted") else ""), highlight=False)
    console.print(f"wrote {len(s['candidates'])} xyz files, {s['fit_plot']}, summary.json and report.html into {out}/ "
                  f"({s['seconds']:.1f} s)", highlight=False)

