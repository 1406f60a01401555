"""DeepStruc evaluation on a split of a generated set (CVAE and DAE alike).

For every record the PDF is mapped to a structure through the inference path (conditional prior
mean → decoder → existence probabilities → trilateration; back to Å with the record's own
unit-sphere scale, i.e. the exact inverse of the representation), and compared to the true cluster:

* ``rp``: Kjær et al.'s Rp = ‖x − x̂‖₂ between the input PDF x and the PDF x̂ simulated from the
  reconstructed structure (same Q range, Qdamp, Biso and δ2 as the record), both divided by their
  max |G| and taken on the stored r grid (3,000 points, 0-30 Å, as the authors' files);
* ``pearson``: Pearson r of the same two curves;
* ``count_ok``: predicted atom count == true count;
* ``rmsd``: Å, after optimal assignment + superposition (:func:`trilaterate.rmsd_aligned`).

``refit`` (optional): a callable ``(positions Å, r, G_in) -> G_calc`` (e.g. a refinement of scale,
expansion and Biso against the input PDF) gives ``rp_refit`` / ``pearson_refit`` as well. It may
instead return a dict ``{suffix: G_calc or (G_calc, refined positions Å)}`` (several refinements of
one record at once): each gives ``rp_<suffix>`` / ``pearson_<suffix>``, and ``rmsd_<suffix>`` (Å, to the
true structure) when positions are returned.

The *shuffled-PDF control* decodes each record from another record's PDF (a seeded derangement)
and scores it against the first record: what a model that ignores its input would reach.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from nanosolve.datasets.splits import derangement  # the shuffled-PDF control's permutation
from nanosolve.errors import InputError
from nanosolve.models.deepstruc.config import DeepStrucConfig
from nanosolve.models.deepstruc.model import DeepStruc
from nanosolve.models.deepstruc.pdf import cluster_pdf, default_r_grid
from nanosolve.models.deepstruc.representation import satellites, to_unit_sphere
from nanosolve.models.deepstruc.sample import decode_latents, model_r_grid, unit_nn_distance
from nanosolve.models.deepstruc.trilaterate import rmsd_aligned, trilaterate
from nanosolve.scattering.plot import save_figure

__all__ = ["prior_means", "reconstruct_unit", "evaluate_split", "derangement", "latent_map", "interpolate",
           "normalized_rp", "METRICS"]

METRICS = ("rp", "pearson", "count_ok", "rmsd")
REFIT_METRICS = ("rp_refit", "pearson_refit")


def _store_grid(store) -> np.ndarray:
    r = store.attrs["r"]
    return default_r_grid(r["rmax"], r["n_r"])


def _model_pdfs(pdfs: np.ndarray, r_store: np.ndarray, config: DeepStrucConfig) -> np.ndarray:
    grid = model_r_grid(config)
    return np.stack([np.interp(grid, r_store, g) for g in np.atleast_2d(pdfs)])


@torch.no_grad()
def prior_means(model: DeepStruc, pdfs_model_grid) -> np.ndarray:
    """[B, n_r] PDFs on the model grid → prior means [B, H]."""
    mu, _ = model.prior(torch.as_tensor(np.asarray(pdfs_model_grid), dtype=torch.float32))
    return mu.numpy().astype(np.float64)


def reconstruct_unit(model: DeepStruc, config: DeepStrucConfig, z) -> list[np.ndarray]:
    """Latents [B, H] → unit-sphere clusters (list of [n_b, 3]; rows with existence p > 0.5)."""
    feats, probs = decode_latents(model, z)
    sats = satellites(config.n_satellites)
    out = []
    for f, p in zip(feats, probs):
        mask = p > 0.5
        out.append(trilaterate(f, sats, mask=mask) if mask.any() else np.zeros((0, 3)))
    return out


def normalized_rp(x, x_hat) -> tuple[float, float]:
    """(Rp, Pearson r) of two PDFs after dividing each by its max |G|."""
    x = np.asarray(x, float)
    x_hat = np.asarray(x_hat, float)
    xn = x / max(np.abs(x).max(), 1e-300)
    xh = x_hat / max(np.abs(x_hat).max(), 1e-300)
    rp = float(np.linalg.norm(xn - xh))
    pearson = float(np.corrcoef(xn, xh)[0, 1]) if np.std(xh) > 0 else 0.0
    return rp, pearson


def _score(pred_unit: np.ndarray, truth: np.ndarray, meta: dict, x_in: np.ndarray, r: np.ndarray, settings: dict,
           with_rmsd: bool, scale: float, refit=None) -> dict:
    n_true = truth.shape[0]
    out = {"n_pred": int(pred_unit.shape[0]), "n_true": int(n_true), "count_ok": float(pred_unit.shape[0] == n_true)}
    if pred_unit.shape[0] < 2:
        worst = float(np.linalg.norm(x_in / np.abs(x_in).max()))
        out.update(rp=worst, pearson=0.0, rmsd=float("nan"))
        if refit is not None:
            out.update(rp_refit=worst, pearson_refit=0.0)
            out["_no_refit"] = worst  # other suffixes are filled in by evaluate_split
        return out
    pred = pred_unit * float(scale)
    x_hat = cluster_pdf(pred, r=r, qmin=settings["qmin"], qmax=settings["qmax"], qdamp=settings["qdamp"],
                        biso=float(meta["biso"]), delta2=float(meta["delta2"]))
    out["rp"], out["pearson"] = normalized_rp(x_in, x_hat)
    # alignment needs >= 3 atoms on both sides (principal axes); 2-atom clusters get no RMSD
    ok = with_rmsd and min(pred.shape[0], n_true) >= 3
    out["rmsd"] = rmsd_aligned(pred, truth, n_random=0) if ok else float("nan")
    if refit is not None:
        fitted = refit(pred, r, x_in)
        for suffix, val in (fitted.items() if isinstance(fitted, dict) else [("refit", fitted)]):
            g_fit, pos = val if isinstance(val, tuple) else (val, None)
            out[f"rp_{suffix}"], out[f"pearson_{suffix}"] = normalized_rp(x_in, g_fit)
            if pos is not None:
                out[f"rmsd_{suffix}"] = rmsd_aligned(pos, truth, n_random=0) if ok else float("nan")
    return out


def evaluate_split(model: DeepStruc, config: DeepStrucConfig, store, indices, control_seed: int = 0,
                   rmsd: bool = True, progress=None, refit=None) -> dict:
    """Metrics of ``model`` on the records ``indices`` of a DeepStruc store, with the shuffled control.

    Returns ``{"model": {metric: mean}, "control": {...}, "per_record": {"model": [...], "control": [...]},
    "n": B, "seconds_per_structure": s}``; metrics: :data:`METRICS` (rmsd in Å, count_ok a fraction),
    plus :data:`REFIT_METRICS` with ``refit`` (see module docstring).
    """
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size < 2:
        raise InputError("evaluation needs at least two records")
    model.eval()
    settings = store.attrs["settings"]
    r = _store_grid(store)
    metas = store.meta_table()
    recs = [store.read(int(i), fields=("positions", "pdf")) for i in idx]
    pdfs = np.stack([np.asarray(rec["pdf"], float) for rec in recs])
    t0 = time.perf_counter()
    z = prior_means(model, _model_pdfs(pdfs, r, config))
    units = reconstruct_unit(model, config, z)
    perm = derangement(idx.size, control_seed)
    per = {"model": [], "control": []}
    for j, i in enumerate(idx):
        truth = np.asarray(recs[j]["positions"], float)
        scale = to_unit_sphere(truth)[1]
        per["model"].append(_score(units[j], truth, metas[int(i)], pdfs[j], r, settings, rmsd, scale, refit))
        per["control"].append(_score(units[perm[j]], truth, metas[int(i)], pdfs[j], r, settings, rmsd, scale, refit))
        if progress is not None:
            progress(j + 1, idx.size)
    seconds = time.perf_counter() - t0

    keys = list(METRICS + (REFIT_METRICS if refit is not None else ()))
    for row in per["model"] + per["control"]:
        keys += [k for k in row if k not in keys and k.split("_")[0] in ("rp", "pearson", "rmsd")]
    for row in per["model"] + per["control"]:  # < 2 atoms decoded: nothing to refine, worst scores
        worst = row.pop("_no_refit", None)
        if worst is not None:
            for k in keys:
                row.setdefault(k, worst if k.startswith("rp_") else 0.0 if k.startswith("pearson_") else float("nan"))

    def agg(rows):
        return {m: float(np.nanmean([row[m] for row in rows])) for m in keys}

    return {"model": agg(per["model"]), "control": agg(per["control"]), "per_record": per, "n": int(idx.size),
            "seconds_per_structure": seconds / idx.size, "kind": config.kind}


def latent_map(model: DeepStruc, config: DeepStrucConfig, store, indices, path: str | os.PathLike,
               title: str = "") -> Path:
    """PNG of the prior means of the PDFs (first two latent dims, PCA if H > 2) coloured by atom count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.asarray(indices, dtype=np.int64)
    metas = store.meta_table()
    pdfs = np.stack([np.asarray(store.read(int(i), fields=("pdf",))["pdf"], float) for i in idx])
    z = prior_means(model, _model_pdfs(pdfs, _store_grid(store), config))
    if z.shape[1] > 2:
        zc = z - z.mean(0)
        z = zc @ np.linalg.svd(zc, full_matrices=False)[2][:2].T
    n = np.array([metas[int(i)]["n_atoms"] for i in idx])
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1] if z.shape[1] > 1 else np.zeros(len(z)), c=n, cmap="viridis", s=8)
    fig.colorbar(sc, ax=ax, label="number of atoms")
    ax.set_xlabel("z₁ (prior mean)")
    ax.set_ylabel("z₂ (prior mean)")
    ax.set_title(title or f"DeepStruc {config.kind} latent space ({len(idx)} PDFs)")
    return save_figure(fig, path)


