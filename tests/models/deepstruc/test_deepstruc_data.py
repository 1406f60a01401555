"""DeepStruc data layer: cluster PDFs, data sets and splits, representation, trilateration, RMSD."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation
from scipy.stats import norm

from nanosolve.errors import InputError
from nanosolve.models.deepstruc import data as ds
from nanosolve.models.deepstruc.pdf import SHARED_PDF_PARAMS, cluster_pdf
from nanosolve.models.deepstruc.representation import (
    atom_order,
    collate,
    from_unit_sphere,
    nn_scale_from_pdf,
    node_features,
    satellites,
    to_unit_sphere,
)
from nanosolve.models.deepstruc.trilaterate import multilaterate, rmsd_aligned, trilaterate
from nanosolve.paths import shared_data_dir
from nanosolve.scattering.debye import DebyeSimulator
from nanosolve.structures.builders.clusters import decahedron, fcc_cluster, icosahedron
from nanosolve.structures.particle import Particle

SHARED = shared_data_dir() / "deepstruc_simulated"


def _rmsd(a, b):
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


# ---------------------------------------------------------------------------------------- pdf
@pytest.mark.parametrize("params", [
    dict(qmin=0.7, qmax=25.0, qdamp=0.04, biso=0.3),
    dict(qmin=1.0, qmax=30.0, qdamp=0.0, biso=0.0),
    dict(qmin=0.5, qmax=20.0, qdamp=0.03, biso=0.6, lorch=True),
])
def test_pdf_equals_debye_simulator_without_delta2(params):
    p = fcc_cluster("Au", layers=(3, 3, 3))
    ref = DebyeSimulator(rmax=30.0, rstep=0.01, method="direct", **params).gr(p)
    g = cluster_pdf(p, r=ref.x, delta2=0.0, **params)
    assert np.abs(g - ref.y).max() < 1e-3 * np.abs(ref.y).max()


def test_pdf_delta2_matches_analytic_dimer_and_pdfgui_width():
    # dimer, full Q range: G(r) = [N(r; d, σ) - N(r; -d, σ)] / d with σ² = (B/4π²)(1 - δ2/d²)
    d, biso, delta2 = 2.5, 0.8, 2.0
    r = np.arange(0.0, 30.0, 0.005)
    g = cluster_pdf(np.array([[0, 0, 0], [0, 0, d]]), r=r, qmin=0.0, qmax=70.0, qdamp=0.0, biso=biso, delta2=delta2)
    sigma = math.sqrt(biso / (4 * math.pi**2) * (1 - delta2 / d**2))
    expect = (norm.pdf(r, d, sigma) - norm.pdf(r, -d, sigma)) / d
    assert np.abs(g - expect).max() < 1e-3 * expect.max()
    # delta2 sharpens: the nearest-neighbour peak of a cluster grows
    p = fcc_cluster("Cu", layers=(3, 3, 3))
    g0, g2 = cluster_pdf([p, p], qmin=0.7, qmax=30, biso=0.5, delta2=[0.0, 3.0])
    assert g2.max() > 1.2 * g0.max()


def test_pdf_batch_forms_and_padding_agree():
    a = fcc_cluster("Pt", layers=(3, 3, 3)).positions
    b = icosahedron("Pt", 3).positions
    r = np.linspace(0, 20, 500)
    single = np.stack([cluster_pdf(a, r=r), cluster_pdf(b, r=r)])
    padded = np.zeros((2, max(len(a), len(b)), 3))
    padded[0, :len(a)], padded[1, :len(b)] = a, b
    np.testing.assert_allclose(cluster_pdf(padded, r=r, n_atoms=[len(a), len(b)]), single, atol=1e-12)
    np.testing.assert_allclose(cluster_pdf([a, b], r=r), single, atol=1e-12)


def test_pdf_rejects_bad_input():
    with pytest.raises(InputError, match="mono-metallic"):
        cluster_pdf(Particle([[0, 0, 0], [2.5, 0, 0]], ["Au", "Ag"]))
    with pytest.raises(InputError, match="same position"):
        cluster_pdf(np.zeros((2, 3)))
    with pytest.raises(InputError, match="biso"):
        cluster_pdf([np.eye(3), np.eye(3)], biso=[0.1, 0.2, 0.3])
    with pytest.raises(InputError):
        cluster_pdf(np.eye(3), qmin=5, qmax=1)


def test_pdf_batch_equals_one_by_one():
    # speed: benchmarks/speed/bench_speed.py (target ≥ 200 clusters/s)
    base = [fcc_cluster("Cu", layers=lay).positions for lay in ((4, 4, 3), (3, 4, 4), (4, 4, 4))]
    structs = [base[i % 3] * (0.99 + 1e-4 * i) for i in range(300)]
    rng = np.random.default_rng(0)
    biso, delta2 = rng.uniform(0.2, 0.8, 300), rng.uniform(0, 4, 300)
    g = cluster_pdf(structs, biso=biso, delta2=delta2)
    assert g.shape == (300, 3000) and np.all(np.isfinite(g))
    for i in (0, 151, 299):
        np.testing.assert_allclose(g[i], cluster_pdf(structs[i], biso=biso[i], delta2=delta2[i]), rtol=1e-6, atol=1e-9)


def test_pdf_reproduces_shared_deepstruc_file():
    h5py = pytest.importorskip("h5py")
    from nanosolve.scattering.readers import read_pattern

    gr_file = SHARED / "PDFs_simulated" / "FCC_h_3_k_6_l_7.gr"
    graph = SHARED / "graphs" / "graph_FCC_h_3_k_6_l_7_atom_Zn_lc_2.42.h5"
    if not gr_file.is_file() or not graph.is_file():
        pytest.skip(f"DeepStruc reference data not found under {SHARED}")
    measured = read_pattern(gr_file)
    with h5py.File(graph, "r") as fh:
        xyz = fh["Node Feature Matrix"][:]  # Å (nearest-neighbour distance 2.42 = lc in the file name)
    assert abs(cdist(xyz, xyz)[np.triu_indices(len(xyz), 1)].min() - 2.42) < 1e-3
    g = cluster_pdf(xyz, r=measured.x, **SHARED_PDF_PARAMS)
    scale = (g @ measured.y) / (g @ g)
    assert np.corrcoef(g, measured.y)[0, 1] > 0.999
    assert abs(scale - 1) < 0.02  # same absolute normalisation, not only the same shape


# --------------------------------------------------------------------------------- representation
def test_unit_sphere_inverts_and_normalises():
    p = decahedron("Pd", 3, 2, 1)
    x = p.positions + np.array([3.0, -1.0, 7.0])
    u, scale, center = to_unit_sphere(x)
    norms = np.linalg.norm(u, axis=1)
    assert norms.min() == 0.0 and abs(norms.max() - 1.0) < 1e-15
    nearest = np.argmin(np.linalg.norm(x - x.mean(0), axis=1))
    np.testing.assert_array_equal(center, x[nearest])
    np.testing.assert_allclose(from_unit_sphere(u, scale, center), x, atol=1e-12)
    with pytest.raises(InputError):
        to_unit_sphere(np.zeros((0, 3)))


def test_satellites_fixed_on_sphere_and_span_space():
    for n in (4, 11, 100):
        s = satellites(n)
        assert s.shape == (n, 3)
        np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(s, satellites(n))
        assert np.linalg.matrix_rank(s[1:] - s[0]) == 3  # not coplanar: 4 distances fix a point
    assert cdist(satellites(11), satellites(11))[np.triu_indices(11, 1)].min() > 0.8  # spread out
    with pytest.raises(InputError):
        satellites(0)


def test_node_features_layout_and_order_invariance():
    p = fcc_cluster("Ag", layers=(3, 3, 3))
    u, _, _ = to_unit_sphere(p.positions)
    f, m = node_features(u, 11, 60)
    n = len(u)
    assert f.shape == (60, 71) and m.sum() == n and m[:n].all()
    assert np.all(f[n:] == 0) and np.all(f[:n, n:60] == 0)
    ordered = u[atom_order(u)]
    np.testing.assert_allclose(f[:n, :n], cdist(ordered, ordered), atol=1e-6)
    np.testing.assert_allclose(f[:n, 60:], cdist(ordered, satellites(11)), atol=1e-6)
    assert f[0, :n].max() <= 1.0 + 1e-6  # row 0 is the origin atom
    perm = np.random.default_rng(3).permutation(n)
    f2, _ = node_features(u[perm], 11, 60)
    np.testing.assert_array_equal(f, f2)
    with pytest.raises(InputError, match="max_atoms"):
        node_features(u, 11, n - 1)


def test_collate_shapes_and_resampling():
    recs = [{"positions": fcc_cluster("Au", layers=(2, 2, 2)).positions, "pdf": np.sin(np.linspace(0, 30, 3000))},
            {"positions": icosahedron("Au", 3).positions, "pdf": np.cos(np.linspace(0, 30, 3000))}]
    b = collate(recs, n_satellites=4, max_atoms=60, n_r=300)
    assert b["pdf"].shape == (2, 300) and b["features"].shape == (2, 60, 64) and b["mask"].shape == (2, 60)
    assert b["mask"].sum(1).tolist() == [len(recs[0]["positions"]), 55]
    np.testing.assert_allclose(b["pdf"][0].numpy(), np.sin(np.linspace(0, 30, 300)), atol=1e-4)
    assert b["scale"][1].item() == pytest.approx(np.linalg.norm(recs[1]["positions"], axis=1).max(), rel=1e-6)


# ---------------------------------------------------------------------------------- trilateration
@pytest.mark.parametrize("n_sat", [4, 11, 100])
def test_trilaterate_recovers_cluster_from_exact_distances(n_sat):
    p = fcc_cluster("Au", layers=(4, 4, 4))  # 93 atoms
    u, scale, _ = to_unit_sphere(p.positions)
    f, m = node_features(u, n_sat, 100)
    x = trilaterate(f, satellites(n_sat), mask=m, scale=scale)  # speed: benchmarks/speed/bench_speed.py
    truth = u[atom_order(u)] * scale
    assert _rmsd(x, truth) < 1e-3
    # padding recognised without a mask, and the satellite-only form
    np.testing.assert_allclose(trilaterate(f, satellites(n_sat), scale=scale), x, atol=1e-6)
    assert _rmsd(trilaterate(f[m][:, 100:], satellites(n_sat), scale=scale), truth) < 1e-3


def test_trilaterate_joint_fit_beats_linear_start_on_noisy_distances():
    p = fcc_cluster("Pt", layers=(4, 4, 3))
    u, scale, _ = to_unit_sphere(p.positions)
    f, m = node_features(u, 11, 100)
    rng = np.random.default_rng(0)
    noisy = f + rng.normal(0, 0.02, f.shape).astype(np.float32) * m[:, None]
    truth = u[atom_order(u)] * scale
    start = multilaterate(noisy[m][:, 100:], satellites(11)) * scale
    x, info = trilaterate(noisy, satellites(11), n_atoms=int(m.sum()), scale=scale, return_info=True)
    assert info["loss"] < info["loss_init"]
    assert _rmsd(x, truth) < 0.5 * _rmsd(start, truth)


def test_rmsd_aligned_permutation_rotation_reflection():
    rng = np.random.default_rng(7)
    chiral = rng.normal(size=(30, 3)) * 3.0  # random cloud: its mirror image is not a rotation of it
    rot = Rotation.random(random_state=2).as_matrix()
    moved = (chiral @ rot.T)[rng.permutation(30)] + 4.0
    mirrored = moved * np.array([1.0, 1.0, -1.0])
    assert rmsd_aligned(chiral, moved) < 1e-8
    assert rmsd_aligned(chiral, mirrored) < 1e-8
    assert rmsd_aligned(chiral, mirrored, allow_reflection=False) > 0.1
    noisy = moved + rng.normal(0, 0.05, moved.shape)
    assert 0.02 < rmsd_aligned(chiral, noisy) < 0.1
    # different atom counts: the smaller set is matched into the larger one
    assert rmsd_aligned(chiral[:25], moved) < 1e-8
    with pytest.raises(InputError):
        rmsd_aligned(np.zeros((0, 3)), chiral)


def test_nn_scale_from_pdf_recovers_angstrom_scale():
    p = fcc_cluster("Cu", layers=(3, 3, 3))
    u, scale, _ = to_unit_sphere(p.positions)
    r = np.linspace(0, 30, 3000)
    est = nn_scale_from_pdf(u, r, cluster_pdf(p, r=r, qmax=30, delta2=2.0))
    assert est == pytest.approx(scale, rel=0.01)


# ------------------------------------------------------------------------------------------ data
def test_generate_paper_set_store_and_splits(tmp_path):
    store = ds.generate(tmp_path / "paper.sqlite", "paper", seed=0)  # time: benchmarks/speed/bench_speed.py
    n = len(store)
    assert n == store.attrs["n_records"] and 1000 < n < 3137
    meta = store.meta_table()
    assert all(m["n_atoms"] < 100 and m["shape"] == "fcc" for m in meta)
    # the 343 layer combinations cut only 8 distinct FCC clusters below 100 atoms
    assert sorted({m["n_atoms"] for m in meta}) == [19, 43, 55, 63, 79, 85, 87, 93]
    assert len({m["group"] for m in meta}) == 8
    rec = store.read(5)
    assert rec["pdf"].shape == (3000,) and rec["pdf"].dtype == np.float32
    assert rec["positions"].shape == (rec["n_atoms"], 3)
    lo, hi = ds.PDFSettings().biso_range
    assert all(lo <= m["biso"] <= hi for m in meta)
    # no duplicate cluster: (geometry, lattice constant) unique
    assert len({(m["group"], round(m["lattice_constant"], 4)) for m in meta}) == n
    # the stored PDF is the simulator's for the stored parameters
    g = cluster_pdf(rec["positions"], qmin=0.7, qmax=30.0, qdamp=0.04, biso=rec["biso"], delta2=rec["delta2"])
    np.testing.assert_allclose(rec["pdf"], g, rtol=1e-5, atol=1e-5 * np.abs(g).max())

    paper = ds.read_split(store, "paper", seed=1)
    assert sum(len(v) for v in paper.values()) == n
    assert len(np.unique(np.concatenate(list(paper.values())))) == n
    assert len(paper["train"]) == round(n * 2400 / 3137)
    assert ds.paper_split(3137, 0)["test"].size == 137
    grouped = ds.read_split(store, "grouped", seed=1)
    groups = np.array([m["group"] for m in meta])
    assert all(len(v) for v in grouped.values())
    assert not set(groups[grouped["train"]]) & set(groups[grouped["test"]])
    assert not set(groups[grouped["train"]]) & set(groups[grouped["val"]])

    tensors = ds.load_tensors(store, paper["test"][:8], n_satellites=11, max_atoms=100, n_r=300)
    assert tensors["features"].shape == (8, 100, 111) and tensors["pdf"].shape == (8, 300)
    item = ds.DeepStrucDataset(store, paper["val"])[0]
    assert item["features"].shape == (100, 111) and item["mask"].sum() == item["n_atoms"]
    store.close()


def test_generation_is_deterministic_and_seeded(tmp_path):
    kw = dict(elements=("Au", "Pt"), scales=(0.99, 1.0, 1.01), shapes=("icosahedron", "octahedron", "hcp"),
              layers=(2, 3), max_atoms=200)
    a = ds.generate(tmp_path / "a.sqlite", "extended", seed=3, **kw)
    b = ds.generate(tmp_path / "b.sqlite", "extended", seed=3, **kw)
    c = ds.generate(tmp_path / "c.sqlite", "extended", seed=4, **kw)
    assert a.keys() == b.keys() == c.keys() and len(a) > 10
    assert {m["shape"] for m in a.meta_table()} == {"icosahedron", "octahedron", "hcp"}
    assert max(m["n_atoms"] for m in a.meta_table()) <= 200
    for i in (0, len(a) - 1):
        np.testing.assert_array_equal(a.read(i)["pdf"], b.read(i)["pdf"])
    assert [m["biso"] for m in a.meta_table()] != [m["biso"] for m in c.meta_table()]
    # writing the same set again into an existing file is a no-op; different content is refused
    ds.generate(tmp_path / "a.sqlite", "extended", seed=3, **kw)
    with pytest.raises(InputError):
        ds.generate(tmp_path / "a.sqlite", "extended", seed=4, **kw)
    for s in (a, b, c):
        s.close()


def test_data_rejects_bad_requests(tmp_path):
    with pytest.raises(InputError):
        ds.enumerate_geometries("nonsense")
    with pytest.raises(InputError):
        ds.enumerate_geometries("paper", shapes=("bcc",))
    with pytest.raises(InputError):
        ds.PDFSettings(biso_range=(0.5, 0.1))


def test_rmsd_aligned_handles_one_and_two_atom_clusters():
    import numpy as np

    from nanosolve.models.deepstruc.trilaterate import rmsd_aligned

    dimer = np.array([[0.0, 0.0, 0.0], [2.8, 0.0, 0.0]])
    turned = np.array([[1.0, 1.0, 1.0], [1.0, 3.8, 1.0]])  # same dimer, rotated and moved
    assert rmsd_aligned(dimer, turned) < 1e-9
    assert abs(rmsd_aligned(dimer, turned * 1.1 - 0.1 * turned.mean(0)) - 0.14) < 1e-9  # bond 2.8 -> 3.08
    assert rmsd_aligned(dimer[:1], turned[:1]) == 0.0
