"""CrystalNet evaluation: blind choices only, controls beside every number, metrics that separate them.

For each evaluated crystal (a named part of the split, normally ``test``) every map is scored in the
setting the model produced it - no rotation, shift or sample is ever chosen against the truth:

* **model, posterior mean**: the map of the mean latent of q(z | pattern, formula);
* **model, best re-simulated fit** (blind sample choice): among the posterior mean and ``n_samples``
  latent draws, the map whose decoded atoms (true lattice and composition, see below) re-simulate
  the INPUT pattern best (R_wp of the Gaussian-broadened 1,024-bin sticks, :func:`fit_to_input`);
* **controls**: ``zero map``; ``mean map`` (mean of the training densities, :func:`mean_density`);
  ``shuffled pattern`` (posterior mean with another evaluated crystal's pattern, the true formula);
* **ablations** (posterior mean): formula ratios removed, one element dropped, no formula.

Metrics per map: SSIM / PSNR of the density (the paper's, dominated by empty space: a zero map
scores ~0.95), SSIM / PSNR / correlation of the density minus the mean map and the skill over the
mean map 1 - Σ(ρ̂ - ρ)² / Σ(ρ̄ - ρ)² (:func:`metrics.residual_scores`),
rel. L1 and voxel correlation (:func:`map_errors`), and the atoms decoded from the map
(:func:`peaks.density_to_crystal` with the true lattice - a cubic pattern indexes its own cell - and
the true composition): atom-site recall / precision within 0.5 Å with species
(:func:`metrics.site_scores`) and the StructureMatcher match rate. The summary states, per metric,
the gap model - best control. The decoding of the *true* density is the decoder's ceiling.

R_wp = sqrt(Σ w (y_t - s y_d)² / Σ w y_t²), w = 1/y_t, y = profile + 1 % of its maximum as a flat
background (so w stays finite), s the least-squares scale (:func:`rwp`, which is
:func:`nanosolve.scattering.agreement.r_wp_shape`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np

from nanosolve.datasets.splits import derangement
from nanosolve.errors import InputError
from nanosolve.models.crystalnet.dataset import CrystalNetData
from nanosolve.models.crystalnet.inputs import MO_KA, xrd_vector
from nanosolve.models.crystalnet.metrics import (
    SSIMReference,
    residual_scores,
    site_scores,
)
from nanosolve.models.crystalnet.model import CrystalNet
from nanosolve.models.crystalnet.train import predict_grids
from nanosolve.scattering.agreement import r_wp_shape

ABLATIONS = ("ratios_removed", "element_dropped", "no_formula")
MODEL_ROWS = ("model_mean", "model_best_fit")
CONTROLS = ("zero_map", "mean_map", "shuffled_pattern")
ROWS = MODEL_ROWS + CONTROLS + ABLATIONS
LABELS = {"model_mean": "model, posterior mean", "model_best_fit": "model, best re-simulated fit (blind)",
          "zero_map": "control: all-zero map", "mean_map": "control: mean training density",
          "shuffled_pattern": "control: shuffled pattern (another crystal's, true formula)",
          "ratios_removed": "ablation: formula ratios removed", "element_dropped": "ablation: one element dropped",
          "no_formula": "ablation: no formula"}
#: metric -> True when higher is better
METRICS = {"ssim": True, "psnr": True, "ssim_res": True, "psnr_res": True, "corr_res": True, "skill": True,
           "rel_l1": False, "corr": True,
           "site_recall": True, "site_precision": True, "match": True}
SITE_TOL = 0.5  # Å
PAPER = {"cubic": {"ssim": 0.934, "psnr": 43.0}, "trigonal": {"ssim": 0.741, "psnr": 27.8}}
MATCHER = {"ltol": 0.3, "stol": 0.5, "angle_tol": 10}


# ---- composition ablations -------------------------------------------------------------------
def ratios_removed(comp: np.ndarray) -> np.ndarray:
    """[118] the same elements at equal fractions."""
    present = comp > 0
    out = np.zeros_like(comp)
    out[present] = 1.0 / present.sum()
    return out


def element_dropped(comp: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """[118] one random element removed and the rest renormalised; None for a one-element formula."""
    present = np.flatnonzero(comp > 0)
    if present.size < 2:
        return None
    out = comp.copy()
    out[rng.choice(present)] = 0.0
    return out / out.sum()


# ---- decoding --------------------------------------------------------------------------------
def rwp(y_true: np.ndarray, y_model: np.ndarray, background: float = 0.01) -> float:
    """Scale-fitted weighted profile R factor (see the module docstring), 0 = identical shapes:
    :func:`nanosolve.scattering.agreement.r_wp_shape`."""
    return r_wp_shape(y_true, y_model, background)


def resimulated_rwp(decoded, truth) -> float:
    """R_wp between the Mo Kα patterns (2θ 5-60°, FWHM 0.1°) of two crystals."""
    from nanosolve.scattering.bragg import simulate_xrd

    grid = np.arange(5.0, 60.0, 0.02)
    a = simulate_xrd(truth, MO_KA, grid=grid, fwhm=0.1)
    b = simulate_xrd(decoded, MO_KA, grid=grid, fwhm=0.1)
    return rwp(a.y, b.y)


def fit_to_input(decoded, xrd_input: np.ndarray, sigma_bins: float = 2.0) -> float:
    """R_wp of ``decoded``'s re-simulated 1,024-bin Mo Kα sticks against the model's input sticks, both
    broadened by a Gaussian of ``sigma_bins`` bins (0.35° at σ = 2) so near-misses count as near;
    inf for nothing decoded. Uses only the input: a blind way to choose among latent samples."""
    from scipy.ndimage import gaussian_filter1d

    if decoded is None or len(decoded) == 0:
        return float("inf")
    y_in = gaussian_filter1d(np.asarray(xrd_input, dtype=np.float64), sigma_bins, mode="constant")
    y_dec = gaussian_filter1d(xrd_vector(decoded, n_bins=y_in.size), sigma_bins, mode="constant")
    if y_dec.max() <= 0:
        return float("inf")
    return rwp(y_in, y_dec)


def decode(rho: np.ndarray, truth):
    """Atoms of a density (e⁻/Å³) on ``truth``'s lattice with its composition; None if no atom decodes."""
    from nanosolve.models.crystalnet.peaks import density_to_crystal

    try:
        return density_to_crystal(rho, truth.lattice, truth.composition)
    except InputError:
        return None


