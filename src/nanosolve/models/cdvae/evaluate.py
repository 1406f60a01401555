"""CDVAE's evaluation metrics (Xie et al., ICLR 2022, section 5 and appendix).

* Reconstruction: pymatgen ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``; match rate =
  matched / all (an invalid prediction counts as unmatched, as in CDVAE); RMSE = mean over
  matched pairs of pymatgen's RMS displacement normalised by (V/N)^(1/3).
* Validity: structural = every interatomic distance (periodic images included) >= 0.5 Å and
  volume >= 0.1 Å³; compositional = SMACT charge neutrality + Pauling electronegativity test
  with SMACT's original oxidation-state table (``smact14``, the one CDVAE's SMACT version
  used), single elements and all-metal compositions valid.
* Coverage: COV-R (fraction of reference crystals with a generated crystal within the
  structure *and* the composition fingerprint cutoffs) and COV-P (fraction of generated
  crystals within the cutoffs of some reference crystal), cutoffs per dataset as in CDVAE.
* Property statistics: Earth mover's distance (1-D Wasserstein) between generated (valid,
  at most ``n_eval``) and reference densities and numbers of elements.
* Property optimisation: success rates SR5/10/15 = fraction of runs whose best (valid) value
  beats the 5/10/15th percentile of the training values.

Fingerprints (deviation from the paper, see the README): CDVAE uses matminer's
``CrystalNNFingerprint.from_preset('ops')`` and ``ElementProperty.from_preset('magpie')``.
matminer 0.10 pins pandas < 3 and pulls scikit-learn and pymongo, which would downgrade this
environment's pandas; so both are built here from the libraries we already depend on:

* structure: pymatgen ``CrystalNN`` (coordination-number probabilities per site) times pymatgen
  ``LocalStructOrderParams`` motif order parameters for each coordination number, averaged
  over sites (the same construction as matminer's; our motif list and order-parameter
  parameters are pymatgen's defaults, so values differ slightly);
* composition: the 22 Magpie element properties shipped with SMACT (``smact/data/magpie.csv``,
  the same table matminer uses) with min / max / range / fraction-weighted mean / mean
  absolute deviation / mode over the composition (132 values). CDVAE standardises them with
  fixed means and standard deviations computed by its authors on a broad materials set; we
  standardise with fixed statistics of all 21,021 binary compositions A_xB_y (x, y <= 3) of
  H-Bi (noble gases excluded), a reproducible broad set of the same spread (missing values -> 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal

__all__ = ["match_and_rmse", "structure_matcher", "reconstruction_metrics", "structure_valid", "composition_valid",
           "structure_fingerprint", "composition_fingerprint", "composition_feature_names", "fingerprints", "coverage",
           "generation_metrics", "success_rates", "COV_CUTOFFS", "dataset_key"]

# CDVAE's COV thresholds (structure fingerprint distance, scaled composition fingerprint distance).
COV_CUTOFFS = {"perov_5": (0.2, 4.0), "carbon_24": (0.2, 4.0), "mp_20": (0.4, 10.0)}
_ALIASES = {"perov_5": "perov_5", "perov": "perov_5", "perovskite": "perov_5", "carbon_24": "carbon_24",
            "carbon": "carbon_24", "mp_20": "mp_20", "mp20": "mp_20"}


def dataset_key(name: str) -> str:
    """Canonical dataset name (``perov_5``, ``carbon_24``, ``mp_20``) of a name or alias."""
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(sorted(_ALIASES))}")
    return key


# ----- reconstruction ------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def structure_matcher():
    """The CDVAE benchmark's StructureMatcher (stol 0.5, angle_tol 10°, ltol 0.3; shared, cached)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)


def match_and_rmse(pred: Crystal, truth: Crystal) -> tuple[bool, float | None]:
    """(matched, normalised RMS displacement or None) of a predicted vs a true crystal.

    The RMS displacement is pymatgen's ``get_rms_dist`` (normalised by (V/N)^(1/3), dimensionless).
    A prediction pymatgen cannot even compare (e.g. a degenerate cell) is unmatched.
    """
    try:
        res = structure_matcher().get_rms_dist(pred.to_pymatgen(), truth.to_pymatgen())
    except Exception:  # pymatgen raises on degenerate lattices; CDVAE counts them unmatched too
        return False, None
    return (False, None) if res is None else (True, float(res[0]))


