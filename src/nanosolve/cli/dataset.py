"""``nanosolve dataset``: generate CHILI-3K or CHILI-style datasets, and describe them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nanosolve._io import atomic_write_text
from nanosolve.cli.common import check_number, console, friendly_errors
from nanosolve.errors import InputError

app = typer.Typer(help="CHILI nanoparticle graph datasets: generate (resumable; local processes or a Dask "
                       "cluster) and summarise. Radii and sizes in Å, Q in Å⁻¹, r in Å.", no_args_is_help=True)


def _floats(text: str | None, default, option: str = "--radii", lo: float = 0.0, hi: float = 100.0):
    """Numbers in (lo, hi] from '5,10,15' (InputError naming ``option``)."""
    if text is None:
        return default
    try:
        vals = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise InputError(f"expected numbers separated by commas, got {text!r}", option) from None
    if not vals:
        raise InputError("no values given", option)
    for v in vals:
        check_number(option, v, lo, hi, lo_open=True, unit="Å")
    return vals


def _element(symbol: str, option: str) -> str:
    from nanosolve.structures.elements import normalize_symbol

    try:
        return normalize_symbol(symbol)
    except InputError:
        raise InputError(f"unknown element {symbol!r}", option) from None


def _check_store_path(out: Path, shard_size: int | None) -> None:
    """The output store: a folder for --shard-size, else a file; its parent not a file; an existing
    one a readable store (checked before its lock file is made beside it)."""
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{parent} is a file, so the store cannot be created there", out)
    if shard_size and out.exists() and not out.is_dir():
        raise InputError("is an existing file; a sharded store (--shard-size) is a folder", out)
    if not shard_size and out.is_dir():
        raise InputError("is a folder; give a .sqlite file, or --shard-size for a sharded folder store", out)
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        from nanosolve.datasets.storage import open_store

        open_store(out).close()  # InputError for a file that is not a store


def _open_for_writing(out: Path, shard_size: int | None, attrs: dict):
    from nanosolve.datasets.storage import GraphStore, ShardedGraphStore

    store = ShardedGraphStore(out, shard_size=shard_size) if shard_size else GraphStore(out)
    old = store.attrs
    if old and old != attrs:
        store.close()
        raise InputError("holds a different dataset (recipe or parameters differ); choose another output", out)
    if not old:
        store.set_attrs(attrs)
    return store


def _run(tasks, out: Path, attrs: dict, workers: int, scheduler: str | None, shard_size: int | None,
         signals: bool):
    from nanosolve.datasets.chili.generate import generate
    from nanosolve.datasets.storage import store_lock

    with store_lock(out):  # a second writer of the same store is refused here, before anything is written
        store = _open_for_writing(out, shard_size, attrs)
        try:
            report, n = _generate_with_progress(generate, tasks, store, workers, scheduler, signals)
        finally:
            store.close()
    graphs = report.records_written
    rate = f", {report.seconds / graphs:.3f} s per graph" if graphs else ""
    console.print(f"{out}: {n} graphs ({graphs} new from {report.written} crystals, {report.skipped} crystals "
                  f"already there) in {report.seconds:.1f} s{rate}", highlight=False)
    if report.failures:  # the finished crystals are kept; rerunning retries only these
        for k, v in report.failures.items():
            console.print(f"[red]failed[/] {k}: {v}", highlight=False)
        raise typer.Exit(1)
    return report


def _generate_with_progress(generate, tasks, store, workers, scheduler, signals):
    from nanosolve.cli.progress import stage_progress

    # a bar on a terminal, a line every 10 % when piped, nothing with --quiet
    with stage_progress(console, quiet=console.quiet) as progress:
        progress.stage("crystals", total=len(tasks))
        report = generate(tasks, store, workers=workers, scheduler=scheduler, signals=signals,
                          on_result=lambda res, done, total: progress.update(completed=done))
        progress.update(completed=len(tasks))
    return report, len(store)


@app.command("chili3k")
@friendly_errors
def chili3k(ctx: typer.Context,
            out: Path = typer.Argument(..., help="output store (.sqlite file, or a folder with --shard-size)"),
            workers: int = typer.Option(2, min=0, max=256, help="local worker processes"),
            scheduler: str = typer.Option(None, help="Dask scheduler address (tcp://host:8786); runs there "
                                                     "instead of locally"),
            metals: str = typer.Option(None, help="subset of metals, e.g. 'Au,Zn' (default: CHILI's 53)"),
            types: str = typer.Option(None, help="subset of crystal types (default: all 12)"),
            radii: str = typer.Option(None, help="nanoparticle radii in Å (default 5,10,15,20,25)"),
            shard_size: int = typer.Option(None, min=1, help="records per shard: a sharded folder store"),
            signals: bool = typer.Option(True, help="simulate SAXS/SANS, XRD/ND and x-ray/neutron PDFs"),
            quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors (no progress)")):
    """CHILI-3K: 12 crystal types × 53 metals, cut at radii 5-25 Å = 3,180 graphs. Resumable: run the
    same command again after an interruption and it continues where it stopped."""
    from nanosolve.cli.progress import mute
    from nanosolve.datasets.chili.generate import dataset_attrs
    from nanosolve.datasets.chili.recipe import CHILI_3K_METALS, CHILI_RADII, chili3k_tasks

    mute(console, quiet, ctx)

    _check_store_path(out, shard_size)
    metal_list = tuple(_element(m.strip(), "--metals") for m in metals.split(",")) if metals else CHILI_3K_METALS
    type_list = tuple(t.strip() for t in types.split(",")) if types else None
    from nanosolve.structures.builders.chili_types import CHILI_CRYSTAL_TYPES

    unknown = [t for t in type_list or () if t not in CHILI_CRYSTAL_TYPES]
    if unknown:  # refused here, not filed as one failed task per metal after the run
        raise InputError(f"unknown CHILI crystal type {unknown[0]!r}; choose from {', '.join(CHILI_CRYSTAL_TYPES)}",
                         "--types")
    r = _floats(radii, CHILI_RADII)
    tasks = chili3k_tasks(metal_list, type_list, r)
    attrs = dataset_attrs("chili3k", r, signals) | {"metals": list(metal_list),
                                                    "crystal_types": sorted({t.crystal_type for t in tasks})}
    _run(tasks, out, attrs, workers, scheduler, shard_size, signals)


@app.command("from-cifs")
@friendly_errors
def from_cifs(ctx: typer.Context,
              folder: Path = typer.Argument(..., help="folder of CIF files (searched recursively)"),
              out: Path = typer.Argument(..., help="output store (.sqlite file, or a folder with --shard-size)"),
              workers: int = typer.Option(2, min=0, max=256, help="local worker processes"),
              scheduler: str = typer.Option(None, help="Dask scheduler address; runs there instead of locally"),
              radii: str = typer.Option(None, help="nanoparticle radii in Å (default 5,10,15,20,25)"),
              shard_size: int = typer.Option(None, min=1, help="records per shard: a sharded folder store"),
              report: Path = typer.Option(None, help="reject report CSV (default: OUT.rejects.csv)"),
              signals: bool = typer.Option(True, help="simulate the six scattering signals"),
              quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors (no progress)")):
    """CHILI-style dataset from any CIF folder (the CHILI-100K recipe): CIFs are cleaned, filtered
    (elements, occupancy ≥ 0.9, cell < 1000 Å³, no pair closer than 1.2 Å, a metal present) and
    cut; every rejected file is listed with its reason in the reject report."""
    from nanosolve.cli.progress import mute
    from nanosolve.datasets.chili.cif_clean import screen_folder, write_reject_report
    from nanosolve.datasets.chili.generate import dataset_attrs
    from nanosolve.datasets.chili.recipe import CHILI_RADII, cif_tasks

    mute(console, quiet, ctx)

    if not folder.is_dir():
        raise InputError("not a folder", folder)
    _check_store_path(out, shard_size)
    r = _floats(radii, CHILI_RADII)  # options checked before the (slow) screening
    with console.status(f"screening the CIFs in {folder}"):
        accepted, rejected = screen_folder(folder, recursive=True, workers=max(1, workers))
    if not accepted and not rejected:
        raise InputError("no .cif files in this folder", folder)
    report = report or out.with_name(out.name + ".rejects.csv")
    write_reject_report(rejected, report)
    console.print(f"{len(accepted)} CIFs accepted, {len(rejected)} rejected (file and reason in {report})",
                  highlight=False)
    tasks = cif_tasks([a.path for a in accepted], r)
    attrs = dataset_attrs("from-cifs", r, signals) | {"folder": str(folder.resolve())}
    _run(tasks, out, attrs, workers, scheduler, shard_size, signals)


@app.command("stats")
@friendly_errors
def stats(store_path: Path = typer.Argument(..., help="a dataset written by `nanosolve dataset ...`"),
          plot: Path = typer.Option(None, help="distribution plots PNG (default: STORE.stats.png)"),
          json_out: Path = typer.Option(None, "--json", help="write the numbers as JSON")):
    """CHILI Table 1 numbers (graphs, nodes, edges, sizes, elements, crystal systems) and Fig. 4-style
    distribution plots."""
    from nanosolve.datasets.chili.stats import PAPER_CHILI_3K, dataset_stats, plot_distributions, stats_markdown
    from nanosolve.datasets.storage import open_store

    if not store_path.exists():
        raise InputError("no such dataset", store_path)
    with open_store(store_path) as store:
        meta = store.meta_table()
        recipe = store.attrs.get("recipe")
    if not meta:
        raise InputError("the dataset is empty", store_path)
    s = dataset_stats(meta)
    full_3k = recipe == "chili3k" and s["graphs"] == PAPER_CHILI_3K["graphs"]
    console.print(stats_markdown(s, PAPER_CHILI_3K if full_3k else None), highlight=False)
    console.print("crystal systems: " + ", ".join(f"{k} {v}" for k, v in s["crystal_systems"].items()),
                  highlight=False)
    png = plot_distributions(meta, plot or store_path.with_name(store_path.name + ".stats.png"))
    console.print(f"wrote {png}", highlight=False)
    if json_out:
        atomic_write_text(json_out, json.dumps(s, indent=2))
        console.print(f"wrote {json_out}", highlight=False)
