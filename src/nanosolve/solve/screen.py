"""Lattice-fitted screen of powder-solve candidates against the pattern as measured.

The model grid (:func:`nanosolve.solve.pxrd.rank_candidates`) compares candidates with the data
broadened to the model's 10 Å crystallites, where peaks are ~0.6 Å⁻¹ wide: good enough to tell
the model's decoded cells apart, blind to what a sharp laboratory pattern says (peak positions to
~0.01 Å⁻¹, splittings, weak superstructure lines). Prototypes and random crystals also carry a cell
guessed from atomic radii, a few per cent off, so their sharp peaks miss the measured ones. The
screen therefore fits each candidate's **cell lengths** (equal lengths kept equal, angles and
fractional coordinates fixed, intensities from the candidate) and a scale to the background-
subtracted data, coarse to fine: an isotropic scan of the cell and a grid over the free lengths at a
wide smoothing, then Nelder–Mead on the free lengths at that and two narrower ones. Its R on the
narrowest smoothing ranks the candidates; the refined cell is the start of the measured-profile
refinement.

Why not :func:`nanosolve.solve.pxrd_refine.refine_crystal`: that fit (torch, restarts, widths,
zero, background) costs ~10-25 s per candidate; the screen costs ~0.05 s with intensities fixed
(peaks re-placed from a fixed reflection list, rendered by binning and one Gaussian convolution),
so every candidate of a solve can be screened. Blind: candidates and data only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import minimize

from nanosolve.errors import InputError
from nanosolve.solve.pxrd_refine import equal_groups
from nanosolve.structures import Crystal

#: Q step of the screen grid (Å⁻¹) and its upper end: beyond ~6 Å⁻¹ the peaks of a 40-atom cell
#: overlap into a continuum at the screen's smoothing and add cost, not contrast
SCREEN_STEP, SCREEN_Q_MAX = 0.004, 6.0
#: Gaussian σ (Å⁻¹) of the smoothing stages, wide to narrow: the first tolerates the ±5 % cell
#: error of a radii-scaled guess (0.05 × 2 Å⁻¹ = 0.1 Å⁻¹ at a typical low-angle peak), the last is
#: near a laboratory instrument's resolution
SCREEN_SIGMAS = (0.04, 0.015, 0.006)
#: isotropic cell scan: factors on every length (a radii-based volume is within ±35 % of the true
#: one for the AFLOW prototypes, i.e. lengths within about ±11 %)
SCREEN_SCAN = np.linspace(0.86, 1.14, 57)
#: points per free length of the anisotropic grid (7: steps of ~4.7 % over the scan's range, about
#: the widest smoothing's tolerance at the first peaks)
SCREEN_GRID = 7
#: window (Å⁻¹) of the rolling background removed from the data (as on the model grid)
SCREEN_BG_WINDOW = 0.5
#: overall Debye–Waller B (Å²) of the candidates' intensities: a typical room-temperature value
SCREEN_B_ISO = 1.0


@dataclass
class ScreenData:
    """The measured pattern prepared for screening: uniform Q grid [G] (Å⁻¹), background-subtracted
    intensity per Å⁻¹ (peak areas as in 2θ), its smoothed versions (one per σ of ``sigmas``), the
    instrument's Gaussian σ (Å⁻¹) estimated from the strongest peak, and the wavelength (Å)."""

    q: np.ndarray
    y: np.ndarray
    smoothed: list = field(repr=False)
    sigmas: tuple
    sigma_instrument: float
    wavelength: float | None


@dataclass
class ScreenFit:
    """One candidate's screen: R on the narrowest smoothing (√(Σ(y−s·c)²/Σy²)), the fitted crystal
    (cell lengths scaled, everything else as the candidate), the length factors [3] and seconds."""

    r: float
    crystal: Crystal
    factors: np.ndarray
    seconds: float
    #: the same fit's R on the square roots of the two profiles (weak lines weigh more)
    r_sqrt: float = math.inf

    def summary(self) -> dict:
        return {"r": round(float(self.r), 5), "length_factors": [round(float(v), 5) for v in self.factors],
                "seconds": round(float(self.seconds), 3)}


