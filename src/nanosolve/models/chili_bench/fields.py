"""CHILI benchmark data: every array a task needs, read once from the store and cached per field.

Reading a graph from the store decodes its whole record (signals of 6,000 points included), so
each field is concatenated over all graphs and cached as ``OUT/cache/<store-id>/<field>.pt``
(``torch.load(weights_only=True)``); a task loads only its fields and its graphs are views into
those tensors (:class:`TaskData`, :func:`load_task_data`).
"""


from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nanosolve.datasets.storage import open_store
from nanosolve.errors import InputError
from nanosolve.models.checkpoints import atomic_torch_save, load_checkpoint
from nanosolve.models.chili_bench.tasks import Task, build_targets

CACHE_FORMAT = 1
Progress = Callable[[dict], None]


# ---------------------------------------------------------------------------------------------
# data: per-field tensor cache


def _store_id(path: Path) -> str:
    p = path.resolve()
    stamp = p / "manifest.json" if p.is_dir() else p
    st = stamp.stat()
    key = json.dumps([str(p), st.st_size, st.st_mtime_ns, CACHE_FORMAT])
    return f"{p.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def _cat_dim(name: str) -> int:
    return 1 if name.endswith("_index") else 0  # [2, E] edge / pair indices; everything else row-stacked


# Fields computed from stored ones once and cached like them: name -> the stored fields they need.
DERIVED_FIELDS = {"pair_counts": ("pos_abs", "x"), "pair_index": ("pos_abs", "x")}


def _concat(ts: list[Tensor], name: str, kind: str) -> dict:
    d = _cat_dim(name) if kind == "array" else 0
    sizes = torch.tensor([t.shape[d] for t in ts], dtype=torch.int64)
    ptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(sizes, 0)])
    return {"format": CACHE_FORMAT, "data": torch.cat(ts, dim=d), "ptr": ptr, "dim": d, "kind": kind, "n": len(ts)}


def _pair_grid() -> dict:
    """The bins derived pair fields are counted on; a cached field on other bins is rebuilt."""
    from nanosolve.models.chili_bench.pairdist import BIN_WIDTH, R_MAX

    return {"bin_width": BIN_WIDTH, "r_max": R_MAX}


def _derive_pair_fields(loaded: dict[str, dict], progress: Progress | None) -> dict[str, dict]:
    """``pair_counts`` / ``pair_index`` of every graph (:func:`~.pairdist.pair_fields`): the
    O(N²) pass over each particle's pairs that ``pairdist`` would otherwise repeat every step."""
    from nanosolve.models.chili_bench.pairdist import pair_fields

    pos, x = loaded["pos_abs"], loaded["x"]
    counts, index = [], []
    for i in range(pos["n"]):
        lo, hi = int(pos["ptr"][i]), int(pos["ptr"][i + 1])
        c, ix = pair_fields(pos["data"][lo:hi], x["data"][int(x["ptr"][i]):int(x["ptr"][i + 1]), 0])
        counts.append(c)
        index.append(ix)
        if progress is not None and (i % 200 == 0 or i == pos["n"] - 1):
            progress({"kind": "pairs", "done": i + 1, "total": pos["n"]})
    grid = _pair_grid()
    return {"pair_counts": {**_concat(counts, "pair_counts", "array"), **grid},
            "pair_index": {**_concat(index, "pair_index", "array"), **grid}}


def _read_fields_from_store(store, rows, fields: list[str], progress: Progress | None) -> dict[str, dict]:
    """One pass over the store, reading ``fields`` of every record; -> {field: {data, ptr}}."""
    parts: dict[str, list] = {f: [] for f in fields}
    kinds: dict[str, str] = {}
    n = len(rows)
    # labels come from the label table; only array fields need the record blobs
    array_fields = [f for f in fields if f not in rows[0][2]]
    for k, (idx, key, meta) in enumerate(rows):
        rec = store.read_idx(idx, fields=array_fields) if array_fields else {}
        for f in fields:
            v = rec.get(f, meta.get(f))
            if isinstance(v, np.ndarray) and v.ndim:
                kind, t = ("vector" if v.ndim == 1 else "array"), torch.from_numpy(v)
            elif isinstance(v, (np.ndarray, bool, int, float)):
                kind, t = "scalar", torch.as_tensor(np.asarray(v)).reshape(1)
            else:
                raise InputError(f"record {key!r}: field {f!r} is missing or not numeric", store.path)
            if kinds.setdefault(f, kind) != kind:
                raise InputError(f"record {key!r}: field {f!r} is a {kind}, other records hold a {kinds[f]}",
                                 store.path)
            parts[f].append(t)
        if progress is not None and (k % 200 == 0 or k == n - 1):
            progress({"kind": "load", "done": k + 1, "total": n})
    return {f: _concat(ts, f, kinds[f]) for f, ts in parts.items()}


