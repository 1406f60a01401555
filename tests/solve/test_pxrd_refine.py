"""R-factors and refinement of candidate crystals against powder patterns (solve.pxrd_refine)."""

import json

import numpy as np
import pytest
import torch

from nanosolve.errors import InputError
from nanosolve.scattering import nano_pxrd as nx
from nanosolve.scattering.bragg import simulate_xrd
from nanosolve.scattering.pattern import Pattern
from nanosolve.solve.pxrd_refine import paper_rwp2, plot_pxrd_fit, refine_crystal, rwp, rwp2
from nanosolve.structures import Crystal

torch.set_num_threads(1)
A_STO, A_NACL = 3.905, 5.64


def srtio3(a=A_STO, dz=0.0):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Sr", "Ti", "O", "O", "O"],
                                   [[0, 0, 0], [.5, .5, .5 + dz], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])


def nacl(a=A_NACL):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Na"] * 4 + ["Cl"] * 4,
                                   [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5],
                                    [.5, .5, .5], [0, 0, .5], [0, .5, 0], [.5, 0, 0]])


def tetragonal10(a, c):
    """A 10-atom tetragonal ABO3 double cell (a = b != c)."""
    frac, sp = [], []
    for k in (0.0, 0.5):
        frac += [[0, 0, k], [.5, .5, k + .25], [.5, .5, k], [.5, 0, k + .25], [0, .5, k + .25]]
        sp += ["Ba", "Ti", "O", "O", "O"]
    return Crystal.from_parameters(a, a, c, 90, 90, 90, sp, frac)


def test_rwp2_hand_values():
    y = np.array([0.0, 1.0, 0.0])
    assert rwp2(y, y) == 0.0
    assert rwp2(y, np.zeros(3), q=[0, 1, 2]) == pytest.approx(1.0)
    assert rwp2(y, 0.5 * y, q=[0, 1, 2]) == pytest.approx(0.25)
    # non-uniform trapezoid, q = [0, 1, 4]: ∫1² dQ = 4; ∫(1 - [1, 0, 1])² = 0.5·1 + 0.5·3 = 2
    assert rwp2([1.0, 1.0, 1.0], [1.0, 0.0, 1.0], q=[0, 1, 4]) == pytest.approx(2.0 / 4.0)


def test_rwp_hand_values():
    # weights 1/max(y, 0.01·max y) = [1, 1/2]: Σw(Δ)² = 0.5, Σw y² = 1 + 2 = 3
    assert rwp([1.0, 2.0], [1.0, 1.0]) == pytest.approx(np.sqrt(0.5 / 3.0))
    assert rwp([1.0, 2.0], [1.0, 1.0], weights=[1.0, 1.0]) == pytest.approx(np.sqrt(1 / 5))
    assert rwp([1.0, 2.0, 5.0], [1.0, 1.0, 0.0], weights=[1, 1, 1], mask=[True, True, False]) == \
        pytest.approx(np.sqrt(1 / 5))
    assert rwp([1.0, 2.0], [1.0, 2.0]) == 0.0


def test_paper_rwp2():
    assert paper_rwp2(srtio3(), srtio3()) == pytest.approx(0.0, abs=1e-12)
    big = paper_rwp2(srtio3(), srtio3(A_STO * 1.03))
    small = paper_rwp2(srtio3(), srtio3(A_STO * 1.003))
    assert big > 0.5 and 0 < small < big


@pytest.mark.parametrize("size,factor", [(10.0, 1.08), (10.0, 0.92), (100.0, 1.08)])
def test_refine_model_grid_recovers_lattice(size, factor):
    target = nx.pxrdnet_pattern(srtio3(), size=size)
    fit = refine_crystal(srtio3(A_STO * factor), target, size=size)
    a = fit.crystal.cell_params
    assert abs(a[0] / A_STO - 1) < 0.005 and np.ptp(a[:3]) < 1e-9 and np.allclose(a[3:], 90)
    assert fit.rwp_before > 0.3 and fit.rwp_after < 1e-3
    assert fit.rwp_after == pytest.approx(rwp(fit.y_obs, fit.y_calc, mask=fit.mask), rel=1e-6)
    assert fit.params["sigma_q"] == pytest.approx(0.5 * sum(nx.SIGMA_Q_RANGE), rel=0.02)
    # y_calc covers all 512 points (also Q > q_fit_max, not fitted) and is the recipe's pattern
    assert not fit.mask[nx.model_grid() > 7.5].any()
    again = nx.pxrdnet_pattern(fit.crystal, size=size, sigma_q=fit.params["sigma_q"])
    assert np.abs(fit.y_calc / fit.y_calc.max() - again).max() < 2e-3
    assert fit.seconds < 10
    s = json.loads(json.dumps(fit.summary()))
    assert s["rwp_after"] == pytest.approx(fit.rwp_after) and s["params"]["a"] == pytest.approx(a[0])


