"""A library of ideal metal clusters as PDF candidates, fitted with atom positions fixed.

Library (:func:`load_library`): icosahedra, decahedra (Ino, Marks), octahedra, truncated octahedra,
cuboctahedra, and spherical and faceted cuts of fcc/hcp/bcc/sc from 13 atoms to about 4,000 atoms
(> 5 nm for a 2.9 Å nearest-neighbour distance), built by :mod:`nanosolve.structures.builders.clusters`
(``ase.cluster``), one cluster per (motif, atom count).

Every cluster is stored once as a pair-distance histogram in units of its lattice's ideal nearest-neighbour
distance (nn = 1): bins of 0.005 with the pair count, the mean and the variance of the distances in each bin.
Because the distances are in nn units, an isotropic expansion only rescales them, and the same histogram
serves any metal and lattice constant. The histogram is written to ``$NANOSOLVE_CACHE/cluster_library``
(default ``~/.cache/nanosolve/cluster_library``) as one ``.npz`` per cluster (numpy arrays, no pickle),
keyed by motif and builder parameters, with a reduced Debye sum table (below).

Model (the same formula as :func:`nanosolve.models.deepstruc.pdf.cluster_pdf`, there over every pair):

    F(Q) = (2/N) Σ_b w_b sin(Q λ d_b) / (λ d_b) · exp(-Q² [σ²(λ d_b) + λ² v_b] / 2)
    σ²(D) = B/(4π²) · max(0, 1 − δ2/D²) + Qbroad² D²
    G(r) = s · (2/π) Σ_Q F(Q) sin(Q r) ΔQ · exp(-(Qdamp r)²/2)

on the Q grid ``arange(Qmin, Qmax, π/(r_end + 2Δr))`` of the fitted r points, with λ = nn(element) · (1 + ε)
Å per nn unit, w_b, d_b, v_b the bin count, mean and variance (the variance term is the second-order
correction for the spread of distances in a bin; the relative error against the pair-by-pair sum is
< 1e-3, checked in the tests). The Qmin cut-off (which removes the small-angle signal and so gives the
finite-size baseline), the Qmax termination ripples and the Qdamp envelope enter as in a measured PDF.

Two fits, both with positions fixed:

* screen (every library cluster): δ2 = Qbroad = 0, so F(Q) = exp(−B Q²/8π²) · S(Qλ)/λ with
  S(q) = (2/N) Σ_b w_b sin(q d_b)/d_b · exp(−q² v_b / 2) tabulated once per cluster (cached) and read by
  a cubic spline; an ε scan (scale by linear least squares at each point) then a local least-squares fit of
  ε, B (and Qdamp when the data do not state it) on an r grid of half the Nyquist step (≤ 0.06 Å).
* full (the best clusters of every motif): scale, ε, B, δ2 (and Qdamp / Qbroad when the data do not
  state them) by ``least_squares`` on the data's own r points with the bin sum above.

Parameters that end within 0.1 % of the bound range of a bound are named in ``at_bound``.
Rw = sqrt(Σ (Gobs − Gcalc)² / Σ Gobs²) over the fitted r range (unit weights).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from nanosolve._io import atomic_path, atomic_write_text
from nanosolve.errors import InputError
from nanosolve.models.deepstruc.pdf import default_qstep, q_grid
from nanosolve.structures.builders.clusters import (
    LIBRARY_MOTIFS,
    MOTIF_FAMILY,
    build_library_cluster,
    lattice_of,
    library_parameters,
    motif_of,
)
from nanosolve.structures.elements import metallic_radius

__all__ = ["CACHE_VERSION", "BIN", "cache_dir", "ClusterEntry", "PairHistogram", "pair_histogram", "entry_from_positions",
           "load_library", "PdfData", "ClusterFit", "screen", "fit_full", "model_curve", "A_OVER_NN",
           "mean_coordination", "compactness"]

CACHE_VERSION = 1
BIN = 0.005  # histogram bin, nn units (0.014 Å for nn = 2.88 Å)
FULL_BIN = 0.01  # bin of the full fit (re-binned from BIN; relative G error < 1e-3, see tests)
QP_STEP = 0.025  # step of the reduced Debye table S(q'), q' = Q·λ (dimensionless)
QP_MAX = 125.0  # covers Qmax 35 Å⁻¹ at λ = 3.5 Å (larger: checked in screen)
_REFERENCE = "Cu"
A_OVER_NN = {"fcc": math.sqrt(2.0), "bcc": 2.0 / math.sqrt(3.0), "sc": 1.0, "hcp": 1.0}  # lattice constant / nn


def cache_dir() -> Path:
    """``$NANOSOLVE_CACHE/cluster_library`` or ``~/.cache/nanosolve/cluster_library``."""
    root = os.environ.get("NANOSOLVE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "nanosolve"
    return base / "cluster_library"


@dataclass
class PairHistogram:
    """Pair distances of one cluster in nn units: bins with count ``w``, mean ``d`` and variance ``var``."""

    d: np.ndarray
    w: np.ndarray
    var: np.ndarray
    n_atoms: int

    def rebin(self, width: float) -> PairHistogram:
        """Coarser bins (weighted mean; variance = within-bin variance + spread of the merged means)."""
        idx = np.floor(self.d / width).astype(np.int64)
        u, inv = np.unique(idx, return_inverse=True)
        w = np.bincount(inv, self.w)
        m1 = np.bincount(inv, self.w * self.d) / w
        m2 = np.bincount(inv, self.w * (self.var + self.d ** 2)) / w
        return PairHistogram(m1, w, np.clip(m2 - m1 ** 2, 0.0, None), self.n_atoms)


def pair_histogram(x: np.ndarray, unit: float = 1.0, width: float = BIN) -> PairHistogram:
    """Histogram of the pair distances of positions ``x`` [N, 3] divided by ``unit``."""
    x = np.asarray(x, float) / float(unit)
    if x.shape[0] < 2:
        raise InputError("a cluster needs at least two atoms to have a PDF")
    n = x.shape[0]
    tree_d = float(np.linalg.norm(x.max(0) - x.min(0)))
    nb = int(tree_d / width) + 2
    w, s1, s2 = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    rows = max(1, 2_000_000 // n)  # pairs (i < j) in blocks of rows: bounded memory for 4,000+ atoms
    for a in range(0, n - 1, rows):
        b = min(n - 1, a + rows)
        diff = x[a:b, None, :] - x[None, :, :]
        d = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        d = d[np.arange(b - a)[:, None] < (np.arange(n)[None, :] - a)]  # keep j > i
        if d.size and d.min() <= 1e-8:
            raise InputError("cluster has two atoms at the same position")
        idx = (d / width).astype(np.int64)  # bincount, not unique: no sort of millions of distances
        w += np.bincount(idx, minlength=nb)[:nb]
        s1 += np.bincount(idx, d, minlength=nb)[:nb]
        s2 += np.bincount(idx, d * d, minlength=nb)[:nb]
    keep = w > 0
    w, m1 = w[keep], s1[keep] / w[keep]
    m2 = s2[keep] / w
    return PairHistogram(m1, w, np.clip(m2 - m1 ** 2, 0.0, None), int(n))


def _s_table(h: PairHistogram) -> np.ndarray:
    """S(q') = (2/N) Σ_b w_b sin(q' d_b)/d_b exp(-q'² v_b/2) on ``arange(0, QP_MAX, QP_STEP)``."""
    qp = torch.arange(0.0, QP_MAX, QP_STEP, dtype=torch.float64)
    d = torch.as_tensor(h.d)
    amp = torch.as_tensor(2.0 * h.w / (h.n_atoms * h.d))
    spread = torch.as_tensor(h.var > 1e-14)  # ideal lattices: most bins hold one exact distance
    out = torch.zeros_like(qp)
    for sel, damped in ((~spread, False), (spread, True)):
        dd, aa = d[sel], amp[sel]
        hv = torch.as_tensor(-0.5 * h.var)[sel]
        step = max(1, 4_000_000 // qp.numel())
        for a in range(0, dd.numel(), step):
            sl = slice(a, a + step)
            t = torch.sin(qp[:, None] * dd[None, sl])
            if damped:
                t.mul_(torch.exp(hv[None, sl] * (qp * qp)[:, None]))
            out += t @ aa[sl]
    return out.numpy()


def mean_coordination(x: np.ndarray, cutoff: float) -> float:
    """Mean number of neighbours within ``cutoff`` (same units as x)."""
    tree = cKDTree(x)
    return float(np.mean([len(v) - 1 for v in tree.query_ball_point(x, cutoff)]))


def compactness(x: np.ndarray, nn: float) -> float:
    """Radius of gyration of a sphere of N close-packed atoms (N nn³/√2 volume) / the cluster's (1 = compact
    sphere, < 1 elongated or loose)."""
    n = x.shape[0]
    rg = float(np.sqrt(np.mean(np.sum((x - x.mean(0)) ** 2, axis=1))))
    radius = (3.0 * n * nn ** 3 / (4.0 * math.pi * math.sqrt(2.0))) ** (1.0 / 3.0)
    return float(math.sqrt(0.6) * radius / rg) if rg > 0 else 0.0


@dataclass
class ClusterEntry:
    """One candidate as the fits see it (lengths in nn units of its lattice unless stated)."""

    key: str
    source: str  # "library" | "cvae"
    motif: str
    family: str
    lattice: str  # lattice whose constant scales it (fcc/bcc/sc/hcp)
    shape: str
    parameters: dict
    n_atoms: int
    diameter: float  # largest pair distance (nn units)
    mean_coordination: float
    compactness: float
    hist: PairHistogram = field(repr=False)
    s_table: np.ndarray | None = field(default=None, repr=False)
    positions: np.ndarray | None = field(default=None, repr=False)  # nn units; None: rebuilt on demand

    def build_positions(self) -> np.ndarray:
        """[N, 3] positions in nn units (rebuilt from the builder for library clusters)."""
        if self.positions is None:
            p = build_library_cluster(self.shape, self.parameters, _REFERENCE)
            self.positions = p.positions / (2.0 * metallic_radius(_REFERENCE))
        return self.positions


def entry_from_positions(x: np.ndarray, unit: float, key: str, source: str = "cvae", motif: str = "unknown",
                         lattice: str = "fcc", shape: str = "", parameters: dict | None = None,
                         with_table: bool = True) -> ClusterEntry:
    """A :class:`ClusterEntry` of positions ``x`` (Å) with ``unit`` Å = 1 nn unit."""
    xn = np.asarray(x, float) / float(unit)
    h = pair_histogram(xn)
    return ClusterEntry(key, source, motif, MOTIF_FAMILY.get(motif, "unknown"), lattice, shape, parameters or {},
                        h.n_atoms, float(h.d.max()), mean_coordination(xn, 1.12), compactness(xn, 1.0), h,
                        _s_table(h) if with_table else None, xn)


def _param_key(shape: str, parameters: dict) -> str:
    text = json.dumps({"shape": shape, "parameters": parameters}, sort_keys=True)
    return f"{motif_of(shape, parameters)}-" + hashlib.sha1(text.encode()).hexdigest()[:12]


def _load_or_build(shape: str, parameters: dict, folder: Path) -> ClusterEntry:
    key = _param_key(shape, parameters)
    path = folder / f"{key}.npz"
    motif = motif_of(shape, parameters)
    lat = lattice_of(shape, parameters)
    if path.is_file():
        try:
            z = np.load(path, allow_pickle=False)
            if int(z["version"]) == CACHE_VERSION:
                h = PairHistogram(z["d"], z["w"], z["var"], int(z["n_atoms"]))
                return ClusterEntry(key, "library", motif, MOTIF_FAMILY[motif], lat, shape, parameters, h.n_atoms,
                                    float(z["diameter"]), float(z["mean_coordination"]), float(z["compactness"]), h,
                                    z["s_table"])
        except (OSError, KeyError, ValueError):  # unreadable / older file: rebuilt below
            pass
    p = build_library_cluster(shape, parameters, _REFERENCE)
    entry = entry_from_positions(p.positions, 2.0 * metallic_radius(_REFERENCE), key, "library", motif, lat, shape,
                                 parameters)
    with atomic_path(path) as tmp:  # another process may build the same cluster: each writes its own file
        np.savez(tmp, version=CACHE_VERSION, d=entry.hist.d, w=entry.hist.w, var=entry.hist.var,
                 n_atoms=entry.n_atoms, diameter=entry.diameter, mean_coordination=entry.mean_coordination,
                 compactness=entry.compactness, s_table=entry.s_table)
    entry.positions = None  # keep memory small; rebuilt on demand
    return entry


def _growth_family(shape: str, params: dict):
    """Key of the parameter sets that differ only in the size parameter, which :func:`library_parameters`
    lists in increasing order (decahedra: p for each (q, r); faceted cuts: k for each (i, j) offset)."""
    if shape == "decahedron":
        return ("decahedron", params["q"], params["r"])
    if "layers" in params:
        lay = params["layers"]
        return (shape, lay[0] - lay[2], lay[1] - lay[2])
    return None


def load_library(motifs=LIBRARY_MOTIFS, min_atoms: int = 13, max_atoms: int = 4000,
                 folder: str | os.PathLike | None = None, progress=None) -> list[ClusterEntry]:
    """The cluster library: one entry per (motif, atom count) with ``min_atoms <= N <= max_atoms``.

    The first call builds and caches every cluster (~1-2 min for the default library); later calls read
    the cache (an index file per library setting lists the entries). ``progress(i, n)`` is called while building.
    """
    if int(min_atoms) < 2 or int(max_atoms) < int(min_atoms):
        raise InputError(f"need 2 <= min_atoms <= max_atoms, got {min_atoms}, {max_atoms}")
    folder = Path(folder) if folder is not None else cache_dir()
    motifs = tuple(sorted(set(motifs), key=LIBRARY_MOTIFS.index)) if motifs else LIBRARY_MOTIFS
    spec = json.dumps({"motifs": motifs, "min": int(min_atoms), "max": int(max_atoms), "v": CACHE_VERSION},
                      sort_keys=True)
    index = folder / f"index-{hashlib.sha1(spec.encode()).hexdigest()[:12]}.json"
    todo = library_parameters(motifs, int(min_atoms), int(max_atoms))
    if index.is_file():
        try:
            keep = json.loads(index.read_text())["entries"]
            todo = [(e["shape"], e["parameters"]) for e in keep]
        except (OSError, ValueError, KeyError):
            pass
    entries: list[ClusterEntry] = []
    seen: set = set()
    too_big: set = set()  # families whose atom count grows with the last parameter: skip once past max_atoms
    for i, (shape, params) in enumerate(todo):
        if progress is not None:
            progress(i, len(todo))
        fam = _growth_family(shape, params)
        if fam is not None and fam in too_big:
            continue
        try:
            e = _load_or_build(shape, params, folder)
        except InputError:  # a builder setting that gives fewer than two atoms
            continue
        if e.n_atoms > int(max_atoms) and fam is not None:
            too_big.add(fam)
        if not int(min_atoms) <= e.n_atoms <= int(max_atoms) or (e.motif, e.n_atoms) in seen:
            continue
        seen.add((e.motif, e.n_atoms))
        entries.append(e)
    if not index.is_file():
        atomic_write_text(index, json.dumps({"spec": json.loads(spec), "entries": [
            {"shape": e.shape, "parameters": e.parameters, "key": e.key} for e in entries]}) + "\n")
    if not entries:
        raise InputError(f"no library cluster has {min_atoms}-{max_atoms} atoms for motifs {list(motifs)}")
    return entries


# --------------------------------------------------------------------------------------------
# data and fits


@dataclass
class PdfData:
    """The fitted data: r points in the fit range (Å), G (Å⁻²), the Q grid and what the data state."""

    r: np.ndarray
    g: np.ndarray
    qmin: float
    qmax: float
    qdamp: float | None  # None: fitted
    qbroad: float | None  # None: fitted (full fit only)
    q: np.ndarray = field(init=False, repr=False)
    qstep: float = field(init=False)
    r_s: np.ndarray = field(init=False, repr=False)
    g_s: np.ndarray = field(init=False, repr=False)
    k_full: np.ndarray = field(init=False, repr=False)
    k_s: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        r, g = np.asarray(self.r, float), np.asarray(self.g, float)
        if r.size < 10 or r.size != g.size:
            raise InputError("the PDF needs at least 10 (r, G) points in the fit range")
        if not np.any(g):
            raise InputError("the observed PDF is zero on the fit range")
        self.r, self.g = r, g
        self.qstep = default_qstep(r)
        self.q = q_grid(self.qmin, self.qmax, self.qstep)
        if self.q.size < 2:
            raise InputError(f"Q range {self.qmin}-{self.qmax} Å⁻¹ is empty")
        # the screen reads G on a grid of ~1/2 the Nyquist step π/Qmax (>= 0.06 Å for Qmax <= 26)
        stride = max(1, int(round(min(0.06, 0.5 * math.pi / self.qmax) / max(float(r[1] - r[0]), 1e-9))))
        self.r_s, self.g_s = r[::stride], g[::stride]
        c = 2.0 / math.pi * self.qstep
        self.k_full = np.sin(np.outer(self.q, r)) * c
        self.k_s = np.sin(np.outer(self.q, self.r_s)) * c


def _vp(m: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear-optimal positive scale of model rows m [..., n] against g [n] and Rw of each row."""
    den = np.einsum("...i,...i->...", m, m)
    sc = np.where(den > 0, np.einsum("...i,i->...", m, g) / np.where(den > 0, den, 1.0), 0.0)
    sc = np.clip(sc, 1e-12, None)
    res = g - sc[..., None] * m
    return sc, np.sqrt(np.einsum("...i,...i->...", res, res) / float(g @ g))


@dataclass
class ClusterFit:
    """Fit of one candidate with positions fixed."""

    entry: ClusterEntry
    scale: float
    expansion: float
    biso: float
    delta2: float
    qdamp: float
    qbroad: float
    rw: float
    stage: str  # "screen" | "full"
    nn: float  # fitted nearest-neighbour unit λ (Å)
    at_bound: list = field(default_factory=list)
    rw_screen: float | None = None
    g_calc: np.ndarray | None = field(default=None, repr=False)  # on PdfData.r (full fit)

    @property
    def lattice_a(self) -> float:
        """Lattice constant (Å) of the cluster's lattice at the fitted expansion."""
        return float(A_OVER_NN.get(self.entry.lattice, math.sqrt(2.0)) * self.nn)

    @property
    def diameter_nm(self) -> float:
        return float(self.entry.diameter * self.nn / 10.0)


def _bounds_hit(names, values, lower, upper, tol=1e-3) -> list[str]:
    out = []
    for n, v, lo, hi in zip(names, values, lower, upper):
        span = hi - lo if np.isfinite(hi - lo) else 1.0
        if v <= lo + tol * span or v >= hi - tol * span:
            out.append(n)
    return out


BISO_BOUNDS = (0.05, 3.0)
DELTA2_BOUNDS = (0.0, 5.0)
QDAMP_BOUNDS = (0.0, 0.1)
QBROAD_BOUNDS = (0.0, 0.05)


def screen(entry: ClusterEntry, data: PdfData, nn0: float, expansion_bounds=(-0.06, 0.06), scan_step: float = 0.003,
           biso0: float = 0.5, qdamp0: float = 0.03) -> ClusterFit:
    """Fast fit of scale, ε, B (and Qdamp when ``data.qdamp`` is None) with δ2 = Qbroad = 0 (module docstring)."""
    spline = CubicSpline(np.arange(entry.s_table.size) * QP_STEP, entry.s_table)
    q, q2 = data.q, data.q ** 2
    lo, hi = expansion_bounds
    fit_qd = data.qdamp is None
    qd_fixed = 0.0 if fit_qd else float(data.qdamp)
    r2 = data.r_s ** 2

    def curves(eps, biso, qd):
        eps = np.atleast_1d(eps)
        lam = nn0 * (1.0 + eps)
        fq = spline(np.outer(lam, q)) / lam[:, None] * np.exp(-biso * q2 / (8 * math.pi ** 2))[None, :]
        m = fq @ data.k_s
        if qd:
            m *= np.exp(-0.5 * qd * qd * r2)[None, :]
        return m

    grid = np.arange(lo, hi + 1e-12, scan_step)
    _, rws = _vp(curves(grid, biso0, qdamp0 if fit_qd else qd_fixed), data.g_s)
    eps0 = float(grid[int(np.argmin(rws))])
    names = ["expansion", "biso"] + (["qdamp"] if fit_qd else [])
    lower = [lo, BISO_BOUNDS[0]] + ([QDAMP_BOUNDS[0]] if fit_qd else [])
    upper = [hi, BISO_BOUNDS[1]] + ([QDAMP_BOUNDS[1]] if fit_qd else [])
    p0 = np.clip([eps0, biso0] + ([qdamp0] if fit_qd else []), np.array(lower) + 1e-9, np.array(upper) - 1e-9)

    def residual(p):
        m = curves(p[0], p[1], p[2] if fit_qd else qd_fixed)[0]
        sc, _ = _vp(m, data.g_s)
        return sc * m - data.g_s

    # no relative diff_step: scipy takes it relative to |x|, so a parameter that starts at 0 (the ε scan's
    # grid holds 0; Qdamp at its bound) would get a zero-width step and never move
    sol = least_squares(residual, p0, bounds=(lower, upper), x_scale=[0.01, 0.1] + ([0.01] if fit_qd else []),
                        max_nfev=12, ftol=1e-4, xtol=1e-5)  # a ranking fit: 1e-4 in Rw² is enough
    p = sol.x
    m = curves(p[0], p[1], p[2] if fit_qd else qd_fixed)[0]
    sc, rw = _vp(m, data.g_s)
    return ClusterFit(entry, float(sc), float(p[0]), float(p[1]), 0.0, float(p[2]) if fit_qd else qd_fixed, 0.0,
                      float(rw), "screen", float(nn0 * (1 + p[0])), _bounds_hit(names, p, lower, upper),
                      rw_screen=float(rw))


def model_curve(hist: PairHistogram, data: PdfData, lam: float, biso: float, delta2: float = 0.0, qdamp: float = 0.0,
                qbroad: float = 0.0, r: np.ndarray | None = None) -> np.ndarray:
    """Unscaled G(r) (Å⁻²) of a histogram at λ Å per nn unit on ``data``'s Q grid (module docstring formula),
    on ``data.r`` (or ``r``, which must share data's Q grid)."""
    q = torch.as_tensor(data.q)
    q2 = q * q
    dd = torch.as_tensor(hist.d * lam)
    amp = torch.as_tensor(2.0 * hist.w / hist.n_atoms) / dd
    sig2 = (biso / (4 * math.pi ** 2)) * torch.clamp(1.0 - delta2 / (dd * dd), min=0.0) \
        + (qbroad * dd) ** 2 + torch.as_tensor(hist.var) * lam * lam
    fq = torch.zeros_like(q)
    step = max(1, 2_000_000 // q.numel())
    for a in range(0, dd.numel(), step):
        sl = slice(a, a + step)
        t = torch.sin(dd[sl, None] * q[None, :])
        t.mul_(torch.exp(-0.5 * sig2[sl, None] * q2[None, :])).mul_(amp[sl, None])
        fq += t.sum(0)
    if r is None:
        g = fq.numpy() @ data.k_full
        rr = data.r
    else:
        rr = np.asarray(r, float)
        g = fq.numpy() @ (np.sin(np.outer(data.q, rr)) * (2.0 / math.pi * data.qstep))
    if qdamp:
        g = g * np.exp(-0.5 * (qdamp * rr) ** 2)
    return g


def fit_full(start: ClusterFit, data: PdfData, nn0: float, expansion_bounds=(-0.06, 0.06),
             fit_delta2: bool = True, max_nfev: int = 40) -> ClusterFit:
    """Scale, ε, B, δ2 (and Qdamp / Qbroad when the data do not state them) on the data's own r points,
    started from a screen fit."""
    h = start.entry.hist.rebin(FULL_BIN)
    fit_qd, fit_qb = data.qdamp is None, data.qbroad is None
    lo, hi = expansion_bounds
    names = ["expansion", "biso"] + (["delta2"] if fit_delta2 else []) + (["qdamp"] if fit_qd else []) \
        + (["qbroad"] if fit_qb else [])
    lower = [lo, BISO_BOUNDS[0]] + ([DELTA2_BOUNDS[0]] if fit_delta2 else []) + ([QDAMP_BOUNDS[0]] if fit_qd else []) \
        + ([QBROAD_BOUNDS[0]] if fit_qb else [])
    upper = [hi, BISO_BOUNDS[1]] + ([DELTA2_BOUNDS[1]] if fit_delta2 else []) + ([QDAMP_BOUNDS[1]] if fit_qd else []) \
        + ([QBROAD_BOUNDS[1]] if fit_qb else [])
    p0 = [start.expansion, start.biso] + ([1.0] if fit_delta2 else []) + ([start.qdamp] if fit_qd else []) \
        + ([0.005] if fit_qb else [])
    p0 = np.clip(p0, np.array(lower) + 1e-6 * (np.array(upper) - np.array(lower)),
                 np.array(upper) - 1e-6 * (np.array(upper) - np.array(lower)))
    scales = {"expansion": 0.01, "biso": 0.1, "delta2": 0.5, "qdamp": 0.01, "qbroad": 0.005}

    def unpack(p):
        v = dict(zip(names, p))
        return (v["expansion"], v["biso"], v.get("delta2", 0.0), v.get("qdamp", data.qdamp or 0.0),
                v.get("qbroad", data.qbroad or 0.0))

    def curve(p):
        eps, b, d2, qd, qb = unpack(p)
        return model_curve(h, data, nn0 * (1 + eps), b, d2, qd, qb)

    def residual(p):
        m = curve(p)
        sc, _ = _vp(m, data.g)
        return sc * m - data.g

    sol = least_squares(residual, p0, bounds=(lower, upper), x_scale=[scales[n] for n in names],
                        max_nfev=int(max_nfev), ftol=1e-7, xtol=1e-7)  # absolute steps: see screen()
    m = curve(sol.x)
    sc, rw = _vp(m, data.g)
    eps, b, d2, qd, qb = unpack(sol.x)
    return ClusterFit(start.entry, float(sc), float(eps), float(b), float(d2), float(qd), float(qb), float(rw), "full",
                      float(nn0 * (1 + eps)), _bounds_hit(names, sol.x, lower, upper), rw_screen=start.rw_screen,
                      g_calc=float(sc) * m)


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
