"""Distances -> coordinates (trilateration) and the aligned, permutation-invariant RMSD.

:func:`trilaterate` places all atoms at once by minimising, with scipy's L-BFGS-B and an
analytic, vectorised gradient,

    L(X) = Σ_i Σ_s (|x_i - s_s| - D^sat_is)² + w Σ_{i<j} (|x_i - x_j| - D_ij)²

(unit-sphere units, satellites s on the unit sphere), starting from the linear least-squares
multilateration of each atom from its satellite distances: |x - s_k|² = d_k² minus the mean over
k of the same equation removes |x|², leaving the linear system -2 (s_k - s̄)·x = d_k² - <d²>
(|s_k| = 1 for all k), solved for all atoms with one ``lstsq``. With >= 4 non-coplanar
satellites and exact distances this start is already the answer; for predicted (noisy)
distances the joint fit uses the pair distances as well. Only the rows flagged by the mask (or
the first ``n_atoms``, or rows that do not look like padding) are placed; the result is
rescaled to Å.

:func:`rmsd_aligned` compares two clusters whose atoms are in unrelated orders and frames:
iterate (Hungarian assignment on squared distances, ``scipy.optimize.linear_sum_assignment``;
Kabsch superposition) from the principal-axes alignments, the 24 rotations of the cube (and their
mirror images) and seeded random rotations, and keep the best; reflections are allowed by default (a PDF cannot tell a cluster from its mirror
image), i.e. the Kabsch step takes the best orthogonal matrix, proper or improper.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment, minimize
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from nanosolve.errors import InputError

__all__ = ["trilaterate", "multilaterate", "rmsd_aligned", "align"]

_EPS = 1e-12


@functools.lru_cache(maxsize=1)
def _openblas_controls() -> tuple:
    """(get, set) thread-count functions of every OpenBLAS loaded in this process (Linux; else none).

    scipy's L-BFGS-B makes many tiny BLAS calls; a multi-threaded OpenBLAS wakes its threads for
    each, which on a busy 2-core machine made a 100-atom fit ~100× slower (0.4 s instead of 4 ms).
    threadpoolctl would do this but is not a dependency; this is the same idea in a few lines.
    """
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:
        return ()
    out = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                          ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
                          ("openblas_get_num_threads", "openblas_set_num_threads")):
            if hasattr(lib, get) and hasattr(lib, set_):
                out.append((getattr(lib, get), getattr(lib, set_)))
                break
    return tuple(out)


@contextlib.contextmanager
def _single_thread_blas():
    """Run the block with OpenBLAS single-threaded (process-wide), restoring the counts after."""
    saved = []
    for get, set_ in _openblas_controls():
        try:
            saved.append((set_, int(get())))
            set_(1)
        except Exception:  # an exotic build without these symbols working: leave it alone
            pass
    try:
        yield
    finally:
        for set_, n in saved:
            set_(n)


def _array(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} holds non-finite values")
    return a


def multilaterate(sat_distances, satellites) -> np.ndarray:
    """Linear least-squares positions [n, 3] from distances [n, S] to S >= 4 unit-sphere satellites [S, 3]."""
    d = _array(sat_distances, "satellite distances")
    s = _array(satellites, "satellites")
    if s.ndim != 2 or s.shape[1] != 3 or s.shape[0] < 4:
        raise InputError(f"need at least 4 satellites [S, 3], got shape {s.shape}")
    if d.ndim != 2 or d.shape[1] != s.shape[0]:
        raise InputError(f"satellite distances must be [n, {s.shape[0]}], got shape {d.shape}")
    norms = np.sum(s * s, axis=1)
    a = -2.0 * (s - s.mean(axis=0))
    b = d * d - norms[None, :]
    b = b - b.mean(axis=1, keepdims=True)
    x, *_ = np.linalg.lstsq(a, b.T, rcond=None)
    return x.T


def _objective(flat: np.ndarray, sats: np.ndarray, d_sat: np.ndarray, d_pair: np.ndarray | None, w: float):
    x = flat.reshape(-1, 3)
    # Σ_s c_is (x_i - s_s) = (Σ_s c_is) x_i - c @ S: matrix products instead of [n, S, 3] temporaries
    dist_s = cdist(x, sats)
    e_s = dist_s - d_sat
    loss = float(np.sum(e_s * e_s))
    c = 2.0 * e_s / np.maximum(dist_s, _EPS)
    grad = c.sum(axis=1)[:, None] * x - c @ sats
    if d_pair is not None and w > 0 and x.shape[0] > 1:
        dist = cdist(x, x)
        e = dist - d_pair
        np.fill_diagonal(e, 0.0)
        loss += 0.5 * w * float(np.sum(e * e))  # each pair appears twice in the full matrix
        coef = 2.0 * w * e / np.maximum(dist, _EPS)
        grad += coef.sum(axis=1)[:, None] * x - coef @ x
    return loss, grad.ravel()


def _present_rows(features: np.ndarray, m: int, mask, n_atoms) -> np.ndarray:
    if mask is not None and n_atoms is not None:
        raise InputError("give either mask or n_atoms, not both")
    if n_atoms is not None:
        n = int(n_atoms)
        if not 0 <= n <= features.shape[0]:
            raise InputError(f"n_atoms must be in 0..{features.shape[0]}, got {n_atoms}")
        return np.arange(n)
    if mask is not None:
        mk = _array(mask, "mask").reshape(-1)
        if mk.size != features.shape[0]:
            raise InputError(f"mask has {mk.size} entries for {features.shape[0]} feature rows")
        return np.flatnonzero(mk > 0.5)  # booleans or existence probabilities
    # padding rows are (predicted) zeros; a real atom inside the unit ball is on average >= 1 from the satellites
    return np.flatnonzero(features[:, m:].mean(axis=1) > 0.5)


def trilaterate(features, satellites, mask=None, n_atoms=None, scale: float = 1.0, pair_weight: float = 1.0,
                maxiter: int = 2000, return_info: bool = False):
    """Coordinates (Å) from predicted node features.

    Args:
        features: [M, M + S] node features (distance-matrix rows then satellite distances, unit-
            sphere units, as :func:`representation.node_features`), or [n, S] satellite distances only.
        satellites: [S, 3] unit-sphere satellites (:func:`representation.satellites`), S >= 4.
        mask: [M] which rows are atoms (bool, 0/1 or probabilities thresholded at 0.5), or
        n_atoms: the first n rows are atoms. Neither: rows whose mean satellite distance is below
            0.5 are taken as padding.
        scale: Å per unit-sphere unit; the output is multiplied by it.
        pair_weight: w, weight of the pair-distance terms (0: satellites only).
        maxiter: L-BFGS-B iteration cap.
        return_info: also return ``{"loss", "loss_init", "iterations", "n_atoms"}``.

    Returns:
        positions [n, 3] Å (rows in feature-row order), and the info dict if asked.
    """
    f = _array(features, "features")
    s = _array(satellites, "satellites")
    if s.ndim != 2 or s.shape[1] != 3:
        raise InputError(f"satellites must be [S, 3], got shape {s.shape}")
    n_sat = s.shape[0]
    if f.ndim != 2 or f.shape[1] < n_sat:
        raise InputError(f"features must be [M, M + {n_sat}] or [n, {n_sat}], got shape {f.shape}")
    m = f.shape[1] - n_sat
    if m not in (0, f.shape[0]):
        raise InputError(f"features [M, M + S] must be square in their first M columns, got shape {f.shape} "
                         f"with S = {n_sat}")
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive length in Å, got {scale}")
    rows = _present_rows(f, m, mask, n_atoms)
    n = rows.size
    if n == 0:
        out = np.zeros((0, 3))
        return (out, {"loss": 0.0, "loss_init": 0.0, "iterations": 0, "n_atoms": 0}) if return_info else out
    d_sat = f[rows, m:]
    d_pair = None
    if m:
        pair = f[np.ix_(rows, rows)]
        d_pair = 0.5 * (pair + pair.T)  # a predicted matrix need not be symmetric
    x0 = multilaterate(d_sat, s)
    loss0, _ = _objective(x0.ravel(), s, d_sat, d_pair, pair_weight)
    with _single_thread_blas():
        res = minimize(_objective, x0.ravel(), args=(s, d_sat, d_pair, pair_weight), jac=True, method="L-BFGS-B",
                       options={"maxiter": int(maxiter), "ftol": 1e-15, "gtol": 1e-10})
    x = res.x.reshape(n, 3) if res.fun <= loss0 else x0
    out = x * float(scale)
    if return_info:
        return out, {"loss": float(min(res.fun, loss0)), "loss_init": float(loss0), "iterations": int(res.nit),
                     "n_atoms": int(n)}
    return out


# --------------------------------------------------------------------------------------------
# aligned RMSD


def _cube_rotations() -> np.ndarray:
    """[24, 3, 3] proper rotations of the cube (signed permutation matrices with det +1)."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            r = np.zeros((3, 3))
            r[np.arange(3), perm] = signs
            if np.linalg.det(r) > 0:
                out.append(r)
    return np.stack(out)


