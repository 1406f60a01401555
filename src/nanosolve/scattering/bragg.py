"""Bragg powder patterns of crystals: peak lists (numpy) and differentiable profiles (torch).

Why our own code and not pymatgen's ``XRDCalculator`` / ``NDCalculator``: we need (1) gradients
with respect to fractional positions, lattice and scale, (2) a choice of form factors
(Waasmaier-Kirfel, shared with our Debye simulator, or pymatgen's fit), (3) finite-size
broadening, and (4) speed: the hkl box, structure factors, peak merging and hkl families are all
vectorised, several times faster than pymatgen's per-peak Python loops. We follow pymatgen's
conventions so the two can be compared peak for peak:

* reciprocal points g = hkl · inv(L)ᵀ (1/Å, no 2π), s = sinθ/λ = |g|/2, Q = 2π|g|, d = 1/|g|;
* F(g) = Σ_j occ_j f_j(s) exp(-B_j s²) exp(2πi g·r_j) (Debye-Waller exp(-B s²), B in Å², like
  pymatgen's ``debye_waller_factors``);
* intensity of a peak = Σ over all its reflections (both Friedel mates, so the multiplicity is
  implicit) of |F|² · LP, with LP = (1 + cos²2θ) / (sin²θ cos θ) for x-rays and
  1 / (sin²θ cos θ) for neutrons (no polarisation);
* reflections whose 2θ agree within 1e-5° are merged into one peak (pymatgen's TWO_THETA_TOL);
  peaks below 1e-3 of the strongest (scaled to 100) are dropped as numerical zeros.

Without a wavelength (Q only) the geometric factor is the λ-free Lorentz factor of a powder in Q,
1/Q² (the small-angle limit of 1/(sin²θ cosθ) up to a constant), and there is no polarisation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources

import numpy as np
import torch

from nanosolve.errors import InputError
from nanosolve.scattering import profiles
from nanosolve.scattering.form_factors import neutron_length, normalize_radiation, wk_coefficients
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.units import wavelength as _wavelength
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_number, normalize_symbol

FORM_FACTORS = ("waasmaier-kirfel", "pymatgen")
TWO_THETA_TOL = 1e-5  # degrees; pymatgen's AbstractDiffractionPatternCalculator.TWO_THETA_TOL
Q_TOL = 1e-6  # Å⁻¹; merge tolerance when there is no wavelength
MIN_SCALED_INTENSITY = 1e-3  # on the 0-100 scale; pymatgen's SCALED_INTENSITY_TOL
_PMG_PREFACTOR = 41.78214  # pymatgen's f(s) = Z - 41.78214 s² Σ a_i exp(-b_i s²)


# ----- inputs -------------------------------------------------------------------------------
def _as_crystal(crystal) -> Crystal:
    if isinstance(crystal, Crystal):
        return crystal
    try:
        from pymatgen.core import Structure

        if isinstance(crystal, Structure):
            try:  # fast path for ordered structures (labels are not needed for diffraction)
                species = [sp.symbol for sp in crystal.species]
                return Crystal(crystal.lattice.matrix.copy(), crystal.frac_coords, species)
            except AttributeError:  # disordered sites or dummy species
                return Crystal.from_pymatgen(crystal)
    except ImportError:  # pragma: no cover
        pass
    from nanosolve.structures.coerce import as_crystal

    return as_crystal(crystal)  # ase.Atoms, a structure file path...


def _form_factor_kind(form_factors: str) -> str:
    key = str(form_factors).lower().replace("_", "-").replace(" ", "-")
    if key in ("waasmaier-kirfel", "wk", "waasmaier"):
        return "waasmaier-kirfel"
    if key in ("pymatgen", "pmg"):
        return "pymatgen"
    raise InputError(f"unknown form factors {form_factors!r}; use one of {', '.join(FORM_FACTORS)}")


@lru_cache(maxsize=1)
def _pymatgen_params() -> dict[str, np.ndarray]:
    # Read pymatgen's own table at run time so the 'pymatgen' option tracks the installed version.
    path = resources.files("pymatgen.analysis.diffraction") / "atomic_scattering_params.json"
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 2) for k, v in json.loads(path.read_text()).items()}


@lru_cache(maxsize=256)
def _scatterer(symbol: str, radiation: str, kind: str) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(c, a[K], b[K], poly): f(s²) = c + poly_term(s²) Σ a exp(-b s²), see :func:`_eval_ff`."""
    if radiation == "neutron":
        return neutron_length(symbol), np.zeros(1), np.zeros(1), 0.0
    if kind == "pymatgen":
        try:
            p = _pymatgen_params()[symbol]
        except KeyError:
            raise InputError(f"pymatgen has no x-ray scattering parameters for element {symbol}") from None
        return float(atomic_number(symbol)), p[:, 0].copy(), p[:, 1].copy(), -_PMG_PREFACTOR
    coef = wk_coefficients(symbol)
    return float(coef[5]), coef[:5].copy(), coef[6:].copy(), 1.0


