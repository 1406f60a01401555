"""Validation of the order of the Rietveld fits (:mod:`nanosolve.solve.parsimony`) on simulated patterns.

For AFLOW prototypes of 2-4 elements and at most 12 atoms (``screen_validation.prototype_cases``), a
"high" truth (the prototype, lengths scaled 0.97-1.03) and a "low" one (pyxtal's ``subgroup_once``:
the same crystal in a translationengleiche subgroup, atoms moved by its eps = 0.1 and the lattice
mutated; kept when spglib finds the subgroup at 0.01 Å). Each is simulated the way measured data
are imperfect: pymatgen's XRDCalculator intensities, Caglioti-width pseudo-Voigt peaks with an
unmodelled low-angle shoulder (asymmetry, 12 % at -0.06°) and unmodelled texture (March–Dollase
r = 0.85 along z), a background and Poisson counts. On each pattern two candidates are Rietveld-refined
in their own space groups, started in the truth's cell: the high description, and a low one (more
free parameters; it contains the high structure). Correct: the candidate in the truth's space group
ranks first. Reported per rule, for high and low truths: R_wp alone, Hamilton's test at several α,
and "always the simpler" (the two extremes are the controls: each must fail one kind of truth).

Used to choose :data:`nanosolve.solve.parsimony.ALPHA`, never on measured patterns.

Usage: python benchmarks/powder_solve/parsimony_validation.py [--limit N] [--part I/K] [--out NAME]
-> results/NAME.json (default parsimony_validation) through nanosolve.provenance.write_record;
``--merge A B ...`` joins part records into one.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ALPHAS = (0.001, 0.01, 0.05, 0.2)
WL, TTH = 1.5406, np.arange(10.0, 100.0, 0.02)


def imperfect_pattern(structure, rng):
    """Pattern of a pymatgen Structure with unmodelled asymmetry and texture (see module docstring)."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    from nanosolve.scattering.pattern import Pattern

    peaks = XRDCalculator(wavelength=WL).get_pattern(structure, scaled=False, two_theta_range=(7, 103))
    rec = structure.lattice.reciprocal_lattice
    y = np.zeros_like(TTH)
    for t, inten, fam in zip(peaks.x, peaks.y, peaks.hkls):
        hkl = fam[0]["hkl"]
        g = rec.get_cartesian_coords([hkl[0], hkl[1], hkl[-1]])  # (h, k, i, l) of a hexagonal cell
        c2 = (g[2] / np.linalg.norm(g)) ** 2
        inten *= (0.85 ** 2 * c2 + (1 - c2) / 0.85) ** -1.5
        th = math.radians(t / 2)
        h = math.sqrt(0.004 * math.tan(th) ** 2 - 0.002 * math.tan(th) + 0.004)
        for shift, share in ((0.0, 0.88), (-0.06, 0.12)):
            dx = TTH - t - shift
            sg = h / 2.3548
            y += share * inten * (0.3 * 0.5 * h / (math.pi * (dx * dx + 0.25 * h * h))
                                  + 0.7 * np.exp(-0.5 * (dx / sg) ** 2) / (sg * math.sqrt(2 * math.pi)))
    mean = y / y.max() * 2e4 + 300 + 150 * np.exp(-TTH / 25)
    return Pattern(TTH.copy(), rng.poisson(mean).astype(float), kind="xrd", x_unit="tth", wavelength=WL)


