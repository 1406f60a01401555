"""Debye scattering of finite particles: I(Q), S(Q), F(Q), G(r) and SAXS/SANS, x-ray and neutron.

Conventions (all documented, and tested against DebyeCalculator 1.1.1 in ``tests/test_debye.py``)::

    I(Q) = Σ_i o_i f_i² + Σ_{i≠j} o_i o_j f_i f_j sinc(Q r_ij) · exp(-B Q² / 8π²)
    S(Q) = 1 + [I(Q) - Σ_i o_i f_i²] / (N <f>²),   N = Σ_i o_i,  <f> = Σ_i o_i f_i / N
    F(Q) = Q [S(Q) - 1]                                   (Å⁻¹)
    G(r) = (2/π) Σ_Q F(Q) M(Q) sin(Q r) ΔQ · exp(-(qdamp r)² / 2)      (Å⁻²)

with f the Waasmaier-Kirfel f0(Q) (electrons) for x-rays or the coherent length b (fm) for
neutrons, o the occupancies, B = ``biso`` (Å²; the pair Debye-Waller factor, self term undamped),
M(Q) = sin(πQ/Qmax)/(πQ/Qmax) with ``lorch=True`` else 1, and Q on ``arange(qmin, qmax, qstep)``,
r on ``arange(rmin, rmax, rstep)`` (end points excluded, exactly as DebyeCalculator).
For a finite particle this G(r) is R(r)/r, the pair-distance distribution without the
-4πρ0 r γ0(r) baseline (which lives in the Q < qmin small-angle signal).

Relation to DebyeCalculator (same parameters, full occupancy): DebyeCalculator sums pairs i<j
only and halves the self term, so I = 2·I_DC, S - 1 = 2·S_DC, F = 2·F_DC, G = 2·G_DC.
For partial occupancies we use the physical self term o f² (DebyeCalculator uses (o f)²).

Engines (ours, not DebyeCalculator's, because we need occupancies, a cheap self term, one pair
sum shared by I/S/F/G and a batch API; speed measured in the test report):

* ``direct``: exact Σ w sinc(Q d) over all pairs, batched; differentiable with autograd (batches are
  checkpointed so the backward pass keeps memory bounded). Used for small particles and gradients.
* ``grid``: the pair distances of each element pair are spread onto a uniform r grid with 4-point
  (cubic) Lagrange weights (accumulated as moments of the fractional bin position), then
    Σ_pairs w sinc(Q d) ≈ Σ_nodes H_n sinc(Q r_n)
  whose error is O((Q dr)⁴); dr = 2^floor(log2(0.1/Qmax)) and float32 distances give ~3e-6 of
  max |I| (measured against the direct sum in the tests). The node sum is
  evaluated with the angle-addition split r_n = r_coarse + r_fine so it is a matrix product.
  O(N²) spreading once plus O(nodes × Q); memory bounded by ``chunk_pairs``.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from nanosolve.errors import InputError
from nanosolve.scattering.form_factors import normalize_radiation, scattering_factors, scattering_factors_torch
from nanosolve.scattering.memory import debye_grid_nodes, guard_debye
from nanosolve.scattering.pattern import Pattern
from nanosolve.structures.elements import normalize_symbol
from nanosolve.structures.particle import Particle

DEBYE_KINDS = ("iq", "sq", "fq", "gr", "saxs")
_STEP_FACTOR = 0.1  # Qmax · dr of the grid engine (interpolation error ~ (Qmax dr)^4 / 40 ~ 2e-6)
# Lagrange weights of nodes k-1, k, k+1, k+2 at fractional position s in [0, 1), as
# coefficients of 1, s, s², s³ (rows: node, columns: power of s).
_LAGRANGE = torch.tensor([
    [0.0, -1.0 / 3.0, 0.5, -1.0 / 6.0],
    [1.0, -0.5, -1.0, 0.5],
    [0.0, 1.0, 0.5, -0.5],
    [0.0, -1.0 / 6.0, 0.0, 1.0 / 6.0],
], dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# atoms -> tensors
# ------------------------------------------------------------------------------------------------
@dataclass
class _Atoms:
    positions: torch.Tensor  # [N, 3] Å (float64, may require grad)
    elements: list[str]  # E distinct element symbols (sorted)
    index: torch.Tensor  # [N] int64 element index
    occupancy: torch.Tensor  # [N] float64
    name: str = ""

    @property
    def element_occupancy(self) -> torch.Tensor:
        """[E] Σ o_i per element."""
        return torch.zeros(len(self.elements), dtype=torch.float64).index_add_(0, self.index, self.occupancy.detach())


def _as_atoms(particle, species=None, occupancies=None) -> _Atoms:
    """Accept a Particle, or positions [N,3] (array or tensor) with ``species``."""
    if isinstance(particle, Particle):
        pos, species, occ, name = particle.positions, particle.species, particle.occupancies, particle.name
    else:
        pos, name = particle, ""
        if species is None:
            raise InputError("positions were given without species")
        species = [normalize_symbol(s) for s in species]
        occ = occupancies
    if isinstance(pos, torch.Tensor):
        pos_t = pos.to(torch.float64)
    else:
        pos_t = torch.as_tensor(np.asarray(pos, dtype=np.float64))
    if pos_t.ndim != 2 or pos_t.shape[1] != 3:
        raise InputError(f"positions must have shape [N, 3], got {tuple(pos_t.shape)}")
    n = pos_t.shape[0]
    if n == 0:
        raise InputError("particle has no atoms")
    if len(species) != n:
        raise InputError(f"{n} positions for {len(species)} species")
    if not torch.isfinite(pos_t.detach()).all():
        raise InputError("particle has non-finite coordinates")
    elements = sorted(set(species))
    lookup = {e: k for k, e in enumerate(elements)}
    index = torch.tensor([lookup[s] for s in species], dtype=torch.int64)
    occ_t = torch.ones(n, dtype=torch.float64) if occ is None else torch.as_tensor(np.asarray(occ, dtype=np.float64))
    if occ_t.shape != (n,):
        raise InputError(f"{occ_t.numel()} occupancies for {n} atoms")
    return _Atoms(pos_t, elements, index, occ_t, name)


def _element_pairs(n_elements: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n_elements) for b in range(a, n_elements)]


# ------------------------------------------------------------------------------------------------
# pair sums  P_ab(Q) = Σ_{i<j, {el_i, el_j} = {a, b}} o_i o_j sinc(Q r_ij)
# ------------------------------------------------------------------------------------------------
def _batches(atoms: _Atoms, chunk_pairs: int):
    """(pair number, rows, cols, n_masked) with rows×cols ≤ ~chunk_pairs.

    For a like-element pair the columns start at row ``start + 1``; then column c < row r of the
    leading ``rows × n_masked`` block is a pair j <= i that must not be counted.
    """
    members = [torch.nonzero(atoms.index == e).squeeze(-1) for e in range(len(atoms.elements))]
    for p, (a, b) in enumerate(_element_pairs(len(atoms.elements))):
        ia, ib = members[a], members[b]
        step = max(1, chunk_pairs // max(1, ib.numel()))
        for start in range(0, ia.numel(), step):
            stop = min(start + step, ia.numel())
            if a == b:
                if start + 1 >= ib.numel():
                    break
                cols = ib[start + 1:]
                yield p, ia[start:stop], cols, min(stop - start, cols.numel())
            else:
                yield p, ia[start:stop], ib, 0


def _lower_mask(n_rows: int, n_masked: int) -> torch.Tensor:
    """[n_rows, n_masked] True where column < row (pairs j <= i in a like-element batch)."""
    return torch.arange(n_masked)[None, :] < torch.arange(n_rows)[:, None]


def _direct_batch(xa, xb, oa, ob, n_masked, q):
    d = torch.cdist(xa, xb, compute_mode="donot_use_mm_for_euclid_dist")
    w = oa[:, None] * ob[None, :]
    if n_masked:
        w[:, :n_masked].masked_fill_(_lower_mask(w.shape[0], n_masked), 0.0)
    keep = w.detach() != 0
    return w[keep] @ torch.sinc(d[keep][:, None] * (q[None, :] / math.pi))


def pair_sums_direct(atoms: _Atoms, q: torch.Tensor, chunk_pairs: int = 200_000) -> torch.Tensor:
    """Exact P_ab(Q) [n_element_pairs, n_q]; differentiable w.r.t. ``atoms.positions``."""
    n_ep = len(_element_pairs(len(atoms.elements)))
    out = [torch.zeros(q.numel(), dtype=torch.float64) for _ in range(n_ep)]
    per_batch = max(1, chunk_pairs // max(1, q.numel() // 64))  # keeps batch × n_q bounded
    grad = atoms.positions.requires_grad and torch.is_grad_enabled()
    for p, rows, cols, n_masked in _batches(atoms, per_batch):
        args = (atoms.positions[rows], atoms.positions[cols], atoms.occupancy[rows], atoms.occupancy[cols], n_masked, q)
        if grad:  # recompute in backward instead of storing batch × n_q sinc tables
            out[p] = out[p] + checkpoint(_direct_batch, *args, use_reentrant=False)
        else:
            out[p] = out[p] + _direct_batch(*args)
    return torch.stack(out)


def grid_step(qmax: float) -> float:
    """Distance-grid spacing (Å) of the grid engine for Q up to ``qmax``; a power of two so bins are exact."""
    return 2.0 ** math.floor(math.log2(_STEP_FACTOR / max(abs(qmax), 1e-3)))


def _spread(atoms: _Atoms, jobs, n_ep: int, n_bins: int, dr: float, work_dtype=torch.float32) -> torch.Tensor:
    """Moments Σ w s^k (k = 0..3) per element pair and bin: [n_ep, 4, n_bins] float64 (no autograd).

    The O(N²) loop is bound by memory traffic on CPU, so it runs in preallocated buffers (fresh
    multi-MB temporaries per batch cost page faults) in ``work_dtype``; float32 keeps d to ~1e-5 Å
    and s to ~1e-2 of a bin (dr ~ 1e-3 Å), far below the 1e-6 relative accuracy of the result,
    and each batch is added to the float64 histogram. Pairs j <= i go to a discarded extra bin.
    """
    hist = torch.zeros(n_ep, 4, n_bins, dtype=torch.float64)
    if not jobs:
        return hist
    cap = max(r.numel() * c.numel() for _, r, c, _ in jobs)
    max_rows = max(r.numel() for _, r, _, _ in jobs)
    lower = _lower_mask(max_rows, max_rows)
    mom_buf = torch.empty(4, cap, dtype=work_dtype)
    u_buf = torch.empty(cap, dtype=work_dtype)
    bins = torch.empty(cap, dtype=torch.int64)
    batch_hist = torch.empty(4, n_bins + 1, dtype=work_dtype)
    uniform = bool((atoms.occupancy == 1).all())
    x = atoms.positions.detach()
    x = (x - x.mean(0)).to(work_dtype)
    occ = atoms.occupancy.to(work_dtype)
    mom_buf[0].fill_(1.0)
    for p, rows, cols, n_masked in jobs:
        d = torch.cdist(x[rows], x[cols], compute_mode="donot_use_mm_for_euclid_dist")
        m = d.numel()
        u, mom, k = u_buf[:m], mom_buf[:, :m], bins[:m]
        torch.mul(d.view(-1), 1.0 / dr, out=u)  # dr is a power of two: u, floor(u), s are exact
        k.copy_(u)  # truncation = floor for u >= 0
        torch.sub(u, k, out=mom[1])
        torch.mul(mom[1], mom[1], out=mom[2])
        torch.mul(mom[2], mom[1], out=mom[3])
        if not uniform:
            w = (occ[rows][:, None] * occ[cols][None, :]).view(-1)
            mom[0].copy_(w)
            mom[1:].mul_(w)
        if n_masked:
            k.view(len(rows), -1)[:, :n_masked].masked_fill_(lower[:len(rows), :n_masked], n_bins)
        batch_hist.zero_()
        batch_hist.index_add_(1, k, mom)
        hist[p] += batch_hist[:, :n_bins]
        if not uniform:
            mom_buf[0].fill_(1.0)
    return hist


def _spread_differentiable(positions: torch.Tensor, atoms: _Atoms, job, n_ep: int, n_bins: int, dr: float):
    """One batch of :func:`_spread` with autograd through s = d/dr - floor(d/dr) (the bins are constant)."""
    p, rows, cols, n_masked = job
    d = torch.cdist(positions[rows], positions[cols], compute_mode="donot_use_mm_for_euclid_dist")
    w = atoms.occupancy[rows][:, None] * atoms.occupancy[cols][None, :]
    if n_masked:
        w = w.clone()
        w[:, :n_masked].masked_fill_(_lower_mask(len(rows), n_masked), 0.0)
    u = (d / dr).reshape(-1)
    k = torch.floor(u.detach())
    s = u - k
    w = w.reshape(-1)
    mom = torch.stack([w, w * s, w * s * s, w * s * s * s])
    hist = torch.zeros(n_ep, 4, n_bins, dtype=torch.float64)
    hist[p] = hist[p].index_add(1, k.long(), mom)
    return hist


def pair_sums_grid(atoms: _Atoms, q: torch.Tensor, chunk_pairs: int = 2_000_000, n_threads: int | None = None,
                   qmax: float | None = None) -> torch.Tensor:
    """P_ab(Q) [n_element_pairs, n_q] by cubic gridding of the pair distances (see module docstring).

    Differentiable w.r.t. positions through the spline weights (sequential, checkpointed batches)
    when ``atoms.positions`` requires grad; otherwise batches run in ``n_threads`` threads.
    """
    n_ep = len(_element_pairs(len(atoms.elements)))
    dr = grid_step(float(q.abs().max()) if qmax is None else qmax)
    x = atoms.positions.detach()
    dmax = 2.0 * float(torch.linalg.norm(x - x.mean(0), dim=1).max())
    n_bins = int(math.ceil(dmax / dr)) + 2
    jobs = list(_batches(atoms, chunk_pairs))
    grad = atoms.positions.requires_grad and torch.is_grad_enabled()
    if grad:
        hist = torch.zeros(n_ep, 4, n_bins, dtype=torch.float64)
        for job in jobs:
            hist = hist + checkpoint(_spread_differentiable, atoms.positions, atoms, job, n_ep, n_bins, dr,
                                     use_reentrant=False)
    else:
        n_threads = n_threads or torch.get_num_threads()
        n_threads = max(1, min(n_threads, len(jobs), sum(r.numel() * c.numel() for _, r, c, _ in jobs) // 2**18))
        if n_threads == 1:
            hist = _spread(atoms, jobs, n_ep, n_bins, dr)
        else:
            saved = torch.get_num_threads()
            torch.set_num_threads(1)  # each worker is single-threaded; index_add is serial anyway
            try:
                with ThreadPoolExecutor(n_threads) as ex:
                    parts = list(ex.map(lambda t: _spread(atoms, jobs[t::n_threads], n_ep, n_bins, dr), range(n_threads)))
            finally:
                torch.set_num_threads(saved)
            hist = torch.stack(parts).sum(0)
    # moments of bin k -> weights of nodes k-1..k+2; node n sits at r = (n-1)·dr
    per_node = torch.einsum("pkb,jk->pjb", hist, _LAGRANGE)
    nodes = torch.zeros(n_ep, n_bins + 3, dtype=torch.float64)
    for j in range(4):
        nodes = nodes + torch.nn.functional.pad(per_node[:, j], (j, 3 - j))
    return node_sinc_sums(nodes, dr, q)


def node_sinc_sums(nodes: torch.Tensor, dr: float, q: torch.Tensor, max_block: int = 4_000_000) -> torch.Tensor:
    """Σ_n H_n sinc(Q r_n) with r_n = (n-1)·dr, for H [P, M] -> [P, n_q].

    Σ_n H_n sin(Q r_n)/(Q r_n): with n = c·B + f, sin(Q r_n) = sin(Q ρ_c) cos(Q f dr) + cos(Q ρ_c) sin(Q f dr)
    (ρ_c = (cB - 1) dr), so only (C + B)·n_q sines are evaluated and the rest is matrix products.
    """
    n_p, m = nodes.shape
    b = max(1, math.ceil(math.sqrt(m)))
    c = math.ceil(m / b)
    r = (torch.arange(c * b, dtype=torch.float64) - 1.0) * dr
    h = torch.nn.functional.pad(nodes, (0, c * b - m))
    zero = r == 0
    v = (h / torch.where(zero, torch.ones_like(r), r)).masked_fill(zero, 0.0).view(n_p, c, b)
    fine = (torch.arange(b, dtype=torch.float64) * dr)[:, None] * q[None, :]
    cos_f, sin_f = torch.cos(fine), torch.sin(fine)
    total = torch.zeros(n_p, q.numel(), dtype=torch.float64)
    step = max(1, max_block // max(1, n_p * q.numel()))
    for c0 in range(0, c, step):
        rho = ((torch.arange(c0, min(c, c0 + step), dtype=torch.float64) * b - 1.0) * dr)[:, None] * q[None, :]
        vc = v[:, c0:c0 + step]
        total = total + (torch.sin(rho) * (vc @ cos_f) + torch.cos(rho) * (vc @ sin_f)).sum(1)
    q_safe = torch.where(q == 0, torch.ones_like(q), q)
    at_zero = h[:, zero].sum(1, keepdim=True)
    return torch.where(q == 0, h.sum(1, keepdim=True), total / q_safe + at_zero)


def pair_sums(atoms: _Atoms, q: torch.Tensor, method: str = "auto", chunk_pairs: int = 2_000_000,
              n_threads: int | None = None) -> torch.Tensor:
    """P_ab(Q) [n_element_pairs, n_q] by ``method`` = ``'auto' | 'direct' | 'grid'``."""
    if method not in ("auto", "direct", "grid"):
        raise InputError(f"unknown Debye method {method!r}; use 'auto', 'direct' or 'grid'")
    if method == "auto":
        method = "direct" if _prefer_direct(atoms, q) else "grid"
    if method == "direct":
        return pair_sums_direct(atoms, q)
    return pair_sums_grid(atoms, q, chunk_pairs, n_threads)


def _prefer_direct(atoms: _Atoms, q: torch.Tensor) -> bool:
    n = atoms.positions.shape[0]
    n_pairs = n * (n - 1) // 2
    x = atoms.positions.detach()
    diam = 2.0 * float(torch.linalg.norm(x - x.mean(0), dim=1).max()) if n > 1 else 0.0
    n_nodes = debye_grid_nodes(diam, float(q.abs().max()), _STEP_FACTOR)
    # direct: one sinc per pair and Q (~10 ns); grid: ~50 ns per pair plus a matrix product over
    # nodes × Q per element pair, so direct only wins for a handful of pairs (dimers, tiny clusters)
    return 20 * n_pairs <= n_nodes * len(atoms.elements) ** 2 // 4 + 64


# ------------------------------------------------------------------------------------------------
# differentiable I(Q)
# ------------------------------------------------------------------------------------------------
def debye_iq_torch(positions: torch.Tensor, species, q: torch.Tensor, biso: float = 0.0, radiation: str = "xray",
                   occupancies=None, method: str = "direct") -> torch.Tensor:
    """Debye I(Q) [n_q] (module convention), differentiable w.r.t. ``positions`` [N, 3] (Å) and ``q`` (Å⁻¹)."""
    atoms = _as_atoms(positions, species, occupancies)
    q = q.to(torch.float64)
    f = scattering_factors_torch(atoms.elements, q, radiation)  # [E, n_q]
    sums = pair_sums(atoms, q, method)
    return _intensity(atoms, f, sums, q, biso)


def _intensity(atoms: _Atoms, f: torch.Tensor, sums: torch.Tensor, q: torch.Tensor, biso: float):
    """(I, self term) [n_q] from form factors [E, n_q] and pair sums [n_ep, n_q]."""
    pair = torch.zeros_like(q)
    for p, (a, b) in enumerate(_element_pairs(len(atoms.elements))):
        pair = pair + 2.0 * f[a] * f[b] * sums[p]
    if biso:
        pair = pair * torch.exp(-q * q * (biso / (8.0 * math.pi**2)))
    self_term = (atoms.element_occupancy[:, None] * f * f).sum(0)
    return pair + self_term


# ------------------------------------------------------------------------------------------------
# the simulator
# ------------------------------------------------------------------------------------------------
@dataclass
class DebyeSimulator:
    """Debye-equation simulator for finite particles; defaults follow DebyeCalculator 1.1.1.

    Attributes:
        qmin, qmax, qstep: Q grid ``arange(qmin, qmax, qstep)`` (Å⁻¹) of I/S/F and of the G(r)
            transform; ``qstep=None`` gives π/(rmax + rstep) (Nyquist for the r range).
        qdamp: instrumental Gaussian damping of G(r), exp(-(qdamp r)²/2) (Å⁻¹).
        rmin, rmax, rstep: r grid ``arange(rmin, rmax, rstep)`` of G(r) (Å).
        biso: isotropic displacement B (Å²) for every atom (Debye-Waller factor on pair terms).
        radiation: ``'xray'`` (Waasmaier-Kirfel f0) or ``'neutron'`` (coherent b).
        lorch: multiply F(Q) by the Lorch function before the sine transform.
        saxs_qmin, saxs_qmax, saxs_qstep: Q grid (Å⁻¹) of :meth:`saxs` (small-angle I(Q)).
        method: pair-sum engine ``'auto' | 'direct' | 'grid'`` (see module docstring).
        chunk_pairs: atom pairs per batch (bounds memory).
        n_threads: worker threads of the grid engine (None: torch's thread count).
    """

    qmin: float = 1.0
    qmax: float = 30.0
    qstep: float | None = None
    qdamp: float = 0.04
    rmin: float = 0.0
    rmax: float = 20.0
    rstep: float = 0.01
    biso: float = 0.3
    radiation: str = "xray"
    lorch: bool = False
    saxs_qmin: float = 0.0
    saxs_qmax: float = 3.0
    saxs_qstep: float = 0.005
    method: str = "auto"
    chunk_pairs: int = 2_000_000
    n_threads: int | None = None

    def __post_init__(self):
        self.radiation = normalize_radiation(self.radiation)
        if self.qstep is None:
            self.qstep = math.pi / (self.rmax + self.rstep)
        for name in ("qmin", "qdamp", "rmin", "biso", "saxs_qmin"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("qstep", "rstep", "saxs_qstep"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.qmax > self.qmin:
            raise InputError(f"qmax ({self.qmax}) must exceed qmin ({self.qmin})")
        if not self.rmax > self.rmin:
            raise InputError(f"rmax ({self.rmax}) must exceed rmin ({self.rmin})")
        if not self.saxs_qmax > self.saxs_qmin:
            raise InputError(f"saxs_qmax ({self.saxs_qmax}) must exceed saxs_qmin ({self.saxs_qmin})")
        if self.method not in ("auto", "direct", "grid"):
            raise InputError(f"unknown Debye method {self.method!r}; use 'auto', 'direct' or 'grid'")

    # ----- grids ----------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        """[n_q] Q grid (Å⁻¹) of I/S/F/G."""
        return torch.arange(self.qmin, self.qmax, self.qstep, dtype=torch.float64).numpy()

    @property
    def r(self) -> np.ndarray:
        """[n_r] r grid (Å) of G(r)."""
        return torch.arange(self.rmin, self.rmax, self.rstep, dtype=torch.float64).numpy()

    @property
    def q_saxs(self) -> np.ndarray:
        """[n_q] Q grid (Å⁻¹) of the small-angle I(Q)."""
        return torch.arange(self.saxs_qmin, self.saxs_qmax, self.saxs_qstep, dtype=torch.float64).numpy()

    def _params(self) -> dict:
        return {"engine": "nanosolve.debye", "qmin": self.qmin, "qmax": self.qmax, "qstep": self.qstep,
                "qdamp": self.qdamp, "rmin": self.rmin, "rmax": self.rmax, "rstep": self.rstep,
                "biso": self.biso, "lorch": self.lorch, "radiation": self.radiation}

    # ----- core -----------------------------------------------------------------------------
    def _guard(self, atoms: _Atoms, n_q: int, n_r: int, qmax: float) -> None:
        n = atoms.positions.shape[0]
        x = atoms.positions.detach()
        diam = 2.0 * float(torch.linalg.norm(x - x.mean(0), dim=1).max()) if n > 1 else 0.0
        guard_debye(n, n_q, n_r=n_r, n_elements=len(atoms.elements), chunk_pairs=self.chunk_pairs,
                    method="direct" if self.method == "direct" else "grid",
                    n_nodes=debye_grid_nodes(diam, qmax, _STEP_FACTOR), n_threads=self.n_threads or torch.get_num_threads())

    def _intensity_parts(self, atoms: _Atoms, q_np: np.ndarray, n_r: int = 0):
        """(I [n_q], self term [n_q], <f>² [n_q], N) on ``q_np``."""
        self._guard(atoms, q_np.size, n_r, float(np.abs(q_np).max()))
        q = torch.as_tensor(q_np)
        f = torch.as_tensor(scattering_factors(atoms.elements, q_np, self.radiation))
        with torch.no_grad():
            sums = pair_sums(atoms, q, self.method, self.chunk_pairs, self.n_threads)
            iq = _intensity(atoms, f, sums, q, self.biso)
        occ = atoms.element_occupancy
        n = float(occ.sum())
        self_term = (occ[:, None] * f * f).sum(0)
        f_avg_sq = ((occ[:, None] * f).sum(0) / n) ** 2
        return iq.numpy(), self_term.numpy(), f_avg_sq.numpy(), n

    def _all(self, atoms: _Atoms, kinds) -> dict[str, Pattern]:
        out: dict[str, Pattern] = {}
        meta = self._params() | {"particle": atoms.name, "n_atoms": int(atoms.positions.shape[0])}
        if any(k in kinds for k in ("iq", "sq", "fq", "gr")):
            q = self.q
            r = self.r if "gr" in kinds else np.zeros(0)
            iq, self_term, f2, n = self._intensity_parts(atoms, q, r.size)
            sq = 1.0 + (iq - self_term) / (n * f2)
            fq = q * (sq - 1.0)
            if "iq" in kinds:
                out["iq"] = Pattern(q, iq, "iq", "q", radiation=self.radiation, metadata=dict(meta))
            if "sq" in kinds:
                out["sq"] = Pattern(q, sq, "sq", "q", radiation=self.radiation, metadata=dict(meta))
            if "fq" in kinds:
                out["fq"] = Pattern(q, fq, "fq", "q", radiation=self.radiation, metadata=dict(meta))
            if "gr" in kinds:
                out["gr"] = Pattern(r, self.transform_fq(q, fq, r), "gr", "r", radiation=self.radiation,
                                    metadata=dict(meta))
        if "saxs" in kinds:
            qs = self.q_saxs
            iq, *_ = self._intensity_parts(atoms, qs)
            kind = "saxs" if self.radiation == "xray" else "sans"
            out["saxs"] = Pattern(qs, iq, kind, "q", radiation=self.radiation, metadata=dict(meta))
        return out

    def transform_fq(self, q: np.ndarray, fq: np.ndarray, r: np.ndarray) -> np.ndarray:
        """G(r) [n_r] = (2/π) Σ_Q F(Q) M(Q) sin(Q r) ΔQ · exp(-(qdamp r)²/2) (rectangle rule, as DebyeCalculator)."""
        weight = fq * self.qstep
        if self.lorch:
            weight = weight * np.sinc(q / self.qmax)  # np.sinc(x) = sin(πx)/(πx)
        g = np.zeros(r.size)
        for s in range(0, r.size, 2048):  # bounded sin(Q r) table
            g[s:s + 2048] = np.sin(np.outer(r[s:s + 2048], q)) @ weight
        g *= 2.0 / math.pi
        if self.qdamp:
            g *= np.exp(-0.5 * (self.qdamp * r) ** 2)
        return g

    # ----- public API -----------------------------------------------------------------------
    def simulate(self, particle, kinds=("iq", "sq", "fq", "gr")) -> dict[str, Pattern]:
        """Patterns of one particle, ``kinds`` ⊆ {iq, sq, fq, gr, saxs}; one pair sum serves iq/sq/fq/gr."""
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in DEBYE_KINDS]
        if bad:
            raise InputError(f"unknown Debye output {bad[0]!r}; choose from {', '.join(DEBYE_KINDS)}")
        return self._all(_as_atoms(particle), kinds)

    def iq(self, particle) -> Pattern:
        """I(Q) (electrons² for x-rays, fm² for neutrons; per particle, not per atom)."""
        return self.simulate(particle, ("iq",))["iq"]

    def sq(self, particle) -> Pattern:
        """Total-scattering structure function S(Q) (→ 1 at high Q)."""
        return self.simulate(particle, ("sq",))["sq"]

    def fq(self, particle) -> Pattern:
        """Reduced structure function F(Q) = Q[S(Q) - 1] (Å⁻¹)."""
        return self.simulate(particle, ("fq",))["fq"]

    def gr(self, particle) -> Pattern:
        """Reduced pair distribution function G(r) (Å⁻²)."""
        return self.simulate(particle, ("gr",))["gr"]

    def saxs(self, particle) -> Pattern:
        """Small-angle I(Q) on ``q_saxs`` (kind 'saxs' for x-rays, 'sans' for neutrons)."""
        return self.simulate(particle, ("saxs",))["saxs"]

    def simulate_many(self, particles, kinds=("iq", "gr")) -> list[dict[str, Pattern]]:
        """:meth:`simulate` for each particle (form factors and grids shared)."""
        return [self.simulate(p, kinds) for p in particles]


def simulate_many(particles, kinds=("iq", "gr"), simulator: DebyeSimulator | None = None, **params) -> list[dict[str, Pattern]]:
    """Debye patterns of many particles: a list of {kind: Pattern}; ``params`` build a :class:`DebyeSimulator`."""
    sim = simulator if simulator is not None else DebyeSimulator(**params)
    return sim.simulate_many(particles, kinds)