def _scatterer_table(elements, radiation: str, kind: str):
    """[E] c, [E, K] a, [E, K] b, poly flag: 1 (WK, constant), -41.78 (pymatgen, times s²), 0."""
    rows = [_scatterer(e, radiation, kind) for e in elements]
    k = max(r[1].size for r in rows)
    c = np.array([r[0] for r in rows])
    a = np.zeros((len(rows), k))
    b = np.zeros((len(rows), k))
    for i, r in enumerate(rows):
        a[i, : r[1].size], b[i, : r[2].size] = r[1], r[2]
    return c, a, b, rows[0][3]


def _eval_ff(table, s2):
    """f [..., E] at s² [...] (numpy or torch, broadcasting over leading dims)."""
    c, a, b, poly = table
    if isinstance(s2, torch.Tensor):
        c, a, b = (torch.as_tensor(v, dtype=s2.dtype, device=s2.device) for v in (c, a, b))
        expo = torch.exp(-b * s2[..., None, None])
    else:
        expo = np.exp(-b * s2[..., None, None])
    gauss = (a * expo).sum(-1)  # [..., E]
    if poly == 0.0:
        return c + 0.0 * s2[..., None]
    if poly == 1.0:
        return c + gauss
    return c + poly * s2[..., None] * gauss


def _site_b_iso(b_iso, species, n: int) -> np.ndarray:
    """[N] isotropic B (Å²) from None, a float, an {element: B} dict or a per-site sequence."""
    if b_iso is None:
        return np.zeros(n)
    if isinstance(b_iso, dict):
        table = {normalize_symbol(k): float(v) for k, v in b_iso.items()}
        out = np.array([table.get(s, 0.0) for s in species])
    else:
        arr = np.asarray(b_iso, dtype=np.float64)
        out = np.full(n, float(arr)) if arr.ndim == 0 else arr.reshape(-1)
        if out.size != n:
            raise InputError(f"{out.size} Debye-Waller B values for {n} sites")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise InputError(f"Debye-Waller B must be finite and >= 0 Å², got {b_iso}")
    return out


def _is_hexagonal(lattice: np.ndarray, angle_tol: float = 5.0, length_tol: float = 0.01) -> bool:
    """pymatgen's ``Lattice.is_hexagonal`` test (two right angles, one of 60/120°, equal lengths)."""
    lengths = np.linalg.norm(lattice, axis=1)
    angles = []
    for i, j in ((1, 2), (0, 2), (0, 1)):
        cos = lattice[i] @ lattice[j] / (lengths[i] * lengths[j])
        angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    right = [i for i in range(3) if abs(angles[i] - 90) <= angle_tol]
    hexa = [i for i in range(3) if abs(angles[i] - 60) <= angle_tol or abs(angles[i] - 120) <= angle_tol]
    return len(right) == 2 and len(hexa) == 1 and abs(lengths[right[0]] - lengths[right[1]]) <= length_tol


# ----- reciprocal lattice ------------------------------------------------------------------
@lru_cache(maxsize=64)
def _hkl_box(n0: int, n1: int, n2: int, half: bool) -> np.ndarray:
    """[K, 3] all hkl with |h| <= n0, |k| <= n1, |l| <= n2 except (000), one Friedel half if ``half``."""
    ranges = [np.arange(-n, n + 1) for n in (n0, n1, n2)]
    hkl = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
    h, k, l = hkl.T
    keep = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0)) if half else np.any(hkl != 0, axis=1)
    out = hkl[keep]
    out.flags.writeable = False  # shared by the cache
    return out


def enumerate_hkl(lattice, g_max: float, g_min: float = 0.0, half: bool = True):
    """Miller indices of all reciprocal points with g_min <= |g| <= g_max (|g| = 1/d, Å⁻¹).

    Args:
        lattice: [3, 3] or [B, 3, 3] lattice rows (Å); with a batch, the union over the batch.
        g_max, g_min: bounds on |g| = Q / 2π (Å⁻¹).
        half: keep one of each Friedel pair (h, k, l lexicographically positive), never (000).

    Returns:
        hkl [M, 3] int64 and |g| [M] (or [B, M] for a batch), sorted by |g| of the first crystal.
    """
    lat = np.asarray(lattice, dtype=np.float64)
    batched = lat.ndim == 3
    lat = lat.reshape(-1, 3, 3)
    # |h| = |g · a| <= g_max |a|: the box that contains the sphere.
    nmax = np.floor(g_max * np.linalg.norm(lat, axis=-1).max(0) + 1e-9).astype(int)
    hkl = _hkl_box(*(int(n) for n in nmax), half)
    recip = np.linalg.inv(lat).transpose(0, 2, 1)  # rows b1, b2, b3 with a_i · b_j = δ_ij
    g = np.linalg.norm(hkl[None].astype(np.float64) @ recip, axis=-1)  # [B, M]
    inside = np.any((g <= g_max * (1 + 1e-12)) & (g >= g_min * (1 - 1e-12)), axis=0)
    hkl, g = hkl[inside], g[:, inside]
    order = np.argsort(g[0], kind="stable")
    hkl, g = hkl[order], g[:, order]
    return hkl.astype(np.int64), (g if batched else g[0])


