"""Graph-record stores: one SQLite file (:class:`GraphStore`) or a directory of them
(:class:`ShardedGraphStore`).

A record is a flat ``dict`` of name -> value. NumPy arrays (numeric or bool dtypes) go into one
binary blob per record; every other value (str, int, float, bool, None, lists/dicts of those,
NumPy scalars) goes into a JSON ``meta`` column of its own, so label tables are read without
touching the arrays.

Why SQLite: it is in the standard library, a store is one file, transactions are atomic and
durable, and a process killed at any instant leaves every committed record intact (the
uncommitted transaction is rolled back on the next open). The file uses WAL journaling with
``synchronous=NORMAL``: survives any process kill; only an operating-system crash or power loss
may lose the last few commits, never corrupt the file. WAL also lets readers open the store
read-only (``mode="r"``) and read while the writer writes.

Concurrency contract: **one writer process** (the generator's parent process) puts records;
any number of reader processes may read at the same time. A second writer would not corrupt the
file (SQLite locks), but it is not a supported way to build a dataset.

Schema (format version 1, SQLite ``application_id`` 0x4E534753 "NSGS")::

    records(idx INTEGER PRIMARY KEY, key TEXT UNIQUE, meta TEXT /*JSON*/, blob BLOB /*arrays*/)
    attrs(name TEXT PRIMARY KEY, value TEXT /*JSON*/)
    index records_meta ON records(idx, key, meta)

The ``records_meta`` index *covers* ``idx, key, meta``: listing keys or the label table reads
that small b-tree only, never the table pages that hold the large blobs.

Array blob layout (little-endian, no pickle): ``b"NSGA"``, u16 version, u16 0, u32 n; then n
headers (u16 name length, name UTF-8, u8 dtype length, dtype string like ``"<f4"``, u8 ndim,
ndim × u64 shape); then the raw C-order bytes of each array in header order; then u32 CRC-32 of
everything before it, so a damaged blob is detected rather than decoded into wrong numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from nanosolve.errors import InputError

__all__ = ["GraphStore", "ShardedGraphStore", "open_store", "store_lock", "encode_arrays", "decode_arrays",
           "split_record", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_APPLICATION_ID = 0x4E534753  # "NSGS"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BLOB_MAGIC = b"NSGA"
_BLOB_VERSION = 1
_DTYPE_KINDS = "biufc"  # bool, signed, unsigned, float, complex: fixed-size and pickle-free
_BUSY_TIMEOUT_MS = 60_000

# Connections inherited through fork() are parked here and never used or closed in the child:
# SQLite forbids carrying a connection across fork, and closing it could checkpoint or drop
# the WAL under the parent's feet. The child opens its own connection instead.
_INHERITED_CONNECTIONS: list = []

Record = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Record (de)serialisation


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def split_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a record into (JSON-able scalars/strings/lists, NumPy arrays); validates names/types."""
    if not isinstance(record, Mapping):
        raise InputError(f"a record must be a dict of name -> value, not {type(record).__name__}")
    meta: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in record.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"record field names must be non-empty strings, got {name!r}")
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _DTYPE_KINDS:
                raise InputError(f"field {name!r}: arrays must be numeric or bool, not dtype {value.dtype}"
                                 " (store strings and lists as plain Python values)")
            arrays[name] = value
        elif isinstance(value, np.generic):
            meta[name] = value.item()
        else:
            try:
                json.dumps(value, default=_json_default, allow_nan=True)
            except (TypeError, ValueError) as err:
                raise InputError(f"field {name!r}: {err}") from None
            meta[name] = value
    return meta, arrays


def _encode_meta(meta: Mapping[str, Any]) -> str:
    # sorted keys + fixed separators: equal content always gives equal text (re-put check)
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True)


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays to the self-describing blob (names in sorted order)."""
    names = sorted(arrays)
    head = [_BLOB_MAGIC, struct.pack("<HHI", _BLOB_VERSION, 0, len(names))]
    body = []
    for name in names:
        arr = np.asarray(arrays[name])  # (not ascontiguousarray: it turns 0-d into 1-d)
        bname = name.encode("utf-8")
        bdtype = arr.dtype.str.encode("ascii")
        if len(bname) > 0xFFFF or arr.ndim > 255:
            raise InputError(f"field {name!r}: name too long or too many dimensions")
        head.append(struct.pack("<H", len(bname)) + bname + struct.pack("<B", len(bdtype)) + bdtype
                    + struct.pack(f"<B{arr.ndim}Q", arr.ndim, *arr.shape))
        body.append(arr.tobytes(order="C"))
    payload = b"".join(head + body)
    return payload + struct.pack("<I", zlib.crc32(payload))


def decode_arrays(blob: bytes, fields: Iterable[str] | None = None, *, key: str = "?",
                  path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_arrays`. Returns writable, owned arrays; only ``fields`` if given.

    Raises:
        InputError naming ``key`` (and ``path``) if the blob is truncated or damaged.
    """
    def bad(why: str) -> InputError:
        return InputError(f"record {key!r}: corrupted array blob ({why})", path)

    mv = memoryview(blob)
    if len(mv) < 16 or bytes(mv[:4]) != _BLOB_MAGIC:
        raise bad("bad magic bytes")
    (crc,) = struct.unpack_from("<I", mv, len(mv) - 4)
    if zlib.crc32(mv[:-4]) != crc:
        raise bad("checksum mismatch")
    version, _, count = struct.unpack_from("<HHI", mv, 4)
    if version != _BLOB_VERSION:
        raise bad(f"blob version {version}, expected {_BLOB_VERSION}")
    wanted = None if fields is None else set(fields)
    pos, headers = 12, []
    try:
        for _ in range(count):
            (nlen,) = struct.unpack_from("<H", mv, pos)
            pos += 2
            name = bytes(mv[pos:pos + nlen]).decode("utf-8")
            pos += nlen
            (dlen,) = struct.unpack_from("<B", mv, pos)
            pos += 1
            dtype = np.dtype(bytes(mv[pos:pos + dlen]).decode("ascii"))
            pos += dlen
            (ndim,) = struct.unpack_from("<B", mv, pos)
            pos += 1
            shape = struct.unpack_from(f"<{ndim}Q", mv, pos)
            pos += 8 * ndim
            if dtype.kind not in _DTYPE_KINDS:
                raise ValueError(f"dtype {dtype}")
            headers.append((name, dtype, shape))
    except (struct.error, UnicodeDecodeError, TypeError, ValueError) as err:
        raise bad(f"unreadable header: {err}") from None
    out: dict[str, np.ndarray] = {}
    end = len(mv) - 4
    for name, dtype, shape in headers:
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        if pos + nbytes > end:
            raise bad(f"array {name!r} runs past the end")
        if wanted is None or name in wanted:
            out[name] = np.frombuffer(mv[pos:pos + nbytes], dtype=dtype).reshape(shape).copy()
        pos += nbytes
    if pos != end:
        raise bad(f"{end - pos} trailing bytes")
    return out


