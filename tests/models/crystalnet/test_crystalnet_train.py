"""CrystalNet data set, training (falling loss, exact resume), evaluation pieces, prediction and CLI."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from typer.testing import CliRunner

from nanosolve.errors import InputError
from nanosolve.models.crystalnet import density as dens
from nanosolve.models.crystalnet import evaluate as ev
from nanosolve.models.crystalnet import metrics
from nanosolve.models.crystalnet.config import CrystalNetConfig
from nanosolve.models.crystalnet.dataset import build_dataset, load_dataset
from nanosolve.models.crystalnet.predict import index_cubic, parse_cell, parse_formula, predict
from nanosolve.models.crystalnet.train import grid_coords, load_model, predict_grids, train
from nanosolve.paths import shared_data_dir
from nanosolve.scattering.bragg import simulate_xrd
from nanosolve.scattering.readers import read_pattern
from nanosolve.scattering.writers import write_pattern
from nanosolve.structures.crystal import Crystal

torch.set_num_threads(1)
SHARED_DATA = shared_data_dir()


def _tiny_cfg(**kw):
    base = dict(latent_dim=16, dense_growth=4, dense_blocks=(1, 1), dense_stem=8, formula_widths=(32,),
                fusion_width=32, fourier_features=32, pos_width=32, hidden=48, n_layers=4, skip_every=2, lr=3e-3,
                batch_size=4, points_per_crystal=256, val_points=512, restart_epochs=4, max_epochs=50)
    base.update(kw)
    return CrystalNetConfig.cpu(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """~20 cubic crystals from the first AFLOW prototypes (+1 substitution each); no shared data needed."""
    root = tmp_path_factory.mktemp("cn_data")
    return build_dataset(root, "cubic", cdvae_dir=None, use_prototypes=True, max_prototypes=12, n_substitutions=1,
                         max_atoms=16, fractions=(0.6, 0.2, 0.2), seed=0)
    # 12 crystals: 7 train, 3 val, 2 test


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cn_run")
    torch.manual_seed(0)
    # one cosine cycle; 2 crystals × 512 points per step: ~4 steps per epoch on the ~7 training crystals
    res = train(_tiny_cfg(batch_size=2, points_per_crystal=512, restart_epochs=40), data, out, max_epochs=40, seed=0,
                resume=False)
    return res


def _sg(sg, lattice, species, coords) -> Crystal:
    return Crystal.from_pymatgen(Structure.from_spacegroup(sg, lattice, species, coords))


# ----- data set -------------------------------------------------------------------------------
def test_dataset_contents_and_grouped_split(data):
    assert len(data) >= 12
    assert data.xrd.shape == (len(data), 1024) and data.comp.shape == (len(data), 118)
    np.testing.assert_allclose(data.xrd.max(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(data.comp.sum(axis=1), 1.0, rtol=1e-5)
    parts = {k: set(v.tolist()) for k, v in data.split.items()}
    assert set().union(*parts.values()) == set(range(len(data)))
    assert sum(len(v) for v in parts.values()) == len(data)  # disjoint
    formulas = {k: {data.records[i]["reduced_formula"] for i in v} for k, v in parts.items()}
    assert not formulas["train"] & formulas["val"]
    assert not formulas["train"] & formulas["test"]
    assert not formulas["val"] & formulas["test"]
    assert len(parts["val"]) > 0 and len(parts["test"]) > 0
    for i in range(0, len(data), 5):
        c = data.crystal(i)
        assert c.symmetry(symprec=0.1).crystal_system == "cubic"
        rho = data.density(i)
        assert rho.shape == (50, 50, 50) and rho.dtype == np.float32
        n_e = float(np.sum(c.atomic_numbers * c.occupancies))
        assert abs(dens.electron_count(rho, c.lattice) / n_e - 1) < 0.01
    again = load_dataset(data.root)
    assert again.records == data.records and np.array_equal(again.xrd, data.xrd)


def test_dataset_from_cdvae_csv_dedups_and_filters(tmp_path):
    src = SHARED_DATA / "cdvae" / "perov_5" / "val.csv"
    if not src.is_file():
        pytest.skip(f"shared CDVAE data not found at {src}")
    csv.field_size_limit(sys.maxsize)
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    from nanosolve.models.crystalnet.dataset import standardize

    cubic = [r for r in rows[:120] if standardize(Structure.from_str(r["cif"], fmt="cif"), "cubic") is not None]
    other = [r for r in rows[:120] if r not in cubic][:3]
    assert len(cubic) >= 4
    folder = tmp_path / "cdvae" / "perov_5"
    folder.mkdir(parents=True)
    keep = cubic[:4] + [cubic[0]] + other  # one duplicate, three non-cubic
    with open(folder / "val.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(keep)
    d = build_dataset(tmp_path / "ds", "cubic", cdvae_dir=tmp_path / "cdvae", use_prototypes=False)
    assert len(d) == 4 and d.meta["skipped"]["duplicate"] == 1
    assert all(r["source"].startswith("perov_5/val:") for r in d.records)
    with pytest.raises(InputError, match="unknown crystal system"):
        build_dataset(tmp_path / "x", "hexagonal")


def test_set_origin_moves_heaviest_atom_and_rolls_density():
    from nanosolve.models.crystalnet.dataset import set_origin

    sto = _sg("Pm-3m", Lattice.cubic(3.905), ["Ti", "Sr", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])
    moved = set_origin(sto, "heaviest")
    np.testing.assert_allclose(moved.frac_coords[np.array(moved.species) == "Sr"][0] % 1.0, 0.0, atol=1e-9)
    # the density of the translated cell is the original grid rolled by half a cell (25 voxels)
    np.testing.assert_allclose(dens.procrystal_density(moved), np.roll(dens.procrystal_density(sto), -25, axis=(0, 1, 2)),
                               rtol=1e-6, atol=1e-6)
    assert set_origin(sto, "standard") is sto
    with pytest.raises(InputError, match="origin"):
        set_origin(sto, "centre")


# ----- training -------------------------------------------------------------------------------
def test_training_loss_falls(trained):
    h = trained.history
    assert len(h) == 40 and trained.stopped == "max_epochs"
    first, last = np.mean([r["train_l1"] for r in h[:3]]), np.mean([r["train_l1"] for r in h[-3:]])
    print(f"train L1 first 3 epochs {first:.4f} -> last 3 {last:.4f}; val L1 {h[0]['val_l1']:.4f} -> {h[-1]['val_l1']:.4f}")
    assert last < 0.8 * first
    assert h[-1]["lr"] < 0.1 * h[0]["lr"]  # the cosine schedule ran down
    assert min(r["val_l1"] for r in h) < h[0]["val_l1"]
    assert all(r["train_kl"] >= 0 for r in h)
    assert trained.config.extra["density_scale"] > 0
    files = {p.name for p in trained.out_dir.iterdir()}
    assert {"config.json", "best.pt", "last.pt", "history.json"} <= files


def test_resume_after_interruption_is_exact(data, tmp_path):
    cfg = _tiny_cfg(patience=100)
    straight = train(cfg, data, tmp_path / "a", max_epochs=4, seed=3, resume=False)
    cfg2 = _tiny_cfg(patience=100)
    part = train(cfg2, data, tmp_path / "b", max_epochs=2, seed=3, resume=False)
    assert part.epochs == 2
    torch.manual_seed(12345)  # the resumed run must not depend on the caller's RNG state
    resumed = train(_tiny_cfg(patience=100), data, tmp_path / "b", max_epochs=4, seed=3, resume=True)
    assert resumed.epochs == 4
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_model_and_corrupt_checkpoint(trained, tmp_path):
    model, cfg = load_model(trained.out_dir)
    assert cfg == trained.config and not model.training
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((trained.out_dir / "config.json").read_text())
    (bad / "best.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="best.pt"):
        load_model(bad)


def test_predict_grids_matches_pointwise_forward(trained, data):
    """The shared-embedding full-grid path equals the plain forward pass at the same voxels."""
    model = trained.model
    i = int(data.split["test"][0])
    grid = predict_grids(model, data.xrd[i], data.comp[i])[0]
    rng = np.random.default_rng(0)
    ijk = rng.integers(0, 50, (40, 3))
    with torch.no_grad():
        direct = model(torch.tensor(data.xrd[i][None]), torch.tensor(data.comp[i][None]),
                       torch.tensor(ijk[None] / 50.0, dtype=torch.float32), sample=False)[0].numpy()
    np.testing.assert_allclose(grid[tuple(ijk.T)], direct, rtol=1e-4, atol=1e-6)
    assert grid_coords(50).shape == (1, 125000, 3)
    torch.manual_seed(0)
    s = predict_grids(model, data.xrd[i], data.comp[i], n_samples=3)
    assert s.shape == (1, 3, 50, 50, 50)


# ----- evaluation -----------------------------------------------------------------------------
def test_fast_ssim_equals_skimage_and_search():
    rng = np.random.default_rng(2)
    truth = rng.random((50, 50, 50)) ** 8 * 300
    pred = truth + rng.normal(0, 3, truth.shape)
    ref = metrics.SSIMReference(truth)
    assert ref.ssim(pred) == pytest.approx(metrics.ssim3d(pred, truth), abs=1e-6)
    assert ref.psnr(pred) == pytest.approx(metrics.psnr3d(pred, truth), rel=1e-9)
    assert ref.ssim(truth) == pytest.approx(1.0, abs=1e-9)
    rot = metrics.cube_rotations()[7]
    rotated = metrics.rotate_grid(truth, rot)
    noisy = np.stack([rotated + rng.normal(0, 20, truth.shape), rotated])  # sample 1 is the exact copy
    match, k = metrics.best_over_rotations_and_samples(noisy, truth)
    assert k == 1 and match.ssim == pytest.approx(1.0, abs=1e-9)


def test_ablation_vectors_and_rwp():
    comp = np.zeros(118)
    comp[[7, 21, 37]] = [0.6, 0.2, 0.2]
    np.testing.assert_allclose(ev.ratios_removed(comp)[[7, 21, 37]], 1 / 3)
    dropped = ev.element_dropped(comp, np.random.default_rng(0))
    assert (dropped > 0).sum() == 2 and dropped.sum() == pytest.approx(1.0)
    one = np.zeros(118)
    one[5] = 1.0
    assert ev.element_dropped(one, np.random.default_rng(0)) is None
    y = np.exp(-((np.arange(200) - 80) / 5.0) ** 2)
    assert ev.rwp(y, 3.0 * y) == pytest.approx(0.0, abs=1e-12)  # scale-free
    assert ev.rwp(y, np.roll(y, 30)) > 0.5


def test_decode_true_density_matches():
    nacl = _sg("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    res = ev.decode_and_score(dens.procrystal_density(nacl), nacl)
    assert res["match"] and res["species_ok"] and res["rwp"] < 0.02
    shifted = Crystal(nacl.lattice, nacl.frac_coords, ["Cl", "Na"] * 4)  # Na/Cl swapped on half the sites
    res2 = ev.decode_and_score(dens.procrystal_density(shifted), nacl)
    assert not res2["match"] and res2["rwp"] > 0.1


def test_evaluate_model_small(trained, data):
    idx = data.split["test"][:2]
    res = ev.evaluate_model(trained.model, data, idx, n_samples=2)
    assert res["n"] == 2 and res["part"] == "test"
    s = res["summary"]
    assert set(s) == set(ev.ROWS)
    for name in ev.ROWS:
        assert -1 <= s[name]["ssim"]["mean"] <= 1 and 0 <= s[name]["site_recall"]["mean"] <= 1
    # the controls score as they must, whatever the model: nothing decodes from a zero map, the mean
    # map has a zero residual (no correlation, no skill over itself)
    assert s["zero_map"]["site_recall"]["mean"] == 0 and s["zero_map"]["site_precision"]["mean"] == 0
    assert s["zero_map"]["corr"]["mean"] == 0 and s["zero_map"]["rel_l1"]["mean"] == pytest.approx(1.0)
    assert s["mean_map"]["corr_res"]["mean"] == 0 and s["mean_map"]["skill"]["mean"] == pytest.approx(0.0)
    assert all(r["best_fit_choice"] in (0, 1, 2) for r in res["rows"])  # posterior mean or one of 2 draws
    # shuffled control: every crystal gets another evaluated crystal's pattern, each pattern used once
    assert all(r["shuffled_from"] != r["index"] for r in res["rows"])
    assert sorted(r["shuffled_from"] for r in res["rows"]) == sorted(int(i) for i in idx)
    gap = res["gap"]["model_mean"]["ssim_res"]
    assert gap["gap"] == pytest.approx(s["model_mean"]["ssim_res"]["mean"] - gap["control"])
    assert gap["control"] == max(s[c]["ssim_res"]["mean"] for c in ev.CONTROLS)
    assert res["decoder_ceiling"]["match_rate"] == 1.0  # decoding the true maps always works
    table = ev.format_table(res, "cubic")
    assert "control: all-zero map" in table and "gap: model, posterior mean − best control" in table


def test_by_source_groups_rows():
    rows = [{"source": "perov_5/val", "model_mean_ssim": 0.9, "mean_map_ssim": 0.7},
            {"source": "perov_5/test", "model_mean_ssim": 0.7, "mean_map_ssim": float("nan")},
            {"source": "aflow", "model_mean_ssim": 0.5, "mean_map_ssim": 0.3}]
    groups = ev.by_source({"rows": rows})
    assert list(groups) == ["aflow", "perov_5"]
    assert groups["perov_5"]["n"] == 2
    assert groups["perov_5"]["model_mean"]["ssim"] == pytest.approx(0.8)
    assert groups["perov_5"]["mean_map"]["ssim"] == pytest.approx(0.7)  # NaN rows left out


# ----- prediction and CLI ---------------------------------------------------------------------
def test_parse_formula_and_cell():
    assert parse_formula("SrTiO3") == {"Sr": 1.0, "Ti": 1.0, "O": 3.0}
    assert parse_formula("Na:0.5, Cl:0.5") == {"Na": 0.5, "Cl": 0.5}
    for bad in ("", "Xx2O", "Na:-1"):
        with pytest.raises(InputError):
            parse_formula(bad)
    np.testing.assert_allclose(np.diag(parse_cell("4.1")), 4.1)
    with pytest.raises(InputError):
        parse_cell("4, 4")


@pytest.mark.parametrize("sg,a,species,coords", [
    ("Fm-3m", 5.64, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("Pm-3m", 4.11, ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("Pm-3m", 3.905, ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]),
])
def test_index_cubic(sg, a, species, coords):
    c = _sg(sg, Lattice.cubic(a), species, coords)
    pat = simulate_xrd(c, "CuKa", two_theta_range=(10, 100))
    assert index_cubic(pat) == pytest.approx(a, rel=2e-3)


@pytest.fixture(scope="module")
def pattern_file(tmp_path_factory):
    c = _sg("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    p = tmp_path_factory.mktemp("pat") / "nacl.xy"
    write_pattern(simulate_xrd(c, "CuKa", two_theta_range=(10, 100)), p)
    return p


def test_predict_cli_writes_files(trained, pattern_file, tmp_path):
    from nanosolve.cli.main import app

    out = tmp_path / "pred"
    r = CliRunner().invoke(app, ["predict", "crystalnet", str(pattern_file), "--formula", "Na4Cl4", "--model",
                                 str(trained.out_dir), "-o", str(out), "-w", "CuKa"])
    assert r.exit_code == 0, r.output
    for name in ("density.cube", "density_slices.png", "density_isosurface.png", "prediction.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "prediction.json").read_text())
    assert "indexed" in " ".join(summary["notes"]) and abs(summary["lattice"][0][0] - 5.64) < 0.02
    # the cube round-trips through the density reader in e⁻/Å³
    res = predict(trained.out_dir, read_pattern(pattern_file, wavelength="CuKa"), "Na4Cl4", cell="5.64")
    back, _ = dens.read_density(out / "density.cube")
    np.testing.assert_allclose(back, res.density, rtol=1e-4, atol=1e-6 * res.density.max())
    if summary["decoded"] is not None:
        assert (out / "decoded.cif").is_file()
        assert sorted(set(summary["decoded"]["species"])) <= ["Cl", "Na"]


def test_predict_cli_errors(trained, pattern_file, tmp_path):
    from nanosolve.cli.main import app

    run = CliRunner().invoke
    base = ["predict", "crystalnet"]
    model = ["--model", str(trained.out_dir), "-o", str(tmp_path / "o"), "-w", "CuKa"]
    r = run(app, base + [str(pattern_file)] + model)
    assert r.exit_code == 2 and "no composition" in r.output
    r = run(app, base + [str(pattern_file), "--formula", "Qq2O"] + model)
    assert r.exit_code == 2 and "Qq" in r.output
    empty = tmp_path / "empty.xy"
    empty.write_text("# nothing\n")
    r = run(app, base + [str(empty), "--formula", "NaCl"] + model)
    assert r.exit_code == 2 and "empty.xy" in r.output
    bare = tmp_path / "bare.xy"  # 2θ columns, no wavelength in the file or on the command line
    pat = read_pattern(pattern_file, wavelength="CuKa")
    np.savetxt(bare, np.column_stack([pat.x, pat.y]))
    r = run(app, base + [str(bare), "--formula", "NaCl", "--x-unit", "tth", "--model", str(trained.out_dir), "-o",
                         str(tmp_path / "o")])
    assert r.exit_code == 2 and "wavelength" in r.output
    bad = tmp_path / "badmodel"
    bad.mkdir()
    (bad / "config.json").write_text((trained.out_dir / "config.json").read_text())
    (bad / "best.pt").write_bytes(b"\x00garbage")
    r = run(app, base + [str(pattern_file), "--formula", "NaCl", "--model", str(bad), "-o", str(tmp_path / "o"), "-w", "CuKa"])
    assert r.exit_code == 2 and "corrupted" in r.output and "best.pt" in r.output


def test_train_cli_runs_and_refuses_bad_input(data, tmp_path):
    from nanosolve.cli.main import app

    run = CliRunner().invoke
    r = run(app, ["train", "crystalnet", str(data.root), str(tmp_path / "run"), "--max-epochs", "1", "--set",
                  "latent_dim=8", "--set", "dense_blocks=[1]", "--set", "hidden=16", "--set", "points_per_crystal=64",
                  "--set", "val_points=64"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "best.pt").is_file()
    r = run(app, ["train", "crystalnet", str(data.root), str(tmp_path / "run2"), "--system", "trigonal"])
    assert r.exit_code == 2 and "cubic" in r.output
    r = run(app, ["train", "crystalnet", str(data.root), str(tmp_path / "run3"), "--preset", "huge"])
    assert r.exit_code == 2 and "preset" in r.output
