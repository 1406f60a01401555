"""PXRDNet pattern recipe and measured data -> model grid (nanosolve.scattering.nano_pxrd)."""

import numpy as np
import pytest
import torch
from scipy.signal import find_peaks

from nanosolve.errors import InputError
from nanosolve.scattering import nano_pxrd as nx
from nanosolve.scattering.bragg import simulate_xrd
from nanosolve.scattering.pattern import Pattern
from nanosolve.structures import Crystal

torch.set_num_threads(1)
A_CU = 3.615


def fcc_cu():
    return Crystal.from_parameters(A_CU, A_CU, A_CU, 90, 90, 90, ["Cu"] * 4,
                                   [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])


def srtio3(a=3.905):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Sr", "Ti", "O", "O", "O"],
                                   [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])


def fwhm_at(y, grid, q0, half=20):
    """FWHM (same unit as grid) of the peak nearest q0, by linear interpolation of the crossings."""
    i = int(np.argmin(abs(grid - q0)))
    j = i - half + int(np.argmax(y[i - half:i + half]))
    h = y[j] / 2
    left, right = j, j
    while y[left] > h:
        left -= 1
    while y[right] > h:
        right += 1
    xl = np.interp(h, [y[left], y[left + 1]], [grid[left], grid[left + 1]])
    xr = np.interp(h, [y[right], y[right - 1]], [grid[right], grid[right - 1]])
    return xr - xl


def test_grids():
    f, m = nx.fine_grid(), nx.model_grid()
    assert f.size == 4096 and f[0] == 0.0 and f[-1] == pytest.approx(8.1568)
    assert m.size == 512
    assert m[0] == pytest.approx(f[:8].mean()) and m[-1] == pytest.approx(f[-8:].mean())
    assert np.diff(m) == pytest.approx(np.full(511, 8 * 8.1568 / 4095))
    assert nx.SIGMA_Q_RANGE == (0.081568, 0.0897248) and nx.WAVELENGTH == 1.5406


def test_sinc2_fwhm_scales_as_one_over_tau():
    g = nx.fine_grid()
    q111 = 2 * np.pi * np.sqrt(3) / A_CU
    prods = [fwhm_at(nx.pxrdnet_pattern(fcc_cu(), size=t, sigma_q=0.0, n_out=4096), g, q111) * t
             for t in (20.0, 40.0, 80.0)]
    assert max(prods) / min(prods) < 1.03
    assert np.allclose(prods, 5.566, rtol=0.03)


def test_scherrer_option_width():
    g = nx.fine_grid()
    y = nx.pxrdnet_pattern(fcc_cu(), size=40.0, sigma_q=0.0, size_model="scherrer", n_out=4096)
    w = fwhm_at(y, g, 2 * np.pi * np.sqrt(3) / A_CU)
    assert w == pytest.approx(2 * np.pi * 0.9 / 40.0, rel=0.03)  # ΔQ = 2πK/τ


def test_peak_positions_fcc_cu():
    g = nx.fine_grid()
    y = nx.pxrdnet_pattern(fcc_cu(), size=150.0, sigma_q=0.0, n_out=4096)
    pk, _ = find_peaks(y, prominence=0.05)
    expect = 2 * np.pi * np.sqrt([3, 4, 8, 11, 12]) / A_CU
    assert np.abs(g[pk[:5]] - expect).max() < 0.004


def test_pattern_normalised_and_sigma_drawn():
    y = nx.pxrdnet_pattern(srtio3(), size=10.0)
    assert y.shape == (512,) and y.max() == pytest.approx(1.0) and y.min() >= 0
    mid = nx.pxrdnet_pattern(srtio3(), size=10.0, sigma_q=0.5 * (0.081568 + 0.0897248))
    assert np.abs(y - mid).max() < 1e-12
    y1 = nx.pxrdnet_pattern(srtio3(), size=10.0, rng=np.random.default_rng(1))
    y2 = nx.pxrdnet_pattern(srtio3(), size=10.0, rng=np.random.default_rng(2))
    assert 1e-5 < np.abs(y1 - y2).max() < 0.05  # σ differs within a 10 % range


