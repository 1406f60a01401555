"""``ours`` on signal regression from the particle graph (SAXS, SANS, XRD, ND, xPDF, nPDF).

Every one of these signals is a function of the particle's pair distances and the scattering
weights of the atoms in each pair (Debye: I(Q) = sum_ij f_i f_j sin(Q r_ij) / (Q r_ij); a PDF is
the weighted pair-distance histogram, broadened). The bond graph only holds pairs a few Å apart,
so a message-passing GNN pooled once sees none of the distances that set the particle's size
and shape, which is what a SAXS curve measures; on CHILI-3K every GNN of the paper ends above
the mean baseline on these columns. This model reads the signal's sufficient statistic instead:

1. per element, ``channels`` positive weights learnt from its features (an analogue of form
   factors or scattering lengths, one per channel, so X-ray and neutron contrasts can both be
   learnt);
2. per graph, the histogram of all pair distances (Å bins on [0, ``r_max``]), each pair counted
   with w_a * w_b per channel, normalised to sum 1 per channel;
3. an MLP from the histograms, log(N atoms) and the mean element embedding to the signal.

Because the weights depend on the element only, the weighted histogram is sum_ab w_a w_b H_ab
with H_ab the per-element-pair distance counts (:func:`pair_fields`, from
:class:`~nanosolve.scattering.debye.PairHistogram`). Those are fixed per particle, so they are
built once (the runner caches them with the other fields) and every step only weights them:
exact for particles of any size, rotation invariant, and differentiable in the weights.
"""

from __future__ import annotations

import math

import torch
from ase.data import chemical_symbols
from torch import Tensor, nn
from torch.nn import functional as F

from nanosolve.errors import InputError
from nanosolve.models.chili_bench.layers import ElementEmbedding

__all__ = ["PairDistanceNet", "pair_fields", "add_pair_fields", "BIN_WIDTH", "R_MAX"]

BIN_WIDTH, R_MAX = 0.05, 100.0  # Å; CHILI-3K particles are at most ~60 Å across


def bin_count(bin_width: float = BIN_WIDTH, r_max: float = R_MAX) -> int:
    return int(math.ceil(r_max / bin_width))


def pair_fields(pos: Tensor, z: Tensor, bin_width: float = BIN_WIDTH, r_max: float = R_MAX) -> tuple[Tensor, Tensor]:
    """One particle's pair-distance counts per element pair.

    pos [N, 3] Å, z [N] atomic numbers -> (counts [P, n_bins] float32: pairs i < j of element
    pair p with b * bin_width <= r_ij < (b + 1) * bin_width, pairs beyond r_max in the last bin;
    index [2, P] int64: one atom of each of the two elements of pair p, so that a per-atom weight
    that depends on the element only can be looked up per pair). P = E (E + 1) / 2 for E elements.
    """
    from nanosolve.scattering.debye import PairHistogram

    nb = bin_count(bin_width, r_max)
    z = z.reshape(-1).round().long()
    if pos.shape[0] < 2:
        return torch.zeros(0, nb), torch.zeros(2, 0, dtype=torch.int64)
    symbols = [chemical_symbols[int(v)] for v in z]
    # a distance exactly on a bin edge may round into either bin: 0.05 Å is not a power of two
    hist = PairHistogram.from_particle(pos.detach().double(), dr=bin_width, species=symbols, n_threads=1)
    counts = hist.moments[:, 0, :]  # Σ o_i o_j with occupancies 1: the number of pairs per bin
    if counts.shape[1] > nb:
        counts = torch.cat([counts[:, :nb - 1], counts[:, nb - 1:].sum(1, keepdim=True)], 1)
    counts = F.pad(counts, (0, nb - counts.shape[1])).float()
    first = {}
    for i, sym in enumerate(symbols):
        first.setdefault(sym, i)
    index = torch.tensor([[first[a], first[b]] for a, b in hist.element_pairs], dtype=torch.int64).T
    return counts, index.reshape(2, -1)


def add_pair_fields(data, bin_width: float = BIN_WIDTH, r_max: float = R_MAX):
    """``data`` (a ChiliData with ``pos_abs`` and ``x``) with ``pair_counts`` and ``pair_index``
    (:func:`pair_fields`) set; PyG batches offset ``pair_index`` like ``edge_index``."""
    data.pair_counts, data.pair_index = pair_fields(data.pos_abs, data.x[:, 0], bin_width, r_max)
    return data


class PairDistanceNet(nn.Module):
    """forward(batch) -> [B, out_dim]; batch fields ``x`` [N, 4] (CHILI features, Z first),
    ``pos_abs`` [N, 3] Å, ``ptr`` [B + 1] (a single graph without ``ptr`` is one batch of 1), and
    optionally ``pair_counts`` / ``pair_index`` (:func:`add_pair_fields`; computed here when absent).
    """

    def __init__(self, out_dim: int, hidden: int = 64, channels: int = 4, bin_width: float = BIN_WIDTH,
                 r_max: float = R_MAX):
        super().__init__()
        self.bin_width, self.r_max, self.n_bins = float(bin_width), float(r_max), bin_count(bin_width, r_max)
        self.elements = ElementEmbedding(hidden)
        self.atom_weights = nn.Sequential(nn.SiLU(), nn.Linear(hidden, channels))
        width = 4 * hidden
        self.mlp = nn.Sequential(nn.Linear(channels * self.n_bins + hidden + 1, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, out_dim))

    def _pairs(self, data, ptr: list[int]) -> tuple[Tensor, Tensor]:
        """(counts [P, n_bins], index [2, P] into the batch's atoms)."""
        counts = getattr(data, "pair_counts", None)
        if counts is not None:
            if counts.shape[-1] != self.n_bins:
                raise InputError(f"pair_counts have {counts.shape[-1]} bins; this model reads {self.n_bins}")
            return counts.float(), data.pair_index
        parts = [pair_fields(data.pos_abs[lo:hi], data.x[lo:hi, 0], self.bin_width, self.r_max)
                 for lo, hi in zip(ptr[:-1], ptr[1:])]
        return (torch.cat([c for c, _ in parts]), torch.cat([i + lo for (_, i), lo in zip(parts, ptr)], 1))

    def features(self, data) -> Tensor:
        """[B, channels * n_bins + hidden + 1]: histograms, mean element embedding, log N / 10."""
        ptr_t = getattr(data, "ptr", None)
        ptr = ptr_t.tolist() if ptr_t is not None else [0, data.x.shape[0]]
        n_graphs = len(ptr) - 1
        sizes = torch.tensor(ptr[1:]) - torch.tensor(ptr[:-1])
        graph_of_atom = torch.repeat_interleave(torch.arange(n_graphs), sizes)
        emb = self.elements(data.x)
        w = F.softplus(self.atom_weights(emb))
        counts, index = self._pairs(data, ptr)
        wp = w[index[0]] * w[index[1]]  # [P, channels]
        h = emb.new_zeros(n_graphs, w.shape[1], self.n_bins)
        h = h.index_add(0, graph_of_atom[index[0]], wp[:, :, None] * counts[:, None, :])
        h = h / h.sum(-1, keepdim=True).clamp_min(1e-12) * self.n_bins ** 0.5  # shape, not particle size
        mean_emb = emb.new_zeros(n_graphs, emb.shape[1]).index_add(0, graph_of_atom, emb) / sizes[:, None]
        log_n = torch.log(sizes.float().clamp_min(1))[:, None] / 10.0
        return torch.cat([h.flatten(1), mean_emb, log_n], 1)

    def forward(self, data) -> Tensor:
        return self.mlp(self.features(data))
