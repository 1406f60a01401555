"""One writer at a time: an exclusive, re-entrant lock file beside a store (:func:`store_lock`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nanosolve.errors import InputError

__all__ = ["store_lock", "lock_path"]

_HELD_LOCKS: dict[str, list] = {}  # resolved lock path -> [fd, depth]: re-entrant within a process


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of a store: ``<store>.lock`` beside the SQLite file or the shard folder."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


@contextlib.contextmanager
def store_lock(path: str | os.PathLike):
    """Hold an exclusive lock on the store at ``path`` while writing it (``fcntl.flock`` on
    :func:`lock_path`, released when the block ends or the process dies, ``kill -9`` included).

    A second writer — another process, or another generation in this one started through a new lock
    file handle — gets InputError naming the store and the holder's pid at once (no waiting). The
    lock is re-entrant within one process, so :func:`generate` can take it under the CLI's.
    """
    import fcntl

    lp = lock_path(path)
    lp.parent.mkdir(parents=True, exist_ok=True)
    key = str(lp.resolve())
    held = _HELD_LOCKS.get(key)
    if held is not None and held[2] == os.getpid():
        held[1] += 1
        try:
            yield lp
        finally:
            held[1] -= 1
        return
    fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise InputError(
            f"another process (pid {holder}) is writing this dataset store; wait for it to "
            "finish or choose another output",
            path,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[key] = [fd, 1, os.getpid()]
    try:
        yield lp
    finally:
        _HELD_LOCKS.pop(key, None)
        os.close(fd)  # closing the descriptor releases the flock
