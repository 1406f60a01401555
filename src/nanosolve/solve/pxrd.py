"""Crystal structure solution from a powder pattern + formula with PXRDNet.

Pipeline (Guo et al., with blind ranking): the pattern is put on the model's Q grid
(:func:`nanosolve.scattering.nano_pxrd.to_model_grid`: Q from its own wavelength, background
removed, broadened to the model's crystallite size, 512 points, max 1, mask of the measured
range); K latent codes are optimised against it and the formula
(:func:`nanosolve.models.pxrdnet.sample.optimize_latents`) — or drawn from the prior for the
CDVAE-Search baseline, or replaced by random coordinates —, decoded with the formula forced,
re-simulated with the same broadening and ranked by their fit to the input (R on the mask,
optimal scale), together with the formula's isotypic AFLOW-prototype substitutions unless
``prototypes`` is off (:data:`PROTOTYPES`) and with symmetrised variants of the best model
candidates unless ``symmetrize`` is off (:data:`SYMMETRIZE`). The best ``top`` (default
:data:`REFINE_TOP`) are refined (lattice within ±20 %,
scale, σ_Q, positions within ±0.05 unless turned off) against the input and re-ranked by the
refined fit. With sharp data the best :data:`PROFILE_TOP` are then refined against the pattern as
measured and re-ranked by that R_wp. Nothing here reads a reference structure: the ranking sees the candidates and the data only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal

if TYPE_CHECKING:
    from nanosolve.solve.pxrd_refine import PXRDFit

#: candidates a solve refines against the input: the paper keeps the 10 that fit best. On 50 held-out
#: crystals (K = 10, same candidates) refining all 10 instead of the best 3 lowered PXRDNet's
#: best-of-10 R_wp² 0.632 -> 0.487 and blind top-1 0.860 -> 0.800; a default solve (K = 100, positions
#: refined too) takes ~30 s on 2 cores (README, PXRDNet benchmark; benchmarks/pxrdnet/ablations.md, section 1).
REFINE_TOP = 10

#: the refinement also moves fractional coordinates (±0.05). On the same 50 crystals and candidates
#: (K = 10, the best 10 refined) it lowered PXRDNet's best-of-10 R_wp² 0.506 -> 0.377 (paired
#: −0.13 ± 0.03) and blind top-1 0.784 -> 0.675, for ~6 % more benchmark time; the shuffled-pattern
#: control did not improve (0.889 -> 0.913): the coordinates follow the input, not the model's prior.
#: benchmarks/pxrdnet/ablations.md, section 2.
REFINE_POSITIONS = True

#: refine (and write first) only structurally distinct candidates (:func:`distinct_first`). Off: on the
#: 50 crystals of REFINE_POSITIONS' table (K = 100, the best 10 refined with positions, same candidates)
#: it raised PXRDNet's best-of-10 R_wp² 0.308 -> 0.331 (paired +0.023 ± 0.015) and blind top-1
#: 0.551 -> 0.605 (CDVAE-Search best-of-10 +0.042 ± 0.024); match rates moved by ≤ 0.02. Copies of the
#: right structure, refined from their slightly different decodings, act as extra refinement starts.
DISTINCT = False

#: also rank the formula's isotypic AFLOW-prototype substitutions (:func:`prototype_crystals`) beside
#: the model's candidates. On the 15 measured patterns (K = 100, the best 10 refined) the top-1 matched
#: the refined structure for 4 instead of 1 (mean R_wp after refinement 0.564 -> 0.499). On 50 simulated
#: held-out crystals with every substitution that matches the truth removed (a structure type the
#: library lacks) best-of-10 R_wp² fell 0.308 -> 0.253 but the blind top-1 match rate fell too,
#: 0.50 -> 0.42 (-0.08 ± 0.04): a wrong known type can out-fit a right decoded candidate.
#: benchmarks/pxrdnet/ablations.md, section 6.
PROTOTYPES = True

#: also rank the orderings of two elements on one site of a prototype of the merged composition
#: (double perovskites, cryolites, layered Ruddlesden-Popper phases, silica-like AlPO4; the module
#: :mod:`nanosolve.structures.builders.orderings`): AFLOW's 288 types hold few of four or more elements.
#: benchmarks/powder_solve/README.md, "The ordered prototypes": top-1 7 -> 10 of the 15 measured patterns.
ORDERED_PROTOTYPES = True

#: the best SYMMETRIZE_TOP candidates of the model also compete as symmetrised variants
#: (:func:`with_symmetrized`): decoded crystals come out as P1 with every atom a little off its site, and
#: snapping them onto the space group spglib finds within 0.05–0.5 Å gives the refinement exact special
#: positions to start from. On 50 held-out crystals (solve defaults but no prototypes: K = 100, the best 10
#: refined with positions; the same decoded candidates with and without) PXRDNet's best-of-10 R_wp² went
#: 0.302 -> 0.269 (paired -0.033 ± 0.020) and blind top-1 0.462 -> 0.375 (-0.087 ± 0.062);
#: CDVAE-Search's 0.423 -> 0.369 (-0.054 ± 0.022) and 0.680 -> 0.584 (-0.096 ± 0.048). Top-1 match rates
#: held (0.50 -> 0.50, 0.38 -> 0.36); top-10 fell by 0.04 ± 0.03 and 0.02 ± 0.02 (variants take slots of
#: other structures). benchmarks/pxrdnet/ablations.md, section 7.
SYMMETRIZE = True
SYMMETRIZE_TOP = 20
SYMMETRIZE_TOLERANCES = (0.05, 0.1, 0.2, 0.3, 0.5)  # Å (spglib symprec), tightest first

#: with sharp (bulk) data, i.e. when the solve broadens the input to the model's crystallite size, the
#: best PROFILE_TOP candidates are also refined against the pattern as measured, on its own 2θ grid
#: (:func:`refine_on_profile`), re-ranked by that weighted-profile R_wp and written with the lattice of
#: that fit. On the 15 measured patterns (solve defaults otherwise) the top-1 matched the refined
#: structure for 4 instead of 3 (the model-grid top-1 of the same run, fitted to the profile alone) and its
#: mean R_wp fell 0.507 -> 0.475; the re-ranking changed 9 top-1s and lost no match. Each fit costs ~45 s
#: on one thread (README, PXRDNet benchmark, measured patterns).
PROFILE_TOP = 3
#: structure types whose free coordinates the solve searches after the screen (see
#: :mod:`nanosolve.solve.coordinates`; chosen on simulated patterns, benchmarks/powder_solve/coordinate_validation.py)
COORDINATE_SEARCH = 6

METHODS = ("pxrdnet", "cdvae-search", "random")


def profile_r(y, y_calc, mask=None) -> tuple[float, float]:
    """(R, s): R = sqrt(Σ m (y − s·c)² / Σ m y²) with the least-squares scale s ≥ 0 of ``y_calc``."""
    y, c = np.asarray(y, float), np.asarray(y_calc, float)
    m = np.ones_like(y) if mask is None else np.asarray(mask, float)
    cc = float((m * c * c).sum())
    s = max(float((m * y * c).sum()) / cc, 0.0) if cc > 0 else 0.0
    den = float((m * y * y).sum())
    if den <= 0:
        raise InputError("the pattern is zero everywhere inside its measured range")
    return float(np.sqrt((m * (y - s * c) ** 2).sum() / den)), s


@dataclass(eq=False)  # compared by identity: field-wise == on the pattern arrays has no single truth value
class Candidate:
    """One ranked candidate: the crystal, its re-simulated pattern on the model grid, the fit R
    before and after refinement, and where it came from (method, latent index, latent objective)."""

    crystal: Crystal
    y_calc: np.ndarray
    r: float
    scale: float
    method: str
    index: int
    latent_loss: float | None = None
    r_refined: float | None = None
    refine: dict = field(default_factory=dict)
    #: index of the better-fitting candidate this one matches (see :func:`distinct_first`)
    duplicate_of: int | None = None
    #: index of the candidate this one is the symmetrised variant of (see :func:`with_symmetrized`)
    symmetrized_from: int | None = None
    #: the fit against the pattern as measured (:func:`refine_on_profile`), when there was one
    profile: PXRDFit | None = field(default=None, repr=False)
    #: the sanity gate's verdict (:func:`nanosolve.solve.sanity.check_crystal`) on :attr:`final_crystal`,
    #: and the crystal it was made on (re-checked when a refinement replaces it)
    sanity: object = field(default=None, repr=False)
    sanity_of: object = field(default=None, repr=False)
    #: the Rietveld refinement (:func:`nanosolve.solve.rietveld.rietveld_candidates`), when there was one
    rietveld: object = field(default=None, repr=False)
    #: the screen against the pattern as measured (:class:`nanosolve.solve.screen.ScreenFit`), when there was one
    screen: object = field(default=None, repr=False)
    #: the search of its free coordinates (:class:`nanosolve.solve.coordinates.CoordinateSearch`), when there was one
    coordinate_search: object = field(default=None, repr=False)

    @property
    def source(self) -> str:
        """Where the candidate came from, for tables: the AFLOW label of a prototype, ``<method> sym
        <space group>`` for a symmetrised variant, else the method."""
        if self.method == "prototype":
            return str(self.crystal.properties.get("prototype", "prototype"))
        if self.method == "random-search":
            return f"random-search {self.crystal.properties.get('random_search', '')}".strip()
        if self.symmetrized_from is not None:
            return f"{self.method} sym {self.crystal.properties.get('space_group')}"
        return self.method

    @property
    def score(self) -> float:
        """The blind ranking key: the refined R when refined, else R."""
        return self.r if self.r_refined is None else self.r_refined

    @property
    def final_crystal(self) -> Crystal:
        """The structure a solve writes: refined against the measured profile when it was, else the
        candidate (refined on the model grid when it was)."""
        if self.rietveld is not None:
            return self.rietveld.crystal
        if self.profile is not None:
            return self.profile.crystal
        return self.crystal if self.screen is None else self.screen.crystal

    def summary(self) -> dict:
        c = self.final_crystal
        try:
            sym = c.symmetry(symprec=0.01)
            sg_symbol, sg_number = sym.symbol, int(sym.number)
        except Exception:  # noqa: BLE001 - spglib gives up on a degenerate cell
            sg_symbol, sg_number = None, None
        counts = list(c.composition.values())
        from functools import reduce
        from math import gcd

        g = reduce(gcd, [int(round(v)) for v in counts]) if counts else 1
        return {"formula": c.formula, "z": int(g), "n_atoms": len(c),
                "cell": [round(float(v), 5) for v in c.cell_params],
                "spacegroup": sg_symbol, "spacegroup_number": sg_number,
                "sanity": None if self.sanity is None else self.sanity.summary(),
                "r_model_grid": round(self.r, 5), "r_refined": None if self.r_refined is None else round(self.r_refined, 5),
                "score": round(self.score, 5), "method": self.method, "source": self.source, "index": self.index,
                "latent_index": (None if self.method == "prototype" or self.symmetrized_from is not None
                                 else self.index),
                "symmetrized_from": self.symmetrized_from, "space_group": c.properties.get("space_group"),
                "prototype": c.properties.get("prototype") if self.method == "prototype" else None,
                "latent_loss": None if self.latent_loss is None else round(float(self.latent_loss), 5),
                "duplicate_of": self.duplicate_of, "refinement": self.refine,
                "screen": None if self.screen is None else self.screen.summary(),
                "coordinate_search": None if self.coordinate_search is None else self.coordinate_search.summary(),
                "rwp_measured": None if self.profile is None else round(float(self.profile.rwp_after), 5),
                "measured_profile_refinement": None if self.profile is None else self.profile.summary()}


def generate_candidates(model, y, mask, types, method: str = "pxrdnet", k: int = 100, steps: int | None = None,
                        n_step_each: int | None = None, seed: int = 0) -> tuple[list[Crystal], np.ndarray | None]:
    """Candidate crystals (every one with exactly the formula ``types``) and, for latent methods,
    each code's final objective. ``method``: pxrdnet | cdvae-search | random (see module doc)."""
    lists, losses = generate_candidate_lists(model, np.asarray(y)[None], np.asarray(mask)[None], [types], method, k,
                                             steps, n_step_each, seed)
    return lists[0], losses[0]