def _cached_field(fp: Path, n: int, derived: bool) -> dict | None:
    """A cache file's field if it is intact, of this format and for ``n`` graphs (and, if derived,
    on the current pair-distance bins); else None, and it is rebuilt."""
    if not fp.is_file():
        return None
    try:
        c = load_checkpoint(fp)
    except InputError:
        return None
    if not (isinstance(c, dict) and c.get("format") == CACHE_FORMAT and c.get("n") == n):
        return None
    if derived and any(c.get(k) != v for k, v in _pair_grid().items()):
        return None
    return c


def load_fields(store_path: str | os.PathLike, fields: Iterable[str], cache_dir: str | os.PathLike | None = None,
                progress: Progress | None = None) -> tuple[dict[str, dict], list[dict], dict]:
    """Every record's ``fields`` as concatenated tensors: ({field: {data, ptr, dim}}, label dicts, info).

    Cached per field in ``cache_dir/<store-id>/<field>.pt`` when ``cache_dir`` is given; a field
    missing from the cache is read from the store (all missing fields in one pass) and saved.
    :data:`DERIVED_FIELDS` are computed from the stored fields they need and cached the same way.
    ``info``: ``{"seconds", "source": "cache"|"store"|"mixed", "store_id"}``.
    """
    t0 = time.perf_counter()
    path = Path(store_path)
    store = open_store(path, mode="r")  # InputError naming the path if it is not a store
    try:
        rows = store.meta_rows()
        if not rows:
            raise InputError("the graph store holds no records", path)
        fields = list(dict.fromkeys(fields))
        sid = _store_id(path)
        cdir = None if cache_dir is None else Path(cache_dir) / sid
        loaded: dict[str, dict] = {}
        if cdir is not None:
            for f in fields:
                c = _cached_field(cdir / f"{f}.pt", len(rows), f in DERIVED_FIELDS)
                if c is not None:
                    loaded[f] = c
        missing = [f for f in fields if f not in loaded]
        derive = [f for f in missing if f in DERIVED_FIELDS]
        sources = [s for f in derive for s in DERIVED_FIELDS[f]]
        read = list(dict.fromkeys([f for f in missing if f not in DERIVED_FIELDS]
                                  + [s for s in sources if s not in loaded]))
        fresh = _read_fields_from_store(store, rows, read, progress) if read else {}
        if derive:
            fresh.update(_derive_pair_fields({**loaded, **fresh}, progress))
        if cdir is not None and fresh:
            cdir.mkdir(parents=True, exist_ok=True)
            for f, c in fresh.items():
                atomic_torch_save(c, cdir / f"{f}.pt")
        loaded.update(fresh)
        source = "store" if len(missing) == len(fields) else "cache" if not missing else "mixed"
        return ({f: loaded[f] for f in fields}, [r[2] for r in rows],
                {"seconds": time.perf_counter() - t0, "source": source, "store_id": sid})
    finally:
        store.close()


