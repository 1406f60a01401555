"""The one training loop of every model family: epochs, optimiser steps, validation, early
stopping, best/last checkpoints, a wall-time budget with exact resume, metrics logging, a
``--device`` and data-parallel training under ``torchrun``.

A family supplies a small :class:`Adapter` (its model, optimiser, scheduler, how to cut an
epoch into batches, the loss with named terms, the validation metrics) and calls
:func:`run_loop`; the loop does the rest in the same way for everyone.

Files written to the run folder ``out`` (each atomically: temp file + ``os.replace``; under
data-parallel training only by rank 0):

* ``config.json``  - the family's config (:class:`~nanosolve.models.config_io.JsonConfig`);
* ``last.pt``      - ``{format, model, optimizer[, scheduler], rng, <LoopState fields>}``: all a
  resumed run needs to continue bit for bit; tensors only, saved on the CPU (device-agnostic),
  read with ``torch.load(weights_only=True)``;
* ``best.pt``      - the model state dict with the best monitored validation value;
* ``history.json`` - one record per epoch (mirror of ``last.pt['history']``);
* ``metrics.csv``  - the same records as CSV (one row per epoch, rows of earlier calls kept);
* ``tensorboard/`` - the same scalars as TensorBoard events when asked for (``tensorboard=True``,
  needs the optional ``tensorboard`` package).

Budget and resume: ``max_minutes`` is the wall-time budget of one call; an epoch cut short is
discarded, and the next call (``resume=True``) continues from the last completed epoch with the
saved weights, optimiser, scheduler, loop state and RNG states. An early-stopped run stays
finished.

Data parallel (``torchrun --nproc_per_node N ...``): when ``WORLD_SIZE`` > 1 the loop joins the
process group (gloo on CPU, NCCL on CUDA), wraps the model in ``DistributedDataParallel`` and
gives each rank an interleaved share ``batch[rank::world]`` of every global batch (so the global
batch, the epoch order and the number of steps are those of one process). Each rank's loss is
scaled by ``world · n_rank / n_batch`` before the gradient average, so a loss that is a mean over
samples gets the gradient of the whole batch. BatchNorm layers normalise over each rank's share on
the CPU (SyncBatchNorm, which needs CUDA, is used on GPUs), and noise drawn from torch's RNG
differs between ranks, so families with either follow one process within statistical noise,
not to rounding. Training sums are all-reduced; validation, early
stopping and all file writes happen on rank 0 and are broadcast, so every rank holds the same
state.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nanosolve._io import atomic_write_text
from nanosolve.errors import InputError
from nanosolve.models.checkpoints import atomic_json, atomic_torch_save, load_checkpoint, load_state

DEVICES = ("cpu", "cuda", "mps")


# ---- typed loop state and result -------------------------------------------------------------
@dataclass
class LoopState:
    """Book-keeping of a run, saved field by field at the top level of ``last.pt`` (the layout
    of earlier checkpoints, which therefore still resume).

    ``best_val``: best monitored value so far (+inf / -inf before the first epoch);
    ``best_epoch``: its 0-based epoch (-1: none); ``since_best``: epochs since it improved;
    ``stopped``: "early_stopping" once finished for good, else ""; ``train_seconds``: wall time
    of all completed epochs (every call)."""

    epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    since_best: int = 0
    history: list[dict] = field(default_factory=list)
    stopped: str = ""
    train_seconds: float = 0.0

    @classmethod
    def fresh(cls, higher_is_better: bool = False) -> LoopState:
        return cls(best_val=-math.inf if higher_is_better else math.inf)

    def to_checkpoint(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> LoopState:
        """From a ``last.pt`` dict; fields missing in older checkpoints keep their defaults."""
        required = ("epoch", "best_val", "best_epoch", "since_best", "history", "stopped")
        missing = [k for k in required if k not in ckpt]
        if missing:
            raise KeyError(f"loop state lacks {missing}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: ckpt[k] for k in names if k in ckpt})


@dataclass
class TrainResult:
    """Outcome of a family's ``train``; ``model`` carries the best-validation weights (eval mode)."""

    model: torch.nn.Module
    config: Any
    out_dir: Path
    epochs: int  # epochs completed in total (including resumed ones)
    best_epoch: int  # 0-based epoch of the best monitored value (-1: none)
    best_val: float
    stopped: str  # "early_stopping" | "max_epochs" | "max_minutes"
    history: list[dict] = field(default_factory=list)


