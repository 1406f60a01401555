"""``nanosolve bench``: run the CHILI benchmark (resumable) and render its results tables."""

from __future__ import annotations

from pathlib import Path

import typer

from nanosolve.cli.common import EPOCHS, THREADS, check_number, console, friendly_errors
from nanosolve.errors import InputError

app = typer.Typer(help="Benchmarks: the CHILI tasks (Friis-Jensen et al. 2024) on a nanosolve graph store.",
                  no_args_is_help=True)


@app.command("chili")
@friendly_errors
def chili(
    dataset: Path = typer.Option(..., "--dataset", help="graph store (file or sharded folder), e.g. from "
                                                         "`nanosolve dataset chili3k`; read only"),
    task: str = typer.Option(None, "--task", help="task ids, the paper's column names or patterns, "
                                                   "comma-separated (e.g. graph_crystal_system,pos_abs,'gen_*'); "
                                                   "with --all: a filter"),
    model: str = typer.Option(None, "--model", help="random, most_frequent, mean, gcn, pmlp, graphsage, gat, "
                                                     "graphunet, gin, edgecnn, mlp, ours, or 'baselines'; "
                                                     "comma-separated; with --all: a filter"),
    all_: bool = typer.Option(False, "--all", help="every task x every applicable model (baselines, 7 GNNs, MLP, ours)"),
    seeds: int = typer.Option(3, min=1, max=100, help="seeds 0..N-1 (each: its own 80/10/10 split and initialisation)"),
    first_seed: int = typer.Option(0, min=0, max=10_000, help="start the seeds here: FIRST..FIRST+N-1 (spread "
                                                             "the seeds of one benchmark over processes)"),
    split_by: str = typer.Option("graph", "--split-by", help="graph: graphs at random (the paper; other radii of a "
                                                          "test crystal are in training); crystal: all radii of a "
                                                          "crystal in one part"),
    budget_minutes: float = typer.Option(3.0, help="wall-clock budget of training + validation per run (minutes)"),
    out: Path = typer.Option(Path("chili_bench"), "--out", "-o", help="output folder (rerun = resume: finished runs "
                                                                      "are skipped, unfinished ones continue)"),
    max_epochs: int = typer.Option(1000, **EPOCHS, help="epochs per run"),
    patience: int = typer.Option(50, min=0, help="early stopping: epochs without a lower validation loss (0 = off)"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    batch_size: int = typer.Option(16, min=1, max=65_536, help="graphs per batch"),
    hidden: int = typer.Option(64, min=1, max=4096, help="embedding width"),
    layers: int = typer.Option(3, min=1, max=64, help="message-passing layers (GraphUNet: depth)"),
    edge_head: str = typer.Option("dot", help="edge head of the GNNs: dot (paper) or distance"),
    steps_per_epoch: int = typer.Option(0, min=0, help="optimizer steps per epoch (0 = a full pass over the training part)"),
    val_graphs: int = typer.Option(0, min=0, help="validate on at most this many validation graphs (0 = all)"),
    crop_atoms: int = typer.Option(-1, min=-1, help="particle classification: train on the N atoms nearest a random atom "
                                            "(0 = whole graphs, -1 = the model's default: 128 for ours)"),
    eval_crops: int = typer.Option(8, min=1, max=1000, help="with crops: seeded crops per particle averaged when scoring"),
    threads: int = typer.Option(None, **THREADS, help="torch CPU threads (default: torch's choice)"),
    cache: bool = typer.Option(True, help="cache the task fields as .pt tensors in OUT/cache"),
):
    """Train and score CHILI benchmark runs; append one line per finished run to OUT/results.jsonl.

    One run = (task, model, seed). Ctrl-C at any time and rerun the same command to continue."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from nanosolve.datasets.storage import open_store
    from nanosolve.models.chili_bench.runner import SPLIT_BY, configs_for, plan_runs, run_many

    check_number("--budget-minutes", budget_minutes, 0, lo_open=True, unit="minutes")
    check_number("--lr", lr, 0, 1, lo_open=True)
    if split_by not in SPLIT_BY:
        raise InputError(f"--split-by must be one of {', '.join(SPLIT_BY)}, got {split_by!r}")
    pairs, skipped = plan_runs(task, model, all_pairs=all_)  # unknown names: one error, before any work
    open_store(dataset, mode="r").close()  # a missing or foreign store: one error, before any work
    settings = dict(budget_minutes=budget_minutes, max_epochs=max_epochs, patience=patience, lr=lr,
                    batch_size=batch_size, hidden=hidden, layers=layers, edge_head=edge_head,
                    steps_per_epoch=steps_per_epoch, val_graphs=val_graphs, crop_atoms=crop_atoms,
                    eval_crops=eval_crops, split_by=split_by)
    configs = configs_for(pairs, str(dataset), range(first_seed, first_seed + seeds), **settings)
    if threads:
        torch.set_num_threads(int(threads))
    for t, m in skipped:
        console.print(f"[yellow]skipped:[/] {m} does not apply to {t}", highlight=False)
    console.print(f"{len(configs)} runs ({len(pairs)} task x model pairs x {seeds} seeds) into {out}/", highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console) as progress:
        overall = progress.add_task("runs", total=len(configs), info="")
        current = progress.add_task("run", total=1, info="")

        def tick(ev: dict):
            kind = ev["kind"]
            if kind == "run":
                c = ev["config"]
                split = "" if c.split_by == "graph" else f" / split by {c.split_by}"
                progress.update(overall, completed=ev["index"], info=f"{c.task} / {c.model}{split} / seed {c.seed}")
                progress.reset(current, total=1, description="run", info="")
            elif kind in ("load", "pairs"):
                what = "loading graphs" if kind == "load" else "pair-distance counts"
                progress.update(current, description=what, total=ev["total"], completed=ev["done"])
            elif kind == "step":
                progress.update(current, description="training (s)", total=ev["budget"], completed=ev["elapsed"],
                                info=f"epoch {ev['epoch'] + 1} step {ev['step']} loss {ev['loss']:.4g}")
            elif kind == "epoch":
                progress.update(current, completed=ev["elapsed"],
                                info=f"epoch {ev['epoch'] + 1}: train {ev['train_loss']:.4g} val {ev['val_loss']:.4g} "
                                     f"score {ev['val_score']:.4g}")
            elif kind == "status":
                progress.update(current, description=ev["message"])

        results = run_many(configs, out, cache=cache, progress=tick)
        progress.update(overall, completed=len(configs), info="done")
    for res, status in results:
        console.print(f"{status:8s} {res['task']:24s} {res['model']:14s} seed {res['seed']}: {res['metric']} "
                      f"{res['value']:.5g} ({res['stopped']}, {res['epochs']} epochs)", highlight=False)
    console.print(f"results: {out / 'results.jsonl'}; render them with `nanosolve bench table {out}`", highlight=False)


@app.command("table")
@friendly_errors
def table(
    directory: Path = typer.Argument(..., help="an output folder of `nanosolve bench chili` (holds results.jsonl)"),
):
    """Render DIR/results.jsonl as the paper's tables (mean ± std over seeds) in markdown; also
    written to DIR/results.md."""
    from nanosolve.models.chili_bench.results import render_results_dir

    if not directory.is_dir():
        raise InputError("no such results folder", directory)
    text, path = render_results_dir(directory)
    typer.echo(text)
    console.print(f"wrote {path}", highlight=False)
