"""Element data and validation (symbols, atomic numbers, radii, masses).

Values come from pymatgen's periodic table (which cites its sources per property); we only
validate and cache them so hot paths do not construct ``Element`` objects per atom.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np
from ase.data import atomic_numbers as _ASE_Z
from ase.data import chemical_symbols as _ASE_SYMBOLS

from nanosolve.errors import InputError

# The leading letters of a label are the symbol, EXACTLY (case-insensitive): 'Fe', 'FE', 'Fe1', 'Fe2+',
# 'O-2', 'Co1a'. Whatever follows must start with a digit, a sign or a separator, so a misspelt
# symbol ('Uuo', 'Ww', 'Xx') is refused instead of matched by its first letter(s).
_SYMBOL_RE = re.compile(r"^([A-Za-z]+)([0-9+\-_.()'*#:,;].*)?$")


def normalize_symbol(raw: str, path=None) -> str:
    """Return the element symbol in a species label such as ``'FE'``, ``'Fe2+'``, ``'Fe1'`` or ``'O-2'``.

    The letters before the first digit/sign/separator must be an element symbol exactly:
    ``'Uuo'``, ``'Ww'`` or ``'Xx'`` are refused (no prefix matching).
    Raises InputError (naming ``path`` if given) for anything that is not an element.
    """
    sym = _symbol_of(str(raw).strip())
    if sym is None:
        raise InputError(f"unknown element {raw!r}", path)
    return sym


@lru_cache(maxsize=4096)  # called once per atom when structures are built: keep it O(1)
def _symbol_of(raw: str) -> str | None:
    m = _SYMBOL_RE.match(raw)
    if m:
        cand = m.group(1).capitalize()
        if cand in _ASE_Z and cand != "X":
            return cand
    return None


def atomic_number(symbol: str, path=None) -> int:
    """Atomic number of an element symbol (validated)."""
    return _ASE_Z[normalize_symbol(symbol, path)]


def atomic_numbers(species, path=None) -> np.ndarray:
    """Atomic numbers (int64 [N]) of a sequence of symbols."""
    cache: dict[str, int] = {}
    out = np.empty(len(species), dtype=np.int64)
    for i, s in enumerate(species):
        z = cache.get(s)
        if z is None:
            z = cache[s] = atomic_number(s, path)
        out[i] = z
    return out


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z``."""
    if not 1 <= int(z) < len(_ASE_SYMBOLS):
        raise InputError(f"unknown atomic number {z}")
    return _ASE_SYMBOLS[int(z)]


@cache
def _pmg_element(sym: str):
    from pymatgen.core.periodic_table import Element

    return Element(sym)


@cache
def atomic_radius(sym: str) -> float:
    """Empirical atomic radius (Å, Slater 1964 via pymatgen); falls back to the calculated radius."""
    el = _pmg_element(normalize_symbol(sym))
    r = el.atomic_radius
    if r is None:
        r = el.atomic_radius_calculated
    if r is None:
        raise InputError(f"no atomic radius tabulated for {sym}")
    return float(r)


def packing_radius(sym: str) -> float:
    """Radius (Å) that scales a structure type's volume to new elements: the atomic radius, or the
    metallic radius for the few heavy actinides (Cf...) that have none; InputError if neither exists."""
    try:
        return atomic_radius(sym)
    except InputError:
        return metallic_radius(sym)


def packing_volume_ratio(old: Sequence[str], new: Sequence[str]) -> float:
    """V_new / V_old of a cell whose atoms ``old`` become ``new`` (same sites, one symbol per site):
    the ratio of the summed cubes of their :func:`packing_radius`."""
    if len(old) != len(new) or not old:
        raise InputError(f"need one new element per site: {len(old)} sites, {len(new)} elements")
    return sum(packing_radius(s) ** 3 for s in new) / sum(packing_radius(s) ** 3 for s in old)


@cache
def metallic_radius(sym: str) -> float:
    """Metallic radius (Å, 12-coordinate) from pymatgen; falls back to the atomic radius."""
    el = _pmg_element(normalize_symbol(sym))
    with warnings.catch_warnings():  # pymatgen warns for every element without a metallic radius
        warnings.simplefilter("ignore")
        r = getattr(el, "metallic_radius", None)
    try:
        r = float(r)
    except (TypeError, ValueError):
        r = None
    return r if r and r > 0 else atomic_radius(sym)


@cache
def atomic_mass(sym: str) -> float:
    """Standard atomic weight (u)."""
    return float(_pmg_element(normalize_symbol(sym)).atomic_mass)


@cache
def electron_affinity(sym: str) -> float:
    """Electron affinity (eV); 0 where pymatgen has none tabulated."""
    try:
        v = _pmg_element(normalize_symbol(sym)).electron_affinity
    except Exception:  # pymatgen raises for elements with no data
        return 0.0
    return float(v) if v is not None and np.isfinite(v) else 0.0


@cache
def is_metal(sym: str) -> bool:
    """True for metals and metalloids in pymatgen's classification (CHILI treats metalloids as metals)."""
    el = _pmg_element(normalize_symbol(sym))
    return bool(el.is_metal or el.is_metalloid)


def composition(species, occupancies) -> dict[str, float]:
    """Element -> occupancy-weighted count, in order of first appearance."""
    out: dict[str, float] = {}
    for s, o in zip(species, occupancies):
        out[s] = out.get(s, 0.0) + float(o)
    return out
