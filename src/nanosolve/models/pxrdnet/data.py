"""PXRDNet training data: crystals (≤ ``max_atoms``) with their simulated nano-broadened patterns.

Crystals come from CDVAE-format CSVs / CIF folders (:func:`nanosolve.models.cdvae.train.load_tables`)
and AFLOW-prototype substitutions (:func:`nanosolve.models.cdvae.data.prototype_table`, all seven
crystal systems). Each crystal gets one pattern made by the paper's recipe
(:func:`nanosolve.scattering.nano_pxrd.pxrdnet_pattern`: Cu Kα, sinc²(Qτ/2) for crystallite size
τ, a Gaussian with σ drawn uniformly in 0.081568–0.0897248 Å⁻¹, 512 points, max 1).

Patterns are cached as ``.npy`` (float32 [n, 512]) beside a JSON list of the crystals' ids and the
recipe, written atomically, so a resumed training run never recomputes or half-reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_path, atomic_write_text
from nanosolve.errors import InputError
from nanosolve.models.cdvae.data import DEFAULT_POOL, CrystalTable, prototype_table, to_data_list

#: elements substituted into the prototypes: CDVAE's pool plus the heavier alkali, rare-earth and
#: 4d/5d metals common in inorganic powder work (so formulas such as EuI2 or Sr2YbNbO6 are in range)
PROTOTYPE_POOL = tuple(DEFAULT_POOL) + ("Rb", "Cs", "Be", "Sc", "Y", "Hf", "Ta", "W", "Ru", "Rh", "Pd", "Pt",
                                        "Au", "Hg", "Tl", "Sb", "As", "Ce", "Nd", "Sm", "Eu", "Gd", "Er", "Yb")

#: plausible volume per atom (Å³) of a crystal: substituted prototypes outside it are unphysical
VOLUME_PER_ATOM = (4.0, 80.0)


def training_table(sources: Sequence[str | os.PathLike] = (), n_prototypes: int = 0, max_atoms: int = 20,
                   seed: int = 0, max_per_source: int | None = None) -> CrystalTable:
    """Crystals from ``sources`` (CDVAE CSVs / CIF folders; at most ``max_per_source`` of each, a
    seeded random subset) plus ``n_prototypes`` AFLOW substitutions.

    Only cells with ≤ ``max_atoms`` atoms and a volume per atom within :data:`VOLUME_PER_ATOM`
    are kept (rejects are listed in ``table.rejected``). ``properties['crystal_system']`` is set
    for every crystal (spglib, symprec 0.1) so results can be broken out by system.
    """
    from nanosolve.models.cdvae.train import load_tables

    tables = []
    rng = np.random.default_rng(seed)
    for src in sources:
        t = load_tables([src], props=[], max_atoms=max_atoms)
        if max_per_source is not None and len(t) > max_per_source:
            t = t.subset(np.sort(rng.choice(len(t), int(max_per_source), replace=False)))
        t.ids = [f"{Path(src).parent.name}/{Path(src).stem}:{i}" for i in t.ids]
        tables.append(t)
    if n_prototypes:
        tables.append(prototype_table(PROTOTYPE_POOL, max_atoms=max_atoms, seed=seed, n=int(n_prototypes)))
    if not tables:
        raise InputError("no training data: give CDVAE CSVs / CIF folders and/or prototypes")
    crystals, ids, rejected = [], [], []
    for t in tables:
        rejected += list(t.rejected)
        for c, i in zip(t.crystals, t.ids):
            vpa = c.volume / len(c)
            if len(c) > max_atoms:
                rejected.append((str(i), f"{len(c)} atoms > max_atoms {max_atoms}"))
            elif not VOLUME_PER_ATOM[0] <= vpa <= VOLUME_PER_ATOM[1]:
                rejected.append((str(i), f"volume per atom {vpa:.1f} Å³ outside {VOLUME_PER_ATOM}"))
            else:
                if "crystal_system" not in (c.properties or {}):
                    c.properties = {**(c.properties or {}), "crystal_system": crystal_system(c)}
                crystals.append(c)
                ids.append(str(i))
    return CrystalTable(crystals, ids, {}, rejected)


def crystal_system(crystal) -> str:
    """Crystal system name by spglib at symprec 0.1 ('unknown' when spglib fails)."""
    try:
        return crystal.symmetry(symprec=0.1).crystal_system
    except Exception:  # spglib gives up on some noisy cells; the breakdown tables say so
        return "unknown"


def _recipe_key(table: CrystalTable, size: float, size_model: str, seed: int) -> str:
    h = hashlib.sha256()
    for i in table.ids:
        h.update(i.encode())
    return f"{h.hexdigest()[:16]}-{size}-{size_model}-{seed}"


def simulate_patterns(table: CrystalTable, size: float = 10.0, size_model: str = "pxrdnet", seed: int = 0,
                      cache: str | os.PathLike | None = None,
                      progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """[n, 512] float32 patterns of the table's crystals (σ per crystal from ``seed``).

    With ``cache`` (a path stem), ``<cache>.npy`` + ``<cache>.json`` are reused when they were made
    for the same crystals and recipe, else (re)written atomically.
    """
    from nanosolve.scattering.nano_pxrd import pxrdnet_pattern

    key = _recipe_key(table, size, size_model, seed)
    if cache is not None:
        npy, meta = Path(f"{cache}.npy"), Path(f"{cache}.json")
        if npy.is_file() and meta.is_file():
            try:
                if json.loads(meta.read_text()).get("key") == key:
                    arr = np.load(npy, allow_pickle=False)
                    if arr.shape[0] == len(table):
                        return arr
            except (OSError, ValueError):
                pass  # unreadable cache: recompute
    rng = np.random.default_rng(seed)
    out = np.zeros((len(table), 512), dtype=np.float32)
    for k, c in enumerate(table.crystals):
        out[k] = pxrdnet_pattern(c, size=size, rng=rng, size_model=size_model)
        if progress is not None:
            progress(k + 1, len(table))
    if cache is not None:
        with atomic_path(npy) as tmp:
            np.save(tmp, out, allow_pickle=False)
        atomic_write_text(meta, json.dumps({"key": key, "size": size, "size_model": size_model, "seed": seed,
                                            "n": len(table)}) + "\n")
    return out


def to_pxrd_data(table: CrystalTable, patterns: np.ndarray) -> list:
    """CDVAE ``Data`` items (:func:`~nanosolve.models.cdvae.data.to_data_list`) carrying ``xrd`` [1, 512]."""
    import torch

    if len(patterns) != len(table):
        raise InputError(f"{len(patterns)} patterns for {len(table)} crystals")
    items = to_data_list(table)
    for d, y in zip(items, patterns):
        d.xrd = torch.as_tensor(np.asarray(y, dtype=np.float32)).view(1, -1)
    return items


__all__ = ["training_table", "simulate_patterns", "to_pxrd_data", "crystal_system", "VOLUME_PER_ATOM", "PROTOTYPE_POOL"]
