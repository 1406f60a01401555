"""Debye simulator: agrees with DebyeCalculator, analytic dimer/SAXS limits, gradients, guards."""

import math

import numpy as np
import pytest
import torch

from nanosolve import Crystal, InputError, Particle
from nanosolve.errors import ResourceError
from nanosolve.scattering import memory
from nanosolve.scattering.debye import (
    DebyeSimulator,
    _as_atoms,
    debye_iq_torch,
    fq_to_gr,
    node_sinc_sums,
    pair_sums_direct,
    pair_sums_grid,
    simulate_many,
)
from nanosolve.scattering.form_factors import neutron_length, xray_form_factor

FCC = [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]]


def cut_sphere(crystal: Crystal, radius: float, name: str = "") -> Particle:
    """Atoms of a supercell within ``radius`` Å of its centre (no dependency on the particle builders)."""
    reps = int(math.ceil(2 * radius / min(crystal.cell_params[:3]))) + 2
    sc = crystal.supercell(reps)
    x = sc.cart_coords - sc.cart_coords.mean(0)
    keep = np.linalg.norm(x, axis=1) <= radius
    return Particle(x[keep], [s for s, k in zip(sc.species, keep) if k], name=name)


def au_sphere(radius=6.0):
    return cut_sphere(Crystal(np.eye(3) * 4.078, FCC, ["Au"] * 4), radius, "Au")


def nacl_sphere(radius=7.0):
    frac = FCC + [[.5, .5, .5], [0, 0, .5], [0, .5, 0], [.5, 0, 0]]
    return cut_sphere(Crystal(np.eye(3) * 5.64, frac, ["Na"] * 4 + ["Cl"] * 4), radius, "NaCl")


def random_cluster(n=60, seed=3):
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:  # random packing with a 2.2 Å minimum distance
        p = rng.uniform(-7, 7, 3)
        if all(np.linalg.norm(p - q) > 2.2 for q in pts):
            pts.append(p)
    species = list(rng.choice(["Pt", "Cu", "O"], n))
    return Particle(np.array(pts), species, name="random")


PARTICLES = {"au": au_sphere, "nacl": nacl_sphere, "random": random_cluster}


@pytest.fixture(scope="module", params=list(PARTICLES))
def particle(request):
    return PARTICLES[request.param]()


