"""Screen of powder candidates against a sharp pattern: cell lengths recovered, wrong structures worse."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from nanosolve.errors import InputError
from nanosolve.scattering.bragg import simulate_xrd
from nanosolve.scattering.pattern import Pattern
from nanosolve.solve.screen import prepare_screen, screen_candidates, screen_crystal
from nanosolve.structures.crystal import Crystal

RUTILE = Structure.from_spacegroup(136, Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3049, 0.3049, 0]])
ANATASE = Structure.from_spacegroup(141, Lattice.tetragonal(3.785, 9.514), ["Ti", "O"], [[0, 0, 0], [0, 0, 0.2081]])
BROOKITE = Structure.from_spacegroup(61, Lattice.orthorhombic(9.18, 5.45, 5.15), ["Ti", "O", "O"],
                                     [[0.127, 0.113, 0.873], [0.010, 0.155, 0.180], [0.230, 0.105, 0.535]])


def _measured_rutile() -> Pattern:
    """Cu Kα rutile, 0.08° peaks, B 0.5 Å², a sloped background and Poisson counts (10⁴ at the top)."""
    sim = simulate_xrd(Crystal.from_pymatgen(RUTILE), "CuKa", fwhm=0.08, two_theta_range=(10, 90), b_iso=0.5)
    mean = sim.y / sim.y.max() * 1e4 + 300 + 200 * np.exp(-sim.x / 30)
    counts = np.random.default_rng(0).poisson(mean).astype(float)
    return Pattern(sim.x, counts, x_unit="tth", kind="xrd", wavelength=sim.wavelength)


def _scaled(structure: Structure, fa: float, fc: float) -> Crystal:
    lat = structure.lattice
    s = structure.copy()
    s.lattice = Lattice.from_parameters(lat.a * fa, lat.b * fa, lat.c * fc, lat.alpha, lat.beta, lat.gamma)
    return Crystal.from_pymatgen(s)


@pytest.fixture(scope="module")
def data():
    return prepare_screen(_measured_rutile())


def test_screen_recovers_cell_lengths_of_a_radii_guess(data):
    # a and c off by +4 % / -3 % and by -8 % / +6 %: the screen brings them back within 0.3 %
    for fa, fc in ((1.04, 0.97), (0.92, 1.06)):
        fit = screen_crystal(_scaled(RUTILE, fa, fc), data)
        a, _, c = fit.crystal.cell_params[:3]
        assert a == pytest.approx(4.594, rel=3e-3) and c == pytest.approx(2.959, rel=3e-3)
        assert fit.factors[0] == fit.factors[1]  # equal lengths stay equal: the candidate stays tetragonal
        assert fit.r < 0.3


def test_screen_ranks_the_right_polymorph_first(data):
    right = screen_crystal(_scaled(RUTILE, 1.05, 1.05), data).r
    wrong = [screen_crystal(Crystal.from_pymatgen(s), data).r for s in (ANATASE, BROOKITE)]
    assert right < 0.3 and min(wrong) > 0.5  # measured: 0.18 against 0.65-0.66


def test_screen_candidates_orders_by_fit_and_respects_the_deadline():
    class Cand:
        def __init__(self, crystal):
            self.crystal, self.screen = crystal, None

    pattern = _measured_rutile()
    cands = [Cand(Crystal.from_pymatgen(ANATASE)), Cand(_scaled(RUTILE, 0.95, 1.03)), Cand(Crystal.from_pymatgen(BROOKITE))]
    ranked, done = screen_candidates(list(cands), pattern)
    assert done == 3 and ranked[0] is cands[1]
    assert ranked[0].screen.r < ranked[1].screen.r <= ranked[2].screen.r
    ranked, done = screen_candidates(list(cands), pattern, deadline=0.0)  # long past: nothing screened
    assert done == 0 and ranked == cands


def test_screen_refuses_a_pattern_too_short_to_screen():
    x = np.linspace(20.0, 20.2, 50)
    with pytest.raises(InputError, match="too short"):
        prepare_screen(Pattern(x, np.ones_like(x) + (x > 20.1), x_unit="tth", kind="xrd", wavelength=1.5406))
