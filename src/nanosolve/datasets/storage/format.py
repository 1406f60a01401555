"""The graph-store format: the SQLite schema, and how a record becomes a JSON ``meta`` text and an
array blob (and back).

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

import json
import os
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from nanosolve.errors import InputError

__all__ = ["FORMAT_VERSION", "Record", "split_record", "encode_arrays", "decode_arrays"]

FORMAT_VERSION = 1
_APPLICATION_ID = 0x4E534753  # "NSGS"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BLOB_MAGIC = b"NSGA"
_BLOB_VERSION = 1
_DTYPE_KINDS = "biufc"  # bool, signed, unsigned, float, complex: fixed-size and pickle-free

Record = dict[str, Any]


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
                raise InputError(
                    f"field {name!r}: arrays must be numeric or bool, not dtype {value.dtype}"
                    " (store strings and lists as plain Python values)"
                )
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
        head.append(
            struct.pack("<H", len(bname))
            + bname
            + struct.pack("<B", len(bdtype))
            + bdtype
            + struct.pack(f"<B{arr.ndim}Q", arr.ndim, *arr.shape)
        )
        body.append(arr.tobytes(order="C"))
    payload = b"".join(head + body)
    return payload + struct.pack("<I", zlib.crc32(payload))


def decode_arrays(
    blob: bytes, fields: Iterable[str] | None = None, *, key: str = "?", path: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
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
            name = bytes(mv[pos : pos + nlen]).decode("utf-8")
            pos += nlen
            (dlen,) = struct.unpack_from("<B", mv, pos)
            pos += 1
            dtype = np.dtype(bytes(mv[pos : pos + dlen]).decode("ascii"))
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
            out[name] = np.frombuffer(mv[pos : pos + nbytes], dtype=dtype).reshape(shape).copy()
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
            same = (
                x is not None
                and y is not None
                and x.dtype == y.dtype
                and x.shape == y.shape
                and x.tobytes() == y.tobytes()
            )
        else:
            same = n in a_m and n in b_m and json.dumps(a_m[n]) == json.dumps(b_m[n])
        if not same:
            differ.append(n)
    return differ
