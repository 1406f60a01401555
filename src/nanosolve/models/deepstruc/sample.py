"""DeepStruc inference: a G(r) -> K candidate cluster structures (Particles, Å).

Steps: put G(r) on the model's r grid (linear interpolation; zero outside the data's r range), draw
K latent codes from the conditional prior p(z | PDF) (the model normalises the PDF by max |G|
exactly as in training), decode node features + existence probabilities, keep the rows with
p > 0.5 (the atom count), trilaterate them in unit-sphere units and rescale to Å so that the median
nearest-neighbour distance equals the element's (2 × metallic radius) or the PDF's first peak.
"""

from __future__ import annotations

import numpy as np
import torch

from nanosolve.errors import InputError
from nanosolve.models.deepstruc.config import DeepStrucConfig
from nanosolve.models.deepstruc.model import DeepStruc
from nanosolve.models.deepstruc.representation import nn_scale_from_pdf, satellites
from nanosolve.models.deepstruc.trilaterate import trilaterate
from nanosolve.structures.elements import is_metal, metallic_radius, normalize_symbol
from nanosolve.structures.particle import Particle

__all__ = ["unique", "model_r_grid", "pdf_on_model_grid", "check_element", "candidates", "decode_latents", "unit_nn_distance"]


def model_r_grid(config: DeepStrucConfig) -> np.ndarray:
    """[n_r] r grid (Å) the model reads: ``linspace(r_min, r_max, n_r)`` (``config.extra``, default 0-30 Å)."""
    extra = config.extra or {}
    return np.linspace(float(extra.get("r_min", 0.0)), float(extra.get("r_max", 30.0)), int(config.n_r))


def _as_r_g(pattern_or_pdf) -> tuple[np.ndarray, np.ndarray, object]:
    """(r Å, G(r), source) from a Pattern of kind gr or an (r, G) pair."""
    from nanosolve.scattering.pattern import Pattern

    if isinstance(pattern_or_pdf, Pattern):
        src = pattern_or_pdf.metadata.get("source")
        if pattern_or_pdf.kind != "gr" or pattern_or_pdf.x_unit != "r":
            raise InputError(f"DeepStruc needs a PDF G(r), got a {pattern_or_pdf.kind} pattern", src)
        return np.asarray(pattern_or_pdf.x, float), np.asarray(pattern_or_pdf.y, float), src
    try:
        r, g = pattern_or_pdf
    except (TypeError, ValueError):
        raise InputError("expected a Pattern of kind 'gr' or a pair (r, G)") from None
    return np.asarray(r, float).reshape(-1), np.asarray(g, float).reshape(-1), None


def pdf_on_model_grid(pattern_or_pdf, config: DeepStrucConfig, info: dict | None = None) -> np.ndarray:
    """G(r) resampled on :func:`model_r_grid` ([n_r]); InputError (naming the file) if the data are
    empty, flat or non-finite.

    Data that do not cover the model's grid are padded with G = 0 outside their r range (the model was
    trained on 0-30 Å; zero is what it reads beyond a cluster's diameter, and it normalises by max |G|, so
    padding changes no value it sees inside the data). ``info`` (a dict), if given, receives
    ``padded_below`` / ``padded_above`` (Å of the grid that were padded)."""
    r, g, src = _as_r_g(pattern_or_pdf)
    if r.size < 2 or r.size != g.size:
        raise InputError("the PDF holds fewer than two (r, G) points", src)
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(g))):
        raise InputError("the PDF holds non-finite values", src)
    order = np.argsort(r)
    r, g = r[order], g[order]
    grid = model_r_grid(config)
    slack = 0.5 * (grid[1] - grid[0])
    out = np.interp(grid, r, g, left=0.0, right=0.0)
    inside = (grid >= r[0] - slack) & (grid <= r[-1] + slack)
    out[~inside] = 0.0
    if info is not None:
        info["padded_below"] = float(max(0.0, r[0] - grid[0])) if r[0] > grid[0] + slack else 0.0
        info["padded_above"] = float(max(0.0, grid[-1] - r[-1])) if r[-1] < grid[-1] - slack else 0.0
    if np.abs(out).max() == 0:
        raise InputError("the PDF is zero everywhere", src)
    return out


def check_element(element: str) -> str:
    """Normalised symbol of a metal; InputError for unknown symbols and non-metals."""
    try:
        sym = normalize_symbol(element)
    except InputError:
        raise InputError(f"unknown element {element!r}") from None
    except Exception:  # pymatgen raises ValueError/KeyError for nonsense symbols
        raise InputError(f"unknown element {element!r}") from None
    if not is_metal(sym):
        raise InputError(f"{sym} is not a metal: DeepStruc solves mono-metallic nanoparticles only")
    return sym


def unit_nn_distance(x: np.ndarray) -> float:
    """Median nearest-neighbour distance of a cluster [n, 3] (its units)."""
    from scipy.spatial.distance import cdist

    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


@torch.no_grad()
def decode_latents(model: DeepStruc, z) -> tuple[np.ndarray, np.ndarray]:
    """Latents [K, H] -> (node features [K, max_atoms, F], existence probabilities [K, max_atoms])."""
    feats, logits = model.decode(torch.as_tensor(np.asarray(z), dtype=torch.float32))
    return feats.numpy().astype(np.float64), torch.sigmoid(logits).numpy().astype(np.float64)


