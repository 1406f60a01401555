"""ChiliDataset: a graph store seen as a torch_geometric Dataset (indexing, transforms, batching)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from nanosolve.datasets import ChiliDataset, GraphStore, ShardedGraphStore
from nanosolve.errors import InputError

SIGNALS = {"saxs": 300, "sans": 300, "xrd": 580, "nd": 580, "xpdf": 6000, "npdf": 6000}
SYSTEMS = ["triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic"]


def record(i: int) -> dict:
    """Synthetic record with the spec's names, shapes and dtypes (a pure function of i)."""
    rng = np.random.default_rng(i)
    n, m = 3 + i, 1 + i % 3
    e, eu = 2 * (n - 1), 2 * m
    half = np.stack([np.arange(n - 1), np.arange(1, n)])  # a chain, both directions
    uc_half = np.stack([np.arange(m), (np.arange(m) + 1) % m])
    rec = {
        "id": f"type{i % 3}_M{i}_r{5 * (1 + i % 4)}", "crystal_type": f"type{i % 3}",
        "space_group_number": 1 + 37 * i, "crystal_system": SYSTEMS[i % 7], "crystal_system_number": 1 + i % 7,
        "atomic_species": sorted(["O", f"M{i}"]), "n_atomic_species": 2, "np_size": 1.5 * i + 0.25,
        "n_atoms": n, "n_bonds": e // 2, "unit_cell_n_atoms": m, "unit_cell_n_bonds": eu // 2,
        "radius": 5.0 * (1 + i % 4), "metal": f"M{i}", "source": f"{i}.cif", "formula": f"M{i % 2}O",
        "x": rng.random((n, 4), dtype=np.float32),
        "edge_index": np.concatenate([half, half[::-1]], axis=1).astype(np.int64),
        "edge_attr": rng.random((e, 1), dtype=np.float32),
        "pos_abs": rng.random((n, 3), dtype=np.float32), "pos_frac": rng.random((n, 3), dtype=np.float32),
        "cell_params": np.array([3 + i, 4, 5, 90, 90, 120], dtype=np.float32),
        "unit_cell_x": rng.random((m, 4), dtype=np.float32),
        "unit_cell_edge_index": np.concatenate([uc_half, uc_half[::-1]], axis=1).astype(np.int64),
        "unit_cell_edge_attr": rng.random((eu, 1), dtype=np.float32),
        "unit_cell_pos_abs": rng.random((m, 3), dtype=np.float32),
        "unit_cell_pos_frac": rng.random((m, 3), dtype=np.float32),
    }
    rec.update({k: rng.random(n_q, dtype=np.float32) for k, n_q in SIGNALS.items()})
    return rec


N = 8


