"""From pair sums to signals: the differentiable I(Q), S(Q) and F(Q) of a particle, and the sine
transform F(Q) -> G(r) (uniform grids by chirp z-transform, cached tables otherwise)."""


import math
import threading
from collections import OrderedDict

import numpy as np
import torch

from nanosolve.scattering.debye.pairs import (
    _SERIAL_WORK,
    _as_atoms,
    _czt,
    _element_pairs,
    _serial,
    _uniform_step,
    pair_sums,
)
from nanosolve.scattering.form_factors import scattering_factors_torch


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
    return _intensity(atoms.element_occupancy, f, sums, q, biso)


def _intensity(element_occupancy: torch.Tensor, f: torch.Tensor, sums: torch.Tensor, q: torch.Tensor, biso: float):
    """I [n_q] from Σ o per element [E], form factors [E, n_q] and pair sums [n_ep, n_q]."""
    with _serial(q.numel() < 1_000_000):  # O(n_q) element-wise work
        return _intensity_terms(element_occupancy, f, sums, q, biso)


def _intensity_terms(element_occupancy, f, sums, q, biso):
    pair = torch.zeros_like(q)
    for p, (a, b) in enumerate(_element_pairs(f.shape[0])):
        pair = pair + 2.0 * f[a] * f[b] * sums[p]
    if biso:
        pair = pair * torch.exp(-q * q * (biso / (8.0 * math.pi**2)))
    return pair + (element_occupancy[:, None] * f * f).sum(0)


def _structure_functions(q: np.ndarray, iq: np.ndarray, f: np.ndarray, element_occupancy: np.ndarray):
    """(S [n_q], F [n_q]) from I (any leading shape [..., n_q]) and form factors f [E, n_q]."""
    n = float(element_occupancy.sum())
    self_term = (element_occupancy[:, None] * f * f).sum(0)
    f_avg_sq = ((element_occupancy[:, None] * f).sum(0) / n) ** 2
    sq = 1.0 + (iq - self_term) / (n * f_avg_sq)
    return sq, q * (sq - 1.0)


# ------------------------------------------------------------------------------------------------
# F(Q) -> G(r)
# ------------------------------------------------------------------------------------------------
_SIN_CACHE: OrderedDict = OrderedDict()
_SIN_LOCK = threading.Lock()
_SIN_CACHE_ENTRIES = 2  # (non-uniform grids only; uniform ones use the chirp z-transform)
_SIN_CACHE_MAX_ELEMENTS = 8_000_000  # 64 MB of float64 per table


def _sin_table(q: np.ndarray, r: np.ndarray) -> torch.Tensor | None:
    """sin(r Q) [n_r, n_q] float64, kept for the next particle on the same grids; None if too big."""
    if q.size * r.size > _SIN_CACHE_MAX_ELEMENTS:
        return None
    key = (q.tobytes(), r.tobytes())
    with _SIN_LOCK:
        hit = _SIN_CACHE.get(key)
        if hit is not None:
            _SIN_CACHE.move_to_end(key)
            return hit
    table = torch.sin(torch.as_tensor(r)[:, None] * torch.as_tensor(q)[None, :])
    with _SIN_LOCK:
        _SIN_CACHE[key] = table
        while len(_SIN_CACHE) > _SIN_CACHE_ENTRIES:
            _SIN_CACHE.popitem(last=False)
    return table


def fq_to_gr(q, fq, r, qstep: float, qdamp: float = 0.0, lorch: bool = False, qmax: float | None = None) -> np.ndarray:
    """G(r) = (2/π) Σ_Q F(Q) M(Q) sin(Q r) ΔQ · exp(-(qdamp r)²/2) (rectangle rule, as DebyeCalculator).

    Args:
        q: [n_q] Q grid (Å⁻¹); fq: [n_q] or [k, n_q] F(Q) (Å⁻¹), several transformed at once.
        r: [n_r] r grid (Å); qstep: ΔQ (Å⁻¹); qdamp: Gaussian damping (Å⁻¹).
        lorch: Lorch window sin(πQ/Qmax)/(πQ/Qmax) with ``qmax`` (default q[-1] + qstep).
    Returns:
        [n_r] or [k, n_r] G(r) (Å⁻²).
    """
    q = np.ascontiguousarray(q, dtype=np.float64)
    r = np.ascontiguousarray(r, dtype=np.float64)
    weight = np.asarray(fq, dtype=np.float64) * qstep
    if lorch:
        qmax = float(q[-1] + qstep) if qmax is None else qmax
        weight = weight * np.sinc(q / qmax)  # np.sinc(x) = sin(πx)/(πx)
    dq, dr = _uniform_step(q), _uniform_step(r)
    if dq is not None and dr is not None and q.size * r.size >= 100_000:
        # Σ_k w_k sin(Q_k r_j), both grids uniform: a chirp z-transform over k (see _node_sinc_sums_czt)
        x = np.atleast_2d(weight) * np.exp(1j * dq * np.arange(q.size) * r[0])
        y = _czt(q.size, r.size, dq * dr)(x) * np.exp(1j * q[0] * r)
        g = y.imag * (2.0 / math.pi)
    else:
        g = _sin_transform(q, r, np.atleast_2d(weight)) * (2.0 / math.pi)
    if qdamp:
        g = g * np.exp(-0.5 * (qdamp * r) ** 2)
    return g if np.ndim(fq) > 1 else g[0]


def _sin_transform(q: np.ndarray, r: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Σ_k w_k sin(Q_k r_j) [k, n_r] for weights [k, n_q], with a cached sin(rQ) table."""
    w = torch.as_tensor(np.ascontiguousarray(weight.T))  # [n_q, k]
    table = _sin_table(q, r)
    with _serial(r.size * q.size * w.shape[1] < _SERIAL_WORK):
        if table is not None:
            g = (table @ w).numpy()
        else:  # too big to keep: stream it
            q_t = torch.as_tensor(q)
            g = np.concatenate([(torch.sin(torch.as_tensor(r[s:s + 2048])[:, None] * q_t[None, :]) @ w).numpy()
                                for s in range(0, r.size, 2048)])
    return g.T
