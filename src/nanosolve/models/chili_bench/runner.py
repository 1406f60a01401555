"""CHILI benchmark runner: one run = (dataset, task, model, seed).

A run splits the graphs at random 80/10/10 with ``seed`` (as the paper), trains with Adam and
early stopping on the validation loss (patience in epochs) inside a wall-clock budget, scores the
best-validation weights on the test part with the task's metric, appends one JSON line to
``OUT/results.jsonl`` and draws ``curve.png``. Naive baselines are runs too (fitted, not trained).
Cell-parameter and bond-length targets are standardised with the training part's mean/std for
training; predictions are mapped back, so scores are in the target's units (Å, °, Å²).

Files (``OUT/runs/<task>/<model>/seed<k>/``), each written atomically:

* ``config.json`` - the :class:`RunConfig`;
* ``last.pt``     - model, optimizer, RNG and loop state after the last finished epoch (resume);
* ``best.pt``     - the weights with the lowest validation loss;
* ``history.json``, ``curve.png`` - per-epoch losses and the learning curve;
* ``result.json`` - the result line; its presence marks the run as finished (skipped on rerun).

Data: reading a graph from the store decodes its whole record (signals of 6,000 points
included), so every array a task needs is read once, concatenated over all graphs and cached
per field as ``OUT/cache/<store-id>/<field>.pt`` (``torch.load(weights_only=True)``); a task then
loads only its fields and its graphs are views into those tensors. Graph-input tasks (a signal
to an MLP) are stacked into one [n, L] input tensor, batched by indexing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nanosolve.datasets.splits import random_split
from nanosolve.datasets.storage import open_store
from nanosolve.errors import InputError
from nanosolve.models.checkpoints import atomic_json, atomic_torch_save, load_checkpoint, load_state
from nanosolve.models.chili_bench.baselines import BASELINES, fit_baseline, predict_baseline
from nanosolve.models.chili_bench.gnns import EDGE_HEADS, make_model, task_loss, to_prediction
from nanosolve.models.chili_bench.metrics import score
from nanosolve.models.chili_bench.tasks import TASKS, Task, build_targets, get_task
from nanosolve.models.config_io import JsonConfig
from nanosolve.models.training import Adapter, Step, run_loop, shard

__all__ = ["RunConfig", "TaskData", "RESULTS_FILE", "BASELINE_NAMES", "GNN_NAMES", "MODEL_NAMES",
           "resolve_task", "resolve_model", "applicable_models", "plan_runs", "load_task_data", "load_fields",
           "run_one", "run_many", "run_dir", "read_result_lines", "plot_curve"]

RESULTS_FILE = "results.jsonl"
CHECKPOINT_FORMAT = 1
CACHE_FORMAT = 1
BASELINE_NAMES = ("random", "most_frequent", "mean")
GNN_NAMES = ("gcn", "pmlp", "graphsage", "gat", "graphunet", "gin", "edgecnn")
MODEL_NAMES = BASELINE_NAMES + GNN_NAMES + ("mlp", "ours")

# the paper's column names (target field) -> our task ids, for the CLI
TASK_ALIASES = {
    "atomic_number": "node_atomic_number", "pos_abs": "node_position", "edge_attr": "edge_bond_length",
    "crystal_system_number": "graph_crystal_system", "space_group_number": "graph_space_group",
    "saxs": "graph_saxs", "sans": "graph_sans", "xrd": "graph_xrd", "nd": "graph_nd",
    "xpdf": "graph_xpdf", "npdf": "graph_npdf",
    "xrd_unit_cell_pos_frac": "gen_xrd_unit_cell", "xrd_pos_abs": "gen_xrd_pos_abs",
}

Progress = Callable[[dict], None]


# ---------------------------------------------------------------------------------------------
# names


def resolve_task(name: str) -> Task:
    """A task by id (``graph_crystal_system``) or by the paper's column name (``crystal_system_number``)."""
    return get_task(TASK_ALIASES.get(name, name))


