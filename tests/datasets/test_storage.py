"""Graph stores: round trips, the never-silently-change rule, bad files, kill safety, shards."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nanosolve.datasets.storage import GraphStore, ShardedGraphStore, decode_arrays, encode_arrays, open_store
from nanosolve.errors import InputError

TYPES = ["fcc", "bcc", "hcp", "rock_salt"]


def make_record(i: int, n_atoms: int | None = None) -> dict:
    """A synthetic record with the CHILI spec's field names, dtypes and shapes (values random
    but a pure function of i)."""
    rng = np.random.default_rng(1000 + i)
    n = int(rng.integers(3, 12)) if n_atoms is None else n_atoms
    m = int(rng.integers(1, 5))
    e, eu = 2 * n, 2 * m
    return {
        "id": f"{TYPES[i % 4]}_Zn_r{i}", "crystal_type": TYPES[i % 4], "space_group_symbol": "Fm-3m",
        "space_group_number": 225, "crystal_system": "cubic", "crystal_system_number": 7,
        "atomic_species": ["O", "Zn"], "n_atomic_species": 2, "np_size": float(rng.random() * 20),
        "n_atoms": n, "n_bonds": e // 2, "unit_cell_n_atoms": m, "unit_cell_n_bonds": eu // 2,
        "radius": 5.0 * (1 + i % 5), "metal": "Zn", "source": f"cifs/{i}.cif", "formula": f"Zn{1 + i % 3}O",
        "x": rng.random((n, 4), dtype=np.float32),
        "edge_index": rng.integers(0, n, (2, e)).astype(np.int64),
        "edge_attr": rng.random((e, 1), dtype=np.float32),
        "pos_abs": rng.random((n, 3), dtype=np.float32), "pos_frac": rng.random((n, 3), dtype=np.float32),
        "cell_params": np.array([4.1, 4.1, 4.1, 90, 90, 90], dtype=np.float32),
        "unit_cell_x": rng.random((m, 4), dtype=np.float32),
        "unit_cell_edge_index": rng.integers(0, m, (2, eu)).astype(np.int64),
        "unit_cell_edge_attr": rng.random((eu, 1), dtype=np.float32),
        "unit_cell_pos_abs": rng.random((m, 3), dtype=np.float32),
        "unit_cell_pos_frac": rng.random((m, 3), dtype=np.float32),
        "saxs": rng.random(300, dtype=np.float32), "sans": rng.random(300, dtype=np.float32),
        "xrd": rng.random(580, dtype=np.float32), "nd": rng.random(580, dtype=np.float32),
        "xpdf": rng.random(6000, dtype=np.float32), "npdf": rng.random(6000, dtype=np.float32),
    }


def key_of(i: int) -> str:
    return make_record(i)["id"]


def assert_same_record(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, w in want.items():
        g = got[name]
        if isinstance(w, np.ndarray):
            assert isinstance(g, np.ndarray), name
            assert g.dtype == w.dtype and g.shape == w.shape, name
            assert np.array_equal(g, w), name
        else:
            assert g == w and type(g) is type(w), name


def assert_same_store(a, b) -> None:
    assert a.keys() == b.keys()
    assert a.indices() == b.indices()
    assert a.meta_table() == b.meta_table()
    assert a.attrs == b.attrs
    for i in range(len(a)):
        assert_same_record(a[i], b[i])


@pytest.fixture(params=["file", "sharded"])
def make_store(request, tmp_path):
    """Factory of an empty store of either layout (shards of 3 records so several are used)."""
    def make(mode="a"):
        if request.param == "file":
            return GraphStore(tmp_path / "store.sqlite", mode=mode)
        return ShardedGraphStore(tmp_path / "store", shard_size=3 if mode == "a" else None, mode=mode)
    return make


# --- round trip and API ---------------------------------------------------------------------

def test_round_trip_in_idx_order(make_store):
    order = [4, 0, 7, 2, 9, 1]  # workers finish out of order; the store orders by idx
    with make_store() as s:
        for i in order:
            assert s.put(i, key_of(i), make_record(i)) is True
        s.set_attrs({"q_xrd": [1.0, 29.95, 580], "version": "1"})
        s.set_attrs({"version": "2"})
    with make_store("r") as r:
        assert len(r) == 6
        assert r.indices() == sorted(order)
        assert r.keys() == [key_of(i) for i in sorted(order)]
        assert key_of(7) in r and "nope" not in r and 3 not in r
        for pos, i in enumerate(sorted(order)):
            assert_same_record(r[pos], make_record(i))
            assert_same_record(r.get(key_of(i)), make_record(i))
            assert_same_record(r.read_idx(i), make_record(i))
            assert r.idx_of(key_of(i)) == i
        assert_same_record(r[-1], make_record(9))
        assert [rec["id"] for rec in r] == r.keys()
        with pytest.raises(IndexError):
            r[6]
        with pytest.raises(KeyError):
            r.get("nope")
        with pytest.raises(KeyError):
            r.read_idx(3)
        part = r.read(1, fields=["xrd", "radius"])
        assert set(part) == {"xrd", "radius"} and np.array_equal(part["xrd"], make_record(1)["xrd"])
        assert r.attrs == {"q_xrd": [1.0, 29.95, 580], "version": "2"}
        table = r.meta_table()
        assert [m["id"] for m in table] == r.keys()
        assert table[0] == {k: v for k, v in make_record(0).items() if not isinstance(v, np.ndarray)}
        assert [(i, k) for i, k, _ in r.meta_rows()] == list(zip(r.indices(), r.keys()))
        with pytest.raises(InputError, match="read-only"):
            r.put(3, key_of(3), make_record(3))
        with pytest.raises(InputError, match="read-only"):
            r.set_attrs({"a": 1})


def test_numpy_scalars_and_odd_arrays_round_trip(make_store):
    rec = {"id": "odd", "n": np.int64(3), "f": np.float32(0.5), "flag": np.bool_(True),
           "zero_d": np.array(2.5), "empty": np.zeros((0, 3), np.float32), "mask": np.array([True, False]),
           "big_endian": np.arange(4, dtype=">f8"), "strided": np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2],
           "nested": {"a": [1, 2.5, "x", None]}}
    with make_store() as s:
        s.put(0, "odd", rec)
        got = s.get("odd")
    assert got["n"] == 3 and type(got["n"]) is int
    assert got["f"] == 0.5 and got["flag"] is True and got["nested"] == {"a": [1, 2.5, "x", None]}
    for name in ("zero_d", "empty", "mask", "big_endian", "strided"):
        assert got[name].dtype == rec[name].dtype and got[name].shape == rec[name].shape
        assert np.array_equal(got[name], rec[name])
        assert got[name].flags.writeable and got[name].flags.c_contiguous


def test_reput_identical_is_noop_and_changes_are_refused(make_store):
    with make_store() as s:
        s.put(1, key_of(1), make_record(1))
        assert s.put(1, key_of(1), make_record(1)) is False
        assert s.put_many([(1, key_of(1), make_record(1)), (2, key_of(2), make_record(2))]) == 1
        changed = make_record(1)
        changed["xrd"] = changed["xrd"].copy()
        changed["xrd"][5] += 1e-3
        with pytest.raises(InputError, match=rf"{key_of(1)}.*different content.*xrd"):
            s.put(1, key_of(1), changed)
        relabelled = dict(make_record(1), radius=99.0)
        with pytest.raises(InputError, match=rf"{key_of(1)}.*radius"):
            s.put(1, key_of(1), relabelled)
        retyped = dict(make_record(1), xrd=make_record(1)["xrd"].astype(np.float64))
        with pytest.raises(InputError, match="xrd"):
            s.put(1, key_of(1), retyped)
        with pytest.raises(InputError, match=rf"{key_of(1)}.*already stored at idx 1"):
            s.put(8, key_of(1), make_record(1))
        with pytest.raises(InputError, match=r"idx 2 already holds"):
            s.put(2, "another", make_record(5))
        assert len(s) == 2
        assert_same_record(s.get(key_of(1)), make_record(1))


def test_put_many_is_all_or_nothing(tmp_path):
    # one file: the whole batch is one transaction
    with GraphStore(tmp_path / "s.sqlite") as s:
        s.put(0, key_of(0), make_record(0))
        bad = dict(make_record(0), radius=-1.0)
        with pytest.raises(InputError, match=key_of(0)):
            s.put_many([(1, key_of(1), make_record(1)), (2, key_of(2), make_record(2)), (0, key_of(0), bad)])
        assert s.keys() == [key_of(0)]


def test_bad_records_are_refused(make_store):
    with make_store() as s:
        with pytest.raises(InputError, match="'labels'.*numeric"):
            s.put(0, "k", {"labels": np.array(["a", "b"], dtype=object)})
        with pytest.raises(InputError, match="'tags'"):
            s.put(0, "k", {"tags": {1, 2}})
        with pytest.raises(InputError, match="non-negative"):
            s.put(-1, "k", {"a": 1})
        with pytest.raises(InputError, match="key"):
            s.put(0, "", {"a": 1})
        assert len(s) == 0


def test_reader_sees_writer_commits_while_it_writes(make_store):
    w = make_store()
    w.put(0, key_of(0), make_record(0))
    r = make_store("r")
    assert len(r) == 1
    for i in range(1, 5):  # with shards of 3, this also adds a shard after the reader opened
        w.put(i, key_of(i), make_record(i))
    assert len(r) == 5 and r.keys() == [key_of(i) for i in range(5)]
    assert_same_record(r[4], make_record(4))
    w.close()
    r.close()


def test_pickled_store_reopens_by_path(make_store):
    # only for handing a store to spawn-started DataLoader workers: pickling carries the path
    with make_store() as s:
        s.put(0, key_of(0), make_record(0))
    r = make_store("r")
    clone = pickle.loads(pickle.dumps(r))
    assert_same_record(clone[0], make_record(0))
    assert clone.mode == "r"


def _connections(store) -> set[int]:
    shards = store._shards.values() if isinstance(store, ShardedGraphStore) else [store]
    return {id(s._conn) for s in shards}


def test_forked_child_reads_through_its_own_connection(make_store):
    # DataLoader workers are forked from a parent that has already read: SQLite forbids using
    # a connection across fork, so the child must open its own
    with make_store() as s:
        s.put_many([(i, key_of(i), make_record(i)) for i in range(5)])
    r = make_store("r")
    assert_same_record(r[0], make_record(0))
    inherited = _connections(r)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        msg = b"error"
        try:
            ok = np.array_equal(r[4]["xpdf"], make_record(4)["xpdf"]) and not (_connections(r) & inherited)
            msg = b"ok" if ok else b"shared connection or wrong data"
        finally:
            os.write(wfd, msg)
            os._exit(0)
    os.close(wfd)
    answer = os.read(rfd, 100)
    os.close(rfd)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert _connections(r) == inherited
    assert_same_record(r[3], make_record(3))  # the parent's connection still works
    r.close()


def test_meta_table_reads_no_blob(tmp_path):
    path = tmp_path / "s.sqlite"
    with GraphStore(path) as s:
        s.put_many([(i, key_of(i), make_record(i)) for i in range(4)])
        plan = " ".join(str(r) for r in s._db.execute(
            "EXPLAIN QUERY PLAN SELECT idx, key, meta FROM records INDEXED BY records_meta ORDER BY idx"))
        assert "COVERING INDEX" in plan
    con = sqlite3.connect(path)
    con.execute("UPDATE records SET blob = x'00'")  # destroy every array blob
    con.commit()
    con.close()
    with GraphStore(path, mode="r") as r:
        assert [m["id"] for m in r.meta_table()] == [key_of(i) for i in range(4)]
        with pytest.raises(InputError, match=rf"s.sqlite: record '{key_of(2)}': corrupted"):
            r[2]


# --- damaged and foreign files ----------------------------------------------------------------

def test_corrupted_blob_names_the_key(tmp_path):
    path = tmp_path / "s.sqlite"
    with GraphStore(path) as s:
        s.put_many([(i, key_of(i), make_record(i)) for i in range(3)])
    con = sqlite3.connect(path)
    blob = bytearray(con.execute("SELECT blob FROM records WHERE idx=1").fetchone()[0])
    blob[len(blob) // 2] ^= 0x40  # one flipped bit in the middle of the arrays
    con.execute("UPDATE records SET blob=? WHERE idx=1", (bytes(blob),))
    blob2 = con.execute("SELECT blob FROM records WHERE idx=2").fetchone()[0]
    con.execute("UPDATE records SET blob=? WHERE idx=2", (blob2[:-100],))  # truncated
    con.execute("UPDATE records SET meta='{not json' WHERE idx=0")
    con.commit()
    con.close()
    with GraphStore(path, mode="r") as r:
        with pytest.raises(InputError, match=rf"record '{key_of(1)}': corrupted array blob \(checksum"):
            r[1]
        with pytest.raises(InputError, match=rf"record '{key_of(2)}': corrupted array blob"):
            r.get(key_of(2))
        with pytest.raises(InputError, match=rf"record '{key_of(0)}': corrupted meta"):
            r[0]


def test_blob_codec_rejects_damage_anywhere():
    blob = encode_arrays({"a": np.arange(5, dtype=np.int16), "b": np.ones((2, 3), np.float32)})
    assert set(decode_arrays(blob)) == {"a", "b"}
    assert np.array_equal(decode_arrays(blob, ["b"])["b"], np.ones((2, 3), np.float32))
    for pos in range(len(blob)):  # every single-byte change is caught (magic or CRC-32)
        bad = bytearray(blob)
        bad[pos] ^= 0xFF
        with pytest.raises(InputError, match="'k'"):
            decode_arrays(bytes(bad), key="k")


def test_foreign_and_damaged_files_are_input_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not a database\n" * 10)
    with pytest.raises(InputError, match=r"notes\.txt: not a graph store \(not an SQLite"):
        GraphStore(text, mode="r")
    with pytest.raises(InputError, match=r"notes\.txt"):
        open_store(text)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t(a)")
    con.commit()
    con.close()
    for mode in ("r", "a"):
        with pytest.raises(InputError, match=r"other\.sqlite: not a graph store"):
            GraphStore(other, mode=mode)
    future = tmp_path / "future.sqlite"
    GraphStore(future).close()
    con = sqlite3.connect(future)
    con.execute("PRAGMA user_version=2")
    con.close()
    with pytest.raises(InputError, match=r"future\.sqlite: graph store format version 2; this nanosolve reads version 1"):
        GraphStore(future, mode="r")
    with pytest.raises(InputError, match=r"missing\.sqlite: no such graph store"):
        GraphStore(tmp_path / "missing.sqlite", mode="r")
    with pytest.raises(InputError, match="no such graph store"):
        open_store(tmp_path / "missing.sqlite")
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.sqlite: empty file"):
        open_store(empty)
    with pytest.raises(InputError, match="is a directory"):
        GraphStore(tmp_path, mode="r")


def test_sharded_layout_and_its_damage(tmp_path):
    d = tmp_path / "big"
    with ShardedGraphStore(d, shard_size=4) as s:
        s.put_many([(i, key_of(i), make_record(i)) for i in (0, 5, 9, 2)])
        with pytest.raises(InputError, match=rf"{key_of(3)}' appears twice in one batch, at idx 3 and 10"):
            s.put_many([(3, key_of(3), make_record(3)), (10, key_of(3), make_record(3))])
        assert key_of(3) not in s  # refused before anything was written
        s.put(3, key_of(3), make_record(3))
        with pytest.raises(InputError, match=rf"{key_of(3)}.*already stored at idx 3, not 13"):
            s.put(13, key_of(3), make_record(3))  # same key in another shard
    assert sorted(p.name for p in d.iterdir()) == ["manifest.json", "shard_000000.sqlite",
                                                   "shard_000001.sqlite", "shard_000002.sqlite"]
    man = json.loads((d / "manifest.json").read_text())
    assert man["shard_size"] == 4 and man["shards"] == [0, 1, 2]
    st = open_store(d)
    assert isinstance(st, ShardedGraphStore) and st.indices() == [0, 2, 3, 5, 9]
    assert_same_record(st[3], make_record(5))
    st.close()
    assert isinstance(open_store(d / "shard_000001.sqlite"), GraphStore)
    with pytest.raises(InputError, match="shard_size 4, not 8"):
        ShardedGraphStore(d, shard_size=8)
    (d / "shard_000001.sqlite").rename(tmp_path / "away.sqlite")
    with pytest.raises(InputError, match="shard_000001.sqlite listed in the manifest is missing"):
        ShardedGraphStore(d, mode="r")
    (d / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match=r"manifest\.json: corrupted manifest"):
        open_store(d)
    (d / "manifest.json").unlink()
    with pytest.raises(InputError, match="no manifest.json"):
        ShardedGraphStore(d)
    with pytest.raises(InputError, match="missing manifest.json"):
        ShardedGraphStore(tmp_path / "nothing", mode="r")


# --- kill safety --------------------------------------------------------------------------------

_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from test_storage import make_record, key_of
from nanosolve.datasets.storage import GraphStore, ShardedGraphStore
store = GraphStore({path!r}) if {sharded!r} == "no" else ShardedGraphStore({path!r}, shard_size=7)
done = set(store.indices())
store.set_attrs({{"recipe": "synthetic", "n": {n}}})
for i in range({n}):
    if i in done:
        continue
    store.put(i, key_of(i), make_record(i, n_atoms=400))
    print(i, flush=True)
"""


