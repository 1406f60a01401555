"""R-factors and refinement of a candidate crystal against a powder pattern (PXRDNet's last step).

Targets: (a) ``grid_kind='model'``: 512 Q points of :mod:`nanosolve.scattering.nano_pxrd` with a
mask, model = scale · sinc²(Qτ/2) ⊗ Gaussian(σ_Q) pattern (σ_Q refined); (b) ``pattern=``: a
measured 2θ pattern on its own grid, model = scale · Gaussian / pseudo-Voigt peaks (one refined
FWHM in degrees, Lorentzian fraction η, zero shift with 2θ_obs = 2θ_calc + zero) + Chebyshev
background. Scale and background are linear and solved exactly by weighted least squares at every
evaluation (variable projection: the loss is stationary in them, so holding them fixed for the
gradient is exact). The nonlinear parameters (lattice within ±``lattice_range`` with symmetry ties,
width, zero, optionally positions) go to L-BFGS-B with torch gradients after a cheap batched scan
of isotropic and per-axis scalings. Sharp measured peaks make the loss a comb of minima in the
lattice, so the measured fit starts on data smoothed to a wide profile and narrows it step by step.
Reflections that stay at equal |g| under the tied parametrisation are rendered once (the speed-up
is about the multiplicity). The fit sees only the candidate and the data.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

from nanosolve.errors import InputError
from nanosolve.scattering import nano_pxrd as nx
from nanosolve.scattering import profiles
from nanosolve.scattering.agreement import poisson_weights, r_wp, r_wp_squared_integral
from nanosolve.scattering.bragg import _as_crystal, enumerate_hkl, simulate_xrd, structure_factors_torch
from nanosolve.scattering.pattern import Pattern
from nanosolve.structures.crystal import Crystal, lattice_from_parameters

__all__ = ["rwp2", "paper_rwp2", "rwp", "PXRDFit", "refine_crystal", "refine_lower_symmetry", "plot_pxrd_fit"]

PAPER_N, PAPER_SIGMA = 8192, 0.040784  # paper_rwp2 grid points and Gaussian σ (Å⁻¹)


# ----- R-factors (defined in nanosolve.scattering.agreement) -------------------------------
def rwp2(y_true, y_pred, q=None) -> float:
    """PXRDNet's R_wp² = ∫(I_gt − I_pred)² dQ / ∫ I_gt² dQ (trapezoid on ``q``; uniform if None):
    :func:`nanosolve.scattering.agreement.r_wp_squared_integral`."""
    return r_wp_squared_integral(y_true, y_pred, q)


def paper_rwp2(crystal_true, crystal_pred) -> float:
    """R_wp² of two crystals as the paper scores candidates: Cu Kα1, 8,192 points of Q 0–8.1568 Å⁻¹,
    Gaussian σ = 0.040784 Å⁻¹ (FWHM 2.3548 σ), no size broadening, each max-normalised."""
    q = np.linspace(0.0, nx.Q_MAX, PAPER_N)
    ys = []
    for c in (crystal_true, crystal_pred):
        y = simulate_xrd(c, nx.WAVELENGTH, x="q", grid=q, fwhm=PAPER_SIGMA / profiles.FWHM_TO_SIGMA).y
        ys.append(y / y.max())
    return rwp2(ys[0], ys[1], q)


def rwp(y_obs, y_calc, weights=None, mask=None) -> float:
    """R_wp = sqrt(Σ w (y_obs − y_calc)² / Σ w y_obs²) over ``mask`` (bool [G], default all).

    Default weights 1/max(y_obs, 0.01·max y_obs) of the points in ``mask``: Poisson-like (σ² ∝ counts),
    with a floor so that empty regions (weight → ∞ as y → 0) cannot dominate
    (:func:`nanosolve.scattering.agreement.poisson_weights`, :func:`~nanosolve.scattering.agreement.r_wp`).
    """
    if weights is None:
        yo = np.asarray(y_obs, float)
        m = slice(None) if mask is None else np.asarray(mask, bool)
        weights = np.ones_like(yo)
        weights[m] = poisson_weights(yo[m])
    return r_wp(y_obs, y_calc, weights, mask)


# ----- result -------------------------------------------------------------------------------
@dataclass
class PXRDFit:
    """A refined candidate. ``x`` [G] is Q (Å⁻¹, model grid) or 2θ (degrees, measured grid);
    ``y_obs``, ``y_calc`` [G] (y_calc on every point, with scale and background); ``mask`` [G]
    the fitted points, over which rwp_before / rwp_after are computed."""

    crystal: Crystal
    x: np.ndarray = field(repr=False)
    y_obs: np.ndarray = field(repr=False)
    y_calc: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    scale: float
    rwp_before: float
    rwp_after: float
    params: dict
    seconds: float
    x_unit: str = "q"

    def summary(self) -> dict:
        """JSON-able summary (floats and lists only)."""
        return {"formula": self.crystal.formula, "n_atoms": len(self.crystal), "x_unit": self.x_unit,
                "scale": float(self.scale), "rwp_before": float(self.rwp_before), "rwp_after": float(self.rwp_after),
                "seconds": round(float(self.seconds), 3), "params": dict(self.params)}


# ----- parameters ---------------------------------------------------------------------------
def equal_groups(values, tol):
    """Index groups of values equal within ``tol`` (relative)."""
    out: list[list[int]] = []
    for i, v in enumerate(values):
        for grp in out:
            if abs(values[grp[0]] - v) <= tol * max(abs(v), 1.0):
                grp.append(i)
                break
        else:
            out.append([i])
    return out


def _lattice_torch(p):
    """[S, 3, 3] rows from [S, 6] (a, b, c Å, α, β, γ degrees); the convention of
    :func:`lattice_from_parameters` (a along x, b in the xy plane)."""
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    al, be, ga = (torch.deg2rad(p[:, i]) for i in (3, 4, 5))
    cx = c * torch.cos(be)
    cy = c * (torch.cos(al) - torch.cos(be) * torch.cos(ga)) / torch.sin(ga)
    cz = torch.sqrt(torch.clamp(c * c - cx * cx - cy * cy, min=1e-6))
    z = torch.zeros_like(a)
    return torch.stack([torch.stack([a, z, z], -1), torch.stack([b * torch.cos(ga), b * torch.sin(ga), z], -1),
                        torch.stack([cx, cy, cz], -1)], 1)


class _Params:
    """Normalised parameters u ∈ [-1, 1]: physical = mid + half · u, laid out as
    [length factors per tie group | free angle deltas | width | zero | eta | frac deltas]."""

    def __init__(self, crystal: Crystal, lattice_range, width, width_bounds, zero, eta, n_frac, split_length=None):
        p0 = crystal.cell_params
        self.p0 = p0
        self.len_groups = equal_groups(list(p0[:3]), 1e-3)
        if split_length is not None:  # that length refines on its own even where it equals another
            self.len_groups = [g for g in ([i for i in g if i != split_length] for g in self.len_groups) if g]
            self.len_groups.append([split_length])
        # Angles at 90/60/120° are held by symmetry; other angles refine, tied if equal.
        free = [i for i in range(3) if min(abs(p0[3 + i] - s) for s in (60.0, 90.0, 120.0)) > 1e-3]
        self.ang_groups = [[3 + free[j] for j in g] for g in equal_groups([p0[3 + i] for i in free], 1e-3)]
        nl, na = len(self.len_groups), len(self.ang_groups)
        mid = [1.0] * nl + [0.0] * na
        half = [lattice_range] * nl + [min(lattice_range * p0[g[0]], 10.0) for g in self.ang_groups]
        self.sl = {"len": slice(0, nl), "ang": slice(nl, nl + na)}
        k = nl + na
        for name, m, h in (("width", *_mid_half(width, width_bounds)), ("zero", zero, 0.3 if zero is not None else 0),
                           ("eta", 0.5, 0.5 if eta is not None else 0)):
            self.sl[name] = slice(k, k + 1)
            mid.append(m if m is not None else 0.0)
            half.append(h)
            k += 1
        self.sl["frac"] = slice(k, k + 3 * n_frac)
        mid += [0.0] * (3 * n_frac)
        half += [0.05] * (3 * n_frac)
        self.mid, self.half = torch.tensor(mid, dtype=torch.float64), torch.tensor(half, dtype=torch.float64)
        self.frac0 = torch.tensor(crystal.frac_coords)
        std = lattice_from_parameters(*p0)
        self.rot = torch.tensor(np.linalg.solve(std, crystal.lattice))  # keeps the start's orientation
        self.n = k + 3 * n_frac
        self.x0 = {"width": width or 0.0, "zero": zero or 0.0, "eta": 0.5}

    def start(self) -> np.ndarray:
        """u of the start: the candidate's cell and positions, the starting width, zero 0, η 0.5."""
        v = self.mid.clone()
        for name, val in self.x0.items():
            v[self.sl[name]] = val
        return np.clip(((v - self.mid) / torch.where(self.half > 0, self.half, 1.0)).numpy(), -1, 1)

    def phys(self, u):
        return self.mid + self.half * u

    def unpack(self, u):
        """u [S, P] -> lattice [S, 3, 3], frac [S, N, 3], width, zero, eta [S]."""
        v = self.phys(u)
        s = v.shape[0]
        cols = [None] * 6
        for j, g in enumerate(self.len_groups):
            for i in g:
                cols[i] = self.p0[i] * v[:, j]
        for j, g in enumerate(self.ang_groups):
            for i in g:
                cols[i] = self.p0[i] + v[:, self.sl["ang"].start + j]
        cols = [torch.full((s,), float(self.p0[i]), dtype=torch.float64) if c is None else c
                for i, c in enumerate(cols)]
        lat = _lattice_torch(torch.stack(cols, 1)) @ self.rot
        fs = self.sl["frac"]
        frac = self.frac0[None] + v[:, fs].reshape(s, -1, 3) if fs.stop > fs.start else self.frac0[None].expand(s, -1, -1)
        return lat, frac, v[:, self.sl["width"]][:, 0], v[:, self.sl["zero"]][:, 0], v[:, self.sl["eta"]][:, 0]


