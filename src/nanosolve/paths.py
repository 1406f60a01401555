"""Where nanosolve finds the read-only reference data (datasets, measured patterns) it does not ship.

One function, :func:`shared_data_dir`, used by the benchmarks, the tests and the data loaders:
the ``NANOSOLVE_DATA`` environment variable when set, else ``shared/data`` beside the source checkout
(``<checkout>/../shared/data``). The folder is never written to.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "shared_data_dir"]

#: Environment variable that overrides :func:`shared_data_dir`.
DATA_ENV = "NANOSOLVE_DATA"


def shared_data_dir() -> Path:
    """The reference-data folder: ``$NANOSOLVE_DATA`` if set, else ``<checkout>/../shared/data``.

    Returns:
        The path (it may not exist: callers that need it skip or fail with a message naming it).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    # src/nanosolve/paths.py -> parents[2] is the checkout; the data sit beside it.
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"
