"""Symmetrised CIF output: space group, operations, Wyckoff sites, B_iso and R factors, round trip
through pymatgen (CifParser) and ASE (ase.io.read) to the same structure."""

import shlex
import warnings

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifParser

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.io.cif_write import symmetrized_cif, write_refined_cif


def _rutile():
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                     [[0, 0, 0], [0.3049, 0.3049, 0]])


def _read_both(path):
    import ase.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pmg = CifParser(path).parse_structures(primitive=False)[0]
        atoms = ase.io.read(path)
    return pmg, AseAtomsAdaptor.get_structure(atoms)


def _loop_rows(text, first_tag):
    """Rows of the loop that starts with first_tag, as lists of tokens (joined across line breaks)."""
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip() == first_tag)
    tags = []
    while lines[i].strip().startswith("_"):
        tags.append(lines[i].strip())
        i += 1
    tokens = []
    while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("_", "loop_")):
        tokens += shlex.split(lines[i])
        i += 1
    return tags, [tokens[k:k + len(tags)] for k in range(0, len(tokens), len(tags))]


@pytest.mark.parametrize("name", ["rutile", "wurtzite", "nacl_primitive", "monoclinic"])
def test_round_trip_pymatgen_and_ase(tmp_path, name):
    if name == "rutile":
        s = _rutile()
    elif name == "wurtzite":
        s = Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"],
                                      [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]])
    elif name == "nacl_primitive":
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        s = s.get_primitive_structure()  # 2 atoms: the CIF must come out in the conventional 8-atom cell
    else:
        s = Structure.from_spacegroup("P2_1/c", Lattice.monoclinic(5.1, 6.3, 7.2, 104.0), ["Zr", "O", "O"],
                                      [[0.276, 0.040, 0.208], [0.069, 0.333, 0.345], [0.451, 0.757, 0.479]])
    path = write_refined_cif(Crystal.from_pymatgen(s), tmp_path / f"{name}.cif", b_iso=0.7)
    text = path.read_text()
    pmg, ase_s = _read_both(path)
    sm = StructureMatcher()
    assert sm.fit(pmg, s) and sm.fit(ase_s, s)
    assert len(pmg) == len(ase_s)
    number = int(text.split("_space_group_IT_number")[1].split()[0])
    assert number == {"rutile": 136, "wurtzite": 186, "nacl_primitive": 225, "monoclinic": 14}[name]
    if name == "nacl_primitive":
        assert len(pmg) == 8  # conventional cell written
    tags, rows = _loop_rows(text, "_atom_site_type_symbol")
    # one row per symmetry-independent site, multiplicities add up to the conventional cell
    assert sum(int(r[tags.index("_atom_site_symmetry_multiplicity")]) for r in rows) == len(pmg)
    assert all(r[tags.index("_atom_site_B_iso_or_equiv")] == "0.7000" for r in rows)


def test_wyckoff_letters_b_iso_and_r_factors(tmp_path):
    ref = {"rwp": 0.0547, "rp": 0.041, "rexp": 0.0539, "gof_s": 1.0148, "n_params": 20, "wavelength": 1.5406,
           "zero_deg": 0.05, "preferred_orientation": {"hkl": [1, 1, 0], "march_dollase_r": 0.87}}
    text = symmetrized_cif(_rutile(), b_iso={"Ti": 0.6, "O": 0.9}, refinement=ref, title="TiO2 rank 1")
    tags, rows = _loop_rows(text, "_atom_site_type_symbol")
    by_el = {r[0]: r for r in rows}
    wy = tags.index("_atom_site_Wyckoff_symbol")
    assert by_el["Ti"][wy] == "a" and by_el["O"][wy] == "f"
    assert by_el["O"][tags.index("_atom_site_symmetry_multiplicity")] == "4"
    assert float(by_el["Ti"][tags.index("_atom_site_B_iso_or_equiv")]) == pytest.approx(0.6)
    assert float(by_el["O"][tags.index("_atom_site_B_iso_or_equiv")]) == pytest.approx(0.9)
    ops = _loop_rows(text, "_symmetry_equiv_pos_site_id")[1]
    assert len(ops) == 16  # order of P4_2/mnm
    path = tmp_path / "r.cif"
    path.write_text(text)
    block = CifParser(path).as_dict()
    data = next(iter(block.values()))
    assert float(data["_refine_ls_wR_factor_all"]) == pytest.approx(0.0547)
    assert float(data["_pd_proc_ls_prof_wR_factor"]) == pytest.approx(0.0547)
    assert float(data["_pd_proc_ls_prof_R_factor"]) == pytest.approx(0.041)
    assert float(data["_pd_proc_ls_prof_wR_expected"]) == pytest.approx(0.0539)
    assert float(data["_refine_ls_goodness_of_fit_all"]) == pytest.approx(1.0148)
    assert "March-Dollase" in data["_pd_proc_ls_pref_orient_corr"]
    assert text.startswith("# generated using pymatgen\ndata_TiO2_rank_1")


def test_missing_b_for_an_element_is_an_input_error():
    with pytest.raises(InputError, match="b_iso"):
        symmetrized_cif(_rutile(), b_iso={"Ti": 0.6})


def test_refined_positions_keep_their_wyckoff_parameter(tmp_path):
    """A free coordinate (rutile O x) is written as refined, not snapped to a higher-symmetry value."""
    s = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.6, 2.96), ["Ti", "O"], [[0, 0, 0], [0.31, 0.31, 0]])
    path = write_refined_cif(s, tmp_path / "x.cif", symprec=1e-3)
    pmg, _ = _read_both(path)
    o = [site.frac_coords for site in pmg if site.specie.symbol == "O"]
    xs = sorted({round(min(v[0] % 1, 1 - v[0] % 1), 4) for v in o})
    assert np.allclose(xs, [0.19, 0.31], atol=1e-4)


def test_esds_in_crystallographic_notation_and_round_trip(tmp_path):
    from nanosolve.structures.io.cif_write import with_esd

    assert with_esd(0.30486, 0.00031) == "0.3049(3)"
    assert with_esd(1.0, 0.15) == "1.00(15)"
    assert with_esd(5.431021, 0.000026) == "5.43102(3)"
    assert with_esd(90.0, None) == "90.000000"
    ref = {"rwp": 0.05, "cell_esd": [0.00003, 0.00003, 0.00002, 0.0, 0.0, 0.0], "b_iso_esd": {"Ti": 0.03, "O": 0.06}}
    path = write_refined_cif(_rutile(), tmp_path / "e.cif", b_iso={"Ti": 0.6, "O": 0.9}, refinement=ref)
    text = path.read_text()
    assert "_cell_length_a   4.59400(3)" in text and "_cell_length_c   2.95900(2)" in text
    tags, rows = _loop_rows(text, "_atom_site_type_symbol")
    assert {r[0]: r[tags.index("_atom_site_B_iso_or_equiv")] for r in rows} == {"Ti": "0.60(3)", "O": "0.90(6)"}
    pmg, ase_s = _read_both(path)
    assert pmg.lattice.a == pytest.approx(4.594) and StructureMatcher().fit(ase_s, _rutile())
