"""No partial output from the other commands that write a folder of results (``generate cdvae``,
``predict crystalnet``, ``demo``): a run that fails after writing some files leaves its folder as it
was (absent, or with the earlier results) and no temporary folder beside it; ``--overwrite`` as for
``solve``. And the temporary folders a killed run left behind are removed by the next run of the same
folder, never those of a live run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _cli(*args):
    from nanosolve.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def _dead_pid() -> int:
    """The id of a process that has finished (and been reaped): no such process exists now."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----- stale temporary folders -------------------------------------------------------------------------
def test_stale_partial_folders_of_dead_runs_are_removed_live_ones_kept(tmp_path):
    from nanosolve import _io

    host = _io._host_tag()
    dead = _dead_pid()
    out = tmp_path / "res"
    stale = tmp_path / f".res.partial-{dead}-{host}-abcd_123"
    mine = tmp_path / f".res.partial-{os.getpid()}-{host}-efgh4567"  # this (live) process
    parent = tmp_path / f".res.partial-{os.getppid()}-{host}-ijkl8901"  # another live process
    other_host = tmp_path / f".res.partial-{dead}-{'0' * 8 if host != '0' * 8 else '1' * 8}-mnop2345"
    other_target = tmp_path / f".res2.partial-{dead}-{host}-qrst6789"
    legacy = tmp_path / ".res.partial-uvwx0123"  # no owner in the name: never guessed at
    for folder in (stale, mine, parent, other_host, other_target, legacy):
        folder.mkdir()
        (folder / "01_x.cif").write_text("half a run\n")
    target_of_link = tmp_path / "kept"
    target_of_link.mkdir()
    (target_of_link / "f").write_text("x\n")
    link = tmp_path / f".res.partial-{dead}-{host}-yzab4567"  # named as a dead run's, but a symlink
    link.symlink_to(target_of_link, target_is_directory=True)

    assert _io.remove_stale_partials(out) == [stale]
    stale.mkdir()  # and once more: a new run of the same folder removes it first
    with _io.staged_folder(out) as work:
        assert not stale.exists()
        assert work.name.startswith(f".res.partial-{os.getpid()}-{host}-")
        (work / "summary.json").write_text("{}\n")
    assert (out / "summary.json").is_file()
    for kept in (mine, parent, other_host, other_target, legacy):
        assert (kept / "01_x.cif").read_text() == "half a run\n", kept.name
    assert link.is_symlink() and (target_of_link / "f").is_file()  # neither the link nor its target touched
    assert _io.remove_stale_partials(out) == []  # nothing else to remove


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_run_leaves_a_folder_the_next_run_removes(tmp_path):
    """A run killed with SIGKILL while writing (nothing of the ``with`` block's cleanup runs)."""
    out = tmp_path / "res"
    code = (
        "import os, signal, sys\n"
        "from nanosolve._io import staged_folder\n"
        "with staged_folder(sys.argv[1]) as work:\n"
        "    (work / '0000_NaCl.cif').write_text('half\\n')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err.decode()
    from nanosolve._io import _host_tag, remove_stale_partials, staged_folder

    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".res.partial-{proc.pid}-{_host_tag()}-"), left

    with staged_folder(out) as work:
        (work / "0000_NaCl.cif").write_text("whole\n")
    assert _siblings(tmp_path) == ["res"]
    assert (out / "0000_NaCl.cif").read_text() == "whole\n"
    assert remove_stale_partials(out) == []


# ----- generate cdvae ----------------------------------------------------------------------------------
def _crystals():
    from nanosolve.structures.builders.chili_types import build_chili_crystal

    return [
        build_chili_crystal("rocksalt", "Mg"),
        build_chili_crystal("rocksalt", "Na", "Cl"),
        build_chili_crystal("rocksalt", "Mg"),
    ]


@pytest.fixture()
def fake_cdvae(monkeypatch, tmp_path):
    """generate cdvae without a model: load_model and the sampler replaced (the writing is the real one)."""
    import nanosolve.models.cdvae.evaluate as evaluate
    import nanosolve.models.cdvae.sample as sample
    import nanosolve.models.cdvae.train as train

    crystals = _crystals()
    monkeypatch.setattr(train, "load_model", lambda model_dir: (object(), None))
    monkeypatch.setattr(sample, "generate", lambda model, n, **kwargs: [crystals[k % 3] for k in range(n)])
    model = tmp_path / "model"
    model.mkdir()
    return SimpleNamespace(model=model, evaluate=evaluate)


