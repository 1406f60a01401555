"""The benchmark's helpers for comparing PXRDNet models trained on different tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("pxrdnet/bench_pxrdnet.py")


def _run(root: Path, formulas, split, elements) -> Path:
    root.mkdir()
    (root / "crystals.json").write_text(json.dumps([{"id": i, "formula": f} for i, f in enumerate(formulas)]))
    (root / "split.json").write_text(json.dumps(split))
    (root / "config.json").write_text(json.dumps({"extra": {"elements": elements}}))
    return root


def test_unseen_by_drops_compositions_the_other_run_trained_or_validated_on(bench, tmp_path):
    run = _run(tmp_path / "run", ["Sr1Ti1O3", "Ba2Ti2O6", "Na1Cl1", "Mg2Si1", "Cs1Cl1", "Ca1Ti1O3"],
               {"train": [], "val": [], "test": [0, 1, 2, 3, 4, 5]}, ["Ba", "Ca", "Cl", "Cs", "Mg", "Na", "O", "Si",
                                                                    "Sr", "Ti"])
    other = _run(tmp_path / "other", ["Ti2Sr2O6", "Na2Cl2", "Mg4Si2", "Ca1Ti1O3"],
                 {"train": [0], "val": [1], "test": [2, 3]}, ["Ca", "Cl", "Mg", "Na", "O", "Si", "Sr", "Ti", "Ba"])
    keep = bench.unseen_by(run, np.arange(6), [other])
    # SrTiO3 (trained, another cell) and NaCl (validated) go; Mg2Si and CaTiO3 were only in the
    # other run's test part, so they stay; CsCl has an element the other model does not know
    assert keep.tolist() == [1, 3, 5]


def test_solve_overrides_accept_only_solve_settings(bench):
    assert bench.solve_overrides(["opt_beta=0.002", "solve_n_step_each=3"]) == {"opt_beta": 0.002,
                                                                                 "solve_n_step_each": 3}
    with pytest.raises(SystemExit, match="lr"):
        bench.solve_overrides(["lr=0.1"])


def test_a_fresh_draw_holds_no_crystal_of_the_earlier_draws(bench):
    test = np.arange(100, 400, 3)  # indices into a run's crystals, as split.json lists them
    tuned, timed = bench.draw(test, 40, 0), bench.draw(test, 3, 1)
    fresh = bench.outside_draws(test, [(0, 40), (1, 3)])
    assert len(tuned) == 40 and len(timed) == 3
    assert not set(fresh) & (set(tuned) | set(timed))
    assert set(fresh) | set(tuned) | set(timed) == set(test)
    # the earlier draws are the ones load_test made: the same seed and size give the same crystals
    assert bench.draw(test, 40, 0).tolist() == tuned.tolist()
    new = bench.draw(fresh, 20, 1)
    assert len(new) == 20 and not set(new) & set(tuned)
    with pytest.raises(Exception, match="SEED:N"):
        bench._draw("0-200")
    assert bench._draw("0:200") == (0, 200)


def _part(bench, model_dir: Path, train_seed: int, scores: dict) -> dict:
    """A result file as bench_pxrdnet writes it: per (method, input) the best-of-10 R_wp² of 3 crystals."""
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"extra": {"train_seed": train_seed}}))
    records = [{"index": i, "method": m, "input": kind, "system": "cubic", "source": "AFLOW",
                "rwp2_best10": v, "rwp2_top1": 2 * v, "match_top1": float(v < 0.3), "match_top10": 1.0,
                "rwp_input_top1": v / 2, "r_fit_top1": v / 2}
               for (m, kind), values in scores.items() for i, v in enumerate(values)]
    sim = {"model": str(model_dir), "test_indices": [4, 9, 13], "n": 3, "k": 100, "steps": 500, "records": records}
    return {"simulated": bench.with_aggregates(sim, None)}


def test_seeds_summary_pairs_by_crystal_and_spans_the_seeds(bench, tmp_path):
    a = _part(bench, tmp_path / "s0", 0, {("pxrdnet", "input"): [0.1, 0.2, 0.6],
                                          ("pxrdnet", "shuffled"): [1.0, 1.2, 0.8],
                                          ("cdvae-search", "input"): [0.3, 0.2, 0.7]})
    b = _part(bench, tmp_path / "s1", 1, {("pxrdnet", "input"): [0.2, 0.3, 0.4],
                                          ("pxrdnet", "shuffled"): [0.9, 1.1, 1.0]})
    t = bench.seeds_summary([a, b])
    assert [s["train_seed"] for s in t["seeds"]] == [0, 1]
    d = t["seeds"][0]["paired"]["pxrdnet - cdvae-search"]["rwp2_best10"]
    assert d["n"] == 3 and d["mean"] == pytest.approx(-0.1)
    assert d["se"] == pytest.approx(np.std([-0.2, 0.0, -0.1], ddof=1) / np.sqrt(3))
    assert t["seeds"][1]["paired"]["input - shuffled"]["rwp2_best10"]["mean"] == pytest.approx(0.3 - 1.0)
    over = t["pxrdnet_over_seeds"]["input"]["rwp2_best10"]
    assert over["mean"] == pytest.approx(0.3) and over["min"] == pytest.approx(0.3) and over["max"] == pytest.approx(0.3)
    assert t["pxrdnet_over_seeds"]["shuffled"]["rwp2_top1"]["mean"] == pytest.approx(2.0)
    table = bench.seeds_table_md(t)
    assert "| s0 (seed 0) | cdvae-search | 0.400 |" in table and "-0.100 ± 0.058" in table
    c = _part(bench, tmp_path / "s2", 2, {("pxrdnet", "input"): [0.2, 0.3, 0.4]})
    c["simulated"]["test_indices"] = [4, 9, 14]
    with pytest.raises(SystemExit, match="test_indices"):
        bench.seeds_summary([a, c])
