"""Models for the CHILI benchmark: PyG encoders with CHILI's task heads.

* Encoders: PyG's GCN, PMLP, GraphSAGE, GAT, GraphUNet, GIN, EdgeCNN
  (``torch_geometric.nn.models``), a plain MLP, and ``cfconv``, a SchNet-style continuous-filter
  convolution over the stored bond lengths, and ``localenv`` (:mod:`.local`), a crop-trained
  local-environment classifier, and ``signalnet`` (:mod:`.signal`), a 1-D CNN for signal inputs.
* Heads (CHILI): graph = concat(mean, sum, max pooling) -> Linear -> ReLU -> Linear;
  node = Linear -> ReLU -> Linear; edge = dot product of the two node embeddings (``"dot"``, as
  in the paper) or ``"distance"``, an MLP on (h_i * h_j, |h_i - h_j|), symmetric in i, j.
* ``mlp`` has 4 linear layers in total: on a signal (graph-input tasks) it maps [B, L] to the
  output directly; on node features it is a 2-layer node encoder plus the 2-layer head.

Why our own ``cfconv`` instead of ``torch_geometric.nn.models.SchNet``: PyG's SchNet builds its
graph with ``radius_graph``, which needs ``pyg-lib`` (not installed here: it raises ImportError),
and it only has a graph-level readout. CHILI graphs already carry their bond graph and bond
lengths, and the benchmark needs node and edge heads too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import MessagePassing, global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.nn import models as pyg_models

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.tasks import Task, build_inputs

__all__ = ["MODELS", "make_model", "ChiliModel", "CFConvEncoder", "task_loss", "to_prediction"]

_PYG_BASIC = {"gcn": "GCN", "graphsage": "GraphSAGE", "gat": "GAT", "gin": "GIN", "edgecnn": "EdgeCNN"}
MODELS = ("gcn", "pmlp", "graphsage", "gat", "graphunet", "gin", "edgecnn", "mlp", "cfconv", "localenv", "signalnet")
EDGE_HEADS = ("dot", "distance")


def _two_layer(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


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


class CFConvEncoder(nn.Module):
    """SchNet-style encoder on bond lengths ``edge_attr[:, 0]`` (Å).

    Distances are expanded in ``n_rbf`` Gaussians on [0, cutoff] and damped by a cosine
    envelope, so a bond contributes smoothly less as it approaches the cutoff.
    Input x [N, F], edge_index [2, E], dist [E] -> node embeddings [N, hidden].
    """

    def __init__(self, in_channels: int, hidden: int, layers: int, n_rbf: int = 32, cutoff: float = 6.0):
        super().__init__()
        self.embed = nn.Linear(in_channels, hidden)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 1.0 / float(cutoff / (n_rbf - 1)) ** 2
        self.cutoff = float(cutoff)
        self.convs = nn.ModuleList(_CFConv(hidden, n_rbf) for _ in range(layers))

    def forward(self, x: Tensor, edge_index: Tensor, dist: Tensor) -> Tensor:
        rbf = torch.exp(-self.gamma * (dist.unsqueeze(-1) - self.centers) ** 2)
        env = 0.5 * (torch.cos(math.pi * dist / self.cutoff) + 1.0) * (dist < self.cutoff)
        h = self.embed(x)
        for conv in self.convs:
            h = h + conv(h, edge_index, rbf, env)  # residual, as SchNet's interaction blocks
        return h


def _make_encoder(name: str, d_in: int, hidden: int, layers: int) -> nn.Module:
    if name in _PYG_BASIC:
        return getattr(pyg_models, _PYG_BASIC[name])(in_channels=d_in, hidden_channels=hidden, num_layers=layers)
    if name == "pmlp":
        return pyg_models.PMLP(d_in, hidden, hidden, num_layers=layers)
    if name == "graphunet":
        return pyg_models.GraphUNet(d_in, hidden, hidden, depth=layers)
    if name == "cfconv":
        return CFConvEncoder(d_in, hidden, layers)
    if name == "mlp":
        return pyg_models.MLP([d_in, hidden, hidden], norm=None)
    raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


class ChiliModel(nn.Module):
    """Encoder + task head. ``forward(data)`` takes a ``ChiliData`` or a batch of them.

    Returns:
        classification: logits [N, C] (node) or [B, C] (graph).
        regression: [N, d] (node), [E] (edge, bond length Å), [B, d] (graph).
    """

    def __init__(self, name: str, task: Task, hidden: int, layers: int, in_channels: int, edge_head: str = "dot"):
        super().__init__()
        self.name, self.task, self.edge_head = name, task, edge_head
        if task.input_level == "graph":
            # a vector input has no graph to convolve; only the MLP applies
            self.encoder = pyg_models.MLP([in_channels, hidden, hidden, hidden, task.out_dim], norm=None)
            self.head = None
            return
        self.encoder = _make_encoder(name, in_channels, hidden, layers)
        if task.level == "node":
            self.head = _two_layer(hidden, hidden, task.out_dim)
        elif task.level == "graph":
            self.head = _two_layer(3 * hidden, hidden, task.out_dim)
        elif edge_head == "dot":
            self.head = nn.Linear(hidden, hidden)  # a projection before the dot product
        else:
            self.head = _two_layer(2 * hidden, hidden, task.out_dim)

    def encode(self, data, x: Tensor) -> Tensor:
        ei = data.edge_index
        if self.name == "mlp":
            return self.encoder(x)
        if self.name == "cfconv":
            return self.encoder(x, ei, data.edge_attr[:, 0].float())
        if self.name == "graphunet":
            return self.encoder(x, ei, _batch_vector(data, x))
        return self.encoder(x, ei)

    def forward(self, data) -> Tensor:
        x = build_inputs(self.task, data)
        if self.task.input_level == "graph":
            return self.encoder(x)
        h = self.encode(data, x)
        if self.task.level == "node":
            return self.head(h)
        if self.task.level == "graph":
            b = _batch_vector(data, x)
            pooled = torch.cat([global_mean_pool(h, b), global_add_pool(h, b), global_max_pool(h, b)], dim=-1)
            return self.head(pooled)
        src, dst = data.edge_index
        if self.edge_head == "dot":
            z = self.head(h)
            return (z[src] * z[dst]).sum(-1)
        return self.head(torch.cat([h[src] * h[dst], (h[src] - h[dst]).abs()], dim=-1)).squeeze(-1)


def _batch_vector(data, x: Tensor) -> Tensor:
    b = getattr(data, "batch", None)
    return b if b is not None else torch.zeros(x.shape[0], dtype=torch.long, device=x.device)


def make_model(name: str, task: Task, hidden: int = 64, layers: int = 3, edge_head: str = "dot",
               in_channels: int | None = None, sample=None) -> ChiliModel:
    """Build a model for ``task``.

    Args:
        name: one of :data:`MODELS`.
        task: the :class:`~nanosolve.models.chili_bench.tasks.Task`.
        hidden: embedding width; layers: message-passing layers (GraphUNet: depth).
        edge_head: ``"dot"`` or ``"distance"`` (edge tasks only).
        in_channels: input width; or give ``sample`` (one graph) to infer it.
    """
    name = name.lower()
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if edge_head not in EDGE_HEADS:
        raise InputError(f"unknown edge head {edge_head!r}; known: {', '.join(EDGE_HEADS)}")
    if task.input_level == "graph" and name not in ("mlp", "signalnet"):
        raise InputError(f"task {task.name} has a signal input ({', '.join(task.inputs)}): only 'mlp' and "
                         f"'signalnet' apply, not {name!r}")
    if name == "signalnet":
        if task.input_level != "graph":
            raise InputError(f"signalnet reads one signal per graph; task {task.name} has graph input")
        from nanosolve.models.chili_bench.signal import SignalNet  # signal.py builds on tasks, not on this module

        return SignalNet(task, hidden=hidden)  # length-independent (adaptive pooling)
    if name == "cfconv" and task.target == "edge_attr":
        raise InputError("cfconv reads the bond lengths in edge_attr, the target of this task")
    if name == "localenv":
        if not task.is_particle_classification:
            raise InputError(f"localenv classifies whole particles from their positions; not task {task.name}")
        from nanosolve.models.chili_bench.local import LocalEnvNet  # local.py builds on this module

        return LocalEnvNet(task.out_dim, hidden=hidden, layers=layers)
    if in_channels is None:
        if sample is None:
            raise InputError("give in_channels or a sample graph to infer the input width")
        in_channels = build_inputs(task, sample).shape[-1]
    return ChiliModel(name, task, hidden, layers, int(in_channels), edge_head)


def task_loss(task: Task, out: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Training loss: cross-entropy on logits, MSE (over ``mask`` entries if given)."""
    if task.loss == "cross_entropy":
        return F.cross_entropy(out, y)
    out = out.reshape(y.shape)
    if mask is not None:
        return ((out - y) ** 2)[mask].mean()
    return F.mse_loss(out, y)


def to_prediction(task: Task, out: Tensor) -> Tensor:
    """Model output -> what the metric scores: class indices, or values shaped like the target."""
    return out.argmax(-1) if task.is_classification else out.detach()
