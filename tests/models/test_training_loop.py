"""The shared training loop (models/training.py) on a toy regression: state, resume, budget,
early stopping, metrics.csv, devices; the families' own tests cover it on the real models."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from nanosolve.errors import InputError
from nanosolve.models.training import Adapter, LoopState, Step, interleaved_batches, resolve_device, run_loop, shard


class Toy(torch.nn.Module):
    """y = w·x + b with a little MLP; ``loss`` adds noise from the global RNG (so resume must
    restore it) and returns named terms."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def loss(self, x, y, noise: float = 0.0):
        pred = self.net(x).squeeze(-1)
        if noise:
            pred = pred + noise * torch.randn_like(pred)
        mse = (pred - y).pow(2).mean()
        return {"loss": mse, "mse": mse, "abs": (pred - y).abs().mean()}


def toy_data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3


class ToyAdapter(Adapter):
    family = "toy"
    train_method = "loss"
    loss_keys = ("loss", "mse", "abs")
    unused_parameters = False

    def __init__(self, seed=0, lr=0.05, batch_size=8, noise=0.0, cut_epochs=False, sleep=0.0):
        torch.manual_seed(seed)
        self.model = Toy()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)
        self.x, self.y = toy_data()
        self.vx, self.vy = toy_data(8, seed=1)
        self.seed, self.batch_size, self.noise, self.cut_epochs, self.sleep = seed, batch_size, noise, cut_epochs, sleep

    def n_batches(self):
        return math.ceil(len(self.x) / self.batch_size)

    def batches(self, epoch, rank, world):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        for idx, n, n_global in interleaved_batches(order.tolist(), self.batch_size, rank, world):
            if self.sleep:
                import time

                time.sleep(self.sleep)
            yield Step((self.x[idx], self.y[idx]), n, n_global)

    def loss(self, call, batch, epoch):
        return call(*batch, noise=self.noise)

    def validate(self, epoch):
        with torch.no_grad():
            return {"val_loss": float(self.model.loss(self.vx, self.vy)["loss"])}

    def end_epoch(self, epoch, monitored):
        self.scheduler.step()


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_loss_falls_and_files_are_written(tmp_path):
    state = run_loop(ToyAdapter(), tmp_path, max_epochs=6, patience=10)
    assert state.stopped == "max_epochs" and state.epoch == 6 and len(state.history) == 6
    h = state.history
    assert h[-1]["train_loss"] < 0.5 * h[0]["train_loss"]
    assert [r["lr"] for r in h] == pytest.approx([0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])
    assert state.best_val == min(r["val_loss"] for r in h) and h[state.best_epoch]["val_loss"] == state.best_val
    assert {"best.pt", "last.pt", "history.json", "metrics.csv"} <= {p.name for p in tmp_path.iterdir()}
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    assert float(rows[3]["train_mse"]) == pytest.approx(h[3]["train_mse"])
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 6 and ckpt["train_seconds"] > 0 and all(t.device.type == "cpu" for t in ckpt["model"].values())


