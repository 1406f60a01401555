"""Cut finite nanoparticles out of crystals (CHILI's rule, and a plain sphere).

CHILI rule (Friis-Jensen et al. 2024): take the metal atom closest to the centre of a
supercell, keep every metal atom within the radius of it, then keep each non-metal atom whose
interaction sphere (125 % of its atomic radius) overlaps the interaction sphere of a kept metal,
i.e. ``d < 1.25 * (r_metal + r_nonmetal)`` with Slater atomic radii. Non-metal atoms therefore
complete the coordination shells of the surface metals instead of being cut at the sphere.

Implementation: instead of building a large supercell and searching it, we enumerate only the
lattice translations whose cell can reach the sphere (|Δf_i| ≤ R·|b_i|, b_i reciprocal
vectors) and work with vectorised numpy plus a KD-tree (scipy) for the non-metal test. We use
odd supercells conceptually, so "the metal closest to the supercell centre" is the metal atom
closest to the centre of one unit cell (fractional 0.5, 0.5, 0.5; images included, ties broken
by site order), independent of the radius.

Both cutters return a :class:`Particle` whose positions are relative to the cut centre (Å) and
whose ``properties`` hold, per atom, ``pos_frac`` (the fractional coordinates of the atom in
the unit-cell basis, unwrapped: ``positions + center = pos_frac @ lattice``), ``site_index``
(row of the crystal it came from), and the source crystal's ``source_formula``,
``source_lattice``, ``source_name`` and ``source_properties`` plus the cut parameters.
"""

from __future__ import annotations

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_radius, is_metal
from nanosolve.structures.particle import Particle

CHILI_INTERACTION_SCALE = 1.25


