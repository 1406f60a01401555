"""CHILI benchmark runner: one run = (dataset, task, model, seed).

A run splits the graphs 80/10/10 with ``seed``, at random (as the paper) or grouped by crystal
(``split_by="crystal"``: all radii of a crystal in one part; files then under
``OUT/runs/<task>/<model>/split-by-crystal/seed<k>/``), trains with Adam and
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

The run plan and :class:`RunConfig` live in :mod:`.plan`, the cached task data in :mod:`.fields`;
both are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nanosolve.datasets.splits import grouped_split, random_split
from nanosolve.errors import InputError
from nanosolve.models.checkpoints import atomic_json, load_checkpoint, load_state
from nanosolve.models.chili_bench.baselines import fit_baseline, predict_baseline
from nanosolve.models.chili_bench.fields import (
    Progress,
    TaskData,
    load_fields,
    load_task_data,
    task_fields,
)
from nanosolve.models.chili_bench.gnns import make_model, task_loss, to_prediction
from nanosolve.models.chili_bench.metrics import score
from nanosolve.models.chili_bench.plan import (
    BASELINE_NAMES,
    GNN_NAMES,
    MODEL_NAMES,
    RESULTS_FILE,
    SPLIT_BY,
    TASK_ALIASES,
    RunConfig,
    applicable_models,
    configs_for,
    plan_runs,
    resolve_model,
    resolve_task,
    run_dir,
)
from nanosolve.models.chili_bench.tasks import Task, build_targets, get_task
from nanosolve.models.training import Adapter, Step, run_loop, shard
from nanosolve.provenance import stamp

CHECKPOINT_FORMAT = 1

__all__ = ["RunConfig", "TaskData", "RESULTS_FILE", "BASELINE_NAMES", "GNN_NAMES", "MODEL_NAMES",
           "resolve_task", "resolve_model", "applicable_models", "plan_runs", "load_task_data", "load_fields",
           "run_one", "run_many", "run_dir", "split_parts", "SPLIT_BY", "read_result_lines", "plot_curve"]

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
    """Append ``result`` unless a line for its (dataset, split, task, model, seed) is already there."""
    path = out_dir / RESULTS_FILE

    def key(r: dict) -> tuple:
        return r.get("dataset"), r.get("split_by", "graph"), r["task"], r["model"], r["seed"]

    if path.is_file():
        rows, _ = read_result_lines(path)
        if any(key(r) == key(result) for r in rows):
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


def _eval_crop(config: RunConfig, task: Task) -> int:
    """Crop size when scoring: classification is scored on the mean over seeded crops (as trained);
    bonds and everything else on whole particles."""
    crop = _crop_atoms(config, task)
    return crop if task.is_particle_classification else 0


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


def _run_model(config: RunConfig, data: TaskData, parts: dict):
    """(model, target normaliser) of a run, freshly initialised with the run's seed."""
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
    return model, _normaliser(task, data, parts["train"])


def _train(config: RunConfig, data: TaskData, parts: dict, rdir: Path, progress: Progress | None) -> dict:
    task = data.task
    arch, edge_head = resolve_model(config.model, task, config.edge_head)
    model, norm = _run_model(config, data, parts)
    crop, eval_crop = _crop_atoms(config, task), _eval_crop(config, task)
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


def split_parts(data: TaskData, config: RunConfig) -> dict[str, np.ndarray]:
    """The train / val / test graph indices of a run: at random (``split_by="graph"``) or with
    every graph of one crystal (its record ``source``) in the same part (``"crystal"``)."""
    if config.split_by == "graph":
        return random_split(data.n, config.split, seed=config.seed)
    sources = [m.get("source") for m in data.meta]
    if any(not isinstance(s, str) or not s for s in sources):
        raise InputError("a split by crystal needs every record's 'source' (its CIF or crystal type); "
                         "this store has records without one", config.dataset or None)
    return grouped_split(sources, config.split, seed=config.seed)


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
    parts = split_parts(data, config)
    if min(len(p) for p in parts.values()) == 0:
        raise InputError(f"task {task.name}: {data.n} graphs leave an empty split part")
    if config.model in BASELINE_NAMES:
        res = _fit_baseline(config, data, parts)
    else:
        res = _train(config, data, parts, rdir, progress)
    result = {"dataset": config.dataset, "dataset_name": Path(config.dataset).stem, "task": task.name,
              "model": config.model, "seed": config.seed, "metric": task.metric,
              "higher_is_better": task.higher_is_better, "n_train": len(parts["train"]), "n_val": len(parts["val"]),
              "n_test": len(parts["test"]), "split_by": config.split_by, "budget_minutes": config.budget_minutes,
              "load_seconds": round(data.load_seconds, 2), "data_source": data.source,
              "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "run_dir": str(rdir.relative_to(out)), **res}
    result = stamp(result)  # commit, command line, machine: a table cell traces to the code that made it
    atomic_json(result, done)
    _ensure_result_line(out, result)
    return result, status


def shuffle_node_order(item, generator: torch.Generator):
    """A graph with its nodes in a random order: node fields (inputs, targets) and edges relabelled alike."""
    return item.subgraph(torch.randperm(item.num_nodes, generator=generator))


def rescore(rdir: str | os.PathLike, data: TaskData | None = None, cache_dir: str | os.PathLike | None = None,
            node_order_seed: int | None = None) -> float:
    """The test score of a finished run's best weights (``rdir/best.pt``), computed again.

    With ``node_order_seed``, every test graph's nodes are first put in a seeded random order
    (:func:`shuffle_node_order`). The score of an exactly permutation-equivariant model does not
    change; a model that reads the node order (GraphUNet's top-k pooling breaks ties by node
    index, and CHILI's nodes are stored in the order the particle was cut) loses what it read.

    ``data``: the run's task data (loaded from the run's dataset, cached in ``cache_dir``, if None).
    """
    rdir = Path(rdir)
    if not (rdir / "best.pt").is_file():
        raise InputError("no best.pt: not a trained run (baselines have no weights)", rdir)
    config = RunConfig.from_json(rdir / "config.json")
    task = get_task(config.task)
    if data is None:
        data = load_task_data(config.dataset, task, (resolve_model(config.model, task, config.edge_head)[0],),
                              cache_dir)
    parts = split_parts(data, config)
    model, norm = _run_model(config, data, parts)
    if hasattr(model, "choose_decision"):
        raise InputError("a template run's decision rule is chosen on validation at the end of training; "
                         "its result line holds its test score", rdir)
    load_state(model, load_checkpoint(rdir / "best.pt"), rdir / "best.pt")
    test = parts["test"]
    if node_order_seed is not None:
        if data.items is None:
            raise InputError(f"task {task.name} reads one signal per graph: there is no node order to shuffle", rdir)
        gen = torch.Generator().manual_seed(int(node_order_seed))
        items = list(data.items)
        for i in test.tolist():
            items[i] = shuffle_node_order(items[i], gen)
        data = dataclasses.replace(data, items=items)
    yt, yp, ym, _ = _predict(model, data, test, config.batch_size, norm, _eval_crop(config, task), config.eval_crops)
    return score(task.metric, yt, yp, ym)


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


__all__ += ["configs_for", "task_fields", "TASK_ALIASES", "rescore", "shuffle_node_order"]
