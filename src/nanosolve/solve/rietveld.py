"""Rietveld refinement of a candidate structure against a powder pattern as measured.

One or more phases, each in its conventional (ITA standard, spglib "refined") cell, against a 2θ
pattern on its own grid. Refined, all under the space group of each phase:

* lattice: only the lengths / angles the crystal system leaves free (cubic a; tetragonal and
  hexagonal a, c; orthorhombic a, b, c; monoclinic + the one oblique angle; triclinic all six);
* atomic positions: the free coordinates of each Wyckoff site only. Each symmetry-independent site
  r₀ gets the affine subspace r₀ + N·p left fixed by its site-symmetry group (N = null space of the
  stacked R − I of the operations that fix r₀); every atom of its orbit is R·(r₀ + N·p) + t + n for the
  operation (R, t, lattice shift n) that maps r₀ onto it. So an atom on 4a of Fm-3m has no parameter,
  rutile O on 4f (x, x, 0) has one, and the orbit is regenerated exactly at every step;
* one isotropic B (Å², Debye–Waller exp(−B s²)) per element and phase;
* profile: Thompson–Cox–Hastings pseudo-Voigt, Gaussian FWHM² = U tan²θ + V tanθ + W (degrees²),
  Lorentzian FWHM = X tanθ + Y / cosθ (degrees); U, V, X shared, W and Y per phase (each phase its own
  size broadening); zero shift (2θ_obs = 2θ_calc + zero);
* optional March–Dollase preferred orientation of the first phase along one reciprocal direction
  (hkl), P(α) = (r² cos²α + sin²α / r)^(−3/2) per reflection (r = 1: none);
* linear terms, solved exactly by weighted least squares at every evaluation (variable projection):
  one scale per phase, Chebyshev background terms and, optionally, the scale of a measured
  background (empty holder / capillary) pattern interpolated to the data grid.

Intensities follow :mod:`nanosolve.scattering.bragg` (x-ray LP (1 + cos²2θ) / (sin²θ cosθ), no
monochromator; neutrons 1 / (sin²θ cosθ)). Nonlinear parameters are bounded (normalised to [−1, 1])
and released in the usual Rietveld order — lattice + zero, peak widths, profile shape, B, positions,
preferred orientation — each stage an L-BFGS-B run with torch gradients, then all together.

Agreement factors as in TOPAS / GSAS-II, over the N fitted points with weights w = 1/σ² (σ from the
file's esd column, else sqrt(counts), at least 1):
R_wp = sqrt(Σ w (y_o − y_c)² / Σ w y_o²), R_p = Σ |y_o − y_c| / Σ y_o,
R_exp = sqrt((N − P) / Σ w y_o²) with P refined parameters (linear ones included),
χ² = (R_wp / R_exp)² (``gof``, SCHEMA) and S = R_wp / R_exp (``gof_s``; TOPAS "GOF",
CIF ``_refine_ls_goodness_of_fit_all``). R_exp and χ² only mean something for y in counts. The factors are
computed by :mod:`nanosolve.scattering.agreement`.

Weight fractions of several phases (Hill & Howard 1987): W_p = S_p (ZMV)_p / Σ_q S_q (ZMV)_q, with S
the Rietveld scale of a phase whose calculated intensity is |F_cell|² · LP (no 1/V²) and ZM the mass
of its cell content.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.linalg import null_space
from scipy.optimize import minimize

from nanosolve.errors import InputError
from nanosolve.scattering import agreement as _agreement
from nanosolve.scattering.bragg import _as_crystal, enumerate_hkl, structure_factors_torch
from nanosolve.scattering.pattern import Pattern
from nanosolve.solve.parsimony import ALPHA as PARSIMONY_ALPHA
from nanosolve.solve.parsimony import Fit, parsimonious_order
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_mass

__all__ = ["SymmetricPhase", "symmetric_phase", "RietveldResult", "rietveld_refine", "agreement",
           "load_background", "STAGES", "tch_fwhm_eta", "RietveldSettings", "rietveld_candidates", "read_measured",
           "RIETVELD_TOP", "RIETVELD_SYMPREC", "PARSIMONY_ALPHA"]

#: release order of the nonlinear parameter blocks (cumulative), then a final run with all of them
STAGES = (("lattice+zero", ("len", "ang", "zero")), ("width", ("W", "Y")), ("profile", ("U", "V", "X")),
          ("b_iso", ("biso",)), ("positions", ("pos",)), ("preferred_orientation", ("po",)))
_PER_PHASE = ("len", "ang", "pos", "biso", "W", "Y", "po")
_TCH = (2.69269, 2.42843, 4.47163, 0.07842)
#: tube: (λ Kα1, λ Kα2, I(Kα2)/I(Kα1), λ Kα weighted average), Å (International Tables C, 4.2.2.1)
KALPHA2 = {"Cu": (1.540562, 1.544390, 0.5, 1.541838), "Mo": (0.709300, 0.713590, 0.5, 0.710730)}


# ----- symmetry-constrained phase -----------------------------------------------------------
@dataclass
class SymmetricPhase:
    """A crystal in its conventional cell with its space-group constraints.

    Attributes:
        crystal: conventional cell (exactly symmetric), N atoms.
        spacegroup, number, crystal_system: from spglib at ``symprec``.
        rot [K, 3, 3], trans [K, 3]: the space group's operations (fractional, conventional cell).
        len_groups: lattice lengths refined together (indices 0..2); ang_free: angles (3..5) refined.
        pos_a [N, 3, P], pos_b [N, 3]: frac = pos_b + pos_a · p for the P free Wyckoff coordinates p.
        sites: per independent site {element, wyckoff ("4f"), multiplicity, atoms [indices], n_free}.
        site_of [N]: each atom's site.
    """

    crystal: Crystal
    spacegroup: str
    number: int
    crystal_system: str
    rot: np.ndarray = field(repr=False)
    trans: np.ndarray = field(repr=False)
    len_groups: list
    ang_free: list
    pos_a: np.ndarray = field(repr=False)
    pos_b: np.ndarray = field(repr=False)
    sites: list = field(repr=False)
    site_of: np.ndarray = field(repr=False)
    name: str = ""

    @property
    def elements(self) -> list[str]:
        return sorted(set(self.crystal.species))

    @property
    def cell_mass(self) -> float:
        """Mass of the cell content ZM (g/mol)."""
        return float(sum(atomic_mass(s) * o for s, o in zip(self.crystal.species, self.crystal.occupancies)))


def _site_basis(r0, rot, trans, tol=1e-3):
    """[3, f] basis of the positions near r0 that keep r0's site symmetry (its stabiliser's R x + t ≡ x)."""
    rows = []
    for r, t in zip(rot, trans):
        d = r @ r0 + t - r0
        if np.abs(d - np.rint(d)).max() < tol:
            rows.append(r - np.eye(3))
    return null_space(np.vstack(rows)) if rows else np.eye(3)


def symmetric_phase(crystal, symprec: float = 0.01, angle_tolerance: float = 5.0, name: str = "") -> SymmetricPhase:
    """The crystal (Crystal / pymatgen Structure / ase.Atoms) in the conventional standard cell of the
    space group spglib finds within ``symprec`` (Å), positions and lattice made exactly symmetric, with
    the parametrisation described in the module docstring."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    cr = _as_crystal(crystal)
    try:
        sga = SpacegroupAnalyzer(cr.to_pymatgen(), symprec=symprec, angle_tolerance=angle_tolerance)
        conv = sga.get_refined_structure()
        sga = SpacegroupAnalyzer(conv, symprec=min(symprec, 1e-3), angle_tolerance=angle_tolerance)
        sym = sga.get_symmetrized_structure()
        ops = sga.get_symmetry_operations(cartesian=False)
    except Exception as exc:  # spglib finds no cell for a degenerate candidate
        raise InputError(f"no space group found for {cr.name or cr.formula} ({type(exc).__name__}: {exc})") from None
    system = sga.get_crystal_system()
    conv_cr = Crystal.from_pymatgen(conv, name=name or cr.name or cr.formula)
    conv_cr.properties = dict(cr.properties)  # provenance (prototype label, source...) stays with it
    if not conv_cr.is_ordered:
        raise InputError(f"{conv_cr.name}: Rietveld refinement of partially occupied sites is not supported")
    rot = np.array([np.rint(o.rotation_matrix) for o in ops])
    trans = np.array([o.translation_vector for o in ops])
    frac = np.mod(conv_cr.frac_coords, 1.0)
    n = len(conv_cr)
    blocks, b, sites, site_of = [], frac.copy(), [], np.zeros(n, int)
    for si, (idx, wy) in enumerate(zip(sym.equivalent_indices, sym.wyckoff_symbols)):
        r0 = frac[idx[0]]
        basis = _site_basis(r0, rot, trans)
        a_site = np.zeros((n, 3, basis.shape[1]))
        for j in idx:
            for r, t in zip(rot, trans):
                d = frac[j] - (r @ r0 + t)
                if np.abs(d - np.rint(d)).max() < 1e-3:
                    a_site[j] = r @ basis
                    break
            else:  # pragma: no cover - spglib's orbit always holds the atom
                raise InputError(f"{conv_cr.name}: atom {j} is not in the orbit of its site")
            site_of[j] = si
        blocks.append(a_site)
        sites.append({"element": conv_cr.species[idx[0]], "wyckoff": wy, "multiplicity": len(idx),
                      "atoms": list(map(int, idx)), "n_free": int(basis.shape[1])})
    pos_a = np.concatenate(blocks, axis=2) if blocks else np.zeros((n, 3, 0))
    p = conv_cr.cell_params
    if system == "cubic":
        len_groups, ang_free = [[0, 1, 2]], []
    elif system in ("tetragonal", "hexagonal", "trigonal"):
        len_groups, ang_free = [[0, 1], [2]], []
    elif system == "orthorhombic":
        len_groups, ang_free = [[0], [1], [2]], []
    elif system == "monoclinic":
        len_groups, ang_free = [[0], [1], [2]], [3 + i for i in range(3) if abs(p[3 + i] - 90) > 1e-3][:1]
    else:
        len_groups, ang_free = [[0], [1], [2]], [3, 4, 5]
    return SymmetricPhase(conv_cr, str(sga.get_space_group_symbol()), int(sga.get_space_group_number()), system,
                          rot, trans, len_groups, ang_free, pos_a, b, sites, site_of, name or conv_cr.name)


