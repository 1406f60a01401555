"""Structure files: CIF (incl. the 15 IUCr powder CIFs), xyz, round trips, partial occupancy, bad input."""

import warnings

import numpy as np
import pytest
from pymatgen.core import Composition

from nanosolve import Crystal, InputError, Particle
from nanosolve.structures.io import read_cif, read_structure, read_xyz, write_cif, write_structure, write_xyz
from nanosolve.structures.io.cif import cif_number

# Read off the files with grep (`grep -A1 '^_cell_length_a'`, `_chemical_formula_sum`,
# `_exptl_crystal_density_diffrn`, the H-M symbol), independently of the parser:
# file -> [(formula_sum, a, b, c, alpha, beta, gamma, density or None, space group number or None)]
PXRD_STRUCTURES = {
    "av5088sup4": [("C4 Br4 S", 12.419, 4.0397, 8.824, 90, 109.1813, 90, None, 7),          # P n
                   ("C4 Br4 S", 12.643, 4.0335, 16.350, 90, 90, 90, None, 29)],             # P c a 21
    "br1322Isup2": [("Al O4 P", 5.0976, 5.0976, 8.3441, 90, 90, 120, 2.1570, 186)],          # P 63 m c
    "br1340Isup2": [("Bi Cd Cl O2", 7.5878, 4.1397, 6.0594, 90, 101.529, 90, None, 11)],     # P 1 21/m 1
    "ck5030Vsup6": [("Er2 Ge3.171", 3.9183, 6.7475, 4.0932, 90, 89.813, 90, 8.6623, None)],  # superspace
    "gw5052Mg2Si_100K_LTsup2": [("Mg2 Si", 6.334697, 6.334697, 6.334697, 90, 90, 90, None, 225)],
    "gw5052Mg2Sn_100K_LTsup23": [("Mg2 Sn", 6.741735, 6.741735, 6.741735, 90, 90, 90, None, 225)],
    "iz1026Isup2": [("Al F6 Li Na2", 5.2863, 5.3603, 7.5025, 90, 90.005, 90, None, 14)],     # P 1 21/n 1
    "ks5409BTsup2": [("Ba Ti O3", 3.9946, 3.9946, 4.0338, 90, 90, 90, None, 99)],            # P4mm; formula_structural
    "sh0123Xraysup5": [("Nb0.5 O3 Sr Yb0.5", 5.79095, 5.82210, 8.20358, 90, 90.1262, 90, None, 14)],
    "sq1033Isup2": [("In La O3", 5.94040, 8.21580, 5.72290, 90, 90, 90, 7.173, 62)],
    "sq3214Isup2": [("Eu I2", 12.2665, 4.8875, 8.3697, 90, 90, 90, 5.371, 62)],
    "wh5012phaseIIIsup3": [("Rb2 S", 5.30756, 5.30756, 6.80615, 90, 90, 120, None, 194)],
    "wh5012phaseIIsup2": [("Rb2 S", 8.167, 5.101, 9.957, 90, 90, 90, None, 62)],
    "wm2446Isup2": [("K La O4 Ti", 3.84155, 3.84155, 13.4695, 90, 90, 90, 4.8480, 129)],
    "wn6225Isup2": [("C Ca F K O3", 5.10093, 5.10093, 4.45510, 90, 90, 120, 2.615, 187)],
}


def _quiet_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_cif(path)


@pytest.mark.parametrize("stem", sorted(PXRD_STRUCTURES))
def test_pxrd_cif_structures_match_file(shared_data, stem):
    path = shared_data / "pxrdnet_experimental" / f"{stem}.rtv.combined.cif"
    crystals = _quiet_read(path)
    expected = PXRD_STRUCTURES[stem]
    assert len(crystals) == len(expected)
    for c, (formula, a, b, cc, al, be, ga, density, sg) in zip(crystals, expected):
        assert c.cell_params == pytest.approx([a, b, cc, al, be, ga], abs=1e-4)
        ours = Composition(c.composition).fractional_composition
        ref = Composition(formula).fractional_composition
        assert ours.almost_equals(ref, rtol=2e-3), (dict(ours), dict(ref))
        if density is not None:  # total cell content (and so multiplicities) against the authors' density
            assert c.density == pytest.approx(density, rel=3e-3)
        if sg is not None:  # the expanded structure has the space group the CIF states
            assert c.symmetry(symprec=1e-3, angle_tolerance=0.5).number == sg
        assert c.labels is not None and c.properties["block"] == c.name


@pytest.mark.parametrize("stem", sorted(set(PXRD_STRUCTURES) - {"ck5030Vsup6"}))
def test_pxrd_cif_atom_counts_match_pymatgen(shared_data, stem):
    """Oracle for the symmetry expansion: pymatgen's own CifParser gives the same cell content."""
    from pymatgen.io.cif import CifParser

    path = shared_data / "pxrdnet_experimental" / f"{stem}.rtv.combined.cif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CifParser(path).parse_structures(primitive=False)
    ours = _quiet_read(path)
    assert len(ours) == len(ref)
    for c, s in zip(ours, ref):
        assert Composition(c.composition).almost_equals(s.composition, rtol=1e-6, atol=1e-6), (c.composition, s.composition)