def test_resume_is_exact_and_metrics_rows_are_kept(tmp_path):
    full = run_loop(ToyAdapter(noise=0.1), tmp_path / "full", max_epochs=5, patience=10, seed=3)
    part = run_loop(ToyAdapter(noise=0.1), tmp_path / "part", max_epochs=2, patience=10, seed=3)
    assert part.epoch == 2 and len(list(csv.DictReader((tmp_path / "part" / "metrics.csv").open()))) == 2
    torch.manual_seed(999)  # the caller's RNG must not matter
    resumed = run_loop(ToyAdapter(noise=0.1), tmp_path / "part", max_epochs=5, patience=10, seed=3)
    assert _strip(resumed.history) == _strip(full.history)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = list(csv.DictReader((tmp_path / "part" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert json.loads((tmp_path / "part" / "history.json").read_text())[-1]["epoch"] == 4
    # resume=False starts again from epoch 0
    assert run_loop(ToyAdapter(noise=0.1), tmp_path / "part", max_epochs=1, patience=10, resume=False).epoch == 1


def test_checkpoint_of_the_earlier_layout_resumes(tmp_path):
    """last.pt files written before the typed loop state (no train_seconds) still resume."""
    run_loop(ToyAdapter(), tmp_path, max_epochs=2, patience=10)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    del ckpt["train_seconds"]
    torch.save(ckpt, tmp_path / "last.pt")
    state = run_loop(ToyAdapter(), tmp_path, max_epochs=3, patience=10)
    assert state.epoch == 3 and len(state.history) == 3
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert LoopState.from_checkpoint(ckpt).epoch == 3


def test_foreign_or_incomplete_checkpoint_is_refused(tmp_path):
    run_loop(ToyAdapter(), tmp_path, max_epochs=1, patience=10)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    torch.save({**ckpt, "format": 99}, tmp_path / "last.pt")
    with pytest.raises(InputError, match="not a nanosolve toy training checkpoint"):
        run_loop(ToyAdapter(), tmp_path, max_epochs=2, patience=10)
    del ckpt["history"]
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(InputError, match="incomplete training checkpoint"):
        run_loop(ToyAdapter(), tmp_path, max_epochs=2, patience=10)


def test_early_stopping_stays_finished(tmp_path):
    state = run_loop(ToyAdapter(lr=1e-12), tmp_path, max_epochs=50, patience=2)
    assert state.stopped == "early_stopping" and state.epoch == 3 and state.best_epoch == 0
    again = run_loop(ToyAdapter(lr=1e-12), tmp_path, max_epochs=50, patience=2)
    assert again.epoch == 3 and again.stopped == "early_stopping"


def test_budget_between_epochs_and_cut_epochs(tmp_path):
    assert run_loop(ToyAdapter(), tmp_path / "a", max_epochs=5, patience=10, max_minutes=0).epoch == 0
    # checked after every batch: the first batch runs past the budget, the cut epoch is discarded
    cut = run_loop(ToyAdapter(cut_epochs=True, sleep=0.05), tmp_path / "b", max_epochs=5, patience=10,
                   max_minutes=0.04 / 60)
    assert cut.stopped == "max_minutes" and cut.epoch == 0 and not (tmp_path / "b" / "last.pt").exists()
    # checked between epochs only: the running epoch completes
    whole = run_loop(ToyAdapter(sleep=0.05), tmp_path / "c", max_epochs=5, patience=10, max_minutes=0.04 / 60)
    assert whole.stopped == "max_minutes" and whole.epoch == 1


def test_devices_are_validated():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="--device: unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device: cuda is not available"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(InputError, match="--device: mps is not available"):
            resolve_device("mps")


def test_tensorboard_logging_or_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="tensorboard package is not installed"):
            run_loop(ToyAdapter(), tmp_path, max_epochs=1, patience=10, tensorboard=True)
        return
    run_loop(ToyAdapter(), tmp_path, max_epochs=2, patience=10, tensorboard=True)
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_interleaved_shards_cover_each_global_batch_once():
    order = list(range(11))
    per_rank = [list(interleaved_batches(order, 4, r, 3)) for r in range(3)]
    for b in range(3):  # global batches [0..3], [4..7], [8..10]
        got = sorted(i for r in range(3) for i, w in zip(per_rank[r][b][0], [per_rank[r][b][1]] * 9) if w)
        assert got == order[4 * b:4 * b + 4]
        assert {per_rank[r][b][2] for r in range(3)} == {len(order[4 * b:4 * b + 4])}
    # one sample for two ranks: rank 1 takes part with weight zero
    assert list(interleaved_batches([7], 4, 1, 2)) == [([7], 0, 1)]
    assert shard(5, 1, 2) == slice(1, 5, 2)


def test_budget_over_all_calls_keeps_the_last_epoch(tmp_path):
    """budget_minutes counts training + validation time of every call; the epoch that runs out
    ends early, is validated and kept, and the run stays stopped with 'budget'."""
    state = run_loop(ToyAdapter(sleep=0.05), tmp_path, max_epochs=5, patience=10, budget_minutes=0.04 / 60)
    assert state.stopped == "budget" and state.epoch == 1 and len(state.history) == 1
    assert 0.04 <= state.train_seconds < 1.0 and "val_loss" in state.history[0]
    again = run_loop(ToyAdapter(sleep=0.05), tmp_path, max_epochs=5, patience=10, budget_minutes=10.0)
    assert again.stopped == "budget" and again.epoch == 1  # a spent run stays finished


@pytest.mark.parametrize("family", ["deepstruc", "pxrdnet"])
def test_shipped_models_still_load(family):
    """The models shipped in the package (trained before the shared loop) load with their family's
    load_model, in eval mode, with every weight finite and the checkpoint's tensors all used."""
    import importlib
    from importlib import resources

    root = resources.files("nanosolve") / "data" / family
    dirs = [d for d in root.iterdir() if (d / "config.json").is_file()]
    assert dirs, f"no shipped {family} model"
    load_model = importlib.import_module(f"nanosolve.models.{family}.train").load_model
    for d in dirs:
        model, config = load_model(str(d))
        assert not model.training and config.to_dict()
        state = torch.load(str(d / "best.pt"), weights_only=True)
        assert set(state) == set(model.state_dict())
        assert all(torch.isfinite(v.float()).all() for v in model.state_dict().values())


# ---- the train commands' shared options -------------------------------------------------------
def _cli(*args):
    from typer.testing import CliRunner

    from nanosolve.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["cdvae", "x.csv"], ["pxrdnet", "--prototypes", "20"], ["deepstruc"],
                                     ["crystalnet", "data_dir"]])