def _lattice_torch(p):
    """[3, 3] rows from [6] (a, b, c Å, α, β, γ degrees): a along x, b in the xy plane."""
    a, b, c = p[0], p[1], p[2]
    al, be, ga = (torch.deg2rad(p[i]) for i in (3, 4, 5))
    cx = c * torch.cos(be)
    cy = c * (torch.cos(al) - torch.cos(be) * torch.cos(ga)) / torch.sin(ga)
    cz = torch.sqrt(torch.clamp(c * c - cx * cx - cy * cy, min=1e-6))
    z = torch.zeros_like(a)
    return torch.stack([torch.stack([a, z, z]), torch.stack([b * torch.cos(ga), b * torch.sin(ga), z]),
                        torch.stack([cx, cy, cz])])


# ----- profile ------------------------------------------------------------------------------
def tch_fwhm_eta(hg, hl):
    """Thompson–Cox–Hastings: total FWHM H and Lorentzian fraction η of a pseudo-Voigt from the
    Gaussian and Lorentzian FWHMs (same unit; numpy or torch)."""
    c1, c2, c3, c4 = _TCH
    h5 = hg ** 5 + c1 * hg ** 4 * hl + c2 * hg ** 3 * hl ** 2 + c3 * hg ** 2 * hl ** 3 + c4 * hg * hl ** 4 + hl ** 5
    h = h5 ** 0.2
    q = hl / h
    return h, 1.36603 * q - 0.47719 * q * q + 0.11116 * q ** 3


def _render_pv(grid, center, weight, fwhm, eta, n_fwhm: float = 30.0):
    """Σ_m weight_m · pV(grid − center_m; fwhm_m, eta_m) (unit-area peaks), each peak on the grid
    points within ±n_fwhm FWHM (the Lorentzian tail beyond holds 1/(π n_fwhm) of its area, 1 % at
    30 FWHM; the Chebyshev background takes up the smooth remainder)."""
    g = grid.shape[0]
    step = float(torch.diff(grid).min())
    half = int(math.ceil(n_fwhm * float(fwhm.detach().max()) / step)) + 1
    if 2 * half + 1 >= g:
        idx = torch.arange(g)[None].expand(center.shape[0], -1)
        valid = torch.ones_like(idx, dtype=torch.bool)
    else:
        idx = torch.searchsorted(grid, center.detach().contiguous())[:, None] + torch.arange(-half, half + 1)
        valid = (idx >= 0) & (idx < g)
        idx = idx.clamp(0, g - 1)
    dx = grid[idx] - center[:, None]
    hw = 0.5 * fwhm[:, None]
    lor = hw / (math.pi * (dx * dx + hw * hw))
    sig = fwhm[:, None] / (2 * math.sqrt(2 * math.log(2)))
    gau = torch.exp(-0.5 * (dx / sig) ** 2) / (sig * math.sqrt(2 * math.pi))
    vals = weight[:, None] * (eta[:, None] * lor + (1 - eta[:, None]) * gau) * valid
    return torch.zeros(g, dtype=grid.dtype).index_add(0, idx.reshape(-1), vals.reshape(-1))


