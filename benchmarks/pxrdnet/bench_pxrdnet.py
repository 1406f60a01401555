"""Benchmark: PXRDNet vs CDVAE-Search vs random coordinates on held-out crystals, plus the 15
experimental patterns of the PXRDNet paper and the time of one default solve.

The run directory is one written by ``nanosolve train pxrdnet`` (its composition-grouped split,
crystals and cached patterns are reused: no test composition was seen in training). On
``--n`` test crystals (a seeded random subset of the test part) each method makes ``--k``
candidates with the formula forced, ranked blind by fit to the input; the metrics and the
shuffled-pattern control are described in :mod:`nanosolve.solve.pxrd_eval`. Paper (PXRDNet,
MP-20, 10 Å): best-of-10 R_wp² 0.325 (PXRDNet) vs 0.647 (CDVAE-Search).

Experimental: every ``*.rtv.combined.cif`` in ``../shared/data/pxrdnet_experimental`` is solved
with its refined structure's cell formula (the truth is used only to score): R_wp of the top-1
against the measured profile before and after refinement (lattice, width, zero, background; each
tied length also tried on its own, ``pxrd_refine.refine_lower_symmetry``).

Usage:
    python benchmarks/pxrdnet/bench_pxrdnet.py --run RUN [--n 200] [--k 32] [--steps 300] [--refine 3] [--skip exp|sim|timing]
    # two processes, then one table:
    python benchmarks/pxrdnet/bench_pxrdnet.py --run RUN --methods pxrdnet --skip exp timing --out A.json
    python benchmarks/pxrdnet/bench_pxrdnet.py --run RUN --methods cdvae-search random --skip exp timing --out B.json
    python benchmarks/pxrdnet/bench_pxrdnet.py --run RUN --merge A.json B.json --skip exp timing
    # another model on RUN's test crystals that neither model's run (OTHER) trained or validated on:
    python benchmarks/pxrdnet/bench_pxrdnet.py --run RUN --model MODEL_DIR --unseen-by OTHER --skip exp timing
Prints markdown tables and writes benchmarks/pxrdnet/results/pxrdnet.json (+ PNG fits in benchmarks/pxrdnet/results/plots_experimental/).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nanosolve.models.pxrdnet.sample import cell_formula
from nanosolve.paths import shared_data_dir
from nanosolve.provenance import write_record
from nanosolve.solve.pxrd import METHODS

HERE = Path(__file__).resolve().parent
EXP = shared_data_dir() / "pxrdnet_experimental"
PAPER = {"pxrdnet": {"rwp2_best10": 0.325}, "cdvae-search": {"rwp2_best10": 0.647}}


def unseen_by(run: Path, test: np.ndarray, others: list[Path]) -> np.ndarray:
    """The rows of ``test`` (indices into RUN's crystals) that none of the ``others`` (run directories
    of other models) trained or validated on: reduced formula outside their train and val parts,
    every element in their vocabulary. Two models trained on different tables can then be compared
    on crystals that are new to both."""
    from pymatgen.core import Composition

    listed = json.loads((run / "crystals.json").read_text())
    seen, known = set(), None
    for d in others:
        split = json.loads((d / "split.json").read_text())
        formulas = [r["formula"] for r in json.loads((d / "crystals.json").read_text())]
        seen |= {Composition(formulas[i]).reduced_formula for part in ("train", "val") for i in split[part]}
        vocab = set(json.loads((d / "config.json").read_text())["extra"]["elements"])
        known = vocab if known is None else known & vocab
    keep = []
    for i in test:
        comp = Composition(listed[i]["formula"])
        if comp.reduced_formula not in seen and {str(e) for e in comp.elements} <= known:
            keep.append(i)
    return np.asarray(keep, dtype=test.dtype)


def draw(test: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The seeded draw of ``n`` of the ``test`` indices (sorted), as every table of this benchmark made it."""
    return np.sort(np.random.default_rng(seed).choice(test, min(n, len(test)), replace=False))


