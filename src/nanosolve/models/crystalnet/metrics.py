"""CrystalNet's density metrics: 3-D SSIM and PSNR (scikit-image), on the density and on the density
minus a reference (mean) map, atom-site recall/precision of decoded atoms, and the paper's best over
cube rotations.

Blind scores (:func:`residual_scores`, :func:`site_scores`) compare a prediction in the setting the
model produced it, no choice made against the truth. SSIM of the raw density is dominated by empty
space (an all-zero map scores ~0.95 on cubic crystals); on ``density - mean map`` the part every
crystal shares is gone, so a map only scores by what is specific to its crystal (the residual's
correlation and the skill over the mean map separate maps best, see :func:`residual_scores`).

The paper compares a predicted and a true density grid with SSIM (7-voxel window) and PSNR, the
data range being that of the truth. Because a powder pattern does not fix the setting of the
cell, its score is the best over the 24 proper rotations of the cube grid, chosen against the
truth (:func:`best_over_rotations_and_samples`, kept for comparison, not used by the evaluation) (and, optionally,
over periodic shifts, found by FFT cross-correlation). The rotations act on the fractional grid
about the origin voxel (index i -> -i mod n), so a rotated periodic map is again a map on the
same grid; they are symmetries of the cell only for cubic lattices - elsewhere they are just the
paper's search space.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from nanosolve.errors import InputError

WIN_SIZE = 7


def _check_pair(pred, truth):
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise InputError(f"need two 3-D grids of one shape, got {pred.shape} and {truth.shape}")
    if min(truth.shape) < WIN_SIZE:
        raise InputError(f"grids must be at least {WIN_SIZE} voxels per side for SSIM, got {truth.shape}")
    return pred, truth


def _range(truth) -> float:
    r = float(truth.max() - truth.min())
    return r if r > 0 else 1.0


def ssim3d(pred, truth) -> float:
    """3-D SSIM (window 7, data range of ``truth``) of two [n0, n1, n2] grids; 1 = identical."""
    from skimage.metrics import structural_similarity

    pred, truth = _check_pair(pred, truth)
    return float(structural_similarity(truth, pred, win_size=WIN_SIZE, data_range=_range(truth), channel_axis=None))


def psnr3d(pred, truth) -> float:
    """PSNR (dB, data range of ``truth``); inf for identical grids."""
    from skimage.metrics import peak_signal_noise_ratio

    pred, truth = _check_pair(pred, truth)
    if np.array_equal(pred, truth):
        return float("inf")
    return float(peak_signal_noise_ratio(truth, pred, data_range=_range(truth)))


def cube_rotations() -> list[np.ndarray]:
    """The 24 proper rotations of the cube as signed permutation matrices [3, 3] (det +1)."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=int)
            m[np.arange(3), perm] = signs
            if round(np.linalg.det(m)) == 1:
                mats.append(m)
    return mats


