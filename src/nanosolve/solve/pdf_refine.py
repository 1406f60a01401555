"""Refine a candidate cluster against a measured G(r) and rank candidates by the fit.

Model: G_calc(r) = s · G_cluster(r; (1 + ε)·X, B_iso, δ2) with the cluster PDF of
:func:`nanosolve.models.deepstruc.pdf.cluster_pdf` (Debye sum, finite Q range, Qdamp, correlated
motion δ2). Refined: scale s, isotropic expansion ε, B_iso (Å²) and optionally δ2 (Å²), by
``scipy.optimize.least_squares`` (trust-region reflective, bounds) on the residual Gobs − Gcalc
over ``rmin ≤ r ≤ rmax``. Because peak overlap makes the fit multi-modal in ε, ε is first scanned
on a grid (with the linear optimum of s at each point) and the best point starts the local fit.

Optional atom-position refinement (``FitSettings(refine_positions=True)``, :func:`_refine_positions`):
after the global fit, all Cartesian coordinates plus scale, B_iso (and δ2 if refined) are fitted to
Gobs by ``least_squares`` with an analytic Jacobian (the isotropic expansion is then carried by the
coordinates themselves). A soft contact restraint w·max(0, d_min − d_ij), d_min = 0.75 × the
candidate's median nearest-neighbour distance, keeps atoms from collapsing onto each other; the
centre of mass is kept where it was (translation does not change a PDF).

Goodness of fit: Rw = sqrt(Σ (Gobs − Gcalc)² / Σ Gobs²) (unit weights, as PDFgui without dG).
Ranking (:func:`rank`) sees only the data and the candidates: never a reference structure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import least_squares

from nanosolve.errors import InputError
from nanosolve.models.deepstruc.pdf import cluster_pdf
from nanosolve.scattering.agreement import pdf_rw as rw  # Rw, importable from here as before
from nanosolve.structures.particle import Particle

__all__ = ["FitSettings", "RefineResult", "rw", "refine", "rank", "settings_from_metadata"]


@dataclass
class FitSettings:
    """Experiment + fit settings (Q Å⁻¹, r Å, B and δ2 Å²).

    Defaults are DeepStruc's training PDFs (Qmin 0.7, Qmax 30, Qdamp 0.04); a PDFgetX3 header
    overrides Qmin/Qmax/Qdamp (:func:`settings_from_metadata`).
    """

    qmin: float = 0.7
    qmax: float = 30.0
    qdamp: float = 0.04
    rmin: float = 1.0
    rmax: float | None = None
    biso0: float = 0.4
    delta2_0: float = 0.0
    refine_delta2: bool = False
    expansion_bounds: tuple[float, float] = (-0.15, 0.15)
    expansion_scan: int = 21
    max_nfev: int = 40
    refine_positions: bool = False  # also refine every atom position (after the global fit)
    position_max_nfev: int = 40  # Jacobian evaluations of the position refinement
    contact_fraction: float = 0.75  # restraint on pairs closer than this × the nearest-neighbour distance
    contact_weight: float = 1.0  # restraint weight, in units of ‖Gobs‖ per nearest-neighbour distance
    bond_weight: float = 0.0  # bond-length restraint on starting neighbour pairs (0 = off), units of ‖Gobs‖ (below)
    max_shift: float | None = None  # largest shift of any atom coordinate from its start (Å); None = free

    def __post_init__(self):
        if not (0 <= self.qmin < self.qmax) or self.qdamp < 0:
            raise InputError(f"need 0 <= qmin < qmax and qdamp >= 0, got {self.qmin}, {self.qmax}, {self.qdamp}")
        lo, hi = self.expansion_bounds
        if not -1 < lo < 0 < hi:
            raise InputError(f"expansion bounds must bracket 0 within (-1, inf), got {self.expansion_bounds}")
        if self.bond_weight < 0 or (self.max_shift is not None and not self.max_shift > 0):
            raise InputError(f"need bond_weight >= 0 and max_shift > 0, got {self.bond_weight}, {self.max_shift}")
        if not 0 < self.contact_fraction < 1 or self.contact_weight < 0 or int(self.position_max_nfev) < 1:
            raise InputError("need 0 < contact_fraction < 1, contact_weight >= 0 and position_max_nfev >= 1, got "
                             f"{self.contact_fraction}, {self.contact_weight}, {self.position_max_nfev}")


def settings_from_metadata(metadata: dict, **overrides) -> FitSettings:
    """FitSettings with Qmin/Qmax/Qdamp from a pattern header where it states them."""
    kw = {}
    for key in ("qmin", "qmax", "qdamp"):
        v = metadata.get(key)
        if isinstance(v, (int, float)) and np.isfinite(v):
            kw[key] = float(v)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return FitSettings(**kw)


@dataclass
class RefineResult:
    """Refined candidate: parameters, Rw and curves on the fitted r points (Å, Å⁻²)."""

    particle: Particle  # positions already expanded by (1 + expansion), Å
    scale: float
    expansion: float
    biso: float
    delta2: float
    rw: float
    r: np.ndarray = field(repr=False)
    g_obs: np.ndarray = field(repr=False)
    g_calc: np.ndarray = field(repr=False)
    candidate_index: int = -1
    n_eval: int = 0
    # with refine_positions: Rw after the global fit only, and the RMS atom shift of the position step (Å)
    rw_global: float | None = None
    position_shift: float | None = None
    global_fit: dict | None = field(default=None, repr=False)  # scale, expansion, biso, delta2 of the global fit
    seconds: float = 0.0
    extra: dict | None = field(default=None, repr=False)  # more summary fields (source, motif, sanity, ...)

    def summary(self) -> dict:
        out = {"name": self.particle.name, "n_atoms": len(self.particle), "rw": self.rw, "scale": self.scale,
               "expansion": self.expansion, "biso": self.biso, "delta2": self.delta2,
               "candidate_index": self.candidate_index, "positions_refined": self.rw_global is not None}
        if self.rw_global is not None:
            out.update(rw_global=self.rw_global, position_shift=self.position_shift)
        if self.extra:
            out.update(self.extra)
        return out


def _fit_points(r, g, s: FitSettings) -> tuple[np.ndarray, np.ndarray]:
    r, g = np.asarray(r, float).reshape(-1), np.asarray(g, float).reshape(-1)
    if r.size != g.size or r.size < 10:
        raise InputError("the PDF needs at least 10 (r, G) points of equal count")
    keep = (r >= s.rmin) & (r <= (s.rmax if s.rmax is not None else np.inf))
    if keep.sum() < 10:
        raise InputError(f"fewer than 10 data points in the fit range r = {s.rmin}-{s.rmax} Å")
    return r[keep], g[keep]


def _calc(positions, r, s: FitSettings, expansion: float, biso: float, delta2: float) -> np.ndarray:
    # cluster_pdf's default Q step, π / (r_max + 2Δr), depends only on the last point and the step,
    # so a fit range starting at rmin > 0 uses the same transform as the full 0..rmax grid.
    return cluster_pdf(positions * (1.0 + expansion), r=r, qmin=s.qmin, qmax=s.qmax, qdamp=s.qdamp, biso=biso,
                       delta2=delta2)


class _ExpandedDebye:
    """Fast G(r) of one cluster under isotropic expansion, for δ2 = δ1 = 0 (same formula as cluster_pdf).

    Why not cluster_pdf in the fit loop: a decoded cluster has all N(N-1)/2 pair distances distinct,
    so each cluster_pdf call re-evaluates sin and exp on [pairs × Q] (~25 ms for 85 atoms on a busy
    core) and a refinement needs ~80 calls. With a constant σ² the Debye sum only depends on the
    expansion through Q: Σ sin(Q(1+ε)d)/((1+ε)d) = S((1+ε)Q)/(1+ε) with S(q) = Σ sin(q d)/d, so S is
    tabulated once on a 0.02 Å⁻¹ grid and read by a cubic spline (relative error < 1e-5, checked in
    the tests against cluster_pdf); an evaluation is then a spline lookup and one [Q × r] product.
    """

    def __init__(self, positions: np.ndarray, r: np.ndarray, s: FitSettings):
        from scipy.interpolate import CubicSpline
        from scipy.spatial.distance import pdist

        from nanosolve.models.deepstruc.pdf import default_qstep, q_grid

        self.n = positions.shape[0]
        d = pdist(positions)
        d = d[d > 1e-8]
        self.q = q_grid(s.qmin, s.qmax, default_qstep(r))
        q_fine = np.arange(0.0, s.qmax * (1.0 + s.expansion_bounds[1]) + 0.1, 0.02)
        sq = np.zeros_like(q_fine)
        for start in range(0, d.size, 2000):
            dd = d[start:start + 2000]
            sq += (np.sin(np.outer(q_fine, dd)) / dd).sum(axis=1)
        self.spline = CubicSpline(q_fine, sq)
        damp = np.exp(-0.5 * (s.qdamp * r) ** 2) if s.qdamp else np.ones_like(r)
        self.kernel = np.sin(np.outer(self.q, r)) * (2.0 / np.pi * default_qstep(r)) * damp[None, :]

    def __call__(self, expansion: float, biso: float) -> np.ndarray:
        f = 1.0 + expansion
        fq = (2.0 / self.n) * self.spline(self.q * f) / f * np.exp(-biso * self.q ** 2 / (8.0 * np.pi ** 2))
        return fq @ self.kernel


class _PairDebye:
    """G(r) of free atom positions (+ scale, B_iso, δ2) with its exact Jacobian: the position-refinement model.

    Same formula as :func:`cluster_pdf` (δ1 = 0):  G = s · Kᵀ F,  F(Q) = (2/N) Σ_{i<j} sin(Q d)/d · exp(-Q² c(d)),
    c(d) = B/(8π²) · max(0, 1 − δ2/d²),  K[Q, r] = (2/π) ΔQ sin(Q r) exp(-(qdamp r)²/2).

    Why this and not autograd through ``cluster_pdf`` / ``scattering.debye``: the fit is a least-squares
    problem, so a trust-region Gauss-Newton method (``least_squares``) gets the curvature JᵀJ for free
    from the Jacobian [n_r × 3N], which L-BFGS has to build up from gradients; but reverse-mode autograd
    gives that Jacobian one row (one backward pass) at a time (hundreds of passes per step). Forward, the
    Jacobian is closed-form: ∂F(Q)/∂x_i = Σ_j ∂t(Q, d_ij)/∂d · (x_i − x_j)/d_ij, i.e. one [pairs × Q] table of
    ∂t/∂d (torch sin/cos, SLEEF-vectorised: ~2.4× numpy's) spread onto the atoms by a sparse incidence
    product. ``cluster_pdf``'s distinct-distance trick does not apply (a distorted cluster has none) and
    the histogram path of ``scattering.debye`` is approximate in d. Everything is exact to rounding.
    Residual compression: G = Kᵀ F is linear in F with K of full row rank (n_Q ≈ 280 < n_r ≈ 2,900), so with
    Kᵀ = U R (thin QR), ‖s Kᵀ F − g‖² = ‖s R F − Uᵀ g‖² + ‖g‖² − ‖Uᵀ g‖²: the fit works on n_Q residuals,
    exactly, and the Jacobian product costs n_Q² · 3N instead of n_r · n_Q · 3N.
    """

    def __init__(self, r: np.ndarray, g: np.ndarray, s: FitSettings):
        from nanosolve.models.deepstruc.pdf import default_qstep, q_grid

        qstep = default_qstep(r)
        self.q = q_grid(s.qmin, s.qmax, qstep)
        damp = np.exp(-0.5 * (s.qdamp * r) ** 2) if s.qdamp else np.ones_like(r)
        self.kt = np.sin(np.outer(r, self.q)) * (2.0 / np.pi * qstep) * damp[:, None]  # [n_r, n_Q]: G = kt @ F
        self.g = g
        self.proj, self.target = self.kt, g  # fallback: residuals on the r points themselves
        if r.size > self.q.size:
            u, rr = np.linalg.qr(self.kt)
            if np.linalg.cond(rr) < 1e10:
                self.proj, self.target = rr, u.T @ g
        self.q_t = torch.as_tensor(self.q)
        self.q2 = self.q * self.q

    def curve(self, f: np.ndarray, scale: float) -> np.ndarray:
        return scale * (self.kt @ f)

    def fq(self, x: np.ndarray, i: np.ndarray, j: np.ndarray, biso: float, delta2: float, with_jac: bool):
        """F(Q) [n_Q]; with_jac: also ∂F/∂x [3N, n_Q], ∂F/∂B and ∂F/∂δ2 [n_Q]."""
        n = x.shape[0]
        diff = x[i] - x[j]
        d = np.sqrt(np.einsum("pk,pk->p", diff, diff))
        if d.min() < 1e-6:
            raise InputError("two atoms coincide during the position refinement")
        unit = diff / d[:, None]
        f = np.zeros(self.q.size)
        df_db = np.zeros(self.q.size)
        df_dd2 = np.zeros(self.q.size)
        dfdx = np.zeros((3 * n, self.q.size)) if with_jac else None
        width = delta2 != 0.0
        c0 = biso / (8.0 * np.pi ** 2)
        e_q = np.exp(-c0 * self.q2)
        step = max(1, 2_000_000 // self.q.size)
        for a in range(0, d.size, step):
            sl = slice(a, a + step)
            dd = d[sl]
            amp = 2.0 / (n * dd)
            qd = torch.as_tensor(dd)[:, None] * self.q_t[None, :]
            sn = torch.sin(qd).numpy()
            if width:
                h = np.clip(1.0 - delta2 / (dd * dd), 0.0, None)
                e = np.exp(-(c0 * h)[:, None] * self.q2[None, :])  # [p, Q]
                t = sn * e * amp[:, None]
                f += t.sum(0)
            else:
                f += e_q * (amp @ sn)
            if not with_jac:
                continue
            cs = torch.cos(qd).numpy()
            # ∂t/∂d = (2/N) [Q cos(Qd)/d − sin(Qd)/d²] E − t Q² c'(d),  c'(d) = B/(8π²) · 2δ2/d³ (while h > 0)
            dt = (cs * self.q[None, :] - sn / dd[:, None]) * amp[:, None]
            if width:
                dt *= e
                active = h > 0
                dt -= t * self.q2[None, :] * (c0 * 2.0 * delta2 / dd ** 3 * active)[:, None]
                df_db -= (t * h[:, None]).sum(0) * self.q2 / (8.0 * np.pi ** 2)
                df_dd2 += (t * (active / (dd * dd))[:, None]).sum(0) * self.q2 * c0
            else:
                dt *= e_q[None, :]
            ii, jj, uu = i[sl], j[sl], unit[sl]
            rows = np.concatenate([3 * ii[:, None] + np.arange(3), 3 * jj[:, None] + np.arange(3)], 1).ravel()
            cols = np.repeat(np.arange(dd.size), 6)
            vals = np.concatenate([uu, -uu], 1).ravel()
            dfdx += sparse.csr_matrix((vals, (rows, cols)), shape=(3 * n, dd.size)) @ dt
        if not width:
            df_db = -f * self.q2 / (8.0 * np.pi ** 2)
        return f, dfdx, df_db, df_dd2


def _nn_distance(x: np.ndarray) -> float:
    """Median nearest-neighbour distance (Å) of a cluster."""
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(x).query(x, k=2)
    return float(np.median(dist[:, 1]))


def _refine_positions(x0: np.ndarray, r: np.ndarray, g: np.ndarray, s: FitSettings, scale: float, biso: float,
                      delta2: float, refine_delta2: bool):
    """Refine all coordinates + scale, B_iso (+ δ2) of ``x0`` (Å, already expanded) against g on r.

    Residuals (one ``least_squares`` problem, trust-region reflective, analytic dense Jacobian):
      * the data, compressed exactly to n_Q rows (:class:`_PairDebye`);
      * a contact restraint w · max(0, d_min − d_ij), d_min = contact_fraction × median nearest-neighbour
        distance of x0, w = contact_weight · ‖g‖ / d_nn, on the pairs that start within d_min + 0.5 d_nn
        (a Verlet-style list: if after the fit any other pair is closer than d_min it is added and the
        fit continues, at most twice);
      * with ``bond_weight`` > 0, a bond-length restraint w_b · (d_ij − d0_ij) on the pairs closer than 1.2 d_nn
        at the start (w_b = bond_weight · ‖g‖ / (d_nn √n_bonds): all bonds off by 0.1 d_nn cost as much as
        Rw 0.1), so that the refinement keeps the candidate's bonding and cannot dissolve a wrong model;
      * with ``max_shift``, box bounds |x − x0| <= max_shift on every coordinate;
      * gauge rows that pin the centre of mass (translation) and the orientation (Eckart condition
        Σ (x0_i − c) × (x_i − x0_i) = 0) to the start: neither changes G(r), so the optimum is the same
        and the normal equations are not singular. The centre is re-imposed exactly at the end.

    Returns (positions [N, 3], scale, biso, delta2, g_calc on r, Jacobian evaluations).
    """
    n = x0.shape[0]
    model = _PairDebye(r, g, s)
    i, j = np.triu_indices(n, 1)
    d0 = np.linalg.norm(x0[i] - x0[j], axis=1)
    d_nn = _nn_distance(x0)
    d_min = s.contact_fraction * d_nn
    w = s.contact_weight * float(np.linalg.norm(g)) / d_nn
    centre = x0.mean(0)
    arm = x0 - centre
    rg = float(np.sqrt((arm * arm).sum(1).mean())) or 1.0
    w_gauge = float(np.linalg.norm(g)) / (np.sqrt(n) * d_nn)
    n_glob = 3 if refine_delta2 else 2
    n_x = 3 * n
    box = np.inf if s.max_shift is None else float(s.max_shift)
    lower = np.r_[x0.ravel() - box, 1e-12, 0.01, 0.0][: n_x + n_glob]
    upper = np.r_[x0.ravel() + box, np.inf, 5.0, 10.0][: n_x + n_glob]
    bi, bj = (i, j) if s.bond_weight <= 0 else (i[d0 < 1.2 * d_nn], j[d0 < 1.2 * d_nn])
    b0 = d0[d0 < 1.2 * d_nn] if s.bond_weight > 0 else d0[:0]
    if s.bond_weight <= 0:
        bi, bj = bi[:0], bj[:0]
    w_bond = s.bond_weight * float(np.linalg.norm(g)) / (d_nn * np.sqrt(max(1, bi.size)))
    p = np.r_[x0.ravel(), scale, np.clip(biso, 0.011, 4.999), delta2][: n_x + n_glob]
    if refine_delta2:
        p[-1] = np.clip(p[-1], 1e-9, 9.999)
    listed = np.flatnonzero(d0 < d_min + 0.5 * d_nn)
    nfev = 0

    def unpack(v):
        return v[:n_x].reshape(n, 3), v[n_x], v[n_x + 1], (v[n_x + 2] if refine_delta2 else delta2)

    def gauge(x):
        u = x - x0
        return w_gauge * np.r_[u.sum(0), np.cross(arm, u).sum(0) / rg]

    for _ in range(3):
        pi, pj = i[listed], j[listed]
        cache = {}

        def evaluate(v, with_jac):
            key = (v.tobytes(), with_jac)
            if key not in cache:
                cache.clear()
                x, sc, b, d2 = unpack(v)
                cache[key] = (x, sc, model.fq(x, i, j, b, d2, with_jac))
            return cache[key]

        def residual(v):
            x, sc, (f, _, _, _) = evaluate(v, False)
            dl = np.linalg.norm(x[pi] - x[pj], axis=1)
            db = np.linalg.norm(x[bi] - x[bj], axis=1)
            return np.r_[model.proj @ (sc * f) - model.target, w * np.clip(d_min - dl, 0.0, None), gauge(x),
                         w_bond * (db - b0)]

        def jacobian(v):
            x, sc, (f, dfdx, df_db, df_dd2) = evaluate(v, True)
            cols = [sc * (model.proj @ dfdx.T), (model.proj @ f)[:, None], sc * (model.proj @ df_db)[:, None]]
            if refine_delta2:
                cols.append(sc * (model.proj @ df_dd2)[:, None])
            data = np.hstack(cols)
            diff = x[pi] - x[pj]
            dl = np.linalg.norm(diff, axis=1)
            on = np.flatnonzero(dl < d_min)
            uu = diff[on] / dl[on, None]
            rows = np.repeat(on, 6)
            cl = np.concatenate([3 * pi[on, None] + np.arange(3), 3 * pj[on, None] + np.arange(3)], 1).ravel()
            vals = np.concatenate([-w * uu, w * uu], 1).ravel()
            contact = sparse.csr_matrix((vals, (rows, cl)), shape=(listed.size, n_x + n_glob))
            # gauge: translation Σ u_i and rotation Σ arm_i × u_i (linear in x)
            gt = np.zeros((6, n_x + n_glob))
            for k in range(3):
                gt[k, k:n_x:3] = w_gauge
            ex = np.zeros((3, n, 3))  # ∂(arm × u)_k / ∂u_l = ε_{k m l} arm_m
            ex[0, :, 1], ex[0, :, 2] = -arm[:, 2], arm[:, 1]
            ex[1, :, 0], ex[1, :, 2] = arm[:, 2], -arm[:, 0]
            ex[2, :, 0], ex[2, :, 1] = -arm[:, 1], arm[:, 0]
            gt[3:, :n_x] = ex.reshape(3, n_x) * (w_gauge / rg)
            bd = x[bi] - x[bj]
            ub = bd / np.linalg.norm(bd, axis=1)[:, None] if bi.size else bd
            bond = np.zeros((bi.size, n_x + n_glob))
            rows_b = np.arange(bi.size)
            for k in range(3):
                bond[rows_b, 3 * bi + k] = w_bond * ub[:, k]
                bond[rows_b, 3 * bj + k] = -w_bond * ub[:, k]
            return np.vstack([data, contact.toarray(), gt, bond])

        # dense Jacobian + exact (SVD) trust-region steps: for <= ~100 atoms the SVD of the ~(n_Q + contacts) × 3N
        # Jacobian costs less than the [pairs × Q] tables; measured on one core it is as fast as LSMR on a sparse
        # Jacobian for 93 atoms (37 ms per step) and faster for 13 atoms (0.40 s vs 0.64 s for 200 steps, same RMSD).
        sol = least_squares(residual, p, jac=jacobian, bounds=(lower, upper), method="trf", tr_solver="exact",
                            x_scale="jac", max_nfev=int(s.position_max_nfev), ftol=1e-12, xtol=1e-12, gtol=1e-12)
        nfev += int(sol.njev or 0) + int(sol.nfev)
        p = sol.x
        x = unpack(p)[0]
        close = np.flatnonzero(np.linalg.norm(x[i] - x[j], axis=1) < d_min)
        extra = np.setdiff1d(close, listed)
        if extra.size == 0:
            break
        listed = np.union1d(listed, extra)
    x, sc, b, d2 = unpack(p)
    f = model.fq(x, i, j, b, d2, False)[0]
    x = x - x.mean(0) + centre  # translation leaves G(r) unchanged: restore the centre exactly
    return x, float(sc), float(b), float(d2), model.curve(f, sc), nfev


def refine(particle: Particle, r, g_obs, settings: FitSettings | None = None) -> RefineResult:
    """Fit scale, expansion, Biso (and δ2 if ``settings.refine_delta2``) of one cluster to G(r).

    With ``settings.refine_positions`` the global fit is followed by a refinement of every atom position
    (with scale, Biso, δ2; see :func:`_refine_positions`); the result keeps the global fit if that is not
    worse. ``expansion`` is then the global fit's, and the returned positions are the refined ones
    (any further expansion is in them); ``rw_global`` is the Rw before the position step.

    Args:
        particle: candidate (Å), one element: Particle, ase.Atoms, pymatgen Molecule or an xyz path.
        r, g_obs: [n] data (Å, Å⁻²), uniform r step.
        settings: :class:`FitSettings`.
    """
    from nanosolve.structures.coerce import as_structure

    particle = as_structure(particle)
    if not isinstance(particle, Particle):
        raise InputError("PDF refinement of a cluster needs a finite particle, got a periodic crystal")
    t_start = time.perf_counter()
    s = settings or FitSettings()
    r, g = _fit_points(r, g_obs, s)
    x = np.asarray(particle.positions, float)
    if x.shape[0] < 2:
        raise InputError("a candidate needs at least two atoms to have a PDF")
    lo, hi = s.expansion_bounds
    n_eval = 0
    if s.refine_delta2 or s.delta2_0:
        def calc(eps, biso, d2):
            return _calc(x, r, s, eps, biso, d2)
    else:
        fast = _ExpandedDebye(x, r, s)

        def calc(eps, biso, d2):
            return fast(eps, biso)

    # 1) scan ε with the linear-optimal scale: the least-squares landscape in ε is multi-modal
    best = (np.inf, 0.0, 1.0)
    for eps in np.linspace(lo, hi, int(s.expansion_scan)):
        gc = calc(eps, s.biso0, s.delta2_0)
        n_eval += 1
        den = float(gc @ gc)
        if den == 0:
            continue
        sc = float(gc @ g) / den
        res = float(np.sum((g - sc * gc) ** 2))
        if res < best[0]:
            best = (res, eps, sc)
    _, eps0, s0 = best

    # 2) local least squares over (ε, B[, δ2]); the scale is eliminated in closed form at every
    # evaluation (variable projection: s* = <Gc, Gobs> / <Gc, Gc>), which halves the evaluations
    # of a 2-point Jacobian and removes the scale-ADP correlation from the search.
    names = ["expansion", "biso"] + (["delta2"] if s.refine_delta2 else [])
    p0 = [eps0, s.biso0] + ([max(s.delta2_0, 0.1)] if s.refine_delta2 else [])
    lower = [lo, 0.01] + ([0.0] if s.refine_delta2 else [])
    upper = [hi, 5.0] + ([10.0] if s.refine_delta2 else [])
    p0 = np.clip(p0, np.array(lower) + 1e-9, np.array(upper) - 1e-9)

    def model(p):
        d2 = p[2] if s.refine_delta2 else s.delta2_0
        gc = calc(p[0], p[1], d2)
        den = float(gc @ gc)
        return (max(float(gc @ g) / den, 1e-12) if den > 0 else 1.0), gc

    def residual(p):
        sc, gc = model(p)
        return sc * gc - g

    sol = least_squares(residual, p0, bounds=(lower, upper), x_scale="jac", diff_step=1e-4, max_nfev=s.max_nfev,
                        ftol=1e-8, xtol=1e-8)
    n_eval += int(sol.nfev) * (len(p0) + 1)
    p = dict(zip(names, sol.x))
    d2 = float(p.get("delta2", s.delta2_0))
    sc, gc0 = model(sol.x)
    p["scale"] = sc
    gc = sc * gc0
    x_fit = x * (1.0 + p["expansion"])
    rw_fit, rw_global, shift, global_fit = rw(g, gc), None, None, None
    if s.refine_positions:
        # 3) every atom position + scale, B_iso (+ δ2), started from the global fit
        x_pos, sc, b, d2_pos, gc_pos, n_pos = _refine_positions(x_fit, r, g, s, p["scale"], p["biso"], d2,
                                                            s.refine_delta2)
        n_eval += n_pos
        rw_pos = rw(g, gc_pos)
        rw_global = rw_fit
        global_fit = {"scale": float(p["scale"]), "expansion": float(p["expansion"]), "biso": float(p["biso"]),
                      "delta2": d2}
        if rw_pos <= rw_fit:  # never worse than the global fit (the restraint could, in principle, cost Rw)
            shift = float(np.sqrt(np.mean(np.sum((x_pos - x_fit) ** 2, axis=1))))
            x_fit, gc, rw_fit = x_pos, gc_pos, rw_pos
            p.update(scale=sc, biso=b)
            d2 = d2_pos
        else:
            shift = 0.0
    refined = Particle(x_fit, list(particle.species), name=particle.name, properties=dict(particle.properties))
    return RefineResult(refined, float(p["scale"]), float(p["expansion"]), float(p["biso"]), d2, rw_fit,
                        r, g, gc, n_eval=n_eval, rw_global=rw_global, position_shift=shift, global_fit=global_fit,
                        seconds=time.perf_counter() - t_start)


def rank(r, g_obs, candidates: list[Particle], settings: FitSettings | None = None) -> list[RefineResult]:
    """Refine every candidate against the data and sort best-first by Rw.

    Only the data (r, G) and the candidates enter: the ranking cannot see a reference structure.
    Each result's ``candidate_index`` is the candidate's position in ``candidates``.
    """
    if not candidates:
        raise InputError("no candidates to rank")
    out = []
    for i, cand in enumerate(candidates):
        res = refine(cand, r, g_obs, settings)
        res.candidate_index = i
        out.append(res)
    return sorted(out, key=lambda res: res.rw)