def _instrument_sigma(q, y) -> float:
    """Gaussian σ (Å⁻¹) of the strongest peak from its half-maximum width, kept within 0.001-0.03."""
    i = int(np.argmax(y))
    half = 0.5 * y[i]
    lo = i
    while lo > 0 and y[lo] > half:
        lo -= 1
    hi = i
    while hi < len(y) - 1 and y[hi] > half:
        hi += 1
    fwhm = float(q[hi] - q[lo])
    return float(np.clip(fwhm / 2.3548, 0.001, 0.03))


def prepare_screen(pattern, sigmas=SCREEN_SIGMAS, step: float = SCREEN_STEP, q_max: float = SCREEN_Q_MAX) -> ScreenData:
    """Data for :func:`screen_crystal` from a powder Pattern (2θ with its wavelength, or Q): cell means
    onto a uniform Q grid, rolling background subtracted, ×d(2θ)/dQ so areas stay those of the 2θ
    data, clipped at 0, smoothed once per σ."""
    from nanosolve.scattering.nano_pxrd import uniform_q_density

    src = pattern.metadata.get("source")
    q_raw, y_raw = np.asarray(pattern.to_q().x, float), np.asarray(pattern.y, float)
    hi = min(float(q_raw[-1]), q_max)
    if hi - q_raw[0] < 20 * step:
        raise InputError(f"pattern covers Q {q_raw[0]:.3g}-{q_raw[-1]:.3g} Å⁻¹: too short to screen candidates", src)
    q, y = uniform_q_density(pattern, q_raw, y_raw, step, hi, SCREEN_BG_WINDOW)
    y = np.clip(y, 0.0, None)
    if not y.max() > 0:
        raise InputError("pattern has no positive intensity after background subtraction", src)
    y = y / y.max()
    smoothed = [gaussian_filter1d(y, s / step, mode="constant") for s in sigmas]
    return ScreenData(q, y, smoothed, tuple(sigmas), _instrument_sigma(q, y), pattern.wavelength)


def _reflections(crystal: Crystal, data: ScreenData, q_reach: float):
    """(hkl [P, 3] one per peak, intensity [P]) of the crystal's peaks below ``q_reach``."""
    from nanosolve.scattering.bragg import bragg_peaks

    pk = bragg_peaks(crystal, wavelength=data.wavelength, q_max=q_reach, b_iso=SCREEN_B_ISO,
                     two_theta_range=(0.0, 179.0))
    hkl = np.asarray(pk.hkl)
    if hkl.shape[1] == 4:  # hexagonal families come as hkil
        hkl = hkl[:, [0, 1, 3]]
    first = np.unique(pk.peak_index, return_index=True)[1]
    return hkl[first].astype(float), np.asarray(pk.intensity, float)


def length_factors(groups, u) -> np.ndarray:
    """[3] factors of the cell lengths: exp(u_j) for every length of group j (equal lengths tied)."""
    f = np.ones(3)
    for g, v in zip(groups, u):
        f[g] = math.exp(v)
    return f


def staged_simplex(r_of, u, sigmas, first: int = 0, maxfev_per_length: int = 60, bounds=None) -> np.ndarray:
    """Nelder–Mead on the log length factors ``u``, one stage per smoothing σ_k from ``first`` on
    (``r_of(u, k)``); ``bounds`` (lo, hi) clip ``u`` after each stage. Simplex steps shrink with the
    smoothing: each stage moves peaks by about its σ."""
    for k in range(first, len(sigmas)):
        step_u = 2.0 * sigmas[k] / 3.0
        simplex = np.vstack([u] + [u + step_u * np.eye(len(u))[i] for i in range(len(u))])
        u = minimize(lambda v: r_of(v, k), u, method="Nelder-Mead",
                     options={"initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-5,
                              "maxfev": maxfev_per_length * len(u)}).x
        if bounds is not None:
            u = np.clip(u, *bounds)
    return u


