"""One CHILI graph record: a nanoparticle cut from a crystal, its graph, labels and signals.

The field names, shapes and grids follow the CHILI paper (Friis-Jensen et al. 2024, Tables 2
and 6). Where nanosolve deliberately differs from the published files (see the README):

* ``edge_attr`` is the bond length of each edge, [E, 1]; the published data stored per-atom
  distances that did not line up with the edges.
* neutron signals use coherent scattering lengths b, not cross-sections σ = 4πb².
* intensities follow nanosolve's Debye convention (all ordered pairs + full self term), i.e.
  twice DebyeCalculator's; CHILI benchmarks min-max normalise signals, so this scale cancels.
* ``pos_frac`` is the fractional position of each atom in the unit cell, wrapped into [0, 1).
"""

from __future__ import annotations

import numpy as np

from nanosolve.structures import Crystal, Particle
from nanosolve.structures.builders.cut import cut_nanoparticle
from nanosolve.structures.graphs import chili_graph, node_features

#: Record version; stored in the dataset attributes, bumped whenever a field changes meaning.
RECORD_VERSION = 1


def crystal_fields(crystal: Crystal, crystal_type: str | None, source: str) -> dict:
    """Labels and the unit-cell graph of a crystal: everything a record shares with its siblings
    cut at other radii (computed once per crystal)."""
    sym = crystal.symmetry()
    g = chili_graph(crystal, periodic=True)
    species = sorted(set(crystal.species))
    return {
        "crystal_type": crystal_type or "",
        "space_group_symbol": sym.symbol,
        "space_group_number": int(sym.number),
        "crystal_system": sym.crystal_system,
        "crystal_system_number": int(sym.crystal_system_number),
        "atomic_species": species,
        "n_atomic_species": len(species),
        "formula": crystal.formula,
        "source": source,
        "unit_cell_n_atoms": len(crystal),
        "unit_cell_n_bonds": g.num_edges // 2,
        "cell_params": crystal.cell_params.astype(np.float32),
        "unit_cell_x": node_features(crystal.species).astype(np.float32),
        "unit_cell_edge_index": g.edge_index.astype(np.int64),
        "unit_cell_edge_attr": g.edge_length.astype(np.float32).reshape(-1, 1),
        "unit_cell_pos_abs": crystal.cart_coords.astype(np.float32),
        "unit_cell_pos_frac": crystal.frac_coords.astype(np.float32),
    }


def particle_fields(particle: Particle, radius: float) -> dict:
    """Graph and size labels of a particle cut at ``radius`` Å."""
    g = chili_graph(particle)
    frac = np.mod(np.asarray(particle.properties["pos_frac"], dtype=np.float64), 1.0)
    frac[frac >= 1.0] = 0.0  # mod can round up to exactly 1.0 for tiny negatives
    return {
        "x": node_features(particle.species).astype(np.float32),
        "edge_index": g.edge_index.astype(np.int64),
        "edge_attr": g.edge_length.astype(np.float32).reshape(-1, 1),
        "pos_abs": particle.positions.astype(np.float32),
        "pos_frac": frac.astype(np.float32),
        "n_atoms": len(particle),
        "n_bonds": g.num_edges // 2,
        "np_size": float(particle.diameter),
        "radius": float(radius),
    }


def build_records(crystal: Crystal, radii, crystal_type: str | None, source: str, key_prefix: str,
                  signals: bool = True) -> list[tuple[str, dict]]:
    """``[(key, record), ...]``, one per radius, for one crystal."""
    shared = crystal_fields(crystal, crystal_type, source)
    out = []
    for r in radii:
        particle = cut_nanoparticle(crystal, float(r))
        rec = dict(shared)
        rec.update(particle_fields(particle, r))
        rec["metal"] = crystal.species[int(particle.properties["central_site"])]
        if signals:
            from nanosolve.scattering.chili_signals import chili_signals

            rec.update(chili_signals(particle))
        key = f"{key_prefix}_r{float(r):g}"
        rec["id"] = key
        out.append((key, rec))
    return out

