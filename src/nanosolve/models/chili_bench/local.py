"""``ours`` on graph classification: a local-environment network trained on particle crops.

Why crops: the structure type (crystal system, space group) of a CHILI particle is written in
every atom's neighbourhood, but a CHILI-3K particle has up to ~27k atoms, so a step on whole
graphs costs seconds on a CPU and a short budget sees under an epoch. Training on the
``crop_atoms`` atoms nearest a random atom (their bonds kept) costs ~100× less per graph and
shows many neighbourhoods of every particle; at evaluation the class log-probabilities of
``eval_crops`` crops per particle (seeded) are averaged, so train and test see the same kind of
input and pooling (a mean over a crop is on the same scale as over a whole small particle).

The network is invariant by construction: element features (Z embedding + the CHILI feature
columns on fixed scales), SchNet-style continuous-filter convolutions on bond lengths computed
from ``pos_abs`` over the stored bond graph, mean pooling, two linear layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import subgraph

from nanosolve.models.chili_bench.layers import CFConvEncoder, ElementEmbedding

__all__ = ["LocalEnvNet", "crop_graph", "DEFAULT_CROP_ATOMS"]

DEFAULT_CROP_ATOMS = 128


def crop_graph(item, n_keep: int, generator: torch.Generator | None = None, center: int | None = None):
    """The ``n_keep`` atoms of ``item`` nearest one atom (random, or ``center``), with their bonds.

    ``item``: a ChiliData with ``x`` [N, F], ``pos_abs`` [N, 3] (Å), ``edge_index`` [2, E] and
    optionally ``edge_attr`` [E, k] (kept for the kept bonds); graph-level fields are carried over.
    A particle of at most ``n_keep`` atoms is returned whole.
    """
    n = int(item.x.shape[0])
    if n <= n_keep:
        return item
    if center is None:
        center = int(torch.randint(n, (1,), generator=generator))
    pos = item.pos_abs.float()
    keep = torch.topk((pos - pos[center]).square().sum(-1), n_keep, largest=False).indices.sort().values
    ea = item.edge_attr if "edge_attr" in item else None
    ei, ea = subgraph(keep, item.edge_index, edge_attr=ea, relabel_nodes=True, num_nodes=n)
    out = item.__class__()
    for key, value in item:
        if key in ("x", "pos_abs", "pos_frac"):
            out[key] = value[keep]
        elif key == "edge_index":
            out[key] = ei
        elif key == "edge_attr":
            out[key] = ea
        elif key in ("pair_counts", "pair_index"):
            continue  # the whole particle's pairs (runner cache): pairdist recounts the crop's own
        else:
            out[key] = value
    out.n_atoms = torch.tensor(n_keep)
    out.num_nodes = n_keep
    return out


class LocalEnvNet(nn.Module):
    """Graph classifier on local environments.

    forward(batch) -> logits [B, n_classes]; batch fields: ``x`` [N, 4] (CHILI features),
    ``pos_abs`` [N, 3] Å, ``edge_index`` [2, E], ``batch`` [N].
    """

    def __init__(self, n_classes: int, hidden: int = 64, layers: int = 3, cutoff: float = 6.0):
        super().__init__()
        self.elements = ElementEmbedding(hidden)
        self.encoder = CFConvEncoder(hidden, hidden, layers, cutoff=cutoff)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_classes))

    def forward(self, data) -> Tensor:
        h = self.elements(data.x)
        src, dst = data.edge_index
        pos = data.pos_abs.float()
        dist = (pos[src] - pos[dst]).norm(dim=-1)
        h = self.encoder(h, data.edge_index, dist)
        b = getattr(data, "batch", None)
        if b is None:
            b = torch.zeros(h.shape[0], dtype=torch.long)
        return self.head(global_mean_pool(h, b))
