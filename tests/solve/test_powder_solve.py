"""Composition-only powder solve: sanity gate, Z search, stand-in elements, pyxtal candidates, budget."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from nanosolve.structures.crystal import Crystal


def _rocksalt(a: str, b: str, lat: float) -> Crystal:
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    return Crystal(np.eye(3) * lat, np.vstack([fcc, fcc + [0.5, 0, 0]]) % 1.0, [a] * 4 + [b] * 4)


def _shipped():
    from nanosolve.solve.pxrd import default_model_dir

    mdir = default_model_dir()
    if not (mdir / "config.json").is_file():
        pytest.skip("the shipped PXRDNet model is not in this checkout")
    return mdir


# -- sanity gate ------------------------------------------------------------------------------

def test_sanity_flags_impossible_rb_s_contact_and_passes_rock_salt():
    from nanosolve.solve.sanity import check_crystal, covalent_radius

    bad = check_crystal(_rocksalt("Rb", "S", 3.2))  # Rb-S = a/2 = 1.6 Å (real Rb2S: 3.14 Å)
    assert not bad.plausible
    assert bad.min_distance["pair"] == "Rb-S" and bad.min_distance["distance"] == pytest.approx(1.6, abs=1e-3)
    assert bad.min_distance["expected_min"] == pytest.approx(0.7 * (covalent_radius("Rb") + covalent_radius("S")),
                                                             abs=1e-3)
    assert any("Rb-S contact 1.60 Å" in f for f in bad.flags)
    good = check_crystal(_rocksalt("Na", "Cl", 5.64))
    assert good.plausible and good.flags == []
    assert good.min_distance["pair"] == "Cl-Na" and good.min_distance["distance"] == pytest.approx(2.82, abs=1e-3)
    # 4 NaCl per 5.64³ Å³: 2.165 g/cm³ (handbook 2.17)
    assert good.density == pytest.approx(2.165, abs=0.01)
    summary = bad.summary()
    assert json.loads(json.dumps(summary))["min_distance"]["pair"] == "Rb-S"


def test_sanity_flags_isolated_atom_and_too_open_cell():
    from nanosolve.solve.sanity import check_crystal

    lonely = Crystal(np.eye(3) * 30.0, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    s = check_crystal(lonely)
    assert not s.plausible and any("isolated" in f for f in s.flags) and any("too open" in f for f in s.flags)


def test_gate_ranks_every_plausible_candidate_first():
    from nanosolve.solve.pxrd import Candidate, _gate

    crystals = [_rocksalt("Rb", "S", 3.2), _rocksalt("Na", "Cl", 5.64), _rocksalt("Rb", "S", 3.0),
                _rocksalt("K", "Cl", 6.29)]
    ranked = [Candidate(c, np.zeros(4), 0.1 * (i + 1), 1.0, "pxrdnet", i) for i, c in enumerate(crystals)]
    out = _gate(ranked)
    assert [c.index for c in out] == [1, 3, 0, 2]  # plausible by fit, then implausible by fit
    assert [c.sanity.plausible for c in out] == [True, True, False, False]
    assert out[2].summary()["sanity"]["min_distance"]["pair"] == "Rb-S"


# -- composition, Z and stand-ins ------------------------------------------------------------

def test_reduced_composition_and_z_values():
    from nanosolve.errors import InputError
    from nanosolve.solve.composition import cell_types, reduced_composition, z_values

    assert reduced_composition("Fe4O6") == reduced_composition("Fe2O3") == {"Fe": 2, "O": 3}
    assert z_values({"Fe": 2, "O": 3}) == [1, 2, 3, 4, 6, 8]  # 5 atoms x 8 = 40
    assert z_values({"Ba": 1, "Ti": 1, "O": 3}) == [1, 2, 3, 4, 6, 8]
    assert z_values({"Rb": 2, "S": 1}) == [1, 2, 3, 4, 6, 8, 12, 16]  # 48 atoms
    assert max(z_values({"K": 1, "La": 1, "Ti": 1, "O": 4})) * 7 >= 40
    assert z_values({"Fe": 2, "O": 3}, z=4) == [4]
    assert cell_types({"O": 1, "Mg": 1}, 2) == ["O", "O", "Mg", "Mg"]  # by atomic number
    with pytest.raises(InputError, match="whole atom counts"):
        reduced_composition("Fe2.5O3")
    with pytest.raises(InputError, match="outside H-Pu"):
        reduced_composition("AmO2")


def test_stand_ins_for_elements_the_model_never_saw():
    from nanosolve.solve.composition import model_stand_ins, stand_in

    known = ["O", "N", "Er", "Gd", "Y", "Na", "Cl", "Sn", "Ba", "Nd"]
    assert stand_in("Ho", known) == "Er" or stand_in("Ho", known) == "Y"  # Ho3+ 0.90 Å: Y3+ 0.90, Er3+ 0.89
    assert stand_in("Pr", known) == "Nd"
    assert stand_in("Br", known) == "Cl"  # same group first
    subs = model_stand_ins(["Ho", "Er", "O"], known)
    assert list(subs) == ["Ho"] and subs["Ho"] not in ("Er", "O")  # never an element already present
    assert model_stand_ins(["Na", "Cl"], known) == {}


@pytest.mark.slow
def test_unknown_element_is_substituted_for_decoding_and_put_back(tmp_path):
    from nanosolve.scattering.bragg import simulate_xrd
    from nanosolve.solve.pxrd import PowderSolveSettings, solve_pxrd

    mdir = _shipped()
    known = json.loads((mdir / "config.json").read_text())["extra"]["elements"]
    assert "Ho" not in known
    pat = simulate_xrd(_rocksalt("Ho", "N", 4.87), "CuKa", fwhm=0.1)
    st = PowderSolveSettings(model_dir=mdir, k=16, steps=5, n_step_each=1, top=1, profile_top=0, prototypes=False,
                             symmetrize=False, random_search=0, time_budget=None, z=1)
    res = solve_pxrd(pat, "HoN", settings=st, out_dir=tmp_path / "o")
    stand = res.summary["element_stand_ins"]
    assert list(stand) == ["Ho"] and stand["Ho"] in known
    assert len(res.ranked) == 16
    for cand in res.ranked:  # the real element is back in every candidate
        assert sorted(cand.final_crystal.species) == ["Ho", "N"]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["element_stand_ins"] == stand and summary["candidates"][0]["formula"] == "HoN"


# -- pyxtal random search --------------------------------------------------------------------

def test_random_crystals_respect_composition_z_and_space_group():
    from pyxtal.symmetry import Group

    from nanosolve.solve.random_search import compatible_space_groups, random_crystals
    from nanosolve.solve.sanity import check_crystal

    groups = compatible_space_groups({"Ti": 1, "O": 2}, 2)
    assert 136 in groups and 225 not in groups  # rutile's P4_2/mnm holds Ti2O4; Fm-3m needs multiples of 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = random_crystals({"Ti": 1, "O": 2}, 2, 8, seed=3)
    assert len(cs) == 8
    for c in cs:
        assert sorted(c.species) == ["O"] * 4 + ["Ti"] * 2
        sg = c.properties["space_group"]
        assert sg in groups
        # spglib finds at least the drawn group's symmetry (a random draw may land on a supergroup)
        import spglib

        ops = spglib.get_symmetry((c.lattice, c.frac_coords, c.atomic_numbers), symprec=1e-3)["rotations"]
        assert len(ops) >= len(Group(sg)[0])  # general-position multiplicity of the conventional cell
        assert check_crystal(c).plausible


def test_random_crystals_stop_at_the_deadline():
    from nanosolve.solve.random_search import random_crystals

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cs = random_crystals({"Ba": 1, "Ti": 1, "O": 3}, 2, 100000, seed=0, deadline=t0 + 1.0)
    assert 0 < len(cs) < 100000 and time.perf_counter() - t0 < 10.0


# -- the solve: Z search and budget ----------------------------------------------------------

@pytest.mark.slow
def test_z4_cell_found_from_the_reduced_formula(tmp_path):
    """A pattern simulated from an 8-atom FeB-type cell (Pnma, Z = 4) solved from 'SiTi' alone."""
    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.scattering.bragg import simulate_xrd
    from nanosolve.solve.pxrd import PowderSolveSettings, solve_pxrd
    from nanosolve.structures.builders.prototypes import build_prototype

    mdir = _shipped()
    truth = build_prototype("AB_oP8_62_c_c-001", ["Ti", "Si"])
    assert len(truth) == 8
    pat = simulate_xrd(truth, "CuKa", fwhm=0.1)
    st = PowderSolveSettings(model_dir=mdir, k=16, steps=5, n_step_each=1, top=3, profile_top=0, random_search=0,
                             time_budget=None, symmetrize=False, coordinate_search=0)
    res = solve_pxrd(pat, "TiSi", settings=st)
    s = res.summary
    assert s["z_searched"][:4] == [1, 2, 3, 4] and max(s["z_searched"]) * 2 >= 40
    assert s["z"] == 4 and len(res.ranked[0].final_crystal) == 8
    assert match_and_rmse(res.ranked[0].final_crystal, truth)[0]
    assert res.ranked[0].summary()["z"] == 4
    # sharp data: every candidate was screened against the pattern as measured and ranked by it
    assert s["screened"] == len(res.ranked) and "screen" in s["ranking"]
    screened = [c.screen.r for c in res.ranked if c.sanity.plausible]
    assert screened == sorted(screened) and res.ranked[0].summary()["screen"]["r"] < 0.5


def test_time_budget_cuts_the_stages_and_says_so():
    from nanosolve.scattering.bragg import simulate_xrd
    from nanosolve.solve.pxrd import PowderSolveSettings, solve_pxrd

    mdir = _shipped()
    pat = simulate_xrd(_rocksalt("Na", "Cl", 5.64), "CuKa", fwhm=0.1)
    st = PowderSolveSettings(model_dir=mdir, k=16, steps=5, n_step_each=1, top=3, profile_top=1,
                             random_search=50, time_budget=1e-3)
    res = solve_pxrd(pat, "NaCl", settings=st)
    s = res.summary
    # every stage after the input was over budget: no model decoding, no random crystals, no fits;
    # the prototypes (no cost) still give a ranked answer
    assert {"model candidates", "random search", "model-grid refinement"} <= set(s["budget_cut"])
    assert s["refined"] == 0 and s["random_search_candidates"] == 0 and s["prototype_candidates"] > 0
    assert all(c.method == "prototype" for c in res.ranked)


def test_indexed_cell_keeps_the_z_values_of_a_plausible_density():
    from nanosolve.solve.indexing import IndexResult
    from nanosolve.solve.pxrd import INDEXED_PACKING, indexed_z_values
    from nanosolve.solve.sanity import covalent_radius

    unit = sum(4 / 3 * np.pi * covalent_radius(el) ** 3 for el in ("Rb", "Rb", "S"))  # Å³ of one Rb2S
    cell = IndexResult("hexagonal", (5.308, 5.308, 6.806, 90, 90, 120), 50.0, 10, 166.07)  # Rb2S III
    expect = [z for z in (1, 2, 3, 4, 6, 8) if INDEXED_PACKING[0] <= z * unit / 166.07 <= INDEXED_PACKING[1]]
    assert indexed_z_values(cell, {"Rb": 2, "S": 1}, [1, 2, 3, 4, 6, 8]) == expect
    assert 2 in expect and 8 not in expect  # the true Z = 2; 24 atoms cannot fit in 166 Å³
    assert indexed_z_values(None, {"Rb": 2, "S": 1}, [1, 2]) == []


def test_legacy_keywords_take_the_formula_as_cell_content():
    from nanosolve.solve.pxrd import PowderSolveSettings, _from_legacy

    st = _from_legacy("m", {"k": 4, "top": 1})
    assert isinstance(st, PowderSolveSettings) and st.formula_is_cell and st.random_search == 0
    assert st.time_budget is None and st.k == 4 and st.model_dir == "m"
    with pytest.raises(TypeError, match="nonsense"):
        _from_legacy("m", {"nonsense": 1})


# -- indexing --------------------------------------------------------------------------------

@pytest.mark.parametrize("label, elements, system", [("AB3C_cP5_221_a_c_b", ["Ba", "O", "Ti"], "cubic"),
                                                      ("AB2_hP6_194_c_ad", ["S", "Rb"], "hexagonal"),
                                                      ("AB_oP8_62_c_c-001", ["Ti", "Si"], None)])
def test_indexing_finds_the_cell_of_a_simulated_pattern(label, elements, system):
    """Peaks of a simulated pattern (own simulator) index to the cell pymatgen's lattice gives; an
    orthorhombic cell (outside the search) is not forced into a wrong higher-symmetry one."""
    from nanosolve.scattering.bragg import simulate_xrd
    from nanosolve.solve.indexing import index_pattern
    from nanosolve.structures.builders.prototypes import build_prototype

    crystal = build_prototype(label, elements)
    res = index_pattern(simulate_xrd(crystal, 1.54056, fwhm=0.08))
    if system is None:
        assert res is None
        return
    assert res is not None and res.system == system and res.fom >= 10
    conv = crystal.to_pymatgen().get_primitive_structure().lattice  # the conventional lengths of these cells
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    lat = SpacegroupAnalyzer(crystal.to_pymatgen()).get_conventional_standard_structure().lattice
    assert res.cell[0] == pytest.approx(lat.a, rel=2e-4) and res.cell[2] == pytest.approx(lat.c, rel=2e-4)
    assert res.volume == pytest.approx(lat.volume, rel=1e-3) and conv.volume > 0


def test_double_perovskite_found_as_an_ordering_of_the_perovskite_b_site():
    """A rock-salt-ordered double perovskite (Ba2MgWO6, Fm-3m, built here from its Wyckoff sites) is
    no AFLOW prototype; the solve finds it as an ordering of Mg and W on the perovskite's B site."""
    from pymatgen.core import Lattice, Structure

    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.scattering.bragg import simulate_xrd
    from nanosolve.solve.pxrd import PowderSolveSettings, solve_pxrd
    from nanosolve.structures.builders.prototypes import isotypic_substitutions

    mdir = _shipped()
    conv = Structure.from_spacegroup("Fm-3m", Lattice.cubic(8.10), ["Ba", "Mg", "W", "O"],
                                     [[0.25, 0.25, 0.25], [0, 0, 0], [0.5, 0.5, 0.5], [0.262, 0, 0]])
    truth = Crystal.from_pymatgen(conv.get_primitive_structure())
    assert len(truth) == 10
    # control: no prototype of the formula's own stoichiometry is this structure
    assert not any(match_and_rmse(c, truth)[0] for c in isotypic_substitutions({"Ba": 2, "Mg": 1, "W": 1, "O": 6}))
    pat = simulate_xrd(truth, "CuKa", fwhm=0.1)
    st = PowderSolveSettings(model_dir=mdir, k=8, steps=5, n_step_each=1, top=3, profile_top=3, random_search=0,
                             time_budget=None, symmetrize=False, coordinate_search=0, max_cell_atoms=20)
    res = solve_pxrd(pat, "Ba2MgWO6", settings=st)
    assert res.summary["ordered_candidates"] > 0
    best = res.ranked[0]
    assert best.source == "AB3C_cP5_221_a_c_b ordered Mg,W" and best.crystal.properties["supercell_index"] == 2
    assert match_and_rmse(best.final_crystal, truth)[0]
    assert best.rietveld is not None and best.rietveld.rwp < 0.1