def outside_draws(test: np.ndarray, draws: list[tuple[int, int]]) -> np.ndarray:
    """``test`` without the indices of the earlier ``draws`` ((seed, n) pairs, each :func:`draw` of
    the same ``test``): a fresh test set that holds nothing an earlier table was tuned or timed on."""
    used = set()
    for seed, n in draws:
        used |= set(draw(test, n, seed).tolist())
    return np.asarray([i for i in test if i not in used], dtype=test.dtype)


def load_test(run: Path, n: int, seed: int, unseen: list[Path] | None = None, every: int = 1,
              exclude: list[tuple[int, int]] | None = None):
    """(crystals, patterns, crystal systems, indices) of ``n`` test crystals of RUN drawn with
    ``seed`` (only those ``unseen`` by other runs, see :func:`unseen_by`), then every ``every``-th of
    the draw: a reproducible subset of the same draw, for ablations. ``exclude``: (seed, n) pairs of
    earlier draws (made as this function makes them, without ``unseen``) whose crystals are left out
    before drawing, so that a test draw never holds a crystal that an earlier one tuned on."""
    from nanosolve.models.pxrdnet.data import training_table

    cfg = json.loads((run / "config.json").read_text())
    ex = cfg["extra"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = training_table(ex["data"], ex["prototypes"], cfg["max_atoms"], ex["train_seed"], ex["max_per_source"])
    listed = json.loads((run / "crystals.json").read_text())
    if [r["id"] for r in listed] != table.ids:
        raise SystemExit(f"{run}: the rebuilt crystal table does not match crystals.json")
    patterns = np.load(run / "patterns.npy")
    test = np.asarray(json.loads((run / "split.json").read_text())["test"])
    if exclude:
        test = outside_draws(test, exclude)
        print(f"  {len(test)} test crystals outside the earlier draws {exclude}", flush=True)
    if unseen:
        test = unseen_by(run, test, unseen)
        if not len(test):
            raise SystemExit(f"{run}: every test crystal was trained or validated on by {', '.join(map(str, unseen))}")
        print(f"  {len(test)} test crystals unseen by {', '.join(map(str, unseen))}", flush=True)
    pick = draw(test, n, seed)[::every]
    return [table.crystals[i] for i in pick], patterns[pick], [listed[i]["crystal_system"] for i in pick], pick


def bench_simulated(run: Path, args) -> dict:
    from nanosolve.models.pxrdnet.train import load_model
    from nanosolve.solve.pxrd_eval import evaluate

    model, cfg = load_model(args.model or run)
    overrides = solve_overrides(args.set)
    for key, value in overrides.items():
        setattr(model.cfg, key, value)
    crystals, patterns, systems, pick = load_test(run, args.n, args.seed, args.unseen_by, args.every,
                                                  args.exclude_draw)
    t0 = time.perf_counter()
    last = {}

    def progress(method, kind, done, total):
        if done == total or time.perf_counter() - last.get("t", 0) > 60:
            last["t"] = time.perf_counter()
            print(f"  {method:12s} {kind:8s} {done}/{total}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    res = evaluate(model, crystals, patterns, methods=args.methods, k=args.k, steps=args.steps,
                   n_step_each=args.n_step_each, seed=args.seed, systems=systems, progress=progress,
                   refine=args.refine, n_restarts=args.n_restarts, refine_positions=args.positions,
                   distinct=args.distinct, prototypes=args.prototypes, symmetrize=args.symmetrize)
    return with_aggregates({"model": str(args.model or run), "overrides": overrides,
                            "unseen_by": [str(d) for d in args.unseen_by or []],
                            "excluded_draws": [list(d) for d in args.exclude_draw or []], "n": len(crystals),
                            "test_indices": pick.tolist(), "k": res["k"], "steps": res["steps"],
                            "n_step_each": res["n_step_each"], "refine": res["refine"],
                            "n_restarts": res["n_restarts"],
                            "refine_positions": res["refine_positions"], "distinct": res["distinct"],
                            "prototypes": res["prototypes"], "symmetrize": res["symmetrize"],
                            "seconds": res["seconds"],
                            "records": res["records"]},
                           run)


def solve_overrides(items: list[str] | None) -> dict:
    """``--set key=value`` for the solve settings of the model's config (``opt_*``, ``solve_*``)."""
    from nanosolve.cli.common import parse_overrides

    out = parse_overrides(items)
    bad = [k for k in out if not k.startswith(("opt_", "solve_"))]
    if bad:
        raise SystemExit(f"--set only changes solve settings (opt_*, solve_*), not {', '.join(bad)}")
    return out


def crystal_sources(run: Path, indices) -> list[str]:
    """Where each of RUN's crystals ``indices`` came from: the data folder of a CSV row (perov_5,
    carbon_24, ...) or 'AFLOW' for a prototype substitution."""
    ids = [r["id"] for r in json.loads((run / "crystals.json").read_text())]
    return [ids[i].split("/")[0] if "/" in ids[i] else "AFLOW" for i in indices]


def with_aggregates(sim: dict, run: Path) -> dict:
    """``sim`` with its means overall, per crystal system and per source (records of results
    written before sources were recorded get them from RUN's crystal list)."""
    from nanosolve.solve.pxrd_eval import aggregate

    records = sim["records"]
    if records and "source" not in records[0]:
        sources = crystal_sources(run, sim["test_indices"])
        for r in records:
            r["source"] = sources[r["index"]]
    return {**sim, "overall": aggregate(records), "by_system": aggregate(records, by="system"),
            "by_source": aggregate(records, by="source")}


def merge_simulated(parts: list[dict], run: Path) -> dict:
    """One simulated result from runs of the same crystals and settings that each ran some methods
    (e.g. in parallel processes)."""
    same = ("model", "overrides", "unseen_by", "excluded_draws", "n", "test_indices", "k", "steps", "n_step_each",
            "refine", "n_restarts", "refine_positions", "distinct", "prototypes", "symmetrize")
    for p in parts[1:]:
        diff = [key for key in same if p.get(key) != parts[0].get(key)]
        if diff:
            raise SystemExit(f"cannot merge runs that differ in {', '.join(diff)}")
    merged = {key: parts[0].get(key) for key in same}
    merged["seconds"] = {m: t for p in parts for m, t in p["seconds"].items()}
    merged["records"] = [r for p in parts for r in p["records"]]
    return with_aggregates(merged, run)


def paired(records: list[dict], a: tuple[str, str], b: tuple[str, str], key: str) -> dict | None:
    """Mean of ``key`` of (method, input) ``a`` minus ``b`` over the crystals both scored, with one
    standard error of that mean (paired by crystal)."""
    pick = lambda m, i: {r["index"]: float(r[key]) for r in records if (r["method"], r["input"]) == (m, i)}  # noqa: E731
    x, y = pick(*a), pick(*b)
    common = sorted(set(x) & set(y))
    if len(common) < 2:
        return None
    d = np.array([x[i] - y[i] for i in common])
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "n": len(d)}