def decode_and_score(rho: np.ndarray, truth) -> dict:
    """Decode a density (e⁻/Å³) on ``truth``'s lattice with its composition; StructureMatcher match,
    species right, re-simulated R_wp, atom-site recall/precision within 0.5 Å."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    decoded = decode(rho, truth)
    if decoded is None:
        return {"match": False, "species_ok": False, "rwp": float("nan"), "n_atoms": 0,
                **{f"site_{k}": v for k, v in site_scores(None, truth, SITE_TOL).items() if k in ("recall", "precision")}}
    match = bool(StructureMatcher(**MATCHER).fit(decoded.to_pymatgen(), truth.to_pymatgen()))
    species_ok = sorted(decoded.species) == sorted(truth.species)
    sites = site_scores(decoded, truth, SITE_TOL)
    return {"match": match, "species_ok": species_ok, "rwp": resimulated_rwp(decoded, truth), "n_atoms": len(decoded),
            "site_recall": sites["recall"], "site_precision": sites["precision"]}


# ---- evaluation ------------------------------------------------------------------------------
def map_errors(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Metrics that empty space cannot flatter: relative L1 Σ|ρ̂ - ρ| / Σρ (0 = perfect, 1 = an
    all-zero map) and the Pearson correlation of the voxel values (0 for a constant map)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    rel_l1 = float(np.abs(p - t).sum() / max(np.abs(t).sum(), 1e-300))
    corr = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    return {"rel_l1": rel_l1, "corr": corr}


def score_map(pred: np.ndarray, truth: np.ndarray, truth_crystal, reference: np.ndarray, ref: SSIMReference | None = None,
              decode_atoms: bool = True) -> dict:
    """Every blind metric of one map (e⁻/Å³) against the truth, in the map's own setting."""
    ref = SSIMReference(truth) if ref is None else ref
    out = {"ssim": ref.ssim(pred), "psnr": ref.psnr(pred), **residual_scores(pred, truth, reference),
           **map_errors(pred, truth)}
    if decode_atoms:
        d = decode_and_score(pred, truth_crystal)
        out.update(match=float(d["match"]), site_recall=d["site_recall"], site_precision=d["site_precision"])
    return out


def _summary(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std())}


def select_indices(data: CrystalNetData, part: str = "test", n: int | None = None, seed: int = 0) -> np.ndarray:
    """Up to ``n`` indices of a split part, drawn at random (seeded) and sorted."""
    idx = np.asarray(data.split[part])
    if n is not None and n < idx.size:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    return idx


