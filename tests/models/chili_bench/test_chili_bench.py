"""CHILI benchmark foundations: task targets on a generated dataset, metrics, baselines, models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from nanosolve.datasets.pyg import ChiliData, ChiliDataset
from nanosolve.datasets.splits import random_split
from nanosolve.errors import InputError
from nanosolve.models.chili_bench import (
    GENERATION_TASKS,
    MODELS,
    PROPERTY_TASKS,
    TASKS,
    Task,
    build_inputs,
    build_targets,
    evaluate_baselines,
    get_task,
    make_model,
    score,
    task_loss,
    to_prediction,
)
from nanosolve.models.chili_bench.baselines import collect_targets, fit_baseline, predict_baseline
from nanosolve.models.chili_bench.metrics import mae, masked_mae, mse, weighted_f1
from nanosolve.structures.elements import atomic_number

SIGNALS = ("saxs", "sans", "xrd", "nd", "xpdf", "npdf")


@pytest.fixture(scope="module")
def ds(store_path):
    return ChiliDataset(store_path)


@pytest.fixture(scope="module")
def batch(ds):
    return next(iter(DataLoader(ds, batch_size=len(ds))))


# ---------------------------------------------------------------------------------------------
# tasks


def test_task_registry():
    assert len(PROPERTY_TASKS) == 11
    levels = [t.level for t in PROPERTY_TASKS.values()]
    assert levels.count("node") == 2 and levels.count("edge") == 1 and levels.count("graph") == 8
    assert get_task("graph_space_group").out_dim == 230 and get_task("node_atomic_number").out_dim == 118
    assert {t.name for t in GENERATION_TASKS.values() if t.input_level == "graph"} == set(GENERATION_TASKS)
    with pytest.raises(InputError, match="unknown CHILI task"):
        get_task("nope")


def test_node_atomic_number_targets(ds):
    task = TASKS["node_atomic_number"]
    for i in (0, 7, 30):
        d, meta = ds[i], ds.meta[i]
        y, mask = build_targets(task, d)
        assert mask is None and y.dtype == torch.int64 and y.shape == (d.num_nodes,)
        # class index = Z - 1, checked against the element symbols of the label table
        assert set((y + 1).tolist()) == {atomic_number(s) for s in meta["atomic_species"]}
        x_in = build_inputs(task, d)
        assert x_in.shape == (d.num_nodes, 3) and torch.equal(x_in, d.pos_abs)  # no element info in


def test_node_position_and_edge_targets(ds):
    d = ds[5]
    y, _ = build_targets(TASKS["node_position"], d)
    assert torch.equal(y, d.pos_abs) and build_inputs(TASKS["node_position"], d).shape == (d.num_nodes, 4)
    y, _ = build_targets(TASKS["edge_bond_length"], d)
    src, dst = d.edge_index
    assert y.shape == (d.edge_index.shape[1],)
    # bond length target is the distance between the bonded atoms
    np.testing.assert_allclose(y.numpy(), (d.pos_abs[src] - d.pos_abs[dst]).norm(dim=1).numpy(), atol=1e-4)
    assert 1.5 < float(y.min()) and float(y.max()) < 4.0


def test_graph_label_targets_equal_meta(ds, batch):
    for name, key in (("graph_crystal_system", "crystal_system_number"), ("graph_space_group", "space_group_number")):
        y, _ = build_targets(TASKS[name], batch)
        assert y.tolist() == [m[key] - 1 for m in ds.meta]
    assert len(set(y.tolist())) > 3  # the tiny set has several space groups


@pytest.mark.parametrize("signal", SIGNALS)
def test_signal_targets_minmax(ds, batch, signal):
    task = TASKS[f"graph_{signal}"]
    y, _ = build_targets(task, batch)
    raw = batch[signal].double()
    assert y.shape == raw.shape == (len(ds), task.out_dim)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    np.testing.assert_allclose(y.min(1).values.numpy(), 0, atol=1e-7)
    np.testing.assert_allclose(y.max(1).values.numpy(), 1, atol=1e-6)
    lo, hi = raw.min(1, keepdim=True).values, raw.max(1, keepdim=True).values
    np.testing.assert_allclose((y.double() * (hi - lo) + lo).numpy(), raw.numpy(), rtol=1e-5, atol=1e-6 * float(hi.max()))
    # a batch gives the same targets as the graphs one by one
    torch.testing.assert_close(build_targets(task, ds[3])[0], y[3:4])


def test_unit_cell_generation_targets(store_path):
    task = TASKS["gen_xrd_unit_cell"]
    full = ChiliDataset(store_path)
    ds = ChiliDataset(store_path, pre_filter=task.accepts)
    assert 0 < len(ds) < len(full)  # some unit cells have > 20 atoms and are left out
    assert all(m["unit_cell_n_atoms"] <= 20 for m in ds.meta)
    b = next(iter(DataLoader(ds, batch_size=len(ds))))
    y, mask = build_targets(task, b)
    assert y.shape == mask.shape == (len(ds), 60)
    assert build_inputs(task, b).shape == (len(ds), 580)
    for g in range(len(ds)):
        n = ds.meta[g]["unit_cell_n_atoms"]
        assert int(mask[g].sum()) == 3 * n and bool(mask[g, :3 * n].all())
        rows = y[g].reshape(20, 3)
        assert torch.all(rows[n:] == 0)
        norms = rows[:n].norm(dim=1)
        assert torch.all(norms[1:] >= norms[:-1])
        raw = ds[g].unit_cell_pos_frac
        assert sorted(map(tuple, rows[:n].tolist())) == sorted(map(tuple, raw.tolist()))
    big = next(i for i, m in enumerate(full.meta) if m["unit_cell_n_atoms"] > 20)
    with pytest.raises(InputError, match="filter with task.accepts"):
        build_targets(task, full[big])


def test_property_to_property_targets(ds, batch):
    y, _ = build_targets(TASKS["p2p_saxs_cell_params"], batch)
    torch.testing.assert_close(y, batch.cell_params)
    assert build_inputs(TASKS["p2p_xpdf_space_group"], batch).shape == (len(ds), 6000)
    y, _ = build_targets(TASKS["p2p_xrd_crystal_system"], batch)
    assert y.tolist() == [m["crystal_system_number"] - 1 for m in ds.meta]


# ---------------------------------------------------------------------------------------------
# metrics (scikit-learn is not installed: hand-computed values and an independent formulation)


def test_weighted_f1_hand_example():
    t = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 2, 3]
    # class 0: 2TP/(3 true + 2 pred) = 0.8; class 1: 2/(2+2) = 0.5; class 2: 0; class 3 has no support
    assert weighted_f1(t, p) == pytest.approx((3 * 0.8 + 2 * 0.5 + 0) / 6)
    assert weighted_f1(torch.tensor(t), torch.tensor(p)) == pytest.approx(3.4 / 6)
    assert weighted_f1(t, t) == 1.0
    assert weighted_f1([1, 1, 2], [2, 2, 1]) == 0.0


def test_weighted_f1_matches_precision_recall_form():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    expected = 0.0
    for c in np.unique(t):
        tp = np.sum((t == c) & (p == c))
        prec = tp / max(np.sum(p == c), 1)
        rec = tp / np.sum(t == c)
        f1 = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
        expected += f1 * np.sum(t == c) / len(t)
    assert weighted_f1(t, p) == pytest.approx(expected, rel=1e-12)


def test_regression_metrics_hand_values():
    assert mae([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]) == pytest.approx(1.0)
    assert mse([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]) == pytest.approx(5 / 3)
    assert mse(torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 1.0]])) == pytest.approx(4.5)
    mask = np.array([True, False, True])
    assert masked_mae([1.0, 2.0, 3.0], [2.0, 9.0, 5.0], mask) == pytest.approx(1.5)
    assert score("mse", [1.0, 2.0, 3.0], [2.0, 9.0, 5.0], mask) == pytest.approx(2.5)
    with pytest.raises(InputError, match="shape"):
        mae([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="unknown metric"):
        score("r2", [1.0], [1.0])


# ---------------------------------------------------------------------------------------------
# baselines


def test_baselines(ds):
    split = random_split(len(ds), (0.5, 0.5), seed=1)
    train, test = ds[split["train"]], ds[split["test"]]
    task = TASKS["graph_crystal_system"]
    res = evaluate_baselines(task, train, test, seed=0)
    y_tr, _ = collect_targets(task, train)
    y_te, _ = collect_targets(task, test)
    c = np.bincount(y_tr).argmax()
    n, n_c = len(y_te), int(np.sum(y_te == c))
    # predicting one class c everywhere: F1_c = 2 n_c / (n + n_c), weight n_c / n, others 0
    assert res["most_frequent"] == pytest.approx(2 * n_c ** 2 / (n * (n + n_c)))
    assert 0.0 <= res["random"] <= 1.0 and res["random"] == evaluate_baselines(task, train, test, seed=0)["random"]

    sig = TASKS["graph_xrd"]
    y, _ = collect_targets(sig, ds)
    params = fit_baseline("mean", sig, y)
    # the mean regressor scored on its own training set gives the mean per-entry variance
    assert score("mse", y, predict_baseline(params, len(y))) == pytest.approx(float(y.astype(np.float64).var(0).mean()), rel=1e-6)
    assert evaluate_baselines(TASKS["edge_bond_length"], train, test)["mean"] > 0
    gen = TASKS["gen_xrd_unit_cell"]
    small = [d for d, m in zip(ds, ds.meta) if gen.accepts(m)]
    assert 0 < evaluate_baselines(gen, small[::2], small[1::2])["mean"] < 1
    with pytest.raises(InputError, match="does not apply"):
        fit_baseline("mean", task, y_tr)


# ---------------------------------------------------------------------------------------------
# models

MODEL_TASKS = [
    ("gcn", "graph_crystal_system", "dot"), ("pmlp", "node_atomic_number", "dot"),
    ("graphsage", "edge_bond_length", "dot"), ("gat", "graph_saxs", "dot"),
    ("graphunet", "graph_space_group", "dot"), ("gin", "node_atomic_number", "dot"),
    ("edgecnn", "edge_bond_length", "distance"), ("cfconv", "node_atomic_number", "dot"),
    ("cfconv", "graph_crystal_system", "dot"), ("mlp", "graph_crystal_system", "dot"),
    ("mlp", "p2p_xrd_crystal_system", "dot"), ("mlp", "gen_xrd_unit_cell", "dot"),
    ("localenv", "graph_space_group", "dot"), ("signalnet", "gen_xrd_unit_cell", "dot"),
    ("signalnet", "p2p_xpdf_space_group", "dot"), ("cfconv", "edge_bond_length", "distance"),
    ("pairdist", "graph_saxs", "dot"), ("pairdist", "graph_npdf", "dot"),
]


@pytest.mark.parametrize("name,task_name,edge_head", MODEL_TASKS)
def test_model_trains(store_path, name, task_name, edge_head):
    torch.manual_seed(0)
    task = TASKS[task_name]
    ds = ChiliDataset(store_path, pre_filter=task.accepts, fields=task.fields + ("edge_attr",))
    b = next(iter(DataLoader(ds[1::3][:8], batch_size=8)))  # the first graphs are all cubic
    model = make_model(name, task, hidden=32, layers=2, edge_head=edge_head, sample=ds[0])
    y, mask = build_targets(task, b)
    if task.is_classification:
        assert len(torch.unique(y)) >= 2  # a single class would be learnt by the bias alone
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out = model(b)
        loss = task_loss(task, out, y, mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses
    model.eval()
    with torch.no_grad():
        pred = to_prediction(task, model(b))
    assert pred.reshape(y.shape).shape == y.shape
    assert np.isfinite(score(task.metric, y, pred.reshape(y.shape), mask))


def test_distance_head_recovers_bond_lengths_from_positions(store_path):
    # the paper's edge task hands the model x and pos_abs; the bond length is then |r_i - r_j|,
    # which the distance-aware head reads and the paper's dot product of embeddings cannot
    task = TASKS["edge_bond_length"]
    ds = ChiliDataset(store_path, fields=task.fields + ("edge_attr",))
    b = next(iter(DataLoader(ds[1::3][:8], batch_size=8)))
    y, _ = build_targets(task, b)
    mean_mse = float(((y - y.mean()) ** 2).mean())
    mse = {}
    for head in ("distance", "dot"):
        torch.manual_seed(0)
        model = make_model("cfconv", task, hidden=32, layers=2, edge_head=head, sample=ds[0])
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(300):
            opt.zero_grad()
            # standardised, as the runner trains it
            loss = task_loss(task, model(b), (y - y.mean()) / y.std())
            loss.backward()
            opt.step()
        with torch.no_grad():
            mse[head] = float(((model(b) * y.std() + y.mean() - y) ** 2).mean())
    assert mse["distance"] < 0.01 * mean_mse, (mse, mean_mse)
    assert mse["dot"] > 10 * mse["distance"], mse


def test_node_position_reaches_mean_baseline(store_path):
    # positions from element features alone are not identifiable (any rotation of a particle
    # has the same graph), so the best a GNN can do is about the mean position: check that the
    # training gets there from a random start
    torch.manual_seed(0)
    task = TASKS["node_position"]
    ds = ChiliDataset(store_path, fields=task.fields)
    b = next(iter(DataLoader(ds[:8], batch_size=8)))
    y, _ = build_targets(task, b)
    model = make_model("gcn", task, hidden=32, layers=2, sample=ds[0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        loss = task_loss(task, model(b), y)
        loss.backward()
        opt.step()
    mean_mse = float(((y - y.mean(0)) ** 2).mean())
    with torch.no_grad():
        final = task_loss(task, model(b), y).item()
    assert final < 1.05 * mean_mse
    assert mae(y, to_prediction(task, model(b))) > 0.5  # and, as expected, no better than that by far


def test_pair_fields_and_weighted_histogram_match_brute_force():
    from nanosolve.models.chili_bench.pairdist import PairDistanceNet, pair_fields

    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 4, (9, 3))
    z = np.array([30, 79, 30, 8, 79, 30, 8, 8, 30])
    bw, nb = 0.5, 10  # r_max 5 Å: farther pairs land in the last bin
    expect = {}
    for i in range(9):
        for j in range(i + 1, 9):
            key = tuple(sorted((int(z[i]), int(z[j]))))
            b = min(int(np.linalg.norm(pos[i] - pos[j]) / bw), nb - 1)
            expect.setdefault(key, np.zeros(nb))[b] += 1
    counts, index = pair_fields(torch.tensor(pos), torch.tensor(z), bw, bw * nb)
    assert counts.shape == (6, nb) and index.shape == (2, 6)  # 3 elements: 6 element pairs
    got = {tuple(sorted((int(z[a]), int(z[b])))): c.numpy() for (a, b), c in zip(index.T.tolist(), counts)}
    assert set(got) == set(expect)
    for key in expect:
        np.testing.assert_array_equal(got[key], expect[key])
    assert counts.sum() == 36
    # the model's histogram = the per-atom-weighted histogram of all pairs, weights w(element)
    torch.manual_seed(0)
    net = PairDistanceNet(3, hidden=8, channels=2, bin_width=bw, r_max=bw * nb)
    x = torch.tensor(np.c_[z, np.ones((9, 3))], dtype=torch.float32)
    data = ChiliData(x=x, pos_abs=torch.tensor(pos, dtype=torch.float32))
    with torch.no_grad():
        w = torch.nn.functional.softplus(net.atom_weights(net.elements(x))).double().numpy()
        feats = net.features(data)[0, :2 * nb].reshape(2, nb).double().numpy()
    hist = np.zeros((nb, 2))
    for i in range(9):
        for j in range(i + 1, 9):
            hist[min(int(np.linalg.norm(pos[i] - pos[j]) / bw), nb - 1)] += w[i] * w[j]
    np.testing.assert_allclose(feats, (hist / hist.sum(0) * nb ** 0.5).T, rtol=1e-5)
    one = pair_fields(torch.zeros(1, 3), torch.tensor([8]), bw, bw * nb)
    assert one[0].shape == (0, nb) and one[1].shape == (2, 0)


def test_pairdist_is_rotation_invariant_and_reads_precomputed_pairs(store_path):
    from scipy.spatial.transform import Rotation
    from torch_geometric.data import Batch

    from nanosolve.models.chili_bench.pairdist import PairDistanceNet, add_pair_fields

    task = TASKS["graph_saxs"]
    ds = ChiliDataset(store_path, fields=task.fields)
    graphs = [ds[i] for i in range(4)]
    b = Batch.from_data_list(graphs)
    torch.manual_seed(0)
    model = make_model("pairdist", task, hidden=16).eval()
    rot = torch.tensor(Rotation.random(random_state=1).as_matrix(), dtype=torch.float32)
    turned = b.clone()
    turned.pos_abs = b.pos_abs.float() @ rot.T
    # what the runner caches (pair_index offset per graph by PyG's batching) gives the same output
    cached = Batch.from_data_list([add_pair_fields(g.clone()) for g in graphs])
    with torch.no_grad():
        first, rotated, from_cache = model(b), model(turned), model(cached)
    torch.testing.assert_close(rotated, first, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(from_cache, first)
    assert first.shape == (4, task.out_dim)
    with pytest.raises(InputError, match="bins"):  # counts cached on other bins are refused
        PairDistanceNet(task.out_dim, hidden=16, bin_width=0.1)(cached)


def test_every_model_listed_is_covered():
    # the template model has its own loss and decoding: tests/models/chili_bench/test_chili_templates.py
    assert {m for m, _, _ in MODEL_TASKS} | {"templates"} == set(MODELS)


def test_make_model_rejects_bad_combinations(ds):
    with pytest.raises(InputError, match="only 'mlp'"):
        make_model("gcn", TASKS["p2p_xrd_crystal_system"], in_channels=580)
    # bond lengths from elements alone: cfconv would read its own target
    x_only = Task("edge_from_elements", "edge", ("x",), "edge_attr", "regression", 1, "mse", "mse")
    with pytest.raises(InputError, match="target of this task"):
        make_model("cfconv", x_only, in_channels=4)
    with pytest.raises(InputError, match="unknown model"):
        make_model("transformer", TASKS["graph_saxs"], in_channels=7)
    with pytest.raises(InputError, match="signalnet reads one signal"):
        make_model("signalnet", TASKS["graph_saxs"], in_channels=7)
    with pytest.raises(InputError, match="localenv classifies"):
        make_model("localenv", TASKS["graph_saxs"], in_channels=7)
    with pytest.raises(InputError, match="pairdist maps"):
        make_model("pairdist", TASKS["node_position"], in_channels=4)
    with pytest.raises(InputError, match="in_channels"):
        make_model("gcn", TASKS["graph_saxs"])


def test_crop_keeps_nearest_atoms_and_their_bonds(store_path):
    from nanosolve.models.chili_bench.local import LocalEnvNet, crop_graph

    task = TASKS["graph_crystal_system"]
    ds = ChiliDataset(store_path, fields=task.fields)
    big = max(ds, key=lambda d: d.num_nodes)
    n = big.num_nodes
    pos = big.pos_abs.double()
    d_full = (pos - pos[5]).norm(dim=1)
    ds_sorted = torch.sort(d_full).values
    # a crop size at a shell boundary, so "the k nearest" is one set (no tie at the k-th distance)
    k = max(j for j in range(3, n // 2) if ds_sorted[j] - ds_sorted[j - 1] > 1e-3)
    c = crop_graph(big, k, center=5)
    sub = c.pos_abs.double()
    # exactly the k nearest atoms (as a set) and their x rows
    assert c.num_nodes == k and int(c.n_atoms) == k
    assert torch.allclose(torch.sort((sub - pos[5]).norm(dim=1)).values, torch.sort(d_full).values[:k])
    kept = torch.nonzero(d_full <= torch.sort(d_full).values[k - 1]).flatten()
    assert torch.equal(c.x, big.x[kept])
    # the bonds among the kept atoms, no others, relabelled
    ei = big.edge_index
    inside = torch.isin(ei[0], kept) & torch.isin(ei[1], kept)
    assert c.edge_index.shape[1] == int(inside.sum()) and int(c.edge_index.max()) < k
    d_sub = (sub[c.edge_index[0]] - sub[c.edge_index[1]]).norm(dim=1)
    d_big = (pos[ei[0, inside]] - pos[ei[1, inside]]).norm(dim=1)
    assert torch.allclose(torch.sort(d_sub).values, torch.sort(d_big).values)
    assert int(c.crystal_system_number) == int(big.crystal_system_number)
    # a small particle is returned whole; the network is invariant to a rotation of the crop
    assert crop_graph(big, n + 1) is big
    # the whole particle's cached pair counts do not describe a crop: dropped, pairdist recounts
    from nanosolve.models.chili_bench.pairdist import add_pair_fields

    assert "pair_counts" not in crop_graph(add_pair_fields(big.clone()), k, center=5)
    net = LocalEnvNet(7, hidden=16, layers=2).eval()
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    rot = c.clone()
    rot.pos_abs = (c.pos_abs.double() @ q.T + 3.0).to(c.pos_abs.dtype)
    with torch.no_grad():
        assert torch.allclose(net(c), net(rot), atol=1e-4)


def test_scipy_graphunet_squares_the_adjacency_as_pyg_does():
    # oracle: PyG's own GraphUNet (torch sparse CSR product) on a weighted random graph
    import warnings

    from torch_geometric.nn.models import GraphUNet

    from nanosolve.models.chili_bench.layers import SciPyGraphUNet

    g = torch.Generator().manual_seed(0)
    n = 120
    ei = torch.randint(0, n, (2, 500), generator=g)
    ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)
    w = torch.rand(ei.shape[1], generator=g) + 0.5
    ref, ours = GraphUNet(4, 8, 3, depth=2), SciPyGraphUNet(4, 8, 3, depth=2)
    ours.load_state_dict(ref.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "sparse CSR tensor support is in beta state"
        (ia, wa), (ib, wb) = ref.augment_adj(ei, w, n), ours.augment_adj(ei, w, n)
        x = torch.randn(n, 4, generator=g)
        out_ref, out = ref(x, ei), ours(x, ei)
    oa, ob = torch.argsort(ia[0] * n + ia[1]), torch.argsort(ib[0] * n + ib[1])
    assert ia.shape[1] > 4 * ei.shape[1]  # two-step paths: far more edges than the graph has
    assert torch.equal(ia[:, oa], ib[:, ob]) and not (ib[0] == ib[1]).any()
    assert torch.allclose(wa[oa], wb[ob], rtol=1e-6)
    assert torch.allclose(out_ref, out, atol=1e-5)