def _g_limits(wl, two_theta_range, q_max, q_min):
    """(g_min, g_max) in Å⁻¹ from a 2θ range (with a wavelength) and/or Q bounds."""
    if wl is not None:
        lo, hi = (0.0, 180.0) if two_theta_range is None else map(float, two_theta_range)
        if not (0 <= lo < hi <= 180):
            raise InputError(f"2θ range must satisfy 0 <= min < max <= 180°, got {two_theta_range}")
        g_min, g_max = (2 * math.sin(math.radians(t / 2)) / wl for t in (lo, hi))
    else:
        if q_max is None:
            raise InputError("give a wavelength (for a 2θ range) or q_max (Å⁻¹) to bound the pattern")
        g_min, g_max = 0.0, math.inf
    if q_max is not None:
        if not (np.isfinite(q_max) and q_max > 0):
            raise InputError(f"q_max must be a positive number of Å⁻¹, got {q_max}")
        g_max = min(g_max, q_max / (2 * math.pi))
    if q_min is not None:
        g_min = max(g_min, float(q_min) / (2 * math.pi))
    if g_min >= g_max:
        raise InputError(f"empty range: Q from {2 * math.pi * g_min:.4g} to {2 * math.pi * g_max:.4g} Å⁻¹")
    return g_min, g_max


# ----- peak list ----------------------------------------------------------------------------
@dataclass
class BraggPeaks:
    """Merged powder peaks of one crystal (P peaks from M reflections).

    Attributes:
        q: [P] Q = 2π/d (Å⁻¹).  d: [P] d-spacing (Å).
        two_theta: [P] 2θ (degrees), or None without a wavelength.
        multiplicity: [P] number of reflections (hkl and -h-k-l counted separately) in the peak.
        f2: [P] mean |F|² over the reflections of the peak (electrons² for x-rays, fm² for neutrons).
        intensity: [P] absolute integrated intensity Σ |F|² × LP (see the module docstring).
        hkl: [M, 3] every reflection, grouped by peak; peak_index: [M] its peak.
        wavelength (Å or None), radiation, hexagonal (hkl families then in 4-index hkil form).
    """

    q: np.ndarray
    d: np.ndarray
    two_theta: np.ndarray | None
    multiplicity: np.ndarray
    f2: np.ndarray
    intensity: np.ndarray
    hkl: np.ndarray
    peak_index: np.ndarray
    wavelength: float | None
    radiation: str
    hexagonal: bool = False
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.q.size

    @property
    def x(self) -> np.ndarray:
        """[P] 2θ (degrees) if there is a wavelength, else Q (Å⁻¹)."""
        return self.q if self.two_theta is None else self.two_theta

    @property
    def intensity_scaled(self) -> np.ndarray:
        """[P] intensity scaled so that the strongest peak is 100 (pymatgen's ``scaled=True``)."""
        top = self.intensity.max() if self.intensity.size else 1.0
        return self.intensity * (100.0 / top) if top > 0 else self.intensity.copy()

    @cached_property
    def families(self) -> list[dict[tuple, int]]:
        """Per peak, {representative hkl: count} grouping reflections whose |indices| are permutations
        of each other (pymatgen's ``get_unique_families``; 4-index hkil for hexagonal lattices)."""
        hkl = self.hkl
        if self.hexagonal:
            hkl = np.column_stack([hkl[:, 0], hkl[:, 1], -hkl[:, 0] - hkl[:, 1], hkl[:, 2]])
        key = np.sort(np.abs(hkl), axis=1)
        n = hkl.shape[1]
        # Sort by peak, then family key, then hkl descending: the first row of a group is its max.
        cols = [-hkl[:, i] for i in reversed(range(n))] + [key[:, i] for i in reversed(range(n))]
        order = np.lexsort(cols + [self.peak_index])
        pk, ky, hk = self.peak_index[order], key[order], hkl[order]
        new = np.ones(order.size, bool)
        new[1:] = (pk[1:] != pk[:-1]) | np.any(ky[1:] != ky[:-1], axis=1)
        starts = np.flatnonzero(new)
        counts = np.diff(np.append(starts, order.size))
        out: list[dict[tuple, int]] = [{} for _ in range(len(self))]
        for p, h, c in zip(pk[starts].tolist(), hk[starts].tolist(), counts.tolist()):
            out[p][tuple(h)] = c
        return out


def _structure_factor_sq(hkl, g, frac, occ, elem_idx, b_site, table):
    """|F|² [M] for reflections hkl [M, 3] with |g| [M]."""
    s2 = (0.5 * g) ** 2
    f = _eval_ff(table, s2)  # [M, E]
    # Group sites by (element, B) so the phase sums become one matmul per cos/sin.
    type_of: dict[tuple, int] = {}
    t_idx = np.array([type_of.setdefault(key, len(type_of)) for key in zip(elem_idx.tolist(), b_site.tolist())])
    types = np.array(list(type_of), dtype=np.float64).reshape(-1, 2)
    w = np.zeros((frac.shape[0], types.shape[0]))
    w[np.arange(frac.shape[0]), t_idx] = occ
    amp = f[:, types[:, 0].astype(int)]  # [M, T]
    if np.any(types[:, 1] != 0):
        amp = amp * np.exp(-types[:, 1][None, :] * s2[:, None])
    phase = (2 * math.pi) * (hkl.astype(np.float64) @ frac.T)  # [M, N]
    fr = ((np.cos(phase) @ w) * amp).sum(1)
    fi = ((np.sin(phase) @ w) * amp).sum(1)
    return fr * fr + fi * fi


