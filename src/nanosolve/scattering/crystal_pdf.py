"""The reduced pair distribution function G(r) of a periodic crystal (optionally a spherical nanocrystal).

Convention (the PDFgui / PDFfit2 one, for a comparison with measured PDFs)::

    G(r) = 4π r [ρ(r) - ρ0] = Σ_shells (w_s / d_s) [N(r - d_s; σ) - N(r + d_s; σ)] - 4π ρ0 r

* the sum runs over every pair (i in the unit cell, j anywhere in the crystal, j ≠ i) at distance
  d_s ≤ rmax + 8σ, found with the vesin periodic neighbour list;
* pair weights w_ij = o_i o_j f_i f_j / (N <f>²) with N = Σ_cell o_i, <f> = Σ o_i f_i / N and f the
  x-ray f0(Q=0) (≈ Z, Waasmaier-Kirfel) or the neutron coherent length b (fm);
* N(x; σ) is a unit Gaussian; σ² = U_i + U_j = 2·biso/(8π²) (uncorrelated isotropic motion);
  the mirror term N(r + d) makes each peak the exact sine transform of sin(Qd)/d·exp(-σ²Q²/2),
  i.e. the same G(r) the Debye equation gives (see :mod:`nanosolve.scattering.debye`);
* ρ0 = N / V (atoms Å⁻³);
* ``qdamp`` multiplies G by exp(-(qdamp r)²/2) (instrumental resolution, as PDFgui);
* ``diameter`` multiplies G by the spherical-particle envelope (shape function)
  γ0(r) = 1 - 3r/(2d) + r³/(2d³) for r ≤ d, 0 beyond;
* ``qmax`` (optional) adds termination ripples: the peak part is then the sine transform of its
  F(Q) truncated at Qmax; None gives the untruncated (ripple-free) G(r).
"""

from __future__ import annotations

import math

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.form_factors import normalize_radiation, scattering_factors
from nanosolve.scattering.memory import check_memory
from nanosolve.scattering.pattern import Pattern
from nanosolve.structures.crystal import Crystal


def sphere_envelope(r, diameter: float) -> np.ndarray:
    """γ0(r) of a sphere of ``diameter`` Å: 1 - 3r/(2d) + r³/(2d³) for r ≤ d, else 0."""
    r = np.asarray(r, dtype=float)
    x = r / diameter
    return np.where(r <= diameter, 1.0 - 1.5 * x + 0.5 * x**3, 0.0)


def pair_shells(crystal: Crystal, cutoff: float, radiation: str = "xray", tol: float = 1e-5):
    """Distinct pair distances within ``cutoff`` and their weights.

    Returns:
        d [S] shell distances (Å), w [S] summed pair weights o_i o_j f_i f_j / (N <f>²) per cell atom,
        rho0 (atoms Å⁻³). Pairs closer than 1e-4 Å (a site with itself, or two species sharing a
        partially occupied site) are left out.
    """
    from vesin import NeighborList

    if len(crystal) == 0:
        raise InputError("crystal has no atoms")
    elements = sorted(set(crystal.species))
    f_el = scattering_factors(elements, np.zeros(1), radiation)[:, 0]
    f = f_el[[elements.index(s) for s in crystal.species]]
    occ = crystal.occupancies
    n = float(occ.sum())
    f_avg = float((occ * f).sum() / n)
    rho0 = n / crystal.volume
    # peak count estimate: every cell atom sees ~ 4/3 π cutoff³ ρ0 partners
    expected = len(crystal) * (4.0 / 3.0) * math.pi * cutoff**3 * len(crystal) / crystal.volume
    check_memory(int(expected * 40 + 64 * 1024**2), f"pair list of {crystal.formula} up to {cutoff:.1f} Å",
                 hint="use a smaller rmax")
    nl = NeighborList(cutoff=cutoff, full_list=True)
    i, j, d = nl.compute(points=crystal.cart_coords, box=crystal.lattice, periodic=True, quantities="ijd")
    keep = d > 1e-4
    i, j, d = i[keep], j[keep], d[keep]
    w = occ[i] * occ[j] * f[i] * f[j] / (n * f_avg**2)
    key = np.round(d / tol).astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    w_s = np.bincount(inverse, weights=w)
    d_s = np.bincount(inverse, weights=w * d) / np.where(w_s != 0, w_s, 1.0)
    d_s = np.where(w_s != 0, d_s, uniq * tol)
    return d_s, w_s, rho0


