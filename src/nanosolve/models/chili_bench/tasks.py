"""CHILI benchmark tasks (Friis-Jensen et al. 2024, Table 3 and the structure-generation tasks).

A :class:`Task` says which fields of a :class:`~nanosolve.datasets.pyg.ChiliData` (or a batch of
them) are the model input, what the target is and how it is scored. :func:`build_inputs` and
:func:`build_targets` turn a graph or a ``Batch`` into tensors; they work on both.

Inputs follow the paper's benchmark code: every column of ``x`` (Z, radius, mass, electron
affinity) is a function of the element, so atomic-number classification sees positions only;
position regression sees ``x`` and the bond graph only. Bond-length regression sees ``x`` and
``pos_abs``, as the paper's DistanceRegression does, although the target is then
``|pos_i - pos_j|``, a function of the input: the column measures whether a model can use
geometry at all (the paper's dot product of node embeddings cannot), not what it can infer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nanosolve.errors import InputError

__all__ = ["Task", "TASKS", "PROPERTY_TASKS", "GENERATION_TASKS", "get_task", "build_inputs", "build_targets",
           "MAX_UNIT_CELL_ATOMS", "MAX_PARTICLE_ATOMS", "N_ELEMENTS"]

N_ELEMENTS = 118
MAX_UNIT_CELL_ATOMS = 20
MAX_PARTICLE_ATOMS = 200
_LEVELS = ("node", "edge", "graph")
_LOSSES = ("cross_entropy", "mse", "masked_mse")
_METRICS = ("weighted_f1", "mae", "position_mae", "mse", "masked_mae")
_NORMS = (None, "sample_minmax")
_INPUT_NORMS = (None, "minmax", "log_minmax")


@dataclass(frozen=True)
class Task:
    """One benchmark task.

    Attributes:
        name: unique id, e.g. ``"graph_crystal_system"``.
        level: where the prediction lives: ``"node"`` [N, out], ``"edge"`` [E, out] or
            ``"graph"`` [B, out].
        inputs: fields concatenated (last axis) into the model input. Node fields ([N, k]) give a
            graph input for a GNN; graph fields ([B, L], signals) give a vector input for an MLP.
        input_level: ``"node"`` (GNN input) or ``"graph"`` (one vector per graph, MLP only).
        target: the field the target is built from.
        kind: ``"classification"`` or ``"regression"``.
        out_dim: number of classes, or regression output width.
        loss: ``"cross_entropy"``, ``"mse"`` or ``"masked_mse"`` (padded targets).
        metric: ``"weighted_f1"`` (higher is better), ``"mae"``, ``"position_mae"`` (mean Euclidean
            error per atom, as CHILI scores positions), ``"mse"`` or ``"masked_mae"``.
        normalize: None or ``"sample_minmax"``: each graph's target scaled to [0, 1] on its own
            (no statistics from other graphs, so no train/test leakage).
        class_offset: subtracted from the integer label to give a class index in [0, out_dim)
            (1 for Z, crystal system 1-7 and space group 1-230).
        max_atoms: for padded position targets (structure generation), the padded length; graphs
            with more atoms (label ``count_field``) are left out via :meth:`accepts`.
        count_field: the label holding the atom count of the target: ``"unit_cell_n_atoms"``
            (unit-cell targets) or ``"n_atoms"`` (whole-particle ``pos_abs`` targets).
        input_norm: for signal inputs (``input_level == "graph"``), each graph's input scaled on
            its own: ``"minmax"`` to [0, 1], or ``"log_minmax"`` (log10, then to [0, 1]) for
            intensities spanning many decades (SAXS ~1e1-1e11, XRD ~1e-1-1e8); None = raw.
    """

    name: str
    level: str
    inputs: tuple[str, ...]
    target: str
    kind: str
    out_dim: int
    loss: str
    metric: str
    input_level: str = "node"
    normalize: str | None = None
    class_offset: int = 0
    max_atoms: int | None = None
    count_field: str = "unit_cell_n_atoms"
    input_norm: str | None = None

    def __post_init__(self):
        if self.level not in _LEVELS or self.input_level not in ("node", "graph"):
            raise InputError(f"task {self.name}: bad level {self.level!r}/{self.input_level!r}")
        if self.kind not in ("classification", "regression") or self.loss not in _LOSSES \
                or self.metric not in _METRICS or self.normalize not in _NORMS:
            raise InputError(f"task {self.name}: bad kind/loss/metric/normalize")
        if self.input_norm not in _INPUT_NORMS or (self.input_norm and self.input_level != "graph"):
            raise InputError(f"task {self.name}: bad input_norm {self.input_norm!r}")
        if self.input_level == "graph" and self.level != "graph":
            raise InputError(f"task {self.name}: a graph-level input only gives graph-level predictions")

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"

    @property
    def is_particle_classification(self) -> bool:
        """A per-particle class (crystal system, space group) read from the atoms and their bonds."""
        return self.level == "graph" and self.is_classification and self.input_level == "node"

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "weighted_f1"

    def accepts(self, meta: dict) -> bool:
        """Whether a record (its label dict) can be used; pass as ``ChiliDataset(pre_filter=...)``."""
        if self.max_atoms is not None:
            return int(meta.get(self.count_field, self.max_atoms + 1)) <= self.max_atoms
        return True

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field to load for this task (``ChiliDataset(fields=...)``)."""
        extra = ("edge_index", "n_atoms")
        if self.max_atoms is not None:
            extra += (self.count_field,)
        return tuple(dict.fromkeys(self.inputs + (self.target,) + extra))