def _fail_on_call(monkeypatch, module, name, call: int):
    """Make ``module.name`` raise on its ``call``-th call (the ones before run as usual)."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError(f"{name} broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def _earlier_generate(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("0000_MgO.cif", "0001_CaO.cif", "0002_BaO.cif", "0003_SrO.cif"):
        (folder / name).write_text("earlier run\n")
    rows = [{"file": n} for n in ("0000_MgO.cif", "0001_CaO.cif", "0002_BaO.cif", "0003_SrO.cif")]
    (folder / "summary.json").write_text(json.dumps({"crystals": rows}))
    (folder / "my_notes.txt").write_text("the user's own file\n")


@pytest.mark.parametrize("earlier", [False, True])
def test_generate_failing_midway_leaves_the_folder_as_it_was(fake_cdvae, monkeypatch, tmp_path, earlier):
    _fail_on_call(monkeypatch, fake_cdvae.evaluate, "structure_valid", 3)  # after 3 CIFs are written
    out = tmp_path / "deep" / "gen"
    before = None
    if earlier:
        _earlier_generate(out)
        before = _snapshot(out)
    res = _cli("generate", "cdvae", fake_cdvae.model, "-n", 4, "-o", out, *(["--overwrite"] if earlier else []))
    assert isinstance(res.exception, RuntimeError) and "structure_valid broke" in str(res.exception), res.output
    if earlier:
        assert _snapshot(out) == before and _siblings(out.parent) == ["gen"]
    else:
        assert _siblings(tmp_path) == ["model"]  # neither gen nor the parent made for it


def test_generate_overwrite_replaces_the_earlier_results_when_complete(fake_cdvae, tmp_path):
    out = tmp_path / "gen"
    _earlier_generate(out)
    before = _snapshot(out)
    res = _cli("generate", "cdvae", fake_cdvae.model, "-n", 2, "-o", out)
    assert res.exit_code == 2 and "--overwrite" in res.output and "earlier run" in res.output, res.output
    assert _snapshot(out) == before
    res = _cli("generate", "cdvae", fake_cdvae.model, "-n", 2, "-o", out, "--overwrite")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    names = [row["file"] for row in summary["crystals"]]
    assert names == ["0000_MgO.cif", "0001_NaCl.cif"]
    assert _siblings(out) == sorted([*names, "my_notes.txt", "summary.json"])  # the earlier CIFs gone
    assert (out / "0000_MgO.cif").read_text() != "earlier run\n"
    assert _siblings(tmp_path) == ["gen", "model"]
    assert f"into {out}/" in " ".join(res.output.split())


def test_generate_into_a_new_folder_writes_the_same_files(fake_cdvae, tmp_path):
    out = tmp_path / "new" / "gen"
    res = _cli("generate", "cdvae", fake_cdvae.model, "-n", 3, "-o", out)
    assert res.exit_code == 0, res.output
    assert _siblings(out) == ["0000_MgO.cif", "0001_NaCl.cif", "0002_MgO.cif", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and [r["n_atoms"] for r in summary["crystals"]] == [8, 8, 8]
    assert _siblings(out.parent) == ["gen"]


# ----- predict crystalnet ------------------------------------------------------------------------------
@pytest.fixture()
def fake_crystalnet(monkeypatch, tmp_path):
    """predict crystalnet without a model: the prediction replaced, its files written by the real
    write_outputs (cube, PNGs, decoded CIF, prediction.json)."""
    import nanosolve.models.crystalnet.predict as pred

    def predict(model_dir, pattern, formula, cell=None, n_samples=0, out_dir=None, threshold=0.02, plots=True):
        x = np.linspace(-1, 1, 8)
        grid = np.exp(-4 * (x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2)) + 0.01
        crystal = _crystals()[1] if formula.get("Na") else None  # NaCl decodes; anything else does not
        res = pred.Prediction(
            density=grid,
            lattice=np.eye(3) * 5.64,
            formula=formula,
            crystal=crystal,
            notes=["cell indexed from the pattern: cubic a = 5.6400 Å"],
        )
        if out_dir is not None:
            pred.write_outputs(res, out_dir, plots=plots, model_dir=model_dir)
        return res

    monkeypatch.setattr(pred, "predict", predict)
    d = tmp_path / "in"
    d.mkdir()
    tth = np.linspace(10, 80, 300)
    y = 100 * np.exp(-0.5 * ((tth[:, None] - np.array([27.4, 31.7, 45.5])) / 0.3) ** 2).sum(1) + 5
    (d / "nacl.xy").write_text(
        "# wavelength = 1.5406\n# 2theta intensity\n" + "".join(f"{a:.6g} {b:.6g}\n" for a, b in zip(tth, y))
    )
    (d / "model.pt").write_bytes(b"not read: the prediction is replaced")
    return SimpleNamespace(pattern=d / "nacl.xy", model=d / "model.pt", module=pred)


def _predict(fake, out, *extra, formula="NaCl"):
    return _cli(
        "predict", "crystalnet", fake.pattern, "--formula", formula, "--model-dir", fake.model, "-o", out, *extra
    )


@pytest.mark.parametrize("earlier", [False, True])
def test_predict_failing_midway_leaves_the_folder_as_it_was(fake_crystalnet, monkeypatch, tmp_path, earlier):
    # the isosurface plot fails after density.cube and density_slices.png are written
    _fail_on_call(monkeypatch, fake_crystalnet.module, "plot_isosurface", 1)
    out = tmp_path / "res" / "pred"
    before = None
    if earlier:
        assert _predict(fake_crystalnet, out, "--no-plots").exit_code == 0
        before = _snapshot(out)
    res = _predict(fake_crystalnet, out, *(["--overwrite"] if earlier else []))
    assert isinstance(res.exception, RuntimeError) and "plot_isosurface broke" in str(res.exception), res.output
    if earlier:
        assert _snapshot(out) == before and _siblings(out.parent) == ["pred"]
    else:
        assert _siblings(tmp_path) == ["in"]


def test_predict_overwrite_replaces_the_earlier_prediction_when_complete(fake_crystalnet, tmp_path):
    out = tmp_path / "pred"
    res = _predict(fake_crystalnet, out, "--no-plots")
    assert res.exit_code == 0, res.output
    assert _siblings(out) == ["decoded.cif", "density.cube", "prediction.json"]
    summary = json.loads((out / "prediction.json").read_text())
    # the paths the summary and the output name are those in OUT, not in the temporary folder
    assert summary["files"] == {"cube": str(out / "density.cube"), "cif": str(out / "decoded.cif")}
    assert f"wrote {out / 'density.cube'}" in res.output.replace("\n", "")
    assert ".partial-" not in res.output
    (out / "my_notes.txt").write_text("the user's own file\n")
    before = _snapshot(out)

    res = _predict(fake_crystalnet, out, formula="KCl")
    assert res.exit_code == 2 and "--overwrite" in res.output and "earlier run" in res.output, res.output
    assert _snapshot(out) == before

    res = _predict(fake_crystalnet, out, "--overwrite", formula="KCl")  # nothing decodes this time
    assert res.exit_code == 0, res.output
    assert _siblings(out) == [
        "density.cube",
        "density_isosurface.png",
        "density_slices.png",
        "my_notes.txt",
        "prediction.json",
    ]  # the earlier decoded.cif is gone, the user's file stays
    summary = json.loads((out / "prediction.json").read_text())
    assert summary["decoded"] is None and summary["formula"] == {"K": 1.0, "Cl": 1.0}
    assert all(Path(p).parent == out for p in summary["files"].values())
    assert _siblings(tmp_path) == ["in", "pred"]


# ----- demo --------------------------------------------------------------------------------------------
def test_demo_failing_midway_leaves_no_partial_folder(monkeypatch, tmp_path):
    import nanosolve.scattering.plot as plot

    def broken_plot(*args, **kwargs):
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(plot, "plot_patterns", broken_plot)  # after the structures and patterns are written
    out = tmp_path / "demo"
    out.mkdir()
    (out / "MgO_rocksalt.cif").write_text("earlier demo\n")
    res = _cli("demo", "-o", out)
    assert isinstance(res.exception, RuntimeError), res.output
    assert _snapshot(out) == {"MgO_rocksalt.cif": b"earlier demo\n"} and _siblings(tmp_path) == ["demo"]
