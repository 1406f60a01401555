"""Training loop for DeepStruc: Adam, early stopping, atomic checkpoints, exact resume.

Files written to ``out_dir`` (every epoch, each atomically: temp file + ``os.replace``):

* ``config.json``  - the :class:`DeepStrucConfig`;
* ``last.pt``      - ``{format, model, optimizer, epoch, best_val, best_epoch, since_best, rng,
  history, stopped}``: everything needed to continue bit-for-bit;
* ``best.pt``      - the model state dict with the best monitored validation loss;
* ``history.json`` - one record of losses/metrics per epoch (mirror of ``last.pt['history']``).

Checkpoints hold only tensors, numbers, strings, lists and dicts, and are always read back with
``torch.load(path, weights_only=True)`` (no arbitrary unpickling). A file that cannot be read
raises :class:`InputError` naming it.

Data: ``train_data`` / ``val_data`` may be (a) a dict of stacked tensors ``{pdf [N, n_r],
features [N, max_atoms, F], mask [N, max_atoms], scale [N]}``, (b) any sized, indexable dataset
whose items are dicts of per-sample tensors, or (c) any iterable of ready-made batch dicts (e.g. a
``DataLoader``). For (a) and (b) the loop batches and shuffles itself with a generator seeded by
``(seed, epoch)``, which together with the saved torch RNG state (reparameterisation noise) makes
an interrupted + resumed run end in exactly the state of an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from nanosolve.errors import InputError
from nanosolve.models.checkpoints import (end_epoch, load_checkpoint, load_model_dir, restore_best, resume_loop,
                                          save_last)
from nanosolve.models.deepstruc.config import DeepStrucConfig
from nanosolve.models.deepstruc.model import DeepStruc

CHECKPOINT_FORMAT = 1
_BATCH_KEYS = ("pdf", "features", "mask")
_LOSS_KEYS = ("loss", "recon", "existence", "kl")
_PRIOR_KEYS = ("prior_loss", "prior_recon", "prior_existence")


@dataclass
class TrainResult:
    """Outcome of :func:`train`; ``model`` carries the best-validation weights (eval mode)."""

    model: DeepStruc
    config: DeepStrucConfig
    out_dir: Path
    epochs: int  # epochs completed in total (including resumed ones)
    best_epoch: int  # 0-based epoch of the best monitored validation loss (-1: none)
    best_val: float
    stopped: str  # "early_stopping" | "max_epochs" | "max_minutes"
    history: list[dict] = field(default_factory=list)


# ---- data ------------------------------------------------------------------------------------
class _Batches:
    """Re-iterable batch source over the three accepted data forms (see module docstring)."""

    def __init__(self, data, batch_size: int, name: str):
        self.name = name
        self.batch_size = batch_size
        self.stacked = None
        self.indexable = None
        self.iterable = None
        if isinstance(data, dict):
            missing = [k for k in _BATCH_KEYS if k not in data]
            if missing:
                raise InputError(f"{name} data lacks {missing} (need pdf, features, mask)")
            n = {len(v) for k, v in data.items() if torch.is_tensor(v)}
            if len(n) != 1:
                raise InputError(f"{name} data tensors disagree in length: {sorted(n)}")
            self.stacked = {k: v for k, v in data.items() if torch.is_tensor(v)}
            self.n = n.pop()
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__") and not _is_batch_list(data):
            self.indexable = data
            self.n = len(data)
        elif hasattr(data, "__iter__"):
            self.iterable = data
            self.n = None
        else:
            raise InputError(f"{name} data must be a dict of tensors, a dataset of dicts or an iterable of batches")
        if self.n == 0:
            raise InputError(f"{name} data is empty")

    def epoch(self, generator: torch.Generator | None):
        """Yield batch dicts; shuffled with ``generator`` when it is given (indexable data only)."""
        if self.iterable is not None:
            for batch in self.iterable:
                yield _check_batch(batch, self.name)
            return
        order = torch.randperm(self.n, generator=generator) if generator is not None else torch.arange(self.n)
        for start in range(0, self.n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.stacked is not None:
                yield {k: v[idx] for k, v in self.stacked.items()}
            else:
                yield _check_batch(_collate([self.indexable[int(i)] for i in idx], self.name), self.name)


def _is_batch_list(data) -> bool:
    """A sized sequence whose items are already batches (pdf ``[B, n_r]``), e.g. a list of batches."""
    if len(data) == 0:
        return False
    first = data[0]
    return isinstance(first, dict) and torch.is_tensor(first.get("pdf")) and first["pdf"].dim() == 2


def _collate(items: list, name: str) -> dict:
    if not all(isinstance(it, dict) for it in items):
        raise InputError(f"{name} dataset items must be dicts with pdf, features, mask; got {type(items[0]).__name__}")
    keys = [k for k in items[0] if torch.is_tensor(items[0][k]) or isinstance(items[0][k], (int, float))]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in keys}


def _check_batch(batch, name: str) -> dict:
    if not isinstance(batch, dict) or any(k not in batch for k in _BATCH_KEYS):
        raise InputError(f"{name} batches must be dicts with keys {list(_BATCH_KEYS)}")
    return batch


# ---- checkpoint IO ---------------------------------------------------------------------------
def load_model(dir_or_file: str | os.PathLike) -> tuple[DeepStruc, DeepStrucConfig]:
    """Model (eval mode, best weights) and config from a training directory or a ``.pt`` file.

    A directory uses ``config.json`` and ``best.pt`` (falling back to ``last.pt``); a file uses
    the ``config.json`` beside it and accepts either a bare state dict or a ``last.pt`` checkpoint.
    """
    return load_model_dir(dir_or_file, DeepStrucConfig, DeepStruc)


# ---- evaluation ------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: DeepStruc, data, beta: float | None = None, batch_size: int | None = None) -> dict:
    """Deterministic (posterior-mean) losses averaged over ``data`` plus prior-path metrics.

    Returns ``loss, recon, existence, kl`` (teacher path: encoder mean → decoder),
    ``prior_loss, prior_recon, prior_existence`` (decoding the prior mean, the inference path)
    and ``count_acc`` (fraction of structures whose prior-decoded atom count is exact).
    """
    source = data if isinstance(data, _Batches) else _Batches(data, batch_size or model.config.batch_size, "validation")
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n_total, n_correct = 0, 0
    for batch in source.epoch(None):
        out = model(batch, beta=beta, sample=False, with_prior=True)
        n = batch["pdf"].shape[0]
        n_total += n
        n_correct += int(out["prior_count_correct"])
        for k in _LOSS_KEYS + _PRIOR_KEYS:
            sums[k] = sums.get(k, 0.0) + float(out[k]) * n
    model.train(was_training)
    res = {k: v / n_total for k, v in sums.items()}
    res["count_acc"] = n_correct / n_total
    return res


# ---- training --------------------------------------------------------------------------------
def _shuffle_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def train(
    config: DeepStrucConfig,
    train_data,
    val_data,
    out_dir: str | os.PathLike,
    max_minutes: float | None = None,
    max_epochs: int | None = None,
    seed: int = 0,
    resume: bool = True,
    progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a DeepStruc CVAE/DAE with Adam and early stopping; see the module docstring for files.

    ``max_epochs``: total epochs including resumed ones (default ``config.max_epochs``);
    ``max_minutes``: wall-time budget of *this call*, checked after every epoch;
    ``resume``: continue from ``out_dir/last.pt`` when present (else start afresh, overwriting);
    ``progress``: called with each epoch's history record (a dict of floats).
    Early stopping: ``config.patience`` epochs without a strictly lower ``config.monitor`` value.
    """
    t_start = time.monotonic()
    config.validate()
    max_epochs = config.max_epochs if max_epochs is None else int(max_epochs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_src = _Batches(train_data, config.batch_size, "training")
    val_src = None if val_data is None else _Batches(val_data, config.batch_size, "validation")

    torch.manual_seed(seed)
    model = DeepStruc(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    state = resume_loop(out, resume, CHECKPOINT_FORMAT, "DeepStruc", model, optimizer)
    config.to_json(out / "config.json")

    stopped = state["stopped"] or ""  # an early-stopped run stays finished: resuming is a no-op
    while not stopped:
        epoch = state["epoch"]
        if epoch >= max_epochs:
            stopped = "max_epochs"
            break
        if max_minutes is not None and (time.monotonic() - t_start) / 60 >= max_minutes:
            stopped = "max_minutes"
            break
        t0 = time.monotonic()
        beta = config.beta_at(epoch)
        model.train()
        sums, n_seen = {}, 0
        for batch in train_src.epoch(_shuffle_generator(seed, epoch)):
            res = model(batch, beta=beta)
            optimizer.zero_grad(set_to_none=True)
            res["loss"].backward()
            optimizer.step()
            n = batch["pdf"].shape[0]
            n_seen += n
            for k in _LOSS_KEYS:
                sums[k] = sums.get(k, 0.0) + float(res[k].detach()) * n
        if n_seen == 0:
            raise InputError("training data yielded no batches")
        record = {"epoch": epoch, "beta": beta, "lr": config.lr}
        record.update({f"train_{k}": v / n_seen for k, v in sums.items()})
        if val_src is not None:
            record.update({f"val_{k}": v for k, v in evaluate(model, val_src, beta=beta).items()})
            monitored = record[config.monitor]
        else:
            monitored = record["train_loss"]
        if not math.isfinite(monitored):
            raise InputError(f"training diverged: monitored loss is {monitored} in epoch {epoch}; lower the lr")
        improved = monitored < state["best_val"]
        if end_epoch(state, record, monitored, improved, model, out, time.monotonic() - t0, config.patience):
            stopped = "early_stopping"
        state["stopped"] = stopped if stopped == "early_stopping" else ""
        save_last(out, state, CHECKPOINT_FORMAT, model, optimizer)
        if progress is not None:
            progress(dict(record))

    restore_best(model, out)
    return TrainResult(
        model=model,
        config=config,
        out_dir=out,
        epochs=state["epoch"],
        best_epoch=state["best_epoch"],
        best_val=state["best_val"],
        stopped=stopped,
        history=list(state["history"]),
    )


__all__ = ["train", "load_model", "load_checkpoint", "evaluate", "TrainResult", "CHECKPOINT_FORMAT"]
