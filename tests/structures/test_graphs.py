"""Neighbour graphs (radius, k-NN, CHILI) of particles and crystals, and the PyG conversion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist, squareform

from nanosolve.errors import InputError
from nanosolve.structures import Crystal, Particle
from nanosolve.structures.builders import build_chili_crystal, cut_nanoparticle, icosahedron
from nanosolve.structures.elements import atomic_radius
from nanosolve.structures.graphs import chili_graph, knn_graph, node_features, radius_graph, to_pyg

A_CU = 3.615


def _fcc_cu(conventional: bool) -> Crystal:
    if conventional:
        return Crystal(np.eye(3) * A_CU, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], ["Cu"] * 4)
    return Crystal(0.5 * A_CU * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]), [[0, 0, 0]], ["Cu"])


def _lengths(obj, g):
    pos = obj.cart_coords if isinstance(obj, Crystal) else obj.positions
    i, j = g.edge_index
    vec = pos[j] - pos[i]
    if g.periodic:
        vec = vec + g.edge_shift @ obj.lattice
    return np.linalg.norm(vec, axis=1)


def _edge_set(g):
    s = g.edge_shift if g.periodic else np.zeros((g.num_edges, 3), int)
    fwd = {(int(i), int(j), *map(int, sh)) for (i, j), sh in zip(g.edge_index.T, s)}
    rev = {(int(j), int(i), *map(int, -sh)) for (i, j), sh in zip(g.edge_index.T, s)}
    return fwd, rev


@pytest.mark.parametrize("conventional", [False, True])
def test_fcc_copper_periodic_radius_graph(conventional):
    cu = _fcc_cu(conventional)
    g = radius_graph(cu, cutoff=3.0)  # between a/√2 = 2.556 and a = 3.615
    assert g.periodic and g.edge_shift.shape == (g.num_edges, 3) and g.edge_shift.dtype == np.int64
    assert np.all(g.degree() == 12)
    np.testing.assert_allclose(g.edge_length, A_CU / np.sqrt(2), rtol=1e-12)
    np.testing.assert_allclose(_lengths(cu, g), g.edge_length, rtol=1e-12)
    g2 = radius_graph(cu, cutoff=4.0)  # adds the 6 second neighbours at a
    assert np.all(g2.degree() == 18)
    assert np.sum(np.isclose(g2.edge_length, A_CU)) == 6 * len(cu)


def test_periodic_graph_symmetric_and_matches_pymatgen():
    c = build_chili_crystal("spinel", "Co")
    g = chili_graph(c)
    fwd, rev = _edge_set(g)
    assert fwd == rev and len(fwd) == g.num_edges
    np.testing.assert_allclose(_lengths(c, g), g.edge_length, rtol=1e-10)
    # Oracle: pymatgen's own periodic neighbour list, filtered by the same per-pair rule.
    r = np.array([atomic_radius(s) for s in c.species])
    i, j, images, d = c.to_pymatgen().get_neighbor_list(1.25 * 2 * r.max())
    keep = (d < 1.25 * (r[i] + r[j])) & (d > 1e-8)
    assert keep.sum() == g.num_edges
    ref = {(int(a), int(b), *map(int, s)) for a, b, s in zip(i[keep], j[keep], images[keep])}
    assert ref == fwd


def test_finite_radius_and_chili_graph_match_brute_force():
    p = cut_nanoparticle(build_chili_crystal("rutile", "Ti"), 9.0)
    D = squareform(pdist(p.positions))
    np.fill_diagonal(D, np.inf)
    g = radius_graph(p, 3.2)
    assert not g.periodic and g.edge_shift is None
    assert g.num_edges == np.sum(D < 3.2)
    np.testing.assert_allclose(_lengths(p, g), g.edge_length, rtol=1e-12)
    np.testing.assert_allclose(g.edge_length, D[g.edge_index[0], g.edge_index[1]])
    r = np.array([atomic_radius(s) for s in p.species])
    rule = D < 1.25 * (r[:, None] + r[None, :])
    gc = chili_graph(p)
    adj = np.zeros_like(rule)
    adj[gc.edge_index[0], gc.edge_index[1]] = True
    assert gc.num_edges == rule.sum() and np.array_equal(adj, rule)
    fwd, rev = _edge_set(gc)
    assert fwd == rev


@pytest.mark.parametrize("scale", [1.0, 1.25])
def test_chili_graph_random_structures(scale):
    # Continuous distance distribution: any error in the per-pair rule changes the edge set.
    rng = np.random.default_rng(3)
    species = ["Fe"] * 20 + ["Ba"] * 10 + ["O"] * 30
    lattice = np.array([[9.0, 0.0, 0.0], [-2.0, 8.5, 0.0], [1.0, 1.5, 9.5]])
    c = Crystal(lattice, rng.random((60, 3)), species)
    r = np.array([atomic_radius(s) for s in species])
    g = chili_graph(c, scale=scale)
    i, j, images, d = c.to_pymatgen().get_neighbor_list(scale * 2 * r.max())
    keep = d < scale * (r[i] + r[j])
    assert {(int(a), int(b), *map(int, s)) for a, b, s in zip(i[keep], j[keep], images[keep])} == _edge_set(g)[0]
    assert keep.sum() == g.num_edges
    p = Particle(rng.random((300, 3)) * 18.0, species * 5)
    D = cdist(p.positions, p.positions)
    np.fill_diagonal(D, np.inf)
    rp = np.array([atomic_radius(s) for s in p.species])
    gp = chili_graph(p, scale=scale)
    adj = np.zeros(D.shape, bool)
    adj[gp.edge_index[0], gp.edge_index[1]] = True
    assert np.array_equal(adj, D < scale * (rp[:, None] + rp[None, :]))
    gr = radius_graph(p, 2.7)
    assert gr.num_edges == np.sum(D < 2.7)


def test_knn_finite_matches_sorted_distances():
    p = icosahedron("Pd", shells=4)
    k = 7
    g = knn_graph(p, k)
    assert np.all(g.degree() == k)
    D = cdist(p.positions, p.positions)
    np.fill_diagonal(D, np.inf)
    kth = np.sort(D, axis=1)[:, k - 1]
    for i in range(len(p)):
        lengths = g.edge_length[g.edge_index[0] == i]
        assert lengths.max() == pytest.approx(kth[i])
        np.testing.assert_allclose(np.sort(lengths), np.sort(D[i])[:k])
    assert not np.any(g.edge_index[0] == g.edge_index[1])
    gs = knn_graph(p, k, symmetric=True)
    fwd, rev = _edge_set(gs)
    assert fwd == rev and np.all(gs.degree() >= k)
    assert fwd >= _edge_set(g)[0]


def test_knn_periodic_fcc():
    cu = _fcc_cu(False)  # one atom: all neighbours are its own images
    g = knn_graph(cu, 12)
    assert g.num_edges == 12
    np.testing.assert_allclose(g.edge_length, A_CU / np.sqrt(2))
    assert len({tuple(s) for s in g.edge_shift}) == 12
    g18 = knn_graph(_fcc_cu(True), 18)
    assert np.all(g18.degree() == 18)
    np.testing.assert_allclose(np.sort(g18.edge_length)[-6 * 4:], A_CU)
    np.testing.assert_allclose(_lengths(_fcc_cu(True), g18), g18.edge_length, rtol=1e-12)


def test_to_pyg():
    c = build_chili_crystal("rock_salt", "Fe")
    p = cut_nanoparticle(c, 6.0)
    g = chili_graph(p)
    data = to_pyg(p, g)
    assert tuple(data.x.shape) == (len(p), 4) and tuple(data.pos.shape) == (len(p), 3)
    assert tuple(data.edge_attr.shape) == (g.num_edges, 1)
    assert data.edge_index.dtype.is_floating_point is False and data.edge_index.shape[1] == g.num_edges
    fe = data.x[p.species.index("Fe")].numpy()
    np.testing.assert_allclose(fe[:3], [26, atomic_radius("Fe"), 55.845], rtol=1e-4)
    assert fe[3] == pytest.approx(0.151, abs=0.02)  # electron affinity of Fe, eV
    np.testing.assert_allclose(data.edge_attr[:, 0].numpy(), g.edge_length, rtol=1e-6)
    np.testing.assert_allclose(node_features(["O"])[0, 0], 8)
    dc = to_pyg(c, radius_graph(c, 3.0))
    assert tuple(dc.cell.shape) == (1, 3, 3) and tuple(dc.edge_shift.shape) == (dc.edge_index.shape[1], 3)


def test_bad_input():
    p = icosahedron("Cu", 2)
    with pytest.raises(InputError, match="periodic"):
        radius_graph(p, 3.0, periodic=True)
    with pytest.raises(InputError, match="cutoff"):
        radius_graph(p, -1.0)
    with pytest.raises(InputError, match="more than"):
        knn_graph(p, 13)
    with pytest.raises(InputError, match="Particle or a Crystal"):
        radius_graph(np.zeros((3, 3)), 2.0)
    with pytest.raises(InputError, match="nodes"):
        to_pyg(icosahedron("Cu", 3), radius_graph(p, 3.0))


def test_twenty_thousand_atoms():
    c = build_chili_crystal("rock_salt", "Fe")
    p = cut_nanoparticle(c, 36.0)
    n = len(p)
    assert n > 20_000
    r = np.linalg.norm(p.positions, axis=1)
    interior = r < 36.0 - 6.0
    is_fe = np.array([s == "Fe" for s in p.species])

    g = chili_graph(p)
    assert g.edge_index.shape == (2, g.num_edges) and g.degree().sum() == g.num_edges
    # Fe-O 2.15 Å < 1.25·2.0 and Fe-Fe 3.04 Å < 1.25·2.8; O-O 3.04 Å > 1.25·1.2.
    assert np.all(g.degree()[interior & is_fe] == 18)
    assert np.all(g.degree()[interior & ~is_fe] == 6)

    gr = radius_graph(p, 2.5)
    assert np.all(gr.degree()[interior] == 6) and gr.num_edges % 2 == 0

    gk = knn_graph(p, 6)
    assert gk.num_edges == 6 * n
    np.testing.assert_allclose(gk.edge_length[np.repeat(interior, 6)], c.cell_params[0] / 2)

    big = _fcc_cu(True).supercell((17, 17, 18))
    gp = radius_graph(big, 3.0)
    assert len(big) > 20_000 and np.all(gp.degree() == 12)
