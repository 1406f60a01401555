"""Bruker DIFFRAC files: ``.brml`` (DIFFRAC.SUITE, a zip of XML) and ``.raw`` version 4 (binary).

BRML: each ``*/RawData*.xml`` member is one scan. Its ``DataRoutes/DataRoute`` holds
``Datum`` rows of comma-separated numbers; the 2θ column is found from the scan's
``ScaleAxisInfo AxisId="TwoTheta"`` start/increment (the column whose values match), the counts are
the last column. The wavelength is the tube's ``WaveLengthAlpha1`` (``Value`` attribute, Å) from
``FixedInformation``; Kα2, ratio, step, time per step go to ``metadata``.

RAW v4 (magic ``RAW4.00``): after a 61-byte preamble, a chain of ``(uint32 type, uint32 length)``
records; type 10 holds a key (24 bytes at +12) and its value (from +36), type 30 the tube
(float64 Kα average, Kα1, Kα2, Kβ, Kα2/Kα1 ratio from +72). A record type of 0 or 160 starts a
range: scan type text at +32 (24 bytes); from p = +72: float64 start 2θ, float64 step, uint32
points (p+16), float32 time per step in ms (p+20), float64 wavelength (p+40), uint32 bytes per
point (p+64), uint32 size of the drive records that follow the 88-byte block (p+68); then the
points, each starting with its float32 intensity. Older RAW versions (``RAW ``, ``RAW2``,
``RAW1.01``) are refused with a message.

``xylib-py`` reads these formats but does not build on this platform (no wheel, C++ source build
fails) and ``fabio`` reads 2-D detector images only, so these are small parsers of their own.
"""

from __future__ import annotations

import os
import re
import struct
import xml.etree.ElementTree as ET
import zipfile

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.columns import resolve_wavelength


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _iter(el, name: str):
    return (c for c in el.iter() if _local(c.tag) == name)


def _attr_float(el, name="Value") -> float | None:
    try:
        return float(el.get(name)) if el is not None and el.get(name) is not None else None
    except ValueError:
        return None


def _text_float(el) -> float | None:
    try:
        return float(el.text) if el is not None and el.text is not None else None
    except ValueError:
        return None


def _first(el, name: str):
    return next(_iter(el, name), None)


