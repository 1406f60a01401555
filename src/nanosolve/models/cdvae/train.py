"""Training CDVAE on the shared loop (:mod:`nanosolve.models.training`): Adam +
ReduceLROnPlateau (as the paper), early stopping, time budget, atomic checkpoints, exact resume,
``--device`` and data-parallel training under torchrun.

Files written to ``out_dir`` (each atomically, every epoch; plus ``metrics.csv``):

* ``config.json``  - the :class:`CDVAEConfig`;
* ``last.pt``      - ``{format, model, optimizer, scheduler, rng, epoch, best_val, best_epoch,
  since_best, history, stopped}``: everything needed to continue bit-for-bit;
* ``best.pt``      - model state dict (incl. the lattice/property scalers) with the lowest
  validation loss (or weighted sum of the ``select_on`` terms);
* ``history.json`` - one record of losses per epoch.

Batches are shuffled with a generator seeded by ``(seed, epoch)``; noise comes from torch's global
RNG, whose state is saved in ``last.pt``; validation uses its own fixed generator. Hence an
interrupted and resumed run ends in exactly the state of an uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch_geometric.data import Batch, Data

from nanosolve.errors import InputError
from nanosolve.models.cdvae.config import CDVAEConfig
from nanosolve.models.cdvae.model import CDVAE, attach_encoder_edges
from nanosolve.models.checkpoints import load_model_dir
from nanosolve.models.training import Adapter, Step, TrainResult, interleaved_batches, resolve_device, result, run_loop

CHECKPOINT_FORMAT = 1
LOSS_KEYS = ("loss", "natom", "lattice", "composition", "coord", "type", "kl", "property")


def load_model(dir_or_file: str | os.PathLike) -> tuple[CDVAE, CDVAEConfig]:
    """Model (eval mode, best weights) and config from a training directory or a ``.pt`` file
    (``config.json`` beside it; a bare state dict or a ``last.pt`` checkpoint).
    Missing/corrupt files → InputError naming the file."""
    return load_model_dir(dir_or_file, CDVAEConfig, CDVAE)


def _check_data(items: Sequence[Data], name: str, cfg: CDVAEConfig) -> list[Data]:
    items = list(items)
    if not items:
        raise InputError(f"{name} data is empty")
    for k, d in enumerate(items):
        n = int(d.num_atoms)
        if n > cfg.max_atoms:
            raise InputError(f"{name} crystal {k} has {n} atoms; the model allows at most max_atoms={cfg.max_atoms}")
        if cfg.props and getattr(d, "y", None) is None:
            raise InputError(f"{name} crystal {k} has no property values but the config asks for {list(cfg.props)}")
    return items


def _batches(items: list[Data], batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(len(items), generator=generator).tolist() if generator is not None else range(len(items))
    order = list(order)
    for s in range(0, len(order), batch_size):
        yield Batch.from_data_list([items[i] for i in order[s:s + batch_size]])


@torch.no_grad()
def evaluate_loss(model: CDVAE, items: Sequence[Data], batch_size: int = 256, seed: int = 12345) -> dict:
    """Validation losses averaged over crystals, with a fixed noise generator (deterministic; does
    not touch the global RNG) and z = μ."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    sums, n = {}, 0
    device = next(model.parameters()).device
    for batch in _batches(list(items), batch_size, None):
        if device.type != "cpu":
            batch = batch.to(device)
        out = model.loss(batch, generator=g, sample_z=False)
        b = len(batch.num_atoms)
        n += b
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v) * b
    model.train(was)
    return {k: v / n for k, v in sums.items()}


def _monitored(record: dict, part: str, select_on: Sequence[str], weights: dict[str, float]) -> float:
    """The quantity that picks best.pt: ``{part}_loss``, or the weighted sum of the ``select_on`` terms."""
    if not select_on:
        return record[f"{part}_loss"]
    return sum(weights[t] * record[f"{part}_{t}"] for t in select_on)


def _shuffle_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


class CDVAEAdapter(Adapter):
    """CDVAE (or a subclass such as PXRDNet) on the shared loop: Adam + ReduceLROnPlateau or
    cosine warm restarts, gradient clipping, the budget checked after every batch."""

    train_method = "loss"
    cut_epochs = True

    def __init__(self, model: CDVAE, config: CDVAEConfig, train_items: list[Data], val_items: list[Data] | None,
                 seed: int):
        self.family = config._FAMILY
        self.model, self.config, self.seed = model, config, seed
        self.train_items, self.val_items = train_items, val_items
        self.weights = model.term_weights()
        self.grad_clip = float(config.grad_clip)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        if config.scheduler == "cosine_restarts":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                self.optimizer, T_0=int(config.restart_epochs), T_mult=int(config.restart_mult), eta_min=config.min_lr)
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)

    def n_batches(self) -> int:
        return (len(self.train_items) + self.config.batch_size - 1) // self.config.batch_size

    def batches(self, epoch: int, rank: int, world: int):
        order = torch.randperm(len(self.train_items), generator=_shuffle_generator(self.seed, epoch)).tolist()
        for idx, n, n_global in interleaved_batches(order, self.config.batch_size, rank, world):
            yield Step(Batch.from_data_list([self.train_items[i] for i in idx]), n, n_global)

    def validate(self, epoch: int) -> dict:
        if self.val_items is None:
            return {}
        return {f"val_{k}": v for k, v in evaluate_loss(self.model, self.val_items, self.config.batch_size).items()}

    def monitored(self, record: dict) -> float:
        part = "val" if self.val_items is not None else "train"
        record["monitored"] = _monitored(record, part, self.config.select_on, self.weights)
        return record["monitored"]

    def end_epoch(self, epoch: int, monitored: float) -> None:
        if self.config.scheduler == "cosine_restarts":
            self.scheduler.step()
        else:
            self.scheduler.step(monitored)


