"""Preparing a CDVAE training run: read the crystals, build the config, split, write ``split.json``
and make the train / validation ``Data`` lists. Used by ``nanosolve train cdvae`` and the
benchmark scripts alike, so a run is the same whichever starts it."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_write_text
from nanosolve.errors import InputError
from nanosolve.models.training import check_resumable, is_main_process

SPLITS = ("composition", "random")
FRACTIONS = (0.8, 0.1, 0.1)


@dataclass
class PreparedRun:
    """Everything ``train`` needs: ``config``, the ``table`` of crystals, the split ``parts``
    (part name -> row indices), ``train_items`` / ``val_items`` (CDVAE ``Data``; val None when empty)."""

    config: object
    table: object
    parts: dict
    train_items: list
    val_items: list | None


def split_table(table, split: str = "composition", seed: int = 0) -> dict[str, np.ndarray]:
    """80/10/10 split of a CrystalTable's rows: ``composition`` (grouped by reduced formula) or ``random``."""
    from nanosolve.models.cdvae.data import composition_split, random_split

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return (composition_split if split == "composition" else random_split)(table, FRACTIONS, seed=seed)


def write_split(out: str | os.PathLike, parts: dict) -> None:
    """``out/split.json`` (part -> row indices), on the main process only."""
    if is_main_process():
        atomic_write_text(Path(out, "split.json"), json.dumps({k: np.asarray(v).tolist() for k, v in parts.items()}) + "\n")


def make_config(preset: str, overrides: dict | None = None, **settings):
    """CDVAEConfig of a preset (``cpu`` / ``paper``) with ``--set`` overrides and ``settings``."""
    from nanosolve.models.cdvae.config import preset as make_preset

    return make_preset(preset, **settings, **dict(overrides or {}))


def prepare_run(data: Sequence[str | os.PathLike], out: str | os.PathLike, preset: str = "cpu",
                overrides: dict | None = None, split: str = "composition", split_seed: int = 0,
                props: Sequence[str] | None = None, max_atoms: int | None = None, seed: int = 0,
                table=None) -> PreparedRun:
    """Read ``data`` (CDVAE CSVs / CIF folders; or pass a ready ``table``), check ``max_atoms``
    (default: the largest cell), build the config (``extra``: data, split, split seed, train
    seed), refuse a resumable run in ``out`` with other settings, split and write
    ``out/split.json``. Bad preset / override / data → InputError before any file is written."""
    from nanosolve.models.cdvae.data import to_data_list
    from nanosolve.models.cdvae.train import load_tables

    make_config(preset, overrides)  # refuse a bad preset / override before reading data
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if table is None:
        table = load_tables(list(data), props=list(props) if props else None)
    if len(table) == 0:
        raise InputError(f"no usable crystal in {', '.join(map(str, data))}")
    largest = max(len(c) for c in table.crystals)
    if max_atoms is None:
        max_atoms = largest
    elif largest > max_atoms:
        k = next(i for i, c in enumerate(table.crystals) if len(c) > max_atoms)
        raise InputError(f"crystal {table.ids[k]} has {len(table.crystals[k])} atoms, more than --max-atoms {max_atoms}")
    config = make_config(preset, overrides, props=list(props or []), max_atoms=int(max_atoms))
    config.extra.update(data=[str(p) for p in data], split=split, split_seed=split_seed, train_seed=seed)
    out = Path(out)
    check_resumable(out, config)
    parts = split_table(table, split, split_seed)
    out.mkdir(parents=True, exist_ok=True)
    write_split(out, parts)
    items = to_data_list(table, props=list(props) if props else None)
    train_items = [items[i] for i in parts["train"]]
    val_items = [items[i] for i in parts["val"]] or None
    return PreparedRun(config, table, parts, train_items, val_items)


__all__ = ["PreparedRun", "prepare_run", "split_table", "write_split", "make_config", "SPLITS"]