#: the scores of a test table (pxrd_eval's per-crystal metrics)
TEST_SCORES = ("rwp2_best10", "rwp2_top1", "match_top1", "match_top10", "rwp_input_top1")


def seeds_summary(parts: list[dict]) -> dict:
    """One test table from result files of the same crystals and settings, one per training seed
    (each ran PXRDNet and possibly the baselines with its own model): per seed and method the mean
    scores on the input and on the shuffled control, PXRDNet's mean and range over the seeds, and
    paired differences (PXRDNet − each baseline of the same model; input − shuffled)."""
    sims = [p["simulated"] for p in parts]
    same = ("test_indices", "excluded_draws", "unseen_by", "k", "steps", "n_step_each", "refine", "n_restarts",
            "refine_positions", "distinct", "prototypes", "symmetrize")
    for sim in sims[1:]:
        diff = [key for key in same if sim.get(key) != sims[0].get(key)]
        if diff:
            raise SystemExit(f"test parts differ in {', '.join(diff)}: not the same test")
    keys = TEST_SCORES
    seeds = []
    for part, sim in zip(parts, sims):
        methods = {}
        for name, agg in sim["overall"].items():
            method, kind = name.split("/")
            methods.setdefault(method, {})[kind] = {k: agg[k] for k in keys + ("rwp2_best10_median",)}
        diffs = {f"pxrdnet - {m}": {k: paired(sim["records"], ("pxrdnet", "input"), (m, "input"), k) for k in keys}
                 for m in methods if m != "pxrdnet"}
        diffs["input - shuffled"] = {k: paired(sim["records"], ("pxrdnet", "input"), ("pxrdnet", "shuffled"), k)
                                     for k in keys}
        config = Path(sim["model"]) / "config.json"
        train_seed = json.loads(config.read_text())["extra"].get("train_seed") if config.is_file() else None
        seeds.append({"model": sim["model"], "train_seed": train_seed,
                      "provenance": part.get("provenance"), "methods": methods, "paired": diffs,
                      "by_source": {k: v for k, v in sim["by_source"].items() if k.startswith("pxrdnet/")}})
    per_seed = [s["methods"]["pxrdnet"] for s in seeds if "pxrdnet" in s["methods"]]
    over_seeds = {kind: {k: {"mean": float(np.mean([m[kind][k] for m in per_seed])),
                             "min": float(np.min([m[kind][k] for m in per_seed])),
                             "max": float(np.max([m[kind][k] for m in per_seed]))} for k in keys}
                  for kind in ("input", "shuffled") if all(kind in m for m in per_seed)}
    return {"settings": {k: sims[0].get(k) for k in same}, "n": sims[0]["n"], "seeds": seeds,
            "pxrdnet_over_seeds": over_seeds}


