"""``nanosolve solve`` real-data options (--x-unit, --background-file, --extra-phase,
--preferred-orientation, --rietveld-top, --kalpha2, --parsimony): each bad value is refused with one readable
message and exit code 2 before any model is loaded; good values reach the solve as RietveldSettings."""

import numpy as np
import pytest
from typer.testing import CliRunner

from nanosolve.cli.main import app
from nanosolve.errors import InputError

runner = CliRunner()


@pytest.fixture()
def pattern_file(tmp_path):
    tth = np.arange(10, 80, 0.02)
    y = 100 + 1000 * np.exp(-0.5 * ((tth - 31.7) / 0.05) ** 2)
    f = tmp_path / "p.xy"
    np.savetxt(f, np.column_stack([tth, y]), header="wavelength 1.5406\n2theta counts")
    return f


def _one_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert res.output.count("error:") == 1 and "Traceback" not in res.output, res.output
    return " ".join(res.output.split())


@pytest.mark.parametrize("args, names", [
    (["--x-unit", "inches"], "--x-unit"),
    (["--preferred-orientation", "1 2"], "--preferred-orientation"),
    (["--preferred-orientation", "0 0 0"], "--preferred-orientation"),
    (["--extra-phase", "missing_phase.cif"], "missing_phase.cif"),
    (["--background-file", "missing_bg.xy"], "missing_bg.xy"),
    (["--parsimony", "0.9"], "--parsimony"),
])
def test_bad_real_data_options_are_one_error(pattern_file, args, names):
    res = runner.invoke(app, ["solve", str(pattern_file), "--formula", "NaCl", *args])
    assert names in _one_error(res)


def test_options_reach_the_solve(pattern_file, tmp_path, monkeypatch):
    from pymatgen.core import Lattice, Structure

    from nanosolve.solve import pxrd

    si = tmp_path / "Si.cif"
    Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]]).to(filename=str(si))
    bg = tmp_path / "bg.xy"
    np.savetxt(bg, np.column_stack([np.arange(10, 80, 0.1), np.full(700, 50.0)]), header="2theta counts")
    seen = {}

    def fake_solve(*args, **kwargs):
        seen.update(kwargs)
        raise InputError("stop here")

    monkeypatch.setattr(pxrd, "solve_pxrd", fake_solve)
    res = runner.invoke(app, ["solve", str(pattern_file), "--formula", "NaCl", "--extra-phase", str(si),
                              "--extra-phase", str(si), "--background-file", str(bg), "--preferred-orientation",
                              "001", "--rietveld-top", "2", "--kalpha2", "--x-unit", "2theta", "--parsimony", "0.01"])
    assert "stop here" in _one_error(res)
    st = seen["settings"].rietveld if "settings" in seen else seen["rietveld"]
    assert st.top == 2 and st.extra_phases == (si, si) and st.background_file == bg
    assert st.preferred_orientation == (0, 0, 1) and st.kalpha2 is True and st.parsimony_alpha == 0.01
    res = runner.invoke(app, ["solve", str(pattern_file), "--formula", "NaCl"])
    st = seen["settings"].rietveld if "settings" in seen else seen["rietveld"]
    assert st.kalpha2 == "auto" and st.top == 3 and st.extra_phases == () and st.parsimony_alpha == 0.05
    runner.invoke(app, ["solve", str(pattern_file), "--formula", "NaCl", "--parsimony", "0"])
    st = seen["settings"].rietveld if "settings" in seen else seen["rietveld"]
    assert st.parsimony_alpha is None  # by R_wp alone
