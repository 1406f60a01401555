"""``ours`` on structure generation from a signal: score a library of training structures.

The structure-generation targets (unit-cell fractional positions, particle positions) are
padded, sorted lists of coordinates. Regressing them entry by entry (the paper's MLP) averages
structures that look alike, and the average of two structures is neither. Here the 1-D CNN of
:mod:`.signal` instead scores a library of the distinct targets of the training part; the
prediction is the library structure with the lowest expected error under those scores, so it is
always a structure that exists. On CHILI-3K the unit cells come from 12 prototypes (14 distinct
padded targets), so this is the right inductive bias there; it cannot invent a structure
outside its library, and on data with many novel cells it degrades to the nearest known one.

Training: the soft label of a graph is ``softmax(-err_k / tau)`` over the library, ``err_k`` the
masked MAE between the graph's target and template k, ``tau = temperature * median distance of a
target to its nearest other template`` (so nearby templates share the credit where they are
close, as particle positions of neighbouring lattice constants are); loss = cross-entropy.
Decision (:data:`DECISIONS`, chosen on the validation part by :meth:`TemplateNet.choose_decision`):
``"argmax"``, the most probable template; ``"expected"``, ``argmin_k sum_j p_j * E[k, j]`` with
``E[k, j]`` the summed absolute error of template k when template j is the truth (over j's
atoms, as the metric counts atoms); ``"median"``, the p-weighted median of every entry over the
templates (the MAE-optimal point estimate when no single template is likely; not itself a
library structure). The soft labels make p smoother than a posterior, so which rule is best
depends on how far apart the templates are: measured on CHILI-3K, ``argmax`` on unit cells
(14 distinct prototypes), ``median`` on particle positions (one template per particle).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.signal import SignalNet
from nanosolve.models.chili_bench.tasks import Task

__all__ = ["TemplateNet", "template_errors", "weighted_median", "MAX_TEMPLATES", "DECISIONS"]

MAX_TEMPLATES = 2048
DECISIONS = ("argmax", "expected", "median")


def template_errors(y: Tensor, mask: Tensor, templates: Tensor, reduce: str = "mean", chunk: int = 64) -> Tensor:
    """[n, K] error of each template against each target over the target's valid entries.

    y, mask: [n, D] targets and their bool mask; templates: [K, D]. ``reduce``: "mean" (masked
    MAE) or "sum" (summed absolute error).
    """
    out = []
    m = mask.float()
    for s in range(0, y.shape[0], chunk):
        diff = (templates.unsqueeze(0) - y[s:s + chunk].unsqueeze(1)).abs() * m[s:s + chunk].unsqueeze(1)
        err = diff.sum(-1)
        if reduce == "mean":
            err = err / m[s:s + chunk].sum(-1, keepdim=True).clamp_min(1.0)
        out.append(err)
    return torch.cat(out, 0)


def weighted_median(p: Tensor, templates: Tensor, mask: Tensor) -> Tensor:
    """[B, D] per-entry median of ``templates`` [K, D] weighted by ``p`` [B, K] times ``mask`` [K, D]."""
    order = torch.argsort(templates, dim=0)
    sorted_t = torch.gather(templates, 0, order)
    w = p.unsqueeze(-1) * mask.float().unsqueeze(0)
    cum = torch.gather(w, 1, order.unsqueeze(0).expand_as(w)).cumsum(1)
    idx = (cum < cum[:, -1:, :] / 2).sum(1).clamp(max=templates.shape[0] - 1)
    return torch.gather(sorted_t.unsqueeze(0).expand(p.shape[0], -1, -1), 1, idx.unsqueeze(1)).squeeze(1)


class TemplateNet(SignalNet):
    """Signal [B, L] -> scores over a library of training targets.

    ``fit_library(y, mask)`` must be called once with the training targets before training (it
    sizes the output layer). ``forward`` returns logits [B, K]; :meth:`predict` turns them into
    targets [B, D]; :meth:`loss` is the training loss against targets [B, D] with their mask.
    """

    def __init__(self, task: Task, hidden: int = 64, temperature: float = 0.5):
        if task.loss != "masked_mse":
            raise InputError(f"the template model decodes padded structures; task {task.name} is not one")
        super().__init__(task, hidden=hidden)
        self.temperature = float(temperature)
        self.out = None  # sized by fit_library
        self.register_buffer("templates", torch.zeros(0, task.out_dim))
        self.register_buffer("template_mask", torch.zeros(0, task.out_dim, dtype=torch.bool))
        self.register_buffer("tau", torch.tensor(1.0))
        self.register_buffer("cost", torch.zeros(0, 0))
        self.register_buffer("decision_index", torch.tensor(0))

    def fit_library(self, y: Tensor, mask: Tensor) -> TemplateNet:
        """Library = the distinct training targets (to 1e-4), the most frequent first if capped."""
        y = torch.where(mask, y.float(), torch.zeros_like(y, dtype=torch.float32))
        keys, inverse, counts = torch.unique(torch.round(y * 1e4), dim=0, return_inverse=True, return_counts=True)
        order = torch.argsort(counts, descending=True, stable=True)[:MAX_TEMPLATES]
        first = torch.full((keys.shape[0],), y.shape[0], dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(y.shape[0]), reduce="amin")
        pick = first[order]
        self.templates = y[pick].clone()
        self.template_mask = mask[pick].clone()
        err = template_errors(y, mask, self.templates)
        # a target's distance to its nearest other template: the scale on which two are "close"
        other = torch.where(err > 1e-6, err, torch.full_like(err, float("inf"))).min(1).values
        finite = other[torch.isfinite(other)]
        scale = float(finite.median()) if finite.numel() else 1.0
        self.tau = torch.tensor(max(self.temperature * scale, 1e-6))
        # cost[k, j]: summed error of template k when template j is the truth, over j's atoms
        self.cost = template_errors(self.templates, self.template_mask, self.templates, reduce="sum").T.contiguous()
        self.out = nn.Linear(self.mlp[-2].out_features, self.templates.shape[0])
        return self

    def _check(self):
        if self.out is None:
            raise InputError("TemplateNet: call fit_library with the training targets first")

    def forward(self, data) -> Tensor:
        self._check()
        return super().forward(data)

    def soft_labels(self, y: Tensor, mask: Tensor) -> Tensor:
        return torch.softmax(-template_errors(y.float(), mask, self.templates) / self.tau, dim=-1)

    def loss(self, logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        return F.cross_entropy(logits, self.soft_labels(y, mask))

    @property
    def decision(self) -> str:
        return DECISIONS[int(self.decision_index)]

    @decision.setter
    def decision(self, rule: str) -> None:
        if rule not in DECISIONS:
            raise InputError(f"unknown template decision {rule!r}; known: {', '.join(DECISIONS)}")
        self.decision_index.fill_(DECISIONS.index(rule))

    def predict(self, logits: Tensor) -> Tensor:
        """Targets [B, D] from logits [B, K] by :attr:`decision`."""
        p = torch.softmax(logits.detach(), dim=-1)
        if self.decision == "argmax":
            return self.templates[p.argmax(-1)]
        if self.decision == "expected":
            return self.templates[(p @ self.cost.T).argmin(-1)]
        return weighted_median(p, self.templates, self.template_mask)

    def choose_decision(self, score_fn) -> dict:
        """Set :attr:`decision` to the rule with the lowest ``score_fn()`` (a validation error
        computed with the current rule); returns {rule: score}."""
        scores = {}
        for rule in DECISIONS:
            self.decision = rule
            scores[rule] = float(score_fn())
        self.decision = min(scores, key=scores.get)
        return scores