def _decode_meta(text: str, key: str, path) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except (TypeError, ValueError) as err:
        raise InputError(f"record {key!r}: corrupted meta JSON ({err})", path) from None
    if not isinstance(meta, dict):
        raise InputError(f"record {key!r}: corrupted meta JSON (not an object)", path)
    return meta


def _check_idx_key(idx, key) -> tuple[int, str]:
    if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)) or idx < 0:
        raise InputError(f"record idx must be a non-negative integer, got {idx!r}")
    if not isinstance(key, str) or not key:
        raise InputError(f"record key must be a non-empty string, got {key!r}")
    return int(idx), key


def _diff_fields(old_meta: str, old_blob: bytes, new_meta: str, new_blob: bytes, key, path) -> list[str]:
    a_m, b_m = json.loads(old_meta), json.loads(new_meta)
    a_a = decode_arrays(old_blob, key=key, path=path)
    b_a = decode_arrays(new_blob, key=key, path=path)
    names = set(a_m) | set(b_m) | set(a_a) | set(b_a)
    differ = []
    for n in sorted(names):
        if n in a_a or n in b_a:
            x, y = a_a.get(n), b_a.get(n)
            same = (x is not None and y is not None and x.dtype == y.dtype and x.shape == y.shape
                    and x.tobytes() == y.tobytes())
        else:
            same = n in a_m and n in b_m and json.dumps(a_m[n]) == json.dumps(b_m[n])
        if not same:
            differ.append(n)
    return differ


# --------------------------------------------------------------------------------------------
# Single-file store


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
            conn = sqlite3.connect(str(p), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
        else:
            uri = f"file:{quote(str(p.resolve()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as err:
                if "unable to open" not in str(err) and "readonly" not in str(err):
                    raise
                # a WAL file in a folder we cannot write (read-only media): no writer can be
                # active there either, so opening it as immutable is safe
                conn.close()
                conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?immutable=1", uri=True,
                                       isolation_level=None, check_same_thread=False)
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
                    conn.execute("CREATE TABLE records(idx INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
                                 " meta TEXT NOT NULL, blob BLOB NOT NULL)")
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
            raise InputError(f"graph store format version {version}; this nanosolve reads version "
                             f"{FORMAT_VERSION}", self.path)
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
                    raise InputError(f"record {key!r} is already stored at idx {old_idx}, not {idx}; "
                                     "a dataset never changes silently", self.path)
                if old_meta == meta and old_blob == blob:
                    return False
                fields = _diff_fields(old_meta, old_blob, meta, blob, key, self.path)
                raise InputError(f"record {key!r} is already stored with different content (fields "
                                 f"{', '.join(fields)}); a dataset never changes silently", self.path)
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


# --------------------------------------------------------------------------------------------
# Sharded store


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
            _write_json_atomic(self._manifest_path, {"format": _SHARDED_FORMAT, "format_version": FORMAT_VERSION,
                                                     "shard_size": int(size), "shards": [], "attrs": {}})
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
            raise InputError(f"sharded graph store format version {man.get('format_version')}; this "
                             f"nanosolve reads version {FORMAT_VERSION}", mp)
        size, shards = man.get("shard_size"), man.get("shards")
        if not isinstance(size, int) or size < 1 or not isinstance(shards, list) \
                or not all(isinstance(s, int) and s >= 0 for s in shards) or not isinstance(man.get("attrs"), dict):
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
            _write_json_atomic(self._manifest_path, man)        # then listed, then filled
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
                raise InputError(f"record {key!r} is already stored at idx {store.idx_of(key)}, not {idx}; "
                                 "a dataset never changes silently", self.path)

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


# --------------------------------------------------------------------------------------------
# One writer at a time

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
        raise InputError(f"another process (pid {holder}) is writing this dataset store; wait for it to "
                         "finish or choose another output", path) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[key] = [fd, 1, os.getpid()]
    try:
        yield lp
    finally:
        _HELD_LOCKS.pop(key, None)
        os.close(fd)  # closing the descriptor releases the flock

