"""Composition-only powder solve of the measured patterns in ``<shared data>/pxrdnet_experimental``.

Each ``*.rtv.combined.cif`` holds a measured powder pattern and the structure refined from it. The
solve (:func:`nanosolve.solve.pxrd.solve_pxrd` at its defaults: Z searched, every candidate source,
sanity gate, time budget) gets the observed profile (the reader refuses calculated columns; this
script checks ``metadata['observed']``) and the REDUCED formula of the refined structure — no Z, no
cell. Only after the solve is the refined structure read, to score:

* top-1 / top-10 match: pymatgen StructureMatcher (stol 0.5, ltol 0.3, angle_tol 10) of the written
  structures against the refined one with every site fully occupied (:func:`nominal`);
* R_wp (and GoF when the Rietveld stage ran) of the top-1, Z found vs Z of the refined cell, seconds;
* gate order: no plausible candidate ranked after an implausible one;
* shuffled-pattern control (``--control``): each file's formula solved from another file's pattern
  (a fixed derangement); a solve that uses the pattern must match less often there.

Usage: python benchmarks/powder_solve/bench_powder_solve.py [--files a.cif ...] [--control] [--out NAME]
Writes benchmarks/powder_solve/results/<NAME>.json through nanosolve.provenance.write_record (rewritten
after every file, so an interrupted run keeps the files that finished).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def reduced_formula_of(truth) -> str:
    """Reduced formula of the refined structure's sites (a partly occupied site counts as one atom,
    as a chemist's nominal formula does; elements by atomic number)."""
    from nanosolve.models.pxrdnet.sample import cell_formula
    from nanosolve.solve.composition import reduced_composition

    red = reduced_composition(cell_formula(truth))
    return "".join(f"{el}{n}" for el, n in red.items())


def nominal(truth):
    """The refined structure with every site fully occupied: the structure the reduced formula
    describes (ErGe2 for the Er2Ge3.17 refinement with Ge at 79 % occupancy). Matching an ordered
    candidate against the partly occupied refinement could never succeed: its composition differs."""
    ordered = truth.copy()
    ordered.occupancies = np.ones(len(truth))
    return ordered


def solve_one(pattern_file: Path, formula: str, truth, args) -> dict:
    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.scattering.readers import read_patterns
    from nanosolve.solve.pxrd import PowderSolveSettings, solve_pxrd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pattern = read_patterns(pattern_file)[0]
    assert pattern.metadata.get("observed", True), f"{pattern_file.name}: not an observed profile"
    stages = []
    t0 = time.perf_counter()
    st = PowderSolveSettings(seed=args.seed, time_budget=args.time_budget or None,
                             progress=lambda s, d: stages.append([round(time.perf_counter() - t0, 1), s]))
    res = solve_pxrd(pattern, formula, settings=st)
    seconds = time.perf_counter() - t0
    ranked = res.ranked
    matches = [bool(match_and_rmse(c.final_crystal, truth)[0]) for c in ranked[:10]]
    best = ranked[0]
    rv = getattr(best, "rietveld", None)
    plaus = [bool(c.sanity.plausible) for c in ranked]
    s = res.summary
    n_unit = sum(int(v) for v in __import__("nanosolve.solve.composition", fromlist=["x"])
                 .reduced_composition(formula).values())
    return {"formula": formula, "match_top1": matches[0], "match_top10": any(matches),
            "first_match_rank": (matches.index(True) + 1) if any(matches) else None,
            "source_top1": best.source, "z_found": s["z"], "z_true": len(truth) // n_unit,
            "cell_found": s["cell"], "cell_true": [round(float(v), 4) for v in truth.cell_params],
            "spacegroup_top1": best.summary()["spacegroup"],
            "rwp_top1": (float(rv.rwp) if rv is not None and hasattr(rv, "rwp")
                         else (float(best.profile.rwp_after) if best.profile is not None else None)),
            "gof_top1": float(rv.gof) if rv is not None and hasattr(rv, "gof") else None,
            "rietveld_top1": rv is not None, "profile_top1": best.profile is not None,
            "gate_order_ok": plaus == sorted(plaus, reverse=True), "implausible": int(sum(not p for p in plaus)),
            "plausible_top1": plaus[0], "n_candidates": len(ranked),
            "sources": {k: sum(c.method == k for c in ranked) for k in ("pxrdnet", "prototype", "random-search")},
            "budget_cut": s["budget_cut"], "indexed": s["indexed"], "stand_ins": s["element_stand_ins"],
            "stages": stages, "seconds": round(seconds, 1)}


