"""Panalytical XRDML (``.xrdml``): the XML files of X'Pert / Empyrean / Aeris diffractometers.

What is read (schema versions 1.0-2.x; the XML namespace is ignored): every ``scan`` of the first
``xrdMeasurement``; its ``dataPoints`` give the 2θ axis either as ``startPosition``/``endPosition``
(evenly spaced over the points) or as ``listPositions``, and the intensities from ``counts`` or
``intensities`` (``beamAttenuationFactors`` multiplied in when present). The wavelength is
``usedWavelength/kAlpha1`` (Å); Kα2, the Kα2/Kα1 ratio, Kβ, the intended line, the counting time,
the step and the sample name go to ``metadata``. Counted intensities get Poisson σ = √counts.

No maintained library reads XRDML (``xrdtools`` 0.1.1, from 2017, installs without the XSD
schemas it validates against and fails on every file); this is a small parser on the standard
library's ElementTree.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.columns import resolve_wavelength


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el, name: str):
    return next((c for c in el if _local(c.tag) == name), None)


def _find(el, name: str):
    return next((c for c in el.iter() if _local(c.tag) == name), None)


def _floats(text: str | None, path, what: str) -> np.ndarray:
    try:
        return np.asarray((text or "").split(), dtype=float)
    except ValueError:
        raise InputError(f"{what} holds non-numeric values", path) from None


def _float(el) -> float | None:
    try:
        return None if el is None else float(el.text)
    except (TypeError, ValueError):
        return None


def read_xrdml(path, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every scan of an XRDML file as a Pattern on 2θ (degrees).

    Args:
        path: ``.xrdml`` file.
        wavelength: Å or a tube name, used only if the file states none.
        kind: pattern kind (default ``'xrd'``).

    Raises:
        InputError: not XML, no scan, no 2θ positions, or point counts that disagree.
    """
    path = os.fspath(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"not a readable XRDML (XML) file: {exc}", path) from None
    if _local(root.tag) != "xrdMeasurements":
        raise InputError(f"not an XRDML file: the root element is <{_local(root.tag)}>, expected <xrdMeasurements>",
                         path)
    meas = _find(root, "xrdMeasurement")
    if meas is None:
        raise InputError("XRDML file holds no <xrdMeasurement>", path)
    used = _child(meas, "usedWavelength")
    wl_meta = {}
    if used is not None:
        for name in ("kAlpha1", "kAlpha2", "kBeta", "ratioKAlpha2KAlpha1"):
            v = _float(_child(used, name))
            if v is not None:
                wl_meta[name] = v
        wl_meta["intended"] = used.get("intended")
    sample = _find(root, "sample")
    sample_name = None
    if sample is not None and _child(sample, "name") is not None:
        sample_name = (_child(sample, "name").text or "").strip() or None
    wl = resolve_wavelength(wl_meta.get("kAlpha1"), wavelength, path)
    scans = [c for c in meas if _local(c.tag) == "scan"]
    if not scans:
        raise InputError("XRDML file holds no <scan>", path)
    out = []
    for k, scan in enumerate(scans):
        dp = _child(scan, "dataPoints")
        if dp is None:
            raise InputError(f"scan {k + 1} has no <dataPoints>", path)
        counts_el = _child(dp, "counts")
        y_el = counts_el if counts_el is not None else _child(dp, "intensities")
        if y_el is None:
            raise InputError(f"scan {k + 1} has neither <counts> nor <intensities>", path)
        y = _floats(y_el.text, path, f"scan {k + 1} intensities")
        n = y.size
        if n == 0:
            raise InputError(f"scan {k + 1} has no intensities", path)
        tth = None
        for pos in (c for c in dp if _local(c.tag) == "positions"):
            if pos.get("axis", "").lower() not in ("2theta", "2-theta", "2θ"):
                continue
            lst = _child(pos, "listPositions")
            if lst is not None:
                tth = _floats(lst.text, path, f"scan {k + 1} listPositions")
            else:
                a, b = _float(_child(pos, "startPosition")), _float(_child(pos, "endPosition"))
                if a is None or b is None:
                    raise InputError(f"scan {k + 1}: 2θ positions without start/end", path)
                tth = np.linspace(a, b, n)
        if tth is None:
            axis = scan.get("scanAxis")
            raise InputError(f"scan {k + 1} has no 2θ positions (scan axis {axis!r}); only 2θ scans are "
                             "powder patterns", path)
        if tth.size != n:
            raise InputError(f"scan {k + 1}: {tth.size} 2θ positions but {n} intensities", path)
        att = _child(dp, "beamAttenuationFactors")
        if att is not None:
            f = _floats(att.text, path, "beamAttenuationFactors")
            if f.size == n:
                y = y * f
        counted = (y_el.get("unit") or "counts").lower() == "counts"
        sigma = np.sqrt(np.clip(y, 1.0, None)) if counted else None
        ctime = _float(_child(dp, "commonCountingTime"))
        md = {"source": path, "format": "xrdml", "scan": k + 1, "n_scans": len(scans),
              "step": float((tth[-1] - tth[0]) / (n - 1)) if n > 1 else None, "counting_time_s": ctime,
              "sample": sample_name, "scan_axis": scan.get("scanAxis"), "intensity_unit": y_el.get("unit"),
              **{f"wavelength_{k2}": v for k2, v in wl_meta.items()}}
        out.append(Pattern(tth, y, kind or "xrd", "tth", wl, sigma=sigma, metadata=md))
    return out
