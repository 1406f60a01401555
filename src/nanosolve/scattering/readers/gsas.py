"""GSAS powder data files (``.gsa``, ``.gss``, ``.fxye``, ``.raw`` of GSAS): the ``BANK`` format.

Layout: a title line, optional header lines (``Instrument parameter file: ...``, ``#`` comments),
then per bank a line ``BANK ibank nchan nrec bintyp bcoef1 bcoef2 bcoef3 bcoef4 type``. For
constant-wavelength data ``bintyp`` is ``CONS`` with ``bcoef1`` = first 2θ and ``bcoef2`` = step,
**both in centidegrees** (2θ × 100), and the data records are of ``type``:

* ``STD`` (or none): 10 points a line, each ``I2`` number of counters (blank = 1) + ``F6.0``
  intensity; σ = √(I / counters).
* ``ESD``: 5 points a line, ``F8.0`` intensity + ``F8.0`` σ.
* ``ALT``: 4 points a line, ``F8.0`` position (centidegrees), ``F7.4`` intensity, ``F5.4`` σ.
* ``FXY`` / ``FXYE``: free format ``x y`` or ``x y σ`` per line, x in centidegrees.

Time-of-flight banks (``TIME_MAP``, ``SLOG`` ...) are refused. The wavelength is not part of the
format (GSAS keeps it in the instrument parameter file); a header line stating one
(``wavelength = 1.5406``) is used, else the ``wavelength`` argument.
"""

from __future__ import annotations

import os
import re

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.columns import read_lines, resolve_wavelength, wavelength_from_text
from nanosolve.scattering.readers.validate import check_x_order

_BANK_RE = re.compile(r"^\s*BANK\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*(.*)$", re.IGNORECASE)
_TYPES = ("STD", "ESD", "ALT", "FXY", "FXYE")


def looks_like_gsas(lines: list[str]) -> bool:
    """True when a ``BANK`` line appears among the first lines (content sniffing)."""
    return any(_BANK_RE.match(ln) for ln in lines[:50])


def _fixed(line: str, widths: list[int]) -> list[str]:
    out, at = [], 0
    for w in widths:
        out.append(line[at:at + w])
        at += w
    return out


def _num(s: str, path, line_no: int) -> float:
    s = s.strip()
    if not s:
        return 0.0
    try:
        return float(s)
    except ValueError:
        raise InputError(f"line {line_no}: not a number: {s!r}", path) from None


def read_gsas(path, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every constant-wavelength bank of a GSAS file as a Pattern on 2θ (degrees).

    Raises:
        InputError: no BANK line, a time-of-flight bank, an unknown record type, too few points.
    """
    path = os.fspath(path)
    lines = read_lines(path)
    banks = [i for i, ln in enumerate(lines) if _BANK_RE.match(ln)]
    if not banks:
        raise InputError("not a GSAS data file: no 'BANK' line", path)
    header = lines[:banks[0]]
    wl = resolve_wavelength(wavelength_from_text("\n".join(header)), wavelength, path)
    out = []
    for b, start in enumerate(banks):
        end = banks[b + 1] if b + 1 < len(banks) else len(lines)
        m = _BANK_RE.match(lines[start])
        ibank, nchan, bintyp = int(m.group(1)), int(m.group(2)), m.group(4).upper()
        rest = m.group(5).split()
        if bintyp != "CONS":
            raise InputError(f"line {start + 1}: bank {ibank} is {bintyp} binned (time of flight); nanosolve reads "
                             "constant-wavelength (CONS) banks", path)
        coef = [float(v) for v in rest if re.fullmatch(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", v)]
        rtype = next((v.upper() for v in rest if v.upper() in _TYPES), "STD")
        if len(coef) < 2:
            raise InputError(f"line {start + 1}: BANK line lacks start and step", path)
        start_cdeg, step_cdeg = coef[0], coef[1]
        body = [(start + 1 + k, ln) for k, ln in enumerate(lines[start + 1:end]) if ln.strip()
                and not ln.lstrip().startswith("#")]
        x, y, s = _records(body, rtype, nchan, start_cdeg, step_cdeg, path)
        if x.size < 2:
            raise InputError(f"bank {ibank}: fewer than 2 points", path)
        good = np.ones(x.size, bool) if s is None else s > 0  # σ ≤ 0 marks excluded points in GSAS files
        md = {"source": path, "format": f"gsas-{rtype.lower()}", "bank": ibank, "n_banks": len(banks),
              "step": step_cdeg / 100.0 if rtype in ("STD", "ESD") else float(np.median(np.diff(x))),
              "title": header[0].strip() if header else "", "header": header}
        if not good.all():
            md["points_without_sigma"] = int((~good).sum())
        check_x_order(x[good], path)  # FXYE lists 2θ itself: up and down refused with the file named
        out.append(Pattern(x[good], y[good], kind or "xrd", "tth", wl,
                           sigma=None if s is None else s[good], metadata=md))
    return out


def _records(body, rtype, nchan, start_cdeg, step_cdeg, path):
    """(2θ in degrees, intensity, σ or None) of one bank's data lines."""
    if rtype in ("FXY", "FXYE"):
        rows = []
        for line_no, ln in body:
            parts = ln.split()
            try:
                rows.append([float(v) for v in parts[:3 if rtype == "FXYE" else 2]])
            except ValueError:
                raise InputError(f"line {line_no}: not a row of numbers: {ln[:60]!r}", path) from None
            if len(rows[-1]) < (3 if rtype == "FXYE" else 2):
                raise InputError(f"line {line_no}: {rtype} rows need {3 if rtype == 'FXYE' else 2} columns", path)
        a = np.asarray(rows)
        return a[:, 0] / 100.0, a[:, 1], (a[:, 2] if rtype == "FXYE" else None)
    xs, ys, ss = [], [], []
    for line_no, ln in body:
        ln = ln.rstrip("\n").ljust(80)
        if rtype == "ESD":
            f = _fixed(ln, [8] * 10)
            for j in range(0, 10, 2):
                if f[j].strip():
                    ys.append(_num(f[j], path, line_no))
                    ss.append(_num(f[j + 1], path, line_no))
        elif rtype == "ALT":
            f = _fixed(ln, [8, 7, 5] * 4)
            for j in range(0, 12, 3):
                if f[j].strip():
                    xs.append(_num(f[j], path, line_no) / 100.0)
                    ys.append(_num(f[j + 1], path, line_no))
                    ss.append(_num(f[j + 2], path, line_no))
        else:  # STD: (10(I2,F6.0)): a counter count (blank = 1) and the intensity
            f = _fixed(ln, [2, 6] * 10)
            for j in range(0, 20, 2):
                if f[j + 1].strip():
                    nc = _num(f[j], path, line_no) or 1.0
                    v = _num(f[j + 1], path, line_no)
                    ys.append(v)
                    ss.append(np.sqrt(max(v, 1.0) / nc) if nc > 0 else 0.0)
    y = np.asarray(ys[:nchan] if nchan else ys, float)
    s = np.asarray(ss[:y.size], float)
    if rtype == "ALT":
        return np.asarray(xs[:y.size]), y, s
    return (start_cdeg + step_cdeg * np.arange(y.size)) / 100.0, y, s