def _mid_half(x0, bounds):
    lo, hi = bounds
    return 0.5 * (lo + hi), 0.5 * (hi - lo) if x0 else 0.0


# ----- models -------------------------------------------------------------------------------
def _merge_groups(par: _Params, hkl, rng):
    """Reflections whose |g| agree at the start and at 8 random lattices of the (tied)
    parametrisation stay equal for every allowed lattice: render each such group once.
    Returns (inverse [M] group index, first [Gr] representative)."""
    u = np.tile(par.start(), (9, 1))
    n_cell = par.sl["ang"].stop
    u[1:, :n_cell] = rng.uniform(-1, 1, (8, n_cell))
    with torch.no_grad():
        lat = par.unpack(torch.tensor(u))[0]
        recip = torch.linalg.inv(lat).transpose(-1, -2)
        g = torch.linalg.norm(torch.as_tensor(hkl, dtype=torch.float64) @ recip, dim=-1)
    keys = np.round(g.numpy().T * 1e9).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return torch.from_numpy(inverse.reshape(-1)), torch.from_numpy(first)


def _peaks(lat, frac, species, hkl, groups, wl):
    """Merged peaks: |g| [S, Gr] (Å⁻¹) and intensities [S, Gr] with the conventions of
    :mod:`nanosolve.scattering.bragg` (x-ray LP (1+cos²2θ)/(sin²θ cosθ), both Friedel mates)."""
    g, f2 = structure_factors_torch(lat, frac, species, hkl)
    inside = (0.5 * wl * g.detach()) < 1 - 1e-9
    sin_t = torch.clamp(0.5 * wl * g, max=1 - 1e-9)
    cos_t = torch.sqrt(1 - sin_t * sin_t)
    lp = (1 + (1 - 2 * sin_t * sin_t) ** 2) / (sin_t * sin_t * cos_t)
    w = torch.where(inside, 2.0 * f2 * lp, torch.zeros((), dtype=g.dtype))
    inv, first = groups
    merged = torch.zeros(w.shape[0], first.numel(), dtype=w.dtype).index_add(1, inv, w)
    return g[:, first], merged


