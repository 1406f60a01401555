"""Direct-space search of a candidate's free atomic coordinates against the pattern as measured.

A prototype or random crystal of the right space group often sits with its atoms in the wrong places
of their Wyckoff positions (a Pnma AB2 prototype's x and z are another compound's); the screen
(:mod:`nanosolve.solve.screen`) fits its cell but keeps its coordinates, and the measured-profile fit
only descends locally from them. Here the free Wyckoff coordinates (those the space group leaves free,
:func:`nanosolve.solve.rietveld.symmetric_phase`) are searched globally in the screen's fitted cell:
random coordinate sets scored in batches, the best few refined by L-BFGS, each scored by the screen's
R (peaks at fixed positions, |F|² recomputed, optimal scale) plus a soft penalty on contacts shorter than
:data:`CONTACT_FACTOR` x the covalent-radius sum, so that the search stays among chemically possible
arrangements. The result is screened again (cell refitted); it replaces the candidate's structure only
when its screen R is lower. Blind: the candidate and the data only.

Why torch and not a direct-space program (FOX, DASH): those are not Python libraries; the batch of
structure factors is torch, differentiable for the local stage, with the atoms' amplitudes from
:func:`nanosolve.scattering.bragg.structure_factors_torch` (once per cell: the cell is fixed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import minimize

from nanosolve.errors import InputError
from nanosolve.scattering.bragg import enumerate_hkl, structure_factors_torch
from nanosolve.solve.sanity import covalent_radius
from nanosolve.solve.screen import (
    SCREEN_B_ISO,
    ScreenData,
    ScreenFit,
    length_factors,
    prepare_screen,
    screen_crystal,
    staged_simplex,
)
from nanosolve.structures import Crystal

#: random coordinate sets scored per candidate, and the best of them refined locally
SEARCH_SAMPLES, SEARCH_STARTS = 3000, 24
#: the first round over structure types (see :func:`search_candidates`): types looked at, draws,
#: local refinements and their iterations per type
SEARCH_TYPES, PRE_SAMPLES, PRE_STARTS, PRE_STEPS = 40, 400, 4, 25
#: space groups of the first round whose other Wyckoff combinations are searched too, and how many each
SEARCH_GROUPS, COMBINATIONS = 3, 24
#: pyxtal's cap on the combinations it lists for one space group and content
COMBINATIONS_MAX = 5000
#: with a deadline, rounds 1 and 2 start no search after these shares of the time left at the start
ROUND_SHARES = (0.35, 0.7)
#: L-BFGS iterations per start
SEARCH_STEPS = 60
#: contacts below this fraction of the covalent-radius sum are penalised (the sanity gate flags 0.7;
#: real contacts sit at 0.8-1.1)
CONTACT_FACTOR = 0.8
#: weight of the contact penalty against R² (R² ~ 0.01-0.5): one contact 20 % too short costs 0.04
CONTACT_WEIGHT = 1.0
#: candidates with more free coordinates than this are left as they are (random sampling of a
#: 30-dimensional space finds nothing in a few thousand draws)
MAX_FREE = 24
#: free-intensity cell fit: factors scanned on each free length, Le Bail cycles per trial cell, starts
#: refined, and the Q (Å⁻¹) below which it looks (resolved peaks; above, reflections crowd)
LEBAIL_SCAN = np.linspace(0.88, 1.12, 9)
LEBAIL_CYCLES, LEBAIL_STARTS, LEBAIL_Q_MAX = 8, 3, 4.5
#: spglib tolerance (Å) of the space group the search keeps
SEARCH_SYMPREC = 0.01


@dataclass
class CoordinateSearch:
    """Outcome of :func:`search_coordinates`: the screen before and after, the space group searched in,
    the number of free coordinates, and seconds. ``improved``: the searched structure replaced the
    candidate's."""

    before: float
    after: float
    spacegroup: str
    n_free: int
    improved: bool
    seconds: float
    #: the Wyckoff sites searched ("K 2c, La 2c, ...")
    sites: str = ""

    def summary(self) -> dict:
        return {"sites": self.sites, "screen_r_before": round(float(self.before), 5), "screen_r_after": round(float(self.after), 5),
                "spacegroup": self.spacegroup, "n_free": int(self.n_free), "improved": bool(self.improved),
                "seconds": round(float(self.seconds), 2)}


