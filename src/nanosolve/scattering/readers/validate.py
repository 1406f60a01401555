"""Physical checks of a pattern read from a file, shared by every reader (called by the dispatcher).

A file that parses is not yet a pattern: a 2θ column beyond 180°, a negative Q, intensities that
are all negative or near the float limit, an x column that goes back and forth, or a PDF over
10⁶ Å would otherwise be "solved" into a confident wrong answer or an impossible allocation.
Every check raises :class:`InputError` naming the file and the problem.

Rules (units: 2θ in degrees, Q in Å⁻¹, r in Å, wavelengths in Å):

* x range by unit: 2θ in (0, 180); Q in [0, MAX_Q]; r in [0, MAX_R].
* x order: increasing or entirely decreasing (then reversed); x that goes up and down is
  refused (two scans pasted together, or a column mix-up) — :func:`check_x_order`, called by the
  readers before they sort.
* values finite (the Pattern itself refuses NaN/inf) and of magnitude below MAX_ABS_VALUE.
* intensity kinds (xrd nd saxs sans iq): at least one positive value, and no negative value
  deeper than the strongest positive one (small negatives of a subtracted background are kept;
  a difference curve or a G(r) read as an intensity is refused).
* wavelength in WAVELENGTH_RANGE.
"""

from __future__ import annotations

import numpy as np

from nanosolve.errors import InputError

#: Largest |value| accepted in any column: beyond it squares and sums overflow float64.
MAX_ABS_VALUE = 1e15
#: Largest Q (Å⁻¹) of any scattering experiment (the hardest x-ray PDF setups reach ~50).
MAX_Q = 200.0
#: Largest r (Å) of a PDF (nanoparticle and long-range PDFs stay below a few hundred Å).
MAX_R = 10_000.0
#: Wavelengths (Å) of x-ray, electron and neutron sources.
WAVELENGTH_RANGE = (0.01, 20.0)
#: Kinds whose y is a counted intensity (must not be all / mostly negative).
INTENSITY_KINDS = ("xrd", "nd", "saxs", "sans", "iq")

__all__ = ["validate_pattern", "check_x_order", "check_wavelength", "MAX_ABS_VALUE", "MAX_Q", "MAX_R",
           "WAVELENGTH_RANGE", "INTENSITY_KINDS"]


def check_wavelength(wl, what="wavelength", path=None) -> float | None:
    """``wl`` (Å) or None; InputError outside :data:`WAVELENGTH_RANGE`."""
    if wl is None:
        return None
    lo, hi = WAVELENGTH_RANGE
    if not (np.isfinite(wl) and lo <= wl <= hi):
        raise InputError(f"{what} {wl:g} Å is outside {lo:g}-{hi:g} Å (x-ray, electron and neutron sources)", path)
    return float(wl)


def check_x_order(x, path=None) -> bool:
    """True when ``x`` decreases throughout (the caller reverses it), False when it increases;
    InputError when it goes both up and down (naming the first point out of order)."""
    from nanosolve.scattering.pattern import x_order_problem

    problem = x_order_problem(x)
    if problem is not None:
        raise InputError(f"{problem}; sort the file or split it into separate scans", path)
    d = np.diff(np.asarray(x, dtype=float))
    return bool(d.size and np.all(d <= 0) and np.any(d < 0))


def validate_pattern(pattern, path=None):
    """Refuse a physically impossible pattern read from ``path`` (see the module docstring); returns it."""
    path = path if path is not None else pattern.metadata.get("source")
    x, y = pattern.x, pattern.y
    big = np.abs(y) > MAX_ABS_VALUE
    if big.any():
        i = int(np.argmax(big))
        raise InputError(f"value {y[i]:.3g} at point {i + 1} is beyond ±{MAX_ABS_VALUE:.0e} (corrupt or not "
                         "a pattern)", path)
    if pattern.sigma is not None and np.any(np.abs(pattern.sigma) > MAX_ABS_VALUE):
        raise InputError(f"an uncertainty is beyond ±{MAX_ABS_VALUE:.0e} (corrupt column)", path)
    lo, hi = float(x.min()), float(x.max())
    if pattern.x_unit == "tth" and not (lo > 0 and hi < 180):
        raise InputError(f"2θ runs {lo:.6g}-{hi:.6g}°, outside (0, 180)° (centidegrees or another unit? "
                         "give the x unit in the header)", path)
    if pattern.x_unit == "q" and not (lo >= 0 and hi <= MAX_Q):
        raise InputError(f"Q runs {lo:.6g}-{hi:.6g} Å⁻¹, outside [0, {MAX_Q:g}] Å⁻¹", path)
    if pattern.x_unit == "r" and not (lo >= 0 and hi <= MAX_R):
        raise InputError(f"r runs {lo:.6g}-{hi:.6g} Å, outside [0, {MAX_R:g}] Å", path)
    if abs(hi) > MAX_ABS_VALUE or abs(lo) > MAX_ABS_VALUE:  # pragma: no cover - caught by the unit ranges
        raise InputError("x values beyond the float range of a pattern", path)
    if pattern.kind in INTENSITY_KINDS:
        top = float(y.max())
        if top <= 0:
            raise InputError(f"{pattern.kind} intensities are all zero or negative (max {top:.4g}); an "
                             "intensity must be positive", path)
        if float(y.min()) < -top:
            raise InputError(f"{pattern.kind} intensities go down to {float(y.min()):.4g}, deeper than the "
                             f"strongest value {top:.4g}: not an intensity (a difference curve? another kind?)",
                             path)
    check_wavelength(pattern.wavelength, "wavelength", path)
    return pattern