def _tth_render(g, w, grid, wl, zero, fwhm, eta, profile):
    """[S, G] peaks on a 2θ grid (degrees) of one FWHM, shifted by ``zero``."""
    center = torch.rad2deg(2 * torch.asin(torch.clamp(0.5 * wl * g, max=1 - 1e-9))) + zero[:, None]
    width = fwhm[:, None].expand_as(center)
    if profile == "gaussian":
        return profiles.render_peaks(grid, center, w, width, "gaussian")
    return profiles.render_peaks(grid, center, w, width, "pseudo-voigt", eta[:, None, None])


class _Target:
    """Data, weights and linear basis (scale + background) of one fitting stage."""

    def __init__(self, x, y, mask, n_bg):
        self.x, self.y = np.asarray(x, float), np.asarray(y, float)
        self.m = np.asarray(mask, bool)
        xm = self.x[self.m]
        self.n_bg, self.lo, self.span = n_bg, xm.min(), max(np.ptp(xm), 1e-12)
        self.basis = self.basis_at(xm)
        self.yt = torch.tensor(self.y[self.m])
        self.w = torch.tensor(poisson_weights(self.y[self.m]))
        self.sw = torch.sqrt(self.w)
        self.den = float((self.w * self.yt ** 2).sum())

    def basis_at(self, xq):
        """[G, n_bg] Chebyshev background basis at xq (the fitted x range maps to [-1, 1])."""
        if not self.n_bg:
            return None
        return torch.tensor(np.polynomial.chebyshev.chebvander(2 * (xq - self.lo) / self.span - 1, self.n_bg - 1))

    def solve(self, model):
        """model [S, Gm] -> (loss [S] = Rwp², y_calc [S, Gm], coef [S, P]) with the linear
        parameters at their weighted least-squares optimum (held fixed for the gradient)."""
        a = model[..., None]
        if self.basis is not None:
            a = torch.cat([a, self.basis.expand(model.shape[0], -1, -1)], -1)
        with torch.no_grad():
            rhs = (self.yt * self.sw)[None, :, None].expand(a.shape[0], -1, 1)
            # gelsd, not the default gelsy: MKL's gelsy result depends on memory alignment in its last
            # bits, which L-BFGS amplifies into a different refined crystal for the same input
            coef = torch.linalg.lstsq(a * self.sw[:, None], rhs, driver="gelsd").solution
        yc = (a @ coef)[..., 0]
        return (self.w * (self.yt - yc) ** 2).sum(-1) / self.den, yc, coef[..., 0]