def resolve_model(model: str, task: Task, edge_head: str = "dot") -> tuple[str, str]:
    """(architecture, edge head) of a model name; ``ours`` is the geometry-aware choice per task.

    ``ours`` = ``cfconv`` (SchNet-style filters on the bond lengths). On the bond-length task it
    takes the lengths from the input positions and ends in the distance-aware edge head (an MLP on
    h_i * h_j, |h_i - h_j| and the expanded |r_i - r_j|) instead of the paper's dot product. On crystal-system
    and space-group classification it is ``localenv`` (:mod:`.local`), trained on particle crops;
    on signal regression from the particle ``pairdist`` (:mod:`.pairdist`), an MLP on the
    weighted histogram of all pair distances; on signal-input tasks ``signalnet``
    (:mod:`.signal`), a 1-D CNN, which on structure generation scores a library of training
    structures (``templates``, :mod:`.template`).
    """
    if model == "ours":
        if task.target == "edge_attr":
            return "cfconv", "distance"
        if task.is_particle_classification:
            return "localenv", "dot"
        if task.level == "graph" and task.input_level == "node":  # signals simulated from the particle
            return "pairdist", "dot"
        if task.input_level == "graph":
            return ("templates" if task.loss == "masked_mse" else "signalnet"), "dot"
        return "cfconv", "dot"
    return model, edge_head


def applicable_models(task: Task) -> tuple[str, ...]:
    """Models that apply to ``task``: its baselines, and the GNNs + MLP + ours (graph input) or
    the MLP and ours (signal input)."""
    base = BASELINES[task.kind]
    if task.input_level == "graph":
        return base + ("mlp", "ours")
    return base + GNN_NAMES + ("mlp", "ours")


def _split_names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i and i.strip()]