@dataclass
class Step:
    """One optimiser step's share of data on this rank: ``batch`` (any structure of tensors or an
    object with ``.to(device)``), ``n`` samples of it here, ``n_global`` in the whole step."""

    batch: Any
    n: int
    n_global: int


class Adapter:
    """What a model family gives the loop. Subclasses set the attributes and override the methods.

    Attributes: ``family`` (for messages), ``model``, ``optimizer``, ``scheduler`` (or None),
    ``train_method`` (the model method returning the loss dict; wrapped for DDP),
    ``loss_keys`` (terms averaged into ``train_<key>``; None: every scalar tensor of the loss
    dict), ``unused_parameters`` (some parameters may get no gradient in a step: DDP must look for
    them), ``higher_is_better``, ``grad_clip`` (0: off), ``cut_epochs`` (check the budget after
    every batch and discard a cut epoch, instead of only between epochs), ``monitor_name``.
    """

    family = "model"
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    train_method = "forward"
    loss_keys: tuple[str, ...] | None = None
    higher_is_better = False
    grad_clip = 0.0
    cut_epochs = False
    monitor_name = "monitored loss"
    unused_parameters = True  # DDP's find_unused_parameters: some families leave heads unused

    def n_batches(self) -> int | None:
        """Global steps per epoch (None: unknown; only for progress)."""
        return None

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[Step]:
        """This rank's :class:`Step` of each global batch of ``epoch`` (shuffled, seeded)."""
        raise NotImplementedError

    def loss(self, call: Callable, batch, epoch: int) -> dict:
        """Loss terms (0-dim tensors, ``'loss'`` the one to minimise); ``call(*args)`` runs the
        model's ``train_method`` (through DDP when data-parallel)."""
        return call(batch)

    def begin_epoch(self, epoch: int, state: LoopState) -> None:
        """Called before an epoch's first batch (every rank)."""

    def after_step(self, epoch: int, step: int, n_steps: int | None) -> None:
        """Called after each optimiser step (e.g. a per-step scheduler)."""

    def epoch_info(self, epoch: int) -> dict:
        """Leading fields of the epoch's record after ``epoch`` (e.g. ``lr``, ``beta``)."""
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    def validate(self, epoch: int) -> dict:
        """Validation fields of the record (``val_*``); runs on rank 0 only."""
        return {}

    def monitored(self, record: dict) -> float:
        """The value that picks ``best.pt`` and drives early stopping."""
        return record["val_loss"] if "val_loss" in record else record["train_loss"]

    def end_epoch(self, epoch: int, monitored: float) -> None:
        """After the epoch's record (e.g. a plateau scheduler)."""

    def epoch_done(self, record: dict, state: LoopState) -> None:
        """After the epoch's files are written (rank 0 only; e.g. progress events)."""


# ---- device and distributed set-up -----------------------------------------------------------
def resolve_device(name: str | torch.device | None = "cpu") -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or ``mps`` as a torch device; InputError naming ``--device``
    when that backend is not available in this torch build / on this machine. Under torchrun
    with CUDA each rank takes ``cuda:LOCAL_RANK``."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "cpu").strip().lower()
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise InputError(f"--device: unknown device {name!r}; use one of {', '.join(DEVICES)}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device: cuda is not available (torch {torch.__version__} sees no CUDA GPU); "
                             "use --device cpu")
        if name == "cuda" and world_size() > 1:
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device: mps is not available (needs Apple silicon and a torch build with MPS); "
                         "use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise InputError(f"--device: {err}") from None


