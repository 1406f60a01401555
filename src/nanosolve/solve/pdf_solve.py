"""Solve a mono-metallic nanoparticle PDF from two candidate sources: the cluster library and DeepStruc.

Steps (:func:`solve_sources`):

1. Fit range: ``rmin`` to ``rmax`` (default: where the data end); Qmin/Qmax/Qdamp/Qbroad from the options,
   else the file header; Qdamp and Qbroad that neither states are fitted, Qmin/Qmax fall back to 0.7/30.
2. Candidates: every cluster of the library (:func:`nanosolve.solve.cluster_library.load_library`) and the
   DeepStruc CVAE's decoded clusters (the PDF zero-padded onto the model's 0-30 Å grid where the data do not
   reach), scaled to the metal's nearest-neighbour distance. The expansion window of every fit is centred on
   the data's first G(r) peak (or on a given lattice constant), so the metal only names the atoms.
3. Screen fit of every candidate with positions fixed, then a full fit (scale, ε, B_iso, δ2, Qdamp/Qbroad
   when not stated) of the ``full_top`` best, of the ``full_per_motif`` best of every motif and of the
   ``full_neighbours`` next smaller and larger clusters of the best motif.
4. Sanity gate: mean coordination (neighbours within 1.12 nearest-neighbour distances) against a compact
   sphere of the same lattice and atom count (for decoded candidates: the simple-cubic sphere, the loosest
   compact packing), and compactness (radius of gyration of a close-packed sphere of N atoms / the
   candidate's); a candidate below ``coordination_ratio`` or ``compactness_min`` is flagged and ranked after
   every plausible one.
5. Ranking: plausible first, then full fits, then Rw with positions fixed. Nothing else enters. The
   summary says which sizes of the best motif fit within noise of the best (an F-test on Rw² with the
   data's independent points, ``sizes_within_noise``) and which other motifs fit worse beyond noise.
6. Optional restrained position refinement of the ``positions_top`` best (bond-length restraints, a maximum
   shift); its Rw is reported as ``rw_positions`` beside ``rw`` and does not change the ranking.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from nanosolve._io import atomic_path
from nanosolve.errors import InputError
from nanosolve.solve import cluster_library as cl
from nanosolve.solve.pdf_refine import FitSettings, RefineResult, _refine_positions, rw
from nanosolve.structures.builders.clusters import LIBRARY_MOTIFS, sphere_cluster
from nanosolve.structures.elements import metallic_radius
from nanosolve.structures.particle import Particle

__all__ = ["SOURCES", "PdfSolveSettings", "solve_sources", "expected_coordination", "sanity", "plot_rw_vs_size"]

SOURCES = ("cvae", "library", "both")


@dataclass
class PdfSolveSettings:
    """Options of a PDF solve with the library and/or DeepStruc (Q Å⁻¹, r Å, B and δ2 Å²).

    ``None`` for qmin/qmax/qdamp/qbroad means: the file header, else (qmin, qmax) 0.7 / 30 and
    (qdamp, qbroad) fitted.
    """

    source: str = "both"
    rmin: float = 1.0
    rmax: float | None = None
    qmin: float | None = None
    qmax: float | None = None
    qdamp: float | None = None
    qbroad: float | None = None
    lattice_a: float | None = None  # Å, of each candidate's own lattice (fcc a for icosahedra/decahedra)
    motifs: tuple = LIBRARY_MOTIFS
    min_atoms: int = 13
    max_atoms: int = 4000
    expansion_bounds: tuple = (-0.06, 0.06)
    k: int = 20  # DeepStruc latent samples
    seed: int = 0
    full_top: int = 10
    full_per_motif: int = 1
    full_neighbours: int = 2  # next smaller / larger sizes of the best motif also fully fitted
    fit_delta2: bool = True
    positions_top: int = 2
    positions_max_atoms: int = 150
    max_shift: float = 0.3
    bond_weight: float = 1.0
    coordination_ratio: float = 0.75
    compactness_min: float = 0.7
    write_top: int = 20
    jobs: int = 2  # processes of the screen fits (forked, one thread each)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise InputError(f"unknown source {self.source!r}; use one of {', '.join(SOURCES)}")
        lo, hi = self.expansion_bounds
        if not -0.5 < lo < 0 < hi < 0.5:
            raise InputError(f"expansion bounds must bracket 0 within (-0.5, 0.5), got {self.expansion_bounds}")
        if self.rmax is not None and not self.rmax > self.rmin:
            raise InputError(f"--rmax must be above rmin ({self.rmin} Å), got {self.rmax}")
        if self.lattice_a is not None and not 1.0 < self.lattice_a < 10.0:
            raise InputError(f"lattice constant must be 1-10 Å, got {self.lattice_a}")
        for name in ("k", "full_top", "write_top"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")


_EXPECTED: dict = {}
SIGNIFICANCE_F = 3.84  # F(1, N - p) at 95 % for large N


def _coordination_table(lattice: str) -> tuple[np.ndarray, np.ndarray]:
    """(atom counts, mean coordination) of ``lattice`` sphere cuts of radius 1-14 nn (cached on disk)."""
    if lattice not in _EXPECTED:
        path = cl.cache_dir() / f"coordination-{lattice}-v{cl.CACHE_VERSION}.npz"
        try:
            z = np.load(path, allow_pickle=False)
            _EXPECTED[lattice] = (z["n"], z["cn"])
        except (OSError, KeyError, ValueError):
            ns, cns = [], []
            radius = 1.0
            while radius < 14.0:
                x = sphere_cluster("Cu", lattice, radius).positions / (2 * metallic_radius("Cu"))
                if not ns or len(x) != ns[-1]:
                    ns.append(len(x))
                    cns.append(cl.mean_coordination(x, 1.12))
                radius *= 1.03
            _EXPECTED[lattice] = (np.array(ns), np.array(cns))
            with atomic_path(path) as tmp:
                np.savez(tmp, n=_EXPECTED[lattice][0], cn=_EXPECTED[lattice][1])
    return _EXPECTED[lattice]


def expected_coordination(n_atoms: int, lattice: str) -> float:
    """Mean coordination (within 1.12 nn) of a compact ``lattice`` sphere cut of ``n_atoms`` atoms
    (interpolated in log N between the sphere cuts of radius 1-14 nn)."""
    n, cn = _coordination_table(lattice)
    return float(np.interp(np.log(max(2, n_atoms)), np.log(n), cn))


def sanity(entry: cl.ClusterEntry, settings: PdfSolveSettings) -> dict:
    """{"plausible", "flags", "mean_coordination", "expected_coordination", "compactness"} of a candidate."""
    lattice = entry.lattice if entry.source == "library" else "sc"
    expected = expected_coordination(entry.n_atoms, lattice)
    flags = []
    if entry.mean_coordination < settings.coordination_ratio * expected:
        flags.append(f"loose: mean coordination {entry.mean_coordination:.2f} < "
                     f"{settings.coordination_ratio:g} x {expected:.2f} expected")
    if entry.compactness < settings.compactness_min:
        flags.append(f"not compact: compactness {entry.compactness:.2f} < {settings.compactness_min:g}")
    return {"plausible": not flags, "flags": flags, "mean_coordination": round(entry.mean_coordination, 3),
            "expected_coordination": round(expected, 3), "compactness": round(entry.compactness, 3)}


def _fit_settings_from(pattern_meta: dict, s: PdfSolveSettings) -> dict:
    out = {}
    for key in ("qmin", "qmax", "qdamp", "qbroad"):
        v = getattr(s, key)
        if v is None:
            hv = pattern_meta.get(key)
            v = float(hv) if isinstance(hv, (int, float)) and np.isfinite(hv) else None
        out[key] = v
    out["qmin"] = 0.7 if out["qmin"] is None else out["qmin"]
    out["qmax"] = 30.0 if out["qmax"] is None else out["qmax"]
    if not 0 <= out["qmin"] < out["qmax"]:
        raise InputError(f"need 0 <= Qmin < Qmax, got {out['qmin']}, {out['qmax']}")
    return out


def first_peak(r: np.ndarray, g: np.ndarray) -> float | None:
    """Position (Å) of the first G(r) maximum above half the largest one beyond 1.5 Å (parabola through the
    three top points), or None."""
    keep = r > 1.5
    rr, gg = r[keep], g[keep]
    if rr.size < 3:
        return None
    k = np.flatnonzero((gg[1:-1] >= 0.5 * gg.max()) & (gg[1:-1] >= gg[:-2]) & (gg[1:-1] >= gg[2:])) + 1
    if k.size == 0:
        return None
    i = int(k[0])
    a, b, c = gg[i - 1], gg[i], gg[i + 1]
    den = a - 2 * b + c
    shift = 0.5 * (a - c) / den if den < 0 else 0.0
    return float(rr[i] + shift * (rr[1] - rr[0]))


def _nn0(entry: cl.ClusterEntry, nn_centre: float, lattice_a: float | None) -> float:
    """Centre of a candidate's nearest-neighbour scan (Å): from a given lattice constant, else the data's."""
    if lattice_a is None or entry.source != "library":
        return nn_centre
    return float(lattice_a / cl.A_OVER_NN[entry.lattice])


def _cvae_entries(pattern, element: str, nn_element: float, s: PdfSolveSettings, model_dir, info: dict):
    from nanosolve.models.deepstruc.sample import candidates, pdf_on_model_grid
    from nanosolve.models.deepstruc.train import load_model
    from nanosolve.solve import default_model_dir

    net, config = load_model(model_dir if model_dir is not None else default_model_dir())
    pdf_on_model_grid(pattern, config, info)
    cands = candidates(net, config, pattern, element, k=s.k, seed=s.seed)
    out = []
    for p in cands:
        try:
            e = cl.entry_from_positions(p.positions, nn_element, key=f"cvae_s{p.properties['sample']:02d}",
                                        source="cvae", motif="cvae-decoded", lattice="fcc")
        except InputError as err:  # a decoded cluster with coincident atoms has no PDF: left out, counted
            info.setdefault("dropped", []).append(f"sample {p.properties['sample']}: {err.args[0]}")
            continue
        e.parameters = {"sample": p.properties["sample"], "copies": p.properties.get("copies", 1)}
        out.append(e)
    return out


_WORK: tuple | None = None  # (entries, data, nn0s, bounds) shared with forked screen workers


def _screen_chunk(idx: list[int]) -> list[tuple]:
    import torch

    torch.set_num_threads(1)
    entries, data, nn0s, bounds = _WORK
    out = []
    for i in idx:
        f = cl.screen(entries[i], data, nn0s[i], bounds)
        out.append((i, f.scale, f.expansion, f.biso, f.qdamp, f.rw, f.nn, f.at_bound))
    return out


def _screen_all(entries, data, nn0s, bounds, jobs: int) -> list[cl.ClusterFit]:
    """Screen fits of all entries, in ``jobs`` forked processes (each on one thread) when jobs > 1."""
    global _WORK
    import multiprocessing as mp

    if jobs <= 1 or len(entries) < 50 or "fork" not in mp.get_all_start_methods():
        return [cl.screen(e, data, n0, bounds) for e, n0 in zip(entries, nn0s)]
    from concurrent.futures import ProcessPoolExecutor

    _WORK = (entries, data, nn0s, bounds)
    try:
        chunks = [list(range(k, len(entries), 4 * jobs)) for k in range(4 * jobs)]  # interleaved: sizes mixed
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
            rows = [row for part in pool.map(_screen_chunk, chunks) for row in part]
    finally:
        _WORK = None
    out: list = [None] * len(entries)
    for i, sc, eps, b, qd, rw_, nn, hit in rows:
        out[i] = cl.ClusterFit(entries[i], sc, eps, b, 0.0, qd, 0.0, rw_, "screen", nn, hit, rw_screen=rw_)
    return out


def _full_one(i: int):
    import torch

    torch.set_num_threads(1)
    starts, data, nn0s, bounds, fit_delta2 = _WORK
    f = cl.fit_full(starts[i], data, nn0s[i], bounds, fit_delta2)
    f.entry = None  # sent back without the histogram
    return f


def _full_all(starts, data, nn0s, bounds, fit_delta2: bool, jobs: int) -> list[cl.ClusterFit]:
    """Full fits of the screen fits ``starts``, in ``jobs`` forked processes when jobs > 1."""
    global _WORK
    import multiprocessing as mp

    if jobs <= 1 or len(starts) < 4 or "fork" not in mp.get_all_start_methods():
        return [cl.fit_full(f, data, n0, bounds, fit_delta2) for f, n0 in zip(starts, nn0s)]
    from concurrent.futures import ProcessPoolExecutor

    _WORK = (starts, data, nn0s, bounds, fit_delta2)
    try:
        order = sorted(range(len(starts)), key=lambda i: -starts[i].entry.hist.d.size)  # big ones first
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
            done = dict(zip(order, pool.map(_full_one, order)))
    finally:
        _WORK = None
    out = []
    for i, f in enumerate(starts):
        done[i].entry = f.entry
        out.append(done[i])
    return out


def independent_points(data: cl.PdfData) -> float:
    """Independent points of the fitted G(r): (r_end − r_start) · Qmax / π (the Nyquist count)."""
    return float((data.r[-1] - data.r[0]) * data.qmax / np.pi)


def within_noise(rw: float, rw_best: float, n_ind: float, n_par: int = 6) -> bool:
    """True when a fit with Rw ``rw`` is not significantly worse than the best (``rw_best``): the F-test on
    the residual sums, (Rw² − Rw_best²) / Rw_best² · (N − p) < 3.84 (1 degree of freedom, 95 %), with N the
    independent points and p the refined parameters."""
    if rw_best <= 0:
        return rw <= rw_best
    return (rw * rw - rw_best * rw_best) / (rw_best * rw_best) * max(n_ind - n_par, 1.0) < SIGNIFICANCE_F


def size_interval(best: cl.ClusterFit, fits: list, n_ind: float) -> dict:
    """Atom counts and diameters (nm) of the best motif's full fits that fit within noise of the best one:
    what the data say about the size (with Qdamp fitted, size and Qdamp trade off, so the range widens)."""
    same = [f for f in fits if f.entry.motif == best.entry.motif and f.stage == "full"
            and within_noise(f.rw, best.rw, n_ind)]
    same = same or [best]
    n = [f.entry.n_atoms for f in same]
    d = [f.diameter_nm for f in same]
    return {"n_atoms": [min(n), max(n)], "diameter_nm": [round(min(d), 3), round(max(d), 3)],
            "fits_compared": sum(f.entry.motif == best.entry.motif and f.stage == "full" for f in fits)}


def _size_neighbours(pool: list, sanities: dict, k: int) -> list:
    """The ``k`` next smaller and ``k`` next larger clusters of the best plausible screen fit's motif."""
    best = next((f for f in pool if sanities[id(f.entry)]["plausible"]), None)
    if best is None or k < 1:
        return []
    same = sorted((f for f in pool if f.entry.motif == best.entry.motif), key=lambda f: f.entry.n_atoms)
    i = next(j for j, f in enumerate(same) if f is best)
    return same[max(0, i - k): i] + same[i + 1: i + 1 + k]