def reconstruction_metrics(preds: Sequence[Crystal], truths: Sequence[Crystal],
                           require_valid: bool = True) -> dict:
    """Match rate and mean RMSE over pairs (paper Table 2).

    Args:
        preds, truths: equally long lists of crystals.
        require_valid: count a structurally or compositionally invalid prediction as unmatched
            (CDVAE's rule).

    Returns:
        dict ``match_rate`` (0-1), ``rmse`` (mean over matched, NaN if none), ``n``, ``n_matched``,
        ``n_valid``, ``matched`` (list of bools), ``rms`` (list, None where unmatched).
    """
    if len(preds) != len(truths):
        raise InputError(f"{len(preds)} predictions for {len(truths)} true crystals")
    matched, rms, n_valid = [], [], 0
    for p, t in zip(preds, truths):
        ok = (structure_valid(p) and composition_valid(p)) if require_valid else True
        n_valid += ok
        m, r = match_and_rmse(p, t) if ok else (False, None)
        matched.append(m)
        rms.append(r)
    vals = [r for r in rms if r is not None]
    n = len(preds)
    return {"match_rate": float(np.mean(matched)) if n else float("nan"),
            "rmse": float(np.mean(vals)) if vals else float("nan"), "n": n, "n_matched": int(sum(matched)),
            "n_valid": int(n_valid), "matched": matched, "rms": rms}


# ----- validity ------------------------------------------------------------------------------------
def structure_valid(crystal: Crystal, cutoff: float = 0.5) -> bool:
    """True if no two atoms (periodic images included) are closer than ``cutoff`` Å, the volume is
    at least 0.1 Å³ and the lattice was not flagged ``properties['invalid_lattice']``.

    Unlike CDVAE's distance matrix this also sees an atom's own images, so a cell edge shorter
    than the cutoff is invalid too.
    """
    import vesin

    if crystal.properties.get("invalid_lattice") or crystal.volume < 0.1 or len(crystal) == 0:
        return False
    pos = np.ascontiguousarray(crystal.cart_coords, dtype=np.float64)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    (d,) = nl.compute(pos, np.ascontiguousarray(crystal.lattice), True, quantities="d")
    return not bool(np.any(d < cutoff))


@lru_cache(maxsize=65536)
def _smact_valid(formula: str) -> bool:
    from pymatgen.core import Composition
    from smact.screening import smact_validity

    try:
        # smact14 = SMACT's original oxidation-state list (the default of SMACT 2.x used by CDVAE)
        return bool(smact_validity(Composition(formula), use_pauling_test=True, include_alloys=True,
                                   oxidation_states_set="smact14"))
    except Exception:  # an element SMACT has no data for: cannot be shown charge balanced
        return False


def composition_valid(crystal: Crystal) -> bool:
    """SMACT validity of the crystal's composition (charge-neutral with an electronegativity-
    ordered oxidation-state assignment; one element or all metals -> True). Cached per formula."""
    return _smact_valid(crystal.formula)


# ----- fingerprints --------------------------------------------------------------------------------
# Motifs whose order parameters describe each coordination number (None = the CN probability
# alone). Types and default parameters are pymatgen's LocalStructOrderParams; "bent" is given
# three opening angles (TA in units of 180°: linear, 120°, L-shaped) with pymatgen's default
# Gaussian width (IGW_TA = 1/0.0667).
_BENT_WIDTH = 1.0 / 0.0667
_CN_MOTIFS: dict[int, list[tuple[str, dict | None]]] = {
    2: [("bent", {"TA": 1.0, "IGW_TA": _BENT_WIDTH}), ("bent", {"TA": 2.0 / 3.0, "IGW_TA": _BENT_WIDTH}),
        ("bent", {"TA": 0.5, "IGW_TA": _BENT_WIDTH})],
    3: [("tri_plan", None), ("tri_pyr", None), ("T", None)],
    4: [("sq_plan", None), ("tet", None), ("see_saw_rect", None), ("tri_pyr", None)],
    5: [("pent_plan", None), ("sq_pyr", None), ("tri_bipyr", None)],
    6: [("hex_plan_max", None), ("oct", None), ("pent_pyr", None)],
    7: [("hex_pyr", None), ("pent_bipyr", None)],
    8: [("bcc", None), ("hex_bipyr", None)],
    9: [("q2", None), ("q4", None), ("q6", None)],
    10: [("q2", None), ("q4", None), ("q6", None)],
    11: [("q2", None), ("q4", None), ("q6", None)],
    12: [("cuboct", None), ("q2", None), ("q4", None), ("q6", None)],
}
_MAX_CN = 24


