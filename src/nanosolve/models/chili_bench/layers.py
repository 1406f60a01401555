"""Building blocks shared by the CHILI benchmark's models: the element embedding of CHILI node
features, a radial basis of distances, a SchNet-style continuous-filter convolution encoder, and
PyG's GraphUNet with its adjacency squared in SciPy.

They depend on nothing else in the package, so :mod:`.gnns`, :mod:`.local` and :mod:`.pairdist`
all build on them without importing each other.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.models import GraphUNet
from torch_geometric.utils import add_self_loops, remove_self_loops

__all__ = ["X_SCALE", "ElementEmbedding", "RadialBasis", "CFConvEncoder", "SciPyGraphUNet"]


class _CFConv(MessagePassing):
    """x_i' = sum_j x_j * W(d_ij) with W a filter network of the expanded distance."""

    def __init__(self, hidden: int, n_rbf: int):
        super().__init__(aggr="add")
        self.lin_in = nn.Linear(hidden, hidden, bias=False)
        self.filter = nn.Sequential(nn.Linear(n_rbf, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.lin_out = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, x: Tensor, edge_index: Tensor, rbf: Tensor, envelope: Tensor) -> Tensor:
        w = self.filter(rbf) * envelope.unsqueeze(-1)
        return self.lin_out(self.propagate(edge_index, x=self.lin_in(x), w=w))

    def message(self, x_j: Tensor, w: Tensor) -> Tensor:
        return x_j * w


# CHILI node features x = (Z, atomic radius Å, atomic mass u, electron affinity eV): fixed scales
# (no statistics from the data, so nothing leaks between splits) that bring each to ~[0, 1]
X_SCALE = (100.0, 2.5, 250.0, 3.5)


class ElementEmbedding(nn.Module):
    """CHILI node features x [N, 4] -> [N, hidden]: an embedding of Z plus a linear map of the
    columns on the fixed scales :data:`X_SCALE`."""

    def __init__(self, hidden: int):
        super().__init__()
        self.register_buffer("x_scale", torch.tensor(X_SCALE))
        self.z_embed = nn.Embedding(120, hidden)
        self.x_lin = nn.Linear(len(X_SCALE), hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        return self.z_embed(x[:, 0].round().long().clamp(0, 119)) + self.x_lin(x / self.x_scale)


class RadialBasis(nn.Module):
    """Distances [E] (Å) -> ``n_rbf`` Gaussians [E, n_rbf] centred on [0, cutoff]."""

    def __init__(self, n_rbf: int = 32, cutoff: float = 6.0):
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 1.0 / float(cutoff / (n_rbf - 1)) ** 2
        self.n_rbf, self.cutoff = int(n_rbf), float(cutoff)

    def forward(self, dist: Tensor) -> Tensor:
        return torch.exp(-self.gamma * (dist.unsqueeze(-1) - self.centers) ** 2)


class CFConvEncoder(nn.Module):
    """SchNet-style encoder on bond lengths (Å).

    Distances are expanded in ``n_rbf`` Gaussians on [0, cutoff] and damped by a cosine
    envelope, so a bond contributes smoothly less as it approaches the cutoff.
    Input x [N, F], edge_index [2, E], dist [E] -> node embeddings [N, hidden].
    """

    def __init__(self, in_channels: int, hidden: int, layers: int, n_rbf: int = 32, cutoff: float = 6.0):
        super().__init__()
        self.embed = nn.Linear(in_channels, hidden)
        self.rbf = RadialBasis(n_rbf, cutoff)
        self.cutoff = float(cutoff)
        self.convs = nn.ModuleList(_CFConv(hidden, n_rbf) for _ in range(layers))

    def forward(self, x: Tensor, edge_index: Tensor, dist: Tensor) -> Tensor:
        rbf = self.rbf(dist)
        env = 0.5 * (torch.cos(math.pi * dist / self.cutoff) + 1.0) * (dist < self.cutoff)
        h = self.embed(x)
        for conv in self.convs:
            h = h + conv(h, edge_index, rbf, env)  # residual, as SchNet's interaction blocks
        return h


class SciPyGraphUNet(GraphUNet):
    """PyG's :class:`~torch_geometric.nn.models.GraphUNet`, same layers and arguments, with the
    adjacency squaring before each pooling done by SciPy.

    Why: PyG squares the adjacency as a torch sparse CSR product, and on the CPU that product keeps
    memory it does not return (pytorch/pytorch#109445): about 14 MB per first-level product on
    batches of 16 CHILI-3K particles, so a few epochs of GraphUNet exhausted 24 GB. SciPy's product
    gives the same edges and weights (tested against PyG's) and frees its memory. No gradient
    flows through it: the weights are path counts of the bond graph and of its pooled subgraphs.
    """

    def augment_adj(self, edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        if edge_weight.requires_grad:  # never in GraphUNet.forward; keep PyG's differentiable product
            return super().augment_adj(edge_index, edge_weight, num_nodes)
        edge_index, edge_weight = remove_self_loops(edge_index, edge_weight)
        edge_index, edge_weight = add_self_loops(edge_index, edge_weight, num_nodes=num_nodes)
        src, dst = edge_index.cpu().numpy()
        a = scipy.sparse.csr_matrix((edge_weight.detach().cpu().numpy(), (src, dst)), shape=(num_nodes, num_nodes))
        a2 = (a @ a).tocsr()
        a2.sort_indices()  # a fixed order (rows, then columns); PyG's order differs, which reorders only sums
        a2 = a2.tocoo()
        idx = torch.from_numpy(np.stack([a2.row, a2.col]).astype(np.int64)).to(edge_index.device)
        val = torch.from_numpy(a2.data).to(device=edge_weight.device, dtype=edge_weight.dtype)
        return remove_self_loops(idx, val)
