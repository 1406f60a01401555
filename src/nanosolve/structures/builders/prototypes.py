"""Crystals from the 288 AFLOW prototypes shipped with pymatgen, with element substitution.

The library is pymatgen's ``analysis/prototypes/aflow_prototypes.json.gz`` (Mehl et al. 2017,
"The AFLOW Library of Crystallographic Prototypes: Part 1"): one example structure per
prototype with its AFLOW label (e.g. ``AB_cF8_225_a_b``), Pearson symbol, Strukturbericht
designation and mineral name. We read it with plain ``json`` rather than through pymatgen's
``loadfn`` because we only need the lattice and sites, and building 288 StructureNL objects
costs seconds at import.

Labels: 15 AFLOW labels occur more than once (e.g. ``AB_oP8_62_c_c`` is B16, B27, B29 and B31,
same Wyckoff sites but different parameters). Those get a suffix ``-001``, ``-002``, ... in the
order of the pymatgen file, so every one of the 288 entries has a unique ``label``.

Species order: AFLOW letters A, B, C... are the prototype's elements in alphabetical order,
which is what :func:`build_prototype` expects for a list of new elements.

Volume estimate: after substitution the cell is scaled isotropically so that the packing
fraction (Σ over atoms of 4/3 π r³ divided by the cell volume, Slater atomic radii) is that of
the prototype with its own original elements, i.e.
``V_new = V_proto * Σ r_new³ / Σ r_proto³``. Fractional coordinates and cell shape are kept,
so the space group is unchanged as long as distinct letters get distinct elements.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from itertools import permutations
from pathlib import Path

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import normalize_symbol, packing_volume_ratio

# Located through the top-level package on purpose: importing ``pymatgen.analysis.prototypes``
# itself makes pymatgen load the whole library with ``loadfn`` (about 3 s).
_LIBRARY_PATH = ("analysis", "prototypes", "aflow_prototypes.json.gz")


@dataclass(frozen=True)
class PrototypeInfo:
    """Summary of one AFLOW prototype.

    ``label`` (unique, see module doc), ``aflow_label``, ``stoichiometry`` (AFLOW letters,
    e.g. ``'AB2'``), ``formula`` (reduced formula of the example compound), ``species`` (its
    elements, alphabetical = letter order), ``space_group`` (number), ``crystal_system``,
    ``pearson``, ``strukturbericht``, ``mineral`` (may be ''), ``n_sites`` (atoms in the
    stored primitive cell).
    """

    label: str
    aflow_label: str
    stoichiometry: str
    formula: str
    species: tuple[str, ...]
    space_group: int
    crystal_system: str
    pearson: str
    strukturbericht: str
    mineral: str
    n_sites: int


def crystal_system_of(space_group: int) -> str:
    """Crystal system of an international space-group number (1-230)."""
    n = int(space_group)
    if not 1 <= n <= 230:
        raise InputError(f"space group number {space_group} is outside 1-230")
    for upper, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                        (167, "trigonal"), (194, "hexagonal"), (230, "cubic")):
        if n <= upper:
            return name
    raise AssertionError  # unreachable


@lru_cache(maxsize=1)
def _library() -> tuple[list[PrototypeInfo], list[Crystal]]:
    spec = importlib.util.find_spec("pymatgen")  # pymatgen is a namespace package: search all its roots
    paths = [Path(root, *_LIBRARY_PATH) for root in (spec.submodule_search_locations or [])] if spec else []
    found = [p for p in paths if p.is_file()]
    if not found:  # pragma: no cover - depends on the pymatgen build
        raise InputError("pymatgen's AFLOW prototype library is missing", "/".join(_LIBRARY_PATH))
    raw = found[0].read_bytes()
    entries = json.loads(gzip.decompress(raw))
    counts = Counter(e["tags"]["aflow"] for e in entries)
    seen: Counter = Counter()
    infos, crystals = [], []
    for e in entries:
        tags, snl = e["tags"], e["snl"]
        aflow = tags["aflow"]
        seen[aflow] += 1
        label = aflow if counts[aflow] == 1 else f"{aflow}-{seen[aflow]:03d}"
        species = [site["species"][0]["element"] for site in snl["sites"]]
        frac = np.array([site["abc"] for site in snl["sites"]], dtype=float)
        crystal = Crystal(np.array(snl["lattice"]["matrix"]), frac, species, name=label)
        sg = int(aflow.split("_")[2])
        sb = tags.get("strukturbericht") or ""
        infos.append(PrototypeInfo(
            label=label, aflow_label=aflow, stoichiometry=aflow.split("_")[0], formula=crystal.formula,
            species=tuple(sorted(set(crystal.species))), space_group=sg, crystal_system=crystal_system_of(sg),
            pearson=tags.get("pearson", ""), strukturbericht="" if sb == "None" else sb,
            mineral=tags.get("mineral", "") or "", n_sites=len(crystal),
        ))
        crystals.append(crystal)
    return infos, crystals


def list_prototypes() -> list[PrototypeInfo]:
    """All 288 prototypes, in the order of pymatgen's library file."""
    return list(_library()[0])


