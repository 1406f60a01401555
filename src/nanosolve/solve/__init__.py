"""Structure solution from measured data: pick a model by data kind, generate candidates, refine, rank.

A PDF G(r) of a mono-metallic nanoparticle -> DeepStruc (:mod:`nanosolve.models.deepstruc`)
candidates refined against the data (:mod:`.pdf_refine`); a powder pattern + formula -> PXRDNet
(:mod:`.pxrd`): latent optimisation, decoding with the formula forced, blind ranking, refinement.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosolve.errors import InputError
from nanosolve.solve.pdf_refine import FitSettings, RefineResult, rank, refine, rw, settings_from_metadata

__all__ = ["MODELS", "default_model_dir", "read_input", "choose_model", "guess_element", "solve_pdf", "SolveResult",
           "FitSettings", "RefineResult", "rank", "refine", "rw"]

MODELS = ("auto", "deepstruc", "pxrdnet")
_POWDER = ("xrd", "nd")


def default_model_dir() -> Path:
    """The DeepStruc CVAE shipped with nanosolve (``nanosolve/data/deepstruc/cvae_cpu``)."""
    from nanosolve.registry import pretrained

    return pretrained("deepstruc")


def example_pdf() -> Path:
    """The shipped example: a simulated PDF of a 75-atom Au decahedron (see its header)."""
    return Path(__file__).resolve().parents[1] / "data" / "deepstruc" / "example_simulated_Au_decahedron.gr"


def read_input(path_or_pattern, wavelength=None, kind: str | None = None, x_unit: str | None = None):
    """A Pattern from a file, a Pattern or arrays ((x, y), (x, y, sigma), [M, 2|3]); InputError for empty /
    unreadable files. ``wavelength`` (Å or a name) for 2θ data that do not state one; ``kind`` and
    ``x_unit`` describe arrays (:func:`nanosolve.scattering.coerce.as_pattern`; files state their own)."""
    from nanosolve.scattering.coerce import as_pattern
    from nanosolve.scattering.readers import read_pattern

    if not isinstance(path_or_pattern, (str, os.PathLike)):
        return as_pattern(path_or_pattern, kind=kind, x_unit=x_unit, wavelength=wavelength)
    path = Path(path_or_pattern)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, expected a data file", path)
    if path.stat().st_size == 0:
        raise InputError("the file is empty", path)
    return read_pattern(path) if wavelength is None else read_pattern(path, wavelength=wavelength)


def choose_model(pattern, model: str = "auto") -> str:
    """Model name for a pattern: a PDF G(r) -> 'deepstruc', a powder pattern (xrd/nd) -> 'pxrdnet';
    ``model`` overrides 'auto' but must suit the data."""
    src = pattern.metadata.get("source")
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    if pattern.kind in _POWDER:
        if model == "deepstruc":
            raise InputError(f"DeepStruc solves PDFs G(r), but this is a powder pattern ({pattern.kind}); "
                             "use --model pxrdnet (or auto)", src)
        return "pxrdnet"
    if pattern.kind != "gr" or pattern.x_unit != "r":
        raise InputError(f"not a PDF G(r) or a powder pattern (the file reads as a {pattern.kind} pattern on "
                         f"{pattern.x_unit}); solve needs G(r) vs r (.gr) or I vs 2θ/Q", src)
    if model == "pxrdnet":
        raise InputError("PXRDNet solves powder patterns, but this is a PDF G(r); use --model deepstruc (or auto)",
                         src)
    return "deepstruc"


def guess_element(r, g) -> str:
    """The d-block metal whose nearest-neighbour distance (2 × metallic radius) is closest to the first
    strong G(r) peak: a default only, atoms of one metal give the same G(r) shape whatever the metal."""
    from nanosolve.models.deepstruc.data import METALS
    from nanosolve.structures.elements import metallic_radius

    r, g = np.asarray(r, float), np.asarray(g, float)
    keep = r > 1.5
    rr, gg = r[keep], g[keep]
    strong = np.flatnonzero((gg[1:-1] >= 0.5 * gg.max()) & (gg[1:-1] >= gg[:-2]) & (gg[1:-1] >= gg[2:])) + 1
    if strong.size == 0:
        raise InputError("no nearest-neighbour peak found in the PDF; give the element")
    d = rr[strong[0]]
    return min(METALS, key=lambda m: abs(2 * metallic_radius(m) - d))


@dataclass
class SolveResult:
    ranked: list[RefineResult]
    summary: dict


def solve_pdf(data, element: str | None = None, k: int = 20, seed: int = 0, model_dir: str | os.PathLike | None = None,
              model: str = "auto", settings: FitSettings | None = None, out_dir: str | os.PathLike | None = None,
              refine_positions: bool | None = None, progress=None, source: str | None = None,
              pdf_settings=None) -> SolveResult:
    """Solve a nanoparticle structure from its PDF.

    With ``source`` ('cvae', 'library' or 'both') or ``pdf_settings`` (a
    :class:`nanosolve.solve.pdf_solve.PdfSolveSettings`) given, candidates from the cluster library and/or
    DeepStruc are ranked by their fit with atom positions fixed, behind a sanity gate, and the best few get
    a restrained position refinement reported beside that fit (:func:`nanosolve.solve.pdf_solve.solve_sources`,
    docs/pdf_solve.md); ``k``, ``seed`` and the r/Q options of ``settings`` carry over. Without either (the
    earlier form of the call), DeepStruc candidates are refined one by one with :func:`refine` and ranked by
    that Rw.

    Args:
        data: a ``.gr`` path, a Pattern of kind ``gr`` or (r, G) arrays (Å, Å⁻²).
        element: the metal (checked: known, a metal); None guesses it from the first PDF peak.
        k: DeepStruc candidates (latent samples).
        seed: seed of the latent draws.
        model_dir: trained DeepStruc directory (config.json + best.pt); default the shipped CVAE.
        model: 'auto' or 'deepstruc'.
        settings: refinement settings; default Qmin/Qmax/Qdamp from the file header, else DeepStruc's.
        out_dir: if given, write the report there (:func:`nanosolve.solve.report.write_report`).
        refine_positions: also refine every atom position of every candidate after the global fit
            (``FitSettings.refine_positions``); None: on, unless ``settings`` are given (then theirs).
        progress: ``progress(stage, detail)`` called at the start of each stage (loading the model,
            sampling, refining, writing), e.g. :class:`nanosolve.cli.progress.StageProgress`.

    Returns:
        :class:`SolveResult`: refined candidates best-first (lowest Rw against the data) + summary.
    """
    from nanosolve.models.deepstruc.sample import candidates, check_element, pdf_on_model_grid
    from nanosolve.models.deepstruc.train import load_model

    def stage(name, detail=None):
        if progress is not None:
            progress(name, detail)

    t0 = time.perf_counter()
    pattern = read_input(data, kind="gr", x_unit="r")  # arrays: (r, G)
    src = pattern.metadata.get("source")
    choose_model(pattern, model)
    from nanosolve.solve.limits import check_k

    check_k(k, "pdf")  # before any candidate is sampled or built
    r, g = np.asarray(pattern.x, float), np.asarray(pattern.y, float)
    if r.size < 10 or not np.all(np.isfinite(g)) or np.abs(g).max() == 0:
        raise InputError("the PDF has too few points, non-finite or all-zero values", src)
    guessed = element is None
    sym = check_element(guess_element(r, g) if guessed else element)
    if source is not None or pdf_settings is not None:
        return _solve_pdf_sources(pattern, sym, guessed, k, seed, model_dir, settings, out_dir, source, pdf_settings,
                                  t0, stage)
    mdir = Path(model_dir) if model_dir is not None else default_model_dir()
    stage("loading the DeepStruc model", mdir.name)
    net, config = load_model(mdir)
    pdf_on_model_grid(pattern, config)  # coverage check before any sampling
    stage("sampling candidates", f"{k} {sym} clusters")
    cands = candidates(net, config, pattern, sym, k=k, seed=seed)
    fit = dataclasses.replace(settings) if settings is not None else settings_from_metadata(pattern.metadata)
    if refine_positions is not None or settings is None:
        # on by default: lowers Rw of decoded candidates (benchmarks/deepstruc/bench_deepstruc.py) at ~1-2 s per candidate
        fit.refine_positions = True if refine_positions is None else bool(refine_positions)
    if fit.rmax is None:
        fit.rmax = float(r.max())
    stage("refining candidates against the data",
          f"{len(cands)} candidates" + (", atom positions too" if fit.refine_positions else ""))
    ranked = rank(r, g, cands, fit)
    summary = {
        "input": str(src) if src else None, "model": "deepstruc", "model_kind": config.kind, "model_dir": str(mdir),
        "element": sym, "element_guessed": guessed, "k": int(k), "seed": int(seed),
        "n_candidates": len(cands), "fit_settings": {k_: getattr(fit, k_) for k_ in fit.__dataclass_fields__},
        "best": ranked[0].summary(), "seconds": round(time.perf_counter() - t0, 2),
        "ranking": "refined Rw against the input data only",
    }
    if out_dir is not None:
        from nanosolve.solve.report import write_report

        stage("writing the report", str(out_dir))
        summary = write_report(out_dir, ranked, summary)
    return SolveResult(ranked, summary)


def _solve_pdf_sources(pattern, sym: str, guessed: bool, k: int, seed: int, model_dir, settings, out_dir, source,
                       pdf_settings, t0: float, stage) -> SolveResult:
    """solve_pdf with the library and/or DeepStruc, ranked with positions fixed (see solve_pdf)."""
    from nanosolve.solve.pdf_solve import PdfSolveSettings, plot_rw_vs_size, solve_sources

    ps = dataclasses.replace(pdf_settings) if pdf_settings is not None else PdfSolveSettings(k=int(k), seed=int(seed))
    if source is not None:
        ps = dataclasses.replace(ps, source=source)
    if settings is not None:  # the r / Q options of a FitSettings carry over where the PDF settings leave them open
        ps = dataclasses.replace(ps, rmin=settings.rmin, rmax=ps.rmax if ps.rmax is not None else settings.rmax,
                                 qmin=ps.qmin if ps.qmin is not None else settings.qmin,
                                 qmax=ps.qmax if ps.qmax is not None else settings.qmax,
                                 qdamp=ps.qdamp if ps.qdamp is not None else settings.qdamp)
    src = pattern.metadata.get("source")
    ranked, info, fits = solve_sources(pattern, sym, ps, model_dir=model_dir, progress=lambda text: stage(text))
    summary = {"input": str(src) if src else None, "model": "pdf-" + ps.source, "element": sym,
               "element_guessed": guessed, **info, "best": ranked[0].summary()}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if out_dir is not None:
        from nanosolve.solve.report import write_report

        stage("writing the report", str(out_dir))
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plot_rw_vs_size(fits, out / "rw_vs_size.png", title=f"{Path(str(src)).name if src else 'PDF'}: Rw vs size")
        rows = ["source,motif,n_atoms,diameter_nm,rw_screen,rw,fit"]
        rows += [f"{f.entry.source},{f.entry.motif},{f.entry.n_atoms},{f.diameter_nm:.4f},{f.rw_screen:.6f},"
                 f"{f.rw:.6f},{f.stage}" for f in sorted(fits, key=lambda f: (f.entry.motif, f.entry.n_atoms))]
        (out / "rw_vs_size.csv").write_text("\n".join(rows) + "\n")
        summary["rw_vs_size_plot"] = "rw_vs_size.png"
        summary = write_report(out, ranked, summary)
    return SolveResult(ranked, summary)
