"""CDVAE hyper-parameters: one JSON-serialisable dataclass plus the ``cpu`` and ``paper`` presets.

Loss weights, noise schedules and Langevin settings follow Xie et al. (ICLR 2022) and their
reference configuration: λ_N 1, λ_L 10, λ_c (composition) 1, λ_X (coordinates) 10,
λ_A (types) 1, β (KL) 0.01; coordinate noise σ geometric 10 → 0.01 Å and type noise 5 → 0.01
in 50 levels; Langevin step 1e-4 with 100 steps per level; Adam 1e-3 with ReduceLROnPlateau
(factor 0.6, patience 30, min 1e-4). All lengths in Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nanosolve.errors import InputError
from nanosolve.models.config_io import JsonConfig

PRESETS = ("cpu", "paper")
SCHEDULERS = ("plateau", "cosine_restarts")
N_TYPES = 100  # elements H..Fm; type index = Z - 1


@dataclass
class CDVAEConfig(JsonConfig):
    """Architecture, loss, noise, sampler and optimiser settings of a CDVAE.

    Encoder: invariant periodic message passing on interatomic distances (``enc_*``).
    Decoder: E(3)-equivariant periodic score network (``dec_*``) conditioned on z and σ.
    Heads: MLPs ``latent_dim → head_hidden × head_layers →`` number of atoms (``max_atoms + 1``
    classes), 6 lattice parameters, composition (``N_TYPES`` logits), properties (``len(props)``).
    """

    _FAMILY = "CDVAE"

    latent_dim: int = 128
    max_atoms: int = 20
    props: tuple[str, ...] = ()  # property columns predicted by the property head (standardised)
    # encoder
    enc_hidden: int = 128
    enc_layers: int = 3
    enc_cutoff: float = 7.0  # Å
    enc_max_neighbors: int = 20  # nearest neighbours kept per atom (ties at the k-th distance kept)
    # decoder
    dec_hidden: int = 128
    dec_layers: int = 3
    dec_cutoff: float = 7.0
    dec_max_neighbors: int = 20
    n_rbf: int = 32
    # heads
    head_hidden: int = 128
    head_layers: int = 2
    # loss weights
    cost_natom: float = 1.0
    cost_lattice: float = 10.0
    cost_composition: float = 1.0
    cost_coord: float = 10.0
    cost_type: float = 1.0
    cost_property: float = 1.0
    beta: float = 0.01
    # noise schedules (geometric)
    sigma_begin: float = 10.0
    sigma_end: float = 0.01
    type_sigma_begin: float = 5.0
    type_sigma_end: float = 0.01
    num_noise_level: int = 50
    # fraction of training crystals whose decoder input types are a random permutation of their own
    # types (0 = the paper); their type loss is unweighted. Teaches the decoder which site each
    # element of a known composition takes, which composition-kept typing relies on.
    type_permute_prob: float = 0.0
    teacher_forcing_lattice: bool = True  # decoder sees the true lattice in training (as the paper)
    # Langevin sampler
    step_lr: float = 1e-4
    n_step_each: int = 100
    # optimisation
    scheduler: str = "plateau"  # "plateau" (ReduceLROnPlateau, the CDVAE paper) or "cosine_restarts"
    restart_epochs: int = 10  # cosine_restarts: first period T_0 (epochs)
    restart_mult: int = 2  # cosine_restarts: period multiplier T_mult
    lr: float = 1e-3
    min_lr: float = 1e-4
    lr_factor: float = 0.6
    lr_patience: int = 30
    batch_size: int = 256
    max_epochs: int = 1000
    patience: int = 200  # early stopping: epochs without a lower validation loss
    grad_clip: float = 0.0  # 0 = off
    # validation terms whose weighted sum picks best.pt and drives early stopping; () = the whole
    # objective. Lets a model whose use forces some heads' outputs (a PXRDNet solve fixes the number
    # of atoms, composition and types) select on the terms that still shape its output, e.g.
    # ("lattice", "coord", "xrd").
    select_on: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # provenance: data path, split, preset

    def __post_init__(self):
        self.props = tuple(str(p) for p in self.props)
        self.select_on = tuple(str(t) for t in self.select_on)
        self.validate()

    def validate(self) -> None:
        problems = self.nonfinite_problems()
        for name in ("latent_dim", "max_atoms", "enc_hidden", "enc_layers", "enc_max_neighbors", "dec_hidden",
                     "dec_layers", "dec_max_neighbors", "n_rbf", "head_hidden", "head_layers", "num_noise_level",
                     "n_step_each", "batch_size", "max_epochs", "patience"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("enc_cutoff", "dec_cutoff", "sigma_begin", "sigma_end", "type_sigma_begin", "type_sigma_end",
                     "step_lr", "lr"):
            if not float(getattr(self, name)) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.sigma_end >= self.sigma_begin or self.type_sigma_end >= self.type_sigma_begin:
            problems.append("noise schedules must decrease (sigma_begin > sigma_end)")
        if not 0.0 <= float(self.type_permute_prob) <= 1.0:
            problems.append(f"type_permute_prob must be within [0, 1], got {self.type_permute_prob}")
        if self.scheduler not in SCHEDULERS:
            problems.append(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if int(self.restart_epochs) < 1 or int(self.restart_mult) < 1:
            problems.append("restart_epochs and restart_mult must be >= 1")
        if self.max_atoms > 200:
            problems.append(f"max_atoms {self.max_atoms} is beyond what the periodic edge builder is meant for (≤ 200)")
        if problems:
            raise InputError("; ".join(problems))


def preset(name: str, **overrides) -> CDVAEConfig:
    """``cpu``: small and fast (trains on perov_5 in under an hour on one core); ``paper``: the
    published sizes (latent 256, hidden 256 heads, 4 encoder blocks, 128-wide decoder).

    ``overrides``: any :class:`CDVAEConfig` field.
    """
    if name == "cpu":
        # Sized for one CPU core: 64-wide 3-block networks, 12 neighbours (ties kept). Learning is
        # limited by the number of Adam steps an hour allows (composition is learnt last), so
        # smaller batches and a higher lr than the paper's 256 / 1e-3 give more progress per minute.
        # Half the crystals train the decoder on permuted types (sites from geometry): with
        # composition-kept typing, perov_5 reconstruction 74.5 % -> 85.5 % in the same 60 min.
        base = dict(latent_dim=128, enc_hidden=64, enc_layers=3, dec_hidden=64, dec_layers=3, n_rbf=32,
                    head_hidden=128, head_layers=2, batch_size=64, lr=2e-3, enc_max_neighbors=12,
                    dec_max_neighbors=12, lr_patience=10, grad_clip=100.0, type_permute_prob=0.5)
    elif name == "paper":
        base = dict(latent_dim=256, enc_hidden=128, enc_layers=4, dec_hidden=128, dec_layers=4, n_rbf=64,
                    head_hidden=256, head_layers=1, batch_size=256, max_epochs=5000, patience=500)
    else:
        raise InputError(f"unknown CDVAE preset {name!r}; expected one of {PRESETS}")
    base.update(overrides)
    base["extra"] = {**base.get("extra", {}), "preset": name}
    return CDVAEConfig.from_dict(base)


__all__ = ["CDVAEConfig", "preset", "PRESETS", "N_TYPES"]