# ----- parameters ---------------------------------------------------------------------------
class _Space:
    """Named blocks of bounded parameters; u ∈ [−1, 1] ↔ value = mid + half · u."""

    def __init__(self):
        self.names, self.slices, self.lo, self.hi, self.x0 = [], {}, [], [], []

    def add(self, name, start, lo, hi):
        start, lo, hi = (np.atleast_1d(np.asarray(v, float)) for v in (start, lo, hi))
        lo, hi = np.broadcast_to(lo, start.shape), np.broadcast_to(hi, start.shape)
        k = len(self.lo)
        self.slices[name] = slice(k, k + start.size)
        self.names.append(name)
        self.lo += list(lo)
        self.hi += list(hi)
        self.x0 += list(np.clip(start, lo, hi))

    def finish(self):
        lo, hi = np.array(self.lo), np.array(self.hi)
        self.mid, self.half = torch.tensor(0.5 * (lo + hi)), torch.tensor(0.5 * (hi - lo))
        self.n = lo.size

    def to_u(self, values) -> np.ndarray:
        h = self.half.numpy()
        return np.where(h > 0, (np.asarray(values) - self.mid.numpy()) / np.where(h > 0, h, 1), 0.0)

    def values(self, u):
        return self.mid + self.half * u

    def mask(self, kinds) -> np.ndarray:
        """Free entries of the blocks whose name (or per-phase suffix) is in ``kinds``."""
        m = np.zeros(self.n, bool)
        for name, sl in self.slices.items():
            if name.split(".")[-1] in kinds:
                m[sl] = True
        return m & (self.half.numpy() > 0)


@dataclass
class RietveldResult:
    """A converged refinement: the refined phases (first = the candidate), agreement factors, the
    profile (x = 2θ degrees, y_obs, y_calc, components: background, measured background, each
    phase), parameters and per-stage R_wp."""

    crystal: Crystal
    phases: list
    x: np.ndarray = field(repr=False)
    y_obs: np.ndarray = field(repr=False)
    y_calc: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    components: dict = field(repr=False)
    rwp: float = 0.0
    rp: float = 0.0
    rexp: float = 0.0
    n_points: int = 0
    n_params: int = 0
    params: dict = field(default_factory=dict)
    stages: list = field(default_factory=list)
    seconds: float = 0.0
    x_unit: str = "tth"

    @property
    def gof(self) -> float:
        """χ² = (R_wp / R_exp)² (GSAS-II "GOF²", SCHEMA ``gof``)."""
        return _agreement.reduced_chi2(self.rwp, self.rexp)

    @property
    def gof_s(self) -> float:
        """S = R_wp / R_exp (TOPAS GOF, CIF _refine_ls_goodness_of_fit_all)."""
        return _agreement.gof_s(self.rwp, self.rexp)

    @property
    def rwp_after(self) -> float:  # the name PXRDFit uses, so plots / reports take either
        return self.rwp

    @property
    def b_iso(self) -> dict:
        return dict(self.params["phases"][0]["b_iso"])

    def cif_info(self) -> dict:
        """What :func:`nanosolve.structures.io.cif_write.write_refined_cif` records."""
        ph = self.params["phases"][0]
        return {"rwp": self.rwp, "rp": self.rp, "rexp": self.rexp, "gof_s": self.gof_s, "b_iso": ph["b_iso"],
                "b_iso_esd": ph.get("b_iso_esd"), "cell_esd": ph.get("cell_esd"),
                "n_params": self.n_params, "n_points": self.n_points, "wavelength": self.params.get("wavelength"),
                "preferred_orientation": ph.get("preferred_orientation"), "zero_deg": self.params.get("zero_deg")}

    def summary(self) -> dict:
        """JSON-able summary with the SCHEMA names (rwp, rexp, gof, spacegroup, ...)."""
        ph = self.params["phases"][0]
        return {"rwp": round(self.rwp, 5), "rp": round(self.rp, 5), "rexp": round(self.rexp, 5),
                "gof": round(self.gof, 4), "gof_s": round(self.gof_s, 4), "spacegroup": ph["spacegroup"],
                "spacegroup_number": ph["spacegroup_number"], "b_iso": ph["b_iso"],
                "preferred_orientation": ph.get("preferred_orientation"),
                "extra_phases": [{k: p[k] for k in ("name", "formula", "spacegroup", "cell", "weight_fraction",
                                                    "b_iso")} for p in self.params["phases"][1:]],
                "weight_fraction": ph["weight_fraction"] if len(self.params["phases"]) > 1 else None,
                "n_points": self.n_points, "n_params": self.n_params, "sigma": self.params["sigma"],
                "stages": self.stages, "seconds": round(self.seconds, 2),
                **{k: self.params[k] for k in ("zero_deg", "U", "V", "X", "background_file_scale", "at_bound",
                                                "n_reflections", "n_intensity_params", "symmetry_alternative")
                   if k in self.params},
                "cell": ph["cell"], "sites": ph["sites"]}


# ----- data ---------------------------------------------------------------------------------
def _two_theta(pattern: Pattern) -> Pattern:
    src = pattern.metadata.get("source")
    if pattern.wavelength is None:
        raise InputError("Rietveld refinement needs the pattern's wavelength (give --wavelength)", src)
    if pattern.x_unit == "tth":
        return pattern
    if pattern.x_unit == "q":
        return pattern.to_two_theta()
    raise InputError(f"a powder pattern on {pattern.x_unit} cannot be refined; give 2θ, Q or d", src)


def load_background(background, data: Pattern) -> np.ndarray:
    """A measured background (Pattern, or a file with the same columns as the data) on the data's 2θ
    grid [G]: Q files converted with the data's wavelength, linear interpolation, the end values held
    outside its range (so that a slightly shorter scan still covers the data)."""
    from nanosolve.solve import read_input

    bg = read_input(background, data.wavelength) if not isinstance(background, Pattern) else background
    src = bg.metadata.get("source")
    if bg.wavelength is None:
        bg.wavelength = data.wavelength
    bg = _two_theta(bg)
    if bg.x.size < 2:
        raise InputError("the background pattern has fewer than 2 points", src)
    if bg.x.max() < data.x.min() or bg.x.min() > data.x.max():
        raise InputError(f"the background covers 2θ {bg.x.min():.3g}-{bg.x.max():.3g}°, none of the data's "
                         f"{data.x.min():.3g}-{data.x.max():.3g}°", src)
    return np.interp(data.x, bg.x, bg.y)


def agreement(y_obs, y_calc, sigma, n_params: int) -> dict:
    """R_wp, R_p, R_exp, χ² and S (module docstring) over the given points:
    :func:`nanosolve.scattering.agreement.profile_agreement`."""
    return _agreement.profile_agreement(y_obs, y_calc, sigma, n_params)


def _estimate_fwhm(x, y) -> float:
    """FWHM (x units) of the strongest peak above a straight baseline between the 5 % quantiles."""
    base = np.quantile(y, 0.05)
    i = int(np.argmax(y))
    half = base + 0.5 * (y[i] - base)
    lo, hi = i, i
    while lo > 0 and y[lo] > half:
        lo -= 1
    while hi < y.size - 1 and y[hi] > half:
        hi += 1
    return float(max(x[hi] - x[lo], 3 * np.median(np.diff(x))))


