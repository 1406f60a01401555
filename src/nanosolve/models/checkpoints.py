"""Checkpoint IO and the resumable-loop book-keeping shared by every model family's ``train``:
atomic writes, safe reads, exact resume (``resume_loop``), per-epoch best/early-stopping
(``end_epoch``), ``save_last``/``restore_best`` and loading a run folder (``load_model_dir``).

Checkpoints hold only tensors, numbers, strings, lists and dicts and are always read with
``torch.load(path, weights_only=True)`` (never arbitrary unpickling). Writes go to a temp file
then ``os.replace`` so a crash never leaves half a checkpoint behind.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from nanosolve.errors import InputError


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` into ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON into ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


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


# ---- the parts every training loop shares ----------------------------------------------------
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


def end_epoch(state: dict, record: dict, monitored: float, improved: bool, model: torch.nn.Module, out: Path,
              seconds: float, patience: int) -> bool:
    """Book-keep one finished epoch in the loop ``state`` (best/since_best/history/epoch), write
    ``best.pt`` on improvement; True when early stopping is due (``patience`` epochs without one)."""
    if improved:
        state.update(best_val=monitored, best_epoch=record["epoch"], since_best=0)
        atomic_torch_save(model.state_dict(), Path(out) / "best.pt")
    else:
        state["since_best"] += 1
    record["seconds"] = seconds
    record["best_val"] = state["best_val"]
    state["history"].append(record)
    state["epoch"] = record["epoch"] + 1
    return state["since_best"] >= patience


def save_last(out: Path, state: dict, fmt: int, model, optimizer, scheduler=None) -> None:
    """``history.json`` then ``last.pt`` (weights, optimizer, scheduler, torch RNG, loop state) so a
    resumed run continues bit for bit; history first: if we die before last.pt is replaced, the
    resumed run rewrites it."""
    out = Path(out)
    atomic_json(state["history"], out / "history.json")
    ckpt = {"format": fmt, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    ckpt.update({"rng": {"torch": torch.get_rng_state()}, **state})
    atomic_torch_save(ckpt, out / "last.pt")


def restore_best(model: torch.nn.Module, out: Path) -> None:
    """Load ``out/best.pt`` into ``model`` (if written) and switch to eval mode."""
    best = Path(out) / "best.pt"
    if best.is_file():
        load_state(model, load_checkpoint(best), best)
    model.eval()


def resume_loop(out: Path, resume: bool, fmt: int, family: str, model, optimizer, scheduler=None,
                higher_is_better: bool = False) -> dict:
    """The loop state ``{epoch, best_val, best_epoch, since_best, history, stopped}``: fresh, or —
    when ``resume`` and ``out/last.pt`` exists — restored together with the weights, optimizer,
    scheduler and torch RNG so the run continues exactly. A foreign or incomplete checkpoint →
    InputError naming it."""
    state = {"epoch": 0, "best_val": -math.inf if higher_is_better else math.inf, "best_epoch": -1,
             "since_best": 0, "history": [], "stopped": ""}
    last = Path(out) / "last.pt"
    if not (resume and last.is_file()):
        return state
    ckpt = load_checkpoint(last)
    needed = ("model", "scheduler") if scheduler is not None else ("model",)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt or any(k not in ckpt for k in needed):
        raise InputError(f"not a nanosolve {family} training checkpoint", last)
    load_state(model, ckpt["model"], last)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        return {k: ckpt[k] for k in state}
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise InputError(f"incomplete training checkpoint ({type(err).__name__}: {err})", last) from None
