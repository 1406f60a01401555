"""CHILI-100K CIF cleaning, filters and the reject report.

Oracles: pymatgen (its own CIF parser, periodic neighbour list and volumes) for the expected
accept/reject outcome of real CIFs, ase's neighbour list for the closest-contact search, and
hand-written CIFs whose defect and consequence are known by construction.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nanosolve.datasets.chili import filters as F
from nanosolve.datasets.chili.cif_clean import (
    RejectedCIF,
    clean_cif_text,
    load_clean_crystal,
    screen_cif,
    screen_folder,
    write_reject_report,
)
from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import is_metal
from nanosolve.structures.io.cif import read_cif

# file -> (accepted?, reason, atoms in the accepted cell)
EXPECTED_BROKEN = {
    "garbage.cif": (False, F.R_NOT_CIF, None),
    "empty.cif": (False, F.R_EMPTY, None),
    "no_atoms.cif": (False, F.R_NO_ATOMS, None),
    "unknown_element.cif": (False, F.R_UNKNOWN_ELEMENT, None),
    "occupancy_half.cif": (False, F.R_OCCUPANCY, None),
    "big_cell.cif": (False, F.R_VOLUME, None),
    "close_atoms.cif": (False, F.R_DISTANCE, None),
    "missing_coordinate.cif": (False, F.R_MISSING_COORDS, None),
    "uranium_dioxide.cif": (False, F.R_ELEMENT, None),
    "two_structures.cif": (False, F.R_SEVERAL, None),
    "unclosed_bracket.cif": (True, None, 8),   # rock-salt MgO, F-centred: 4 + 4
    "capitals.cif": (True, None, 8),           # rock-salt FeO
    "short_row.cif": (True, None, 8),          # rock-salt MgO
    "special_position_333.cif": (True, None, 6),  # Fe 2c + O 1a + O 3f in P6/mmm
}


def _pmg(text: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt="cif")


# ----- element sets -------------------------------------------------------------------------------
def test_element_sets_follow_the_paper_counts():
    assert len(F.ALLOWED_METALS) == 68 and len(F.ALLOWED_NON_METALS) == 11
    assert not F.ALLOWED_METALS & F.ALLOWED_NON_METALS
    assert all(is_metal(e) for e in F.ALLOWED_METALS)
    assert not any(is_metal(e) for e in F.ALLOWED_NON_METALS)
    assert len(F.CHILI3K_METALS) == 53 and set(F.CHILI3K_METALS) <= F.ALLOWED_METALS


# ----- text cleaning ------------------------------------------------------------------------------
@pytest.mark.parametrize("written, exact", [
    ("0.333", 1 / 3), ("0.3333", 1 / 3), (".667", 2 / 3), ("0.6666", 2 / 3), ("0.1667", 1 / 6),
    ("0.8333", 5 / 6), ("0.16667", 1 / 6), ("-0.3333", -1 / 3), ("1.6667", 5 / 3), ("0.83333", 5 / 6),
])
def test_short_fractions_are_snapped(written, exact):
    text = _one_atom_cif(f"Fe1 Fe {written} 0 0.25")
    cleaned, fixes = clean_cif_text(text)
    x = cleaned.splitlines()[-1].split()[2]
    assert float(x) == pytest.approx(exact, abs=1e-15)
    assert len(fixes) == 1 and "fract_x" in fixes[0] and written in fixes[0]


@pytest.mark.parametrize("written", ["0.33", "0.112", "0.3333333", "0.25", "0.125", "0.5000", "0.4", "1",
                                     "0.333(2)", "0.555(2)", "0.111", "0.4167"])
def test_other_coordinates_are_left_alone(written):
    text = _one_atom_cif(f"Fe1 Fe {written} 0 0.25")
    assert clean_cif_text(text) == (text, [])


def _one_atom_cif(row: str, extra_headers: str = "") -> str:
    return ("data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n"
            "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\n"
            "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
            f"_atom_site_fract_z\n{extra_headers}{row}\n")


def test_brackets_fixed_only_outside_strings_and_text_fields():
    text = ("data_x\n_journal_title 'value 0.1234(5'\n;\nnote 0.55(7 stays\n;\n"
            "_cell_length_a 5.4310(2\n_cell_length_b 5.4310(\n")
    cleaned, fixes = clean_cif_text(text)
    assert cleaned == ("data_x\n_journal_title 'value 0.1234(5'\n;\nnote 0.55(7 stays\n;\n"
                       "_cell_length_a 5.4310(2)\n_cell_length_b 5.4310\n")
    assert fixes == ["line 6: unclosed bracket '5.4310(2' -> '5.4310(2)'",
                     "line 7: unclosed bracket '5.4310(' -> '5.4310'"]


def test_capitals_fixed_only_in_an_all_capitals_column():
    caps, fixes = clean_cif_text(_one_atom_cif("FE1 FE 0 0 0\nCL1 CL 0.5 0.5 0.5\nO1 O 0.5 0 0"))
    assert caps.splitlines()[-3:] == ["Fe1 Fe 0 0 0", "Cl1 Cl 0.5 0.5 0.5", "O1 O 0.5 0 0"]
    assert len(fixes) == 4
    # a mixed-case file: 'HO1' is a hydroxyl H label, not holmium -- nothing changes
    mixed = _one_atom_cif("Fe1 Fe 0 0 0\nHO1 H 0.5 0.5 0.5")
    assert clean_cif_text(mixed) == (mixed, [])


def test_short_rows_padded_but_wrapped_rows_untouched():
    hdr = "_atom_site_occupancy\n_atom_site_U_iso_or_equiv\n"
    short, fixes = clean_cif_text(_one_atom_cif("Fe1 Fe 0 0 0 1 0.01\nO1 O 0.5 0.5 0.5", hdr))
    assert short.splitlines()[-1] == "O1 O 0.5 0.5 0.5 1 ?"
    assert any("'O1' has 5 of 7 values" in f for f in fixes)
    assert any("occupancy '?' -> '1'" in f for f in fixes)
    # two short rows in a row: each line is its own row, not one 10-value row
    both, fixes = clean_cif_text(_one_atom_cif("Fe1 Fe 0 0 0\nO1 O 0.5 0.5 0.5\nO2 O 0.5 0 0 1 0.01", hdr))
    assert both.splitlines()[-3:] == ["Fe1 Fe 0 0 0 1 ?", "O1 O 0.5 0.5 0.5 1 ?", "O2 O 0.5 0 0 1 0.01"]
    assert len(read_cif(both)[0]) == 3
    wrapped = _one_atom_cif("Fe1 Fe 0 0\n0 1 0.01\nO1 O 0.5\n0.5 0.5 1 0.01", hdr)
    assert clean_cif_text(wrapped) == (wrapped, [])
    crystal = read_cif(wrapped)[0]
    assert crystal.species == ["Fe", "O"]


# ----- the hand-written broken CIFs ----------------------------------------------------------------
@pytest.fixture(scope="module")
def broken(local_data) -> Path:
    """tests/data/broken_cifs: one hand-written CIF per defect."""
    return local_data / "broken_cifs"


def test_broken_cifs_each_get_the_right_verdict(broken):
    names = sorted(p.name for p in broken.glob("*.cif"))
    assert names == sorted(EXPECTED_BROKEN)
    for name in names:
        r = screen_cif(broken / name)
        ok, reason, n_atoms = EXPECTED_BROKEN[name]
        assert (r.accepted, r.reason) == (ok, reason), (name, r.reason, r.detail)
        if ok:
            assert len(r.crystal) == n_atoms and r.crystal.properties["source"] == str(broken / name)
            assert r.fixes, f"{name} should need a fix"
        else:
            assert r.crystal is None and r.detail


def test_rejection_raises_input_error_naming_file_and_reason(broken):
    path = broken / "occupancy_half.cif"
    with pytest.raises(InputError) as err:
        load_clean_crystal(path)
    assert isinstance(err.value, RejectedCIF)
    assert str(err.value).startswith(f"{path}: partial occupancy: occupancy 0.5 of Na1")
    with pytest.raises(RejectedCIF, match=r"atoms too close: Fe1 and O1 are 1\.000 Å apart"):
        load_clean_crystal(broken / "close_atoms.cif")
    with pytest.raises(RejectedCIF, match=r"volume too large: unit-cell volume 1030\.3 Å³"):
        load_clean_crystal(broken / "big_cell.cif")  # 10.1³ = 1030.301


def test_fixes_reach_the_crystal_and_match_pymatgen(broken):
    c = load_clean_crystal(broken / "unclosed_bracket.cif")
    assert c.cell_params[:3] == pytest.approx([4.2112] * 3, abs=1e-12)
    assert c.volume == pytest.approx(4.2112 ** 3, rel=1e-12)
    assert sum("unclosed bracket" in f for f in c.properties["cif_fixes"]) == 5
    # without cleaning the reader refuses the cell parameter
    with pytest.raises(InputError, match="is not a number"):
        read_cif(broken / "unclosed_bracket.cif")

    caps_text = (broken / "capitals.cif").read_text()
    cleaned, _ = clean_cif_text(caps_text)
    s = _pmg(cleaned)
    c = load_clean_crystal(broken / "capitals.cif")
    assert set(c.labels) == {"Fe1", "O1"}
    assert Counter(c.species) == Counter(str(sp) for sp in s.species) == Counter({"Fe": 4, "O": 4})


def test_special_position_snap_removes_duplicated_atoms(broken):
    path = broken / "special_position_333.cif"
    raw = read_cif(path)[0]               # no cleaning: 0.333/.667 images are 0.012 Å apart
    clean = load_clean_crystal(path)
    exact = _pmg(path.read_text().replace("0.333 .667", "0.3333333333333333 0.6666666666666667"))
    assert len(clean) == len(exact) == 6
    assert Counter(clean.species) == Counter(str(sp) for sp in exact.species) == Counter({"Fe": 2, "O": 4})
    assert Counter(raw.species)["Fe"] == 6 and len(raw) == 10
    # the uncleaned cell would be thrown out for its duplicated atoms: 0.001 * a = 0.012 Å
    reason, detail = F.check_crystal(raw)
    assert reason == F.R_DISTANCE
    d, i, j = F.closest_contact(raw)
    assert d == pytest.approx(0.001 * 12.0, abs=1e-9) and raw.species[i] == raw.species[j] == "Fe"


# ----- filters on constructed crystals ------------------------------------------------------------
def _cubic(a, species, frac, occ=None):
    return Crystal(np.eye(3) * a, frac, species, occ)


def test_filter_boundaries():
    ok = _cubic(4.0, ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert F.check_crystal(ok) is None
    assert F.check_crystal(_cubic(4.0, ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]], [0.9, 1.0])) is None
    assert F.check_crystal(_cubic(4.0, ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]], [0.89, 1.0]))[0] == F.R_OCCUPANCY
    assert F.check_crystal(_cubic(999.9 ** (1 / 3), ["Fe"], [[0, 0, 0]])) is None
    assert F.check_crystal(_cubic(10.0, ["Fe"], [[0, 0, 0]]))[0] == F.R_VOLUME  # 1000 Å³ exactly: out
    assert F.check_crystal(_cubic(5.0, ["Fe", "O"], [[0, 0, 0], [1.21 / 5, 0, 0]])) is None
    assert F.check_crystal(_cubic(5.0, ["Fe", "O"], [[0, 0, 0], [1.19 / 5, 0, 0]]))[0] == F.R_DISTANCE
    # the contact may be with a periodic image, or an atom with its own image
    across = _cubic(5.0, ["Fe", "O"], [[0.05, 0, 0], [0.83, 0, 0]])  # 3.9 Å inside, 1.1 Å across the face
    assert F.check_crystal(across)[0] == F.R_DISTANCE
    assert F.closest_contact(across)[0] == pytest.approx(1.1, abs=1e-12)
    tiny = Crystal(np.diag([1.1, 6.0, 6.0]), [[0, 0, 0]], ["Fe"])
    d, i, j = F.closest_contact(tiny)
    assert (i, j) == (0, 0) and d == pytest.approx(1.1)
    assert F.check_crystal(_cubic(4.0, ["C", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]))[0] == F.R_NO_METAL
    assert F.check_crystal(_cubic(4.0, ["Xe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]]))[0] == F.R_ELEMENT


def test_closest_contact_matches_ase(shared_data):
    from ase.neighborlist import neighbor_list

    rows = _rows(shared_data, "carbon_24", [0, 7, 31])
    for text in rows:
        c = read_cif(text)[0]
        d, _, _ = F.closest_contact(c, cutoff=3.0)
        ref = neighbor_list("d", c.to_ase(), 3.0)
        assert d == pytest.approx(ref.min(), abs=1e-10)


# ----- real CIFs: CDVAE perovskites and carbon -------------------------------------------------------
def _rows(shared_data: Path, name: str, indices) -> list[str]:
    path = shared_data / "cdvae" / name / "test.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    csv.field_size_limit(1 << 30)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [rows[i]["cif"] for i in indices]


def _expected_by_pymatgen(text: str) -> tuple[str | None, int]:
    """CHILI verdict computed from pymatgen's own parse, neighbour list and periodic table."""
    from pymatgen.core import Element

    s = _pmg(text)
    els = {el.symbol for el in s.composition.elements}
    if not els <= F.ALLOWED_ELEMENTS:
        return F.R_ELEMENT, len(s)
    if not any(Element(e).is_metal or Element(e).is_metalloid for e in els):
        return F.R_NO_METAL, len(s)
    if any(occ < 0.9 for site in s for occ in site.species.values()):
        return F.R_OCCUPANCY, len(s)
    if s.volume >= 1000:
        return F.R_VOLUME, len(s)
    _, _, _, dist = s.get_neighbor_list(1.2)
    if np.any(dist > 1e-8):
        return F.R_DISTANCE, len(s)
    return None, len(s)