def generate_candidate_lists(model, ys, masks, types_list, method: str = "pxrdnet", k: int = 100,
                             steps: int | None = None, n_step_each: int | None = None, seed: int = 0,
                             chunk: int = 64) -> tuple[list[list[Crystal]], list[np.ndarray | None]]:
    """:func:`generate_candidates` for C patterns ``ys`` / ``masks`` [C, P] with one formula each:
    ``chunk`` patterns share one latent optimisation and one decoding batch (the benchmark's
    throughput); returns C lists of ``k`` crystals and C per-code objectives (None for random)."""
    from nanosolve.models.cdvae.sample import decode
    from nanosolve.models.pxrdnet.sample import optimize_latents_batch, random_candidates

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    k = int(k)
    lists, losses = [], []
    for s in range(0, len(ys), chunk):
        tl = types_list[s:s + chunk]
        if method == "random":
            lists += [random_candidates(model, t, k, seed=seed + s + i) for i, t in enumerate(tl)]
            losses += [None] * len(tl)
            continue
        # CDVAE-Search: the same codes, drawn from the prior and decoded without optimisation
        fit = optimize_latents_batch(model, ys[s:s + chunk], masks[s:s + chunk], tl, k,
                                     steps=0 if method == "cdvae-search" else steps, seed=seed + s)
        crystals = decode(model, fit.z, atom_types=[list(t) for t in tl for _ in range(k)], n_step_each=n_step_each,
                          seed=seed + s, names=[f"{method}_{i:03d}" for _ in tl for i in range(k)], batch_size=512)
        lists += [crystals[i * k:(i + 1) * k] for i in range(len(tl))]
        losses += [np.asarray(fit.loss[i * k:(i + 1) * k]) for i in range(len(tl))]
    return lists, losses