def rotate_grid(grid: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Periodic grid rotated by a signed permutation ``rotation``: out[R·i mod n] = grid[i].

    Needs equal sizes along permuted axes (a cube grid for the general case).
    """
    grid = np.asarray(grid)
    rot = np.asarray(rotation, dtype=int)
    # out[j] with j = R i: axis a of the output is input axis perm[a] with sign s[a].
    perm = [int(np.flatnonzero(rot[a])[0]) for a in range(3)]
    out = np.transpose(grid, perm)
    for a in range(3):
        if rot[a, perm[a]] < 0:
            out = np.roll(np.flip(out, axis=a), 1, axis=a)  # i -> -i mod n
    return out


def _best_shift(pred, truth) -> tuple[int, int, int]:
    """Periodic shift s maximising Σ truth(x) pred(x - s) (FFT cross-correlation)."""
    a = truth - truth.mean()
    b = pred - pred.mean()
    cc = np.fft.irfftn(np.fft.rfftn(a) * np.conj(np.fft.rfftn(b)), s=a.shape, axes=(0, 1, 2))
    return tuple(int(v) for v in np.unravel_index(np.argmax(cc), cc.shape))


@dataclass
class RotationMatch:
    """Best SSIM/PSNR of a prediction over grid rotations (and shifts)."""

    ssim: float
    psnr: float
    rotation: np.ndarray  # [3, 3] signed permutation applied to ``pred``
    shift: tuple[int, int, int]  # voxels, applied (np.roll) after the rotation


def best_over_rotations(pred, truth, shifts: bool = False) -> RotationMatch:
    """Max SSIM of ``pred`` rotated by each of the 24 cube rotations against ``truth``.

    With ``shifts`` each rotation is also translated by the periodic shift that best
    cross-correlates it with the truth (origin choice is as free as the setting). PSNR is
    reported for the SSIM-best orientation.
    """
    pred, truth = _check_pair(pred, truth)
    best = None
    for rot in cube_rotations():
        try:
            cand = rotate_grid(pred, rot)
        except ValueError:
            continue
        if cand.shape != truth.shape:
            continue  # non-cubic grid: this permutation does not fit
        shift = _best_shift(cand, truth) if shifts else (0, 0, 0)
        if shifts:
            cand = np.roll(cand, shift, axis=(0, 1, 2))
        s = ssim3d(cand, truth)
        if best is None or s > best[0]:
            best = (s, rot, shift, cand)
    s, rot, shift, cand = best
    return RotationMatch(ssim=s, psnr=psnr3d(cand, truth), rotation=rot, shift=shift)


class SSIMReference:
    """SSIM/PSNR of many candidate grids against one truth, exactly as :func:`ssim3d` /
    :func:`psnr3d` (scikit-image's formula: 7-voxel uniform window, ``reflect`` borders, sample
    covariance, K1 = 0.01, K2 = 0.03, border of 3 voxels cropped before the mean), to ~1e-6.

    Why not call scikit-image 24 × 5 times: it filters five float64 arrays per call; the truth's
    two (mean, mean of squares) are the same for every candidate, so they are computed once here,
    and the candidate's three are filtered in float32 (the window sums then carry relative errors
    ~1e-7, far below the C1, C2 constants; the final mean is float64) - together about 3× faster,
    which is what makes the paper's search over 24 rotations × 5 latent samples affordable on a CPU.
    """

    def __init__(self, truth):
        from scipy.ndimage import uniform_filter

        truth = np.asarray(truth, dtype=np.float64)
        _check_pair(truth, truth)
        self._filter = lambda a: uniform_filter(a.astype(np.float32), size=WIN_SIZE).astype(np.float64)
        self.truth = truth
        self._truth32 = truth.astype(np.float32)
        self.data_range = _range(truth)
        self.ux = self._filter(truth)
        self.vx_raw = self._filter(truth * truth) - self.ux * self.ux
        n = WIN_SIZE ** 3
        self.cov_norm = n / (n - 1.0)
        self.c1 = (0.01 * self.data_range) ** 2
        self.c2 = (0.03 * self.data_range) ** 2
        self.pad = (WIN_SIZE - 1) // 2

    def ssim(self, pred) -> float:
        y = np.asarray(pred, dtype=np.float32)
        if y.shape != self.truth.shape:
            raise InputError(f"candidate grid {y.shape} does not match the truth {self.truth.shape}")
        f = self._filter
        uy = f(y)
        vy = self.cov_norm * (f(y * y) - uy * uy)
        vxy = self.cov_norm * (f(self._truth32 * y) - self.ux * uy)
        vx = self.cov_norm * self.vx_raw
        s = ((2 * self.ux * uy + self.c1) * (2 * vxy + self.c2)
             / ((self.ux ** 2 + uy ** 2 + self.c1) * (vx + vy + self.c2)))
        p = self.pad
        return float(s[p:-p, p:-p, p:-p].mean(dtype=np.float64))

    def psnr(self, pred) -> float:
        y = np.asarray(pred, dtype=np.float64)
        mse = float(np.mean((self.truth - y) ** 2))
        return float("inf") if mse == 0 else float(10 * np.log10(self.data_range ** 2 / mse))


def best_over_rotations_and_samples(preds, truth) -> tuple[RotationMatch, int]:
    """The paper's score: max SSIM over the 24 cube rotations of each of ``preds`` [S, n, n, n]
    (latent samples) against ``truth``; PSNR of that best candidate.

    Returns:
        (RotationMatch of the best candidate (shift (0, 0, 0)), index of the best sample).
    """
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim == 3:
        preds = preds[None]
    ref = SSIMReference(truth)
    best = None
    for k, pred in enumerate(preds):
        _check_pair(pred, truth)
        for rot in cube_rotations():
            cand = rotate_grid(pred, rot)
            if cand.shape != ref.truth.shape:
                continue
            s = ref.ssim(cand)
            if best is None or s > best[0]:
                best = (s, rot, k, cand)
    s, rot, k, cand = best
    return RotationMatch(ssim=s, psnr=ref.psnr(cand), rotation=rot, shift=(0, 0, 0)), k


def residual_scores(pred, truth, reference) -> dict:
    """Scores of ``pred - reference`` against ``truth - reference`` ([n, n, n] grids, one setting, no
    rotation search), ``reference`` being the mean training density, so that a map scores only by what
    is specific to its crystal:

    * ``ssim_res``, ``psnr_res``: SSIM / PSNR of the residuals (data range of ``truth - reference``).
      Still flattered by low-variance windows (a peaky density has a large data range, so the SSIM
      constants swamp small residuals): reported, not relied on;
    * ``corr_res``: Pearson correlation of the residuals (0 for the reference itself, 1 for the truth);
    * ``skill``: 1 - Σ(pred - truth)² / Σ(reference - truth)², the fraction of the mean map's squared
      error removed (0 for the reference, 1 for the truth, < 0 for worse than the mean map).
    """
    ref = np.asarray(reference, dtype=np.float64)
    p, t = _check_pair(np.asarray(pred, dtype=np.float64) - ref, np.asarray(truth, dtype=np.float64) - ref)
    corr = float(np.corrcoef(p.ravel(), t.ravel())[0, 1]) if p.std() > 0 and t.std() > 0 else 0.0
    base = float(np.sum(t * t))
    skill = 1.0 - float(np.sum((p - t) ** 2)) / base if base > 0 else float("nan")
    return {"ssim_res": ssim3d(p, t), "psnr_res": psnr3d(p, t), "corr_res": corr, "skill": skill}


def site_scores(decoded, truth, tol: float = 0.5) -> dict:
    """Atom-site recall and precision of ``decoded`` atoms against ``truth`` (both :class:`Crystal` on
    the same lattice and origin): one-to-one matching (Hungarian) of atoms of the same species whose
    periodic minimum-image distance is <= ``tol`` Å. recall = matched / true atoms, precision =
    matched / decoded atoms (0 when nothing was decoded: an empty answer earns nothing).

    Returns:
        {'recall', 'precision', 'matched', 'n_true', 'n_decoded'}.
    """
    from scipy.optimize import linear_sum_assignment

    n_t = len(truth)
    n_d = 0 if decoded is None else len(decoded)
    out = {"recall": 0.0, "precision": 0.0, "matched": 0, "n_true": n_t, "n_decoded": n_d}
    if n_t == 0 or n_d == 0:
        return out
    lat = np.asarray(truth.lattice, dtype=np.float64)
    d = np.asarray(decoded.frac_coords, dtype=np.float64)[:, None, :] - np.asarray(truth.frac_coords)[None, :, :]
    d -= np.round(d)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.float64)  # minimum image, any cell
    dist = np.linalg.norm((d[:, :, None, :] + shifts) @ lat, axis=-1).min(axis=-1)  # [n_d, n_t]
    same = np.asarray(decoded.species)[:, None] == np.asarray(truth.species)[None, :]
    ok = same & (dist <= tol)
    cost = np.where(ok, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    matched = int(ok[rows, cols].sum())
    out.update(recall=matched / n_t, precision=matched / n_d, matched=matched)
    return out
