"""DeepStruc command: ``nanosolve train deepstruc`` (registered in the table of :mod:`nanosolve.cli.train`).

Trains the DeepStruc CVAE / DAE (PDF -> cluster structure) on a generated or stored cluster set.
Lengths and r in Å.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from nanosolve.cli.common import EPOCHS, SEED, THREADS, console, friendly_errors, parse_overrides
from nanosolve.cli.progress import mute
from nanosolve.cli.train_options import (
    DEVICE_HELP,
    MAX_MINUTES_HELP,
    QUIET_HELP,
    TENSORBOARD_HELP,
    check_device,
    check_max_minutes,
    epoch_ticker,
    finish,
    progress_bars,
    say,
)
from nanosolve.errors import InputError

PRESETS = ("cpu", "paper")  # as nanosolve.models.deepstruc.run (not imported: keeps the CLI start fast)
SPLITS = ("paper", "grouped", "geometry")


def make_config(kind: str, preset: str, overrides: dict, r_max: float):
    """DeepStrucConfig from a preset name + overrides (:func:`nanosolve.models.deepstruc.run.make_config`)."""
    from nanosolve.models.deepstruc.run import make_config as _make

    return _make(kind, preset, overrides, r_max)


@friendly_errors
def train_cmd(
    ctx: typer.Context,
    kind: str = typer.Option("cvae", help="cvae (the paper's model) or dae (deterministic baseline)"),
    preset: str = typer.Option("cpu", help="cpu (converges in minutes on a laptop) or paper (Adam 5e-5, 3,000-point PDF)"),
    data: str = typer.Option("generate", help="a DeepStruc data set file (nanosolve GraphStore) or 'generate'"),
    data_kind: str = typer.Option("paper", help="with --data generate: paper (FCC < 100 atoms) or extended"),
    data_max_atoms: int = typer.Option(None, min=2, max=1000, help="with --data generate: largest cluster (paper: < 100, extended: <= 200)"),
    elements: str = typer.Option(None, help="with --data generate: comma-separated metals (default all 29 d-block)"),
    data_seed: int = typer.Option(0, **SEED, help="seed of the generated set (ADP / delta2 draws)"),
    split: str = typer.Option("paper", help="paper (random, the paper's proportions), grouped (by builder label) "
                                          "or geometry (by geometry: labels cutting the same cluster merged)"),
    split_seed: int = typer.Option(0, **SEED, help="seed of the train/val/test split"),
    out: Path = typer.Option(Path("deepstruc_run"), "--out", "-o", help="run directory (rerun = resume)"),
    max_minutes: float = typer.Option(None, help=MAX_MINUTES_HELP),
    max_epochs: int = typer.Option(None, **EPOCHS, help="total epochs (default from the preset)"),
    seed: int = typer.Option(0, **SEED, help="training seed (initialisation, shuffling)"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    tensorboard: bool = typer.Option(False, help=TENSORBOARD_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    threads: int = typer.Option(None, **THREADS, help="torch CPU threads"),
    set_: list[str] = typer.Option(None, "--set", help="config override key=value (JSON value), repeatable"),
):
    """Train a DeepStruc CVAE / DAE. Writes OUT/config.json, best.pt, last.pt, history.json, metrics.csv,
    split.json.

    Rerunning with the same OUT continues from OUT/last.pt (same settings required)."""
    import torch

    from nanosolve.models.deepstruc.run import open_or_generate, prepare_run
    from nanosolve.models.deepstruc.train import train

    check_max_minutes(max_minutes)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if threads:
        torch.set_num_threads(int(threads))
    check_device(device)
    mute(console, quiet, ctx)
    overrides = parse_overrides(set_)
    make_config(kind, preset, overrides, 30.0)  # refuse a bad preset / kind / override before any work
    out.mkdir(parents=True, exist_ok=True)
    with console.status(f"generating the {data_kind} cluster set into {out}" if data == "generate" else "opening data"):
        store, provenance = open_or_generate(data, out, data_kind, data_max_atoms, elements, data_seed, status=say)
    with console.status("building tensors"):
        run = prepare_run(store, provenance, out, kind, preset, overrides, split=split, split_seed=split_seed,
                          seed=seed)
    config, parts = run.config, run.parts
    say(f"{config.kind} ({preset}): {sum(p.numel() for p in _param_probe(config))} parameters; "
        f"train {len(parts['train'])}, val {len(parts['val'])}, test {len(parts['test'])}")
    t0 = time.perf_counter()
    with progress_bars() as progress:
        tick = epoch_ticker(progress, config, max_epochs, _epoch_info)
        result = train(config, run.tensors["train"], run.tensors["val"], out, max_minutes=max_minutes,
                       max_epochs=max_epochs, seed=seed, resume=True, progress=tick, device=device,
                       tensorboard=tensorboard)
    finish(out, result, time.perf_counter() - t0, config.monitor)


def _epoch_info(rec: dict) -> str:
    info = f"loss {rec['train_loss']:.4f}"
    if "val_prior_loss" in rec:
        info += f"  val prior {rec['val_prior_loss']:.4f}  count acc {rec.get('val_count_acc', float('nan')):.3f}"
    return info


def _param_probe(config):
    from nanosolve.models.deepstruc.model import DeepStruc

    return DeepStruc(config).parameters()
