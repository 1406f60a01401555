"""Agreement factors between an observed and a calculated pattern: every R factor nanosolve reports.

All profiles are 1-D arrays of one length N (a powder pattern's intensities, a PDF's G(r) values) on a
shared grid; observed and calculated are in the same units. Every factor is a dimensionless fraction
(0.05, not 5 %), 0 for identical profiles.

Powder patterns (TOPAS / GSAS-II definitions, weights w = 1/σ² for counts with standard uncertainty σ):

* :func:`r_wp` — weighted profile R factor, R_wp = sqrt(Σ w (y_o − y_c)² / Σ w y_o²);
* :func:`r_p` — profile R factor, R_p = Σ |y_o − y_c| / Σ |y_o|;
* :func:`r_exp` — expected R factor, R_exp = sqrt((N − P) / Σ w y_o²) with P refined parameters;
* :func:`reduced_chi2` — χ² = (R_wp / R_exp)², and :func:`gof_s` — S = R_wp / R_exp (TOPAS "GOF", CIF
  ``_refine_ls_goodness_of_fit_all``); both only mean something when y is in counts and σ is right;
* :func:`profile_agreement` — all of the above in one dict, as a Rietveld refinement reports them.

Patterns without uncertainties: :func:`poisson_weights` (w = 1/y with a floor, σ² ∝ counts) for
:func:`r_wp`; :func:`r_wp_shape` compares two profile shapes whatever their scales;
:func:`r_wp_squared_integral` is PXRDNet's unweighted R_wp² integrated over Q.

Pair distribution functions: :func:`pdf_rw` — Rw = sqrt(Σ (G_o − G_c)² / Σ G_o²) (PDFgui / PDFfit with
unit weights).
"""

from __future__ import annotations

import math

import numpy as np

from nanosolve.errors import InputError

__all__ = [
    "r_wp",
    "r_p",
    "r_exp",
    "reduced_chi2",
    "gof_s",
    "profile_agreement",
    "poisson_weights",
    "r_wp_shape",
    "r_wp_squared_integral",
    "pdf_rw",
]

#: default floor of :func:`poisson_weights`, relative to the largest |y_obs|
POISSON_FLOOR = 0.01


def _select(values, mask):
    a = np.asarray(values, float)
    return a if mask is None else a[np.asarray(mask, bool)]


def r_wp(y_obs, y_calc, weights=None, mask=None) -> float:
    """Weighted profile R factor R_wp = sqrt(Σ w (y_obs − y_calc)² / Σ w y_obs²).

    Args:
        y_obs: observed profile [N].
        y_calc: calculated profile [N], same units as ``y_obs``.
        weights: w [N] (1/σ² for counts with uncertainty σ); None: unit weights.
        mask: bool [N], the points summed over; None: all.

    Returns:
        R_wp (a fraction; NaN when Σ w y_obs² is 0).
    """
    yo, yc = _select(y_obs, mask), _select(y_calc, mask)
    w = np.ones_like(yo) if weights is None else _select(weights, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sqrt(np.sum(w * (yo - yc) ** 2) / np.sum(w * yo * yo)))


def r_p(y_obs, y_calc, mask=None) -> float:
    """Profile R factor R_p = Σ |y_obs − y_calc| / Σ |y_obs| over ``mask`` (bool [N], default all)."""
    yo, yc = _select(y_obs, mask), _select(y_calc, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(np.abs(yo - yc)) / np.sum(np.abs(yo)))


def r_exp(y_obs, weights, n_params: int, mask=None) -> float:
    """Expected R factor R_exp = sqrt((N − P) / Σ w y_obs²), the R_wp a model within the errors reaches.

    Args:
        y_obs: observed profile [N] (counts).
        weights: w [N] = 1/σ².
        n_params: P, the refined parameters (linear ones such as scales and background included);
            N − P is taken as at least 1.
        mask: bool [N], the points counted; None: all.
    """
    yo, w = _select(y_obs, mask), _select(weights, mask)
    return math.sqrt(max(yo.size - n_params, 1) / float(np.sum(w * yo * yo)))


def reduced_chi2(r_wp_value: float, r_exp_value: float) -> float:
    """χ² = (R_wp / R_exp)² = Σ w (y_o − y_c)² / (N − P) (GSAS-II "GOF²"); NaN when R_exp is not > 0."""
    return (r_wp_value / r_exp_value) ** 2 if r_exp_value > 0 else float("nan")


