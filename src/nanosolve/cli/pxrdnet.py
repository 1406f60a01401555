"""``nanosolve train pxrdnet``: CDVAE + PXRD regressor trained jointly on crystals and their simulated
nano-broadened patterns. (``nanosolve solve PATTERN --formula …`` uses the result; see cli/solve.py.)

DATA: CDVAE CSVs (a ``cif`` column) and/or CIF folders, plus ``--prototypes N`` AFLOW
substitutions (all seven crystal systems). Lengths in Å, Q in Å⁻¹.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nanosolve.cli.common import console, friendly_errors, parse_overrides, refuse_other_run
from nanosolve.errors import InputError


@friendly_errors
def train_cmd(
    data: list[Path] = typer.Argument(None, help="CDVAE CSV file(s) and/or CIF folder(s); may be empty with "
                                                 "--prototypes"),
    out: Path = typer.Option(..., "--out", "-o", help="run directory (rerun = resume)"),
    prototypes: int = typer.Option(0, help="number of AFLOW-prototype substitutions to add"),
    size: float = typer.Option(10.0, help="crystallite size τ of the training patterns (Å); the paper: 10 or 100"),
    size_model: str = typer.Option("pxrdnet", help="pxrdnet (sinc²(Qτ/2), the paper) or scherrer (physical)"),
    preset: str = typer.Option("cpu", help="cpu (trains in under an hour on one core) or paper"),
    max_atoms: int = typer.Option(20, help="largest cell (atoms) kept and allowed by the model"),
    max_per_source: int = typer.Option(None, help="keep at most this many crystals of each DATA source "
                                                  "(a seeded random subset)"),
    max_minutes: float = typer.Option(None, help="wall-time budget of this call (minutes)"),
    max_epochs: int = typer.Option(None, help="total epochs (default from the preset)"),
    split_seed: int = typer.Option(0, help="seed of the composition-grouped 80/10/10 split"),
    seed: int = typer.Option(0, help="training seed (also the prototype draw and the pattern σ draws)"),
    threads: int = typer.Option(None, help="torch CPU threads"),
    set_: list[str] = typer.Option(None, "--set", help="config override key=value (JSON value), repeatable"),
):
    """Train PXRDNet. Writes OUT/config.json, best.pt, last.pt, history.json, split.json, patterns.npy
    (+ .json), crystals.json (ids, formula, crystal system) and summary.json."""
    import numpy as np
    import torch

    from nanosolve.cli.cdvae import _progress, run_training
    from nanosolve.models.cdvae.data import composition_split
    from nanosolve.models.pxrdnet.train import train
    from nanosolve.models.pxrdnet.config import preset as make_preset
    from nanosolve.models.pxrdnet.data import simulate_patterns, to_pxrd_data, training_table

    if threads:
        torch.set_num_threads(int(threads))
    overrides = parse_overrides(set_)
    make_preset(preset, size=size, size_model=size_model, max_atoms=max_atoms, **overrides)  # fail fast
    if not data and not prototypes:
        raise InputError("no training data: give DATA files/folders and/or --prototypes N")
    with console.status("reading crystals"):
        table = training_table(data or [], prototypes, max_atoms, seed, max_per_source)
    if len(table) < 10:
        raise InputError(f"only {len(table)} usable crystals; PXRDNet needs at least 10")
    elements = sorted({s for c in table.crystals for s in c.species})
    config = make_preset(preset, size=size, size_model=size_model, max_atoms=max_atoms, **overrides)
    config.extra.update(data=[str(p) for p in data or []], prototypes=prototypes, max_per_source=max_per_source,
                        split="composition", split_seed=split_seed, train_seed=seed, elements=elements)
    refuse_other_run(out, config)
    out.mkdir(parents=True, exist_ok=True)
    parts = composition_split(table, (0.8, 0.1, 0.1), seed=split_seed)
    (out / "split.json").write_text(json.dumps({k: np.asarray(v).tolist() for k, v in parts.items()}) + "\n")
    (out / "crystals.json").write_text(json.dumps(
        [{"id": i, "formula": c.formula, "n_atoms": len(c), "crystal_system": c.properties.get("crystal_system")}
         for i, c in zip(table.ids, table.crystals)]) + "\n")
    with _progress() as progress:
        task = progress.add_task("patterns", total=len(table), info=f"τ = {size:g} Å, {size_model}")
        patterns = simulate_patterns(table, size=size, size_model=size_model, seed=seed, cache=out / "patterns",
                                     progress=lambda d, n: progress.update(task, completed=d))
    items = to_pxrd_data(table, patterns)
    train_items = [items[i] for i in parts["train"]]
    val_items = [items[i] for i in parts["val"]] or None
    console.print(f"PXRDNet ({preset}, τ = {size:g} Å): {len(table)} crystals (≤ {max_atoms} atoms, "
                  f"{len(elements)} elements, {len(table.rejected)} rejected); train {len(train_items)}, "
                  f"val {len(parts['val'])}, test {len(parts['test'])}", highlight=False)
    run_training(train, config, train_items, val_items, out, max_minutes, max_epochs, seed, ("xrd",),
                 n_crystals=len(table))


def shipped_model_dir(size: float):
    """The PXRDNet model shipped for crystallite size ``size`` (Å), or InputError when none is."""
    from importlib import resources

    root = Path(str(resources.files("nanosolve") / "data" / "pxrdnet"))
    sizes = sorted(float(p.name.split("_")[-1].rstrip("A")) for p in root.glob("cpu_*A") if (p / "config.json").is_file()) \
        if root.is_dir() else []
    for s in sizes:
        if abs(s - size) < 1e-6:
            return root / f"cpu_{s:g}A"
    have = ", ".join(f"{s:g} Å" for s in sizes) or "none"
    raise InputError(f"no PXRDNet model is shipped for crystallite size {size:g} Å (shipped: {have}); train one "
                     f"with `nanosolve train pxrdnet --size {size:g} ...` and pass --model-dir")


def solve_powder(pattern, file: Path, formula: str | None, model_dir: Path | None, size: float, k: int,
                 steps: int | None, langevin_steps: int | None, top: int | None, positions: bool | None,
                 distinct: bool | None, prototypes: bool | None, symmetrize: bool | None, broaden: bool,
                 background: bool | None, method: str, seed: int, out: Path, show: int,
                 profile_top: int | None = None) -> dict:
    """``nanosolve solve`` for a powder pattern (see cli/solve.py): PXRDNet candidates, ranked blind."""
    from rich.table import Table

    from nanosolve.solve.pxrd import (DISTINCT, PROFILE_TOP, PROTOTYPES, REFINE_POSITIONS, REFINE_TOP, SYMMETRIZE,
                                      solve_pxrd)

    if not formula:
        raise InputError("a powder pattern needs the cell formula: give --formula (e.g. --formula Sr1Ti1O3)", file)
    mdir = model_dir if model_dir is not None else shipped_model_dir(size)
    with console.status(f"solving {file.name}: {method}, {k} candidates"):
        result = solve_pxrd(pattern, formula, mdir, k=k, steps=steps, n_step_each=langevin_steps,
                            top=REFINE_TOP if top is None else top, seed=seed, method=method,
                            refine_positions=REFINE_POSITIONS if positions is None else positions,
                            distinct=DISTINCT if distinct is None else distinct,
                            prototypes=PROTOTYPES if prototypes is None else prototypes,
                            symmetrize=SYMMETRIZE if symmetrize is None else symmetrize, broaden=broaden,
                            background=background, profile_top=PROFILE_TOP if profile_top is None else profile_top,
                            out_dir=out)
    s = result.summary
    t = Table(title=f"{file.name}: {method} candidates for {formula} (τ = {s['size']:g} Å model)")
    t.add_column("#", no_wrap=True, min_width=len(str(min(show, len(s["candidates"])))))
    t.add_column("source", no_wrap=True, max_width=20, overflow="ellipsis")  # full label in summary.json
    profiled = s["profile_refined"] > 0
    for name in ("a b c (Å)", "α β γ (°)", "R") + (("Rwp",) if profiled else ()):
        t.add_column(name, no_wrap=True)
    for c in s["candidates"][:show]:
        cell = c["cell"]
        rwp = () if not profiled else ("" if c["rwp_measured"] is None else f"{c['rwp_measured']:.3f}",)
        t.add_row(str(c["rank"]), c["source"], " ".join(f"{v:.3f}" for v in cell[:3]),
                  " ".join(f"{v:.1f}" for v in cell[3:]), f"{c['score']:.4f}", *rwp)
    console.print(t)
    plots = s["fit_plot"] + (f", {s['profile_fit_plot']}" if s.get("profile_fit_plot") else "")
    key = (f"R = fit to the input on the model grid (refined for the best {s['refined']})"
           + (f"; the best {s['profile_refined']} re-ranked by Rwp, the weighted-profile fit to the pattern as "
              "measured" if profiled else ""))
    console.print(f"wrote {len(s['candidates'])} CIF files named by rank ({s['candidates'][0]['file']} is rank 1), "
                  f"{plots} and summary.json into {out}/ ({s['seconds']:.1f} s); {key}: the only ranking keys",
                  highlight=False)
    return s