# ----- refinement ---------------------------------------------------------------------------
def rietveld_refine(crystal, pattern: Pattern, extra_phases=(), background=None, n_background: int = 8,
                    fwhm: float | None = None, zero: float = 0.0, lattice_range: float = 0.03,
                    position_range: float = 0.08, b_start: float = 0.5, b_max: float = 8.0,
                    preferred_orientation=None, tth_range=None, symprec: float = 0.01, steps: int = 60,
                    refine_positions: bool = True, refine_b: bool = True, profile: str = "tch",
                    form_factors: str = "waasmaier-kirfel", kalpha2: bool = False,
                    time_limit: float | None = None) -> RietveldResult:
    """Rietveld refinement of ``crystal`` (+ ``extra_phases``) against ``pattern``; see the module docstring.

    Args:
        crystal: the candidate (Crystal / pymatgen Structure / ase.Atoms), close to the data's lattice
            (within ``lattice_range``, relative, 3 % by default: start from a measured-profile fit,
            :func:`nanosolve.solve.pxrd_refine.refine_crystal`, when the cell is further off).
        pattern: measured Pattern in 2θ (or Q) with its wavelength; ``sigma`` (esd column) used if given.
        extra_phases: known phases (crystals or CIF paths) refined beside it: own scale, lattice, W, Y, B.
        background: a measured background (Pattern or path) refined as a scaled component.
        n_background: Chebyshev background terms.
        fwhm: starting FWHM (degrees; default: the strongest peak's), zero: starting zero shift (°).
        position_range: bound of each free Wyckoff coordinate around its start (fractional).
        b_start, b_max: start and upper bound of B_iso (Å²).
        preferred_orientation: None, or the (h, k, l) of the texture direction of the first phase
            (March–Dollase r refined in [0.3, 3]).
        tth_range: (min, max) 2θ fitted (default: the whole pattern).
        symprec: spglib tolerance (Å) for the space group of each phase.
        steps: L-BFGS-B iterations per stage (the final all-free run gets 2x).
        profile: 'tch' (U, V, W, X, Y) or 'gaussian' (U, V, W only).
        form_factors: x-ray form factors, 'waasmaier-kirfel' or 'pymatgen' (see :func:`bragg_peaks`).
        kalpha2: the pattern holds the Kα1 + Kα2 doublet of a Cu or Mo tube (:data:`KALPHA2`): every
            reflection also at λ(Kα2) with half the Kα1 intensity, same width; the pattern's wavelength
            must be Kα1 or the Kα average of that tube.
        time_limit: seconds; when reached, the stage running stops at its best point so far and the
            later stages are skipped (``params['time_limited']``).

    Returns:
        :class:`RietveldResult`; ``crystal`` is the refined first phase in its conventional cell with
        properties spacegroup, spacegroup_number, b_iso, wyckoff.
    """
    t0 = time.perf_counter()
    pat = _two_theta(pattern)
    src = pat.metadata.get("source")
    if profile not in ("tch", "gaussian"):
        raise InputError(f"profile must be 'tch' or 'gaussian', got {profile!r}")
    x_all, y_all = pat.x, pat.y
    m = np.isfinite(y_all) & (x_all > 0) & (x_all < 180)
    if tth_range is not None:
        m &= (x_all >= tth_range[0]) & (x_all <= tth_range[1])
    if m.sum() < 20:
        raise InputError(f"only {int(m.sum())} points to fit", src)
    x, y = x_all[m], y_all[m]
    if pat.sigma is not None and np.all(pat.sigma[m] > 0):
        sigma, sigma_kind = pat.sigma[m], "esd column"
    else:
        sigma, sigma_kind = np.sqrt(np.maximum(y, 1.0)), "sqrt(counts)"
    wl = float(pat.wavelength)
    neutron = (pat.radiation == "neutron") or pat.kind == "nd"
    wl2 = None
    if kalpha2:
        tube = _tube(wl)
        if tube is None:
            raise InputError(f"Kα2 is known for Cu and Mo tubes only (Kα1 or Kα average), not λ = {wl:g} Å", src)
        wl, wl2, ratio2 = tube[0], tube[1], tube[2]
    bg_file = None if background is None else load_background(background, pat)[m]

    from nanosolve.structures.io import read_structure

    phases = [symmetric_phase(crystal, symprec)]
    for ep in extra_phases:
        c = read_structure(ep) if isinstance(ep, (str, bytes)) or hasattr(ep, "__fspath__") else ep
        name = ep.name if isinstance(ep, Crystal) else "" if not isinstance(ep, (str, bytes)) and not hasattr(
            ep, "__fspath__") else str(ep)
        phases.append(symmetric_phase(c, symprec, name=name or _as_crystal(c).formula))
    fw = float(fwhm) if fwhm else _estimate_fwhm(x, y)

    # -- parameters
    sp = _Space()
    sp.add("zero", zero, zero - 0.5, zero + 0.5)
    for k, (start, lo, hi) in {"U": (0.0, 0.0, 9 * fw * fw), "V": (0.0, -3 * fw * fw, 3 * fw * fw),
                               "X": (0.0, 0.0, 3 * fw if profile == "tch" else 0.0)}.items():
        sp.add(k, start, lo, hi)
    po_hkl = None if preferred_orientation is None else np.asarray(preferred_orientation, float).reshape(3)
    if po_hkl is not None and not np.any(po_hkl):
        raise InputError("preferred orientation direction (0 0 0) has no direction")
    for i, ph in enumerate(phases):
        p0 = ph.crystal.cell_params
        sp.add(f"{i}.len", [1.0] * len(ph.len_groups), 1 - lattice_range, 1 + lattice_range)
        sp.add(f"{i}.ang", [p0[j] for j in ph.ang_free], [p0[j] - 3 for j in ph.ang_free],
               [p0[j] + 3 for j in ph.ang_free])
        sp.add(f"{i}.pos", np.zeros(ph.pos_a.shape[2]), -position_range if refine_positions else 0.0,
               position_range if refine_positions else 0.0)
        sp.add(f"{i}.biso", [b_start] * len(ph.elements), 0.0, b_max if refine_b else b_start)
        sp.add(f"{i}.W", (0.8 * fw) ** 2, 1e-6 * fw * fw, 9 * fw * fw)
        sp.add(f"{i}.Y", 0.2 * fw if profile == "tch" else 0.0, 0.0, 3 * fw if profile == "tch" else 0.0)
        if i == 0 and po_hkl is not None:
            sp.add("0.po", 1.0, 0.3, 3.0)
    sp.finish()

    # -- reflections per phase: every hkl that can fall in the range for any allowed lattice
    g_hi = 2 * math.sin(math.radians(min(x[-1] + 2.0, 179.0) / 2)) / wl
    g_lo = 2 * math.sin(math.radians(max(x[0] - 2.0, 0.0) / 2)) / wl
    refl = []
    rng = np.random.default_rng(0)
    for i, ph in enumerate(phases):
        hkl, g0 = enumerate_hkl(ph.crystal.lattice, g_hi / (1 - lattice_range) * 1.02)
        hkl = hkl[g0 * (1 - lattice_range) / 1.02 >= g_lo]
        # reflections at equal |g| for every allowed lattice (symmetry-equivalent) are rendered once
        keys = []
        for _ in range(4):
            u = np.zeros(sp.n)
            u[sp.slices[f"{i}.len"]] = rng.uniform(-1, 1, len(ph.len_groups))
            u[sp.slices[f"{i}.ang"]] = rng.uniform(-1, 1, len(ph.ang_free))
            lat = _phase_lattice(ph, sp, torch.tensor(u), i).numpy()
            keys.append(np.linalg.norm(hkl @ np.linalg.inv(lat).T, axis=1))
        _, first, inv = np.unique(np.round(np.stack(keys, 1) * 1e8).astype(np.int64), axis=0, return_index=True,
                                  return_inverse=True)
        refl.append((hkl, torch.from_numpy(inv.reshape(-1)), torch.from_numpy(first)))

    grid = torch.tensor(x)
    xl = 2 * (x - x[0]) / max(x[-1] - x[0], 1e-9) - 1
    cheb = np.polynomial.chebyshev.chebvander(xl, n_background - 1) if n_background > 0 else np.zeros((x.size, 0))
    fixed_cols = [cheb] + ([bg_file[:, None]] if bg_file is not None else [])
    fixed = torch.tensor(np.concatenate(fixed_cols, 1))
    yt, w = torch.tensor(y), torch.tensor(1.0 / sigma ** 2)
    sw = torch.sqrt(w)
    den = float((w * yt * yt).sum())

    def phase_reflections(i, v):
        """(|g| [n_groups] 1/Å, summed weight [n_groups]) of phase i: reflections at one position merged."""
        ph = phases[i]
        hkl, inv, first = refl[i]
        lat = _phase_lattice(ph, sp, v, i, values=True)
        pv = v[sp.slices[f"{i}.pos"]]
        frac = torch.tensor(ph.pos_b) + torch.tensor(ph.pos_a) @ pv
        b_el = v[sp.slices[f"{i}.biso"]]
        el_idx = torch.tensor([ph.elements.index(s) for s in ph.crystal.species])
        g, f2 = structure_factors_torch(lat[None], frac[None], ph.crystal.species, hkl,
                                        radiation="neutron" if neutron else "xray", b_iso=b_el[el_idx][None],
                                        form_factors=form_factors)
        g, f2 = g[0], f2[0]
        inside = (0.5 * wl * g.detach()) < 1 - 1e-9
        sin_t = torch.clamp(0.5 * wl * g, max=1 - 1e-9)
        cos_t = torch.sqrt(1 - sin_t * sin_t)
        lp = 1.0 / (sin_t * sin_t * cos_t)
        if not neutron:
            lp = lp * (1 + (1 - 2 * sin_t * sin_t) ** 2)
        wt = 2.0 * f2 * lp
        if i == 0 and po_hkl is not None:
            r = v[sp.slices["0.po"]][0]
            recip = torch.linalg.inv(lat).T
            gv = torch.tensor(hkl, dtype=torch.float64) @ recip
            dv = torch.tensor(po_hkl) @ recip
            cos2 = ((gv @ dv) / (torch.linalg.norm(gv, dim=1) * torch.linalg.norm(dv))) ** 2
            wt = wt * (r * r * cos2 + (1 - cos2) / r) ** -1.5
        wt = torch.where(inside, wt, torch.zeros((), dtype=wt.dtype))
        return g[first], torch.zeros(first.numel(), dtype=wt.dtype).index_add(0, inv, wt)

    def phase_pattern(i, v):
        gm, wm = phase_reflections(i, v)
        th = torch.asin(torch.clamp(0.5 * wl * gm, max=1 - 1e-9))
        center = torch.rad2deg(2 * th) + v[sp.slices["zero"]][0]
        tan, cos = torch.tan(th), torch.cos(th)
        hg2 = v[sp.slices["U"]][0] * tan * tan + v[sp.slices["V"]][0] * tan + v[sp.slices[f"{i}.W"]][0]
        hg = torch.sqrt(torch.clamp(hg2, min=(0.02 * fw) ** 2))
        hl = torch.clamp(v[sp.slices["X"]][0] * tan + v[sp.slices[f"{i}.Y"]][0] / cos, min=0.0)
        h, eta = tch_fwhm_eta(hg, hl + 1e-12 * fw)
        keep = (center.detach() > x[0] - 30 * float(h.detach().max())) & (center.detach() < x[-1] + 30 * float(
            h.detach().max())) & (wm.detach() > 0)
        c_, w_, h_, e_ = center[keep], wm[keep], h[keep], torch.clamp(eta[keep], 0, 1)
        if wl2 is not None:  # the Kα2 line: same reflections at the longer wavelength, same profile
            arg = torch.clamp(0.5 * wl2 * gm[keep], max=1 - 1e-9)
            c2 = torch.rad2deg(2 * torch.asin(arg)) + v[sp.slices["zero"]][0]
            ok = (0.5 * wl2 * gm[keep].detach()) < 1 - 1e-9
            c_, w_ = torch.cat([c_, c2[ok]]), torch.cat([w_, ratio2 * w_[ok]])
            h_, e_ = torch.cat([h_, h_[ok]]), torch.cat([e_, e_[ok]])
        return _render_pv(grid, c_, w_, h_, e_)

    def evaluate(u):
        v = sp.values(u)
        cols = torch.stack([phase_pattern(i, v) for i in range(len(phases))], 1)
        a = torch.cat([cols, fixed], 1)
        with torch.no_grad():
            # gelsd: reproducible to the bit (see pxrd_refine._Target.solve)
            coef = torch.linalg.lstsq(a * sw[:, None], (yt * sw)[:, None], driver="gelsd").solution[:, 0]
        yc = a @ coef
        return (w * (yt - yc) ** 2).sum() / den, yc, coef, cols

    timed_out = []

    def run(u0, free, maxiter):
        if not free.any() or timed_out:
            return u0
        best = [math.inf, u0[free].copy()]

        def f(uf):
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                timed_out.append(True)
                raise _TimeUp
            u = u0.copy()
            u[free] = uf
            t = torch.tensor(u, requires_grad=True)
            loss = evaluate(t)[0]
            loss.backward()
            val = float(loss.detach())
            if val < best[0]:
                best[0], best[1] = val, np.array(uf, float)
            return val, t.grad.numpy()[free].copy()

        out = u0.copy()
        try:
            res = minimize(f, u0[free], jac=True, method="L-BFGS-B", bounds=[(-1, 1)] * int(free.sum()),
                           options={"maxiter": int(maxiter)})
            out[free] = res.x if res.fun <= best[0] else best[1]
        except _TimeUp:  # the best point evaluated so far
            out[free] = best[1]
        return out

    u = sp.to_u(sp.x0)
    stages = []
    with torch.no_grad():
        stages.append({"stage": "scale+background", "rwp": round(math.sqrt(float(evaluate(torch.tensor(u))[0])), 5)})
    kinds: set = set()
    for name, ks in STAGES:
        kinds |= set(ks)
        free = sp.mask(kinds)
        if not (sp.mask(set(ks))).any():
            continue
        if timed_out:
            break
        u = run(u, free, steps)
        with torch.no_grad():
            stages.append({"stage": name, "rwp": round(math.sqrt(float(evaluate(torch.tensor(u))[0])), 5)})
    free = sp.mask(kinds)
    u = run(u, free, 2 * steps)

    with torch.no_grad():
        ut = torch.tensor(u)
        loss, yc, coef, cols = evaluate(ut)
        v = sp.values(ut)
        # independent intensities the data hold for the first phase: reflection positions in the fitted
        # range (coincident ones count once) that are not extinct; the parsimony test's observations
        gm, wm = phase_reflections(0, v)
        tth_m = np.degrees(2 * np.arcsin(np.clip(0.5 * wl * gm.numpy(), 0, 1 - 1e-9)))
        wm = wm.numpy()
        n_refl = int(np.sum((tth_m >= x[0]) & (tth_m <= x[-1]) & (wm > 1e-6 * max(float(wm.max()), 1e-300))))
    # ...and the parameters those intensities determine: free coordinates, B_iso, texture, scale
    n_int = 1 + int(sum(free[sl].sum() for name, sl in sp.slices.items() if name in ("0.pos", "0.biso", "0.po")))
    n_lin = len(phases) + fixed.shape[1]
    n_par = int(free.sum()) + n_lin
    yc_np = yc.numpy()
    agr = agreement(y, yc_np, sigma, n_par)
    stages.append({"stage": "all", "rwp": round(agr["rwp"], 5)})

    vn, un = v.numpy(), u
    at_bound = sorted({name for name, sl in sp.slices.items() if np.any(free[sl] & (np.abs(un[sl]) > 0.999))})

    # Standard uncertainties: least-squares covariance (Jᵀ W J)⁻¹ · χ²_red over the free nonlinear
    # parameters not at a bound and the linear ones; J by central differences with the linear
    # coefficients fixed (their own columns are exact).
    inner = np.flatnonzero(free & (np.abs(un) < 0.999))
    esd_v = np.full(sp.n, np.nan)
    a_lin = torch.cat([cols, fixed], 1).numpy()
    jac = []
    with torch.no_grad():
        for k in inner:
            h = 1e-4
            up, um = un.copy(), un.copy()
            up[k], um[k] = un[k] + h, un[k] - h
            yp = torch.cat([torch.stack([phase_pattern(i, sp.values(torch.tensor(up))) for i in range(len(phases))], 1),
                            fixed], 1) @ coef
            ym = torch.cat([torch.stack([phase_pattern(i, sp.values(torch.tensor(um))) for i in range(len(phases))], 1),
                            fixed], 1) @ coef
            jac.append((yp - ym).numpy() / (2 * h * float(sp.half[k])))  # per physical unit
    jm = np.column_stack(jac + [a_lin]) if jac else a_lin
    wn = 1.0 / sigma ** 2
    try:
        cov = np.linalg.pinv((jm * wn[:, None]).T @ jm) * agr["gof"]
        esd_v[inner] = np.sqrt(np.clip(np.diag(cov)[:len(inner)], 0, None))
        cov_nl = np.full((sp.n, sp.n), np.nan)
        cov_nl[np.ix_(inner, inner)] = cov[:len(inner), :len(inner)]
    except np.linalg.LinAlgError:  # pragma: no cover - singular normal matrix: no esds
        cov_nl = np.full((sp.n, sp.n), np.nan)
    scales = coef[:len(phases)].numpy()
    out_phases, refined = [], []
    for i, ph in enumerate(phases):
        lat = _phase_lattice(ph, sp, v, i, values=True).numpy()
        frac = ph.pos_b + ph.pos_a @ vn[sp.slices[f"{i}.pos"]]
        b_el = dict(zip(ph.elements, (round(float(b), 4) for b in vn[sp.slices[f"{i}.biso"]])))
        cr = Crystal(lat, np.mod(frac, 1.0), ph.crystal.species, name=f"{ph.name} (Rietveld)",
                     properties=dict(ph.crystal.properties))
        cr.properties.update(spacegroup=ph.spacegroup, spacegroup_number=ph.number, b_iso=b_el,
                             wyckoff=[s["wyckoff"] for s in ph.sites], crystal_system=ph.crystal_system)
        refined.append(cr)
        sites = []
        psl = sp.slices[f"{i}.pos"]
        cov_p = cov_nl[psl, psl]
        for s in ph.sites:
            j = s["atoms"][0]
            aj = ph.pos_a[j]
            xyz_esd = None
            if s["n_free"]:
                used = np.abs(aj).sum(0) > 1e-12
                c_xyz = aj[:, used] @ cov_p[np.ix_(used, used)] @ aj[:, used].T
                xyz_esd = [None if not np.isfinite(e) else round(float(np.sqrt(max(e, 0.0))), 6)
                           for e in np.diag(c_xyz)]
            sites.append({"element": s["element"], "wyckoff": s["wyckoff"], "multiplicity": s["multiplicity"],
                          "xyz": [round(float(c), 6) for c in np.mod(frac[j], 1.0)], "n_free": s["n_free"],
                          "xyz_esd": xyz_esd})
        # cell esds: a tied length moves with its group's factor; free angles directly
        p0 = ph.crystal.cell_params
        cell_esd = [0.0] * 6
        for g_i, grp in enumerate(ph.len_groups):
            for k in grp:
                cell_esd[k] = float(p0[k] * esd_v[sp.slices[f"{i}.len"]][g_i])
        for g_i, k in enumerate(ph.ang_free):
            cell_esd[k] = float(esd_v[sp.slices[f"{i}.ang"]][g_i])
        b_esd = dict(zip(ph.elements, (None if not np.isfinite(e) else round(float(e), 4)
                                       for e in esd_v[sp.slices[f"{i}.biso"]])))
        entry = {"name": ph.name, "formula": cr.formula, "spacegroup": ph.spacegroup, "spacegroup_number": ph.number,
                 "crystal_system": ph.crystal_system, "cell": [round(float(c), 6) for c in cr.cell_params],
                 "scale": float(scales[i]), "b_iso": b_el, "W": float(vn[sp.slices[f"{i}.W"]][0]),
                 "Y": float(vn[sp.slices[f"{i}.Y"]][0]), "sites": sites, "cell_mass": ph.cell_mass,
                 "cell_esd": [None if not np.isfinite(e) else float(e) for e in cell_esd], "b_iso_esd": b_esd,
                 "volume": cr.volume}
        if i == 0 and po_hkl is not None:
            entry["preferred_orientation"] = {"hkl": [float(h) for h in po_hkl], "march_dollase_r":
                                              round(float(vn[sp.slices["0.po"]][0]), 5)}
        out_phases.append(entry)
    zmv = np.array([p["scale"] * p["cell_mass"] * p["volume"] for p in out_phases])
    for p, wf in zip(out_phases, zmv / zmv.sum() if zmv.sum() > 0 else np.full(len(zmv), np.nan)):
        p["weight_fraction"] = round(float(wf), 5)
    comps = {"background": (fixed[:, :cheb.shape[1]] @ coef[len(phases):len(phases) + cheb.shape[1]]).numpy()}
    if bg_file is not None:
        comps["background_file"] = float(coef[-1]) * bg_file
    for i, ph in enumerate(phases):
        comps[f"phase {i}: {ph.name}"] = float(coef[i]) * cols[:, i].numpy()
    params = {"time_limited": bool(timed_out), "wavelength": wl,
              "zero_esd": None if not np.isfinite(esd_v[sp.slices["zero"]][0]) else float(esd_v[sp.slices["zero"]][0]),
              "kalpha2": None if wl2 is None else {"wavelength": wl2, "ratio": ratio2}, "zero_deg": round(float(vn[sp.slices["zero"]][0]), 6), "profile": profile,
              "U": float(vn[sp.slices["U"]][0]), "V": float(vn[sp.slices["V"]][0]),
              "X": float(vn[sp.slices["X"]][0]), "phases": out_phases, "sigma": sigma_kind,
              "background_terms": (coef[len(phases):len(phases) + cheb.shape[1]]).numpy().tolist(),
              "at_bound": at_bound, "fwhm_start_deg": fw, "n_reflections": n_refl,
              "n_intensity_params": n_int}
    if bg_file is not None:
        params["background_file_scale"] = float(coef[-1])
    return RietveldResult(refined[0], refined, x, y, yc_np, np.ones(x.size, bool), comps, agr["rwp"], agr["rp"],
                          agr["rexp"], int(x.size), n_par, params, stages, time.perf_counter() - t0)


