"""Training DeepStruc on the shared loop (:mod:`nanosolve.models.training`): Adam, early
stopping, atomic checkpoints, exact resume, ``--device`` and data-parallel training under torchrun.

Files written to ``out_dir`` (every epoch, each atomically: temp file + ``os.replace``; plus
``metrics.csv``):

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

import os
from collections.abc import Callable
from pathlib import Path

import torch

from nanosolve.errors import InputError
from nanosolve.models.checkpoints import load_checkpoint, load_model_dir
from nanosolve.models.deepstruc.config import DeepStrucConfig
from nanosolve.models.deepstruc.model import DeepStruc
from nanosolve.models.training import Adapter, Step, TrainResult, move_to, resolve_device, result, run_loop, shard

CHECKPOINT_FORMAT = 1
_BATCH_KEYS = ("pdf", "features", "mask")
_LOSS_KEYS = ("loss", "recon", "existence", "kl")
_PRIOR_KEYS = ("prior_loss", "prior_recon", "prior_existence")


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
    device = next(model.parameters()).device
    for batch in source.epoch(None):
        if device.type != "cpu":
            batch = move_to(batch, device)
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


class DeepStrucAdapter(Adapter):
    """DeepStruc on the shared loop: Adam at a fixed lr, β warm-up, the budget checked between epochs."""

    family = "DeepStruc"
    train_method = "forward"
    loss_keys = _LOSS_KEYS

    def __init__(self, model: DeepStruc, config: DeepStrucConfig, train_src: _Batches, val_src: _Batches | None,
                 seed: int):
        self.model, self.config, self.seed = model, config, seed
        self.train_src, self.val_src = train_src, val_src
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        # the prior path is trained only when prior_weight > 0: DDP must not wait for its gradients otherwise
        self.unused_parameters = True

    def n_batches(self) -> int | None:
        return None if self.train_src.n is None else -(-self.train_src.n // self.config.batch_size)

    def batches(self, epoch: int, rank: int, world: int):
        for batch in self.train_src.epoch(_shuffle_generator(self.seed, epoch)):
            n = batch["pdf"].shape[0]
            part = shard(n, rank, world)
            mine = len(range(*part.indices(n)))
            if mine == 0:  # a rank left without samples takes part with weight zero
                part = slice(0, 1)
            yield Step({k: v[part] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n else v
                        for k, v in batch.items()}, mine, n)

    def loss(self, call, batch, epoch: int) -> dict:
        return call(batch, beta=self.config.beta_at(epoch))

    def epoch_info(self, epoch: int) -> dict:
        return {"beta": self.config.beta_at(epoch), "lr": self.config.lr}

    def validate(self, epoch: int) -> dict:
        if self.val_src is None:
            return {}
        return {f"val_{k}": v for k, v in evaluate(self.model, self.val_src, beta=self.config.beta_at(epoch)).items()}

    def monitored(self, record: dict) -> float:
        return record[self.config.monitor] if self.val_src is not None else record["train_loss"]


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
    device: str = "cpu",
    tensorboard: bool = False,
) -> TrainResult:
    """Train a DeepStruc CVAE/DAE with Adam and early stopping on the shared loop
    (:func:`nanosolve.models.training.run_loop`); see the module docstring for files.

    ``max_epochs``: total epochs including resumed ones (default ``config.max_epochs``);
    ``max_minutes``: wall-time budget of *this call*, checked after every epoch;
    ``resume``: continue from ``out_dir/last.pt`` when present (else start afresh, overwriting);
    ``progress``: called with each epoch's history record (a dict of floats);
    ``device``: cpu, cuda or mps; ``tensorboard``: also log TensorBoard scalars.
    Early stopping: ``config.patience`` epochs without a strictly lower ``config.monitor`` value.
    Data-parallel under torchrun: every rank takes its share ``[rank::world]`` of each batch.
    """
    config.validate()
    resolve_device(device)  # refuse an unavailable device before any work
    max_epochs = config.max_epochs if max_epochs is None else int(max_epochs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_src = _Batches(train_data, config.batch_size, "training")
    val_src = None if val_data is None else _Batches(val_data, config.batch_size, "validation")

    torch.manual_seed(seed)
    model = DeepStruc(config)
    adapter = DeepStrucAdapter(model, config, train_src, val_src, seed)
    state = run_loop(adapter, out, config=config, max_epochs=max_epochs, patience=config.patience,
                     max_minutes=max_minutes, resume=resume, seed=seed, fmt=CHECKPOINT_FORMAT, device=device,
                     tensorboard=tensorboard, progress=progress)
    return result(state, model, config, out)


__all__ = ["train", "load_model", "load_checkpoint", "evaluate", "TrainResult", "CHECKPOINT_FORMAT"]
