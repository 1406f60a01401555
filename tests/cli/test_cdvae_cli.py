"""``nanosolve train/generate/evaluate cdvae`` on real files; bad input → one error line, exit 2."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from nanosolve.cli.main import app
from nanosolve.structures.io import read_structure, write_cif

torch.set_num_threads(1)
runner = CliRunner()
TINY = ["--set", "latent_dim=8", "--set", "enc_hidden=16", "--set", "dec_hidden=16", "--set", "head_hidden=16",
        "--set", "n_rbf=8", "--set", "enc_layers=1", "--set", "dec_layers=1", "--set", "batch_size=4",
        "--set", "num_noise_level=5"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _crystals():
    from nanosolve.models.cdvae.data import prototype_table

    return prototype_table(max_atoms=6, n=14, seed=3).crystals


def _write_csv(path, crystals, tmp_path, with_cif=True):
    rows = []
    for k, c in enumerate(crystals):
        cif = write_cif(c, tmp_path / f"_c{k}.cif").read_text()
        rows.append({"material_id": f"m{k}", **({"cif": cif} if with_cif else {"structure": cif}),
                     "heat_ref": float(k) / 10})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cdvae_cli")
    data = _write_csv(tmp / "tiny.csv", _crystals(), tmp)
    out = tmp / "run"
    res = run("train", "cdvae", data, out, "--max-epochs", 2, "--split", "random", "--prop", "heat_ref", *TINY)
    assert res.exit_code == 0, res.output
    return tmp, data, out


def test_train_writes_checkpoints_and_resumes(trained):
    tmp, data, out = trained
    for name in ("config.json", "best.pt", "last.pt", "history.json", "split.json", "summary.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["max_atoms"] == 6 and cfg["props"] == ["heat_ref"]
    res = run("train", "cdvae", data, out, "--max-epochs", 3, "--split", "random", "--prop", "heat_ref", *TINY)
    assert res.exit_code == 0, res.output
    assert len(json.loads((out / "history.json").read_text())) == 3  # continued, not restarted
    res = run("train", "cdvae", data, out, "--max-epochs", 3, "--split", "random", *TINY[:-2])
    assert res.exit_code == 2 and "different settings" in res.output


def test_generate_writes_readable_cifs(trained):
    tmp, _, out = trained
    dest = tmp / "gen"
    res = run("generate", "cdvae", out, "-n", 3, "-o", dest, "--steps", 2)
    assert res.exit_code == 0, res.output
    cifs = sorted(dest.glob("*.cif"))
    assert len(cifs) == 3
    summary = json.loads((dest / "summary.json").read_text())
    for path, row in zip(cifs, summary["crystals"]):
        c = read_structure(path)
        assert 1 <= len(c) <= 6 and len(c) == row["n_atoms"]


def test_evaluate_recon_prints_and_writes_json(trained):
    tmp, data, out = trained
    res = run("evaluate", "cdvae", out, data, "--task", "recon", "-n", 3, "--steps", 2, "--json", tmp / "m.json")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp / "m.json").read_text())
    assert m["n"] == 3 and 0.0 <= m["match_rate"] <= 1.0 and "match_rate" in res.output
    res = run("evaluate", "cdvae", out, data, "--task", "recon", "-n", 2, "--steps", 1, "--type-mode", "composition",
              "--candidates", 3, "--stoichiometries", 2, "--json", tmp / "m3.json")
    assert res.exit_code == 0, res.output
    m3 = json.loads((tmp / "m3.json").read_text())
    assert m3["n"] == 2 and m3["candidates"] == 3 and m3["stoichiometries"] == 2 and m3["type_mode"] == "composition"
    res = run("evaluate", "cdvae", out, data, "--task", "recon", "-n", 2, "--steps", 1, "--candidates", 2,
              "--stoichiometries", 3)
    assert res.exit_code == 2 and "stoichiometries" in res.output


def test_bad_inputs_give_one_error_and_exit_2(trained, tmp_path):
    tmp, data, out = trained
    no_cif = _write_csv(tmp_path / "nocif.csv", _crystals()[:2], tmp_path, with_cif=False)
    res = run("train", "cdvae", no_cif, tmp_path / "r")
    assert res.exit_code == 2 and "cif" in res.output and "nocif.csv" in res.output

    big = _crystals()[0].supercell((2, 2, 2))  # > 6 atoms: more than the trained model allows
    big_csv = _write_csv(tmp_path / "big.csv", [big], tmp_path)
    res = run("evaluate", "cdvae", out, big_csv, "--task", "recon", "--steps", 1)
    assert res.exit_code == 2 and "at most 6" in res.output

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((out / "config.json").read_text())
    (broken / "best.pt").write_bytes(b"\x00garbage")
    res = run("generate", "cdvae", broken, "-n", 1, "-o", tmp_path / "g")
    assert res.exit_code == 2 and "best.pt" in res.output and "corrupt" in res.output
    assert "Traceback" not in res.output
