"""CrystalNet hyper-parameters: one JSON-serialisable dataclass with ``paper`` and ``cpu`` presets.

Shapes the model expects (see :mod:`nanosolve.models.crystalnet.model`): ``xrd [B, n_bins]``
(Mo Kα sticks, max 1), ``comp [B, n_elements]`` (element fractions), ``coords [B, P, 3]``
(fractional), output ``density [B, P]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nanosolve.errors import InputError
from nanosolve.models.config_io import JsonConfig


@dataclass
class CrystalNetConfig(JsonConfig):
    """Architecture, loss and optimiser settings.

    From Guo et al.: 512-d variational latents for the XRD (1-D DenseNet) and the formula (MLP),
    concatenated; two fusion MLPs of 4 linear layers producing FiLM γ and β; random Fourier
    features (m = 128, σ = 3) followed by two linear layers; a FiLM-conditioned MLP regressor
    with skip connections; loss L1 + β KL with β = 0.05. Widths the paper does not state
    (DenseNet growth/blocks, hidden widths, regressor depth, where the skips go) are our
    choices: a DenseNet-121-like block layout and a NeRF-like 8-layer, 256-wide regressor with the
    positional embedding re-injected every ``skip_every`` layers.
    """

    _FAMILY = "CrystalNet"

    n_bins: int = 1024
    n_elements: int = 118
    latent_dim: int = 512  # per encoder; the fused code is 2 × latent_dim
    dense_growth: int = 32
    dense_blocks: tuple[int, ...] = (6, 12, 24, 16)
    dense_stem: int = 64
    dense_bn_size: int = 4  # bottleneck width = bn_size × growth
    formula_widths: tuple[int, ...] = (256, 512)
    fusion_width: int = 1024
    fusion_layers: int = 4
    fourier_features: int = 128  # m; the embedding has 2 m values (cos, sin)
    fourier_sigma: float = 3.0
    pos_width: int = 256
    hidden: int = 256
    n_layers: int = 8
    skip_every: int = 4
    beta: float = 0.05
    # How the KL of the 2 × latent_dim Gaussians enters β·KL: "sum" over dimensions (nats per
    # crystal) or "mean" over them (the reduction of VAE code that averages the elementwise KL;
    # the paper does not say which). "mean" is "sum" with β / (2 latent_dim).
    kl_reduction: str = "sum"
    lr: float = 1e-4
    batch_size: int = 16
    points_per_crystal: int = 4096
    dense_fraction: float = 0.5  # share of training points drawn ∝ density
    max_epochs: int = 500
    seed: int = 0
    # training schedule (nanosolve's choices; the paper gives Adam + cosine warm restarts only)
    restart_epochs: int = 10  # T_0 of the cosine warm restarts, epochs
    restart_mult: int = 1  # T_mult
    lr_min_factor: float = 0.01  # eta_min = lr × this
    patience: int = 30  # early stopping: epochs without a better monitored value
    monitor: str = "val_l1"  # or "val_ssim" (full-grid SSIM of a few validation crystals)
    xrd_noise: float = 0.01  # augmentation: Gaussian noise σ on the max-1 stick vector
    xrd_shift_deg: float = 0.5  # augmentation: |2θ shift| bound, < 0.6° as the paper
    val_points: int = 4096  # fixed stratified points per validation crystal
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("dense_blocks", "formula_widths"):
            setattr(self, name, tuple(int(w) for w in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        problems = self.nonfinite_problems()
        for name in ("n_bins", "n_elements", "latent_dim", "dense_growth", "dense_stem", "dense_bn_size",
                     "fusion_width", "fusion_layers", "fourier_features", "pos_width", "hidden", "n_layers",
                     "skip_every", "batch_size", "points_per_crystal", "max_epochs"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_bins < 32:
            problems.append(f"n_bins must be >= 32 (the DenseNet halves it 5 times), got {self.n_bins}")
        if not self.dense_blocks or any(b < 1 for b in self.dense_blocks):
            problems.append(f"dense_blocks must be positive, got {self.dense_blocks}")
        if any(w < 1 for w in self.formula_widths):
            problems.append(f"formula_widths must be positive, got {self.formula_widths}")
        if self.fusion_layers < 2:
            problems.append(f"fusion_layers must be >= 2, got {self.fusion_layers}")
        if not self.fourier_sigma > 0 or not self.lr > 0 or self.beta < 0:
            problems.append("fourier_sigma and lr must be > 0 and beta >= 0")
        if self.restart_epochs < 1 or self.restart_mult < 1 or self.patience < 1 or self.val_points < 1:
            problems.append("restart_epochs, restart_mult, patience and val_points must be >= 1")
        if self.kl_reduction not in ("sum", "mean"):
            problems.append(f"kl_reduction must be 'sum' or 'mean', got {self.kl_reduction!r}")
        if self.monitor not in ("val_l1", "val_ssim"):
            problems.append(f"monitor must be 'val_l1' or 'val_ssim', got {self.monitor!r}")
        if not 0 <= self.xrd_shift_deg < 0.6 or self.xrd_noise < 0 or not 0 <= self.lr_min_factor <= 1:
            problems.append("need 0 <= xrd_shift_deg < 0.6, xrd_noise >= 0 and 0 <= lr_min_factor <= 1")
        if not 0 <= self.dense_fraction <= 1:
            problems.append(f"dense_fraction must be in [0, 1], got {self.dense_fraction}")
        if problems:
            raise InputError("invalid CrystalNet config: " + "; ".join(problems))

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def paper(cls, **overrides) -> CrystalNetConfig:
        """The paper's architecture (≈ 18 M parameters with our width choices; a GPU model)."""
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides) -> CrystalNetConfig:
        """Same structure, shrunk to train on 2 CPU cores: 64-d latents, a 3-block DenseNet of
        growth 8, 64-wide fusion/regressor, 4 regressor layers; lr 1e-3 (small nets tolerate it
        and the budget is minutes, not days); β·KL averaged over the latent dimensions: with the
        sum, β = 0.05 lets only ~2 nats through and the model ignores the pattern (README)."""
        base = dict(latent_dim=64, dense_growth=8, dense_blocks=(2, 2, 2), dense_stem=16, dense_bn_size=2,
                    formula_widths=(64,), fusion_width=128, fourier_features=64, pos_width=64, hidden=64,
                    n_layers=4, skip_every=2, lr=1e-3, batch_size=8, points_per_crystal=1024, max_epochs=100,
                    kl_reduction="mean")
        base.update(overrides)
        return cls(**base)
