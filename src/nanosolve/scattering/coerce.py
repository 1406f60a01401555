"""One way in for patterns: :func:`as_pattern` turns a Pattern, arrays or a file path into a Pattern.

Accepted:

* a :class:`~nanosolve.scattering.pattern.Pattern` (returned as it is; a ``wavelength`` given here
  fills in one it lacks);
* a path (str / PathLike) to any file :func:`nanosolve.scattering.readers.read_pattern` reads;
* arrays: a tuple/list ``(x, y)`` or ``(x, y, sigma)``, or one 2-D array of 2 or 3 columns (shape
  [M, 2|3]) or rows ([2|3, M]).

For arrays, ``x_unit`` says what x is (``'tth'`` 2θ in degrees, ``'q'`` Å⁻¹, ``'r'`` Å); without it
x in r is assumed for ``kind='gr'``, otherwise the file readers' rule applies (max x > 40 -> 2θ,
else Q; a warning says so). ``kind`` defaults to ``'gr'`` for x in r, else ``'xrd'``. x must run one
way (a decreasing x is reversed); x that turns back is refused unless ``sort=True``
(:class:`~nanosolve.scattering.pattern.Pattern`).
"""

from __future__ import annotations

import os

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern

__all__ = ["as_pattern"]


def _arrays(obj):
    if isinstance(obj, (tuple, list)) and len(obj) in (2, 3) and all(np.ndim(a) == 1 for a in obj):
        return [np.asarray(a, dtype=float) for a in obj]
    arr = np.asarray(obj, dtype=float)
    if arr.ndim == 2:
        if arr.shape[1] in (2, 3) and arr.shape[0] > 3:
            return list(arr.T)
        if arr.shape[0] in (2, 3):
            return list(arr)
    raise InputError(f"cannot read a pattern from an array of shape {arr.shape}; give (x, y), (x, y, sigma) or "
                     "an [M, 2|3] array")


def as_pattern(obj, kind: str | None = None, x_unit: str | None = None, wavelength=None, *,
               sort: bool = False) -> Pattern:
    """A Pattern from a Pattern, a file path or arrays (see the module docstring).

    Args:
        obj: the pattern.
        kind: pattern kind (``xrd nd saxs sans iq sq fq gr``); for a file, overrides what the file says.
        x_unit: ``'tth'``, ``'q'`` or ``'r'``; for a file, overrides the header.
        wavelength: Å or a tube name (``'CuKa1'``), when the data do not state one.
        sort: arrays only: sort points given in any order by x instead of refusing them.

    Raises:
        InputError: an unreadable file, arrays of unequal length, NaN, or any other type.
    """
    if isinstance(obj, Pattern):
        if wavelength is not None and obj.wavelength is None:
            out = obj._replace(obj.x, obj.y, sigma=obj.sigma)
            out.wavelength = Pattern(obj.x[:1], obj.y[:1], wavelength=wavelength).wavelength
            return out
        return obj
    if isinstance(obj, (str, os.PathLike)):
        from nanosolve.scattering.readers import read_pattern

        return read_pattern(obj, wavelength=wavelength, kind=kind, x_unit=x_unit)
    try:
        cols = _arrays(obj)
    except (TypeError, ValueError):
        raise InputError(f"cannot use a {type(obj).__name__} as a pattern; give a Pattern, (x, y) arrays or a "
                         "file path") from None
    x, y = cols[0], cols[1]
    if x.shape != y.shape:
        raise InputError(f"x has {x.size} points but y has {y.size}")
    sigma = cols[2] if len(cols) == 3 else None
    if x_unit is None:
        if kind == "gr":
            x_unit = "r"
        else:
            from nanosolve.scattering.readers.columns import guess_unit

            x_unit = guess_unit(x, "arrays")
    if kind is None:
        kind = "gr" if x_unit == "r" else "xrd"
    return Pattern(x, y, kind, x_unit, wavelength, sigma=sigma, sort=sort)
