"""Neighbour graphs of particles and crystals (radius, k-nearest, CHILI's radius-sum rule).

Neighbour search is done by ``vesin`` (cell lists in C++, periodic or not, any cell size) and
scipy's ``cKDTree`` for finite k-NN; this module only applies the per-pair rules and packs the
result. Conventions:

* An edge e goes from ``i = edge_index[0, e]`` to ``j = edge_index[1, e]``; its vector is
  ``pos[j] + edge_shift[e] @ lattice - pos[i]`` and ``edge_length[e]`` its norm (Å).
* Radius and CHILI graphs hold both directions of every pair (i→j and j→i with the opposite
  shift); a periodic graph includes an atom's own images (i→i with shift ≠ 0).
* Pairs at zero distance (two species rows on one partially occupied site) are dropped.
* ``periodic=None`` means periodic for a :class:`Crystal` and finite for a :class:`Particle`;
  ``periodic=False`` on a Crystal treats its unit-cell atoms as a finite cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_mass, atomic_radius, electron_affinity
from nanosolve.structures.particle import Particle

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Data

_ZERO = 1e-8  # Å; below this two rows share a site


@dataclass
class Graph:
    """A neighbour graph.

    Attributes:
        edge_index: [2, E] int64, rows (source i, target j).
        edge_length: [E] float64, Å.
        edge_shift: [E, 3] int64 lattice translations of j (periodic graphs), else None.
        n_nodes: number of atoms.
        periodic: whether the graph was built with periodic boundaries.
        kind: 'radius', 'knn' or 'chili'; params: the arguments that built it.
    """

    edge_index: np.ndarray
    edge_length: np.ndarray
    edge_shift: np.ndarray | None
    n_nodes: int
    periodic: bool
    kind: str
    params: dict = field(default_factory=dict)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def degree(self) -> np.ndarray:
        """[N] number of edges leaving each atom."""
        return np.bincount(self.edge_index[0], minlength=self.n_nodes)


def _system(obj, periodic):
    """(positions [N,3] Å, box [3,3] Å, periodic flag, species) of a Particle or Crystal."""
    if isinstance(obj, Crystal):
        periodic = True if periodic is None else bool(periodic)
        box = obj.lattice if periodic else np.zeros((3, 3))
        return obj.cart_coords, box, periodic, obj.species
    if isinstance(obj, Particle):
        if periodic:
            raise InputError("a Particle has no cell; periodic graphs need a Crystal")
        return obj.positions, np.zeros((3, 3)), False, obj.species
    raise InputError(f"graphs are built for a Particle or a Crystal, not {type(obj).__name__}")


def _pairs(points, box, periodic: bool, cutoff: float):
    """All ordered pairs within ``cutoff`` (i, j, shift [E,3] int64, distance), zero-distance pairs removed."""
    import vesin

    n = len(points)
    if n == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros(0))
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s, d = nl.compute(np.ascontiguousarray(points, dtype=np.float64),
                            np.ascontiguousarray(box, dtype=np.float64), periodic, quantities="ijSd")
    keep = d > _ZERO
    return (i[keep].astype(np.int64), j[keep].astype(np.int64), s[keep].astype(np.int64), d[keep].astype(np.float64))


def _pack(i, j, s, d, n, periodic, kind, params) -> Graph:
    order = np.lexsort((j, i))  # deterministic: by source, then target
    return Graph(np.stack([i[order], j[order]]).astype(np.int64), d[order],
                 s[order] if periodic else None, n, periodic, kind, params)


def _check_cutoff(cutoff) -> float:
    cutoff = float(cutoff)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise InputError(f"cutoff must be a positive length in Å, got {cutoff}")
    return cutoff


def radius_graph(obj: Particle | Crystal, cutoff: float, periodic: bool | None = None) -> Graph:
    """Edges between all atoms closer than ``cutoff`` (Å), both directions."""
    cutoff = _check_cutoff(cutoff)
    pos, box, periodic, _ = _system(obj, periodic)
    i, j, s, d = _pairs(pos, box, periodic, cutoff)
    keep = d < cutoff
    return _pack(i[keep], j[keep], s[keep], d[keep], len(pos), periodic, "radius", {"cutoff": cutoff})


def _radii(species) -> np.ndarray:
    uniq, inv = np.unique(np.asarray(species, dtype=str), return_inverse=True)
    return np.array([atomic_radius(str(u)) for u in uniq])[inv.reshape(-1)]


def chili_graph(obj: Particle | Crystal, scale: float = 1.25, periodic: bool | None = None) -> Graph:
    """CHILI bonds: an edge when ``d < scale * (r_i + r_j)`` (Slater atomic radii), both directions.

    The neighbour search runs once with the largest possible cutoff and is filtered per pair.
    """
    scale = _check_cutoff(scale)
    pos, box, periodic, species = _system(obj, periodic)
    if len(pos) == 0:
        return _pack(*_pairs(pos, box, periodic, 1.0), 0, periodic, "chili", {"scale": scale})
    r = _radii(species)
    i, j, s, d = _pairs(pos, box, periodic, scale * 2.0 * r.max())
    keep = d < scale * (r[i] + r[j])
    return _pack(i[keep], j[keep], s[keep], d[keep], len(pos), periodic, "chili", {"scale": scale})


def knn_graph(obj: Particle | Crystal, k: int, periodic: bool | None = None, symmetric: bool = False) -> Graph:
    """The ``k`` nearest neighbours of every atom.

    Edges go from each atom i to its k nearest neighbours j (so every atom has out-degree k;
    ties at the k-th distance are broken arbitrarily). With ``symmetric=True`` the reverse of
    every edge is added (duplicates removed), so degrees are >= k. Periodic: neighbours may be
    images, including the atom's own images; the search radius grows until every atom has k.
    """
    k = int(k)
    if k < 1:
        raise InputError(f"k must be a positive integer, got {k}")
    pos, box, periodic, _ = _system(obj, periodic)
    n = len(pos)
    if periodic:
        i, j, s, d = _knn_periodic(pos, box, k)
    else:
        if n <= k:
            raise InputError(f"k = {k} nearest neighbours need more than {k} atoms, got {n}")
        from scipy.spatial import cKDTree

        # Query one extra to drop the atom itself; co-sited duplicates (d = 0) may take more slots.
        extra = 1
        while True:
            kq = min(k + extra, n)
            d_all, j_all = cKDTree(pos).query(pos, k=kq)
            i_all = np.repeat(np.arange(n), kq)
            d_all, j_all = d_all.reshape(-1), j_all.reshape(-1)
            ok = (j_all != i_all) & (d_all > _ZERO)
            counts = np.bincount(i_all[ok], minlength=n)
            if counts.min() >= k or kq == n:
                break
            extra *= 2
        i, j, d = i_all[ok], j_all[ok], d_all[ok]
        rank = _rank_within(i)
        keep = rank < k
        i, j, d = i[keep], j[keep], d[keep]
        s = np.zeros((len(i), 3), np.int64)
        if np.bincount(i, minlength=n).min() < k:
            raise InputError(f"fewer than {k} distinct neighbour positions for some atoms")
    if symmetric:
        i, j, s, d = _symmetrize(i, j, s, d)
    return _pack(i, j, s, d, n, periodic, "knn", {"k": k, "symmetric": bool(symmetric)})


def _rank_within(i: np.ndarray) -> np.ndarray:
    """Position of each entry within its run of equal ``i`` (input grouped by i, sorted by distance)."""
    starts = np.r_[0, np.flatnonzero(np.diff(i)) + 1]
    lengths = np.diff(np.r_[starts, len(i)])
    return np.arange(len(i)) - np.repeat(starts, lengths)


def _knn_periodic(pos, box, k):
    n = len(pos)
    volume = abs(np.linalg.det(box))
    # Radius of a sphere holding ~k atoms at the mean density, with margin; doubled until enough.
    cutoff = 1.5 * (3.0 * (k + 1) * volume / (4.0 * np.pi * max(n, 1))) ** (1.0 / 3.0)
    for _ in range(30):
        i, j, s, d = _pairs(pos, box, True, cutoff)
        if n and np.bincount(i, minlength=n).min() >= k:
            break
        cutoff *= 1.6
    else:  # pragma: no cover - only for pathological cells
        raise InputError(f"could not find {k} neighbours for every atom")
    order = np.lexsort((d, i))
    i, j, s, d = i[order], j[order], s[order], d[order]
    keep = _rank_within(i) < k
    return i[keep], j[keep], s[keep], d[keep]


def _symmetrize(i, j, s, d):
    ii, jj = np.concatenate([i, j]), np.concatenate([j, i])
    ss, dd = np.concatenate([s, -s]), np.concatenate([d, d])
    # Deduplicate (i, j, shift) through one int64 key: np.unique(axis=0) is ~10x slower.
    n = int(max(ii.max(initial=0), jj.max(initial=0))) + 1
    off = int(np.abs(ss).max(initial=0))
    m = 2 * off + 1
    if float(n) * n * m**3 < 2**62:
        key = ((ii * n + jj) * m + (ss[:, 0] + off)) * m * m + (ss[:, 1] + off) * m + (ss[:, 2] + off)
        _, first = np.unique(key, return_index=True)
    else:  # pragma: no cover - astronomically large systems
        _, first = np.unique(np.column_stack([ii, jj, ss]), axis=0, return_index=True)
    return ii[first], jj[first], ss[first], dd[first]


def node_features(species) -> np.ndarray:
    """[N, 4] float: atomic number, atomic radius (Å), atomic weight (u), electron affinity (eV)."""
    from nanosolve.structures.elements import atomic_number

    uniq, inv = np.unique(np.asarray(species, dtype=str), return_inverse=True)
    table = np.array([[atomic_number(u), atomic_radius(u), atomic_mass(u), electron_affinity(u)]
                      for u in map(str, uniq)], dtype=np.float64).reshape(-1, 4)
    return table[inv.reshape(-1)]


def to_pyg(obj: Particle | Crystal, graph: Graph) -> Data:
    """torch_geometric ``Data``: x [N,4] (Z, radius Å, weight u, electron affinity eV), pos [N,3] Å,
    edge_index [2,E], edge_attr [E,1] (length Å); periodic graphs also carry ``edge_shift`` [E,3]
    and ``cell`` [1,3,3] Å."""
    import torch
    from torch_geometric.data import Data

    pos, _, _, species = _system(obj, False if isinstance(obj, Crystal) else None)
    if graph.n_nodes != len(pos):
        raise InputError(f"graph has {graph.n_nodes} nodes but the structure has {len(pos)} atoms")
    data = Data(
        x=torch.as_tensor(node_features(species), dtype=torch.float32),
        pos=torch.as_tensor(pos, dtype=torch.float32),
        edge_index=torch.as_tensor(graph.edge_index, dtype=torch.long),
        edge_attr=torch.as_tensor(graph.edge_length, dtype=torch.float32).reshape(-1, 1),
    )
    if graph.periodic:
        data.edge_shift = torch.as_tensor(graph.edge_shift, dtype=torch.long)
        data.cell = torch.as_tensor(obj.lattice, dtype=torch.float32).reshape(1, 3, 3)
    return data