def seeds_table_md(t: dict) -> str:
    """The test rows as markdown: one line per model (training seed) and method, control in brackets."""
    keys = TEST_SCORES
    lines = [f"Test crystals: n = {t['n']}; shuffled-pattern control in brackets.", "",
             "| model | method | best-of-10 R_wp² ↓ | median | top-1 R_wp² (blind) ↓ | match top-1 | match top-10 | "
             "R_wp vs input (top-1) |", "|---|---|---|---|---|---|---|---|"]
    for s in t["seeds"]:
        for m, kinds in s["methods"].items():
            a, c = kinds["input"], kinds.get("shuffled")
            cells = [f"{a[k]:.3f} ({c[k]:.3f})" if c else f"{a[k]:.3f}" for k in keys]
            lines.append(f"| {Path(s['model']).name} (seed {s['train_seed']}) | {m} | {cells[0]} | "
                         f"{a['rwp2_best10_median']:.3f} | {' | '.join(cells[1:])} |")
    o = t["pxrdnet_over_seeds"]
    if "input" in o:
        rng = lambda kind, k: f"{o[kind][k]['mean']:.3f} [{o[kind][k]['min']:.3f}–{o[kind][k]['max']:.3f}]"  # noqa: E731
        control = f" ({o['shuffled'][keys[0]]['mean']:.3f})" if "shuffled" in o else ""
        lines.append(f"| mean of {len(t['seeds'])} seeds [range] | pxrdnet | {rng('input', keys[0])}{control} | – | "
                     + " | ".join(rng("input", k) for k in keys[1:]) + " |")
    lines += ["", "| model | paired difference | best-of-10 R_wp² | top-1 R_wp² | match top-1 | match top-10 |",
              "|---|---|---|---|---|---|"]
    for s in t["seeds"]:
        for name, d in s["paired"].items():
            f = lambda v: "–" if v is None else f"{v['mean']:+.3f} ± {v['se']:.3f}"  # noqa: E731
            lines.append(f"| {Path(s['model']).name} | {name} | {f(d['rwp2_best10'])} | {f(d['rwp2_top1'])} | "
                         f"{f(d['match_top1'])} | {f(d['match_top10'])} |")
    return "\n".join(lines)


