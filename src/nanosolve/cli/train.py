"""``nanosolve train``: train DeepStruc (CVAE / DAE) on a generated or stored cluster set; export weights."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from nanosolve.cli.common import console, finish_training, friendly_errors, parse_overrides, refuse_other_run
from nanosolve.errors import InputError

app = typer.Typer(help="Train generative structure-solution models. Lengths in Å.", no_args_is_help=True)

PRESETS = ("cpu", "paper")
SPLITS = ("paper", "grouped")





def make_config(kind: str, preset: str, overrides: dict, r_max: float):
    """DeepStrucConfig from a preset name + overrides; records the model's r grid in ``extra``."""
    from nanosolve.models.deepstruc.config import MODEL_KINDS, DeepStrucConfig

    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    if kind not in MODEL_KINDS:
        raise InputError(f"unknown model kind {kind!r}; use one of {', '.join(MODEL_KINDS)}")
    overrides = dict(overrides)
    extra = dict(overrides.pop("extra", {}) or {})
    # The model grid: load_tensors resamples the stored PDF onto linspace(0, r_max, n_r).
    extra.update({"r_min": 0.0, "r_max": float(r_max)})
    factory = DeepStrucConfig.cpu if preset == "cpu" else DeepStrucConfig.paper
    try:
        return factory(kind=kind, extra=extra, **overrides)
    except TypeError as err:
        raise InputError(f"invalid --set option: {err}") from None


def _open_or_generate(data: str, out: Path, data_kind: str, data_max_atoms: int | None, elements: str | None,
                      seed: int):
    from nanosolve.datasets.storage import GraphStore
    from nanosolve.models.deepstruc.data import METALS, generate

    if data != "generate":
        path = Path(data)
        if not path.is_file():
            raise InputError("data set file not found", path)
        return GraphStore(path, mode="r"), {"data": str(path)}
    els = METALS if elements is None else tuple(e.strip() for e in elements.split(",") if e.strip())
    path = out / f"data_{data_kind}.sqlite"
    with console.status(f"generating the {data_kind} cluster set into {path}"):
        t0 = time.perf_counter()
        store = generate(path, kind=data_kind, seed=seed, elements=els, max_atoms=data_max_atoms)
    console.print(f"data: {len(store)} clusters in {path} ({time.perf_counter() - t0:.0f} s)", highlight=False)
    return store, {"data": str(path), "data_kind": data_kind, "data_seed": seed, "elements": list(els),
                   "data_max_atoms": data_max_atoms}


