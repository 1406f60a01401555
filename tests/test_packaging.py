"""The package's own plumbing: one version, ``--version``, ``python -m nanosolve``, ``py.typed``,
the reference-data location and its ``NANOSOLVE_DATA`` override."""

import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

from typer.testing import CliRunner

import nanosolve
from nanosolve.cli.main import app
from nanosolve.paths import DATA_ENV, shared_data_dir


def test_version_is_single_sourced():
    assert metadata.version("nanosolve") == nanosolve.__version__


def test_version_flag_prints_the_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"nanosolve {nanosolve.__version__}"


def test_python_dash_m_runs_the_same_command_line():
    out = subprocess.run([sys.executable, "-m", "nanosolve", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"nanosolve {nanosolve.__version__}"


def test_package_is_marked_typed():
    assert resources.files("nanosolve").joinpath("py.typed").is_file()


def test_shared_data_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.delenv(DATA_ENV)
    default = shared_data_dir()
    assert default.parts[-2:] == ("shared", "data")
    assert default.parent.parent == Path(nanosolve.__file__).resolve().parents[2].parent