def crystal_pdf(
    crystal: Crystal,
    rmin: float = 0.0,
    rmax: float = 20.0,
    rstep: float = 0.01,
    qmax: float | None = None,
    qdamp: float = 0.0,
    biso: float = 0.3,
    radiation: str = "xray",
    diameter: float | None = None,
) -> Pattern:
    """G(r) (Å⁻²) of ``crystal`` on ``arange(rmin, rmax, rstep)`` (Å); see the module docstring.

    Args:
        crystal: the periodic crystal (partial occupancies allowed): Crystal, pymatgen Structure,
            periodic ase.Atoms or a structure file path.
        rmin, rmax, rstep: r grid, Å.
        qmax: Å⁻¹; if given, the peaks carry the termination ripples of a Qmax-truncated transform.
        qdamp: Å⁻¹, Gaussian damping exp(-(qdamp r)²/2).
        biso: isotropic displacement B (Å²) of every atom; sets the peak width σ = √(2B/8π²).
            B = 0 would give delta peaks; they are then drawn with σ = rstep.
        radiation: ``'xray'`` or ``'neutron'``.
        diameter: Å; multiply by the spherical envelope γ0(r) of a particle of this diameter.
    """
    from nanosolve.scattering.bragg import _as_crystal

    crystal = _as_crystal(crystal)  # pymatgen Structure, periodic ase.Atoms, a CIF path
    radiation = normalize_radiation(radiation)
    if not rstep > 0 or not rmax > rmin or rmin < 0:
        raise InputError(f"bad r grid rmin={rmin}, rmax={rmax}, rstep={rstep}")
    if biso < 0 or qdamp < 0:
        raise InputError("biso and qdamp must be non-negative")
    if diameter is not None and not diameter > 0:
        raise InputError(f"particle diameter must be positive, got {diameter}")
    if qmax is not None and not qmax > 0:
        raise InputError(f"qmax must be positive, got {qmax}")
    r = np.arange(rmin, rmax, rstep)
    sigma = max(math.sqrt(2.0 * biso / (8.0 * math.pi**2)), rstep)
    d, w, rho0 = pair_shells(crystal, rmax + 8.0 * sigma, radiation)
    if qmax is None:
        peaks = _gaussian_peaks(r, d, w, sigma)
    else:
        peaks = _terminated_peaks(r, d, w, sigma, qmax)
    g = peaks - 4.0 * math.pi * rho0 * r
    if qdamp:
        g = g * np.exp(-0.5 * (qdamp * r) ** 2)
    if diameter is not None:
        g = g * sphere_envelope(r, diameter)
    meta = {"engine": "nanosolve.crystal_pdf", "crystal": crystal.name or crystal.formula, "rho0": rho0,
            "biso": biso, "qdamp": qdamp, "qmax": qmax, "diameter": diameter, "radiation": radiation}
    return Pattern(r, g, "gr", "r", radiation=radiation, metadata=meta)


def _gaussian_peaks(r, d, w, sigma, block: int = 4_000_000) -> np.ndarray:
    """Σ_s (w_s/d_s) [N(r - d_s) - N(r + d_s)] on r, in blocks of shells (bounded memory)."""
    out = np.zeros(r.size)
    norm = 1.0 / (math.sqrt(2.0 * math.pi) * sigma)
    step = max(1, block // max(1, r.size))
    for s in range(0, d.size, step):
        ds, ws = d[s:s + step], w[s:s + step]
        minus = np.exp(-0.5 * ((r[:, None] - ds[None, :]) / sigma) ** 2)
        plus = np.exp(-0.5 * ((r[:, None] + ds[None, :]) / sigma) ** 2)
        out += (minus - plus) @ (ws / ds) * norm
    return out


def _terminated_peaks(r, d, w, sigma, qmax, block: int = 4_000_000) -> np.ndarray:
    """(2/π) ∫_0^Qmax F(Q) sin(Q r) dQ with F(Q) = Σ_s (w_s/d_s) sin(Q d_s) exp(-σ²Q²/2) (Simpson)."""
    from scipy.integrate import simpson

    dq = min(0.25 * math.pi / max(r.max(), d.max(), 1.0), 0.01)
    nq = int(math.ceil(qmax / dq)) | 1  # odd count for Simpson
    q = np.linspace(0.0, qmax, nq)
    fq = np.zeros(nq)
    step = max(1, block // nq)
    for s in range(0, d.size, step):
        ds, ws = d[s:s + step], w[s:s + step]
        fq += np.sin(np.outer(q, ds)) @ (ws / ds)
    fq *= np.exp(-0.5 * (sigma * q) ** 2)
    out = np.zeros(r.size)
    step = max(1, block // nq)
    for s in range(0, r.size, step):
        out[s:s + step] = simpson(np.sin(np.outer(r[s:s + step], q)) * fq, x=q, axis=1)
    return out * (2.0 / math.pi)
