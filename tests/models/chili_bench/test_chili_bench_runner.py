"""CHILI benchmark runner, results tables and CLI, on a tiny generated CHILI-style store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nanosolve.cli.main import app
from nanosolve.datasets.pyg import ChiliDataset
from nanosolve.datasets.splits import random_split
from nanosolve.errors import InputError
from nanosolve.models.checkpoints import load_checkpoint
from nanosolve.models.chili_bench import build_inputs, get_task, make_model
from nanosolve.models.chili_bench.metrics import mae, masked_mae, mse, position_mae, weighted_f1
from nanosolve.models.chili_bench.results import format_cell, render_markdown, summarize
from nanosolve.models.chili_bench.runner import (
    RESULTS_FILE,
    RunConfig,
    _append_line,
    load_fields,
    load_task_data,
    plan_runs,
    read_result_lines,
    rescore,
    resolve_model,
    run_dir,
    run_many,
    run_one,
    shuffle_node_order,
    split_parts,
)

torch.set_num_threads(1)
GEN = "gen_xrd_unit_cell"


def _cfg(store_path, task=GEN, model="mlp", **kw):
    base = dict(dataset=str(store_path), budget_minutes=1.0, max_epochs=4, patience=0, batch_size=8, hidden=16,
                layers=2, lr=3e-3)
    base.update(kw)
    return RunConfig(task=task, model=model, **base)


def _lines(out):
    return read_result_lines(out / RESULTS_FILE)[0]


# ---------------------------------------------------------------------------------------------
# data cache


def test_field_cache_matches_store_and_survives_damage(store_path, tmp_path):
    fields = ["x", "edge_index", "xrd", "n_atoms", "space_group_number"]
    c1, meta, info1 = load_fields(store_path, fields, tmp_path)
    assert info1["source"] == "store"
    c2, _, info2 = load_fields(store_path, fields, tmp_path)
    assert info2["source"] == "cache"
    for f in fields:
        assert torch.equal(c1[f]["data"], c2[f]["data"]) and torch.equal(c1[f]["ptr"], c2[f]["ptr"])
    task = get_task("graph_space_group")
    data = load_task_data(store_path, task, ("gcn",), tmp_path)
    ds = ChiliDataset(store_path, fields=("x", "edge_index", "space_group_number", "n_atoms", "pos_abs"))
    assert data.n == len(ds) == len(meta)
    for i in (0, 17, len(ds) - 1):
        ref, got = ds[i], data.items[i]
        assert torch.equal(ref.x, got.x) and torch.equal(ref.edge_index, got.edge_index)
        assert torch.equal(ref.pos_abs, got.pos_abs) and int(ref.space_group_number) == int(got.space_group_number)
        assert got.num_nodes == ref.num_nodes
    # a damaged cache file is rebuilt from the store, not trusted
    damaged = next((tmp_path).rglob("x.pt"))
    damaged.write_bytes(b"not a torch file")
    c3, _, info3 = load_fields(store_path, ["x"], tmp_path)
    assert info3["source"] == "store" and torch.equal(c3["x"]["data"], c1["x"]["data"])


def test_pair_counts_are_derived_once_and_cached(store_path, tmp_path):
    from nanosolve.models.chili_bench.pairdist import pair_fields

    fields = ["pair_counts", "pair_index"]
    c1, _, info1 = load_fields(store_path, fields, tmp_path)
    assert info1["source"] == "store" and set(c1) == set(fields)  # the sources (pos_abs, x) are not returned
    c2, _, info2 = load_fields(store_path, fields, tmp_path)
    assert info2["source"] == "cache" and torch.equal(c1["pair_counts"]["data"], c2["pair_counts"]["data"])
    data = load_task_data(store_path, get_task("graph_saxs"), ("pairdist",), tmp_path)
    ds = ChiliDataset(store_path, fields=("x", "pos_abs"))
    for i in (0, len(ds) - 1):
        counts, index = pair_fields(ds[i].pos_abs, ds[i].x[:, 0])
        assert torch.equal(data.items[i].pair_counts, counts) and torch.equal(data.items[i].pair_index, index)
        assert counts.sum() == ds[i].num_nodes * (ds[i].num_nodes - 1) // 2
    # counts cached on other bins are recomputed, not read with the wrong meaning
    fp = next(tmp_path.rglob("pair_counts.pt"))
    stale = load_checkpoint(fp)
    stale["bin_width"] = 0.1
    torch.save(stale, fp)
    _, _, info3 = load_fields(store_path, fields, tmp_path)
    assert info3["source"] == "mixed"


def test_signal_task_data_is_stacked(store_path):
    task = get_task("gen_xrd_pos_abs")
    data = load_task_data(store_path, task)
    ds = ChiliDataset(store_path, pre_filter=task.accepts, fields=("xrd", "pos_abs", "n_atoms"))
    assert data.items is None and data.inputs.shape == (len(ds), 580) == (data.n, 580)
    assert all(m["n_atoms"] <= 200 for m in data.meta)
    g = 3
    torch.testing.assert_close(data.inputs[g], ds[g].xrd[0])
    # the model sees each pattern as log10 then min-max scaled to [0, 1] (intensities span decades)
    x = build_inputs(task, {"xrd": data.inputs[:5]})
    raw = np.log10(data.inputs[:5].double().numpy())
    lo, hi = raw.min(1, keepdims=True), raw.max(1, keepdims=True)
    np.testing.assert_allclose(x.numpy(), (raw - lo) / (hi - lo), atol=1e-5)
    # targets: the particle's positions sorted by distance from its centre, zero-padded to 200 atoms
    n = ds.meta[g]["n_atoms"]
    rows = data.targets[g].reshape(200, 3)
    assert int(data.mask[g].sum()) == 3 * n and torch.all(rows[n:] == 0)
    ref = ds[g].pos_abs
    torch.testing.assert_close(rows[:n], ref[torch.argsort(ref.norm(dim=1), stable=True)])


# ---------------------------------------------------------------------------------------------
# runs


def test_run_writes_result_checkpoint_and_curve(store_path, tmp_path):
    cfg = _cfg(store_path, task="graph_crystal_system", model="gcn", max_epochs=3)
    result, status = run_one(cfg, tmp_path)
    assert status == "done"
    rdir = run_dir(tmp_path, cfg)
    for f in ("config.json", "last.pt", "best.pt", "history.json", "curve.png", "result.json"):
        assert (rdir / f).is_file(), f
    lines = _lines(tmp_path)
    assert len(lines) == 1 and lines[0] == result
    assert result["epochs"] == 3 and result["stopped"] == "max_epochs" and result["n_test"] > 0
    assert result["n_train"] + result["n_val"] + result["n_test"] == 48
    ckpt = load_checkpoint(rdir / "last.pt")  # weights_only
    assert ckpt["epoch"] == 3 and len(ckpt["history"]) == 3
    # the reported score is the best-validation model's weighted F1 on the test part
    from sklearn.metrics import f1_score

    data = load_task_data(store_path, get_task(cfg.task))
    test = random_split(data.n, (0.8, 0.1, 0.1), seed=0)["test"]
    model = make_model("gcn", get_task(cfg.task), hidden=16, layers=2, sample=data.items[0])
    model.load_state_dict(load_checkpoint(rdir / "best.pt"))
    model.eval()
    x, y, _ = data.batch(test)
    with torch.no_grad():
        pred = model(x).argmax(-1)
    assert result["value"] == pytest.approx(f1_score(y.numpy(), pred.numpy(), average="weighted", zero_division=0))
    # rerun: skipped, no second line
    again, status = run_one(cfg, tmp_path)
    assert status == "skipped" and again == result and len(_lines(tmp_path)) == 1


def test_ours_on_structure_generation_decodes_library_structures(store_path, tmp_path):
    cfg = _cfg(store_path, task=GEN, model="ours", max_epochs=3)
    result, _ = run_one(cfg, tmp_path)
    assert result["arch"] == "templates" and set(result["val_by_decision"]) == {"argmax", "expected", "median"}
    # the rule is the one with the lowest validation error, and the test score is that rule's
    assert result["val_by_decision"][result["decision"]] == min(result["val_by_decision"].values())
    task = get_task(GEN)
    data = load_task_data(store_path, task)
    parts = random_split(data.n, (0.8, 0.1, 0.1), seed=0)
    model = make_model("templates", task, hidden=16, in_channels=data.inputs.shape[1])
    train = torch.as_tensor(parts["train"])
    model.fit_library(data.targets[train], data.mask[train])
    model.load_state_dict(load_checkpoint(run_dir(tmp_path, cfg) / "best.pt"))
    model.decision = result["decision"]
    model.eval()
    x, y, mask = data.batch(parts["test"])
    with torch.no_grad():
        pred = model.predict(model(x))
    assert result["value"] == pytest.approx(masked_mae(y.numpy(), pred.numpy(), mask.numpy()), rel=1e-6)
    if result["decision"] != "median":  # a whole training structure
        lib = {tuple(t.tolist()) for t in model.templates}
        assert all(tuple(p.tolist()) in lib for p in pred)


def test_ours_trains_on_crops_and_scores_crop_averages(store_path, tmp_path):
    cfg = _cfg(store_path, task="graph_crystal_system", model="ours", max_epochs=2, crop_atoms=20, eval_crops=3)
    result, _ = run_one(cfg, tmp_path)
    assert result["arch"] == "localenv" and result["crop_atoms"] == 20 and result["eval_crops"] == 3
    # the score is the weighted F1 of the mean log-probabilities over 3 seeded crops per particle
    from sklearn.metrics import f1_score
    from torch_geometric.data import Batch

    from nanosolve.models.chili_bench.local import crop_graph

    data = load_task_data(store_path, get_task(cfg.task), ("localenv",))
    test = random_split(data.n, (0.8, 0.1, 0.1), seed=0)["test"]
    model = make_model("localenv", get_task(cfg.task), hidden=16, layers=2)
    model.load_state_dict(load_checkpoint(run_dir(tmp_path, cfg) / "best.pt"))
    model.eval()
    preds, ys = [], []
    with torch.no_grad():
        for i in test:
            crops = [crop_graph(data.items[int(i)], 20, torch.Generator().manual_seed(1009 * int(i) + r)) for r in range(3)]
            logp = torch.log_softmax(model(Batch.from_data_list(crops)), -1).mean(0)
            preds.append(int(logp.argmax()))
            ys.append(int(data.items[int(i)].crystal_system_number) - 1)
    assert result["value"] == pytest.approx(f1_score(ys, preds, average="weighted", zero_division=0))
    # bonds: trained on crops (their bonds' lengths), scored on every bond of whole particles
    edge, _ = run_one(_cfg(store_path, task="edge_bond_length", model="ours", max_epochs=2, crop_atoms=20), tmp_path)
    assert edge["crop_atoms"] == 20 and edge["eval_crops"] == 0
    assert edge["arch"] == "cfconv" and edge["edge_head"] == "distance"
    assert np.isfinite(edge["value"]) and edge["value"] > 0
    # crops apply to particle classification and bonds only: elsewhere the setting is ignored
    other, _ = run_one(_cfg(store_path, task="graph_saxs", model="ours", max_epochs=1, crop_atoms=20), tmp_path)
    assert other["crop_atoms"] == 0 and other["arch"] == "pairdist"
    with pytest.raises(InputError, match="crop_atoms"):
        _cfg(store_path, task="graph_crystal_system", model="ours", crop_atoms=2).validate()


def test_killed_runs_resume_and_finished_runs_are_skipped(store_path, tmp_path):
    configs = [_cfg(store_path, model="mean"), _cfg(store_path, max_epochs=6), _cfg(store_path, max_epochs=6, seed=1)]

    def kill(ev):
        if ev["kind"] == "epoch" and ev["epoch"] == 2:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the second run

    with pytest.raises(KeyboardInterrupt):
        run_many(configs, tmp_path, progress=kill)
    assert len(_lines(tmp_path)) == 1  # the baseline finished
    ckpt = load_checkpoint(run_dir(tmp_path, configs[1]) / "last.pt")
    assert ckpt["epoch"] == 3 and not (run_dir(tmp_path, configs[1]) / "result.json").exists()
    done = run_many(configs, tmp_path)
    assert [s for _, s in done] == ["skipped", "resumed", "done"]
    lines = _lines(tmp_path)
    assert sorted((r["model"], r["seed"]) for r in lines) == [("mean", 0), ("mlp", 0), ("mlp", 1)]
    hist = json.loads((run_dir(tmp_path, configs[1]) / "history.json").read_text())
    assert [h["epoch"] for h in hist] == list(range(6))
    # the resumed run ends where an uninterrupted one does (seeded shuffles + saved RNG/optimizer)
    fresh, _ = run_one(_cfg(store_path, max_epochs=6), tmp_path / "fresh")
    resumed = next(r for r in lines if r["model"] == "mlp" and r["seed"] == 0)
    assert resumed["value"] == pytest.approx(fresh["value"], rel=1e-6)
    assert run_many(configs, tmp_path) and len(_lines(tmp_path)) == 3


def test_early_stopping_and_budget(store_path, tmp_path):
    # lr 1e-30 leaves the weights unchanged, so the validation loss never improves after epoch 0
    res, _ = run_one(_cfg(store_path, max_epochs=50, patience=3, lr=1e-30), tmp_path)
    assert res["stopped"] == "early_stopping" and res["epochs"] == 4 and res["best_epoch"] == 0
    res, _ = run_one(_cfg(store_path, task="graph_crystal_system", model="ours", budget_minutes=1e-5), tmp_path)
    assert res["stopped"] == "budget" and res["epochs"] == 1 and res["arch"] == "localenv"
    hist = json.loads((tmp_path / res["run_dir"] / "history.json").read_text())
    assert hist[0]["steps"] == 1


def test_cell_parameters_normalised_with_train_statistics(store_path, tmp_path):
    res, _ = run_one(_cfg(store_path, task="p2p_xrd_cell_params", max_epochs=2), tmp_path)
    ds = ChiliDataset(store_path, fields=("cell_params",))
    train = random_split(len(ds), (0.8, 0.1, 0.1), seed=0)["train"]
    y = torch.cat([ds[int(i)].cell_params for i in train]).double()
    np.testing.assert_allclose(res["target_norm"]["mean"], y.mean(0).numpy(), rtol=1e-5)
    std = y.std(0).numpy()
    np.testing.assert_allclose(res["target_norm"]["std"], np.where(std > 1e-6, std, 1.0), rtol=1e-4)
    assert np.sum(std <= 1e-6) >= 1  # the tiny set has a constant angle column, kept unscaled
    assert res["metric"] == "mae" and 0 < res["value"] < 50  # scored on the raw scale (Å, °)
    # bond lengths too (a fresh head outputs ~0, far from ~2.5 Å); scored in Å²
    res, _ = run_one(_cfg(store_path, task="edge_bond_length", model="gcn", max_epochs=1), tmp_path)
    ds = ChiliDataset(store_path, fields=("edge_attr",))
    y = torch.cat([ds[int(i)].edge_attr[:, 0] for i in train]).double()
    np.testing.assert_allclose(res["target_norm"]["mean"], [float(y.mean())], rtol=1e-5)
    np.testing.assert_allclose(res["target_norm"]["std"], [float(y.std())], rtol=1e-4)
    assert np.isfinite(res["value"]) and res["value"] > 0


def test_plan_and_config_errors(store_path, tmp_path):
    pairs, skipped = plan_runs("graph_crystal_system,gen_xrd_unit_cell", "baselines,ours")
    assert ("graph_crystal_system", "ours") in pairs and ("gen_xrd_unit_cell", "ours") in pairs
    assert not skipped
    assert ("graph_crystal_system", "most_frequent") in pairs and ("gen_xrd_unit_cell", "mean") in pairs
    gen, _ = plan_runs("gen_*,p2p_xrd_*", "mlp")
    assert {t for t, _ in gen} == {"gen_xrd_unit_cell", "gen_saxs_unit_cell", "gen_xpdf_unit_cell", "gen_saxs_pos_abs",
                                   "gen_xrd_pos_abs", "gen_xpdf_pos_abs", "p2p_xrd_crystal_system",
                                   "p2p_xrd_space_group", "p2p_xrd_cell_params"}
    with pytest.raises(InputError, match="matches no CHILI task"):
        plan_runs("gen_foo*", "mlp")
    every, _ = plan_runs(all_pairs=True)
    # graph-input property tasks: their baselines + 7 GNNs + mlp + ours (3 classification, 8 regression);
    # signal-input tasks: baselines + mlp + ours (6 generation, 6 p2p classification, 3 cell parameters)
    assert len(every) == 3 * (2 + 9) + 8 * (1 + 9) + 6 * 3 + 6 * 4 + 3 * 3 == 164
    with pytest.raises(InputError, match="does not apply"):
        _cfg(store_path, task=GEN, model="gcn").validate()
    # ours per kind of task
    assert resolve_model("ours", get_task("graph_xpdf")) == ("pairdist", "dot")
    assert resolve_model("ours", get_task("graph_space_group")) == ("localenv", "dot")
    assert resolve_model("ours", get_task("edge_bond_length")) == ("cfconv", "distance")
    assert resolve_model("ours", get_task(GEN)) == ("templates", "dot")
    assert resolve_model("ours", get_task("p2p_xrd_cell_params")) == ("signalnet", "dot")
    first, _ = run_one(_cfg(store_path, model="mean"), tmp_path)
    # a baseline is fitted, not trained: training settings do not make it a different run, its split does
    again, status = run_one(_cfg(store_path, model="mean", batch_size=4, steps_per_epoch=7), tmp_path)
    assert status == "skipped" and again["value"] == first["value"]
    with pytest.raises(InputError, match=r"different settings \(split\)"):
        run_one(_cfg(store_path, model="mean", split=(0.7, 0.2, 0.1)), tmp_path)
    run_one(_cfg(store_path, model="mlp", max_epochs=1), tmp_path)
    with pytest.raises(InputError, match=r"different settings \(batch_size\)"):
        run_one(_cfg(store_path, model="mlp", max_epochs=1, batch_size=4), tmp_path)


def test_split_by_crystal_keeps_every_radius_of_a_crystal_in_one_part(store_path, tmp_path):
    task = get_task("graph_crystal_system")
    data = load_task_data(store_path, task)
    sources = np.array([m["source"] for m in data.meta])
    assert len(set(sources)) == 24 and data.n == 48  # 12 types x (Zn, Au), radii 5 and 6 A
    for seed in range(3):
        by_graph = split_parts(data, _cfg(store_path, task=task.name, seed=seed))
        by_crystal = split_parts(data, _cfg(store_path, task=task.name, seed=seed, split_by="crystal"))
        seen = [set(sources[p]) for p in by_crystal.values()]
        assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])  # no crystal in two parts
        assert sorted(np.concatenate(list(by_crystal.values())).tolist()) == list(range(48))
        assert 36 <= len(by_crystal["train"]) <= 40 and min(len(p) for p in by_crystal.values()) >= 4
        # the paper's random split puts another radius of some test crystal in training
        leaked = set(sources[by_graph["test"]]) & set(sources[by_graph["train"]])
        assert leaked, seed
    # a run records its split, lives in its own folder and is tabled apart from the random split
    res, _ = run_one(_cfg(store_path, task=task.name, model="most_frequent", split_by="crystal"), tmp_path)
    rnd, _ = run_one(_cfg(store_path, task=task.name, model="most_frequent"), tmp_path)
    assert res["split_by"] == "crystal" and rnd["split_by"] == "graph"
    assert {"commit", "command", "machine", "utc"} <= set(res["provenance"])  # each line is stamped
    assert res["run_dir"].endswith("split-by-crystal/seed0") and rnd["run_dir"].endswith("most_frequent/seed0")
    assert res["n_train"] + res["n_val"] + res["n_test"] == 48
    s = summarize(_lines(tmp_path))
    name = res["dataset_name"]
    assert (name, task.name, "most_frequent") in s and (f"{name} (split by crystal)", task.name, "most_frequent") in s
    with pytest.raises(InputError, match="unknown split 'formula'"):
        _cfg(store_path, task=task.name, split_by="formula").validate()
    # a store whose records have no source cannot be split by crystal
    data.meta = [{k: v for k, v in m.items() if k != "source"} for m in data.meta]
    with pytest.raises(InputError, match="needs every record's 'source'"):
        split_parts(data, _cfg(store_path, task=task.name, split_by="crystal"))


# ---------------------------------------------------------------------------------------------
# tables


def _row(task, model, seed, value, hib, ds="chili3k"):
    return {"dataset": f"/x/{ds}.sqlite", "dataset_name": ds, "task": task, "model": model, "seed": seed,
            "value": value, "higher_is_better": hib, "metric": "weighted_f1" if hib else "mae"}


def test_table_mean_std_from_hand_made_lines(tmp_path):
    rows = [_row("graph_crystal_system", "ours", s, v, True) for s, v in enumerate((0.5, 0.7, 0.6))]
    rows += [_row("graph_crystal_system", "edgecnn", 0, 0.6, True), _row("graph_crystal_system", "edgecnn", 1, 0.5, True)]
    rows += [_row("node_position", "ours", 0, 3.25, False), _row("node_position", "mean", 0, 7.5, False)]
    rows += [_row("graph_crystal_system", "ours", 2, 0.6, True)]  # the same run twice counts once
    s = summarize(rows)
    ours = s[("chili3k", "graph_crystal_system", "ours")]
    assert ours["n"] == 3 and ours["mean"] == pytest.approx(0.6) and ours["std"] == pytest.approx(0.1)
    assert format_cell(ours) == "0.600 ± 0.100" and format_cell(s[("chili3k", "node_position", "ours")]) == "3.250"
    md = render_markdown(rows, bad_lines=1)
    cs_row = next(line for line in md.splitlines() if line.startswith("| ours") and "0.600" in line)
    assert "**0.600 ± 0.100**" in cs_row  # best of the column (F1: higher is better)
    assert "| EdgeCNN | 0.550 ± 0.071 |" in md
    assert "| ours† | **3.250** |" in md  # MAE: lower is better
    assert "*0.657*" in md and "*14.765*" in md
    checks = [line for line in md.splitlines() if line.startswith("| crystal system (↑) | ours")]
    assert checks == ["| crystal system (↑) | ours | 0.657 | 0.600 ± 0.100 | no |"]
    assert "| pos_abs (↓) | ours | 14.765 | 3.250 | yes (so does a naive baseline: 7.500) |" in md
    assert "1 unreadable line" in md
    # structure generation: judged on ours where it ran, else on the MLP (the paper's model there)
    gen = [_row("gen_xrd_unit_cell", "mlp", 0, 0.02, False), _row("gen_xrd_pos_abs", "mlp", 0, 1.7, False),
           _row("gen_xrd_pos_abs", "ours", 0, 1.5, False)]
    md = render_markdown(gen)
    assert "| xrd → unit_cell_pos_frac (↓) | mlp | 0.008 | 0.020 | no |" in md
    assert "| xrd → pos_abs (↓) | ours | 1.894 | 1.500 | yes |" in md
    # a line cut by a kill is skipped, the others read
    path = tmp_path / RESULTS_FILE
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + '\n{"task": "graph_cry')
    got, bad = read_result_lines(path)
    assert len(got) == 2 and bad == 1
    _append_line(path, rows[2])  # the next run's line is not glued to the cut one
    got, bad = read_result_lines(path)
    assert len(got) == 3 and bad == 1 and got[-1] == rows[2]


# ---------------------------------------------------------------------------------------------
# metrics against scikit-learn


def test_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score, mean_absolute_error, mean_squared_error

    rng = np.random.default_rng(3)
    for _ in range(5):
        t, p = rng.integers(0, 7, 300), rng.integers(0, 9, 300)  # classes 7, 8 only predicted
        assert weighted_f1(t, p) == pytest.approx(f1_score(t, p, average="weighted", zero_division=0), rel=1e-12)
    y, q = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    assert mae(y, q) == pytest.approx(mean_absolute_error(y, q), rel=1e-12)
    assert mse(y, q) == pytest.approx(mean_squared_error(y, q), rel=1e-12)
    m = rng.random((50, 6)) > 0.3
    assert masked_mae(y, q, m) == pytest.approx(mean_absolute_error(y[m], q[m]), rel=1e-12)
    # CHILI's position error: per atom, Euclidean (a 3-4-0 Å miss is 5 Å, not 7/3 Å)
    assert position_mae([[0.0, 0, 0], [1, 1, 1]], [[3.0, 4, 0], [1, 1, 1]]) == pytest.approx(2.5)
    r, s = y[:, :3], q[:, :3]
    assert position_mae(r, s) == pytest.approx(np.mean(np.sqrt(((r - s) ** 2).sum(1))), rel=1e-12)
    assert position_mae(r, s) >= mae(r, s)  # |d| >= mean |d_i| per atom


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.mark.parametrize("args,message", [
    (["--task", "nope", "--model", "gcn"], "unknown CHILI task 'nope'"),
    (["--task", "graph_xrd", "--model", "transformer"], "unknown model 'transformer'"),
    (["--task", GEN, "--model", "gcn"], "no applicable (task, model) pair"),
    (["--task", GEN], "give --task and --model, or --all"),
    (["--task", GEN, "--model", "mlp", "--split-by", "radius"], "--split-by must be one of graph, crystal"),
])
def test_cli_errors(store_path, tmp_path, args, message):
    res = CliRunner().invoke(app, ["bench", "chili", "--dataset", str(store_path), "--out", str(tmp_path), *args])
    assert res.exit_code == 2
    assert res.output.count("error:") == 1 and message in res.output
    assert not (tmp_path / RESULTS_FILE).exists()


def test_cli_missing_store_and_results(tmp_path):
    res = CliRunner().invoke(app, ["bench", "chili", "--dataset", str(tmp_path / "none.sqlite"), "--task", GEN,
                                   "--model", "mlp", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.count("error:") == 1 and "no such graph store" in res.output
    res = CliRunner().invoke(app, ["bench", "table", str(tmp_path)])
    assert res.exit_code == 2 and "no results file" in res.output


def test_cli_runs_and_renders(store_path, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "chili", "--dataset", str(store_path), "--task", "xrd_unit_cell_pos_frac", "--model",
            "baselines,mlp", "--seeds", "2", "--budget-minutes", "0.2", "--max-epochs", "3", "--hidden", "16",
            "--threads", "1", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = _lines(out)
    assert sorted((r["model"], r["seed"]) for r in lines) == [("mean", 0), ("mean", 1), ("mlp", 0), ("mlp", 1)]
    res = CliRunner().invoke(app, args)  # resumable: everything is skipped
    assert res.exit_code == 0 and res.output.count("skipped") == 4 and len(_lines(out)) == 4
    res = CliRunner().invoke(app, ["bench", "table", str(out)])
    assert res.exit_code == 0, res.output
    assert "xrd → unit_cell_pos_frac" in res.output and " ± " in res.output and (out / "results.md").is_file()


def test_cli_first_seed_runs_only_its_seeds(store_path, tmp_path):
    # two processes share one benchmark's seeds: the second starts at --first-seed
    out = tmp_path / "bench"
    base = ["bench", "chili", "--dataset", str(store_path), "--task", "xrd_unit_cell_pos_frac", "--model", "mean",
            "--threads", "1", "--out", str(out)]
    res = CliRunner().invoke(app, [*base, "--seeds", "2", "--first-seed", "3"])
    assert res.exit_code == 0, res.output
    assert sorted(r["seed"] for r in _lines(out)) == [3, 4]
    res = CliRunner().invoke(app, [*base, "--seeds", "1", "--first-seed", "-1"])
    assert res.exit_code == 2 and "--first-seed" in res.output


def test_shuffle_node_order_keeps_the_particle():
    from nanosolve.datasets.pyg import ChiliData

    pos = torch.arange(15, dtype=torch.float32).reshape(5, 3)
    g = ChiliData(x=torch.arange(5.0).reshape(5, 1), pos_abs=pos, edge_index=torch.tensor([[0, 1, 3], [1, 2, 4]]),
                  num_nodes=5)
    s = shuffle_node_order(g, torch.Generator().manual_seed(1))
    assert not torch.equal(s.pos_abs, pos)  # the order changed ...
    order = s.pos_abs[:, 0].div(3).long()  # ... and each row moved with its inputs and its bonds
    assert torch.equal(s.x[:, 0].long(), order) and sorted(order.tolist()) == [0, 1, 2, 3, 4]
    assert sorted(order[s.edge_index].T.tolist()) == [[0, 1], [1, 2], [3, 4]]


def test_rescore_repeats_the_test_score_and_shuffles_node_order(store_path, tmp_path):
    # GCN is exactly permutation-equivariant: a new node order leaves its score unchanged; the same
    # check fails if the shuffle moved targets, inputs or bonds apart
    res, _ = run_one(_cfg(store_path, task="node_position", model="gcn", max_epochs=2, hidden=16), tmp_path)
    rdir = tmp_path / res["run_dir"]
    assert rescore(rdir) == pytest.approx(res["value"], rel=1e-9)
    shuffled = [rescore(rdir, node_order_seed=k) for k in (0, 1)]
    assert shuffled == pytest.approx([res["value"]] * 2, rel=1e-4)
    base, _ = run_one(_cfg(store_path, task="node_position", model="mean"), tmp_path)
    with pytest.raises(InputError, match="no best.pt"):
        rescore(tmp_path / base["run_dir"])
    signal, _ = run_one(_cfg(store_path, max_epochs=1), tmp_path)
    with pytest.raises(InputError, match="no node order"):
        rescore(tmp_path / signal["run_dir"], node_order_seed=0)


def test_bond_length_statistics_skip_graphs_without_bonds():
    # CHILI-3K holds 15 graphs without any bond (e.g. fluorite_Be_r5): they add nothing, break nothing
    from nanosolve.datasets.pyg import ChiliData
    from nanosolve.models.chili_bench.runner import TaskData, _normaliser

    def graph(lengths):
        e = torch.tensor(lengths, dtype=torch.float32).reshape(-1, 1)
        return ChiliData(edge_attr=e, edge_index=torch.zeros(2, len(lengths), dtype=torch.long), num_nodes=2)

    items = [graph([2.0, 2.0]), graph([]), graph([3.0, 3.0, 4.0, 4.0])]
    data = TaskData(get_task("edge_bond_length"), 3, items, None, None, None, [{}] * 3, 0.0, "test")
    mean, std = _normaliser(data.task, data, np.arange(3))
    ref = torch.tensor([2.0, 2.0, 3.0, 3.0, 4.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(mean, ref.mean().float().reshape(1))
    torch.testing.assert_close(std, ref.std().float().reshape(1))