def test_torch_variant_matches_numpy_and_has_gradients():
    cr = srtio3()
    ref = nx.pxrdnet_pattern(cr, size=10.0)
    lat = torch.tensor(cr.lattice[None], requires_grad=True)
    frac = torch.tensor(cr.frac_coords[None])
    y = nx.pxrdnet_pattern_torch(lat, frac, cr.species, size=10.0)
    assert y.shape == (1, 512)
    assert np.abs(y.detach().numpy()[0] - ref).max() < 1e-5
    fast = nx.pxrdnet_pattern_torch(lat.detach(), frac, cr.species, size=10.0, exact=False)
    assert np.abs(fast.numpy()[0] - ref).max() < 2e-3
    # gradient of a smooth functional vs a central finite difference in a
    probe = torch.tensor(np.linspace(0, 1, 512))
    (y[0] * probe).sum().backward()
    da = lat.grad[0, 0, 0].item() + lat.grad[0, 1, 1].item() + lat.grad[0, 2, 2].item()
    h = 1e-5
    vals = [float((nx.pxrdnet_pattern_torch(torch.tensor(cr.lattice[None] * (1 + s * h / 3.905)), frac,
                                            cr.species, size=10.0)[0] * probe).sum()) for s in (1, -1)]
    assert da == pytest.approx((vals[0] - vals[1]) / (2 * h), rel=1e-4)
    # merged-peak renderer used by the refinement agrees with the bragg-based path
    from nanosolve.scattering.bragg import bragg_peaks
    pk = bragg_peaks(cr, nx.WAVELENGTH, min_intensity=0.0)
    yr = nx.render_pxrdnet_torch(torch.tensor(pk.q[None]), torch.tensor(pk.intensity[None]), 10.0, exact=True)
    assert np.abs((yr / yr.max()).numpy()[0] - ref).max() < 1e-4


@pytest.fixture(scope="module")
def sharp_cu_ka():
    return simulate_xrd(srtio3(), nx.WAVELENGTH, x="tth", grid=np.arange(5, 150, 0.01), fwhm=0.03)


@pytest.mark.parametrize("tau", [10.0, 100.0])
def test_to_model_grid_reproduces_pxrdnet_pattern(sharp_cu_ka, tau):
    sig = 0.085
    ref = nx.pxrdnet_pattern(srtio3(), size=tau, sigma_q=sig)
    y, m = nx.to_model_grid(sharp_cu_ka, broaden=(tau, sig), background=None)
    assert y.shape == (512,) and m.dtype == bool and y.max() == pytest.approx(1.0)
    assert 390 < m.sum() < 480 and np.all(y[~m] == 0)
    assert np.corrcoef(y[m], ref[m])[0, 1] > 0.999
    assert np.abs(y[m] - ref[m]).max() < 0.03
    # without the edge trim the tails of peaks beyond 150° spoil the high-Q end
    y0, m0 = nx.to_model_grid(sharp_cu_ka, broaden=(tau, sig), background=None, edge_margin=0.0)
    assert m0.sum() > m.sum() and np.corrcoef(y0[m0], ref[m0])[0, 1] < np.corrcoef(y[m], ref[m])[0, 1]


def test_to_model_grid_background_subtraction(sharp_cu_ka):
    x = sharp_cu_ka.x
    t = (x - 5) / 145
    bg = 0.01 * sharp_cu_ka.y.max() * (1 + 0.5 * t + t * t)
    pat = Pattern(x, sharp_cu_ka.y + bg, x_unit="tth", wavelength=nx.WAVELENGTH)
    ref = nx.pxrdnet_pattern(srtio3(), size=10.0, sigma_q=0.085)
    y, m = nx.to_model_grid(pat, broaden=(10.0, 0.085), background="auto")
    assert np.corrcoef(y[m], ref[m])[0, 1] > 0.99
    y_raw, _ = nx.to_model_grid(pat, broaden=(10.0, 0.085), background=None)
    assert np.corrcoef(y_raw[m], ref[m])[0, 1] < 0.5  # the background dominates after broadening


def test_mask_of_mo_ka_range():
    mo = simulate_xrd(srtio3(), "MoKa", x="tth", grid=np.arange(5, 19.001, 0.01), fwhm=0.03)
    q = nx.model_grid()
    q_lo, q_hi = 4 * np.pi * np.sin(np.radians([2.5, 9.5])) / 0.71073  # 0.771, 2.918 Å⁻¹
    for broaden in (None, (100.0, 0.0)):
        y, m = nx.to_model_grid(mo, broaden=broaden)
        assert not m[q < q_lo].any() and not m[q > q_hi].any()
        assert np.all(y[~m] == 0)
    y, m = nx.to_model_grid(mo, broaden=None)
    assert m[(q > q_lo + 0.02) & (q < q_hi - 0.02)].all()
    assert m.sum() == pytest.approx((q_hi - q_lo) / np.diff(q)[0], abs=2)


