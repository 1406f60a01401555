"""Benchmark: the PDF solve (cluster library + DeepStruc, ranked with positions fixed) at its defaults.

(a) The 12 simulated PDFs of ../shared/data/deepstruc_simulated (DiffPy output of the DeepStruc authors, 7-177
    atoms; file names give the geometry, the graph files the atom count): motif family and exact atom count of the
    top-1. The files carry no header; the solve gets their stated Qmin 0.7 / Qmax 25 and guesses the metal.
(b) PDFs simulated here, deterministically (seed below), of 150-3,000-atom clusters of four motifs (Mackay
    icosahedra, Marks decahedra, truncated octahedra, hcp spheres) and three metals (Au, Pt, Ni), with Qmax drawn
    from 18-25 Å⁻¹, Qmin 0.5-1.0, Qdamp 0.02-0.05 (not stated to the solve: it is fitted), B_iso 0.3-1.0 Å²,
    δ2 0-3 Å², lattice expansion −1.5..+2 %, random static displacements (0.03 Å rms per coordinate), noise of 2-4 %
    of max|G| correlated over ~π/Qmax, r = 0-20 or 0-30 Å on a 0.01 Å step. Top-1: motif family right, exact motif
    right, atom count within 10 %. Items are split by index: 'validation' (one per motif × metal) and 'test' (one
    per motif × metal, other sizes and seeds); the defaults were fixed before the test part was run and are not
    tuned on it. Control beside each rate: a random pick from the same library (the chance of each criterion,
    computed exactly over the library).
(c) Wall time per PDF of the whole solve at defaults (2 processes for the fits).

Usage:  python benchmarks/pdf_solve/bench_pdf_solve.py [--part a|b|all] [--limit N] [--source both]
Prints markdown tables and writes benchmarks/pdf_solve/results/pdf_solve.json (nanosolve.provenance.write_record).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nanosolve.provenance import write_record

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data" / "deepstruc_simulated"
SEED = 20261206
METALS = ("Au", "Pt", "Ni")
MOTIFS = ("icosahedron", "marks-decahedron", "truncated-octahedron", "hcp-sphere")
CALIBRATION_ERROR = 0.10  # relative error of a Qdamp taken from a calibrant measurement (protocol 'calibrant')
FAMILY_OF_FILE = {"BCC": "bcc", "FCC": "fcc", "SC": "sc", "HCP": "hcp", "Decahedron": "decahedral",
                  "Icosahedron": "icosahedral", "Octahedron": "fcc"}


def _solve(pattern, element, source, qdamp=None):
    from nanosolve.solve import solve_pdf
    from nanosolve.solve.pdf_solve import PdfSolveSettings

    t = time.perf_counter()
    res = solve_pdf(pattern, element=element, pdf_settings=PdfSolveSettings(source=source, qdamp=qdamp))
    return res.summary, time.perf_counter() - t


def part_a(source: str, limit: int | None) -> list[dict]:
    import h5py

    from nanosolve.scattering.readers import read_pattern

    rows = []
    files = sorted((SHARED / "PDFs_simulated").glob("*.gr"))[:limit]
    for f in files:
        graph = next((SHARED / "graphs").glob(f"graph_{f.stem}_atom_*.h5"))
        with h5py.File(graph, "r") as h:
            n_true = int(h["Node Feature Matrix"].shape[0])
        fam = FAMILY_OF_FILE[f.stem.split("_")[0]]
        p = read_pattern(f)
        p.metadata.update(qmin=0.7, qmax=25.0)  # the authors' simulation settings (nanosolve.models.deepstruc.pdf)
        s, sec = _solve(p, None, source)
        a = s["answer"]
        rows.append({"file": f.name, "family_true": fam, "n_true": n_true, "motif": a["motif"],
                     "family": a["family"], "n_atoms": a["n_atoms"], "source": a["source"], "rw": a["rw"],
                     "element_guessed": s["element"], "family_ok": a["family"] == fam,
                     "n_ok": a["n_atoms"] == n_true, "n_within_10": abs(a["n_atoms"] - n_true) <= 0.1 * n_true,
                     "seconds": round(sec, 2),
                     "second_motif": s["motif_comparison"][1] if len(s["motif_comparison"]) > 1 else None})
        print(f"  {f.name}: {a['motif']} {a['n_atoms']} (true {fam} {n_true}) Rw {a['rw']:.3f} {sec:.1f} s", flush=True)
    return rows


def _truth_clusters(rng) -> list[dict]:
    """The (b) items: motif, metal, builder parameters, part."""
    from nanosolve.solve.cluster_library import load_library

    pools = {}
    for e in load_library():  # the geometries of the library's motifs (its default settings)
        if e.motif in MOTIFS and 150 <= e.n_atoms <= 3000:
            pools.setdefault(e.motif, []).append((e.shape, e.parameters, e.n_atoms))
    items = []
    for motif in MOTIFS:
        for metal in METALS:
            for part in ("validation", "test"):
                if motif == "hcp-sphere":
                    shape, params = "sphere", {"lattice": "hcp", "radius": float(rng.uniform(2.9, 7.9))}
                else:
                    pool = pools[motif]
                    shape, params, _ = pool[int(rng.integers(len(pool)))]
                items.append({"motif": motif, "metal": metal, "shape": shape, "parameters": params, "part": part})
    return items


def simulate_item(item: dict, rng, noise_model: str = "counting", index: int = 0) -> tuple:
    """(Pattern, n_atoms, truth dict) of one (b) item: see the module docstring for the draws.

    ``noise_model``: 'counting' (default): white noise of constant σ in S(Q) on the data's Q grid, so
    σ_F(Q) ∝ Q, sine-transformed to G(r) like the signal: the noise lives where the data do, in
    Qmin-Qmax, weighted to high Q, as counting noise in a measured S(Q) does (its own stream per item,
    so the items and truths are the same under either model). 'smooth-r': white noise in r smoothed by
    a Gaussian of σ = π/(2 Qmax), the earlier model: most of its power lies below Qmin, where a measured
    PDF carries none, and it looks like a slow envelope (it biases Qdamp and size; see README)."""
    from scipy.ndimage import gaussian_filter1d

    from nanosolve.models.deepstruc.pdf import cluster_pdf, default_qstep, q_grid
    from nanosolve.scattering.pattern import Pattern
    from nanosolve.structures.builders.clusters import build_library_cluster

    p = build_library_cluster(item["shape"], item["parameters"], item["metal"])
    truth = {"qmax": float(rng.uniform(18, 25)), "qmin": float(rng.uniform(0.5, 1.0)),
             "qdamp": float(rng.uniform(0.02, 0.05)), "biso": float(rng.uniform(0.3, 1.0)),
             "delta2": float(rng.uniform(0, 3)), "expansion": float(rng.uniform(-0.015, 0.02)),
             "rmax": float(rng.choice([20.0, 30.0])), "noise": float(rng.uniform(0.02, 0.04))}
    x = p.positions * (1 + truth["expansion"]) + rng.normal(0, 0.03, p.positions.shape)
    r = np.arange(0.0, truth["rmax"] + 1e-9, 0.01)
    g = cluster_pdf(x, r=r, qmin=truth["qmin"], qmax=truth["qmax"], qdamp=truth["qdamp"], biso=truth["biso"],
                    delta2=truth["delta2"])
    sigma_pts = 0.5 * np.pi / truth["qmax"] / 0.01  # correlation length ~ half a Nyquist step
    noise = gaussian_filter1d(rng.normal(size=r.size), sigma_pts)  # drawn under both models: same stream
    if noise_model == "counting":
        q = q_grid(truth["qmin"], truth["qmax"], default_qstep(r))
        fq = q * np.random.default_rng([SEED, index, 1]).normal(size=q.size)
        noise = (2.0 / np.pi) * (q[1] - q[0]) * (fq @ np.sin(np.outer(q, r)))
    g = g + noise / noise.std() * truth["noise"] * np.abs(g).max()
    pat = Pattern(r, g, kind="gr", x_unit="r",
                  metadata={"qmin": truth["qmin"], "qmax": truth["qmax"], "source": f"{item['metal']}{len(p)}"})
    return pat, len(p), truth


def _chance(lib, family: str, motif: str, n_true: int) -> dict:
    fam = np.array([e.family == family for e in lib])
    mot = np.array([e.motif == motif for e in lib])
    size = np.array([abs(e.n_atoms - n_true) <= 0.1 * n_true for e in lib])
    return {"family": float(fam.mean()), "motif": float(mot.mean()), "family_and_size": float((fam & size).mean())}


def part_b(source: str, limit: int | None, protocol: str, parts: tuple = ("validation", "test"),
           noise_model: str = "counting") -> list[dict]:
    """Rows of (b). ``protocol``: 'calibrant' (Qdamp stated as a calibrant measurement gives it: the true value
    times 1 + U(−CALIBRATION_ERROR, +CALIBRATION_ERROR)) or 'fitted' (Qdamp not stated: fitted per candidate)."""
    from nanosolve.solve.cluster_library import load_library
    from nanosolve.structures.builders.clusters import MOTIF_FAMILY

    rng = np.random.default_rng(SEED)
    cal = np.random.default_rng(SEED + 1)  # calibration errors: their own stream, so the items stay the same
    items = _truth_clusters(rng)[:limit]
    lib = load_library()
    rows = []
    for index, item in enumerate(items):
        pat, n_true, truth = simulate_item(item, rng, noise_model, index)
        qdamp_stated = truth["qdamp"] * (1 + cal.uniform(-CALIBRATION_ERROR, CALIBRATION_ERROR))
        if item["part"] not in parts:
            continue
        s, sec = _solve(pat, item["metal"], source, qdamp_stated if protocol == "calibrant" else None)
        a = s["answer"]
        fam = MOTIF_FAMILY[item["motif"]]
        lo, hi = a["sizes_within_noise"]["n_atoms"]
        row = {"part": item["part"], "protocol": protocol, "noise_model": noise_model, "metal": item["metal"], "motif_true": item["motif"],
               "n_true": n_true, "parameters": item["parameters"], "truth": truth,
               "qdamp_stated": qdamp_stated if protocol == "calibrant" else None, "motif": a["motif"],
               "n_atoms": a["n_atoms"], "sizes_within_noise": [lo, hi], "source": a["source"], "rw": a["rw"],
               "lattice_a": a["lattice_a"], "qdamp_answer": a["qdamp"],
               "family_ok": a["family"] == fam, "motif_ok": a["motif"] == item["motif"],
               "size_ok": abs(a["n_atoms"] - n_true) <= 0.1 * n_true,
               "truth_in_size_interval": lo <= n_true <= hi, "seconds": round(sec, 2),
               "chance": _chance(lib, fam, item["motif"], n_true)}
        row["family_and_size_ok"] = row["family_ok"] and row["size_ok"]
        rows.append(row)
        print(f"  [{item['part']}, {protocol}] {item['metal']} {item['motif']} {n_true} (Qmax {truth['qmax']:.1f}, "
              f"r<={truth['rmax']:.0f}): {a['motif']} {a['n_atoms']} ({lo}-{hi}) Rw {a['rw']:.3f} {sec:.1f} s",
              flush=True)
    return rows


def _rate(rows, key):
    return (sum(r[key] for r in rows), len(rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="all", choices=("a", "b", "all"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--source", default="both", choices=("cvae", "library", "both"))
    ap.add_argument("--protocol", default="both", choices=("calibrant", "fitted", "both"),
                    help="(b): Qdamp stated from a calibrant (±10 %%), fitted, or both")
    ap.add_argument("--b-parts", default="validation,test", help="(b) parts to run, comma-separated")
    ap.add_argument("--noise", default="counting", choices=("counting", "smooth-r"), help="(b) noise model")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pdf_solve.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    record = {"source": args.source, "seed": SEED, "settings": "PdfSolveSettings() defaults"}
    t0 = time.perf_counter()
    if args.part in ("a", "all"):
        print("(a) shared simulated PDFs")
        rows = part_a(args.source, args.limit)
        record["a"] = {"rows": rows, "family_ok": _rate(rows, "family_ok"), "n_exact": _rate(rows, "n_ok"),
                       "n_within_10": _rate(rows, "n_within_10"),
                       "seconds_mean": float(np.mean([r["seconds"] for r in rows]))}
    if args.part in ("b", "all"):
        print("(b) simulated 150-3,000-atom clusters")
        protocols = ("calibrant", "fitted") if args.protocol == "both" else (args.protocol,)
        parts = tuple(args.b_parts.split(","))
        rows = [r for pr in protocols for r in part_b(args.source, args.limit, pr, parts, args.noise)]
        record["b"] = {"calibration_error": CALIBRATION_ERROR, "noise_model": args.noise}
        for pr in protocols:
            for part in parts:
                sub = [r for r in rows if r["part"] == part and r["protocol"] == pr]
                if not sub:
                    continue
                record["b"].setdefault(pr, {})[part] = ({
                    "n": len(sub), "family_ok": _rate(sub, "family_ok"), "motif_ok": _rate(sub, "motif_ok"),
                    "size_ok": _rate(sub, "size_ok"), "family_and_size_ok": _rate(sub, "family_and_size_ok"),
                    "truth_in_size_interval": _rate(sub, "truth_in_size_interval"),
                    "chance_family": float(np.mean([r["chance"]["family"] for r in sub])),
                    "chance_motif": float(np.mean([r["chance"]["motif"] for r in sub])),
                    "chance_family_and_size": float(np.mean([r["chance"]["family_and_size"] for r in sub])),
                    "seconds_mean": float(np.mean([r["seconds"] for r in sub])),
                    "seconds_max": float(np.max([r["seconds"] for r in sub]))})
        record["b"]["rows"] = rows
    record["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_record(args.out, record)

    if "a" in record:
        a = record["a"]
        print("\n| (a) shared PDFs | top-1 family right | atom count exact | within 10 % | s/PDF |")
        print("|---|---|---|---|---|")
        print(f"| {len(a['rows'])} files | {a['family_ok'][0]}/{a['family_ok'][1]} | {a['n_exact'][0]}/{a['n_exact'][1]} |"
              f" {a['n_within_10'][0]}/{a['n_within_10'][1]} | {a['seconds_mean']:.1f} |")
        print("\n| file | truth | answer | Rw |")
        print("|---|---|---|---|")
        for r in a["rows"]:
            print(f"| {r['file']} | {r['family_true']} {r['n_true']} | {r['motif']} {r['n_atoms']} ({r['source']}) |"
                  f" {r['rw']:.3f} |")
    if "b" in record:
        print("\n| (b) Qdamp | part | PDFs | family right (chance) | exact motif (chance) | size within 10 % | "
              "family + size (chance) | truth in size interval | s/PDF mean (max) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for pr, part in ((pr, part) for pr in ("calibrant", "fitted") for part in ("validation", "test")):
            if part not in record["b"].get(pr, {}):
                continue
            b = {"protocol": pr, "part": part, **record["b"][pr][part]}
            n = b["n"]
            print(f"| {b['protocol']} | {b['part']} | {n} | {b['family_ok'][0]}/{n} ({100 * b['chance_family']:.0f} %) | "
                  f"{b['motif_ok'][0]}/{n} ({100 * b['chance_motif']:.0f} %) | {b['size_ok'][0]}/{n} | "
                  f"{b['family_and_size_ok'][0]}/{n} ({100 * b['chance_family_and_size']:.1f} %) | "
                  f"{b['truth_in_size_interval'][0]}/{n} | {b['seconds_mean']:.1f} ({b['seconds_max']:.1f}) |")
    print(f"\nwrote {args.out} ({record['wall_seconds']} s)")


if __name__ == "__main__":
    main()
