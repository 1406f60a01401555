"""Task lists: which crystals to cut, at which radii, in which (fixed) order.

A task is one crystal; it yields one record per radius. The record index is
``task.index * len(radii) + k``, so the order of a dataset is the recipe's order no matter in
which order workers finish — what makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nanosolve.structures import Crystal

#: The 53 metals of CHILI-3K (paper, section 3.1), in the paper's order.
CHILI_3K_METALS = tuple(
    "Li Be B Na Mg Al Si K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Rb Sr Y Zr Nb Mo Tc Ru Rh Pd "
    "Ag Cd In Sn Sb Te Cs Ba Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Ra".split())
#: Nanoparticle radii (Å) of every CHILI crystal.
CHILI_RADII = (5.0, 10.0, 15.0, 20.0, 25.0)


@dataclass(frozen=True)
class CrystalTask:
    """One crystal of a recipe.

    Either a CHILI crystal type + metal (built by nanosolve) or a CIF file (cleaned on load).
    """

    index: int
    key: str
    radii: tuple[float, ...]
    crystal_type: str | None = None
    metal: str | None = None
    cif_path: str | None = None

    @property
    def record_indices(self) -> list[int]:
        n = len(self.radii)
        return [self.index * n + k for k in range(n)]

    @property
    def record_keys(self) -> list[str]:
        return [f"{self.key}_r{float(r):g}" for r in self.radii]

    @property
    def source(self) -> str:
        return self.cif_path or f"{self.crystal_type}:{self.metal}"

    def load(self) -> Crystal:
        if self.cif_path is not None:
            from nanosolve.datasets.chili.cif_clean import load_clean_crystal

            return load_clean_crystal(self.cif_path)
        from nanosolve.structures.builders.chili_types import build_chili_crystal

        return build_chili_crystal(self.crystal_type, self.metal)


def chili3k_tasks(metals=CHILI_3K_METALS, crystal_types=None, radii=CHILI_RADII) -> list[CrystalTask]:
    """CHILI-3K: the 12 crystal types × the 53 metals (636 crystals × 5 radii = 3,180 graphs).

    Ordered by metal, then crystal type (as CHILI sorts its CIFs).
    """
    from nanosolve.structures.builders.chili_types import CHILI_CRYSTAL_TYPES

    types = tuple(crystal_types or CHILI_CRYSTAL_TYPES)
    radii = tuple(float(r) for r in radii)
    tasks = []
    for m in metals:
        for t in types:
            tasks.append(CrystalTask(len(tasks), f"{t}_{m}", radii, crystal_type=t, metal=m))
    return tasks


def cif_tasks(paths, radii=CHILI_RADII) -> list[CrystalTask]:
    """One task per CIF, in sorted path order; keys are the file stems (made unique)."""
    radii = tuple(float(r) for r in radii)
    tasks, seen = [], set()
    for p in sorted(Path(x) for x in paths):
        key = p.stem
        n = 1
        while key in seen:  # same stem in two sub-folders
            n += 1
            key = f"{p.stem}-{n}"
        seen.add(key)
        tasks.append(CrystalTask(len(tasks), key, radii, cif_path=str(p)))
    return tasks
