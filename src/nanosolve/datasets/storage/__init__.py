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
file (SQLite locks), but it is not a supported way to build a dataset; :func:`store_lock` refuses one.

Modules: ``format`` (the file schema, the record and array-blob encoding), ``graph_store``
(:class:`GraphStore`), ``sharded`` (:class:`ShardedGraphStore`, :func:`open_store`) and ``lock``
(:func:`store_lock`). Everything public is importable from ``nanosolve.datasets.storage``.
"""

from nanosolve.datasets.storage.format import FORMAT_VERSION, decode_arrays, encode_arrays, split_record
from nanosolve.datasets.storage.graph_store import GraphStore
from nanosolve.datasets.storage.lock import lock_path, store_lock
from nanosolve.datasets.storage.sharded import ShardedGraphStore, open_store

__all__ = [
    "GraphStore",
    "ShardedGraphStore",
    "open_store",
    "store_lock",
    "lock_path",
    "encode_arrays",
    "decode_arrays",
    "split_record",
    "FORMAT_VERSION",
]
