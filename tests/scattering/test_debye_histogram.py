"""PairHistogram (one pair pass, many signals) and the CHILI signal set: equal to DebyeSimulator and DebyeCalculator."""

import math

import numpy as np
import pytest
import torch

from nanosolve import InputError, Particle
from nanosolve.errors import ResourceError
from nanosolve.scattering import chili_signals as cs
from nanosolve.scattering import memory
from nanosolve.scattering.debye import (
    DebyeSimulator,
    PairHistogram,
    _as_atoms,
    coarsen_moments,
    grid_step,
    pair_sums_direct,
    spread_moments,
)
from nanosolve.structures.builders.chili_types import build_chili_crystal
from nanosolve.structures.builders.clusters import icosahedron
from nanosolve.structures.builders.cut import cut_nanoparticle


def _relmax(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def zno():
    # A fitted (not tabulated) wurtzite cell: real ZnO's a = 3.25 Å is an exact multiple of the
    # 1/16 Å bin, where fine and coarse binning legitimately put a pair on different sides of an edge.
    return cut_nanoparticle(build_chili_crystal("wurtzite", "Cd"), 8.0)  # ~200 atoms, Cd + O


@pytest.fixture(scope="module")
def au():
    return icosahedron("Au", shells=4)  # 147 atoms


@pytest.fixture(scope="module")
def mixed():
    """Three elements, partial occupancies, a near-coincident pair (d < dr) and an isolated far atom."""
    rng = np.random.default_rng(5)
    pos = rng.uniform(-6, 6, (70, 3))
    pos[1] = pos[0] + [0.001, 0, 0]
    pos[2] = [30.0, 0.0, 0.0]
    species = list(rng.choice(["Ce", "O", "Pt"], 70))
    return Particle(pos, species, occupancies=rng.uniform(0.3, 1.0, 70))


@pytest.mark.parametrize("radiation", ["xray", "neutron"])
@pytest.mark.parametrize("which", ["zno", "au", "mixed"])
def test_histogram_equals_simulator(which, radiation, request):
    p = request.getfixturevalue(which)
    hist = PairHistogram.from_particle(p, qmax=35.0)
    for params in (dict(qmin=0.5, qmax=35.0, qstep=0.01, rmax=25.0, qdamp=0.02, biso=0.4, lorch=True,
                        saxs_qmin=0.0, saxs_qmax=0.8, saxs_qstep=0.004),
                   dict(qmin=1.0, qmax=20.0, rmax=30.0, rstep=0.02, biso=0.0, saxs_qmax=3.0)):
        sim = DebyeSimulator(**params, radiation=radiation, method="grid")
        ref = sim.simulate(p, ("iq", "sq", "fq", "gr", "saxs"))
        q, b = sim.q, sim.biso
        assert _relmax(hist.iq(q, radiation, b), ref["iq"].y) < 1e-5
        assert _relmax(hist.sq(q, radiation, b) - 1, ref["sq"].y - 1) < 1e-5
        assert _relmax(hist.fq(q, radiation, b), ref["fq"].y) < 1e-5
        gr = hist.gr(sim.r, q, radiation, b, qdamp=sim.qdamp, lorch=sim.lorch, qstep=sim.qstep, qmax=sim.qmax)
        assert _relmax(gr, ref["gr"].y) < 1e-5
        assert _relmax(hist.saxs(sim.q_saxs, radiation, b), ref["saxs"].y) < 1e-5
        assert _relmax(sim.histogram(p).iq(q, radiation, b), ref["iq"].y) < 1e-5


def test_histogram_pair_sums_match_exact_sum(mixed, zno):
    for p in (mixed, zno):
        hist = PairHistogram.from_particle(p, qmax=30.0)
        for q in (np.linspace(0.0, 30.0, 700), np.linspace(0.0, 2.0, 300)):  # fine bins, and 16x coarser ones
            exact = pair_sums_direct(_as_atoms(p), torch.as_tensor(q)).numpy()
            got = hist.pair_sums(q).numpy()
            assert got.shape == exact.shape == (len(hist.element_pairs), q.size)
            assert _relmax(got, exact) < 1e-6
        assert hist.n_pairs == pytest.approx(exact[:, 0].sum(), rel=1e-6)  # Σ o_i o_j over i<j (float32 weights)


def _exact_moments(atoms, dr):
    """Exact float64 moments Σ w s^k, from the autograd path (no sub-bin rounding)."""
    grad_atoms = _as_atoms(atoms.positions.clone().requires_grad_(True), atoms.elements and
                           [atoms.elements[i] for i in atoms.index], atoms.occupancy)
    return spread_moments(grad_atoms, dr).detach()


def test_coarsened_moments_equal_a_coarse_spread(zno):
    atoms = _as_atoms(zno)
    exact_fine, exact_coarse = _exact_moments(atoms, 2.0**-8), _exact_moments(atoms, 2.0**-4)
    n = exact_coarse.shape[-1]

    def close(a, b, tol):
        m = min(a.shape[-1], b.shape[-1])  # bin counts differ only by empty padding bins
        assert not a[..., m:].any() and not b[..., m:].any()
        return float((a[..., :m] - b[..., :m]).abs().max() / b.abs().max()) < tol

    assert close(coarsen_moments(exact_fine, 16), exact_coarse, 1e-12)  # re-binning is an identity
    # sub-bin sums are exact to first order in the rounding: s^k off by < k(k-1)/2 · (1/2S)² per pair (S = 16)
    for moments, exact in ((spread_moments(atoms, 2.0**-8), exact_fine),
                           (coarsen_moments(spread_moments(atoms, 2.0**-8), 16), exact_coarse)):
        m = min(exact.shape[-1], moments.shape[-1])
        err = (moments[..., :m] - exact[..., :m]).abs().amax(dim=(0, 2)) / exact[:, 0].max()
        assert err[0] < 1e-12 and err[1] < 1e-6 and err[2] < 1 / 1024 and err[3] < 3 / 1024
    assert n > 0 and torch.allclose(coarsen_moments(exact_fine, 16)[:, 0].sum(-1), exact_fine[:, 0].sum(-1))


def test_batching_threads_and_occupancy_paths_agree(mixed):
    atoms = _as_atoms(mixed)
    ref = spread_moments(atoms, 2.0**-7)
    small = spread_moments(atoms, 2.0**-7, chunk_pairs=97, n_threads=2)  # many batches, two threads
    assert float((small - ref).abs().max()) < 1e-9
    threads = torch.get_num_threads()
    DebyeSimulator(qmax=10.0).simulate(mixed, ("iq", "gr"))
    assert torch.get_num_threads() == threads  # small jobs run single-threaded, then restore


def test_histogram_refuses_q_beyond_its_resolution(au):
    hist = PairHistogram.from_particle(au, qmax=10.0)
    assert hist.dr == grid_step(10.0)
    hist.iq(np.linspace(1, hist.q_limit, 50))
    with pytest.raises(InputError, match="rebuild it with qmax"):
        hist.iq(np.linspace(1, 2 * hist.q_limit, 50))
    with pytest.raises(InputError):
        PairHistogram.from_particle(au, dr=0.0)


def test_histogram_memory_guard(monkeypatch, au):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 20 * 1024**2)
    with pytest.raises(ResourceError, match="needs about"):
        PairHistogram.from_particle(au)


