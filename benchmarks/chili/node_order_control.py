"""CHILI node-level runs beside two controls: the mean baseline on the same test part, and the same
weights scored after every test graph's nodes were put in a random order.

CHILI stores a particle's atoms in the order it was cut (outwards from the centre). A model that is
exactly permutation-equivariant (GCN, EdgeCNN, ...) scores the same in any node order; GraphUNet is
not (its top-k pooling breaks ties by node index), so it could read position information from the
order. If a trained model's test score gets worse when the order is shuffled, it used the order;
if it equals the shuffled score and the mean baseline, it learned nothing beyond the mean.

Reads the finished runs of ``nanosolve bench chili`` in OUT (their ``results.jsonl`` and run folders:
``config.json``, ``best.pt``, ``history.json``) and writes one record.

Usage: python benchmarks/chili/node_order_control.py OUT [--task pos_abs] [--model graphunet]
       [--baseline mean] [--orders 3] [--out benchmarks/chili/results/graphunet_pos_abs_paper.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.runner import (
    load_task_data,
    read_result_lines,
    rescore,
    resolve_model,
    resolve_task,
)
from nanosolve.models.chili_bench.tasks import Task
from nanosolve.provenance import write_record

HERE = Path(__file__).resolve().parent


def curve_summary(history: list[dict]) -> dict:
    """Validation metric over the epochs: first, best, last, and its range (a flat curve has ~0 range)."""
    scores = [h["val_score"] for h in history]
    return {"epochs": len(scores), "val_first": scores[0], "val_best": min(scores), "val_last": scores[-1],
            "val_range": max(scores) - min(scores), "train_loss_first": history[0]["train_loss"],
            "train_loss_last": history[-1]["train_loss"]}


def mean_sd(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def control_rows(out: Path, task: Task, model: str, baseline: str, orders: int) -> list[dict]:
    rows, _ = read_result_lines(out / "results.jsonl")
    trained = sorted((r for r in rows if r["task"] == task.name and r["model"] == model), key=lambda r: r["seed"])
    if not trained:
        raise InputError(f"no finished {model} run of {task.name}", out / "results.jsonl")
    base = {(r["seed"], r.get("split_by", "graph")): r for r in rows
            if r["task"] == task.name and r["model"] == baseline}
    data = load_task_data(trained[0]["dataset"], task, (resolve_model(model, task)[0],), out / "cache")
    result = []
    for r in trained:
        key = (r["seed"], r.get("split_by", "graph"))
        if key not in base:
            raise InputError(f"no {baseline} baseline for seed {r['seed']}: run it into the same folder", out)
        rdir = out / r["run_dir"]
        shuffled = [rescore(rdir, data, node_order_seed=k) for k in range(orders)]
        history = json.loads((rdir / "history.json").read_text())
        result.append({"seed": r["seed"], "split_by": key[1], "n_train": r["n_train"], "n_val": r["n_val"],
                       "n_test": r["n_test"], "stopped": r["stopped"], "best_epoch": r["best_epoch"],
                       "train_seconds": r["train_seconds"], "params": r["params"], "test": r["value"],
                       "test_again": rescore(rdir, data), "test_nodes_shuffled": shuffled,
                       baseline: base[key]["value"], "curve": curve_summary(history),
                       "commit": r.get("provenance", {}).get("commit")})
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the --out folder of `nanosolve bench chili`")
    ap.add_argument("--task", default="pos_abs")
    ap.add_argument("--model", default="graphunet")
    ap.add_argument("--baseline", default="mean")
    ap.add_argument("--orders", type=int, default=3, help="random node orders per run")
    ap.add_argument("--record", type=Path, default=HERE / "results" / "graphunet_pos_abs_paper.json")
    args = ap.parse_args(argv)
    task = resolve_task(args.task)
    rows = control_rows(args.out, task, args.model, args.baseline, args.orders)
    record = {
        "benchmark": "chili_node_order_control", "task": task.name, "model": args.model, "metric": task.metric,
        "baseline": args.baseline, "orders": args.orders, "rows": rows,
        "test": mean_sd([r["test"] for r in rows]),
        "test_nodes_shuffled": mean_sd([float(np.mean(r["test_nodes_shuffled"])) for r in rows]),
        "baseline_test": mean_sd([r[args.baseline] for r in rows]),
        "model_minus_baseline": mean_sd([r["test"] - r[args.baseline] for r in rows]),
        "model_minus_shuffled": mean_sd([r["test"] - float(np.mean(r["test_nodes_shuffled"])) for r in rows]),
    }
    write_record(args.record, record)
    print(f"{'seed':>4} {'stopped':>9} {'epochs':>6} {'best':>4} {'test':>8} {'shuffled':>8} "
          f"{args.baseline:>8} {'val range':>9}")
    for r in rows:
        c = r["curve"]
        print(f"{r['seed']:>4} {r['stopped']:>9} {c['epochs']:>6} {r['best_epoch']:>4} {r['test']:8.3f} "
              f"{np.mean(r['test_nodes_shuffled']):8.3f} {r[args.baseline]:8.3f} {c['val_range']:9.2e}")
    print(f"record: {args.record}")


if __name__ == "__main__":
    main()
