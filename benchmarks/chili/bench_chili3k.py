"""Benchmark: generate the full CHILI-3K dataset (636 crystals × 5 radii = 3,180 graphs, all six
signals) on this machine with the local process pool, then compare its Table 1 numbers with the
paper's. Published pipeline: 2 h 51 min (16.18 s per graph... as reported) on the authors' hardware.

Usage:  python benchmarks/chili/bench_chili3k.py [--workers 2] [--out benchmarks/chili/results/chili3k.json]
        [--store /tmp/chili3k.sqlite] [--metals Au,Zn]   (a subset for a quick look)
Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from nanosolve.provenance import write_record

HERE = Path(__file__).resolve().parent
PAPER_SECONDS = 2 * 3600 + 51 * 60


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--store", type=Path, default=Path("/tmp/nanosolve-bench-chili3k.sqlite"))
    ap.add_argument("--metals", default=None, help="subset of metals (default: all 53)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "chili3k.json")
    args = ap.parse_args()
    for suffix in ("", "-wal", "-shm"):
        Path(str(args.store) + suffix).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "nanosolve.cli.main", "dataset", "chili3k", str(args.store),
           "--workers", str(args.workers)] + (["--metals", args.metals] if args.metals else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0

    from nanosolve.datasets.chili.stats import PAPER_CHILI_3K, compare_with_paper, dataset_stats
    from nanosolve.datasets.storage import open_store

    with open_store(args.store) as st:
        stats = dataset_stats(st.meta_table())
    n = stats["graphs"]
    result = {"machine": {"cpus": os.cpu_count(), "workers": args.workers, "python": platform.python_version(),
                          "load_average_after": os.getloadavg()},
              "graphs": n, "seconds": seconds, "seconds_per_graph": seconds / n,
              "store_bytes": args.store.stat().st_size, "stats": stats}
    if n == PAPER_CHILI_3K["graphs"]:
        result["vs_paper"] = compare_with_paper(stats)
        result["speedup_vs_paper"] = PAPER_SECONDS / seconds
    print("\n### CHILI-3K generation\n")
    print("| graphs | wall time | s per graph | workers | store size | nodes | edges |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {n:,} | {seconds / 60:.1f} min | {seconds / n:.3f} | {args.workers} | "
          f"{result['store_bytes'] / 2**30:.2f} GiB | {stats['nodes']:,} | {stats['edges']:,} |")
    if "vs_paper" in result:
        v = result["vs_paper"]
        print(f"\npaper: 2 h 51 min (speed-up {result['speedup_vs_paper']:.0f}×); nodes {v['nodes']:+.1%}, "
              f"edges {v['edges']:+.1%} vs the paper's {PAPER_CHILI_3K['nodes']:,} / {PAPER_CHILI_3K['edges']:,}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_record(args.out, result)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
