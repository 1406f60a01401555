"""Speed targets of small operations, measured here instead of asserted in unit tests (a timed
assert fails at random on a loaded machine or under ``pytest -n 2``). Each row gives the target,
the measured value (best of ``--repeat`` runs) and whether the target is met.

Rows: reading the 15 measured powder CIFs; DeepStruc cluster PDFs and trilateration; building the
DeepStruc paper data set (skipped with ``--quick``); a CrystalNet procrystal density and 40
training steps of a small CrystalNet; re-reading a CDVAE CSV from its cache.

Usage:  python benchmarks/speed/bench_speed.py [--quick] [--repeat 3] [--threads 1]
                                              [--out benchmarks/speed/results/speed.json]
Prints a markdown table and writes a stamped JSON record.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nanosolve.paths import shared_data_dir
from nanosolve.provenance import write_record

HERE = Path(__file__).resolve().parent


def _best(fn, repeat: int) -> float:
    """Best wall time (s) of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def readers(repeat: int) -> list[dict]:
    from nanosolve.scattering.readers import read_pattern

    files = sorted((shared_data_dir() / "pxrdnet_experimental").glob("*.rtv.combined.cif"))
    if not files:
        return [{"name": "read a measured powder CIF", "skipped": f"no CIFs under {shared_data_dir()}"}]

    def read(f):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_pattern(f)

    worst = max(_best(lambda f=f: read(f), repeat) for f in files)
    return [{"name": f"read a measured powder CIF (slowest of {len(files)})", "value": worst, "unit": "s",
             "target": 1.0, "better": "lower"}]


def deepstruc(repeat: int, quick: bool) -> list[dict]:
    from nanosolve.models.deepstruc import data as ds
    from nanosolve.models.deepstruc.pdf import cluster_pdf
    from nanosolve.models.deepstruc.representation import node_features, satellites, to_unit_sphere
    from nanosolve.models.deepstruc.trilaterate import trilaterate
    from nanosolve.structures.builders.clusters import fcc_cluster

    rows = []
    base = [fcc_cluster("Cu", layers=lay).positions for lay in ((4, 4, 3), (3, 4, 4), (4, 4, 4))]
    structs = [base[i % 3] * (0.99 + 1e-4 * i) for i in range(300)]
    rng = np.random.default_rng(0)
    biso, delta2 = rng.uniform(0.2, 0.8, 300), rng.uniform(0, 4, 300)
    dt = _best(lambda: cluster_pdf(structs, biso=biso, delta2=delta2), repeat)
    rows.append({"name": "DeepStruc PDFs of ≤ 100-atom clusters", "value": len(structs) / dt, "unit": "clusters/s",
                 "target": 200.0, "better": "higher"})
    p = fcc_cluster("Au", layers=(4, 4, 4))  # 93 atoms
    u, scale, _ = to_unit_sphere(p.positions)
    for n_sat in (4, 11, 100):
        f, m = node_features(u, n_sat, 100)
        sats = satellites(n_sat)
        dt = _best(lambda f=f, m=m, sats=sats: trilaterate(f, sats, mask=m, scale=scale), repeat)
        rows.append({"name": f"trilaterate 93 atoms, {n_sat} satellites", "value": dt, "unit": "s", "target": 1.0,
                     "better": "lower"})
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            ds.generate(Path(tmp) / "paper.sqlite", "paper", seed=0)
            rows.append({"name": "DeepStruc paper data set (generate)", "value": time.perf_counter() - t, "unit": "s",
                         "target": 120.0, "better": "lower"})
    return rows


