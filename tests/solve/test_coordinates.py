"""Coordinate search of powder-solve candidates (solve.coordinates): free Wyckoff coordinates found from
random starts, the cell fitted to peak positions whatever the intensities, other Wyckoff combinations,
the ranking it feeds, and a shuffled-pattern control."""

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher

from nanosolve.scattering.bragg import simulate_xrd
from nanosolve.scattering.pattern import Pattern
from nanosolve.solve.coordinates import (
    candidate_phase,
    fit_cell_free_intensities,
    search_candidates,
    search_coordinates,
    wyckoff_alternatives,
)
from nanosolve.solve.sanity import check_crystal
from nanosolve.solve.screen import prepare_screen, screen_crystal
from nanosolve.structures import Crystal

torch.set_num_threads(1)
MATCH = StructureMatcher(stol=0.3, ltol=0.05, angle_tol=2)


def fecl2_like():
    """An orthorhombic Pnma AB2 (cotunnite type, PbCl2): 12 atoms, 6 free coordinates."""
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Pnma", Lattice.orthorhombic(7.62, 4.53, 9.05), ["Pb", "Cl", "Cl"],
                                  [[0.2621, 0.25, 0.4045], [0.8593, 0.25, 0.4262], [0.9762, 0.25, 0.8392]])
    return Crystal.from_pymatgen(s, name="PbCl2")


def measured(crystal, seed=0, shuffle=False):
    rng = np.random.default_rng(seed)
    sim = simulate_xrd(crystal, "CuKa", fwhm=0.08, two_theta_range=(10, 90), b_iso=0.8)
    y = rng.poisson(sim.y / sim.y.max() * 1e4 + 300).astype(float)
    if shuffle:
        y = rng.permutation(y)
    return Pattern(sim.x, y, x_unit="tth", kind="xrd", wavelength=sim.wavelength)


def scrambled(crystal, seed):
    phase = candidate_phase(crystal)
    p = np.random.default_rng(seed).uniform(-1, 1, phase.pos_a.shape[2])
    out = phase.crystal.copy()
    out.frac_coords = np.mod(phase.pos_b + np.einsum("nip,p->ni", phase.pos_a, p), 1.0)
    return out


@pytest.fixture(scope="module")
def case():
    truth = fecl2_like()
    return truth, prepare_screen(measured(truth))


def test_phase_has_the_space_group_free_coordinates(case):
    truth, _ = case
    phase = candidate_phase(truth)
    assert phase.spacegroup == "Pnma" and phase.pos_a.shape[2] == 6  # three 4c sites, x and z each
    assert sorted(s["wyckoff"] for s in phase.sites) == ["4c", "4c", "4c"]


def test_search_finds_the_coordinates_from_random_starts(case):
    truth, data = case
    start = scrambled(truth, seed=3)
    assert not MATCH.fit(start.to_pymatgen(), truth.to_pymatgen())
    found, info = search_coordinates(candidate_phase(start), data, seed=0)
    assert MATCH.fit(found.to_pymatgen(), truth.to_pymatgen())
    assert info.after < 0.5 * info.before and info.spacegroup == "Pnma" and info.n_free == 6
    assert screen_crystal(found, data).r == pytest.approx(screen_crystal(truth, data).r, abs=0.02)
    assert check_crystal(found).plausible


def test_cell_from_peak_positions_whatever_the_coordinates(case):
    truth, data = case
    start = scrambled(truth, seed=5)
    start.lattice = start.lattice * np.array([1.06, 0.95, 1.03])[:, None]
    phase = candidate_phase(start)
    factors, r, r_start = fit_cell_free_intensities(phase, data)
    lengths = np.sort(np.linalg.norm(phase.crystal.lattice * factors[:, None], axis=1))
    np.testing.assert_allclose(lengths, np.sort(np.linalg.norm(truth.lattice, axis=1)), rtol=3e-3)
    assert r < 0.5 * r_start
    # the screen, which takes the scrambled candidate's intensities as they are, lands elsewhere
    assert screen_crystal(start, data).r > 3 * r


def test_wyckoff_alternatives_keep_group_cell_and_content(case):
    truth, _ = case
    phase = candidate_phase(truth)
    alts = wyckoff_alternatives(phase, limit=10, seed=0)
    own = sorted((s["element"], s["wyckoff"]) for s in phase.sites)
    assert alts and all(a.number == 62 and len(a.crystal) == 12 for a in alts)
    assert all(sorted((s["element"], s["wyckoff"]) for s in a.sites) != own for a in alts)
    assert all(a.crystal.composition == truth.composition for a in alts)
    np.testing.assert_allclose(alts[0].crystal.lattice, phase.crystal.lattice)


