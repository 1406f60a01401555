"""Provenance of benchmark records: every JSON a benchmark writes is stamped by :func:`stamp`.

A record says which code made it (git commit, dirty flag, package version), how (command line),
where (machine: CPU count, torch threads, platform) and when (UTC), so that a number in the docs
can always be traced to the run that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["machine", "git_commit", "stamp", "write_record"]


def git_commit(cwd: str | os.PathLike | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding ``cwd`` (default: this package)."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
        return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict:
    """One fixed shape for the machine a record was made on."""
    try:
        import torch

        threads = torch.get_num_threads()
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a hard dependency
        threads, torch_version = None, None
    return {"cpus": os.cpu_count(), "torch_threads": threads, "platform": platform.platform(),
            "processor": platform.machine(), "python": platform.python_version(), "torch": torch_version}


def stamp(record: dict, argv: list[str] | None = None) -> dict:
    """A copy of ``record`` with a ``provenance`` entry (commit, version, command, machine, UTC time)."""
    from nanosolve import __version__

    out = dict(record)
    out["provenance"] = {
        **git_commit(),
        "version": __version__,
        "command": " ".join(sys.argv if argv is None else argv),
        "machine": machine(),
        "utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return out


def write_record(path: str | os.PathLike, record: dict, argv: list[str] | None = None) -> Path:
    """Stamp ``record`` and write it as JSON to ``path`` atomically (a unique temporary file in the same
    folder, then renamed), so an interrupted run never leaves half a record."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(stamp(record, argv), indent=1, default=_jsonable) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
