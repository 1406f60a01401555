"""Diffractometer files: which reader takes a file (by extension, else by its first bytes).

=========  ==========================================  ==========================================
extension  written by                                  reader
=========  ==========================================  ==========================================
.xrdml     Panalytical X'Pert / Empyrean / Aeris       :func:`.xrdml.read_xrdml`
.brml      Bruker DIFFRAC.SUITE (zip of XML)           :func:`.bruker.read_brml`
.raw       Bruker DIFFRAC RAW v4 (binary) or GSAS      :func:`.bruker.read_raw` / :func:`.gsas.read_gsas`
.gsa .gss  GSAS / GSAS-II / EXPGUI (BANK format)       :func:`.gsas.read_gsas`
.fxye .fxy
=========  ==========================================  ==========================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.bruker import read_brml, read_raw
from nanosolve.scattering.readers.gsas import looks_like_gsas, read_gsas
from nanosolve.scattering.readers.xrdml import read_xrdml

GSAS_EXTENSIONS = (".gsa", ".gss", ".gsas", ".fxye", ".fxy")
LAB_EXTENSIONS = (".xrdml", ".brml", ".raw") + GSAS_EXTENSIONS


def _read_raw_any(path, wavelength=None, kind=None) -> list[Pattern]:
    """``.raw`` is Bruker's binary RAW or a GSAS text file: the first bytes decide."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"RAW"):
        return read_raw(path, wavelength, kind)
    return read_gsas(path, wavelength, kind)


_BY_EXT: dict[str, Callable[..., list[Pattern]]] = {
    ".xrdml": read_xrdml, ".brml": read_brml, ".raw": _read_raw_any,
    **{e: read_gsas for e in GSAS_EXTENSIONS},
}


def _sniff(path: str) -> Callable[..., list[Pattern]] | None:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"RAW"):
        return read_raw
    if head.startswith(b"PK\x03\x04"):
        return read_brml
    text = head.decode("latin-1")
    if "<xrdMeasurements" in text:
        return read_xrdml
    if looks_like_gsas(text.splitlines()):
        return read_gsas
    return None


def lab_reader(path: str | os.PathLike, sniff: bool = True) -> Callable[..., list[Pattern]] | None:
    """The diffractometer-file reader for ``path`` (by extension; else, if ``sniff``, by content), or None."""
    path = os.fspath(path)
    reader = _BY_EXT.get(Path(path).suffix.lower())
    if reader is None and sniff and os.path.isfile(path):
        reader = _sniff(path)
    return reader


def read_lab(path: str | os.PathLike, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every scan / range / bank of a diffractometer file as Patterns on 2θ (degrees)."""
    path = os.fspath(path)
    reader = lab_reader(path)
    if reader is None:
        raise InputError("not a diffractometer file nanosolve reads (.xrdml, .brml, Bruker RAW4, GSAS)", path)
    return reader(path, wavelength=wavelength, kind=kind)


def is_binary(path: str | os.PathLike) -> bool:
    """True when the first KiB holds NUL bytes (not a text file)."""
    with open(path, "rb") as fh:
        return b"\0" in fh.read(1024)