def test_modulated_structure_gives_average_with_crenel_occupancy(shared_data):
    path = shared_data / "pxrdnet_experimental" / "ck5030Vsup6.rtv.combined.cif"
    with pytest.warns(UserWarning, match="modulated"):
        (c,) = read_cif(path)
    assert c.properties["modulated"] is True
    # X-centred cell: Er on 0,0,0 and 1/2,1/2,0; Ge orbit of 4 with crenel width 0.7926
    assert c.composition["Er"] == pytest.approx(2.0)
    assert c.composition["Ge"] == pytest.approx(4 * 0.7926)
    assert c.properties["partial_occupancy"][0]["occupancy"] == pytest.approx(0.7926)


def test_two_phase_file_and_read_structure_first(shared_data):
    path = shared_data / "pxrdnet_experimental" / "av5088sup4.rtv.combined.cif"
    names = [c.name for c in _quiet_read(path)]
    assert names == ["C4Br4S2G_phase_1", "C4Br4S2G_phase_2"]
    with pytest.warns(UserWarning, match="2 structures"):
        first = read_structure(path)
    assert first.name == "C4Br4S2G_phase_1" and len(first) == 18


# ----- partial occupancy -----------------------------------------------------------------------------
def test_mixed_site_kept_and_reported(local_data):
    with pytest.warns(UserWarning, match="3 partially occupied site"):
        (c,) = read_cif(local_data / "mixed_site.cif")
    at_origin = np.all(np.isclose(c.frac_coords, 0.0), axis=1)
    assert sorted(zip(np.array(c.species)[at_origin], np.array(c.labels)[at_origin])) == [("Co", "Co1"), ("Fe", "Fe1")]
    assert c.occupancies[at_origin] == pytest.approx([0.5, 0.5])
    assert c.composition == pytest.approx({"Fe": 1.0, "Co": 1.0, "O": 0.9})  # Im-3m: 2a ×2, 6b ×0.15
    assert [(p["label"], p["occupancy"], p["multiplicity"]) for p in c.properties["partial_occupancy"]] == \
        [("Fe1", 0.5, 2), ("Co1", 0.5, 2), ("O1", 0.15, 6)]
    from pymatgen.io.cif import CifParser  # oracle: pymatgen's reading of the same file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CifParser(local_data / "mixed_site.cif").parse_structures(primitive=False)[0]
    assert Composition(c.composition).almost_equals(ref.composition)