def rank_candidates(crystals, y, mask, size: float, size_model: str = "pxrdnet", method: str = "pxrdnet",
                    latent_loss=None) -> list[Candidate]:
    """Re-simulate each crystal with the model's broadening (σ at the middle of the training
    range) and rank by R against ``y`` on ``mask`` (best first). Blind: only crystals and data."""
    from nanosolve.scattering.nano_pxrd import pxrdnet_pattern

    out = []
    for i, c in enumerate(crystals):
        try:
            yc = pxrdnet_pattern(c, size=size, size_model=size_model)
        except InputError:  # a degenerate decoded cell (e.g. collapsed lattice): worst possible fit
            yc = np.zeros_like(np.asarray(y, float))
        r, s = profile_r(y, yc, mask)
        out.append(Candidate(c, yc, r, s, method, i, None if latent_loss is None else float(latent_loss[i])))
    out.sort(key=lambda c: c.r)
    return out


def prototype_crystals(types, max_atoms: int = 20, exclude=None) -> list[Crystal]:
    """The formula's isotypic AFLOW-prototype substitutions
    (:func:`nanosolve.structures.builders.prototypes.isotypic_substitutions`, cells of at most
    ``max(max_atoms, len(types))`` atoms). ``exclude(crystal) -> bool`` drops some (the benchmark's
    unseen-structure-type protocol); a solve passes none."""
    from collections import Counter

    from nanosolve.structures.builders.prototypes import isotypic_substitutions

    crystals = isotypic_substitutions(Counter(types), max(int(max_atoms), len(types)))
    return crystals if exclude is None else [c for c in crystals if not exclude(c)]


def with_prototypes(ranked: list[Candidate], crystals, y, mask, size: float,
                    size_model: str = "pxrdnet") -> list[Candidate]:
    """``ranked`` merged with ``crystals`` (:func:`prototype_crystals`) ranked as candidates of method
    ``prototype`` (:func:`rank_candidates`; indices after the largest of ``ranked``), best fit first."""
    start = 1 + max((c.index for c in ranked), default=-1)
    extra = rank_candidates(crystals, y, mask, size, size_model, "prototype")
    for cand in extra:
        cand.index += start
    return sorted(ranked + extra, key=lambda c: c.r)


def symmetrized_variants(crystal: Crystal, tolerances=SYMMETRIZE_TOLERANCES) -> list[Crystal]:
    """``crystal`` snapped onto each space group that spglib finds at ``tolerances`` (Å, tightest
    first; :meth:`Crystal.symmetrized`), one variant per space group, kept only when its space-group
    number is above P-1's and above the one the crystal has within 0.01 Å (the numbers grow with the
    crystal system, so this keeps variants that gained symmetry; decoded candidates are P1)."""
    try:
        own = crystal.symmetry(symprec=0.01).number
    except Exception:  # noqa: BLE001 - spglib gives up on a degenerate decoded cell: nothing to snap
        return []
    out, seen = [], {1, 2, own}
    for tol in tolerances:
        try:
            variant = crystal.symmetrized(symprec=tol)
        except Exception:  # noqa: BLE001 - as above, at this tolerance
            continue
        number = variant.properties["space_group"]
        if number not in seen and number > own:
            seen.add(number)
            out.append(variant)
    return out


def with_symmetrized(ranked: list[Candidate], y, mask, size: float, size_model: str = "pxrdnet",
                     top: int = SYMMETRIZE_TOP, tolerances=SYMMETRIZE_TOLERANCES) -> list[Candidate]:
    """``ranked`` merged with the symmetrised variants (:func:`symmetrized_variants`) of its best ``top``
    model candidates (prototypes are symmetric already), each ranked by its own fit like any candidate,
    of the parent's method and with :attr:`Candidate.symmetrized_from` set; best fit first. Blind: the
    variants are made from the candidates alone (:data:`SYMMETRIZE`)."""
    start = 1 + max((c.index for c in ranked), default=-1)
    parents = [c for c in ranked if c.method != "prototype"][:top]
    extra = []
    for parent in parents:
        for cand in rank_candidates(symmetrized_variants(parent.crystal, tolerances), y, mask, size, size_model,
                                    parent.method):
            cand.index, cand.symmetrized_from = start + len(extra), parent.index
            extra.append(cand)
    return sorted(ranked + extra, key=lambda c: c.r)


def extend_ranking(ranked: list[Candidate], y, mask, size: float, size_model: str = "pxrdnet",
                   prototypes=None, symmetrize: bool = False, distinct_top: int | None = None) -> list[Candidate]:
    """The solve's ranking after the model's own candidates, shared by :func:`solve_pxrd` and the
    benchmark: ``prototypes`` (crystals from :func:`prototype_crystals`, or None) join it
    (:func:`with_prototypes`), then with ``symmetrize`` the symmetrised variants (:func:`with_symmetrized`),
    then with ``distinct_top`` the first that many are made structurally distinct (:func:`distinct_first`)."""
    if prototypes is not None:
        ranked = with_prototypes(ranked, prototypes, y, mask, size, size_model)
    if symmetrize:
        ranked = with_symmetrized(ranked, y, mask, size, size_model)
    if distinct_top:
        ranked = distinct_first(ranked, distinct_top)
    return ranked