# ------------------------------------------------------------------------------------------------
# CHILI signals against DebyeCalculator run directly on the same atoms
# ------------------------------------------------------------------------------------------------
def test_chili_grids():
    assert cs.Q_SAXS.shape == (300,) and cs.Q_SAXS[0] == 0.0 and cs.Q_SAXS[-1] == pytest.approx(2.99)
    assert cs.Q_XRD.shape == (580,) and cs.Q_XRD[0] == 1.0 and cs.Q_XRD[-1] == pytest.approx(29.95)
    assert cs.R_PDF.shape == (6000,) and cs.R_PDF[-1] == pytest.approx(59.99)
    assert np.allclose(cs.Q_PDF, DebyeSimulator(qmin=1.0, qmax=30.0, rmax=60.0).q)


@pytest.mark.parametrize("which", ["zno", "au"])
def test_chili_signals_match_debyecalculator(which, request):
    from debyecalculator import DebyeCalculator

    p = request.getfixturevalue(which)
    out = cs.chili_signals(p)
    assert list(out) == list(cs.SIGNALS)
    for name, arr in out.items():
        grid = cs.SIGNAL_GRIDS[name][0]
        assert arr.dtype == np.float32 and arr.shape == grid.shape and arr.flags.c_contiguous
        assert np.isfinite(arr).all()
    src = (list(p.species), p.positions)
    common = dict(device="cpu", dtype=torch.float64, biso=cs.BISO)
    for radiation, small, wide, pdf in (("xray", "saxs", "xrd", "xpdf"), ("neutron", "sans", "nd", "npdf")):
        saxs = DebyeCalculator(qmin=0.0, qmax=3.0, qstep=0.01, radiation_type=radiation, **common)
        q, i_dc = saxs.iq(src)
        assert np.allclose(q, cs.Q_SAXS)
        assert _relmax(out[small], 2 * i_dc) < 1e-4  # documented convention I = 2 I_DC (measured ~1e-7)
        xrd = DebyeCalculator(qmin=1.0, qmax=30.0, qstep=0.05, radiation_type=radiation, **common)
        q, i_dc = xrd.iq(src)
        assert np.allclose(q, cs.Q_XRD)
        assert _relmax(out[wide], 2 * i_dc) < 1e-4  # measured ~1e-6
        gr = DebyeCalculator(qmin=1.0, qmax=30.0, qstep=cs.PDF_QSTEP, rmin=0.0, rmax=60.0, rstep=0.01,
                             qdamp=cs.QDAMP, radiation_type=radiation, **common)
        r, g_dc = gr.gr(src)
        assert np.allclose(r, cs.R_PDF)
        assert _relmax(out[pdf], 2 * g_dc) < 1e-4  # measured ~2e-6
    # the two radiations differ (O is a strong neutron scatterer, weak for x-rays)
    if which == "zno":
        assert _relmax(out["xrd"] / out["xrd"].max(), out["nd"] / out["nd"].max()) > 0.05


def test_chili_signals_reuse_a_histogram(zno):
    hist = PairHistogram.from_particle(zno, qmax=cs.PDF_QMAX)
    a, b = cs.chili_signals(zno), cs.chili_signals(zno, histogram=hist)
    assert all(np.array_equal(a[k], b[k]) for k in cs.SIGNALS)
    assert math.isclose(cs.signal_parameters()["pdf_q"][2], math.pi / 60.01)
