"""The finite particle (cluster, nanoparticle): Cartesian coordinates and species."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.elements import atomic_numbers, composition, normalize_symbol

if TYPE_CHECKING:  # pragma: no cover
    import ase
    from pymatgen.core import Molecule


@dataclass
class Particle:
    """A finite set of atoms.

    Attributes:
        positions: [N, 3] Cartesian coordinates, Å.
        species: N element symbols.
        occupancies: [N] in (0, 1] (ones unless cut from a partially occupied crystal).
        name: free-text title.
        properties: anything else (source crystal, cut radius, ...); JSON-serialisable values.
    """

    positions: np.ndarray
    species: list[str]
    occupancies: np.ndarray | None = None
    name: str = ""
    properties: dict = field(default_factory=dict)

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.species = [normalize_symbol(s) for s in self.species]
        if self.positions.shape[0] != len(self.species):
            raise InputError(f"{self.positions.shape[0]} positions for {len(self.species)} species")
        if self.occupancies is None:
            self.occupancies = np.ones(len(self.species))
        self.occupancies = np.asarray(self.occupancies, dtype=np.float64).reshape(-1)
        if self.occupancies.shape[0] != len(self.species):
            raise InputError(f"{self.occupancies.shape[0]} occupancies for {len(self.species)} atoms")
        if not np.all(np.isfinite(self.positions)):
            raise InputError("particle has non-finite coordinates")

    def __len__(self) -> int:
        return len(self.species)

    @property
    def atomic_numbers(self) -> np.ndarray:
        """[N] atomic numbers."""
        return atomic_numbers(self.species)

    @property
    def center(self) -> np.ndarray:
        """Geometric centre (mean position), Å."""
        return self.positions.mean(axis=0) if len(self) else np.zeros(3)

    @property
    def diameter(self) -> float:
        """Largest interatomic distance, Å (0 for fewer than two atoms)."""
        if len(self) < 2:
            return 0.0
        from scipy.spatial import ConvexHull, QhullError
        from scipy.spatial.distance import pdist

        pts = self.positions
        try:  # the farthest pair lies on the convex hull; keeps this O(N log N) for big particles
            pts = pts[ConvexHull(pts).vertices]
        except (QhullError, ValueError):
            pass
        return float(pdist(pts).max())

    @property
    def composition(self) -> dict[str, float]:
        """Element -> number of atoms (occupancy-weighted)."""
        return composition(self.species, self.occupancies)

    @property
    def formula(self) -> str:
        """Full (not reduced) formula in pymatgen's element order, e.g. ``'Au55'``."""
        from pymatgen.core import Composition

        return Composition(self.composition).formula.replace(" ", "")

    def centered(self) -> Particle:
        """Copy translated so that the geometric centre is at the origin."""
        return Particle(self.positions - self.center, list(self.species), self.occupancies.copy(), self.name, dict(self.properties))

    def copy(self) -> Particle:
        return Particle(self.positions.copy(), list(self.species), self.occupancies.copy(), self.name, dict(self.properties))

    def to_ase(self) -> ase.Atoms:
        """ase.Atoms without a cell (pbc False); occupancies in the ``occupancy`` array."""
        import ase

        atoms = ase.Atoms(symbols=self.species, positions=self.positions, pbc=False)
        atoms.new_array("occupancy", self.occupancies.copy())
        if self.name:
            atoms.info["name"] = self.name
        return atoms

    @classmethod
    def from_ase(cls, atoms: ase.Atoms, name: str = "") -> Particle:
        occ = atoms.arrays.get("occupancy")
        return cls(atoms.get_positions(), atoms.get_chemical_symbols(),
                   None if occ is None else np.array(occ, dtype=float), name or str(atoms.info.get("name", "")))

    def to_pymatgen(self) -> Molecule:
        """pymatgen Molecule (occupancies < 1 become disordered sites)."""
        from pymatgen.core import Molecule

        species = [{s: float(o)} for s, o in zip(self.species, self.occupancies)]
        return Molecule(species, self.positions)

    @classmethod
    def from_pymatgen(cls, molecule: Molecule, name: str = "") -> Particle:
        species, pos, occ = [], [], []
        for site in molecule:
            for sp, o in site.species.items():
                species.append(getattr(sp, "symbol", str(sp)))
                pos.append(site.coords)
                occ.append(o)
        return cls(np.array(pos).reshape(-1, 3), species, np.array(occ), name)

    def __repr__(self) -> str:
        return f"Particle({self.formula}, {len(self)} atoms, diameter {self.diameter:.2f} Å)"