def distinct_first(ranked: list[Candidate], top: int = REFINE_TOP) -> list[Candidate]:
    """``ranked`` reordered so that its first ``top`` are structurally distinct: walking best first,
    a candidate that pymatgen's StructureMatcher (the benchmark's tolerances, volume-scaled, so a
    lattice the refinement can still stretch counts as the same) matches to one already kept is
    moved behind the kept ones with :attr:`Candidate.duplicate_of` set. For a user who wants ``top``
    different hypotheses: prior draws alone hold 4.4 distinct structures on average in the top 10 of
    100 for 22 perov_5 crystals (7.9 for 19 AFLOW substitutions). Blind: compares candidates with each other
    only. Not the default, see :data:`DISTINCT`."""
    from nanosolve.models.cdvae.evaluate import structure_matcher

    sm, kept, dups = structure_matcher(), [], []
    structs: dict[int, object] = {}

    def struct(c):
        if id(c) not in structs:
            structs[id(c)] = c.crystal.to_pymatgen()
        return structs[id(c)]

    def same(a, b):
        try:
            return bool(sm.fit(struct(a), struct(b)))
        except Exception:  # noqa: BLE001 - a degenerate decoded cell matches nothing
            return False

    for cand in ranked:
        cand.duplicate_of = None
    for i, cand in enumerate(ranked):
        if len(kept) == top:
            return kept + dups + ranked[i:]
        rep = next((k for k in kept if same(k, cand)), None)
        cand.duplicate_of = None if rep is None else rep.index
        (kept if rep is None else dups).append(cand)
    return kept + dups


def refine_candidates(ranked: list[Candidate], y, mask, size: float, top: int = REFINE_TOP,
                      refine_positions: bool = REFINE_POSITIONS, seed: int = 0, n_restarts: int = 2,
                      steps: int = 30, deadline: float | None = None) -> list[Candidate]:
    """Refine the best ``top`` candidates against the input (model grid; lattice ±20 %, scale,
    σ_Q and, with ``refine_positions``, fractional coordinates within ±0.05) and re-rank everything
    by :attr:`Candidate.score`, refined ones first (an unrefined candidate stays behind them even
    when its decoded fit beats a refined one: after :func:`distinct_first` it is a copy of a refined one).

    ``n_restarts`` starts and ``steps`` L-BFGS iterations per candidate: on decoded candidates 2 / 30
    took 1.3 s against 4.7 s for 4 / 80 with the same fit (mean R 0.254 vs 0.240, 12 candidates).
    ``deadline`` (time.perf_counter seconds): the candidates not reached by then stay unrefined and
    keep their place behind the refined ones."""
    from nanosolve.solve.pxrd_refine import refine_crystal

    done = 0
    for cand in ranked[:top]:
        if deadline is not None and time.perf_counter() > deadline:
            break
        done += 1
        fit = refine_crystal(cand.crystal, np.asarray(y, float), grid_kind="model", mask=np.asarray(mask, bool),
                             size=size, n_restarts=n_restarts, refine_positions=refine_positions, seed=seed,
                             steps=steps, deadline=deadline)
        r_new, s_new = profile_r(y, fit.y_calc, mask)
        if r_new < cand.r:  # keep the refined crystal only when it fits the input better
            cand.crystal, cand.y_calc, cand.scale = fit.crystal, np.asarray(fit.y_calc, float), s_new
        cand.r_refined = min(r_new, cand.r)
        cand.refine = fit.summary()
    return sorted(ranked[:done], key=lambda c: c.score) + ranked[done:]


def refine_on_profile(ranked: list[Candidate], pattern, top: int = PROFILE_TOP, seed: int = 0,
                      n_restarts: int = 4, deadline: float | None = None) -> list[Candidate]:
    """Refine the best ``top`` candidates against ``pattern`` as measured (a 2θ or Q Pattern with its
    wavelength, on its own grid: lattice within ±20 %, a tied length split off where that fits better,
    peak width, zero shift, Chebyshev background, scale; :func:`~nanosolve.solve.pxrd_refine.
    refine_lower_symmetry`) and re-rank them by that weighted-profile R_wp, ahead of the rest.

    Why: the model sees the data broadened to its crystallite size, where several structures fit
    equally well; sharp measured peaks tell them apart and fix the lattice to ~0.1 %, which the
    model-grid fit cannot. Reads nothing but the candidates and the data. A candidate identical to an
    earlier one (the same symmetrised variant of two parents, refined alike) shares its fit: each fit
    costs tens of seconds. ``deadline`` (time.perf_counter seconds): no fit starts once the time of
    the last one would carry it past the deadline, and a running fit stops there at its best point;
    the rest stay unfitted behind the fitted ones."""
    from nanosolve.solve.pxrd_refine import refine_lower_symmetry

    fits, done, last = {}, 0, 0.0
    for cand in ranked[:top]:
        c = cand.crystal if cand.screen is None else cand.screen.crystal  # the screen's cell is closer
        key = (tuple(c.species), np.round(c.lattice, 8).tobytes(), np.round(c.frac_coords, 8).tobytes())
        if key not in fits:
            if deadline is not None and time.perf_counter() + last > deadline:
                break
            t0 = time.perf_counter()
            fits[key] = refine_lower_symmetry(c, pattern=pattern, n_restarts=n_restarts, seed=seed, deadline=deadline)
            last = time.perf_counter() - t0
        cand.profile = fits[key]
        done += 1
    return sorted(ranked[:done], key=lambda c: c.profile.rwp_after) + ranked[done:]


@dataclass
class PXRDSolveResult:
    ranked: list[Candidate]
    y: np.ndarray
    mask: np.ndarray
    q: np.ndarray
    summary: dict


def prepare_input(pattern, size: float, broaden: bool = True, background: bool | None = None):
    """(q [512], y [512], mask [512]) of a Pattern on the model grid (see module docstring).

    ``background`` (None: the same as ``broaden``) subtracts the rolling background of
    :func:`~nanosolve.scattering.nano_pxrd.to_model_grid`. Off for data that are already
    nano-broadened: at τ = 10 Å the peaks are wider than any window that still follows a background,
    so the subtraction removes signal (40 simulated 10 Å training patterns: R between the pattern
    and itself after subtraction 0.59 with the 0.5 Å⁻¹ window, 0.33 with a 3 Å⁻¹ one)."""
    from nanosolve.scattering.nano_pxrd import SIGMA_Q_RANGE, model_grid, to_model_grid

    sigma = 0.5 * (SIGMA_Q_RANGE[0] + SIGMA_Q_RANGE[1])
    subtract = broaden if background is None else background
    y, mask = to_model_grid(pattern, broaden=(size, sigma) if broaden else None,
                            background="auto" if subtract else None)
    return model_grid(), np.asarray(y, float), np.asarray(mask, bool)


