"""Physical sanity gate of a candidate crystal: interatomic distances, density, coordination.

A powder pattern alone can be fitted by structures no chemist would accept (on measured Rb2S the
best-fitting decoded candidates had Rb-S contacts of 1.6-2.2 Å where the real one is 3.14 Å). A
solve ranks every candidate that passes :func:`check_crystal` before every one that does not.

Criteria (Å, g/cm³; radii are Cordero's covalent radii as tabulated by ASE):

* shortest contact of each element pair >= :data:`MIN_DISTANCE_FACTOR` x (r_i + r_j). Real
  contacts sit at 0.8-1.1 x the covalent sum (Rb-S 3.14 / 3.25, Ti-O 1.95 / 2.26, C-O in CO3
  1.28 / 1.42, P-O 1.52 / 1.73), so 0.7 passes every ordinary compound and flags the 1.6 Å Rb-S.
* packing: Σ (4/3)π r³ / V (covalent spheres over the cell volume) <= :data:`MAX_PACKING`. Ordinary
  solids lie between ~0.4 (Al, NaCl) and ~1.0 (BaTiO3, Rb2S); 2 is twice the densest.
* packing >= :data:`MIN_PACKING`: a cell far too large for its atoms (no solid is 10x emptier).
* coordination: every atom has a neighbour within :data:`ISOLATED_FACTOR` x (r_i + r_j); an atom
  with none floats in a void.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from nanosolve.structures.crystal import Crystal

MIN_DISTANCE_FACTOR = 0.7
MAX_PACKING = 2.0
MIN_PACKING = 0.1
ISOLATED_FACTOR = 1.6
#: neighbours within BOND_FACTOR x (r_i + r_j) count towards the reported mean coordination
BOND_FACTOR = 1.25


def covalent_radius(symbol: str) -> float:
    """Cordero covalent radius (Å) from ASE's table."""
    from ase.data import atomic_numbers, covalent_radii

    return float(covalent_radii[atomic_numbers[symbol]])


@dataclass
class Sanity:
    """Result of :func:`check_crystal`. ``min_distance``: the contact furthest below its limit
    (pair 'A-B', distance and expected_min in Å); ``density`` g/cm³; ``packing`` covalent-sphere
    volume over cell volume; ``mean_coordination`` neighbours within BOND_FACTOR x the radius sum."""

    plausible: bool
    flags: list[str] = field(default_factory=list)
    min_distance: dict | None = None
    density: float | None = None
    packing: float | None = None
    mean_coordination: float | None = None

    def summary(self) -> dict:
        out = asdict(self)
        for key in ("density", "packing", "mean_coordination"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 3)
        return out


def check_crystal(crystal: Crystal) -> Sanity:
    """The sanity gate of one crystal (see module docstring); never raises: a cell that cannot be
    analysed (collapsed lattice) is implausible with the reason in ``flags``."""
    try:
        return _check(crystal)
    except Exception as err:  # noqa: BLE001 - a degenerate cell is the gate's business, not an error
        return Sanity(False, [f"cannot analyse the cell: {type(err).__name__}: {err}"])


def _check(crystal: Crystal) -> Sanity:
    flags = []
    vol = float(crystal.volume)
    if not np.isfinite(vol) or vol <= 1e-3:
        return Sanity(False, [f"cell volume {vol:.3g} Å³"])
    species = list(crystal.species)
    occ = np.ones(len(species)) if crystal.occupancies is None else np.asarray(crystal.occupancies, float)
    radii = np.array([covalent_radius(s) for s in species])
    packing = float(np.sum(occ * 4.0 / 3.0 * np.pi * radii**3) / vol)
    density = float(crystal.density)
    if packing > MAX_PACKING:
        flags.append(f"too dense: packing {packing:.2f} > {MAX_PACKING} ({density:.2f} g/cm³)")
    if packing < MIN_PACKING:
        flags.append(f"too open: packing {packing:.2f} < {MIN_PACKING} ({density:.2f} g/cm³)")
    cutoff = float(ISOLATED_FACTOR * 2 * radii.max())
    structure = crystal.to_pymatgen()
    centre, point, _, dist = structure.get_neighbor_list(r=cutoff)
    keep = dist > 1e-6
    centre, point, dist = centre[keep], point[keep], dist[keep]
    rsum = radii[centre] + radii[point]
    worst = None
    if len(dist):
        ratio = dist / rsum
        j = int(np.argmin(ratio))
        pair = "-".join(sorted((species[centre[j]], species[point[j]])))
        worst = {"pair": pair, "distance": round(float(dist[j]), 3),
                 "expected_min": round(float(MIN_DISTANCE_FACTOR * rsum[j]), 3)}
        if ratio[j] < MIN_DISTANCE_FACTOR:
            flags.append(f"{pair} contact {dist[j]:.2f} Å < {MIN_DISTANCE_FACTOR * rsum[j]:.2f} Å "
                         f"({MIN_DISTANCE_FACTOR} x covalent radii sum)")
    n = len(species)
    near = np.zeros(n, bool)
    near[centre[dist <= ISOLATED_FACTOR * rsum]] = True
    if n > 1 and not near.all():
        lonely = sorted({species[i] for i in np.flatnonzero(~near)})
        flags.append(f"isolated atom(s) {', '.join(lonely)}: no neighbour within {ISOLATED_FACTOR} x radii sum")
    coord = np.bincount(centre[dist <= BOND_FACTOR * rsum], minlength=n)
    return Sanity(not flags, flags, worst, density, packing, float(coord.mean()))


__all__ = ["Sanity", "check_crystal", "covalent_radius", "MIN_DISTANCE_FACTOR", "MAX_PACKING", "MIN_PACKING",
           "ISOLATED_FACTOR"]
