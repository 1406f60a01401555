"""Plots of patterns (PNG, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

from nanosolve._io import atomic_path
from nanosolve.scattering.pattern import X_LABELS, Y_LABELS, Pattern


def plot_patterns(patterns: list[Pattern] | Pattern, path: str | os.PathLike, title: str = "",
                  labels: list[str] | None = None) -> Path:
    """One panel per pattern (stacked), axes labelled with units; saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pats = [patterns] if isinstance(patterns, Pattern) else list(patterns)
    fig, axes = plt.subplots(len(pats), 1, figsize=(7, 2.6 * len(pats) + 0.4), squeeze=False)
    for i, (ax, p) in enumerate(zip(axes[:, 0], pats)):
        ax.plot(p.x, p.y, lw=1.0, color="C0")
        ax.set_xlabel(X_LABELS[p.x_unit])
        ax.set_ylabel(Y_LABELS[p.kind])
        name = labels[i] if labels else p.kind.upper()
        wl = f", λ = {p.wavelength:.5g} Å" if p.wavelength else ""
        ax.set_title(f"{name}{wl}", fontsize=10)
        if p.kind in ("saxs", "sans"):
            ax.set_yscale("log")
        if p.kind == "gr":
            ax.axhline(0, color="0.6", lw=0.5)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Lay out, save as PNG (creating the folder; atomically) and close ``fig``; every nanosolve plot ends
    here."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # unique temporary name beside the target (same extension), renamed
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def plot_fit_curves(x, y_obs, y_calc, path: str | os.PathLike, xlabel: str, ylabel: str, model_label: str,
                    title: str = "", data_label: str = "data", ms: float = 2.0) -> Path:
    """PNG of a fit: data (open circles), model (line) and their difference offset below the curves.
    Shared by every refinement report (PDF and powder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x, yo, yc = np.asarray(x), np.asarray(y_obs), np.asarray(y_calc)
    diff = yo - yc
    offset = min(yo.min(), yc.min()) - 1.2 * max(np.abs(diff).max(), 1e-12)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(x, yo, "o", ms=ms, mfc="none", color="tab:blue", label=data_label)
    ax.plot(x, yc, "-", lw=1.2, color="tab:red", label=model_label)
    ax.plot(x, diff + offset, "-", lw=1.0, color="tab:green", label="difference (offset)")
    ax.axhline(offset, color="0.6", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)