def _run_and_kill(path: Path, n: int, after: int, sharded: str) -> list[int]:
    """Start a writer process, SIGKILL it once it reported ``after`` new records; return them."""
    code = _WRITER.format(tests=str(Path(__file__).parent), path=str(path), n=n, sharded=sharded)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    reported = []
    deadline = time.monotonic() + 60
    while len(reported) < after and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        reported.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: the writer is busy with the next put
    proc.wait()
    proc.stdout.close()
    assert len(reported) == after, "writer stopped early"
    assert proc.returncode == -signal.SIGKILL
    return reported


@pytest.mark.parametrize("sharded", ["no", "yes"])
def test_kill_at_any_moment_then_resume_gives_the_uninterrupted_store(tmp_path, sharded):
    n = 24
    path = tmp_path / ("killed.sqlite" if sharded == "no" else "killed")
    committed: list[int] = []
    for after in (5, 7):  # killed twice, each time after some more records
        committed += _run_and_kill(path, n, after, sharded)
        with open_store(path) as r:  # opens fine; every reported record is there, value for value
            assert set(committed) <= set(r.indices())
            assert r.indices() == sorted(r.indices())
            for i in r.indices():  # also the one perhaps committed but not yet reported
                assert_same_record(r.read_idx(i), make_record(i, n_atoms=400))
    files = [path] if sharded == "no" else sorted(path.glob("shard_*.sqlite"))
    for f in files:
        con = sqlite3.connect(f)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()

    # resume: re-put everything (existing identical records are no-ops)
    with open_store(path, mode="a") if sharded == "no" else ShardedGraphStore(path) as s:
        s.set_attrs({"recipe": "synthetic", "n": n})
        before = set(s.indices())
        new = s.put_many([(i, key_of(i), make_record(i, n_atoms=400)) for i in range(n)])
        assert new == n - len(before)
    ref_path = tmp_path / ("ref.sqlite" if sharded == "no" else "ref")
    with GraphStore(ref_path) if sharded == "no" else ShardedGraphStore(ref_path, shard_size=7) as ref:
        ref.set_attrs({"recipe": "synthetic", "n": n})
        for i in range(n):
            ref.put(i, key_of(i), make_record(i, n_atoms=400))
    with open_store(path) as a, open_store(ref_path) as b:
        assert len(a) == n
        assert_same_store(a, b)
