"""CrystalNet commands: ``nanosolve train crystalnet`` and ``nanosolve predict crystalnet``.

Registered by a line in :mod:`nanosolve.cli.train` (train) and :mod:`nanosolve.cli.main` (predict).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from nanosolve.cli.common import (
    EPOCHS,
    SEED,
    THREADS,
    check_number,
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
    epoch_ticker,
    finish,
    legacy_positional,
    progress_bars,
    resolve_out,
    say,
)
from nanosolve.errors import InputError

PRESETS = ("cpu", "paper")  # as nanosolve.models.crystalnet.run.PRESETS (not imported: keeps the CLI start fast)





def make_config(preset: str, overrides: dict):
    """CrystalNetConfig from a preset name + overrides (:func:`nanosolve.models.crystalnet.run.make_config`)."""
    from nanosolve.models.crystalnet.run import make_config as _make

    return _make(preset, overrides)


def _epoch_info(rec: dict) -> str:
    info = f"L1 {rec['train_l1']:.4f}  KL {rec['train_kl']:.3f}  val L1 {rec['val_l1']:.4f}"
    if "val_ssim" in rec:
        info += f"  val SSIM {rec['val_ssim']:.3f}"
    return info


@friendly_errors
def train_command(
    ctx: typer.Context,
    data_dir: Path = typer.Argument(..., help="data set folder; built there (from --cdvae and AFLOW prototypes) "
                                              "if it holds none"),
    out: Path = typer.Option(None, "--out", "-o", help=OUT_HELP, show_default=False),
    system: str = typer.Option("cubic", help="crystal system of the data set: cubic or trigonal"),
    preset: str = typer.Option("cpu", help="cpu (small, trains in minutes) or paper (the paper's widths)"),
    max_minutes: float = typer.Option(None, help=MAX_MINUTES_HELP),
    max_epochs: int = typer.Option(None, **EPOCHS, help="total epochs (default from the preset)"),
    cdvae: Path = typer.Option(None, help="folder with perov_5/ and carbon_24/ CSVs (default ../shared/data/cdvae)"),
    substitutions: int = typer.Option(None, min=0, max=1000, help="element substitutions per AFLOW prototype (default 8 cubic, 30 trigonal)"),
    origin: str = typer.Option(None, help="origin convention of a new data set: heaviest (heaviest atom at 0,0,0, "
                                          "the default; removes most of the origin ambiguity) or standard (spglib's)"),
    seed: int = typer.Option(0, **SEED, help="training seed"),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    tensorboard: bool = typer.Option(False, help=TENSORBOARD_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    threads: int = typer.Option(1, **THREADS, help="torch CPU threads"),
    set_: list[str] = typer.Option(None, "--set", help="config override key=value (JSON value), repeatable"),
):
    """Train CrystalNet (pattern + formula -> electron density) on cubic or trigonal crystals."""
    import torch

    from nanosolve.models.crystalnet.dataset import SYSTEMS
    from nanosolve.models.crystalnet.run import prepare_run
    from nanosolve.models.crystalnet.train import train

    check_max_minutes(max_minutes)
    out = resolve_out(out, legacy_positional(ctx))
    if system not in SYSTEMS:
        raise InputError(f"unknown crystal system {system!r}; use one of {', '.join(SYSTEMS)}")
    torch.set_num_threads(int(threads))
    check_device(device)
    mute(console, quiet, ctx)
    config = make_config(preset, parse_overrides(set_))
    if cdvae is not None and not cdvae.is_dir():
        raise InputError("CDVAE folder not found", cdvae)
    with console.status(f"opening / building the {system} data set in {data_dir}"):
        run = prepare_run(data_dir, out, system, preset, cdvae=cdvae, substitutions=substitutions, origin=origin,
                          seed=seed, config=config)
    data = run.data
    sizes = {k: len(v) for k, v in data.split.items()}
    say(f"CrystalNet ({preset}) on {len(data)} {system} crystals: train {sizes.get('train', 0)}, "
        f"val {sizes.get('val', 0)}, test {sizes.get('test', 0)} (split by reduced formula)")
    t0 = time.perf_counter()
    with progress_bars() as progress:
        tick = epoch_ticker(progress, config, max_epochs, _epoch_info)
        result = train(config, data, out, max_minutes=max_minutes, max_epochs=max_epochs, seed=seed, resume=True,
                       progress=tick, device=device, tensorboard=tensorboard)
    finish(out, result, time.perf_counter() - t0, config.monitor, monitor=config.monitor)


#: the files ``predict crystalnet`` writes (nanosolve.models.crystalnet.predict.write_outputs)
PREDICT_FILES = ("density.cube", "density_slices.png", "density_isosurface.png", "decoded.cif", "prediction.json")


def _earlier_prediction(out: Path) -> list[Path]:
    """The files of an earlier ``predict`` run in ``out`` (:data:`PREDICT_FILES`)."""
    return earlier_run_files(out, names=PREDICT_FILES, pattern=None, listed=())


def _name_files_in(res, work: Path, out: Path) -> None:
    """The file paths of a prediction written into ``work`` as they will be once moved into ``out``:
    in ``res.files`` and in the ``files`` of ``work/prediction.json`` (rewritten)."""
    from nanosolve._io import atomic_write_text

    def moved(path) -> Path:
        path = Path(path)
        return out / path.relative_to(work) if path.is_relative_to(work) else path

    res.files = {k: moved(v) for k, v in res.files.items()}
    summary_path = work / "prediction.json"
    summary = json.loads(summary_path.read_text())
    summary["files"] = {k: str(moved(v)) for k, v in summary.get("files", {}).items()}
    atomic_write_text(summary_path, json.dumps(summary, indent=1) + "\n")


@friendly_errors
def predict_command(
    pattern: Path = typer.Argument(..., help="x-ray powder pattern (.xy/.xye/.dat/.csv/.chi columns or a powder CIF)"),
    formula: str = typer.Option(None, "--formula", "-f", help="composition, e.g. SrTiO3 (counts per cell fix the "
                                                              "decoded atom count) or Sr:1,Ti:1,O:3"),
    model_dir: Path = typer.Option(None, "--model-dir", help="CrystalNet run folder (config.json + best.pt) or .pt file",
                                   show_default=False),
    model_old: Path = typer.Option(None, "--model", "-m", hidden=True, help="deprecated spelling of --model-dir"),
    out: Path = typer.Option(Path("crystalnet_prediction"), "-o", "--out", help="output folder"),
    wavelength: str = typer.Option(None, "--wavelength", "-w", help="Å or a name (CuKa, MoKa...) if the pattern is "
                                                                    "on 2θ and the file does not say"),
    x_unit: str = typer.Option(None, help="x column unit if not evident: tth (2θ, degrees) or q (Å⁻¹)"),
    cell: str = typer.Option(None, help="cell: 'a' (cubic) or 'a,b,c,alpha,beta,gamma' (Å, °); default: index a "
                                        "cubic cell from the pattern (cubic models only)"),
    samples: int = typer.Option(0, min=0, max=10_000, help="average this many latent draws (0: the posterior mean)"),
    threshold: float = typer.Option(0.02, help="peak threshold for decoding, fraction of the maximum density"),
    plots: bool = typer.Option(True, help="write the slice and isosurface PNGs"),
    threads: int = typer.Option(1, **THREADS, help="torch CPU threads"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the results of an earlier prediction in the "
                                                              "output folder when the new ones are complete"),
):
    """Predict the electron density of a crystal from its powder pattern and formula; write it as a
    Gaussian cube file (e⁻/Bohr³) with slice and isosurface PNGs, and the atoms decoded from it as a CIF.

    The files are written beside OUT and moved in when all are written: a run that fails midway leaves
    OUT as it was."""
    import torch

    from nanosolve.models.crystalnet.predict import parse_formula, predict
    from nanosolve.scattering.readers import read_pattern

    check_number("--threshold", threshold, 0, 1, lo_open=True, hi_open=True)
    if not formula:
        raise InputError("no composition given: pass --formula (e.g. --formula SrTiO3)")
    comp = parse_formula(formula)  # refuse a bad formula before reading anything else
    if model_dir is not None and model_old is not None:
        raise InputError("the model is given twice (--model-dir and --model); use --model-dir")
    model = model_dir if model_dir is not None else model_old
    if model is None:
        raise InputError("no model given: pass --model-dir (a CrystalNet run folder or .pt file)")
    if not model.exists():
        raise InputError("model not found", model)
    out = output_folder(out, "-o", overwrite, earlier=_earlier_prediction)
    torch.set_num_threads(int(threads))
    pat = read_pattern(pattern, wavelength=wavelength, x_unit=x_unit)
    if pat.kind != "xrd":
        raise InputError(f"CrystalNet needs an x-ray powder pattern, got kind {pat.kind!r}", pattern)
    # written into a folder beside OUT and moved in at the end: a failed run leaves OUT as it was
    with console.status("predicting the density"), results_folder(out, overwrite, earlier=_earlier_prediction) as work:
        res = predict(model, pat, comp, cell=cell, n_samples=samples, out_dir=work, threshold=threshold, plots=plots)
        _name_files_in(res, work, out)
    for note in res.notes:
        console.print(note, highlight=False)
    if res.crystal is not None:
        console.print(f"decoded {res.crystal.formula}: {len(res.crystal)} atoms", highlight=False)
    for path in res.files.values():
        console.print(f"wrote {path}", highlight=False)

