"""Preparing a PXRDNet training run: the crystal table (CDVAE CSVs / CIF folders + AFLOW
prototype substitutions), the config, the composition-grouped split (``split.json``), the crystal
list (``crystals.json``), the simulated patterns (cached in ``patterns.npy``) and the train /
validation ``Data`` lists. Used by ``nanosolve train pxrdnet`` and the benchmark scripts alike."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nanosolve._io import atomic_write_text
from nanosolve.errors import InputError
from nanosolve.models.cdvae.run import FRACTIONS, write_split
from nanosolve.models.training import check_resumable, is_main_process, main_process_first

MIN_CRYSTALS = 10


@dataclass
class PreparedRun:
    """``config``, ``table``, split ``parts``, ``patterns`` [n, 512], ``train_items`` / ``val_items``."""

    config: object
    table: object
    parts: dict
    patterns: object
    train_items: list
    val_items: list | None


def make_config(preset: str, overrides: dict | None = None, **settings):
    """PXRDNetConfig of a preset (``cpu`` / ``paper``) with ``--set`` overrides and ``settings``."""
    from nanosolve.models.pxrdnet.config import preset as make_preset

    return make_preset(preset, **settings, **dict(overrides or {}))


def load_table(data: Sequence[str | os.PathLike] = (), prototypes: int = 0, max_atoms: int = 20, seed: int = 0,
               max_per_source: int | None = None):
    """The training crystals (:func:`~nanosolve.models.pxrdnet.data.training_table`); at least
    ``MIN_CRYSTALS`` of them, else InputError."""
    from nanosolve.models.pxrdnet.data import training_table

    if not data and not prototypes:
        raise InputError("no training data: give DATA files/folders and/or --prototypes N")
    table = training_table(list(data or []), prototypes, max_atoms, seed, max_per_source)
    if len(table) < MIN_CRYSTALS:
        raise InputError(f"only {len(table)} usable crystals; PXRDNet needs at least {MIN_CRYSTALS}")
    return table


def prepare_run(data: Sequence[str | os.PathLike], out: str | os.PathLike, preset: str = "cpu",
                overrides: dict | None = None, prototypes: int = 0, size: float = 10.0,
                size_model: str = "pxrdnet", max_atoms: int = 20, max_per_source: int | None = None,
                split_seed: int = 0, seed: int = 0, table=None,
                pattern_progress: Callable[[int, int], None] | None = None) -> PreparedRun:
    """Config (``extra``: data, prototypes, split, seeds, elements), refusal of a resumable run
    with other settings, ``split.json`` and ``crystals.json``, patterns (cached in
    ``out/patterns``; built by the main process first under torchrun) and the ``Data`` lists."""
    from nanosolve.models.cdvae.data import composition_split
    from nanosolve.models.pxrdnet.data import simulate_patterns, to_pxrd_data

    settings = dict(size=size, size_model=size_model, max_atoms=max_atoms)
    make_config(preset, overrides, **settings)  # fail fast on a bad preset / override
    if table is None:
        table = load_table(data, prototypes, max_atoms, seed, max_per_source)
    elements = sorted({s for c in table.crystals for s in c.species})
    config = make_config(preset, overrides, **settings)
    config.extra.update(data=[str(p) for p in data or []], prototypes=prototypes, max_per_source=max_per_source,
                        split="composition", split_seed=split_seed, train_seed=seed, elements=elements)
    out = Path(out)
    check_resumable(out, config)
    out.mkdir(parents=True, exist_ok=True)
    parts = composition_split(table, FRACTIONS, seed=split_seed)
    write_split(out, parts)
    if is_main_process():
        atomic_write_text(out / "crystals.json", json.dumps(
            [{"id": i, "formula": c.formula, "n_atoms": len(c), "crystal_system": c.properties.get("crystal_system")}
             for i, c in zip(table.ids, table.crystals)]) + "\n")
    with main_process_first():  # one process fills the pattern cache, the others read it
        patterns = simulate_patterns(table, size=size, size_model=size_model, seed=seed, cache=out / "patterns",
                                     progress=pattern_progress)
    items = to_pxrd_data(table, patterns)
    train_items = [items[i] for i in parts["train"]]
    val_items = [items[i] for i in parts["val"]] or None
    return PreparedRun(config, table, parts, patterns, train_items, val_items)


__all__ = ["PreparedRun", "prepare_run", "load_table", "make_config", "MIN_CRYSTALS"]
