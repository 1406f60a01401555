"""Benchmark evaluation of PXRDNet solves on simulated patterns of held-out crystals.

For each test crystal the input is its simulated nano-broadened pattern and its cell formula.
Each method (``pxrdnet``: latent optimisation; ``cdvae-search``: prior samples; ``random``: random
coordinates) makes K candidates with the formula forced, which are ranked **blind** by their fit
to the input (:func:`nanosolve.solve.pxrd.rank_candidates`). Only then are the ranked candidates
compared with the truth:

* R_wp² of the paper (:func:`nanosolve.solve.pxrd_refine.paper_rwp2`: 8,192 points, Gaussian
  σ = 0.040784 Å⁻¹, no nano-broadening), best of the 10 best-ranked candidates (as the paper
  reports) and of the top-1 (blind);
* StructureMatcher match (stol 0.5, angle_tol 10°, ltol 0.3) of the top-1 and of any of the top-10;
* R_wp of the top-1 against the input (weighted profile R on the model grid, optimal scale).

With ``refine`` > 0 the best ``refine`` candidates of each list are then refined against the input
(:func:`nanosolve.solve.pxrd.refine_candidates`, what ``solve`` does) and re-ranked by the refined
fit; every metric is reported for the refined ranking and, with the suffix ``_raw``, for the
decoded candidates before refinement.

The shuffled-pattern control solves every crystal from another test crystal's pattern (a
derangement) with its own formula and scores against its own truth: a method that uses the
pattern must do clearly worse there. Everything is batched over crystals for speed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from nanosolve.datasets.splits import derangement  # control[i] = index whose pattern crystal i is solved from
from nanosolve.solve.pxrd import (
    METHODS,
    extend_ranking,
    generate_candidate_lists,
    profile_r,
    prototype_crystals,
    rank_candidates,
    refine_candidates,
)

SCORES = ("rwp2_best10", "rwp2_top1", "match_top1", "match_top10", "rwp_input_top1", "r_fit_top1")


def _score(ranked, truth, y, mask, top: int = 10) -> dict:
    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.solve.pxrd_refine import paper_rwp2, rwp

    rw2, matched = [], []
    for c in ranked[:top]:
        try:
            rw2.append(paper_rwp2(truth, c.crystal))
        except Exception:  # a degenerate candidate cell cannot be simulated: worst score
            rw2.append(float("inf"))
        matched.append(match_and_rmse(c.crystal, truth)[0])
    best = ranked[0]
    return {"rwp2_top1": rw2[0], "rwp2_best10": float(min(rw2)), "match_top1": bool(matched[0]),
            "match_top10": bool(any(matched)), "r_fit_top1": best.score,  # the ranking key: refined R if refined
            "rwp_input_top1": rwp(y, best.scale * np.asarray(best.y_calc), mask=mask)}


def evaluate(model, crystals: Sequence, patterns: np.ndarray, methods: Sequence[str] = METHODS, k: int = 32,
             steps: int | None = None, n_step_each: int | None = None, seed: int = 0, control: bool = True,
             systems: Sequence[str] | None = None, progress=None, refine: int = 0, n_restarts: int = 2,
             refine_positions: bool = False, distinct: bool = False, prototypes: str | None = None,
             symmetrize: bool = False) -> dict:
    """Records (one per crystal × method × input kind) and seconds per method; see module docstring.

    ``crystals``: the test truths; ``patterns`` [C, 512] their simulated inputs; ``systems``: crystal
    system per crystal for the breakdown; ``refine``: candidates refined per list (``n_restarts``
    starts each; ``refine_positions``: also fractional coordinates, as ``solve --positions``;
    ``distinct``: the top 10 are structurally distinct, :func:`nanosolve.solve.pxrd.distinct_first`;
    ``prototypes``: None, ``"all"`` — the formula's isotypic AFLOW-prototype substitutions join every
    ranking, as ``solve --prototypes`` — or ``"unseen"`` — the same without any that StructureMatcher
    matches to the truth, so the truth's own structure type is never offered: the truth is read only
    to remove candidates, before the blind ranking); ``symmetrize``: the symmetrised variants of the best
    model candidates join every ranking, as ``solve --symmetrize``)."""
    from nanosolve.models.cdvae.evaluate import match_and_rmse

    if prototypes not in (None, "all", "unseen"):
        raise ValueError(f"prototypes must be None, 'all' or 'unseen', got {prototypes!r}")
    cfg = model.cfg
    n_step_each = cfg.solve_n_step_each if n_step_each is None else n_step_each
    types_list = [sorted(c.species, key=lambda s: s) for c in crystals]
    ys = np.asarray(patterns, dtype=np.float32)
    masks = np.ones_like(ys, dtype=bool)
    shuf = derangement(len(crystals), seed) if control else None
    # built (and, for 'unseen', matched against the truth) once per crystal; refinement never edits them
    offered = [prototype_crystals(types, cfg.max_atoms, (lambda c, ref=truth: bool(match_and_rmse(c, ref)[0]))
                                  if prototypes == "unseen" else None)
               for types, truth in zip(types_list, crystals)] if prototypes else None
    records, seconds = [], {}
    for method in methods:
        t0 = time.perf_counter()
        kinds = [("input", ys)] + ([("shuffled", ys[shuf])] if control else [])
        cands_by_kind = {}
        for kind, inp in kinds:
            if kind == "shuffled" and method != "pxrdnet":
                cands_by_kind[kind] = cands_by_kind["input"]  # candidates do not depend on the pattern
            else:
                cands_by_kind[kind] = generate_candidate_lists(model, inp, masks, types_list, method, k, steps,
                                                               n_step_each, seed)[0]
            for i, truth in enumerate(crystals):
                ranked = rank_candidates(cands_by_kind[kind][i], inp[i], masks[i], cfg.size, cfg.size_model, method)
                ranked = extend_ranking(ranked, inp[i], masks[i], cfg.size, cfg.size_model,
                                        offered[i] if offered else None, symmetrize,
                                        max(refine, 10) if distinct else None)
                rec = {"index": i, "formula": truth.formula, "method": method, "input": kind,
                       "system": None if systems is None else systems[i], **_score(ranked, truth, inp[i], masks[i])}
                if refine:
                    rec.update({f"{key}_raw": rec[key] for key in SCORES})
                    ranked = refine_candidates(ranked, inp[i], masks[i], cfg.size, top=refine, seed=seed,
                                               n_restarts=n_restarts, refine_positions=refine_positions)
                    rec.update(_score(ranked, truth, inp[i], masks[i]))
                records.append(rec)
                if progress is not None:
                    progress(method, kind, i + 1, len(crystals))
        seconds[method] = time.perf_counter() - t0
    return {"records": records, "seconds": seconds, "k": k, "steps": cfg.opt_steps if steps is None else steps,
            "n_step_each": n_step_each, "refine": int(refine), "n_restarts": int(n_restarts),
            "refine_positions": bool(refine_positions), "distinct": bool(distinct), "prototypes": prototypes,
            "symmetrize": bool(symmetrize)}


def aggregate(records: Sequence[dict], by: str | None = None) -> dict:
    """Mean metrics per (method, input) — and per ``by`` value (e.g. 'system') when given."""
    keys = tuple(key for key in SCORES + tuple(f"{key}_raw" for key in SCORES) if records and key in records[0])
    groups: dict = {}
    for r in records:
        g = (r["method"], r["input"]) + ((r[by],) if by else ())
        groups.setdefault(g, []).append(r)
    out = {}
    for g, rows in groups.items():
        vals = {key: float(np.nanmean([np.nan if not np.isfinite(float(x[key])) else float(x[key]) for x in rows]))
                for key in keys}
        for key in ("rwp2_best10", "rwp2_top1"):
            vals[f"{key}_median"] = float(np.nanmedian([x[key] for x in rows]))
        vals["n"] = len(rows)
        out["/".join(map(str, g))] = vals
    return out


__all__ = ["evaluate", "aggregate", "derangement", "profile_r"]