def _tube(wl) -> tuple | None:
    """The :data:`KALPHA2` entry whose Kα1 or Kα-average wavelength is ``wl`` (within 2e-4 Å), or None."""
    if wl is None:
        return None
    return next((v for v in KALPHA2.values() if min(abs(wl - v[0]), abs(wl - v[3])) < 2e-4), None)


class _TimeUp(Exception):
    """Raised inside an optimiser's objective when the refinement's time limit is reached."""


def _phase_lattice(ph: SymmetricPhase, sp: _Space, v, i: int, values: bool = False):
    """[3, 3] lattice of phase i from u (``values`` False) or parameter values v."""
    if not values:
        v = sp.values(v)
    p0 = ph.crystal.cell_params
    lens = v[sp.slices[f"{i}.len"]]
    angs = v[sp.slices[f"{i}.ang"]]
    cols = [torch.tensor(float(c), dtype=torch.float64) for c in p0]
    for j, grp in enumerate(ph.len_groups):
        for k in grp:
            cols[k] = p0[k] * lens[j]
    for j, k in enumerate(ph.ang_free):
        cols[k] = angs[j]
    return _lattice_torch(torch.stack(cols))


# ----- a solve's final stage ----------------------------------------------------------------
#: candidates of a powder solve that get the Rietveld refinement (the best measured-profile fits)
RIETVELD_TOP = 3
#: spglib tolerance (Å) for a candidate's space group: decoded candidates are a little off their
#: sites; the same widest tolerance the solve's symmetrised variants use
RIETVELD_SYMPREC = 0.1
#: where this tolerance (Å) finds a lower space group than RIETVELD_SYMPREC, both descriptions are refined
TIGHT_SYMPREC = 0.01
X_UNITS = {"2theta": "tth", "tth": "tth", "q": "q", "d": "d"}
#: seconds one candidate's refinement may take in a solve (its stages stop at their best point then);
#: the solve's time budget can shorten it, never below RIETVELD_MIN_TIME for the best candidate
RIETVELD_TIME_LIMIT, RIETVELD_MIN_TIME = 90.0, 20.0


