"""XYZ files: plain xyz (a particle) and extended xyz (``Lattice=`` makes it a periodic crystal).

Parsing and writing go through ase's extxyz code; we only check the frame header first so that
a wrong atom count or junk gives one readable error with a line number instead of ase's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.particle import Particle


def _check_first_frame(lines: list[str], path: str) -> int:
    """Validate the first frame's count line and atom lines; return the atom count."""
    if not lines or not "".join(lines).strip():
        raise InputError("file is empty", path)
    head = lines[0].split()
    if len(head) != 1 or not head[0].lstrip("+-").isdigit():
        raise InputError(f"line 1: expected the number of atoms, got {lines[0].strip()[:60]!r}", path)
    n = int(head[0])
    if n <= 0:
        raise InputError(f"line 1: atom count {n} must be positive", path)
    body = lines[2:2 + n]
    if len(lines) < 2 or len(body) < n or any(not ln.strip() for ln in body):
        found = sum(1 for ln in body if ln.strip())
        raise InputError(f"line 1 announces {n} atoms but only {found} atom lines follow", path)
    for k, ln in enumerate(body, start=3):
        parts = ln.split()
        if len(parts) < 4:
            raise InputError(f"line {k}: expected 'element x y z', got {ln.strip()[:60]!r}", path)
        try:
            xyz = [float(v) for v in parts[1:4]]
        except ValueError:
            raise InputError(f"line {k}: coordinates are not numbers: {ln.strip()[:60]!r}", path) from None
        if not np.all(np.isfinite(xyz)):
            raise InputError(f"line {k}: non-finite coordinate (NaN/inf)", path)
    # A following line that is neither blank nor a new frame's count means the count is too small.
    rest = [ln for ln in lines[2 + n:] if ln.strip()]
    if rest:
        nxt = rest[0].split()
        if not (len(nxt) == 1 and nxt[0].isdigit()):
            raise InputError(f"line 1 announces {n} atoms but line {2 + n + 1} holds another atom line "
                             f"({lines[2 + n].strip()[:40]!r}); the count disagrees with the atom lines", path)
    return n


def read_xyz(path: str | os.PathLike, index: int = 0) -> Crystal | Particle:
    """Read one frame of an xyz / extended-xyz file.

    Returns a :class:`Crystal` when the comment line has a ``Lattice=`` and periodic boundaries
    (occupancy/site_label arrays written by :func:`write_xyz` are read back), else a :class:`Particle`.
    """
    import ase.io

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    _check_first_frame(lines, path)
    try:
        atoms = ase.io.read(path, index=index, format="extxyz")
    except Exception as exc:  # ase raises many types for malformed frames
        raise InputError(f"cannot read xyz: {type(exc).__name__}: {exc}", path) from None
    name = Path(path).stem
    try:
        if atoms.cell.rank == 3 and any(atoms.pbc):
            out = Crystal.from_ase(atoms, name=str(atoms.info.get("name", name)))
        else:
            out = Particle.from_ase(atoms, name=str(atoms.info.get("name", name)))
    except InputError as exc:
        raise InputError(exc.problem, path) from None
    out.properties["source"] = path
    return out


def write_xyz(structure: Crystal | Particle, path: str | os.PathLike) -> Path:
    """Write extended xyz (plain xyz readers still read the first four columns).

    A :class:`Crystal` gets ``Lattice=`` and ``pbc="T T T"``; occupancies (and crystal site labels)
    are extra per-atom columns so :func:`read_xyz` restores them.
    """
    import ase.io

    path = Path(path)
    atoms = structure.to_ase()
    ase.io.write(path, atoms, format="extxyz")
    return path