@pytest.fixture(scope="module", params=["file", "sharded"])
def store_path(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("pyg")
    if request.param == "file":
        path, store = d / "chili.sqlite", GraphStore(d / "chili.sqlite")
    else:
        path, store = d / "chili", ShardedGraphStore(d / "chili", shard_size=3)
    with store:
        store.put_many([(i, record(i)["id"], record(i)) for i in reversed(range(N))])
        store.set_attrs({"q_xrd": [1.0, 29.95, 580]})
    return path


def test_get_gives_tensors_with_the_spec_shapes(store_path):
    ds = ChiliDataset(store_path)
    assert len(ds) == N and ds.attrs == {"q_xrd": [1.0, 29.95, 580]}
    for i in (0, 5):
        d, rec = ds[i], record(i)
        assert d.num_nodes == rec["n_atoms"]
        for name in ("x", "edge_index", "edge_attr", "pos_abs", "pos_frac", "unit_cell_x",
                     "unit_cell_edge_index", "unit_cell_edge_attr", "unit_cell_pos_abs", "unit_cell_pos_frac"):
            assert torch.equal(d[name], torch.from_numpy(rec[name])), name
        assert d.x.dtype == torch.float32 and d.edge_index.dtype == torch.int64
        for name, n_q in SIGNALS.items():
            assert d[name].shape == (1, n_q) and torch.equal(d[name][0], torch.from_numpy(rec[name]))
        assert d.cell_params.shape == (1, 6)
        assert d.space_group_number.dtype == torch.int64 and int(d.space_group_number) == rec["space_group_number"]
        assert d.radius.dtype == torch.float32 and float(d.radius) == rec["radius"]
        assert d.id == rec["id"] and d.atomic_species == rec["atomic_species"] and d.formula == rec["formula"]
    assert [m["id"] for m in ds.meta] == [record(i)["id"] for i in range(N)]
    assert "x" not in ds.meta[0]


def test_slices_lists_tensors_and_shuffle(store_path):
    ds = ChiliDataset(store_path)
    ids = [record(i)["id"] for i in range(N)]
    assert [d.id for d in ds[1:5]] == ids[1:5]
    assert [d.id for d in ds[[0, 3]]] == [ids[0], ids[3]]
    assert [d.id for d in ds[torch.tensor([6, 1, 4])]] == [ids[6], ids[1], ids[4]]
    assert [d.id for d in ds[np.array([2, 7])]] == [ids[2], ids[7]]
    assert [d.id for d in ds[::3][1:]] == [ids[3], ids[6]]  # a view of a view
    assert ds[-1].id == ids[-1]
    torch.manual_seed(3)
    shuffled = [d.id for d in ds.shuffle()]
    torch.manual_seed(3)
    assert [d.id for d in ds.shuffle()] == shuffled
    assert sorted(shuffled) == sorted(ids) and shuffled != ids


def test_transform_pre_filter_and_fields(store_path):
    calls = []

    def target(data):
        calls.append(data.id)
        data.y = data.crystal_system_number - 1
        return data

    small = ChiliDataset(store_path, transform=target, pre_filter=lambda m: m["radius"] <= 10)
    keep = [i for i in range(N) if record(i)["radius"] <= 10]
    assert len(small) == len(keep) < N
    assert [m["id"] for m in small.meta] == [record(i)["id"] for i in keep]
    d = small[1]
    assert calls == [record(keep[1])["id"]] and int(d.y) == record(keep[1])["crystal_system_number"] - 1

    lean = ChiliDataset(store_path, fields=["x", "edge_index", "xrd", "crystal_system_number"])
    d = lean[2]
    assert set(d.keys()) == {"x", "edge_index", "xrd", "crystal_system_number", "num_nodes"}
    assert torch.equal(d.xrd[0], torch.from_numpy(record(2)["xrd"]))
    with pytest.raises(InputError, match=r"unknown fields \['xrdd'\]"):
        ChiliDataset(store_path, fields=["xrdd"])


def test_dataloader_batches_collate_both_graphs(store_path):
    ds = ChiliDataset(store_path)
    batch = next(iter(DataLoader(ds, batch_size=4, follow_batch=["unit_cell_x"])))
    recs = [record(i) for i in range(4)]
    assert batch.num_graphs == 4
    for name, n_q in SIGNALS.items():
        assert batch[name].shape == (4, n_q)
        assert torch.equal(batch[name][2], torch.from_numpy(recs[2][name]))
    assert batch.cell_params.shape == (4, 6)
    assert batch.radius.shape == (4,) and batch.id == [r["id"] for r in recs]
    n = np.array([r["n_atoms"] for r in recs])
    m = np.array([r["unit_cell_n_atoms"] for r in recs])
    assert batch.x.shape == (n.sum(), 4) and batch.unit_cell_x.shape == (m.sum(), 4)
    # every edge stays inside its own graph, particle and unit cell alike, after the shifts
    want = np.concatenate([r["edge_index"] + off for r, off in zip(recs, np.cumsum(n) - n)], axis=1)
    assert np.array_equal(batch.edge_index.numpy(), want)
    want_uc = np.concatenate([r["unit_cell_edge_index"] + off for r, off in zip(recs, np.cumsum(m) - m)], axis=1)
    assert np.array_equal(batch.unit_cell_edge_index.numpy(), want_uc)
    assert np.array_equal(batch.unit_cell_x_batch.numpy(), np.repeat(np.arange(4), m))
    back = batch.to_data_list()[3]
    assert torch.equal(back.unit_cell_edge_index, torch.from_numpy(recs[3]["unit_cell_edge_index"]))


def test_worker_processes_read_the_same_batches(store_path):
    ds = ChiliDataset(store_path)
    ds[0]  # the parent has used its connection before the workers fork
    serial = [b.xpdf.clone() for b in DataLoader(ds, batch_size=3)]
    parallel = [b.xpdf for b in DataLoader(ds, batch_size=3, num_workers=2)]
    assert len(serial) == len(parallel) == 3
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
    assert ds[1].id == record(1)["id"]  # the parent's connection still works


def test_field_shadowing_a_data_method_is_refused(tmp_path):
    with GraphStore(tmp_path / "s.sqlite") as s:
        s.put(0, "a", {"x": np.zeros((2, 4), np.float32), "keys": ["k"]})
    with pytest.raises(InputError, match="'keys' would shadow"):
        ChiliDataset(tmp_path / "s.sqlite")[0]
