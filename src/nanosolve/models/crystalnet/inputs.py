"""CrystalNet's inputs: a 1,024-bin Mo Kα stick pattern, a 118-element composition vector, and
training points sampled from the density grid.

The paper's PXRD input: peak sticks at Mo Kα (0.71073 Å) over 2θ = 0-180° binned into 1,024 bins
(0.1758° each), heights normalised to a maximum of 1. Peaks falling into one bin add up (they
would overlap in a measurement). Augmentation: small Gaussian noise and a global 2θ shift of less
than 0.6° (at most 3 bins).
"""

from __future__ import annotations

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.bragg import bragg_peaks
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.units import WAVELENGTHS, two_theta_from_q
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_number

N_BINS = 1024
N_ELEMENTS = 118
MO_KA = WAVELENGTHS["MoKa"]  # 0.71073 Å
TWO_THETA_MAX = 180.0
MAX_SHIFT_DEG = 0.6


def bin_edges(n_bins: int = N_BINS) -> np.ndarray:
    """[n_bins + 1] 2θ bin edges, degrees (0-180)."""
    return np.linspace(0.0, TWO_THETA_MAX, n_bins + 1)


def _bin_sticks(two_theta, intensity, n_bins: int) -> np.ndarray:
    idx = np.clip(np.floor(np.asarray(two_theta) / TWO_THETA_MAX * n_bins).astype(int), 0, n_bins - 1)
    ok = (np.asarray(two_theta) >= 0) & (np.asarray(two_theta) <= TWO_THETA_MAX)
    v = np.bincount(idx[ok], np.asarray(intensity)[ok], minlength=n_bins)
    m = v.max() if v.size else 0.0
    return v / m if m > 0 else v


def xrd_vector(crystal: Crystal, n_bins: int = N_BINS, wavelength: float = MO_KA,
               shift_deg: float = 0.0, b_iso=None) -> np.ndarray:
    """[n_bins] stick pattern of ``crystal`` (Mo Kα, 2θ 0-180°), max 1.

    ``shift_deg`` moves every peak by that many degrees before binning (augmentation).
    """
    peaks = bragg_peaks(crystal, wavelength=wavelength, two_theta_range=(0.0, TWO_THETA_MAX), b_iso=b_iso)
    return _bin_sticks(peaks.two_theta + shift_deg, peaks.intensity, n_bins)


def composition_vector(composition) -> np.ndarray:
    """[118] element fractions (index Z - 1) from a :class:`Crystal` or {element: amount}."""
    comp = composition.composition if isinstance(composition, Crystal) else dict(composition)
    v = np.zeros(N_ELEMENTS)
    for el, amount in comp.items():
        if not np.isfinite(amount) or amount < 0:
            raise InputError(f"amount of {el} must be a finite number >= 0, got {amount}")
        v[atomic_number(el) - 1] += amount
    total = v.sum()
    if total <= 0:
        raise InputError("composition is empty")
    return v / total


def augment_xrd(x: np.ndarray, rng: np.random.Generator, noise_std: float = 0.01,
                max_shift_deg: float = MAX_SHIFT_DEG) -> np.ndarray:
    """Augmented copy of binned pattern(s) ``x`` [..., n_bins]: a random 2θ shift of |Δ| < ``max_shift_deg``
    (whole bins, zero-filled rather than wrapped, one shift per pattern), Gaussian noise of σ =
    ``noise_std`` (relative to max 1), clipped at 0 and renormalised to max 1."""
    x = np.asarray(x, dtype=np.float64)
    if max_shift_deg >= MAX_SHIFT_DEG + 1e-9:
        raise InputError(f"2θ shifts must stay below {MAX_SHIFT_DEG}°, got {max_shift_deg}")
    n_bins = x.shape[-1]
    width = TWO_THETA_MAX / n_bins
    flat = x.reshape(-1, n_bins)
    out = np.zeros_like(flat)
    max_bins = int(np.floor(max_shift_deg / width - 1e-9))
    for i, row in enumerate(flat):
        s = int(rng.integers(-max_bins, max_bins + 1)) if max_bins > 0 else 0
        if s > 0:
            out[i, s:] = row[:-s]
        elif s < 0:
            out[i, :s] = row[-s:]
        else:
            out[i] = row
    if noise_std > 0:
        out = out + rng.normal(0.0, noise_std, out.shape)
    out = np.clip(out, 0.0, None)
    m = out.max(axis=1, keepdims=True)
    out = np.divide(out, m, out=np.zeros_like(out), where=m > 0)
    return out.reshape(x.shape)


