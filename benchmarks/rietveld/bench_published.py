"""Rietveld refinement of published structures against their own measured patterns.

For every IUCr combined CIF in ``<shared data>/pxrdnet_experimental`` (structure + measured powder
pattern): the published structure is the start of :func:`nanosolve.solve.rietveld.rietveld_refine`
(its space group, free Wyckoff coordinates, B_iso per element, TCH profile, zero, Chebyshev
background), run as a solve runs it: ``--time-limit`` seconds per refinement (default 60) and, for a
Cu / Mo wavelength, with and without Kα2, the lower R_wp kept. Printed and recorded: our R_wp, R_exp, χ², the published
R_wp / GoF where the CIF states them, whether the space group is kept, and the time. Control: the
same refinement (Kα1 only) of the NEXT file's structure (a derangement; wrong structure, same pattern), which
must fit far worse. Partially occupied structures are skipped (not supported).

    python benchmarks/rietveld/bench_published.py [--limit N] [--no-control]
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nanosolve.errors import InputError
from nanosolve.paths import shared_data_dir
from nanosolve.provenance import write_record
from nanosolve.scattering.readers import read_pattern
from nanosolve.solve.rietveld import _tube, rietveld_refine
from nanosolve.structures.io import read_cif

OUT = Path(__file__).parent / "results" / "rietveld_published.json"


def _published(text: str, tag: str):
    m = re.findall(rf"{re.escape(tag)}\s+([-0-9.]+)", text)
    return float(m[0]) if m else None


def _refine(crystal, pattern, time_limit, kalpha2_choice=True):
    """The solve's settings: for a Cu / Mo wavelength refined with and without Kα2, the lower R_wp kept."""
    t0 = time.perf_counter()
    try:
        runs = [rietveld_refine(crystal, pattern, time_limit=time_limit)]
        if kalpha2_choice and _tube(pattern.wavelength) is not None:
            runs.append(rietveld_refine(crystal, pattern, time_limit=time_limit, kalpha2=True))
    except InputError as exc:
        return {"error": str(exc)}
    r = min(runs, key=lambda x: x.rwp)
    s = r.summary()
    return {"rwp": s["rwp"], "rexp": s["rexp"], "gof": s["gof"], "gof_s": s["gof_s"], "spacegroup": s["spacegroup"],
            "b_iso": s["b_iso"], "at_bound": s.get("at_bound"), "sigma": s["sigma"], "n_params": s["n_params"],
            "kalpha2": r.params["kalpha2"] is not None, "time_limited": r.params["time_limited"],
            "seconds": round(time.perf_counter() - t0, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-control", action="store_true")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per refinement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    folder = shared_data_dir() / "pxrdnet_experimental"
    files = sorted(folder.glob("*.cif"))[: args.limit]
    if not files:
        raise SystemExit(f"no CIFs in {folder}")
    items = []
    for f in files:
        text = f.read_text(errors="replace")
        crystals = [c for c in read_cif(f) if c.is_ordered]
        items.append((f, read_pattern(f), crystals[0] if crystals else None, text))
    rows = []
    for i, (f, pat, cr, text) in enumerate(items):
        row = {"file": f.name, "points": int(pat.x.size), "wavelength": pat.wavelength,
               "published_rwp": _published(text, "_pd_proc_ls_prof_wR_factor"),
               "published_gof": _published(text, "_refine_ls_goodness_of_fit_all")}
        if cr is None:
            row["skipped"] = "partially occupied sites"
        else:
            row["formula"] = cr.formula
            row["published_spacegroup"] = cr.symmetry(0.01).symbol
            row["ours"] = _refine(cr, pat, args.time_limit)
            if not args.no_control:
                other = next((c for _, _, c, _ in items[i + 1:] + items[:i] if c is not None), None)
                row["control_wrong_structure"] = None if other is None else {"formula": other.formula,
                                                                             **_refine(other, pat, args.time_limit,
                                                                                       False)}
        rows.append(row)
        o = row.get("ours", {})
        c = row.get("control_wrong_structure") or {}
        print(f"{f.name[:34]:34s} {row.get('formula', ''):12s} Rwp {o.get('rwp', float('nan')):.4f} "
              f"chi2 {o.get('gof', float('nan')):8.2f} published Rwp {row['published_rwp']} GoF "
              f"{row['published_gof']} sg {o.get('spacegroup')} ({row.get('published_spacegroup')}) "
              f"{o.get('seconds')} s | control Rwp {c.get('rwp', float('nan')):.4f} {o.get('error', '')}",
              flush=True)
    ok = [r for r in rows if "rwp" in r.get("ours", {})]
    record = {"what": "Rietveld refinement of each published structure against its own measured pattern "
                      "(library defaults); control: the next file's structure against the same pattern",
              "data": str(folder), "rows": rows,
              "median_rwp": float(np.median([r["ours"]["rwp"] for r in ok])) if ok else None,
              "median_rwp_control": float(np.median([r["control_wrong_structure"]["rwp"] for r in ok
                                                     if (r.get("control_wrong_structure") or {}).get("rwp")]))
              if ok and not args.no_control else None,
              "spacegroup_kept": sum(r["ours"]["spacegroup"] == r["published_spacegroup"] for r in ok),
              "refined": len(ok)}
    write_record(OUT, record)
    print(f"median Rwp {record['median_rwp']}, control {record['median_rwp_control']}, "
          f"space group kept {record['spacegroup_kept']}/{len(ok)}; wrote {OUT}")


if __name__ == "__main__":
    main()
