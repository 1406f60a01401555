"""PXRDNet's nano-broadened powder pattern and the conversion of measured data onto its grid.

The recipe (Guo, Saidi, Terban, Valsecchi, Billinge, Lipson): Cu Kα1 (λ = 1.5406 Å), a stick
pattern on 4,096 points of Q from 0 to 8.1568 Å⁻¹, convolved with the 1-D Laue function
sinc²(Qτ/2) of a crystallite size τ (10 Å and 100 Å models), then with a Gaussian of standard
deviation σ_Q drawn uniformly from :data:`SIGMA_Q_RANGE`, down-sampled to 512 points and
max-normalised to 1.

Down-sampling rule (used everywhere here): the 4,096 fine points are cut into 512 consecutive
blocks of 8 and each model point is the **block mean** (of the Q values for :func:`model_grid`, of
the intensities for patterns). Block means, not every 8th point, because the mean is an
anti-aliasing filter: a 100 Å pattern has peaks only a few model steps wide.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d
from scipy.signal import fftconvolve

from nanosolve.errors import InputError
from nanosolve.scattering import profiles
from nanosolve.scattering.bragg import powder_pattern_torch, simulate_xrd
from nanosolve.scattering.pattern import Pattern

__all__ = ["Q_MAX", "N_FINE", "N_MODEL", "SIGMA_Q_RANGE", "WAVELENGTH", "fine_grid", "model_grid",
           "pxrdnet_pattern", "pxrdnet_pattern_torch", "render_pxrdnet_torch", "to_model_grid",
           "gaussian_conv_torch", "uniform_q_density", "cell_means", "rolling_background"]

Q_MAX = 8.1568  # Å⁻¹
N_FINE = 4096
N_MODEL = 512
SIGMA_Q_RANGE = (0.081568, 0.0897248)  # Å⁻¹, σ of the extra Gaussian (1 % and 1.1 % of Q_MAX)
WAVELENGTH = 1.5406  # Cu Kα1, Å
FINE_STEP = Q_MAX / (N_FINE - 1)  # Å⁻¹
BLOCK = N_FINE // N_MODEL  # 8 fine points per model point


def fine_grid() -> np.ndarray:
    """[4096] Q (Å⁻¹), linspace(0, Q_MAX)."""
    return np.linspace(0.0, Q_MAX, N_FINE)


def _block_mean(y, n_out: int):
    """[..., 4096] -> [..., n_out] means of consecutive blocks (numpy or torch)."""
    if N_FINE % n_out:
        raise InputError(f"n_out must divide {N_FINE}, got {n_out}")
    return y.reshape(*y.shape[:-1], n_out, N_FINE // n_out).mean(-1)


def model_grid(n_out: int = N_MODEL) -> np.ndarray:
    """[512] Q (Å⁻¹): block means of :func:`fine_grid` (first point 3.5 fine steps = 0.00697 Å⁻¹,
    step 8 fine steps = 0.01594 Å⁻¹)."""
    return _block_mean(fine_grid(), n_out)


def _sigma(sigma_q, rng) -> float:
    if sigma_q is not None:
        if not (np.isfinite(sigma_q) and sigma_q >= 0):
            raise InputError(f"sigma_q must be >= 0 Å⁻¹, got {sigma_q}")
        return float(sigma_q)
    if rng is None:
        return 0.5 * (SIGMA_Q_RANGE[0] + SIGMA_Q_RANGE[1])
    return float(rng.uniform(*SIGMA_Q_RANGE))


def _max_normalise(y):
    top = y.max()
    return y / top if top > 0 else y


def pxrdnet_pattern(crystal, size: float = 10.0, sigma_q: float | None = None, rng=None,
                    size_model: str = "pxrdnet", n_out: int = N_MODEL) -> np.ndarray:
    """PXRDNet's training pattern of a crystal, [n_out] on :func:`model_grid` (``n_out`` = 512),
    max = 1.

    Args:
        crystal: Crystal (or pymatgen Structure / ase.Atoms).
        size: crystallite size τ (Å).
        sigma_q: σ of the extra Gaussian (Å⁻¹); None draws it uniformly in :data:`SIGMA_Q_RANGE`
            from ``rng`` (a numpy Generator), or takes the midpoint if ``rng`` is None too. 0: none.
        size_model: 'pxrdnet' (sinc²(Qτ/2), the paper) or 'scherrer' (the physical per-peak
            Scherrer width 2πK/τ in Q, Gaussian, combined in quadrature with FWHM 2.3548 σ_Q).
        n_out: output length, a divisor of 4,096 (4,096 returns the fine grid itself).
    """
    sig = _sigma(sigma_q, rng)
    if size_model == "pxrdnet":
        p = simulate_xrd(crystal, WAVELENGTH, x="q", grid=fine_grid(), size=size, size_model="pxrdnet",
                         sigma_q=sig or None)
    elif size_model == "scherrer":
        p = simulate_xrd(crystal, WAVELENGTH, x="q", grid=fine_grid(), size=size, size_model="scherrer",
                         fwhm=sig / profiles.FWHM_TO_SIGMA)
    else:
        raise InputError(f"unknown size model {size_model!r}; use 'pxrdnet' or 'scherrer'")
    return _max_normalise(_block_mean(p.y, n_out))


def gaussian_conv_torch(y: torch.Tensor, step: float, sigma) -> torch.Tensor:
    """Convolve [B, G] uniform samples (spacing ``step``) with unit-area Gaussians of σ [B] (or a
    scalar), zero padding. Unlike :func:`profiles.gaussian_smooth_uniform` σ may require grad."""
    sig = torch.as_tensor(sigma, dtype=y.dtype).reshape(-1).expand(y.shape[0])
    half = int(math.ceil(5.0 * float(sig.detach().max()) / step)) + 1
    u = torch.arange(-half, half + 1, dtype=y.dtype) * step
    kern = torch.exp(-0.5 * (u[None, :] / sig[:, None]) ** 2)
    kern = kern / kern.sum(-1, keepdim=True)  # [B, K], symmetric so no flip needed
    out = torch.nn.functional.conv1d(y[None], kern[:, None, :], padding=half, groups=y.shape[0])
    return out[0]


def pxrdnet_pattern_torch(lattice, frac, species, size=10.0, sigma_q=None, hkl=None, *,
                          normalize: bool = True, exact: bool = True, scale=1.0) -> torch.Tensor:
    """Differentiable, batched :func:`pxrdnet_pattern` (size_model 'pxrdnet'): [B, 512].

    Args:
        lattice: [B, 3, 3] lattice rows (Å), tensor (may require grad); frac: [B, N, 3].
        species: N symbols or B lists of N symbols.
        size: τ (Å), scalar or [B].
        sigma_q: Gaussian σ (Å⁻¹), float or tensor (scalar or [B], may require grad); None: midpoint
            of :data:`SIGMA_Q_RANGE`; 0: no Gaussian.
        hkl: [M, 3] reflections to use (fix them across an optimisation), None to enumerate.
        normalize: divide each pattern by its max (for refinement rather fit a scale).
        exact: True renders on the 4,096-point grid and block-averages (as :func:`pxrdnet_pattern`);
            False evaluates directly at the 512 model Q values, ~8x cheaper. The two differ by the
            midpoint-rule error of a block mean, < 1e-3 of the max for τ = 10 Å.
        scale: scalar or [B] factor.
    """
    lat = torch.as_tensor(lattice, dtype=torch.float64)
    sig = _sigma(None, None) if sigma_q is None else sigma_q
    sig_max = float(torch.as_tensor(sig).detach().max())
    grid = fine_grid() if exact else model_grid()
    step = FINE_STEP if exact else BLOCK * FINE_STEP
    n_pad = int(math.ceil(5.0 * sig_max / step)) + 1 if sig_max > 0 else 0
    # Padded above Q_MAX so peaks just outside still blur in; below Q = 0 zero padding, like bragg.py.
    work = np.concatenate([grid, grid[-1] + step * np.arange(1, n_pad + 1)])
    y = powder_pattern_torch(lat, frac, species, work, wavelength=WAVELENGTH, x_unit="q", size=size,
                             size_model="pxrdnet", hkl=hkl, scale=scale)
    y = y.reshape(-1, work.size)
    if sig_max > 0:
        y = gaussian_conv_torch(y, step, sig)
    y = y[:, : grid.size]
    if exact:
        y = _block_mean(y, N_MODEL)
    if normalize:
        y = y / y.max(-1, keepdim=True).values.clamp_min(1e-300)
    return y


def render_pxrdnet_torch(q, weight, size=10.0, sigma_q=None, exact: bool = False) -> torch.Tensor:
    """[S, 512] pattern from peak lists: Q positions ``q`` [S, M] (Å⁻¹) with integrated intensities
    ``weight`` [S, M], sinc²(Qτ/2) ⊗ Gaussian(σ_Q), on the model grid (see
    :func:`pxrdnet_pattern_torch` for ``exact``); not normalised. Differentiable in q, weight and
    σ. The refinement uses it with symmetry-merged reflections (bragg's torch path renders every
    reflection separately whenever the lattice requires grad). On the model grid (``exact`` False)
    with one τ for the batch the sinc² sum is splatted and convolved
    (:func:`profiles.render_sinc2_uniform`, < 1e-3 of the max from the dense sum)."""
    sig = _sigma(None, None) if sigma_q is None else sigma_q
    sig_max = float(torch.as_tensor(sig).detach().max()) if isinstance(sig, torch.Tensor) else float(sig)
    grid = fine_grid() if exact else model_grid()
    step = FINE_STEP if exact else BLOCK * FINE_STEP
    n_pad = int(math.ceil(5.0 * sig_max / step)) + 1 if sig_max > 0 else 0
    work = torch.as_tensor(np.concatenate([grid, grid[-1] + step * np.arange(1, n_pad + 1)]), dtype=q.dtype)
    size_t = torch.as_tensor(size, dtype=q.dtype)
    if exact or size_t.dim() > 0:
        y = profiles.render_sinc2(work, q, weight, size_t[:, None] if size_t.dim() == 1 else size_t)
    else:  # splat + FFT convolution: independent of the number of reflections, see render_sinc2_uniform
        y = profiles.render_sinc2_uniform(float(work[0]), step, work.numel(), q, weight, float(size_t))
    if sig_max > 0:
        y = gaussian_conv_torch(y, step, sig)
    y = y[:, : grid.size]
    return _block_mean(y, N_MODEL) if exact else y


# ----- measured data -> model grid ------------------------------------------------------------
def cell_means(x, y, edges):
    """Mean of the piecewise-linear y(x) over each cell [edges[i], edges[i+1]] (exact, no aliasing)."""
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])
    c = np.interp(edges, x, cum)
    # Linear y beyond the data is 0; cells only partly inside are masked by the caller anyway.
    return np.diff(c) / np.diff(edges)


def rolling_background(y, step: float, window: float):
    """Morphological opening (rolling minimum, then rolling maximum, over ``window`` Å⁻¹), smoothed
    by a moving mean of the same width, then kept below the data. The opening removes every peak
    narrower than the window and, unlike a bare rolling minimum, reproduces a sloped or convex
    background without a bias of slope x window / 2. It eats diffuse signal that varies faster than
    the window (e.g. very broad nano peaks: pass background=None or a wider window)."""
    n = max(3, int(round(window / step)) | 1)
    opened = maximum_filter1d(minimum_filter1d(y, n, mode="nearest"), n, mode="nearest")
    bg = uniform_filter1d(opened, n, mode="nearest")
    return np.minimum(bg, y)


def uniform_q_density(pattern: Pattern, q, y, step: float, q_end: float, bg_window: float | None = None):
    """A measured pattern's intensities ``y`` at its points ``q`` (Å⁻¹, increasing) as cell means on the
    uniform grid u = q[0] + step·(i + ½) up to ``q_end``: (u [G], intensity per Å⁻¹ [G]).

    With ``bg_window`` (Å⁻¹) the rolling background (:func:`rolling_background`) is removed first, on
    the counts: measured backgrounds are smooth in 2θ, and 1/cos θ would steepen them towards high
    angles. 2θ data are then multiplied by d(2θ)/dQ (counts per degree become a density per Å⁻¹, so
    peak areas are conserved, as in the simulator's Q patterns)."""
    n = int(np.floor((q_end - q[0]) / step))
    u = q[0] + step * (np.arange(n) + 0.5)
    yu = cell_means(q, y, np.append(u - 0.5 * step, u[-1] + 0.5 * step))
    if bg_window is not None:
        yu = yu - rolling_background(yu, step, bg_window)
    if pattern.x_unit == "tth":
        cos_t = np.sqrt(np.clip(1 - (u * pattern.wavelength / (4 * np.pi)) ** 2, 1e-12, None))
        yu = yu / (2 * np.pi / pattern.wavelength * cos_t * np.pi / 180)  # × d(2θ)/dQ
    return u, yu


def _sinc2_gauss_kernel(step: float, n_half: int, size: float, sigma: float):
    """Unit-area sinc²(uτ/2) ⊗ Gaussian(σ) kernel on offsets -n_half..n_half steps (Å⁻¹)."""
    u = np.arange(-n_half, n_half + 1) * step
    k = profiles.sinc2(u, 0.0, size) if size else np.zeros_like(u)
    if not size:
        k[n_half] = 1.0 / step
    if sigma:
        k = profiles.gaussian_smooth_uniform(k, step, sigma)
    return k * step  # sum ≈ 1 (the far 1/u² tails beyond the data range cannot matter)


def to_model_grid(pattern: Pattern, broaden=None, background="auto", bg_window: float = 0.5,
                  edge_margin="auto", min_points: int = 10):
    """A measured pattern on the model grid: (y [512], mask [512] bool).

    Steps: 2θ → Q with the pattern's wavelength, intensities times d(2θ)/dQ (counts per degree
    become a density per Å⁻¹, so peak areas are conserved, which is what the simulator's Q
    patterns are); cell means onto a uniform Q grid no coarser than the data (and ≤ 0.002 Å⁻¹);
    optional background subtraction; optional broadening to the model's resolution; cell means
    over each model point's block (anti-aliased); clip at 0; max = 1 inside the mask.

    Args:
        pattern: Pattern in 2θ (with a wavelength) or Q.
        broaden: None or (τ Å, σ_Q Å⁻¹): convolve with the same sinc²(Qτ/2) ⊗ Gaussian(σ) kernel as
            :func:`pxrdnet_pattern` (τ = 0/None: Gaussian only). Sharp measured peaks must be
            broadened before the 0.016 Å⁻¹ model grid or they would not look like the model's.
        background: 'auto' (morphological opening over ``bg_window`` Å⁻¹ + moving-mean smoothing,
            see :func:`rolling_background`), None/'none', or an array [len(pattern)] to subtract
            (same points as the pattern, raw units).
        edge_margin: with ``broaden``, model points closer than this (Å⁻¹) to either end of the
            data are masked too: there the broadened data lack the tails of peaks outside the
            measured range while the model has them. 'auto' = the kernel's FWHM,
            sqrt((5.566/τ)² + (2.3548 σ)²); 0 keeps every point inside the range.
        min_points: fewer measured points (or overlapping model points) is an error.

    Returns:
        y [512] ≥ 0 (0 outside the mask) and mask [512], True where the model point's block lies
        inside the measured Q range, less ``edge_margin`` (the loss must ignore the rest).

    Raises:
        InputError naming ``pattern.metadata['source']``: 2θ without wavelength, too few points,
        flat data, no overlap with 0-8.1568 Å⁻¹, an x unit that is not 2θ or Q.
    """
    src = pattern.metadata.get("source")
    if pattern.x_unit not in ("tth", "q"):
        raise InputError(f"a powder pattern in 2θ or Q is needed, got x in {pattern.x_unit}", src)
    if len(pattern) < min_points:
        raise InputError(f"pattern has only {len(pattern)} points (empty or truncated file?)", src)
    y_raw = pattern.y
    if np.ptp(y_raw) <= 1e-12 * max(np.abs(y_raw).max(), 1e-300):
        raise InputError("pattern is flat (constant intensity): nothing to fit", src)
    if isinstance(background, np.ndarray) or isinstance(background, (list, tuple)):
        bg_arr = np.asarray(background, dtype=float).reshape(-1)
        if bg_arr.size != len(pattern):
            raise InputError(f"background has {bg_arr.size} points for {len(pattern)}", src)
        y_raw = y_raw - bg_arr
    p = pattern.to_q()  # raises (naming the file) if 2θ has no wavelength
    q, y = p.x, y_raw
    edges_fine = np.concatenate([[-0.5 * FINE_STEP], fine_grid() + 0.5 * FINE_STEP])
    model_edges = edges_fine[::BLOCK]  # [513] block boundaries
    mask = (model_edges[:-1] >= q[0] - 1e-12) & (model_edges[1:] <= q[-1] + 1e-12)
    if mask.sum() < min_points:
        raise InputError(f"data cover Q {q[0]:.4g}-{q[-1]:.4g} Å⁻¹, which overlaps the model range "
                         f"0-{Q_MAX} Å⁻¹ in {int(mask.sum())} model points; at least {min_points} needed", src)

    auto = isinstance(background, str) and background.lower() == "auto"
    if not (auto or background is None or isinstance(background, (np.ndarray, list, tuple))
            or (isinstance(background, str) and background.lower() == "none")):
        raise InputError(f"background must be 'auto', None or an array, got {background!r}", src)
    step = max(min(float(np.median(np.diff(q))), FINE_STEP), 1e-5)
    u, yu = uniform_q_density(pattern, q, y, step, q[-1], bg_window if auto else None)
    n = len(u)
    if broaden is not None:
        tau, sig = broaden
        if tau:
            profiles.check_size(tau)
        kern = _sinc2_gauss_kernel(step, n - 1, float(tau or 0.0), float(sig or 0.0))
        yu = fftconvolve(yu, kern, mode="same")
        if edge_margin == "auto":
            edge_margin = math.hypot(profiles.SINC2_FWHM_TAU / tau if tau else 0.0,
                                     float(sig or 0.0) / profiles.FWHM_TO_SIGMA)
        centers = model_grid()
        mask &= (centers >= q[0] + float(edge_margin)) & (centers <= q[-1] - float(edge_margin))
        if mask.sum() < min_points:
            raise InputError(f"data cover Q {q[0]:.4g}-{q[-1]:.4g} Å⁻¹: after trimming {edge_margin:.3g} Å⁻¹ "
                             f"of kernel width at each end fewer than {min_points} model points remain", src)
    out = np.zeros(N_MODEL)
    out[mask] = cell_means(u, yu, model_edges)[mask]
    out = np.clip(out, 0.0, None)
    top = out.max()
    if top <= 0:
        raise InputError("pattern has no positive intensity after background subtraction", src)
    return out / top, mask