def bench_timing(run: Path, args) -> dict:
    """Wall time of ``solve_pxrd`` with the default settings (K 100, the model's steps, the best
    ``REFINE_TOP`` refined)."""
    from nanosolve.scattering.nano_pxrd import model_grid
    from nanosolve.scattering.pattern import Pattern
    from nanosolve.solve.pxrd import solve_pxrd

    crystals, patterns, _, _ = load_test(run, 3, args.seed + 1)
    times = []
    for c, y in zip(crystals, patterns):
        t0 = time.perf_counter()
        res = solve_pxrd(Pattern(model_grid(), y, kind="xrd", x_unit="q"), cell_formula(c), args.model or run,
                         broaden=False)
        times.append(time.perf_counter() - t0)
    s = res.summary
    return {"seconds": times, "mean": float(np.mean(times)), "threads": torch.get_num_threads(), "k": s["k"],
            "steps": s["steps"], "n_step_each": s["n_step_each"], "refined": s["refined"],
            "refine_positions": s["refine_positions"], "prototypes": s["prototypes"], "symmetrize": s["symmetrize"]}


def bench_experimental(run: Path, args, out_dir: Path) -> list[dict]:
    from nanosolve.scattering.readers import read_patterns
    from nanosolve.solve.pxrd import solve_pxrd
    from nanosolve.solve.pxrd_refine import plot_pxrd_fit, refine_lower_symmetry
    from nanosolve.structures.io import read_cif

    rows = []
    for f in sorted(EXP.glob("*.rtv.combined.cif")):
        t0 = time.perf_counter()
        row = {"file": f.name}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pattern = read_patterns(f)[0]
                truths = read_cif(f)
            truth = truths[0] if isinstance(truths, list) else truths
            formula = cell_formula(truth)
            row.update(formula=formula, n_atoms=len(truth), wavelength=pattern.wavelength,
                       tth=[float(pattern.x.min()), float(pattern.x.max())])
            res = solve_pxrd(pattern, formula, args.model or run, k=args.k, steps=args.steps,
                             n_step_each=args.n_step_each, top=args.refine, seed=args.seed, distinct=args.distinct,
                             prototypes=bool(args.prototypes), symmetrize=args.symmetrize,
                             profile_top=args.profile_top)
            best = res.ranked[0]
            # the solve's own measured-profile fit of its top-1 (--profile-top 0: fitted here, same call)
            fit = best.profile or refine_lower_symmetry(best.crystal, pattern=pattern, n_restarts=4, seed=args.seed)
            plot_pxrd_fit(fit, out_dir / f"{f.name.split('.')[0]}.png", title=f"{f.name}: top-1 candidate refined")
            from nanosolve.models.cdvae.evaluate import match_and_rmse

            row.update(r_model_grid=best.score, rwp_before=fit.rwp_before, rwp_after=fit.rwp_after,
                       match_refined=match_and_rmse(fit.crystal, truth)[0],
                       split_length=fit.params["split_length"], cell_pred=best.crystal.cell_params.tolist(),
                       cell_refined=fit.crystal.cell_params.tolist(),
                       cell_true=truth.cell_params.tolist(), source=best.source,
                       model_grid_rank=[c is best for c in sorted(res.ranked[:max(args.profile_top, 1)],
                                                                  key=lambda c: c.score)].index(True),
                       profile_fits=[{"source": c.source, "score": c.score, "rwp_after": c.profile.rwp_after,
                                      "split_length": c.profile.params["split_length"],
                                      "match": match_and_rmse(c.final_crystal, truth)[0]}
                                     for c in sorted(res.ranked[:args.profile_top], key=lambda c: c.score)],
                       match_top10=any(match_and_rmse(c.final_crystal, truth)[0] for c in res.ranked[:10]),
                       status="ok")
        except Exception as err:  # noqa: BLE001 - one bad file must not end the table; the reason is reported
            row.update(status=f"error: {type(err).__name__}: {err}")
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"  {row['file']:45s} {row.get('status')}  {row.get('rwp_before', float('nan')):.3f} -> "
              f"{row.get('rwp_after', float('nan')):.3f}  ({row['seconds']} s)", flush=True)
        rows.append(row)
    return rows