def _principal_axes_starts(x: np.ndarray, y: np.ndarray, allow_reflection: bool) -> list[np.ndarray]:
    """Rotations mapping the principal axes of x onto those of y, every sign choice (4 proper, 4 improper).

    Exact starts for clusters without symmetry, where the cube rotations can all fall in a wrong
    assignment basin; for symmetric clusters (degenerate axes) the cube rotations cover the rest.
    """
    # full_matrices: a cluster of one or two atoms still needs three axes (its null space completes them)
    va = np.linalg.svd(x, full_matrices=True)[2].T
    vb = np.linalg.svd(y, full_matrices=True)[2].T
    out = []
    for signs in itertools.product((1.0, -1.0), repeat=3):
        rot = va @ np.diag(signs) @ vb.T
        if allow_reflection or np.linalg.det(rot) > 0:
            out.append(rot)
    return out


def _kabsch(p: np.ndarray, q: np.ndarray, reflection: bool) -> np.ndarray:
    """Orthogonal R minimising |p R - q| (p, q centred [n, 3]); proper unless ``reflection``."""
    u, _, vt = np.linalg.svd(p.T @ q)
    if not reflection and np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


def align(a, b, allow_reflection: bool = True, n_random: int = 8, seed: int = 0, max_iter: int = 50) -> dict:
    """Best superposition of cluster ``a`` onto ``b`` over atom assignments and orthogonal transforms.

    Args:
        a, b: [n_a, 3], [n_b, 3] positions (same units). With n_a != n_b the smaller set is
            matched one-to-one into the larger and only matched atoms count.
        allow_reflection: also consider improper rotations (mirror images).
        n_random: extra seeded random starting rotations besides the principal-axes and cube ones.

    Returns:
        dict ``rmsd`` (over matched atoms), ``rotation`` [3, 3] (applied as (a - ca) @ R),
        ``assignment`` [(i_a, i_b)] int arrays, ``n_matched``.
    """
    pa = _array(a, "a")
    pb = _array(b, "b")
    if pa.ndim != 2 or pb.ndim != 2 or pa.shape[1] != 3 or pb.shape[1] != 3 or not len(pa) or not len(pb):
        raise InputError(f"rmsd needs two non-empty [n, 3] position arrays, got {pa.shape} and {pb.shape}")
    ca, cb = pa.mean(0), pb.mean(0)
    x, y = pa - ca, pb - cb
    starts = _principal_axes_starts(x, y, allow_reflection)
    cube = _cube_rotations()
    starts += list(cube) + (list(-cube) if allow_reflection else [])  # -R: the improper partner
    if n_random:
        starts += list(Rotation.random(n_random, random_state=seed).as_matrix())
    with _single_thread_blas():
        return _align_loop(x, y, starts, allow_reflection, max_iter)


