"""CrystalNet evaluation as in Guo et al., plus the density -> atoms step the paper left open.

For each evaluated crystal (test split):

* **paper score**: 50³ predictions from 5 latent draws z ~ q(z | pattern, formula); SSIM (window 7,
  data range of the truth) and PSNR of the best over 24 cube rotations × 5 draws
  (:func:`metrics.best_over_rotations_and_samples`);
* **conditions** (posterior-mean latent, best over the 24 rotations, one row each, like the
  paper's Table 2): ``full`` (pattern + formula), ``ratios_removed`` (every element of the
  formula at equal fraction), ``element_dropped`` (one element, chosen at random with a fixed
  seed, removed; crystals of one element are skipped), ``no_formula`` (zero composition
  vector), ``shuffled_pattern`` (another test crystal's pattern, the true formula: a control -
  if the pattern matters, this must score clearly below ``full``);
* **decoding**: :func:`peaks.density_to_crystal` on the posterior-mean map (e⁻/Å³) with the true
  lattice (the model predicts the density on the fractional grid, not the cell) and the true
  composition; StructureMatcher (ltol 0.3, stol 0.5, angle_tol 10°) against the truth, and the
  R_wp of the re-simulated PXRD (Mo Kα, 2θ 5-60°, Gaussian FWHM 0.1°). The same decoding of the
  *true* density is reported as the decoder's ceiling.

R_wp = sqrt(Σ w (y_t - s y_d)² / Σ w y_t²), w = 1/y_t, y = profile + 1 % of its maximum as a flat
background (so w stays finite), s the least-squares scale.
"""

from __future__ import annotations

import re
import time
from typing import Callable

import numpy as np

from nanosolve.errors import InputError
from nanosolve.models.crystalnet.dataset import CrystalNetData
from nanosolve.models.crystalnet.inputs import MO_KA
from nanosolve.models.crystalnet.metrics import SSIMReference, best_over_rotations_and_samples, cube_rotations, rotate_grid
from nanosolve.models.crystalnet.model import CrystalNet
from nanosolve.models.crystalnet.train import predict_grids

CONDITIONS = ("full", "ratios_removed", "element_dropped", "no_formula", "shuffled_pattern")
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
    """Scale-fitted weighted profile R factor (see the module docstring), 0 = identical shapes."""
    yt = np.asarray(y_true, dtype=np.float64)
    ym = np.asarray(y_model, dtype=np.float64)
    if yt.shape != ym.shape or yt.size == 0:
        raise InputError(f"profiles must have one non-empty shape, got {yt.shape} and {ym.shape}")
    yt = yt / max(yt.max(), 1e-300)
    ym = ym / max(ym.max(), 1e-300)
    yt, ym = yt + background, ym + background
    w = 1.0 / yt
    s = float(np.sum(w * yt * ym) / np.sum(w * ym * ym))
    return float(np.sqrt(np.sum(w * (yt - s * ym) ** 2) / np.sum(w * yt * yt)))


def resimulated_rwp(decoded, truth) -> float:
    """R_wp between the Mo Kα patterns (2θ 5-60°, FWHM 0.1°) of two crystals."""
    from nanosolve.scattering.bragg import simulate_xrd

    grid = np.arange(5.0, 60.0, 0.02)
    a = simulate_xrd(truth, MO_KA, grid=grid, fwhm=0.1)
    b = simulate_xrd(decoded, MO_KA, grid=grid, fwhm=0.1)
    return rwp(a.y, b.y)


