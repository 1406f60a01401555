"""CHILI-100K acceptance rules for a parsed crystal: elements, occupancy, cell volume, closest contact.

The CHILI paper (Friis-Jensen et al. 2024) says CHILI-100K covers "68 metals and 11 non-metals"
of the Crystallography Open Database, but we could not find the published element list, so the
sets below are our documented choice that follows the paper's counts:

* 11 non-metals: H, C, N, O, F, P, S, Cl, Se, Br, I -- exactly the reactive non-metals (noble
  gases and astatine excluded).
* 68 metals: the 53 "metals" of CHILI-3K (alkali, alkaline-earth, transition and post-transition
  metals plus the metalloids B, Si, Ge, As, Sb, Te, which CHILI treats as metals) and the 15
  lanthanides La-Lu. Polonium, francium and the actinides are left out.

Every entry of :data:`ALLOWED_METALS` is a metal or metalloid for
:func:`nanosolve.structures.elements.is_metal` and every non-metal is not (checked in the tests).

The rules, in the order they are applied (the first failure is the reported reason):
element set -> must contain a metal -> every site occupancy >= 0.9 -> cell volume < 1000 Å^3 ->
no two atoms (periodic images included) closer than 1.2 Å.
"""

from __future__ import annotations

import numpy as np

from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import is_metal

#: The CHILI-3K metals (spec, 53) -- includes the metalloids CHILI counts as metals.
CHILI3K_METALS = tuple(
    "Li Be B Na Mg Al Si K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Rb Sr Y Zr Nb Mo Tc Ru Rh Pd "
    "Ag Cd In Sn Sb Te Cs Ba Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Ra".split())
LANTHANIDES = tuple("La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu".split())
#: 68 metals = 53 CHILI-3K metals + 15 lanthanides.
ALLOWED_METALS = frozenset(CHILI3K_METALS + LANTHANIDES)
#: 11 reactive non-metals.
ALLOWED_NON_METALS = frozenset("H C N O F P S Cl Se Br I".split())
ALLOWED_ELEMENTS = ALLOWED_METALS | ALLOWED_NON_METALS

MIN_OCCUPANCY = 0.9      # every site at least this occupied
MAX_VOLUME_A3 = 1000.0   # unit-cell volume strictly below this (Å^3)
MIN_DISTANCE_A = 1.2     # no pair of atoms closer than this (Å)

# Reject reasons (the vocabulary of the reject report). Parsing failures come first.
R_UNREADABLE = "unreadable file"
R_EMPTY = "empty file"
R_NOT_CIF = "not a CIF"
R_MALFORMED = "malformed CIF"
R_NO_ATOMS = "no atoms"
R_MISSING_COORDS = "missing coordinates"
R_SEVERAL = "several structures"
R_UNKNOWN_ELEMENT = "unknown element"
R_ELEMENT = "element not allowed"
R_NO_METAL = "no metal"
R_OCCUPANCY = "partial occupancy"
R_VOLUME = "volume too large"
R_DISTANCE = "atoms too close"
REASONS = (R_UNREADABLE, R_EMPTY, R_NOT_CIF, R_MALFORMED, R_NO_ATOMS, R_MISSING_COORDS, R_SEVERAL,
           R_UNKNOWN_ELEMENT, R_ELEMENT, R_NO_METAL, R_OCCUPANCY, R_VOLUME, R_DISTANCE)


def closest_contact(crystal: Crystal, cutoff: float = MIN_DISTANCE_A) -> tuple[float, int, int] | None:
    """Shortest interatomic distance below ``cutoff`` (Å) with periodic images, or None if there is none.

    Returns ``(distance Å, i, j)`` (row indices into the crystal; ``i == j`` is an atom and its own
    image). vesin's cell-list neighbour search is used: it handles any cell shape and small cells
    (self-images included), and only pairs under ``cutoff`` are ever built.
    """
    from vesin import NeighborList

    cart = np.ascontiguousarray(crystal.cart_coords, dtype=np.float64)
    i, j, d = NeighborList(cutoff=float(cutoff), full_list=False).compute(
        cart, np.ascontiguousarray(crystal.lattice), True, "ijd")
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    return float(d[k]), int(i[k]), int(j[k])


def _site(crystal: Crystal, i: int) -> str:
    lab = crystal.labels[i] if crystal.labels else crystal.species[i]
    return lab if lab.startswith(crystal.species[i]) else f"{lab} ({crystal.species[i]})"


def check_crystal(crystal: Crystal) -> tuple[str, str] | None:
    """First CHILI-100K rule ``crystal`` breaks as ``(reason, detail)``, or None if it is accepted.

    ``reason`` is one of the ``R_*`` constants; ``detail`` names the offending sites or values.
    """
    elements = sorted(set(crystal.species))
    bad = [e for e in elements if e not in ALLOWED_ELEMENTS]
    if bad:
        return R_ELEMENT, f"{', '.join(bad)} not among the 68 metals + 11 non-metals"
    if not any(is_metal(e) for e in elements):
        return R_NO_METAL, f"elements {', '.join(elements)} include no metal"
    occ = crystal.occupancies
    low = np.nonzero(occ < MIN_OCCUPANCY)[0]
    if len(low):
        k = int(low[np.argmin(occ[low])])
        names = sorted({_site(crystal, int(x)) for x in low})
        return R_OCCUPANCY, (f"occupancy {occ[k]:g} of {_site(crystal, k)} < {MIN_OCCUPANCY:g} "
                             f"({len(names)} site(s): {', '.join(names[:6])}{' ...' if len(names) > 6 else ''})")
    vol = crystal.volume
    if not vol < MAX_VOLUME_A3:
        return R_VOLUME, f"unit-cell volume {vol:.1f} Å³ >= {MAX_VOLUME_A3:g} Å³"
    hit = closest_contact(crystal, MIN_DISTANCE_A)
    if hit is not None:
        d, i, j = hit
        pair = f"{_site(crystal, i)} and its own image" if i == j else f"{_site(crystal, i)} and {_site(crystal, j)}"
        return R_DISTANCE, f"{pair} are {d:.3f} Å apart (< {MIN_DISTANCE_A:g} Å)"
    return None
