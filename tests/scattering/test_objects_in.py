"""Objects in: ase.Atoms, pymatgen Structure/Molecule and paths give the same numbers as the Crystal /
Particle they describe, through simulate(), the simulators' public functions and the refine/solve
entry points; patterns from arrays equal the Pattern they describe."""

from __future__ import annotations

import numpy as np
import pytest

from nanosolve.errors import InputError
from nanosolve.scattering import Pattern, as_pattern
from nanosolve.scattering.bragg import bragg_peaks, simulate_xrd
from nanosolve.scattering.crystal_pdf import crystal_pdf
from nanosolve.scattering.debye import DebyeSimulator
from nanosolve.scattering.simulate import simulate
from nanosolve.structures import Crystal, Particle, as_structure
from nanosolve.structures.io import write_cif, write_xyz


@pytest.fixture(scope="module")
def crystal():
    return Crystal.from_parameters(4.2, 4.2, 4.2, 90, 90, 90, ["Mg"] * 4 + ["O"] * 4,
                                   [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5],
                                    [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]], name="MgO")


@pytest.fixture(scope="module")
def particle():
    from nanosolve.structures.builders.clusters import icosahedron

    return icosahedron("Au", 2)


def _forms(obj, tmp_path, ext):
    path = tmp_path / f"s{ext}"
    (write_cif if ext == ".cif" else write_xyz)(obj, path)
    return {"ase": obj.to_ase(), "pymatgen": obj.to_pymatgen(), "path": path, "str": str(path)}


def test_as_structure_kinds(crystal, particle, tmp_path):
    for name, obj in _forms(crystal, tmp_path, ".cif").items():
        c = as_structure(obj)
        assert isinstance(c, Crystal), name
        np.testing.assert_allclose(c.lattice, crystal.lattice, atol=1e-6)
        assert sorted(c.species) == sorted(crystal.species)
    for name, obj in _forms(particle, tmp_path, ".xyz").items():
        p = as_structure(obj)
        assert isinstance(p, Particle), name
        np.testing.assert_allclose(np.sort(p.positions, axis=0), np.sort(particle.positions, axis=0), atol=1e-5)
    assert as_structure(crystal) is crystal
    with pytest.raises(InputError, match="cannot use a dict as a structure"):
        as_structure({"a": 1})


@pytest.mark.parametrize("kind,wl", [("xrd", "CuKa"), ("gr", None), ("nd", 1.54)])
def test_simulate_crystal_forms_equal(crystal, tmp_path, kind, wl):
    ref = simulate(kind, crystal, wl)
    for name, obj in _forms(crystal, tmp_path, ".cif").items():
        p = simulate(kind, obj, wl)
        np.testing.assert_allclose(p.x, ref.x, err_msg=name)
        np.testing.assert_allclose(p.y, ref.y, rtol=1e-6, atol=1e-9 * np.abs(ref.y).max(), err_msg=name)


@pytest.mark.parametrize("kind", ["gr", "saxs"])
def test_simulate_particle_forms_equal(particle, tmp_path, kind):
    ref = simulate(kind, particle)
    for name, obj in _forms(particle, tmp_path, ".xyz").items():
        p = simulate(kind, obj)
        np.testing.assert_allclose(p.y, ref.y, rtol=1e-5, atol=1e-8 * np.abs(ref.y).max(), err_msg=name)


def test_simulator_functions_take_objects(crystal, particle, tmp_path):
    cif = tmp_path / "c.cif"
    write_cif(crystal, cif)
    ref = bragg_peaks(crystal, "CuKa")
    for obj in (crystal.to_ase(), crystal.to_pymatgen(), cif):
        pk = bragg_peaks(obj, "CuKa")
        np.testing.assert_allclose(pk.two_theta, ref.two_theta, atol=1e-6)
        np.testing.assert_allclose(pk.intensity, ref.intensity, rtol=1e-6)
        np.testing.assert_allclose(simulate_xrd(obj, "CuKa").y, simulate_xrd(crystal, "CuKa").y, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(crystal_pdf(obj, rmax=10).y, crystal_pdf(crystal, rmax=10).y, rtol=1e-6,
                                   atol=1e-9)
    sim = DebyeSimulator(qmin=1, qmax=10, qstep=0.05)
    ref_iq = sim.iq(particle).y
    for obj in (particle.to_ase(), particle.to_pymatgen()):
        np.testing.assert_allclose(sim.iq(obj).y, ref_iq, rtol=1e-6)
    with pytest.raises(InputError, match="finite particle"):
        sim.iq(crystal.to_ase())
    with pytest.raises(InputError, match="periodic crystal"):
        bragg_peaks(particle.to_ase(), "CuKa")


def test_pdf_refine_takes_objects(particle):
    from nanosolve.solve.pdf_refine import FitSettings, refine

    g = simulate("gr", particle, rmin=1.0, rmax=15.0, qmax=25.0)
    s = FitSettings(qmax=25.0, rmax=15.0, refine_positions=False, max_nfev=10, expansion_scan=5)
    ref = refine(particle, g.x, g.y, s)
    for obj in (particle.to_ase(), particle.to_pymatgen()):
        res = refine(obj, g.x, g.y, s)
        assert res.rw == pytest.approx(ref.rw, rel=1e-6, abs=1e-9)


def test_as_pattern_forms():
    x = np.linspace(10, 80, 200)
    y = np.exp(-((x - 40) / 2) ** 2)
    ref = Pattern(x, y, "xrd", "tth", 1.5406)
    for obj in ((x, y), [x, y], np.c_[x, y], np.vstack([x, y])):
        p = as_pattern(obj, x_unit="tth", wavelength=1.5406)
        np.testing.assert_array_equal(p.x, ref.x)
        np.testing.assert_array_equal(p.y, ref.y)
        assert p.kind == "xrd" and p.wavelength == 1.5406
    p = as_pattern((x, y, np.full_like(y, 0.1)), x_unit="tth")
    np.testing.assert_array_equal(p.sigma, 0.1)
    assert as_pattern(ref) is ref
    filled = as_pattern(Pattern(x, y, "xrd", "tth"), wavelength="CuKa1")
    assert filled.wavelength == pytest.approx(1.5406, abs=1e-4)
    r = np.linspace(1, 20, 300)
    g = as_pattern((r, np.sin(r)), kind="gr")
    assert g.x_unit == "r" and g.kind == "gr"
    with pytest.warns(UserWarning, match="guessed 2θ"):
        assert as_pattern((x, y)).x_unit == "tth"
    with pytest.raises(InputError, match="x has 200 points but y has 5"):
        as_pattern((x, y[:5]), x_unit="tth")
    with pytest.raises(InputError, match="cannot use a dict as a pattern"):
        as_pattern({"x": x})


def test_as_pattern_path(tmp_path):
    from nanosolve.scattering.writers import write_pattern

    p = Pattern(np.linspace(1, 5, 50), np.linspace(0, 1, 50), "xrd", "q")
    write_pattern(p, tmp_path / "p.xy")
    back = as_pattern(tmp_path / "p.xy", x_unit="q")
    np.testing.assert_allclose(back.x, p.x, rtol=1e-6)
    np.testing.assert_allclose(back.y, p.y, atol=1e-6)


def test_solve_read_input_takes_arrays():
    from nanosolve.solve import read_input

    r = np.linspace(1, 20, 300)
    p = read_input((r, np.sin(r)), kind="gr", x_unit="r")
    assert p.kind == "gr" and p.x_unit == "r"