def test_refine_model_grid_tetragonal_per_axis():
    target = nx.pxrdnet_pattern(tetragonal10(3.99, 9.2), size=100.0)
    fit = refine_crystal(tetragonal10(3.99 * 1.06, 9.2 * 0.95), target, size=100.0)
    a, b, c = fit.crystal.cell_params[:3]
    assert fit.params["tied_lengths"] == [[0, 1], [2]] and a == pytest.approx(b, abs=1e-9)
    assert abs(a / 3.99 - 1) < 0.005 and abs(c / 9.2 - 1) < 0.005
    assert fit.rwp_after < 1e-3 < fit.rwp_before


def test_refine_positions_lowers_rwp():
    target = nx.pxrdnet_pattern(srtio3(), size=100.0)
    start = srtio3(dz=0.03)
    lattice_only = refine_crystal(start, target, size=100.0)
    with_pos = refine_crystal(start, target, size=100.0, refine_positions=True)
    assert with_pos.rwp_after < 0.2 * lattice_only.rwp_after < lattice_only.rwp_before
    fr = with_pos.crystal.frac_coords
    dz = (fr[1, 2] - fr[0, 2]) % 1.0  # Ti relative to Sr (the origin may drift)
    assert abs(dz - 0.5) < 0.005 and with_pos.params["max_position_shift"] > 0.01


def test_refinement_is_reproducible_to_the_bit():
    """The same start and data give the same refined crystal, whatever memory the linear solve lands in
    (a solver whose last bits depend on alignment, amplified by L-BFGS, gave three crystals in three calls)."""
    rng = np.random.default_rng(0)
    start = Crystal.from_parameters(3.84, 4.03, 4.43, 89.8, 90.5, 90.9, srtio3().species,
                                    (srtio3().frac_coords + rng.normal(0, 0.05, (5, 3))) % 1)
    target = nx.pxrdnet_pattern(srtio3(), sigma_q=0.0)
    cells = set()
    for n in (1, 37, 501):
        _shift = [torch.empty(n, dtype=torch.float64) for _ in range(3)]  # other allocations between calls
        fit = refine_crystal(start, target, n_restarts=2, refine_positions=True, steps=30)
        cells.add((fit.crystal.cell_params.tobytes(), fit.crystal.frac_coords.tobytes(), fit.rwp_after))
        del _shift
    assert len(cells) == 1


@pytest.fixture(scope="module")
def measured_nacl():
    x = np.arange(10, 90, 0.01)
    sim = simulate_xrd(nacl(), nx.WAVELENGTH, x="tth", grid=x - 0.05, fwhm=0.15)  # zero shift +0.05°
    t = (x - 50) / 40
    bg = sim.y.max() * (0.05 + 0.02 * t - 0.015 * t * t)
    return Pattern(x, sim.y + bg, x_unit="tth", wavelength=nx.WAVELENGTH, metadata={"source": "nacl.xy"})


def test_refine_measured_pattern(measured_nacl, tmp_path):
    fit = refine_crystal(nacl(A_NACL * 1.05), pattern=measured_nacl)
    assert abs(fit.crystal.cell_params[0] / A_NACL - 1) < 0.003
    assert fit.rwp_after < 0.05 < fit.rwp_before
    assert fit.params["zero_deg"] == pytest.approx(0.05, abs=0.01)
    assert fit.params["fwhm_deg"] == pytest.approx(0.15, rel=0.05)
    assert fit.x_unit == "tth" and fit.x.size == 8000 and fit.seconds < 60
    assert json.loads(json.dumps(fit.summary()))["params"]["zero_deg"] == pytest.approx(fit.params["zero_deg"])
    png = plot_pxrd_fit(fit, tmp_path / "fit.png", title="NaCl")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_refine_measured_pseudo_voigt(measured_nacl):
    fit = refine_crystal(nacl(A_NACL * 0.96), pattern=measured_nacl, profile="pseudo-voigt")
    assert abs(fit.crystal.cell_params[0] / A_NACL - 1) < 0.003
    assert fit.params["eta"] < 0.1  # the data are Gaussian
    assert fit.rwp_after < 0.05


