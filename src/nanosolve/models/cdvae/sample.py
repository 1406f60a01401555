"""Annealed Langevin sampling from a CDVAE: encode, decode(z), reconstruct, generate.

Decoding a latent z (Xie et al. 2022, Algorithm 1): the heads give the number of atoms N (argmax),
the lattice and a composition distribution; N atom types are drawn from the composition
(largest-remainder rounding of N·p, so the most likely stoichiometry comes first) and placed at
uniformly random fractional coordinates; then for each noise level σ_1 > … > σ_L the positions
take ``n_step_each`` Langevin steps of size ε = step_lr · (σ/σ_L)²:
``x ← x + ε · s(x)/σ + sqrt(2ε) · ξ`` (s = the decoder output, trained as (x − x̃)/σ), wrapped into
the cell, and the types are set to the argmax of the decoder's type logits.

Teacher forcing (PXRDNet): pass ``num_atoms`` and/or ``atom_types`` to keep them fixed, and
``lengths``/``angles`` to fix the lattice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch_geometric.data import Batch

from nanosolve.errors import InputError
from nanosolve.models.cdvae.batch import crystal_to_data, data_to_crystals, lattice_from_params
from nanosolve.models.cdvae.model import CDVAE
from nanosolve.structures.crystal import Crystal


def _as_batch(items) -> Batch:
    items = list(items)
    if items and isinstance(items[0], Crystal):
        items = [crystal_to_data(c) for c in items]
    return Batch.from_data_list(items)


def check_sizes(model: CDVAE, data_list, names: Sequence[str] | None = None) -> None:
    """InputError when a crystal has more atoms than the model allows (``config.max_atoms``)."""
    for k, d in enumerate(data_list):
        n = int(d.num_atoms) if hasattr(d, "num_atoms") else len(d)
        if n > model.cfg.max_atoms:
            name = names[k] if names is not None else f"crystal {k}"
            raise InputError(f"{name} has {n} atoms; this model allows at most {model.cfg.max_atoms}")


@torch.no_grad()
def encode(model: CDVAE, items, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, log σ²) [n, latent_dim] of crystals (``Crystal`` or CDVAE ``Data`` items)."""
    items = list(items)
    check_sizes(model, items, [getattr(c, "name", None) or f"crystal {k}" for k, c in enumerate(items)])
    model.eval()
    mus, lvs = [], []
    for s in range(0, len(items), batch_size):
        mu, lv = model.encode(_as_batch(items[s:s + batch_size]))
        mus.append(mu)
        lvs.append(lv)
    return torch.cat(mus), torch.cat(lvs)


def composition_counts(probs: torch.Tensor, n: int) -> torch.Tensor:
    """Atom types (Z, [n] int64) from a composition distribution [N_TYPES] by largest-remainder
    rounding of n·p (deterministic: ties broken by probability)."""
    quota = probs.double() * n
    counts = torch.floor(quota).long()
    rest = n - int(counts.sum())
    if rest > 0:
        counts[torch.argsort(quota - counts, descending=True)[:rest]] += 1
    return torch.repeat_interleave(torch.arange(1, len(probs) + 1), counts)


def likely_stoichiometries(probs: torch.Tensor, n: int, m: int, top: int = 6) -> list[torch.Tensor]:
    """The ``m`` stoichiometries of ``n`` atoms closest to a composition distribution [N_TYPES], as
    atom types (Z, [n] int64 each), best first. Candidates: the largest-remainder
    rounding (:func:`composition_counts`, always first) and every move of one atom between two of
    the ``top`` most likely elements, ranked by KL(q ‖ p) of their fractions q = nₖ/n from p
    (lowest first). Unlike the multinomial probability, which favours piling atoms on the likeliest
    elements, this keeps every element the head gives real weight to (p = Ga .35, As .10, O .40,
    F .15 over 5 atoms: GaAsO2F ranks first of the one-atom moves, Ga2O2F is the rounding)."""
    base = torch.bincount(composition_counts(probs, n) - 1, minlength=len(probs))
    logp = torch.log(probs.double().clamp(min=1e-30))
    elems = torch.argsort(probs, descending=True)[:top].tolist()
    seen, cands = {tuple(base.tolist())}, [base]
    for i in elems:
        for j in elems:
            if i != j and base[i] > 0:
                c = base.clone()
                c[i] -= 1
                c[j] += 1
                if tuple(c.tolist()) not in seen:
                    seen.add(tuple(c.tolist()))
                    cands.append(c)

    def kl(c):
        q = c.double() / n
        ok = c > 0
        return float((q[ok] * (torch.log(q[ok]) - logp[ok])).sum())

    ranked = [cands[0]] + sorted(cands[1:], key=kl)
    return [torch.repeat_interleave(torch.arange(1, len(probs) + 1), c) for c in ranked[:m]]


