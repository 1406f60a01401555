"""A solve sees only what was measured in a powder CIF: a poisoned Rietveld fit in the file (another
structure's calculated profile, reflection list and phase) leaves the solve's ranking and numbers unchanged."""

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from nanosolve.scattering.bragg import simulate_xrd
from nanosolve.scattering.readers import read_pattern, read_pdcif_fit
from nanosolve.solve.pxrd import solve_pxrd
from nanosolve.solve.pxrd_refine import rwp
from nanosolve.structures import Crystal

torch.set_num_threads(1)
MODEL = Path(str(resources.files("nanosolve") / "data" / "pxrdnet" / "cpu_10A"))  # the shipped 10 Å model
TTH = (20.0, 80.0, 0.05)  # 2θ min, max, step (°), Cu Kα1


def srtio3(a=3.905):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Sr", "Ti", "O", "O", "O"],
                                   [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])


def cscl_like(a=4.5):
    """The poison: a different structure with the same formula (CsCl-type cell, no oxygen framework)."""
    return Crystal.from_parameters(a, a, 1.3 * a, 90, 90, 90, ["Sr", "Ti", "O", "O", "O"],
                                   [[0, 0, 0], [.5, .5, .5], [.2, .3, .1], [.7, .1, .8], [.1, .8, .4]])


def _profile(crystal):
    lo, hi, step = TTH
    grid = np.round(np.arange(lo, hi + step / 2, step), 4)
    return grid, simulate_xrd(crystal, "CuKa1", grid=grid, fwhm=0.1, size=60.0).y


