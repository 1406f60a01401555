"""Benchmark: data-parallel training (torchrun, 2 CPU processes, gloo) against one process.

For each family a tiny run is trained twice through the CLI with the same global batch, once as
``nanosolve train <family> ...`` and once as ``torchrun --standalone --nproc_per_node 2 -m
nanosolve.cli.main train <family> ...``; the record holds both loss trajectories (train loss and
the monitored validation value per epoch), their largest relative difference and the wall times.

DeepStruc's DAE draws no noise, but its reconstruction term is a mean over atoms while each
process's share is weighted by samples, so it follows one process to about a percent. CDVAE draws noise
levels and latents per crystal (each rank its own stream) and CrystalNet has BatchNorm (each rank
normalises its share on the CPU), so those agree within statistical noise, not to rounding.

    python benchmarks/training/bench_ddp.py            # -> benchmarks/training/results/ddp_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MONITORED = {"deepstruc": "val_loss", "cdvae": "val_loss", "crystalnet": "val_l1"}
CDVAE_TINY = ["--set", "latent_dim=8", "--set", "enc_hidden=16", "--set", "dec_hidden=16", "--set", "head_hidden=16",
              "--set", "n_rbf=8", "--set", "enc_layers=1", "--set", "dec_layers=1", "--set", "batch_size=8",
              "--set", "num_noise_level=5"]


def prepare(family: str, work: Path) -> list[str]:
    """Inputs of a tiny run (made once, shared by both modes); the CLI arguments after ``train FAMILY``."""
    if family == "deepstruc":
        from nanosolve.models.deepstruc.run import open_or_generate

        store, _ = open_or_generate("generate", work, "paper", 30, "Au,Pt", 0)
        return ["--kind", "dae", "--data", str(work / "data_paper.sqlite"), "--set", "batch_size=8"]
    if family == "cdvae":
        import csv

        from nanosolve.structures.builders.prototypes import build_prototype
        from nanosolve.structures.io import write_cif

        protos = [("AB_cP2_221_b_a", ["Cl", "Cs"]), ("AB3C_cP5_221_a_c_b", ["Sr", "O", "Ti"]),
                  ("AB_cF8_225_a_b", ["Cl", "Na"]), ("A_hP2_194_c", ["Mg"]), ("AB_cP2_221_b_a", ["Br", "Cs"]),
                  ("AB_cF8_225_a_b", ["Cl", "K"]), ("AB_cF8_225_a_b", ["O", "Mg"]), ("A_hP2_194_c", ["Zn"])]
        rows = []
        for k, (label, species) in enumerate(protos * 3):
            cif = write_cif(build_prototype(label, species), work / f"_c{k}.cif").read_text()
            rows.append({"material_id": f"m{k}", "cif": cif})
        with open(work / "tiny.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["material_id", "cif"])
            w.writeheader()
            w.writerows(rows)
        return [str(work / "tiny.csv"), "--split", "random", *CDVAE_TINY]
    if family == "crystalnet":
        from nanosolve.models.crystalnet.dataset import build_dataset

        build_dataset(work / "data", "cubic", cdvae_dir=None, use_prototypes=True, max_prototypes=16,
                      n_substitutions=1, max_atoms=16, fractions=(0.6, 0.2, 0.2), seed=0)
        return [str(work / "data"), "--set", "batch_size=4", "--set", "points_per_crystal=256",
                "--set", "restart_epochs=4"]
    raise SystemExit(f"unknown family {family}")


def train(family: str, args: list[str], out: Path, epochs: int, procs: int) -> tuple[list[dict], float, list[str]]:
    launcher = ([shutil.which("torchrun") or "torchrun", "--standalone", "--nproc_per_node", str(procs)]
                if procs > 1 else [sys.executable])
    cmd = [*launcher, "-m", "nanosolve.cli.main", "train", family, *args, "--out", str(out),
           "--max-epochs", str(epochs), "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return json.loads((out / "history.json").read_text()), time.perf_counter() - t0, cmd


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="deepstruc,crystalnet,cdvae")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ddp_cpu.json")
    args = ap.parse_args(argv)
    from nanosolve.provenance import write_record

    rows = []
    with tempfile.TemporaryDirectory(prefix="nanosolve_ddp_") as tmp:
        for family in [f.strip() for f in args.families.split(",") if f.strip()]:
            work = Path(tmp) / family
            work.mkdir()
            extra = prepare(family, work)
            h1, t1, c1 = train(family, extra, work / "one", args.epochs, 1)
            h2, t2, c2 = train(family, extra, work / "ddp", args.epochs, args.procs)
            key = MONITORED[family]
            rel = {k: max(abs(b[k] - a[k]) / max(abs(a[k]), 1e-12) for a, b in zip(h1, h2)) for k in ("train_loss", key)}
            row = {"family": family, "epochs": len(h1), "processes": args.procs,
                   "one_process": {"train_loss": [r["train_loss"] for r in h1], key: [r[key] for r in h1],
                                   "seconds": round(t1, 1)},
                   "data_parallel": {"train_loss": [r["train_loss"] for r in h2], key: [r[key] for r in h2],
                                     "seconds": round(t2, 1)},
                   "max_rel_diff": rel, "commands": [" ".join(c1), " ".join(c2)]}
            rows.append(row)
            print(f"{family:10s} max rel. diff train_loss {rel['train_loss']:.2e}  {key} {rel[key]:.2e}  "
                  f"({t1:.0f} s one process, {t2:.0f} s {args.procs} processes incl. start-up)", flush=True)
    path = write_record(args.out, {"benchmark": "data-parallel vs one process (CPU, gloo)", "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