def test_partial_occupancy_survives_ase_and_pymatgen(local_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (c,) = read_cif(local_data / "mixed_site.cif")
    back = Crystal.from_ase(c.to_ase())
    assert back.labels == c.labels and back.occupancies == pytest.approx(c.occupancies)
    assert back.frac_coords == pytest.approx(c.frac_coords)
    s = c.to_pymatgen()
    assert len(s) == 8 and not s.is_ordered  # Fe0.5Co0.5 twice + 6 O0.15
    assert {str(k): v for k, v in s[0].species.items()} == pytest.approx({"Fe": 0.5, "Co": 0.5})
    back = Crystal.from_pymatgen(s)
    assert sorted(back.occupancies) == pytest.approx(sorted(c.occupancies))
    assert back.composition == pytest.approx(c.composition)


def test_overfull_site_is_reported(tmp_path, local_data):
    text = (local_data / "mixed_site.cif").read_text().replace("Co1 Co 0 0 0 0.5", "Co1 Co 0 0 0 0.7")
    with pytest.warns(UserWarning, match="sum to more than 1"):
        (c,) = read_cif(text)
    assert c.properties["overfull_sites"][0]["total_occupancy"] == pytest.approx(1.2)


# ----- round trips --------------------------------------------------------------------------------------
def _triclinic():
    rng = np.random.default_rng(3)
    return Crystal.from_parameters(5.1, 6.3, 7.7, 81.0, 97.5, 103.2, ["Fe", "Co", "O", "O"], rng.random((4, 3)),
                                   occupancies=[0.6, 0.4, 1.0, 0.25], labels=["M1", "M1b", "O1", "O2"], name="tri")


def test_cif_write_read_roundtrip(tmp_path):
    c = _triclinic()
    write_cif(c, tmp_path / "t.cif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (back,) = read_cif(tmp_path / "t.cif")
    assert back.cell_params == pytest.approx(c.cell_params, abs=1e-6)
    assert back.frac_coords == pytest.approx(np.mod(c.frac_coords, 1.0), abs=2e-4)  # pymatgen snaps to ideal fractions
    assert back.species == c.species and back.labels == c.labels and back.name == "tri"
    assert back.occupancies == pytest.approx(c.occupancies)
    # Cartesian geometry is the same up to rotation: compare interatomic distances
    d0 = np.linalg.norm(c.cart_coords[:, None] - c.cart_coords[None], axis=-1)
    d1 = np.linalg.norm(back.cart_coords[:, None] - back.cart_coords[None], axis=-1)
    assert d1 == pytest.approx(d0, abs=2e-3)


def test_cif_roundtrip_of_expanded_pdcif_structure(shared_data, tmp_path):
    (c,) = _quiet_read(shared_data / "pxrdnet_experimental" / "br1322Isup2.rtv.combined.cif")
    write_structure(c, tmp_path / "alpo4.cif")
    (back,) = _quiet_read(tmp_path / "alpo4.cif")
    assert len(back) == len(c) == 12 and back.symmetry(symprec=1e-3).number == 186


def test_xyz_roundtrips(tmp_path):
    p = Particle([[0, 0, 0], [2.5, 0.1, -0.3], [1.0, 2.0, 3.0]], ["Au", "Pt", "Au"], occupancies=[1, 0.5, 1], name="np")
    write_xyz(p, tmp_path / "p.xyz")
    back = read_xyz(tmp_path / "p.xyz")
    assert isinstance(back, Particle)
    assert back.positions == pytest.approx(p.positions) and back.species == p.species
    assert back.occupancies == pytest.approx([1, 0.5, 1])
    c = _triclinic()
    write_xyz(c, tmp_path / "c.extxyz")
    back = read_structure(tmp_path / "c.extxyz")
    assert isinstance(back, Crystal)
    assert back.lattice == pytest.approx(c.lattice) and back.frac_coords == pytest.approx(c.frac_coords)
    assert back.labels == c.labels and back.occupancies == pytest.approx(c.occupancies)


def test_plain_xyz_and_ase_fallback(tmp_path):
    (tmp_path / "plain.xyz").write_text("2\nno key=value here\nAu 0 0 0\nAu 2.88 0 0\n")
    p = read_structure(tmp_path / "plain.xyz")
    assert isinstance(p, Particle) and p.diameter == pytest.approx(2.88)
    import ase.io

    c = _triclinic()
    ase.io.write(tmp_path / "POSCAR", c.to_ase(), format="vasp")
    back = read_structure(tmp_path / "POSCAR")
    assert isinstance(back, Crystal) and back.cell_params == pytest.approx(c.cell_params, abs=1e-5)


def test_cif_number_uncertainty():
    assert cif_number("1234(35)") == (1234.0, 35.0)
    v, s = cif_number("12.419(5)")
    assert (v, s) == (12.419, pytest.approx(0.005))
    assert cif_number("1.5e2(3)")[1] == pytest.approx(30.0)
    assert np.isnan(cif_number("?")[0]) and np.isnan(cif_number(".")[0])


# ----- bad input -----------------------------------------------------------------------------------------
CIF_HEAD = ("data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n"
            "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
            "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n")


@pytest.mark.parametrize("content, problem", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("this is not a cif at all\n", "no data_ block"),
    ("data_p\n_pd_meas_2theta_range_min 5\nloop_\n_pd_meas_counts_total\n1\n2\n", "no crystal structure"),
    ("data_x\nloop_\n_a\n_b\n1 2 3\n", "malformed CIF"),
    ("data_x\n_title\n;unterminated text field\n_cell_length_a 4\n", "unterminated"),
    (CIF_HEAD + "Xx1 Xx 0 0 0\n", "unknown element 'Xx'"),
    (CIF_HEAD + "Fe1 Fe ? 0 0\n", "non-numeric coordinates"),
    (CIF_HEAD + "Fe1 Fe nan 0 0\n", "non-numeric coordinates"),
    (CIF_HEAD.replace("_cell_length_b 4\n", "") + "Fe1 Fe 0 0 0\n", "_cell_length_b is missing"),
])
def test_bad_cif(tmp_path, content, problem):
    f = tmp_path / "bad.cif"
    f.write_text(content)
    with pytest.raises(InputError, match=problem) as err:
        read_cif(f)
    assert str(f) in str(err.value)


@pytest.mark.parametrize("content, problem", [
    ("", "empty"),
    ("3\ncomment\nAu 0 0 0\nAu 1 0 0\n", "announces 3 atoms but only 2"),
    ("2\ncomment\nAu 0 0 0\nAu 1 0 0\nAu 2 0 0\n", "count disagrees"),
    ("2\ncomment\nAu 0 0 0\nAu nan 0 0\n", "non-finite"),
    ("2\ncomment\nAu 0 0 0\nAu x 0 0\n", "line 4: coordinates are not numbers"),
    ("two\ncomment\nAu 0 0 0\n", "line 1: expected the number of atoms"),
    ("1\ncomment\nQq 0 0 0\n", "unknown element|cannot read xyz"),
])
def test_bad_xyz(tmp_path, content, problem):
    f = tmp_path / "bad.xyz"
    f.write_text(content)
    with pytest.raises(InputError, match=problem) as err:
        read_xyz(f)
    assert str(f) in str(err.value)


def test_read_structure_missing_and_unknown(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_structure(tmp_path / "nope.cif")
    (tmp_path / "junk.abc").write_text("junk junk\n")
    with pytest.raises(InputError, match="junk.abc"):
        read_structure(tmp_path / "junk.abc")
    with pytest.raises(InputError, match="only a periodic Crystal"):
        write_structure(Particle([[0, 0, 0]], ["Au"]), tmp_path / "p.cif")
