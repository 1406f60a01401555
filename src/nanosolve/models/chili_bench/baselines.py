"""Naive CHILI baselines: fit on the training part, score on the test part with the task metric.

* ``random``: a uniformly random class among ``task.out_dim`` (seeded).
* ``most_frequent``: the most common training class (ties: the smallest class index).
* ``mean``: the training mean of each target entry (padded entries: mean over valid ones).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.metrics import score
from nanosolve.models.chili_bench.tasks import Task, build_targets

__all__ = ["collect_targets", "fit_baseline", "predict_baseline", "evaluate_baselines", "BASELINES"]

BASELINES = {"classification": ("random", "most_frequent"), "regression": ("mean",)}


def collect_targets(task: Task, graphs: Iterable) -> tuple[np.ndarray, np.ndarray | None]:
    """Targets of every graph stacked: [n_items] or [n_items, d], and the mask (or None)."""
    ys, masks = [], []
    for data in graphs:
        y, m = build_targets(task, data)
        ys.append(y.numpy())
        masks.append(None if m is None else m.numpy())
    if not ys:
        raise InputError(f"task {task.name}: no graphs")
    y = np.concatenate(ys, axis=0)
    mask = None if masks[0] is None else np.concatenate(masks, axis=0)
    return y, mask


def fit_baseline(name: str, task: Task, y_train: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Parameters of a baseline fitted to training targets (a plain dict, JSON-able)."""
    if name not in BASELINES[task.kind]:
        raise InputError(f"baseline {name!r} does not apply to {task.kind} task {task.name}; "
                         f"use one of {BASELINES[task.kind]}")
    if name == "random":
        return {"name": name, "n_classes": task.out_dim}
    if name == "most_frequent":
        return {"name": name, "cls": int(np.argmax(np.bincount(y_train.astype(np.int64), minlength=task.out_dim)))}
    y = y_train.astype(np.float64)
    if mask is None:
        mean = y.mean(axis=0)
    else:
        count = mask.sum(axis=0)
        # a slot never filled in training is predicted 0 (it never counts in the masked metric
        # unless the test set fills it)
        mean = np.where(count > 0, (y * mask).sum(axis=0) / np.maximum(count, 1), 0.0)
    return {"name": name, "mean": np.atleast_1d(mean).tolist()}


def predict_baseline(params: dict, n: int, seed: int = 0, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Predictions for ``n`` items: class indices [n], or regression values [n, *shape]."""
    if params["name"] == "random":
        return np.random.default_rng(seed).integers(0, params["n_classes"], size=n)
    if params["name"] == "most_frequent":
        return np.full(n, params["cls"], dtype=np.int64)
    mean = np.asarray(params["mean"], dtype=np.float64)
    out = np.broadcast_to(mean, (n,) + mean.shape).copy()
    return out.reshape((n,) + tuple(shape)) if shape is not None else out


def evaluate_baselines(task: Task, train: Iterable, test: Iterable, seed: int = 0) -> dict[str, float]:
    """Fit every applicable baseline on ``train`` graphs, return ``{baseline: test score}``."""
    y_tr, m_tr = collect_targets(task, train)
    y_te, m_te = collect_targets(task, test)
    results = {}
    for name in BASELINES[task.kind]:
        params = fit_baseline(name, task, y_tr, m_tr)
        pred = predict_baseline(params, len(y_te), seed=seed, shape=y_te.shape[1:])
        results[name] = score(task.metric, y_te, pred, m_te)
    return results