TYPE_MODES = ("argmax", "composition", "fixed")


def assign_types(logits: torch.Tensor, types: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
    """Re-label atoms with a fixed multiset of types per crystal so that the summed decoder
    log-probabilities are maximal (Hungarian assignment, scipy): the composition stays, which atom
    carries which element follows the decoder. logits [ΣN, N_TYPES], types [ΣN] Z → [ΣN] Z."""
    from scipy.optimize import linear_sum_assignment

    logp = torch.log_softmax(logits, -1).detach().cpu().numpy()
    t = types.cpu().numpy()
    out, start = t.copy(), 0
    for n in num_atoms.tolist():
        sl = slice(start, start + n)
        cost = -logp[sl][:, t[sl] - 1]  # [atom, slot]
        rows, cols = linear_sum_assignment(cost)
        out[start + rows] = t[sl][cols]
        start += n
    return torch.as_tensor(out, dtype=types.dtype)


def log_posterior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """[B] log q(z | crystal) up to a constant: the diagonal Gaussian posterior (μ, log σ²) [B, latent]
    of each crystal evaluated at its latent code z [B, latent]."""
    return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar).sum(-1)


def langevin(model: CDVAE, z: torch.Tensor, num_atoms: torch.Tensor, lengths: torch.Tensor, angles: torch.Tensor,
             atom_types: torch.Tensor, type_mode: str = "argmax", n_step_each: int | None = None,
             step_lr: float | None = None, generator: torch.Generator | None = None,
             callback: Callable[[int, int], None] | None = None) -> dict:
    """Annealed Langevin dynamics for a batch (see module docstring).

    Args: z [B, latent]; num_atoms [B]; lengths/angles [B, 3] (Å, degrees); atom_types [ΣN] initial
    types (Z). ``type_mode``: ``argmax`` (the paper: every
    step each atom takes the decoder's most likely element), ``composition`` (the initial
    composition is kept and only redistributed over the atoms by :func:`assign_types`) or ``fixed``
    (the initial types are kept on their atoms and the coordinates arrange themselves around them;
    atoms of one crystal are interchangeable, so no assignment is lost by not re-typing; also how
    teacher-forced types are held).
    ``callback(level, n_levels)`` after each level.
    Returns dict ``frac_coords`` [ΣN, 3], ``atom_types`` [ΣN], ``lengths``, ``angles``, ``num_atoms``.
    """
    cfg = model.cfg
    if type_mode not in TYPE_MODES:
        raise InputError(f"unknown type_mode {type_mode!r}; use one of {TYPE_MODES}")
    n_step_each = cfg.n_step_each if n_step_each is None else int(n_step_each)
    step_lr = cfg.step_lr if step_lr is None else float(step_lr)
    B = len(num_atoms)
    batch = torch.repeat_interleave(torch.arange(B), num_atoms)
    lattice = lattice_from_params(lengths, angles)
    inv = torch.linalg.inv(lattice)
    frac = torch.rand((int(num_atoms.sum()), 3), generator=generator)
    types = atom_types.clone()
    sig_end = float(model.sigmas[-1])
    for level, sigma in enumerate(model.sigmas.tolist()):
        step = step_lr * (sigma / sig_end) ** 2
        sig = torch.full((B,), sigma)
        for _ in range(n_step_each):
            score, logits = model.decode_step(z, frac, types, lattice, num_atoms, batch, sig)
            cart = torch.einsum("ni,nij->nj", frac, lattice[batch])
            noise = torch.randn(cart.shape, generator=generator)
            cart = cart + step * score / sigma + (2.0 * step) ** 0.5 * noise
            frac = torch.einsum("ni,nij->nj", cart, inv[batch]) % 1.0
            if type_mode == "composition":
                types = assign_types(logits, types, num_atoms)
            elif type_mode == "argmax":
                types = logits.argmax(-1) + 1
        if callback is not None:
            callback(level + 1, len(model.sigmas))
    return {"frac_coords": frac, "atom_types": types, "lengths": lengths, "angles": angles, "num_atoms": num_atoms}


