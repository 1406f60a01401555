"""Two/three-column text patterns (.xy .xye .dat .csv .chi .txt) with comment and header lines.

Rules (documented for users in :func:`read_columns`):

* comment lines start with ``#``, ``!``, ``;``, ``'`` or ``%``; leading lines that are not
  numbers are header lines (column names, fit2d titles); both are searched for the x unit and
  the wavelength. After the first data row, any non-numeric line is an error.
* a lone integer right before the data (fit2d ``.chi`` point count) is checked, not read as data.
* separators: commas, spaces, tabs (mixed is fine). Every row must have the same column count:
  x, y and, with exactly three columns, sigma; with more columns the extras are kept in
  ``metadata['extra_columns']``.
* x unit: the ``x_unit`` argument, else the header ('2theta', '2-theta', 'tth', '2θ' -> 2θ;
  'q' -> Q, with 'nm^-1'/'1/nm' converted to Å⁻¹; 'r' -> r), else a guess from the range:
  max(x) > 40 -> 2θ (no diffraction data reach Q = 40 Å⁻¹), otherwise Q; a warning says so.
* wavelength: a header line such as ``wavelength = 1.5406``, ``lambda: 0.1665``, ``Wavelength:
  1.5406e-10 m`` (pyFAI, metres) or a tube name (``CuKa1``), else the ``wavelength`` argument.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.validate import check_x_order
from nanosolve.scattering.units import wavelength as _named_wavelength

COMMENT_CHARS = ("#", "!", ";", "'", "%")
_SPLIT = re.compile(r"[,\s]+")
_WL_RE = re.compile(
    r"(?:wavelength|wave_length|wave-length|lambda|λ)\s*(?:\([^)]*\))?\s*[:=]?\s*"
    r"([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)?\s*(nm|Å|A|angstrom|m)?\b\s*([A-Za-z]{2}\s*K\S*)?",
    re.IGNORECASE)
# x unit hints, checked in this order (2θ names first: 'q' may appear inside other words).
_TTH_RE = re.compile(r"2\s*-?\s*theta|two[\s_-]*theta|\btth\b|2θ|\b2th\b|2th_deg", re.IGNORECASE)
_Q_NM_RE = re.compile(r"(?<![a-z])q(?![a-z]).{0,12}?(nm\s*\^?\s*-\s*1|1\s*/\s*nm|nm-1|nm⁻¹)", re.IGNORECASE)
_Q_RE = re.compile(r"(?<![a-z])q(?![a-z])", re.IGNORECASE)
_R_RE = re.compile(r"(?<![a-z])r(?![a-z])", re.IGNORECASE)


def read_lines(path) -> list[str]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        lines = fh.read().splitlines()
    if not any(ln.strip() for ln in lines):
        raise InputError("file is empty", path)
    return lines


def _numbers(parts: list[str]) -> list[float] | None:
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def parse_numeric_block(lines: list[str], path, first_line_no: int = 1,
                        header_allowed: bool = True) -> tuple[np.ndarray, list[str], int | None]:
    """Parse numeric rows of text.

    Args:
        lines: the text lines; ``first_line_no`` is the file line number of ``lines[0]``.
        header_allowed: accept non-numeric lines before the first data row (header lines).

    Returns:
        (data [M, ncol], header lines (comments and leading non-numeric lines), declared point
        count or None).

    Raises:
        InputError naming the line for a wrong column count, NaN/inf, or non-numeric text
        after the data started; and when there are no data rows at all.
    """
    header: list[str] = []
    rows: list[list[float]] = []
    ncol = None
    declared = None
    declared_line = None
    for k, raw in enumerate(lines):
        line_no = first_line_no + k
        s = raw.strip()
        if not s:
            continue
        if s.startswith(COMMENT_CHARS):
            header.append(s)
            continue
        parts = [p for p in _SPLIT.split(s) if p]
        vals = _numbers(parts)
        if vals is None:
            if rows or not header_allowed:
                raise InputError(f"line {line_no}: not a row of numbers: {s[:60]!r}", path)
            header.append(s)
            continue
        if not rows and len(vals) == 1 and declared is None and re.fullmatch(r"\d+", parts[0]):
            declared, declared_line = int(parts[0]), line_no  # fit2d .chi: number of points
            continue
        if not np.all(np.isfinite(vals)):
            raise InputError(f"line {line_no}: non-finite value (NaN/inf): {s[:60]!r}", path)
        if ncol is None:
            if len(vals) < 2:
                raise InputError(f"line {line_no}: a data row needs at least two columns (x y), got {s[:60]!r}", path)
            ncol = len(vals)
        elif len(vals) != ncol:
            raise InputError(f"line {line_no}: {len(vals)} columns where the data have {ncol}: {s[:60]!r}", path)
        rows.append(vals)
    if not rows:
        raise InputError("no data rows (only comments or headers)", path)
    if declared is not None and declared != len(rows):
        raise InputError(f"line {declared_line} announces {declared} points but {len(rows)} data rows follow", path)
    return np.asarray(rows, dtype=np.float64), header, declared


def unit_from_text(text: str) -> tuple[str | None, float]:
    """('tth'|'q'|'r'|None, factor to multiply x by) from header text; nm⁻¹ -> Å⁻¹ is factor 0.1."""
    if _TTH_RE.search(text):
        return "tth", 1.0
    if _Q_NM_RE.search(text):
        return "q", 0.1
    if _Q_RE.search(text):
        return "q", 1.0
    if _R_RE.search(text):
        return "r", 1.0
    return None, 1.0


def wavelength_from_text(text: str) -> float | None:
    """Wavelength in Å from a header line, or None. Values below 1e-6 are taken as metres (pyFAI)."""
    for m in _WL_RE.finditer(text):
        num, unit, tube = m.group(1), m.group(2), m.group(3)
        if num is not None:
            v = float(num)
            if v <= 0:
                continue
            if unit and unit.lower() == "nm":
                v *= 10.0
            elif (unit and unit == "m") or v < 1e-6:
                v *= 1e10
            return v
        if tube:
            try:
                return _named_wavelength(tube.replace("\\a", "a").strip())
            except InputError:
                continue
    return None


def resolve_wavelength(from_file: float | None, argument, path) -> float | None:
    """The file's wavelength wins (it describes the data); the argument fills in when absent."""
    arg = _named_wavelength(argument) if argument is not None else None
    if from_file is not None:
        if arg is not None and abs(arg - from_file) > 1e-3 * from_file:
            warnings.warn(f"{path}: file states wavelength {from_file:g} Å; the argument {arg:g} Å is ignored",
                          stacklevel=3)
        return from_file
    return arg


