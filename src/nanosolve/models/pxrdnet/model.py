"""PXRDNet: CDVAE plus the paper's regressor from the latent code to the nano-broadened pattern.

The regressor F: z [B, latent] → pattern [B, P] (P = 512 points on Q 0–8.1568 Å⁻¹, max 1) is
FC(latent → P) + BatchNorm + ReLU, a 1-D conv to C channels, a dense block of L k=3 convolutions
(each sees the concatenation of all earlier feature maps, C new channels each, ReLU) and a
final k=1 conv to one channel. It is trained jointly with CDVAE's objective by an L1 loss,
so the latent space is organised by pattern as well as by structure — which is what makes
gradient descent on z against a measured pattern meaningful.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nanosolve.models.cdvae.model import CDVAE
from nanosolve.models.pxrdnet.config import PXRDNetConfig


class PatternRegressor(nn.Module):
    """z [B, latent_dim] → predicted pattern [B, xrd_points] (see module docstring)."""

    def __init__(self, latent_dim: int, points: int = 512, channels: int = 8, dense_layers: int = 4):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(latent_dim, points), nn.BatchNorm1d(points), nn.ReLU())
        self.stem = nn.Conv1d(1, channels, 3, padding=1)
        self.dense = nn.ModuleList([nn.Conv1d(channels * (i + 1), channels, 3, padding=1)
                                    for i in range(dense_layers)])
        self.head = nn.Conv1d(channels * (dense_layers + 1), 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training and len(z) == 1:  # BatchNorm cannot take statistics of one sample: running ones
            lin, bn = self.fc[0], self.fc[1]
            h = F.relu(F.batch_norm(lin(z), bn.running_mean, bn.running_var, bn.weight, bn.bias, False))
        else:
            h = self.fc(z)
        feats = [F.relu(self.stem(h[:, None, :]))]
        for conv in self.dense:
            feats.append(F.relu(conv(torch.cat(feats, 1))))
        return self.head(torch.cat(feats, 1))[:, 0, :]


class PXRDNet(CDVAE):
    """CDVAE (encoder, heads, score decoder, sampler API) + :class:`PatternRegressor` as ``fc_xrd``.

    Training batches carry ``xrd`` [B, xrd_points], the simulated pattern of each crystal
    (:func:`nanosolve.scattering.nano_pxrd.pxrdnet_pattern`); the extra loss is
    ``cost_xrd · mean |F(z) − xrd|``.
    """

    def __init__(self, cfg: PXRDNetConfig):
        super().__init__(cfg)
        self.fc_xrd = PatternRegressor(cfg.latent_dim, cfg.xrd_points, cfg.xrd_channels, cfg.xrd_dense_layers)

    def predict_pattern(self, z: torch.Tensor) -> torch.Tensor:
        """[B, xrd_points] pattern predicted from latent codes [B, latent_dim]."""
        return self.fc_xrd(z)

    def extra_losses(self, batch, z) -> dict:
        target = getattr(batch, "xrd", None)
        if target is None:
            raise ValueError("PXRDNet training data needs an `xrd` pattern per crystal")
        return {"xrd": F.l1_loss(self.fc_xrd(z), target.view(len(z), -1))}

    def term_weights(self) -> dict[str, float]:
        return {**super().term_weights(), "xrd": self.cfg.cost_xrd}


__all__ = ["PXRDNet", "PatternRegressor"]