def _index(label: str) -> int:
    infos = _library()[0]
    for i, info in enumerate(infos):
        if info.label == label:
            return i
    # Convenience: a Strukturbericht designation ('B1', 'C1') when it names exactly one prototype.
    hits = [i for i, info in enumerate(infos) if info.strukturbericht and info.strukturbericht == label]
    if len(hits) == 1:
        return hits[0]
    raise InputError(f"unknown AFLOW prototype {label!r} (see list_prototypes() for the 288 labels)")


def prototype_info(label: str) -> PrototypeInfo:
    """The :class:`PrototypeInfo` of a label (or unique Strukturbericht designation)."""
    return _library()[0][_index(label)]


def build_prototype(label: str, elements=None, keep_packing: bool = True) -> Crystal:
    """Crystal of an AFLOW prototype with its elements substituted.

    Args:
        label: prototype label from :func:`list_prototypes` (or a unique Strukturbericht
            designation such as ``'B1'``).
        elements: new elements, either a list in the prototype's species order (AFLOW letters
            A, B, C... = the example compound's elements sorted alphabetically), or a dict
            mapping old element symbol or letter (``'A'``, ``'B'``...) to the new symbol. None
            keeps the example compound.
        keep_packing: scale the cell so that the atomic packing fraction (Slater radii) equals
            the prototype's own; if False the example compound's cell is kept.

    Returns:
        Crystal with ``properties['prototype']`` (label), ``['aflow_label']``,
        ``['space_group_number']`` and ``['volume_scale']`` (V_new / V_prototype).
    """
    i = _index(label)
    info = _library()[0][i]
    proto = _library()[1][i]
    mapping = _substitution(info, elements)
    species = [mapping[s] for s in proto.species]
    scale = 1.0
    if keep_packing and species != proto.species:
        scale = packing_volume_ratio(proto.species, species)
    lattice = proto.lattice * scale ** (1.0 / 3.0)
    return Crystal(
        lattice, proto.frac_coords.copy(), species, name=f"{Crystal(lattice, proto.frac_coords, species).formula} ({info.label})",
        properties={"prototype": info.label, "aflow_label": info.aflow_label,
                    "space_group_number": info.space_group, "volume_scale": scale},
    )


def _proportions(counts) -> tuple:
    total = sum(counts)
    return tuple(sorted(Fraction(int(c), total) for c in counts))


def isotypic_substitutions(composition: Mapping[str, int], max_atoms: int | None = None) -> list[Crystal]:
    """Every prototype with the stoichiometry of ``composition``, substituted in every way that
    keeps it: the structure types a crystallographer tries first for a new compound.

    Args:
        composition: element -> atoms in the cell, e.g. ``{"Mg": 8, "Si": 4}``. Only the ratios
            matter: a prototype stored in a smaller or larger cell of the same reduced formula
            (primitive Mg2Si for a conventional Mg8Si4 cell) is included in its own cell.
        max_atoms: skip prototypes whose cell has more atoms.

    Returns:
        Crystals from :func:`build_prototype` (volume from the packing of the substituted radii),
        one per prototype and element assignment, in library order; ``properties['prototype']``
        names the prototype. Empty when no prototype has this stoichiometry or an element has no
        radius.
    """
    comp = {normalize_symbol(e): int(n) for e, n in composition.items() if int(n) > 0}
    if not comp:
        raise InputError("the composition is empty")
    target = _proportions(comp.values())
    out = []
    for info, proto in zip(*_library()):
        if len(info.species) != len(comp) or (max_atoms is not None and len(proto) > max_atoms):
            continue
        have = Counter(proto.species)
        if _proportions(have.values()) != target:
            continue
        ratio = Fraction(len(proto), sum(comp.values()))
        for new in permutations(sorted(comp)):
            mapping = dict(zip(info.species, new))
            if any(Fraction(have[old], comp[mapping[old]]) != ratio for old in info.species):
                continue
            try:
                out.append(build_prototype(info.label, mapping))
            except InputError:  # an element without a radius: no volume estimate, no candidate
                continue
    return out


def _substitution(info: PrototypeInfo, elements) -> dict[str, str]:
    old = list(info.species)
    if elements is None:
        return {s: s for s in old}
    if isinstance(elements, dict):
        letters = {chr(ord("A") + k): s for k, s in enumerate(old)}
        out = {s: s for s in old}
        for key, new in elements.items():
            key = str(key)
            src = letters.get(key) if key in letters and key not in old else key
            if src not in out:
                raise InputError(f"prototype {info.label} has no element or letter {key!r} (it has {', '.join(old)})")
            out[src] = normalize_symbol(new)
        return out
    new = [normalize_symbol(s) for s in elements]
    if len(new) != len(old):
        raise InputError(f"prototype {info.label} ({info.stoichiometry}) needs {len(old)} elements, got {len(new)}")
    return dict(zip(old, new))
