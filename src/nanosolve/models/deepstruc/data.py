"""DeepStruc training data: mono-metallic cluster sets, their PDFs, GraphStore files and splits.

Sets (geometry from :mod:`nanosolve.structures.builders.clusters`, i.e. ``ase.cluster``):

* ``paper``: FCC clusters bounded by (100)/(110)/(111) facets with 2..8 layers each (343
  combinations), fewer than 100 atoms; for each of the 29 d-block metals of periods 4-6 the
  ideal lattice constant (metallic radius) times 10 factors from 0.99 to 1.01.
* ``extended``: adds BCC and SC (same layer scheme), HCP (2..8 layers on (0001), (10-10),
  (11-20)), Mackay icosahedra, Ino/Marks decahedra and (truncated) octahedra, up to 200 atoms.

Duplicates are removed at two levels: layer combinations that cut the same cluster (compared by
atom count and sorted pair distances in units of the nearest-neighbour distance, 1e-4) are kept
once (the first in enumeration order); and because the PDF of a single element does not depend
on the element (form factor cancels, see :mod:`.pdf`), two metals whose lattice constants
coincide (equal metallic radii, or r₁·s₁ = r₂·s₂ to 1e-4 Å) give the same record, kept once
(first metal in :data:`METALS` order). Only 8 distinct FCC clusters with < 100 atoms exist in the
343 layer combinations, so the paper set has 8 geometries × (distinct lattice constants) records
(1,592 with the defaults) where the paper reports ~3,137: the paper's exact recipe is not
recoverable from its text; this is the documented one.

PDFs: :func:`nanosolve.models.deepstruc.pdf.cluster_pdf` on ``linspace(0, rmax, n_r)`` (default
0-30 Å, 3,000 points, the authors' grid) with Qmin/Qmax/Qdamp from :class:`PDFSettings` and, per
structure, Biso and delta2 drawn uniformly from their ranges with ``numpy.random.default_rng(seed)``
in record order, so a set is a pure function of its settings and seed.

Record fields: ``positions`` [n, 3] float64 Å (centred at the centroid), ``pdf`` [n_r] float32
(Å⁻²), ``element``, ``shape``, ``parameters`` (builder arguments), ``n_atoms``, ``scale``
(lattice factor), ``lattice_constant`` Å, ``nn_distance`` Å, ``biso`` Å², ``delta2`` Å², ``group``
(the geometry: same cluster at any lattice constant / element). Store attrs: the settings, r grid,
counts, seed, ``format`` = ``nanosolve.deepstruc.v1``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist

from nanosolve.datasets.splits import grouped_split, random_split
from nanosolve.datasets.storage import GraphStore
from nanosolve.errors import InputError
from nanosolve.models.deepstruc.pdf import cluster_pdf, default_r_grid
from nanosolve.structures.builders.clusters import build_cluster, lattice_constant
from nanosolve.structures.elements import metallic_radius

__all__ = ["METALS", "PAPER_SCALES", "PDFSettings", "ClusterRecord", "enumerate_geometries", "enumerate_clusters",
           "simulate_records", "generate", "paper_split", "grouped_structure_split", "geometry_groups", "read_split", "DeepStrucDataset",
           "load_tensors", "FORMAT"]

FORMAT = "nanosolve.deepstruc.v1"
METALS = ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
          "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
          "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg")
PAPER_SCALES = tuple(float(s) for s in np.linspace(0.99, 1.01, 10))
PAPER_SPLIT = (2400, 600, 137)
_CUBIC = ((1, 0, 0), (1, 1, 0), (1, 1, 1))
_HEX = ((0, 0, 0, 1), (1, 0, -1, 0), (1, 1, -2, 0))
_REFERENCE = "Cu"  # geometries are built once for this metal and rescaled (ASE cuts scale linearly with a)


@dataclass
class PDFSettings:
    """PDF simulation settings of a data set (lengths Å, Q Å⁻¹, B and delta2 Å²).

    Defaults: Qmax 30 and Qdamp 0.04 as in the paper; Qmin 0.7 as in the authors' distributed
    PDFs (a measured PDF never holds Q < ~0.5 Å⁻¹, and the low-Q small-angle signal of a cluster
    would otherwise dominate the training PDFs); Biso 0.2-0.8 Å² (U 0.0025-0.010 Å², metals at
    room temperature) and delta2 0-4 Å² (typical fitted values for metal nanoparticles), uniform.
    """

    qmin: float = 0.7
    qmax: float = 30.0
    qdamp: float = 0.04
    biso_range: tuple[float, float] = (0.2, 0.8)
    delta2_range: tuple[float, float] = (0.0, 4.0)
    rmax: float = 30.0
    n_r: int = 3000

    def __post_init__(self):
        self.biso_range = tuple(float(v) for v in self.biso_range)
        self.delta2_range = tuple(float(v) for v in self.delta2_range)
        for name in ("biso_range", "delta2_range"):
            lo, hi = getattr(self, name)
            if len(getattr(self, name)) != 2 or lo > hi or lo < 0:
                raise InputError(f"{name} must be (low, high) with 0 <= low <= high, got {getattr(self, name)}")
        if not (0 <= self.qmin < self.qmax) or self.qdamp < 0 or self.rmax <= 0 or self.n_r < 2:
            raise InputError(f"invalid PDF settings {asdict(self)}")

    @property
    def r(self) -> np.ndarray:
        return default_r_grid(self.rmax, self.n_r)


@dataclass
class ClusterRecord:
    """One cluster before its PDF is simulated."""

    key: str
    group: str
    shape: str
    element: str
    parameters: dict
    scale: float
    lattice_constant: float
    nn_distance: float
    positions: np.ndarray = field(repr=False)


# --------------------------------------------------------------------------------------------
# enumeration


def _shape_parameters(kind: str, layers: Sequence[int]) -> list[tuple[str, dict]]:
    """(shape, builder kwargs) in a fixed order."""
    combos = list(itertools.product(layers, repeat=3))
    out = [("fcc", {"layers": list(c), "surfaces": [list(s) for s in _CUBIC]}) for c in combos]
    if kind == "paper":
        return out
    out += [("bcc", {"layers": list(c), "surfaces": [list(s) for s in _CUBIC]}) for c in combos]
    out += [("sc", {"layers": list(c), "surfaces": [list(s) for s in _CUBIC]}) for c in combos]
    out += [("hcp", {"layers": list(c), "surfaces": [list(s) for s in _HEX]}) for c in combos]
    out += [("icosahedron", {"shells": k}) for k in range(2, 5)]
    out += [("decahedron", {"p": p, "q": q, "r": r}) for p in range(1, 7) for q in range(1, 7) for r in range(0, 4)]
    out += [("octahedron", {"length": n, "cutoff": c}) for n in range(2, 10) for c in range(0, (n - 1) // 2 + 1)]
    return out


def _param_label(shape: str, params: dict) -> str:
    if "layers" in params:
        return f"{shape}_l" + "-".join(str(v) for v in params["layers"])
    return shape + "_" + "_".join(f"{k}{v}" for k, v in params.items())


def _fingerprint(x: np.ndarray, nn: float) -> tuple:
    return (x.shape[0], np.round(np.sort(pdist(x)) / nn, 4).tobytes())


def enumerate_geometries(kind: str = "paper", layers: Iterable[int] = range(2, 9), max_atoms: int | None = None,
                         min_atoms: int = 2, shapes: Sequence[str] | None = None) -> list[dict]:
    """Distinct cluster geometries for the reference metal at its ideal lattice constant.

    Args:
        kind: ``'paper'`` (FCC) or ``'extended'`` (all seven shapes).
        layers: layer counts per facet family for FCC/BCC/SC/HCP.
        max_atoms: keep clusters with ``n_atoms < max_atoms`` for 'paper' (default 100, the
            paper's "< 100 atoms") and ``n_atoms <= max_atoms`` for 'extended' (default 200).
        min_atoms: drop smaller clusters (a single atom has no PDF).
        shapes: only these shapes (default: all of the set).

    Returns:
        list of dicts ``shape, parameters, group, positions [n, 3] Å, n_atoms`` in enumeration order.
    """
    if kind not in ("paper", "extended"):
        raise InputError(f"unknown DeepStruc set {kind!r}; use 'paper' or 'extended'")
    if max_atoms is None:
        max_atoms = 100 if kind == "paper" else 200
    keep = (lambda n: n < max_atoms) if kind == "paper" else (lambda n: n <= max_atoms)
    layers = [int(v) for v in layers]
    nn = 2.0 * metallic_radius(_REFERENCE)
    seen: set = set()
    out = []
    todo = _shape_parameters(kind, layers)
    if shapes is not None:
        unknown = sorted(set(shapes) - {sh for sh, _ in todo})
        if unknown:
            raise InputError(f"shapes {unknown} are not part of the {kind!r} set")
        todo = [(sh, pa) for sh, pa in todo if sh in set(shapes)]
    for shape, params in todo:
        kwargs = dict(params)
        if "surfaces" in kwargs:
            kwargs["surfaces"] = [tuple(s) for s in kwargs["surfaces"]]
        if shape == "octahedron" and kwargs["cutoff"] > (kwargs["length"] - 1) // 2:
            continue
        p = build_cluster(shape, _REFERENCE, **kwargs)
        n = len(p)
        if not keep(n) or n < min_atoms:
            continue
        fp = (shape,) + _fingerprint(p.positions, nn)
        if fp in seen:
            continue
        seen.add(fp)
        out.append({"shape": shape, "parameters": params, "group": _param_label(shape, params),
                    "positions": p.positions, "n_atoms": n})
    return out


def enumerate_clusters(kind: str = "paper", elements: Sequence[str] = METALS, scales: Sequence[float] = PAPER_SCALES,
                       layers: Iterable[int] = range(2, 9), max_atoms: int | None = None,
                       shapes: Sequence[str] | None = None) -> list[ClusterRecord]:
    """All (geometry × metal × lattice factor) clusters of a set, duplicates removed (see module docstring)."""
    if not elements or not scales:
        raise InputError("a DeepStruc set needs at least one element and one lattice factor")
    geometries = enumerate_geometries(kind, layers, max_atoms, shapes=shapes)
    lattice_of = {"fcc": "fcc", "bcc": "bcc", "sc": "sc", "hcp": "hcp"}
    records = []
    for geo in geometries:
        lat = lattice_of.get(geo["shape"], "fcc")  # icosahedra/decahedra/octahedra are FCC-derived
        a_ref = lattice_constant(_REFERENCE, lat)
        seen_a: set = set()
        for element in elements:
            for s in scales:
                a = lattice_constant(element, lat, s)
                key_a = round(a, 4)
                if key_a in seen_a:  # another metal already gave this exact cluster
                    continue
                seen_a.add(key_a)
                records.append(ClusterRecord(
                    key=f"{geo['group']}_{element}_s{s:.5f}", group=geo["group"], shape=geo["shape"], element=element,
                    parameters=geo["parameters"], scale=float(s), lattice_constant=a,
                    nn_distance=float(2 * metallic_radius(element) * s), positions=geo["positions"] * (a / a_ref)))
    return records


# --------------------------------------------------------------------------------------------
# PDFs and files


def simulate_records(records: Sequence[ClusterRecord], settings: PDFSettings | None = None, seed: int = 0,
                     batch: int = 256) -> list[dict]:
    """Store-ready dicts (see module docstring) with per-record Biso/delta2 drawn from ``seed``."""
    settings = settings or PDFSettings()
    rng = np.random.default_rng(seed)
    biso = rng.uniform(*settings.biso_range, size=len(records))
    delta2 = rng.uniform(*settings.delta2_range, size=len(records))
    r = settings.r
    out = []
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        g = cluster_pdf([rec.positions for rec in chunk], r=r, qmin=settings.qmin, qmax=settings.qmax,
                        qdamp=settings.qdamp, biso=biso[start:start + len(chunk)],
                        delta2=delta2[start:start + len(chunk)])
        for k, rec in enumerate(chunk):
            out.append({
                "positions": np.ascontiguousarray(rec.positions, dtype=np.float64),
                "pdf": g[k].astype(np.float32),
                "element": rec.element, "shape": rec.shape, "parameters": rec.parameters,
                "n_atoms": int(rec.positions.shape[0]), "scale": rec.scale,
                "lattice_constant": rec.lattice_constant, "nn_distance": rec.nn_distance,
                "biso": float(biso[start + k]), "delta2": float(delta2[start + k]), "group": rec.group,
            })
    return out


def generate(path: str | os.PathLike, kind: str = "paper", seed: int = 0, settings: PDFSettings | None = None,
             elements: Sequence[str] = METALS, scales: Sequence[float] = PAPER_SCALES,
             layers: Iterable[int] = range(2, 9), max_atoms: int | None = None,
             shapes: Sequence[str] | None = None) -> GraphStore:
    """Build a set and write it to the GraphStore file ``path`` (a new file; an existing one must hold
    exactly the same records, else InputError). Returns the store opened read-only."""
    settings = settings or PDFSettings()
    t0 = time.perf_counter()
    layers = list(layers)
    records = enumerate_clusters(kind, elements, scales, layers, max_atoms, shapes)
    rows = simulate_records(records, settings, seed)
    path = Path(path)
    with GraphStore(path, mode="a") as store:
        store.put_many((i, rec.key, row) for i, (rec, row) in enumerate(zip(records, rows)))
        store.set_attrs({
            "format": FORMAT, "kind": kind, "seed": int(seed), "settings": asdict(settings),
            "elements": list(elements), "shapes": sorted({r.shape for r in records}), "scales": [float(s) for s in scales], "layers": layers,
            "max_atoms": max_atoms if max_atoms is not None else (100 if kind == "paper" else 200),
            "max_atoms_rule": "n < max_atoms" if kind == "paper" else "n <= max_atoms",
            "n_records": len(records), "n_groups": len({r.group for r in records}),
            "r": {"rmin": 0.0, "rmax": settings.rmax, "n_r": settings.n_r},
            "generation_seconds": round(time.perf_counter() - t0, 2),
        })
    return GraphStore(path, mode="r")


def _check_store(store) -> None:
    if store.attrs.get("format") != FORMAT:
        raise InputError(f"not a DeepStruc data set (format {store.attrs.get('format')!r}, expected {FORMAT!r})",
                         getattr(store, "path", None))


# --------------------------------------------------------------------------------------------
# splits


def paper_split(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random train/val/test split with the paper's sizes 2,400/600/137 when ``n`` = 3,137,
    else the same proportions (76.5 / 19.1 / 4.4 %)."""
    total = sum(PAPER_SPLIT)
    return random_split(int(n), {name: k / total for name, k in zip(("train", "val", "test"), PAPER_SPLIT)}, seed)


def grouped_structure_split(groups: Sequence[str], fractions=(0.7, 0.15, 0.15),
                            seed: int = 0) -> dict[str, np.ndarray]:
    """Split in which a cluster geometry (all its lattice constants and metals) stays in one part.

    Default fractions 0.7/0.15/0.15 rather than the paper's 76.5/19.1/4.4 %: the paper set has only
    8 geometries of ~200 records each, so a 4.4 % test part could not hold even one of them.
    """
    return grouped_split(list(groups), fractions, seed)


def geometry_groups(store, tol: float = 1e-3) -> list[str]:
    """Group label of each record in which builder labels that cut the same geometry are merged.

    Builder labels of different shapes can cut the very same cluster (e.g. ``fcc_l2-2-2`` and
    ``octahedron_length3_cutoff0``, 4 such pairs among the 85 geometries of <= 100 atoms), so a
    split by label could put one geometry in train and test. Two labels are merged when their
    clusters have equal atom counts and sorted pair distances in units of the nearest-neighbour
    distance agree to ``tol`` (one record of each label is compared).

    Returns:
        [N] label per record: the first (sorted) builder label of its geometry.
    """
    meta = store.meta_table()
    labels = [m["group"] for m in meta]
    first: dict[str, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(lab, i)
    prints: list[tuple[str, int, np.ndarray]] = []
    for lab in sorted(first):
        x = np.asarray(store[first[lab]]["positions"], dtype=np.float64)
        d = np.sort(pdist(x))
        prints.append((lab, x.shape[0], d / d[0] if d.size else d))
    merged: dict[str, str] = {}
    for k, (lab, n, d) in enumerate(prints):
        merged[lab] = lab
        for lab0, n0, d0 in prints[:k]:
            if n0 == n and merged[lab0] == lab0 and np.allclose(d, d0, atol=tol, rtol=0):
                merged[lab] = lab0
                break
    return [merged[lab] for lab in labels]


def read_split(store, how: str = "paper", seed: int = 0, fractions=None) -> dict[str, np.ndarray]:
    """Split a stored set: ``how`` = 'paper' (random, paper sizes), 'grouped' (by builder label)
    or 'geometry' (by geometry: builder labels cutting the same cluster merged, see
    :func:`geometry_groups`; no test geometry at any lattice constant in training)."""
    _check_store(store)
    if how == "paper":
        return paper_split(len(store), seed)
    if how in ("grouped", "geometry"):
        groups = [m["group"] for m in store.meta_table()] if how == "grouped" else geometry_groups(store)
        return grouped_structure_split(groups, seed=seed) if fractions is None else \
            grouped_structure_split(groups, fractions, seed)
    raise InputError(f"unknown split {how!r}; use 'paper', 'grouped' or 'geometry'")


# --------------------------------------------------------------------------------------------
# model tensors


class DeepStrucDataset:
    """Indexable view of a stored set for training: item i -> dict of per-sample tensors
    (``pdf [n_r]``, ``features [max_atoms, F]``, ``mask [max_atoms]``, ``scale``, ``n_atoms``)."""

    def __init__(self, store, indices=None, n_satellites: int = 11, max_atoms: int = 100, n_r: int | None = None):
        _check_store(store)
        self.store = store
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.n_satellites, self.max_atoms, self.n_r = int(n_satellites), int(max_atoms), n_r
        r = store.attrs["r"]
        self.r = default_r_grid(r["rmax"], r["n_r"])

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> dict:
        from nanosolve.models.deepstruc.representation import collate

        rec = self.store.read(int(self.indices[i]), fields=("positions", "pdf"))
        batch = collate([rec], self.n_satellites, self.max_atoms, self.n_r, self.r)
        return {k: v[0] for k, v in batch.items()}


def load_tensors(store, indices=None, n_satellites: int = 11, max_atoms: int = 100, n_r: int | None = None) -> dict:
    """All (or ``indices``) records of a stored set as stacked model tensors (see :func:`representation.collate`),
    plus ``index [B]`` (store positions)."""
    from nanosolve.models.deepstruc.representation import collate

    _check_store(store)
    idx = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise InputError("no records selected", getattr(store, "path", None))
    r = store.attrs["r"]
    recs = [store.read(int(i), fields=("positions", "pdf")) for i in idx]
    too_big = [int(i) for i, rec in zip(idx, recs) if rec["positions"].shape[0] > max_atoms]
    if too_big:
        raise InputError(f"{len(too_big)} records have more than max_atoms = {max_atoms} atoms (first: {too_big[0]})",
                         getattr(store, "path", None))
    out = collate(recs, n_satellites, max_atoms, n_r, default_r_grid(r["rmax"], r["n_r"]))
    import torch

    out["index"] = torch.as_tensor(idx)
    return out