def descriptions(proto, rng):
    """(truths, candidates, high group, low group) of one prototype, or None (see the module docstring):
    truths {'high', 'low'}; candidates {(truth, kind)} as a measured-profile fit would hand them over,
    in the truth's cell (the low candidate on the high truth is the high crystal in the subgroup, atoms
    0.03 Å off; on the low truth another draw of the low crystal, in its cell)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    from pyxtal import pyxtal

    x = pyxtal()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x.from_seed(proto.to_pymatgen())
            low = x.subgroup_once(eps=0.1, group_type="t", max_cell=1)
            h = low.group.number
            near = x.subgroup_once(eps=0.03, H=h, group_type="t", max_cell=1, mut_lat=False).to_pymatgen()
            other = x.subgroup_once(eps=0.1, H=h, group_type="t", max_cell=1, mut_lat=False).to_pymatgen()
        high, low = x.to_pymatgen(), low.to_pymatgen()
    except Exception:  # noqa: BLE001 - pyxtal finds no subgroup path for some prototypes
        return None
    if len(other) != len(low) or not np.allclose(other.lattice.abc, low.lattice.abc, rtol=0.15):
        return None  # not the same cell setting
    other = other.__class__(low.lattice, other.species, other.frac_coords)
    f = rng.uniform(0.97, 1.03)
    for s in (high, low, near, other):
        s.scale_lattice(s.volume * f ** 3)
    if any(SpacegroupAnalyzer(s, symprec=0.01).get_space_group_number() != h for s in (low, near, other)):
        return None  # distortion too small for spglib at 0.01 Å: not a different description
    return ({"high": high, "low": low}, {("high", "high"): high, ("high", "low"): near, ("low", "high"): high,
                                         ("low", "low"): other}, x.group.number, h)


def one_case(label, proto, rng):
    from nanosolve.solve.rietveld import TIGHT_SYMPREC, rietveld_refine

    d = descriptions(proto, rng)
    if d is None:
        return None
    truths, cands, g_hi, g_lo = d
    rows = []
    for truth_kind, truth in truths.items():
        pattern = imperfect_pattern(truth, rng)
        fits = {}
        for kind in ("high", "low"):
            try:
                fits[kind] = rietveld_refine(cands[truth_kind, kind], pattern, symprec=TIGHT_SYMPREC, steps=30,
                                             time_limit=60)
            except Exception as exc:  # noqa: BLE001 - recorded, the case is skipped
                return [{"prototype": label, "error": f"{type(exc).__name__}: {exc}"}]
        rows.append({"prototype": label, "truth": truth_kind, "group_high": g_hi, "group_low": g_lo,
                     **{f"{k}_{q}": v for k, f in fits.items() for q, v in
                        (("rwp", f.rwp), ("n_params", f.n_params), ("n_reflections", f.params["n_reflections"]),
                         ("n_intensity_params", f.params["n_intensity_params"]),
                         ("group", f.params["phases"][0]["spacegroup_number"]))}})
    return rows


def first_choice(row, alpha) -> str:
    """'high' or 'low': the candidate ranked first under a rule (alpha None: R_wp; 'simpler': fewer params)."""
    from nanosolve.solve.parsimony import Fit, parsimonious_order

    kinds = ("high", "low")
    if alpha == "simpler":
        return min(kinds, key=lambda k: (row[f"{k}_n_params"], row[f"{k}_rwp"]))
    if alpha is None:
        return min(kinds, key=lambda k: row[f"{k}_rwp"])
    fits = [Fit(row[f"{k}_rwp"], row[f"{k}_n_params"], row[f"{k}_n_reflections"] - row[f"{k}_n_intensity_params"])
            for k in kinds]
    return kinds[parsimonious_order(fits, alpha)[0]]


def summarise(rows) -> dict:
    ok = [r for r in rows if "error" not in r and r["high_group"] == r["group_high"] and r["low_group"] == r["group_low"]]
    out = {"n_high": sum(r["truth"] == "high" for r in ok), "n_low": sum(r["truth"] == "low" for r in ok),
           "n_skipped": len(rows) - len(ok)}
    for name, alpha in [("rwp_only", None), *((f"hamilton_{a}", a) for a in ALPHAS), ("always_simpler", "simpler")]:
        right = {t: sum(first_choice(r, alpha) == t for r in ok if r["truth"] == t) for t in ("high", "low")}
        out[name] = {**right, "total": right["high"] + right["low"]}
    return out


def main(argv=None):
    from screen_validation import prototype_cases

    from nanosolve.provenance import write_record

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", default="0/1", help="I/K: every K-th case from the I-th (parallel runs)")
    ap.add_argument("--out", default="parsimony_validation")
    ap.add_argument("--merge", nargs="*", help="part records to join (nothing is run)")
    args = ap.parse_args(argv)
    if args.merge:
        rows = [r for p in args.merge for r in json.loads(Path(p).read_text())["rows"]]
    else:
        import torch

        torch.set_num_threads(1)
        i_part, k_part = map(int, args.part.split("/"))
        rng = np.random.default_rng(args.seed)
        cases = prototype_cases(lambda p: len(p) <= 12)
        order = rng.permutation(len(cases))[:args.limit]
        rows = []
        for n, i in enumerate(order):
            if n % k_part != i_part:
                continue
            t0 = time.perf_counter()
            label, proto, _ = cases[i]
            got = one_case(label, proto, np.random.default_rng([args.seed, int(i)]))
            if got:
                for r in got:
                    r["seconds"] = round(time.perf_counter() - t0, 1)
                rows += got
                print(got, flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    write_record(HERE / "results" / f"{args.out}.json", {"rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