def crystalnet(repeat: int) -> list[dict]:
    from pymatgen.core import Lattice, Structure

    from nanosolve.models.crystalnet import density as dens
    from nanosolve.models.crystalnet import inputs
    from nanosolve.models.crystalnet.config import CrystalNetConfig
    from nanosolve.models.crystalnet.model import CrystalNet
    from nanosolve.structures.crystal import Crystal

    rng = np.random.default_rng(7)
    lat = np.array([[6.1, 0.0, 0.0], [1.2, 7.3, 0.0], [-1.5, 0.8, 9.2]])
    tri = Crystal(lat, rng.random((20, 3)), ["Hf", "O", "N", "C", "Cs"] * 4)
    rows = [{"name": "CrystalNet procrystal density, 20 atoms on 50³", "value": _best(lambda: dens.procrystal_density(tri),
             repeat), "unit": "s", "target": 1.0, "better": "lower"}]

    def sg(group, lattice, species, coords):
        return Crystal.from_pymatgen(Structure.from_spacegroup(group, lattice, species, coords))

    crystals = [sg("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                sg("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]])]
    rhos = [dens.procrystal_density(c) for c in crystals]
    xrd = torch.tensor(np.stack([inputs.xrd_vector(c) for c in crystals]), dtype=torch.float32)
    comp = torch.tensor(np.stack([inputs.composition_vector(c) for c in crystals]), dtype=torch.float32)
    cfg = CrystalNetConfig.cpu(latent_dim=16, dense_growth=4, dense_blocks=(1, 1), dense_stem=8, formula_widths=(32,),
                               fusion_width=32, fourier_features=32, pos_width=32, hidden=48, n_layers=4, skip_every=2,
                               lr=3e-3)

    def train40():
        torch.manual_seed(0)
        g = np.random.default_rng(0)
        model = CrystalNet(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=model.config.lr)
        for _ in range(40):
            pts = [inputs.sample_grid_points(r / r.max(), 256, g) for r in rhos]
            coords = torch.tensor(np.stack([q[0] for q in pts]))
            target = torch.tensor(np.stack([q[1] for q in pts]))
            out = model.loss(xrd, comp, coords, target)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()

    rows.append({"name": "CrystalNet, 40 training steps of a small model", "value": _best(train40, 1), "unit": "s",
                 "target": 30.0, "better": "lower"})
    return rows


def cdvae_cache() -> list[dict]:
    from nanosolve.models.cdvae.data import read_cdvae_csv

    src = shared_data_dir() / "cdvae" / "perov_5" / "val.csv"
    if not src.is_file():
        return [{"name": "CDVAE CSV read from its cache", "skipped": f"{src} not found"}]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perov.csv"
        with open(src, newline="") as fh:  # header + the first 200 crystals (CIF fields span lines)
            rows = [r for _, r in zip(range(201), csv.reader(fh))]
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        cache = Path(tmp) / "cache"
        t0 = time.perf_counter()
        read_cdvae_csv(path, cache=cache)
        t1 = time.perf_counter()
        read_cdvae_csv(path, cache=cache)
        t2 = time.perf_counter()
    return [{"name": "CDVAE CSV (200 crystals) from its cache, relative to parsing", "value": (t2 - t1) / (t1 - t0),
             "unit": "×", "target": 0.5, "better": "lower"}]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the DeepStruc data-set build (~1-2 min)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = readers(args.repeat) + deepstruc(args.repeat, args.quick) + crystalnet(args.repeat) + cdvae_cache()
    for r in rows:
        if "value" in r:
            r["met"] = bool(r["value"] <= r["target"] if r["better"] == "lower" else r["value"] >= r["target"])
    print("| operation | measured | target | met |\n|---|---|---|---|")
    for r in rows:
        if "value" in r:
            sign = "≤" if r["better"] == "lower" else "≥"
            print(f"| {r['name']} | {r['value']:.3g} {r['unit']} | {sign} {r['target']:g} {r['unit']} | "
                  f"{'yes' if r['met'] else 'no'} |")
        else:
            print(f"| {r['name']} | skipped: {r['skipped']} | | |")
    write_record(args.out, {"benchmark": "speed", "threads": args.threads, "repeat": args.repeat, "rows": rows})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