class _Objective:
    """Batched screen R² (+ contact penalty) of free-coordinate vectors p [S, P] of one phase."""

    def __init__(self, phase, data: ScreenData):
        cr = phase.crystal
        self.lat = torch.tensor(np.asarray(cr.lattice, float))
        self.species = list(cr.species)
        self.pos_a = torch.tensor(phase.pos_a)  # [N, 3, P]
        self.pos_b = torch.tensor(np.asarray(phase.pos_b, float))  # [N, 3]
        q0, step, n = float(data.q[0]), float(data.q[1] - data.q[0]), len(data.q)
        sig = math.hypot(data.sigmas[-1], data.sigma_instrument)
        hkl, g = enumerate_hkl(cr.lattice, (data.q[-1] + 4 * sig) / (2 * math.pi))
        qh = 2 * math.pi * np.asarray(g, float)
        keep = qh > q0 - 4 * sig
        if data.wavelength is not None:
            keep &= 0.5 * data.wavelength * qh / (2 * math.pi) < 1 - 1e-9
        self.hkl, qh = np.asarray(hkl)[keep], qh[keep]
        self.hkl_t = torch.tensor(self.hkl, dtype=torch.float64)
        # the cell is fixed, so each atom's scattering amplitude f(|g|)·exp(-B s²) at every reflection is
        # too: one atom at the origin per element gives |F|² = f², computed once instead of at every call
        amp = {}
        for el in set(self.species):
            with torch.no_grad():
                _, f2 = structure_factors_torch(self.lat[None], torch.zeros(1, 1, 3, dtype=torch.float64), [el],
                                                self.hkl, b_iso=SCREEN_B_ISO)
            amp[el] = torch.sqrt(f2[0])
        self.amp = torch.stack([amp[el] for el in self.species], 1) if len(self.hkl) else torch.zeros(0, 0)  # [H, N]
        if data.wavelength is not None:
            s = np.clip(0.5 * data.wavelength * qh / (2 * math.pi), 1e-9, 1 - 1e-9)
            c2 = 1 - 2 * s * s
            lp = (1 + c2 * c2) / (s * s * np.sqrt(1 - s * s))
        else:
            lp = np.ones_like(qh)
        # each reflection's profile on the screen grid, binned and smoothed as the screen renders it
        pos = (qh - q0) / step
        i0 = np.floor(pos).astype(int)
        frac = pos - i0
        prof = np.zeros((len(qh), n))
        rows = np.arange(len(qh))
        ok0, ok1 = (i0 >= 0) & (i0 < n), (i0 + 1 >= 0) & (i0 + 1 < n)
        prof[rows[ok0], i0[ok0]] += 1 - frac[ok0]
        prof[rows[ok1], i0[ok1] + 1] += frac[ok1]
        prof = gaussian_filter1d(prof / step, sig / step, axis=1, mode="constant")
        self.kernel = torch.tensor(prof * lp[:, None])  # [H, G]
        self.obs = torch.tensor(np.asarray(data.smoothed[-1], float))
        self.obs2 = float(self.obs @ self.obs)
        radii = np.array([covalent_radius(s) for s in self.species])
        self.limit = torch.tensor(CONTACT_FACTOR * (radii[:, None] + radii[None, :]))
        self.offsets = torch.tensor(np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T,
                                    dtype=torch.float64)  # [27, 3]
        nat = len(self.species)
        self.pair = torch.triu(torch.ones(nat, nat, dtype=torch.bool), 1)
        # batch chunks that keep the [S, H, N] phases and [S, N, N, 27, 3] image vectors near 200 MB
        self.chunk = max(1, int(1e7 // max(len(qh) * nat, 1)))
        self.chunk_pen = max(1, int(3e6 // (nat * nat * 81)))

    @property
    def n_reflections(self) -> int:
        return len(self.hkl)

    def frac(self, p):
        return self.pos_b[None] + torch.einsum("nip,sp->sni", self.pos_a, p)

    def penalty(self, frac):
        """[S] Σ over atom pairs (each at its nearest of 27 images) of relu(1 - d / limit)²."""
        diff = frac[:, :, None, :] - frac[:, None, :, :]
        diff = diff - torch.round(diff).detach()
        d = diff[:, :, :, None, :] + self.offsets  # [S, N, N, 27, 3]
        dist = torch.linalg.norm(d @ self.lat, dim=-1).min(-1).values  # [S, N, N]
        return ((torch.relu(1 - dist / self.limit) ** 2) * self.pair).sum((-1, -2))

    def __call__(self, p):
        """p [S, P] -> (R² [S] at the optimal scale, contact penalty [S])."""
        out_r, out_p = [], []
        for i in range(0, p.shape[0], self.chunk):
            pc = p[i:i + self.chunk]
            frac = self.frac(pc)
            phase = (2 * math.pi) * (self.hkl_t @ frac.transpose(-1, -2))  # [S, H, N]
            fr, fi = (self.amp * torch.cos(phase)).sum(-1), (self.amp * torch.sin(phase)).sum(-1)
            calc = (fr * fr + fi * fi) @ self.kernel
            cc = (calc * calc).sum(-1).clamp_min(1e-300)
            oc = calc @ self.obs
            out_r.append(1 - oc * oc / (cc * self.obs2))
            out_p += [self.penalty(frac[j:j + self.chunk_pen]) for j in range(0, frac.shape[0], self.chunk_pen)]
        return torch.cat(out_r), torch.cat(out_p)


def _allowed_reflections(phase, g_max: float, rng):
    """(hkl [H, 3], reciprocal-metric terms base [H, 3, 3]) of the reflections the space group allows
    (|F|² not zero for random free coordinates) below |g| = g_max (Å⁻¹), one per set that coincides for
    every cell of the system (equal base)."""
    cr = phase.crystal
    hkl, _ = enumerate_hkl(cr.lattice, g_max)
    hkl = np.asarray(hkl)
    if len(hkl) == 0:
        return hkl, np.zeros((0, 3, 3))
    n_free = phase.pos_a.shape[2]
    p = torch.tensor(rng.uniform(-1, 1, (4, n_free)) if n_free else np.zeros((1, 0)))
    frac = torch.tensor(np.asarray(phase.pos_b, float))[None] + torch.einsum("nip,sp->sni", torch.tensor(phase.pos_a), p)
    with torch.no_grad():
        _, f2 = structure_factors_torch(torch.tensor(np.asarray(cr.lattice, float)).expand(p.shape[0], 3, 3), frac,
                                        list(cr.species), hkl)
    f2 = f2.numpy().mean(0)
    hkl = hkl[f2 > 1e-8 * f2.max()]
    gstar = np.linalg.inv(cr.lattice @ cr.lattice.T)
    base = np.einsum("pi,ij,pj->pij", hkl.astype(float), gstar, hkl.astype(float))
    _, first = np.unique(np.round(base.reshape(len(hkl), -1), 10), axis=0, return_index=True)
    return hkl[np.sort(first)], base[np.sort(first)]


def fit_cell_free_intensities(phase, data: ScreenData, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """Cell-length factors [3] of ``phase``'s conventional cell that place its allowed reflections on the
    measured peaks, whatever their intensities (Le Bail: each reflection's intensity re-extracted from the
    data at every trial cell), and the fit's R. Equal lengths stay equal; angles fixed. Independent of
    the candidate's coordinates, so a cell that is right for the space group is found even where the
    atoms are not (the screen's fit, with the candidate's intensities, then lands on a wrong cell).
    Returns (factors, R of the fitted cell, R of the cell as it was)."""
    groups = phase.len_groups
    q_hi = min(float(data.q[-1]), LEBAIL_Q_MAX)
    hkl, base = _allowed_reflections(phase, q_hi / (2 * math.pi) / LEBAIL_SCAN[0], np.random.default_rng(seed))
    if len(hkl) == 0:
        return np.ones(3), math.inf, math.inf
    m = data.q <= q_hi
    q = data.q[m]

    def expand(u):
        return length_factors(groups, u)

    def r_of(u, k):
        inv = 1.0 / expand(u)
        qh = 2 * math.pi * np.sqrt(np.clip(np.einsum("pij,i,j->p", base, inv, inv), 0, None))
        sig = math.hypot(data.sigmas[k], data.sigma_instrument)
        inside = (qh > q[0] - 4 * sig) & (qh < q[-1] + 4 * sig)
        # every few grid points where the smoothing is wide (three per σ are plenty)
        stride = max(1, int(sig / (3 * (data.q[1] - data.q[0]))))
        obs, qs = data.smoothed[k][m][::stride], q[::stride]
        if not inside.any():
            return 1.0
        kern = np.exp(-0.5 * ((qs[None, :] - qh[inside, None]) / sig) ** 2)
        inten = np.ones(int(inside.sum()))
        norm = kern.sum(1) + 1e-300
        for _ in range(LEBAIL_CYCLES):
            calc = inten @ kern
            inten = inten * (kern @ (obs / np.maximum(calc, 1e-12 * obs.max()))) / norm
        calc = inten @ kern
        return math.sqrt(float(((obs - calc) ** 2).sum()) / float(obs @ obs))

    axes = np.log(LEBAIL_SCAN)
    grid = np.stack(np.meshgrid(*[axes] * len(groups), indexing="ij"), -1).reshape(-1, len(groups))
    values = np.array([r_of(u, 0) for u in grid])
    best = (math.inf, grid[0])
    # the cell as it was is always a start: the scan's wide smoothing can prefer a wrong cell
    for u in [np.zeros(len(groups))] + [grid[i] for i in np.argsort(values)[:LEBAIL_STARTS]]:
        u = staged_simplex(r_of, u, data.sigmas, first=1, maxfev_per_length=40)
        r = r_of(u, len(data.sigmas) - 1)
        if r < best[0]:
            best = (r, u)
    return expand(best[1]), best[0], r_of(np.zeros(len(groups)), len(data.sigmas) - 1)


def candidate_phase(crystal: Crystal):
    """The crystal's :class:`~nanosolve.solve.rietveld.SymmetricPhase` when it has between 1 and
    :data:`MAX_FREE` free coordinates, else None (no space group found, nothing free, too many)."""
    from nanosolve.solve.rietveld import symmetric_phase

    try:
        phase = symmetric_phase(crystal, symprec=SEARCH_SYMPREC)
    except InputError:
        return None
    return phase if 0 < phase.pos_a.shape[2] <= MAX_FREE else None


def search_coordinates(phase, data: ScreenData, seed: int = 0, n_samples: int = SEARCH_SAMPLES,
                       n_starts: int = SEARCH_STARTS, steps: int = SEARCH_STEPS,
                       deadline: float | None = None) -> tuple[Crystal, CoordinateSearch] | None:
    """Search the free Wyckoff coordinates of ``phase`` (a :class:`~nanosolve.solve.rietveld.SymmetricPhase`,
    see :func:`candidate_phase`; its cell fixed) against ``data`` (see the module doc). Returns the best
    structure (conventional cell) and a :class:`CoordinateSearch` whose ``before``/``after`` are this
    objective's R at the start and at the end, or None when no reflection falls in the data."""
    t0 = time.perf_counter()
    n_free = phase.pos_a.shape[2]
    obj = _Objective(phase, data)
    if obj.n_reflections == 0:
        return None
    rng = np.random.default_rng(seed)
    # free coordinates along unit basis vectors: [-1, 1] spans at least one period of every direction
    # (the longest, a body diagonal x = y = z, has period √3 < 2); the start itself is draw 0
    draws = np.vstack([np.zeros((1, n_free)), rng.uniform(-1, 1, (n_samples - 1, n_free))])
    with torch.no_grad():
        r2, pen = obj(torch.tensor(draws))
    total = (r2 + CONTACT_WEIGHT * pen).numpy()
    before = math.sqrt(max(float(r2[0]), 0.0))
    best_val, best_p = float(total[0]), draws[0]

    order = [int(i) for i in np.argsort(total) if i != 0]
    starts = draws[[0] + order[: max(n_starts - 1, 0)]]  # [M, P]
    last: dict = {}

    def f(flat):
        # all starts at once: the objective is a sum of independent terms, so L-BFGS on the stacked
        # vector descends each start as it would alone, at the cost of one batched call per step
        if deadline is not None and time.perf_counter() > deadline:
            raise _OutOfTime
        t = torch.tensor(flat.reshape(starts.shape), requires_grad=True)
        a, b = obj(t)
        each = a + CONTACT_WEIGHT * b
        each.sum().backward()
        last["each"], last["p"] = each.detach().numpy().copy(), flat.reshape(starts.shape).copy()
        return float(each.sum().detach()), t.grad.numpy().ravel().copy()

    try:
        minimize(f, starts.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": int(steps)})
    except _OutOfTime:
        pass
    if last:
        i = int(np.argmin(last["each"]))
        if last["each"][i] < best_val:
            best_val, best_p = float(last["each"][i]), last["p"][i]
    with torch.no_grad():
        frac = obj.frac(torch.tensor(best_p[None]))[0].numpy()
        r2_best = float(obj(torch.tensor(best_p[None]))[0][0])
    cr = phase.crystal
    found = Crystal(np.asarray(cr.lattice, float), np.mod(frac, 1.0), cr.species, cr.occupancies, cr.labels,
                    name=cr.name, properties=dict(cr.properties))
    info = CoordinateSearch(before, math.sqrt(max(r2_best, 0.0)), phase.spacegroup, n_free, False,
                            time.perf_counter() - t0, ", ".join(f"{x['element']} {x['wyckoff']}" for x in phase.sites))
    return found, info


class _OutOfTime(Exception):
    """Raised inside an L-BFGS run when the caller's deadline has passed."""


def wyckoff_alternatives(phase, limit: int | None = None, seed: int = 0) -> list:
    """Phases (see :func:`candidate_phase`) of ``phase``'s space group, cell and content with other
    Wyckoff-site combinations (pyxtal's ``list_wyckoff_combinations``; at most ``limit``, drawn at random
    when there are more), each site at a random point of its Wyckoff position (overlaps are left to
    the search's contact penalty: pyxtal's own placement retries for seconds where a combination is
    crowded)."""
    from pyxtal.symmetry import Group

    limit = COMBINATIONS if limit is None else limit
    cr = phase.crystal
    species = sorted(set(cr.species))
    counts = [cr.species.count(e) for e in species]
    own = sorted((x["element"], x["wyckoff"]) for x in phase.sites)
    try:
        group = Group(phase.number)
        combos = group.list_wyckoff_combinations(counts, Nmax=COMBINATIONS_MAX)[0]
    except Exception:  # noqa: BLE001 - pyxtal has no combination list for these counts
        return []
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(combos)):
        if len(out) >= limit:
            break
        combo = combos[i]
        sites = sorted((e, w) for e, ws in zip(species, combo) for w in ws)
        if sites == own:
            continue
        frac, elems = [], []
        for e, w in sites:
            wp = group.get_wyckoff_position(w)
            orbit = np.mod(wp.apply_ops(wp.ops[0].operate(rng.uniform(0, 1, 3))), 1.0)
            frac.append(orbit)
            elems += [e] * len(orbit)
        alt = Crystal(np.asarray(cr.lattice, float), np.concatenate(frac), elems, name=cr.name,
                      properties=dict(cr.properties))
        alt_phase = candidate_phase(alt)
        if alt_phase is not None and alt_phase.number == phase.number and len(alt_phase.crystal) == len(cr):
            out.append(alt_phase)
    return out


def _type_key(phase) -> tuple:
    """Space group, cell size and Wyckoff sites: phases with the same key search the same space."""
    return phase.number, len(phase.crystal), tuple(sorted((x["element"], x["wyckoff"]) for x in phase.sites))


def _fitted_phase(cand, screen_phase, data: ScreenData, seed: int):
    """The candidate's phase in the cell that best places its allowed reflections on the peaks, fitted
    (:func:`fit_cell_free_intensities`) from the screen's cell (``screen_phase``, the phase of
    ``cand.screen.crystal``) and from the candidate's own: where the coordinates are wrong, the screen's
    cell (fitted with their intensities) can be further off than the start. None when the candidate has
    no free coordinate (see :func:`candidate_phase`)."""
    best = None
    for phase in (screen_phase, candidate_phase(cand.crystal)):
        if phase is None:
            return None
        factors, r_cell, r_start = fit_cell_free_intensities(phase, data, seed=seed)
        if r_cell < r_start:
            phase.crystal.lattice = phase.crystal.lattice * factors[:, None]
        if best is None or min(r_cell, r_start) < best[0]:
            best = (min(r_cell, r_start), phase)
    return best[1]


def search_candidates(ranked: list, data, top: int, seed: int = 0, deadline: float | None = None,
                      max_types: int | None = None) -> tuple[list, int]:
    """Coordinate search on the screened candidates, by structure type (space group and Wyckoff sites:
    two candidates of one type search the same space), in two rounds:

    1. every distinct type with free coordinates among the first ``max_types`` (:data:`SEARCH_TYPES`),
       in ranking order, gets a short search (:data:`PRE_SAMPLES` draws, :data:`PRE_STARTS` local refinements) in the cell that
       places its allowed reflections on the peaks (:func:`fit_cell_free_intensities`): a type whose
       coordinates are wrong screens badly, on a wrong cell, so the screen alone would miss it;
    2. the best :data:`SEARCH_GROUPS` space groups of round 1 have their other Wyckoff-site combinations
       (:func:`wyckoff_alternatives`, the same cell and content) searched alike: the candidates rarely
       hold every way of placing the atoms of a space group;
    3. the ``top`` best types of rounds 1-2 get the full search (:func:`search_coordinates`).

    A candidate whose searched structure screens better (lower R, cell refitted) takes it: ``cand.screen``
    becomes the new :class:`ScreenFit`; each candidate of round 3 keeps the record in
    ``cand.coordinate_search`` (a type of round 2 goes to the candidate its space group came from).
    ``deadline`` (time.perf_counter seconds): no search starts after it.
    ``data``: a :class:`ScreenData` or the measured Pattern. The screened candidates are re-ranked by
    screen R, ahead of the rest. Returns (ranking, number of full searches)."""
    if not isinstance(data, ScreenData):
        data = prepare_screen(data)
    max_types = SEARCH_TYPES if max_types is None else max_types
    t0 = time.perf_counter()

    def late(share: float = 1.0):
        """Past ``share`` of the time to the deadline: rounds 1 and 2 leave round 3 its part."""
        return deadline is not None and time.perf_counter() > t0 + share * (deadline - t0)

    types: dict = {}
    for cand in ranked:
        if len(types) >= max_types or late(ROUND_SHARES[0]):
            break
        if cand.screen is None or not math.isfinite(cand.screen.r):
            continue
        phase = candidate_phase(cand.screen.crystal)
        if phase is None or _type_key(phase) in types:
            continue
        key = _type_key(phase)
        phase = _fitted_phase(cand, phase, data, seed)
        if phase is None:
            continue
        out = search_coordinates(phase, data, seed=seed, n_samples=PRE_SAMPLES, n_starts=PRE_STARTS,
                                 steps=PRE_STEPS, deadline=deadline)
        if out is not None:
            types[key] = (out[1].after, cand, phase)
    groups: list = []
    for _, cand, phase in sorted(types.values(), key=lambda t: t[0]):
        if len(groups) >= SEARCH_GROUPS or late(ROUND_SHARES[1]):
            break
        if phase.number in [g for g, _ in groups]:
            continue
        groups.append((phase.number, len(phase.crystal)))
        for alt in wyckoff_alternatives(phase, seed=seed + len(groups)):
            key = _type_key(alt)
            if key in types or late(ROUND_SHARES[1]):
                continue
            out = search_coordinates(alt, data, seed=seed, n_samples=PRE_SAMPLES, n_starts=PRE_STARTS,
                                     steps=PRE_STEPS, deadline=deadline)
            if out is not None:
                types[key] = (out[1].after, cand, alt)
    done = 0
    for _, cand, phase in sorted(types.values(), key=lambda t: t[0])[:top]:
        if late():
            break
        out = search_coordinates(phase, data, seed=seed + 1 + done, deadline=deadline)
        if out is None:
            continue
        done += 1
        found, info = out
        fit: ScreenFit = screen_crystal(found, data)
        info.improved = fit.r < cand.screen.r
        info.before, info.after = cand.screen.r, fit.r
        if info.improved or cand.coordinate_search is None:  # a later, worse search leaves the record alone
            cand.coordinate_search = info
        if info.improved:
            cand.screen = fit
    screened = sorted([c for c in ranked if c.screen is not None], key=lambda c: c.screen.r)
    return screened + [c for c in ranked if c.screen is None], done