def _structure(features: np.ndarray, probs: np.ndarray, config: DeepStrucConfig) -> tuple[np.ndarray, dict]:
    """Unit-sphere positions [n, 3] of one decoded sample (n = rows with p > 0.5) and trilateration info."""
    mask = probs > 0.5
    if mask.sum() == 0:
        return np.zeros((0, 3)), {"loss": float("nan")}
    x, info = trilaterate(features, satellites(config.n_satellites), mask=mask, return_info=True)
    return x, info


def candidates(model: DeepStruc, config: DeepStrucConfig, pattern_or_pdf, element: str, k: int = 20, seed: int = 0,
               length_scale: str | float = "element", use_mean_first: bool = True,
               dedupe: bool = True) -> list[Particle]:
    """K candidate structures for one PDF.

    Args:
        model, config: a trained DeepStruc (:func:`nanosolve.models.deepstruc.train.load_model`).
        pattern_or_pdf: a :class:`Pattern` of kind ``gr`` (r in Å) or a pair ``(r [n], G [n])``.
        element: the metal (its symbol goes on every atom; its metallic radius sets the length scale).
        k: number of latent samples (the DAE is deterministic: one candidate).
        seed: seed of the latent draws.
        length_scale: ``'element'`` (nearest-neighbour distance 2 × metallic radius), ``'pdf'``
            (first strong G(r) peak, :func:`nn_scale_from_pdf`) or a number: Å per unit-sphere unit.
        use_mean_first: the first candidate decodes the prior mean (the most probable code).
        dedupe: drop samples that decode to the same cluster as an earlier one (:func:`unique`).

    Returns:
        list of :class:`Particle` (positions Å, centred at the centroid) with ``properties``:
        ``z`` (latent, list), ``sample`` (index), ``n_atoms``, ``existence`` (``min_present``,
        ``max_absent``, ``n_uncertain`` = rows with 0.2 < p < 0.8, ``expected_count`` = Σp),
        ``trilateration_loss``, ``angstrom_per_unit``, ``copies`` (samples that gave this cluster). Samples that decode to fewer than 2 atoms are dropped.
    """
    if int(k) < 1:
        raise InputError(f"k must be >= 1, got {k}")
    sym = check_element(element)
    g = pdf_on_model_grid(pattern_or_pdf, config)
    r = model_r_grid(config)
    pdf = torch.as_tensor(g, dtype=torch.float32).unsqueeze(0)
    with torch.no_grad():
        mu, logvar = model.prior(pdf)
    mu = mu[0]
    if model.is_vae and int(k) > 1:
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn((int(k), mu.shape[-1]), generator=gen)
        z = mu + eps * torch.exp(0.5 * logvar[0])
        if use_mean_first:
            z[0] = mu
    else:
        z = mu.unsqueeze(0)
    feats, probs = decode_latents(model, z.numpy())
    out = []
    for i in range(feats.shape[0]):
        x, info = _structure(feats[i], probs[i], config)
        if x.shape[0] < 2:
            continue
        if isinstance(length_scale, (int, float)) and not isinstance(length_scale, bool):
            per_unit = float(length_scale)
        elif length_scale == "element":
            per_unit = 2.0 * metallic_radius(sym) / unit_nn_distance(x)
        elif length_scale == "pdf":
            per_unit = nn_scale_from_pdf(x, r, g)
        else:
            raise InputError(f"length_scale must be 'element', 'pdf' or a number, got {length_scale!r}")
        pos = x * per_unit
        pos = pos - pos.mean(axis=0)
        p = probs[i]
        present, absent = p[p > 0.5], p[p <= 0.5]
        out.append(Particle(pos, [sym] * len(pos), name=f"{sym}{len(pos)}_s{i:02d}", properties={
            "model": f"deepstruc-{config.kind}",
            "sample": i,
            "z": [float(v) for v in z[i]],
            "n_atoms": int(len(pos)),
            "existence": {"min_present": float(present.min()), "max_absent": float(absent.max()) if absent.size else 0.0,
                          "n_uncertain": int(((p > 0.2) & (p < 0.8)).sum()), "expected_count": float(p.sum())},
            "trilateration_loss": float(info["loss"]),
            "angstrom_per_unit": float(per_unit),
        }))
    if dedupe:
        out = unique(out)
    if not out:
        raise InputError("the model decoded no structure with at least two atoms from this PDF",
                         _as_r_g(pattern_or_pdf)[2])
    return out


def unique(particles: list[Particle], tol: float = 0.01) -> list[Particle]:
    """Keep the first of clusters that coincide: same atom count and sorted pair distances (in units of
    the median nearest-neighbour distance) equal to ``tol`` RMS. Latent samples near the prior mean
    often decode to one cluster; refining it once is enough. ``properties['copies']`` counts them."""
    from scipy.spatial.distance import pdist

    kept: list[tuple[Particle, np.ndarray]] = []
    for p in particles:
        sig = np.sort(pdist(p.positions)) / unit_nn_distance(p.positions)
        for q, qsig in kept:
            if qsig.size == sig.size and np.sqrt(np.mean((qsig - sig) ** 2)) < tol:
                q.properties["copies"] = q.properties.get("copies", 1) + 1
                break
        else:
            p.properties.setdefault("copies", 1)
            kept.append((p, sig))
    return [p for p, _ in kept]