def gof_s(r_wp_value: float, r_exp_value: float) -> float:
    """Goodness of fit S = R_wp / R_exp = sqrt(χ²) (TOPAS "GOF"); NaN when R_exp is not > 0."""
    return r_wp_value / r_exp_value if r_exp_value > 0 else float("nan")


def profile_agreement(y_obs, y_calc, sigma, n_params: int) -> dict:
    """R_wp, R_p, R_exp, χ² and S of a refined powder pattern with weights w = 1/σ².

    Args:
        y_obs: observed counts [N] over the fitted points.
        y_calc: calculated counts [N].
        sigma: standard uncertainties σ [N] (> 0), counts.
        n_params: refined parameters P.

    Returns:
        ``{"rwp", "rp", "rexp", "gof" (χ²), "gof_s" (S)}``, all floats.
    """
    yo, yc, s = (np.asarray(v, float) for v in (y_obs, y_calc, sigma))
    w = 1.0 / (s * s)
    rwp, rexp = r_wp(yo, yc, w), r_exp(yo, w, n_params)
    return {"rwp": rwp, "rp": r_p(yo, yc), "rexp": rexp, "gof": reduced_chi2(rwp, rexp), "gof_s": gof_s(rwp, rexp)}


def poisson_weights(y_obs, floor: float = POISSON_FLOOR) -> np.ndarray:
    """Weights [N] = 1 / max(y_obs, floor · max |y_obs|) for a pattern without uncertainties.

    Poisson-like (σ² ∝ counts); the floor keeps empty regions (w → ∞ as y → 0) from dominating: no
    point weighs more than 1/floor times the strongest peak.
    """
    y = np.asarray(y_obs, float)
    return 1.0 / np.maximum(y, floor * max(np.abs(y).max(), 1e-300))


def r_wp_shape(y_ref, y_model, background: float = 0.01) -> float:
    """R_wp of two profile shapes [N], whatever their scales (0 for proportional profiles).

    Each profile is divided by its maximum and ``background`` (a fraction of that maximum) is added as
    a flat background, so the weights w = 1/y_ref stay finite; the model is multiplied by its weighted
    least-squares scale s before R_wp = sqrt(Σ w (y_ref − s y_model)² / Σ w y_ref²).

    Raises:
        InputError: the profiles differ in shape or are empty.
    """
    yt = np.asarray(y_ref, dtype=np.float64)
    ym = np.asarray(y_model, dtype=np.float64)
    if yt.shape != ym.shape or yt.size == 0:
        raise InputError(f"profiles must have one non-empty shape, got {yt.shape} and {ym.shape}")
    yt = yt / max(yt.max(), 1e-300) + background
    ym = ym / max(ym.max(), 1e-300) + background
    w = 1.0 / yt
    s = float(np.sum(w * yt * ym) / np.sum(w * ym * ym))
    return r_wp(yt, s * ym, w)


def r_wp_squared_integral(y_ref, y_pred, x=None) -> float:
    """Unweighted R_wp² integrated over the grid: ∫ (y_ref − y_pred)² dx / ∫ y_ref² dx (PXRDNet's score).

    Args:
        y_ref: reference profile [N].
        y_pred: predicted profile [N].
        x: grid [N] (e.g. Q in Å⁻¹) for the trapezoid rule; None: uniform spacing.

    Raises:
        InputError: the reference has no intensity.
    """
    yt, yp = np.asarray(y_ref, float), np.asarray(y_pred, float)
    x = np.arange(yt.size, dtype=float) if x is None else np.asarray(x, float)
    den = np.trapezoid(yt * yt, x)
    if den <= 0:
        raise InputError("R_wp² needs a reference pattern with nonzero intensity")
    return float(np.trapezoid((yt - yp) ** 2, x) / den)


def pdf_rw(g_obs, g_calc) -> float:
    """PDF agreement Rw = sqrt(Σ (G_obs − G_calc)² / Σ G_obs²) over the given points (unit weights).

    Args:
        g_obs: observed G(r) [N] (Å⁻²).
        g_calc: calculated G(r) [N] on the same r grid.

    Raises:
        InputError: the observed PDF is zero everywhere.
    """
    g_obs, g_calc = np.asarray(g_obs, float), np.asarray(g_calc, float)
    if float(np.sum(g_obs * g_obs)) == 0:
        raise InputError("the observed PDF is zero on the fit range")
    return r_wp(g_obs, g_calc)