def _relmax(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("radiation", ["xray", "neutron"])
@pytest.mark.parametrize("lorch", [False, True])
def test_matches_debyecalculator(particle, radiation, lorch):
    from debyecalculator import DebyeCalculator

    params = dict(qmin=0.8, qmax=22.0, qstep=0.02, qdamp=0.03, rmin=0.5, rmax=14.0, rstep=0.01, biso=0.45)
    sim = DebyeSimulator(**params, radiation=radiation, lorch=lorch)
    # DebyeCalculator 1.1.1 applies torch.sinc(Q·lorch_mod·π/Qmax) and torch.sinc(x) = sin(πx)/(πx), so
    # lorch_mod=True gives sin(π²Q/Qmax)/(π²Q/Qmax); lorch_mod=1/π is the standard Lorch function we use
    dc = DebyeCalculator(**params, radiation_type=radiation, lorch_mod=(1 / math.pi) if lorch else False,
                         device="cpu", dtype=torch.float64)
    src = (list(particle.species), particle.positions)
    out = sim.simulate(particle, ("iq", "sq", "fq", "gr"))
    q, i_dc = dc.iq(src)
    _, s_dc = dc.sq(src)
    _, f_dc = dc.fq(src)
    r, g_dc = dc.gr(src)
    assert np.allclose(out["iq"].x, q) and np.allclose(out["gr"].x, r)
    # documented convention: I = 2 I_DC, S - 1 = 2 S_DC, F = 2 F_DC, G = 2 G_DC (DC sums pairs i<j only)
    assert _relmax(out["iq"].y, 2 * i_dc) < 1e-3
    assert _relmax(out["sq"].y - 1, 2 * s_dc) < 1e-3
    assert _relmax(out["fq"].y, 2 * f_dc) < 1e-3
    assert _relmax(out["gr"].y, 2 * g_dc) < 1e-3
    assert out["iq"].radiation == radiation and out["gr"].x_unit == "r"


@pytest.mark.parametrize("method", ["direct", "grid"])
@pytest.mark.parametrize("radiation", ["xray", "neutron"])
def test_dimer_matches_analytic_debye(method, radiation):
    d, biso = 2.63, 0.5
    p = Particle([[0, 0, 0], [d / math.sqrt(3)] * 3], ["Au", "Cu"])
    sim = DebyeSimulator(qmin=0.0, qmax=25.0, qstep=0.01, biso=biso, radiation=radiation, method=method)
    q = sim.q
    if radiation == "xray":
        f1, f2 = xray_form_factor(["Au", "Cu"], q)
    else:
        f1, f2 = np.full_like(q, neutron_length("Au")), np.full_like(q, neutron_length("Cu"))
    expected = f1**2 + f2**2 + 2 * f1 * f2 * np.sinc(q * d / np.pi) * np.exp(-biso * q**2 / (8 * np.pi**2))
    tol = 1e-6 if method == "direct" else 1e-5
    assert _relmax(sim.iq(p).y, expected) < tol


@pytest.mark.parametrize("qmax", [30.0, 51.0])  # Qmax·dr = 0.117 and 0.199 (the worst case of the bin rule)
def test_grid_engine_matches_exact_sum(qmax):
    p = nacl_sphere(9.0)
    atoms = _as_atoms(p)
    q = torch.linspace(0.3, qmax, 400, dtype=torch.float64)
    exact = pair_sums_direct(atoms, q)
    grid = pair_sums_grid(atoms, q)
    assert exact.shape == (3, 400)  # Cl-Cl, Cl-Na, Na-Na
    assert float((grid - exact).abs().max() / exact.abs().max()) < 1e-6
    high = q > 0.7 * qmax  # also relative to the (small) local envelope where the spline error peaks
    assert float((grid - exact)[:, high].abs().max() / exact[:, high].abs().max()) < 3e-5


@pytest.mark.parametrize("q0", [0.0, 0.7])
def test_node_transform_paths_agree(q0):
    # chirp z-transform (uniform Q) and cached-table matrix product give the same node sums
    rng = np.random.default_rng(2)
    nodes = torch.as_tensor(rng.uniform(0, 1, (3, 5000)))
    q = q0 + 0.013 * torch.arange(700, dtype=torch.float64)
    czt = node_sinc_sums(nodes, 2.0**-8, q, czt=True)
    table = node_sinc_sums(nodes, 2.0**-8, q, czt=False)
    assert float((czt - table).abs().max() / table.abs().max()) < 1e-10
    r = (torch.arange(5000, dtype=torch.float64) - 1) * 2.0**-8  # and both equal the plain sum
    plain = nodes @ torch.sinc(r[:, None] * q[None, :] / math.pi)
    assert float((czt - plain).abs().max() / plain.abs().max()) < 1e-10
    # the F(Q) -> G(r) sine transform: chirp z-transform (uniform grids) against the plain sum
    fq = rng.normal(size=(2, 700))
    r_grid = 0.3 + 0.01 * np.arange(1500)
    g = fq_to_gr(q.numpy(), fq, r_grid, 0.013, qdamp=0.05)
    expected = (2 / math.pi) * 0.013 * (fq @ np.sin(np.outer(q.numpy(), r_grid))) * np.exp(-0.5 * (0.05 * r_grid) ** 2)
    assert g.shape == (2, 1500) and float(np.abs(g - expected).max() / np.abs(expected).max()) < 1e-10
    assert np.allclose(fq_to_gr(q.numpy(), fq[0], r_grid[::-1], 0.013, qdamp=0.05), expected[0][::-1], rtol=0, atol=1e-10)


def test_saxs_forward_scattering_and_guinier_radius():
    p = au_sphere(9.0)
    sim = DebyeSimulator(saxs_qmin=0.0, saxs_qmax=0.3, saxs_qstep=0.002, biso=0.0)
    saxs = sim.saxs(p)
    assert saxs.kind == "saxs" and saxs.x[0] == 0.0
    f0 = xray_form_factor(["Au"], [0.0])[0, 0]
    assert saxs.y[0] == pytest.approx((len(p) * f0) ** 2, rel=1e-6)  # I(0) = (Σ f)²
    rg = math.sqrt(((p.positions - p.positions.mean(0)) ** 2).sum(1).mean())
    low = saxs.x * rg < 0.6
    slope = np.polyfit(saxs.x[low] ** 2, np.log(saxs.y[low]), 1)[0]
    assert math.sqrt(-3 * slope) == pytest.approx(rg, rel=0.02)  # Guinier: ln I = ln I0 - Q²Rg²/3
    assert DebyeSimulator(radiation="neutron", saxs_qmax=0.5).saxs(p).kind == "sans"


@pytest.mark.parametrize("method,tol", [("direct", 1e-6), ("grid", 2e-3)])
def test_gradient_matches_finite_differences(method, tol):
    rng = np.random.default_rng(0)
    p = random_cluster(12, seed=1)
    q = torch.linspace(0.5, 12.0, 120, dtype=torch.float64)
    weights = torch.as_tensor(rng.normal(size=120))
    x0 = torch.tensor(p.positions, dtype=torch.float64)

    def loss(x):
        return (debye_iq_torch(x, p.species, q, biso=0.3, method=method) * weights).sum()

    x = x0.clone().requires_grad_(True)
    loss(x).backward()
    h = 1e-5
    numeric = torch.zeros_like(x0)
    for i in range(x0.shape[0]):
        for k in range(3):
            xp, xm = x0.clone(), x0.clone()
            xp[i, k] += h
            xm[i, k] -= h
            # evaluated on the same (float64, differentiable) path as the gradient
            numeric[i, k] = (loss(xp.requires_grad_()) - loss(xm.requires_grad_())).detach() / (2 * h)
    assert float((x.grad - numeric).abs().max() / numeric.abs().max()) < tol


def test_simulate_many_matches_single_calls():
    parts = [au_sphere(5.0), random_cluster(30, seed=7)]
    sim = DebyeSimulator(qmax=20.0, rmax=10.0)
    many = simulate_many(parts, kinds=("iq", "gr", "saxs"), simulator=sim)
    assert [sorted(m) for m in many] == [["gr", "iq", "saxs"]] * 2
    for p, m in zip(parts, many):
        assert np.allclose(m["iq"].y, sim.iq(p).y, rtol=1e-12)
        assert np.allclose(m["gr"].y, sim.gr(p).y, rtol=1e-12)
    by_params = simulate_many(parts[:1], kinds=("sq",), qmax=20.0, rmax=10.0)
    assert np.allclose(by_params[0]["sq"].y, sim.sq(parts[0]).y)


def test_partial_occupancy_self_term():
    # one atom at half occupancy: I = o f² (no pairs), not (o f)²
    sim = DebyeSimulator(qmin=0.5, qmax=5.0, qstep=0.5, biso=0.0)
    p = Particle([[0, 0, 0]], ["Fe"], occupancies=[0.5])
    f = xray_form_factor(["Fe"], sim.q)[0]
    assert np.allclose(sim.iq(p).y, 0.5 * f**2)


def test_unknown_or_untabulated_element_raises():
    sim = DebyeSimulator()
    with pytest.raises(InputError, match="Xx"):
        debye_iq_torch(torch.zeros(2, 3), ["Au", "Xx"], torch.linspace(1, 2, 5))
    with pytest.raises(InputError, match="Es"):  # no Waasmaier-Kirfel coefficients for einsteinium
        sim.iq(Particle([[0, 0, 0], [2.5, 0, 0]], ["Au", "Es"]))
    with pytest.raises(InputError, match="unknown Debye output"):
        sim.simulate(au_sphere(3.0), ("xrd",))
    with pytest.raises(InputError):
        DebyeSimulator(qmin=5.0, qmax=1.0)
    with pytest.raises(InputError):
        DebyeSimulator(radiation="electron")


def test_memory_guard_refuses_oversized_job(monkeypatch):
    need = memory.estimate_debye_bytes(50_000, 3000, n_r=2000, n_nodes=120_000)
    assert 64 * 1024**2 < need < 4 * 1024**3  # a 50k-atom grid job is modest
    assert memory.estimate_debye_bytes(50_000, 3000, method="direct") > need
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 20 * 1024**2)
    with pytest.raises(ResourceError, match="needs about"):
        DebyeSimulator().iq(au_sphere(4.0))
    assert memory.available_memory_bytes() == 20 * 1024**2


def test_available_memory_is_plausible():
    avail = memory.available_memory_bytes()
    assert 10 * 1024**2 < avail < 2**50
