"""PDF-family text files: ``.gr`` (G(r)), and PDFgetX3's ``.iq``/``.sq``/``.fq`` siblings.

Headers understood (all optional): PDFgetX3 / xPDFsuite ``[DEFAULT]``-style ``key = value``
lines ending at ``#### start data``, DiffPy/PDFgui ``History written`` blocks with
``##### start data``, ``#L r G(r) dr dG`` column names, and plain ``# r, G(r)`` comments.
Key/values go to ``metadata['header']`` (numbers as floats, keys lower case); ``qmax``,
``qmin``, ``qdamp``, ``qbroad``, ``rpoly``, ``composition`` are also copied to the top level of
the metadata. Columns: x, y, then either dy (3 columns) or dx, dy (4 columns, DiffPy order);
dy becomes ``sigma``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.columns import build_pattern, parse_numeric_block, read_lines

# extension -> (kind, x unit)
PDF_EXTENSIONS = {".gr": ("gr", "r"), ".fgr": ("gr", "r"), ".sq": ("sq", "q"), ".fq": ("fq", "q"),
                  ".iq": ("iq", "q")}
_START_RE = re.compile(r"^\s*#+\s*start\s+data", re.IGNORECASE)
_KV_RE = re.compile(r"^[#\s]*([A-Za-z_][\w.\- ]{0,40}?)\s*[=:]\s*(\S.*?)\s*$")
_PROMOTED = ("qmax", "qmin", "qmaxinst", "qdamp", "qbroad", "rpoly", "composition", "mode", "dataformat")


def looks_like_pdf_header(lines: list[str]) -> bool:
    """True for PDFgetX3/DiffPy-style headers (content sniffing for unknown extensions)."""
    head = lines[:400]
    return any(_START_RE.match(ln) for ln in head) or any(ln.strip() == "[DEFAULT]" for ln in head[:5])


def _header_values(lines: list[str]) -> dict:
    out: dict = {}
    for ln in lines:
        s = ln.strip()
        if not s or s.startswith("[") or s.startswith("#L") or s.startswith("#S"):
            continue
        m = _KV_RE.match(s)
        if not m:
            continue
        key, val = m.group(1).strip().lower(), m.group(2).strip()
        try:
            out[key] = float(val)
        except ValueError:
            out[key] = val
    return out


def read_gr(path, wavelength=None, kind: str | None = None, x_unit: str | None = None) -> Pattern:
    """Read a ``.gr`` (or ``.sq``/``.fq``/``.iq``) file into a Pattern.

    Args:
        path: file path.
        wavelength: Å, used only if the header has no ``wavelength``.
        kind, x_unit: override the extension's defaults (``.gr`` -> ``'gr'``, ``'r'``).

    Returns:
        Pattern(kind='gr', x_unit='r' for .gr) with header key/values in ``metadata['header']``.
    """
    path = os.fspath(path)
    lines = read_lines(path)
    ext_kind, ext_unit = PDF_EXTENSIONS.get(Path(path).suffix.lower(), ("gr", "r"))
    kind = kind or ext_kind
    unit = x_unit or ext_unit
    start = next((i for i, ln in enumerate(lines) if _START_RE.match(ln)), None)
    if start is not None:
        head_lines, body, first = lines[:start], lines[start + 1:], start + 2
    else:
        head_lines, body, first = [], lines, 1
    data, comments, _ = parse_numeric_block(body, path, first_line_no=first, header_allowed=start is None)
    header_text_lines = head_lines + comments
    values = _header_values(header_text_lines)
    if data.shape[1] > 4:
        raise InputError(f"{data.shape[1]} columns; a PDF file has x, y and at most dx, dy", path)
    sigma_col = {3: 2, 4: 3}.get(data.shape[1])
    wl = values.get("wavelength")
    wl = float(wl) if isinstance(wl, float) and wl > 0 else None
    meta = {"header": values, "header_lines": header_text_lines}
    for k in _PROMOTED:
        if k in values:
            meta[k] = values[k]
    columns = next((c[2:].split() for c in comments if c.startswith("#L")), None)
    if columns:
        meta["columns"] = columns
    pat = build_pattern(data, unit, 1.0, header_text_lines, path, wl, wavelength, kind, sigma_col=sigma_col)
    pat.metadata.update(meta)
    mode = str(values.get("mode", "")).lower()
    if mode in ("xray", "x-ray", "neutron"):
        pat.radiation = "neutron" if mode == "neutron" else "xray"
    if data.shape[1] == 4:
        pat.metadata["dx"] = data[:, 2].copy()
    return pat
