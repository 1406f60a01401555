"""Graph records spread over SQLite shard files in a directory (:class:`ShardedGraphStore`), and
:func:`open_store` for either layout."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nanosolve.datasets.storage.format import FORMAT_VERSION, Record, _check_idx_key, _encode_meta
from nanosolve.datasets.storage.graph_store import GraphStore, _ReopenByPath
from nanosolve.errors import InputError

__all__ = ["ShardedGraphStore", "open_store"]

_MANIFEST = "manifest.json"
_SHARDED_FORMAT = "nanosolve.sharded_graph_store"


def _write_json_atomic(path: Path, obj) -> None:
    """Write JSON so that a reader or a kill sees either the old or the new file, never half."""
    from nanosolve._io import atomic_write

    with atomic_write(path) as fh:  # unique temporary name (mkstemp) beside it, renamed
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class ShardedGraphStore(_ReopenByPath):
    """Graph records spread over SQLite shard files in a directory, for datasets larger than one
    file should be. Same API as :class:`GraphStore`.

    Record ``idx`` lives in shard ``idx // shard_size`` (file ``shard_NNNNNN.sqlite``). The
    directory's ``manifest.json`` (format, version, shard_size, shard list, attrs) is replaced
    atomically; a shard file is created before it is listed and listed before it receives any
    record, so a kill leaves at most an empty, unlisted shard that is reused on resume.

    ``put_many`` is one transaction per shard touched (atomic per shard, not across shards);
    every record stands alone, so a kill between shards only means fewer records are done.

    Args:
        directory: the store folder (created in mode ``"a"``).
        shard_size: records per shard; None = the existing store's, or 10,000 for a new one.
        mode: ``"a"`` or ``"r"``.
    """

    def __init__(self, directory: str | os.PathLike, shard_size: int | None = None, mode: str = "a"):
        if mode not in ("a", "r"):
            raise ValueError(f"mode must be 'a' or 'r', not {mode!r}")
        self.path = Path(directory)
        self.mode = mode
        self._manifest_path = self.path / _MANIFEST
        self._shards: dict[int, GraphStore] = {}
        self._manifest_stamp = None
        d = self.path
        if d.exists() and not d.is_dir():
            raise InputError("is a file, not a sharded graph store directory", d)
        if not self._manifest_path.is_file():
            if mode == "r":
                raise InputError("no such sharded graph store (missing manifest.json)", d)
            if d.is_dir() and any(d.iterdir()):
                raise InputError("folder is not empty and has no manifest.json; not a sharded graph store", d)
            size = 10_000 if shard_size is None else shard_size
            if not isinstance(size, (int, np.integer)) or size < 1:
                raise InputError(f"shard_size must be a positive integer, got {size!r}", d)
            d.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(
                self._manifest_path,
                {
                    "format": _SHARDED_FORMAT,
                    "format_version": FORMAT_VERSION,
                    "shard_size": int(size),
                    "shards": [],
                    "attrs": {},
                },
            )
        self._load_manifest()
        if shard_size is not None and shard_size != self.shard_size:
            raise InputError(f"store has shard_size {self.shard_size}, not {shard_size}", d)

    # -- manifest --------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        mp = self._manifest_path
        try:
            man = json.loads(mp.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("no such sharded graph store (missing manifest.json)", self.path) from None
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(f"corrupted manifest ({err})", mp) from None
        if not isinstance(man, dict) or man.get("format") != _SHARDED_FORMAT:
            raise InputError("not a sharded graph store manifest", mp)
        if man.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"sharded graph store format version {man.get('format_version')}; this "
                f"nanosolve reads version {FORMAT_VERSION}",
                mp,
            )
        size, shards = man.get("shard_size"), man.get("shards")
        if (
            not isinstance(size, int)
            or size < 1
            or not isinstance(shards, list)
            or not all(isinstance(s, int) and s >= 0 for s in shards)
            or not isinstance(man.get("attrs"), dict)
        ):
            raise InputError("corrupted manifest (bad shard_size, shards or attrs)", mp)
        return man

    def _load_manifest(self) -> None:
        st = self._manifest_path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._manifest_stamp:
            return
        man = self._read_manifest()
        self._manifest = man
        self.shard_size = man["shard_size"]
        for s in sorted(man["shards"]):
            if s not in self._shards:
                f = self._shard_path(s)
                if not f.is_file():
                    raise InputError(f"shard {f.name} listed in the manifest is missing", self.path)
                self._shards[s] = GraphStore(f, mode=self.mode)
        self._manifest_stamp = stamp

    def _refresh(self) -> None:
        if self.mode == "r":  # a writer may have added shards since we opened
            self._load_manifest()

    def _shard_path(self, s: int) -> Path:
        return self.path / f"shard_{s:06d}.sqlite"

    def _shard_for_write(self, s: int) -> GraphStore:
        if s not in self._shards:
            store = GraphStore(self._shard_path(s), mode="a")  # file + schema committed first
            man = dict(self._manifest, shards=sorted(set(self._manifest["shards"]) | {s}))
            _write_json_atomic(self._manifest_path, man)  # then listed, then filled
            self._shards[s] = store
            self._manifest = man
            self._manifest_stamp = None
        return self._shards[s]

    def _ordered(self) -> list[GraphStore]:
        self._refresh()
        return [self._shards[s] for s in sorted(self._shards)]

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(s) for s in self._ordered())

    def keys(self) -> list[str]:
        return [k for s in self._ordered() for k in s.keys()]

    def indices(self) -> list[int]:
        return [i for s in self._ordered() for i in s.indices()]

    def __contains__(self, key: object) -> bool:
        return any(key in s for s in self._ordered())

    def read(self, i: int, fields: Iterable[str] | None = None) -> Record:
        shards = self._ordered()
        sizes = np.array([len(s) for s in shards], dtype=np.int64)
        n = int(sizes.sum())
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"store positions are integers, not {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"position {i} out of range for a store of {n} records")
        i = int(i) % n
        ends = np.cumsum(sizes)
        k = int(np.searchsorted(ends, i, side="right"))
        return shards[k].read(i - int(ends[k] - sizes[k]), fields)

    def __getitem__(self, i: int) -> Record:
        return self.read(i)

    def __iter__(self) -> Iterator[Record]:
        for s in self._ordered():
            yield from s

    def get(self, key: str, fields: Iterable[str] | None = None) -> Record:
        for s in self._ordered():
            if key in s:
                return s.get(key, fields)
        raise KeyError(key)

    def idx_of(self, key: str) -> int:
        for s in self._ordered():
            if key in s:
                return s.idx_of(key)
        raise KeyError(key)

    def read_idx(self, idx: int, fields: Iterable[str] | None = None) -> Record:
        self._refresh()
        shard = self._shards.get(int(idx) // self.shard_size)
        if shard is None:
            raise KeyError(idx)
        return shard.read_idx(idx, fields)

    def meta_rows(self) -> list[tuple[int, str, dict[str, Any]]]:
        return [r for s in self._ordered() for r in s.meta_rows()]

    def meta_table(self) -> list[dict[str, Any]]:
        return [m for s in self._ordered() for m in s.meta_table()]

    @property
    def attrs(self) -> dict[str, Any]:
        self._refresh()
        return dict(self._manifest["attrs"])

    # -- writing ---------------------------------------------------------------------------
    def _require_writable(self, what: str) -> None:
        if self.mode != "a":
            raise InputError(f"store opened read-only; cannot {what}", self.path)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        self._require_writable("set attributes")
        try:
            new = json.loads(_encode_meta({**self._manifest["attrs"], **attrs}))
        except (TypeError, ValueError) as err:
            raise InputError(f"attributes are not JSON-serialisable: {err}") from None
        man = dict(self._manifest, attrs=new)
        _write_json_atomic(self._manifest_path, man)
        self._manifest = man
        self._manifest_stamp = None

    def _check_key_elsewhere(self, idx: int, key: str, shard: int) -> None:
        for s, store in self._shards.items():
            if s != shard and key in store:
                raise InputError(
                    f"record {key!r} is already stored at idx {store.idx_of(key)}, not {idx}; "
                    "a dataset never changes silently",
                    self.path,
                )

    def put(self, idx: int, key: str, record: Mapping[str, Any]) -> bool:
        self._require_writable(f"put {key!r}")
        idx, key = _check_idx_key(idx, key)
        s = idx // self.shard_size
        self._check_key_elsewhere(idx, key, s)
        return self._shard_for_write(s).put(idx, key, record)

    def put_many(self, items: Iterable[tuple[int, str, Mapping[str, Any]]]) -> int:
        self._require_writable("put records")
        groups: dict[int, list] = {}
        seen: dict[str, int] = {}
        for idx, key, rec in items:
            idx, key = _check_idx_key(idx, key)
            if seen.setdefault(key, idx) != idx:
                raise InputError(f"record {key!r} appears twice in one batch, at idx {seen[key]} and {idx}")
            s = idx // self.shard_size
            self._check_key_elsewhere(idx, key, s)
            groups.setdefault(s, []).append((idx, key, rec))
        return sum(self._shard_for_write(s).put_many(groups[s]) for s in sorted(groups))

    def close(self) -> None:
        for s in self._shards.values():
            s.close()
        self._shards = {}

    def __repr__(self) -> str:
        return f"ShardedGraphStore({str(self.path)!r}, shard_size={self.shard_size}, mode={self.mode!r})"


def open_store(path: str | os.PathLike, mode: str = "r") -> GraphStore | ShardedGraphStore:
    """Open a store: a directory is a :class:`ShardedGraphStore`, a file a :class:`GraphStore`.

    A path that does not exist is an error in mode ``"r"``; in mode ``"a"`` it becomes a new
    single-file store.
    """
    p = Path(path)
    if p.is_dir():
        return ShardedGraphStore(p, mode=mode)
    if not p.exists() and mode == "r":
        raise InputError("no such graph store", p)
    return GraphStore(p, mode=mode)
