"""CDVAE data: CSV / CIF-folder loaders, Niggli preprocessing, splits, AFLOW-prototype crystals.

CSV format (CDVAE's ``perov_5``, ``carbon_24``, ``mp_20``): one row per crystal, a ``cif``
column holding a whole CIF as a quoted multi-line string, usually a leading unnamed index
column and a ``material_id``; every other column whose values are all numbers is a property
(``heat_ref``, ``heat_all``, ``dir_gap``, ``ind_gap`` for perov_5; ``energy_per_atom`` for
carbon_24; ``formation_energy_per_atom``, ``band_gap``, ``e_above_hull`` ... for mp_20).

Preprocessing follows CDVAE: optional primitive cell, Niggli reduction, then the lattice is
rebuilt from its six parameters in the canonical orientation of
:func:`~nanosolve.structures.crystal.lattice_from_parameters` (a along x, b in the xy plane),
with fractional coordinates wrapped into [0, 1). A crystal is therefore fully described by
(lengths, angles, frac_coords, species), which is what the model predicts.

Parsing thousands of CIFs takes tens of seconds, so a parsed table is cached as a plain ``.npz``
(no pickle) in ``$NANOSOLVE_CACHE`` or ``~/.cache/nanosolve/cdvae``, keyed by the CSV's path,
size, mtime and the loading options.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_write
from nanosolve.datasets import splits
from nanosolve.errors import InputError
from nanosolve.structures.crystal import CRYSTAL_SYSTEMS, Crystal, lattice_from_parameters
from nanosolve.structures.elements import symbol

__all__ = ["CrystalTable", "read_cdvae_csv", "read_cif_folder", "preprocess", "composition_split",
           "random_split", "to_data_list", "prototype_table", "cache_dir", "PROPERTY_COLUMNS"]

# Known property columns of the three CDVAE datasets (documentation; any numeric column is loaded).
PROPERTY_COLUMNS = {
    "perov_5": ("heat_ref", "heat_all", "dir_gap", "ind_gap"),
    "carbon_24": ("energy_per_atom",),
    "mp_20": ("formation_energy_per_atom", "band_gap", "e_above_hull"),
}
_ID_COLUMNS = ("material_id", "id", "mp_id")
_NON_PROPS = {"", "cif", "material_id", "id", "mp_id", "formula", "pretty_formula", "elements",
              "unnamed: 0", "index"}
_CACHE_VERSION = 1


@dataclass
class CrystalTable:
    """Crystals loaded from one source.

    Attributes:
        crystals: M preprocessed crystals (ordered, frac coords in [0, 1)).
        ids: M identifiers (``material_id`` if the CSV has one, else the row index).
        props: property name -> [M] float64 values (NaN where a row had no number).
        rejected: (id or row, reason) of every row that could not be used.
    """

    crystals: list[Crystal]
    ids: list[str]
    props: dict[str, np.ndarray] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.crystals)

    def subset(self, indices: Sequence[int]) -> CrystalTable:
        """Table of the given rows (e.g. one part of a split); ``rejected`` is kept as is."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return CrystalTable([self.crystals[i] for i in idx], [self.ids[i] for i in idx],
                            {k: v[idx] for k, v in self.props.items()}, list(self.rejected))

    @property
    def formulas(self) -> list[str]:
        """[M] reduced formulas (pymatgen convention)."""
        return [c.formula for c in self.crystals]


