"""CrystalNet foundations: procrystal density, density files and cache, inputs, metrics,
density -> crystal decoding, and the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from nanosolve.errors import InputError
from nanosolve.models.crystalnet import density as dens
from nanosolve.models.crystalnet import inputs, metrics, peaks
from nanosolve.models.crystalnet.config import CrystalNetConfig
from nanosolve.models.crystalnet.model import CrystalNet, kl_standard_normal
from nanosolve.paths import shared_data_dir
from nanosolve.scattering.bragg import bragg_peaks, simulate_xrd
from nanosolve.structures.crystal import Crystal

SHARED_DATA = shared_data_dir()


def _sg(sg, lattice, species, coords) -> Crystal:
    return Crystal.from_pymatgen(Structure.from_spacegroup(sg, lattice, species, coords))


@pytest.fixture(scope="module")
def nacl():
    return _sg("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def rutile():
    return _sg("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]])


@pytest.fixture(scope="module")
def triclinic20():
    """20 atoms in an oblique cell, with N and C whose WK fits have cancelling spikes / b < 0."""
    rng = np.random.default_rng(7)
    lat = np.array([[6.1, 0.0, 0.0], [1.2, 7.3, 0.0], [-1.5, 0.8, 9.2]])
    return Crystal(lat, rng.random((20, 3)), ["Hf", "O", "N", "C", "Cs"] * 4)


def _electrons(c: Crystal) -> float:
    return float(np.sum(c.atomic_numbers * c.occupancies))


# ----- density ------------------------------------------------------------------------------
def test_procrystal_integrates_to_electron_count(nacl, rutile, triclinic20):
    partial = Crystal(nacl.lattice, nacl.frac_coords, nacl.species, occupancies=[0.5] * 4 + [1.0] * 4)
    for c in (nacl, rutile, triclinic20, partial):
        rho = dens.procrystal_density(c)
        assert rho.shape == (50, 50, 50)
        n = dens.electron_count(rho, c.lattice)
        assert abs(n / _electrons(c) - 1) < 0.01, (c.formula, n, _electrons(c))
        # the cancelling N/C spikes must not leave negative density behind
        assert rho.min() > -1e-6 * rho.max()


def test_grid_matches_direct_sum(rutile, triclinic20):
    """The FFT + local-box split equals the brute-force sum over atoms and periodic images."""
    rng = np.random.default_rng(1)
    for c in (rutile, triclinic20):
        rho = dens.procrystal_density(c)
        idx = rng.integers(0, 50, (60, 3))
        floor = 8 * np.pi**2 * (dens.DEFAULT_MIN_SIGMA_VOXELS * dens.voxel_edge(c.lattice, (50, 50, 50))) ** 2
        ref = dens.procrystal_density_at(c, idx / 50.0, b_floor=floor)
        np.testing.assert_allclose(rho[tuple(idx.T)], ref, rtol=1e-4, atol=1e-5 * rho.max())


def test_density_fourier_coefficients_match_structure_factors(nacl):
    """Independent oracle: FFT of the grid density = F(hkl) of the Bragg simulator at B = 1 Å²."""
    rho = dens.procrystal_density(nacl, b_iso=1.0)
    fhat = np.fft.fftn(rho) * nacl.volume / rho.size  # ∫ρ exp(-2πi h·x) dV
    pk = bragg_peaks(nacl, wavelength=0.71073, b_iso=1.0, lorentz_polarization=False)
    checked = 0
    for i in range(6):  # (111), (200), (220), (311), (222), (400)
        h = pk.hkl[pk.peak_index == i][0]
        mine = abs(fhat[tuple(h)]) ** 2
        assert mine == pytest.approx(pk.f2[i], rel=2e-3), (h, mine, pk.f2[i])
        checked += 1
    assert checked == 6


def test_density_periodic_and_peaked_at_atoms(rutile):
    rho = dens.procrystal_density(rutile)
    # integer lattice translations change nothing; one voxel step rolls the grid by one voxel
    moved = Crystal(rutile.lattice, rutile.frac_coords + [1, -2, 3], rutile.species)
    np.testing.assert_allclose(dens.procrystal_density(moved), rho, atol=1e-9 * rho.max())
    step = Crystal(rutile.lattice, rutile.frac_coords + [1 / 50, 0, 0], rutile.species)
    np.testing.assert_allclose(dens.procrystal_density(step), np.roll(rho, 1, axis=0), atol=1e-8 * rho.max())
    # every atom's nearest voxel is a local maximum (periodic), and the Ti sites carry the top value
    from scipy.ndimage import maximum_filter

    is_max = rho == maximum_filter(rho, size=3, mode="wrap")
    vox = np.round(rutile.frac_coords * 50).astype(int) % 50
    assert all(is_max[tuple(v)] for v in vox)
    top = np.unravel_index(np.argmax(rho), rho.shape)
    ti = vox[[s == "Ti" for s in rutile.species]]
    assert any(np.array_equal(top, v) for v in ti)


def _write_chgcar(path, crystal, rho):
    from pymatgen.io.vasp import Chgcar, Poscar

    Chgcar(Poscar(crystal.to_pymatgen()), {"total": rho * crystal.volume}).write_file(str(path))


def test_read_chgcar_round_trip(tmp_path, rutile):
    kw = dict(b_iso=2.0, min_sigma_voxels=None)  # smooth enough for a 36 x 36 x 24 file grid
    coarse = dens.procrystal_density(rutile, n=(36, 36, 24), **kw)
    _write_chgcar(tmp_path / "CHGCAR", rutile, coarse)
    rho, cr = dens.read_density(tmp_path / "CHGCAR")
    truth = dens.procrystal_density(rutile, n=50, **kw)
    assert rho.shape == (50, 50, 50)
    np.testing.assert_allclose(cr.lattice, rutile.lattice, atol=1e-5)
    assert np.abs(rho - truth).max() < 0.02 * truth.max()
    assert dens.electron_count(rho, cr.lattice) == pytest.approx(_electrons(rutile), rel=5e-3)


def test_read_cube_round_trip_with_origin(tmp_path, nacl):
    from ase.io.cube import write_cube
    from ase.units import Bohr

    kw = dict(b_iso=2.0, min_sigma_voxels=None)
    m = 40
    shift = np.array([0.5, 0.25, 0.0]) / m  # grid origin off the cell corner (fractional)
    # values at origin + i/m are the density of the crystal moved by -origin, sampled at i/m
    moved = Crystal(nacl.lattice, nacl.frac_coords - shift, nacl.species)
    data = dens.procrystal_density(moved, n=m, **kw) * Bohr**3  # cube files store e/Bohr³
    with open(tmp_path / "nacl.cube", "w") as fh:
        write_cube(fh, nacl.to_ase(), data, origin=shift @ nacl.lattice)
    rho, cr = dens.read_density(tmp_path / "nacl.cube")
    truth = dens.procrystal_density(nacl, n=50, **kw)
    assert np.abs(rho - truth).max() < 0.02 * truth.max()
    assert cr.formula == "NaCl"


def test_read_density_bad_file(tmp_path):
    bad = tmp_path / "CHGCAR"
    bad.write_text("not a chgcar\n1.0\n")
    with pytest.raises(InputError, match="CHGCAR"):
        dens.read_density(bad)
    with pytest.raises(InputError, match="not found"):
        dens.read_density(tmp_path / "missing.cube")


def test_density_cache(tmp_path, nacl, rutile):
    a = dens.density_cache(nacl, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and a.dtype == np.float32
    np.testing.assert_allclose(a, dens.procrystal_density(nacl), rtol=1e-6, atol=1e-6)
    np.save(files[0], np.zeros((2, 2, 2), np.float32), allow_pickle=False)  # prove the 2nd call reads it
    assert dens.density_cache(nacl, cache_dir=tmp_path).shape == (2, 2, 2)
    dens.density_cache(rutile, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2
    assert dens.density_key(nacl) != dens.density_key(nacl, b_iso=0.5)


# ----- inputs -------------------------------------------------------------------------------
def test_xrd_vector_against_pymatgen(rutile):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    v = inputs.xrd_vector(rutile)
    assert v.shape == (1024,) and v.max() == pytest.approx(1.0) and v.min() >= 0
    ref = XRDCalculator(wavelength="MoKa").get_pattern(rutile.to_pymatgen(), two_theta_range=(0, 180))
    ref_bins = np.floor(np.asarray(ref.x) / 180 * 1024).astype(int)
    strong = ref_bins[np.asarray(ref.y) > 1.0]
    assert np.all(v[strong] > 0)  # every visible pymatgen peak lands in an occupied bin
    assert np.argmax(v) == ref_bins[np.argmax(ref.y)]
    shifted = inputs.xrd_vector(rutile, shift_deg=0.5)
    assert 1 <= np.argmax(shifted) - np.argmax(v) <= 3


def test_composition_vector(nacl):
    v = inputs.composition_vector(nacl)
    assert v.shape == (118,) and v.sum() == pytest.approx(1.0)
    assert v[10] == pytest.approx(0.5) and v[16] == pytest.approx(0.5)
    w = inputs.composition_vector({"Ti": 1, "O": 2})
    assert w[21] == pytest.approx(1 / 3) and w[7] == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        inputs.composition_vector({})


def test_augment_xrd(rutile):
    v = inputs.xrd_vector(rutile)
    rng = np.random.default_rng(0)
    shifts = set()
    for _ in range(20):
        a = inputs.augment_xrd(v, rng, noise_std=0.0)
        s = int(np.argmax(a) - np.argmax(v))
        assert abs(s) <= 3  # 0.6° / 0.176° per bin
        shifts.add(s)
        np.testing.assert_allclose(a, np.roll(v, s))  # v is 0 near both ends, so a roll is exact
    assert len(shifts) > 1
    noisy = inputs.augment_xrd(np.stack([v, v]), rng, noise_std=0.02, max_shift_deg=0.1)
    assert noisy.shape == (2, 1024) and noisy.max() == pytest.approx(1.0) and noisy.min() >= 0
    assert 0 < np.abs(noisy[0] - v).mean() < 0.05
    with pytest.raises(InputError):
        inputs.augment_xrd(v, rng, max_shift_deg=1.0)


def test_xrd_vector_from_measured_pattern(rutile):
    """A Cu Kα profile converted to the Mo Kα bins lines up with the Mo Kα stick input."""
    pat = simulate_xrd(rutile, wavelength="CuKa", two_theta_range=(10, 120), fwhm=0.05)
    pat.y = pat.y + 0.05 * pat.y.max()  # flat background
    v = inputs.xrd_vector_from_pattern(pat)
    sticks = inputs.xrd_vector(rutile)
    assert v.shape == (1024,) and v.max() == pytest.approx(1.0)
    assert abs(int(np.argmax(v)) - int(np.argmax(sticks))) <= 1
    occupied = np.flatnonzero(sticks > 0)
    for b in np.flatnonzero(v > 0.2):
        assert np.min(np.abs(occupied - b)) <= 2
    # Cu 10° = Q 0.71 Å⁻¹ = Mo 4.6° (bin 26): no data below -> 0; up to the first peak (Mo 12.5°,
    # bin 71) only the subtracted flat background -> ~0
    assert np.all(v[:26] == 0) and v[26:65].max() < 1e-3
    with pytest.raises(InputError):
        from nanosolve.scattering.pattern import Pattern

        inputs.xrd_vector_from_pattern(Pattern(np.linspace(0, 30, 10), np.ones(10), kind="gr", x_unit="r"))


def test_sample_grid_points(rutile):
    rho = dens.procrystal_density(rutile)
    coords, vals = inputs.sample_grid_points(rho, 2000, np.random.default_rng(0), dense_fraction=0.5)
    assert coords.shape == (2000, 3) and vals.shape == (2000,)
    ijk = np.round(coords * 50).astype(int)
    np.testing.assert_allclose(rho[tuple(ijk.T)], vals, rtol=1e-6)
    assert vals[:1000].mean() > 10 * vals[1000:].mean()  # the dense half sits on the atoms


# ----- metrics ------------------------------------------------------------------------------
def test_cube_rotations_form_the_group():
    rots = metrics.cube_rotations()
    assert len(rots) == 24
    keys = {r.tobytes() for r in rots}
    assert len(keys) == 24
    assert all((a @ b).tobytes() in keys for a in rots for b in rots)


def test_ssim_psnr_self_and_rotation_search(triclinic20):
    rho = dens.procrystal_density(triclinic20, n=24)
    assert metrics.ssim3d(rho, rho) == pytest.approx(1.0)
    assert metrics.psnr3d(rho, rho) == float("inf")
    noisy = rho + np.random.default_rng(0).normal(0, 0.05 * rho.max(), rho.shape)
    assert metrics.ssim3d(noisy, rho) < 0.9
    assert 10 < metrics.psnr3d(noisy, rho) < 40
    rot = metrics.cube_rotations()[13]
    pred = metrics.rotate_grid(rho, rot)
    assert metrics.ssim3d(pred, rho) < 0.9
    m = metrics.best_over_rotations(pred, rho)
    assert m.ssim == pytest.approx(1.0) and m.psnr == float("inf")
    np.testing.assert_array_equal(m.rotation, rot.T)
    shifted = np.roll(pred, (3, -5, 7), axis=(0, 1, 2))
    assert metrics.best_over_rotations(shifted, rho).ssim < 0.9
    ms = metrics.best_over_rotations(shifted, rho, shifts=True)
    assert ms.ssim == pytest.approx(1.0)


# ----- density -> crystal -------------------------------------------------------------------
def _perovskite() -> Crystal:
    import pandas as pd

    f = SHARED_DATA / "cdvae" / "perov_5" / "test.csv"
    if not f.is_file():
        pytest.skip(f"reference data not found at {f}")
    cif = pd.read_csv(f, nrows=1)["cif"][0]
    return Crystal.from_pymatgen(Structure.from_str(cif, fmt="cif"))


@pytest.mark.parametrize("which", ["nacl", "rutile", "perovskite", "nacl_shifted"])
def test_density_to_crystal_matches_truth(which, nacl, rutile):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    if which == "perovskite":
        truth = _perovskite()
    elif which == "nacl_shifted":  # atoms off the grid points: sub-voxel refinement matters
        truth = Crystal(nacl.lattice, nacl.frac_coords + [0.0123, 0.0371, 0.0089], nacl.species)
    else:
        truth = {"nacl": nacl, "rutile": rutile}[which]
    rho = dens.procrystal_density(truth)
    out = peaks.density_to_crystal(rho, truth.lattice, truth.composition)
    assert sorted(out.species) == sorted(truth.species)
    sm = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10)
    assert sm.fit(out.to_pymatgen(), truth.to_pymatgen())
    # much tighter than the matcher: every atom within 0.02 Å of a true site of its element
    for sp, x in zip(out.species, out.cart_coords):
        d = [np.linalg.norm(_min_image(x - y, truth.lattice)) for s, y in zip(truth.species, truth.cart_coords) if s == sp]
        assert min(d) < 0.02, (which, sp, min(d))


def _min_image(d, lattice):
    f = np.linalg.solve(lattice.T, d)
    return (f - np.round(f)) @ lattice


def test_peak_charges_and_fraction_composition(nacl):
    rho = dens.procrystal_density(nacl)
    pk = peaks.find_peaks(rho, nacl.lattice)
    assert len(pk.charge) == 8
    assert pk.charge.sum() == pytest.approx(dens.electron_count(rho, nacl.lattice), rel=1e-9)
    # basin charges close to Z (Na 11, Cl 17): the procrystal's tails spill a little Na into Cl
    assert np.all(np.abs(np.sort(pk.charge) - np.array([11] * 4 + [17] * 4)) < 1.0)
    out = peaks.density_to_crystal(rho, nacl.lattice, {"Na": 0.5, "Cl": 0.5})  # fractions: scaled to 8 atoms
    assert out.composition == {"Na": 4.0, "Cl": 4.0}
    with pytest.raises(InputError):
        peaks.find_peaks(np.zeros((10, 10, 10)), nacl.lattice)


# ----- network ------------------------------------------------------------------------------
def test_config_presets_and_json(tmp_path):
    cfg = CrystalNetConfig.paper()
    assert (cfg.latent_dim, cfg.fourier_features, cfg.fourier_sigma, cfg.beta, cfg.fusion_layers) == (512, 128, 3.0, 0.05, 4)
    small = CrystalNetConfig.cpu(hidden=32)
    small.to_json(tmp_path / "c.json")
    assert CrystalNetConfig.from_json(tmp_path / "c.json") == small
    with pytest.raises(InputError, match="unknown"):
        CrystalNetConfig.from_dict({"nope": 1})
    with pytest.raises(InputError):
        CrystalNetConfig(fusion_layers=1)


def test_kl_reduction_sum_and_mean():
    """'kl' is reported in nats per crystal; the loss adds β·KL ('sum') or β·KL / (2 latent) ('mean')."""
    torch.manual_seed(0)
    model = CrystalNet(_tiny_cfg())  # latent 16 per encoder
    xrd, comp = torch.rand(2, 1024), torch.rand(2, 118)
    coords, target = torch.rand(2, 20, 3), torch.rand(2, 20)
    losses = {}
    for reduction in ("sum", "mean"):
        model.config.kl_reduction = reduction
        torch.manual_seed(1)  # the same latent draw for both
        losses[reduction] = model.loss(xrd, comp, coords, target)
    s, m = losses["sum"], losses["mean"]
    assert float(s["kl"]) > 0 and float(m["kl"]) == pytest.approx(float(s["kl"]))
    assert float(s["loss"]) == pytest.approx(float(s["l1"]) + 0.05 * float(s["kl"]))
    assert float(m["loss"]) == pytest.approx(float(m["l1"]) + 0.05 * float(m["kl"]) / 32)
    assert CrystalNetConfig.cpu().kl_reduction == "mean" and CrystalNetConfig.paper().kl_reduction == "sum"
    with pytest.raises(InputError, match="kl_reduction"):
        CrystalNetConfig.cpu(kl_reduction="max")


def test_kl_standard_normal():
    z = torch.zeros(2, 5)
    assert torch.allclose(kl_standard_normal(z, z), torch.zeros(2))
    assert torch.allclose(kl_standard_normal(torch.ones(2, 5), z), torch.full((2,), 2.5))


def _tiny_cfg():
    return CrystalNetConfig.cpu(latent_dim=16, dense_growth=4, dense_blocks=(1, 1), dense_stem=8,
                                formula_widths=(32,), fusion_width=32, fourier_features=32, pos_width=32,
                                hidden=48, n_layers=4, skip_every=2, lr=3e-3)


def test_model_shapes_kl_sample():
    torch.manual_seed(0)
    model = CrystalNet(_tiny_cfg())
    xrd, comp, coords = torch.rand(3, 1024), torch.rand(3, 118), torch.rand(3, 50, 3)
    rho, kl = model(xrd, comp, coords, return_kl=True)
    assert rho.shape == (3, 50) and kl.shape == (3,)
    assert torch.all(kl >= 0) and torch.all(rho >= 0)
    model.eval()
    torch.testing.assert_close(model(xrd, comp, coords), model(xrd, comp, coords))
    s = model.sample(xrd, comp, coords, n_samples=4)
    assert s.shape == (4, 3, 50)
    assert not torch.allclose(s[0], s[1])
    with pytest.raises(InputError):
        model(torch.rand(3, 512), comp, coords)
    with pytest.raises(InputError):
        model(xrd, comp, torch.rand(3, 50, 2))


def test_model_learns_two_tiny_crystals(nacl, rutile):
    """A few Adam steps on stratified points of two procrystal densities: the loss falls."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    crystals = [nacl, rutile]
    rhos = [dens.procrystal_density(c) for c in crystals]
    xrd = torch.tensor(np.stack([inputs.xrd_vector(c) for c in crystals]), dtype=torch.float32)
    comp = torch.tensor(np.stack([inputs.composition_vector(c) for c in crystals]), dtype=torch.float32)
    model = CrystalNet(_tiny_cfg())
    opt = torch.optim.Adam(model.parameters(), lr=model.config.lr)
    losses = []
    for _ in range(40):  # time: benchmarks/speed/bench_speed.py
        pts = [inputs.sample_grid_points(r / r.max(), 256, rng) for r in rhos]  # targets scaled to max 1
        coords = torch.tensor(np.stack([p[0] for p in pts]))
        target = torch.tensor(np.stack([p[1] for p in pts]))
        out = model.loss(xrd, comp, coords, target)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["l1"].detach()))
        assert float(out["kl"].detach()) >= 0
    print(f"L1 first 5 {np.mean(losses[:5]):.4f} last 5 {np.mean(losses[-5:]):.4f}")
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