#: total wall-time budget (s) of a default solve; the stages share it (see :class:`PowderSolveSettings`)
TIME_BUDGET = 300.0
#: pyxtal random crystals per solve (spread over the Z values searched; :mod:`nanosolve.solve.random_search`)
RANDOM_SEARCH = 120
#: the model decodes cells of at most this many atoms (its training range; larger Z: prototypes and random)
MODEL_MAX_ATOMS = 20


@dataclass
class PowderSolveSettings:
    """Options of a powder solve (:func:`solve_pxrd`); defaults are the solve's.

    ``formula`` is a composition: any multiple is reduced and Z searched (``z`` pins it;
    ``formula_is_cell`` instead takes the formula as the cell content, the behaviour before Z
    search). ``k``: model candidates in all, shared by the Z values whose cell the model can
    decode (≤ :data:`MODEL_MAX_ATOMS` atoms; at least :data:`MODEL_MIN_PER_Z` each). ``random_search``:
    pyxtal random crystals in all, spread over the Z values. ``time_budget`` (s; None = unbounded):
    each stage starts no new work after its fraction of it (:data:`RANDOM_END`, :data:`MODEL_END`,
    :data:`REFINE_END`, :data:`SCREEN_END`, :data:`SEARCH_END`, :data:`PROFILE_END`; with an indexed cell
    :data:`RANDOM_CELL_END` and :data:`RANDOM_END_INDEXED`; the Rietveld stage has the rest); the summary's
    ``budget_cut`` names the stages that were cut. ``progress(stage, detail)``: called at the start of every stage."""

    model_dir: str | os.PathLike | None = None
    k: int = 100
    steps: int | None = None
    n_step_each: int | None = None
    top: int = REFINE_TOP
    seed: int = 0
    method: str = "pxrdnet"
    refine_positions: bool = REFINE_POSITIONS
    distinct: bool = DISTINCT
    prototypes: bool = PROTOTYPES
    #: with ``prototypes``, also the orderings of two of the formula's elements on one site of a
    #: prototype of the merged composition (:mod:`nanosolve.structures.builders.orderings`); not with
    #: ``formula_is_cell`` (the cell-content interface keeps the candidates its benchmarks were run with)
    ordered_prototypes: bool = ORDERED_PROTOTYPES
    symmetrize: bool = SYMMETRIZE
    broaden: bool = True
    background: bool | None = None
    profile_top: int = PROFILE_TOP
    z: int | None = None
    formula_is_cell: bool = False
    max_cell_atoms: int | None = None
    random_search: int = RANDOM_SEARCH
    #: index sharp patterns (cubic / tetragonal / hexagonal, :mod:`nanosolve.solve.indexing`); an
    #: indexed cell fixes the random search's lattices and crystal system
    index: bool = True
    time_budget: float | None = TIME_BUDGET
    #: with sharp data, screen every candidate against the pattern as measured (cell lengths fitted,
    #: :mod:`nanosolve.solve.screen`) and rank by that before the measured-profile fits
    screen: bool = True
    #: after the screen, search the free Wyckoff coordinates of the best ``coordinate_search`` screened
    #: structure types in a cell fitted to the peak positions (:mod:`nanosolve.solve.coordinates`); 0: off
    coordinate_search: int = COORDINATE_SEARCH
    #: final Rietveld stage (:class:`nanosolve.solve.rietveld.RietveldSettings`; None: the defaults)
    rietveld: object = None
    progress: object = field(default=None, repr=False, compare=False)

    def validate(self) -> None:
        if self.profile_top < 0:
            raise InputError(f"profile_top must be >= 0, got {self.profile_top}", "--profile-top")
        from nanosolve.solve.limits import check_k

        check_k(self.k, "powder")  # before any candidate is generated
        if self.coordinate_search < 0:
            raise InputError(f"coordinate_search must be >= 0, got {self.coordinate_search}", "--coordinate-search")
        if self.random_search < 0:
            raise InputError(f"random_search must be >= 0, got {self.random_search}", "--random-search")
        if self.time_budget is not None and not self.time_budget > 0:
            raise InputError(f"the time budget must be > 0 s, got {self.time_budget}", "--time-budget")
        if self.z is not None and self.z < 1:
            raise InputError(f"Z must be >= 1, got {self.z}", "--z")
        if self.rietveld is not None:
            self.rietveld.validate()


class _Clock:
    """Wall-time budget of one solve: fractions of it end the stages (see PowderSolveSettings)."""

    def __init__(self, budget: float | None):
        self.t0, self.budget = time.perf_counter(), budget
        self.cut: list[str] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def deadline(self, fraction: float) -> float | None:
        return None if self.budget is None else self.t0 + fraction * self.budget

    def over(self, fraction: float) -> bool:
        return self.budget is not None and self.elapsed() > fraction * self.budget

    def note(self, stage: str) -> None:
        if stage not in self.cut:
            self.cut.append(stage)


#: fractions of the time budget at which the stages stop starting new work (random search, model
#: decoding, model-grid refinement, screen, measured-profile fits; the Rietveld stage has the rest)
RANDOM_END, MODEL_END, REFINE_END, SCREEN_END, PROFILE_END = 0.15, 0.35, 0.45, 0.55, 0.85
#: end of the coordinate search (between the screen and the measured-profile fits)
SEARCH_END = 0.70
#: with an indexed cell: the end of the search in that cell, of the unconstrained search after it (the
#: model then has what is left until MODEL_END), and the rounds over Z the cell search runs in
RANDOM_CELL_END, RANDOM_END_INDEXED, RANDOM_ROUNDS = 0.22, 0.28, 4
#: fewest model candidates per Z value when the K of a solve is shared by several
MODEL_MIN_PER_Z = 16
#: codes optimised and decoded per call: the budget is checked between calls
MODEL_CHUNK = 8  # a chunk already running is not interrupted: small chunks keep the overshoot small


def _with_real_elements(crystals, back: dict[str, str]) -> list[Crystal]:
    """Decoded crystals with every stand-in element replaced by the real one (``back``: stand-in -> real)."""
    if not back:
        return crystals
    out = []
    for c in crystals:
        c2 = Crystal(c.lattice, c.frac_coords, [back.get(s, s) for s in c.species], name=c.name,
                     properties=dict(c.properties))
        out.append(c2)
    return out


