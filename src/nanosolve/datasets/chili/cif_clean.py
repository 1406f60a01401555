"""CHILI-100K style CIF intake: text-level cleaning, loading through the CHILI filters, folder screening.

CIFs from the Crystallography Open Database carry a few recurring defects that make readers
either fail or build the wrong cell. :func:`clean_cif_text` repairs them on the text, before any
parser sees it, and records every change:

1. unclosed standard-uncertainty brackets anywhere: ``0.1234(5`` -> ``0.1234(5)``, ``0.1234(`` -> ``0.1234``;
2. atom-site rows with fewer values than the loop has headers (the missing trailing columns are
   filled with ``?``), and ``?``/``.`` occupancies (set to 1, the CIF default);
3. fractional coordinates that are thirds or sixths written with too few (3-6) decimals --
   ``0.333``, ``.667``, ``0.1667``, ``0.8333`` -- rewritten at full double precision. Without this
   the symmetry expansion of an atom on a special position yields images a few hundredths of an Å
   apart that are not recognised as one site (in a 12 Å cell, 0.001 in x is 0.012 Å), i.e.
   duplicated atoms. Values with a standard uncertainty (``0.3334(3)``) are refined free
   parameters, not symmetry-fixed coordinates, and are left alone, as are halves, quarters and
   eighths (exact in short decimals);
4. element symbols written in capitals in the site-label / type-symbol columns (``FE1`` -> ``Fe1``,
   ``CL`` -> ``Cl``), only in a column that is written in capitals throughout.

Parsing and symmetry expansion are then :func:`nanosolve.structures.io.cif.read_cif`'s, and the
acceptance rules are :func:`nanosolve.datasets.chili.filters.check_crystal`'s.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ase.data import atomic_numbers as _ASE_Z

from nanosolve.datasets.chili import filters as F
from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.io.cif import read_cif, read_text

# A CIF quoted string closes only at a quote followed by whitespace, so "'O'Brien'" is one token.
_TOKEN_RE = re.compile(r"""'.*?'(?=\s|$)|".*?"(?=\s|$)|\S+""")
_OPEN_SU_RE = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\((\d*)$")
_DECIMAL_RE = re.compile(r"^([-+]?)(\d*)\.(\d+)(?:\((\d+)\))?$")
_CAPS_RE = re.compile(r"^([A-Z]{2})(?![A-Za-z])(.*)$")
_LEAD_LETTERS_RE = re.compile(r"^[A-Za-z]+")

#: Denominators of symmetry-fixed coordinates (Wyckoff positions) with no exact short decimal form.
SNAP_DENOMINATORS = (3, 6)
#: Only values written with this many decimals are snapped: two decimals are too coarse to tell a
#: special position from a general one, seven and more are precise enough for the site merge.
SNAP_DECIMALS = (3, 6)
_PLACEHOLDERS = ("?", ".")


# ----- tokens and loops -------------------------------------------------------------------------
@dataclass
class _Tok:
    line: int          # 0-based line index
    start: int         # character span in the line (-1 for a value we add)
    end: int
    text: str
    kind: str          # 'word' | 'quoted' | 'textfield' | 'pad'
    new: str | None = None

    @property
    def value(self) -> str:
        return self.text if self.new is None else self.new

    @property
    def is_tag(self) -> bool:
        return self.kind == "word" and self.text.startswith("_")

    @property
    def ends_loop(self) -> bool:
        if self.kind != "word":
            return False
        low = self.text.lower()
        return low.startswith(("_", "data_", "save_", "global_", "stop_")) or low == "loop_"


def _tokenize(lines: list[str]) -> list[_Tok]:
    toks: list[_Tok] = []
    in_text = False
    for li, line in enumerate(lines):
        if line.startswith(";"):  # a ';' in column 1 opens or closes a multi-line text field
            if not in_text:
                toks.append(_Tok(li, 0, 0, ";", "textfield"))
            in_text = not in_text
            continue
        if in_text:
            continue
        for m in _TOKEN_RE.finditer(line):
            t = m.group(0)
            if t.startswith("#"):
                break
            toks.append(_Tok(li, m.start(), m.end(), t, "quoted" if t[0] in "'\"" else "word"))
    return toks


def _loops(toks: list[_Tok]) -> list[tuple[list[str], list[_Tok]]]:
    """Every ``loop_`` as (headers as written, value tokens)."""
    out = []
    i = 0
    while i < len(toks):
        if toks[i].kind == "word" and toks[i].text.lower() == "loop_":
            j = i + 1
            headers = []
            while j < len(toks) and toks[j].is_tag:
                headers.append(toks[j].text)
                j += 1
            values = []
            while j < len(toks) and not toks[j].ends_loop:
                values.append(toks[j])
                j += 1
            out.append((headers, values))
            i = j
        else:
            i += 1
    return out


def _rows(values: list[_Tok], n: int) -> list[list[_Tok]] | None:
    """Split loop values into rows, a row never continuing onto a line that would overfill it.

    Rows may wrap over several lines (legal CIF); a line whose values cannot continue the current
    row starts a new one, so the row before it was short. None if the layout is not line-based
    (a line holding more values than one row) and the values do not divide into rows.
    """
    by_line: dict[int, list[_Tok]] = {}
    for t in values:
        by_line.setdefault(t.line, []).append(t)
    if any(len(v) > n for v in by_line.values()):
        if len(values) % n:
            return None
        return [values[k:k + n] for k in range(0, len(values), n)]
    rows, cur = [], []
    for line_vals in by_line.values():
        if cur and len(cur) + len(line_vals) > n:
            rows.append(cur)
            cur = []
        cur = cur + line_vals
        if len(cur) == n:
            rows.append(cur)
            cur = []
    if cur:
        rows.append(cur)
    return rows


# ----- individual fixes -------------------------------------------------------------------------
def _snap_fraction(text: str) -> str | None:
    """Full-precision form of a short-written multiple of 1/6 (thirds, sixths), or None."""
    m = _DECIMAL_RE.match(text)
    if not m:
        return None
    sign, ip, fp, su = m.groups()
    k = len(fp)
    if su is not None or not SNAP_DECIMALS[0] <= k <= SNAP_DECIMALS[1]:
        return None
    written = int(ip or "0") * 10**k + int(fp)  # the value in units of 10^-k, exactly
    for d in SNAP_DENOMINATORS:
        f = Fraction(round(written * d / 10**k), d)
        if f.denominator in (1, 2):  # terminating decimal: the short form is already exact
            continue
        num, den = f.numerator * 10**k, f.denominator
        truncated, rounded = num // den, (2 * num + den) // (2 * den)
        if written in (truncated, rounded):
            return f"{'-' if sign == '-' else ''}{float(f)!r}"
    return None


def _capitalised_symbol(text: str) -> str | None:
    """``'FE1'`` -> ``'Fe1'``, ``'CL'`` -> ``'Cl'``; None if the two capitals are not an element."""
    m = _CAPS_RE.match(text)
    if not m:
        return None
    sym = m.group(1).capitalize()
    return sym + m.group(2) if sym in _ASE_Z and sym != "X" else None


def _all_caps_column(rows: list[list[_Tok]], col: int) -> bool:
    """True if no value of the column has a lower-case letter in its leading letters."""
    seen = False
    for r in rows:
        if col < len(r):
            m = _LEAD_LETTERS_RE.match(r[col].value)
            if m:
                if m.group(0) != m.group(0).upper():
                    return False
                seen = True
    return seen


def _fix_atom_site_loop(headers: list[str], values: list[_Tok], fixes: list[str],
                        inserts: dict[int, list[tuple[int, list[_Tok]]]]) -> None:
    n = len(headers)
    rows = _rows(values, n)
    if rows is None:
        return
    col = {h.lower(): k for k, h in enumerate(headers)}
    lab_col = col.get("_atom_site_label", col.get("_atom_site_aniso_label"))

    def name(r: list[_Tok]) -> str:
        return r[lab_col].value if lab_col is not None and lab_col < len(r) else f"row at line {r[0].line + 1}"

    for r in rows:
        if len(r) < n and r[-1].kind != "textfield":  # nowhere safe to put values after a text field
            missing = headers[len(r):]
            last = r[-1]
            pads = [_Tok(last.line, -1, -1, "?", "pad") for _ in missing]
            inserts.setdefault(last.line, []).append((last.end, pads))
            fixes.append(f"line {last.line + 1}: atom site {name(r)!r} has {len(r)} of {n} values; "
                         f"filled {', '.join(missing)} with '?'")
            r.extend(pads)

    for h in ("_atom_site_label", "_atom_site_type_symbol", "_atom_site_aniso_label", "_atom_site_aniso_type_symbol"):
        k = col.get(h)
        if k is None or not _all_caps_column(rows, k):
            continue
        for r in rows:
            if k >= len(r):
                continue
            t = r[k]
            new = _capitalised_symbol(t.value) if t.kind == "word" else None
            if new and new != t.value:
                fixes.append(f"line {t.line + 1}: {h} {t.value!r} -> {new!r} (element symbol in capitals)")
                t.new = new

    if not all(f"_atom_site_fract_{c}" in col for c in "xyz") or any(len(r) < n for r in rows):
        return
    for r in rows:
        for c in "xyz":
            t = r[col[f"_atom_site_fract_{c}"]]
            new = _snap_fraction(t.value) if t.kind == "word" else None
            if new:
                fixes.append(f"line {t.line + 1}: {name(r)} fract_{c} {t.value} -> {new} (short-written fraction)")
                t.new = new
        k = col.get("_atom_site_occupancy")
        if k is not None and r[k].value in _PLACEHOLDERS:
            fixes.append(f"line {r[k].line + 1}: {name(r)} occupancy {r[k].value!r} -> '1' (CIF default)")
            r[k].new = "1"


def clean_cif_text(text: str) -> tuple[str, list[str]]:
    """Repair the CIF defects listed in the module docstring.

    Args:
        text: CIF file contents.

    Returns:
        ``(cleaned_text, fixes)``: the repaired text (identical to ``text`` when nothing needed
        fixing) and one human-readable line per change, naming the 1-based line number.
    """
    lines = text.splitlines(keepends=True)
    toks = _tokenize(lines)
    fixes: list[str] = []
    for t in toks:
        if t.kind != "word" or t.is_tag:
            continue
        m = _OPEN_SU_RE.match(t.text)
        if m:
            t.new = f"{m.group(1)}({m.group(2)})" if m.group(2) else m.group(1)
            fixes.append(f"line {t.line + 1}: unclosed bracket {t.text!r} -> {t.new!r}")
    inserts: dict[int, list[tuple[int, list[_Tok]]]] = {}
    for headers, values in _loops(toks):
        low = {h.lower() for h in headers}
        if values and ("_atom_site_fract_x" in low or "_atom_site_aniso_label" in low):
            _fix_atom_site_loop(headers, values, fixes, inserts)

    edits: dict[int, list[tuple[int, int, str]]] = {}
    for t in toks:
        if t.kind in ("word", "quoted") and t.new is not None and t.new != t.text:
            edits.setdefault(t.line, []).append((t.start, t.end, t.new))
    for li, items in inserts.items():
        for pos, pads in items:
            edits.setdefault(li, []).append((pos, pos, "".join(" " + p.value for p in pads)))
    fixes.sort(key=lambda f: int(f.split(":", 1)[0].split()[1]))  # by line; stable within a line
    if not edits:
        return text, fixes
    for li, items in edits.items():
        line = lines[li]
        for start, end, new in sorted(items, key=lambda e: (e[0], e[1]), reverse=True):
            line = line[:start] + new + line[end:]
        lines[li] = line
    return "".join(lines), fixes


# ----- loading and screening ----------------------------------------------------------------------
class RejectedCIF(InputError):
    """A CIF that cannot be read or breaks a CHILI-100K rule. ``reason`` is one of ``filters.REASONS``."""

    def __init__(self, reason: str, detail: str, path, fixes: list[str] | None = None):
        self.reason = reason
        self.detail = detail
        self.fixes = list(fixes or [])
        super().__init__(f"{reason}: {detail}" if detail else reason, path)


def _classify(problem: str) -> str:
    """Reject reason for a reader error message (read_cif's wording)."""
    p = problem.lower()
    if "file is empty" in p:
        return F.R_EMPTY
    if "not found" in p:
        return F.R_UNREADABLE
    if p.startswith("not a cif"):
        return F.R_NOT_CIF
    if "unknown element" in p:
        return F.R_UNKNOWN_ELEMENT
    if "non-numeric coordinates" in p:
        return F.R_MISSING_COORDS
    if "no crystal structure" in p or "no atoms" in p:
        return F.R_NO_ATOMS
    return F.R_MALFORMED


def load_clean_crystal(path: str | os.PathLike) -> Crystal:
    """Clean, parse and filter one CIF file; the crystal if CHILI-100K accepts it.

    Returns:
        The :class:`Crystal` (symmetry-expanded, P1) with ``properties['source']`` (the path) and
        ``properties['cif_fixes']`` (the cleaning log); reader warnings go to
        ``properties['read_warnings']`` instead of the warnings machinery.

    Raises:
        RejectedCIF (an :class:`InputError`): message ``"<path>: <reason>: <detail>"``, with
        ``.reason`` (one of ``filters.REASONS``), ``.detail`` and ``.fixes``.
    """
    path = Path(path)
    try:
        raw, _ = read_text(path)
    except InputError as exc:
        raise RejectedCIF(_classify(exc.problem), exc.problem, path) from None
    except OSError as exc:
        raise RejectedCIF(F.R_UNREADABLE, f"{type(exc).__name__}: {exc}", path) from None
    cleaned, fixes = clean_cif_text(raw)
    if "\n" not in cleaned:  # read_cif takes a newline-free string for a file name
        cleaned += "\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            crystals = read_cif(cleaned)
        except InputError as exc:
            raise RejectedCIF(_classify(exc.problem), exc.problem, path, fixes) from None
        except Exception as exc:  # one odd file must not stop a 100k-file screen
            raise RejectedCIF(F.R_MALFORMED, f"{type(exc).__name__}: {exc}", path, fixes) from None
    if len(crystals) > 1:
        raise RejectedCIF(F.R_SEVERAL, f"{len(crystals)} structure blocks ({', '.join(c.name for c in crystals)})",
                          path, fixes)
    crystal = crystals[0]
    crystal.properties["source"] = str(path)
    crystal.properties["cif_fixes"] = list(fixes)
    if caught:
        crystal.properties["read_warnings"] = [str(w.message) for w in caught]
    verdict = F.check_crystal(crystal)
    if verdict is not None:
        raise RejectedCIF(verdict[0], verdict[1], path, fixes)
    return crystal


@dataclass
class ScreenResult:
    """Outcome for one CIF: the crystal if accepted, else the reject ``reason`` (+ ``detail``)."""

    path: Path
    crystal: Crystal | None
    accepted: bool
    reason: str | None
    fixes: list[str] = field(default_factory=list)
    detail: str = ""


def screen_cif(path: str | os.PathLike) -> ScreenResult:
    """:func:`load_clean_crystal` that reports instead of raising."""
    path = Path(path)
    try:
        crystal = load_clean_crystal(path)
    except RejectedCIF as exc:
        return ScreenResult(path, None, False, exc.reason, exc.fixes, exc.detail)
    return ScreenResult(path, crystal, True, None, list(crystal.properties["cif_fixes"]))


def list_cifs(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """``*.cif`` files (any case) in ``folder``, sorted by their path relative to it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("CIF folder not found", folder)
    it = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in it if p.suffix.lower() == ".cif" and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def screen_folder(folder: str | os.PathLike, recursive: bool = False,
                  workers: int = 1) -> tuple[list[ScreenResult], list[ScreenResult]]:
    """Screen every CIF of a folder: ``(accepted, rejected)``, each in file-name order.

    ``workers > 1`` screens in a process pool; results are identical and in the same order.
    """
    files = list_cifs(folder, recursive)
    if workers > 1 and len(files) > 1:
        from concurrent.futures import ProcessPoolExecutor

        from nanosolve._workers import pool_kwargs

        with ProcessPoolExecutor(max_workers=workers, **pool_kwargs()) as pool:  # workers die with us
            results = list(pool.map(screen_cif, files, chunksize=max(1, len(files) // (4 * workers))))
    else:
        results = [screen_cif(p) for p in files]
    return [r for r in results if r.accepted], [r for r in results if not r.accepted]


def reject_summary(rejected: list[ScreenResult]) -> dict[str, int]:
    """Reason -> number of files, most frequent first (ties by name)."""
    counts = Counter(r.reason for r in rejected)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a reader sees the old file or the complete new one, never a half
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_reject_report(rejected: list[ScreenResult], path: str | os.PathLike,
                        summary_path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write the reject list (CSV: ``file,reason,detail``, one row per file) and a JSON summary.

    Both files are written atomically. The summary (default: ``path`` with suffix ``.json``) is
    ``{"n_rejected": N, "reasons": {reason: count}}``. Returns ``(csv_path, json_path)``.
    """
    path = Path(path)
    summary_path = Path(summary_path) if summary_path is not None else path.with_suffix(".json")
    if summary_path == path:
        raise InputError("summary path must differ from the CSV path", path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "reason", "detail"])
    for r in rejected:
        w.writerow([str(r.path), r.reason, r.detail])
    _atomic_write(path, buf.getvalue())
    summary = {"n_rejected": len(rejected), "reasons": reject_summary(rejected)}
    _atomic_write(summary_path, json.dumps(summary, indent=2) + "\n")
    return path, summary_path
