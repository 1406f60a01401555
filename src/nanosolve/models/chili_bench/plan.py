"""CHILI benchmark runs: names, the run configuration and the run plan.

Which tasks and models exist (``TASK_ALIASES``, ``MODEL_NAMES``), which model answers a task
(:func:`resolve_model`, :func:`applicable_models`), the (task, model) pairs of a command line
(:func:`plan_runs`), and :class:`RunConfig`, the JSON record of one run. No data and no training here.
"""


from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.baselines import BASELINES
from nanosolve.models.chili_bench.gnns import EDGE_HEADS
from nanosolve.models.chili_bench.tasks import TASKS, Task, get_task
from nanosolve.models.config_io import JsonConfig

RESULTS_FILE = "results.jsonl"
BASELINE_NAMES = ("random", "most_frequent", "mean")
GNN_NAMES = ("gcn", "pmlp", "graphsage", "gat", "graphunet", "gin", "edgecnn")
MODEL_NAMES = BASELINE_NAMES + GNN_NAMES + ("mlp", "ours")
#: how a run splits the graphs: at random (the paper) or grouped by crystal (all radii in one part)
SPLIT_BY = ("graph", "crystal")

# the paper's column names (target field) -> our task ids, for the CLI
TASK_ALIASES = {
    "atomic_number": "node_atomic_number", "pos_abs": "node_position", "edge_attr": "edge_bond_length",
    "crystal_system_number": "graph_crystal_system", "space_group_number": "graph_space_group",
    "saxs": "graph_saxs", "sans": "graph_sans", "xrd": "graph_xrd", "nd": "graph_nd",
    "xpdf": "graph_xpdf", "npdf": "graph_npdf",
    "xrd_unit_cell_pos_frac": "gen_xrd_unit_cell", "xrd_pos_abs": "gen_xrd_pos_abs",
}


# ---------------------------------------------------------------------------------------------
# names


def resolve_task(name: str) -> Task:
    """A task by id (``graph_crystal_system``) or by the paper's column name (``crystal_system_number``)."""
    return get_task(TASK_ALIASES.get(name, name))


def resolve_model(model: str, task: Task, edge_head: str = "dot") -> tuple[str, str]:
    """(architecture, edge head) of a model name; ``ours`` is the geometry-aware choice per task.

    ``ours`` = ``cfconv`` (SchNet-style filters on the bond lengths). On the bond-length task it
    takes the lengths from the input positions and ends in the distance-aware edge head (an MLP on
    h_i * h_j, |h_i - h_j| and the expanded |r_i - r_j|) instead of the paper's dot product. On crystal-system
    and space-group classification it is ``localenv`` (:mod:`.local`), trained on particle crops;
    on signal regression from the particle ``pairdist`` (:mod:`.pairdist`), an MLP on the
    weighted histogram of all pair distances; on signal-input tasks ``signalnet``
    (:mod:`.signal`), a 1-D CNN, which on structure generation scores a library of training
    structures (``templates``, :mod:`.template`).
    """
    if model == "ours":
        if task.target == "edge_attr":
            return "cfconv", "distance"
        if task.is_particle_classification:
            return "localenv", "dot"
        if task.level == "graph" and task.input_level == "node":  # signals simulated from the particle
            return "pairdist", "dot"
        if task.input_level == "graph":
            return ("templates" if task.loss == "masked_mse" else "signalnet"), "dot"
        return "cfconv", "dot"
    return model, edge_head


def applicable_models(task: Task) -> tuple[str, ...]:
    """Models that apply to ``task``: its baselines, and the GNNs + MLP + ours (graph input) or
    the MLP and ours (signal input)."""
    base = BASELINES[task.kind]
    if task.input_level == "graph":
        return base + ("mlp", "ours")
    return base + GNN_NAMES + ("mlp", "ours")


def _split_names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i and i.strip()]