def world_size() -> int:
    """Processes of a torchrun launch (``WORLD_SIZE``), 1 otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank (``RANK`` of torchrun), 0 otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def is_main_process() -> bool:
    """True on rank 0 (and without torchrun): the process that writes files and prints."""
    return rank() == 0


def init_distributed(device: torch.device | str = "cpu") -> bool:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (idempotent): gloo on CPU, NCCL on
    CUDA. Returns True when training is data-parallel."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 and not torch.distributed.is_initialized():
        return False
    if not torch.distributed.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not torch.distributed.is_initialized():
        dev = torch.device(device)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        torch.distributed.init_process_group(backend=backend)
    return torch.distributed.get_world_size() > 1


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. building a cache), the others after it finished."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()


def shard(n_global: int, rank_: int, world: int) -> slice:
    """This rank's interleaved share ``[rank::world]`` of a global batch of ``n_global`` samples."""
    return slice(rank_, n_global, world) if world > 1 else slice(0, n_global)


def move_to(obj, device: torch.device):
    """``obj`` (tensor, dict/list/tuple of them, or anything with ``.to``) on ``device``."""
    if device.type == "cpu" and not _has_non_cpu(obj):
        return obj
    if torch.is_tensor(obj) or hasattr(obj, "to") and not isinstance(obj, (dict, list, tuple)):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj


def _has_non_cpu(obj) -> bool:
    if torch.is_tensor(obj):
        return obj.device.type != "cpu"
    if isinstance(obj, dict):
        return any(_has_non_cpu(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_non_cpu(v) for v in obj)
    return False


def to_cpu(obj):
    """A state dict / optimizer state with every tensor on the CPU (device-agnostic checkpoints)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


class _MethodCall(torch.nn.Module):
    """``forward`` = ``module.<method>``: DDP synchronises gradients only for work done inside its
    ``forward``, and the families' training objective is often a ``loss`` method."""

    def __init__(self, module: torch.nn.Module, method: str):
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, *args, **kwargs):
        return getattr(self.module, self.method)(*args, **kwargs)


