"""CDVAE commands: ``nanosolve train cdvae``, ``nanosolve generate cdvae``, ``nanosolve evaluate cdvae``.

DATA is one or more CDVAE CSV files (a ``cif`` column of CIF strings; e.g. perov_5's val.csv and
test.csv) and/or folders of CIF files. Lengths in Å, angles in degrees.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from nanosolve._io import atomic_write_text
from nanosolve.cli.common import (
    EPOCHS,
    SEED,
    THREADS,
    console,
    earlier_run_files,
    friendly_errors,
    output_folder,
    parse_overrides,
    results_folder,
)
from nanosolve.cli.progress import mute
from nanosolve.cli.train_options import (
    DEVICE_HELP,
    MAX_MINUTES_HELP,
    OUT_HELP,
    QUIET_HELP,
    TENSORBOARD_HELP,
    check_device,
    check_max_minutes,
    progress_bars,
    resolve_out,
    run_training,
    say,
)
from nanosolve.errors import InputError

generate_app = typer.Typer(help="Generate structures with a trained generative model (CIF output).",
                           no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate a trained generative model with the paper's metrics.",
                           no_args_is_help=True)
SPLITS = ("composition", "random")  # the split names of nanosolve.models.cdvae.run
TASKS = ("recon", "gen", "opt")
PARTS = ("all", "train", "val", "test")
TYPE_MODE_HELP = ("Langevin typing: argmax (the paper: each step every atom takes the decoder's most likely "
                  "element), composition (the composition head's stoichiometry kept, redistributed over the atoms "
                  "by the decoder) or fixed (the head's stoichiometry sampled once and kept on its atoms)")
CANDIDATES_HELP = ("decode every latent code this many times and keep the crystal whose posterior q(z | crystal) "
                   "fits the code best (uses only the model; 1 = the paper's single decode)")
STOICH_HELP = "with --candidates: start them from this many of the composition head's likeliest stoichiometries"
#: ranges of the sampling options (click refuses a value outside them before any work)
N_CRYSTALS = {"min": 1, "max": 100_000}
LANGEVIN_STEPS = {"min": 1, "max": 10_000}
CANDIDATES = {"min": 1, "max": 1000}


def _check_stoichiometries(stoichiometries: int, candidates: int) -> None:
    if stoichiometries > candidates:
        raise InputError(f"must be at most --candidates ({candidates}), got {stoichiometries}", "--stoichiometries")





def _split(table, split: str, seed: int):
    from nanosolve.models.cdvae.run import split_table

    return split_table(table, split, seed)


def _progress():
    return progress_bars()


def _load(data: list[Path], props: list[str] | None):
    from nanosolve.models.cdvae.train import load_tables

    with console.status(f"reading {', '.join(map(str, data))}"):
        table = load_tables(data, props=props or None)
    if len(table) == 0:
        raise InputError(f"no usable crystal in {', '.join(map(str, data))}")
    return table


@friendly_errors
def train_cmd(
    ctx: typer.Context,
    data: list[Path] = typer.Argument(None, metavar="DATA...", help="CDVAE CSV file(s) and/or CIF folder(s)",
                                     show_default=False),
    out: Path = typer.Option(None, "--out", "-o", help=OUT_HELP, show_default=False),
    preset: str = typer.Option("cpu", help="cpu (small, trains in an hour on one core) or paper (published sizes)"),
    max_minutes: float = typer.Option(None, help=MAX_MINUTES_HELP),
    max_epochs: int = typer.Option(None, **EPOCHS, help="total epochs (default from the preset)"),
    split: str = typer.Option("composition", help="composition (grouped by reduced formula) or random; 80/10/10"),
    split_seed: int = typer.Option(0, **SEED, help="seed of the split"),
    prop: list[str] = typer.Option(None, "--prop", help="property column(s) for the property head (repeatable)"),
    max_atoms: int = typer.Option(None, min=1, max=200, help="largest cell the model allows (default: largest in "
                                                             "DATA)"),
    seed: int = typer.Option(0, **SEED, help="training seed"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    tensorboard: bool = typer.Option(False, help=TENSORBOARD_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    threads: int = typer.Option(None, **THREADS, help="torch CPU threads"),
    set_: list[str] = typer.Option(None, "--set", help="config override key=value (JSON value), repeatable"),
):
    """Train a CDVAE on DATA. Writes OUT/config.json, best.pt, last.pt, history.json, metrics.csv,
    split.json, summary.json."""
    import torch

    from nanosolve.models.cdvae.run import make_config, prepare_run
    from nanosolve.models.cdvae.train import train

    check_max_minutes(max_minutes)
    data = list(data or [])
    if out is None and len(data) >= 2:  # the older form: DATA... OUT
        data, legacy = data[:-1], data[-1]
    else:
        legacy = None
    out = resolve_out(out, legacy)
    if not data:
        raise InputError("no training data given: pass CDVAE CSV file(s) and/or CIF folder(s)")
    if threads:
        torch.set_num_threads(int(threads))
    check_device(device)
    mute(console, quiet, ctx)
    overrides = parse_overrides(set_)
    make_config(preset, overrides)  # refuse a bad preset / override before reading data
    table = _load(data, prop)
    run = prepare_run(data, out, preset, overrides, split=split, split_seed=split_seed, props=prop,
                      max_atoms=max_atoms, seed=seed, table=table)
    say(f"CDVAE ({preset}): {len(table)} crystals (≤ {run.config.max_atoms} atoms); train {len(run.train_items)}, "
        f"val {len(run.parts['val'])}, test {len(run.parts['test'])}")
    run_training(train, run.config, run.train_items, run.val_items, out, max_minutes, max_epochs, seed,
                 device=device, tensorboard=tensorboard)


def _earlier_generated(out: Path) -> list[Path]:
    """The files of an earlier ``generate`` run in ``out``: its summary.json, the CIFs that lists and
    the numbered ``NNNN_<formula>.cif`` files."""
    return earlier_run_files(out, names=("summary.json",), pattern=r"^\d{4,}_[^/]+\.cif$", listed=("crystals",))


def _langevin_progress(progress, label: str):
    task = progress.add_task(label, total=1, info="noise levels")
    return lambda done, total: progress.update(task, completed=done, total=total)


@generate_app.command("cdvae")
@friendly_errors
def generate_cmd(
    model_dir: Path = typer.Argument(..., help="a CDVAE run directory (config.json + best.pt) or a .pt file"),
    n: int = typer.Option(10, "-n", **N_CRYSTALS, help="number of crystals"),
    out: Path = typer.Option(Path("cdvae_generated"), "-o", "--out", help="output folder (one CIF per crystal)"),
    steps: int = typer.Option(None, **LANGEVIN_STEPS, help="Langevin steps per noise level (default: the model's, "
                                                           "100)"),
    seed: int = typer.Option(0, **SEED, help="sampling seed"),
    type_mode: str = typer.Option("argmax", help=TYPE_MODE_HELP),
    candidates: int = typer.Option(1, **CANDIDATES, help=CANDIDATES_HELP),
    stoichiometries: int = typer.Option(1, **CANDIDATES, help=STOICH_HELP),
    threads: int = typer.Option(None, **THREADS, help="torch CPU threads"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the results of an earlier run in the output "
                                                              "folder (its summary.json and numbered CIFs) when the "
                                                              "new ones are complete"),
):
    """Sample N crystals from the prior (annealed Langevin dynamics) and write them as CIFs + summary.json.

    The files are written beside OUT and moved in when all are written: a run that fails midway leaves
    OUT as it was."""
    import torch

    from nanosolve.models.cdvae.evaluate import structure_valid
    from nanosolve.models.cdvae.sample import generate
    from nanosolve.models.cdvae.train import load_model
    from nanosolve.structures.io import write_cif

    _check_stoichiometries(stoichiometries, candidates)
    out = output_folder(out, "-o", overwrite, earlier=_earlier_generated)
    if threads:
        torch.set_num_threads(int(threads))
    model, _ = load_model(model_dir)
    with _progress() as progress:
        crystals = generate(model, n, n_step_each=steps, seed=seed, type_mode=type_mode, candidates=candidates,
                            stoichiometries=stoichiometries, callback=_langevin_progress(progress, "sampling"))
    # written into a folder beside OUT and moved in at the end: a failed run leaves OUT as it was
    with results_folder(out, overwrite, earlier=_earlier_generated) as work:
        rows = []
        for k, c in enumerate(crystals):
            path = work / f"{k:04d}_{c.formula}.cif"
            write_cif(c, path)
            rows.append({"file": path.name, "formula": c.formula, "n_atoms": len(c),
                         "cell": [round(float(x), 4) for x in c.cell_params],
                         "structure_valid": bool(structure_valid(c))})
        (work / "summary.json").write_text(json.dumps({"model": str(model_dir), "n": n, "seed": seed,
                                                       "crystals": rows}, indent=1) + "\n")
    n_valid = sum(r["structure_valid"] for r in rows)
    console.print(f"wrote {n} CIFs into {out}/ ({n_valid} structurally valid)", highlight=False)


@evaluate_app.command("cdvae")
@friendly_errors
def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="a CDVAE run directory or .pt file"),
    data: list[Path] = typer.Argument(..., help="CDVAE CSV file(s) / CIF folder(s): reference crystals"),
    task: str = typer.Option("recon", help="recon (reconstruction match rate / RMSE), gen (validity, COV, EMD) "
                                           "or opt (property optimisation success rates)"),
    part: str = typer.Option("all", help="all crystals of DATA, or the train/val/test part of the split recorded "
                                         "in the model's config (same DATA as for training)"),
    n: int = typer.Option(200, "-n", **N_CRYSTALS, help="crystals to reconstruct / generate / optimise (random subset, seeded)"),
    steps: int = typer.Option(None, **LANGEVIN_STEPS, help="Langevin steps per noise level (default: the model's, "
                                                           "100)"),
    dataset: str = typer.Option("perov_5", help="COV thresholds of this CDVAE data set (perov_5, carbon_24, mp_20)"),
    seed: int = typer.Option(0, **SEED, help="seed"),
    type_mode: str = typer.Option("argmax", help=TYPE_MODE_HELP),
    candidates: int = typer.Option(1, **CANDIDATES, help=CANDIDATES_HELP),
    stoichiometries: int = typer.Option(1, **CANDIDATES, help=STOICH_HELP),
    json_out: Path = typer.Option(None, "--json", help="write the metrics as JSON here"),
    threads: int = typer.Option(None, **THREADS, help="torch CPU threads"),
):
    """Evaluate a CDVAE as the paper does; prints the metrics and optionally writes them as JSON."""
    import numpy as np
    import torch

    from nanosolve.models.cdvae.sample import check_sizes
    from nanosolve.models.cdvae.train import load_model

    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if part not in PARTS:
        raise InputError(f"unknown part {part!r}; use one of {', '.join(PARTS)}")
    _check_stoichiometries(stoichiometries, candidates)
    if threads:
        torch.set_num_threads(int(threads))
    model, config = load_model(model_dir)
    table = _load(data, list(config.props) if task == "opt" else None)
    idx = np.arange(len(table))
    if part != "all":
        parts = _split(table, config.extra.get("split", "composition"), int(config.extra.get("split_seed", 0)))
        idx = np.asarray(parts[part])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(idx, min(n, len(idx)), replace=False)) if len(idx) > n else idx
    crystals = [table.crystals[i] for i in pick]
    check_sizes(model, crystals, [f"{c.name or table.ids[i]} (in {', '.join(map(str, data))})"
                                  for c, i in zip(crystals, pick)])
    t0 = time.perf_counter()
    with _progress() as progress:
        cb = _langevin_progress(progress, "Langevin")
        if task == "recon":
            from nanosolve.models.cdvae.evaluate import reconstruction_metrics
            from nanosolve.models.cdvae.sample import reconstruct

            preds = reconstruct(model, crystals, n_step_each=steps, seed=seed, callback=cb, type_mode=type_mode,
                                candidates=candidates, stoichiometries=stoichiometries)
            m = reconstruction_metrics(preds, crystals)
            metrics = {k: m[k] for k in ("match_rate", "rmse", "n", "n_matched", "n_valid")}
        elif task == "gen":
            from nanosolve.models.cdvae.evaluate import generation_metrics
            from nanosolve.models.cdvae.sample import generate

            gen = generate(model, n, n_step_each=steps, seed=seed, callback=cb, type_mode=type_mode,
                           candidates=candidates, stoichiometries=stoichiometries)
            m = generation_metrics(gen, [table.crystals[i] for i in idx], n_eval=len(gen), dataset=dataset)
            metrics = {k: v for k, v in m.items() if isinstance(v, (int, float))}
        else:
            from nanosolve.models.cdvae.data import to_data_list
            from nanosolve.models.cdvae.optimize import benchmark_optimization

            if not config.props:
                raise InputError("this model has no property head (trained without --prop)", model_dir)
            parts = _split(table, config.extra.get("split", "composition"), int(config.extra.get("split_seed", 0)))
            items = to_data_list(table, props=list(config.props))
            metrics = benchmark_optimization(model, [items[i] for i in parts["train"]], [items[i] for i in parts["val"]],
                                             crystals, n_runs=n, n_step_each=steps, seed=seed,
                                             predictor_dir=Path(model_dir) / "predictor" if Path(model_dir).is_dir() else None)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    from rich.table import Table

    t = Table("metric", "value", title=f"CDVAE {task} on {len(crystals)} crystals of {', '.join(map(str, data))}")
    for k, v in metrics.items():
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(t)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_out, json.dumps({"task": task, "model": str(model_dir), "type_mode": type_mode,
                                                "candidates": candidates, "stoichiometries": stoichiometries,
                                                **metrics}, indent=1) + "\n")
        console.print(f"wrote {json_out}", highlight=False)


train_cmd = friendly_errors(train_cmd)
