"""Symmetry-constrained random structure candidates (pyxtal) for a composition and Z.

For a cell of Z formula units, :func:`compatible_space_groups` keeps the space groups whose Wyckoff
multiplicities can hold every element's count (pyxtal ``Group.check_compatible``), among the 50 that
inorganic crystals take most often (:data:`COMMON_SPACE_GROUPS`, most common first). :func:`random_crystals` draws pyxtal random crystals in them round-robin and
scales each cell to a packing fraction drawn between :data:`PACKING_RANGE` (covalent-sphere volume
over cell volume; the AFLOW prototype library's 25th-75th percentiles are 0.33-0.73, median 0.53).
A known cell (from indexing) fixes the lattice instead. Random crystals obey pyxtal's own distance
tolerances; the solve ranks them by fit like every other candidate.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from nanosolve.structures.crystal import Crystal

#: frequent space groups of inorganic crystal structures (ICSD statistics, most common first):
#: P2_1/c, Pnma, Fm-3m, C2/c, P-1, R-3m, I4/mmm, P6_3/mmc, Fd-3m, Pm-3m, C2/m, Cmcm, P2_1/m, R-3c,
#: R-3, P6/mmm, P4/nmm, Immm, I4/mcm, P2_1, P2_12_12_1, Pbca, Pbcn, F-43m, I4_1/amd, I4_1/a, P-3m1,
#: P6_3mc, P-6m2, P6_3/m, Cmmm, Pmmn, Pna2_1, P1, Cc, P-62m, Im-3m, Pm-3n, P4/mmm, I4/m, Imma, Cmce,
#: P4/mbm, P4_2/mnm, Ia-3, Pa-3, P-3, R3m, Cmc2_1, I-42d
COMMON_SPACE_GROUPS = (14, 62, 225, 15, 2, 166, 139, 194, 227, 221, 12, 63, 11, 167, 148, 191, 129, 71, 140, 4,
                       19, 61, 60, 216, 141, 88, 164, 186, 187, 176, 65, 59, 33, 1, 9, 189, 229, 223, 123, 87,
                       74, 64, 127, 136, 206, 205, 147, 160, 36, 122)
PACKING_RANGE = (0.35, 0.8)


@lru_cache(maxsize=256)
def _compatible(counts: tuple[int, ...]) -> tuple[int, ...]:
    from pyxtal.symmetry import Group

    out = []
    for sg in COMMON_SPACE_GROUPS:
        try:
            ok, _ = Group(sg).check_compatible(list(counts))
        except Exception:  # noqa: BLE001 - pyxtal cannot place these counts in this group
            ok = False
        if ok:
            out.append(sg)
    return tuple(out)


def compatible_space_groups(reduced: dict[str, int], z: int) -> list[int]:
    """Numbers of the :data:`COMMON_SPACE_GROUPS` whose Wyckoff positions can hold ``reduced`` x ``z``
    atoms, most common first (checking all 230 costs ~3 s per cell; the rare ones seldom fit)."""
    return list(_compatible(tuple(int(n) * int(z) for n in reduced.values())))


def target_volume(species, packing: float) -> float:
    """Cell volume (Å³) at which covalent spheres of ``species`` fill the fraction ``packing``."""
    from nanosolve.solve.sanity import covalent_radius

    return float(sum(4.0 / 3.0 * np.pi * covalent_radius(s) ** 3 for s in species) / packing)


def random_crystals(reduced: dict[str, int], z: int, n: int, seed: int = 0, space_groups=None,
                    cell=None, deadline: float | None = None, max_groups: int = 24,
                    should_stop=None, max_failures: int = 10) -> list[Crystal]:
    """Up to ``n`` pyxtal random crystals of composition ``reduced`` with ``z`` formula units.

    Space groups: ``space_groups`` or the first ``max_groups`` of :func:`compatible_space_groups`,
    drawn round-robin (one crystal per group per round). ``cell``: (a, b, c, α, β, γ) in Å/degrees
    from indexing; groups whose crystal system cannot have that cell are skipped by pyxtal itself
    (its draw fails) and the lattice is fixed, else the volume is set from a packing fraction drawn
    in :data:`PACKING_RANGE` (grown by 5 % steps until the sanity gate,
    :func:`~nanosolve.solve.sanity.check_crystal`, passes); a crystal that still fails is drawn again, and a group that fails
    ``max_failures`` times is dropped. Stops early at ``deadline`` (time.perf_counter seconds) or when
    ``should_stop()`` is true. Each crystal has ``properties['space_group']`` (number) and
    ``properties['random_search']`` (its symbol)."""
    from pyxtal import pyxtal
    from pyxtal.lattice import Lattice as PxLattice

    from nanosolve.solve.sanity import check_crystal

    rng = np.random.default_rng(seed)
    species = list(reduced)
    counts = [int(reduced[e]) * int(z) for e in species]
    groups = list(space_groups) if space_groups is not None else compatible_space_groups(reduced, z)[:max_groups]
    out: list[Crystal] = []
    failures = {g: 0 for g in groups}
    while len(out) < n and groups:
        for sg in list(groups):
            if len(out) >= n or (deadline is not None and time.perf_counter() > deadline) or \
                    (should_stop is not None and should_stop()):
                return out
            xtal = pyxtal()
            try:
                kw = {}
                if cell is not None:
                    kw["lattice"] = PxLattice.from_para(*cell, ltype=_ltype(sg))
                xtal.from_random(3, sg, species, counts, random_state=int(rng.integers(2**31)), **kw)
                if not xtal.valid:
                    raise ValueError("invalid")
                structure = xtal.to_pymatgen()
            except Exception:  # noqa: BLE001 - pyxtal gives up on a draw: count it and move on
                failures[sg] += 1
                if failures[sg] >= max_failures:
                    groups.remove(sg)
                continue
            crystal = Crystal.from_pymatgen(structure, name=f"random_{sg}_{len(out):03d}")
            if cell is None:
                # pyxtal's cells are loose (Rb2S: 1.8x the real volume): shrink to the drawn packing,
                # then grow in 5 % steps until the sanity gate passes (never beyond pyxtal's own cell)
                packing = float(np.exp(rng.uniform(*np.log(PACKING_RANGE))))
                target = min(target_volume(crystal.species, packing), crystal.volume)
                base = crystal
                for _ in range(40):
                    scale = (target / base.volume) ** (1.0 / 3.0)
                    crystal = Crystal(base.lattice * scale, base.frac_coords, base.species, name=base.name)
                    if target >= base.volume or check_crystal(crystal).plausible:
                        break
                    target *= 1.05
            if not check_crystal(crystal).plausible:
                failures[sg] += 1
                if failures[sg] >= max_failures:
                    groups.remove(sg)
                continue
            crystal.properties.update(space_group=int(sg), random_search=str(xtal.group.symbol))
            out.append(crystal)
    return out


def _ltype(sg: int) -> str:
    for top, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                      (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if sg <= top:
            return name
    raise ValueError(sg)


__all__ = ["COMMON_SPACE_GROUPS", "PACKING_RANGE", "compatible_space_groups", "random_crystals", "target_volume"]