# ----- preprocessing ------------------------------------------------------------------------------
def preprocess(crystal: Crystal, niggli: bool = True, primitive: bool = False) -> Crystal:
    """CDVAE's canonical form of a crystal.

    Args:
        crystal: any ordered crystal.
        niggli: Niggli-reduce the cell (pymatgen ``get_reduced_structure``).
        primitive: first reduce to the primitive cell (pymatgen ``get_primitive_structure``).

    Returns:
        New Crystal, lattice = ``lattice_from_parameters(a, b, c, α, β, γ)`` of the (reduced) cell,
        fractional coordinates wrapped into [0, 1); name and properties kept.
    """
    s = crystal.to_pymatgen()
    if primitive:
        s = s.get_primitive_structure()
    if niggli:
        s = s.get_reduced_structure()
    matrix = s.lattice.matrix
    frac = np.asarray(s.frac_coords, dtype=np.float64)
    if np.linalg.det(matrix) < 0:
        # A left-handed basis rebuilt from its parameters would be right-handed: the same
        # fractional coordinates would give the mirror image. (-L, -f) is the same crystal with a
        # right-handed basis and identical lengths/angles.
        matrix, frac = -matrix, -frac
    params = _cell_params(matrix)
    species = [sp.symbol for sp in s.species]
    out = Crystal(lattice_from_parameters(*params), frac, species, name=crystal.name,
                  properties=dict(crystal.properties))
    return out.wrapped()


def _cell_params(m: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(m, axis=1)
    cos = [m[1] @ m[2] / lengths[1] / lengths[2], m[0] @ m[2] / lengths[0] / lengths[2],
           m[0] @ m[1] / lengths[0] / lengths[1]]
    return np.concatenate([lengths, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))])


# ----- cache ---------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Cache folder of parsed tables: ``$NANOSOLVE_CACHE`` (its ``cdvae`` subfolder) or ``~/.cache/nanosolve/cdvae``."""
    root = os.environ.get("NANOSOLVE_CACHE")
    return Path(root) / "cdvae" if root else Path.home() / ".cache" / "nanosolve" / "cdvae"