def _gate(ranked: list[Candidate]) -> list[Candidate]:
    """Sanity-check every candidate not checked since it last changed and move the implausible ones
    behind every plausible one, keeping each group's order (the stage's ranking)."""
    from nanosolve.solve.sanity import check_crystal

    for cand in ranked:
        c = cand.final_crystal
        if cand.sanity is None or cand.sanity_of is not c:
            cand.sanity, cand.sanity_of = check_crystal(c), c
    return [c for c in ranked if c.sanity.plausible] + [c for c in ranked if not c.sanity.plausible]


#: covalent packing fractions (sphere volume / cell volume) of the central 95 % of the AFLOW prototype
#: library (its 2.5th and 97.5th percentiles): an indexed cell is searched only for the Z values whose
#: content would pack within this range in it
INDEXED_PACKING = (0.11, 1.3)


def indexed_z_values(indexed, reduced: dict, zs) -> list[int]:
    """The Z values of ``zs`` whose cell content packs within :data:`INDEXED_PACKING` in the indexed
    cell (none without one)."""
    if indexed is None:
        return []
    from nanosolve.solve.random_search import target_volume

    per_unit = target_volume([el for el, n in reduced.items() for _ in range(int(n))], 1.0)
    return [int(z) for z in zs if INDEXED_PACKING[0] <= z * per_unit / indexed.volume <= INDEXED_PACKING[1]]


def _indexed_constraint(indexed, reduced: dict, z: int) -> dict:
    """random_crystals keywords for an indexed cell: its lattice and the space groups of its system."""
    if indexed is None:
        return {}
    from nanosolve.solve.random_search import compatible_space_groups

    ranges = {"cubic": (195, 230), "tetragonal": (75, 142), "hexagonal": (143, 194)}
    lo, hi = ranges[indexed.system]
    return {"cell": tuple(float(v) for v in indexed.cell),
            "space_groups": [g for g in compatible_space_groups(reduced, z) if lo <= g <= hi]}


def _say(settings: PowderSolveSettings, stage: str, detail: str = "") -> None:
    if settings.progress is not None:
        settings.progress(stage, detail)


def _from_legacy(model_dir, kwargs) -> PowderSolveSettings:
    """Settings of the old keyword interface: the formula is the cell content, no random search and
    no time budget (what those callers measured)."""
    known = {f for f in PowderSolveSettings.__dataclass_fields__}
    bad = sorted(set(kwargs) - known)
    if bad:
        raise TypeError(f"solve_pxrd() got unexpected keyword argument(s) {', '.join(bad)}")
    base = {"formula_is_cell": True, "random_search": 0, "time_budget": None}
    base.update(kwargs)
    return PowderSolveSettings(model_dir=model_dir, **base)