def table_md(r: dict) -> str:
    lines = []
    sim = r.get("simulated")
    if sim:
        refined = bool(sim.get("refine"))
        lines += [f"Simulated test crystals: n = {sim['n']}, K = {sim['k']}, {sim['steps']} optimisation steps, "
                  f"{sim['n_step_each']} Langevin steps per level"
                  + (f", the best {sim['refine']} of each ranking refined against the input"
                     + (" (positions too)" if sim.get("refine_positions") else "") if refined else "")
                  + (", structurally distinct" if sim.get("distinct") else "")
                  + (f", isotypic prototypes ({sim['prototypes']}) ranked too" if sim.get("prototypes") else "")
                  + "; shuffled-pattern control in brackets.", "",
                  "| method | best-of-10 R_wp² ↓ | median | top-1 R_wp² (blind) ↓ | match top-1 | match top-10 | "
                  "R_wp vs input (top-1) | " + ("best-of-10 / top-1 R_wp² unrefined | " if refined else "")
                  + "paper best-of-10 |", "|---|---|---|---|---|---|---|---|" + ("---|" if refined else "")]
        ov = sim["overall"]
        for m in ("pxrdnet", "cdvae-search", "random"):
            a, c = ov.get(f"{m}/input"), ov.get(f"{m}/shuffled")
            if not a:
                continue
            f = lambda k, p=3: f"{a[k]:.{p}f} ({c[k]:.{p}f})" if c else f"{a[k]:.{p}f}"  # noqa: E731
            raw = f"{f('rwp2_best10_raw')} / {f('rwp2_top1_raw')} | " if refined else ""
            lines.append(f"| {m} | {f('rwp2_best10')} | {a['rwp2_best10_median']:.3f} | {f('rwp2_top1')} | "
                         f"{f('match_top1')} | {f('match_top10')} | {f('rwp_input_top1')} | {raw}"
                         f"{PAPER.get(m, {}).get('rwp2_best10', '–')} |")
        for title, part in (("crystal system", "by_system"), ("source", "by_source")):
            groups = sim.get(part, {})
            lines += ["", f"| {title} | n | PXRDNet best-of-10 R_wp² | CDVAE-Search | random | PXRDNet shuffled |",
                      "|---|---|---|---|---|---|"]
            for s in sorted({k.split("/")[2] for k in groups}):
                g = lambda m, i="input": groups.get(f"{m}/{i}/{s}", {}).get("rwp2_best10", float("nan"))  # noqa
                n = max(v.get("n", 0) for k, v in groups.items() if k.endswith(f"/input/{s}"))
                lines.append(f"| {s} | {n} | {g('pxrdnet'):.3f} | {g('cdvae-search'):.3f} | {g('random'):.3f} | "
                             f"{g('pxrdnet', 'shuffled'):.3f} |")
    if r.get("timing"):
        t = r["timing"]
        lines += ["", f"Default solve (K = {t.get('k', 100)}, {t.get('steps', 1000)} steps, {t.get('n_step_each', 10)} "
                      f"Langevin steps per level, top-{t.get('refined', 3)} refined): {t['mean']:.1f} s per pattern "
                      f"({', '.join(f'{x:.1f}' for x in t['seconds'])} s; {t['threads']} torch threads)."]
    if r.get("experimental"):
        lines += ["", "| experimental file | formula (cell) | λ (Å) | R (model grid) | R_wp before | R_wp after | "
                      "matched | s |", "|---|---|---|---|---|---|---|---|"]
        for e in r["experimental"]:
            if e["status"] != "ok":
                lines.append(f"| {e['file']} | {e.get('formula', '')} | | {e['status']} | | | | {e['seconds']} |")
                continue
            lines.append(f"| {e['file']} | {e['formula']} | {e['wavelength']:.5g} | {e['r_model_grid']:.3f} | "
                         f"{e['rwp_before']:.3f} | {e['rwp_after']:.3f} | {'yes' if e['match_refined'] else 'no'} | "
                         f"{e['seconds']} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None,
                    help="model directory (best.pt + config.json) to evaluate instead of RUN's own; RUN still "
                         "gives the test crystals")
    ap.add_argument("--unseen-by", type=Path, nargs="+", default=None,
                    help="only test crystals whose composition these other run directories never trained or "
                         "validated on (compare models trained on different tables)")
    ap.add_argument("--exclude-draw", type=_draw, nargs="+", default=None, metavar="SEED:N",
                    help="leave out the crystals of earlier draws (the --seed SEED --n N draw of the test part), "
                         "e.g. 0:200 for the crystals the solve's defaults were chosen on")
    ap.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                    help="override a solve setting of the model's config for the simulated benchmark, e.g. "
                         "opt_beta=0.002 (repeatable)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--every", type=int, default=1, help="score every N-th of the --n drawn crystals (ablations)")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n-step-each", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refine", type=int, default=3, help="candidates of each ranking refined against the input "
                                                           "(0: score the decoded candidates only)")
    ap.add_argument("--positions", action="store_true",
                    help="refinement also moves fractional coordinates, as a solve does by default (off here so "
                         "that the earlier tables keep their protocol)")
    ap.add_argument("--distinct", action="store_true",
                    help="the top 10 of each ranking are structurally distinct, as 'solve --distinct' does "
                         "(nanosolve.solve.pxrd.distinct_first)")
    ap.add_argument("--prototypes", choices=["all", "unseen"], default=None,
                    help="the formula's isotypic AFLOW prototypes join every ranking, as 'solve --prototypes' does; "
                         "'unseen' first removes any that match the truth (simulated crystals only: with either value "
                         "the experimental patterns get all of them; without the flag none, unlike solve's default)")
    ap.add_argument("--symmetrize", action="store_true",
                    help="symmetrised variants of the best model candidates join every ranking, as 'solve "
                         "--symmetrize' does (nanosolve.solve.pxrd.with_symmetrized; off here so that the earlier "
                         "tables keep their protocol)")
    ap.add_argument("--n-restarts", type=int, default=2, help="refinement starts per candidate")
    ap.add_argument("--profile-top", type=int, default=None,
                    help="measured patterns: the solve's best N refined against the pattern as measured and "
                         "re-ranked by R_wp (default: nanosolve.solve.pxrd.PROFILE_TOP)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="combine the 'simulated' parts of these result files (each ran some --methods) into --out")
    ap.add_argument("--test-summary", type=Path, nargs="+", default=None,
                    help="one test record (--out) from result files of the same test crystals, one per training "
                         "seed's model: per-seed rows, PXRDNet's mean and range over seeds, paired differences")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[], choices=["sim", "exp", "timing"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pxrdnet.json")
    args = ap.parse_args(argv)
    if args.profile_top is None:
        from nanosolve.solve.pxrd import PROFILE_TOP

        args.profile_top = PROFILE_TOP
    if args.test_summary:
        summary = seeds_summary([json.loads(p.read_text()) for p in args.test_summary])
        summary["parts"] = [str(p) for p in args.test_summary]
        _save(args.out, summary)
        print(seeds_table_md(summary))
        return
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.pop("machine", None)  # the machine is in the provenance stamp (write_record)
    results.update(run=str(args.run), threads=args.threads,
                   training=json.loads((args.run / "summary.json").read_text()) if (args.run / "summary.json").is_file()
                   else None)
    fig_dir = args.out.with_suffix("")
    fig_dir.mkdir(parents=True, exist_ok=True)
    if args.merge:
        results["simulated"] = merge_simulated([json.loads(p.read_text())["simulated"] for p in args.merge], args.run)
        _save(args.out, results)
    elif "sim" not in args.skip:
        results["simulated"] = bench_simulated(args.run, args)
        _save(args.out, results)
    if "timing" not in args.skip:
        results["timing"] = bench_timing(args.run, args)
        _save(args.out, results)
    if "exp" not in args.skip:
        results["experimental"] = bench_experimental(args.run, args, fig_dir)
        results["experimental_profile_top"] = args.profile_top
        _save(args.out, results)
    print(table_md(results))


def _draw(text: str) -> tuple[int, int]:
    seed, sep, n = text.partition(":")
    if not sep or not seed.isdigit() or not n.isdigit():
        raise argparse.ArgumentTypeError(f"expected SEED:N (two integers), got {text!r}")
    return int(seed), int(n)


def _save(path: Path, results: dict) -> None:
    write_record(path, results)


if __name__ == "__main__":
    main()