# ----- BRML ----------------------------------------------------------------------------------------
def read_brml(path, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every scan (``RawData*.xml``) of a BRML file as a Pattern on 2θ (degrees)."""
    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError("not a BRML file (BRML is a zip archive of XML files)", path) from None
    with zf:
        names = sorted((n for n in zf.namelist() if re.search(r"(^|/)RawData\d*\.xml$", n)),
                       key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])
        if not names:
            raise InputError("BRML archive holds no RawData*.xml scan", path)
        out = []
        for k, name in enumerate(names):
            try:
                root = ET.fromstring(zf.read(name))
            except ET.ParseError as exc:
                raise InputError(f"{name} is not readable XML: {exc}", path) from None
            out.append(_brml_scan(root, path, name, k, len(names), wavelength, kind))
    return out


def _brml_scan(root, path, member, k, n_scans, wavelength, kind) -> Pattern:
    rows = []
    for d in _iter(root, "Datum"):
        try:
            rows.append([float(v) for v in (d.text or "").split(",")])
        except ValueError:
            raise InputError(f"{member}: a <Datum> row holds non-numbers: {(d.text or '')[:60]!r}", path) from None
    if not rows:
        raise InputError(f"{member}: no <Datum> rows", path)
    if len({len(r) for r in rows}) != 1:
        raise InputError(f"{member}: <Datum> rows differ in column count", path)
    data = np.asarray(rows)
    axis = next((a for a in _iter(root, "ScaleAxisInfo")
                 if (a.get("AxisId") or a.get("AxisName") or "").lower() in ("twotheta", "2theta")), None)
    start = _text_float(_first(axis, "Start")) if axis is not None else None
    step = _text_float(_first(axis, "Increment")) if axis is not None else None
    col = None
    if start is not None and step:
        expect = start + step * np.arange(len(rows))
        for j in range(data.shape[1] - 1):
            if np.allclose(data[:, j], expect, atol=max(abs(step) * 0.5, 1e-6)):
                col = j
                break
    if col is None:
        if start is not None and step:
            raise InputError(f"{member}: no <Datum> column follows the 2θ axis ({start:g} + {step:g}·i)", path)
        raise InputError(f"{member}: no 2θ (TwoTheta) scale axis", path)
    tth, y = data[:, col], data[:, -1]
    tube = _first(root, "Tube")
    ka1 = _attr_float(_first(tube, "WaveLengthAlpha1")) if tube is not None else None
    ka2 = _attr_float(_first(tube, "WaveLengthAlpha2")) if tube is not None else None
    ratio = _attr_float(_first(tube, "WaveLengthRatio")) if tube is not None else None
    time_el = _first(root, "TimePerStep")
    md = {"source": path, "format": "brml", "member": member, "scan": k + 1, "n_scans": n_scans, "step": step,
          "time_per_step_s": _text_float(time_el), "wavelength_kAlpha1": ka1, "wavelength_kAlpha2": ka2,
          "wavelength_ratio": ratio}
    wl = resolve_wavelength(ka1, wavelength, path)
    sigma = np.sqrt(np.clip(y, 1.0, None)) if np.allclose(y, np.round(y)) else None
    return Pattern(tth, y, kind or "xrd", "tth", wl, sigma=sigma, metadata=md)


# ----- RAW v4 --------------------------------------------------------------------------------------
RAW4_MAGIC = b"RAW4.00"
_RAW_PREAMBLE = 61
_OLDER = {b"RAW1.01": "3", b"RAW2": "2", b"RAW ": "1"}


def _unpack(fmt, buf, at, path, what):
    try:
        return struct.unpack_from(fmt, buf, at)
    except struct.error:
        raise InputError(f"file ends inside {what} (offset {at}); truncated or not a RAW4 file", path) from None


def _cstr(buf: bytes, at: int, n: int) -> str:
    return buf[at:at + n].split(b"\0")[0].decode("latin-1").strip()


def read_raw(path, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every range of a Bruker RAW version 4 file as a Pattern on 2θ (degrees)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        buf = fh.read()
    if not buf.startswith(RAW4_MAGIC):
        for magic, ver in _OLDER.items():
            if buf.startswith(magic):
                raise InputError(f"Bruker RAW version {ver} file; nanosolve reads RAW version 4 (RAW4.00) and "
                                 "BRML: export the scan from DIFFRAC as one of those, or as .xy", path)
        raise InputError(f"not a Bruker RAW file (starts with {buf[:8]!r}, expected {RAW4_MAGIC!r})", path)
    keys: dict[str, str] = {}
    tube: tuple = ()
    ranges = []
    at = _RAW_PREAMBLE
    while at + 4 <= len(buf):
        (rtype,) = _unpack("<I", buf, at, path, "a record type")
        if rtype in (0, 160):
            p = at + 72
            start, step = _unpack("<dd", buf, p, path, "a range's start and step")
            (n,) = _unpack("<I", buf, p + 16, path, "a range's point count")
            (ms,) = _unpack("<f", buf, p + 20, path, "a range's step time")
            (wl_range,) = _unpack("<d", buf, p + 40, path, "a range's wavelength")
            size, hdr = _unpack("<II", buf, p + 64, path, "a range's record sizes")
            if n < 1 or size < 4 or size % 4 or not np.isfinite(step) or step == 0:
                raise InputError(f"range {len(ranges) + 1} at offset {at}: {n} points of {size} bytes, step "
                                 f"{step!r}; not a RAW4 range", path)
            data_at = p + 88 + hdr
            end = data_at + n * size
            if end > len(buf):
                raise InputError(f"range {len(ranges) + 1} needs {end} bytes, the file has {len(buf)}; truncated",
                                 path)
            y = np.frombuffer(buf, dtype="<f4", count=n * (size // 4), offset=data_at).reshape(n, size // 4)[:, 0]
            ranges.append({"scan_type": _cstr(buf, at + 32, 24), "start": start, "step": step, "n": n,
                           "time_per_step_s": ms / 1000.0 if 0 < ms < 1e9 else None,
                           "wavelength": wl_range if 0.1 < wl_range < 10 else None, "y": y.astype(float)})
            at = end
            continue
        rtype, length = _unpack("<II", buf, at, path, "a record header")
        if length < 8 or at + length > len(buf):
            raise InputError(f"record at offset {at} declares {length} bytes; truncated or not a RAW4 file", path)
        if rtype == 10:
            keys[_cstr(buf, at + 12, 24).upper()] = _cstr(buf, at + 36, length - 36)
        elif rtype == 30 and length >= 112:
            tube = _unpack("<5d", buf, at + 72, path, "the tube wavelengths")
        at += length
    if not ranges:
        raise InputError("RAW4 file holds no measured range", path)
    ka_avg, ka1, ka2, kb, ratio = tube if tube else (None,) * 5
    out = []
    for k, r in enumerate(ranges):
        tth = r["start"] + r["step"] * np.arange(r["n"])
        wl_file = ka1 if ka1 and 0.1 < ka1 < 10 else r["wavelength"]
        md = {"source": path, "format": "raw4", "range": k + 1, "n_ranges": len(ranges), "step": r["step"],
              "scan_type": r["scan_type"], "time_per_step_s": r["time_per_step_s"], "header": keys,
              "wavelength_kAlpha1": ka1, "wavelength_kAlpha2": ka2, "wavelength_kAlpha_average": ka_avg,
              "wavelength_kBeta": kb, "wavelength_ratio": ratio, "wavelength_range": r["wavelength"]}
        y = r["y"]
        sigma = np.sqrt(np.clip(y, 1.0, None)) if np.allclose(y, np.round(y)) else None
        out.append(Pattern(tth, y, kind or "xrd", "tth", resolve_wavelength(wl_file, wavelength, path),
                           sigma=sigma, metadata=md))
    return out
