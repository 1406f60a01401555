"""The one strict chemical-formula parser of nanosolve.

``parse_formula('Sr1Ti1O3')`` -> ``{'Sr': 1, 'Ti': 1, 'O': 3}``. Accepted: element symbols written
exactly (``Mg``, not ``MG`` or ``Mgg``), each followed by an optional count (integer, or a decimal
where ``integer=False``), parentheses with a count (``Ca(OH)2``), spaces between items, an
``'El:amount, El:amount'`` list, or a ``{symbol: amount}`` dict. Refused with :class:`InputError`:
unknown symbols, a count of zero or below (``Mg0O4``), a count that is not a number, non-integer
counts where whole atoms are needed, and formulas larger than ``max_atoms`` — that cap is checked on
the parsed counts, before anything is expanded into one entry per atom, so
``Mg99999999999999999999O`` fails at once instead of allocating 10²⁰ list entries.
"""

from __future__ import annotations

import math
import re

from nanosolve.errors import InputError
from nanosolve.structures.elements import atomic_number

__all__ = ["parse_formula", "formula_atoms", "MAX_FORMULA_ATOMS"]

#: Largest total count accepted unless the caller gives another cap (a cell or composition, not a
#: bulk sample: every user of a formula here works with at most a few thousand atoms).
MAX_FORMULA_ATOMS = 10_000
#: Longest formula text looked at (longer is refused before it is tokenised).
_MAX_TEXT = 1000

_TOKEN = re.compile(r"\s*(?:(?P<el>[A-Z][a-z]*)|(?P<open>[(\[])|(?P<close>[)\]]))(?P<n>\d+\.?\d*|\.\d+)?")


def _count(raw: str | None, what: str, text: str, integer: bool, cap: float) -> float:
    if raw is None:
        return 1
    if len(raw.split(".")[0].lstrip("0")) > 12:  # cheap size check on the digits, before float()
        raise InputError(f"formula {text!r}: count {raw} of {what} is too large (at most {cap:g} atoms)")
    x = float(raw)
    if not math.isfinite(x) or x <= 0 or (integer and x < 1):
        raise InputError(f"formula {text!r}: count of {what} must be {'>= 1' if integer else '> 0'}, got {raw}"
                         + (" (whole atom counts per cell)" if integer else ""))
    if integer and x != int(x):
        raise InputError(f"formula {text!r}: count of {what} must be a whole number, got {raw} (whole atom counts per cell)")
    return int(x) if integer else x


def _check_symbol(sym: str, text: str) -> str:
    try:
        atomic_number(sym)
    except InputError:
        raise InputError(f"formula {text!r}: unknown element {sym!r}") from None
    if not re.fullmatch(r"[A-Z][a-z]?", sym):
        raise InputError(f"formula {text!r}: unknown element {sym!r}")
    return sym


def parse_formula(formula, *, integer: bool = True, max_atoms: float | None = MAX_FORMULA_ATOMS,
                  option: str | None = None) -> dict:
    """{element: count} of a formula, elements in order of first appearance.

    Args:
        formula: ``'SrTiO3'``, ``'Sr1Ti1O3'``, ``'Ca(OH)2'``, ``'Sr:1, Ti:1, O:3'`` or a dict.
        integer: counts must be whole numbers >= 1 (a cell's contents); else any number > 0.
        max_atoms: largest allowed total count (None: no cap); checked before any expansion.
        option: name of the CLI option the formula came from, prefixed to the message.

    Raises:
        InputError: empty or unreadable formula, unknown element, count <= 0 (or < 1 / fractional
            with ``integer``), more than ``max_atoms`` atoms.
    """
    try:
        counts = _parse(formula, integer, MAX_FORMULA_ATOMS if max_atoms is None else max_atoms)
        total = sum(counts.values())
        if max_atoms is not None and total > max_atoms:
            raise InputError(f"formula {_text(formula)!r} has {total:g} atoms; at most {max_atoms:g} are allowed")
    except InputError as err:
        if option:
            raise InputError(f"{option}: {err.problem}") from None
        raise
    return counts


def formula_atoms(counts: dict, max_atoms: int) -> list[str]:
    """One symbol per atom (``{'Sr': 1, 'O': 3}`` -> ``['Sr', 'O', 'O', 'O']``) after checking the
    total against ``max_atoms`` (InputError), so the list is never built for an oversized formula."""
    total = sum(counts.values())
    if total > max_atoms:
        raise InputError(f"formula has {total:g} atoms; at most {max_atoms} are allowed")
    return [el for el, n in counts.items() for _ in range(int(n))]


def _text(formula) -> str:
    return formula if isinstance(formula, str) else str(formula)


def _parse(formula, integer: bool, cap: float) -> dict:
    if isinstance(formula, dict):  # a composition vector: explicit zeros are dropped, not refused
        out: dict = {}
        for el, n in formula.items():
            sym = _check_symbol(str(el).strip(), _text(formula))
            try:
                x = float(n)
            except (TypeError, ValueError):
                raise InputError(f"formula {formula!r}: count {n!r} of {sym} is not a number") from None
            if x == 0:
                continue
            if not math.isfinite(x) or x < 0 or (integer and (x < 1 or x != int(x))):
                raise InputError(f"formula {formula!r}: count of {sym} must be "
                                 f"{'a whole number >= 1' if integer else '> 0'}, got {n!r}")
            out[sym] = out.get(sym, 0) + (int(x) if integer else x)
        if not out:
            raise InputError("the formula is empty")
        return out
    text = str(formula or "").strip()
    if not text:
        raise InputError("the formula is empty")
    if len(text) > _MAX_TEXT:
        raise InputError(f"formula of {len(text)} characters is too long (at most {_MAX_TEXT})")
    if ":" in text:  # 'El:amount, El:amount'
        out = {}
        for part in text.split(","):
            if ":" not in part:
                raise InputError(f"formula {text!r}: item {part.strip()!r} is not element:amount")
            el, amount = (s.strip() for s in part.split(":", 1))
            sym = _check_symbol(el, text)
            if not re.fullmatch(r"\d+\.?\d*|\.\d+", amount):
                raise InputError(f"formula {text!r}: amount {amount!r} of {sym} is not a number >= 0")
            out[sym] = out.get(sym, 0) + _count(amount, sym, text, integer, cap)
        return out
    stack: list[dict] = [{}]
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:].strip()
            if not rest:
                break
            raise InputError(f"cannot read formula {text!r} at {rest[:20]!r} (write elements as Mg, O, ... "
                             "each followed by its count)")
        pos = m.end()
        if m.group("el"):
            sym = _check_symbol(m.group("el"), text)
            stack[-1][sym] = stack[-1].get(sym, 0) + _count(m.group("n"), sym, text, integer, cap)
        elif m.group("open"):
            if m.group("n"):
                raise InputError(f"cannot read formula {text!r}: a count cannot follow an opening bracket")
            stack.append({})
        else:
            if len(stack) == 1:
                raise InputError(f"cannot read formula {text!r}: unbalanced brackets")
            inner = stack.pop()
            mult = _count(m.group("n"), "a bracket", text, integer, cap)
            for el, n in inner.items():
                stack[-1][el] = stack[-1].get(el, 0) + n * mult
    if len(stack) != 1:
        raise InputError(f"cannot read formula {text!r}: unbalanced brackets")
    if not stack[0]:
        raise InputError(f"formula {text!r} has no atoms")
    return stack[0]
