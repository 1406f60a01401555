"""Pair sums of the Debye equation, P_ab(Q) = Σ_{i<j, {el_i, el_j} = {a, b}} o_i o_j sinc(Q r_ij):
the exact ``direct`` engine and the ``grid`` engine (moments on a uniform r grid, then a node
transform), with the atoms-to-tensors step and the thread policy they share. See the package
docstring for the conventions and accuracy.
"""


import contextlib
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from nanosolve.errors import InputError
from nanosolve.scattering.memory import debye_grid_nodes
from nanosolve.structures.elements import normalize_symbol
from nanosolve.structures.particle import Particle

DEBYE_KINDS = ("iq", "sq", "fq", "gr", "saxs")
_STEP_FACTOR = 0.2  # Qmax · dr bound of the grid engine (cubic spline: error ≲ 2e-5 of the local |P(Q)| at Qmax)
_SUBBINS = 16  # sub-bins per grid bin of the pair sums (rounding error second order in dr/16)
_SERIAL_WORK = 100_000_000  # multiply-adds below which torch runs single-threaded
# Lagrange weights of nodes k-1, k, k+1, k+2 at fractional position s in [0, 1), as
# coefficients of 1, s, s², s³ (rows: node, columns: power of s).
_LAGRANGE = torch.tensor([
    [0.0, -1.0 / 3.0, 0.5, -1.0 / 6.0],
    [1.0, -0.5, -1.0, 0.5],
    [0.0, 1.0, 0.5, -0.5],
    [0.0, -1.0 / 6.0, 0.0, 1.0 / 6.0],
], dtype=torch.float64)
# s^k at the sub-bin centres c_j and its slope k c_j^(k-1) / S: sub-bin sums [.., S] -> moments [.., 4]
# (adding the second-order term of pairs spread uniformly over the sub-bin made Σ sinc worse, measured)
_SUB_CENTRES = (torch.arange(_SUBBINS, dtype=torch.float64) + 0.5) / _SUBBINS
_SUB_POWERS = _SUB_CENTRES[:, None] ** torch.arange(4)
_SUB_SLOPES = torch.cat([torch.zeros(_SUBBINS, 1, dtype=torch.float64),
                         torch.arange(1, 4) * _SUB_CENTRES[:, None] ** torch.arange(3) / _SUBBINS], 1)


# ------------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------------
_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"active": 0, "saved": 1}