def interpolate(model: DeepStruc, config: DeepStrucConfig, pdf_a, pdf_b, element: str, out_dir: str | os.PathLike,
                n_steps: int = 7, r=None) -> list:
    """Structures along the straight line between the prior means of two PDFs.

    Args:
        pdf_a, pdf_b: [n] G(r) on ``r`` (default the 0-30 Å, 3,000-point grid).
        element: metal of the written structures (sets the nearest-neighbour distance).
        out_dir: receives ``interp_00.xyz`` … and ``interpolation.png`` (xy projections).

    Returns:
        list of Particles (``properties['t']`` in [0, 1], ``z``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanosolve.structures.elements import metallic_radius
    from nanosolve.structures.io import write_structure
    from nanosolve.structures.particle import Particle

    if n_steps < 2:
        raise InputError("interpolation needs at least 2 steps")
    pdfs = np.stack([np.asarray(pdf_a, float), np.asarray(pdf_b, float)])
    r = default_r_grid(30.0, pdfs.shape[1]) if r is None else np.asarray(r, float)
    za, zb = prior_means(model, _model_pdfs(pdfs, r, config))
    ts = np.linspace(0.0, 1.0, int(n_steps))
    z = np.stack([(1 - t) * za + t * zb for t in ts])
    units = reconstruct_unit(model, config, z)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nn = 2.0 * metallic_radius(element)
    parts = []
    fig, axes = plt.subplots(1, len(ts), figsize=(2.2 * len(ts), 2.6))
    for k, (t, u) in enumerate(zip(ts, units)):
        ax = axes[k]
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
        if u.shape[0] < 2:
            ax.set_title(f"t={t:.2f}\n<2 atoms", fontsize=8)
            continue
        x = u * (nn / unit_nn_distance(u))
        x = x - x.mean(0)
        p = Particle(x, [element] * len(x), name=f"interp_{k:02d}", properties={"t": float(t), "z": z[k].tolist()})
        write_structure(p, out_dir / f"interp_{k:02d}.xyz")
        parts.append(p)
        order = np.argsort(x[:, 2])
        ax.scatter(x[order, 0], x[order, 1], c=x[order, 2], cmap="copper", s=18, edgecolors="k", linewidths=0.3)
        ax.set_title(f"t={t:.2f}\n{len(x)} atoms", fontsize=8)
    fig.suptitle(f"DeepStruc {config.kind}: latent interpolation (xy projection, colour = z)", fontsize=9)
    save_figure(fig, out_dir / "interpolation.png", dpi=110)
    return parts