def bragg_peaks(crystal, wavelength: float | str | None = 1.5406, radiation: str = "xray",
                two_theta_range=(0.0, 180.0), q_max: float | None = None, q_min: float | None = None,
                b_iso=None, lorentz_polarization: bool = True, form_factors: str = "waasmaier-kirfel",
                merge_tol: float | None = None, min_intensity: float = MIN_SCALED_INTENSITY) -> BraggPeaks:
    """Powder peak list of a crystal (numpy, vectorised).

    Args:
        crystal: :class:`Crystal` (or pymatgen Structure / ase.Atoms).
        wavelength: Å or a name such as ``'CuKa'``; None for a Q-only pattern (then give q_max).
        radiation: ``'xray'`` (form factors) or ``'neutron'`` (coherent lengths b, fm).
        two_theta_range: (min, max) 2θ in degrees (with a wavelength).
        q_max, q_min: optional bounds in Å⁻¹ (combined with the 2θ range).
        b_iso: Debye-Waller B (Å²): a float, {element: B} or [N] per site; factor exp(-B s²), s = sinθ/λ.
        lorentz_polarization: apply LP (see module docstring); False gives plain multiplicity × |F|².
        form_factors: ``'waasmaier-kirfel'`` (default) or ``'pymatgen'`` (pymatgen's own fit, read
            from its ``atomic_scattering_params.json``; reproduces ``XRDCalculator`` exactly).
        merge_tol: reflections closer than this merge into one peak (default 1e-5° 2θ, or 1e-6 Å⁻¹).
        min_intensity: drop peaks below this on the 0-100 scale (numerical zeros of extinctions).

    Returns:
        :class:`BraggPeaks`, sorted by increasing Q.
    """
    cr = _as_crystal(crystal)
    wl = _wavelength(wavelength)
    radiation = normalize_radiation(radiation)
    kind = _form_factor_kind(form_factors)
    g_min, g_max = _g_limits(wl, two_theta_range, q_max, q_min)
    hkl, g = enumerate_hkl(cr.lattice, g_max, g_min)
    elements = sorted(set(cr.species))
    elem_idx = np.array([elements.index(s) for s in cr.species])
    table = _scatterer_table(elements, radiation, kind)
    b_site = _site_b_iso(b_iso, cr.species, len(cr))
    f2 = _structure_factor_sq(hkl, g, cr.frac_coords, cr.occupancies, elem_idx, b_site, table)

    if wl is not None:
        theta = np.arcsin(np.clip(0.5 * wl * g, -1.0, 1.0))
        x = np.degrees(2 * theta)
        tol = TWO_THETA_TOL if merge_tol is None else merge_tol
        if lorentz_polarization:
            sin, cos = np.sin(theta), np.cos(theta)
            lp = 1.0 / (sin * sin * cos)
            if radiation == "xray":
                lp = lp * (1 + np.cos(2 * theta) ** 2)
        else:
            lp = np.ones_like(g)
    else:
        x = 2 * math.pi * g
        tol = Q_TOL if merge_tol is None else merge_tol
        lp = 1.0 / (x * x) if lorentz_polarization else np.ones_like(g)
    inten = 2.0 * f2 * lp  # the Friedel mate -g (not enumerated) contributes the same

    # Merge reflections at equal d: sorted already, a new peak starts wherever the gap exceeds tol.
    new = np.ones(g.size, bool)
    new[1:] = np.diff(x) > tol
    peak_of = np.cumsum(new) - 1
    n_peaks = int(peak_of[-1]) + 1 if g.size else 0
    count = np.bincount(peak_of, minlength=n_peaks)
    p_int = np.bincount(peak_of, inten, minlength=n_peaks)
    p_f2 = np.bincount(peak_of, f2, minlength=n_peaks) / np.maximum(count, 1)
    p_g = np.bincount(peak_of, g, minlength=n_peaks) / np.maximum(count, 1)
    keep = p_int > (min_intensity / 100.0) * (p_int.max() if n_peaks else 0.0)
    remap = np.cumsum(keep) - 1
    rows = keep[peak_of]
    hkl_all = np.concatenate([hkl[rows], -hkl[rows]])
    pidx = np.concatenate([remap[peak_of[rows]]] * 2)
    order = np.argsort(pidx, kind="stable")
    p_g = p_g[keep]
    q = 2 * math.pi * p_g
    tth = None if wl is None else np.degrees(2 * np.arcsin(np.clip(0.5 * wl * p_g, -1.0, 1.0)))
    return BraggPeaks(
        q=q, d=1.0 / p_g, two_theta=tth, multiplicity=2 * count[keep], f2=p_f2[keep], intensity=p_int[keep],
        hkl=hkl_all[order], peak_index=pidx[order], wavelength=wl, radiation=radiation,
        hexagonal=_is_hexagonal(cr.lattice),
        metadata={"form_factors": kind, "lorentz_polarization": lorentz_polarization, "b_iso": b_iso},
    )


