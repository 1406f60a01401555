"""One graph store in one SQLite file (:class:`GraphStore`); the format is in
:mod:`nanosolve.datasets.storage.format`, the contract in :mod:`nanosolve.datasets.storage`."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from nanosolve.datasets.storage.format import (
    _APPLICATION_ID,
    _SQLITE_MAGIC,
    FORMAT_VERSION,
    Record,
    _check_idx_key,
    _decode_meta,
    _diff_fields,
    _encode_meta,
    decode_arrays,
    encode_arrays,
    split_record,
)
from nanosolve.errors import InputError

__all__ = ["GraphStore"]

_BUSY_TIMEOUT_MS = 60_000

# Connections inherited through fork() are parked here and never used or closed in the child:
# SQLite forbids carrying a connection across fork, and closing it could checkpoint or drop
# the WAL under the parent's feet. The child opens its own connection instead.
_INHERITED_CONNECTIONS: list = []


class _ReopenByPath:
    """Context manager + pickling by path, shared by both store layouts.

    Pickling carries only the path and mode (for spawn-started DataLoader or generator workers);
    the new process opens its own connection.
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": str(self.path), "mode": self.mode}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], mode=state["mode"])


class GraphStore(_ReopenByPath):
    """Graph records in one SQLite file.

    Args:
        path: the store file (created with its parent folders in mode ``"a"``).
        mode: ``"a"`` read/write (create if needed) or ``"r"`` read-only.

    Records are ordered by ``idx`` (the task index of the recipe), so a store's order does not
    depend on the order in which workers finished. Positions ``store[i]`` are 0..len-1 in that
    order (``idx`` may have gaps while a generation is incomplete).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "a"):
        if mode not in ("a", "r"):
            raise ValueError(f"mode must be 'a' or 'r', not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._cache: tuple[int, np.ndarray, list[str]] | None = None  # (data_version, idx, keys)
        self._conn = self._connect()

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        p = self.path
        if p.is_dir():
            raise InputError("is a directory, not a graph store file (use ShardedGraphStore / open_store)", p)
        if self.mode == "r" and not p.is_file():
            raise InputError("no such graph store", p)
        if self.mode == "r" and p.stat().st_size == 0:
            raise InputError("empty file, not a graph store", p)
        if p.is_file() and p.stat().st_size > 0:
            with open(p, "rb") as fh:
                if fh.read(16) != _SQLITE_MAGIC:
                    raise InputError("not a graph store (not an SQLite database file)", p)
        if self.mode == "a":
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._open_sqlite(p)
            self._check_or_init(conn)
        except sqlite3.DatabaseError as err:
            raise InputError(f"cannot open graph store: {err}", p) from None
        return conn

    def _open_sqlite(self, p: Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per put/put_many
        if self.mode == "a":
            conn = sqlite3.connect(
                str(p), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        else:
            uri = f"file:{quote(str(p.resolve()))}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as err:
                if "unable to open" not in str(err) and "readonly" not in str(err):
                    raise
                # a WAL file in a folder we cannot write (read-only media): no writer can be
                # active there either, so opening it as immutable is safe
                conn.close()
                conn = sqlite3.connect(
                    f"file:{quote(str(p.resolve()))}?immutable=1",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return conn

    def _check_or_init(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id == 0 and self.mode == "a":
            n_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if n_tables:
                raise InputError("not a graph store (an SQLite database of another kind)", self.path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("PRAGMA application_id").fetchone()[0] == 0:  # no other process won
                    conn.execute(f"PRAGMA application_id={_APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
                    conn.execute(
                        "CREATE TABLE records(idx INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
                        " meta TEXT NOT NULL, blob BLOB NOT NULL)"
                    )
                    conn.execute("CREATE INDEX records_meta ON records(idx, key, meta)")
                    conn.execute("CREATE TABLE attrs(name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != _APPLICATION_ID:
            raise InputError("not a graph store (SQLite file of another application)", self.path)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != FORMAT_VERSION:
            raise InputError(
                f"graph store format version {version}; this nanosolve reads version {FORMAT_VERSION}", self.path
            )
        if self.mode == "a":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: kill-safe, see module doc

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError(f"{self.path}: graph store is closed")
        if os.getpid() != self._pid:  # we are a forked child (e.g. a DataLoader worker)
            _INHERITED_CONNECTIONS.append(self._conn)
            self._pid = os.getpid()
            self._cache = None
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        """Close the file (idempotent). A closed store raises on use."""
        if self._conn is not None and os.getpid() == self._pid:
            self._conn.close()
        self._conn = None

    def __repr__(self) -> str:
        return f"GraphStore({str(self.path)!r}, mode={self.mode!r})"

    # -- reading ---------------------------------------------------------------------------
    def _index(self) -> tuple[np.ndarray, list[str]]:
        """(idx array, keys) in idx order, cached until another connection commits."""
        db = self._db
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if self._cache is None or self._cache[0] != version:
            rows = db.execute("SELECT idx, key FROM records INDEXED BY records_meta ORDER BY idx").fetchall()
            idx = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            self._cache = (version, idx, [r[1] for r in rows])
        return self._cache[1], self._cache[2]

    def __len__(self) -> int:
        return len(self._index()[0])

    def keys(self) -> list[str]:
        """Record keys in idx order."""
        return list(self._index()[1])

    def indices(self) -> list[int]:
        """Record idx values (recipe task indices), increasing."""
        return self._index()[0].tolist()

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self._db.execute("SELECT 1 FROM records WHERE key=?", (key,)).fetchone() is not None

    def _row_to_record(self, key: str, meta: str, blob: bytes, fields) -> Record:
        rec = _decode_meta(meta, key, self.path)
        if fields is not None:
            keep = set(fields)
            rec = {k: v for k, v in rec.items() if k in keep}
        rec.update(decode_arrays(blob, fields, key=key, path=self.path))
        return rec

    def _fetch(self, where: str, value) -> tuple | None:
        try:
            return self._db.execute(f"SELECT idx, key, meta, blob FROM records WHERE {where}=?", (value,)).fetchone()
        except sqlite3.DatabaseError as err:
            raise InputError(f"cannot read record {where}={value!r}: {err}", self.path) from None

    def read(self, i: int, fields: Iterable[str] | None = None) -> Record:
        """Record at position ``i`` (0..len-1 in idx order; negative counts from the end).

        ``fields``: only these names (arrays not listed are not decoded).
        """
        idx = self._index()[0]
        n = len(idx)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"store positions are integers, not {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"position {i} out of range for a store of {n} records")
        row = self._fetch("idx", int(idx[i]))
        if row is None:  # removed underneath us: cannot happen with the one-writer contract
            raise IndexError(f"record at position {i} vanished")
        return self._row_to_record(row[1], row[2], row[3], fields)

    def __getitem__(self, i: int) -> Record:
        return self.read(i)

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self)):
            yield self.read(i)

    def get(self, key: str, fields: Iterable[str] | None = None) -> Record:
        """Record by key. Raises KeyError if absent."""
        row = self._fetch("key", key)
        if row is None:
            raise KeyError(key)
        return self._row_to_record(row[1], row[2], row[3], fields)

    def idx_of(self, key: str) -> int:
        """The idx of a stored key (KeyError if absent)."""
        row = self._db.execute("SELECT idx FROM records WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def read_idx(self, idx: int, fields: Iterable[str] | None = None) -> Record:
        """Record by its idx (recipe task index). Raises KeyError if absent."""
        row = self._fetch("idx", int(idx))
        if row is None:
            raise KeyError(idx)
        return self._row_to_record(row[1], row[2], row[3], fields)

    def meta_rows(self) -> list[tuple[int, str, dict[str, Any]]]:
        """(idx, key, label dict) of every record in idx order, from one consistent snapshot."""
        rows = self._db.execute("SELECT idx, key, meta FROM records INDEXED BY records_meta ORDER BY idx").fetchall()
        return [(i, k, _decode_meta(m, k, self.path)) for i, k, m in rows]

    def meta_table(self) -> list[dict[str, Any]]:
        """Scalar/string/list fields of every record, in idx order, read without any array blob."""
        return [m for _, _, m in self.meta_rows()]

    @property
    def attrs(self) -> dict[str, Any]:
        """Dataset-level metadata (grids, parameters, recipe, version...)."""
        rows = self._db.execute("SELECT name, value FROM attrs ORDER BY name").fetchall()
        out = {}
        for name, value in rows:
            try:
                out[name] = json.loads(value)
            except ValueError as err:
                raise InputError(f"attribute {name!r}: corrupted JSON ({err})", self.path) from None
        return out

    # -- writing ---------------------------------------------------------------------------
    def _require_writable(self, what: str) -> None:
        if self.mode != "a":
            raise InputError(f"store opened read-only; cannot {what}", self.path)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Set (add or replace) dataset-level attributes, one transaction; values must be JSON-able."""
        self._require_writable("set attributes")
        rows = []
        for name, value in attrs.items():
            if not isinstance(name, str):
                raise InputError(f"attribute names must be strings, got {name!r}")
            try:
                rows.append((name, _encode_meta(value)))
            except (TypeError, ValueError) as err:
                raise InputError(f"attribute {name!r}: {err}") from None
        self._transaction(lambda db: db.executemany("INSERT OR REPLACE INTO attrs(name, value) VALUES (?, ?)", rows))

    def _transaction(self, work):
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._cache = None  # our own commits do not change data_version
        return result

    def _insert(self, db: sqlite3.Connection, idx: int, key: str, meta: str, blob: bytes) -> bool:
        rows = db.execute("SELECT idx, key, meta, blob FROM records WHERE key=? OR idx=?", (key, idx)).fetchall()
        for old_idx, old_key, old_meta, old_blob in rows:
            if old_key == key:
                if old_idx != idx:
                    raise InputError(
                        f"record {key!r} is already stored at idx {old_idx}, not {idx}; "
                        "a dataset never changes silently",
                        self.path,
                    )
                if old_meta == meta and old_blob == blob:
                    return False
                fields = _diff_fields(old_meta, old_blob, meta, blob, key, self.path)
                raise InputError(
                    f"record {key!r} is already stored with different content (fields "
                    f"{', '.join(fields)}); a dataset never changes silently",
                    self.path,
                )
            raise InputError(f"idx {idx} already holds record {old_key!r}; cannot store {key!r} there", self.path)
        db.execute("INSERT INTO records(idx, key, meta, blob) VALUES (?, ?, ?, ?)", (idx, key, meta, blob))
        return True

    @staticmethod
    def _encode(idx, key, record) -> tuple[int, str, str, bytes]:
        idx, key = _check_idx_key(idx, key)
        try:
            meta, arrays = split_record(record)
        except InputError as err:
            raise InputError(f"record {key!r}: {err.problem}") from None
        return idx, key, _encode_meta(meta), encode_arrays(arrays)

    def put(self, idx: int, key: str, record: Mapping[str, Any]) -> bool:
        """Store one record in one transaction.

        Returns True if written, False if an identical record was already stored under this key.
        Raises InputError naming the key if the key (or idx) is taken by different content.
        """
        self._require_writable(f"put {key!r}")
        enc = self._encode(idx, key, record)
        return self._transaction(lambda db: self._insert(db, *enc))

    def put_many(self, items: Iterable[tuple[int, str, Mapping[str, Any]]]) -> int:
        """Store many records in one transaction (all or none). Returns how many were new."""
        self._require_writable("put records")
        encoded = [self._encode(idx, key, rec) for idx, key, rec in items]  # outside the write lock
        return self._transaction(lambda db: sum(self._insert(db, *e) for e in encoded))