@lru_cache(maxsize=1)
def _fp_tools():
    from pymatgen.analysis.local_env import CrystalNN, LocalStructOrderParams

    # Purely geometric neighbour weights: no electronegativity term (x_diff_weight=0) and no
    # cation/anion rule, so the fingerprint depends on structure only, like matminer's preset.
    cnn = CrystalNN(weighted_cn=False, cation_anion=False, distance_cutoffs=None, x_diff_weight=0.0,
                    porous_adjustment=False)
    ops = {}
    for cn, motifs in _CN_MOTIFS.items():
        types = [t for t, _ in motifs]
        params = [p for _, p in motifs]
        ops[cn] = LocalStructOrderParams(types, parameters=params)
    layout = []  # (cn, n_values): CN weight itself, then one value per motif
    for cn in range(1, _MAX_CN + 1):
        layout.append((cn, 1 + len(_CN_MOTIFS.get(cn, []))))
    return cnn, ops, layout


# CN probabilities below this contribute < 1 % of a site's fingerprint; their order parameters
# (pure-Python triple loops in pymatgen, ~5 ms each) are skipped and left at 0.
_MIN_CN_WEIGHT = 0.01


def _site_fingerprint(structure, i: int) -> np.ndarray:
    cnn, ops, layout = _fp_tools()
    data = cnn.get_nn_data(structure, i, length=_MAX_CN)
    out = []
    for cn, width in layout:
        w = float(data.cn_weights.get(cn, 0.0))
        vals = np.zeros(width)
        vals[0] = w
        if w >= _MIN_CN_WEIGHT and width > 1:
            sites = [structure[i]] + [nn["site"] for nn in data.cn_nninfo[cn]]
            op = ops[cn].get_order_parameters(sites, 0, indices_neighs=list(range(1, len(sites))))
            vals[1:] = w * np.nan_to_num(np.array([np.nan if v is None else v for v in op], dtype=float))
        out.append(vals)
    return np.concatenate(out)


def _orbits(structure) -> tuple[np.ndarray, np.ndarray]:
    """(representative site indices, multiplicities): symmetry-equivalent sites have identical
    fingerprints, so each orbit is computed once (spglib, tight tolerance; P1 if spglib fails)."""
    import spglib

    cell = (structure.lattice.matrix, structure.frac_coords, [sp.Z for sp in structure.species])
    try:
        ds = spglib.get_symmetry_dataset(cell, symprec=1e-3)
        eq = np.asarray(ds.equivalent_atoms if ds is not None else np.arange(len(structure)))
    except Exception:
        eq = np.arange(len(structure))
    reps, counts = np.unique(eq, return_counts=True)
    return reps, counts


def structure_fingerprint(crystal: Crystal) -> np.ndarray:
    """[D] local-environment fingerprint averaged over sites (D = 57; values in about [0, 1]).

    Per site: for every coordination number CN = 1..24 the CrystalNN probability w(CN), followed by
    w(CN) times each motif order parameter of that CN (see ``_CN_MOTIFS``).
    """
    s = crystal.to_pymatgen()
    reps, mult = _orbits(s)
    fps = np.array([_site_fingerprint(s, int(i)) for i in reps])
    return mult @ fps / mult.sum()


@lru_cache(maxsize=1)
def _magpie_table() -> tuple[list[str], dict[str, np.ndarray]]:
    """(22 Magpie property names, element symbol -> [22] values) from SMACT's magpie.csv."""
    import warnings

    from smact.data_loader import lookup_element_magpie_data

    from nanosolve.structures.elements import symbol

    names = None
    table = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SMACT warns for every element it has no row for
        for z in range(1, 119):
            sym = symbol(z)
            row = lookup_element_magpie_data(sym)
            if row is None:
                continue
            if names is None:
                names = [k for k in row if k != "element"]
            table[sym] = np.array([float(row.get(k, np.nan)) for k in names], dtype=float)
    return names, table


_STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")


def composition_feature_names() -> list[str]:
    """[132] names ``'<stat> <Magpie property>'`` of :func:`composition_fingerprint`'s values."""
    names, _ = _magpie_table()
    return [f"{stat} {name}" for name in names for stat in _STATS]


def composition_fingerprint(crystal: Crystal) -> np.ndarray:
    """[132] Magpie composition fingerprint: for each of the 22 Magpie element properties the
    minimum, maximum, range, fraction-weighted mean, mean absolute deviation and mode (value of
    the most abundant element; ties -> the smallest value). NaN where an element lacks data.
    Feature order: property-major, see :func:`composition_feature_names`."""
    return _magpie_fp(crystal.composition)


def _magpie_fp(comp: dict[str, float]) -> np.ndarray:
    names, table = _magpie_table()
    elems = sorted(comp)
    frac = np.array([comp[e] for e in elems], dtype=float)
    frac /= frac.sum()
    vals = np.array([table.get(e, np.full(len(names), np.nan)) for e in elems])  # [E, 22]
    mean = frac @ vals
    avg_dev = frac @ np.abs(vals - mean)
    top = frac >= frac.max() - 1e-12
    mode = np.min(vals[top], axis=0)
    stats = np.stack([vals.min(0), vals.max(0), vals.max(0) - vals.min(0), mean, avg_dev, mode], axis=1)
    return stats.reshape(-1)


def _fingerprints_serial(items) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints of crystals given as Crystal objects or (lattice, frac, species) tuples."""
    s_fp, c_fp = [], []
    for c in items:
        if not isinstance(c, Crystal):
            c = Crystal(*c)
        try:
            s_fp.append(structure_fingerprint(c))
        except Exception:  # CrystalNN fails on degenerate cells; CDVAE drops those crystals too
            s_fp.append(np.full(_N_STRUCT, np.nan))
        c_fp.append(composition_fingerprint(c))
    n = len(items)
    return (np.array(s_fp, dtype=float).reshape(n, _N_STRUCT), np.array(c_fp, dtype=float).reshape(n, -1))


_N_STRUCT = 1 + sum(1 + len(_CN_MOTIFS.get(cn, [])) for cn in range(2, _MAX_CN + 1))
# Below this many crystals a second process costs more (spawn + imports, ~3 s) than it saves.
_PARALLEL_MIN = 200


def fingerprints(crystals: Sequence[Crystal], workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(structure fingerprints [M, 57], composition fingerprints [M, 132]); a crystal whose
    structure fingerprint cannot be computed gets a NaN row (excluded from coverage, as in CDVAE).

    CrystalNN + order parameters cost ~20 ms per site (pure Python in pymatgen), so with
    ``workers >= 2`` (default for >= 200 crystals) half of the crystals go to one extra process
    (never more than one).
    """
    crystals = list(crystals)
    n = len(crystals)
    if workers is None:
        workers = 2 if n >= _PARALLEL_MIN else 1
    if workers <= 1 or n < 2:
        return _fingerprints_serial(crystals)
    import multiprocessing as mp
    import warnings
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    half = n // 2
    # plain arrays cross the process boundary; "spawn" because forking a process that holds
    # torch's thread pools can deadlock
    payload = [(c.lattice, c.frac_coords, list(c.species)) for c in crystals[half:]]
    a = None
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
            fut = ex.submit(_fingerprints_serial, payload)
            a = _fingerprints_serial(crystals[:half])
            b = fut.result()
    except (OSError, RuntimeError, BrokenProcessPool) as err:  # no second process here: do it serially
        warnings.warn(f"fingerprints: extra process failed ({type(err).__name__}: {err}); continuing serially",
                      stacklevel=2)
        if a is None:
            a = _fingerprints_serial(crystals[:half])
        b = _fingerprints_serial(crystals[half:])
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])


# ----- coverage and generation ---------------------------------------------------------------------
_NOBLE = ("He", "Ne", "Ar", "Kr", "Xe")


