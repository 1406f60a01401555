"""Write patterns as plain column files (``.xy``, ``.dat``, ``.gr``, ``.csv``) that every program reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_write
from nanosolve.scattering.pattern import X_LABELS, Y_LABELS, Pattern

_X_NAMES = {"q": "Q_inv_angstrom", "tth": "two_theta_deg", "r": "r_angstrom"}


def write_pattern(pattern: Pattern, path: str | os.PathLike) -> Path:
    """Write x, y (and sigma) columns with a ``#`` header giving units, kind and wavelength.

    ``.csv`` files are comma-separated with a one-line column header; everything else is
    whitespace-separated. The file is written to a temporary name and renamed, so a failure
    never leaves half a file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [pattern.x, pattern.y] + ([pattern.sigma] if pattern.sigma is not None else [])
    data = np.column_stack(cols)
    names = [_X_NAMES[pattern.x_unit], pattern.kind] + (["sigma"] if pattern.sigma is not None else [])
    meta = {k: v for k, v in pattern.metadata.items() if isinstance(v, (str, int, float, bool, type(None)))}
    with atomic_write(path) as fh:  # unique temporary name beside the target, renamed at the end
        if path.suffix.lower() == ".csv":
            fh.write(",".join(names) + "\n")
            np.savetxt(fh, data, delimiter=",", fmt="%.8g")
        else:
            fh.write(f"# nanosolve {pattern.kind} pattern\n")
            fh.write(f"# x: {X_LABELS[pattern.x_unit]}   y: {Y_LABELS[pattern.kind]}\n")
            if pattern.wavelength:
                fh.write(f"# wavelength = {pattern.wavelength:.6f}  (Å)\n")
            if pattern.radiation:
                fh.write(f"# radiation = {pattern.radiation}\n")
            fh.write(f"# metadata = {json.dumps(meta, default=str)}\n")
            fh.write("# " + " ".join(names) + "\n")
            np.savetxt(fh, data, fmt="%.8g")
    return path
