"""Composition handling of a powder solve: any multiple of the formula, the Z values to try, and
stand-in elements for the learned model.

A chemist knows the composition (Fe2O3), not the cell content (Fe4O6 in the primitive cell of
corundum, Fe12O18 in the hexagonal one). :func:`reduced_composition` reduces whatever multiple is
given; :func:`z_values` lists the formula units per cell a solve tries (Z = 1, 2, 3, 4, 6, 8, ...
up to :data:`MAX_CELL_ATOMS`).

The learned model only decodes the elements of its training set. :func:`model_stand_ins` picks, for
every other element, the known element most like it (same group or lanthanide/actinide series
first, then the closest Shannon ionic radius at the element's usual oxidation state, then the closest
atomic radius); the solve decodes with the stand-in and puts the real element back before any
pattern is simulated, so the fit and the refinement see the real scatterer.
"""

from __future__ import annotations

from functools import reduce
from math import gcd

from nanosolve.errors import InputError

#: Z values tried, in order; a cell is kept while it holds at most MAX_CELL_ATOMS atoms
Z_SEQUENCE = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
#: the largest cell (atoms) a composition-only solve searches; at least 40 as a crystallographer
#: expects of a default search (cells of 40-48 atoms are reached for formulas of 5-8 atoms)
MAX_CELL_ATOMS = 48


def parse_counts(formula: str | dict) -> dict[str, int]:
    """Element -> whole atom count of ``formula`` ('Fe2O3', 'Fe4O6', {'Fe': 2, 'O': 3}), elements
    H–Pu (Z 1-94). InputError for an unreadable formula, fractional counts or other elements."""
    from nanosolve.structures.formula import parse_formula

    counts = {str(el): int(n) for el, n in parse_formula(formula, integer=True, option="--formula").items()}
    from pymatgen.core import Element

    for el in counts:
        z = Element(el).Z
        if not 1 <= z <= 94:
            raise InputError(f"formula {formula!r}: element {el} (Z = {z}) is outside H-Pu", "--formula")
    return counts


def reduced_composition(formula: str | dict) -> dict[str, int]:
    """The formula reduced by the greatest common divisor of its counts: Fe4O6 -> {'Fe': 2, 'O': 3}."""
    counts = parse_counts(formula)
    g = reduce(gcd, counts.values())
    return {el: n // g for el, n in counts.items()}


def cell_types(reduced: dict[str, int], z: int) -> list[str]:
    """Element symbols of every atom of a cell with ``z`` formula units, sorted by atomic number
    (the order the model's decoder expects)."""
    from pymatgen.core import Element

    return sorted((el for el, n in reduced.items() for _ in range(n * int(z))), key=lambda e: Element(e).Z)


def z_values(reduced: dict[str, int], z: int | None = None, max_atoms: int = MAX_CELL_ATOMS) -> list[int]:
    """Z values a solve tries: the pinned ``z``, else every Z of :data:`Z_SEQUENCE` whose cell holds
    at most ``max(max_atoms, atoms of one formula unit)`` atoms."""
    n = sum(reduced.values())
    if z is not None:
        if int(z) < 1:
            raise InputError(f"Z must be >= 1, got {z}", "--z")
        return [int(z)]
    return [v for v in Z_SEQUENCE if v * n <= max(int(max_atoms), n)]


def _oxidation_state(el) -> int:
    """The element's most common oxidation state (0 when none is listed)."""
    states = getattr(el, "common_oxidation_states", ()) or ()
    return int(states[0]) if states else 0


def _ionic_radius(el) -> float | None:
    """Shannon ionic radius (Å) of ``el`` at its most common oxidation state, None when unknown."""
    ox = _oxidation_state(el)
    try:
        r = el.ionic_radii.get(ox) if ox else None
        if r is None and el.average_ionic_radius:
            r = float(el.average_ionic_radius)
        return float(r) if r else None
    except Exception:  # noqa: BLE001 - pymatgen lacks data for a few heavy elements
        return None


def _family(el) -> str:
    """Series an element belongs to, for stand-in choice: lanthanides and actinides (group 3 in
    pymatgen's numbering for all of them) form their own families; other elements their group."""
    if el.is_lanthanoid or el.symbol in ("La", "Y", "Sc"):
        return "Ln"  # Y and Sc are chemically lanthanide-like (R3+ of similar radius)
    if el.is_actinoid:
        return "An"
    return f"g{el.group}"


def stand_in(element: str, known, exclude=()) -> str:
    """The element of ``known`` (minus ``exclude``) most like ``element`` for decoding: the same
    family (:func:`_family`) first — actinides fall back to lanthanides (both R3+/R4+ f-block) —, then
    the closest ionic radius at the usual oxidation state, then the closest atomic radius."""
    from pymatgen.core import Element

    el = Element(element)
    pool = [Element(k) for k in known if k not in exclude and k != element]
    if not pool:
        raise InputError(f"no stand-in element left for {element}")
    fam = _family(el)
    fallback = {"An": "Ln"}.get(fam)
    r_ion = _ionic_radius(el)
    r_at = float(el.atomic_radius or 1.5)
    ox = _oxidation_state(el)

    def key(k):
        kf = _family(k)
        fam_cost = 0 if kf == fam else (1 if kf == fallback else 2)
        # an ion of the same charge sign first: a cation never stands in for an anion
        sign_cost = 0 if (_oxidation_state(k) > 0) == (ox > 0) else 1
        rk = _ionic_radius(k)
        d_ion = abs(rk - r_ion) if (rk is not None and r_ion is not None) else 1.0
        d_at = abs(float(k.atomic_radius or 1.5) - r_at)
        return (fam_cost, sign_cost, round(d_ion, 3), d_at)

    return min(pool, key=key).symbol


def model_stand_ins(elements, known) -> dict[str, str]:
    """Real element -> stand-in for every element of ``elements`` the model does not know
    (``known``: its training elements; empty = knows everything). Stand-ins are distinct from each
    other and from the composition's own elements, so the real elements can be put back one to one."""
    known = list(known or [])
    if not known:
        return {}
    out: dict[str, str] = {}
    used = set(elements)
    for el in elements:
        if el in known:
            continue
        out[el] = stand_in(el, known, exclude=used | set(out.values()))
    return out


__all__ = ["Z_SEQUENCE", "MAX_CELL_ATOMS", "parse_counts", "reduced_composition", "cell_types", "z_values",
           "stand_in", "model_stand_ins"]