def test_errors_name_the_file():
    x = np.linspace(10, 80, 500)
    y = np.exp(-0.5 * ((x - 40) / 0.1) ** 2) + 0.1
    with pytest.raises(InputError, match="wavelength") as e:
        nx.to_model_grid(Pattern(x, y, x_unit="tth", metadata={"source": "nowl.xy"}))
    assert "nowl.xy" in str(e.value)
    with pytest.raises(InputError, match="flat") as e:
        nx.to_model_grid(Pattern(x, np.full_like(x, 3.0), x_unit="tth", wavelength=1.5406,
                                 metadata={"source": "flat.xy"}))
    assert "flat.xy" in str(e.value)
    with pytest.raises(InputError, match="points") as e:
        nx.to_model_grid(Pattern([10.0, 20.0], [1.0, 2.0], x_unit="tth", wavelength=1.5406,
                                 metadata={"source": "short.xy"}))
    assert "short.xy" in str(e.value)
    with pytest.raises(InputError, match="no points"):
        Pattern([], [], x_unit="tth", wavelength=1.5406, metadata={"source": "empty.xy"})
    with pytest.raises(InputError, match="overlaps") as e:
        nx.to_model_grid(Pattern(np.linspace(9, 20, 100), np.sin(np.linspace(0, 9, 100)) + 2, x_unit="q",
                                 metadata={"source": "far.dat"}))
    assert "far.dat" in str(e.value)
    with pytest.raises(InputError):
        nx.pxrdnet_pattern(srtio3(), size_model="laue")


def test_splat_renderer_matches_dense_sinc2_sum():
    """render_sinc2_uniform (splat + FFT convolution) against the dense analytic sum, including a
    single peak's closed form (τ/2π) sinc²((Q − Q₀)τ/2) and the gradient in the peak position."""
    from nanosolve.scattering import profiles

    g = nx.model_grid()
    step, n = float(g[1] - g[0]), g.size
    grid = torch.tensor(g)
    rng = np.random.default_rng(1)
    q = torch.tensor(rng.uniform(0.2, 8.1, (3, 400)))
    w = torch.tensor(rng.uniform(0.0, 1.0, (3, 400)))
    dense = profiles.render_sinc2(grid, q, w, 10.0)
    fast = profiles.render_sinc2_uniform(float(g[0]), step, n, q, w, 10.0)
    assert fast.shape == (3, n)
    assert float((fast - dense).abs().max() / dense.max()) < 1e-3
    # τ = 100 Å: FWHM ≈ 3.5 grid steps, splatted on a finer grid
    dense100 = profiles.render_sinc2(grid, q, w, 100.0)
    fast100 = profiles.render_sinc2_uniform(float(g[0]), step, n, q, w, 100.0)
    assert float((fast100 - dense100).abs().max() / dense100.max()) < 1e-3
    # one peak on a node is exact; off-node within the splat error
    q0 = torch.tensor([[g[200], 3.0 + 0.37 * step]], dtype=torch.float64, requires_grad=True)
    one = profiles.render_sinc2_uniform(float(g[0]), step, n, q0, torch.ones(1, 2, dtype=torch.float64), 10.0)
    u = 5.0 * (g[:, None] - q0.detach().numpy()[0])
    closed = (10.0 / (2 * np.pi) * np.sinc(u / np.pi) ** 2).sum(1)
    assert np.abs(one.detach().numpy()[0] - closed).max() < 2e-3 * closed.max()
    # d/dQ₀ of a smooth functional: close to the analytic derivative (piecewise linear in Q₀)
    probe = torch.tensor(np.sin(g))
    (one[0] * probe).sum().backward()
    h = 1e-6
    fd = [(10.0 / (2 * np.pi) * np.sinc(5.0 * (g - (3.0 + 0.37 * step + s * h)) / np.pi) ** 2 * np.sin(g)).sum()
          for s in (1, -1)]
    assert q0.grad[0, 1].item() == pytest.approx((fd[0] - fd[1]) / (2 * h), rel=0.02)
    # the model-grid renderer takes this path and agrees with its dense, exact twin
    yr = nx.render_pxrdnet_torch(q, w, 10.0, exact=False)
    ye = nx.render_pxrdnet_torch(q, w, 10.0, exact=True)
    assert float((yr - ye).abs().max() / ye.max()) < 2e-3
