"""CIF structures: read every structure block (with symmetry expansion), write P1 CIFs.

CIF syntax and symmetry operations come from pymatgen (``CifParser`` tokenises the file,
sanitises the blocks and turns ``_symmetry_equiv_pos_as_xyz`` / H-M / Hall / IT-number into
operations). The orbit expansion of the asymmetric unit is done here, not by
``CifParser.parse_structures``, because pymatgen merges rows that share a position into one
site under a single label (``Fe1``/``Co1`` on one site keep only ``Co1``), may rescale
occupancies and ignores superspace operations of modulated structures. We keep one row per
(CIF row, image) with its own label and occupancy, which is what :class:`Crystal` stores.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal, lattice_from_parameters
from nanosolve.structures.elements import normalize_symbol

# Two images of one CIF row closer than this (Å) are the same atom (a special position).
SITE_TOLERANCE_A = 0.01
_NUM_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((\d+)\))?\s*$")
#: Longest cell edge accepted (Å): beyond it a "cell" is a typo or a unit mix-up, and every
#: simulation of it would need a huge reciprocal grid.
MAX_CELL_LENGTH_A = 1000.0
_CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c",
              "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")


# ----- small CIF helpers shared with the pdCIF pattern reader -----------------------------------
def cif_number(value) -> tuple[float, float | None]:
    """``'1.234(5)'`` -> ``(1.234, 0.005)``; ``'7'`` -> ``(7.0, None)``; ``'.'``/``'?'``/junk -> ``(nan, None)``.

    The standard uncertainty in brackets applies to the last digits of the value.
    """
    m = _NUM_RE.match(str(value))
    if not m:
        return float("nan"), None
    num, su = m.group(1), m.group(2)
    x = float(num)
    if su is None:
        return x, None
    mant = num.lower().split("e")[0]
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    exp = int(num.lower().split("e")[1]) if "e" in num.lower() else 0
    return x, int(su) * 10.0 ** (exp - decimals)


def cif_float(value) -> float:
    """Value of a CIF number without its uncertainty (NaN for ``.``/``?``/non-numbers)."""
    return cif_number(value)[0]


def read_text(path_or_text, what: str = "file") -> tuple[str, str | None]:
    """(text, path) from a path or from CIF text itself (a string holding a newline or ``data_``)."""
    if isinstance(path_or_text, str) and ("\n" in path_or_text or (
            path_or_text.lstrip().startswith("data_") and not os.path.exists(path_or_text))):
        return path_or_text, None
    path = os.fspath(path_or_text)
    if not os.path.exists(path):
        raise InputError(f"{what} not found", path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    if not text.strip():
        raise InputError("file is empty", path)
    return text, path


def _check_syntax(text: str, path) -> None:
    """Errors pymatgen's tokenizer passes over silently (it is lenient by design)."""
    if not re.search(r"^\s*data_\S+", text, re.MULTILINE | re.IGNORECASE):
        raise InputError("not a CIF: no data_ block", path)
    # ';' in column 1 opens and closes a text field; an odd count leaves one open to EOF.
    n_semi = sum(1 for line in text.splitlines() if line.startswith(";"))
    if n_semi % 2:
        raise InputError("malformed CIF: unterminated ';' text field", path)


