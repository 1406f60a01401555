"""Training PXRDNet = CDVAE's resumable training loop (:func:`nanosolve.models.cdvae.train.train`)
with the :class:`~nanosolve.models.pxrdnet.model.PXRDNet` network (its L1 pattern loss is logged as
``xrd``) and cosine annealing with warm restarts (the ``cpu`` and ``paper`` presets)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from nanosolve.models.cdvae.train import train as _train_cdvae
from nanosolve.models.checkpoints import load_model_dir
from nanosolve.models.pxrdnet.config import PXRDNetConfig
from nanosolve.models.pxrdnet.model import PXRDNet
from nanosolve.models.training import TrainResult


def train(config: PXRDNetConfig, train_data: Sequence, val_data: Sequence | None, out_dir: str | os.PathLike,
          **kwargs) -> TrainResult:
    """Train PXRDNet on CDVAE ``Data`` items carrying ``xrd`` [1, 512]
    (:func:`nanosolve.models.pxrdnet.data.to_pxrd_data`); keyword arguments as CDVAE's ``train``
    (``max_minutes``, ``max_epochs``, ``seed``, ``resume``, ``device``, ``tensorboard``, progress callbacks)."""
    return _train_cdvae(config, train_data, val_data, out_dir, model_cls=PXRDNet, **kwargs)


def load_model(dir_or_file: str | os.PathLike) -> tuple[PXRDNet, PXRDNetConfig]:
    """Model (eval mode, best weights) and config from a PXRDNet run directory or ``.pt`` file
    (``config.json`` beside it); missing/corrupt/foreign files → InputError naming the file."""
    return load_model_dir(dir_or_file, PXRDNetConfig, PXRDNet)


__all__ = ["train", "load_model", "TrainResult"]