def solve_pxrd(data, formula: str, model_dir: str | os.PathLike | None = None,
               settings: PowderSolveSettings | None = None, out_dir: str | os.PathLike | None = None,
               wavelength=None, **legacy) -> PXRDSolveResult:
    """Solve a crystal from a powder pattern (file path or Pattern; 2θ needs its wavelength) and its
    composition (any multiple: 'Fe2O3' = 'Fe4O6').

    Stages (each announced through ``settings.progress``; ``settings.time_budget`` bounds them):

    1. Z values: :func:`nanosolve.solve.composition.z_values` (1, 2, 3, 4, 6, 8, ... up to
       ``max_cell_atoms``, default :data:`~nanosolve.solve.composition.MAX_CELL_ATOMS`), or ``z``.
    2. candidates, cheapest source first: the isotypic AFLOW prototypes of the composition (any Z up to
       the largest cell); ``random_search`` pyxtal random crystals
       (:func:`~nanosolve.solve.random_search.random_crystals`); the model decodes K per Z whose cell it
       can hold (≤ :data:`MODEL_MAX_ATOMS`), with a stand-in for every element it never saw
       (:func:`~nanosolve.solve.composition.model_stand_ins`; the real element is put back before
       anything is simulated); all ranked together by R on the model grid; symmetrised variants of the
       best model candidates join.
    3. sanity gate (:func:`~nanosolve.solve.sanity.check_crystal`) on every candidate: implausible
       ones go behind every plausible one, before and after each refinement.
    4. the best ``top`` refined on the model grid; with sharp data every candidate screened against
       the pattern as measured (cell lengths fitted, :mod:`nanosolve.solve.screen`) and ranked by it,
       then the best ``profile_top`` refined against the pattern as measured, re-ranked by R_wp, and
       the best of those Rietveld-refined under their space groups.

    ``settings``: :class:`PowderSolveSettings` (``model_dir`` here overrides its own). The old keyword
    interface (``k=``, ``top=``, ... as before) still works and means the formula is the cell content.
    Returns candidates best first (by fit to the input only; plausible before implausible) + a summary;
    with ``out_dir`` writes CIFs ``01_….cif`` (best first), ``fit.png`` and ``summary.json``."""
    from nanosolve.models.pxrdnet.sample import formula_types
    from nanosolve.models.pxrdnet.train import load_model
    from nanosolve.solve import read_input
    from nanosolve.solve.composition import cell_types, model_stand_ins, parse_counts, reduced_composition, z_values
    from nanosolve.solve.screen import screen_candidates

    if settings is None:
        settings = _from_legacy(model_dir, legacy)
    elif legacy:
        raise TypeError("give solve_pxrd either settings or the old keyword options, not both")
    elif model_dir is not None:
        settings = PowderSolveSettings(**{**settings.__dict__, "model_dir": model_dir})
    st = settings
    st.validate()
    clock = _Clock(st.time_budget)
    pattern = read_input(data, wavelength)
    if pattern.kind not in ("xrd", "nd"):
        raise InputError(f"not a powder diffraction pattern (reads as {pattern.kind})", pattern.metadata.get("source"))
    mdir = default_model_dir() if st.model_dir is None else st.model_dir
    model, cfg = load_model(mdir)
    counts = parse_counts(formula)
    if st.formula_is_cell:
        formula_types(formula, model)  # the old interface's checks (cell size, known elements)
        reduced = dict(counts)
        zs = [1]
    else:
        reduced = reduced_composition(formula)
        zs = z_values(reduced, st.z, st.max_cell_atoms or _default_max_cell())
    n_unit = sum(reduced.values())
    model_max = min(int(cfg.max_atoms), MODEL_MAX_ATOMS) if not st.formula_is_cell else int(cfg.max_atoms)
    stand_ins = model_stand_ins(list(reduced), cfg.extra.get("elements") or [])
    back = {v: k for k, v in stand_ins.items()}
    proxy = {stand_ins.get(el, el): n for el, n in reduced.items()}
    _say(st, "input", f"{formula}: reduced {''.join(f'{e}{n}' for e, n in reduced.items())}, Z {zs}"
         + (f", stand-ins {stand_ins}" if stand_ins else ""))
    q, y, mask = prepare_input(pattern, cfg.size, broaden=st.broaden, background=st.background)
    indexed = None
    if st.index and st.broaden and pattern.wavelength is not None and not st.formula_is_cell:
        from nanosolve.solve.indexing import index_pattern

        _say(st, "indexing", "cubic / tetragonal / hexagonal cells from the first peaks")
        indexed = index_pattern(pattern)
        if indexed is not None:
            _say(st, "indexing", f"{indexed.system} {' '.join(f'{v:.4f}' for v in indexed.cell[:3])} Å, "
                                 f"M = {indexed.fom:.0f}")
    n_step_each = cfg.solve_n_step_each if st.n_step_each is None else int(st.n_step_each)

    max_cell = max(zs) * n_unit
    ranked: list[Candidate] = []

    def join(extra: list[Candidate]) -> None:
        nonlocal ranked
        start = 1 + max((c.index for c in ranked), default=-1)
        for cand in extra:
            cand.index += start
        ranked = sorted(ranked + extra, key=lambda c: c.r)

    # -- AFLOW prototypes of the composition, every Z up to the largest cell searched (first: the
    #    cheapest source and, on measured data, the one that most often holds the answer)
    if st.prototypes:
        if st.formula_is_cell:  # as before Z search: every multiple of the ratios the model could hold
            protos = prototype_crystals(cell_types(reduced, 1), model_max)
        else:
            protos = [c for c in prototype_crystals(cell_types(reduced, zs[0]), max_cell) if len(c) // n_unit in zs]
        _say(st, "prototypes", f"{len(protos)} isotypic AFLOW prototypes, cells up to {max_cell} atoms")
        join(rank_candidates(protos, y, mask, cfg.size, cfg.size_model, "prototype"))
        if st.ordered_prototypes and not st.formula_is_cell:  # the cell-content interface keeps its candidates
            from nanosolve.structures.builders.orderings import ordered_substitutions

            ordered = [c for c in ordered_substitutions(reduced, max_cell) if len(c) // n_unit in zs]
            _say(st, "prototypes", f"{len(ordered)} orderings of two elements on one site of a prototype")
            join(rank_candidates(ordered, y, mask, cfg.size, cfg.size_model, "prototype"))
    # -- pyxtal random crystals, each Z in turn, ranked as they come (before the model: a crystal costs
    #    ~0.1 s against seconds per decoded code, so a budget cut should fall on the model)
    if st.random_search:
        from nanosolve.solve.random_search import random_crystals

        # An indexed cell holds only the Z values of a plausible density. Those are searched in that
        # cell first, up to the full count each, in rounds over Z so that the time is shared, until
        # RANDOM_CELL_END; then every Z unconstrained (half the count: indexing can be wrong) until
        # RANDOM_END_INDEXED. A search in the right lattice gets the time the model would have had.
        cell_zs = indexed_z_values(indexed, reduced, zs)
        n_round = -(-st.random_search // RANDOM_ROUNDS)
        plan = [(z, True, n_round, RANDOM_CELL_END) for _ in range(RANDOM_ROUNDS) for z in cell_zs]
        n_free = max(1, -(-st.random_search // ((2 if cell_zs else 1) * len(zs))))
        plan += [(z, False, n_free, RANDOM_END_INDEXED if cell_zs else RANDOM_END) for z in zs]
        _say(st, "random search", (f"up to {st.random_search} pyxtal crystals for each of Z = {cell_zs} in the "
                                   "indexed cell, then " if cell_zs else "")
             + f"up to {n_free} for each of Z = {zs}")
        for i, (z, in_cell, n_z, end) in enumerate(plan):
            if clock.over(end):
                if not in_cell:
                    clock.note("random search")
                continue
            found = random_crystals(reduced, z, n_z, seed=st.seed + i, deadline=clock.deadline(end),
                                    **(_indexed_constraint(indexed, reduced, z) if in_cell else {}))
            join(rank_candidates(found, y, mask, cfg.size, cfg.size_model, "random-search"))
    # -- the model's candidates, for the Z values whose cell it can decode
    model_zs = [z for z in zs if z * n_unit <= model_max]
    if model_zs:
        # K in all, shared by the Z values (the model stage's cost grows with the number of codes)
        k_z = max(min(MODEL_MIN_PER_Z, int(st.k)), -(-int(st.k) // len(model_zs)))
        _say(st, "model", f"{st.method}: {k_z} candidates for each of Z = {model_zs}")
        # chunks of MODEL_CHUNK codes, Z values in turn, so that a budget cut leaves every Z some candidates
        for c0 in range(0, k_z, MODEL_CHUNK):
            for z in model_zs:
                if clock.over(MODEL_END):
                    clock.note("model candidates")
                    break
                crystals, loss = generate_candidates(model, y, mask, cell_types(proxy, z), st.method,
                                                     min(MODEL_CHUNK, k_z - c0), st.steps, n_step_each,
                                                     st.seed + c0 + (0 if st.formula_is_cell else 1000 * z))
                join(rank_candidates(_with_real_elements(crystals, back), y, mask, cfg.size, cfg.size_model,
                                     st.method, loss))
        if st.symmetrize and not clock.over(MODEL_END):
            ranked = with_symmetrized(ranked, y, mask, cfg.size, cfg.size_model)
    if not ranked:
        raise InputError(f"no candidate structure for {formula}: the model holds cells of at most {model_max} atoms "
                         "and neither prototypes nor random search gave one (or the time budget ran out first)")
    if st.distinct:
        ranked = distinct_first(ranked, st.top)
    _say(st, "sanity", f"{len(ranked)} candidates")
    ranked = _gate(ranked)
    # -- refinement on the model grid, then against the pattern as measured
    n_top = min(st.top, len(ranked))
    if clock.over(REFINE_END):
        clock.note("model-grid refinement")
        n_top = 0
    _say(st, "refine", f"best {n_top} on the model grid")
    ranked = refine_candidates(ranked, y, mask, cfg.size, top=n_top, refine_positions=st.refine_positions,
                               seed=st.seed, deadline=clock.deadline(REFINE_END))
    if any(not c.refine for c in ranked[:n_top]):
        clock.note("model-grid refinement")
    ranked = _gate(ranked)
    # Nano-broadened input (broaden off) is already what the model sees; a wavelength-less Q pattern
    # has no 2θ grid to fit on.
    sharp = st.broaden and pattern.wavelength is not None
    n_screened = 0
    if sharp and st.screen:
        _say(st, "screen", f"{len(ranked)} candidates: cell lengths fitted to the pattern as measured")
        ranked, n_screened = screen_candidates(ranked, pattern, deadline=clock.deadline(SCREEN_END))
        if n_screened < len(ranked):
            clock.note("screen")
        ranked = _gate(ranked)
    n_searched = 0
    if sharp and st.screen and st.coordinate_search and n_screened:
        from nanosolve.solve.coordinates import search_candidates

        _say(st, "coordinates", f"free coordinates of the best {st.coordinate_search} structure types")
        ranked, n_searched = search_candidates(ranked, pattern, st.coordinate_search, seed=st.seed,
                                               deadline=clock.deadline(SEARCH_END))
        if clock.over(SEARCH_END):
            clock.note("coordinate search")
        ranked = _gate(ranked)
    n_profile = min(st.profile_top, len(ranked)) if sharp else 0
    rv_order = ""
    if n_profile:
        _say(st, "profile", f"best {n_profile} against the pattern as measured")
        ranked = refine_on_profile(ranked, pattern, n_profile, seed=st.seed,
                                   deadline=clock.deadline(PROFILE_END))
        if sum(c.profile is not None for c in ranked[:n_profile]) < n_profile:
            clock.note("measured-profile refinement")
        n_profile = sum(c.profile is not None for c in ranked)
        ranked = _gate(ranked)
        # -- Rietveld refinement of the best measured-profile fits (nanosolve.solve.rietveld) --
        from nanosolve.solve.rietveld import RietveldSettings, rietveld_candidates

        rv_settings = st.rietveld or RietveldSettings()
        if rv_settings.top:
            _say(st, "rietveld", f"best {min(rv_settings.top, n_profile)} under their space groups")
            ranked = _gate(rietveld_candidates(ranked, pattern, rv_settings, deadline=None if st.time_budget is None
                                               else clock.t0 + st.time_budget))
            rv_order = ("; the Rietveld-refined ones first, by R_wp" if rv_settings.parsimony_alpha is None else
                        "; the Rietveld-refined ones first, fewer free parameters ahead unless the extra ones fit "
                        f"significantly better (Hamilton's R-ratio test, α = {rv_settings.parsimony_alpha:g})")
        # -- end of the Rietveld stage --
    src = pattern.metadata.get("source")
    best = ranked[0].final_crystal
    summary = {"input": None if src is None else str(src), "formula": formula,
               "reduced_formula": "".join(f"{e}{n}" for e, n in reduced.items()),
               "formula_is_cell": bool(st.formula_is_cell), "z_searched": [int(z) for z in zs],
               "z_model": [int(z) for z in model_zs], "z": int(len(best) // n_unit),
               "cell": [round(float(v), 5) for v in best.cell_params],
               "cell_atoms": len(best), "element_stand_ins": stand_ins,
               "indexed": False if indexed is None else indexed.summary(),
               "model": "pxrdnet", "model_dir": str(mdir), "method": st.method, "k": int(st.k),
               "steps": cfg.opt_steps if st.steps is None else int(st.steps), "n_step_each": n_step_each,
               "size": cfg.size, "size_model": cfg.size_model, "broadened": bool(st.broaden),
               "background_subtracted": bool(st.broaden if st.background is None else st.background),
               "measured_fraction_of_grid": float(mask.mean()), "seed": int(st.seed),
               "refined": int(sum(bool(c.refine) for c in ranked)), "refine_positions": bool(st.refine_positions),
               "distinct": bool(st.distinct), "prototypes": bool(st.prototypes),
               "prototype_candidates": sum(c.method == "prototype" for c in ranked),
               "ordered_prototypes": bool(st.prototypes and st.ordered_prototypes and not st.formula_is_cell),
               "ordered_candidates": sum(c.method == "prototype" and "parent_prototype" in c.crystal.properties
                                         for c in ranked),
               "random_search": int(st.random_search),
               "random_search_candidates": sum(c.method == "random-search" for c in ranked),
               "symmetrize": bool(st.symmetrize),
               "symmetrized_candidates": sum(c.symmetrized_from is not None for c in ranked),
               "implausible_candidates": sum(not c.sanity.plausible for c in ranked),
               "screened": n_screened, "coordinates_searched": n_searched, "profile_refined": n_profile,
               "time_budget": st.time_budget, "budget_cut": list(clock.cut),
               "ranking": ("plausible candidates (sanity gate) before implausible ones; within each, R against the "
                           "input pattern only (model grid, optimal scale; refined R for the top)"
                           + (f"; {n_screened} re-ranked by the screen's R against the pattern as measured "
                              "(cell lengths fitted)" if n_screened else "")
                           + (f", {n_searched} structure types after a search of their free coordinates"
                              if n_searched else "")
                           + (f"; the best {n_profile} re-ranked by R_wp against the pattern as measured"
                              if n_profile else "") + rv_order),
               "seconds": round(clock.elapsed(), 2)}
    result = PXRDSolveResult(ranked, y, mask, q, summary)
    if out_dir is not None:
        from nanosolve.solve.report import write_pxrd_report

        result.summary = write_pxrd_report(out_dir, result)
    return result


def default_model_dir():
    """The PXRDNet model shipped for τ = 10 Å (``nanosolve/data/pxrdnet/cpu_10A``)."""
    from nanosolve.registry import pretrained

    return pretrained("pxrdnet", size=10)


def _default_max_cell() -> int:
    from nanosolve.solve.composition import MAX_CELL_ATOMS

    return MAX_CELL_ATOMS


__all__ = ["PowderSolveSettings", "TIME_BUDGET", "RANDOM_SEARCH", "MODEL_MAX_ATOMS", "default_model_dir",
           "REFINE_TOP", "REFINE_POSITIONS", "DISTINCT", "PROTOTYPES", "SYMMETRIZE", "SYMMETRIZE_TOP",
           "SYMMETRIZE_TOLERANCES", "solve_pxrd", "generate_candidates", "rank_candidates", "prototype_crystals",
           "with_prototypes", "symmetrized_variants", "with_symmetrized", "extend_ranking",
           "distinct_first", "refine_candidates", "refine_on_profile", "PROFILE_TOP", "profile_r",
           "Candidate", "PXRDSolveResult", "METHODS", "prepare_input"]