def _sort_key(item):
    fit, san = item
    return (not san["plausible"], fit.stage != "full", fit.rw)


def plot_rw_vs_size(fits: list, path, title: str = ""):
    """PNG: Rw (positions fixed, screen fit) against atom count, one line per motif."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    by_motif: dict = {}
    for f in fits:
        by_motif.setdefault(f.entry.motif, []).append((f.entry.n_atoms, f.rw_screen if f.rw_screen is not None
                                                       else f.rw))
    for motif in sorted(by_motif, key=lambda m: min(v for _, v in by_motif[m])):
        pts = sorted(by_motif[motif])
        ax.plot([a for a, _ in pts], [b for _, b in pts], "o-" if motif != "cvae-decoded" else "x", ms=3, lw=0.8,
                label=motif)
    ax.set_xscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("Rw (positions fixed, screen fit)")
    ax.set_ylim(0, min(1.2, max(0.2, 1.05 * max(f.rw_screen or f.rw for f in fits))))
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _to_result(fit: cl.ClusterFit, san: dict, data: cl.PdfData, element: str) -> RefineResult:
    x = fit.entry.build_positions() * fit.nn
    name = f"{element}{fit.entry.n_atoms}_{fit.entry.motif}"
    g_calc = fit.g_calc
    if g_calc is None:
        m = cl.model_curve(fit.entry.hist.rebin(cl.FULL_BIN), data, fit.nn, fit.biso, fit.delta2, fit.qdamp,
                           fit.qbroad)
        g_calc = fit.scale * m
    props = {"source": fit.entry.source, "motif": fit.entry.motif, "family": fit.entry.family,
             "shape": fit.entry.shape, "parameters": fit.entry.parameters}
    res = RefineResult(Particle(x - x.mean(0), [element] * len(x), name=name, properties=props), fit.scale,
                       fit.expansion, fit.biso, fit.delta2, rw(data.g, g_calc), data.r, data.g, g_calc)
    res.extra = {"source": fit.entry.source, "motif": fit.entry.motif, "family": fit.entry.family,
                 "diameter_nm": round(fit.diameter_nm, 3), "lattice_a": round(fit.lattice_a, 4),
                 "nn_distance": round(fit.nn, 4), "qdamp": fit.qdamp, "qbroad": fit.qbroad, "fit": fit.stage,
                 "rw_screen": fit.rw_screen, "rw_positions": None, "at_bound": list(fit.at_bound), "sanity": san}
    return res


def solve_sources(pattern, element: str, settings: PdfSolveSettings | None = None, model_dir=None,
                  progress=None) -> tuple[list[RefineResult], dict, list]:
    """Rank library and/or DeepStruc candidates against a PDF (module docstring).

    Args:
        pattern: a Pattern of kind ``gr`` (r Å, G Å⁻²), any r range and step.
        element: the metal (normalised symbol).
        settings: :class:`PdfSolveSettings`.
        model_dir: DeepStruc model directory (default the shipped CVAE).
        progress: optional callable(text) for status messages.

    Returns:
        (ranked RefineResults best-first, at most ``write_top``; summary dict; every screen/full fit).
    """
    t0 = time.perf_counter()
    s = settings or PdfSolveSettings()
    say = progress or (lambda text: None)
    r_all, g_all = np.asarray(pattern.x, float), np.asarray(pattern.y, float)
    order = np.argsort(r_all)
    r_all, g_all = r_all[order], g_all[order]
    q = _fit_settings_from(pattern.metadata, s)
    rmax = float(r_all[-1]) if s.rmax is None else min(float(s.rmax), float(r_all[-1]))
    keep = (r_all >= s.rmin) & (r_all <= rmax + 1e-9)
    if keep.sum() < 10:
        raise InputError(f"fewer than 10 data points in the fit range r = {s.rmin}-{rmax} Å",
                         pattern.metadata.get("source"))
    steps = np.diff(r_all[keep])
    if steps.min() <= 0 or steps.max() > 1.05 * steps.min() + 1e-9:  # resample a non-uniform grid
        rr = np.arange(r_all[keep][0], r_all[keep][-1] + 1e-9, float(np.median(steps)))
        data = cl.PdfData(rr, np.interp(rr, r_all, g_all), q["qmin"], q["qmax"], q["qdamp"], q["qbroad"])
    else:
        data = cl.PdfData(r_all[keep], g_all[keep], q["qmin"], q["qmax"], q["qdamp"], q["qbroad"])
    if data.qmax * 3.6 > cl.QP_MAX:
        raise InputError(f"Qmax {data.qmax} Å⁻¹ is above what the library tables hold ({cl.QP_MAX / 3.6:.0f} Å⁻¹)")
    nn_element = 2.0 * metallic_radius(element)
    # the expansion window is centred on the data's nearest-neighbour peak, not on the element's radius: a
    # strained, alloyed or mis-named particle would otherwise sit at a bound (reported: nn_data / nn_element)
    peak = first_peak(data.r, data.g)
    nn_centre = peak if peak is not None else nn_element
    entries: list[cl.ClusterEntry] = []
    info: dict = {}
    timing: dict = {}
    if s.source in ("library", "both"):
        say("loading the cluster library")
        t = time.perf_counter()
        entries += cl.load_library(s.motifs, s.min_atoms, s.max_atoms)
        timing["library_load"] = round(time.perf_counter() - t, 2)
    if s.source in ("cvae", "both"):
        say(f"sampling {s.k} DeepStruc candidates")
        t = time.perf_counter()
        entries += _cvae_entries(pattern, element, nn_element, s, model_dir, info)
        timing["cvae"] = round(time.perf_counter() - t, 2)
    say(f"fitting {len(entries)} candidates (positions fixed)")
    t = time.perf_counter()
    screened = _screen_all(entries, data, [_nn0(e, nn_centre, s.lattice_a) for e in entries], s.expansion_bounds,
                           s.jobs)
    timing["screen"] = round(time.perf_counter() - t, 2)
    sanities = {id(f.entry): sanity(f.entry, s) for f in screened}
    # full fits: the best screens (plausible first) and the best of every motif
    pool = sorted(screened, key=lambda f: (not sanities[id(f.entry)]["plausible"], f.rw))
    chosen = {id(f.entry): f for f in pool[: s.full_top]}
    per_motif: dict = {}
    for f in pool:
        lst = per_motif.setdefault(f.entry.motif, [])
        if len(lst) < s.full_per_motif:
            lst.append(f)
            chosen.setdefault(id(f.entry), f)
    for f in _size_neighbours(pool, sanities, s.full_neighbours):  # so that the size interval is measured
        chosen.setdefault(id(f.entry), f)
    t = time.perf_counter()
    say(f"full fits of {len(chosen)} candidates")
    full = dict(zip(chosen, _full_all(list(chosen.values()), data,
                                      [_nn0(f.entry, nn_centre, s.lattice_a) for f in chosen.values()],
                                      s.expansion_bounds, s.fit_delta2, s.jobs)))
    timing["full"] = round(time.perf_counter() - t, 2)
    fits = [full.get(id(f.entry), f) for f in screened]
    ranked_pairs = sorted(((f, sanities[id(f.entry)]) for f in fits), key=_sort_key)
    best_rw = ranked_pairs[0][0].rw
    n_ind = independent_points(data)
    comparison: dict = {}
    for f, san in ranked_pairs:
        if f.entry.motif not in comparison and san["plausible"]:
            comparison[f.entry.motif] = {"motif": f.entry.motif, "best_rw": round(f.rw, 5),
                                         "delta_rw": round(f.rw - best_rw, 5), "n_atoms": f.entry.n_atoms,
                                         "fit": f.stage,
                                         "worse_beyond_noise": f.stage == "full" and not within_noise(
                                             f.rw, best_rw, n_ind)}
    top = [_to_result(f, san, data, element) for f, san in ranked_pairs[: s.write_top]]
    # restrained position refinement of the best few (reported only)
    t = time.perf_counter()
    for res in top[: s.positions_top]:
        if len(res.particle) > s.positions_max_atoms:
            res.extra["rw_positions_note"] = f"not run: {len(res.particle)} atoms > {s.positions_max_atoms}"
            continue
        say(f"restrained position refinement of {res.particle.name}")
        fs = FitSettings(qmin=data.qmin, qmax=data.qmax, qdamp=res.extra["qdamp"], rmin=float(data.r[0]),
                         rmax=float(data.r[-1]), refine_positions=True, bond_weight=s.bond_weight,
                         max_shift=s.max_shift)
        x0 = res.particle.positions
        x, _, _, _, gc, _ = _refine_positions(x0, data.r, data.g, fs, res.scale, res.biso, res.delta2, False)
        res.extra["rw_positions"] = round(rw(data.g, gc), 5)
        res.extra["position_shift"] = round(float(np.sqrt(np.mean(np.sum((x - x0) ** 2, axis=1)))), 4)
    timing["positions"] = round(time.perf_counter() - t, 2)
    best = ranked_pairs[0][0]
    summary = {
        "sources": s.source, "element": element, "n_candidates": len(entries),
        "n_library": sum(e.source == "library" for e in entries), "n_cvae": sum(e.source == "cvae" for e in entries),
        "fit_range": [float(data.r[0]), float(data.r[-1])], "r_step": float(data.r[1] - data.r[0]),
        "qmin": data.qmin, "qmax": data.qmax, "qdamp_stated": data.qdamp, "qbroad_stated": data.qbroad,
        "cvae_input": info or None, "nn_element": round(nn_element, 4),
        "nn_first_peak": None if peak is None else round(peak, 4),
        "answer": {"motif": best.entry.motif, "family": best.entry.family, "source": best.entry.source,
                   "n_atoms": best.entry.n_atoms, "diameter_nm": round(best.diameter_nm, 3),
                   "lattice_a": round(best.lattice_a, 4), "nn_distance": round(best.nn, 4),
                   "strain_vs_element": round(best.nn / nn_element - 1.0, 4), "biso": round(best.biso, 4),
                   "delta2": round(best.delta2, 4), "qdamp": round(best.qdamp, 5),
                   "qdamp_fitted": data.qdamp is None, "qbroad": round(best.qbroad, 5),
                   "at_bound": list(best.at_bound),
                   "rw": round(best.rw, 5),
                   "plausible": ranked_pairs[0][1]["plausible"],
                   "sizes_within_noise": size_interval(best, fits, n_ind)},
        "independent_points": round(n_ind, 1),
        "motif_comparison": sorted(comparison.values(), key=lambda v: v["best_rw"]),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(s).items()},
        "timing": timing, "seconds": round(time.perf_counter() - t0, 2),
        "ranking": "plausible first, then Rw with atom positions fixed (against the input data only)",
    }
    return top, summary, fits