@contextlib.contextmanager
def _serial(enabled: bool = True):
    """Run torch ops single-threaded inside the block (process-wide; overlapping uses are counted)."""
    if not enabled:
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_STATE["active"] == 0:
            _THREADS_STATE["saved"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_STATE["active"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["active"] -= 1
            if _THREADS_STATE["active"] == 0:
                torch.set_num_threads(_THREADS_STATE["saved"])


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

    @property
    def diameter(self) -> float:
        """Twice the largest distance from the centroid (Å): an upper bound of every pair distance."""
        x = self.positions.detach()
        return 2.0 * float(torch.linalg.norm(x - x.mean(0), dim=1).max()) if x.shape[0] > 1 else 0.0


def _as_atoms(particle, species=None, occupancies=None) -> _Atoms:
    """Accept a Particle (or ase.Atoms / pymatgen Molecule / xyz path), or positions [N,3] (array or
    tensor) with ``species``."""
    from nanosolve.structures.coerce import as_structure, is_structure_like

    if not isinstance(particle, Particle) and is_structure_like(particle):
        particle = as_structure(particle)
        if not isinstance(particle, Particle):
            raise InputError("the Debye equation needs a finite particle, got a periodic crystal; cut one "
                             "(nanosolve.structures.builders.cut) or use simulate(), which cuts a sphere")
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
    """(pair number, rows, cols, n_masked) with rows×cols ≤ ~chunk_pairs, grouped by element pair.

    For a like-element pair the columns start at row ``start + 1``; then column c < row r of the
    leading ``rows × n_masked`` block is a pair j <= i that must not be counted. That block is
    computed and thrown away, so like-element batches take at most 1/8 of the rows: the waste is
    then ~rows/N of the pairs instead of one half.
    """
    members = [torch.nonzero(atoms.index == e).squeeze(-1) for e in range(len(atoms.elements))]
    for p, (a, b) in enumerate(_element_pairs(len(atoms.elements))):
        ia, ib = members[a], members[b]
        step = max(1, chunk_pairs // max(1, ib.numel()))
        if a == b:
            step = min(step, max(32, -(-ia.numel() // 8)))
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


def _n_bins(atoms: _Atoms, dr: float) -> int:
    return int(math.ceil(atoms.diameter / dr)) + 2


def _spread(atoms: _Atoms, jobs, n_ep: int, n_bins: int, dr: float) -> torch.Tensor:
    """Moments Σ w s^k (k = 0..3) per element pair and bin: [n_ep, 4, n_bins] float64 (no autograd).

    Each pair adds its weight w and w·t to sub-bin j = floor(s·S) of its bin (S = ``_SUBBINS``,
    t = s·S - j in [0, 1)); the moments follow from the expansion of s^k about the sub-bin
    centre, exact to first order in t - 1/2, so they are off by at most k(k-1)/2·(1/2S)² of a
    bin even when lattice distances pile up in one sub-bin. Two bincounts per pair instead of
    four scatter-adds of exact moments; distances are float64 so the sub-bin index is exact. The
    float32 sums are flushed into the float64 moments well before counts lose integer precision
    (2^24) and whenever the element pair changes, so one buffer serves every element pair. The
    O(N²) loop is bound by memory traffic, so it runs in preallocated buffers. Pairs j <= i go
    to a discarded slot.
    """
    moments = torch.zeros(n_ep, 4, n_bins, dtype=torch.float64)
    if not jobs:
        return moments
    n_fine = n_bins * _SUBBINS
    uniform = bool((atoms.occupancy == 1).all())
    count = torch.zeros(n_fine + 1, dtype=torch.int64 if uniform else torch.float32)
    first = torch.zeros(n_fine + 1, dtype=torch.float32)
    cap = max(r.numel() * c.numel() for _, r, c, _ in jobs)
    max_rows = max(r.numel() for _, r, _, _ in jobs)
    lower = _lower_mask(max_rows, max_rows)
    k_buf = torch.empty(cap, dtype=torch.int32)
    t_buf = torch.empty(cap, dtype=torch.float32)
    x = atoms.positions.detach()
    x = (x - x.mean(0)) * (_SUBBINS / dr)  # distances in sub-bins (exact scaling for a power-of-two dr)
    occ = atoms.occupancy.detach().to(torch.float32)

    def flush(p):
        c = count[:n_fine].view(n_bins, _SUBBINS).to(torch.float64)
        t = first[:n_fine].view(n_bins, _SUBBINS).to(torch.float64) - 0.5 * c  # Σ w (t - 1/2)
        moments[p] += (c @ _SUB_POWERS + t @ _SUB_SLOPES).T
        count.zero_()
        first.zero_()

    current, filled = jobs[0][0], 0
    for p, rows, cols, n_masked in jobs:
        m = rows.numel() * cols.numel()
        if p != current or filled + m >= 2**23:
            flush(current)
            current, filled = p, 0
        u = torch.cdist(x[rows], x[cols], compute_mode="donot_use_mm_for_euclid_dist").view(-1)
        k, t = k_buf[:m], t_buf[:m]
        k.copy_(u)  # truncation = floor for u >= 0: the sub-bin index
        t.copy_(u.frac_())  # (mixed-dtype u - k is ~20x slower than frac)
        if n_masked:
            k.view(len(rows), -1)[:, :n_masked].masked_fill_(lower[:len(rows), :n_masked], n_fine)
        # bincount (int32 index) is ~1.5x faster than index_add_ into the same buffer, measured
        if uniform:
            count += torch.bincount(k, minlength=n_fine + 1)
        else:
            w = (occ[rows][:, None] * occ[cols][None, :]).view(-1)
            count += torch.bincount(k, weights=w, minlength=n_fine + 1)
            t.mul_(w)
        first += torch.bincount(k, weights=t, minlength=n_fine + 1)
        filled += m
    flush(current)
    return moments


def _spread_differentiable(positions: torch.Tensor, atoms: _Atoms, job, n_ep: int, n_bins: int, dr: float):
    """One batch of exact moments with autograd through s = d/dr - floor(d/dr) (the bins are constant)."""
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


def spread_moments(atoms: _Atoms, dr: float, chunk_pairs: int = 2_000_000,
                   n_threads: int | None = None) -> torch.Tensor:
    """Distance moments [n_element_pairs, 4, n_bins] of all pairs i<j on bins [k dr, (k+1) dr).

    Differentiable w.r.t. positions (exact moments, sequential checkpointed batches) when
    ``atoms.positions`` requires grad; otherwise sub-bin counts in ``n_threads`` threads.
    """
    n_ep = len(_element_pairs(len(atoms.elements)))
    n_bins = _n_bins(atoms, dr)
    jobs = list(_batches(atoms, min(chunk_pairs, 2**23)))  # float32 sums of one batch stay exact
    if atoms.positions.requires_grad and torch.is_grad_enabled():
        hist = torch.zeros(n_ep, 4, n_bins, dtype=torch.float64)
        for job in jobs:
            hist = hist + checkpoint(_spread_differentiable, atoms.positions, atoms, job, n_ep, n_bins, dr,
                                     use_reentrant=False)
        return hist
    n_threads = n_threads or torch.get_num_threads()
    n_threads = max(1, min(n_threads, len(jobs), sum(r.numel() * c.numel() for _, r, c, _ in jobs) // 2**20))
    # each worker is single-threaded (the scatter-add is serial anyway)
    with _serial(), torch.no_grad():
        if n_threads == 1:
            return _spread(atoms, jobs, n_ep, n_bins, dr)
        with ThreadPoolExecutor(n_threads) as ex:
            parts = list(ex.map(lambda t: _spread(atoms, jobs[t::n_threads], n_ep, n_bins, dr), range(n_threads)))
    return torch.stack(parts).sum(0)


def coarsen_moments(moments: torch.Tensor, factor: int) -> torch.Tensor:
    """Moments on bins ``factor`` times wider, exactly: fine bin j of a coarse bin has s_c = (j + s)/factor,
    so Σ w s_c^m = Σ_j Σ_l C(m, l) j^(m-l) Σ w s^l / factor^m. [P, 4, n] -> [P, 4, ceil(n/factor)]."""
    if factor == 1:
        return moments
    n_p, _, n = moments.shape
    n_c = -(-n // factor)
    fine = torch.nn.functional.pad(moments, (0, n_c * factor - n)).view(n_p, 4, n_c, factor)
    j = torch.arange(factor, dtype=torch.float64)
    a = torch.zeros(4, 4, factor, dtype=torch.float64)  # [m, l, j]
    for m in range(4):
        for l in range(m + 1):
            a[m, l] = math.comb(m, l) * j ** (m - l) / factor**m
    return torch.einsum("plkj,mlj->pmk", fine, a)


def moments_to_nodes(moments: torch.Tensor) -> torch.Tensor:
    """Node weights H [P, n_bins + 3] from moments [P, 4, n_bins]; node n sits at r = (n - 1)·dr."""
    n_p, _, n_bins = moments.shape
    per_node = torch.matmul(_LAGRANGE, moments)  # [P, 4 nodes k-1..k+2, n_bins]
    nodes = torch.zeros(n_p, n_bins + 3, dtype=moments.dtype)
    for j in range(4):
        nodes[:, j:j + n_bins] += per_node[:, j]
    return nodes


def pair_sums_grid(atoms: _Atoms, q: torch.Tensor, chunk_pairs: int = 2_000_000, n_threads: int | None = None,
                   qmax: float | None = None) -> torch.Tensor:
    """P_ab(Q) [n_element_pairs, n_q] by cubic gridding of the pair distances (see module docstring).

    Differentiable w.r.t. positions through the spline weights (sequential, checkpointed batches)
    when ``atoms.positions`` requires grad; otherwise batches run in ``n_threads`` threads.
    """
    dr = grid_step(float(q.abs().max()) if qmax is None else qmax)
    nodes = moments_to_nodes(spread_moments(atoms, dr, chunk_pairs, n_threads))
    return node_sinc_sums(nodes, dr, q)


# sin/cos tables of the node transform, per (Q grid, dr, block): the same few grids serve every particle
_TRIG_CACHE: OrderedDict = OrderedDict()
_TRIG_LOCK = threading.Lock()
_TRIG_CACHE_ENTRIES = 4
_TRIG_CACHE_MAX_BYTES = 32 * 1024**2  # per entry (only for short (< 200 Q) or non-uniform grids and autograd)


def _trig_tables(q: torch.Tensor, dr: float, b: int, c: int):
    """(fine [b, 2 n_q] = [cos(f dr Q) | sin(f dr Q)], coarse [c', 2 n_q] = [sin(ρ_c Q) | cos(ρ_c Q)]), c' >= c."""
    def build(rows):
        fine = (torch.arange(b, dtype=torch.float64) * dr)[:, None] * q[None, :]
        rho = ((torch.arange(rows, dtype=torch.float64) * b - 1.0) * dr)[:, None] * q[None, :]
        return torch.cat([torch.cos(fine), torch.sin(fine)], 1), torch.cat([torch.sin(rho), torch.cos(rho)], 1)

    if q.requires_grad or (b + c) * q.numel() * 16 > _TRIG_CACHE_MAX_BYTES:
        return build(c)
    key = (q.numel(), q.numpy().tobytes(), dr, b)
    with _TRIG_LOCK:
        hit = _TRIG_CACHE.get(key)
        if hit is not None and hit[1].shape[0] >= c:
            _TRIG_CACHE.move_to_end(key)
            return hit
    rows = c if hit is None else max(c, int(1.25 * hit[1].shape[0]))  # grow geometrically
    if (b + rows) * q.numel() * 16 > _TRIG_CACHE_MAX_BYTES:
        rows = c
    tables = build(rows)
    with _TRIG_LOCK:
        _TRIG_CACHE[key] = tables
        _TRIG_CACHE.move_to_end(key)
        while len(_TRIG_CACHE) > _TRIG_CACHE_ENTRIES:
            _TRIG_CACHE.popitem(last=False)
    return tables


_CZT_CACHE: OrderedDict = OrderedDict()
_CZT_LOCK = threading.Lock()
_CZT_MIN_Q = 200  # below this many Q points the matrix product is cheaper (measured)


def _uniform_step(q) -> float | None:
    """The step if ``q`` (tensor or array) is an increasing uniform grid (to 1e-11 relative), else None."""
    q_np = q.detach().numpy() if isinstance(q, torch.Tensor) else np.asarray(q, dtype=np.float64)
    n = q_np.size
    if n < 2:
        return None
    dq = float(q_np[-1] - q_np[0]) / (n - 1)
    if not dq > 0:
        return None
    ideal = q_np[0] + dq * np.arange(n)
    return dq if float(np.abs(q_np - ideal).max()) <= 1e-11 * max(1.0, float(np.abs(q_np).max())) else None


def _czt(n: int, m: int, theta: float):
    """scipy's chirp z-transform X_k = Σ_n x_n exp(i k n θ), k < m, cached (its chirps cost more than a call)."""
    from scipy.signal import CZT

    key = (n, m, theta)
    with _CZT_LOCK:
        hit = _CZT_CACHE.get(key)
        if hit is not None:
            _CZT_CACHE.move_to_end(key)
            return hit[0]
    transform = CZT(n, m, w=complex(math.cos(theta), math.sin(theta)), a=1.0)
    size = 16 * (n + 2 * m + 2 * (n + m))  # its complex chirps (bytes, an upper bound)
    with _CZT_LOCK:
        _CZT_CACHE[key] = (transform, size)
        while len(_CZT_CACHE) > 1 and (len(_CZT_CACHE) > 40 or sum(v[1] for v in _CZT_CACHE.values()) > 128 * 1024**2):
            _CZT_CACHE.popitem(last=False)
    return transform


def _node_sinc_sums_czt(nodes: torch.Tensor, dr: float, q: torch.Tensor, dq: float) -> torch.Tensor:
    """:func:`node_sinc_sums` on a uniform Q grid as one chirp z-transform: O((M + n_q) log) instead of M·n_q.

    Σ_n v_n exp(i Q_k r_n) with Q_k = Q_0 + kΔQ, r_n = (n-1) dr is a CZT of v_n exp(i Q_0 r_n) with
    ratio exp(iΔQ dr), times exp(-i k ΔQ dr); its imaginary part is Σ v_n sin(Q_k r_n).
    """
    n_p, m = nodes.shape
    size = 256  # pad to a few node counts (2^k, 3·2^(k-1)) so the transforms are reused across particles
    while size < m:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    r = (np.arange(size) - 1.0) * dr
    h = np.zeros((n_p, size))
    h[:, :m] = nodes.numpy()
    zero = r == 0
    v = h / np.where(zero, 1.0, r)
    v[:, zero] = 0.0
    q_np = q.numpy()
    theta = dq * dr
    y = _czt(size, q_np.size, theta)(v * np.exp(1j * float(q_np[0]) * r))
    sin_sum = (y * np.exp(-1j * theta * np.arange(q_np.size))).imag
    q_safe = np.where(q_np == 0, 1.0, q_np)
    out = np.where(q_np == 0, h.sum(1, keepdims=True), sin_sum / q_safe + h[:, zero].sum(1, keepdims=True))
    return torch.as_tensor(out)


def node_sinc_sums(nodes: torch.Tensor, dr: float, q: torch.Tensor, max_block: int = 4_000_000,
                   czt: bool | None = None) -> torch.Tensor:
    """Σ_n H_n sinc(Q r_n) with r_n = (n-1)·dr, for H [P, M] -> [P, n_q].

    On a uniform Q grid of ≥ 200 points (and without autograd) this is a chirp z-transform (scipy;
    ``czt`` forces the choice, a non-uniform grid always takes the other path), otherwise Σ_n H_n sin(Q r_n)/(Q r_n) with n = c·B + f, sin(Q r_n) = sin(Q ρ_c) cos(Q f dr) +
    cos(Q ρ_c) sin(Q f dr) (ρ_c = (cB - 1) dr): one matrix product against cached (C + B)·n_q tables.
    """
    q = q.to(torch.float64)
    if czt is None:
        czt = q.numel() >= _CZT_MIN_Q and not (nodes.requires_grad or q.requires_grad)
    dq = _uniform_step(q) if czt else None
    if dq is not None:
        return _node_sinc_sums_czt(nodes.detach(), dr, q.detach(), dq)
    n_p, m = nodes.shape
    n_q = q.numel()
    b = 2 ** min(9, max(4, round(math.log2(math.sqrt(m)))))  # a few block sizes, so the tables are reused
    c = -(-m // b)
    fine_t, coarse_t = _trig_tables(q, dr, b, c)
    r = (torch.arange(c * b, dtype=torch.float64) - 1.0) * dr
    h = torch.nn.functional.pad(nodes, (0, c * b - m))
    zero = r == 0
    v = (h / torch.where(zero, torch.ones_like(r), r)).masked_fill(zero, 0.0).view(n_p, c, b)
    total = torch.zeros(n_p, 2 * n_q, dtype=torch.float64)
    step = max(1, max_block // max(1, n_p * 2 * n_q))
    with _serial(n_p * m * n_q * 2 < _SERIAL_WORK):
        for c0 in range(0, c, step):
            c1 = min(c, c0 + step)
            part = (v[:, c0:c1].reshape(-1, b) @ fine_t).view(n_p, c1 - c0, 2 * n_q)
            total = total + (part * coarse_t[c0:c1]).sum(1)
    total = total[:, :n_q] + total[:, n_q:]
    q_safe = torch.where(q == 0, torch.ones_like(q), q)
    at_zero = h[:, zero].sum(1, keepdim=True)
    return torch.where(q == 0, h.sum(1, keepdim=True), total / q_safe + at_zero)


def pair_sums(atoms: _Atoms, q: torch.Tensor, method: str = "auto", chunk_pairs: int = 2_000_000,
              n_threads: int | None = None) -> torch.Tensor:
    """P_ab(Q) [n_element_pairs, n_q] by ``method`` = ``'auto' | 'direct' | 'grid'``."""
    if method not in ("auto", "direct", "grid"):
        raise InputError(f"unknown Debye method {method!r}; use 'auto', 'direct' or 'grid'")
    if method == "auto":
        method = "direct" if _prefer_direct(atoms, float(q.abs().max())) else "grid"
    if method == "direct":
        return pair_sums_direct(atoms, q)
    return pair_sums_grid(atoms, q, chunk_pairs, n_threads)


def _prefer_direct(atoms: _Atoms, qmax: float) -> bool:
    n = atoms.positions.shape[0]
    n_pairs = n * (n - 1) // 2
    n_nodes = debye_grid_nodes(atoms.diameter, qmax, _STEP_FACTOR)
    # direct: one float64 sinc per pair and Q (~10 ns); grid: ~5 ns per pair plus a matrix product
    # over nodes × Q per element pair (~0.5 ns each), so direct only wins for a handful of pairs
    return 20 * n_pairs <= n_nodes * len(atoms.elements) ** 2 // 4 + 64