@lru_cache(maxsize=1)
def _comp_scaler() -> tuple[np.ndarray, np.ndarray]:
    """(mean [132], std [132]) of the composition fingerprint over a fixed broad set: every binary
    A_xB_y (x, y <= 3, 7 ratios) of the elements H-Bi with Magpie data, noble gases excluded
    (21,021 compositions). CDVAE standardises with fixed statistics of a broad materials set; these
    are our dataset-independent equivalent (their spread matches CDVAE's published scaler in
    magnitude, e.g. std of mean Z 17.7 vs 16.8)."""
    from itertools import combinations

    from nanosolve.structures.elements import symbol

    _, table = _magpie_table()
    pool = [symbol(z) for z in range(1, 84) if symbol(z) in table and symbol(z) not in _NOBLE]
    ratios = ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2))
    fps = np.array([_magpie_fp({a: x, b: y}) for a, b in combinations(pool, 2) for x, y in ratios])
    mu, sd = np.nanmean(fps, axis=0), np.nanstd(fps, axis=0)
    return np.nan_to_num(mu), np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)


def _scale_comp(comp: np.ndarray) -> np.ndarray:
    mu, sd = _comp_scaler()
    return np.nan_to_num((comp - mu) / sd, nan=0.0)  # missing element data -> 0, as CDVAE


def coverage(gen_fps: tuple[np.ndarray, np.ndarray], ref_fps: tuple[np.ndarray, np.ndarray],
             struc_cutoff: float, comp_cutoff: float) -> dict:
    """COV-R / COV-P from fingerprints (see module doc).

    Args:
        gen_fps, ref_fps: (structure [M, 57], composition [M, 132]) from :func:`fingerprints`;
            rows with NaN structure fingerprints are dropped (but still count in COV-P's denominator).
        struc_cutoff, comp_cutoff: distance thresholds (composition distance after standardising
            with fixed statistics, see ``_comp_scaler``).

    Returns:
        dict ``cov_r``, ``cov_p`` (0-1), ``amsd_r``, ``amsd_p``, ``amcd_r``, ``amcd_p`` (mean minimum
        structure / composition distances, recall = from each reference crystal, precision = from
        each generated one).
    """
    from scipy.spatial.distance import cdist

    gs, gc = gen_fps
    rs, rc = ref_fps
    n_gen = len(gs)
    gk = ~np.isnan(gs).any(axis=1)
    rk = ~np.isnan(rs).any(axis=1)
    gs, gc, rs, rc = gs[gk], gc[gk], rs[rk], rc[rk]
    if n_gen == 0 or len(gs) == 0 or len(rs) == 0:
        return {"cov_r": 0.0, "cov_p": 0.0, "amsd_r": float("nan"), "amsd_p": float("nan"),
                "amcd_r": float("nan"), "amcd_p": float("nan")}
    gc_s, rc_s = _scale_comp(gc), _scale_comp(rc)
    ds = cdist(gs, rs)
    dc = cdist(gc_s, rc_s)
    s_rec, s_prec = ds.min(axis=0), ds.min(axis=1)
    c_rec, c_prec = dc.min(axis=0), dc.min(axis=1)
    return {"cov_r": float(np.mean((s_rec <= struc_cutoff) & (c_rec <= comp_cutoff))),
            "cov_p": float(np.sum((s_prec <= struc_cutoff) & (c_prec <= comp_cutoff)) / n_gen),
            "amsd_r": float(s_rec.mean()), "amsd_p": float(s_prec.mean()),
            "amcd_r": float(c_rec.mean()), "amcd_p": float(c_prec.mean())}


