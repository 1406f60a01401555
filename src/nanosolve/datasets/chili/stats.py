"""Dataset statistics: CHILI's Table 1 numbers and Fig. 4-style distribution plots.

Everything is computed from the stores' label table (no arrays are read), so it is fast on
large datasets.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from nanosolve.scattering.plot import save_figure
from nanosolve.structures.crystal import CRYSTAL_SYSTEMS

#: CHILI paper, Table 1 (CHILI-3K); edges count both directions.
PAPER_CHILI_3K = {"graphs": 3180, "nodes": 6_959_085, "edges": 49_624_440}


def dataset_stats(meta: list[dict]) -> dict:
    """Table 1 numbers of a dataset from its label table (``store.meta_table()``)."""
    if not meta:
        return {"graphs": 0, "nodes": 0, "edges": 0}
    n_atoms = np.array([m["n_atoms"] for m in meta])
    edges = np.array([2 * m["n_bonds"] for m in meta])  # stored as undirected bonds; edges go both ways
    sizes = np.array([m["np_size"] for m in meta])
    elements = Counter(e for m in meta for e in m["atomic_species"])
    out = {
        "graphs": len(meta),
        "nodes": int(n_atoms.sum()),
        "edges": int(edges.sum()),
        "nodes_per_graph": {"min": int(n_atoms.min()), "median": float(np.median(n_atoms)),
                            "mean": float(n_atoms.mean()), "max": int(n_atoms.max())},
        "edges_per_graph": {"min": int(edges.min()), "mean": float(edges.mean()), "max": int(edges.max())},
        "np_size": {"min": float(sizes.min()), "mean": float(sizes.mean()), "max": float(sizes.max())},
        "n_elements": len(elements),
        "n_crystals": len({m["source"] for m in meta}),
        "crystal_types": dict(sorted(Counter(m["crystal_type"] or "—" for m in meta).items())),
        "crystal_systems": {s: c for s in CRYSTAL_SYSTEMS if (c := sum(m["crystal_system"] == s for m in meta))},
        "space_groups": dict(sorted(Counter(int(m["space_group_number"]) for m in meta).items())),
    }
    return out


def compare_with_paper(stats: dict, paper: dict = PAPER_CHILI_3K) -> dict:
    """Relative differences (ours / paper - 1) of graphs, nodes and edges."""
    return {k: stats[k] / paper[k] - 1.0 for k in ("graphs", "nodes", "edges")}


def stats_markdown(stats: dict, paper: dict | None = None) -> str:
    """Table 1 as markdown; with ``paper`` the published numbers and the difference beside ours."""
    rows = [("graphs", stats["graphs"]), ("nodes", stats["nodes"]), ("edges (both directions)", stats["edges"])]
    if paper:
        lines = ["| | nanosolve | CHILI paper | difference |", "|---|---|---|---|"]
        for (name, v), key in zip(rows, ("graphs", "nodes", "edges")):
            lines.append(f"| {name} | {v:,} | {paper[key]:,} | {v / paper[key] - 1:+.1%} |")
    else:
        lines = ["| | value |", "|---|---|"] + [f"| {n} | {v:,} |" for n, v in rows]
    npg = stats.get("nodes_per_graph")
    if npg:
        lines.append(f"| nodes per graph (min / median / max) | {npg['min']} / {npg['median']:.0f} / {npg['max']} |"
                     + (" | |" if paper else ""))
        lines.append(f"| particle diameter (Å, min / max) | {stats['np_size']['min']:.1f} / "
                     f"{stats['np_size']['max']:.1f} |" + (" | |" if paper else ""))
        lines.append(f"| elements | {stats['n_elements']} |" + (" | |" if paper else ""))
    return "\n".join(lines)


def plot_distributions(meta: list[dict], path: str | os.PathLike) -> Path:
    """CHILI Fig. 4-style panels: atoms per graph, particle size, crystal systems, space groups,
    element frequency and crystal types. Saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(15, 8))
    n_atoms = np.array([m["n_atoms"] for m in meta])
    ax[0, 0].hist(n_atoms, bins=np.logspace(np.log10(max(1, n_atoms.min())), np.log10(n_atoms.max() + 1), 40))
    ax[0, 0].set_xscale("log")
    ax[0, 0].set(xlabel="atoms per graph", ylabel="graphs", title="graph size")
    ax[0, 1].hist([m["np_size"] for m in meta], bins=40)
    ax[0, 1].set(xlabel="particle diameter (Å)", ylabel="graphs", title="particle size")
    cs = Counter(m["crystal_system"] for m in meta)
    names = [s for s in CRYSTAL_SYSTEMS if s in cs]
    ax[0, 2].bar(names, [cs[s] for s in names])
    ax[0, 2].set(ylabel="graphs", title="crystal system")
    ax[0, 2].tick_params(axis="x", rotation=45)
    sg = Counter(int(m["space_group_number"]) for m in meta)
    ax[1, 0].bar(list(sg), list(sg.values()), width=2)
    ax[1, 0].set(xlabel="space group number", ylabel="graphs", title="space group", xlim=(0, 231))
    el = Counter(e for m in meta for e in m["atomic_species"]).most_common(40)
    ax[1, 1].bar([e for e, _ in el], [c for _, c in el])
    ax[1, 1].set(ylabel="graphs containing it", title="elements (40 most frequent)")
    ax[1, 1].tick_params(axis="x", rotation=90, labelsize=7)
    ct = Counter(m["crystal_type"] or "—" for m in meta)
    ax[1, 2].barh(list(ct), list(ct.values()))
    ax[1, 2].set(xlabel="graphs", title="crystal type")
    return save_figure(fig, path, dpi=110)
