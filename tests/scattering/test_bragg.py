"""Bragg powder simulator: pymatgen XRDCalculator/NDCalculator as oracle, analytic cases, size
broadening, gradients and bad input."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq

from nanosolve.errors import InputError
from nanosolve.scattering import profiles
from nanosolve.scattering.bragg import (
    bragg_peaks,
    enumerate_hkl,
    powder_pattern_torch,
    simulate_xrd,
    structure_factors_torch,
)
from nanosolve.scattering.form_factors import xray_form_factor
from nanosolve.structures.crystal import Crystal

pmg_core = pytest.importorskip("pymatgen.core")
from pymatgen.analysis.diffraction.neutron import NDCalculator  # noqa: E402
from pymatgen.analysis.diffraction.xrd import XRDCalculator  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # On the shared 2-core machine, torch's intra-op threads oversubscribe the cores and small
    # autograd graphs run ~50x slower; these tests are small, one thread is fastest.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# (wavelength name, pymatgen/our wavelength in Å, 2θ range)
WAVES = [("CuKa", 1.54184, (10.0, 90.0)), ("MoKa", 0.71073, (5.0, 45.0))]
AFLOW_PICKS = [  # two prototypes from each non-cubic crystal family (aflow label, formula)
    ("A2B_aP6_2_2i_i", "PI2"), ("AB2_aP12_1_4a_8a", "FeS2"),
    ("AB_mC8_15_c_e", "CuO"), ("AB_mP4_11_e_e", "TiNi"),
    ("A_oC4_63_c", "U"), ("AB_oP2_25_b_a", "CdTe"),
    ("AB_tP2_123_a_d", "CuAu"), ("A_tI4_139_e", "Si"),
    ("AB_hP2_187_d_a", "WC"), ("A_hR1_166_a", "Hg"),
]


def _classic_structures() -> dict[str, Structure]:
    sg = Structure.from_spacegroup
    cub, hexa, tet = Lattice.cubic, Lattice.hexagonal, Lattice.tetragonal
    out = {
        "NaCl": sg("Fm-3m", cub(5.640), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "ZnS": sg("F-43m", cub(5.409), ["Zn", "S"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        "CaF2": sg("Fm-3m", cub(5.463), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        "ZnO": sg("P6_3mc", hexa(3.250, 5.207), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]),
        "TiO2": sg("P4_2/mnm", tet(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3053, 0.3053, 0]]),
        "CsCl": sg("Pm-3m", cub(4.123), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "NiAs": sg("P6_3/mmc", hexa(3.619, 5.034), ["Ni", "As"], [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]),
        "CdI2": sg("P-3m1", hexa(4.24, 6.84), ["Cd", "I"], [[0, 0, 0], [1 / 3, 2 / 3, 0.249]]),
        "ReO3": sg("Pm-3m", cub(3.751), ["Re", "O"], [[0, 0, 0], [0.5, 0, 0]]),
        "MgAl2O4": sg("Fd-3m", cub(8.083), ["Mg", "Al", "O"],
                      [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.2624, 0.2624, 0.2624]]),
        "SrTiO3": sg("Pm-3m", cub(3.905), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]),
        # Disordered: checks occupancies enter F like pymatgen's.
        "Cu0.5Au0.5": Structure(cub(3.85), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]]),
    }
    assert len(out["MgAl2O4"]) == 56 and len(out["NaCl"]) == 8
    return out


@pytest.fixture(scope="module")
def structures(shared_data) -> dict[str, Structure]:
    from pymatgen.analysis.prototypes._data import AFLOW_PROTOTYPE_LIBRARY

    out = _classic_structures()
    by_label = {}
    for entry in AFLOW_PROTOTYPE_LIBRARY:
        s = entry["snl"].structure
        by_label.setdefault((entry["tags"]["aflow"], s.composition.reduced_formula), s)
    for label, formula in AFLOW_PICKS:
        out[f"aflow {label}"] = by_label[(label, formula)]
    csv.field_size_limit(10**8)
    with open(shared_data / "cdvae" / "perov_5" / "test.csv", newline="") as fh:
        for i, row in zip(range(5), csv.DictReader(fh)):
            out[f"perov_5 {i} {row['formula']}"] = Structure.from_str(row["cif"], fmt="cif")
    assert len(out) >= 25
    return out


def _nearest(x, xs):
    idx = np.clip(np.searchsorted(xs, x), 1, max(len(xs) - 1, 1))
    left = xs[idx - 1]
    right = xs[np.minimum(idx, len(xs) - 1)]
    return np.where(np.abs(x - left) <= np.abs(x - right), idx - 1, idx)


def _match(ours, pmg_pattern, tol_tth=1e-4, min_scaled=0.01, absolute=False):
    """Index pairs (ours, pymatgen): every peak above ``min_scaled`` on either side must have a
    partner within ``tol_tth`` degrees on the other (pymatgen lists peaks down to 1e-3 of 100)."""
    px, py = np.asarray(pmg_pattern.x), np.asarray(pmg_pattern.y)
    ox, oy = ours.two_theta, (ours.intensity if absolute else ours.intensity_scaled)
    o_big, p_big = np.flatnonzero(oy > min_scaled), np.flatnonzero(py > min_scaled)
    p_of_o = _nearest(ox[o_big], px)
    assert np.all(np.abs(px[p_of_o] - ox[o_big]) <= tol_tth), "a peak of ours is missing in pymatgen's list"
    o_of_p = _nearest(px[p_big], ox)
    assert np.all(np.abs(ox[o_of_p] - px[p_big]) <= tol_tth), "a pymatgen peak is missing in our list"
    return o_of_p, p_big


# ----- pymatgen oracle ----------------------------------------------------------------------
@pytest.mark.parametrize("name,wl,tth_range", WAVES)
def test_peaks_match_pymatgen_xrd(structures, name, wl, tth_range):
    calc = XRDCalculator(wavelength=name)
    assert calc.wavelength == wl
    for label, s in structures.items():
        ref = calc.get_pattern(s, two_theta_range=tth_range)
        ours = bragg_peaks(Crystal.from_pymatgen(s), name, two_theta_range=tth_range, form_factors="pymatgen")
        o, p = _match(ours, ref)
        ry = np.asarray(ref.y)[p]
        np.testing.assert_allclose(ours.intensity_scaled[o], ry, rtol=0.01, atol=1e-3, err_msg=label)
        # the brief asks for 1 %; with the same form factors we in fact reproduce pymatgen to rounding
        np.testing.assert_allclose(ours.intensity_scaled[o], ry, rtol=1e-7, atol=1e-9, err_msg=label)
        np.testing.assert_allclose(ours.d[o], np.asarray(ref.d_hkls)[p], rtol=1e-9, err_msg=label)
        # multiplicities and hkl families as pymatgen reports them (4-index for hexagonal)
        for i, j in zip(o, p):
            ref_fam = {fam["hkl"]: fam["multiplicity"] for fam in ref.hkls[j]}
            assert ours.families[i] == ref_fam, (label, ours.two_theta[i])
            assert ours.multiplicity[i] == sum(ref_fam.values())


@pytest.mark.parametrize("name,wl,tth_range", WAVES)
def test_chili_types_built_by_nanosolve_match_pymatgen(name, wl, tth_range):
    """The 12 CHILI crystal types as nanosolve builds them (not via pymatgen), both wavelengths."""
    from nanosolve.structures.builders.chili_types import CHILI_CRYSTAL_TYPES, build_chili_crystal

    calc = XRDCalculator(wavelength=name)
    for t, metal in zip(CHILI_CRYSTAL_TYPES, ["Zn", "Mg", "Ce", "Li", "Zn", "Ni", "Cs", "Ti", "Cd", "Cd", "Re", "Co"]):
        c = build_chili_crystal(t, metal)
        ref = calc.get_pattern(c.to_pymatgen(), two_theta_range=tth_range)
        ours = bragg_peaks(c, name, two_theta_range=tth_range, form_factors="pymatgen")
        o, p = _match(ours, ref)
        np.testing.assert_allclose(ours.intensity_scaled[o], np.asarray(ref.y)[p], rtol=0.01, atol=1e-3, err_msg=t)


def test_absolute_intensities_match_pymatgen(structures):
    s = structures["MgAl2O4"]
    ref = XRDCalculator(1.5406).get_pattern(s, scaled=False, two_theta_range=(0, 120))
    ours = bragg_peaks(s, 1.5406, two_theta_range=(0, 120), form_factors="pymatgen")
    o, p = _match(ours, ref, min_scaled=np.max(ref.y) * 1e-4, absolute=True)
    np.testing.assert_allclose(ours.intensity[o], np.asarray(ref.y)[p], rtol=1e-8)


def test_debye_waller_matches_pymatgen(structures):
    b = {"Na": 1.2, "Cl": 0.7}
    s = structures["NaCl"]
    ref = XRDCalculator(1.5406, debye_waller_factors=b).get_pattern(s, two_theta_range=(5, 150))
    ours = bragg_peaks(s, 1.5406, two_theta_range=(5, 150), b_iso=b, form_factors="pymatgen")
    o, p = _match(ours, ref)
    np.testing.assert_allclose(ours.intensity_scaled[o], np.asarray(ref.y)[p], rtol=1e-6)
    # and the factor really acts: without B the high-angle peaks are stronger
    cold = bragg_peaks(s, 1.5406, two_theta_range=(5, 150), form_factors="pymatgen")
    assert cold.intensity_scaled[-1] > 1.2 * ours.intensity_scaled[-1]


def test_neutron_matches_pymatgen(structures):
    for label in ("NaCl", "TiO2", "ZnO", "MgAl2O4", "Cu0.5Au0.5"):
        s = structures[label]
        ref = NDCalculator(wavelength=1.54, debye_waller_factors={"O": 0.5}).get_pattern(s, two_theta_range=(5, 120))
        ours = bragg_peaks(s, 1.54, radiation="neutron", two_theta_range=(5, 120), b_iso={"O": 0.5})
        o, p = _match(ours, ref)
        np.testing.assert_allclose(ours.intensity_scaled[o], np.asarray(ref.y)[p], rtol=1e-6, err_msg=label)


@pytest.mark.parametrize("name,wl,tth_range", WAVES)
def test_waasmaier_kirfel_default_close_to_pymatgen(structures, name, wl, tth_range):
    """Our default form factors (Waasmaier-Kirfel) are a different fit of the same f0(s) as
    pymatgen's, so only a looser agreement is expected. Measured over these 27 structures at Cu and
    Mo Kα (peaks above 0.5 of 100): largest deviation 1.63 (of 100, ReO3 / a perov_5 oxynitride),
    95th percentile 0.41, median 0.014; relative: median 0.33 %, up to 18 % on weak peaks.
    Peak positions do not depend on form factors and agree to 1e-4°."""
    devs, rels = [], []
    for s in structures.values():
        ref = XRDCalculator(name).get_pattern(s, two_theta_range=tth_range)
        ours = bragg_peaks(s, name, two_theta_range=tth_range)
        o, p = _match(ours, ref, min_scaled=0.5)
        ry = np.asarray(ref.y)[p]
        devs.extend(np.abs(ours.intensity_scaled[o] - ry))
        rels.extend(np.abs(ours.intensity_scaled[o] - ry) / ry)
    assert max(devs) < 2.0
    assert np.percentile(devs, 95) < 0.6
    assert np.median(rels) < 0.01


# ----- analytic ----------------------------------------------------------------------------
def test_fcc_positions_extinctions_and_structure_factor():
    a, wl = 3.615, 1.5406
    fcc = Crystal(np.eye(3) * a, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], ["Cu"] * 4)
    pk = bragg_peaks(fcc, wl, two_theta_range=(10, 100))
    expected = {(1, 1, 1): 8, (2, 0, 0): 6, (2, 2, 0): 12, (3, 1, 1): 24, (2, 2, 2): 8}
    for i, (hkl, mult) in enumerate(expected.items()):
        d = a / math.sqrt(sum(h * h for h in hkl))
        assert pk.two_theta[i] == pytest.approx(2 * math.degrees(math.asin(wl / (2 * d))), abs=1e-9)
        assert pk.d[i] == pytest.approx(d, rel=1e-12)
        assert pk.families[i] == {hkl: mult}
        # F = 4 f(s) for unmixed parity
        f = xray_form_factor(["Cu"], [2 * math.pi / d])[0, 0]
        assert pk.f2[i] == pytest.approx(16 * f * f, rel=1e-10)
    parity = pk.hkl % 2
    assert np.all((parity == parity[:, :1]).all(axis=1)), "a mixed-parity reflection survived"
    # the structure factor itself vanishes for mixed parity (100, 110, 210)
    _, f2 = structure_factors_torch(torch.tensor(fcc.lattice)[None], torch.tensor(fcc.frac_coords)[None],
                                    fcc.species, [[1, 0, 0], [1, 1, 0], [2, 1, 0], [1, 1, 1]])
    assert f2[0, :3].abs().max() < 1e-20 and f2[0, 3] > 100


def test_q_only_pattern_positions_and_lorentz():
    a = 4.0
    cub = Crystal(np.eye(3) * a, [[0, 0, 0]], ["Fe"])
    pk = bragg_peaks(cub, None, q_max=5.0)
    assert pk.two_theta is None
    n2 = np.array([1, 2, 3, 4, 5])
    np.testing.assert_allclose(pk.q[:5], 2 * np.pi * np.sqrt(n2) / a, rtol=1e-12)
    # one atom: I = m f² / Q²
    f = xray_form_factor(["Fe"], pk.q)[0]
    np.testing.assert_allclose(pk.intensity, pk.multiplicity * f**2 / pk.q**2, rtol=1e-10)


def test_enumerate_hkl_complete():
    lat = Lattice.from_parameters(5.1, 6.3, 7.2, 81, 97, 112).matrix
    hkl, g = enumerate_hkl(lat, 0.8, half=False)
    ref = Lattice(lat).reciprocal_lattice_crystallographic.get_points_in_sphere([[0, 0, 0]], [0, 0, 0], 0.8)
    assert len(hkl) == len(ref) - 1  # pymatgen includes (000)
    np.testing.assert_allclose(np.sort(g), np.sort([r[1] for r in ref if r[1] > 0]), rtol=1e-12)


# ----- size broadening --------------------------------------------------------------------
def _fwhm(x, y):
    """Numerical FWHM of a single peak sampled on a fine grid (linear interpolation)."""
    i = int(np.argmax(y))
    half = y[i] / 2
    lo = np.flatnonzero(y[:i] < half)[-1]
    hi = i + np.flatnonzero(y[i:] < half)[0]
    xl = np.interp(half, [y[lo], y[lo + 1]], [x[lo], x[lo + 1]])
    xr = np.interp(half, [y[hi], y[hi - 1]], [x[hi], x[hi - 1]])
    return xr - xl


def test_pxrdnet_sinc2_width_scales_inverse_size():
    q = torch.linspace(1.0, 3.0, 20001, dtype=torch.float64)
    widths = []
    for tau in (25.0, 50.0, 100.0, 200.0):
        y = profiles.render_sinc2(q, torch.tensor([[2.0]], dtype=torch.float64), torch.tensor([[3.0]]), tau)[0]
        widths.append(_fwhm(q.numpy(), y.numpy()))
        assert widths[-1] == pytest.approx(profiles.sinc2_fwhm_q(tau), rel=1e-3)
        assert widths[-1] * tau == pytest.approx(5.5662, rel=1e-3)
        # unit-area kernel: the weight comes back (the 1/u² tails beyond the grid hold 2/(π τ) of it)
        area = float(torch.trapezoid(y, q))
        assert area == pytest.approx(3.0 * (1 - 2 / (math.pi * tau)), rel=5e-3)
    np.testing.assert_allclose(np.array(widths) * [25, 50, 100, 200], widths[0] * 25, rtol=2e-3)


def test_scherrer_width_in_simulated_pattern():
    a, wl, tau = 3.615, 1.5406, 150.0
    fcc = Crystal(np.eye(3) * a, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], ["Cu"] * 4)
    pk = bragg_peaks(fcc, wl, two_theta_range=(10, 100))
    for i in (0, 3):  # 111 and 311
        t0 = pk.two_theta[i]
        grid = np.linspace(t0 - 2, t0 + 2, 8001)
        pat = simulate_xrd(fcc, wl, grid=grid, fwhm=1e-4, size=tau)
        expected = math.degrees(0.9 * wl / (tau * math.cos(math.radians(t0 / 2))))
        assert _fwhm(pat.x, pat.y) == pytest.approx(expected, rel=2e-3)
        assert profiles.scherrer_fwhm_two_theta(t0, wl, tau) == pytest.approx(expected, rel=1e-12)
    # in Q the width is 2πK/τ for every peak
    qgrid = np.linspace(pk.q[3] - 0.3, pk.q[3] + 0.3, 6001)
    pat = simulate_xrd(fcc, None, grid=qgrid, fwhm=1e-5, size=tau, k=profiles.SCHERRER_K_SPHERE)
    assert _fwhm(pat.x, pat.y) == pytest.approx(2 * math.pi * profiles.SCHERRER_K_SPHERE / tau, rel=2e-3)


def test_sphere_scherrer_constant():
    """K for a sphere of diameter D: FWHM of the Fourier transform of its common-volume function."""
    def line(s):
        return 2 * quad(lambda L: (1 - 1.5 * L + 0.5 * L**3) * math.cos(2 * math.pi * s * L), 0, 1)[0]
    half = brentq(lambda s: line(s) - line(0) / 2, 1e-3, 2)
    assert 2 * half == pytest.approx(profiles.SCHERRER_K_SPHERE, abs=1e-4)


def test_simulated_pattern_areas_and_metadata():
    s = _classic_structures()["ZnO"]
    pk = bragg_peaks(s, "CuKa", two_theta_range=(0, 100))
    pat = simulate_xrd(s, "CuKa", two_theta_range=(20, 80), step=0.01, fwhm=0.08)
    assert pat.kind == "xrd" and pat.x_unit == "tth" and pat.wavelength == pytest.approx(1.54184)
    assert pat.metadata["fwhm"] == 0.08 and pat.metadata["n_peaks"] > 5
    inside = (pk.two_theta > 21) & (pk.two_theta < 79)
    assert np.trapezoid(pat.y, pat.x) == pytest.approx(pk.intensity[inside].sum(), rel=2e-3)
    # the tallest point of the pattern sits on the strongest peak
    assert pat.x[np.argmax(pat.y)] == pytest.approx(pk.two_theta[np.argmax(pk.intensity)], abs=0.01)
    nd = simulate_xrd(s, 1.54, kind="nd", x="q", size=60.0, size_model="pxrdnet", sigma_q=0.03, q_range=(0.5, 6))
    assert nd.kind == "nd" and nd.radiation == "neutron" and nd.x_unit == "q"
    assert nd.metadata["size_model"] == "pxrdnet" and nd.y.max() > 0
    # the extra Gaussian (σ in Q) redistributes but conserves intensity
    plain = simulate_xrd(s, 1.54, kind="nd", x="q", size=60.0, size_model="pxrdnet", q_range=(0.5, 6))
    assert np.trapezoid(nd.y, nd.x) == pytest.approx(np.trapezoid(plain.y, plain.x), rel=1e-3)
    assert nd.y.max() < 0.9 * plain.y.max()
    # on a 2θ axis the Q-domain kernel becomes a density per degree: y(2θ) = y(Q) dQ/d2θ
    tth = np.degrees(2 * np.arcsin(plain.x * 1.54 / (4 * np.pi)))
    nd_t = simulate_xrd(s, 1.54, kind="nd", x="tth", grid=tth, size=60.0, size_model="pxrdnet")
    dq_dtth = 2 * np.pi / 1.54 * np.cos(np.radians(tth / 2)) * np.pi / 180
    np.testing.assert_allclose(nd_t.y, plain.y * dq_dtth, rtol=1e-9, atol=1e-12 * plain.y.max())


def test_torch_pattern_equals_numpy_pattern():
    s = _classic_structures()["MgAl2O4"]
    cr = Crystal.from_pymatgen(s)
    for kw in ({}, {"size": 90.0, "profile": "pseudo-voigt", "eta": 0.4},
               {"size": 70.0, "size_model": "pxrdnet", "sigma_q": 0.01}):
        for x in ("tth", "q"):
            pat = simulate_xrd(cr, "CuKa", x=x, **kw)
            y = powder_pattern_torch(cr.lattice, cr.frac_coords, cr.species, pat.x, wavelength="CuKa",
                                     x_unit=x, **kw).numpy()
            np.testing.assert_allclose(y, pat.y, rtol=0, atol=1e-6 * pat.y.max(), err_msg=f"{kw} {x}")


def test_windowed_rendering_equals_dense(monkeypatch):
    grid = torch.linspace(10, 80, 3501, dtype=torch.float64)
    c = torch.tensor([[20.0, 33.3, 33.31, 79.99, 10.01]], dtype=torch.float64)
    w = torch.tensor([[1.0, 2.0, 0.5, 3.0, 1.0]], dtype=torch.float64)
    dense = profiles.render_peaks(grid, c, w, 0.1)
    dense_pv = profiles.render_peaks(grid.numpy(), c.numpy(), w.numpy(), 0.1, "pseudo-voigt", 0.5)
    monkeypatch.setattr(profiles, "DENSE_BUDGET", 10)
    win = profiles.render_peaks(grid, c, w, 0.1)
    torch.testing.assert_close(win, dense, rtol=0, atol=1e-12)
    win_np = profiles.render_peaks(grid.numpy(), c.numpy(), w.numpy(), 0.1)
    np.testing.assert_allclose(win_np, dense.numpy(), rtol=0, atol=1e-12)
    # with a Lorentzian part the cut tails (±60 FWHM) cost < 1 % of the area, nothing near the peaks
    win_pv = profiles.render_peaks(grid.numpy(), c.numpy(), w.numpy(), 0.1, "pseudo-voigt", 0.5)
    assert np.abs(win_pv - dense_pv).max() < 5e-4 * dense_pv.max()
    area_w, area_d = np.trapezoid(win_pv[0], grid.numpy()), np.trapezoid(dense_pv[0], grid.numpy())
    assert area_d * 0.99 < area_w < area_d


def test_batched_equals_single():
    base = _classic_structures()["TiO2"]
    cr1 = Crystal.from_pymatgen(base)
    cr2 = cr1.copy()
    cr2.lattice = cr2.lattice * np.array([1.02, 1.0, 0.97])[:, None]
    cr2.frac_coords = cr2.frac_coords + 0.01 * np.sin(np.arange(cr2.frac_coords.size)).reshape(-1, 3)
    grid = np.linspace(20, 70, 1001)
    lat = np.stack([cr1.lattice, cr2.lattice])
    frac = np.stack([cr1.frac_coords, cr2.frac_coords])
    yb = powder_pattern_torch(lat, frac, cr1.species, grid, wavelength=1.5406, size=torch.tensor([50.0, 120.0]),
                              scale=torch.tensor([1.0, 2.0]))
    for i, (cr, size, sc) in enumerate([(cr1, 50.0, 1.0), (cr2, 120.0, 2.0)]):
        y = powder_pattern_torch(cr.lattice, cr.frac_coords, cr.species, grid, wavelength=1.5406, size=size, scale=sc)
        torch.testing.assert_close(yb[i], y, rtol=1e-10, atol=1e-9)


# ----- gradients --------------------------------------------------------------------------
def _small_crystal():
    lat = torch.tensor([[4.1, 0.1, 0.0], [0.2, 4.3, 0.0], [0.1, 0.0, 4.6]], dtype=torch.float64)
    frac = torch.tensor([[0.01, 0.02, 0.0], [0.5, 0.48, 0.51], [0.5, 0.03, 0.49]], dtype=torch.float64)
    return lat, frac, ["Ti", "O", "Sr"]


@pytest.mark.parametrize("opts", [
    {"wavelength": 1.5406, "x_unit": "tth", "grid": np.linspace(20, 45, 60), "fwhm": 0.6},
    {"wavelength": 1.5406, "x_unit": "tth", "grid": np.linspace(20, 45, 60), "fwhm": 0.3, "size": 40.0,
     "profile": "pseudo-voigt", "eta": 0.3},
    {"wavelength": None, "x_unit": "q", "grid": np.linspace(1.4, 3.2, 50), "size": 30.0, "size_model": "pxrdnet"},
])
def test_gradcheck_positions_lattice_scale(opts):
    lat, frac, species = _small_crystal()
    opts = dict(opts)
    grid = opts.pop("grid")
    # fixed reflection set so finite differences do not change it
    hkl, _ = enumerate_hkl(lat.numpy(), 1.0)

    def raw(lat_, frac_, scale_):
        return powder_pattern_torch(lat_, frac_, species, grid, scale=scale_, hkl=hkl, **opts)

    # gradcheck's tolerances are absolute: bring the pattern to O(1) with a fixed constant
    norm = float(raw(lat, frac, 1.0).max())

    def f(lat_, frac_, scale_):
        return raw(lat_, frac_, scale_) / norm

    inputs = (lat.clone().requires_grad_(), frac.clone().requires_grad_(),
              torch.tensor(1.3, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    y = f(*inputs)
    g = torch.autograd.grad(y.sum(), inputs[:2])
    assert all(float(t.abs().max()) > 0 for t in g)  # the gradient is not trivially zero


def test_position_gradient_same_with_fixed_lattice():
    """With a fixed lattice, reflections at equal |g| are merged before rendering; the pattern and
    its gradient w.r.t. positions must equal the unmerged path (lattice requiring grad)."""
    cr = Crystal.from_pymatgen(_classic_structures()["ZnS"])
    frac = torch.tensor(cr.frac_coords + 0.01 * np.cos(np.arange(24)).reshape(8, 3), requires_grad=True)
    grid = np.linspace(20, 60, 801)
    outs = []
    for lat_grad in (False, True):
        lat = torch.tensor(cr.lattice, requires_grad=lat_grad)
        y = powder_pattern_torch(lat, frac, cr.species, grid, wavelength=1.5406, size=80.0)
        (gf,) = torch.autograd.grad((y * torch.linspace(0, 1, 801, dtype=torch.float64)).sum(), frac)
        outs.append((y.detach(), gf))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-8, atol=1e-6)
    assert outs[0][1].abs().max() > 1.0


def test_gradient_moves_peak_with_lattice():
    """d(peak position)/d(a) from autograd equals the Bragg-law derivative."""
    a = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    lat = a * torch.eye(3, dtype=torch.float64)
    grid = np.linspace(20, 25, 2001)
    y = powder_pattern_torch(lat, np.zeros((1, 3)), ["Fe"], grid, wavelength=1.5406, fwhm=0.2)
    x = torch.as_tensor(grid)
    centroid = (x * y).sum() / y.sum()
    (dc,) = torch.autograd.grad(centroid, a)
    theta = math.asin(1.5406 / (2 * 4.0))
    expected = -2 * math.degrees(math.tan(theta)) / 4.0  # d(2θ)/da for (100)
    assert float(dc) == pytest.approx(expected, rel=1e-3)


# ----- bad input ---------------------------------------------------------------------------
def test_bad_input():
    nacl = Crystal(np.eye(3) * 5.64, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
    with pytest.raises(InputError, match="unknown wavelength"):
        bragg_peaks(nacl, "CuKz")
    for bad in (0.0, -1.5, float("nan")):
        with pytest.raises(InputError, match="positive"):
            bragg_peaks(nacl, bad)
        with pytest.raises(InputError, match="positive"):
            simulate_xrd(nacl, bad)
    with pytest.raises(InputError, match="form factors"):
        bragg_peaks(nacl, "CuKa", form_factors="cromer")
    with pytest.raises(InputError, match="needs a wavelength"):
        simulate_xrd(nacl, None, x="tth")
    with pytest.raises(InputError, match="q_max"):
        bragg_peaks(nacl, None)
    with pytest.raises(InputError, match="crystallite size"):
        simulate_xrd(nacl, "CuKa", size=-3.0)
    with pytest.raises(InputError, match="needs a crystallite size"):
        simulate_xrd(nacl, "CuKa", size_model="pxrdnet")
    with pytest.raises(InputError, match="2θ range"):
        bragg_peaks(nacl, "CuKa", two_theta_range=(90, 10))
    with pytest.raises(InputError, match="unknown peak profile"):
        simulate_xrd(nacl, "CuKa", profile="voigt-ish")
    with pytest.raises(InputError, match="Debye-Waller"):
        bragg_peaks(nacl, "CuKa", b_iso=-1.0)
