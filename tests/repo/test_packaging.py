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


def test_error_subclasses_keep_the_input_error_message_and_exit_code():
    from nanosolve.cli.common import friendly_errors
    from nanosolve.errors import CheckpointError, ConfigError, FileFormatError, InputError

    for cls in (FileFormatError, ConfigError, CheckpointError):
        err = cls("no data block", path="x.cif")
        assert isinstance(err, InputError) and isinstance(err, ValueError)
        assert str(err) == "x.cif: no data block" and err.problem == "no data block" and err.path == "x.cif"

    @friendly_errors
    def broken():
        raise CheckpointError("no best.pt", path="run/")

    import pytest
    import typer

    with pytest.raises(typer.Exit) as info:
        broken()
    assert info.value.exit_code == 2


def test_pretrained_finds_each_shipped_model_by_family_and_settings():
    import json

    import pytest

    from nanosolve import InputError, pretrained
    from nanosolve.registry import shipped_models
    from nanosolve.solve import default_model_dir as deepstruc_default
    from nanosolve.solve.pxrd import default_model_dir as pxrdnet_default

    models = shipped_models()
    assert {m.family for m in models} >= {"deepstruc", "pxrdnet"}
    for m in models:  # every shipped config names its family
        assert json.loads((m.path / "config.json").read_text())["extra"]["family"] == m.family
        assert (m.path / "best.pt").is_file()
    assert pretrained("deepstruc") == deepstruc_default() and pretrained("deepstruc").name == "cvae_cpu"
    assert pretrained("pxrdnet", size=10) == pretrained("pxrdnet") == pxrdnet_default()
    assert pretrained("pxrdnet/cpu_10A") == pretrained("pxrdnet")
    with pytest.raises(InputError, match="size=10"):
        pretrained("pxrdnet", size=100)
    with pytest.raises(InputError, match="shipped families"):
        pretrained("schnet")