def _node_cls(name, inputs, target, n, offset):
    return Task(name, "node", inputs, target, "classification", n, "cross_entropy", "weighted_f1",
                class_offset=offset)


_SIGNAL_DIMS = {"saxs": 300, "sans": 300, "xrd": 580, "nd": 580, "xpdf": 6000, "npdf": 6000}
_GRAPH_IN = ("x", "pos_abs")

PROPERTY_TASKS: dict[str, Task] = {t.name: t for t in [
    # node level: Z from positions (x would give Z away); positions from atom features + bonds
    _node_cls("node_atomic_number", ("pos_abs",), "x", N_ELEMENTS, 1),
    Task("node_position", "node", ("x",), "pos_abs", "regression", 3, "mse", "position_mae"),
    # edge level: bond length (Å) from atom features + positions (the paper's input)
    Task("edge_bond_length", "edge", ("x", "pos_abs"), "edge_attr", "regression", 1, "mse", "mse"),
    # graph level from the particle graph
    Task("graph_crystal_system", "graph", _GRAPH_IN, "crystal_system_number", "classification", 7,
         "cross_entropy", "weighted_f1", class_offset=1),
    Task("graph_space_group", "graph", _GRAPH_IN, "space_group_number", "classification", 230,
         "cross_entropy", "weighted_f1", class_offset=1),
    *[Task(f"graph_{s}", "graph", _GRAPH_IN, s, "regression", n, "mse", "mse", normalize="sample_minmax")
      for s, n in _SIGNAL_DIMS.items()],
]}

_P2P_SIGNALS = ("saxs", "xrd", "xpdf")
# intensities span many decades (log first); a PDF oscillates around 0 (min-max only)
_SIGNAL_INPUT_NORM = {"saxs": "log_minmax", "xrd": "log_minmax", "xpdf": "minmax"}
GENERATION_TASKS: dict[str, Task] = {t.name: t for t in [
    Task("gen_xrd_unit_cell", "graph", ("xrd",), "unit_cell_pos_frac", "regression", 3 * MAX_UNIT_CELL_ATOMS,
         "masked_mse", "masked_mae", input_level="graph", max_atoms=MAX_UNIT_CELL_ATOMS, input_norm="log_minmax"),
    *[Task(f"gen_{s}_unit_cell", "graph", (s,), "unit_cell_pos_frac", "regression", 3 * MAX_UNIT_CELL_ATOMS,
           "masked_mse", "masked_mae", input_level="graph", max_atoms=MAX_UNIT_CELL_ATOMS,
           input_norm=_SIGNAL_INPUT_NORM[s]) for s in _P2P_SIGNALS if s != "xrd"],
    # whole particles (<= 200 atoms) as absolute positions (Å), sorted by distance from the centre
    *[Task(f"gen_{s}_pos_abs", "graph", (s,), "pos_abs", "regression", 3 * MAX_PARTICLE_ATOMS,
           "masked_mse", "masked_mae", input_level="graph", max_atoms=MAX_PARTICLE_ATOMS, count_field="n_atoms",
           input_norm=_SIGNAL_INPUT_NORM[s]) for s in _P2P_SIGNALS],
    *[Task(f"p2p_{s}_crystal_system", "graph", (s,), "crystal_system_number", "classification", 7,
           "cross_entropy", "weighted_f1", input_level="graph", class_offset=1, input_norm=_SIGNAL_INPUT_NORM[s])
      for s in _P2P_SIGNALS],
    *[Task(f"p2p_{s}_space_group", "graph", (s,), "space_group_number", "classification", 230,
           "cross_entropy", "weighted_f1", input_level="graph", class_offset=1, input_norm=_SIGNAL_INPUT_NORM[s])
      for s in _P2P_SIGNALS],
    # cell lengths (Å) and angles (°) differ in scale: scored as MSE on per-graph min-max of the
    # 6 numbers would mix them, so they are regressed raw and scored with MAE
    *[Task(f"p2p_{s}_cell_params", "graph", (s,), "cell_params", "regression", 6, "mse", "mae",
           input_level="graph", input_norm=_SIGNAL_INPUT_NORM[s]) for s in _P2P_SIGNALS],
]}

