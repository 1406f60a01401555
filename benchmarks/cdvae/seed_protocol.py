"""CDVAE reconstruction with a validation / test discipline, one training seed per call.

1. train the cpu preset for ``--max-minutes`` with ``--train-seed`` (resumable; the checkpoint is
   chosen by validation loss, as always);
2. score each decoding setting of :data:`SETTINGS` on ``--n`` crystals of the **validation** part;
3. choose the setting with the highest validation match rate (ties: the cheaper, listed first);
4. score that one setting once on ``--n`` **test** crystals outside the draw the headline settings
   were chosen on (``bench_cdvae.py --part test-fresh``).

Usage (one seed per core):
    python benchmarks/cdvae/seed_protocol.py --train-seed 1 --run /tmp/cdvae_s1
    python benchmarks/cdvae/seed_protocol.py --summary benchmarks/cdvae/results/cdvae_seed_{1,2}.json
Writes ``results/cdvae_seed_<S>.json`` (each step merged in as it finishes: a rerun resumes) and, with
``--summary``, ``results/cdvae_seeds.json`` (the test match rates and their mean).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cdvae import main as bench  # noqa: E402

from nanosolve.provenance import write_record  # noqa: E402

HERE = Path(__file__).resolve().parent
#: decoding settings, cheapest first: (name, bench_cdvae options)
SETTINGS = [
    ("argmax", ["--type-mode", "argmax"]),
    ("composition", ["--type-mode", "composition"]),
    ("composition_best_of_8", ["--type-mode", "composition", "--candidates", "8"]),
    ("composition_best_of_8_2_stoich", ["--type-mode", "composition", "--candidates", "8", "--stoichiometries", "2"]),
]


def choose(record: dict) -> str:
    """The setting with the highest validation match rate; the first listed among equals."""
    return max((name for name, _ in SETTINGS), key=lambda n: record[f"val_{n}"]["match_rate"])  # max keeps the first


def run(args) -> dict:
    out = HERE / "results" / f"cdvae_seed_{args.train_seed}.json"
    common = ["--run", str(args.run), "--train-seed", str(args.train_seed), "--n-step-each", str(args.n_step_each),
              "--n-recon", str(args.n), "--threads", str(args.threads), "--out", str(out), "--merge"]
    if not out.is_file() or "training" not in json.loads(out.read_text()):
        bench(common + ["--max-minutes", str(args.max_minutes), "--skip", "recon", "gen", "opt"])
    for name, opts in SETTINGS:
        if f"val_{name}" not in json.loads(out.read_text()):
            bench(common + opts + ["--part", "val", "--skip", "train", "gen", "opt", "--recon-key", f"val_{name}"])
    record = json.loads(out.read_text())
    chosen = choose(record)
    if "test" not in record:
        opts = dict(SETTINGS)[chosen]
        bench(common + opts + ["--part", "test-fresh", "--skip", "train", "gen", "opt", "--recon-key", "test"])
        record = json.loads(out.read_text())
    record["test"]["setting"] = chosen
    record["chosen_on"] = "validation part (match rate); test scored once with that setting"
    write_record(out, record)
    return record


def summary(paths) -> dict:
    """Test match rate per seed record and their mean, with the validation rate of the chosen setting."""
    recs = [json.loads(Path(p).read_text()) for p in paths]
    rates = [r["test"]["match_rate"] for r in recs]
    out = {"records": [Path(p).name for p in paths], "seeds": [r["train_seed"] for r in recs],
           "settings": [r["test"]["setting"] for r in recs],
           "val_match_rate": [r[f"val_{r['test']['setting']}"]["match_rate"] for r in recs],
           "test_match_rate": rates, "test_rmse": [r["test"]["rmse"] for r in recs],
           "mean_test_match_rate": float(np.mean(rates)), "n_per_seed": [r["test"]["n"] for r in recs],
           "epochs": [r["training"]["epochs"] for r in recs]}
    write_record(HERE / "results" / "cdvae_seeds.json", out)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--run", type=Path, default=None, help="run folder (default /tmp/cdvae_s<seed>)")
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--n", type=int, default=200, help="crystals scored per setting and on the test part")
    ap.add_argument("--n-step-each", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summary", nargs="*", default=None, help="the mean over these seed records (printed and written)")
    a = ap.parse_args()
    if a.summary:
        print(json.dumps(summary(a.summary), indent=1))
    else:
        a.run = a.run or Path(f"/tmp/cdvae_s{a.train_seed}")
        print(json.dumps({k: v for k, v in run(a).items() if k.startswith(("val_", "test"))}, indent=1))