@pytest.fixture(scope="module")
def cdvae_folder(tmp_path_factory, shared_data, broken):
    folder = tmp_path_factory.mktemp("cdvae_cifs")
    perov = _rows(shared_data, "perov_5", range(0, 3785, 190))      # 20 rows spread over the file
    carbon = _rows(shared_data, "carbon_24", range(0, 2030, 203))   # 10 rows
    for i, t in enumerate(perov):
        (folder / f"perov_{i:02d}.cif").write_text(t)
    for i, t in enumerate(carbon):
        (folder / f"carbon_{i:02d}.cif").write_text(t)
    for p in broken.glob("*.cif"):
        (folder / f"zz_{p.name}").write_bytes(p.read_bytes())
    return folder


def test_screen_folder_matches_pymatgen(cdvae_folder):
    accepted, rejected = screen_folder(cdvae_folder)
    results = {r.path.name: r for r in accepted + rejected}
    assert len(results) == 30 + len(EXPECTED_BROKEN)
    assert [r.path.name for r in accepted] == sorted(r.path.name for r in accepted)
    assert [r.path.name for r in rejected] == sorted(r.path.name for r in rejected)
    n_checked = Counter()
    for name, r in results.items():
        if name.startswith("zz_"):
            assert (r.accepted, r.reason) == EXPECTED_BROKEN[name[3:]][:2]
            continue
        text = (cdvae_folder / name).read_text()
        reason, n_sites = _expected_by_pymatgen(text)
        assert r.reason == reason, (name, r.reason, r.detail)
        assert r.fixes == [] and clean_cif_text(text) == (text, [])  # pymatgen-written CIFs are clean
        if r.accepted:
            s = _pmg(text)
            assert len(r.crystal) == n_sites
            assert r.crystal.volume == pytest.approx(s.volume, rel=1e-9)
            assert Counter(r.crystal.species) == Counter(str(sp) for sp in s.species)
        n_checked[(name.split("_")[0], r.reason)] += 1
    # what really happens: every perovskite passes, every carbon polymorph has no metal
    assert n_checked == {("perov", None): 20, ("carbon", F.R_NO_METAL): 10}