@torch.no_grad()
def decode(model: CDVAE, z: torch.Tensor, num_atoms: Sequence[int] | torch.Tensor | None = None,
           atom_types: Sequence[Sequence[int | str]] | None = None, lengths: torch.Tensor | None = None,
           angles: torch.Tensor | None = None, n_step_each: int | None = None, step_lr: float | None = None,
           batch_size: int = 512, seed: int | None = 0, names: Sequence[str] | None = None,
           callback: Callable[[int, int], None] | None = None, type_mode: str = "argmax",
           candidates: int = 1, stoichiometries: int = 1) -> list[Crystal]:
    """Crystals decoded from latent codes z [B, latent_dim] by annealed Langevin dynamics.

    Teacher forcing: ``num_atoms`` [B] fixes the atom counts; ``atom_types`` (one list of Z or
    element symbols per crystal) fixes the types throughout sampling (and the counts);
    ``lengths``/``angles`` [B, 3] fix the lattice. ``seed`` makes sampling reproducible (None = global
    RNG). Crystals are processed in chunks of ``batch_size``; ``callback(done, total)`` reports
    noise levels completed summed over chunks. ``type_mode``: see :func:`langevin` (``argmax`` is
    the paper's). ``candidates``: decode every z this many times (independent Langevin runs) and
    keep, per z, the crystal whose posterior q(z | crystal) gives z the highest density: a
    self-consistency choice that reads only the model and z, never a reference structure (1 = the
    paper's single decode). ``stoichiometries``: the candidates start, round-robin, from this many
    of the composition head's most probable stoichiometries (:func:`likely_stoichiometries`)
    instead of only the rounded one, so the choice can also mend the head's count errors.
    """
    from nanosolve.structures.elements import atomic_number

    model.eval()
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.dim() != 2 or z.shape[1] != model.cfg.latent_dim:
        raise InputError(f"z must have shape [B, {model.cfg.latent_dim}], got {tuple(z.shape)}")
    B = z.shape[0]
    if int(candidates) < 1:
        raise InputError(f"candidates must be >= 1, got {candidates}")
    if not 1 <= int(stoichiometries) <= int(candidates):
        raise InputError(f"stoichiometries must be within 1..candidates ({candidates}), got {stoichiometries}")
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    forced_types = None
    if atom_types is not None:
        if len(atom_types) != B:
            raise InputError(f"atom_types has {len(atom_types)} entries for {B} latent codes")
        forced_types = [torch.tensor([atomic_number(t) if isinstance(t, str) else int(t) for t in ts], dtype=torch.long)
                        for ts in atom_types]
        counts = torch.tensor([len(t) for t in forced_types])
        if num_atoms is not None and not torch.equal(torch.as_tensor(num_atoms).long().view(-1), counts):
            raise InputError("num_atoms disagrees with the lengths of atom_types")
        num_atoms = counts
    if num_atoms is None:
        num_atoms = model.predict_num_atoms(z).argmax(-1).clamp(min=1)
    num_atoms = torch.as_tensor(num_atoms, dtype=torch.long).view(-1)
    if len(num_atoms) != B:
        raise InputError(f"num_atoms has {len(num_atoms)} entries for {B} latent codes")
    if int(num_atoms.max()) > model.cfg.max_atoms or int(num_atoms.min()) < 1:
        raise InputError(f"atom counts must be within 1..{model.cfg.max_atoms}")
    _, p_len, p_ang = model.predict_lattice(z, num_atoms)
    lengths = p_len if lengths is None else torch.as_tensor(lengths, dtype=torch.float32).view(B, 3)
    angles = p_ang if angles is None else torch.as_tensor(angles, dtype=torch.float32).view(B, 3)
    K, M = int(candidates), int(stoichiometries)
    if forced_types is not None:
        types = [t for t in forced_types for _ in range(K)]
    else:
        probs = torch.softmax(model.predict_composition(z), -1)
        types = []
        for b in range(B):
            options = (likely_stoichiometries(probs[b], int(num_atoms[b]), M) if M > 1
                       else [composition_counts(probs[b], int(num_atoms[b]))])
            types += [options[k % len(options)] for k in range(K)]  # candidates round-robin over them
    z_run, num_atoms, lengths, angles = (x.repeat_interleave(K, 0) for x in (z, num_atoms, lengths, angles))
    run_names = names if K == 1 else None
    out = []
    n_run = len(z_run)
    total = len(model.sigmas) * ((n_run + batch_size - 1) // batch_size)
    for chunk_no, s in enumerate(range(0, n_run, batch_size)):
        sl = slice(s, s + batch_size)
        cb = None if callback is None else (lambda lv, nl, c=chunk_no: callback(c * nl + lv, total))
        res = langevin(model, z_run[sl], num_atoms[sl], lengths[sl], angles[sl], torch.cat(types[sl]),
                       type_mode="fixed" if forced_types is not None else type_mode, n_step_each=n_step_each,
                       step_lr=step_lr, generator=gen, callback=cb)
        out += data_to_crystals(res["frac_coords"], res["atom_types"], res["lengths"], res["angles"],
                                res["num_atoms"], names=None if run_names is None else run_names[sl])
    if K == 1:
        return out
    mu, logvar = encode(model, out)
    best = log_posterior(z_run, mu, logvar).view(B, K).argmax(1)
    chosen = [out[b * K + int(best[b])] for b in range(B)]
    for b, c in enumerate(chosen):
        c.name = names[b] if names is not None else f"crystal_{b}"
    return chosen


def reconstruct(model: CDVAE, items, n_step_each: int | None = None, batch_size: int = 512, seed: int | None = 0,
                callback=None, **decode_kwargs) -> list[Crystal]:
    """Paper reconstruction: encode each crystal to μ, then :func:`decode` (N, lattice and
    composition from the heads unless forced through ``decode_kwargs``)."""
    items = list(items)
    names = [getattr(c, "name", None) or f"crystal_{k}" for k, c in enumerate(items)]
    mu, _ = encode(model, items)
    return decode(model, mu, n_step_each=n_step_each, batch_size=batch_size, seed=seed, names=names,
                  callback=callback, **decode_kwargs)


def generate(model: CDVAE, n: int, n_step_each: int | None = None, batch_size: int = 512, seed: int | None = 0,
             callback=None, **decode_kwargs) -> list[Crystal]:
    """``n`` new crystals from z ~ N(0, I)."""
    if n < 1:
        raise InputError(f"number of crystals to generate must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(int(seed) + 1) if seed is not None else None
    z = torch.randn((int(n), model.cfg.latent_dim), generator=gen)
    names = [f"generated_{k:05d}" for k in range(n)]
    return decode(model, z, n_step_each=n_step_each, batch_size=batch_size, seed=seed, names=names,
                  callback=callback, **decode_kwargs)


__all__ = ["encode", "decode", "reconstruct", "generate", "langevin", "log_posterior", "likely_stoichiometries",
           "composition_counts", "assign_types", "check_sizes", "TYPE_MODES"]