@dataclass
class RietveldSettings:
    """Options of the final Rietveld stage of a powder solve (:func:`rietveld_candidates`).

    ``top``: how many of the best candidates are refined (0: none). ``extra_phases``: CIF paths (or
    crystals) of known impurity phases refined beside each candidate. ``background_file``: a
    measured background pattern refined as a scaled component. ``preferred_orientation``: (h, k, l)
    of a March–Dollase direction, or None. ``symprec``: tolerance (Å) of each candidate's space group.
    ``kalpha2``: the data hold the Cu / Mo Kα1 + Kα2 doublet (:func:`rietveld_refine`); 'auto': for a
    Cu or Mo wavelength the best candidate is refined with and without Kα2 and the lower R_wp decides
    for every candidate (no parameter is added, so the two R_wp compare fairly); ``time_limit``: seconds
    per refinement. ``parsimony_alpha``: the refined candidates are ordered by Hamilton's R-ratio test at
    this level (:func:`nanosolve.solve.parsimony.parsimonious_order`: more free parameters must fit
    significantly better); None: by R_wp alone."""

    top: int = RIETVELD_TOP
    extra_phases: tuple = ()
    background_file: object = None
    preferred_orientation: tuple | None = None
    symprec: float = RIETVELD_SYMPREC
    steps: int = 40
    kalpha2: bool | str = "auto"
    time_limit: float = RIETVELD_TIME_LIMIT
    parsimony_alpha: float | None = PARSIMONY_ALPHA

    def validate(self) -> None:
        """Fail before the solve's work on a bad option (one readable message)."""
        from pathlib import Path

        if self.top < 0:
            raise InputError(f"must be >= 0, got {self.top}", "--rietveld-top")
        if self.parsimony_alpha is not None and not 0 < self.parsimony_alpha < 1:
            raise InputError(f"the significance level must be in (0, 1), got {self.parsimony_alpha}", "--parsimony")
        for p in self.extra_phases:
            if isinstance(p, (str, Path)):
                from nanosolve.structures.io import read_structure

                c = read_structure(p)
                if not isinstance(c, Crystal):
                    raise InputError("not a periodic crystal", p)
        if isinstance(self.background_file, (str, Path)) and not Path(self.background_file).is_file():
            raise InputError("file not found", self.background_file)
        if self.preferred_orientation is not None:
            po = tuple(self.preferred_orientation)
            if len(po) != 3 or not any(po):
                raise InputError(f"give three Miller indices, not all zero, got {po}", "--preferred-orientation")