def _align_loop(x, y, starts, allow_reflection: bool, max_iter: int) -> dict:
    best = None
    for rot in starts:
        prev = None
        for _ in range(max_iter):
            cost = cdist(x @ rot, y, "sqeuclidean")
            ia, ib = linear_sum_assignment(cost)
            key = ib.tobytes()
            if key == prev:
                break
            prev = key
            # matched atoms are centred on their own centroids when the counts differ
            xa, yb = x[ia], y[ib]
            mx, my = xa.mean(0), yb.mean(0)
            rot = _kabsch(xa - mx, yb - my, allow_reflection)
        xa, yb = x[ia], y[ib]
        mx, my = xa.mean(0), yb.mean(0)
        rmsd = float(np.sqrt(np.mean(np.sum(((xa - mx) @ rot - (yb - my)) ** 2, axis=1))))
        if best is None or rmsd < best["rmsd"] - 1e-12:
            best = {"rmsd": rmsd, "rotation": rot, "assignment": (ia.copy(), ib.copy()), "n_matched": int(ia.size)}
        if best["rmsd"] < 1e-9:
            break
    return best


def rmsd_aligned(a, b, allow_reflection: bool = True, n_random: int = 8, seed: int = 0) -> float:
    """RMSD (units of the input) after optimal atom assignment and superposition; see :func:`align`."""
    return align(a, b, allow_reflection=allow_reflection, n_random=n_random, seed=seed)["rmsd"]