def _translations(crystal: Crystal, center_frac: np.ndarray, reach: float) -> np.ndarray:
    """[T, 3] integer cell shifts whose cells can contain points within ``reach`` Å of the centre."""
    recip = np.linalg.inv(crystal.lattice).T  # rows b_i with a_i · b_j = δ_ij (no 2π)
    half = reach * np.linalg.norm(recip, axis=1)
    lo = np.floor(center_frac - half).astype(int) - 1
    hi = np.ceil(center_frac + half).astype(int) + 1
    n_cells = np.prod(hi - lo + 1)
    if n_cells * max(len(crystal), 1) > 2e7:
        raise InputError(f"cut of radius {reach:.1f} Å needs {n_cells} unit cells; too large to build")
    axes = [np.arange(l, h + 1) for l, h in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _candidates(crystal: Crystal, center_cart: np.ndarray, reach: float):
    """All atom images within ``reach`` Å: (unwrapped frac [M,3], site index [M], distance [M], cart [M,3])."""
    frac0 = crystal.frac_coords
    center_frac = center_cart @ np.linalg.inv(crystal.lattice)
    shifts = _translations(crystal, center_frac, reach)
    frac = (frac0[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    site = np.tile(np.arange(len(crystal)), len(shifts))
    cart = frac @ crystal.lattice
    dist = np.linalg.norm(cart - center_cart, axis=1)
    keep = dist <= reach
    return frac[keep], site[keep], dist[keep], cart[keep]


def _make_particle(crystal: Crystal, frac, site, cart, center_cart, method: str, extra: dict) -> Particle:
    order = np.argsort(np.linalg.norm(cart - center_cart, axis=1), kind="stable")  # centre-out
    frac, site, cart = frac[order], site[order], cart[order]
    species = [crystal.species[i] for i in site]
    p = Particle(cart - center_cart, species, crystal.occupancies[site].copy(),
                 name=f"{crystal.name or crystal.formula} {method}")
    p.properties = {
        "cut_method": method, **extra,
        "center_cart": [float(v) for v in center_cart],
        "pos_frac": frac.tolist(), "site_index": site.tolist(),
        "source_formula": crystal.formula, "source_name": crystal.name,
        "source_lattice": crystal.lattice.tolist(), "source_properties": dict(crystal.properties),
    }
    return p


def central_metal_site(crystal: Crystal) -> tuple[int, np.ndarray]:
    """(site index, Cartesian position Å) of the metal closest to the unit-cell centre.

    Images in neighbouring cells are considered (they can be closer in oblique cells); ties go
    to the lowest site index. Without metals, every atom is a candidate.
    """
    frac = np.mod(crystal.frac_coords, 1.0)
    metal = np.array([is_metal(s) for s in crystal.species])
    cand = np.flatnonzero(metal) if metal.any() else np.arange(len(crystal))
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    imgs = frac[cand][:, None, :] + shifts[None, :, :]  # [C, 27, 3]
    d = np.linalg.norm((imgs - 0.5) @ crystal.lattice, axis=-1)
    best = d.min(axis=1)
    k = int(np.flatnonzero(best <= best.min() + 1e-9)[0])
    return int(cand[k]), imgs[k, int(np.argmin(d[k]))] @ crystal.lattice


def cut_nanoparticle(crystal: Crystal, radius: float, scale: float = CHILI_INTERACTION_SCALE) -> Particle:
    """Spherical nanoparticle by CHILI's rule (see module doc).

    Args:
        crystal: source crystal (needs at least one atom; metals by :func:`elements.is_metal`;
            without metals every atom counts as a "metal").
        radius: radius (Å) of the metal sphere around the central metal atom.
        scale: interaction-sphere factor for the non-metal test (1.25 in CHILI).

    Returns:
        Particle centred on the central metal atom; properties as in the module doc plus
        ``radius``, ``interaction_scale`` and ``central_site``.
    """
    radius = float(radius)
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(f"cut radius must be positive, got {radius}")
    if len(crystal) == 0:
        raise InputError("cannot cut a nanoparticle from an empty crystal")
    from scipy.spatial import cKDTree

    metal_site = np.array([is_metal(s) for s in crystal.species])
    if not metal_site.any():
        metal_site[:] = True
    radii = np.array([atomic_radius(s) for s in crystal.species])
    c, center = central_metal_site(crystal)
    max_pair = scale * (radii[metal_site].max() + radii.max())
    frac, site, dist, cart = _candidates(crystal, center, radius + max_pair)

    is_m = metal_site[site]
    keep = is_m & (dist <= radius + 1e-8)
    other = np.flatnonzero(~is_m)
    if other.size:
        kept_metal = np.flatnonzero(keep)
        hit = np.zeros(other.size, dtype=bool)
        # One KD-tree per metal radius, queried per non-metal radius: the cutoff is per pair.
        r_m_all = radii[site[kept_metal]]
        r_x_all = radii[site[other]]
        for rm in np.unique(r_m_all):
            tree = cKDTree(cart[kept_metal[r_m_all == rm]])
            for rx in np.unique(r_x_all):
                sel = np.flatnonzero((r_x_all == rx) & ~hit)
                if sel.size == 0:
                    continue
                d, _ = tree.query(cart[other[sel]], k=1, distance_upper_bound=scale * (rm + rx))
                hit[sel[np.isfinite(d)]] = True
        keep[other[hit]] = True
    return _make_particle(crystal, frac[keep], site[keep], cart[keep], center, "chili",
                          {"radius": radius, "interaction_scale": float(scale), "central_site": c})


def cut_sphere(crystal: Crystal, radius: float | None = None, diameter: float | None = None,
               center=None) -> Particle:
    """Every atom within a sphere.

    Args:
        radius, diameter: sphere size in Å (give exactly one).
        center: Cartesian centre (Å); default the centre of the unit cell.

    Returns:
        Particle with positions relative to ``center``; properties as in the module doc plus
        ``radius``.
    """
    if (radius is None) == (diameter is None):
        raise InputError("give exactly one of radius and diameter")
    radius = float(radius if radius is not None else diameter / 2.0)
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(f"sphere radius must be positive, got {radius}")
    if len(crystal) == 0:
        raise InputError("cannot cut a sphere from an empty crystal")
    center = crystal.lattice.sum(axis=0) / 2.0 if center is None else np.asarray(center, dtype=float).reshape(3)
    if not np.all(np.isfinite(center)):
        raise InputError(f"sphere centre must be finite, got {center}")
    frac, site, dist, cart = _candidates(crystal, center, radius)
    return _make_particle(crystal, frac, site, cart, center, "sphere", {"radius": radius})