def read_measured(path, wavelength=None, x_unit: str | None = None) -> Pattern:
    """A measured powder pattern with the x unit given by the user: '2theta' (degrees), 'q' (Å⁻¹) or
    'd' (Å; converted to 2θ = 2 asin(λ / 2d) with the wavelength, points with d < λ/2 dropped).
    None keeps the reader's own reading of the file."""
    from nanosolve.scattering.readers import read_pattern
    from nanosolve.scattering.units import wavelength as named_wavelength
    from nanosolve.solve import read_input

    if x_unit is None:
        return read_input(path, wavelength)
    unit = X_UNITS.get(str(x_unit).lower().replace("θ", "theta").replace("-", ""))
    if unit is None:
        raise InputError(f"unknown x unit {x_unit!r}; use 2theta, q or d", "--x-unit")
    import warnings

    with warnings.catch_warnings():  # the reader's guess of the x unit is moot: it is given
        warnings.simplefilter("ignore", UserWarning)
        read_input(path, wavelength)  # the usual file checks and messages
    if unit != "d":
        return read_pattern(path, wavelength=wavelength, kind="xrd", x_unit=unit) if wavelength is not None \
            else read_pattern(path, kind="xrd", x_unit=unit)
    p = read_pattern(path, wavelength=wavelength, kind="xrd", x_unit="q") if wavelength is not None \
        else read_pattern(path, kind="xrd", x_unit="q")
    wl = p.wavelength if p.wavelength is not None else named_wavelength(wavelength)
    if wl is None:
        raise InputError("a d-spacing pattern needs the wavelength: give --wavelength", path)
    d = p.x
    ok = d > wl / 2
    if ok.sum() < 2 or np.any(d <= 0):
        raise InputError(f"d values must be > λ/2 = {wl / 2:.4g} Å (got {d.min():.4g}-{d.max():.4g})", path)
    tth = np.degrees(2 * np.arcsin(wl / (2 * d[ok])))
    sigma = None if p.sigma is None else p.sigma[ok][::-1]
    meta = {**p.metadata, "x_unit_given": "d", "source": p.metadata.get("source", str(path))}
    return Pattern(tth[::-1], p.y[ok][::-1], kind="xrd", x_unit="tth", wavelength=wl, radiation=p.radiation,
                   sigma=sigma, metadata=meta)


