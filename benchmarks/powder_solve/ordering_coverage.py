"""How many AFLOW prototypes of three or more elements are orderings of a simpler prototype?

For every prototype of the library with ≥ 3 elements (and ≤ 40 atoms), its own composition is given to
``ordered_substitutions`` (``nanosolve.structures.builders.orderings``), which never offers the
prototype itself (it orders two elements on one site of a prototype of the *merged* composition).
Counted: prototypes matched by at least one ordering (pymatgen StructureMatcher, stol 0.5, ltol 0.3,
angle_tol 10, the powder benchmark's tolerances), the number of orderings offered, seconds. Baseline:
the library's other prototypes of the same stoichiometry (what a solve offered without orderings;
the prototype's own AFLOW label left out).

    python benchmarks/powder_solve/ordering_coverage.py          # -> results/ordering_coverage.json
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np


def main(argv=None):
    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.provenance import write_record
    from nanosolve.structures.builders.orderings import ordered_substitutions
    from nanosolve.structures.builders.prototypes import build_prototype, isotypic_substitutions, list_prototypes

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-atoms", type=int, default=40)
    ap.add_argument("--out", default="ordering_coverage")
    args = ap.parse_args(argv)
    infos = [p for p in list_prototypes() if len(p.species) >= 3 and p.n_sites <= args.max_atoms]
    truths = [build_prototype(p.label, keep_packing=False) for p in infos]
    rows = []
    for info, truth in zip(infos, truths):
        t0 = time.perf_counter()
        comp = Counter(truth.species)
        found = ordered_substitutions(comp, args.max_atoms)
        hits = [c.properties["prototype"] for c in found if match_and_rmse(c, truth)[0]]
        rows.append({"label": info.label, "formula": info.formula, "n_sites": info.n_sites,
                     "n_orderings": len(found), "matched_by": sorted(set(hits)),
                     "seconds": round(time.perf_counter() - t0, 2)})
        print(f"{info.label:32s} {info.formula:12s} {len(found):4d} orderings  "
              f"{'MATCH ' + hits[0] if hits else '-'}", flush=True)
    # baseline: what the library offered before, the other prototypes of the same stoichiometry
    # (every element assignment; the prototype's own label left out)
    baseline = []
    for info, truth in zip(infos, truths):
        others = [c for c in isotypic_substitutions(Counter(truth.species), args.max_atoms)
                  if c.properties["aflow_label"] != info.aflow_label]
        baseline.append({"label": info.label, "n_offered": len(others),
                         "matched": any(match_and_rmse(c, truth)[0] for c in others)})
    summary = {"prototypes": len(rows), "matched": sum(bool(r["matched_by"]) for r in rows),
               "with_orderings": sum(r["n_orderings"] > 0 for r in rows),
               "median_orderings": float(np.median([r["n_orderings"] for r in rows])),
               "baseline_matched": sum(b["matched"] for b in baseline),
               "baseline_median_offered": float(np.median([b["n_offered"] for b in baseline])),
               "seconds": round(sum(r["seconds"] for r in rows), 1)}
    print(summary)
    write_record(f"benchmarks/powder_solve/results/{args.out}.json",
                 {"summary": summary, "rows": rows, "baseline": baseline, "max_atoms": args.max_atoms})


if __name__ == "__main__":
    main()
