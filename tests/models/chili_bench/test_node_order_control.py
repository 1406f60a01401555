"""The node-order control of CHILI node-level runs (benchmarks/chili/node_order_control.py)."""

from __future__ import annotations

import json

import pytest
import torch

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.runner import RunConfig, run_one

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def control(benchmark_script):
    return benchmark_script("chili/node_order_control.py")


def _run(store_path, out, model):
    cfg = RunConfig(task="node_position", model=model, dataset=str(store_path), budget_minutes=1.0, max_epochs=2,
                    patience=0, batch_size=8, hidden=16, layers=2, lr=3e-3)
    return run_one(cfg, out)[0]


def test_record_of_an_equivariant_model(control, store_path, tmp_path):
    out = tmp_path / "bench"
    gcn = _run(store_path, out, "gcn")
    with pytest.raises(InputError, match="no finished graphunet run"):
        control.main([str(out), "--record", str(tmp_path / "r.json")])
    with pytest.raises(InputError, match="no mean baseline"):
        control.main([str(out), "--model", "gcn", "--record", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()
    mean = _run(store_path, out, "mean")
    control.main([str(out), "--model", "gcn", "--orders", "2", "--record", str(tmp_path / "r.json")])
    rec = json.loads((tmp_path / "r.json").read_text())
    (row,) = rec["rows"]
    assert row["test_again"] == pytest.approx(gcn["value"], rel=1e-9) and row["mean"] == mean["value"]
    # GCN reads no node order: both shuffled orders score as the stored order does
    assert row["test_nodes_shuffled"] == pytest.approx([gcn["value"]] * 2, rel=1e-4)
    assert rec["model_minus_shuffled"]["mean"] == pytest.approx(0.0, abs=1e-3 * gcn["value"])
    assert rec["model_minus_baseline"]["mean"] == pytest.approx(gcn["value"] - mean["value"])
    assert row["curve"]["epochs"] == 2 and row["curve"]["val_range"] >= 0 and rec["provenance"]["commit"]