def test_every_train_command_refuses_an_unavailable_device_before_any_work(command, tmp_path):
    out = tmp_path / "run"
    res = _cli("train", *command, "--out", out, "--device", "cuda")
    assert res.exit_code == 2 and "--device: cuda is not available" in res.output, res.output
    assert not out.exists()
    res = _cli("train", *command, "--out", out, "--device", "tpu")
    assert res.exit_code == 2 and "unknown device 'tpu'" in res.output


def test_run_folder_is_given_once(tmp_path):
    res = _cli("train", "cdvae", tmp_path / "a.csv")
    assert res.exit_code == 2 and "no run folder given: pass --out" in res.output
    res = _cli("train", "crystalnet", tmp_path / "d", tmp_path / "r1", "--out", tmp_path / "r2")
    assert res.exit_code == 2 and "given twice" in res.output
    res = _cli("train", "export", tmp_path / "run")
    assert res.exit_code == 2 and "no run folder given" in res.output
    res = _cli("predict", "crystalnet", tmp_path / "p.xy", "--formula", "NaCl", "--model", tmp_path / "a",
               "--model-dir", tmp_path / "b")
    assert res.exit_code == 2 and "given twice" in res.output


@pytest.mark.slow
def test_train_pxrdnet_cli_prepares_trains_and_resumes(tmp_path):
    """`nanosolve train pxrdnet`: the run preparation of models/pxrdnet/run.py (split, crystal
    list, pattern cache) and the loop's files; a rerun continues."""
    tiny = ["--set", "latent_dim=8", "--set", "enc_hidden=16", "--set", "dec_hidden=16", "--set", "head_hidden=16",
            "--set", "batch_size=8", "--threads", "1"]
    out = tmp_path / "run"
    res = _cli("train", "pxrdnet", "--prototypes", 14, "--max-atoms", 8, "-o", out, "--max-epochs", 1, *tiny)
    assert res.exit_code == 0, res.output
    assert "epoch 1/1  loss" in res.output  # output not a terminal: one plain line per epoch
    for name in ("config.json", "best.pt", "last.pt", "history.json", "metrics.csv", "split.json", "crystals.json",
                 "patterns.npy", "summary.json"):
        assert (out / name).is_file(), name
    split = json.loads((out / "split.json").read_text())
    crystals = json.loads((out / "crystals.json").read_text())
    assert sorted(i for part in split.values() for i in part) == list(range(len(crystals)))
    res = _cli("train", "pxrdnet", "--prototypes", 14, "--max-atoms", 8, "-o", out, "--max-epochs", 2, *tiny)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert "epoch 2/2  loss" in res.output and "epoch 1/2" not in res.output  # the resumed call trains epoch 2 only
    assert [int(r["epoch"]) for r in rows] == [0, 1] and json.loads((out / "summary.json").read_text())["epochs"] == 2
    res = _cli("train", "pxrdnet", "--prototypes", 14, "--max-atoms", 9, "-o", out, "--max-epochs", 2, *tiny)
    assert res.exit_code == 2 and "different settings" in res.output


@pytest.mark.slow
def test_train_quiet_prints_nothing_and_restores_the_console(tmp_path):
    from nanosolve.cli.common import console

    tiny = ["--set", "latent_dim=8", "--set", "enc_hidden=16", "--set", "dec_hidden=16", "--set", "head_hidden=16",
            "--set", "batch_size=8", "--threads", "1"]
    out = tmp_path / "run"
    res = _cli("train", "pxrdnet", "--prototypes", 14, "--max-atoms", 8, "-o", out, "--max-epochs", 1, "--quiet", *tiny)
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "" and (out / "best.pt").is_file()
    assert console.quiet is False  # the next command in this process prints again
