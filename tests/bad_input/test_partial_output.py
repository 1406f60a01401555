"""No partial output: a ``solve`` that fails midway leaves its output folder as it was (absent, or
holding the earlier results), a checkpoint or cache save that is interrupted leaves the previous
file intact, and no temporary file or folder stays behind in either case."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cases import make_earlier_run  # noqa: E402

EARLIER = sorted(["01_Au13.xyz", "02_Au55.xyz", "fit.png", "fit.gr", "summary.json", "my_notes.txt"])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _siblings(folder: Path) -> list[str]:
    """Entries beside the input files that a run may have left (temporary folders included)."""
    return sorted(p.name for p in folder.iterdir())


# ----- nanosolve._io.staged_folder -------------------------------------------------------------------------
def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    from nanosolve._io import staged_folder

    out = tmp_path / "a" / "b" / "res"
    with pytest.raises(RuntimeError), staged_folder(out) as work:
        assert work.parent == out.parent and work.is_dir() and not out.exists()
        (work / "01_x.xyz").write_text("candidate\n")
        raise RuntimeError("late failure")
    assert list(tmp_path.iterdir()) == []  # the temporary folder and the parents made for it are gone
    with staged_folder(out) as work:
        (work / "01_x.xyz").write_text("candidate\n")
        (work / "sub").mkdir()
        assert not out.exists()  # nothing visible before the block ends
    assert sorted(p.name for p in out.iterdir()) == ["01_x.xyz", "sub"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["res"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # as a plain mkdir, not mkdtemp's 0700


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_staged_folder_replaces_only_the_stale_files(tmp_path):
    from nanosolve._io import staged_folder
    from nanosolve.cli.common import earlier_run_files

    folder = tmp_path / "res"
    make_earlier_run(folder)
    before = _snapshot(folder)
    with pytest.raises(KeyboardInterrupt), staged_folder(folder, stale=earlier_run_files) as work:
        (work / "01_Pt13.xyz").write_text("new\n")
        raise KeyboardInterrupt  # Ctrl-C midway: the earlier results stay
    assert _snapshot(folder) == before and _siblings(tmp_path) == ["res"]
    with staged_folder(folder, stale=earlier_run_files) as work:
        (work / "01_Pt13.xyz").write_text("new\n")
        (work / "summary.json").write_text(json.dumps({"candidates": [{"rank": 1, "file": "01_Pt13.xyz"}]}))
    assert sorted(p.name for p in folder.iterdir()) == ["01_Pt13.xyz", "my_notes.txt", "summary.json"]
    assert (folder / "my_notes.txt").read_text() == "the user's own file\n"
    assert _siblings(tmp_path) == ["res"]


def test_staged_folder_puts_everything_back_when_a_move_fails(tmp_path, monkeypatch):
    import nanosolve._io as io

    folder = tmp_path / "res"
    make_earlier_run(folder)
    before = _snapshot(folder)
    real_replace, calls = os.replace, []

    def flaky_replace(src, dst):
        calls.append(dst)
        if Path(dst).parent == folder and Path(dst).name == "02_new.xyz":  # the second new file
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", flaky_replace)
    from nanosolve.cli.common import earlier_run_files

    with pytest.raises(OSError, match="No space"), io.staged_folder(folder, stale=earlier_run_files) as work:
        for name in ("01_new.xyz", "02_new.xyz", "summary.json"):
            (work / name).write_text("new\n")
    assert _snapshot(folder) == before, "the earlier results must be restored"
    assert _siblings(tmp_path) == ["res"]
    assert len(calls) > 6  # the earlier files were moved aside before the failure


# ----- the solve command ----------------------------------------------------------------------------------
@pytest.fixture()
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    r = np.arange(0.5, 30, 0.01)
    g = np.exp(-r / 10) * np.sin(2 * math.pi * r / 2.88)
    (d / "au.gr").write_text("# r G\n" + "".join(f"{a:.6g} {b:.6g}\n" for a, b in zip(r, g)))
    tth = np.linspace(10, 80, 300)
    y = 100 * np.exp(-0.5 * ((tth[:, None] - np.array([30.0, 45.0, 60.0])) / 0.3) ** 2).sum(1) + 5
    (d / "sto.xy").write_text(
        "# wavelength = 1.5406\n# 2theta intensity\n" + "".join(f"{a:.6g} {b:.6g}\n" for a, b in zip(tth, y))
    )
    return d


def _fake_solve(fail: bool, names=("01_Pt13.xyz", "02_Pt55.xyz")):
    """A solve that writes candidates into its out_dir, then fails (a late stage raising) or finishes."""

    def run(*args, out_dir=None, **kwargs):
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for n in names:
            (out / n).write_text("candidate\n")
        if fail:
            raise RuntimeError("the report stage broke")
        cand = {
            "rank": 1,
            "source": "library",
            "motif": "icosahedron",
            "n_atoms": 13,
            "diameter_nm": 0.7,
            "lattice_a": 3.92,
            "biso": 0.4,
            "rw": 0.3,
            "rw_positions": None,
            "at_bound": [],
            "sanity": {"plausible": True},
            "file": names[0],
        }
        summary = {
            "answer": cand,
            "motif_comparison": [],
            "candidates": [cand],
            "fit_plot": "fit.png",
            "seconds": 0.1,
            "element": "Pt",
            "element_guessed": False,
            "fit_range": [1.0, 30.0],
            "n_library": 1,
            "n_cvae": 0,
        }
        (out / "summary.json").write_text(json.dumps(summary))
        return SimpleNamespace(summary=summary, ranked=[])

    return run


def _solve(args):
    from typer.testing import CliRunner

    from nanosolve.cli.main import app

    return CliRunner().invoke(app, args, catch_exceptions=True)


@pytest.mark.parametrize("earlier", [False, True])
def test_pdf_solve_failing_midway_leaves_no_partial_folder(inputs, monkeypatch, earlier):
    import nanosolve.solve

    monkeypatch.setattr(nanosolve.solve, "solve_pdf", _fake_solve(fail=True))
    out = inputs / "res"
    before = None
    if earlier:
        make_earlier_run(out)
        before = _snapshot(out)
    res = _solve(
        ["solve", str(inputs / "au.gr"), "-e", "Pt", "-o", str(out), "-q"] + (["--overwrite"] if earlier else [])
    )
    assert isinstance(res.exception, RuntimeError), res.output
    if earlier:
        assert _snapshot(out) == before  # the earlier results, untouched
    else:
        assert not out.exists()
    assert _siblings(inputs) == sorted(["au.gr", "sto.xy"] + (["res"] if earlier else []))


def test_pdf_solve_with_overwrite_replaces_the_earlier_results_when_it_succeeds(inputs, monkeypatch):
    import nanosolve.solve

    monkeypatch.setattr(nanosolve.solve, "solve_pdf", _fake_solve(fail=False))
    out = inputs / "res"
    make_earlier_run(out)
    res = _solve(["solve", str(inputs / "au.gr"), "-e", "Pt", "-o", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["01_Pt13.xyz", "02_Pt55.xyz", "my_notes.txt", "summary.json"]
    assert _siblings(inputs) == ["au.gr", "res", "sto.xy"]
    assert f"into {out}/" in " ".join(res.output.split())  # the message names OUT, not the staging folder


def test_powder_solve_failing_midway_leaves_no_partial_folder(inputs, monkeypatch):
    import nanosolve.solve.pxrd

    monkeypatch.setattr(nanosolve.solve.pxrd, "solve_pxrd", _fake_solve(fail=True, names=("01_SrTiO3_pxrdnet.cif",)))
    out = inputs / "deep" / "res"
    res = _solve(["solve", str(inputs / "sto.xy"), "-f", "SrTiO3", "-o", str(out), "-k", "2"])
    assert isinstance(res.exception, RuntimeError), res.output
    assert _siblings(inputs) == ["au.gr", "sto.xy"]  # neither res nor the parent made for it


def test_refused_overwrite_run_keeps_the_earlier_results(inputs):
    """A run refused before any work (bad element) with --overwrite: the earlier results stay."""
    out = inputs / "res"
    make_earlier_run(out)
    before = _snapshot(out)
    res = _solve(["solve", str(inputs / "au.gr"), "-e", "O", "-o", str(out), "--overwrite"])
    assert res.exit_code == 2, res.output
    assert _snapshot(out) == before and sorted(before) == EARLIER
    assert _siblings(inputs) == ["au.gr", "res", "sto.xy"]


# ----- checkpoints and caches ---------------------------------------------------------------------------
def _half_written_save(real_save):
    """torch.save that writes part of the file and then fails (a full disk, a kill)."""

    def save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    return save


def test_interrupted_checkpoint_save_keeps_the_previous_one(tmp_path, monkeypatch):
    import torch

    from nanosolve.models.checkpoints import atomic_torch_save, load_checkpoint

    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 3, "w": torch.ones(4)}, path)
    monkeypatch.setattr(torch, "save", _half_written_save(torch.save))
    with pytest.raises(OSError, match="No space"):
        atomic_torch_save({"epoch": 4, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_interrupted_training_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    """The training loop's own save (last.pt through atomic_torch_save): same guarantee."""
    import torch

    from nanosolve.models import training
    from nanosolve.models.checkpoints import atomic_torch_save

    atomic_torch_save({"epoch": 1}, tmp_path / "last.pt")
    monkeypatch.setattr(torch, "save", _half_written_save(torch.save))
    assert training.atomic_torch_save is atomic_torch_save
    with pytest.raises(OSError):
        training.atomic_torch_save({"epoch": 2}, tmp_path / "last.pt")
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_two_writers_of_one_checkpoint_use_their_own_temporary_files(tmp_path, monkeypatch):
    """The temporary name is unique per save (not per process), so two saves cannot share one."""
    import torch

    from nanosolve.models.checkpoints import atomic_torch_save

    seen, real_save = [], torch.save

    def recording_save(obj, f, *args, **kwargs):
        seen.append(Path(f))
        assert Path(f).parent == tmp_path and Path(f).name.startswith(".best.pt.") and Path(f).suffix == ".pt"
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", recording_save)
    atomic_torch_save({"a": 1}, tmp_path / "best.pt")
    atomic_torch_save({"a": 2}, tmp_path / "best.pt")
    assert len(set(seen)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_interrupted_cache_saves_leave_no_temporary_files(tmp_path, monkeypatch):
    """The numpy caches (CrystalNet densities, PXRDNet patterns) and the JSON / CSV run files."""
    from nanosolve.models.checkpoints import atomic_json
    from nanosolve.models.crystalnet import density

    (tmp_path / "index.json").write_text('{"old": true}\n')

    def broken_save(f, arr, *args, **kwargs):
        Path(f).write_bytes(b"\x93NUMPY half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(density.np, "save", broken_save)
    from nanosolve.structures.builders.chili_types import build_chili_crystal

    with pytest.raises(OSError):
        density.density_cache(build_chili_crystal("rocksalt", "Mg"), tmp_path / "cache", n=(8, 8, 8))
    assert list((tmp_path / "cache").iterdir()) == []
    import nanosolve._io

    def failing_replace(src, dst):  # the rename at the end fails (a full disk, a read-only mount)
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(nanosolve._io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="Read-only"):
        atomic_json({"new": True}, tmp_path / "index.json")
    monkeypatch.undo()
    assert (tmp_path / "index.json").read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "index.json"]
