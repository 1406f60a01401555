"""Ordered superstructures of AFLOW prototypes: two elements sharing one site of a simpler type.

Many real compounds are a known structure type with one site shared, in order, by two elements:
double perovskites A2BB'O6 and cryolites (the perovskite's B site), layered Ruddlesden-Popper
phases such as NaLaTiO4 (the K2NiF4 type's A site), ordered spinels, and so on. None of these has
an AFLOW prototype of its own stoichiometry, so :func:`~.prototypes.isotypic_substitutions` cannot
offer them. Here the two elements are first treated as one (Sr2YbNbO6 → Sr2B2O6 = SrBO3), the
isotypic prototypes of that merged composition are taken, and the merged site is then ordered:
every way of giving ``n_x`` of its positions to one element and the rest to the other, in the
prototype's cell and in its supercells of ``SUPERCELL_INDICES`` times the volume (all Hermite
normal forms of that determinant), one crystal per distinct result (space group, orbits and
neighbour distances).

No energy decides between orderings here: in a trial, an Ewald sum of the unrelaxed cells ranked
the observed layered order of KLaTiO4 in the lower half of the K2NiF4 type's orderings. The solve
ranks them by their fit to the pattern like any other candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from itertools import combinations, product
from math import comb

import numpy as np
import spglib

from nanosolve.errors import InputError
from nanosolve.structures.builders.prototypes import isotypic_substitutions
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import normalize_symbol, packing_volume_ratio

#: supercell volumes (× the prototype's cell) in which the shared site is ordered: the cell itself
#: (the P2₁/n double perovskite is an ordering of the Pnma perovskite's own cell) and the doubled
#: cell (rock-salt order of the cubic perovskite's single B site; the layered order of K2NiF4's A site)
SUPERCELL_INDICES = (1, 2)
#: at most this many site assignments are tried per prototype and supercell volume (summed over its
#: Hermite normal forms): the number grows combinatorially with the cell, and large cells would
#: flood the candidate list with orderings the pattern cannot tell apart
MAX_ASSIGNMENTS = 256
#: symmetry tolerance (Å) for telling orderings apart
SYMPREC = 0.1


def hermite_normal_forms(det: int) -> list[np.ndarray]:
    """All lower-triangular Hermite normal forms of determinant ``det``: each 3×3 integer matrix
    ``H`` gives one distinct supercell ``H @ lattice`` of ``det`` times the volume."""
    out = []
    for a in range(1, det + 1):
        if det % a:
            continue
        for c in range(1, det // a + 1):
            if (det // a) % c:
                continue
            f = det // a // c
            # rows are the new basis vectors; each off-diagonal entry reduced modulo its column's diagonal
            for b, d, e in product(range(a), range(a), range(c)):
                out.append(np.array([[a, 0, 0], [b, c, 0], [d, e, f]]))
    return out


def _key(lattice, frac, species) -> tuple[tuple, int]:
    """(key, atoms in the primitive cell). The key: space group, the multiset of (element, orbit
    size) and every atom's sorted distances to each element (to 0.01 Å, within ``FINGERPRINT_CUTOFF``): equal
    for equal orderings whatever the origin or setting. Pairwise StructureMatcher comparisons gave nearly the
    same classes (AlPO4: 407 against 420; Sr2YbNbO6: 98 and 98) about 10× slower (AlPO4: 104 s against 9 s)."""
    numbers = {s: k for k, s in enumerate(sorted(set(species)))}
    data = spglib.get_symmetry_dataset((lattice, frac, [numbers[s] for s in species]), symprec=SYMPREC)
    if data is None:
        return (1, tuple(sorted(Counter(species).items())), _distances(lattice, frac, species)), len(species)
    orbit = Counter(data.equivalent_atoms)
    sites = Counter((species[i], orbit[i]) for i in orbit)
    key = (int(data.number), tuple(sorted(sites.items())), _distances(lattice, frac, species))
    return key, len(set(data.mapping_to_primitive))


#: Å: neighbour shells compared when telling orderings apart
FINGERPRINT_CUTOFF = 6.0


def _distances(lattice, frac, species) -> tuple:
    import vesin  # cell lists: right for the skewed supercells, where a fixed set of images is not

    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(np.asarray(frac, float) @ lattice)
    i, j, d = vesin.NeighborList(cutoff=FINGERPRINT_CUTOFF, full_list=True).compute(cart, lattice, True,
                                                                                   quantities="ijd")
    species = np.array(species)
    rows = []
    for k in range(len(cart)):
        for el in sorted(set(species)):
            dk = np.sort(d[(i == k) & (species[j] == el)])
            rows.append((species[k], el, tuple(np.round(dk[dk > 1e-6], 2))))
    return tuple(sorted(rows))


def ordered_substitutions(composition: Mapping[str, int], max_atoms: int | None = None) -> list[Crystal]:
    """Crystals of ``composition`` in which two of its elements order on one site of an AFLOW
    prototype of the merged composition (module doc). Only two cations or two anions of the
    composition's most probable oxidation states share a site (any two in an intermetallic).

    Args:
        composition: element -> count; only the ratios matter (``{"Sr": 2, "Yb": 1, "Nb": 1, "O": 6}``).
        max_atoms: skip cells with more atoms.

    Returns:
        One crystal per distinct ordering, cell scaled to the packing of the substituted radii (as
        :func:`~.prototypes.build_prototype` does). ``properties``: ``prototype`` (the parent's label
        with ``" ordered <X>,<Y>"``), ``parent_prototype``, ``supercell_index`` and
        ``space_group_number`` (of the ordering, spglib at ``SYMPREC``). Empty when no pair of
        elements merges into a prototype's stoichiometry.
    """
    comp = {normalize_symbol(e): int(n) for e, n in composition.items() if int(n) > 0}
    if not comp:
        raise InputError("the composition is empty")
    sign = _charge_signs(comp)
    out: list[Crystal] = []
    for x, y in combinations(sorted(comp), 2):
        if sign.get(x, 0) * sign.get(y, 0) < 0:
            continue  # a cation and an anion never share a site
        merged = {e: n for e, n in comp.items() if e != y}
        merged[x] = comp[x] + comp[y]
        for parent in isotypic_substitutions(merged, max_atoms):
            label = str(parent.properties["prototype"])
            seen: set = set()
            for m in SUPERCELL_INDICES:
                if max_atoms is not None and m * len(parent) > max_atoms:
                    break
                n_site = m * sum(s == x for s in parent.species)
                if (n_site * comp[x]) % (comp[x] + comp[y]):
                    continue  # this supercell cannot hold the ratio
                n_x = n_site * comp[x] // (comp[x] + comp[y])
                forms = hermite_normal_forms(m)
                if len(forms) * comb(n_site, n_x) > MAX_ASSIGNMENTS:
                    continue
                for h in forms:
                    cell = parent.supercell(h)
                    shared = [i for i, s in enumerate(cell.species) if s == x]
                    for chosen in combinations(shared, n_x):
                        keep = set(chosen)
                        species = [y if (s == x and i not in keep) else s for i, s in enumerate(cell.species)]
                        key, n_primitive = _key(cell.lattice, cell.frac_coords, species)
                        if m > 1 and n_primitive < len(species):
                            continue  # the same ordering exists in a smaller cell
                        if key in seen:
                            continue
                        seen.add(key)
                        scale = packing_volume_ratio(cell.species, species)
                        c = _niggli(Crystal(cell.lattice * scale ** (1.0 / 3.0), cell.frac_coords.copy(), species))
                        c.properties = {"prototype": f"{label} ordered {x},{y}", "parent_prototype": label,
                                        "supercell_index": m, "space_group_number": key[0]}
                        c.name = f"{c.formula} ({c.properties['prototype']})"
                        out.append(c)
    return out


def _niggli(crystal: Crystal) -> Crystal:
    """The same crystal in its Niggli-reduced cell. A Hermite-normal-form supercell is skewed (the
    rock-salt double perovskite comes as 2a, a+b, a+c with 45° angles); the solve's refinements scale
    cell lengths at fixed angles, which keeps a reduced cell's metric but distorts a skewed one's."""
    return Crystal.from_pymatgen(crystal.to_pymatgen().get_reduced_structure("niggli"))


def _charge_signs(comp: Mapping[str, int]) -> dict[str, int]:
    """Sign of each element's oxidation state in pymatgen's most probable charge-balanced guess
    (empty for an intermetallic or a composition it cannot balance: then any two may share a site)."""
    from pymatgen.core import Composition

    try:
        guesses = Composition(dict(comp)).oxi_state_guesses(max_sites=-1)
    except ValueError:
        return {}
    return {} if not guesses else {e: int(np.sign(v)) for e, v in guesses[0].items()}
