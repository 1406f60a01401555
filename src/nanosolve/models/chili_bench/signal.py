"""``ours`` on signal-input tasks: a small 1-D convolutional encoder.

Input: one scaled signal per graph [B, L] (SAXS/XRD/PDF, see :func:`~.tasks.build_inputs`).
A strided 1-D CNN feeds two linear layers and a linear output. Peaks are local features of the
curve whose shape repeats along it; convolutions share what they learn about a peak across
positions, where a plain MLP (the paper's only signal model) must learn it separately at every
bin.

On the structure-generation targets ``ours`` is :class:`~.template.TemplateNet`, this encoder
scoring a library of the training structures. A softmax mixture of *learnt* structures had been
tried before and dropped: on CHILI-3K it collapsed to the mean unit cell (MSE 0.148 against the
MLP's 0.021); scoring the actual training structures, with a decision instead of a mixture, does not.
"""

from __future__ import annotations

from torch import Tensor, nn

from nanosolve.models.chili_bench.tasks import Task, build_inputs

__all__ = ["SignalNet"]


class SignalNet(nn.Module):
    """forward(batch) -> [B, out_dim] (logits or regression values), batch as the MLP's."""

    def __init__(self, task: Task, hidden: int = 64):
        super().__init__()
        self.task = task
        ch = (16, 32, 64)
        layers, c_in = [], 1
        for c in ch:
            layers += [nn.Conv1d(c_in, c, kernel_size=7, stride=2, padding=3), nn.SiLU()]
            c_in = c
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(16))
        width = 4 * hidden
        self.mlp = nn.Sequential(nn.Linear(ch[-1] * 16, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU())
        self.out = nn.Linear(width, task.out_dim)

    def forward(self, data) -> Tensor:
        x = build_inputs(self.task, data)  # [B, L]
        return self.out(self.mlp(self.conv(x.unsqueeze(1)).flatten(1)))