def screen_crystal(crystal: Crystal, data: ScreenData) -> ScreenFit:
    """Fit the cell lengths (tied where equal) and a scale of ``crystal`` to ``data``; see the module doc."""
    t0 = time.perf_counter()
    lat = np.asarray(crystal.lattice, float)
    lengths = np.linalg.norm(lat, axis=1)
    if not np.all(np.isfinite(lat)) or abs(np.linalg.det(lat)) < 1e-6:
        return ScreenFit(math.inf, crystal, np.ones(3), 0.0)
    q_reach = data.q[-1] / SCREEN_SCAN[0] * 1.2
    try:
        hkl, inten = _reflections(crystal, data, q_reach)
    except (InputError, ValueError, MemoryError):
        return ScreenFit(math.inf, crystal, np.ones(3), time.perf_counter() - t0)
    if inten.size == 0:
        return ScreenFit(math.inf, crystal, np.ones(3), time.perf_counter() - t0)
    gstar = np.linalg.inv(lat @ lat.T)  # reciprocal metric (Å⁻², crystallographer's 1/d²)
    base = np.einsum("pi,ij,pj->pij", hkl, gstar, hkl)  # [P, 3, 3]: 1/d² = Σ base_ij / (s_i s_j)
    groups = equal_groups(list(lengths), 1e-3)  # equal lengths stay equal: the candidate keeps its system
    q0, step, n = data.q[0], data.q[1] - data.q[0], len(data.q)

    def profile(factors, k):
        inv = 1.0 / factors
        qs = 2 * np.pi * np.sqrt(np.clip(np.einsum("pij,i,j->p", base, inv, inv), 0, None))
        pos = (qs - q0) / step
        ok = (pos > -1) & (pos < n)
        pos, w = pos[ok], inten[ok]
        i0 = np.floor(pos).astype(int)
        frac = pos - i0
        out = np.bincount(np.clip(i0, 0, n - 1), w * (1 - frac) * (i0 >= 0), minlength=n)
        out += np.bincount(np.clip(i0 + 1, 0, n - 1), w * frac * (i0 + 1 < n), minlength=n)
        sig = math.hypot(data.sigmas[k], data.sigma_instrument)
        return gaussian_filter1d(out / step, sig / step, mode="constant")

    def r_of(factors, k):
        calc = profile(factors, k)
        obs = data.smoothed[k]
        cc = float(calc @ calc)
        s = max(float(obs @ calc) / cc, 0.0) if cc > 0 else 0.0
        return math.sqrt(float(((obs - s * calc) ** 2).sum()) / float(obs @ obs))

    def expand(u):
        return length_factors(groups, u)

    scan = [r_of(np.full(3, s), 0) for s in SCREEN_SCAN]
    u = np.full(len(groups), math.log(SCREEN_SCAN[int(np.argmin(scan))]))
    if len(groups) > 1:
        # lengths off in different directions (a prototype's axial ratios are not the compound's):
        # a grid over the free lengths at the widest smoothing, kept when it beats the isotropic scan
        axes = np.log(np.linspace(SCREEN_SCAN[0], SCREEN_SCAN[-1], SCREEN_GRID))
        grid = np.stack(np.meshgrid(*[axes] * len(groups), indexing="ij"), -1).reshape(-1, len(groups))
        values = [r_of(expand(v), 0) for v in grid]
        if min(values) < min(scan):
            u = grid[int(np.argmin(values))]
    u = staged_simplex(lambda v, k: r_of(expand(v), k), u, data.sigmas, maxfev_per_length=60,
                       bounds=(math.log(SCREEN_SCAN[0]) - 0.05, math.log(SCREEN_SCAN[-1]) + 0.05))
    factors = expand(u)
    r = r_of(factors, len(data.sigmas) - 1)
    calc, obs = profile(factors, len(data.sigmas) - 1), data.smoothed[-1]
    scale = max(float(obs @ calc) / max(float(calc @ calc), 1e-300), 0.0)
    ro, rc = np.sqrt(np.clip(obs, 0, None)), np.sqrt(np.clip(scale * calc, 0, None))
    r_sqrt = math.sqrt(float(((ro - rc) ** 2).sum()) / float(ro @ ro))
    fitted = crystal.copy()
    fitted.lattice = lat * factors[:, None]
    return ScreenFit(r, fitted, factors, time.perf_counter() - t0, r_sqrt)


def screen_candidates(ranked: list, pattern, deadline: float | None = None) -> tuple[list, int]:
    """Screen powder-solve candidates (objects with ``.crystal``; each gets ``.screen``, a
    :class:`ScreenFit`) against ``pattern`` in their current order and re-rank the screened ones by
    the screen's R, ahead of the rest. ``deadline`` (time.perf_counter seconds): no candidate is
    started after it. Returns (ranking, number screened)."""
    data = prepare_screen(pattern)
    done = 0
    for cand in ranked:
        if deadline is not None and time.perf_counter() > deadline:
            break
        cand.screen = screen_crystal(cand.crystal, data)
        done += 1
    return sorted(ranked[:done], key=lambda c: c.screen.r) + ranked[done:], done
