"""Validation of the coordinate search (:mod:`nanosolve.solve.coordinates`) on simulated sharp patterns.

Cases as in ``screen_validation.py``: AFLOW prototypes of 2-4 elements and at most 20 atoms, here
those with free coordinates and at least 3 other isotypic candidates; a "measured" pattern of a
perturbed truth (lengths ±5 %, atoms moved 0.1 Å rms, Cu Kα, background, Poisson counts). The
candidates are the composition's isotypic substitutions, except that the true prototype's candidate has
its free coordinates drawn at random (the right space group and sites, the atoms elsewhere: what a
prototype of another compound or a random crystal offers). Each case is ranked by the screen alone
and by the screen followed by :func:`~nanosolve.solve.coordinates.search_candidates` (deadline
``--seconds``). Reported: how often the top-1 matches the truth (StructureMatcher stol 0.5, ltol 0.3,
angle 10, the benchmark's), beside a control where every case is searched against its own pattern with
the intensities shuffled over the 2θ points (it must not match).

Used to choose the search's defaults, never on measured patterns.

Usage: python benchmarks/powder_solve/coordinate_validation.py [--limit N] [--seconds S] [--out NAME]
-> results/NAME.json (default coordinate_validation) through nanosolve.provenance.write_record.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent


def scrambled(candidate, rng):
    """The candidate with its free Wyckoff coordinates redrawn (space group and sites kept)."""
    from nanosolve.solve.coordinates import candidate_phase

    phase = candidate_phase(candidate)
    if phase is None:
        return None
    p = rng.uniform(-1, 1, phase.pos_a.shape[2])
    out = phase.crystal.copy()
    out.frac_coords = np.mod(phase.pos_b + np.einsum("nip,p->ni", phase.pos_a, p), 1.0)
    return out


def top1_matches(cands, data, truth, search: bool, seconds: float, seed: int) -> tuple[bool, float]:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from nanosolve.solve.coordinates import search_candidates
    from nanosolve.solve.screen import screen_crystal

    ranked = [SimpleNamespace(crystal=c, screen=screen_crystal(c, data), coordinate_search=None) for c in cands]
    ranked.sort(key=lambda c: c.screen.r)
    if search:
        ranked, _ = search_candidates(ranked, data, 6, seed=seed, deadline=time.perf_counter() + seconds)
    matcher = StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10)
    best = ranked[0].screen.crystal
    return bool(matcher.fit(best.to_pymatgen(), truth.to_pymatgen())), float(ranked[0].screen.r)


def main(argv=None):
    import torch
    from screen_validation import measured_from, perturbed, prototype_cases

    from nanosolve.provenance import write_record
    from nanosolve.scattering.pattern import Pattern
    from nanosolve.solve.coordinates import candidate_phase
    from nanosolve.solve.screen import prepare_screen

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="coordinate_validation")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    cases = prototype_cases(keep=lambda proto: candidate_phase(proto) is not None)
    order = rng.permutation(len(cases))[:args.limit]
    prepared = []
    for i in order:
        label, proto, cands = cases[i]
        truth = perturbed(proto, rng)
        own = [scrambled(c, rng) if c.properties.get("prototype") == label else c for c in cands]
        pattern = measured_from(truth, rng)
        shuffled = Pattern(pattern.x, rng.permutation(pattern.y), x_unit="tth", kind="xrd", wavelength=pattern.wavelength)
        prepared.append((label, truth, [c for c in own if c is not None], prepare_screen(pattern),
                         prepare_screen(shuffled)))
    rows = []
    for label, truth, cands, data, shuffled in prepared:
        t0 = time.perf_counter()
        row = {"prototype": label, "candidates": len(cands)}
        row["screen_match"], row["screen_r"] = top1_matches(cands, data, truth, False, args.seconds, args.seed)
        row["search_match"], row["search_r"] = top1_matches(cands, data, truth, True, args.seconds, args.seed)
        row["control_match"], row["control_r"] = top1_matches(cands, shuffled, truth, True, args.seconds, args.seed)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(row, flush=True)
    summary = {"n": len(rows), "seconds_per_search": args.seconds}
    for key in ("screen", "search", "control"):
        summary[f"{key}_top1"] = int(sum(r[f"{key}_match"] for r in rows))
    print(summary)
    write_record(HERE / "results" / f"{args.out}.json", {"rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
