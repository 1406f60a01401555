"""Preparing a CrystalNet training run: the config of a preset, the data set (opened, or built
from the CDVAE CSVs and AFLOW prototypes), the run's provenance in ``config.extra`` and the
density scale of a run being resumed. Used by ``nanosolve train crystalnet`` and the benchmark
scripts alike."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nanosolve.errors import InputError
from nanosolve.models.training import check_resumable, main_process_first

PRESETS = ("cpu", "paper")


@dataclass
class PreparedRun:
    """``config`` and the :class:`~nanosolve.models.crystalnet.dataset.CrystalNetData` (its ``split``)."""

    config: object
    data: object


def make_config(preset: str, overrides: dict | None = None):
    """CrystalNetConfig from a preset name and ``--set`` overrides."""
    from nanosolve.models.crystalnet.config import CrystalNetConfig

    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    factory = CrystalNetConfig.cpu if preset == "cpu" else CrystalNetConfig.paper
    try:
        return factory(**dict(overrides or {}))
    except InputError:
        raise
    except (TypeError, ValueError) as err:  # an unknown key, or a value of the wrong type ("batch_size=x")
        raise InputError(f"invalid --set option: {err}") from None


def prepare_run(data_dir: str | os.PathLike, out: str | os.PathLike, system: str = "cubic", preset: str = "cpu",
                overrides: dict | None = None, cdvae: str | os.PathLike | None = None,
                substitutions: int | None = None, origin: str | None = None, seed: int = 0,
                config=None) -> PreparedRun:
    """Open (or build, by the main process first under torchrun) the ``system`` data set in
    ``data_dir``; the config (``extra``: system, preset, data, train seed); refuse a resumable
    run in ``out`` with other settings and keep its ``density_scale``."""
    from nanosolve.models.crystalnet.dataset import SYSTEMS, open_or_build

    if system not in SYSTEMS:
        raise InputError(f"unknown crystal system {system!r}; use one of {', '.join(SYSTEMS)}")
    config = make_config(preset, overrides) if config is None else config
    if cdvae is not None and not Path(cdvae).is_dir():
        raise InputError("CDVAE folder not found", cdvae)
    with main_process_first():
        data = open_or_build(data_dir, system, cdvae_dir="auto" if cdvae is None else cdvae,
                             n_substitutions=substitutions, seed=0, **({"origin": origin} if origin else {}))
    config.extra.update(system=system, preset=preset, data=str(data_dir), train_seed=seed)
    previous = check_resumable(Path(out), config)
    if previous is not None and "density_scale" in previous.get("extra", {}):
        config.extra["density_scale"] = previous["extra"]["density_scale"]
    return PreparedRun(config, data)


__all__ = ["PreparedRun", "prepare_run", "make_config", "PRESETS"]