def test_screen_folder_is_deterministic_across_workers(cdvae_folder):
    a1, r1 = screen_folder(cdvae_folder)
    a2, r2 = screen_folder(cdvae_folder, workers=2)
    assert [(r.path, len(r.crystal), r.fixes) for r in a1] == [(r.path, len(r.crystal), r.fixes) for r in a2]
    assert [(r.path, r.reason, r.detail) for r in r1] == [(r.path, r.reason, r.detail) for r in r2]
    for x, y in zip(a1, a2):
        np.testing.assert_array_equal(x.crystal.frac_coords, y.crystal.frac_coords)


def test_reject_report(cdvae_folder, tmp_path):
    _, rejected = screen_folder(cdvae_folder)
    out = tmp_path / "report" / "rejects.csv"
    out.parent.mkdir()
    out.write_text("stale content\n")
    csv_path, json_path = write_reject_report(rejected, out)
    assert (csv_path, json_path) == (out, out.with_suffix(".json"))
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(Path(r["file"]).name, r["reason"]) for r in rows] == [(r.path.name, r.reason) for r in rejected]
    assert all(r["detail"] for r in rows)
    summary = json.loads(json_path.read_text())
    expected = Counter({F.R_NO_METAL: 10})
    expected.update(reason for ok, reason, _ in EXPECTED_BROKEN.values() if not ok)
    assert set(summary) == {"n_rejected", "reasons"} and summary["n_rejected"] == len(rejected)
    assert summary["reasons"] == dict(expected) and len(rejected) == 10 + 10
    assert list(summary["reasons"])[0] == F.R_NO_METAL  # most frequent first
    assert sorted(p.name for p in out.parent.iterdir()) == ["rejects.csv", "rejects.json"]  # no temp files


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="CIF folder not found"):
        screen_folder(tmp_path / "nope")
    r = screen_cif(tmp_path / "absent.cif")
    assert (r.accepted, r.reason) == (False, F.R_UNREADABLE)