def plan_runs(tasks: str | Sequence[str] | None = None, models: str | Sequence[str] | None = None,
              all_pairs: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The (task, model) pairs to run and the requested pairs that do not apply (skipped).

    ``tasks``/``models``: names or comma-separated lists; task names may be shell-style patterns
    (``"gen_*"``) and ``"baselines"`` expands to the task's naive baselines. Without ``all_pairs`` both must be given; with it, they filter every task ×
    every applicable model (None = no filter). Unknown names raise :class:`InputError`.
    """
    task_names = _split_names(tasks)
    model_names = _split_names(models)
    if not all_pairs and (not task_names or not model_names):
        raise InputError("give --task and --model, or --all")
    task_list = list(TASKS.values())
    if task_names:
        task_list = []
        for t in task_names:  # shell-style patterns select several tasks: "gen_*", "p2p_xrd_*"
            hits = [TASKS[k] for k in fnmatch.filter(TASKS, t)] if any(c in t for c in "*?[") else [resolve_task(t)]
            if not hits:
                raise InputError(f"task pattern {t!r} matches no CHILI task; known: {', '.join(TASKS)}")
            task_list.extend(h for h in hits if h not in task_list)
    for m in model_names:
        if m not in MODEL_NAMES and m != "baselines":
            raise InputError(f"unknown model {m!r}; known: {', '.join(MODEL_NAMES)}, baselines")
    pairs, skipped = [], []
    for task in task_list:
        ok = applicable_models(task)
        wanted = list(ok) if not model_names else []
        for m in model_names:
            wanted.extend(BASELINES[task.kind] if m == "baselines" else [m])
        for m in dict.fromkeys(wanted):
            (pairs if m in ok else skipped).append((task.name, m))
    if not pairs:
        raise InputError("no applicable (task, model) pair: " + ", ".join(f"{m} on {t}" for t, m in skipped)
                         + " (signal-input tasks take only mlp, ours and the baselines)")
    return pairs, skipped


# ---------------------------------------------------------------------------------------------
# config


@dataclass
class RunConfig(JsonConfig):
    """Settings of one run.

    ``budget_minutes`` is the wall-clock budget of training + validation, summed over resumes;
    ``patience``: epochs without a strictly lower validation loss before stopping;
    ``steps_per_epoch``: optimizer steps per epoch (0 = one pass over the training part) - on
    CHILI-3K a full pass of a GNN takes minutes on one CPU thread, so a short budget needs
    shorter epochs to validate and checkpoint at all; ``val_graphs``: validate on at most this
    many (fixed, seeded) validation graphs (0 = all); ``split``: train/val/test fractions;
    ``split_by``: ``"graph"`` splits the graphs at random, as the paper does (the same crystal at
    another radius is then in training for nearly every test graph), ``"crystal"`` keeps all radii
    of a crystal in one part (:func:`~nanosolve.datasets.splits.grouped_split` on the record's
    ``source``: the CIF, or crystal type and metal);
    ``crop_atoms``: train on the atoms nearest a random atom of each particle (0 = whole graphs,
    -1 = the model's default: :data:`~.local.DEFAULT_CROP_ATOMS` for ``ours``, else 0) - on
    particle classification and bond-length tasks only (a crop keeps a particle's crystal system
    and its bonds' lengths, not its signals or its atoms' absolute positions); classification is
    then scored on the mean log-probabilities of ``eval_crops`` seeded crops per particle, bond
    lengths on whole particles.
    """

    _FAMILY = "CHILI benchmark run"

    task: str
    model: str
    dataset: str = ""
    seed: int = 0
    budget_minutes: float = 3.0
    max_epochs: int = 1000
    patience: int = 50
    lr: float = 1e-3
    batch_size: int = 16
    hidden: int = 64
    layers: int = 3
    edge_head: str = "dot"
    steps_per_epoch: int = 0
    val_graphs: int = 0
    split: tuple = (0.8, 0.1, 0.1)
    split_by: str = "graph"
    crop_atoms: int = -1
    eval_crops: int = 8

    def validate(self) -> RunConfig:
        task = resolve_task(self.task)
        self.task = task.name
        if self.model not in MODEL_NAMES:
            raise InputError(f"unknown model {self.model!r}; known: {', '.join(MODEL_NAMES)}")
        if self.model not in applicable_models(task):
            raise InputError(f"model {self.model!r} does not apply to task {task.name}; "
                             f"use one of {', '.join(applicable_models(task))}")
        if self.split_by not in SPLIT_BY:
            raise InputError(f"unknown split {self.split_by!r}; known: {', '.join(SPLIT_BY)}")
        if self.edge_head not in EDGE_HEADS:
            raise InputError(f"unknown edge head {self.edge_head!r}; known: {', '.join(EDGE_HEADS)}")
        for name in ("max_epochs", "batch_size", "hidden", "layers"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.crop_atoms) < -1 or int(self.crop_atoms) in (1, 2) or int(self.eval_crops) < 1:
            raise InputError(f"crop_atoms must be -1, 0 or >= 3 and eval_crops >= 1, got {self.crop_atoms}, "
                             f"{self.eval_crops}")
        for name in ("patience", "steps_per_epoch", "val_graphs"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.budget_minutes > 0 and self.lr > 0):
            raise InputError("budget_minutes and lr must be > 0")
        self.split = tuple(float(f) for f in self.split)
        return self

    def run_id(self) -> str:
        return f"{self.task}/{self.model}/seed{self.seed}"

    def identity(self) -> dict:
        """Everything that changes the result (the budget may change between resumes); a naive
        baseline is fitted, not trained, so only its task, data, seed and split count."""
        d = self.to_dict()
        d.pop("budget_minutes")
        if self.model in BASELINE_NAMES:
            d = {k: d[k] for k in ("task", "model", "dataset", "seed", "split", "split_by")}
        return d


def run_dir(out_dir: str | os.PathLike, config: RunConfig) -> Path:
    # a random split keeps the folder layout it always had; another split gets its own level
    split = [] if config.split_by == "graph" else [f"split-by-{config.split_by}"]
    return Path(out_dir, "runs", config.task, config.model, *split, f"seed{config.seed}")



def configs_for(pairs: Iterable[tuple[str, str]], dataset: str, seeds: Iterable[int], **settings) -> list[RunConfig]:
    """One :class:`RunConfig` per (task, model) pair and seed, grouped by task (data loaded once)."""
    out = []
    for task, model in sorted(pairs, key=lambda p: (list(TASKS).index(p[0]), MODEL_NAMES.index(p[1]))):
        for s in seeds:
            out.append(RunConfig(task=task, model=model, dataset=str(dataset), seed=int(s), **settings).validate())
    return out
