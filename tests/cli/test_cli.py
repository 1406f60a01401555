"""The command line: every command runs on real files, writes what it says, and refuses bad input
with one readable message and a non-zero exit."""

import numpy as np
import pytest
from typer.testing import CliRunner

from nanosolve.cli.main import app
from nanosolve.scattering.readers import read_pattern
from nanosolve.structures.io import read_structure

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def zno_cif(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "zno.cif"
    res = run("build", "type", "wurtzite", "Zn", "-o", path)
    assert res.exit_code == 0, res.output
    return path


def test_help_explains_units():
    for cmd in ([], ["simulate"], ["info"], ["build", "cut"], ["build", "cluster"]):
        res = run(*cmd, "--help")
        assert res.exit_code == 0
        assert "Å" in res.output


def test_build_type_writes_a_cif_with_the_right_space_group(zno_cif):
    c = read_structure(zno_cif)
    assert c.symmetry().number == 186
    assert c.formula == "ZnO"


def test_simulate_xrd_with_wavelength_writes_two_theta_columns_and_png(zno_cif, tmp_path):
    out = tmp_path / "zno.xy"
    res = run("simulate", "xrd", zno_cif, "--wavelength", "CuKa", "-o", out)
    assert res.exit_code == 0, res.output
    data = np.loadtxt(out)
    assert data.shape[1] == 2
    assert data[0, 0] == pytest.approx(5.0) and data[-1, 0] == pytest.approx(90.0)
    # ZnO (100) at d = a·√3/2: the strongest low-angle peaks sit where Bragg's law puts them
    a = read_structure(zno_cif).cell_params[0]
    tth100 = 2 * np.degrees(np.arcsin(1.54184 / (2 * a * np.sqrt(3) / 2)))
    window = np.abs(data[:, 0] - tth100) < 0.3
    assert data[window, 1].max() > 0.05 * data[:, 1].max()
    assert (tmp_path / "zno.png").stat().st_size > 1000
    p = read_pattern(out)
    assert p.x_unit == "tth" and p.wavelength == pytest.approx(1.54184)


def test_simulate_without_wavelength_writes_q(zno_cif, tmp_path):
    out = tmp_path / "zno_q.xy"
    res = run("simulate", "nd", zno_cif, "-o", out, "--no-plot")
    assert res.exit_code == 0, res.output
    p = read_pattern(out)
    assert p.x_unit == "q" and p.x.max() <= 8.0 + 1e-9


def test_cluster_cut_and_particle_patterns(zno_cif, tmp_path):
    xyz = tmp_path / "zno_np.xyz"
    assert run("build", "cut", zno_cif, "--radius", "8", "-o", xyz).exit_code == 0
    particle = read_structure(xyz)
    assert set(particle.species) == {"Zn", "O"}
    for kind in ("saxs", "gr", "sq"):
        out = tmp_path / f"np_{kind}.dat"
        res = run("simulate", kind, xyz, "-o", out, "--no-plot")
        assert res.exit_code == 0, res.output
        assert np.loadtxt(out).shape[0] > 100
    ico = tmp_path / "ico.xyz"
    assert run("build", "cluster", "icosahedron", "Au", "--shells", "3", "-o", ico).exit_code == 0
    assert len(read_structure(ico)) == 55


def test_info_on_structure_and_pattern(zno_cif, tmp_path):
    res = run("info", zno_cif)
    assert res.exit_code == 0 and "P6_3mc" in res.output and "ZnO" in res.output
    f = tmp_path / "p.xy"
    f.write_text("# 2theta intensity\n# wavelength = 1.5406\n10 1\n10.5 2\n11 3\n")
    res = run("info", f)
    assert res.exit_code == 0, res.output
    assert "1.54060" in res.output and "2θ" in res.output and "3" in res.output


def test_demo_writes_everything(tmp_path):
    res = run("demo", "-o", tmp_path / "demo")
    assert res.exit_code == 0, res.output
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"MgO_patterns.png", "MgO_rocksalt.cif", "MgO_crystal_xrd.xy", "MgO_particle_gr.gr", "solve_example"} <= names
    solved = sorted(p.name for p in (tmp_path / "demo" / "solve_example").glob("*.xyz"))
    assert solved and solved[0].startswith("01_") and "fit.png" in {p.name for p in (tmp_path / "demo" / "solve_example").iterdir()}


@pytest.mark.parametrize("content,args,message", [
    ("", ["info"], "empty"),
    ("10 1\n11 2 3\n12 3\n", ["info"], "column"),
    ("10 1\n11 nan\n12 3\n", ["info"], "NaN"),
])
def test_bad_pattern_files_exit_nonzero_with_one_message(tmp_path, content, args, message):
    f = tmp_path / "bad.xy"
    f.write_text(content)
    res = run(*args, f)
    assert res.exit_code == 2
    assert "bad.xy" in res.output and message.lower() in res.output.lower()
    assert "Traceback" not in res.output


def test_bad_structure_inputs_exit_nonzero(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 4\nloop_\n_atom_site_label\n_atom_site_fract_x\nQq1 0.1\n")
    res = run("simulate", "xrd", bad, "-w", "CuKa")
    assert res.exit_code == 2 and "bad.cif" in res.output and "Traceback" not in res.output
    malformed = tmp_path / "malformed.cif"
    malformed.write_text("data_x\n_cell_length_a 4\n_cell_length_b 'unclosed\nloop_\n_atom_site_label\n")
    res = run("info", malformed)
    assert res.exit_code == 2 and "malformed.cif" in res.output and "Traceback" not in res.output
    xyz = tmp_path / "unknown.xyz"
    xyz.write_text("2\n\nAu 0 0 0\nZz 1 0 0\n")
    res = run("simulate", "gr", xyz)
    assert res.exit_code == 2 and "Zz" in res.output
    res = run("simulate", "xrd", tmp_path / "missing.cif")
    assert res.exit_code == 2 and "missing.cif" in res.output
    res = run("simulate", "foo", xyz)
    assert res.exit_code == 2 and "unknown pattern kind" in res.output


def test_missing_wavelength_for_two_theta_data(tmp_path):
    f = tmp_path / "tth.xy"
    f.write_text("# 2theta intensity\n10 1\n10.5 2\n11 3\n")
    p = read_pattern(f)
    from nanosolve.errors import InputError

    with pytest.raises(InputError, match="wavelength"):
        p.to_q()


def test_refuses_a_job_that_would_not_fit(tmp_path, monkeypatch):
    import nanosolve.scattering.memory as memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1_000_000)
    xyz = tmp_path / "au.xyz"
    assert run("build", "cluster", "fcc", "Au", "--layers", "6,6,6", "-o", xyz).exit_code == 0
    res = run("simulate", "gr", xyz)
    assert res.exit_code == 2
    assert "needs about" in res.output and "available" in res.output
