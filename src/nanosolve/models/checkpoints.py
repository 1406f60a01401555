"""Checkpoint IO shared by every model family: atomic writes, safe reads and loading a run
folder (``load_model_dir``). The training loop that writes the checkpoints is
:mod:`nanosolve.models.training`.

Checkpoints hold only tensors, numbers, strings, lists and dicts and are always read with
``torch.load(path, weights_only=True)`` (never arbitrary unpickling). Writes go to a uniquely named
temp file in the target folder, then ``os.replace`` (:mod:`nanosolve._io`), so a crash never leaves
half a checkpoint behind and two writers never share a temp file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from nanosolve._io import atomic_path, atomic_write_text
from nanosolve.errors import InputError


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` into ``path`` atomically: a uniquely named temp file in the same folder
    (:func:`nanosolve._io.atomic_path`), renamed onto ``path``; an interrupted save leaves the
    previous file intact and no temp file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON into ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def load_checkpoint(path: str | os.PathLike):
    """``torch.load(path, weights_only=True)`` on CPU; unreadable/corrupt → InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        msg = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise InputError(f"corrupted or unreadable checkpoint ({type(err).__name__}: {msg})", path) from None


def load_state(model: torch.nn.Module, state, path: str | os.PathLike) -> None:
    """``model.load_state_dict(state)``; a missing or mismatched state → InputError naming ``path``."""
    if not isinstance(state, dict):
        raise InputError("checkpoint holds no model state dict", path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise InputError(f"checkpoint does not match the model config ({first})", path) from None


def load_model_dir(dir_or_file: str | os.PathLike, config_cls, model_cls):
    """``(model, config)`` from a run directory (``config.json`` + ``best.pt``, else ``last.pt``)
    or a ``.pt`` file with ``config.json`` beside it; a bare state dict or a ``last.pt``
    checkpoint. Eval mode. Missing/corrupt files → InputError naming the file."""
    p = Path(dir_or_file)
    if p.is_dir():
        cfg_path = p / "config.json"
        weights = p / "best.pt" if (p / "best.pt").is_file() else p / "last.pt"
    elif p.is_file():
        cfg_path, weights = p.parent / "config.json", p
    else:
        raise InputError("no such model directory or checkpoint file", p)
    config = config_cls.from_json(cfg_path)
    state = load_checkpoint(weights)
    if isinstance(state, dict) and "optimizer" in state and "model" in state:
        state = state["model"]
    model = model_cls(config)
    load_state(model, state, weights)
    model.eval()
    return model, config