TASKS: dict[str, Task] = {**PROPERTY_TASKS, **GENERATION_TASKS}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown CHILI task {name!r}; known: {', '.join(TASKS)}") from None


def _field(data, name: str) -> Tensor:
    if name not in data:
        raise InputError(f"graph has no field {name!r} (load it with ChiliDataset(fields=...))")
    return data[name]


def _num_graphs(data) -> int:
    return int(getattr(data, "num_graphs", 1) or 1)


def build_inputs(task: Task, data) -> Tensor:
    """Model input of one graph or a batch, float32.

    Returns:
        ``input_level == "node"``: [N, F] node features (``inputs`` concatenated).
        ``input_level == "graph"``: [B, L] one vector per graph, scaled per ``task.input_norm``.
    """
    parts = [_field(data, f).float().reshape(_field(data, f).shape[0], -1) for f in task.inputs]
    x = torch.cat(parts, dim=-1)
    if task.input_norm == "log_minmax":
        x = torch.log10(x.clamp_min(1e-30))
    if task.input_norm in ("minmax", "log_minmax"):
        x = _minmax_rows(x)
    return x


def _minmax_rows(y: Tensor) -> Tensor:
    lo = y.min(dim=-1, keepdim=True).values
    hi = y.max(dim=-1, keepdim=True).values
    # a flat signal has no scale: map it to 0 rather than divide by zero
    return torch.where(hi > lo, (y - lo) / (hi - lo).clamp_min(1e-30), torch.zeros_like(y))


def _unit_cell_targets(task: Task, data) -> tuple[Tensor, Tensor]:
    """Padded, sorted positions of ``task.target`` (unit-cell fractional or particle absolute)."""
    frac = _field(data, task.target).float()
    counts = _field(data, task.count_field).reshape(-1).tolist()
    if sum(counts) != frac.shape[0]:
        raise InputError(f"{task.count_field} sum {sum(counts)} != {frac.shape[0]} positions in {task.target}")
    m = task.max_atoms
    y = frac.new_zeros(len(counts), m, 3)
    mask = torch.zeros(len(counts), m, 3, dtype=torch.bool)
    for g, part in enumerate(torch.split(frac, counts)):
        if part.shape[0] > m:
            raise InputError(f"{task.target} with {part.shape[0]} atoms > {m}; filter with task.accepts")
        # a canonical order, so the padded target of one structure is always the same
        order = torch.argsort(part.norm(dim=1), stable=True)
        y[g, :part.shape[0]] = part[order]
        mask[g, :part.shape[0]] = True
    return y.reshape(len(counts), -1), mask.reshape(len(counts), -1)


def build_targets(task: Task, data) -> tuple[Tensor, Tensor | None]:
    """Target of one graph or a batch, and a mask of valid entries (None if all are valid).

    Returns:
        classification: int64 class indices, [N] (node), [B] (graph).
        regression: float32 [N, 3] positions Å, [E] bond lengths Å, [B, L] signals in [0, 1]
        (``sample_minmax``), [B, 6] cell parameters (Å, °), or [B, 3 * max_atoms] unit-cell
        fractional coordinates / particle positions (Å) sorted by distance from the origin,
        zero-padded, with a bool mask of the same shape.
    """
    if task.max_atoms is not None:
        return _unit_cell_targets(task, data)
    raw = _field(data, task.target)
    if task.is_classification:
        labels = raw[:, 0] if (task.level == "node" and raw.dim() == 2) else raw.reshape(-1)
        y = torch.round(labels.double()).long() - task.class_offset  # Z is stored as a float column
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= task.out_dim):
            raise InputError(f"task {task.name}: label out of range [{task.class_offset}, "
                             f"{task.out_dim + task.class_offset - 1}]")
        return y, None
    y = raw.float()
    if task.level == "edge":
        y = y.reshape(-1)
    elif task.level == "graph":
        y = y.reshape(_num_graphs(data), -1)
    if task.normalize == "sample_minmax":
        y = _minmax_rows(y)
    return y, None
