"""PXRDNet solve-side sampling: latent optimisation against a pattern + formula, and decoding with
the formula forced (teacher forcing of the number of atoms and the atom types).

Objective per latent code z (one row of a [K, latent] batch, all optimised together):

    L(z) = mean_mask |F(z) − y|  +  β/2 ‖z‖²  +  β_N CE(N-head(z), N)  +  β_C CE(composition-head(z), p)

with F the pattern regressor, y the input pattern on the model grid (``mask`` selects the points
inside the measured Q range), −log p(z) = ‖z‖²/2 + const for the standard-normal prior, N the
formula's atom count and p its element fractions (soft-target cross-entropy). Adam with cosine
annealing and warm restarts (``opt_lr`` → ``opt_min_lr``, period ``opt_restart_steps``).

Baselines on the same model and decoding (``init``): ``"optimise"`` (PXRDNet), ``"prior"``
(CDVAE-Search: z ~ N(0, I), no optimisation) and :func:`random_candidates` (random coordinates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nanosolve.errors import InputError
from nanosolve.models.cdvae.config import N_TYPES
from nanosolve.models.cdvae.sample import decode
from nanosolve.models.pxrdnet.model import PXRDNet
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_number

INITS = ("optimise", "prior")


def formula_types(formula: str | dict, model: PXRDNet | None = None) -> list[str]:
    """Element symbols of every atom in the cell, sorted by Z, from a cell formula ('Sr1Ti1O3',
    'SrTiO3', {'Sr': 1, ...}). InputError for a non-integer or empty formula, more atoms than the
    model allows, or an element the model never saw in training (``config.extra['elements']``)."""
    from nanosolve.structures.formula import MAX_FORMULA_ATOMS, formula_atoms, parse_formula

    counts = parse_formula(formula, integer=True)  # strict: exact symbols, counts >= 1, size cap
    if model is not None and sum(counts.values()) > model.cfg.max_atoms:  # before one entry per atom is made
        raise InputError(f"formula {formula!r} has {sum(counts.values())} atoms in the cell; the model allows at "
                         f"most {model.cfg.max_atoms}")
    types = sorted(formula_atoms(counts, MAX_FORMULA_ATOMS), key=atomic_number)
    if model is not None:
        cfg = model.cfg
        if len(types) > cfg.max_atoms:
            raise InputError(f"formula {formula!r} has {len(types)} atoms in the cell; the model allows at most "
                             f"{cfg.max_atoms}")
        seen = set(cfg.extra.get("elements") or [])
        unseen = sorted({t for t in types if seen and t not in seen}, key=atomic_number)
        if unseen:
            raise InputError(f"element(s) {', '.join(unseen)} of formula {formula!r} never occur in this model's "
                             "training data")
    return types


def cell_formula(crystal: Crystal) -> str:
    """The cell contents as a formula string with every count written ('Sr1Ti1O3'), elements by Z."""
    els = sorted(set(crystal.species), key=atomic_number)
    return "".join(f"{el}{crystal.species.count(el)}" for el in els)


def _composition_target(types: Sequence[str]) -> torch.Tensor:
    p = torch.zeros(N_TYPES)
    for t in types:
        p[atomic_number(t) - 1] += 1.0
    return p / p.sum()


@dataclass
class LatentFit:
    """Result of :func:`optimize_latents`: ``z`` [K, latent], final per-code objective ``loss`` [K]
    and its pattern part ``pattern_l1`` [K]; ``history`` = mean objective every 10 steps."""

    z: torch.Tensor
    loss: np.ndarray
    pattern_l1: np.ndarray
    history: list[float] = field(default_factory=list)


def objective(model: PXRDNet, z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, n_atoms,
              comp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective [K], pattern L1 [K]) of latent codes z [K, latent] against patterns y [K or 1, P]
    with masks [K or 1, P], atom counts ``n_atoms`` (int or [K]) and element fractions comp
    [K or 1, N_TYPES] (see module docstring)."""
    cfg = model.cfg
    pred = model.predict_pattern(z)
    l1 = ((pred - y).abs() * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    prior = 0.5 * (z ** 2).sum(-1)
    n_t = torch.as_tensor(n_atoms, dtype=torch.long).expand(len(z))
    ce_n = F.cross_entropy(model.predict_num_atoms(z), n_t, reduction="none")
    ce_c = -(comp * torch.log_softmax(model.predict_composition(z), -1)).sum(-1)
    return l1 + cfg.opt_beta * prior + cfg.opt_beta_n * ce_n + cfg.opt_beta_c * ce_c, l1


def optimize_latents(model: PXRDNet, y, mask, types: Sequence[str], k: int = 100, steps: int | None = None,
                     seed: int = 0, z0: torch.Tensor | None = None) -> LatentFit:
    """Optimise ``k`` latent codes (from z ~ N(0, I), or ``z0``) on the objective for pattern ``y``
    [P] (max 1, model grid) with boolean ``mask`` [P]; ``steps`` default ``config.opt_steps``."""
    return optimize_latents_batch(model, np.asarray(y)[None], np.asarray(mask)[None], [types], k, steps, seed, z0)


def optimize_latents_batch(model: PXRDNet, ys, masks, types_list: Sequence[Sequence[str]], k: int = 100,
                           steps: int | None = None, seed: int = 0, z0: torch.Tensor | None = None) -> LatentFit:
    """:func:`optimize_latents` for C patterns at once: ys, masks [C, P], one formula (list of atom
    symbols) per pattern; returns C·k codes, pattern c owning rows c·k … c·k + k − 1."""
    cfg = model.cfg
    steps = cfg.opt_steps if steps is None else int(steps)
    y_t = torch.as_tensor(np.asarray(ys, dtype=np.float32))
    m_t = torch.as_tensor(np.asarray(masks, dtype=np.float32))
    if y_t.dim() != 2 or y_t.shape[1] != cfg.xrd_points or m_t.shape != y_t.shape or len(types_list) != len(y_t):
        raise InputError(f"patterns and masks must be [C, {cfg.xrd_points}] (the model grid) with one formula each, "
                         f"got {tuple(y_t.shape)} / {tuple(m_t.shape)} / {len(types_list)}")
    k = int(k)
    rep = lambda t: t.repeat_interleave(k, 0)  # noqa: E731 - one row per code
    y_t, m_t = rep(y_t), rep(m_t)
    comp = rep(torch.stack([_composition_target(t) for t in types_list]))
    n_atoms = rep(torch.tensor([len(t) for t in types_list]))
    gen = torch.Generator().manual_seed(int(seed))
    z = (torch.randn((len(y_t), cfg.latent_dim), generator=gen) if z0 is None else z0.detach().clone().float())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    z.requires_grad_(True)
    history = []
    try:
        if steps > 0:
            opt = torch.optim.Adam([z], lr=cfg.opt_lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.opt_restart_steps,
                                                                         eta_min=cfg.opt_min_lr)
            for step in range(steps):
                loss, _ = objective(model, z, y_t, m_t, n_atoms, comp)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # codes are independent: the sum gives each its own gradient
                opt.step()
                sched.step()
                if step % 10 == 0:
                    history.append(float(loss.detach().mean()))
        with torch.no_grad():
            loss, l1 = objective(model, z, y_t, m_t, n_atoms, comp)
        history.append(float(loss.mean()))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return LatentFit(z.detach(), loss.numpy().astype(float), l1.numpy().astype(float), history)


def decode_formula(model: PXRDNet, z: torch.Tensor, types: Sequence[str], n_step_each: int | None = None,
                   seed: int = 0, name: str = "candidate", batch_size: int = 512) -> list[Crystal]:
    """Decode latent codes [K, latent] with the cell's atom types forced (every candidate has exactly
    the formula); lattice from the lattice head."""
    K = len(z)
    return decode(model, z, atom_types=[list(types)] * K, n_step_each=n_step_each, seed=seed,
                  names=[f"{name}_{i:03d}" for i in range(K)], batch_size=batch_size)


def random_candidates(model: PXRDNet, types: Sequence[str], k: int, seed: int = 0,
                      name: str = "random") -> list[Crystal]:
    """Baseline: the formula's atoms at uniformly random fractional positions, in the lattice the
    heads predict from a prior sample z ~ N(0, I) (no Langevin, no pattern)."""
    gen = torch.Generator().manual_seed(int(seed) + 7)
    z = torch.randn((int(k), model.cfg.latent_dim), generator=gen)
    with torch.no_grad():
        _, lengths, angles = model.predict_lattice(z, torch.full((int(k),), len(types)))
    from nanosolve.structures.crystal import lattice_from_parameters

    rng = np.random.default_rng(seed)
    out = []
    for i in range(int(k)):
        lat = lattice_from_parameters(*lengths[i].tolist(), *angles[i].tolist())
        out.append(Crystal(lat, rng.random((len(types), 3)), list(types), name=f"{name}_{i:03d}"))
    return out


__all__ = ["formula_types", "cell_formula", "optimize_latents", "optimize_latents_batch", "objective", "decode_formula", "random_candidates", "LatentFit",
           "INITS"]