# ----- differentiable pattern (torch) -------------------------------------------------------
def _as_tensor(v, dtype, device=None):
    if isinstance(v, torch.Tensor):
        return v.to(dtype=dtype, device=device) if v.dtype != dtype else v
    return torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device)


def _species_index(species, batch: int, n: int):
    """elements list and [B, N] index tensor from a shared list or one list per crystal."""
    if len(species) and not isinstance(species[0], str):
        rows = [[normalize_symbol(s) for s in row] for row in species]
        if len(rows) != batch or any(len(r) != n for r in rows):
            raise InputError(f"species must be N={n} symbols or {batch} lists of N symbols")
    else:
        rows = [[normalize_symbol(s) for s in species]] * batch
        if len(rows[0]) != n:
            raise InputError(f"{len(rows[0])} species for {n} fractional coordinates")
    elements = sorted({s for r in rows for s in r})
    idx = torch.tensor([[elements.index(s) for s in r] for r in rows], dtype=torch.long)
    return elements, idx, rows


def structure_factors_torch(lattice: torch.Tensor, frac: torch.Tensor, species, hkl, *,
                            radiation: str = "xray", occupancies=None, b_iso=None,
                            form_factors: str = "waasmaier-kirfel"):
    """|g| and |F|² of given reflections, differentiable in lattice, positions, occupancies and B.

    Args:
        lattice: [B, 3, 3] rows (Å); frac: [B, N, 3]; species: N symbols or B lists of N.
        hkl: [M, 3] integer Miller indices (no (000)).
        occupancies: [N] / [B, N] or None; b_iso: float, {element: B}, [N] or tensor [B, N] (Å²).

    Returns:
        g [B, M] (Å⁻¹, = 1/d) and |F|² [B, M].
    """
    radiation = normalize_radiation(radiation)
    kind = _form_factor_kind(form_factors)
    dtype = lattice.dtype
    bsz, n = frac.shape[0], frac.shape[1]
    elements, e_idx, rows = _species_index(species, bsz, n)
    hkl_t = _as_tensor(hkl, dtype, lattice.device)
    recip = torch.linalg.inv(lattice).transpose(-1, -2)
    g = torch.linalg.norm(hkl_t @ recip, dim=-1)  # [B, M]
    s2 = 0.25 * g * g
    f = _eval_ff(_scatterer_table(elements, radiation, kind), s2)  # [B, M, E]
    amp = torch.gather(f, 2, e_idx[:, None, :].expand(bsz, g.shape[1], n).to(f.device))  # [B, M, N]
    if occupancies is not None:
        occ = _as_tensor(occupancies, dtype, lattice.device)
        amp = amp * (occ if occ.dim() == 1 else occ[:, None, :])
    if b_iso is not None:
        if isinstance(b_iso, torch.Tensor):
            bb = b_iso.to(dtype)
            bb = bb.expand(bsz, n) if bb.dim() <= 1 else bb
        else:
            bb = torch.tensor(np.stack([_site_b_iso(b_iso, r, n) for r in rows]), dtype=dtype)
        amp = amp * torch.exp(-bb[:, None, :] * s2[..., None])
    phase = (2 * math.pi) * (hkl_t @ frac.transpose(-1, -2))  # [B, M, N]
    fr = (amp * torch.cos(phase)).sum(-1)
    fi = (amp * torch.sin(phase)).sum(-1)
    return g, fr * fr + fi * fi


