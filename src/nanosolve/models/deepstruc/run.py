"""Preparing a DeepStruc training run: the config of a preset (with the data set's r grid), the
cluster set (opened, or generated into the run folder), the split (``split.json``) and the
stacked train / validation tensors. Used by ``nanosolve train deepstruc`` and the benchmark
scripts alike."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_write_text
from nanosolve.errors import InputError
from nanosolve.models.training import check_resumable, is_main_process, main_process_first

PRESETS = ("cpu", "paper")
SPLITS = ("paper", "grouped", "geometry")


@dataclass
class PreparedRun:
    """``config``, the open ``store``, split ``parts`` and ``tensors`` {"train", "val"} of stacked tensors."""

    config: object
    store: object
    parts: dict
    tensors: dict


def make_config(kind: str, preset: str, overrides: dict | None, r_max: float):
    """DeepStrucConfig from a preset name + overrides; records the model's r grid in ``extra``."""
    from nanosolve.models.deepstruc.config import MODEL_KINDS, DeepStrucConfig

    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    if kind not in MODEL_KINDS:
        raise InputError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    overrides = dict(overrides or {})
    extra = dict(overrides.pop("extra", {}) or {})
    # The model grid: load_tensors resamples the stored PDF onto linspace(0, r_max, n_r).
    extra.update({"r_min": 0.0, "r_max": float(r_max)})
    factory = DeepStrucConfig.cpu if preset == "cpu" else DeepStrucConfig.paper
    try:
        return factory(kind=kind, extra=extra, **overrides)
    except InputError:
        raise
    except (TypeError, ValueError) as err:  # an unknown key, or a value of the wrong type ("batch_size=x")
        raise InputError(f"invalid --set option: {err}") from None


def open_or_generate(data: str, out: str | os.PathLike, data_kind: str = "paper", data_max_atoms: int | None = None,
                     elements: str | None = None, seed: int = 0,
                     status: Callable[[str], object] | None = None) -> tuple[object, dict]:
    """``(store, provenance)``: the GraphStore file ``data``, or — ``data == 'generate'`` — the
    ``data_kind`` cluster set generated into ``out/data_<kind>.sqlite`` (by the main process first
    under torchrun). ``elements``: comma-separated metals (default all 29 d-block)."""
    from nanosolve.datasets.storage import GraphStore
    from nanosolve.models.deepstruc.data import METALS, generate

    if data != "generate":
        path = Path(data)
        if not path.is_file():
            raise InputError("data set file not found", path)
        return GraphStore(path, mode="r"), {"data": str(path)}
    els = METALS if elements is None else tuple(e.strip() for e in elements.split(",") if e.strip())
    path = Path(out) / f"data_{data_kind}.sqlite"
    with main_process_first():
        t0 = time.perf_counter()
        store = generate(path, kind=data_kind, seed=seed, elements=els, max_atoms=data_max_atoms)
    if status is not None:
        status(f"data: {len(store)} clusters in {path} ({time.perf_counter() - t0:.0f} s)")
    return store, {"data": str(path), "data_kind": data_kind, "data_seed": seed, "elements": list(els),
                   "data_max_atoms": data_max_atoms}


def prepare_run(store, provenance: dict, out: str | os.PathLike, kind: str = "cvae", preset: str = "cpu",
                overrides: dict | None = None, split: str = "paper", split_seed: int = 0, seed: int = 0) -> PreparedRun:
    """Config on the store's r grid (``extra``: data provenance, split, seeds, preset), refusal of a
    resumable run in ``out`` with other settings, ``split.json`` and the train / val tensors."""
    from nanosolve.models.deepstruc.data import load_tensors, read_split

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    r_attrs = store.attrs["r"] if "r" in store.attrs else {"rmax": 30.0}
    config = make_config(kind, preset, overrides, float(r_attrs["rmax"]))
    config.extra.update(provenance, split=split, split_seed=split_seed, preset=preset, train_seed=seed)
    out = Path(out)
    check_resumable(out, config)
    parts = read_split(store, split, seed=split_seed)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        atomic_write_text(out / "split.json", json.dumps({k: np.asarray(v).tolist() for k, v in parts.items()}) + "\n")
    tensors = {name: load_tensors(store, parts[name], config.n_satellites, config.max_atoms, config.n_r)
               for name in ("train", "val")}
    return PreparedRun(config, store, parts, tensors)


__all__ = ["PreparedRun", "prepare_run", "make_config", "open_or_generate", "PRESETS", "SPLITS"]
