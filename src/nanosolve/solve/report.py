"""Write a structure-solution result: ranked xyz files, a fit plot and a JSON summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_write_text
from nanosolve.scattering.plot import plot_fit_curves
from nanosolve.solve.html_report import write_html_report
from nanosolve.solve.pdf_refine import RefineResult
from nanosolve.structures.io import write_structure

__all__ = ["write_report", "plot_fit", "write_pxrd_report", "plot_pxrd_candidate"]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60] or "candidate"


def plot_fit(result: RefineResult, path: str | os.PathLike, title: str = "") -> Path:
    """PNG of data, model and difference (offset below) for one refined candidate."""
    return plot_fit_curves(result.r, result.g_obs, result.g_calc, path, "r (Å)", "G(r) (Å⁻²)",
                           f"model ({len(result.particle)} atoms), Rw = {result.rw:.3f}", title or result.particle.name)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    return v


def write_report(out_dir: str | os.PathLike, ranked: list[RefineResult], info: dict | None = None) -> dict:
    """Write ``NN_<name>.xyz`` best-first (01 = lowest Rw), ``fit.png`` (best candidate) and
    ``summary.json`` (``info`` + one entry per candidate). Returns the summary dict (with file paths)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(len(ranked))))
    entries = []
    for rank_i, res in enumerate(ranked, start=1):
        name = f"{rank_i:0{width}d}_{_slug(res.particle.name)}.xyz"
        write_structure(res.particle, out / name)
        entry = {"rank": rank_i, "file": name, **res.summary(),
                 "properties": _jsonable(res.particle.properties)}
        entries.append(entry)
    fit_png = plot_fit(ranked[0], out / "fit.png", title=f"best candidate: {ranked[0].particle.name}") if ranked else None
    if ranked:
        best = ranked[0]
        np.savetxt(out / "fit.gr", np.column_stack([best.r, best.g_obs, best.g_calc, best.g_obs - best.g_calc]),
                   header="r (Å), G_obs, G_calc, G_obs - G_calc (Å^-2); best candidate " + best.particle.name,
                   fmt="%.6g")
    summary = {**_jsonable(info or {}), "fit_plot": fit_png.name if fit_png else None, "candidates": entries}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")  # unique temp name, renamed
    write_html_report(out)  # report.html last: a pure function of the files above
    return summary


def plot_pxrd_candidate(q, y, mask, cand, path, title: str = "") -> Path:
    """PNG of the input pattern (model grid, measured points only), a candidate's re-simulated
    pattern (scaled) and the difference (offset below)."""
    m = np.asarray(mask, bool)
    calc = cand.scale * np.asarray(cand.y_calc)
    return plot_fit_curves(np.asarray(q)[m], np.asarray(y)[m], calc[m], path, "Q (Å⁻¹)", "I (max = 1)",
                           f"{cand.crystal.formula}: R = {cand.score:.3f}", title or cand.crystal.name,
                           data_label="input (model grid)")