def powder_pattern_torch(lattice, frac, species, grid, *, wavelength=None, x_unit: str | None = None,
                         radiation: str = "xray", occupancies=None, b_iso=None, scale=1.0,
                         fwhm=None, profile: str = "gaussian", eta: float = 0.5, size=None,
                         size_model: str = "scherrer", k: float = profiles.SCHERRER_K,
                         sigma_q: float | None = None, hkl=None, margin: float = 0.05,
                         form_factors: str = "waasmaier-kirfel", lorentz_polarization: bool = True):
    """Differentiable powder pattern on a grid, batched over crystals with the same atom count.

    The hkl set is enumerated once (without gradient) from the current lattice for the grid's
    Q range plus peak tails plus ``margin`` (relative); pass ``hkl`` to fix it across an
    optimisation. Each Friedel pair is one reflection with weight 2. When the lattice requires grad,
    every reflection is rendered separately, so the pattern and its gradient stay exact when a
    strain breaks the symmetry; with a fixed lattice, reflections at equal |g| are merged first
    (exact, and ~multiplicity times cheaper). Memory: reflections x grid points for the profiles
    (windowed above ``profiles.DENSE_BUDGET``) and reflections x atoms for the structure factors.

    Peak widths: instrumental ``fwhm`` (x units; default 0.1° 2θ or 0.01 Å⁻¹) combined with the
    Scherrer width (``size_model='scherrer'``, K = ``k``) in quadrature, sqrt(fwhm² + fwhm_size²),
    rendered as ``profile`` ('gaussian', 'lorentzian' or 'pseudo-voigt' with Lorentzian fraction
    ``eta``; simple eta mixing, no Thompson-Cox-Hastings). ``size_model='pxrdnet'`` instead
    renders Σ w_m sinc²-kernels in Q (see :mod:`profiles`) and then, if ``sigma_q`` (Å⁻¹) is given,
    convolves with a Gaussian of that σ on an internal uniform Q grid; ``fwhm`` is not used then.
    Every peak has unit area in the output x unit, so areas equal the integrated intensities of
    :func:`bragg_peaks` (in 2θ a Q-domain kernel is multiplied by dQ/d2θ).

    Args:
        lattice: [3, 3] or [B, 3, 3] lattice rows (Å), tensor or array.
        frac: [N, 3] or [B, N, 3] fractional coordinates.
        species: N symbols (shared) or B lists of N symbols.
        grid: [G] increasing 2θ (degrees, needs ``wavelength``) or Q (Å⁻¹).
        wavelength: Å or a name ('CuKa'); None means Q.
        x_unit: 'tth' or 'q' (default: 'tth' with a wavelength, else 'q').
        radiation, occupancies, b_iso, form_factors, lorentz_polarization: as in :func:`bragg_peaks`.
        scale: scalar or [B] factor (may require grad).
        size: crystallite size τ (Å), scalar or [B]; None for no size broadening.

    Returns:
        [G] (or [B, G] for batched input) intensities, differentiable in lattice, frac, scale,
        occupancies and b_iso tensors.
    """
    wl = _wavelength(wavelength)
    x_unit = x_unit or ("tth" if wl is not None else "q")
    if x_unit not in ("tth", "q"):
        raise InputError(f"x unit must be 'tth' or 'q', got {x_unit!r}")
    if x_unit == "tth" and wl is None:
        raise InputError("a 2θ grid needs a wavelength; give one or use x_unit='q'")
    if size_model not in ("scherrer", "pxrdnet"):
        raise InputError(f"unknown size model {size_model!r}; use 'scherrer' or 'pxrdnet'")
    if size_model == "pxrdnet" and size is None:
        raise InputError("size_model='pxrdnet' needs a crystallite size (Å)")
    if size is not None:
        profiles.check_size(size, k)
    radiation = normalize_radiation(radiation)
    dtype = lattice.dtype if isinstance(lattice, torch.Tensor) and lattice.is_floating_point() else torch.float64
    lat = _as_tensor(lattice, dtype)
    xyz = _as_tensor(frac, dtype)
    batched = lat.dim() == 3
    lat = lat.reshape(-1, 3, 3)
    xyz = xyz.reshape(lat.shape[0] if xyz.dim() == 3 else 1, -1, 3).expand(lat.shape[0], -1, -1)
    grid_t = _as_tensor(grid, dtype, lat.device).reshape(-1)
    if grid_t.numel() == 0 or not bool(torch.isfinite(grid_t).all()) or bool((torch.diff(grid_t) <= 0).any()):
        raise InputError("grid must be finite and strictly increasing")
    if fwhm is None:
        fwhm = 0.1 if x_unit == "tth" else 0.01
    if not (np.isfinite(fwhm) and fwhm >= 0):
        raise InputError(f"fwhm must be >= 0, got {fwhm}")
    if fwhm == 0 and size is None and size_model == "scherrer":
        raise InputError("peaks need a width: give fwhm > 0 or a crystallite size")

    q_hi = (4 * math.pi * math.sin(math.radians(min(float(grid_t[-1]), 180.0) / 2)) / wl) if x_unit == "tth" \
        else float(grid_t[-1])
    g_max = _g_reach(q_hi, x_unit, wl, fwhm, size, size_model, k, margin)
    if hkl is None:
        hkl, _ = enumerate_hkl(lat.detach().cpu().numpy(), g_max)
    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)

    g, f2 = structure_factors_torch(lat, xyz, species, hkl, radiation=radiation, occupancies=occupancies,
                                    b_iso=b_iso, form_factors=form_factors)
    # Reflections outside the Ewald limit or the enumeration sphere: zero weight, fixed mask.
    inside = g.detach() <= g_max * (1 + 1e-9)
    q = 2 * math.pi * g
    if wl is not None:
        sin_t = torch.clamp(0.5 * wl * g, max=1 - 1e-12)
        theta = torch.asin(sin_t)
        if lorentz_polarization:
            lp = 1.0 / (sin_t * sin_t * torch.cos(theta))
            if radiation == "xray":
                lp = lp * (1 + torch.cos(2 * theta) ** 2)
        else:
            lp = torch.ones_like(g)
    else:
        theta = None
        lp = 1.0 / (q * q) if lorentz_polarization else torch.ones_like(g)
    scale_t = _as_tensor(scale, dtype)
    scale_t = scale_t[:, None] if scale_t.dim() == 1 else scale_t
    weight = torch.where(inside, 2.0 * f2 * lp, torch.zeros((), dtype=dtype)) * scale_t

    if not lat.requires_grad:
        # Fixed lattice: reflections at equal |g| sit at the same place for good, so summing their
        # weights first is exact and cuts the rendering cost by roughly the multiplicity.
        g, weight = _merge_equal_g(g, weight)
        q = 2 * math.pi * g
        if wl is not None:
            theta = torch.asin(torch.clamp(0.5 * wl * g, max=1 - 1e-12))

    size_t = None if size is None else _as_tensor(size, dtype)
    if size_t is not None and size_t.dim() == 1:
        size_t = size_t[:, None]
    if size_model == "pxrdnet":
        out = _render_pxrdnet(grid_t, x_unit, wl, q, weight, size_t, sigma_q)
    else:
        if x_unit == "tth":
            center = torch.rad2deg(2 * theta)
            width2 = torch.full_like(center, float(fwhm) ** 2)
            if size_t is not None:
                width2 = width2 + profiles.scherrer_fwhm_two_theta(center, wl, size_t, k) ** 2
        else:
            center = q
            width2 = torch.full_like(center, float(fwhm) ** 2)
            if size_t is not None:
                width2 = width2 + profiles.scherrer_fwhm_q(size_t, k) ** 2
        out = profiles.render_peaks(grid_t, center, weight, torch.sqrt(width2), profile, eta)
    return out if batched else out[0]