def decode_and_score(rho: np.ndarray, truth) -> dict:
    """Decode a density (e⁻/Å³) on ``truth``'s lattice with its composition; match + R_wp."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from nanosolve.models.crystalnet.peaks import density_to_crystal

    try:
        decoded = density_to_crystal(rho, truth.lattice, truth.composition)
    except InputError as err:
        return {"match": False, "rwp": float("nan"), "n_atoms": 0, "error": str(err)}
    match = bool(StructureMatcher(**MATCHER).fit(decoded.to_pymatgen(), truth.to_pymatgen()))
    species_ok = sorted(decoded.species) == sorted(truth.species)
    return {"match": match, "species_ok": species_ok, "rwp": resimulated_rwp(decoded, truth), "n_atoms": len(decoded)}


# ---- evaluation ------------------------------------------------------------------------------
def _best_rotation(ref: SSIMReference, pred: np.ndarray) -> tuple[float, float, np.ndarray]:
    best = (-np.inf, None)
    for rot in cube_rotations():
        cand = rotate_grid(pred, rot)
        if cand.shape != ref.truth.shape:
            continue
        s = ref.ssim(cand)
        if s > best[0]:
            best = (s, cand)
    return best[0], ref.psnr(best[1]), best[1]


def map_errors(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Metrics that empty space cannot flatter: relative L1 Σ|ρ̂ - ρ| / Σρ (0 = perfect, 1 = an
    all-zero map) and the Pearson correlation of the voxel values (0 for a constant map)."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(truth, dtype=np.float64).ravel()
    rel_l1 = float(np.abs(p - t).sum() / max(np.abs(t).sum(), 1e-300))
    corr = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    return {"rel_l1": rel_l1, "corr": corr}


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


def evaluate_model(model: CrystalNet, data: CrystalNetData, indices=None, n_samples: int = 5,
                   conditions=CONDITIONS, decode: bool = True, seed: int = 0,
                   progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Score ``model`` on ``data[indices]`` (default: the test split). See the module docstring.

    Returns:
        {'paper_score': {'ssim': summary, 'psnr': summary}, 'conditions': {name: {'ssim', 'psnr'}},
        'decode': {...}, 'rows': [per-crystal dicts], 'seconds': float}; a summary is
        {n, mean, median, std}.
    """
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise InputError(f"unknown evaluation conditions {sorted(unknown)}; use {', '.join(CONDITIONS)}")
    idx = np.asarray(data.split["test"] if indices is None else indices, dtype=np.int64)
    if idx.size == 0:
        raise InputError("nothing to evaluate (empty index list)")
    scale = float(model.config.extra.get("density_scale", 1.0))
    rng = np.random.default_rng(seed)
    # shuffled control: a random cyclic derangement (each crystal gets another one's pattern)
    order = rng.permutation(idx.size)
    shuffled_src = np.empty(idx.size, dtype=int)
    shuffled_src[order] = np.roll(order, -1)
    t0 = time.monotonic()
    rows = []
    for k, i in enumerate(idx):
        truth_c = data.crystal(i)
        truth = data.density(i).astype(np.float64)
        ref = SSIMReference(truth)
        xrd, comp = data.xrd[i], data.comp[i]
        row = {"index": int(i), "id": data.records[i]["id"], "formula": data.records[i]["formula"],
               "source": data.records[i]["source"]}
        if n_samples:
            samples = predict_grids(model, xrd, comp, n_samples=n_samples)[0] * scale
            match, best_k = best_over_rotations_and_samples(samples, truth)
            row.update(paper_ssim=match.ssim, paper_psnr=match.psnr)
            row.update({f"paper_{key}": v for key, v in map_errors(rotate_grid(samples[best_k], match.rotation), truth).items()})
        inputs = {"full": (xrd, comp), "ratios_removed": (xrd, ratios_removed(comp)),
                  "element_dropped": (xrd, element_dropped(comp, rng)),
                  "no_formula": (xrd, np.zeros_like(comp)),
                  "shuffled_pattern": (data.xrd[idx[shuffled_src[k]]], comp)}
        names = [c for c in conditions if inputs[c][1] is not None]
        if names:
            grids = predict_grids(model, np.stack([inputs[c][0] for c in names]),
                                  np.stack([inputs[c][1] for c in names])) * scale
            for c, g in zip(names, grids):
                row[f"{c}_ssim"], row[f"{c}_psnr"], best = _best_rotation(ref, g)
                row.update({f"{c}_{key}": v for key, v in map_errors(best, truth).items()})
                if c == "full" and decode:
                    d = decode_and_score(g, truth_c)
                    row.update({f"decode_{key}": v for key, v in d.items()})
        if decode:
            d = decode_and_score(truth, truth_c)
            row.update({f"oracle_{key}": v for key, v in d.items() if key in ("match", "rwp")})
        # trivial baselines: SSIM with the truth's data range is dominated by empty space
        zero = np.zeros_like(truth)
        row.update(zero_map_ssim=ref.ssim(zero), zero_map_psnr=ref.psnr(zero))
        rows.append(row)
        if progress:
            progress(k + 1, idx.size, row)

    res = {"n": int(idx.size), "n_samples": n_samples, "seconds": round(time.monotonic() - t0, 1),
           "paper_score": {m: _summary(r.get(f"paper_{m}") for r in rows) for m in ("ssim", "psnr", "rel_l1", "corr")},
           "conditions": {c: {m: _summary(r.get(f"{c}_{m}") for r in rows) for m in ("ssim", "psnr", "rel_l1", "corr")}
                          for c in conditions},
           "zero_map": {"ssim": _summary(r["zero_map_ssim"] for r in rows),
                        "psnr": _summary(r["zero_map_psnr"] for r in rows)},
           "rows": rows}
    if decode:
        dec = [r for r in rows if "decode_match" in r]
        res["decode"] = {
            "n": len(dec),
            "match_rate": float(np.mean([r["decode_match"] for r in dec])) if dec else float("nan"),
            "species_ok_rate": float(np.mean([bool(r.get("decode_species_ok")) for r in dec])) if dec else float("nan"),
            "rwp": _summary(r["decode_rwp"] for r in dec),
            "oracle_match_rate": float(np.mean([r["oracle_match"] for r in rows])),
            "oracle_rwp": _summary(r["oracle_rwp"] for r in rows),
        }
    return res


