"""PDF of a periodic crystal: peak positions, normalisation (coordination numbers), envelope, Debye agreement."""

import math

import numpy as np
import pytest
from scipy.signal import find_peaks

from nanosolve import Crystal, InputError, Particle
from nanosolve.scattering.crystal_pdf import crystal_pdf, sphere_envelope
from nanosolve.scattering.debye import DebyeSimulator
from nanosolve.scattering.form_factors import neutron_length, xray_form_factor

FCC = [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]]
A_CU = 3.615


def cu():
    return Crystal(np.eye(3) * A_CU, FCC, ["Cu"] * 4, name="Cu")


def nacl():
    frac = FCC + [[.5, .5, .5], [0, 0, .5], [0, .5, 0], [.5, 0, 0]]
    return Crystal(np.eye(3) * 5.64, frac, ["Na"] * 4 + ["Cl"] * 4, name="NaCl")


def _rdf(g, rho0):
    """R(r) = r G(r) + 4π ρ0 r² (atoms per Å)."""
    return g.x * g.y + 4 * math.pi * rho0 * g.x**2


def test_fcc_peaks_at_neighbour_distances():
    g = crystal_pdf(cu(), rmax=8.0, rstep=0.005, biso=0.3)
    peaks, _ = find_peaks(g.y, height=1.0)
    expected = A_CU * np.sqrt([0.5, 1.0, 1.5, 2.0, 2.5])
    assert np.allclose(g.x[peaks][:5], expected, atol=0.006)
    assert g.kind == "gr" and g.x_unit == "r" and g.metadata["rho0"] == pytest.approx(4 / A_CU**3)


def test_coordination_numbers_and_baseline():
    c = cu()
    g = crystal_pdf(c, rmax=30.0, rstep=0.005, biso=0.3)
    rho0 = 4 / c.volume
    rdf = _rdf(g, rho0)
    first = (g.x > 2.1) & (g.x < 3.0)
    second = (g.x > 3.2) & (g.x < 3.95)
    assert np.trapezoid(rdf[first], g.x[first]) == pytest.approx(12.0, rel=2e-3)
    assert np.trapezoid(rdf[second], g.x[second]) == pytest.approx(6.0, rel=2e-3)
    # G oscillates around 0 at large r: R(r)/r -> 4πρ0 r
    far = g.x > 20
    assert abs(g.y[far].mean()) < 0.02 * np.abs(g.y).max()


@pytest.mark.parametrize("radiation", ["xray", "neutron"])
def test_two_element_weights(radiation):
    g = crystal_pdf(nacl(), rmax=4.5, rstep=0.005, biso=0.3, radiation=radiation)
    rho0 = 8 / 5.64**3
    rdf = _rdf(g, rho0)
    if radiation == "xray":
        f_na, f_cl = xray_form_factor(["Na", "Cl"], [0.0])[:, 0]
    else:
        f_na, f_cl = neutron_length("Na"), neutron_length("Cl")
    avg = (f_na + f_cl) / 2
    # first shell: 6 unlike neighbours at a/2, weighted f_Na f_Cl / <f>²
    first = (g.x > 2.3) & (g.x < 3.4)
    assert np.trapezoid(rdf[first], g.x[first]) == pytest.approx(6 * f_na * f_cl / avg**2, rel=3e-3)
    # second shell: 12 like neighbours at a/√2, weighted (f_Na² + f_Cl²)/2 / <f>²
    second = (g.x > 3.5) & (g.x < 4.4)
    assert np.trapezoid(rdf[second], g.x[second]) == pytest.approx(12 * (f_na**2 + f_cl**2) / 2 / avg**2, rel=3e-3)


def test_envelope_and_damping():
    bulk = crystal_pdf(cu(), rmax=25.0, biso=0.3)
    d = 20.0
    nano = crystal_pdf(cu(), rmax=25.0, biso=0.3, diameter=d)
    assert sphere_envelope([0.0, d / 2, d, d + 1], d) == pytest.approx([1.0, 0.3125, 0.0, 0.0])
    assert np.allclose(nano.y, bulk.y * sphere_envelope(bulk.x, d))
    assert np.all(nano.y[nano.x > d] == 0)
    damped = crystal_pdf(cu(), rmax=25.0, biso=0.3, qdamp=0.05)
    assert np.allclose(damped.y, bulk.y * np.exp(-0.5 * (0.05 * bulk.x) ** 2))


def test_termination_ripples_converge():
    ref = crystal_pdf(cu(), rmax=10.0, biso=0.3)
    low = crystal_pdf(cu(), rmax=10.0, biso=0.3, qmax=12.0)
    high = crystal_pdf(cu(), rmax=10.0, biso=0.3, qmax=45.0)
    scale = np.abs(ref.y).max()
    assert np.abs(low.y - ref.y).max() > 0.05 * scale  # Qmax = 12 Å⁻¹ visibly truncates σ ≈ 0.087 Å peaks
    assert np.abs(high.y - ref.y).max() < 2e-3 * scale


def test_matches_debye_of_cut_sphere():
    c = cu()
    sc = c.supercell(12)
    x = sc.cart_coords - sc.cart_coords.mean(0)
    x = x[np.linalg.norm(x, axis=1) <= 15.0]
    particle = Particle(x, ["Cu"] * len(x))
    debye = DebyeSimulator(qmin=0.5, qmax=40.0, qstep=0.01, qdamp=0.0, rmax=12.0, biso=0.3).gr(particle)
    pdf = crystal_pdf(c, rmax=12.0, biso=0.3, diameter=30.0, qmax=40.0)
    # the Debye G(r) of a finite particle has no -4πρ0 r γ0(r) baseline; add it back
    peaks_only = pdf.y + 4 * math.pi * 4 / c.volume * pdf.x * sphere_envelope(pdf.x, 30.0)
    pd, _ = find_peaks(debye.y, height=3.0)
    pc, _ = find_peaks(peaks_only, height=3.0)
    assert len(pd) >= 8
    assert np.allclose(debye.x[pd][:5], pdf.x[pc][:5], atol=0.011)
    # every Debye peak sits on a crystal peak (the crystal shows weak shells more clearly)
    nearest = np.abs(debye.x[pd][:, None] - pdf.x[pc][None, :]).min(1)
    assert nearest.max() < 0.011
    far = pdf.x > 2.0
    assert np.corrcoef(debye.y[far], peaks_only[far])[0, 1] > 0.95


def test_bad_input():
    with pytest.raises(InputError):
        crystal_pdf(cu(), diameter=-3)
    with pytest.raises(InputError):
        crystal_pdf(cu(), rmin=5, rmax=2)
    with pytest.raises(InputError):
        crystal_pdf(cu(), radiation="muon")
    with pytest.raises(InputError, match="Es"):
        crystal_pdf(Crystal(np.eye(3) * 4, [[0, 0, 0]], ["Es"]))