def write_pxrd_report(out_dir: str | os.PathLike, result, info: dict | None = None) -> dict:
    """Write ``NN_<formula>_<method>.cif`` (``<method>-sym`` for a symmetrised variant) best-first
    (01 = best fit to the input), ``fit.png`` + ``fit.xy`` (best candidate vs input on the model grid),
    after a measured-profile fit ``profile_fit.png`` + ``profile_fit.xy`` (best candidate vs the
    pattern as measured), after a Rietveld fit ``rietveld_fit.png`` + ``rietveld_fit.xy`` (with its
    components) and ``summary.json``. CIFs are symmetrised (space group, Wyckoff sites; B_iso and R
    factors after a Rietveld fit, :mod:`nanosolve.structures.io.cif_write`) (``result.summary`` + one entry per candidate)."""
    from nanosolve.errors import InputError
    from nanosolve.solve.pxrd_refine import plot_pxrd_fit
    from nanosolve.structures.io import write_cif
    from nanosolve.structures.io.cif_write import write_refined_cif

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranked = result.ranked
    width = max(2, len(str(len(ranked))))
    entries = []
    for rank_i, cand in enumerate(ranked, start=1):
        source = cand.method if cand.symmetrized_from is None else f"{cand.method}-sym"
        name = f"{rank_i:0{width}d}_{_slug(cand.crystal.formula)}_{_slug(source)}.cif"
        # -- symmetrised CIF (+ B_iso and R factors after a Rietveld fit): nanosolve.solve.rietveld
        rv = getattr(cand, "rietveld", None)
        if rv is not None:
            write_refined_cif(rv.crystal, out / name, symprec=1e-3, b_iso=rv.b_iso, refinement=rv.cif_info(),
                              title=f"{rank_i:0{width}d}_{cand.crystal.formula}")
        else:
            try:
                write_refined_cif(cand.final_crystal, out / name, symprec=0.01)
            except InputError:  # spglib finds no cell for a degenerate candidate: P1 as read
                write_cif(cand.final_crystal, out / name)
        entry = {"rank": rank_i, "file": name, **_jsonable(cand.summary())}
        if rv is not None:
            rs = _jsonable(rv.summary())
            entry.update({k: rs[k] for k in ("rwp", "rexp", "gof", "gof_s", "rp", "spacegroup", "spacegroup_number",
                                             "b_iso", "preferred_orientation", "extra_phases", "weight_fraction")},
                         rietveld=rs)
        entries.append(entry)
        # -- end of the Rietveld / CIF part
    file_of = {e["index"]: e["file"] for e in entries}
    for e in entries:  # a copy (solve --distinct) names the file of the structure it copies
        if e.get("duplicate_of") is not None:
            e["duplicate_of_file"] = file_of.get(e["duplicate_of"])
    fit_png = plot_pxrd_candidate(result.q, result.y, result.mask, ranked[0], out / "fit.png",
                                  title=f"best candidate: {ranked[0].crystal.formula}") if ranked else None
    if ranked:
        np.savetxt(out / "fit.xy", np.column_stack([result.q, result.y, result.mask.astype(float),
                                                    ranked[0].scale * np.asarray(ranked[0].y_calc)]),
                   header="Q (1/Å), input on the model grid, measured (1/0), best candidate (scaled)", fmt="%.6g")
    profile_png = None
    if ranked and ranked[0].profile is not None:
        pf = ranked[0].profile
        profile_png = plot_pxrd_fit(pf, out / "profile_fit.png", title=f"best candidate vs the measured pattern: "
                                                                       f"{pf.crystal.formula}")
        np.savetxt(out / "profile_fit.xy", np.column_stack([pf.x, pf.y_obs, pf.y_calc, pf.mask.astype(float)]),
                   header="2theta (deg), measured, best candidate (scale + background), fitted (1/0)", fmt="%.6g")
    rietveld_png = None
    if ranked and getattr(ranked[0], "rietveld", None) is not None:  # the best candidate's Rietveld fit
        rv = ranked[0].rietveld
        rietveld_png = plot_pxrd_fit(rv, out / "rietveld_fit.png",
                                     title=f"Rietveld: {rv.crystal.formula} {rv.params['phases'][0]['spacegroup']}, "
                                           f"GoF (χ²) = {rv.gof:.2f}")
        comps = [np.asarray(v) for v in rv.components.values()]
        np.savetxt(out / "rietveld_fit.xy", np.column_stack([rv.x, rv.y_obs, rv.y_calc, rv.y_obs - rv.y_calc, *comps]),
                   header="2theta (deg), measured, calculated, difference, " + ", ".join(rv.components), fmt="%.6g")
    summary = {**_jsonable(result.summary), **_jsonable(info or {}), "fit_plot": fit_png.name if fit_png else None,
               "profile_fit_plot": profile_png.name if profile_png else None,
               "rietveld_fit_plot": rietveld_png.name if rietveld_png else None,
               "rietveld_refined": sum(getattr(c, "rietveld", None) is not None for c in ranked), "candidates": entries}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")  # unique temp name, renamed
    write_html_report(out)  # report.html last: a pure function of the files above
    return summary
