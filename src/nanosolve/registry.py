"""The models shipped inside the package, found by family and settings: one registry for the solve,
the command line and user code.

Each shipped model is a folder ``nanosolve/data/<family>/<name>/`` holding ``config.json`` (its
``extra.family`` names the family), the weights and a ``TRAINING.md``. Reading the registry opens
only the JSON files, so it costs nothing to import.

    >>> from nanosolve import pretrained
    >>> pretrained("deepstruc")              # doctest: +SKIP
    PosixPath('.../nanosolve/data/deepstruc/cvae_cpu')
    >>> pretrained("pxrdnet", size=10)       # doctest: +SKIP
    PosixPath('.../nanosolve/data/pxrdnet/cpu_10A')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nanosolve.errors import InputError

__all__ = ["ShippedModel", "shipped_models", "pretrained"]


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: its family, folder name, folder and ``config.json`` contents."""

    family: str
    name: str
    path: Path
    config: dict = field(repr=False)

    def setting(self, key: str):
        """A top-level config value, else one under ``extra``; None when neither holds ``key``."""
        if key in self.config:
            return self.config[key]
        extra = self.config.get("extra")
        return extra.get(key) if isinstance(extra, dict) else None


def _data_root() -> Path:
    return Path(str(resources.files("nanosolve") / "data"))


def shipped_models() -> list[ShippedModel]:
    """Every model folder under ``nanosolve/data`` that has a ``config.json``, sorted by family and name."""
    out = []
    for cfg_path in sorted(_data_root().glob("*/*/config.json")):
        try:
            config = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"unreadable shipped model config ({err})", cfg_path) from None
        extra = config.get("extra") if isinstance(config.get("extra"), dict) else {}
        family = extra.get("family") or cfg_path.parent.parent.name
        out.append(ShippedModel(family, cfg_path.parent.name, cfg_path.parent, config))
    return out


def _matches(value, wanted) -> bool:
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float)):
        return abs(float(value) - float(wanted)) < 1e-6
    return value == wanted


def pretrained(name: str, **settings) -> Path:
    """The folder of the shipped model of family ``name`` whose config holds ``settings``.

    Args:
        name: a model family (``"deepstruc"``, ``"pxrdnet"``), or ``"<family>/<folder>"`` for one folder.
        **settings: config values the model must have, top level or under ``extra``
            (``size=10`` picks the 10 Å PXRDNet model).

    Returns:
        The model folder, ready for the family's ``load_model``.

    Raises:
        InputError: no shipped model fits (the message lists what is shipped), or several do
            and the settings do not tell them apart.
    """
    family, _, folder = name.partition("/")
    models = [m for m in shipped_models() if m.family == family and (not folder or m.name == folder)]
    if not models:
        have = ", ".join(sorted({m.family for m in shipped_models()})) or "none"
        raise InputError(f"no shipped model of family {name!r} (shipped families: {have})")
    fits = [m for m in models if all(_matches(m.setting(k), v) for k, v in settings.items())]
    if not fits:
        keys = sorted(settings)
        have = "; ".join(f"{m.name}: " + ", ".join(f"{k}={m.setting(k)!r}" for k in keys) for m in models)
        want = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        raise InputError(f"no shipped {family} model with {want} (shipped: {have})")
    if len(fits) > 1:
        raise InputError(f"{len(fits)} shipped {family} models fit ({', '.join(m.name for m in fits)}); "
                         f"name one as '{family}/<folder>' or give more settings")
    return fits[0].path
