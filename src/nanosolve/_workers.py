"""Worker processes that die with their parent.

A ``kill -9`` of a run leaves its pool workers orphaned: they keep computing (and holding hundreds
of MB each) until their queue runs dry. :func:`die_with_parent`, given as a pool's
``initializer`` (with the parent's pid as ``initargs``), makes the kernel send SIGKILL to the
worker when its parent dies (``prctl(PR_SET_PDEATHSIG)`` on Linux); elsewhere a daemon thread
polls ``os.getppid()`` and exits the worker once the parent is gone.
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["die_with_parent", "pool_kwargs"]

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 1.0


def die_with_parent(parent_pid: int | None = None) -> None:
    """Call in a freshly started worker: it is killed as soon as ``parent_pid`` (default: its current
    parent) exits, however that exits."""
    parent_pid = os.getppid() if parent_pid is None else int(parent_pid)
    armed = False
    try:
        import ctypes
        import sys

        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc / no prctl: the watchdog below does it
        armed = False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="die-with-parent").start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_SECONDS)
    os._exit(1)


def pool_kwargs() -> dict:
    """``initializer``/``initargs`` for a ``ProcessPoolExecutor`` whose workers die with this process."""
    return {"initializer": die_with_parent, "initargs": (os.getpid(),)}