def mean_density(data: CrystalNetData, indices=None) -> np.ndarray:
    """[50, 50, 50] mean density (e⁻/Å³) of ``data[indices]`` (default: the training part): the control
    map that knows everything the training set shares and nothing about the crystal at hand."""
    idx = np.asarray(data.split["train"] if indices is None else indices, dtype=np.int64)
    if idx.size == 0:
        raise InputError("no crystal to average (empty index list)")
    total = None
    for i in idx:
        g = data.density(i).astype(np.float64)
        total = g if total is None else total + g
    return total / idx.size


def _gaps(summary: dict) -> dict:
    """{model row: {metric: model - best control}} (for rel. L1, lower is better: best = lowest)."""
    out = {}
    for m in MODEL_ROWS:
        out[m] = {}
        for metric, higher in METRICS.items():
            mv = summary.get(m, {}).get(metric, {}).get("mean")
            cv = [(summary[c][metric]["mean"], c) for c in CONTROLS
                  if summary.get(c, {}).get(metric, {}).get("n")]
            if mv is None or not cv:
                continue
            best, name = (max if higher else min)(cv)
            out[m][metric] = {"gap": float(mv - best), "best_control": name, "control": float(best)}
    return out


def summarise(rows: list[dict], names=ROWS) -> dict:
    """{row name: {metric: summary}} of per-crystal rows keyed ``<row>_<metric>``."""
    return {n: {m: _summary(r.get(f"{n}_{m}") for r in rows) for m in METRICS}
            for n in names if any(f"{n}_ssim" in r for r in rows)}