def guess_unit(x: np.ndarray, path) -> str:
    unit = "tth" if float(np.max(x)) > 40 else "q"
    warnings.warn(f"{path}: x unit not stated in the file; guessed {'2θ (degrees)' if unit == 'tth' else 'Q (Å⁻¹)'} "
                  f"from max x = {float(np.max(x)):.4g} (rule: > 40 means 2θ); pass x_unit= to override",
                  stacklevel=3)
    return unit


def read_columns(path, wavelength=None, kind: str | None = None, x_unit: str | None = None) -> Pattern:
    """Read a column text pattern (see the module docstring for every rule).

    Args:
        path: file path.
        wavelength: Å or a tube name; used only when the file does not state one.
        kind: pattern kind (default ``'gr'`` for x in r, else ``'xrd'``).
        x_unit: ``'tth'``, ``'q'`` or ``'r'``; overrides the header.

    Returns:
        Pattern with ``metadata['source']``, ``metadata['header']`` (the header/comment lines).
    """
    path = os.fspath(path)
    lines = read_lines(path)
    data, header, _ = parse_numeric_block(lines, path)
    text = "\n".join(header)
    # The column-name line right above the data is the best witness; then the whole header.
    hdr_unit, factor = unit_from_text(header[-1]) if header else (None, 1.0)
    if hdr_unit is None:
        hdr_unit, factor = unit_from_text(text)
    if x_unit is not None:
        if hdr_unit is not None and hdr_unit != x_unit:
            warnings.warn(f"{path}: header suggests x in {hdr_unit}, using x_unit={x_unit!r} as asked", stacklevel=2)
        unit, factor = x_unit, (factor if hdr_unit == x_unit else 1.0)
    elif hdr_unit is not None:
        unit = hdr_unit
    else:
        unit = guess_unit(data[:, 0], path)
    return build_pattern(data, unit, factor, header, path, wavelength_from_text(text), wavelength, kind)


def build_pattern(data: np.ndarray, unit: str, factor: float, header: list[str], path,
                  file_wavelength, wavelength_arg, kind, sigma_col: int | None = None, **meta) -> Pattern:
    """Pattern from parsed columns: x = col 0 × factor, y = col 1, sigma = ``sigma_col`` (default: col 2 of 3)."""
    # Increasing x is kept, decreasing x reversed, x that goes back and forth refused (two scans
    # pasted together or a column mix-up would otherwise be sorted into a wrong pattern).
    if check_x_order(data[:, 0], path):
        data = data[::-1]
    data = data[np.argsort(data[:, 0], kind="stable")]  # keep extra columns aligned with sorted x
    ncol = data.shape[1]
    if sigma_col is None and ncol == 3:
        sigma_col = 2
    sigma = data[:, sigma_col] if sigma_col is not None and sigma_col < ncol else None
    md = {"source": path, "header": header, **meta}
    if factor != 1.0:
        md["x_scaled_by"] = factor  # e.g. nm⁻¹ -> Å⁻¹
    if sigma is not None and np.any(sigma < 0):
        warnings.warn(f"{path}: third column has negative values, so it is not a standard uncertainty; "
                      f"kept in metadata['extra_columns']", stacklevel=3)
        md["extra_columns"] = data[:, 2:].copy()
        sigma = None
    elif ncol > 3:
        md["extra_columns"] = data[:, 2:].copy() if sigma_col is None else np.delete(data, [0, 1, sigma_col], axis=1)
    wl = resolve_wavelength(file_wavelength, wavelength_arg, path)
    if kind is None:
        kind = "gr" if unit == "r" else "xrd"
    return Pattern(data[:, 0] * factor, data[:, 1], kind=kind, x_unit=unit, wavelength=wl, sigma=sigma, metadata=md)
