"""Atomic file writes shared by every layer: a unique temporary file in the target folder, renamed.

A fixed temporary name (``out.xy.tmp``) can collide between two runs and follows a symlink planted
under that name; :func:`tempfile.mkstemp` creates a fresh file (O_EXCL, mode 0600) instead, and
:func:`os.replace` swaps it in, so a reader sees the old file or the new one, never half of one,
and an interrupted write leaves nothing behind.

:func:`staged_folder` does the same for a set of files: they are written into a fresh temporary
folder beside the target and moved in together at the end, so a failed run leaves the target as
it was. The temporary folder's name holds the process id of its run (``.OUT.partial-<pid>-<host>-…``),
so the next run of the same target removes the ones a killed run (``kill -9``) left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_path",
    "staged_folder",
    "remove_stale_partials",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a unique temporary path beside ``path`` (same folder, same extension unless ``suffix``)
    for a writer that wants a file name (``np.save``, ``savefig``); renamed onto ``path`` on success,
    removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """``with atomic_write(p) as fh: fh.write(...)``: the file appears at ``p`` only when the block ends
    without an exception."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike, stale: Callable[[Path], Iterable[Path]] | None = None):
    """Yield a new, empty folder beside ``path`` for a run to write its files into.

    When the block ends without an exception, the files move into ``path`` (created when missing;
    one rename when it did not exist), replacing the entries of the same name and the files
    ``stale(path)`` lists (an earlier run's results); any other file in ``path`` stays. On an
    exception, the temporary folder and the parent folders made for it are removed and ``path``
    keeps exactly what it held. Only renames within one folder happen at the end, and if one fails
    the entries already moved are put back.

    The temporary folder is ``.<name>.partial-<pid>-<host>-<random>``; on entry, the ones of the same
    ``path`` whose process is gone (see :func:`remove_stale_partials`) are removed first.
    """
    path = Path(path)
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(path), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the mode a plain mkdir would
    try:
        yield tmp
        _publish(tmp, path, stale)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:
            try:
                p.rmdir()
            except OSError:  # something else was put there meanwhile: leave it
                break
        raise


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders of :func:`staged_folder` runs of ``path`` that can no longer
    finish: named for a process of this host that no longer exists (a run killed by ``kill -9`` or a
    power cut). A live run's folder (its process exists), this process' own, a folder of another
    host (a shared file system) and anything not named exactly as :func:`staged_folder` names them
    (symlinks included) are left alone. Returns the folders removed."""
    path = Path(path)
    name = re.compile(rf"{re.escape(_PARTIAL_PREFIX.format(name=path.name))}(\d+)-([0-9a-f]{{8}})-[a-z0-9_]+")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:  # no parent folder (nothing to clean) or one we may not list
        return []
    removed = []
    for entry in entries:
        m = name.fullmatch(entry.name)
        if m is None or m.group(2) != _host_tag() or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _process_exists(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


_PARTIAL_PREFIX = ".{name}.partial-"


def _partial_prefix(path: Path) -> str:
    """``.<name>.partial-<pid>-<host>-``: the temporary folder names its owner, for
    :func:`remove_stale_partials`."""
    return f"{_PARTIAL_PREFIX.format(name=path.name)}{os.getpid()}-{_host_tag()}-"


def _host_tag() -> str:
    """8 hex digits of the host name: a process id means something only on the host that made it."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie, or one of another user, counts)."""
    import psutil

    try:
        return psutil.pid_exists(pid)
    except (OSError, OverflowError, ValueError):  # a pid the OS cannot even look up: no such process
        return False


def _publish(tmp: Path, path: Path, stale) -> None:
    """Move the entries of ``tmp`` into ``path`` (see :func:`staged_folder`); ``tmp`` is gone after."""
    if not path.exists():
        os.rename(tmp, path)
        return
    new = sorted(os.listdir(tmp))
    old = {p.name for p in (stale(path) if stale is not None else ())}
    old |= {n for n in new if os.path.lexists(path / n)}
    backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.replaced-", dir=path.parent))
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for n in sorted(old):
            os.replace(path / n, backup / n)
            moved_old.append(n)
        for n in new:
            os.replace(tmp / n, path / n)
            moved_new.append(n)
    except BaseException:
        for n in reversed(moved_new):  # put everything back as it was
            os.replace(path / n, tmp / n)
        for n in reversed(moved_old):
            os.replace(backup / n, path / n)
        os.rmdir(backup)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    os.rmdir(tmp)


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()