def xrd_vector_from_pattern(pattern: Pattern, n_bins: int = N_BINS, subtract_min: bool = True) -> np.ndarray:
    """[n_bins] model input from a measured (or simulated) profile.

    The pattern goes to Q (needs its wavelength if it is in 2θ), then to Mo Kα 2θ; each bin gets the
    mean intensity of the points inside it (linear interpolation at the bin centre where a bin
    has none); bins outside the measured range are 0. ``subtract_min`` removes a constant
    background (the minimum) so empty regions read 0 as in the stick input; max 1.
    """
    src = pattern.metadata.get("source")
    if pattern.kind not in ("xrd",):
        raise InputError(f"CrystalNet needs an x-ray powder pattern, got kind {pattern.kind!r}", src)
    q = pattern.to_q()
    tth = two_theta_from_q(q.x, MO_KA)
    ok = np.isfinite(tth)
    tth, y = tth[ok], q.y[ok]
    if tth.size < 2:
        raise InputError("pattern has fewer than 2 points below 2θ = 180° at Mo Kα", src)
    if subtract_min:
        y = y - y.min()
    edges = bin_edges(n_bins)
    idx = np.clip(np.searchsorted(edges, tth, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    total = np.bincount(idx, y, minlength=n_bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    out = np.interp(centres, tth, y, left=0.0, right=0.0)
    has = count > 0
    out[has] = total[has] / count[has]
    out = np.clip(out, 0.0, None)
    m = out.max()
    if m <= 0:
        raise InputError("pattern has no positive intensity", src)
    return out / m


def density_cdf(density: np.ndarray) -> np.ndarray:
    """[n0·n1·n2] float64 cumulative sum of the clipped (≥ 0) flattened density, for
    :func:`sample_grid_points` (``cdf=``)."""
    return np.cumsum(np.clip(np.asarray(density, dtype=np.float64).ravel(), 0.0, None))


def sample_grid_points(density: np.ndarray, n_points: int, rng: np.random.Generator,
                       dense_fraction: float = 0.5, cdf: np.ndarray | None = None):
    """Stratified training points from a density grid.

    ``dense_fraction`` of the points are drawn with probability ∝ density (so the atoms, where the
    values are large and change fast, are well covered), the rest uniformly over the cell.

    ``cdf`` (from :func:`density_cdf`): draw the dense points by inverse-CDF search instead of
    ``rng.choice(p=...)``, which re-validates p on every call and costs ~10 ms per 50³ grid (the
    training loop calls this for every crystal of every batch).

    Returns:
        (coords [n_points, 3] fractional, float32; values [n_points] density at them, float32).
    """
    rho = np.asarray(density)
    if rho.ndim != 3:
        raise InputError(f"density must be a 3-D grid, got shape {rho.shape}")
    if not 0 <= dense_fraction <= 1:
        raise InputError(f"dense_fraction must be in [0, 1], got {dense_fraction}")
    n_dense = int(round(n_points * dense_fraction))
    if cdf is not None:
        flat = rho.ravel()
        if len(cdf) != flat.size:
            raise InputError(f"cdf must be the cumulative density of this grid ({flat.size} values), got {len(cdf)}")
        if not cdf[-1] > 0:
            n_dense = 0
        uni = rng.integers(0, flat.size, n_points - n_dense)
        dense = np.minimum(np.searchsorted(cdf, rng.random(n_dense) * cdf[-1], side="right"), flat.size - 1)
    else:
        flat = rho.ravel().astype(np.float64)
        p = np.clip(flat, 0.0, None)
        if p.sum() <= 0:
            n_dense = 0
        uni = rng.integers(0, flat.size, n_points - n_dense)
        dense = rng.choice(flat.size, n_dense, p=p / p.sum()) if n_dense else np.zeros(0, dtype=int)
    idx = np.concatenate([dense, uni])
    ijk = np.stack(np.unravel_index(idx, rho.shape), axis=1)
    coords = (ijk / np.asarray(rho.shape)).astype(np.float32)
    return coords, flat[idx].astype(np.float32)