def train(config: CDVAEConfig, train_data: Sequence[Data], val_data: Sequence[Data] | None, out_dir: str | os.PathLike,
          max_minutes: float | None = None, max_epochs: int | None = None, seed: int = 0, resume: bool = True,
          progress: Callable[[dict], None] | None = None, batch_progress: Callable[[int, int], None] | None = None,
          model_cls: type = CDVAE, device: str = "cpu", tensorboard: bool = False) -> TrainResult:
    """Train a CDVAE on lists of CDVAE ``Data`` (see :mod:`~nanosolve.models.cdvae.batch`) with
    the shared loop (:func:`nanosolve.models.training.run_loop`).

    ``max_epochs``: total epochs including resumed ones (default ``config.max_epochs``);
    ``max_minutes``: wall-time budget of this call, checked after every batch (an epoch cut
    short is discarded: the run resumes from the last completed epoch);
    ``resume``: continue from ``out_dir/last.pt`` when present; ``progress(record)`` after each
    epoch; ``batch_progress(done, total)`` after each batch; ``device``: cpu, cuda or mps;
    ``tensorboard``: also log TensorBoard scalars. Data-parallel under torchrun (see
    :mod:`nanosolve.models.training`).
    Early stopping: ``config.patience`` epochs without a lower validation loss (the weighted sum of
    the ``config.select_on`` terms when given; each epoch's record holds it as ``monitored``).
    ``model_cls``: the network to build from ``config`` (a CDVAE subclass such as PXRDNet, whose
    extra loss terms are logged under their own names).
    """
    config.validate()
    resolve_device(device)  # refuse an unavailable device before any work
    max_epochs = config.max_epochs if max_epochs is None else int(max_epochs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_items = _check_data(train_data, "training", config)
    val_items = None if val_data is None else _check_data(val_data, "validation", config)
    train_items = attach_encoder_edges(train_items, config)
    val_items = None if val_items is None else attach_encoder_edges(val_items, config)

    torch.manual_seed(seed)
    model = model_cls(config)
    model.fit_scalers(train_items)
    weights = model.term_weights()
    unknown = sorted(set(config.select_on) - set(weights))
    if unknown:
        raise InputError(f"select_on names unknown loss terms {unknown}; {model_cls.__name__} has {sorted(weights)}")
    adapter = CDVAEAdapter(model, config, train_items, val_items, seed)
    state = run_loop(adapter, out, config=config, max_epochs=max_epochs, patience=config.patience,
                     max_minutes=max_minutes, resume=resume, seed=seed, fmt=CHECKPOINT_FORMAT, device=device,
                     tensorboard=tensorboard, progress=progress, batch_progress=batch_progress)
    return result(state, model, config, out)


def load_tables(paths: Sequence[str | os.PathLike], props: Sequence[str] | None = None, max_atoms: int | None = None,
                niggli: bool = True, primitive: bool = False):
    """One :class:`~nanosolve.models.cdvae.data.CrystalTable` from CDVAE CSVs and/or CIF folders,
    concatenated in order (ids prefixed by the file stem when several sources are given).

    ``props``: property columns to keep (every source must have them); None keeps those common to
    all sources. Missing files, CSVs without a ``cif`` column etc. → InputError (from ``data``).
    """
    import numpy as np

    from nanosolve.models.cdvae.data import CrystalTable, read_cdvae_csv, read_cif_folder

    if not paths:
        raise InputError("no data given: pass CDVAE CSV files or CIF folders")
    tables = []
    for p in map(Path, paths):
        if p.is_dir():
            tables.append(read_cif_folder(p, max_atoms=max_atoms, niggli=niggli, primitive=primitive))
        else:
            tables.append(read_cdvae_csv(p, props=props, max_atoms=max_atoms, niggli=niggli, primitive=primitive))
    if len(tables) == 1:
        return tables[0]
    common = set(tables[0].props)
    for t in tables[1:]:
        common &= set(t.props)
    keep = list(props) if props else sorted(common)
    crystals, ids, rejected = [], [], []
    for p, t in zip(paths, tables):
        crystals += t.crystals
        ids += [f"{Path(p).stem}:{i}" for i in t.ids]
        rejected += t.rejected
    out_props = {}
    for k in keep:
        if not all(k in t.props for t in tables):
            raise InputError(f"property {k!r} is not in every data source")
        out_props[k] = np.concatenate([t.props[k] for t in tables])
    return CrystalTable(crystals, ids, out_props, rejected)


__all__ = ["train", "load_model", "load_tables", "evaluate_loss", "TrainResult", "CHECKPOINT_FORMAT"]