def generation_metrics(generated: Sequence[Crystal], reference: Sequence[Crystal], n_eval: int = 1000,
                       dataset: str = "perov_5", struc_cutoff: float | None = None,
                       comp_cutoff: float | None = None, seed: int = 0,
                       reference_fps: tuple[np.ndarray, np.ndarray] | None = None,
                       workers: int | None = None) -> dict:
    """CDVAE's generation metrics (paper Table 3).

    Args:
        generated: generated crystals (all of them; invalid ones count against validity and COV-P).
        reference: reference (test-set) crystals.
        n_eval: number of valid generated crystals drawn (seeded) for the EMDs; fewer if fewer are valid.
        dataset: ``perov_5`` / ``carbon_24`` / ``mp_20`` (or alias) -> COV cutoffs of the paper.
        struc_cutoff, comp_cutoff: override the dataset's cutoffs.
        seed: seed of the n_eval draw.
        reference_fps: precomputed :func:`fingerprints` of ``reference`` (saves time on repeats).
        workers: processes for the fingerprints (see :func:`fingerprints`; at most 2 used).

    Returns:
        dict ``valid_struct``, ``valid_comp``, ``valid`` (fractions 0-1), ``cov_r``, ``cov_p``
        (0-1), ``emd_density`` (g/cm³), ``emd_n_elements``, plus ``amsd_*``/``amcd_*``,
        ``n_generated``, ``n_valid``, ``n_eval_used``, ``struc_cutoff``, ``comp_cutoff``.
    """
    from scipy.stats import wasserstein_distance

    if len(generated) == 0 or len(reference) == 0:
        raise InputError(f"need generated and reference crystals, got {len(generated)} and {len(reference)}")
    cs, cc = COV_CUTOFFS[dataset_key(dataset)]
    cs = cs if struc_cutoff is None else float(struc_cutoff)
    cc = cc if comp_cutoff is None else float(comp_cutoff)
    v_struct = np.array([structure_valid(c) for c in generated])
    v_comp = np.array([composition_valid(c) for c in generated])
    valid = v_struct & v_comp
    gen_fps = fingerprints(generated, workers)
    ref_fps = fingerprints(reference, workers) if reference_fps is None else reference_fps
    if len(ref_fps[0]) != len(reference):
        raise InputError(f"reference_fps has {len(ref_fps[0])} rows for {len(reference)} reference crystals")
    cov = coverage(gen_fps, ref_fps, cs, cc)
    idx = np.flatnonzero(valid)
    if len(idx) > n_eval:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n_eval, replace=False))
    if len(idx):
        emd_density = wasserstein_distance([generated[i].density for i in idx], [c.density for c in reference])
        emd_nel = wasserstein_distance([len(set(generated[i].species)) for i in idx],
                                       [len(set(c.species)) for c in reference])
    else:
        emd_density = emd_nel = float("nan")
    return {"valid_struct": float(v_struct.mean()), "valid_comp": float(v_comp.mean()),
            "valid": float(valid.mean()), **cov, "emd_density": float(emd_density),
            "emd_n_elements": float(emd_nel), "n_generated": len(generated), "n_valid": int(valid.sum()),
            "n_eval_used": int(len(idx)), "struc_cutoff": cs, "comp_cutoff": cc}


# ----- property optimisation -----------------------------------------------------------------------
def success_rates(values, train_values, percentiles: Sequence[float] = (5, 10, 15),
                  minimize: bool = True) -> dict:
    """Success rates of property optimisation (paper Table 4).

    Args:
        values: [R] best property value reached by each of R optimisation runs, or [S, R] values of
            S decoded steps per run (the best over S is taken). NaN = invalid crystal (never a success).
        train_values: property values of the training set; the p-th percentile is the target
            (the (100-p)-th when maximising).
        percentiles: the p's.
        minimize: lower is better (CDVAE's setting).

    Returns:
        dict ``'SR<p>'`` -> fraction of runs reaching the target, e.g. ``{'SR5': .., 'SR10': .., 'SR15': ..}``.
    """
    v = np.asarray(values, dtype=float)
    t = np.asarray(train_values, dtype=float).reshape(-1)
    t = t[np.isfinite(t)]
    if v.size == 0 or t.size == 0:
        raise InputError("success_rates needs optimised values and finite training values")
    bad = np.inf if minimize else -np.inf
    v = np.where(np.isfinite(v), v, bad)
    if v.ndim == 2:
        v = v.min(axis=0) if minimize else v.max(axis=0)
    out = {}
    for p in percentiles:
        if minimize:
            ok = v <= np.percentile(t, p)
        else:
            ok = v >= np.percentile(t, 100 - p)
        out[f"SR{p:g}"] = float(np.mean(ok))
    return out
