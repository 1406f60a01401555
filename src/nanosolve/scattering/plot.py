"""Plots of patterns (PNG, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

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
    """Lay out, save as PNG (creating the folder) and close ``fig``; every nanosolve plot ends here."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