@dataclass
class TaskData:
    """The graphs of one task, in memory.

    ``items``: one ``ChiliData`` per graph (views into the cached tensors) for graph-structured
    input; ``inputs`` [n, L] / ``targets`` / ``mask`` stacked tensors for signal input.
    """

    task: Task
    n: int
    items: list | None
    inputs: Tensor | None
    targets: Tensor | None
    mask: Tensor | None
    meta: list[dict]
    load_seconds: float
    source: str

    def batch(self, idx: Sequence[int], crop_atoms: int = 0, crops: int | None = None):
        """(model input, targets, mask) of the graphs ``idx``.

        ``crop_atoms`` > 0: each graph is cut to its ``crop_atoms`` atoms nearest one atom
        (:func:`~.local.crop_graph`) - a random atom (torch's global RNG, so a resumed run repeats
        it) or, with ``crops`` = R, R seeded crops per graph (graph-major: B * R graphs).
        """
        if self.items is None:
            idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
            x = {self.task.inputs[0]: self.inputs[idx_t]}
            return x, self.targets[idx_t], None if self.mask is None else self.mask[idx_t]
        from torch_geometric.data import Batch

        items = [self.items[int(i)] for i in idx]
        if crop_atoms > 0:
            from nanosolve.models.chili_bench.local import crop_graph

            if crops is None:
                items = [crop_graph(it, crop_atoms) for it in items]
            else:
                items = [crop_graph(it, crop_atoms, torch.Generator().manual_seed(1009 * int(i) + r))
                         for i, it in zip(idx, items) for r in range(crops)]
        b = Batch.from_data_list(items)
        y, mask = build_targets(self.task, b)
        return b, y, mask


def task_fields(task: Task, arch: str | None) -> list[str]:
    """The stored fields a task needs; signal-input tasks skip the (large) bond graph."""
    fields = list(task.fields)
    if task.input_level == "graph":
        fields = [f for f in fields if f != "edge_index"]
    if arch == "cfconv":
        fields.append("edge_attr")
    if task.level == "edge":
        fields.append("pos_abs")  # where crops are cut (and an input of the bond-length task)
    if arch == "pairdist":
        fields += ["pair_counts", "pair_index"]
    return list(dict.fromkeys(fields))


def _items(cached: dict[str, dict], keep: np.ndarray, graph_input: bool) -> list:
    """``ChiliData`` views laid out as :func:`~nanosolve.datasets.pyg.record_to_data` does:
    scalars 0-d, 1-D arrays (signals, cell parameters) [1, L], other arrays as stored."""
    from nanosolve.datasets.pyg import ChiliData

    items = []
    for i in keep.tolist():
        d = ChiliData()
        for f, c in cached.items():
            lo, hi = int(c["ptr"][i]), int(c["ptr"][i + 1])
            if c["kind"] == "scalar":
                d[f] = c["data"][lo]
            elif c["kind"] == "vector":
                d[f] = c["data"][lo:hi].unsqueeze(0)
            else:
                d[f] = c["data"].narrow(c["dim"], lo, hi - lo)
        # signal-input graphs are vectors: no node batch vector is needed (it would be 7.5M long)
        d.num_nodes = 1 if graph_input else int(d["n_atoms"])
        items.append(d)
    return items


def load_task_data(store_path: str | os.PathLike, task: Task, archs: Iterable[str | None] = (None,),
                   cache_dir: str | os.PathLike | None = None, progress: Progress | None = None) -> TaskData:
    """The graphs ``task`` accepts, with the fields it and every model of ``archs`` need, in memory."""
    from torch_geometric.data import Batch

    fields = list(dict.fromkeys(f for a in archs for f in task_fields(task, a)))
    cached, meta, info = load_fields(store_path, fields, cache_dir, progress)
    keep = np.array([i for i, m in enumerate(meta) if task.accepts(m)], dtype=np.int64)
    if len(keep) < 10:
        raise InputError(f"task {task.name}: only {len(keep)} graphs qualify; need at least 10 to split", store_path)
    items = _items(cached, keep, task.input_level == "graph")
    meta = [meta[i] for i in keep.tolist()]
    if task.input_level == "graph":
        if len(task.inputs) != 1:
            raise InputError(f"task {task.name}: one signal input expected, got {task.inputs}")
        full = Batch.from_data_list(items)
        # raw signals: the model's forward scales them (build_inputs) batch by batch
        inputs = full[task.inputs[0]].float().reshape(len(items), -1).contiguous()
        y, mask = build_targets(task, full)
        return TaskData(task, len(keep), None, inputs, y, mask, meta, info["seconds"], info["source"])
    return TaskData(task, len(keep), items, None, None, None, meta, info["seconds"], info["source"])