def parse_cif_blocks(text: str, path=None, sanitize: bool = True):
    """Parse CIF text into ``(blocks, parser)``: an ordered dict name -> pymatgen ``CifBlock``.

    ``sanitize=True`` goes through ``CifParser`` (rounds 0.3333 to 1/3, fixes common tag
    variants) and returns the parser for its symmetry-operation lookup; ``False`` only tokenises
    (fast path for profile data). Raises InputError for empty or malformed text.
    """
    from pymatgen.io.cif import CifFile, CifParser

    if not text.strip():
        raise InputError("file is empty", path)
    _check_syntax(text, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about every block it finds odd
        try:
            if sanitize:
                parser = CifParser.from_str(text, check_cif=False)
                cif = parser._cif  # the sanitised blocks; pymatgen has no public accessor for them
            else:
                parser, cif = None, CifFile.from_str(text)
        except InputError:
            raise
        except Exception as exc:  # pymatgen raises bare ValueError/IndexError on broken loops
            raise InputError(f"malformed CIF ({type(exc).__name__}: {exc})", path) from None
    if not cif.data:
        raise InputError("not a CIF: no data_ block", path)
    return cif.data, parser


def block_values(block, tag: str) -> list[str] | None:
    """Values of ``tag`` as a list (loop or single value), or None if absent."""
    v = block.data.get(tag)
    if v is None:
        return None
    return list(v) if isinstance(v, list) else [v]


def _first(block, *tags):
    for t in tags:
        v = block.data.get(t)
        if v is not None:
            return v[0] if isinstance(v, list) else v
    return None


# ----- structures ---------------------------------------------------------------------------------
def _symmetry_operations(block, parser, block_name: str, path):
    """[K] (rotation [3,3], translation [3]) pairs in fractional coordinates; flag if superspace."""
    from pymatgen.core.operations import SymmOp

    has_3d = any(block.data.get(t) for t in ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz"))
    ssg = block_values(block, "_space_group_symop_ssg_operation_algebraic")
    if ssg and not has_3d:
        # Modulated (superspace) structure: the first three components of each (3+d)-dimensional
        # operation, restricted to x1..x3, are the operations of the average structure.
        ops = []
        for s in ssg:
            comps = [c.strip() for c in s.split(",")][:3]
            xyz = ",".join(comps).replace("x1", "x").replace("x2", "y").replace("x3", "z")
            if re.search(r"x\d", xyz):
                raise InputError(f"block {block_name}: superspace operation {s!r} mixes in x4", path)
            ops.append(SymmOp.from_xyz_str(xyz))
        return ops, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ops = parser.get_symops(block)
        except Exception as exc:
            raise InputError(f"block {block_name}: cannot read symmetry operations ({exc})", path) from None
    return ops, False


def _has_symmetry_info(block) -> bool:
    tags = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_symmetry_space_group_name_H-M",
            "_space_group_name_H-M_alt", "_space_group_name_Hall", "_symmetry_space_group_name_Hall",
            "_space_group_IT_number", "_symmetry_Int_Tables_number", "_space_group_symop_ssg_operation_algebraic")
    return any(block.data.get(t) not in (None, "?", ".") for t in tags)


def _orbit(frac: np.ndarray, rots: np.ndarray, trans: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Distinct images (wrapped into [0, 1)) of one fractional position under all operations."""
    imgs = np.mod(rots @ frac + trans, 1.0)
    imgs[np.isclose(imgs, 1.0, atol=1e-9)] = 0.0
    keep: list[np.ndarray] = []
    for p in imgs:
        if keep:
            d = np.asarray(keep) - p
            d -= np.round(d)
            if np.min(np.linalg.norm(d @ lattice, axis=1)) < SITE_TOLERANCE_A:
                continue
        keep.append(p)
    return np.asarray(keep)


def _crystal_from_block(name: str, block, parser, path) -> Crystal:
    where = f"block {name}"
    params = []
    for t in _CELL_TAGS:
        raw = _first(block, t)
        if raw is None and t.startswith("_cell_angle"):
            raw = "90"  # CIF default for an omitted angle
        if raw is None:
            raise InputError(f"{where}: {t} is missing", path)
        v = cif_float(raw)
        if not np.isfinite(v):
            raise InputError(f"{where}: {t} = {raw!r} is not a number", path)
        if t.startswith("_cell_length") and not 0 < v <= MAX_CELL_LENGTH_A:
            raise InputError(f"{where}: {t} = {raw!r} must be a length in (0, {MAX_CELL_LENGTH_A:g}] Å", path)
        if t.startswith("_cell_angle") and not 0 < v < 180:
            raise InputError(f"{where}: {t} = {raw!r} must be an angle in (0, 180) degrees", path)
        params.append(v)
    try:
        lattice = lattice_from_parameters(*params)
    except InputError as exc:
        raise InputError(f"{where}: {exc.problem}", path) from None

    labels_raw = block_values(block, "_atom_site_label")
    types_raw = block_values(block, "_atom_site_type_symbol")
    xs, ys, zs = (block_values(block, f"_atom_site_fract_{c}") for c in "xyz")
    n = len(xs)
    if labels_raw is None and types_raw is None:
        raise InputError(f"{where}: atom sites have neither _atom_site_label nor _atom_site_type_symbol", path)
    occ_raw = block_values(block, "_atom_site_occupancy") or ["1"] * n
    calc_flag = block_values(block, "_atom_site_calc_flag") or ["."] * n

    # Crenel functions of modulated structures: the average occupancy is occupancy x width.
    crenel = {}
    cl = block_values(block, "_atom_site_occ_special_func_atom_site_label")
    cw = block_values(block, "_atom_site_occ_special_func_crenel_w")
    if cl and cw:
        crenel = {lab: cif_float(w) for lab, w in zip(cl, cw)}

    ops, superspace = _symmetry_operations(block, parser, name, path)
    rots = np.array([op.rotation_matrix for op in ops])
    trans = np.array([op.translation_vector for op in ops])

    species, frac, occs, labels, asym = [], [], [], [], []
    for i in range(n):
        if str(calc_flag[i]).lower() == "dum":  # dummy atoms (e.g. ring centroids) are not atoms
            continue
        label = str(labels_raw[i]) if labels_raw else str(types_raw[i])
        raw_sym = types_raw[i] if types_raw and types_raw[i] not in ("?", ".") else label
        try:
            sym = normalize_symbol(raw_sym)
        except InputError:
            raise InputError(f"{where}: atom site {label!r}: unknown element {raw_sym!r}", path) from None
        xyz = np.array([cif_float(v[i]) for v in (xs, ys, zs)])
        if not np.all(np.isfinite(xyz)):
            raise InputError(f"{where}: atom site {label!r} has non-numeric coordinates "
                             f"{xs[i]!r} {ys[i]!r} {zs[i]!r}", path)
        occ = cif_float(occ_raw[i])
        if not np.isfinite(occ):
            occ = 1.0  # '.' / '?' : CIF default occupancy
        if label in crenel and np.isfinite(crenel[label]):
            occ *= crenel[label]
        if occ <= 0:
            continue
        images = _orbit(xyz, rots, trans, lattice)
        species += [sym] * len(images)
        frac.append(images)
        occs += [occ] * len(images)
        labels += [label] * len(images)
        asym.append({"label": label, "element": sym, "occupancy": round(float(occ), 6),
                     "multiplicity": int(len(images))})
    if not species:
        raise InputError(f"{where}: no atoms with non-zero occupancy", path)

    props = {"source": path, "block": name}
    sg = _first(block, "_symmetry_space_group_name_H-M", "_space_group_name_H-M_alt", "_space_group_ssg_name")
    if sg not in (None, "?", "."):
        props["space_group_cif"] = str(sg)
    if not _has_symmetry_info(block):
        props["symmetry_assumed_p1"] = True
        warnings.warn(f"{path or 'CIF'}: {where}: no symmetry operations or space group given; read as P1",
                      stacklevel=3)
    fsum = _first(block, "_chemical_formula_sum")
    if fsum not in (None, "?", "."):
        props["formula_sum_cif"] = str(fsum)
    if superspace:
        props["modulated"] = True
        warnings.warn(f"{path or 'CIF'}: {where} is an incommensurately modulated structure; returning the "
                      f"average structure (modulation waves ignored, crenel widths taken as occupancies)",
                      stacklevel=3)
    partial = [a for a in asym if a["occupancy"] < 1 - 1e-6]
    if partial:
        props["partial_occupancy"] = partial
        summary = ", ".join(f"{a['label']} {a['element']} {a['occupancy']:g}" for a in partial[:8])
        more = f" and {len(partial) - 8} more" if len(partial) > 8 else ""
        warnings.warn(f"{path or 'CIF'}: {where}: {len(partial)} partially occupied site(s): {summary}{more}; "
                      f"occupancies kept on the Crystal", stacklevel=3)
    crystal = Crystal(lattice, np.concatenate(frac), species, np.array(occs), labels, name, props)
    over = _overfull_sites(crystal)
    if over:
        crystal.properties["overfull_sites"] = over
        warnings.warn(f"{path or 'CIF'}: {where}: occupancies at {len(over)} position(s) sum to more than 1 "
                      f"(e.g. {over[0]}); kept as given", stacklevel=3)
    return crystal


def _overfull_sites(c: Crystal) -> list[dict]:
    """Positions whose rows' occupancies sum above 1 (split/mixed sites that do not add up)."""
    if c.is_ordered:
        return []
    key = np.round(np.mod(c.frac_coords, 1.0), 4) % 1.0
    _, inv = np.unique(key, axis=0, return_inverse=True)
    tot = np.bincount(inv.reshape(-1), weights=c.occupancies)
    out = []
    for g in np.nonzero(tot > 1 + 1e-3)[0]:
        rows = np.nonzero(inv.reshape(-1) == g)[0]
        out.append({"labels": sorted({c.labels[r] for r in rows}) if c.labels else [],
                    "total_occupancy": round(float(tot[g]), 4)})
    return out


def _is_structure_block(block) -> bool:
    return block.data.get("_atom_site_fract_x") is not None


def read_cif(path_or_text) -> list[Crystal]:
    """Every crystal structure in a CIF (plain CIF or IUCr powder CIF with profile and phase blocks).

    Args:
        path_or_text: file path, or the CIF text itself.

    Returns:
        One :class:`Crystal` per data block that holds ``_atom_site_fract_*`` coordinates, in file
        order; ``name`` is the block name, labels are the CIF site labels, partial occupancies are
        kept (two elements on one site are two rows) and listed in
        ``properties['partial_occupancy']`` (plus a ``warnings.warn`` summary).

    Raises:
        InputError: empty or malformed file, no structure block, unknown element, bad coordinates.
    """
    text, path = read_text(path_or_text)
    blocks, parser = parse_cif_blocks(text, path)
    crystals = []
    for name, b in blocks.items():  # a plain loop so warnings point at read_cif's caller
        if _is_structure_block(b):
            crystals.append(_crystal_from_block(name, b, parser, path))
    if not crystals:
        raise InputError("no crystal structure in any data block (no _atom_site_fract_x loop)", path)
    return crystals


# ----- writing ------------------------------------------------------------------------------------
def _quote(s: str) -> str:
    s = str(s)
    if not s or re.search(r"\s|^[_#$'\"\[\];]", s):
        return "'" + s.replace("'", "") + "'"
    return s


def write_cif(crystal: Crystal, path: str | os.PathLike) -> Path:
    """Write ``crystal`` as a P1 CIF with site labels and occupancies (round-trips through :func:`read_cif`).

    Written here rather than with pymatgen's ``CifWriter`` because that goes through a
    ``Structure``, where co-sited rows share one label.
    """
    path = Path(path)
    a, b, c, al, be, ga = crystal.cell_params
    labels = crystal.labels
    if labels is None:
        counts: dict[str, int] = {}
        labels = []
        for s in crystal.species:
            counts[s] = counts.get(s, 0) + 1
            labels.append(f"{s}{counts[s]}")
    name = re.sub(r"\s+", "_", crystal.name or crystal.formula) or "crystal"
    lines = [
        f"data_{name}",
        "_audit_creation_method 'nanosolve write_cif'",
        f"_chemical_formula_sum {_quote(' '.join(f'{k}{v:g}' for k, v in crystal.composition.items()))}",
        f"_cell_length_a {a:.8f}", f"_cell_length_b {b:.8f}", f"_cell_length_c {c:.8f}",
        f"_cell_angle_alpha {al:.8f}", f"_cell_angle_beta {be:.8f}", f"_cell_angle_gamma {ga:.8f}",
        "_symmetry_space_group_name_H-M 'P 1'", "_symmetry_Int_Tables_number 1",
        "loop_", "_symmetry_equiv_pos_as_xyz", "'x, y, z'",
        "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
        "_atom_site_fract_z", "_atom_site_occupancy",
    ]
    for lab, s, f, o in zip(labels, crystal.species, crystal.frac_coords, crystal.occupancies):
        lines.append(f"{_quote(lab)} {s} {f[0]:.10f} {f[1]:.10f} {f[2]:.10f} {o:.8g}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