def evaluate_model(model: CrystalNet, data: CrystalNetData, indices=None, reference: np.ndarray | None = None,
                   n_samples: int = 5, ablations=ABLATIONS, decode_atoms: bool = True, seed: int = 0,
                   part: str = "test", progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Score ``model`` on ``data[indices]`` (default: the ``part`` split) blind, with controls; see the
    module docstring.

    Args:
        reference: the mean map [50, 50, 50] e⁻/Å³ (default: :func:`mean_density` of the training part).
        n_samples: latent draws beside the posterior mean for the blind best-fit choice (0: none).

    Returns:
        {'n', 'part', 'summary': {row: {metric: {n, mean, median, std}}}, 'gap': {model row: {metric:
        {gap, best_control, control}}}, 'decoder_ceiling': {...}, 'rows': [per-crystal dicts], 'seconds'}.
    """
    unknown = set(ablations) - set(ABLATIONS)
    if unknown:
        raise InputError(f"unknown ablations {sorted(unknown)}; use {', '.join(ABLATIONS)}")
    idx = np.asarray(data.split[part] if indices is None else indices, dtype=np.int64)
    if idx.size < 2:
        raise InputError("need at least two crystals (the shuffled-pattern control swaps their patterns)")
    reference = mean_density(data) if reference is None else np.asarray(reference, dtype=np.float64)
    scale = float(model.config.extra.get("density_scale", 1.0))
    rng = np.random.default_rng(seed)
    # shuffled control: each crystal gets another one's pattern (a seeded derangement, no fixed point)
    shuffled_src = derangement(idx.size, seed)
    t0 = time.monotonic()
    rows = []
    for k, i in enumerate(idx):
        truth_c = data.crystal(i)
        truth = data.density(i).astype(np.float64)
        ref = SSIMReference(truth)
        xrd, comp = data.xrd[i], data.comp[i]
        row = {"index": int(i), "id": data.records[i]["id"], "formula": data.records[i]["formula"],
               "source": data.records[i]["source"], "shuffled_from": int(idx[shuffled_src[k]])}
        inputs = {"model_mean": (xrd, comp), "shuffled_pattern": (data.xrd[idx[shuffled_src[k]]], comp),
                  "ratios_removed": (xrd, ratios_removed(comp)), "element_dropped": (xrd, element_dropped(comp, rng)),
                  "no_formula": (xrd, np.zeros_like(comp))}
        names = [c for c in ("model_mean", "shuffled_pattern", *ablations) if inputs[c][1] is not None]
        grids = dict(zip(names, predict_grids(model, np.stack([inputs[c][0] for c in names]),
                                              np.stack([inputs[c][1] for c in names])) * scale))
        grids["zero_map"] = np.zeros_like(truth)
        grids["mean_map"] = reference
        # blind sample choice: the candidate whose decoded atoms re-simulate the input best
        cands = [grids["model_mean"]]
        if n_samples:
            cands += list(predict_grids(model, xrd, comp, n_samples=n_samples)[0] * scale)
        fits = [fit_to_input(decode(g, truth_c), xrd) for g in cands]
        best = int(np.argmin(fits))
        grids["model_best_fit"] = cands[best]
        row.update(best_fit_choice=best, best_fit_rwp=float(fits[best]))
        for name, g in grids.items():
            row.update({f"{name}_{m}": v for m, v in score_map(g, truth, truth_c, reference, ref, decode_atoms).items()})
        if decode_atoms:
            d = decode_and_score(truth, truth_c)
            row.update(oracle_match=d["match"], oracle_rwp=d["rwp"], oracle_site_recall=d["site_recall"])
        rows.append(row)
        if progress:
            progress(k + 1, idx.size, row)
    summary = summarise(rows)
    res = {"n": int(idx.size), "part": part, "n_samples": n_samples, "site_tolerance_A": SITE_TOL,
           "seconds": round(time.monotonic() - t0, 1), "summary": summary, "gap": _gaps(summary),
           "by_source": by_source({"rows": rows}), "rows": rows}
    if decode_atoms:
        res["decoder_ceiling"] = {"match_rate": float(np.mean([r["oracle_match"] for r in rows])),
                                  "site_recall": _summary(r["oracle_site_recall"] for r in rows),
                                  "rwp": _summary(r["oracle_rwp"] for r in rows)}
    return res


def by_source(results: dict) -> dict:
    """{source: {n, row: {metric: mean}}} over the rows, source being the data set a crystal came from
    (``perov_5``, ``carbon_24``, ``aflow``): the pattern is needed where one formula admits several
    structures (AFLOW substitutions), hardly for perovskites."""
    groups: dict[str, list[dict]] = {}
    for r in results["rows"]:
        groups.setdefault(re.split(r"[:/]", str(r.get("source", "?")))[0], []).append(r)
    out = {}
    for name, rows in sorted(groups.items()):
        out[name] = {"n": len(rows)}
        for row_name, metrics in summarise(rows).items():
            out[name][row_name] = {m: v["mean"] for m, v in metrics.items() if v.get("n")}
    return out


_COLS = (("ssim", "SSIM", 3), ("psnr", "PSNR dB", 1), ("ssim_res", "SSIM of ρ − mean", 3),
         ("corr_res", "corr of ρ − mean", 3), ("skill", "skill over mean map", 3), ("corr", "corr", 3), ("site_recall", "site recall", 3),
         ("site_precision", "site precision", 3), ("match", "match", 3))


def _fmt(v, digits) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def format_table(results: dict, system: str) -> str:
    """Markdown: every row's means, then the gap model − best control, then per source."""
    s, n = results["summary"], results["n"]
    head = f"| {system}, {results['part']} (n = {n}) | " + " | ".join(c[1] for c in _COLS) + " |"
    lines = [head, "|---" * (len(_COLS) + 1) + "|"]
    for name, metrics in s.items():
        lines.append(f"| {LABELS[name]} | " + " | ".join(_fmt(metrics[m].get("mean"), d) for m, _, d in _COLS) + " |")
    for m_row in MODEL_ROWS:
        gaps = results["gap"].get(m_row, {})
        if gaps:
            lines.append(f"| **gap: {LABELS[m_row]} − best control** | "
                         + " | ".join(_fmt(gaps.get(m, {}).get("gap"), d) for m, _, d in _COLS) + " |")
    lines += ["", "| source | n | row | SSIM | corr of ρ − mean | skill | site recall | site precision |",
              "|---|---|---|---|---|---|---|---|"]
    for src, v in results["by_source"].items():
        for name in ("model_mean", "model_best_fit", "mean_map", "shuffled_pattern", "zero_map"):
            if name in v:
                r = v[name]
                lines.append(f"| {src} | {v['n']} | {LABELS[name]} | {_fmt(r.get('ssim'), 3)} | {_fmt(r.get('corr_res'), 3)} | "
                             f"{_fmt(r.get('skill'), 3)} | "
                             f"{_fmt(r.get('site_recall'), 3)} | {_fmt(r.get('site_precision'), 3)} |")
    if "decoder_ceiling" in results:
        c = results["decoder_ceiling"]
        lines += ["", (f"decoder ceiling (the true density decoded): match {c['match_rate']:.1%}, site recall "
                       f"{c['site_recall'].get('mean', float('nan')):.3f}, median R_wp "
                       f"{c['rwp'].get('median', float('nan')):.3f}")]
    return "\n".join(lines)


__all__ = [
    "ABLATIONS",
    "CONTROLS",
    "METRICS",
    "MODEL_ROWS",
    "PAPER",
    "ROWS",
    "by_source",
    "decode",
    "decode_and_score",
    "element_dropped",
    "evaluate_model",
    "fit_to_input",
    "format_table",
    "map_errors",
    "mean_density",
    "ratios_removed",
    "resimulated_rwp",
    "rwp",
    "score_map",
    "select_indices",
    "summarise",
]
