"""CrystalNet training on the shared loop (:mod:`nanosolve.models.training`): stratified query points, L1 + β·KL, Adam + cosine warm restarts, early
stopping, atomic checkpoints and exact resume.

One step: a batch of ``batch_size`` training crystals; for each, a fresh augmented pattern (2θ
shift < 0.6°, Gaussian noise) and ``points_per_crystal`` grid points drawn stratified
(``dense_fraction`` ∝ density, the rest uniform; :func:`inputs.sample_grid_points`); the loss is
the model's L1 + β·KL on those points. Targets are the procrystal densities divided by one
data-set constant, ``density_scale`` (:func:`density_scale`: the median over training crystals of
the grids' 99th-percentile density, e⁻/Å³), stored in ``config.extra`` so predictions come back in e⁻/Å³.

Validation every epoch, on fixed points (drawn once, seeded) of every validation crystal with
the posterior-mean latent: ``val_l1`` (scaled units); with ``monitor='val_ssim'`` also the 3-D
SSIM of full 50³ predictions of up to 8 validation crystals (no rotation search: the data sets
use standard settings, so the unrotated map is the one to get right).

Files in ``out_dir`` (each written atomically; the layout of :mod:`nanosolve.models.deepstruc.train`):
``config.json``, ``last.pt`` {format, model, optimizer, scheduler, rng, epoch, best_val,
best_epoch, since_best, history, stopped}, ``best.pt`` (state dict), ``history.json``.
Randomness: the shuffle uses a torch generator seeded by (seed, epoch), the points and
augmentation a numpy generator seeded by (seed, epoch, batch), the reparameterisation noise the
global torch RNG whose state is saved, so an interrupted and resumed run ends exactly where an
uninterrupted one does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nanosolve.errors import InputError
from nanosolve.models.checkpoints import load_model_dir
from nanosolve.models.crystalnet.config import CrystalNetConfig
from nanosolve.models.crystalnet.dataset import CrystalNetData
from nanosolve.models.crystalnet.inputs import augment_xrd, density_cdf, sample_grid_points
from nanosolve.models.crystalnet.model import CrystalNet
from nanosolve.models.training import Adapter, Step, TrainResult, resolve_device, result, run_loop, shard

CHECKPOINT_FORMAT = 1
N_VAL_SSIM = 8


# ---- data ------------------------------------------------------------------------------------
def density_scale(data: CrystalNetData, indices) -> float:
    """Median over ``indices`` of each grid's 99th-percentile density (e⁻/Å³): a typical value
    near the atoms, so scaled targets there are O(1) and the heavy-atom peaks O(10).

    Why not the maximum: the unit sets the balance between L1 and β·KL (scaling the targets by k
    is the same as dividing β by k). With targets divided by the median maximum (~700 e⁻/Å³ in
    the cubic set) the L1 on the mostly tiny values is ~0.1 and β·KL wins: both encoders
    collapse onto the prior (KL → 0.005 within two epochs) and the decoder predicts an average map.
    """
    m = [float(np.percentile(data.density(i), 99)) for i in indices]
    if not m:
        raise InputError("no training crystals")
    return float(np.median(m))


class CrystalSet:
    """Densities (scaled, float32, in memory), patterns and compositions of some crystals."""

    def __init__(self, data: CrystalNetData, indices, scale: float):
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.size == 0:
            raise InputError("empty crystal subset")
        self.rho = np.stack([data.density(i) for i in self.indices]).astype(np.float32) / np.float32(scale)
        # Cumulative densities once (float64 sums kept as float32: sampling needs no more), so a
        # batch does not redo a 125k-value cumsum per crystal per step.
        self.cdf = np.stack([density_cdf(r).astype(np.float32) for r in self.rho])
        self.xrd = np.asarray(data.xrd[self.indices], dtype=np.float32)
        self.comp = np.asarray(data.comp[self.indices], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, rows, rng: np.random.Generator, config: CrystalNetConfig, augment: bool = True,
              n_points: int | None = None):
        """(xrd [B, n_bins], comp [B, 118], coords [B, P, 3], target [B, P]) float32 tensors."""
        n_points = config.points_per_crystal if n_points is None else n_points
        pts = [sample_grid_points(self.rho[r], n_points, rng, config.dense_fraction, cdf=self.cdf[r]) for r in rows]
        xrd = self.xrd[rows]
        if augment:
            xrd = augment_xrd(xrd, rng, config.xrd_noise, config.xrd_shift_deg).astype(np.float32)
        return (torch.from_numpy(np.ascontiguousarray(xrd)), torch.from_numpy(self.comp[rows]),
                torch.from_numpy(np.stack([p[0] for p in pts])), torch.from_numpy(np.stack([p[1] for p in pts])))


def grid_coords(n: int = 50) -> torch.Tensor:
    """[1, n³, 3] fractional grid points (i/n, j/n, k/n) in C order (matches the density grids)."""
    ax = torch.arange(n, dtype=torch.float32) / n
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), dim=-1).reshape(1, -1, 3)


@torch.no_grad()
def predict_grids(model: CrystalNet, xrd, comp, n: int = 50, n_samples: int = 0, chunk: int = 32768) -> np.ndarray:
    """Full-grid predictions in the model's (scaled) units.

    Args:
        xrd: [B, n_bins]; comp: [B, 118] (arrays or tensors).
        n_samples: 0 -> the posterior-mean latent only, [B, n, n, n]; k > 0 -> k latent draws
            z ~ q(z | xrd, comp), [B, k, n, n, n].
    """
    model.eval()
    xrd = torch.as_tensor(np.asarray(xrd), dtype=torch.float32)
    comp = torch.as_tensor(np.asarray(comp), dtype=torch.float32)
    if xrd.dim() == 1:
        xrd, comp = xrd[None], comp[None]
    model._check(xrd, comp, torch.zeros(xrd.shape[0], 1, 3))
    dev = next(model.parameters()).device
    mu_x, lv_x, mu_c, lv_c = model.encode(xrd.to(dev), comp.to(dev))
    mu = torch.cat([mu_x, mu_c], dim=-1)
    std = (0.5 * torch.cat([lv_x, lv_c], dim=-1)).exp()
    z = mu[:, None] if n_samples == 0 else \
        mu[:, None] + torch.randn(mu.shape[0], n_samples, mu.shape[1]).to(dev) * std[:, None]
    z = z.reshape(-1, mu.shape[1])  # [B·S, 2L]
    coords = grid_coords(n).to(dev)
    out = torch.empty(z.shape[0], coords.shape[1])
    for s in range(0, coords.shape[1], chunk):
        e = model.positional(coords[:, s:s + chunk])  # shared by every latent
        out[:, s:s + chunk] = model.decode(z, None, embedding=e).cpu()
    out = out.reshape(xrd.shape[0], -1, n, n, n).numpy()
    return out[:, 0] if n_samples == 0 else out


# ---- checkpoints -----------------------------------------------------------------------------
def load_model(dir_or_file: str | os.PathLike) -> tuple[CrystalNet, CrystalNetConfig]:
    """Model (eval mode, best weights) and config from a run directory or a ``.pt`` file (with
    ``config.json`` beside it). ``config.extra['density_scale']`` converts outputs to e⁻/Å³."""
    return load_model_dir(dir_or_file, CrystalNetConfig, CrystalNet)


# ---- validation ------------------------------------------------------------------------------
@torch.no_grad()
def validate(model: CrystalNet, val: CrystalSet, val_points: tuple, n_ssim: int = 0) -> dict:
    """{'val_l1', 'val_kl'} on the fixed points (posterior mean), plus 'val_ssim' (mean over
    the first ``n_ssim`` crystals, full grid, unrotated) when ``n_ssim`` > 0."""
    from nanosolve.models.crystalnet.metrics import ssim3d

    was = model.training
    model.eval()
    coords, target = val_points
    l1, kl, n = 0.0, 0.0, 0
    bs = model.config.batch_size
    dev = next(model.parameters()).device
    for s in range(0, len(val), bs):
        rows = np.arange(s, min(s + bs, len(val)))
        rho, k = model(torch.from_numpy(val.xrd[rows]).to(dev), torch.from_numpy(val.comp[rows]).to(dev),
                       coords[rows].to(dev), sample=False, return_kl=True)
        l1 += float((rho - target[rows].to(dev)).abs().mean()) * len(rows)
        kl += float(k.sum())
        n += len(rows)
    res = {"val_l1": l1 / n, "val_kl": kl / n}
    if n_ssim:
        rows = np.arange(min(n_ssim, len(val)))
        pred = predict_grids(model, val.xrd[rows], val.comp[rows])
        res["val_ssim"] = float(np.mean([ssim3d(p, val.rho[r]) for p, r in zip(pred, rows)]))
    model.train(was)
    return res


def _fixed_points(val: CrystalSet, config: CrystalNetConfig, seed: int):
    rng = np.random.default_rng([seed, 7919])
    _, _, coords, target = val.batch(np.arange(len(val)), rng, config, augment=False, n_points=config.val_points)
    return coords, target


# ---- training --------------------------------------------------------------------------------
class CrystalNetAdapter(Adapter):
    """CrystalNet on the shared loop: Adam + cosine warm restarts stepped after every batch
    (fractional epochs), the budget checked between epochs, validation on fixed points."""

    family = "CrystalNet"
    train_method = "loss"
    loss_keys = ("loss", "l1", "kl")

    def __init__(self, model: CrystalNet, config: CrystalNetConfig, train_set: CrystalSet, val_set: CrystalSet,
                 val_points: tuple, n_ssim: int, seed: int):
        self.model, self.config, self.seed = model, config, seed
        self.train_set, self.val_set, self.val_points, self.n_ssim = train_set, val_set, val_points, n_ssim
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            self.optimizer, T_0=config.restart_epochs, T_mult=config.restart_mult,
            eta_min=config.lr * config.lr_min_factor)
        self.higher_is_better = config.monitor == "val_ssim"
        self.monitor_name = config.monitor
        self.lr_used = config.lr

    def n_batches(self) -> int:
        return math.ceil(len(self.train_set) / self.config.batch_size)

    def batches(self, epoch: int, rank: int, world: int):
        bs = self.config.batch_size
        order = torch.randperm(len(self.train_set),
                               generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)).numpy()
        for b in range(self.n_batches()):
            rows = order[b * bs:(b + 1) * bs]
            rng = np.random.default_rng([self.seed, epoch, b])
            # the whole global batch is drawn (same points and augmentation as one process), then sliced
            xrd, comp, coords, target = self.train_set.batch(rows, rng, self.config)
            part = shard(len(rows), rank, world)
            n = len(range(*part.indices(len(rows))))
            if n == 0:  # a rank left without samples takes part with weight zero
                part, n = slice(0, 1), 0
            yield Step((xrd[part], comp[part], coords[part], target[part]), n, len(rows))

    def loss(self, call, batch, epoch: int) -> dict:
        return call(*batch)

    def after_step(self, epoch: int, step: int, n_steps: int | None) -> None:
        self.lr_used = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step(epoch + (step + 1) / n_steps)

    def epoch_info(self, epoch: int) -> dict:
        return {"lr": self.lr_used}  # of the epoch's last step

    def validate(self, epoch: int) -> dict:
        return validate(self.model, self.val_set, self.val_points, self.n_ssim)

    def monitored(self, record: dict) -> float:
        return record[self.config.monitor]


def train(config: CrystalNetConfig, data: CrystalNetData, out_dir: str | os.PathLike,
          max_minutes: float | None = None, max_epochs: int | None = None, seed: int = 0, resume: bool = True,
          progress: Callable[[dict], None] | None = None, train_indices=None, val_indices=None,
          device: str = "cpu", tensorboard: bool = False) -> TrainResult:
    """Train CrystalNet on ``data`` (its ``split['train']`` / ``['val']`` unless indices are given)
    with the shared loop (:func:`nanosolve.models.training.run_loop`).

    ``max_epochs``: total epochs including resumed ones (default ``config.max_epochs``);
    ``max_minutes``: wall-time budget of this call, checked between epochs;
    ``resume``: continue from ``out_dir/last.pt`` if present;
    ``progress``: called with each epoch's history record; ``device``: cpu, cuda or mps;
    ``tensorboard``: also log TensorBoard scalars. Data-parallel under torchrun.
    """
    config.validate()
    resolve_device(device)  # refuse an unavailable device before any work
    max_epochs = config.max_epochs if max_epochs is None else int(max_epochs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tr_idx = data.split["train"] if train_indices is None else np.asarray(train_indices)
    va_idx = data.split["val"] if val_indices is None else np.asarray(val_indices)
    if len(tr_idx) == 0 or len(va_idx) == 0:
        raise InputError("need at least one training and one validation crystal", data.root)
    if "density_scale" not in config.extra:
        config.extra["density_scale"] = density_scale(data, tr_idx)
    config.extra.setdefault("system", data.system)
    scale = float(config.extra["density_scale"])
    train_set = CrystalSet(data, tr_idx, scale)
    val_set = CrystalSet(data, va_idx, scale)
    val_points = _fixed_points(val_set, config, seed)
    n_ssim = N_VAL_SSIM if config.monitor == "val_ssim" else 0

    torch.manual_seed(seed)
    model = CrystalNet(config)
    adapter = CrystalNetAdapter(model, config, train_set, val_set, val_points, n_ssim, seed)
    state = run_loop(adapter, out, config=config, max_epochs=max_epochs, patience=config.patience,
                     max_minutes=max_minutes, resume=resume, seed=seed, fmt=CHECKPOINT_FORMAT, device=device,
                     tensorboard=tensorboard, progress=progress)
    return result(state, model, config, out)


__all__ = ["train", "load_model", "validate", "predict_grids", "grid_coords", "density_scale", "CrystalSet",
           "TrainResult", "CHECKPOINT_FORMAT"]
