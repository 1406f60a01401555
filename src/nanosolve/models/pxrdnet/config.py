"""PXRDNet hyper-parameters: a :class:`~nanosolve.models.cdvae.config.CDVAEConfig` plus the PXRD
regressor, the pattern recipe it is trained on and the latent-optimisation settings of a solve.

PXRDNet (Guo, Saidi, Terban, Valsecchi, Billinge, Lipson) trains CDVAE jointly with a regressor
F(z) of the nano-broadened pattern (L1 loss) under cosine annealing with warm restarts; a solve
minimises ‖F(z) − y‖₁ − β log p(z) + β_N CE(N) + β_C CE(composition) over K latent codes
(β 2e-4, β_N = β_C = 0.1; Adam with cosine warm restarts from 0.1 to 1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

from nanosolve.errors import InputError
from nanosolve.models.cdvae.config import CDVAEConfig
from nanosolve.models.cdvae.config import preset as cdvae_preset

PRESETS = ("cpu", "paper")
SIZE_MODELS = ("pxrdnet", "scherrer")


@dataclass
class PXRDNetConfig(CDVAEConfig):
    """CDVAE fields + ``xrd_*`` (regressor z → pattern), the pattern recipe and ``opt_*`` (solve).

    Regressor (the paper's): z → FC to ``xrd_points`` + BatchNorm + ReLU → 1-D conv to
    ``xrd_channels`` → dense block of ``xrd_dense_layers`` k=3 convolutions of ``xrd_channels``
    each (every layer sees all earlier outputs) → conv to 1 channel: the pattern on the model's
    512-point Q grid (0–8.1568 Å⁻¹, max 1).
    """

    _FAMILY = "PXRDNet"

    xrd_points: int = 512
    xrd_channels: int = 8
    xrd_dense_layers: int = 4
    cost_xrd: float = 30.0  # L1 pattern loss weight: makes the pattern shape the encoder's latent space
    # the training patterns (see nanosolve.scattering.nano_pxrd)
    size: float = 10.0  # crystallite size τ (Å)
    size_model: str = "pxrdnet"  # "pxrdnet" (sinc²(Qτ/2)) or "scherrer" (physical per-peak width)
    # latent optimisation (solve)
    opt_beta: float = 2e-4
    opt_beta_n: float = 0.1
    opt_beta_c: float = 0.1
    opt_lr: float = 0.1
    opt_min_lr: float = 1e-4
    # 500 steps (paper: 35,000) and 5 Langevin steps per noise level (CDVAE: 100, i.e. 5,000 decoder
    # calls per batch) keep a default 100-candidate solve within a minute on 2 CPU cores; the
    # README's 200-crystal benchmark measures with fewer still (200 steps, 3 Langevin steps)
    opt_steps: int = 500
    opt_restart_steps: int = 250
    solve_n_step_each: int = 5

    def validate(self) -> None:
        super().validate()
        problems = []
        if self.xrd_points < 16 or self.xrd_channels < 1 or self.xrd_dense_layers < 1:
            problems.append("xrd_points >= 16, xrd_channels >= 1 and xrd_dense_layers >= 1 are required")
        if not self.size > 0:
            problems.append(f"size (crystallite size, Å) must be > 0, got {self.size}")
        if self.size_model not in SIZE_MODELS:
            problems.append(f"size_model must be one of {SIZE_MODELS}, got {self.size_model!r}")
        if self.opt_steps < 0 or self.opt_restart_steps < 1 or not self.opt_lr > 0 or self.solve_n_step_each < 1:
            problems.append("opt_steps >= 0, opt_restart_steps >= 1, opt_lr > 0 and solve_n_step_each >= 1 "
                            "are required")
        if problems:
            raise InputError("; ".join(problems))


def preset(name: str, **overrides) -> PXRDNetConfig:
    """``cpu``: CDVAE's cpu preset (64-wide, latent 128) with cosine warm restarts, trainable in
    under an hour on one core; ``paper``: CDVAE's paper sizes (latent 256) and 35,000 solve steps.

    ``overrides``: any :class:`PXRDNetConfig` field.
    """
    if name not in PRESETS:
        raise InputError(f"unknown PXRDNet preset {name!r}; expected one of {PRESETS}")
    own = {k: overrides.pop(k) for k in list(overrides) if k not in CDVAEConfig.__dataclass_fields__}
    # PXRDNet decodes with the formula's types held fixed, which needs a decoder whose coordinates
    # follow the types; CDVAE's cpu preset trains the decoder on permuted types as well (for
    # composition-kept re-typing), so that is off here unless asked for
    overrides.setdefault("type_permute_prob", 0.0)
    base = cdvae_preset(name, scheduler="cosine_restarts", **overrides).to_dict()
    if name == "paper":
        own.setdefault("opt_steps", 35000)
        own.setdefault("opt_restart_steps", 5000)
    base.update(own)
    base["extra"] = {**base.get("extra", {}), "family": "pxrdnet"}
    return PXRDNetConfig.from_dict(base)


__all__ = ["PXRDNetConfig", "preset", "PRESETS", "SIZE_MODELS"]
