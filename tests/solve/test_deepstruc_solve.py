"""DeepStruc end to end: candidates, refinement, ranking, `nanosolve solve` / `nanosolve train deepstruc`."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nanosolve.cli.main import app
from nanosolve.models.deepstruc.pdf import cluster_pdf, default_r_grid
from nanosolve.paths import shared_data_dir
from nanosolve.solve import default_model_dir, example_pdf, solve_pdf
from nanosolve.solve.pdf_refine import FitSettings, rank, refine, rw
from nanosolve.structures.builders.clusters import decahedron, fcc_cluster, icosahedron
from nanosolve.structures.io import read_structure

SHARED = shared_data_dir() / "deepstruc_simulated" / "PDFs_simulated"
EXAMPLE = example_pdf()
runner = CliRunner()


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"shared DeepStruc PDFs not available ({path})")
    return path


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def _one_error(result) -> str:
    """The CLI refused with exit 2 and exactly one 'error:' line, no traceback."""
    text = result.output  # stdout and stderr (CliRunner mixes them)
    assert result.exit_code == 2, text
    assert text.count("error:") == 1, text
    assert "Traceback" not in text
    return " ".join(text.split())


# ---- refinement -----------------------------------------------------------------------------
def test_refine_recovers_scale_expansion_biso():
    p = decahedron("Au", p=3, q=2, r=0)
    r = default_r_grid(30.0, 3000)
    g = 2.5 * cluster_pdf(p.positions * 1.03, r=r, qmin=0.7, qmax=30.0, qdamp=0.04, biso=0.55)
    res = refine(p, r, g, FitSettings(rmax=30.0))
    assert res.scale == pytest.approx(2.5, rel=1e-4)
    assert res.expansion == pytest.approx(0.03, abs=1e-4)
    assert res.biso == pytest.approx(0.55, rel=1e-3)
    assert res.rw < 1e-4
    # the refined particle carries the expansion
    d0 = np.linalg.norm(p.positions[1] - p.positions[0])
    assert np.linalg.norm(res.particle.positions[1] - res.particle.positions[0]) == pytest.approx(1.03 * d0, rel=1e-4)


def test_refine_delta2_and_rw_definition():
    p = icosahedron("Pt", shells=3)
    r = default_r_grid(30.0, 3000)
    g = 0.8 * cluster_pdf(p.positions * 0.97, r=r, qmin=0.7, qmax=30.0, qdamp=0.04, biso=0.4, delta2=2.5)
    res = refine(p, r, g, FitSettings(rmax=30.0, refine_delta2=True))
    assert res.delta2 == pytest.approx(2.5, rel=1e-2)
    assert res.expansion == pytest.approx(-0.03, abs=1e-4)
    # Rw by hand
    assert rw([1.0, -1.0], [0.5, -1.0]) == pytest.approx(np.sqrt(0.25 / 2.0))


def test_fast_expanded_debye_matches_cluster_pdf():
    from nanosolve.solve.pdf_refine import _ExpandedDebye

    rng = np.random.default_rng(1)
    x = decahedron("Au", p=2, q=2, r=1).positions + 0.05 * rng.standard_normal((75, 3))  # all distances distinct
    r = default_r_grid(30.0, 3000)[100:]
    fast = _ExpandedDebye(x, r, FitSettings(qmin=0.7, qmax=30.0, qdamp=0.04))
    for eps, b in [(0.0, 0.4), (0.07, 0.9), (-0.12, 0.2)]:
        ref = cluster_pdf(x * (1 + eps), r=r, qmin=0.7, qmax=30.0, qdamp=0.04, biso=b)
        assert np.abs(fast(eps, b) - ref).max() < 1e-5 * np.abs(ref).max()


def test_rank_sees_only_data_and_candidates():
    assert list(inspect.signature(rank).parameters) == ["r", "g_obs", "candidates", "settings"]
    truth = icosahedron("Au", shells=3)  # 55 atoms
    wrong = fcc_cluster("Au", layers=(3, 3, 3))
    r = default_r_grid(30.0, 1500)
    g = cluster_pdf(truth.positions, r=r, qmin=0.7, qmax=30.0, qdamp=0.04, biso=0.4)
    ranked = rank(r, g, [wrong, truth], FitSettings(rmax=30.0))
    assert [x.candidate_index for x in ranked] == [1, 0]
    assert ranked[0].rw < 0.05 < ranked[1].rw


def test_solve_passes_only_data_and_candidates_to_rank(monkeypatch, tmp_path):
    import nanosolve.solve as solve_mod

    seen = {}
    real = solve_mod.rank

    def spy(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        return real(*args, **kwargs)

    monkeypatch.setattr(solve_mod, "rank", spy)
    solve_pdf(EXAMPLE, element="Au", k=2)
    r, g, cands, settings = seen["args"]
    from nanosolve.scattering.readers import read_pattern

    data = read_pattern(EXAMPLE)
    assert np.array_equal(r, data.x) and np.array_equal(g, data.y)
    assert all(c.properties["model"].startswith("deepstruc") for c in cands)
    assert not seen["kwargs"] and isinstance(settings, FitSettings)


# ---- solve ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Icosahedron_shell_3.gr", "FCC_h_3_k_6_l_7.gr"])
def test_solve_shared_pdfs_writes_outputs(name, tmp_path):
    path = _shared(name)
    out = tmp_path / "out"
    res = _invoke(["solve", path, "--element", "Au", "-k", "3", "-o", out])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    files = sorted(p.name for p in out.glob("*.xyz"))
    assert files[0].startswith("01_") and len(files) == len(summary["candidates"]) >= 1
    rws = [c["rw"] for c in summary["candidates"]]
    assert rws == sorted(rws) and all(np.isfinite(rws))
    assert (out / "fit.png").stat().st_size > 5000
    best = read_structure(out / files[0])
    assert len(best) == summary["candidates"][0]["n_atoms"] and set(best.species) == {"Au"}
    assert "Rw" in res.output


def test_solve_shipped_example_atom_count_and_rw(tmp_path):
    assert (default_model_dir() / "best.pt").is_file() and (default_model_dir() / "config.json").is_file()
    header = EXAMPLE.read_text().split("#### start data")[0]
    assert "SIMULATED" in header
    n_true = int(re.search(r"natoms = (\d+)", header).group(1))
    result = solve_pdf(EXAMPLE, element="Au", k=10, out_dir=tmp_path)
    best = result.ranked[0]
    assert abs(len(best.particle) - n_true) <= 0.1 * n_true, (len(best.particle), n_true)
    assert 0 <= best.rw < 0.5
    assert result.summary["best"]["rw"] == pytest.approx(best.rw)
    assert (tmp_path / "summary.json").is_file()


def test_solve_guesses_element_when_not_given():
    res = solve_pdf(EXAMPLE, k=1)
    assert res.summary["element_guessed"] and res.summary["element"] in ("Au", "Pt", "Ag", "Pd", "Ir", "Rh")


# ---- bad inputs -----------------------------------------------------------------------------
def _gr(path: Path, r, g, header: str = "") -> Path:
    path.write_text(header + "\n".join(f"{a:.5f} {b:.6e}" for a, b in zip(r, g)) + "\n")
    return path


@pytest.mark.parametrize("element, words", [("Xx", "unknown element"), ("O", "not a metal")])
def test_solve_bad_element(element, words, tmp_path):
    msg = _one_error(_invoke(["solve", EXAMPLE, "--element", element, "-o", tmp_path / "o"]))
    assert words in msg


def test_solve_bad_files(tmp_path):
    empty = tmp_path / "empty.gr"
    empty.write_text("")
    assert "empty" in _one_error(_invoke(["solve", empty, "-o", tmp_path / "o"]))

    xrd = tmp_path / "powder.xy"
    tth = np.linspace(10, 80, 500)
    xrd.write_text("# 2theta intensity\n" + "\n".join(f"{a:.3f} {100 + np.sin(a):.3f}" for a in tth))
    msg = _one_error(_invoke(["solve", xrd, "-o", tmp_path / "o"]))
    assert "formula" in msg and "powder" in msg  # a powder pattern goes to PXRDNet, which needs the formula

    sq = tmp_path / "data.sq"
    q = np.linspace(0.5, 25, 400)
    _gr(sq, q, 1 + 0.1 * np.sin(q))
    assert "not a PDF" in _one_error(_invoke(["solve", sq, "-o", tmp_path / "o"]))

    # data ending below the model's 30 Å are solved on the range they cover (DeepStruc input zero-padded)
    short = _gr(tmp_path / "short.gr", np.linspace(0, 10, 1000), np.sin(np.linspace(0, 10, 1000)))
    res = _invoke(["solve", short, "--element", "Au", "--source", "cvae", "-o", tmp_path / "short"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "short" / "summary.json").read_text())["fit_range"][1] == pytest.approx(10.0)

    assert "not found" in _one_error(_invoke(["solve", tmp_path / "missing.gr"]))


def test_solve_corrupted_checkpoint(tmp_path):
    bad = tmp_path / "model"
    bad.mkdir()
    shutil.copy(default_model_dir() / "config.json", bad / "config.json")
    (bad / "best.pt").write_bytes(b"\x00not a torch file" * 10)
    msg = _one_error(_invoke(["solve", EXAMPLE, "--element", "Au", "--model-dir", bad, "-o", tmp_path / "o"]))
    assert "corrupted" in msg and "best.pt" in msg


def test_model_grid_pads_data_that_do_not_cover_it(tmp_path):
    from nanosolve.models.deepstruc.sample import model_r_grid, pdf_on_model_grid
    from nanosolve.models.deepstruc.train import load_model
    from nanosolve.scattering.readers import read_pattern

    _, config = load_model(default_model_dir())
    r = np.linspace(2.0, 20.0, 500)
    path = _gr(tmp_path / "late_start.gr", r, np.sin(r))
    info = {}
    g = pdf_on_model_grid(read_pattern(path), config, info)
    grid = model_r_grid(config)
    assert info["padded_below"] == pytest.approx(2.0) and info["padded_above"] == pytest.approx(10.0)
    assert np.all(g[(grid < 1.9) | (grid > 20.1)] == 0)
    inside = (grid > 2.1) & (grid < 19.9)
    assert np.allclose(g[inside], np.sin(grid[inside]), atol=2e-3)


# ---- training CLI ---------------------------------------------------------------------------
TINY = ["--set", "encoder_widths=[16,16,8]", "--set", "decoder_widths=[16,16,16,16]",
        "--set", "encoder_pdf_widths=[16,16,8]", "--set", "prior_widths=[8,8]", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from nanosolve.models.deepstruc.data import generate

    path = tmp_path_factory.mktemp("ds") / "tiny.sqlite"
    generate(path, kind="paper", elements=("Au",), scales=(0.99, 1.0, 1.01, 1.02), layers=(2, 3, 4))
    return path


def test_train_cli_runs_and_resumes(tiny_store, tmp_path):
    out = tmp_path / "run"
    res = _invoke(["train", "deepstruc", "--data", tiny_store, "--out", out, "--max-epochs", "1", *TINY])
    assert res.exit_code == 0, res.output
    assert len(json.loads((out / "history.json").read_text())) == 1
    res = _invoke(["train", "deepstruc", "--data", tiny_store, "--out", out, "--max-epochs", "2", *TINY])
    assert res.exit_code == 0, res.output
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1]  # continued from last.pt, not restarted
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["extra"]["r_max"] == 30.0 and cfg["n_r"] == 300
    exp = tmp_path / "ship"
    res = _invoke(["train", "export", out, exp])
    assert res.exit_code == 0, res.output
    import torch

    state = torch.load(exp / "best.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


def test_train_cli_bad_inputs(tiny_store, tmp_path):
    assert "unknown preset" in _one_error(_invoke(["train", "deepstruc", "--data", tiny_store, "--preset", "gpu",
                                                   "--out", tmp_path / "a"]))
    bad = tmp_path / "b"
    bad.mkdir()
    (bad / "last.pt").write_bytes(b"garbage" * 20)
    msg = _one_error(_invoke(["train", "deepstruc", "--data", tiny_store, "--out", bad, "--max-epochs", "1", *TINY]))
    assert "corrupted" in msg and "last.pt" in msg
    assert "not found" in _one_error(_invoke(["train", "deepstruc", "--data", tmp_path / "nope.sqlite",
                                              "--out", tmp_path / "c"]))
