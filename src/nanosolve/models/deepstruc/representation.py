"""DeepStruc's structure representation: unit-sphere coordinates, satellites, node features, batches.

A cluster of N atoms (Å) becomes

1. **unit-sphere coordinates**: the atom nearest the centroid is moved to the origin and all
   coordinates are divided by ``scale`` = the largest distance of any atom from it, so the
   farthest atom lies on the unit sphere. ``x_Å = unit · scale + center`` inverts it exactly.
2. **atom order**: by distance from the origin atom (so the origin atom is row 0), ties (atoms
   in the same shell, common in symmetric clusters) by x, then y, then z, compared after
   rounding to 1e-6 so that float noise does not reorder them. The order is a pure function of
   the coordinates: the same cluster always gives the same rows.
3. **node features** [max_atoms, max_atoms + S]: row i = the distances (unit-sphere units) from
   atom i to every atom j in that order (the "assigned distance-matrix row", zero-padded to
   ``max_atoms``), then its distances to the S fixed satellites. Rows of absent atoms are zero
   and ``mask`` says which rows exist.

Satellites (:func:`satellites`): S points on the unit sphere from the golden-angle (Fibonacci)
spiral, z_k = 1 - (2k + 1)/S, φ_k = k·π(3 - √5), k = 0..S-1: deterministic, nearly uniform for
any S (4, 11, 100...) and never coplanar for S >= 4, so 4 distances fix a point in 3-D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.spatial.distance import cdist

from nanosolve.errors import InputError

__all__ = ["to_unit_sphere", "from_unit_sphere", "satellites", "atom_order", "node_features",
           "features_to_distances", "collate", "resample_pdf", "nn_scale_from_pdf"]

_TIE_DECIMALS = 6


def _positions(positions, name: str = "positions") -> np.ndarray:
    x = np.asarray(positions.detach().cpu().numpy() if isinstance(positions, torch.Tensor) else positions,
                   dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise InputError(f"{name} must have shape [N, 3], got {x.shape}")
    if x.shape[0] == 0:
        raise InputError(f"{name} holds no atoms")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} has non-finite coordinates")
    return x


def to_unit_sphere(positions) -> tuple[np.ndarray, float, np.ndarray]:
    """Centre on the atom nearest the centroid and scale the farthest atom onto the unit sphere.

    Args:
        positions: [N, 3] Å.

    Returns:
        (unit_positions [N, 3] (dimensionless; the origin atom is exactly at 0), scale (Å per
        unit; 1.0 for a single atom), center [3] Å (the origin atom's position)).
    """
    x = _positions(positions)
    centroid = x.mean(axis=0)
    origin = int(np.argmin(np.linalg.norm(x - centroid, axis=1)))
    center = x[origin].copy()
    shifted = x - center
    scale = float(np.linalg.norm(shifted, axis=1).max())
    if scale == 0.0:
        if x.shape[0] > 1:
            raise InputError("all atoms sit at the same position")
        scale = 1.0
    return shifted / scale, scale, center


def from_unit_sphere(unit_positions, scale: float, center=None) -> np.ndarray:
    """Inverse of :func:`to_unit_sphere`: [N, 3] unit coordinates -> Å (``unit · scale + center``)."""
    u = _positions(unit_positions, "unit_positions")
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive length in Å, got {scale}")
    out = u * float(scale)
    if center is not None:
        out = out + np.asarray(center, dtype=np.float64).reshape(1, 3)
    return out


def satellites(n: int) -> np.ndarray:
    """[n, 3] fixed points on the unit sphere (golden-angle spiral; see module docstring)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InputError(f"number of satellites must be a positive integer, got {n!r}")
    n = int(n)
    k = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * k + 1.0) / n
    rho = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def atom_order(unit_positions) -> np.ndarray:
    """[N] row order: by distance from the origin, ties by x, y, z (rounded to 1e-6)."""
    u = _positions(unit_positions, "unit_positions")
    r = np.round(np.linalg.norm(u, axis=1), _TIE_DECIMALS)
    rounded = np.round(u, _TIE_DECIMALS)
    return np.lexsort((rounded[:, 2], rounded[:, 1], rounded[:, 0], r))


def node_features(unit_positions, n_satellites: int = 11, max_atoms: int = 100,
                  order: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Node features of one cluster in unit-sphere coordinates.

    Args:
        unit_positions: [N, 3] (from :func:`to_unit_sphere`), N <= max_atoms.
        n_satellites: S.
        max_atoms: padded row count M.
        order: sort the atoms with :func:`atom_order` first (False: keep the given order).

    Returns:
        (features [M, M + S] float32: rows 0..N-1 = distances to the N atoms (cols 0..N-1, zero
        beyond) then to the S satellites; rows N.. are zero), mask [M] bool (True = atom).
    """
    u = _positions(unit_positions, "unit_positions")
    n = u.shape[0]
    if n > max_atoms:
        raise InputError(f"cluster has {n} atoms, more than max_atoms = {max_atoms}")
    if order:
        u = u[atom_order(u)]
    feats = np.zeros((max_atoms, max_atoms + n_satellites), dtype=np.float32)
    feats[:n, :n] = cdist(u, u)
    if n_satellites:
        feats[:n, max_atoms:] = cdist(u, satellites(n_satellites))
    mask = np.zeros(max_atoms, dtype=bool)
    mask[:n] = True
    return feats, mask


def features_to_distances(features, n_satellites: int, n_atoms: int | None = None):
    """Split features [M, M + S] into (pair distances [n, n] symmetrised, satellite distances [n, S])."""
    f = np.asarray(features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else features,
                   dtype=np.float64)
    m = f.shape[1] - n_satellites
    if f.ndim != 2 or m < 0 or f.shape[0] != m:
        raise InputError(f"features must be [M, M + {n_satellites}], got shape {f.shape}")
    n = m if n_atoms is None else int(n_atoms)
    pair = f[:n, :n]
    return 0.5 * (pair + pair.T), f[:n, m:]


def resample_pdf(g, r_from, n_r: int, rmax: float | None = None) -> np.ndarray:
    """G(r) [..., n_from] on ``r_from`` -> [..., n_r] on ``linspace(r_from[0], rmax, n_r)`` (linear interpolation)."""
    r_from = np.asarray(r_from, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    rmax = float(r_from[-1]) if rmax is None else float(rmax)
    r_to = np.linspace(float(r_from[0]), rmax, int(n_r))
    if g.shape[-1] == n_r and np.allclose(r_to, r_from):
        return g
    flat = g.reshape(-1, g.shape[-1])
    out = np.stack([np.interp(r_to, r_from, row) for row in flat])
    return out.reshape(*g.shape[:-1], int(n_r))


def collate(records: Sequence[Mapping], n_satellites: int = 11, max_atoms: int = 100, n_r: int | None = None,
            r: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Batch of data-set records (``positions`` [n, 3] Å, ``pdf`` [n_r0]) -> model tensors.

    Args:
        records: dicts with ``positions`` and ``pdf`` (as stored by :mod:`.data`).
        n_satellites, max_atoms: feature layout (see :func:`node_features`).
        n_r: PDF length the model takes; if it differs from the stored length the PDF is linearly
            resampled on ``linspace(r[0], r[-1], n_r)``, ``r`` being the stored grid (default 0-30 Å).

    Returns:
        ``pdf [B, n_r]`` float32, ``features [B, max_atoms, max_atoms + S]`` float32,
        ``mask [B, max_atoms]`` float32 (1 = atom), ``scale [B]`` float32 (Å per unit),
        ``n_atoms [B]`` int64.
    """
    if len(records) == 0:
        raise InputError("cannot collate an empty batch")
    pdfs, feats, masks, scales, counts = [], [], [], [], []
    for k, rec in enumerate(records):
        if "positions" not in rec or "pdf" not in rec:
            raise InputError(f"record {k} lacks 'positions' or 'pdf'")
        unit, scale, _ = to_unit_sphere(rec["positions"])
        f, m = node_features(unit, n_satellites, max_atoms)
        feats.append(f)
        masks.append(m)
        scales.append(scale)
        counts.append(unit.shape[0])
        pdfs.append(np.asarray(rec["pdf"], dtype=np.float64).reshape(-1))
    lengths = {p.size for p in pdfs}
    if len(lengths) != 1:
        raise InputError(f"PDFs of one batch must share a grid, got lengths {sorted(lengths)}")
    pdf = np.stack(pdfs)
    if n_r is not None and n_r != pdf.shape[1]:
        grid = np.linspace(0.0, 30.0, pdf.shape[1]) if r is None else np.asarray(r, dtype=np.float64)
        pdf = resample_pdf(pdf, grid, n_r)
    return {
        "pdf": torch.as_tensor(pdf, dtype=torch.float32),
        "features": torch.as_tensor(np.stack(feats)),
        "mask": torch.as_tensor(np.stack(masks), dtype=torch.float32),
        "scale": torch.as_tensor(scales, dtype=torch.float32),
        "n_atoms": torch.as_tensor(counts, dtype=torch.int64),
    }


def nn_scale_from_pdf(unit_positions, r, g, rmin: float = 1.5) -> float:
    """Å per unit for a unit-sphere cluster, from the first strong peak of its PDF G(r).

    The nearest-neighbour peak position (the first maximum above half the global maximum, for
    r > ``rmin`` Å) divided by the median nearest-neighbour distance of the unit cluster. Used when
    a structure is decoded from a PDF alone and its size in Å is not known otherwise.
    """
    u = _positions(unit_positions, "unit_positions")
    if u.shape[0] < 2:
        raise InputError("need at least two atoms to set a length scale")
    r = np.asarray(r, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    keep = r > rmin
    rr, gg = r[keep], g[keep]
    if rr.size < 3:
        raise InputError(f"the PDF has no points beyond r = {rmin} Å")
    strong = gg >= 0.5 * gg.max()
    peaks = np.flatnonzero(strong[1:-1] & (gg[1:-1] >= gg[:-2]) & (gg[1:-1] >= gg[2:])) + 1
    if peaks.size == 0:
        raise InputError("no nearest-neighbour peak found in the PDF")
    d = cdist(u, u)
    np.fill_diagonal(d, np.inf)
    return float(rr[peaks[0]] / np.median(d.min(axis=1)))
