"""Benchmark: CrystalNet (pattern + formula -> electron density) on cubic and trigonal crystals.

For each crystal system, one after the other (one torch thread; run one process per system to use
both cores):
build (or reuse) the data set - CDVAE perov_5/carbon_24 structures of that system from
../shared/data plus AFLOW prototypes with element substitutions, composition-grouped split -
train the ``cpu`` preset for a wall-time budget (or, with ``--eval-only``, load the run's best
weights), then evaluate on a seeded random subset of the test part
(:mod:`nanosolve.models.crystalnet.evaluate`): blind choices only (posterior mean; the latent draw
whose decoded atoms re-simulate the input best), beside the controls (all-zero map, mean training
density, shuffled pattern) and the formula ablations; SSIM/PSNR of the density and of the density
minus the mean map, the skill over the mean map, atom-site recall/precision within 0.5 Å, and the
gap model - best control.

Protocol: the training part trains, the validation part picks the checkpoint (lowest validation
L1); the preset's settings were fixed before this evaluation; the test part is scored once.

Usage:  python benchmarks/crystalnet/bench_crystalnet.py [--minutes 15] [--n-eval 30] [--systems cubic,trigonal]
            [--origin heaviest|standard] [--data-root DIR] [--runs DIR] [--eval-only]
            [--out benchmarks/crystalnet/results/crystalnet.json] [--resume] [--substitutions N]
            [--set KEY=VALUE ...]   (cpu-preset overrides, e.g. --set kl_reduction=sum --set beta=0)
Prints markdown tables and writes JSON (per-crystal rows included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from nanosolve.provenance import write_record

HERE = Path(__file__).resolve().parent


def _default_root() -> Path:
    base = os.environ.get("NANOSOLVE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "nanosolve") / "crystalnet_bench"


def bench_system(system: str, args) -> dict:
    import torch

    from nanosolve.cli.common import parse_overrides
    from nanosolve.models.crystalnet.config import CrystalNetConfig
    from nanosolve.models.crystalnet.evaluate import (
        evaluate_model,
        format_table,
        mean_density,
        select_indices,
    )
    from nanosolve.models.crystalnet.run import prepare_run
    from nanosolve.models.crystalnet.train import load_model, train

    run = Path(args.runs) / system
    if args.eval_only:
        model, config = load_model(run)  # the run's own settings: nothing to compare
    else:
        if run.exists() and not args.resume:
            shutil.rmtree(run)
        config = CrystalNetConfig.cpu(**{"restart_epochs": args.restart_epochs, "restart_mult": args.restart_mult,
                                         "patience": args.patience, **parse_overrides(args.set)})
    t0 = time.monotonic()
    # the data set and the run's provenance as `nanosolve train crystalnet` makes them
    data = prepare_run(Path(args.data_root) / system, run, system, "cpu", config=config, origin=args.origin,
                       substitutions=args.substitutions, seed=0).data
    t_data = time.monotonic() - t0
    print(f"[{system}] data: {len(data)} crystals {data.meta['sources']}, split "
          f"{ {k: len(v) for k, v in data.split.items()} } ({t_data:.0f} s)", flush=True)
    out = {"system": system, "data": data.meta, "data_root": str(data.root), "run": str(run)}
    if args.eval_only:
        info = run / "train_info.json"
        out.update(config=config.to_dict(), trained_by="an earlier call (--eval-only)",
                   **(json.loads(info.read_text()) if info.is_file() else {}))
    else:
        torch.manual_seed(0)

        def tick(rec):
            print(f"[{system}] epoch {rec['epoch']:3d}  lr {rec['lr']:.2e}  train L1 {rec['train_l1']:.4f}  KL "
                  f"{rec['train_kl']:.3f}  val L1 {rec['val_l1']:.4f}  ({rec['seconds']:.0f} s)", flush=True)

        t1 = time.monotonic()
        res = train(config, data, run, max_minutes=args.minutes, seed=0, resume=args.resume, progress=tick)
        t_train = time.monotonic() - t1
        print(f"[{system}] {res.stopped}: {res.epochs} epochs in {t_train / 60:.1f} min, best epoch {res.best_epoch} "
              f"(val L1 {res.best_val:.4f})", flush=True)
        model = res.model
        out.update(config=res.config.to_dict(), epochs=res.epochs, best_epoch=res.best_epoch, best_val_l1=res.best_val,
                   stopped=res.stopped, train_minutes=round(t_train / 60, 2), history=res.history)

    idx = select_indices(data, "test", args.n_eval, seed=0)
    t2 = time.monotonic()
    reference = mean_density(data)  # the training part's mean map: a control, and the residual's origin
    torch.manual_seed(0)
    ev = evaluate_model(model, data, idx, reference=reference, n_samples=args.samples, seed=0, part="test",
                        progress=lambda k, n, row: print(
                            f"[{system}] eval {k}/{n} {row['formula']}: skill {row['model_mean_skill']:.3f} "
                            f"(shuffled {row['shuffled_pattern_skill']:.3f}), site recall {row['model_mean_site_recall']:.2f} "
                            f"(mean map {row['mean_map_site_recall']:.2f})", flush=True))
    t_eval = time.monotonic() - t2
    table = format_table(ev, system)
    print(table, flush=True)
    out.update(part="test", eval_minutes=round(t_eval / 60, 2), evaluation=ev, table=table)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="cubic,trigonal")
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget per model (minutes)")
    ap.add_argument("--n-eval", type=int, default=30, help="test crystals evaluated per model")
    ap.add_argument("--samples", type=int, default=5,
                    help="latent draws beside the posterior mean for the blind best-fit choice")
    ap.add_argument("--eval-only", action="store_true",
                    help="evaluate the run's best weights (RUNS/<system>) instead of training")
    ap.add_argument("--restart-epochs", type=int, default=10)
    ap.add_argument("--restart-mult", type=int, default=2)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--origin", default="heaviest", help="cell origin convention of the data set: heaviest (heaviest "
                                                          "atom at 0, 0, 0) or standard (spglib's)")
    ap.add_argument("--data-root", default=str(_default_root() / "data"))
    ap.add_argument("--runs", default=str(_default_root() / "runs"))
    ap.add_argument("--out", default=str(HERE / "results" / "crystalnet.json"))
    ap.add_argument("--substitutions", type=int, default=None,
                    help="element substitutions per AFLOW prototype when the data set is built (default: 8 cubic, 30 trigonal)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="cpu-preset override (repeatable)")
    ap.add_argument("--resume", action="store_true", help="continue existing runs instead of starting afresh")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    results = {"benchmark": "crystalnet", "part": "test", "settings": vars(args), "systems": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for system in [s.strip() for s in args.systems.split(",") if s.strip()]:
        results["systems"][system] = bench_system(system, args)
        write_record(out, results)  # after each system: partial results survive
    print("\n\n".join(r["table"] for r in results["systems"].values()))
    print(f"wrote {out}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