def _ranked(crystals, data):
    out = [SimpleNamespace(crystal=c, screen=screen_crystal(c, data), coordinate_search=None) for c in crystals]
    return sorted(out, key=lambda c: c.screen.r)


def test_ranking_after_the_search_and_its_record(case):
    """The scrambled right type screens behind a wrong type; after the search it is first, with the truth."""
    truth, data = case
    wrong = Crystal.from_parameters(5.0, 5.0, 7.0, 90, 90, 90, ["Pb", "Pb", "Cl", "Cl", "Cl", "Cl"],
                                    [[0, 0, 0], [.5, .5, .5], [.3, .3, 0], [.7, .7, 0], [.8, .2, .5], [.2, .8, .5]])
    right = scrambled(truth, seed=3)
    ranked = _ranked([right, wrong], data)
    before = [c.crystal for c in ranked]
    ranked, n = search_candidates(ranked, data, top=2, seed=0)
    assert n >= 1
    best = ranked[0]
    assert best.crystal is right and MATCH.fit(best.screen.crystal.to_pymatgen(), truth.to_pymatgen())
    rec = best.coordinate_search.summary()
    assert rec["improved"] and rec["screen_r_after"] < rec["screen_r_before"] and rec["spacegroup"] == "Pnma"
    assert [c.screen.r for c in ranked] == sorted(c.screen.r for c in ranked)
    assert {id(c) for c in before} == {id(c.crystal) for c in ranked}


def test_deadline_passed_searches_nothing(case):
    truth, data = case
    ranked = _ranked([scrambled(truth, seed=3)], data)
    r0 = ranked[0].screen.r
    ranked, n = search_candidates(ranked, data, top=2, deadline=time.perf_counter() - 1.0)
    assert n == 0 and ranked[0].screen.r == r0 and ranked[0].coordinate_search is None


def test_shuffled_pattern_control(case):
    """Against the same counts shuffled over 2θ the search finds no structure: R stays high, no match."""
    truth, data = case
    shuffled = prepare_screen(measured(truth, shuffle=True))
    found, info = search_coordinates(candidate_phase(scrambled(truth, seed=3)), shuffled, seed=0)
    real = search_coordinates(candidate_phase(scrambled(truth, seed=3)), data, seed=0)[1]
    assert not MATCH.fit(found.to_pymatgen(), truth.to_pymatgen())
    assert info.after > 0.5 > 3 * real.after


def test_no_free_coordinates_is_left_alone():
    nacl = Crystal.from_parameters(5.64, 5.64, 5.64, 90, 90, 90, ["Na"] * 4 + ["Cl"] * 4,
                                   [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5],
                                    [.5, .5, .5], [0, 0, .5], [0, .5, 0], [.5, 0, 0]])
    assert candidate_phase(nacl) is None


@pytest.mark.slow
def test_solve_searches_coordinates_and_reports_it(case, tmp_path, monkeypatch):
    """A solve of the PbCl2 pattern from the composition: the search runs after the screen, its record is
    in the summary, and the top-1 is the truth; with the search off the summary says none ran."""
    import json

    from nanosolve.solve import coordinates
    from nanosolve.solve.pxrd import PowderSolveSettings, solve_pxrd

    monkeypatch.setattr(coordinates, "SEARCH_TYPES", 6)  # a short search: this test checks the wiring
    monkeypatch.setattr(coordinates, "COMBINATIONS", 4)
    truth, _ = case
    pattern = measured(truth)
    common = dict(k=4, steps=5, n_step_each=1, top=2, profile_top=0, random_search=0, z=4, time_budget=None,
                  symmetrize=False)
    res = solve_pxrd(pattern, "PbCl2", settings=PowderSolveSettings(coordinate_search=2, **common),
                     out_dir=tmp_path / "on")
    assert res.summary["coordinates_searched"] >= 1
    assert MATCH.fit(res.ranked[0].final_crystal.to_pymatgen(), truth.to_pymatgen())
    written = json.loads((tmp_path / "on" / "summary.json").read_text())
    records = [c["coordinate_search"] for c in written["candidates"] if c["coordinate_search"]]
    assert records and all({"sites", "spacegroup", "screen_r_after", "improved"} <= set(r) for r in records)
    off = solve_pxrd(pattern, "PbCl2", settings=PowderSolveSettings(coordinate_search=0, **common))
    assert off.summary["coordinates_searched"] == 0
    assert all(c.coordinate_search is None for c in off.ranked)
