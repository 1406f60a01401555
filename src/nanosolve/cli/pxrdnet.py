"""``nanosolve train pxrdnet``: CDVAE + PXRD regressor trained jointly on crystals and their simulated
nano-broadened patterns. (``nanosolve solve PATTERN --formula …`` uses the result; see cli/solve.py.)

DATA: CDVAE CSVs (a ``cif`` column) and/or CIF folders, plus ``--prototypes N`` AFLOW
substitutions (all seven crystal systems). Lengths in Å, Q in Å⁻¹.
"""

from __future__ import annotations

from pathlib import Path

import typer

from nanosolve.cli.common import EPOCHS, SEED, THREADS, check_number, console, friendly_errors, parse_overrides
from nanosolve.cli.progress import mute
from nanosolve.cli.train_options import (
    DEVICE_HELP,
    MAX_MINUTES_HELP,
    OUT_HELP,
    QUIET_HELP,
    TENSORBOARD_HELP,
    check_device,
    check_max_minutes,
)
from nanosolve.errors import InputError


@friendly_errors
def train_cmd(
    ctx: typer.Context,
    data: list[Path] = typer.Argument(None, help="CDVAE CSV file(s) and/or CIF folder(s); may be empty with "
                                                 "--prototypes"),
    out: Path = typer.Option(..., "--out", "-o", help=OUT_HELP),
    prototypes: int = typer.Option(0, min=0, max=100_000, help="number of AFLOW-prototype substitutions to add"),
    size: float = typer.Option(10.0, help="crystallite size τ of the training patterns (Å); the paper: 10 or 100"),
    size_model: str = typer.Option("pxrdnet", help="pxrdnet (sinc²(Qτ/2), the paper) or scherrer (physical)"),
    preset: str = typer.Option("cpu", help="cpu (trains in under an hour on one core) or paper"),
    max_atoms: int = typer.Option(20, min=1, max=200, help="largest cell (atoms) kept and allowed by the model"),
    max_per_source: int = typer.Option(None, min=1, help="keep at most this many crystals of each DATA source "
                                                  "(a seeded random subset)"),
    max_minutes: float = typer.Option(None, help=MAX_MINUTES_HELP),
    max_epochs: int = typer.Option(None, **EPOCHS, help="total epochs (default from the preset)"),
    split_seed: int = typer.Option(0, **SEED, help="seed of the composition-grouped 80/10/10 split"),
    seed: int = typer.Option(0, **SEED, help="training seed (also the prototype draw and the pattern σ draws)"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    tensorboard: bool = typer.Option(False, help=TENSORBOARD_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    threads: int = typer.Option(None, **THREADS, help="torch CPU threads"),
    set_: list[str] = typer.Option(None, "--set", help="config override key=value (JSON value), repeatable"),
):
    """Train PXRDNet. Writes OUT/config.json, best.pt, last.pt, history.json, metrics.csv, split.json,
    patterns.npy (+ .json), crystals.json (ids, formula, crystal system) and summary.json."""
    import torch

    from nanosolve.cli.train_options import progress_bars, run_training, say
    from nanosolve.models.pxrdnet.run import load_table, make_config, prepare_run
    from nanosolve.models.pxrdnet.train import train

    check_max_minutes(max_minutes)
    check_number("--size", size, 0, 1e4, lo_open=True, unit="Å")
    if threads:
        torch.set_num_threads(int(threads))
    check_device(device)
    mute(console, quiet, ctx)
    overrides = parse_overrides(set_)
    make_config(preset, overrides, size=size, size_model=size_model, max_atoms=max_atoms)  # fail fast
    with console.status("reading crystals"):
        table = load_table(data or [], prototypes, max_atoms, seed, max_per_source)
    with progress_bars() as progress:
        task = progress.add_task("patterns", total=len(table), info=f"τ = {size:g} Å, {size_model}")
        run = prepare_run(data or [], out, preset, overrides, prototypes=prototypes, size=size, size_model=size_model,
                          max_atoms=max_atoms, max_per_source=max_per_source, split_seed=split_seed, seed=seed,
                          table=table, pattern_progress=lambda d, n: progress.update(task, completed=d))
    elements = run.config.extra["elements"]
    say(f"PXRDNet ({preset}, τ = {size:g} Å): {len(table)} crystals (≤ {max_atoms} atoms, "
        f"{len(elements)} elements, {len(table.rejected)} rejected); train {len(run.train_items)}, "
        f"val {len(run.parts['val'])}, test {len(run.parts['test'])}")
    run_training(train, run.config, run.train_items, run.val_items, out, max_minutes, max_epochs, seed, ("xrd",),
                 device=device, tensorboard=tensorboard, n_crystals=len(table))


def shipped_model_dir(size: float):
    """The PXRDNet model shipped for crystallite size ``size`` (Å), or InputError when none is."""
    from nanosolve.registry import pretrained, shipped_models

    try:
        return pretrained("pxrdnet", size=size)
    except InputError:
        pass
    have = ", ".join(f"{m.setting('size'):g} Å" for m in shipped_models() if m.family == "pxrdnet") or "none"
    raise InputError(f"no PXRDNet model is shipped for crystallite size {size:g} Å (shipped: {have}); train one "
                     f"with `nanosolve train pxrdnet --size {size:g} ...` and pass --model-dir")


def solve_powder(pattern, file: Path, formula: str | None, model_dir: Path | None, size: float, k: int,
                 steps: int | None, langevin_steps: int | None, top: int | None, positions: bool | None,
                 distinct: bool | None, prototypes: bool | None, symmetrize: bool | None, broaden: bool,
                 background: bool | None, method: str, seed: int, out: Path, show: int,
                 profile_top: int | None = None, rietveld=None, z: int | None = None,
                 time_budget: float | None = None, random_search: int | None = None, overwrite: bool = False,
                 coordinate_search: int | None = None) -> dict:
    """``nanosolve solve`` for a powder pattern (see cli/solve.py): candidates of every source and Z,
    ranked blind (plausible first), one progress line per stage. The results are written into a
    folder beside ``out`` and moved into ``out`` at the end (replacing an earlier run's with
    ``overwrite``): a failed run leaves ``out`` as it was."""
    from rich.table import Table

    from nanosolve.solve.pxrd import (
        COORDINATE_SEARCH,
        DISTINCT,
        PROFILE_TOP,
        PROTOTYPES,
        RANDOM_SEARCH,
        REFINE_POSITIONS,
        REFINE_TOP,
        SYMMETRIZE,
        TIME_BUDGET,
        PowderSolveSettings,
        solve_pxrd,
    )

    if not formula:
        raise InputError("a powder pattern needs the composition: give --formula (e.g. --formula SrTiO3)", file)
    mdir = model_dir if model_dir is not None else shipped_model_dir(size)
    settings = PowderSolveSettings(
        model_dir=mdir, k=k, steps=steps, n_step_each=langevin_steps, top=REFINE_TOP if top is None else top,
        seed=seed, method=method, refine_positions=REFINE_POSITIONS if positions is None else positions,
        distinct=DISTINCT if distinct is None else distinct, prototypes=PROTOTYPES if prototypes is None else prototypes,
        symmetrize=SYMMETRIZE if symmetrize is None else symmetrize, broaden=broaden, background=background,
        profile_top=PROFILE_TOP if profile_top is None else profile_top, rietveld=rietveld, z=z,
        time_budget=TIME_BUDGET if time_budget is None else (None if time_budget == 0 else time_budget),
        random_search=RANDOM_SEARCH if random_search is None else random_search,
        coordinate_search=COORDINATE_SEARCH if coordinate_search is None else coordinate_search)
    from nanosolve.cli.common import results_folder
    from nanosolve.cli.progress import stage_progress

    with stage_progress(console) as progress, results_folder(out, overwrite) as work:
        settings.progress = progress
        result = solve_pxrd(pattern, formula, settings=settings, out_dir=work)
    s = result.summary
    t = Table(title=f"{file.name}: {method} candidates for {formula} (τ = {s['size']:g} Å model)")
    t.add_column("#", no_wrap=True, min_width=len(str(min(show, len(s["candidates"])))))
    t.add_column("source", no_wrap=True, max_width=20, overflow="ellipsis")  # full label in summary.json
    profiled = s["profile_refined"] > 0
    rietveld = s.get("rietveld_refined", 0) > 0
    for name in ("Z", "a b c (Å)", "α β γ (°)", "R") + (("Rwp",) if profiled else ()) + (("space group", "χ²")
                                                                                        if rietveld else ()) + ("sane",):
        # the short columns keep their width on a narrow (piped, 80-column) console; the cell columns give way
        t.add_column(name, no_wrap=True, min_width={"Z": 2, "R": 5, "Rwp": 5, "sane": 4}.get(name))
    for c in s["candidates"][:show]:
        cell = c["cell"]
        rwp = () if not profiled else ("" if c["rwp_measured"] is None else f"{c['rwp_measured']:.3f}",)
        if rietveld:  # Rietveld-refined rows: its R_wp, the space group refined in and χ² = (Rwp/Rexp)²
            rv = c.get("rietveld")
            rwp = rwp if rv is None else (f"{rv['rwp']:.3f}",)
            rwp = (*rwp, c.get("spacegroup") or "", "" if rv is None else f"{rv['gof']:.2f}")
        sane = c.get("sanity") or {}
        flag = "ok" if sane.get("plausible", True) else "NO: " + _short_flag(sane)
        t.add_row(str(c["rank"]), c["source"], str(c.get("z", "")), " ".join(f"{v:.3f}" for v in cell[:3]),
                  " ".join(f"{v:.1f}" for v in cell[3:]), f"{c['score']:.4f}", *rwp, flag)
    console.print(t)
    console.print(f"composition {s['reduced_formula']}: Z searched {s['z_searched']}, best Z = {s['z']} "
                  f"({s['cell_atoms']} atoms); indexed: {'yes' if s.get('indexed') else 'no'}"
                  + (f"; model stand-ins {s['element_stand_ins']}" if s.get("element_stand_ins") else "")
                  + (f"; {s['implausible_candidates']} implausible candidates ranked last"
                     if s.get("implausible_candidates") else "")
                  + (f"; time budget ran out in: {', '.join(s['budget_cut'])}" if s.get("budget_cut") else ""),
                  highlight=False)
    plots = s["fit_plot"] + (f", {s['profile_fit_plot']}" if s.get("profile_fit_plot") else "")
    key = (f"R = fit to the input on the model grid (refined for the best {s['refined']})"
           + (f"; the best {s['profile_refined']} re-ranked by Rwp, the weighted-profile fit to the pattern as "
              "measured" if profiled else ""))
    console.print(f"wrote {len(s['candidates'])} CIF files named by rank ({s['candidates'][0]['file']} is rank 1), "
                  f"{plots} and summary.json into {out}/ ({s['seconds']:.1f} s); {key}: the only ranking keys",
                  highlight=False)
    return s


def _short_flag(sanity: dict) -> str:
    """The sanity gate's first reason, short enough for a table cell ('Rb-S 1.62 Å')."""
    md = sanity.get("min_distance") or {}
    flags = sanity.get("flags") or []
    if md and flags and "contact" in flags[0]:
        return f"{md['pair']} {md['distance']:.2f} Å"
    return flags[0][:24] if flags else "flagged"
