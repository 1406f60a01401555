"""Models for the CHILI benchmark: PyG encoders with CHILI's task heads.

* Encoders: PyG's GCN, PMLP, GraphSAGE, GAT, GraphUNet, GIN, EdgeCNN
  (``torch_geometric.nn.models``), a plain MLP, and ``cfconv``, a SchNet-style continuous-filter
  convolution over bond lengths, and ``localenv`` (:mod:`.local`), a crop-trained
  local-environment classifier, ``signalnet`` (:mod:`.signal`), a 1-D CNN for signal inputs,
  ``templates`` (:mod:`.template`), that CNN scoring a library of training structures, and
  ``pairdist`` (:mod:`.pairdist`), an MLP on the weighted histogram of all pair distances.
* Heads (CHILI): graph = concat(mean, sum, max pooling) -> Linear -> ReLU -> Linear;
  node = Linear -> ReLU -> Linear; edge = dot product of the two node embeddings (``"dot"``, as
  in the paper) or ``"distance"``, an MLP on (h_i * h_j, |h_i - h_j|), symmetric in i, j, plus
  the distance |r_i - r_j| and its radial-basis expansion when positions are a task input.
* ``mlp`` has 4 linear layers in total: on a signal (graph-input tasks) it maps [B, L] to the
  output directly; on node features it is a 2-layer node encoder plus the 2-layer head.

Why our own ``cfconv`` instead of ``torch_geometric.nn.models.SchNet``: PyG's SchNet builds its
graph with ``radius_graph``, which needs ``pyg-lib`` (not installed here: it raises ImportError),
and it only has a graph-level readout. CHILI graphs already carry their bond graph and bond
lengths, and the benchmark needs node and edge heads too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.nn import models as pyg_models

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.layers import X_SCALE, CFConvEncoder, ElementEmbedding, RadialBasis, SciPyGraphUNet
from nanosolve.models.chili_bench.local import LocalEnvNet
from nanosolve.models.chili_bench.pairdist import PairDistanceNet
from nanosolve.models.chili_bench.signal import SignalNet
from nanosolve.models.chili_bench.tasks import Task, build_inputs
from nanosolve.models.chili_bench.template import TemplateNet

__all__ = ["MODELS", "make_model", "ChiliModel", "CFConvEncoder", "RadialBasis", "ElementEmbedding", "X_SCALE",
           "task_loss", "to_prediction"]

_PYG_BASIC = {"gcn": "GCN", "graphsage": "GraphSAGE", "gat": "GAT", "gin": "GIN", "edgecnn": "EdgeCNN"}
MODELS = ("gcn", "pmlp", "graphsage", "gat", "graphunet", "gin", "edgecnn", "mlp", "cfconv", "localenv", "signalnet",
          "templates", "pairdist")
EDGE_HEADS = ("dot", "distance")


def _two_layer(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def _make_encoder(name: str, d_in: int, hidden: int, layers: int) -> nn.Module:
    if name in _PYG_BASIC:
        return getattr(pyg_models, _PYG_BASIC[name])(in_channels=d_in, hidden_channels=hidden, num_layers=layers)
    if name == "pmlp":
        return pyg_models.PMLP(d_in, hidden, hidden, num_layers=layers)
    if name == "graphunet":
        return SciPyGraphUNet(d_in, hidden, hidden, depth=layers)
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
        if name == "cfconv":
            # invariant by construction: elements as node features, positions only through the
            # distances the filters see (a raw coordinate as a feature changes under rotation)
            unknown = set(task.inputs) - {"x", "pos_abs"}
            if unknown:
                raise InputError(f"cfconv reads elements (x) and positions (pos_abs), not {sorted(unknown)}")
            self.elements = ElementEmbedding(hidden) if "x" in task.inputs else None
            # no element input (atomic-number classification): every atom starts the same
            self.start = nn.Parameter(torch.zeros(hidden)) if self.elements is None else None
            in_channels = hidden
        self.encoder = _make_encoder(name, in_channels, hidden, layers)
        if task.level == "node":
            self.head = _two_layer(hidden, hidden, task.out_dim)
        elif task.level == "graph":
            self.head = _two_layer(3 * hidden, hidden, task.out_dim)
        elif edge_head == "dot":
            self.head = nn.Linear(hidden, hidden)  # a projection before the dot product
        else:
            self.edge_rbf = RadialBasis() if self.has_positions else None
            n_geo = 1 + self.edge_rbf.n_rbf if self.has_positions else 0
            self.head = _two_layer(2 * hidden + n_geo, hidden, task.out_dim)
            # a linear path from the distance features: a target that is (nearly) a function of
            # |r_i - r_j| is then a linear fit, not something ReLUs have to approximate
            self.geo_skip = nn.Linear(n_geo, task.out_dim) if self.has_positions else None

    @property
    def has_positions(self) -> bool:
        return "pos_abs" in self.task.inputs

    def bond_lengths(self, data) -> Tensor:
        """[E] Å: from the positions when they are an input, else the stored ``edge_attr`` (the
        paper hands ``edge_attr`` to every model as edge weights)."""
        if self.has_positions:
            src, dst = data.edge_index
            return (data.pos_abs[src] - data.pos_abs[dst]).float().norm(dim=-1)
        return data.edge_attr[:, 0].float()

    def encode(self, data, x: Tensor) -> Tensor:
        ei = data.edge_index
        if self.name == "mlp":
            return self.encoder(x)
        if self.name == "cfconv":
            h0 = self.elements(data.x) if self.elements is not None else self.start.expand(x.shape[0], -1)
            return self.encoder(h0, ei, self.bond_lengths(data))
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
        feats = [h[src] * h[dst], (h[src] - h[dst]).abs()]
        if not self.has_positions:
            return self.head(torch.cat(feats, dim=-1)).squeeze(-1)
        d = self.bond_lengths(data)
        geo = torch.cat([d.unsqueeze(-1), self.edge_rbf(d)], dim=-1)
        return (self.head(torch.cat(feats + [geo], dim=-1)) + self.geo_skip(geo)).squeeze(-1)


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
    if task.input_level == "graph" and name not in ("mlp", "signalnet", "templates"):
        raise InputError(f"task {task.name} has a signal input ({', '.join(task.inputs)}): only 'mlp', "
                         f"'signalnet' and 'templates' apply, not {name!r}")
    if name == "templates":
        if task.input_level != "graph":
            raise InputError(f"templates reads one signal per graph; task {task.name} has graph input")
        return TemplateNet(task, hidden=hidden)  # call fit_library(train targets) before training
    if name == "signalnet":
        if task.input_level != "graph":
            raise InputError(f"signalnet reads one signal per graph; task {task.name} has graph input")
        return SignalNet(task, hidden=hidden)  # length-independent (adaptive pooling)
    if name == "cfconv" and task.target == "edge_attr" and "pos_abs" not in task.inputs:
        raise InputError("cfconv reads the bond lengths in edge_attr, the target of this task")
    if name == "localenv":
        if not task.is_particle_classification:
            raise InputError(f"localenv classifies whole particles from their positions; not task {task.name}")
        return LocalEnvNet(task.out_dim, hidden=hidden, layers=layers)
    if name == "pairdist":
        if task.input_level != "node" or task.level != "graph" or "pos_abs" not in task.inputs:
            raise InputError(f"pairdist maps a particle's positions to a graph-level value; not task {task.name}")
        return PairDistanceNet(task.out_dim, hidden=hidden)
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