def _g_reach(q_hi, x_unit, wl, fwhm, size, size_model, k, margin=0.05) -> float:
    """|g| (Å⁻¹) up to which reflections can still reach a grid ending at q_hi: the grid edge plus
    generous peak tails (10 instrumental FWHM, 20 Scherrer widths or 30 sinc² widths), plus margin."""
    tail = 10 * (fwhm * (2 * math.pi / wl * math.pi / 180) if x_unit == "tth" else fwhm) if fwhm else 0.0
    if size is not None:
        tau_min = float(torch.as_tensor(size).min())
        tail += 20 * 2 * math.pi * k / tau_min if size_model == "scherrer" else 60 * math.pi / tau_min
    g_max = (q_hi + tail) * (1 + margin) / (2 * math.pi)
    return min(g_max, 2.0 / wl) if wl is not None else g_max


def _merge_equal_g(g: torch.Tensor, weight: torch.Tensor):
    """Sum the weights [B, M] of reflections whose |g| agree (to 1e-10 Å⁻¹) in every crystal."""
    keys = np.round(g.detach().cpu().numpy() * 1e10).astype(np.int64).T  # [M, B]
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inv = torch.from_numpy(inverse.reshape(-1)).to(g.device)
    merged = torch.zeros(weight.shape[0], first.size, dtype=weight.dtype, device=weight.device)
    return g[:, torch.from_numpy(first).to(g.device)], merged.index_add(1, inv, weight)


def _render_pxrdnet(grid, x_unit, wl, q, weight, size, sigma_q):
    """sinc² kernels in Q (+ optional Gaussian σ_Q), as a density per output x unit (numpy or torch)."""
    xp = torch if isinstance(grid, torch.Tensor) else np
    if x_unit == "tth":
        half_angle = xp.deg2rad(grid) / 2
        q_grid = 4 * math.pi * xp.sin(half_angle) / wl
        # dQ/d(2θ in degrees): turns a density per Å⁻¹ into one per degree.
        jac = 2 * math.pi / wl * xp.cos(half_angle) * (math.pi / 180)
    else:
        q_grid, jac = grid, None
    if sigma_q:
        if sigma_q < 0:
            raise InputError(f"sigma_q must be >= 0 Å⁻¹, got {sigma_q}")
        lo, hi = float(q_grid.min()) - 5 * sigma_q, float(q_grid.max()) + 5 * sigma_q
        step = min(float(xp.diff(q_grid).min()), sigma_q / 4, 0.5 / float(size.max()))
        fine = np.arange(max(lo, 0.0), hi + step, step)
        if xp is torch:
            fine = torch.as_tensor(fine, dtype=grid.dtype, device=grid.device)
        y = profiles.render_sinc2(fine, q, weight, size)
        y = profiles.gaussian_smooth_uniform(y, step, sigma_q)
        y = _interp(q_grid, fine, y)
    else:
        y = profiles.render_sinc2(q_grid, q, weight, size)
    return y if jac is None else y * jac


def _interp(x, xp_, fp):
    """Linear interpolation of fp [..., K] at x [G] (xp_ [K] increasing); for tensors grad flows to fp."""
    if not isinstance(fp, torch.Tensor):
        flat = fp.reshape(-1, fp.shape[-1])
        return np.stack([np.interp(x, xp_, row) for row in flat]).reshape(fp.shape[:-1] + (x.shape[0],))
    idx = torch.clamp(torch.searchsorted(xp_, x.detach().contiguous()) - 1, 0, xp_.numel() - 2)
    t = ((x - xp_[idx]) / (xp_[idx + 1] - xp_[idx])).clamp(0, 1)
    return fp[..., idx] * (1 - t) + fp[..., idx + 1] * t