def test_bad_inputs():
    with pytest.raises(InputError):
        refine_crystal(srtio3(), np.ones(100))
    with pytest.raises(InputError):
        refine_crystal(srtio3(), pattern=Pattern(np.arange(10, 20.0), np.arange(10.0), x_unit="tth"))
    with pytest.raises(InputError):
        refine_crystal(srtio3(), np.ones(512), lattice_range=0.7)


def test_measured_data_through_model_grid():
    """The PXRDNet path: a sharp 2θ pattern -> to_model_grid (broadened, masked) -> model-grid fit."""
    sharp = simulate_xrd(srtio3(), nx.WAVELENGTH, x="tth", grid=np.arange(10, 120, 0.01), fwhm=0.05)
    y, m = nx.to_model_grid(sharp, broaden=(10.0, 0.5 * sum(nx.SIGMA_Q_RANGE)))
    fit = refine_crystal(srtio3(A_STO * 1.05), y, mask=m, size=10.0)
    assert abs(fit.crystal.cell_params[0] / A_STO - 1) < 0.005
    assert fit.mask.sum() == m.sum() and fit.rwp_after < 0.02 < fit.rwp_before


def test_refine_lower_symmetry_splits_a_cubic_start():
    """A tetragonal perovskite (c/a = 1.012) measured with sharp peaks, refined from a cubic start:
    tied lengths keep it cubic; splitting c off recovers both lengths and the fit."""
    from nanosolve.solve.pxrd_refine import refine_lower_symmetry

    def batio3(a, c):
        return Crystal.from_parameters(a, a, c, 90, 90, 90, ["Ba", "Ti", "O", "O", "O"],
                                       [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])

    a, c = 3.99, 3.99 * 1.012
    truth = batio3(a, c)
    x = np.arange(15, 100, 0.01)
    meas = Pattern(x, simulate_xrd(truth, nx.WAVELENGTH, x="tth", grid=x, fwhm=0.08).y, x_unit="tth",
                   wavelength=nx.WAVELENGTH)
    start = batio3(3.95, 3.95)
    tied = refine_crystal(start, pattern=meas, n_restarts=2)
    assert tied.params["tied_lengths"] == [[0, 1, 2]]
    assert np.ptp(tied.crystal.cell_params[:3]) < 1e-9  # stayed cubic
    best = refine_lower_symmetry(start, pattern=meas, n_restarts=2)
    assert best.params["splits_tried"] == [0]  # Pm-3m: the three splits are the same fit
    assert best.params["split_length"] == 0
    lengths = sorted(best.crystal.cell_params[:3])
    assert lengths[0] == pytest.approx(a, rel=1e-3) and lengths[1] == pytest.approx(a, rel=1e-3)
    assert lengths[2] == pytest.approx(c, rel=1e-3)
    assert best.rwp_after < 0.5 * tied.rwp_after
    assert best.rwp_after < 0.1
    with pytest.raises(InputError, match="split_length"):
        refine_crystal(start, pattern=meas, split_length=3)


def test_axis_orbits_follow_the_candidate_symmetry():
    """Equal lengths are merged only where a symmetry operation maps one axis onto the other."""
    from nanosolve.solve.pxrd_refine import _axis_orbits

    species = ["Ba", "Ti", "O", "O", "O"]
    cubic = Crystal.from_parameters(4, 4, 4, 90, 90, 90, species,
                                    [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])
    assert _axis_orbits(cubic) == [{0, 1, 2}]
    # Ti moved along c in a cubic-metric cell (P4mm): a and b stay equivalent, c does not
    polar = Crystal.from_parameters(4, 4, 4, 90, 90, 90, species,
                                    [[0, 0, 0], [.5, .5, .55], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])
    assert _axis_orbits(polar) == [{0, 1}, {2}]
    # a second atom along the face diagonal of ab only: no operation swaps any two axes
    low = Crystal.from_parameters(4, 4, 4, 90, 90, 90, ["Na", "Cl", "Cl"], [[0, 0, 0], [.3, .1, .2], [.6, .25, .45]])
    assert _axis_orbits(low) == [{0}, {1}, {2}]