def main(argv=None):
    import torch

    from nanosolve.paths import shared_data_dir
    from nanosolve.provenance import write_record
    from nanosolve.solve.pxrd import TIME_BUDGET
    from nanosolve.structures.io import read_cif

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", nargs="*", help="file names (default: all 15)")
    ap.add_argument("--control", action="store_true", help="also the shuffled-pattern control")
    ap.add_argument("--only-control", action="store_true", help="the shuffled-pattern control only")
    ap.add_argument("--time-budget", type=float, default=TIME_BUDGET)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="experimental")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    exp = shared_data_dir() / "pxrdnet_experimental"
    files = sorted(exp.glob("*.rtv.combined.cif"))
    if not files:
        raise SystemExit(f"no measured patterns in {exp}")
    truths, formulas = {}, {}
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = read_cif(f)
        formulas[f.name] = reduced_formula_of(t[0] if isinstance(t, list) else t)
        truths[f.name] = nominal(t[0] if isinstance(t, list) else t)  # scored as the formula given describes it
    chosen = [f for f in files if not args.files or f.name in args.files]
    # the control's derangement is over all 15 files (fixed, seed 0), whatever subset runs
    from nanosolve.solve.pxrd_eval import derangement

    perm = derangement(len(files), 0)
    record = {"time_budget": args.time_budget, "seed": args.seed, "threads": args.threads,
              "load_average_start": list(np.round(__import__("os").getloadavg(), 2)), "rows": [], "control": []}
    out = HERE / "results" / f"{args.out}.json"
    kinds = ([] if args.only_control else ["input"]) + (["shuffled"] if args.control or args.only_control else [])
    for kind in kinds:
        for f in chosen:
            i = files.index(f)
            src = f if kind == "input" else files[perm[i]]
            row = {"file": f.name, "pattern": src.name}
            try:
                row.update(solve_one(src, formulas[f.name], truths[f.name], args))
                row["status"] = "ok"
            except Exception as err:  # noqa: BLE001 - one bad file must not end the table; the reason is kept
                row["status"] = f"error: {type(err).__name__}: {err}"
            row["load_average"] = list(np.round(__import__("os").getloadavg(), 2))
            (record["rows"] if kind == "input" else record["control"]).append(row)
            print(f"{kind:8s} {f.name:42s} {row.get('formula', ''):12s} top1={row.get('match_top1')} "
                  f"top10={row.get('match_top10')} z={row.get('z_found')}/{row.get('z_true')} "
                  f"rwp={row.get('rwp_top1')} {row.get('source_top1')} cut={row.get('budget_cut')} "
                  f"{row.get('seconds')} s {row['status'][:80]}", flush=True)
            record["summary"] = summarise(record)
            write_record(out, record)
    print(summarise(record))


def summarise(record: dict) -> dict:
    out = {}
    for kind in ("rows", "control"):
        rows = [r for r in record[kind] if r.get("status") == "ok"]
        if not record[kind]:
            continue
        out[kind] = {"n": len(record[kind]), "ok": len(rows), "top1": sum(r["match_top1"] for r in rows),
                     "top10": sum(r["match_top10"] for r in rows),
                     "z_right": sum(r["z_found"] == r["z_true"] for r in rows),
                     "gate_order_ok": all(r["gate_order_ok"] for r in rows),
                     "median_seconds": float(np.median([r["seconds"] for r in rows])) if rows else None,
                     "max_seconds": float(max([r["seconds"] for r in rows], default=0.0)),
                     "median_rwp_top1": float(np.median([r["rwp_top1"] for r in rows if r["rwp_top1"] is not None]))
                     if any(r["rwp_top1"] is not None for r in rows) else None}
    return out


def table_md(paths) -> str:
    """Markdown table of the rows (and control rows) of one or more result records."""
    import json

    rows, control = [], []
    for p in paths:
        rec = json.loads(Path(p).read_text())
        rows += rec["rows"]
        control += rec["control"]
    lines = ["| file | formula | top-1 | top-10 | Z found / true | source of top-1 | R_wp top-1 | GoF (χ²) | s | cut by budget |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["file"]):
        if r.get("status") != "ok":
            lines.append(f"| {r['file']} | | {r['status']} | | | | | | | |")
            continue
        rwp = "" if r["rwp_top1"] is None else f"{r['rwp_top1']:.3f}"
        gof = "" if r["gof_top1"] is None else f"{r['gof_top1']:.2f}"
        lines.append(f"| {r['file'].split('.')[0]} | {r['formula']} | {'yes' if r['match_top1'] else 'no'} | "
                     f"{'yes' if r['match_top10'] else 'no'} | {r['z_found']} / {r['z_true']} | {r['source_top1']} | "
                     f"{rwp} | {gof} | {r['seconds']:.0f} | {', '.join(r['budget_cut'])} |")
    ok = [r for r in rows if r.get("status") == "ok"]
    lines += ["", f"solved: {len(ok)} of {len(rows)}; top-1 {sum(r['match_top1'] for r in ok)}, top-10 "
                  f"{sum(r['match_top10'] for r in ok)}; Z right {sum(r['z_found'] == r['z_true'] for r in ok)}; "
                  f"gate order kept in all: {all(r['gate_order_ok'] for r in ok)}"]
    okc = [r for r in control if r.get("status") == "ok"]
    if control:
        lines += [f"shuffled-pattern control: {len(okc)} of {len(control)} solved; top-1 "
                  f"{sum(r['match_top1'] for r in okc)}, top-10 {sum(r['match_top10'] for r in okc)} "
                  f"(files: {', '.join(r['file'].split('.')[0] for r in okc)})"]
    return "\n".join(lines)


def combine(paths, out: str) -> dict:
    """One record of the rows of several runs (parts run side by side): rows, control rows, the
    summary over all of them, and the parts' own provenance, written to results/<out>.json."""
    import json

    from nanosolve.provenance import write_record

    parts = [json.loads(Path(p).read_text()) for p in paths]
    record = {"parts": [{"record": Path(p).name, "provenance": rec.get("provenance"),
                         "load_average_start": rec.get("load_average_start")} for p, rec in zip(paths, parts)],
              "rows": [r for rec in parts for r in rec["rows"]], "control": [r for rec in parts for r in rec["control"]]}
    record["summary"] = summarise(record)
    write_record(HERE / "results" / f"{out}.json", record)
    return record["summary"]


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--table":
        print(table_md(sys.argv[2:]))
    elif len(sys.argv) > 3 and sys.argv[1] == "--combine":  # --combine OUT a.json b.json ...
        print(combine(sys.argv[3:], sys.argv[2]))
    else:
        main()
