"""Benchmark metrics, on torch tensors or NumPy arrays.

scikit-learn is not a dependency of nanosolve; these follow its definitions
(``f1_score(average="weighted", zero_division=0)``, ``mean_absolute_error``,
``mean_squared_error`` averaged over all entries) so CHILI numbers are comparable.
"""

from __future__ import annotations

import numpy as np
import torch

from nanosolve.errors import InputError

__all__ = ["weighted_f1", "mae", "position_mae", "mse", "masked_mae", "masked_mse", "score", "METRICS"]


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _np(y_true), _np(y_pred)
    if t.shape != p.shape:
        raise InputError(f"target shape {t.shape} != prediction shape {p.shape}")
    if t.size == 0:
        raise InputError("cannot score an empty set")
    return t, p


def weighted_f1(y_true, y_pred) -> float:
    """Support-weighted mean of per-class F1 over the classes in ``y_true`` (integer labels [n]).

    A class never predicted has precision 0/0, counted as F1 = 0 (sklearn's zero_division=0).
    Classes only in ``y_pred`` have zero support and so zero weight.
    """
    t, p = _pair(y_true, y_pred)
    t, p = t.reshape(-1).astype(np.int64), p.reshape(-1).astype(np.int64)
    classes, support = np.unique(t, return_counts=True)
    tp = np.array([np.sum((t == c) & (p == c)) for c in classes], dtype=np.float64)
    n_pred = np.array([np.sum(p == c) for c in classes], dtype=np.float64)
    # F1 = 2 TP / (|true| + |pred|); the denominator is >= support > 0
    f1 = 2.0 * tp / (support + n_pred)
    return float(np.sum(f1 * support) / support.sum())


def mae(y_true, y_pred) -> float:
    """Mean absolute error over all entries (units of the target)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t.astype(np.float64) - p)))


def position_mae(y_true, y_pred) -> float:
    """Mean over atoms of the Euclidean distance between true and predicted positions [N, 3] (Å):
    CHILI's ``position_MAE`` (per atom, not per coordinate)."""
    t, p = _pair(y_true, y_pred)
    if t.ndim != 2:
        raise InputError(f"positions must be [N, 3], got shape {t.shape}")
    return float(np.mean(np.linalg.norm(t.astype(np.float64) - p, axis=1)))


def mse(y_true, y_pred) -> float:
    """Mean squared error over all entries (units of the target squared)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t.astype(np.float64) - p) ** 2))


def _masked(y_true, y_pred, mask):
    t, p = _pair(y_true, y_pred)
    m = _np(mask).astype(bool)
    if m.shape != t.shape:
        raise InputError(f"mask shape {m.shape} != target shape {t.shape}")
    if not m.any():
        raise InputError("mask selects no entries")
    return t[m].astype(np.float64), p[m].astype(np.float64)


def masked_mae(y_true, y_pred, mask) -> float:
    """MAE over the entries where ``mask`` is True (padded targets)."""
    t, p = _masked(y_true, y_pred, mask)
    return float(np.mean(np.abs(t - p)))


def masked_mse(y_true, y_pred, mask) -> float:
    t, p = _masked(y_true, y_pred, mask)
    return float(np.mean((t - p) ** 2))


METRICS = {"weighted_f1": weighted_f1, "mae": mae, "position_mae": position_mae, "mse": mse, "masked_mae": masked_mae}


def score(metric: str, y_true, y_pred, mask=None) -> float:
    """Score by metric name; ``y_pred`` are class indices for ``weighted_f1``."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if metric.startswith("masked_"):
        if mask is None:
            raise InputError(f"{metric} needs a mask")
        return METRICS[metric](y_true, y_pred, mask)
    if mask is not None:
        return {"mae": masked_mae, "mse": masked_mse}[metric](y_true, y_pred, mask)
    return METRICS[metric](y_true, y_pred)