def _cache_path(path: Path, options: dict, folder: Path | None) -> Path:
    st = path.stat()
    key = json.dumps({"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "version": _CACHE_VERSION, **options}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return (folder if folder is not None else cache_dir()) / f"{path.stem}-{digest}.npz"


def _save_table(table: CrystalTable, target: Path) -> None:
    counts = np.array([len(c) for c in table.crystals], dtype=np.int64)
    arrays = {
        "lattice": np.array([c.lattice for c in table.crystals], dtype=np.float64).reshape(-1, 3, 3),
        "frac": (np.concatenate([c.frac_coords for c in table.crystals]) if table.crystals
                 else np.zeros((0, 3))),
        "z": (np.concatenate([c.atomic_numbers for c in table.crystals]) if table.crystals
              else np.zeros(0, np.int64)),
        "counts": counts,
        "ids": np.array(table.ids, dtype=str),
        "names": np.array([c.name for c in table.crystals], dtype=str),
        "prop_names": np.array(list(table.props), dtype=str),
        "rejected_ids": np.array([r[0] for r in table.rejected], dtype=str),
        "rejected_reasons": np.array([r[1] for r in table.rejected], dtype=str),
    }
    for k, name in enumerate(table.props):
        arrays[f"prop_{k}"] = np.asarray(table.props[name], dtype=np.float64)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, "wb") as fh:  # a concurrent reader never sees half a file
        np.savez(fh, **arrays)


def _load_table(target: Path) -> CrystalTable | None:
    """The cached table, or None if absent or unreadable (then it is simply rebuilt)."""
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
    except Exception:  # a truncated / foreign file is not an error of the user's data
        return None
    bounds = np.concatenate([[0], np.cumsum(d["counts"])])
    symbols = {int(z): symbol(int(z)) for z in np.unique(d["z"])}
    prop_names = [str(p) for p in d["prop_names"]]
    props = {name: d[f"prop_{k}"] for k, name in enumerate(prop_names)}
    crystals = []
    for i in range(len(d["counts"])):
        sl = slice(bounds[i], bounds[i + 1])
        crystals.append(Crystal(d["lattice"][i], d["frac"][sl], [symbols[int(z)] for z in d["z"][sl]],
                                name=str(d["names"][i]),
                                properties={p: float(props[p][i]) for p in prop_names}))
    rejected = [(str(a), str(b)) for a, b in zip(d["rejected_ids"], d["rejected_reasons"])]
    return CrystalTable(crystals, [str(x) for x in d["ids"]], props, rejected)


# ----- CSV -----------------------------------------------------------------------------------------
def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _parse_one(cif_text: str, niggli: bool, primitive: bool, max_atoms: int | None, name: str) -> Crystal:
    """One CIF string -> preprocessed crystal; InputError with a short reason otherwise."""
    from nanosolve.structures.io import read_cif

    if not cif_text or not cif_text.strip():
        raise InputError("empty cif field")
    try:
        crystal = read_cif(cif_text)[0]
    except InputError as err:
        raise InputError(f"unreadable CIF: {err.problem}") from None
    except Exception as err:  # pymatgen's tokenizer raises assorted types on garbage
        raise InputError(f"unreadable CIF: {type(err).__name__}: {err}") from None
    if len(crystal) == 0:
        raise InputError("CIF has no atoms")
    if not crystal.is_ordered:
        raise InputError("partially occupied sites (CDVAE needs ordered crystals)")
    crystal.name = name
    try:
        out = preprocess(crystal, niggli=niggli, primitive=primitive)
    except Exception as err:
        raise InputError(f"preprocessing failed: {type(err).__name__}: {err}") from None
    if max_atoms is not None and len(out) > max_atoms:
        raise InputError(f"{len(out)} atoms > max_atoms={max_atoms}")
    return out


def _warn_rejected(source, rejected: list[tuple[str, str]], total: int) -> None:
    if rejected:
        first = "; ".join(f"{i}: {r}" for i, r in rejected[:3])
        warnings.warn(f"{source}: skipped {len(rejected)} of {total} crystals (see table.rejected); "
                      f"first: {first}", stacklevel=3)


def read_cdvae_csv(path: str | os.PathLike, props: Sequence[str] | None = None, max_atoms: int | None = None,
                   niggli: bool = True, primitive: bool = False, use_cache: bool = True,
                   cache: str | os.PathLike | None = None) -> CrystalTable:
    """Read a CDVAE-style CSV (see module doc).

    Args:
        path: the CSV file.
        props: property columns to load; None loads every column whose values are all numbers
            (except the index and id columns).
        max_atoms: rows whose preprocessed crystal has more atoms are rejected.
        niggli, primitive: see :func:`preprocess`.
        use_cache: read / write the parsed-table cache.
        cache: cache folder (default :func:`cache_dir`).

    Returns:
        CrystalTable; each crystal's ``name`` is its id and ``properties`` its property values.
        Rows with an unreadable CIF, partial occupancy or too many atoms are listed in
        ``rejected`` and reported by one ``warnings.warn``.

    Raises:
        InputError: file missing, empty, not a CSV, no ``cif`` column, unknown property column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("CSV file not found", path)
    if path.stat().st_size == 0:
        raise InputError("file is empty", path)
    options = {"props": None if props is None else [str(p) for p in props], "max_atoms": max_atoms,
               "niggli": bool(niggli), "primitive": bool(primitive)}
    target = _cache_path(path, options, None if cache is None else Path(cache))
    if use_cache:
        table = _load_table(target)
        if table is not None:
            _warn_rejected(path, table.rejected, len(table) + len(table.rejected))
            return table

    header, rows = _read_rows(path)
    cols = {name.strip(): k for k, name in enumerate(header)}
    if "cif" not in cols:
        raise InputError(f"no 'cif' column (columns: {', '.join(repr(h) for h in header)})", path)
    id_col = next((cols[c] for c in _ID_COLUMNS if c in cols), 0 if header and header[0].strip() == "" else None)
    if props is None:
        prop_names = [h.strip() for h in header if h.strip().lower() not in _NON_PROPS
                      and all(_is_number(r[cols[h.strip()]]) for r in rows if len(r) == len(header))]
    else:
        prop_names = [str(p) for p in props]
        missing = [p for p in prop_names if p not in cols]
        if missing:
            raise InputError(f"no property column {', '.join(map(repr, missing))} "
                             f"(columns: {', '.join(repr(h) for h in header)})", path)

    crystals, ids, values, rejected = [], [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's per-CIF chatter; failures are collected below
        for k, row in enumerate(rows):
            rid = row[id_col].strip() if id_col is not None and id_col < len(row) else f"row {k}"
            if len(row) != len(header):
                rejected.append((rid, f"row {k}: {len(row)} fields, header has {len(header)}"))
                continue
            try:
                crystal = _parse_one(row[cols["cif"]], niggli, primitive, max_atoms, rid)
            except InputError as err:
                rejected.append((rid, f"row {k}: {err}"))
                continue
            vals = [_float(row[cols[p]]) for p in prop_names]
            crystal.properties = dict(zip(prop_names, vals))
            crystals.append(crystal)
            ids.append(rid)
            values.append(vals)
    arr = np.array(values, dtype=np.float64).reshape(len(values), len(prop_names))
    table = CrystalTable(crystals, ids, {p: arr[:, j].copy() for j, p in enumerate(prop_names)}, rejected)
    if not crystals:
        raise InputError(f"no usable crystal in {len(rows)} rows (first problem: "
                         f"{rejected[0][1] if rejected else 'no rows'})", path)
    _warn_rejected(path, rejected, len(rows))
    if use_cache:
        try:
            _save_table(table, target)
        except OSError as err:  # a read-only home must not stop training
            warnings.warn(f"could not write cache {target}: {err}", stacklevel=2)
    return table


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    csv.field_size_limit(1 << 30)  # a CIF field of a large cell exceeds csv's 128 kB default
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = list(reader)
    except csv.Error as err:
        raise InputError(f"malformed CSV: {err}", path) from None
    if header is None or not rows:
        raise InputError("CSV has no data rows", path)
    return header, rows


# ----- CIF folder ----------------------------------------------------------------------------------
def read_cif_folder(path: str | os.PathLike, max_atoms: int | None = None, niggli: bool = True,
                    primitive: bool = False, pattern: str = "*.cif") -> CrystalTable:
    """Every structure in the CIF files of a folder (sorted by file name; not cached).

    Ids are the file stem, with ``#k`` appended for the k-th block of a multi-block file. Unreadable
    files, disordered crystals and crystals over ``max_atoms`` are rejected and reported.

    Raises:
        InputError: not a folder, or no file matching ``pattern``.
    """
    from nanosolve.structures.io import read_cif

    folder = Path(path)
    if not folder.is_dir():
        raise InputError("not a folder", folder)
    files = sorted(folder.glob(pattern))
    if not files:
        raise InputError(f"no file matching {pattern!r}", folder)
    crystals, ids, rejected = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            try:
                blocks = read_cif(f)
            except Exception as err:
                rejected.append((f.name, str(getattr(err, "problem", err))))
                continue
            for k, c in enumerate(blocks):
                rid = f.stem if len(blocks) == 1 else f"{f.stem}#{k}"
                if not c.is_ordered:
                    rejected.append((rid, "partially occupied sites (CDVAE needs ordered crystals)"))
                    continue
                c.name = rid
                try:
                    out = preprocess(c, niggli=niggli, primitive=primitive)
                except Exception as err:
                    rejected.append((rid, f"preprocessing failed: {err}"))
                    continue
                if max_atoms is not None and len(out) > max_atoms:
                    rejected.append((rid, f"{len(out)} atoms > max_atoms={max_atoms}"))
                    continue
                crystals.append(out)
                ids.append(rid)
    _warn_rejected(folder, rejected, len(crystals) + len(rejected))
    if not crystals:
        raise InputError(f"no usable crystal in {len(files)} files", folder)
    return CrystalTable(crystals, ids, {}, rejected)


# ----- splits and tensors --------------------------------------------------------------------------
def composition_split(table: CrystalTable, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Split rows so that every reduced formula lies in one part only
    (:func:`nanosolve.datasets.splits.grouped_split`); part name -> sorted row indices."""
    return splits.grouped_split(table.formulas, fractions, seed)


def random_split(table: CrystalTable, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Random split of the rows (:func:`nanosolve.datasets.splits.random_split`)."""
    return splits.random_split(len(table), fractions, seed)


def to_data_list(table: CrystalTable, props: Sequence[str] | str | None = None) -> list:
    """One PyG ``Data`` per crystal (:func:`~nanosolve.models.cdvae.batch.crystal_to_data`);
    with ``props``, ``y`` [1, P] holds those properties in the given order."""
    from nanosolve.models.cdvae.batch import crystal_to_data

    if isinstance(props, str):
        props = [props]
    if props:
        missing = [p for p in props if p not in table.props]
        if missing:
            raise InputError(f"table has no property {', '.join(map(repr, missing))} "
                             f"(it has {', '.join(table.props) or 'none'})")
        y = np.stack([table.props[p] for p in props], axis=1)
        return [crystal_to_data(c, y[i]) for i, c in enumerate(table.crystals)]
    return [crystal_to_data(c) for c in table.crystals]


# ----- AFLOW prototypes ----------------------------------------------------------------------------
# Common elements across the periodic table (alkali, alkaline earth, transition and main-group
# metals, metalloids, non-metals); substituted into prototypes to get chemically varied crystals.
DEFAULT_POOL = ("Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Al", "Ga", "In", "Sn", "Pb", "Bi", "Ti", "V",
                "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo", "Ag", "Cd", "La", "Si", "Ge",
                "B", "C", "N", "O", "F", "P", "S", "Cl", "Se", "Br", "Te", "I")


def prototype_table(elements_pool: Sequence[str] | None = None, max_atoms: int = 20, seed: int = 0,
                    n: int = 210, niggli: bool = True) -> CrystalTable:
    """``n`` crystals from the AFLOW prototypes with random element substitution.

    Crystal systems are visited in turn (triclinic ... cubic), so all 7 are represented when
    ``n >= 7``; within a system a prototype with at most ``max_atoms`` sites is drawn at random
    and its distinct elements replaced by distinct random elements of ``elements_pool``
    (cell volume rescaled by :func:`~nanosolve.structures.builders.prototypes.build_prototype`).
    Deterministic for a seed. ``properties`` hold ``prototype`` and ``crystal_system``.
    """
    from nanosolve.structures.builders.prototypes import build_prototype, list_prototypes

    pool = list(DEFAULT_POOL if elements_pool is None else elements_pool)
    if not pool:
        raise InputError("elements_pool is empty")
    infos = [p for p in list_prototypes() if p.n_sites <= max_atoms and len(p.species) <= len(pool)]
    by_system = {s: [p for p in infos if p.crystal_system == s] for s in CRYSTAL_SYSTEMS}
    systems = [s for s in CRYSTAL_SYSTEMS if by_system[s]]
    if not systems:
        raise InputError(f"no prototype with <= {max_atoms} atoms and <= {len(pool)} elements")
    rng = np.random.default_rng(seed)
    crystals, ids = [], []
    attempts = 0
    while len(crystals) < n and attempts < 20 * n:
        system = systems[len(crystals) % len(systems)]
        info = by_system[system][rng.integers(len(by_system[system]))]
        elements = list(rng.choice(pool, size=len(info.species), replace=False))
        attempts += 1
        try:
            with warnings.catch_warnings():
                # pymatgen warns about missing radii of the prototypes' own exotic elements (Cf...)
                warnings.simplefilter("ignore")
                c = build_prototype(info.label, elements)
            c = preprocess(c, niggli=niggli) if niggli else c.wrapped()
        except InputError:  # an element without a radius: draw again
            continue
        c.properties = {"prototype": info.label, "crystal_system": system}
        c.name = f"{c.formula}-{info.label}-{len(crystals)}"
        crystals.append(c)
        ids.append(c.name)
    return CrystalTable(crystals, ids, {}, [])
