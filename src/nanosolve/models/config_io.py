"""JSON round-trip shared by every model family's config dataclass."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from nanosolve._io import atomic_write_text
from nanosolve.errors import InputError


class JsonConfig:
    """Mixin for a config dataclass: ``to_dict``/``from_dict``/``to_json``/``from_json``.

    Unknown keys, wrong types and unreadable files become one ``InputError`` naming the file;
    ``to_json`` writes atomically (temp file + os.replace), so a crash never leaves half a config.
    Subclasses set ``_FAMILY`` (used in messages).
    """

    _FAMILY = "model"

    def nonfinite_problems(self) -> list[str]:
        """``"<field> must be finite, got inf"`` for each float setting that is NaN or ±inf (a learning
        rate of inf passes ``lr > 0`` and only shows up as a diverged first epoch)."""
        return [
            f"{f.name} must be finite, got {v}"
            for f in dataclasses.fields(self)
            if isinstance(v := getattr(self, f.name), float) and not math.isfinite(v)
        ]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict, path=None):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown {cls._FAMILY} config keys {unknown}", path)
        try:
            return cls(**d)
        except InputError as err:
            raise InputError(err.problem, path) from None
        except (TypeError, ValueError) as err:
            raise InputError(f"invalid {cls._FAMILY} config: {err}", path) from None

    def to_json(self, path: str | os.PathLike) -> None:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")  # unique temp name, renamed

    @classmethod
    def from_json(cls, path: str | os.PathLike):
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError("config file not found", path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read {cls._FAMILY} config JSON: {err}", path) from None
        if not isinstance(d, dict):
            raise InputError(f"{cls._FAMILY} config JSON must be an object", path)
        return cls.from_dict(d, path)