def by_source(results: dict) -> dict:
    """{source: {n, full/shuffled/zero SSIM means, full/shuffled corr means}} over the rows, source
    being the data set a crystal came from (``perov_5``, ``carbon_24``, ``aflow``): the pattern is
    needed where one formula admits several structures (AFLOW substitutions), hardly for perovskites."""
    groups: dict[str, list[dict]] = {}
    for r in results["rows"]:
        groups.setdefault(re.split(r"[:/]", str(r.get("source", "?")))[0], []).append(r)
    out = {}
    for name, rows in sorted(groups.items()):
        out[name] = {"n": len(rows)}
        for key in ("full_ssim", "shuffled_pattern_ssim", "zero_map_ssim", "full_corr", "shuffled_pattern_corr"):
            v = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
            out[name][key] = float(np.mean(v)) if v else float("nan")
    return out


def source_table(results: dict) -> list[str]:
    """Markdown lines: the posterior-mean SSIM and voxel correlation per source, real pattern vs
    shuffled pattern vs the all-zero map."""
    lines = ["| source | n | SSIM full | SSIM shuffled pattern | SSIM zero map | corr full | corr shuffled pattern |",
             "|---|---|---|---|---|---|---|"]
    for name, v in by_source(results).items():
        lines.append(f"| {name} | {v['n']} | {v['full_ssim']:.3f} | {v['shuffled_pattern_ssim']:.3f} | "
                     f"{v['zero_map_ssim']:.3f} | {v['full_corr']:.3f} | {v['shuffled_pattern_corr']:.3f} |")
    return lines


def format_table(results: dict, system: str) -> str:
    """Markdown table of one model's results next to the paper's numbers."""
    paper = PAPER.get(system, {})
    ps = results["paper_score"]
    dash = "–"
    lines = [f"| {system} (n = {results['n']}) | SSIM mean | SSIM median | PSNR dB mean | rel. L1 | corr |",
             "|---|---|---|---|---|---|",
             f"| paper (Guo et al.) | {paper.get('ssim', float('nan')):.3f} | {dash} | {paper.get('psnr', float('nan')):.1f} "
             f"| {dash} | {dash} |"]
    if ps["ssim"].get("n"):
        lines.append(f"| nanosolve, best of 24 rot × {results['n_samples']} samples | {ps['ssim']['mean']:.3f} | "
                     f"{ps['ssim']['median']:.3f} | {ps['psnr']['mean']:.1f} | {ps['rel_l1']['mean']:.3f} | "
                     f"{ps['corr']['mean']:.3f} |")
    for c, v in results["conditions"].items():
        if v["ssim"].get("n"):
            lines.append(f"| {c.replace('_', ' ')} (mean latent, n = {v['ssim']['n']}) | {v['ssim']['mean']:.3f} | "
                         f"{v['ssim']['median']:.3f} | {v['psnr']['mean']:.1f} | {v['rel_l1']['mean']:.3f} | "
                         f"{v['corr']['mean']:.3f} |")
    z = results.get("zero_map")
    if z and z["ssim"].get("n"):
        lines.append(f"| baseline: all-zero map | {z['ssim']['mean']:.3f} | {z['ssim']['median']:.3f} | "
                     f"{z['psnr']['mean']:.1f} | 1.000 | 0.000 |")
    lines += ["", *source_table(results)]
    if "decode" in results:
        d = results["decode"]
        lines.append("")
        lines.append(f"decoded structures ({system}): StructureMatcher match {d['match_rate']:.1%}, species right "
                     f"{d['species_ok_rate']:.1%}, median R_wp {d['rwp'].get('median', float('nan')):.3f}; decoding the "
                     f"true density: match {d['oracle_match_rate']:.1%}, median R_wp "
                     f"{d['oracle_rwp'].get('median', float('nan')):.3f}")
    return "\n".join(lines)


__all__ = ["evaluate_model", "format_table", "by_source", "source_table", "select_indices", "decode_and_score",
           "resimulated_rwp", "rwp", "ratios_removed", "element_dropped", "CONDITIONS", "PAPER"]
