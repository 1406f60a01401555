"""One way in for structures: :func:`as_structure` turns what users hold into a Crystal or a Particle.

Accepted: :class:`~nanosolve.structures.Crystal` / :class:`~nanosolve.structures.Particle` (returned
as they are), ``ase.Atoms`` (periodic with a full cell -> Crystal, else Particle), pymatgen
``Structure`` / ``IStructure`` (-> Crystal) and ``Molecule`` / ``IMolecule`` (-> Particle), and a path
to any structure file :func:`nanosolve.structures.io.read_structure` reads (CIF, xyz, POSCAR, ...).
"""

from __future__ import annotations

import os

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.particle import Particle

__all__ = ["as_structure", "is_structure_like"]


def _kind(obj) -> str | None:
    """'ase', 'pmg-structure', 'pmg-molecule' or None, without importing ase/pymatgen needlessly."""
    mod = type(obj).__module__ or ""
    if mod.startswith("ase"):
        import ase

        return "ase" if isinstance(obj, ase.Atoms) else None
    if mod.startswith("pymatgen"):
        from pymatgen.core import IMolecule, IStructure

        if isinstance(obj, IStructure):
            return "pmg-structure"
        if isinstance(obj, IMolecule):
            return "pmg-molecule"
    return None


def is_structure_like(obj) -> bool:
    """True for anything :func:`as_structure` accepts (a string or path counts; it is not opened)."""
    return isinstance(obj, (Crystal, Particle, str, os.PathLike)) or _kind(obj) is not None


def as_structure(obj, name: str = "") -> Crystal | Particle:
    """A Crystal or Particle from a Crystal, Particle, ase.Atoms, pymatgen Structure/Molecule or a path.

    Args:
        obj: the structure.
        name: name for a converted object (default: its formula / the file stem).

    Raises:
        InputError: anything else (naming the type and what is accepted), or an unreadable file.
    """
    if isinstance(obj, (Crystal, Particle)):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        from nanosolve.structures.io import read_structure

        return read_structure(obj)
    kind = _kind(obj)
    if kind == "ase":
        if obj.cell.rank == 3 and any(obj.pbc):
            return Crystal.from_ase(obj, name=name)
        return Particle.from_ase(obj, name=name)
    if kind == "pmg-structure":
        return Crystal.from_pymatgen(obj, name=name)
    if kind == "pmg-molecule":
        return Particle.from_pymatgen(obj, name=name)
    raise InputError(f"cannot use a {type(obj).__name__} as a structure; give a Crystal, Particle, ase.Atoms, "
                     "pymatgen Structure/Molecule or a structure file path")


def as_crystal(obj, name: str = "") -> Crystal:
    """A periodic :class:`Crystal` from anything :func:`as_structure` takes; InputError for a finite particle."""
    out = as_structure(obj, name)
    if not isinstance(out, Crystal):
        raise InputError(f"expected a periodic crystal (Crystal, pymatgen Structure, periodic ase.Atoms or a CIF), "
                         f"got a finite {type(out).__name__}")
    return out