# ----- user-facing ---------------------------------------------------------------------------
def simulate_xrd(crystal, wavelength: float | str | None = None, kind: str = "xrd", x: str | None = None,
                 grid=None, fwhm: float | None = None, size: float | None = None,
                 size_model: str = "scherrer", profile: str = "gaussian", eta: float = 0.5,
                 k: float = profiles.SCHERRER_K, sigma_q: float | None = None, b_iso=None,
                 form_factors: str = "waasmaier-kirfel", lorentz_polarization: bool = True,
                 two_theta_range=(5.0, 90.0), q_range=(0.5, 8.0), step: float | None = None) -> Pattern:
    """Simulated powder pattern of a crystal as a :class:`Pattern`.

    Args:
        crystal: :class:`Crystal` (or pymatgen Structure / ase.Atoms).
        wavelength: Å or a name ('CuKa', 'MoKa'...). None: a Q pattern with the λ-free 1/Q² Lorentz
            factor and no polarisation (see the module docstring).
        kind: 'xrd' (x-rays, form factors) or 'nd' (neutrons, coherent lengths b).
        x: 'tth' (2θ in degrees; needs a wavelength) or 'q' (Å⁻¹). Default 'tth' with a wavelength.
        grid: [G] x values; default ``two_theta_range`` in steps of 0.02° or ``q_range`` in steps of
            0.005 Å⁻¹ (or ``step``).
        fwhm: instrumental FWHM in x units (default 0.1° or 0.01 Å⁻¹).
        size: crystallite size τ (Å) or None. ``size_model='scherrer'`` adds the per-peak Scherrer
            width K λ/(τ cos θ) (ΔQ = 2πK/τ) in quadrature; ``'pxrdnet'`` convolves the sticks with
            sinc²(Qτ/2), then a Gaussian of σ = ``sigma_q`` Å⁻¹ if given (``fwhm`` unused).
        profile, eta: peak shape ('gaussian', 'lorentzian', 'pseudo-voigt' with Lorentzian fraction eta).
        b_iso, form_factors, lorentz_polarization: as in :func:`bragg_peaks`.

    Returns:
        Pattern of kind 'xrd' or 'nd'; y is absolute (peak areas = integrated intensities of
        :func:`bragg_peaks`); ``metadata`` records every parameter and the peak count.
    """
    if kind not in ("xrd", "nd"):
        raise InputError(f"kind must be 'xrd' or 'nd', got {kind!r}")
    cr = _as_crystal(crystal)
    wl = _wavelength(wavelength)
    x = x or ("tth" if wl is not None else "q")
    if x not in ("tth", "q"):
        raise InputError(f"x must be 'tth' or 'q', got {x!r}")
    if x == "tth" and wl is None:
        raise InputError("a 2θ axis needs a wavelength; give one (e.g. 'CuKa') or use x='q'")
    if size_model not in ("scherrer", "pxrdnet"):
        raise InputError(f"unknown size model {size_model!r}; use 'scherrer' or 'pxrdnet'")
    if size_model == "pxrdnet":
        if size is None:
            raise InputError("size_model='pxrdnet' needs a crystallite size (Å)")
        if fwhm is not None:
            raise InputError("size_model='pxrdnet' takes no fwhm; give sigma_q (Å⁻¹) for extra Gaussian broadening")
    if size is not None:
        profiles.check_size(size, k)
    if grid is None:
        lo, hi = two_theta_range if x == "tth" else q_range
        if x == "q" and wl is not None:
            hi = min(hi, 4 * math.pi / wl)
        st = step or (0.02 if x == "tth" else 0.005)
        grid = np.arange(lo, hi + 0.5 * st, st)
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(np.diff(grid) <= 0):
        raise InputError("grid must be finite and strictly increasing")
    if fwhm is None and size_model == "scherrer":
        fwhm = 0.1 if x == "tth" else 0.01
    radiation = "xray" if kind == "xrd" else "neutron"

    # Every peak that can reach the grid (same rule as powder_pattern_torch, so the two agree).
    q_hi = float(grid[-1]) if x == "q" else 4 * math.pi * math.sin(math.radians(min(grid[-1], 180.0) / 2)) / wl
    g_max = _g_reach(q_hi, x, wl, fwhm, size, size_model, k)
    peaks = bragg_peaks(cr, wl, radiation, None, q_max=2 * math.pi * g_max * (1 + 1e-12), b_iso=b_iso,
                        lorentz_polarization=lorentz_polarization, form_factors=form_factors, min_intensity=0.0)

    # numpy all the way: no torch intra-op threads for a one-off pattern
    if size_model == "pxrdnet":
        y = _render_pxrdnet(grid, x, wl, peaks.q[None], peaks.intensity[None], np.float64(size), sigma_q)[0]
    else:
        center = peaks.two_theta if x == "tth" else peaks.q
        width2 = np.full_like(center, fwhm**2)
        if size is not None:
            width2 += (profiles.scherrer_fwhm_two_theta(center, wl, float(size), k) if x == "tth"
                       else profiles.scherrer_fwhm_q(float(size), k)) ** 2
        y = profiles.render_peaks(grid, center, peaks.intensity, np.sqrt(width2), profile, eta)
    meta = {
        "simulator": "nanosolve.scattering.bragg.simulate_xrd", "crystal": cr.name or cr.formula,
        "kind": kind, "radiation": radiation, "wavelength": wl, "x": x, "fwhm": fwhm, "profile": profile,
        "eta": eta if profile != "gaussian" else None, "size": size, "size_model": size_model if size else None,
        "scherrer_k": k, "sigma_q": sigma_q, "b_iso": b_iso, "form_factors": _form_factor_kind(form_factors),
        "lorentz_polarization": lorentz_polarization, "n_peaks": len(peaks),
    }
    return Pattern(grid, y, kind=kind, x_unit=x, wavelength=wl, radiation=radiation, metadata=meta)
