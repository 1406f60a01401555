"""Measured-pattern readers: column text, PDF (.gr/.sq/.fq/.iq) files and IUCr powder CIFs.

:func:`read_pattern` dispatches on the extension, then on the content for anything else:
``.cif/.pdcif/.rtv`` -> pdCIF, ``.gr/.fgr/.sq/.fq/.iq`` -> PDF text, ``.xy/.xye/.dat/.csv/.chi/.txt``
-> column text, ``.xrdml/.brml/.raw/.gsa/.gss/.fxye/.fxy`` -> diffractometer files (:mod:`.lab`);
unknown extensions are sniffed (diffractometer-file signatures, then ``data_`` + ``_pd_`` items ->
pdCIF, ``#### start data``/``[DEFAULT]`` -> PDF text, else column text; an unknown binary file is an
InputError listing the formats read).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.columns import read_columns, read_lines
from nanosolve.scattering.readers.gr import PDF_EXTENSIONS, looks_like_pdf_header, read_gr
from nanosolve.scattering.readers.lab import LAB_EXTENSIONS, is_binary, lab_reader, read_lab
from nanosolve.scattering.readers.pdcif import read_pdcif_fit, read_pdcif_patterns
from nanosolve.scattering.readers.validate import validate_pattern  # every reader's result passes here

__all__ = ["read_pattern", "read_patterns", "read_columns", "read_gr", "read_pdcif_patterns", "read_pdcif_fit",
           "read_lab", "PATTERN_EXTENSIONS"]

CIF_EXTENSIONS = (".cif", ".pdcif", ".rtv")
COLUMN_EXTENSIONS = (".xy", ".xye", ".dat", ".csv", ".chi", ".txt", ".asc")
#: Every extension read as a pattern (diffractometer files: :mod:`.lab`).
PATTERN_EXTENSIONS = CIF_EXTENSIONS + tuple(PDF_EXTENSIONS) + COLUMN_EXTENSIONS + LAB_EXTENSIONS


def _format(path: str) -> str:
    """'lab', 'cif', 'pdf' or 'columns' for a file; InputError for an unknown binary file."""
    name = Path(path).name.lower()
    ext = Path(path).suffix.lower()
    if lab_reader(path, sniff=ext not in CIF_EXTENSIONS + COLUMN_EXTENSIONS + tuple(PDF_EXTENSIONS)):
        return "lab"
    if ext in CIF_EXTENSIONS or ".cif." in name:
        return "cif"
    if ext in PDF_EXTENSIONS:
        return "pdf"
    if ext in COLUMN_EXTENSIONS:
        return "columns"
    if is_binary(path):
        raise InputError(f"unknown pattern file format{' ' + repr(ext) if ext else ''}; nanosolve reads "
                         f"{' '.join(PATTERN_EXTENSIONS)} (see docs/formats.md)", path)
    lines = read_lines(path)
    head = "\n".join(lines[:2000])
    if re.search(r"^\s*data_\S", head, re.MULTILINE) and "_pd_" in head:
        return "cif"
    if looks_like_pdf_header(lines):
        return "pdf"
    return "columns"


def read_pattern(path: str | os.PathLike, wavelength=None, kind: str | None = None,
                 x_unit: str | None = None) -> Pattern:
    """One measured pattern from a file.

    Args:
        path: file path.
        wavelength: Å or a tube name (``'CuKa1'``); used when the file states none.
        kind: pattern kind override (``xrd nd saxs sans iq sq fq gr``).
        x_unit: ``'tth'``, ``'q'`` or ``'r'`` override for column text (a CIF states its own).

    Returns:
        :class:`Pattern` with ``metadata['source']``; for a pdCIF the first block with measured
        intensities, observed columns only (its Rietveld fit: :func:`read_pdcif_fit`).

    Raises:
        InputError: missing/empty/malformed file (naming the file and the line where known).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path)
    return validate_pattern(_read_one(path, wavelength, kind, x_unit), path)


def _read_one(path: str, wavelength, kind, x_unit) -> Pattern:
    fmt = _format(path)
    if fmt == "lab":
        return read_lab(path, wavelength=wavelength, kind=kind)[0]
    if fmt == "cif":
        return read_pdcif_patterns(path, wavelength=wavelength, kind=kind)[0]
    if fmt == "pdf":
        return read_gr(path, wavelength=wavelength, kind=kind, x_unit=x_unit)
    return read_columns(path, wavelength=wavelength, kind=kind, x_unit=x_unit)


def read_patterns(path: str | os.PathLike, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every measured pattern in a file: each measured profile block of a pdCIF (calculated-only
    blocks are :func:`read_pdcif_fit`'s); a one-element list for single-pattern formats."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path)
    fmt = _format(path)
    if fmt == "lab":
        return [validate_pattern(p, path) for p in read_lab(path, wavelength=wavelength, kind=kind)]
    if fmt == "cif":
        return [validate_pattern(p, path) for p in read_pdcif_patterns(path, wavelength=wavelength, kind=kind)]
    return [read_pattern(path, wavelength=wavelength, kind=kind)]
