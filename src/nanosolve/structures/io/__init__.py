"""Structure files: CIF (incl. IUCr powder CIF phase blocks), xyz / extended xyz, and anything ase reads."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from nanosolve._io import atomic_path
from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.io.cif import read_cif, write_cif
from nanosolve.structures.io.xyz import read_xyz, write_xyz
from nanosolve.structures.particle import Particle

__all__ = ["read_structure", "read_cif", "write_cif", "read_xyz", "write_xyz", "write_structure"]


def read_structure(path: str | os.PathLike) -> Crystal | Particle:
    """One structure from a file, chosen by extension.

    ``.cif`` -> the first structure block (a warning names the others; use :func:`read_cif` for all),
    ``.xyz``/``.extxyz`` -> :func:`read_xyz`; anything else (POSCAR, CONTCAR, .vasp, .pdb, ...)
    goes through ``ase.io.read`` and becomes a Crystal if periodic, else a Particle.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path)
    if os.path.getsize(path) == 0:
        raise InputError("file is empty", path)
    ext = Path(path).suffix.lower()
    if ext in (".cif", ".mcif", ".pdcif"):
        crystals = read_cif(path)
        if len(crystals) > 1:
            warnings.warn(f"{path}: {len(crystals)} structures ({', '.join(c.name for c in crystals)}); "
                          f"returning the first, use read_cif() for all", stacklevel=2)
        return crystals[0]
    if ext in (".xyz", ".extxyz"):
        return read_xyz(path)
    import ase.io

    try:
        atoms = ase.io.read(path)
    except Exception as exc:
        raise InputError(f"not a structure file ase can read ({type(exc).__name__}: {exc})", path) from None
    try:
        if atoms.cell.rank == 3 and any(atoms.pbc):
            out = Crystal.from_ase(atoms, name=Path(path).stem)
        else:
            out = Particle.from_ase(atoms, name=Path(path).stem)
    except InputError as exc:
        raise InputError(exc.problem, path) from None
    out.properties["source"] = path
    return out


def write_structure(structure: Crystal | Particle, path: str | os.PathLike) -> Path:
    """Write by extension: ``.cif`` (crystals only) or ``.xyz``/``.extxyz``; other formats via ``ase.io.write``."""
    ext = Path(path).suffix.lower()
    if ext == ".cif" and not isinstance(structure, Crystal):
        raise InputError("only a periodic Crystal can be written as CIF; use .xyz for a particle", path)
    with atomic_path(path) as tmp:  # unique temporary name beside the target, renamed when complete
        if ext == ".cif":
            write_cif(structure, tmp)
        elif ext in (".xyz", ".extxyz"):
            write_xyz(structure, tmp)
        else:
            import ase.io

            ase.io.write(tmp, structure.to_ase())
    return Path(path)
