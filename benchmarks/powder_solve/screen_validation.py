"""Validation of the measured-pattern screen (:mod:`nanosolve.solve.screen`) on simulated sharp patterns.

For every AFLOW prototype of 2-4 elements and at most 20 atoms whose stoichiometry has at least
3 other isotypic candidates (the library's own elements), a "measured" pattern is simulated from a
perturbed truth: each cell length scaled by a factor drawn in 0.95-1.05 (equal lengths alike), every atom displaced by
0.1 Å rms (the positions a real compound has, not the prototype's), Cu Kα, 0.08° Gaussian peaks,
B = 0.8 Å², a sloped background and Poisson counts (10⁴ at the strongest peak). The candidates are
the composition's isotypic substitutions (:func:`~nanosolve.structures.builders.prototypes.isotypic_substitutions`:
cells from radii, the prototype's own coordinates), as in a solve. Reported: how often the true
prototype ranks first / in the top 3 under each score, next to chance (1 / candidates).

Used to choose between scores, never on measured patterns:

* ``model_grid``: R on the 10 Å model grid (:func:`nanosolve.solve.pxrd.rank_candidates`);
* ``screen``: the screen's R (intensities as measured);
* ``screen_sqrt``: the same fit, R on the square root of the smoothed profiles (weak lines count more).

Usage: python benchmarks/powder_solve/screen_validation.py [--limit N] [--out NAME]
-> results/NAME.json (default screen_validation) through nanosolve.provenance.write_record.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def measured_from(truth, rng):
    from nanosolve.scattering.bragg import simulate_xrd
    from nanosolve.scattering.pattern import Pattern

    sim = simulate_xrd(truth, "CuKa", fwhm=0.08, two_theta_range=(10, 90), b_iso=0.8)
    mean = sim.y / sim.y.max() * 1e4 + 300 + 200 * np.exp(-sim.x / 30)
    return Pattern(sim.x, rng.poisson(mean).astype(float), x_unit="tth", kind="xrd", wavelength=sim.wavelength)


def perturbed(crystal, rng):
    """Lengths scaled in 0.95-1.05 (equal lengths alike: a cubic compound stays cubic), atoms moved."""
    from nanosolve.solve.pxrd_refine import equal_groups

    c = crystal.copy()
    factors = np.ones(3)
    for group in equal_groups(list(np.linalg.norm(c.lattice, axis=1)), 1e-3):
        factors[group] = rng.uniform(0.95, 1.05)
    c.lattice = c.lattice * factors[:, None]
    disp = rng.normal(0, 0.1 / np.sqrt(3), (len(c), 3))
    c.frac_coords = (c.frac_coords + disp @ np.linalg.inv(c.lattice)) % 1.0
    return c


def prototype_cases(keep=None) -> list:
    """(label, prototype, isotypic candidates) of every AFLOW prototype of 2-4 elements and at most 20
    atoms whose composition has at least 3 other isotypic candidate types, the prototype's own among
    them; ``keep(prototype)`` filters further."""
    from nanosolve.structures.builders.prototypes import _library, isotypic_substitutions

    infos, crystals = _library()
    cases = []
    for info, proto in zip(infos, crystals):
        if not 2 <= len(info.species) <= 4 or len(proto) > 20 or (keep is not None and not keep(proto)):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cands = isotypic_substitutions(Counter(proto.species), 20)
        if len({c.properties.get("prototype") for c in cands}) >= 4 and any(
                c.properties.get("prototype") == info.label for c in cands):
            cases.append((info.label, proto, cands))
    return cases


def main(argv=None):
    from nanosolve.provenance import write_record
    from nanosolve.solve.pxrd import prepare_input, rank_candidates
    from nanosolve.solve.screen import prepare_screen, screen_crystal

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="screen_validation")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    cases = prototype_cases()
    order = rng.permutation(len(cases))[:args.limit]
    rows = []
    for i in order:
        label, proto, cands = cases[i]
        t0 = time.perf_counter()
        pattern = measured_from(perturbed(proto, rng), rng)
        data = prepare_screen(pattern)
        _, y, mask = prepare_input(pattern, 10.0)
        fits = [screen_crystal(c, data) for c in cands]
        model = rank_candidates(cands, y, mask, 10.0)
        scores = {"model_grid": {id(c.crystal): c.r for c in model},
                  "screen": {id(c): f.r for c, f in zip(cands, fits)},
                  "screen_sqrt": {id(c): f.r_sqrt for c, f in zip(cands, fits)}}
        row = {"prototype": label, "candidates": len(cands),
               "prototypes": len({c.properties.get("prototype") for c in cands})}
        for name, sc in scores.items():
            ranked = sorted(cands, key=lambda c: sc[id(c)])
            labels = [c.properties.get("prototype") for c in ranked]
            row[f"{name}_rank"] = labels.index(label) + 1
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(row, flush=True)
    summary = {"n": len(rows), "chance_top1": float(np.mean([1 / r["prototypes"] for r in rows]))}
    for name in ("model_grid", "screen", "screen_sqrt"):
        ranks = np.array([r[f"{name}_rank"] for r in rows])
        summary[name] = {"top1": int((ranks == 1).sum()), "top3": int((ranks <= 3).sum()),
                         "median_rank": float(np.median(ranks))}
    print(summary)
    write_record(HERE / "results" / f"{args.out}.json", {"rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