def rietveld_candidates(ranked: list, pattern: Pattern, settings: RietveldSettings | None = None,
                        deadline: float | None = None) -> list:
    """Rietveld-refine the best ``settings.top`` candidates of a powder solve that have a
    measured-profile fit (its lattice, width and zero are the start) and re-rank those by the Rietveld
    R_wp, ahead of the rest; each gets ``cand.rietveld`` (:class:`RietveldResult`). A candidate whose
    space group spglib cannot find, or whose refinement fails on its input, keeps its measured-profile
    fit (``cand.rietveld`` None). ``deadline`` (time.perf_counter seconds): after the first, no
    refinement starts once the last one's time would pass it. Blind: candidates and data only."""
    st = settings or RietveldSettings()
    pat = _two_theta(pattern)
    done, last = [], 0.0
    decide = st.kalpha2 == "auto" and _tube(pat.wavelength) is not None
    ka2 = False if st.kalpha2 == "auto" else bool(st.kalpha2)
    head = []
    for cand in ranked[:st.top]:  # the leading candidates with a measured-profile fit
        if getattr(cand, "profile", None) is None:
            break
        head.append(cand)
    # best measured-profile fit first: it decides Kα2 and is refined even when time is short
    for cand in sorted(head, key=lambda c: c.profile.rwp_after):
        fit = cand.profile
        if done and deadline is not None and time.perf_counter() + last > deadline:
            break
        t0 = time.perf_counter()
        # the Kα2 decision runs two refinements: they share what is left
        share = 2.0 if decide else 1.0
        limit = st.time_limit if deadline is None else max(min(st.time_limit, (deadline - t0) / share),
                                                           RIETVELD_MIN_TIME)
        def refine(with_ka2, symprec=st.symprec):
            return rietveld_refine(fit.crystal, pat, extra_phases=st.extra_phases, background=st.background_file,
                                   fwhm=fit.params.get("fwhm_deg"), zero=float(fit.params.get("zero_deg", 0.0)),
                                   preferred_orientation=st.preferred_orientation, symprec=symprec,
                                   steps=st.steps, kalpha2=with_ka2, time_limit=limit)

        try:
            if decide:  # Kα2 or not, decided once by the fit of the best candidate
                runs = {False: refine(False), True: refine(True)}
                ka2 = runs[True].rwp < runs[False].rwp
                cand.rietveld = runs[ka2]
                cand.rietveld.params["kalpha2_choice"] = {"rwp_without": runs[False].rwp, "rwp_with": runs[True].rwp}
                decide = False
            else:
                cand.rietveld = refine(ka2)
        except InputError as exc:
            if "no space group" not in str(exc) and "partially occupied" not in str(exc):
                raise
            cand.rietveld = None
        last = time.perf_counter() - t0
        # The wide tolerance that suits decoded candidates can raise the symmetry of a real small
        # distortion (tetragonal BaTiO3, c - a = 0.04 Å, became cubic): where a tight tolerance finds a
        # lower group, that description is refined too and the two are compared like any two candidates.
        # Not a triclinic one: decoded candidates are triclinic at 0.01 Å by their decoding noise, and
        # a P1 refinement of all coordinates would take the time of the next candidate.
        tight = None if cand.rietveld is None else _spacegroup_number(fit.crystal, TIGHT_SYMPREC)
        if (tight is not None and tight > 2 and st.symprec > TIGHT_SYMPREC
                and tight != _spacegroup_number(fit.crystal, st.symprec)
                and (deadline is None or time.perf_counter() + last < deadline)):
            try:
                low = refine(ka2, TIGHT_SYMPREC)
            except InputError:
                low = None
            if low is not None:
                pair = [cand.rietveld, low]
                win, lose = pair if _order(pair, st.parsimony_alpha)[0] == 0 else pair[::-1]
                win.params["symmetry_alternative"] = {"spacegroup": lose.params["phases"][0]["spacegroup"],
                                                      "rwp": lose.rwp, "n_params": lose.n_params,
                                                      "symprec": st.symprec if lose is pair[0] else TIGHT_SYMPREC}
                cand.rietveld = win
            last = time.perf_counter() - t0
        done.append(cand)
    key = [c for c in done if getattr(c, "rietveld", None) is not None]
    rest = [c for c in done if getattr(c, "rietveld", None) is None]
    left = [c for c in ranked if not any(c is d for d in done)]
    return [key[i] for i in _order([c.rietveld for c in key], st.parsimony_alpha)] + rest + left


def _order(results: list, alpha: float | None) -> list[int]:
    """Indices of Rietveld results best first: by Hamilton's test at ``alpha`` (fewer free parameters
    win unless the extra ones fit significantly better), or by R_wp alone (``alpha`` None)."""
    if alpha is None:
        return sorted(range(len(results)), key=lambda i: results[i].rwp)
    return parsimonious_order([Fit(r.rwp, r.n_params, r.params["n_reflections"] - r.params["n_intensity_params"])
                               for r in results], alpha)


def _spacegroup_number(crystal, symprec: float) -> int | None:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return int(SpacegroupAnalyzer(_as_crystal(crystal).to_pymatgen(), symprec=symprec).get_space_group_number())
    except Exception:  # noqa: BLE001 - spglib finds no cell for a degenerate candidate
        return None
