"""``ours`` on signal regression from the particle graph (SAXS, SANS, XRD, ND, xPDF, nPDF).

Every one of these signals is a function of the particle's pair distances and the scattering
weights of the atoms in each pair (Debye: I(Q) = sum_ij f_i f_j sin(Q r_ij) / (Q r_ij); a PDF is
the weighted pair-distance histogram, broadened). The bond graph only holds pairs a few Å apart,
so a message-passing GNN pooled once sees none of the distances that set the particle's size
and shape, which is what a SAXS curve measures; on CHILI-3K every GNN of the paper ends above
the mean baseline on these columns. This model reads the signal's sufficient statistic instead:

1. per atom, ``channels`` positive weights learnt from its element (an analogue of form factors
   or scattering lengths, one per channel, so X-ray and neutron contrasts can both be learnt);
2. per graph, the histogram of all pair distances (Å bins on [0, ``r_max``]), each pair counted
   with w_i * w_j per channel, normalised to sum 1 per channel; large particles use a random
   subset of atoms (an unbiased estimate of the normalised histogram; fixed seed at evaluation);
3. an MLP from the histograms, log(N atoms) and the mean element embedding to the signal.

Distances are exact and rotation-invariant; the weights are differentiable through
``index_add`` (the bin of a pair does not depend on the parameters).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nanosolve.models.chili_bench.gnns import ElementEmbedding

__all__ = ["PairDistanceNet", "pair_histogram"]


def pair_histogram(pos: Tensor, weights: Tensor, bin_width: float, n_bins: int) -> Tensor:
    """Weighted histogram of the distances of all pairs i < j.

    pos [n, 3] Å, weights [n, K] -> [n_bins, K]: bin b holds sum of w_i * w_j over pairs with
    b * bin_width <= r_ij < (b + 1) * bin_width; pairs beyond the last bin go into it.
    """
    n = pos.shape[0]
    if n < 2:
        return weights.new_zeros(n_bins, weights.shape[1])
    i, j = torch.triu_indices(n, n, offset=1, device=pos.device)
    d = torch.pdist(pos.double()).float()  # ordered as triu_indices(n, n, 1)
    b = (d / bin_width).long().clamp_(max=n_bins - 1)
    return weights.new_zeros(n_bins, weights.shape[1]).index_add_(0, b, weights[i] * weights[j])


class PairDistanceNet(nn.Module):
    """forward(batch) -> [B, out_dim]; batch fields ``x`` [N, 4] (CHILI features, Z first),
    ``pos_abs`` [N, 3] Å, ``ptr`` [B + 1] (a single graph without ``ptr`` is one batch of 1).

    ``train_atoms`` / ``eval_atoms``: at most this many atoms per particle enter the histogram
    (all pairs among them) in training / evaluation mode.
    """

    def __init__(self, out_dim: int, hidden: int = 64, channels: int = 4, bin_width: float = 0.05,
                 r_max: float = 100.0, train_atoms: int = 384, eval_atoms: int = 1024):
        super().__init__()
        self.bin_width, self.n_bins = float(bin_width), int(math.ceil(r_max / bin_width))
        self.train_atoms, self.eval_atoms = int(train_atoms), int(eval_atoms)
        self.elements = ElementEmbedding(hidden)
        self.atom_weights = nn.Sequential(nn.SiLU(), nn.Linear(hidden, channels))
        width = 4 * hidden
        self.mlp = nn.Sequential(nn.Linear(channels * self.n_bins + hidden + 1, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, out_dim))

    def _subset(self, n: int) -> Tensor | None:
        cap = self.train_atoms if self.training else self.eval_atoms
        if n <= cap:
            return None
        # training: torch's global RNG (a resumed run repeats it); evaluation: the same atoms every time
        gen = None if self.training else torch.Generator().manual_seed(n)
        return torch.randperm(n, generator=gen)[:cap]

    def features(self, data) -> Tensor:
        """[B, channels * n_bins + hidden + 1]: histograms, mean element embedding, log N / 10."""
        ptr = data.ptr.tolist() if getattr(data, "ptr", None) is not None else [0, data.x.shape[0]]
        emb = self.elements(data.x)
        rows = []
        for g in range(len(ptr) - 1):
            lo, hi = ptr[g], ptr[g + 1]
            e, pos = emb[lo:hi], data.pos_abs[lo:hi].float()
            keep = self._subset(hi - lo)
            if keep is not None:
                e, pos = e[keep], pos[keep]
            w = F.softplus(self.atom_weights(e))
            h = pair_histogram(pos, w, self.bin_width, self.n_bins)
            h = h / h.sum(0, keepdim=True).clamp_min(1e-12) * self.n_bins ** 0.5  # shape, not particle size
            rows.append(torch.cat([h.T.reshape(-1), emb[lo:hi].mean(0),
                                   torch.tensor([math.log(hi - lo) / 10.0])]))
        return torch.stack(rows)

    def forward(self, data) -> Tensor:
        return self.mlp(self.features(data))