def plan_runs(tasks: str | Sequence[str] | None = None, models: str | Sequence[str] | None = None,
              all_pairs: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (task, model) pairs to run and the requested pairs that do not apply (skipped).

    ``tasks``/``models``: names or comma-separated lists; task names may be shell-style patterns
    (``"gen_*"``) and ``"baselines"`` expands to the task's naive baselines. Without ``all_pairs`` both must be given; with it, they filter every task ×
    every applicable model (None = no filter). Unknown names raise :class:`InputError`.
    """
    task_names = _split_names(tasks)
    model_names = _split_names(models)
    if not all_pairs and (not task_names or not model_names):
        raise InputError("give --task and --model, or --all")
    task_list = list(TASKS.values())
    if task_names:
        task_list = []
        for t in task_names:  # shell-style patterns select several tasks: "gen_*", "p2p_xrd_*"
            hits = [TASKS[k] for k in fnmatch.filter(TASKS, t)] if any(c in t for c in "*?[") else [resolve_task(t)]
            if not hits:
                raise InputError(f"task pattern {t!r} matches no CHILI task; known: {', '.join(TASKS)}")
            task_list.extend(h for h in hits if h not in task_list)
    for m in model_names:
        if m not in MODEL_NAMES and m != "baselines":
            raise InputError(f"unknown model {m!r}; known: {', '.join(MODEL_NAMES)}, baselines")
    pairs, skipped = [], []
    for task in task_list:
        ok = applicable_models(task)
        wanted = list(ok) if not model_names else []
        for m in model_names:
            wanted.extend(BASELINES[task.kind] if m == "baselines" else [m])
        for m in dict.fromkeys(wanted):
            (pairs if m in ok else skipped).append((task.name, m))
    if not pairs:
        raise InputError("no applicable (task, model) pair: " + ", ".join(f"{m} on {t}" for t, m in skipped)
                         + " (signal-input tasks take only mlp, ours and the baselines)")
    return pairs, skipped


# ---------------------------------------------------------------------------------------------
# config


@dataclass
class RunConfig(JsonConfig):
    """Settings of one run.

    ``budget_minutes`` is the wall-clock budget of training + validation, summed over resumes;
    ``patience``: epochs without a strictly lower validation loss before stopping;
    ``steps_per_epoch``: optimizer steps per epoch (0 = one pass over the training part) - on
    CHILI-3K a full pass of a GNN takes minutes on one CPU thread, so a short budget needs
    shorter epochs to validate and checkpoint at all; ``val_graphs``: validate on at most this
    many (fixed, seeded) validation graphs (0 = all); ``split``: train/val/test fractions;
    ``crop_atoms``: train on the atoms nearest a random atom of each particle (0 = whole graphs,
    -1 = the model's default: :data:`~.local.DEFAULT_CROP_ATOMS` for ``ours``, else 0) - on
    particle classification and bond-length tasks only (a crop keeps a particle's crystal system
    and its bonds' lengths, not its signals or its atoms' absolute positions); classification is
    then scored on the mean log-probabilities of ``eval_crops`` seeded crops per particle, bond
    lengths on whole particles.
    """

    _FAMILY = "CHILI benchmark run"

    task: str
    model: str
    dataset: str = ""
    seed: int = 0
    budget_minutes: float = 3.0
    max_epochs: int = 1000
    patience: int = 50
    lr: float = 1e-3
    batch_size: int = 16
    hidden: int = 64
    layers: int = 3
    edge_head: str = "dot"
    steps_per_epoch: int = 0
    val_graphs: int = 0
    split: tuple = (0.8, 0.1, 0.1)
    crop_atoms: int = -1
    eval_crops: int = 8

    def validate(self) -> RunConfig:
        task = resolve_task(self.task)
        self.task = task.name
        if self.model not in MODEL_NAMES:
            raise InputError(f"unknown model {self.model!r}; known: {', '.join(MODEL_NAMES)}")
        if self.model not in applicable_models(task):
            raise InputError(f"model {self.model!r} does not apply to task {task.name}; "
                             f"use one of {', '.join(applicable_models(task))}")
        if self.edge_head not in EDGE_HEADS:
            raise InputError(f"unknown edge head {self.edge_head!r}; known: {', '.join(EDGE_HEADS)}")
        for name in ("max_epochs", "batch_size", "hidden", "layers"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.crop_atoms) < -1 or int(self.crop_atoms) in (1, 2) or int(self.eval_crops) < 1:
            raise InputError(f"crop_atoms must be -1, 0 or >= 3 and eval_crops >= 1, got {self.crop_atoms}, "
                             f"{self.eval_crops}")
        for name in ("patience", "steps_per_epoch", "val_graphs"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.budget_minutes > 0 and self.lr > 0):
            raise InputError("budget_minutes and lr must be > 0")
        self.split = tuple(float(f) for f in self.split)
        return self

    def run_id(self) -> str:
        return f"{self.task}/{self.model}/seed{self.seed}"

    def identity(self) -> dict:
        """Everything that changes the result (the budget may change between resumes); a naive
        baseline is fitted, not trained, so only its task, data, seed and split count."""
        d = self.to_dict()
        d.pop("budget_minutes")
        if self.model in BASELINE_NAMES:
            d = {k: d[k] for k in ("task", "model", "dataset", "seed", "split")}
        return d


def run_dir(out_dir: str | os.PathLike, config: RunConfig) -> Path:
    return Path(out_dir) / "runs" / config.task / config.model / f"seed{config.seed}"


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


# ---------------------------------------------------------------------------------------------
# results file


def _append_line(path: Path, record: dict) -> None:
    """Append one JSON line with a single write (O_APPEND) and fsync, so lines never interleave."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = b"\n" + line  # a line cut by a kill stays alone (and unreadable), not glued to ours
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_result_lines(path: str | os.PathLike) -> tuple[list[dict], int]:
    """Result records of a results file, and how many lines were unreadable (e.g. cut by a kill)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no results file (run `nanosolve bench chili` first)", path)
    rows, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict) and {"task", "model", "seed", "value"} <= set(rec):
            rows.append(rec)
        else:
            bad += 1
    return rows, bad


def _ensure_result_line(out_dir: Path, result: dict) -> bool:
    """Append ``result`` unless a line for its (dataset, task, model, seed) is already there."""
    path = out_dir / RESULTS_FILE
    key = (result["dataset"], result["task"], result["model"], result["seed"])
    if path.is_file():
        rows, _ = read_result_lines(path)
        if any((r.get("dataset"), r["task"], r["model"], r["seed"]) == key for r in rows):
            return False
    _append_line(path, result)
    return True


# ---------------------------------------------------------------------------------------------
# training


# raw-unit regression targets standardised with train-set mean/std: cell lengths (Å) and angles (°)
# differ in scale, and bond lengths (~2.5 ± 0.7 Å) start far from a fresh head's ~0 output.
# Particle positions are centred already (mean ~0), so they are left in Å.
STANDARDISED_TARGETS = ("cell_params", "edge_attr")


def _normaliser(task: Task, data: TaskData, train_idx: np.ndarray) -> tuple[Tensor, Tensor] | None:
    """Train-set (mean, std) per target column, or None for targets left as they are.

    Padded generation targets (masked) and min-max-normalised signals are not standardised.
    A column constant over the training part (cubic angles: 90°) is only shifted, not scaled.
    """
    if task.target not in STANDARDISED_TARGETS or task.is_classification or task.loss == "masked_mse":
        return None
    if data.items is None:
        y = data.targets[torch.as_tensor(train_idx)].double()
        mean, std = y.mean(0), y.std(0)
    else:
        s1 = s2 = 0.0
        n = 0
        for i in train_idx.tolist():
            y = build_targets(task, data.items[i])[0].double()
            y = y.unsqueeze(-1) if y.dim() == 1 else y  # [E] bond lengths -> [E, 1]; a graph may have none
            s1, s2, n = s1 + y.sum(0), s2 + (y * y).sum(0), n + y.shape[0]
        mean = s1 / n
        std = ((s2 - n * mean * mean).clamp_min(0) / max(n - 1, 1)).sqrt()
    return mean.float(), torch.where(std > 1e-6, std, torch.ones_like(std)).float()


def _batches(idx: np.ndarray, batch_size: int, generator: torch.Generator | None):
    order = idx[torch.randperm(len(idx), generator=generator).numpy()] if generator is not None else idx
    for s in range(0, len(order), batch_size):
        yield order[s:s + batch_size]


def _crop_atoms(config: RunConfig, task: Task) -> int:
    """Training crop size of a run: 0 unless ``task`` has local targets that a crop keeps (the
    crystal system / space group of a particle, the lengths of the bonds inside the crop)."""
    if not (task.is_particle_classification or task.level == "edge"):
        return 0
    if config.crop_atoms >= 0:
        return int(config.crop_atoms)
    from nanosolve.models.chili_bench.local import DEFAULT_CROP_ATOMS

    return DEFAULT_CROP_ATOMS if config.model == "ours" else 0


def _loss(model, task: Task, out: Tensor, y: Tensor, mask: Tensor | None) -> Tensor:
    """The model's own training loss if it has one (the template model's cross-entropy), else the task's."""
    return model.loss(out, y, mask) if hasattr(model, "loss") else task_loss(task, out, y, mask)


@torch.no_grad()
def _predict(model, data: TaskData, idx: np.ndarray, batch_size: int, norm, crop_atoms: int = 0,
             eval_crops: int = 1) -> tuple:
    """(targets, predictions, mask, mean loss) over graphs ``idx``; predictions on the raw scale.

    With ``crop_atoms``, a graph's logits are the mean log-probabilities over ``eval_crops`` crops.
    """
    task = data.task
    model.eval()
    ys, ps, ms = [], [], []
    loss_sum, weight = 0.0, 0
    for b_idx in _batches(idx, batch_size, None):
        if crop_atoms > 0:
            x, y, mask = data.batch(b_idx, crop_atoms, crops=eval_crops)
            out = torch.log_softmax(model(x), -1).reshape(len(b_idx), eval_crops, -1).mean(1)
            y = y.reshape(len(b_idx), eval_crops)[:, 0]
        else:
            x, y, mask = data.batch(b_idx)
            out = model(x)
        y_fit = y if norm is None else (y - norm[0]) / norm[1]
        loss_sum += float(_loss(model, task, out, y_fit, mask)) * len(b_idx)
        weight += len(b_idx)
        pred = model.predict(out) if hasattr(model, "predict") else to_prediction(task, out)
        if not task.is_classification:
            pred = pred.reshape(y.shape)
            if norm is not None:
                pred = pred * norm[1] + norm[0]
        ys.append(y)
        ps.append(pred)
        if mask is not None:
            ms.append(mask)
    model.train()
    def cat(t):
        return torch.cat(t, 0).numpy()

    return cat(ys), cat(ps), (cat(ms) if ms else None), loss_sum / max(weight, 1)


def _shuffle_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def plot_curve(history: list[dict], path: Path, title: str, metric: str) -> Path | None:
    """Train/validation loss per epoch (log scale) and the validation metric; PNG at ``path``."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanosolve.scattering.plot import save_figure

    ep = [h["epoch"] + 1 for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train", marker=".")
    ax[0].plot(ep, [h["val_loss"] for h in history], label="validation", marker=".")
    if all(h["train_loss"] > 0 and h["val_loss"] > 0 for h in history):
        ax[0].set_yscale("log")
    ax[0].set(xlabel="epoch", ylabel="loss", title="loss")
    ax[0].legend()
    ax[1].plot(ep, [h["val_score"] for h in history], color="C2", marker=".")
    ax[1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=100)


def _fit_baseline(config: RunConfig, data: TaskData, parts: dict) -> dict:
    task = data.task

    def targets(idx):
        ys, ms = [], []
        for b in _batches(parts[idx], 64, None):
            _, y, m = data.batch(b)
            ys.append(y.numpy())
            if m is not None:
                ms.append(m.numpy())
        return np.concatenate(ys, 0), (np.concatenate(ms, 0) if ms else None)

    y_tr, m_tr = targets("train")
    y_te, m_te = targets("test")
    params = fit_baseline(config.model, task, y_tr, m_tr)
    pred = predict_baseline(params, len(y_te), seed=config.seed, shape=y_te.shape[1:])
    return {"value": score(task.metric, y_te, pred, m_te), "epochs": 0, "best_epoch": -1, "stopped": "fitted",
            "train_seconds": 0.0, "params": 0}


class _ChiliAdapter(Adapter):
    """One CHILI run on the shared training loop (:func:`nanosolve.models.training.run_loop`):
    Adam, ``steps_per_epoch`` steps over fresh seeded permutations, the task's loss on
    (standardised) targets, validation loss + metric, progress events of kind step / epoch."""

    family = "CHILI benchmark"
    loss_keys = ("loss",)

    def __init__(self, model, config: RunConfig, data: TaskData, parts: dict, norm, crop: int, eval_crop: int,
                 val_idx: np.ndarray, progress: Progress | None):
        self.model, self.config, self.data, self.parts, self.norm = model, config, data, parts, norm
        self.crop, self.eval_crop, self.val_idx, self.progress = crop, eval_crop, val_idx, progress
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        self.budget = 60.0 * config.budget_minutes
        self.n_steps = config.steps_per_epoch or math.ceil(len(parts["train"]) / config.batch_size)
        self.monitor_name = f"the validation loss of {config.run_id()}"
        self.steps, self.loss_value, self.t0, self.state = 0, 0.0, 0.0, None

    def begin_epoch(self, epoch: int, state) -> None:
        self.steps, self.t0, self.state = 0, time.monotonic(), state

    def batches(self, epoch: int, rank: int, world: int):
        cfg, train = self.config, self.parts["train"]
        gen = _shuffle_generator(cfg.seed, epoch)
        # an epoch of steps_per_epoch steps walks a fresh permutation, repeated as needed
        order = np.concatenate([train[torch.randperm(len(train), generator=gen).numpy()]
                                for _ in range(max(1, math.ceil(self.n_steps * cfg.batch_size / len(train))))])
        for s in range(self.n_steps):
            b_idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            if len(b_idx) == 0:
                break
            part = shard(len(b_idx), rank, world)
            mine = b_idx[part]
            yield Step(mine if len(mine) else b_idx[:1], len(mine), len(b_idx))

    def loss(self, call, b_idx, epoch: int) -> dict:
        x, y, mask = self.data.batch(b_idx, self.crop)
        if self.norm is not None:
            y = (y - self.norm[0]) / self.norm[1]
        loss = _loss(self.model, self.data.task, call(x), y, mask)
        self.loss_value = float(loss.detach())
        return {"loss": loss}

    def after_step(self, epoch: int, step: int, n_steps: int | None) -> None:
        self.steps = step + 1
        if self.progress is not None:
            self.progress({"kind": "step", "epoch": epoch, "step": self.steps, "loss": self.loss_value,
                           "elapsed": self.state.train_seconds + time.monotonic() - self.t0, "budget": self.budget})

    def epoch_info(self, epoch: int) -> dict:
        return {"steps": self.steps}

    def validate(self, epoch: int) -> dict:
        cfg = self.config
        yt, yp, ym, val_loss = _predict(self.model, self.data, self.val_idx, cfg.batch_size, self.norm,
                                        self.eval_crop, cfg.eval_crops)
        return {"val_loss": val_loss, "val_score": score(self.data.task.metric, yt, yp, ym)}

    def monitored(self, record: dict) -> float:
        return record["val_loss"]

    def epoch_done(self, record: dict, state) -> None:
        if self.progress is not None:
            self.progress({"kind": "epoch", **record, "elapsed": state.train_seconds, "budget": self.budget})


def _train(config: RunConfig, data: TaskData, parts: dict, rdir: Path, progress: Progress | None) -> dict:
    task = data.task
    arch, edge_head = resolve_model(config.model, task, config.edge_head)
    torch.manual_seed(config.seed)
    sample = data.items[0] if data.items is not None else None
    in_ch = None if sample is not None else data.inputs.shape[1]
    model = make_model(arch, task, hidden=config.hidden, layers=config.layers, edge_head=edge_head,
                       in_channels=in_ch, sample=sample)
    if hasattr(model, "fit_library"):  # the template model's library: the training part's targets
        train_t = torch.as_tensor(parts["train"])
        model.fit_library(data.targets[train_t], data.mask[train_t])
    norm = _normaliser(task, data, parts["train"])
    crop = _crop_atoms(config, task)
    # classification scores the mean over seeded crops (as trained); bonds are scored on whole particles
    eval_crop = crop if task.is_particle_classification else 0
    val_idx = parts["val"]
    if config.val_graphs and len(val_idx) > config.val_graphs:
        rng = np.random.default_rng(config.seed)
        val_idx = np.sort(rng.choice(val_idx, config.val_graphs, replace=False))
    adapter = _ChiliAdapter(model, config, data, parts, norm, crop, eval_crop, val_idx, progress)
    # config.json is the run's (written by run_one); the loop keeps last.pt / best.pt / history.json
    loop = run_loop(adapter, rdir, max_epochs=config.max_epochs, patience=config.patience,
                    budget_minutes=config.budget_minutes, resume=True, seed=config.seed, fmt=CHECKPOINT_FORMAT)
    state = {"epoch": loop.epoch, "best_epoch": loop.best_epoch, "history": loop.history,
             "train_seconds": loop.train_seconds}
    stopped = loop.stopped
    plot_curve(state["history"], rdir / "curve.png", f"{task.name} - {config.model} ({arch}) - seed {config.seed}",
               task.metric)
    best = rdir / "best.pt"
    load_state(model, load_checkpoint(best), best)
    decisions = None
    if hasattr(model, "choose_decision"):  # the template model's decision rule, picked on validation
        decisions = model.choose_decision(
            lambda: score(task.metric, *_predict(model, data, parts["val"], config.batch_size, norm)[:3]))
    if progress is not None:
        progress({"kind": "status", "message": "testing"})
    t0 = time.perf_counter()
    yt, yp, ym, _ = _predict(model, data, parts["test"], config.batch_size, norm, eval_crop, config.eval_crops)
    return {"value": score(task.metric, yt, yp, ym), "epochs": state["epoch"], "best_epoch": state["best_epoch"],
            "stopped": stopped, "train_seconds": round(state["train_seconds"], 2),
            "eval_seconds": round(time.perf_counter() - t0, 2), "arch": arch, "edge_head": edge_head,
            "crop_atoms": crop, "eval_crops": config.eval_crops if eval_crop else 0,
            "params": sum(p.numel() for p in model.parameters()),
            **({"decision": model.decision, "val_by_decision": decisions} if decisions else {}),
            "target_norm": None if norm is None else {"mean": norm[0].tolist(), "std": norm[1].tolist()}}


def _check_config(rdir: Path, config: RunConfig) -> None:
    old = rdir / "config.json"
    if old.is_file():
        prev = RunConfig.from_json(old)
        if prev.identity() != config.identity():
            diff = sorted(k for k, v in config.identity().items() if prev.identity().get(k) != v)
            raise InputError(f"holds a run with different settings ({', '.join(diff)}); choose another --out "
                             "to start afresh", rdir)


def run_one(config: RunConfig, out_dir: str | os.PathLike, data: TaskData | None = None,
            cache: bool = True, progress: Progress | None = None) -> tuple[dict, str]:
    """Run (or resume, or skip) one run; returns (result line, status) with status in
    ``"done"`` (ran now), ``"resumed"`` (continued from last.pt) or ``"skipped"`` (finished before).

    ``data``: the task's :class:`TaskData` (loaded here if None; pass it to share between runs).
    """
    config.validate()
    task = get_task(config.task)
    out = Path(out_dir)
    rdir = run_dir(out, config)
    if config.dataset:
        config.dataset = str(Path(config.dataset).resolve())
    _check_config(rdir, config)
    done = rdir / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        _ensure_result_line(out, result)
        return result, "skipped"
    status = "resumed" if (rdir / "last.pt").is_file() else "done"
    if data is None:
        arch, _ = resolve_model(config.model, task, config.edge_head)
        data = load_task_data(config.dataset, task, (arch,), out / "cache" if cache else None, progress)
    rdir.mkdir(parents=True, exist_ok=True)
    config.to_json(rdir / "config.json")
    parts = random_split(data.n, config.split, seed=config.seed)
    if min(len(p) for p in parts.values()) == 0:
        raise InputError(f"task {task.name}: {data.n} graphs leave an empty split part")
    if config.model in BASELINE_NAMES:
        res = _fit_baseline(config, data, parts)
    else:
        res = _train(config, data, parts, rdir, progress)
    result = {"dataset": config.dataset, "dataset_name": Path(config.dataset).stem, "task": task.name,
              "model": config.model, "seed": config.seed, "metric": task.metric,
              "higher_is_better": task.higher_is_better, "n_train": len(parts["train"]), "n_val": len(parts["val"]),
              "n_test": len(parts["test"]), "budget_minutes": config.budget_minutes,
              "load_seconds": round(data.load_seconds, 2), "data_source": data.source,
              "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "run_dir": str(rdir.relative_to(out)), **res}
    atomic_json(result, done)
    _ensure_result_line(out, result)
    return result, status


def run_many(configs: Sequence[RunConfig], out_dir: str | os.PathLike, cache: bool = True,
             progress: Progress | None = None) -> list[tuple[dict, str]]:
    """Run every config in order (resumable: finished runs are skipped, unfinished ones resumed).

    Graph data is loaded once per (task, fields) and shared by the runs that need it.
    ``progress`` also receives ``{"kind": "run", "index", "total", "config"}`` before each run.
    """
    out = Path(out_dir)
    for config in configs:
        config.validate()
    # the models of each (dataset, task) still to run, so its graphs are loaded once with every field
    todo: dict[tuple, list[str | None]] = {}
    for config in configs:
        if not (run_dir(out, config) / "result.json").is_file():
            arch, _ = resolve_model(config.model, get_task(config.task), config.edge_head)
            todo.setdefault((config.dataset, config.task), []).append(arch)
    results = []
    loaded_key, loaded = None, None
    for k, config in enumerate(configs):
        if progress is not None:
            progress({"kind": "run", "index": k, "total": len(configs), "config": config})
        key = (config.dataset, config.task)
        data = None
        if not (run_dir(out, config) / "result.json").is_file():
            if key != loaded_key:
                loaded, loaded_key = None, None  # free the previous task's graphs first
                loaded = load_task_data(config.dataset, get_task(config.task), todo[key],
                                        out / "cache" if cache else None, progress)
                loaded_key = key
            data = loaded
        results.append(run_one(config, out, data=data, cache=cache, progress=progress))
    return results


def configs_for(pairs: Iterable[tuple[str, str]], dataset: str, seeds: Iterable[int], **settings) -> list[RunConfig]:
    """One :class:`RunConfig` per (task, model) pair and seed, grouped by task (data loaded once)."""
    out = []
    for task, model in sorted(pairs, key=lambda p: (list(TASKS).index(p[0]), MODEL_NAMES.index(p[1]))):
        for s in seeds:
            out.append(RunConfig(task=task, model=model, dataset=str(dataset), seed=int(s), **settings).validate())
    return out


__all__ += ["configs_for", "task_fields", "TASK_ALIASES"]