def _pdcif(tth, obs, calc, refl: bool, phase: Crystal | None) -> str:
    """pdCIF text: observed counts, optionally a calculated column, a reflection list and a phase block."""
    lines = ["data_sample_profile", "_pd_block_id guard|profile", "_diffrn_radiation_wavelength 1.540560",
             "_diffrn_radiation_type 'Cu K\\a~1~'", "_pd_proc_ls_prof_wR_factor 0.0123"]
    if phase is not None:
        lines += ["loop_", "_pd_phase_block_id", "guard|phase"]
    lines += ["loop_", "_pd_meas_2theta_scan", "_pd_meas_counts_total"] + (["_pd_calc_intensity_total"] if calc is not None else [])
    for i, (t, y) in enumerate(zip(tth, obs)):
        lines.append(f"{t:.3f} {y:.0f}" + (f" {calc[i]:.2f}" if calc is not None else ""))
    if refl:
        lines += ["loop_", "_refln_index_h", "_refln_index_k", "_refln_index_l", "_refln_F_squared_calc",
                  "1 0 0 9999.0", "1 1 0 1.0", "1 1 1 5000.0"]
    if phase is not None:
        a, b, c = np.linalg.norm(phase.lattice, axis=1)
        lines += ["", "data_sample_phase", "_pd_block_id guard|phase", f"_cell_length_a {a:.4f}",
                  f"_cell_length_b {b:.4f}", f"_cell_length_c {c:.4f}", "_cell_angle_alpha 90",
                  "_cell_angle_beta 90", "_cell_angle_gamma 90", "_symmetry_space_group_name_H-M 'P 1'",
                  "loop_", "_atom_site_label", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"]
        for j, (s, f) in enumerate(zip(phase.species, phase.frac_coords)):
            lines.append(f"{s}{j + 1} {f[0]:.4f} {f[1]:.4f} {f[2]:.4f}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    tth, y_true = _profile(srtio3())
    _, y_poison = _profile(cscl_like())
    obs = np.round(1e4 * y_true / y_true.max() + 50.0)  # counts on a flat background
    honest = 1e4 * y_true / y_true.max() + 50.0
    poison = 1e4 * y_poison / y_poison.max() + 50.0
    out = {"none": tmp / "observed_only.cif", "clean": tmp / "clean.cif", "poisoned": tmp / "poisoned.cif"}
    out["none"].write_text(_pdcif(tth, obs, None, refl=False, phase=None))
    out["clean"].write_text(_pdcif(tth, obs, honest, refl=True, phase=srtio3()))
    out["poisoned"].write_text(_pdcif(tth, obs, poison, refl=True, phase=cscl_like()))
    return out


def test_poison_is_real_and_kept_apart(files):
    """The poisoned file's calculated profile is far from the observed one (a fit using it would move), and
    the reader hands it only to read_pdcif_fit, never to the Pattern."""
    clean, poisoned = read_pdcif_fit(files["clean"])[0], read_pdcif_fit(files["poisoned"])[0]
    y = clean["pattern"].y
    assert rwp(y, clean["calculated"], weights=np.ones_like(y)) < 0.01
    assert rwp(y, poisoned["calculated"], weights=np.ones_like(y)) > 0.5
    assert poisoned["reflections"]["f_squared_calc"][0] == pytest.approx(9999.0)
    assert poisoned["phase_blocks"] == ["sample_phase"] and poisoned["Rwp"] == pytest.approx(0.0123)
    p = read_pattern(files["poisoned"])
    q = read_pattern(files["none"])
    assert p.x == pytest.approx(q.x) and p.y == pytest.approx(q.y) and p.sigma == pytest.approx(q.sigma)
    assert p.wavelength == q.wavelength and p.kind == q.kind
    arrays = [k for k, v in p.metadata.items() if isinstance(v, (np.ndarray, list, dict)) and k != "wavelengths"]
    assert arrays == []  # no column of any kind besides x, y, sigma rides along


def _signature(result):
    """Everything a solve reports about its ranking: order, sources, R values, refined cells and positions."""
    order = [(c.method, c.source, c.index) for c in result.ranked]
    numbers = np.concatenate([[c.r, np.nan if c.r_refined is None else c.r_refined,
                               np.nan if c.profile is None else c.profile.rwp_after, *c.final_crystal.cell_params,
                               *c.final_crystal.frac_coords.ravel()] for c in result.ranked])
    return order, numbers


def _check_unchanged(files, names, **kw):
    """Solve each file; every ranking equals the first's, R values, cells and positions to round-off
    (a solve, refinement included, is reproducible to the bit for the same input)."""
    runs = {}
    for name in names:
        # the same global RNG state for every solve: a solve is compared with a solve, not with the state an
        # earlier call left behind
        torch.manual_seed(0)
        np.random.seed(0)
        runs[name] = solve_pxrd(files[name], formula="SrTiO3", model_dir=MODEL, seed=0, symmetrize=False, **kw)
    order, numbers = _signature(runs[names[0]])
    assert len(order) >= 4
    for name in names[1:]:
        o, n = _signature(runs[name])
        assert o == order, name
        assert runs[name].y == pytest.approx(runs[names[0]].y)
        np.testing.assert_allclose(n, numbers, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
    return runs


def test_solve_unchanged_by_poisoned_fit(files):
    """Same ranking, R values and cells whether the file carries no fit, or a poisoned one
    (small solve: 4 latent draws, 5 steps, prototypes competing, no refinement or coordinate search; the
    test below has the search)."""
    runs = _check_unchanged(files, ["none", "poisoned"], k=4, steps=5, n_step_each=5, top=0, profile_top=0,
                            coordinate_search=0)
    assert _signature(runs["poisoned"])[0] == _signature(runs["none"])[0]  # the same candidates in the same order


@pytest.mark.slow
def test_measured_profile_stage_unchanged_by_poisoned_fit(files):
    """The stage that fits the pattern as measured (where a calculated column would help most) gives the
    same numbers with the poisoned file (~20 s per solve)."""
    runs = _check_unchanged(files, ["none", "poisoned"], k=4, steps=5, n_step_each=5, top=2, profile_top=1,
                            prototypes=False)
    assert runs["none"].summary["profile_refined"] == 1
