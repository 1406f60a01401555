"""The periodic crystal: the central object every crystal builder, reader and simulator uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.elements import atomic_numbers, composition, normalize_symbol

if TYPE_CHECKING:  # pragma: no cover
    import ase
    from pymatgen.core import Structure

# Low -> high symmetry, as CHILI numbers them (crystal_system_number 1-7).
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")


def lattice_from_parameters(a, b, c, alpha, beta, gamma) -> np.ndarray:
    """3x3 lattice (rows a, b, c in Å) from lengths (Å) and angles (degrees), a along x, b in the xy plane."""
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz2 = c * c - cx * cx - cy * cy
    if cz2 <= 0:
        raise InputError(f"lattice angles {alpha}, {beta}, {gamma} do not form a cell")
    return np.array([[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [cx, cy, np.sqrt(cz2)]])


@dataclass
class SymmetryInfo:
    """Space group of a crystal as found by spglib (through pymatgen)."""

    number: int
    symbol: str
    crystal_system: str
    symprec: float

    @property
    def crystal_system_number(self) -> int:
        """1 (triclinic) ... 7 (cubic), CHILI's numbering."""
        return CRYSTAL_SYSTEMS.index(self.crystal_system) + 1


@dataclass
class Crystal:
    """A periodic crystal.

    Attributes:
        lattice: [3, 3] lattice vectors as rows, Å.
        frac_coords: [N, 3] fractional coordinates.
        species: N element symbols (a partially occupied site with two elements is two rows
            at the same position).
        occupancies: [N] site occupancies in (0, 1]; all ones for an ordered crystal.
        labels: N site labels (e.g. ``'Fe1'``) or None.
        name: free-text title (CIF data block name, material id...).
        properties: anything else (energies, source file, ...); JSON-serialisable values.
    """

    lattice: np.ndarray
    frac_coords: np.ndarray
    species: list[str]
    occupancies: np.ndarray | None = None
    labels: list[str] | None = None
    name: str = ""
    properties: dict = field(default_factory=dict)

    def __post_init__(self):
        self.lattice = np.asarray(self.lattice, dtype=np.float64).reshape(3, 3)
        self.frac_coords = np.asarray(self.frac_coords, dtype=np.float64).reshape(-1, 3)
        self.species = [normalize_symbol(s) for s in self.species]
        n = len(self.species)
        if self.frac_coords.shape[0] != n:
            raise InputError(f"{self.frac_coords.shape[0]} coordinates for {n} species")
        if self.occupancies is None:
            self.occupancies = np.ones(n)
        self.occupancies = np.asarray(self.occupancies, dtype=np.float64).reshape(-1)
        if self.occupancies.shape[0] != n:
            raise InputError(f"{self.occupancies.shape[0]} occupancies for {n} species")
        if self.labels is not None:
            self.labels = [str(x) for x in self.labels]
            if len(self.labels) != n:
                raise InputError(f"{len(self.labels)} labels for {n} species")
        if not (np.all(np.isfinite(self.lattice)) and np.all(np.isfinite(self.frac_coords))):
            raise InputError("crystal has non-finite lattice or coordinates")
        if abs(np.linalg.det(self.lattice)) < 1e-6:
            raise InputError("lattice is singular (zero volume)")

    # ----- geometry -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.species)

    @property
    def cart_coords(self) -> np.ndarray:
        """[N, 3] Cartesian coordinates, Å."""
        return self.frac_coords @ self.lattice

    @property
    def volume(self) -> float:
        """Unit-cell volume, Å³."""
        return float(abs(np.linalg.det(self.lattice)))

    @property
    def cell_params(self) -> np.ndarray:
        """[a, b, c, alpha, beta, gamma] in Å and degrees."""
        a, b, c = np.linalg.norm(self.lattice, axis=1)
        va, vb, vc = self.lattice

        def ang(u, v):
            return np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))

        return np.array([a, b, c, ang(vb, vc), ang(va, vc), ang(va, vb)])

    @property
    def atomic_numbers(self) -> np.ndarray:
        """[N] atomic numbers."""
        return atomic_numbers(self.species)

    @property
    def is_ordered(self) -> bool:
        """True if every site is fully occupied by one element."""
        return bool(np.all(np.abs(self.occupancies - 1.0) < 1e-6))

    @property
    def composition(self) -> dict[str, float]:
        """Element -> number of atoms per cell (occupancy-weighted)."""
        return composition(self.species, self.occupancies)

    @property
    def formula(self) -> str:
        """Reduced formula (pymatgen convention, e.g. ``'Fe2O3'``)."""
        from pymatgen.core import Composition

        return Composition(self.composition).reduced_formula

    @property
    def density(self) -> float:
        """Mass density, g/cm³."""
        from nanosolve.structures.elements import atomic_mass

        mass = sum(atomic_mass(s) * o for s, o in zip(self.species, self.occupancies))
        return mass / self.volume * 1.66053906660

    @classmethod
    def from_parameters(cls, a, b, c, alpha, beta, gamma, species, frac_coords, **kw) -> Crystal:
        """Crystal from cell parameters (Å, degrees) and fractional coordinates."""
        return cls(lattice_from_parameters(a, b, c, alpha, beta, gamma), frac_coords, list(species), **kw)

    def copy(self) -> Crystal:
        return Crystal(
            self.lattice.copy(), self.frac_coords.copy(), list(self.species), self.occupancies.copy(),
            None if self.labels is None else list(self.labels), self.name, dict(self.properties),
        )

    def wrapped(self) -> Crystal:
        """Copy with fractional coordinates wrapped into [0, 1)."""
        out = self.copy()
        out.frac_coords = np.mod(out.frac_coords, 1.0)
        out.frac_coords[np.isclose(out.frac_coords, 1.0, atol=1e-10)] = 0.0
        return out

    def supercell(self, reps) -> Crystal:
        """Supercell repeated ``reps`` = (n1, n2, n3) times along the lattice vectors, or, for a 3×3
        integer matrix ``H`` of positive determinant, the supercell with lattice ``H @ lattice``
        (atoms in the order of the translations that bring them into the new cell)."""
        if np.ndim(reps) == 2:
            return self._matrix_supercell(np.asarray(reps, dtype=int))
        reps = np.broadcast_to(np.asarray(reps, dtype=int), (3,))
        shifts = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
        frac = (self.frac_coords[None, :, :] + shifts[:, None, :]).reshape(-1, 3) / reps
        k = len(shifts)
        return Crystal(
            self.lattice * reps[:, None], frac, self.species * k, np.tile(self.occupancies, k),
            None if self.labels is None else self.labels * k, self.name, dict(self.properties),
        )

    def _matrix_supercell(self, h: np.ndarray) -> Crystal:
        from itertools import product

        n = round(abs(np.linalg.det(h)))
        inv = np.linalg.inv(h)
        base = self.frac_coords % 1.0
        reach = int(np.abs(h).sum(axis=0).max())
        frac, keep = [], []
        for shift in product(range(-1, reach + 1), repeat=3):
            f = (base + np.array(shift)) @ inv
            for i, row in enumerate(f):
                if np.all(row > -1e-6) and np.all(row < 1 + 1e-6):
                    row = row % 1.0
                    # the same atom from two images: compared by periodic distance, not by rounded
                    # coordinates (library coordinates of 5 decimals halve onto rounding boundaries)
                    if not frac or np.abs((d := np.array(frac) - row) - np.round(d)).max(axis=1).min() > 1e-4:
                        frac.append(row)
                        keep.append(i)
        if len(frac) != n * len(self):
            raise InputError(f"supercell of index {n} holds {len(frac)} atoms, not {n * len(self)}")
        return Crystal(h @ self.lattice, np.array(frac) % 1.0, [self.species[i] for i in keep],
                       self.occupancies[keep], None if self.labels is None else [self.labels[i] for i in keep],
                       self.name, dict(self.properties))

    # ----- symmetry -------------------------------------------------------------------------
    def symmetry(self, symprec: float = 0.01, angle_tolerance: float = 5.0) -> SymmetryInfo:
        """Space group (number, Hermann-Mauguin symbol) and crystal system via spglib."""
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(self.to_pymatgen(), symprec=symprec, angle_tolerance=angle_tolerance)
        return SymmetryInfo(
            number=int(sga.get_space_group_number()),
            symbol=str(sga.get_space_group_symbol()),
            crystal_system=str(sga.get_crystal_system()),
            symprec=symprec,
        )

    def symmetrized(self, symprec: float = 0.1, angle_tolerance: float = 5.0) -> Crystal:
        """The crystal snapped onto the space group spglib finds within ``symprec`` (Å) and
        ``angle_tolerance`` (degrees): pymatgen's primitive standard cell, with positions and lattice
        made exactly symmetric. ``properties['space_group']`` holds the number. Composition ratios
        are kept; the number of sites may change (primitive vs. the input cell)."""
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(self.to_pymatgen(), symprec=symprec, angle_tolerance=angle_tolerance)
        out = Crystal.from_pymatgen(sga.get_primitive_standard_structure(), name=self.name)
        out.properties = {**self.properties, "space_group": int(sga.get_space_group_number()),
                          "symprec": float(symprec)}
        return out

    # ----- interoperability ----------------------------------------------------------------
    def to_pymatgen(self) -> Structure:
        """pymatgen Structure; rows sharing a position become one disordered site (occupancies kept)."""
        from pymatgen.core import Lattice, Structure

        groups: list[list[int]] = []
        if self.is_ordered:
            groups = [[i] for i in range(len(self))]
        else:
            key_to_group: dict[tuple, int] = {}
            for i, f in enumerate(np.round(np.mod(self.frac_coords, 1.0), 6) % 1.0):
                key = tuple(f)
                if key in key_to_group:
                    groups[key_to_group[key]].append(i)
                else:
                    key_to_group[key] = len(groups)
                    groups.append([i])
        species, coords, labels = [], [], []
        for g in groups:
            sp: dict[str, float] = {}
            for i in g:
                sp[self.species[i]] = sp.get(self.species[i], 0.0) + float(self.occupancies[i])
            species.append(sp)
            coords.append(self.frac_coords[g[0]])
            labels.append(self.labels[g[0]] if self.labels else None)
        return Structure(
            Lattice(self.lattice), species, coords, labels=labels if self.labels else None,
            properties={"name": self.name} if self.name else None,
        )

    @classmethod
    def from_pymatgen(cls, structure: Structure, name: str = "") -> Crystal:
        """Crystal from a pymatgen Structure (disordered sites become one row per element)."""
        species, frac, occ, labels = [], [], [], []
        has_labels = any(site.label and site.label != site.species_string for site in structure)
        for site in structure:
            for sp, o in site.species.items():
                species.append(getattr(sp, "symbol", str(sp)))
                frac.append(site.frac_coords)
                occ.append(o)
                labels.append(site.label)
        return cls(
            structure.lattice.matrix.copy(), np.array(frac).reshape(-1, 3), species, np.array(occ),
            labels if has_labels else None, name or str(structure.properties.get("name", "") or ""),
        )

    def to_ase(self) -> ase.Atoms:
        """ase.Atoms (pbc) with arrays ``occupancy`` and, if present, ``site_label``."""
        import ase

        atoms = ase.Atoms(symbols=self.species, scaled_positions=self.frac_coords, cell=self.lattice, pbc=True)
        atoms.new_array("occupancy", self.occupancies.copy())
        if self.labels is not None:
            atoms.new_array("site_label", np.array(self.labels, dtype=str))
        if self.name:
            atoms.info["name"] = self.name
        return atoms

    @classmethod
    def from_ase(cls, atoms: ase.Atoms, name: str = "") -> Crystal:
        """Crystal from ase.Atoms (reads back ``occupancy``/``site_label`` arrays written by :meth:`to_ase`)."""
        occ = atoms.arrays.get("occupancy")
        lab = atoms.arrays.get("site_label")
        return cls(
            np.array(atoms.cell[:]), atoms.get_scaled_positions(wrap=False), atoms.get_chemical_symbols(),
            None if occ is None else np.array(occ, dtype=float),
            None if lab is None else [str(x) for x in lab], name or str(atoms.info.get("name", "")),
        )

    def __repr__(self) -> str:
        a, b, c, al, be, ga = self.cell_params
        return (
            f"Crystal({self.formula}, {len(self)} sites, a={a:.4f} b={b:.4f} c={c:.4f} Å, "
            f"α={al:.2f} β={be:.2f} γ={ga:.2f}°{'' if self.is_ordered else ', partial occupancy'})"
        )