# ---- metrics logging -------------------------------------------------------------------------
class MetricsLog:
    """Per-epoch records as ``metrics.csv`` (rewritten atomically from the whole history, so a
    crash never leaves a torn line and a resumed run keeps the rows of earlier calls) and, when
    asked, TensorBoard scalars in ``tensorboard/``."""

    def __init__(self, out: Path, tensorboard: bool = False):
        self.path = Path(out) / "metrics.csv"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError("--tensorboard: the tensorboard package is not installed "
                                 "(pip install tensorboard)") from None
            self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"))

    def write(self, history: list[dict]) -> None:
        cols: list[str] = []
        for rec in history:
            cols += [k for k, v in rec.items() if k not in cols and isinstance(v, (int, float, str))]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(history)
        atomic_write_text(self.path, buf.getvalue())

    def add(self, record: dict) -> None:
        if self.writer is None:
            return
        for k, v in record.items():
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, int(record["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---- checkpoints -----------------------------------------------------------------------------
def _rng_state(device: torch.device, world: int) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    if world > 1:  # every rank's own stream, so a resumed data-parallel run continues exactly
        states = [None] * world
        torch.distributed.all_gather_object(states, torch.get_rng_state())
        rng["ranks"] = states
    return rng


def _set_rng_state(rng, device: torch.device, rank_: int, world: int, seed: int, epoch: int) -> None:
    if torch.is_tensor(rng):  # the CHILI runner's checkpoints saved the CPU state bare
        rng = {"torch": rng}
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    if world > 1:
        ranks = rng.get("ranks")
        if ranks is not None and len(ranks) == world:
            torch.set_rng_state(ranks[rank_])
        else:  # saved by another number of processes: a fresh, deterministic stream per rank
            torch.manual_seed(_rank_seed(seed, rank_, epoch))


def _rank_seed(seed: int, rank_: int, epoch: int = 0) -> int:
    return (int(seed) * 1_000_003 + 7919 * (rank_ + 1) + int(epoch)) % (2**63 - 1)


def _resume(out: Path, fmt: int, adapter: Adapter, device: torch.device, rank_: int, world: int,
            seed: int) -> LoopState | None:
    last = out / "last.pt"
    if not last.is_file():
        return None
    ckpt = load_checkpoint(last)
    needed = ("model", "scheduler") if adapter.scheduler is not None else ("model",)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt or any(k not in ckpt for k in needed):
        raise InputError(f"not a nanosolve {adapter.family} training checkpoint", last)
    load_state(adapter.model, ckpt["model"], last)
    try:
        adapter.optimizer.load_state_dict(ckpt["optimizer"])
        if adapter.scheduler is not None:
            adapter.scheduler.load_state_dict(ckpt["scheduler"])
        state = LoopState.from_checkpoint(ckpt)
        _set_rng_state(ckpt["rng"], device, rank_, world, seed, state.epoch)
        return state
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise InputError(f"incomplete training checkpoint ({type(err).__name__}: {err})", last) from None


def _save_last(out: Path, fmt: int, adapter: Adapter, state: LoopState, rng: dict) -> None:
    """``history.json`` first, then ``last.pt``: if we die between them, the resumed run rewrites
    the history from ``last.pt``."""
    atomic_json(state.history, out / "history.json")
    ckpt = {"format": fmt, "model": to_cpu(adapter.model.state_dict()),
            "optimizer": to_cpu(adapter.optimizer.state_dict())}
    if adapter.scheduler is not None:
        ckpt["scheduler"] = adapter.scheduler.state_dict()
    ckpt["rng"] = rng
    ckpt.update(state.to_checkpoint())
    atomic_torch_save(ckpt, out / "last.pt")


def restore_best(model: torch.nn.Module, out: Path) -> None:
    """Load ``out/best.pt`` into ``model`` (if written) and switch to eval mode."""
    best = Path(out) / "best.pt"
    if best.is_file():
        load_state(model, load_checkpoint(best), best)
    model.eval()


def check_resumable(out: str | os.PathLike, config, option: str = "--out") -> dict | None:
    """The previous ``config.json`` (as a dict) of a resumable run in ``out`` (one with
    ``last.pt``), or None when there is none; InputError when that run was started with other
    settings (``extra`` — data paths, seeds, provenance — may differ)."""
    out = Path(out)
    old = out / "config.json"
    if not ((out / "last.pt").is_file() and old.is_file()):
        return None
    try:
        previous = json.loads(old.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the run's config ({err})", old) from None
    settings = {k: v for k, v in config.to_dict().items() if k != "extra"}
    if not isinstance(previous, dict) or {k: v for k, v in previous.items() if k != "extra"} != settings:
        raise InputError(f"holds a run with different settings; choose another {option} to start afresh", out)
    return previous


# ---- the loop --------------------------------------------------------------------------------
def _broadcast(obj, world: int):
    if world <= 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _any(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any (budget checks agree across ranks)."""
    if world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def _all_sum(sums: dict[str, float], n: int, world: int, device: torch.device) -> tuple[dict[str, float], int]:
    if world <= 1:
        return sums, n
    keys = list(sums)  # the same order on every rank (the same loss terms, first seen in the same step)
    t = torch.tensor([sums[k] for k in keys] + [float(n)], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(t)
    vals = t.cpu().tolist()
    return dict(zip(keys, vals[:-1])), int(round(vals[-1]))


def run_loop(adapter: Adapter, out_dir: str | os.PathLike, *, config=None, max_epochs: int, patience: int,
             max_minutes: float | None = None, budget_minutes: float | None = None, resume: bool = True,
             seed: int = 0, fmt: int = 1,
             device: str | torch.device = "cpu", tensorboard: bool = False,
             progress: Callable[[dict], None] | None = None,
             batch_progress: Callable[[int, int], None] | None = None) -> LoopState:
    """Train ``adapter.model`` until ``max_epochs`` (total, resumed ones included), early stopping
    (``patience`` epochs without a strictly better monitored value; 0 = off) or the ``max_minutes``
    budget of this call; returns the final :class:`LoopState` (its ``stopped`` is one of
    "early_stopping", "max_epochs", "max_minutes", "budget") with ``adapter.model`` holding the best weights
    in eval mode (on ``device``).

    ``budget_minutes``: a budget of training + validation time over all calls of the run (the
    loop state's ``train_seconds``); an epoch that runs out of it ends early but is validated and
    kept, then the run stops with "budget" (the CHILI benchmark's per-run budget).
    ``config`` (a JsonConfig) is written to ``out/config.json``; ``resume``: continue from
    ``out/last.pt`` when present (else start afresh, overwriting); ``progress(record)`` after each
    epoch and ``batch_progress(done, total)`` after each step (rank 0 only). Randomness the family
    draws from torch's global RNG is restored on resume; batch order and augmentation are the
    adapter's, seeded by ``(seed, epoch)``.
    """
    t_start = time.monotonic()
    out = Path(out_dir)
    dev = resolve_device(device)
    distributed = init_distributed(dev)
    world = torch.distributed.get_world_size() if distributed else 1
    rank_ = torch.distributed.get_rank() if distributed else 0
    main = rank_ == 0
    out.mkdir(parents=True, exist_ok=True)
    model = adapter.model.to(dev)
    if distributed:
        torch.manual_seed(_rank_seed(seed, rank_))  # each rank its own noise (same init: seeded before)

    barrier()  # nobody reads last.pt while rank 0 may still be writing it
    state = _resume(out, fmt, adapter, dev, rank_, world, seed) if resume else None
    state = state or LoopState.fresh(adapter.higher_is_better)
    barrier()
    if main and config is not None:
        config.to_json(out / "config.json")
    log = MetricsLog(out, tensorboard) if main else None

    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        if dev.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm needs CUDA)
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        wrapped = DistributedDataParallel(_MethodCall(model, adapter.train_method),
                                          device_ids=[dev.index] if dev.type == "cuda" else None,
                                          find_unused_parameters=adapter.unused_parameters)
        call = wrapped
    else:
        call = getattr(model, adapter.train_method)

    def out_of_time() -> bool:
        return _any(max_minutes is not None and (time.monotonic() - t_start) / 60 >= max_minutes, world, dev)

    def over_budget(running: float = 0.0) -> bool:
        return _any(budget_minutes is not None and state.train_seconds + running >= 60.0 * budget_minutes, world, dev)

    stopped = state.stopped or ""  # an early-stopped run stays finished: resuming is a no-op
    n_steps = adapter.n_batches()
    while not stopped:
        epoch = state.epoch
        if epoch >= max_epochs:
            stopped = "max_epochs"
            break
        if out_of_time():
            stopped = "max_minutes"
            break
        if budget_minutes is not None and over_budget():
            stopped = "budget"
            break
        t0 = time.monotonic()
        model.train()
        adapter.begin_epoch(epoch, state)
        sums: dict[str, float] = {}
        n_seen, k, cut, spent = 0, 0, False, False
        for k, step in enumerate(adapter.batches(epoch, rank_, world)):
            batch = move_to(step.batch, dev)
            res = adapter.loss(call, batch, epoch)
            loss = res["loss"]
            if world > 1:  # the gradient of the global batch's mean, not of the ranks' means
                loss = loss * (world * step.n / max(step.n_global, 1))
            adapter.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if adapter.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), adapter.grad_clip)
            adapter.optimizer.step()
            adapter.after_step(epoch, k, n_steps)
            n_seen += step.n
            keys = adapter.loss_keys if adapter.loss_keys is not None else \
                [key for key, v in res.items() if torch.is_tensor(v) and v.dim() == 0]
            for key in keys:
                sums[key] = sums.get(key, 0.0) + float(res[key].detach()) * step.n
            if main and batch_progress is not None and n_steps:
                batch_progress(k + 1, n_steps)
            if adapter.cut_epochs and (n_steps is None or k + 1 < n_steps) and out_of_time():
                cut = True
                break
            if budget_minutes is not None and over_budget(time.monotonic() - t0):
                spent = True  # the epoch ends here, but is validated and kept
                break
        if cut:  # discard the partial epoch: the next call resumes from the last completed one
            stopped = "max_minutes"
            break
        sums, n_seen = _all_sum(sums, n_seen, world, dev)
        if n_seen == 0:
            raise InputError("training data yielded no batches")
        decision = None
        if main:
            record = {"epoch": epoch, **adapter.epoch_info(epoch)}
            record.update({f"train_{key}": v / n_seen for key, v in sums.items()})
            record.update(adapter.validate(epoch))
            monitored = adapter.monitored(record)
            improved = monitored > state.best_val if adapter.higher_is_better else monitored < state.best_val
            decision = (record, monitored, improved)
        record, monitored, improved = _broadcast(decision, world)
        if not math.isfinite(monitored):
            raise InputError(f"training diverged: {adapter.monitor_name} is {monitored} in epoch {epoch}; "
                             "lower the lr")
        adapter.end_epoch(epoch, monitored)
        if improved:
            state.best_val, state.best_epoch, state.since_best = monitored, epoch, 0
            if main:
                atomic_torch_save(to_cpu(model.state_dict()), out / "best.pt")
        else:
            state.since_best += 1
        seconds = time.monotonic() - t0
        seconds = _broadcast(seconds, world)
        record["seconds"] = seconds
        record["best_val"] = state.best_val
        state.history.append(record)
        state.epoch = epoch + 1
        state.train_seconds += seconds
        if patience and state.since_best >= patience:
            stopped = "early_stopping"
        elif spent:
            stopped = "budget"
        state.stopped = stopped if stopped in ("early_stopping", "budget") else ""
        rng = _rng_state(dev, world)
        if main:
            _save_last(out, fmt, adapter, state, rng)
            log.write(state.history)
            log.add(record)
            if progress is not None:
                progress(dict(record))
            adapter.epoch_done(dict(record), state)

    if log is not None:
        log.close()
    barrier()  # best.pt complete before every rank reads it
    restore_best(model, out)
    state.stopped = stopped
    return state


def result(state: LoopState, model: torch.nn.Module, config, out_dir: str | os.PathLike) -> TrainResult:
    """The :class:`TrainResult` of a finished :func:`run_loop`."""
    return TrainResult(model=model, config=config, out_dir=Path(out_dir), epochs=state.epoch,
                       best_epoch=state.best_epoch, best_val=state.best_val, stopped=state.stopped,
                       history=list(state.history))


def interleaved_batches(order: Iterable[int], batch_size: int, rank_: int, world: int) -> Iterator[tuple[list, int, int]]:
    """``(this rank's indices, their weight, global batch size)`` of consecutive global batches of
    ``order`` (weight = number of indices). A rank left without samples (a last batch smaller than
    the world) gets the batch's first sample with weight zero, so that every rank takes part in
    the gradient average."""
    order = list(order)
    for s in range(0, len(order), batch_size):
        glob = order[s:s + batch_size]
        mine = glob[shard(len(glob), rank_, world)]
        yield (mine, len(mine), len(glob)) if mine else (glob[:1], 0, len(glob))


__all__ = ["LoopState", "TrainResult", "Step", "Adapter", "run_loop", "result", "resolve_device", "init_distributed",
           "is_main_process", "rank", "world_size", "barrier", "main_process_first", "shard", "move_to", "to_cpu",
           "MetricsLog", "restore_best", "interleaved_batches", "check_resumable", "DEVICES"]