def _smooth_bin(x, y, fwhm_add, step_out):
    """Data smoothed by a Gaussian of FWHM ``fwhm_add`` (x units) and block-averaged to ≈ step_out."""
    dx = float(np.median(np.diff(x)))
    ys = profiles.gaussian_smooth_uniform(y, dx, fwhm_add * profiles.FWHM_TO_SIGMA) if fwhm_add > 0 else y
    b = max(1, int(step_out / dx))
    n = (x.size // b) * b
    return x[:n].reshape(-1, b).mean(1), ys[:n].reshape(-1, b).mean(1)


class _OutOfTime(Exception):
    """Raised inside an L-BFGS run when the caller's deadline has passed."""


def _lbfgs(loss_fn, u0, free, maxiter, deadline: float | None = None):
    """Minimise loss_fn(u [1, P]) over the free entries of u in [-1, 1]; returns (u, loss, nfev).
    ``deadline`` (time.perf_counter seconds): past it the run stops at the best point evaluated so far."""
    u0 = np.asarray(u0, float).copy()
    best = [math.inf, u0[free].copy(), 0]

    def f(uf):
        if deadline is not None and time.perf_counter() > deadline:
            raise _OutOfTime
        u = u0.copy()
        u[free] = uf
        t = torch.tensor(u[None], requires_grad=True)
        loss = loss_fn(t)[0]
        loss.backward()
        val = float(loss.detach())
        best[2] += 1
        if val < best[0]:
            best[0], best[1] = val, np.array(uf, float).copy()
        return val, t.grad[0].numpy()[free].copy()

    try:
        res = minimize(f, u0[free], jac=True, method="L-BFGS-B", bounds=[(-1, 1)] * int(free.sum()),
                       options={"maxiter": int(maxiter)})
    except _OutOfTime:
        if math.isfinite(best[0]):
            u0[free] = best[1]
        return u0, float(best[0]), int(best[2])
    u0[free] = res.x
    return u0, float(res.fun), int(res.nfev)


# ----- refinement ---------------------------------------------------------------------------
def refine_crystal(crystal, target_y=None, grid_kind: str = "model", mask=None, size: float = 10.0,
                   sigma_q: float | None = None, pattern: Pattern | None = None, n_restarts: int = 8,
                   lattice_range: float = 0.2, refine_positions: bool = False, steps: int = 80,
                   seed: int = 0, n_scan: int | None = None, fwhm: float = 0.1, profile: str = "gaussian",
                   n_background: int | None = None, n_random: int = 400, q_fit_max: float = 7.5,
                   split_length: int | None = None, deadline: float | None = None) -> PXRDFit:
    """Refine a candidate crystal against a powder pattern; see the module docstring.

    Args:
        crystal: the candidate (Crystal / pymatgen Structure / ase.Atoms).
        target_y: [512] pattern on :func:`nano_pxrd.model_grid` (``grid_kind='model'``), e.g. from
            :func:`nano_pxrd.to_model_grid`; mask: [512] bool (default all True).
        size, sigma_q: τ (Å) and starting Gaussian σ (Å⁻¹, default midpoint of SIGMA_Q_RANGE;
            refined within 0.5–2x) of the model-grid profile.
        pattern: a measured 2θ Pattern with a wavelength (a Q pattern needs one too), or a file
            path; then ``target_y`` is not used and the fit runs on the pattern's own grid.
        n_restarts: starting points (best of the lattice scan) that get a short local refinement.
        lattice_range: every refined length stays within ±range (relative) of the start, angles
            within ±min(range·angle, 10°); lengths (angles) equal within 1e-3 stay tied, angles of
            90/60/120° stay fixed, so a cubic start stays cubic.
        refine_positions: also refine fractional positions (±0.05) in the last stage.
        steps: L-BFGS-B iterations of the last stage (restarts get steps // 8, continuation
            stages steps // 4).
        seed: random per-axis lattice draws of the scan.
        n_scan: isotropic scan points (default 41 on the model grid; on measured data enough that
            neighbours shift the highest-angle peak by < half the widest profile).
        fwhm: starting FWHM (degrees 2θ) for measured data, refined within 0.25–4x.
        profile: 'gaussian' or 'pseudo-voigt' (η refined) for measured data.
        n_background: Chebyshev background terms (default 0 on the model grid, 6 on measured data).
        q_fit_max: model-grid points above this Q (Å⁻¹; 7.5 = 2θ 133° at Cu Kα1) are left out of
            the fit and of rwp: the grid ends at the Ewald limit 4π/λ, where the Lorentz factor
            1/cos θ diverges, so that region jumps whenever a reflection crosses the limit and
            (with τ = 10 Å tails) pulls the lattice into false minima.
        n_random: random per-axis scalings scanned when three lengths are free (two free lengths
            are scanned on the full n_scan x n_scan grid).
        split_length: 0, 1 or 2 (a, b, c): that length refines on its own even when it equals
            another, so a cubic start can become tetragonal (see :func:`refine_lower_symmetry`).
        deadline: time.perf_counter() seconds after which every L-BFGS run stops at its best point so
            far (the fit is returned as it stands; a solve's time budget).
    """
    t0 = time.perf_counter()
    cr = _as_crystal(crystal)
    rng = np.random.default_rng(seed)
    if not 0 < lattice_range < 0.5:
        raise InputError(f"lattice_range must be in (0, 0.5), got {lattice_range}")
    if split_length not in (None, 0, 1, 2):
        raise InputError(f"split_length must be None, 0, 1 or 2 (a, b, c), got {split_length!r}")
    if pattern is not None and not isinstance(pattern, Pattern):
        from nanosolve.scattering.coerce import as_pattern

        pattern = as_pattern(pattern)  # a file path, or (2θ, I) arrays with x_unit guessed
    measured = pattern is not None
    if measured:
        src = pattern.metadata.get("source")
        if pattern.wavelength is None:
            raise InputError("refinement on a measured pattern needs its wavelength", src)
        pat = pattern if pattern.x_unit == "tth" else pattern.to_two_theta()
        x, y = pat.x, pat.y
        m = np.ones(x.size, bool) if mask is None else np.asarray(mask, bool)
        wl, nbg, x_unit = pat.wavelength, 6 if n_background is None else n_background, "tth"
        if profile not in ("gaussian", "pseudo-voigt"):
            raise InputError(f"profile must be 'gaussian' or 'pseudo-voigt', got {profile!r}")
        par = _Params(cr, lattice_range, fwhm, (0.25 * fwhm, 4 * fwhm), 0.0,
                      0.5 if profile == "pseudo-voigt" else None, len(cr) if refine_positions else 0, split_length)
        # Reflections that can fall inside the data for any lattice within the bounds.
        g_lo, g_hi = (2 * np.sin(np.radians(v / 2)) / wl for v in (max(x[0] - 3, 0.0), min(x[-1] + 3, 179.9)))
        hkl, g0 = enumerate_hkl(cr.lattice, g_hi / (1 - lattice_range) * 1.1)
        hkl = hkl[(g0 / (1 + lattice_range) / 1.1 <= g_hi) & (g0 / (1 - lattice_range) * 1.1 >= g_lo)]
    else:
        if grid_kind != "model":
            raise InputError(f"grid_kind must be 'model' (or give pattern=...), got {grid_kind!r}")
        y = np.asarray(target_y, float).reshape(-1)
        if y.size != nx.N_MODEL:
            raise InputError(f"target_y must have {nx.N_MODEL} points on the model grid, got {y.size}")
        x = nx.model_grid()
        m = (np.ones(x.size, bool) if mask is None else np.asarray(mask, bool)) & (x <= q_fit_max)
        s0 = nx._sigma(sigma_q, None)
        nbg, x_unit, wl = 0 if n_background is None else n_background, "q", nx.WAVELENGTH
        par = _Params(cr, lattice_range, s0, (0.5 * s0, 2 * s0), None, None, len(cr) if refine_positions else 0,
                      split_length)
        hkl, _ = enumerate_hkl(cr.lattice * (1 + lattice_range) * 1.05, 2.0 / nx.WAVELENGTH)

    groups = _merge_groups(par, hkl, rng)

    def make_loss(tg: _Target, wide=None):
        def model(u):
            lat, frac, width, zero, eta = par.unpack(u)
            g, w = _peaks(lat, frac, cr.species, hkl, groups, wl)
            if measured:
                fw = width if wide is None else torch.full_like(width, wide)
                return _tth_render(g, w, torch.tensor(tg.x[tg.m]), wl, zero, fw, eta, profile)
            return nx.render_pxrdnet_torch(2 * math.pi * g, w, size, width if s0 > 0 else 0.0)[:, tg.m]

        def loss(u):
            ch = 1 if u.requires_grad else max(1, 2_000_000 // (len(groups[1]) * max(int(tg.m.sum()), 1)))
            out = [tg.solve(model(u[i:i + ch]))[0] for i in range(0, u.shape[0], ch)]
            return torch.cat(out)
        return loss, model

    full = _Target(x, y, m, nbg)
    loss_full, model_full = make_loss(full)
    u = par.start()
    with torch.no_grad():
        rwp_before = math.sqrt(float(loss_full(torch.tensor(u[None]))[0]))

    # Stage targets: model grid as is; measured data smoothed to a wide profile, then narrower.
    if measured:
        dx = float(np.median(np.diff(x)))
        wide = max(4 * fwhm, 0.5, 4 * dx)
        widths = [wide]
        while widths[-1] / 2 > 1.5 * fwhm:
            widths.append(widths[-1] / 2)
        tan_max = math.tan(math.radians(min(x[-1], 170.0) / 2))
        delta = 0.5 * wide * math.pi / 180 / (2 * tan_max)
        n_iso = n_scan or int(min(401, math.ceil(2 * lattice_range / delta) + 1))
    else:
        widths = [None]
        n_iso = n_scan or 41

    def stage_target(w):
        if w is None:
            return full
        xs, ys = _smooth_bin(x, y, math.sqrt(max(w * w - fwhm * fwhm, 0.0)), w / 6)
        return _Target(xs, ys, np.interp(xs, x, m.astype(float)) > 0.5, nbg)

    # 1) cheap scan of isotropic + per-axis lattice scalings (normalised units: factor = 1 + r·u)
    nl = len(par.len_groups)
    line = np.linspace(-1, 1, n_iso)
    cands = [np.tile(line[:, None], (1, nl))]
    if nl == 2:  # tetragonal / hexagonal: a full (a, c) grid is still cheap
        line2 = np.linspace(-1, 1, min((n_iso + 1) // 2 + 1, 41))
        cands.append(np.stack(np.meshgrid(line2, line2, indexing="ij"), -1).reshape(-1, 2))
    elif nl > 2:
        cands.append(rng.uniform(-1, 1, (n_random, nl)))
    cl = np.concatenate(cands)
    uu = np.tile(u, (cl.shape[0], 1))
    uu[:, par.sl["len"]] = cl
    tg = stage_target(widths[0])
    loss0, _ = make_loss(tg, widths[0])
    with torch.no_grad():
        scan = loss0(torch.tensor(uu)).numpy()
    picked: list[int] = []
    for i in np.argsort(scan):
        if all(np.abs(cl[i] - cl[j]).max() > 3.0 / max(n_iso - 1, 1) for j in picked):
            picked.append(int(i))
        if len(picked) == n_restarts:
            break

    # 2) short local refinement of each start (lattice, width, zero) on the first stage target
    base_free = np.zeros(par.n, bool)
    base_free[: par.sl["ang"].stop] = True
    for name in ("width", "zero", "eta"):
        base_free[par.sl[name]] = par.half[par.sl[name]].numpy() > 0
    free0 = base_free.copy()
    if measured:
        free0[par.sl["width"]] = free0[par.sl["eta"]] = False  # width fixed at the stage's value
    nfev = 0
    starts = []
    for i in picked:
        ui, li, n_ = _lbfgs(loss0, uu[i], free0, max(5, steps // 8), deadline)
        nfev += n_
        starts.append((li, ui))
    u = min(starts, key=lambda t: t[0])[1]

    # 3) continuation to narrower profiles (measured), then the final free fit on the full data
    for w in widths[1:]:
        lw, _ = make_loss(stage_target(w), w)
        u, _, n_ = _lbfgs(lw, u, free0, max(5, steps // 4), deadline)
        nfev += n_
    free = base_free.copy()
    free[par.sl["frac"]] = True
    u, _, n_ = _lbfgs(loss_full, u, free, steps, deadline)
    nfev += n_

    with torch.no_grad():
        ut = torch.tensor(u[None])
        loss, _, coef = full.solve(model_full(ut))
        lat, frac, width, zero, eta = par.unpack(ut)
        # y_calc on every point (also the unfitted ones, e.g. Q > q_fit_max) with the fitted scale
        # and background, so that callers can score it on their own mask.
        y_calc = coef[0, 0] * make_loss(_Target(x, y, np.ones(x.size, bool), 0))[1](ut)[0]
        if nbg:
            y_calc = y_calc + full.basis_at(x) @ coef[0, 1:]
    y_calc = y_calc.numpy()
    refined = Crystal(lat[0].numpy(), np.mod(frac[0].numpy(), 1.0), cr.species, cr.occupancies, cr.labels,
                      name=(cr.name or cr.formula) + " (refined)", properties=dict(cr.properties))
    a, b, c, al, be, ga = (float(v) for v in refined.cell_params)
    params = {"a": a, "b": b, "c": c, "alpha": al, "beta": be, "gamma": ga, "start_cell": cr.cell_params.tolist(),
              "tied_lengths": par.len_groups, "refined_angles": par.ang_groups, "n_scan": int(cl.shape[0]),
              "n_restarts": len(picked), "n_evaluations": nfev, "background": coef[0, 1:].numpy().tolist()}
    if measured:
        params.update(fwhm_deg=float(width[0]), zero_deg=float(zero[0]), profile=profile,
                      stage_widths_deg=widths, wavelength=wl)
        if profile == "pseudo-voigt":
            params["eta"] = float(eta[0])
    else:
        params.update(size=float(size), sigma_q=float(width[0]) if s0 > 0 else 0.0)
    if refine_positions:
        params["max_position_shift"] = float(np.abs(frac[0].numpy() - cr.frac_coords).max())
    return PXRDFit(refined, x, y, y_calc, m, float(coef[0, 0]), rwp_before, math.sqrt(float(loss[0])),
                   params, time.perf_counter() - t0, x_unit)


def _axis_orbits(crystal: Crystal, symprec: float = 1e-3) -> list[set[int]]:
    """Cell axes (0, 1, 2) grouped by the crystal's own symmetry: i and j share an orbit when an
    operation maps lattice vector i onto ±j, so stretching either gives the same powder pattern.
    ``symprec`` (Å) is tight: only candidates that are symmetric (e.g. symmetrised) merge axes."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    orbits = [{i} for i in range(3)]
    try:
        ops = SpacegroupAnalyzer(crystal.to_pymatgen(), symprec=symprec).get_symmetry_operations(cartesian=False)
    except Exception:  # spglib finds no cell (degenerate candidate): treat every axis as distinct
        return orbits
    for op in ops:
        r = np.rint(op.rotation_matrix).astype(int)
        for i in range(3):
            col = np.abs(r[:, i])
            if col.sum() == 1:
                j = int(col.argmax())
                oi, oj = next(o for o in orbits if i in o), next(o for o in orbits if j in o)
                if oi is not oj:
                    oi |= oj
                    orbits.remove(oj)
    return sorted(orbits, key=min)


def refine_lower_symmetry(crystal, **kwargs) -> PXRDFit:
    """:func:`refine_crystal` as given and once more with each tied length refined on its own
    (``split_length``); the fit with the lowest R_wp is returned, ``params['split_length']`` naming
    the split (None: none) and ``params['splits_tried']`` the lengths tried.

    Why: equal lengths stay tied, so a candidate made cubic by symmetrisation against a 10 Å
    pattern stays cubic against a sharp measured one, where a tetragonal splitting of 1 % decides
    the fit (measured BaTiO₃, c/a 1.010: R_wp 0.48 cubic, 0.31 with one length split off). Splitting one length
    at a time follows the usual subgroup path (cubic → tetragonal, tetragonal → orthorhombic); three
    free lengths from a cubic start fall into the cubic minimum again. Lengths that the candidate's
    symmetry maps onto each other (:func:`_axis_orbits`) give the same fit, so one of them is tried:
    one extra refinement for a cubic candidate, not three."""
    first = refine_crystal(crystal, **kwargs)
    first.params["split_length"] = None
    fits = [first]
    orbits = _axis_orbits(_as_crystal(crystal))
    tried = []
    for group in first.params["tied_lengths"]:
        if len(group) < 2:
            continue
        for orbit in orbits:
            members = sorted(orbit & set(group))
            if members:
                tried.append(members[0])
    for i in tried:
        if kwargs.get("deadline") is not None and time.perf_counter() > kwargs["deadline"]:
            break  # out of time: the fits made so far compete
        fit = refine_crystal(crystal, split_length=i, **kwargs)
        fit.params["split_length"] = i
        fits.append(fit)
    best = min(fits, key=lambda f: f.rwp_after)
    best.params["splits_tried"] = tried
    return best


def plot_pxrd_fit(fit: PXRDFit, path: str | os.PathLike, title: str = "") -> Path:
    """PNG of data, model and difference (offset below) for one refined candidate."""
    from nanosolve.scattering.plot import plot_fit_curves

    m = fit.mask
    return plot_fit_curves(fit.x[m], fit.y_obs[m], fit.y_calc[m], path, "2θ (°)" if fit.x_unit == "tth" else "Q (Å⁻¹)",
                           "I (a.u.)", f"model, Rwp = {fit.rwp_after:.3f}", title or fit.crystal.name, ms=1.5)