@app.command("deepstruc")
@friendly_errors
def deepstruc(
    kind: str = typer.Option("cvae", help="cvae (the paper's model) or dae (deterministic baseline)"),
    preset: str = typer.Option("cpu", help="cpu (converges in minutes on a laptop) or paper (Adam 5e-5, 3,000-point PDF)"),
    data: str = typer.Option("generate", help="a DeepStruc data set file (nanosolve GraphStore) or 'generate'"),
    data_kind: str = typer.Option("paper", help="with --data generate: paper (FCC < 100 atoms) or extended"),
    data_max_atoms: int = typer.Option(None, help="with --data generate: largest cluster (paper: < 100, extended: <= 200)"),
    elements: str = typer.Option(None, help="with --data generate: comma-separated metals (default all 29 d-block)"),
    data_seed: int = typer.Option(0, help="seed of the generated set (ADP / delta2 draws)"),
    split: str = typer.Option("paper", help="paper (random, the paper's proportions) or grouped (by geometry)"),
    split_seed: int = typer.Option(0, help="seed of the train/val/test split"),
    out: Path = typer.Option(Path("deepstruc_run"), "--out", "-o", help="run directory (rerun = resume)"),
    max_minutes: float = typer.Option(None, help="wall-time budget of this call (minutes)"),
    max_epochs: int = typer.Option(None, help="total epochs (default from the preset)"),
    seed: int = typer.Option(0, help="training seed (initialisation, shuffling)"),
    threads: int = typer.Option(None, help="torch CPU threads"),
    set_: list[str] = typer.Option(None, "--set", help="config override key=value (JSON value), repeatable"),
):
    """Train a DeepStruc CVAE / DAE. Writes OUT/config.json, best.pt, last.pt, history.json, split.json.

    Rerunning with the same OUT continues from OUT/last.pt (same settings required)."""
    import numpy as np
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nanosolve.models.deepstruc.data import load_tensors, read_split
    from nanosolve.models.deepstruc.train import train

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if threads:
        torch.set_num_threads(int(threads))
    overrides = parse_overrides(set_)
    make_config(kind, preset, overrides, 30.0)  # refuse a bad preset / kind / override before any work
    out.mkdir(parents=True, exist_ok=True)
    store, provenance = _open_or_generate(data, out, data_kind, data_max_atoms, elements, data_seed)
    r_attrs = store.attrs["r"] if "r" in store.attrs else {"rmax": 30.0}
    config = make_config(kind, preset, overrides, float(r_attrs["rmax"]))
    config.extra.update(provenance, split=split, split_seed=split_seed, preset=preset, train_seed=seed)
    refuse_other_run(out, config, "--out")
    parts = read_split(store, split, seed=split_seed)
    (out / "split.json").write_text(json.dumps({k: np.asarray(v).tolist() for k, v in parts.items()}) + "\n")
    with console.status("building tensors"):
        tensors = {name: load_tensors(store, parts[name], config.n_satellites, config.max_atoms, config.n_r)
                   for name in ("train", "val")}
    console.print(f"{config.kind} ({preset}): {sum(p.numel() for p in _param_probe(config))} parameters; "
                  f"train {len(parts['train'])}, val {len(parts['val'])}, test {len(parts['test'])}", highlight=False)
    total = config.max_epochs if max_epochs is None else max_epochs
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]epochs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[info]}"), console=console) as progress:
        bar = progress.add_task("train", total=total, info="")

        def tick(rec: dict):
            info = f"loss {rec['train_loss']:.4f}"
            if "val_prior_loss" in rec:
                info += f"  val prior {rec['val_prior_loss']:.4f}  count acc {rec.get('val_count_acc', float('nan')):.3f}"
            progress.update(bar, completed=rec["epoch"] + 1, info=info)

        result = train(config, tensors["train"], tensors["val"], out, max_minutes=max_minutes, max_epochs=max_epochs,
                       seed=seed, resume=True, progress=tick)
    finish_training(out, result, time.perf_counter() - t0, config.monitor)


def _param_probe(config):
    from nanosolve.models.deepstruc.model import DeepStruc

    return DeepStruc(config).parameters()


@app.command("export")
@friendly_errors
def export(run: Path = typer.Argument(..., help="a training run directory"),
           dest: Path = typer.Argument(..., help="output directory (config.json + best.pt)"),
           half: bool = typer.Option(True, help="store weights as float16 (half the size; loaded back as float32)")):
    """Copy a run's best weights + config to DEST (e.g. to ship them), optionally as float16.
    DeepStruc and PXRDNet runs (told apart by their config)."""
    import torch

    from nanosolve.models.deepstruc.train import load_model

    cfg_path = run / "config.json" if run.is_dir() else run.parent / "config.json"
    try:
        is_pxrdnet = "xrd_points" in json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        is_pxrdnet = False  # load_model below reports the missing / unreadable config
    if is_pxrdnet:
        from nanosolve.models.pxrdnet.train import load_model
    model, config = load_model(run)
    config.extra.pop("data", None)  # a path on the training machine; the recipe (data_kind, seed...) stays
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    dest.mkdir(parents=True, exist_ok=True)
    torch.save(state, dest / "best.pt")
    config.to_json(dest / "config.json")
    size = (dest / "best.pt").stat().st_size / 1e6
    console.print(f"wrote {dest}/best.pt ({size:.2f} MB) and config.json", highlight=False)


# CrystalNet (pattern + formula -> electron density); the command lives in cli/crystalnet.py
from nanosolve.cli import crystalnet as _crystalnet_cli  # noqa: E402

app.command("crystalnet")(_crystalnet_cli.train_command)

# CDVAE (periodic crystal generative model); the command lives in cli/cdvae.py
from nanosolve.cli import cdvae as _cdvae_cli  # noqa: E402

app.command("cdvae")(_cdvae_cli.train_cmd)

from nanosolve.cli import pxrdnet as _pxrdnet_cli  # noqa: E402  (after the app exists)

app.command("pxrdnet")(_pxrdnet_cli.train_cmd)
