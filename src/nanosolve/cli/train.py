"""``nanosolve train <family>``: one table of the training commands, each in its family's CLI
module, plus ``nanosolve train export`` (a run's best weights, e.g. to ship them).

Every training command takes ``--out/-o`` (the run folder; rerun = resume), ``--max-minutes``,
``--max-epochs``, ``--seed``, ``--device`` and ``--tensorboard``, and trains with the shared loop
(:mod:`nanosolve.models.training`), data-parallel under ``torchrun``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nanosolve.cli import cdvae as cdvae_cli
from nanosolve.cli import crystalnet as crystalnet_cli
from nanosolve.cli import deepstruc as deepstruc_cli
from nanosolve.cli import pxrdnet as pxrdnet_cli
from nanosolve.cli.common import console, friendly_errors
from nanosolve.cli.deepstruc import PRESETS, SPLITS, make_config  # noqa: F401  (their former home)
from nanosolve.cli.train_options import LEGACY_POSITIONAL

app = typer.Typer(help="Train generative structure-solution models. Lengths in Å.", no_args_is_help=True)

#: name -> command of ``nanosolve train NAME``
TRAIN_COMMANDS = {
    "deepstruc": deepstruc_cli.train_cmd,  # PDF -> metal nanoparticle (CVAE / DAE)
    "crystalnet": crystalnet_cli.train_command,  # pattern + formula -> electron density
    "cdvae": cdvae_cli.train_cmd,  # periodic crystal generative model
    "pxrdnet": pxrdnet_cli.train_cmd,  # CDVAE + PXRD regressor (powder solve)
}
for _name, _command in TRAIN_COMMANDS.items():
    # crystalnet still takes its run folder as a trailing positional (the older form)
    app.command(_name, context_settings=LEGACY_POSITIONAL if _name == "crystalnet" else None)(_command)


@app.command("export", context_settings=LEGACY_POSITIONAL)
@friendly_errors
def export(ctx: typer.Context, run: Path = typer.Argument(..., help="a training run directory"),
           dest: Path = typer.Option(None, "--out", "-o", help="output directory (config.json + best.pt)",
                                     show_default=False),
           half: bool = typer.Option(True, help="store weights as float16 (half the size; loaded back as float32)")):
    """Copy a run's best weights + config to --out (e.g. to ship them), optionally as float16.
    DeepStruc and PXRDNet runs (told apart by their config)."""
    from nanosolve.cli.train_options import legacy_positional, resolve_out

    dest = resolve_out(dest, legacy_positional(ctx))

    from nanosolve.models.checkpoints import atomic_torch_save
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
    atomic_torch_save(state, dest / "best.pt")
    config.to_json(dest / "config.json")
    size = (dest / "best.pt").stat().st_size / 1e6
    console.print(f"wrote {dest}/best.pt ({size:.2f} MB) and config.json", highlight=False)
