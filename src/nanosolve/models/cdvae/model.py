"""CDVAE network: invariant periodic encoder, property heads, equivariant periodic score decoder.

Architecture choices (the paper uses DimeNet++ / GemNet-T; here both are replaced on purpose):

* Encoder — an invariant periodic message-passing network on interatomic distances (edge
  messages from both end atoms' features and a radial basis, residual node updates, mean
  pooling). PyG's ``DimeNetPlusPlus`` builds its triplets from a non-periodic radius graph and
  needs ``torch_cluster`` (absent here), and triplet enumeration on periodic graphs multiplies
  the edge count by ~20: on this CPU-only target a distance-only network trains an order of
  magnitude faster. It is exactly invariant to rotation, translation, permutation and the
  choice of unit cell (all periodic images within the cutoff, tie-inclusive neighbour cap,
  mean pooling over the cell's atoms), which is what the latent space needs.
* Decoder — an EGNN-style SE(3)-equivariant network on periodic edges: invariant node features
  (atom type, z, log σ) are updated by distance-conditioned messages; the coordinate score on
  atom i is a learned invariant weight times each edge's vector, summed over neighbours, so it
  rotates with the input and, since edge vectors are minimum-image-free lattice translations,
  is periodic. Type logits are read from the invariant features. GemNet's triplet/quadruplet
  interactions would cost ~10× more per Langevin step (5,000 steps per sample).

Tensor conventions: ``batch`` is a PyG batch of :func:`~nanosolve.models.cdvae.batch.crystal_to_data`
items; Cartesian coordinates and lengths in Å, angles in degrees; type index = Z − 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nanosolve.models.cdvae.batch import lattice_from_params
from nanosolve.models.cdvae.config import N_TYPES, CDVAEConfig
from nanosolve.models.cdvae.edges import edge_vectors, periodic_edges


def mlp(n_in: int, hidden: int, n_out: int, layers: int = 1, act=nn.SiLU) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` then a linear output."""
    mods, width = [], n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), act()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    out = src.new_zeros((n,) + src.shape[1:])
    return out.index_add_(0, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    count = torch.bincount(index, minlength=n).clamp(min=1).to(src.dtype)
    return scatter_sum(src, index, n) / count.view(-1, *([1] * (src.dim() - 1)))


class RadialBasis(nn.Module):
    """Gaussians on [0, cutoff] times a smooth cosine envelope (features → 0 at the cutoff, so the
    network is continuous when a neighbour crosses it)."""

    def __init__(self, cutoff: float, n: int):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n))
        self.gamma = (n / cutoff) ** 2 / 2.0

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        env = 0.5 * (torch.cos(math.pi * d.clamp(max=self.cutoff) / self.cutoff) + 1.0)
        return torch.exp(-self.gamma * (d[:, None] - self.centers) ** 2) * env[:, None]


class Interaction(nn.Module):
    """One residual message-passing block on invariant node features; returns (h, messages)."""

    def __init__(self, hidden: int, n_rbf: int):
        super().__init__()
        self.src = nn.Linear(hidden, hidden, bias=False)
        self.dst = nn.Linear(hidden, hidden)
        self.rbf = nn.Linear(n_rbf, hidden, bias=False)
        self.msg = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.gate = nn.Linear(n_rbf, hidden, bias=False)  # envelope-carrying filter: message → 0 at cutoff
        self.update = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h, edge_index, rbf, norm):
        j, i = edge_index
        m = self.msg(self.src(h)[j] + self.dst(h)[i] + self.rbf(rbf)) * self.gate(rbf)
        agg = scatter_sum(m, i, h.shape[0]) / norm
        return self.norm(h + self.update(torch.cat([h, agg], -1))), m


class Encoder(nn.Module):
    """Invariant periodic encoder: crystal → (μ, log σ²) of q(z | crystal), each [B, latent_dim]."""

    def __init__(self, cfg: CDVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(N_TYPES, cfg.enc_hidden)
        self.basis = RadialBasis(cfg.enc_cutoff, cfg.n_rbf)
        self.blocks = nn.ModuleList([Interaction(cfg.enc_hidden, cfg.n_rbf) for _ in range(cfg.enc_layers)])
        self.readout = mlp(cfg.enc_hidden, cfg.enc_hidden, 2 * cfg.latent_dim, layers=1)

    def forward(self, frac, atom_types, lattice, num_atoms, batch, edges=None):
        """``edges``: optional precomputed ``(edge_index, shift)`` of these clean structures (see
        :func:`attach_encoder_edges`); built here when None."""
        cart = torch.einsum("ni,nij->nj", frac, lattice[batch])
        if edges is None:
            edges = periodic_edges(cart, lattice, num_atoms, self.cfg.enc_cutoff, self.cfg.enc_max_neighbors)
        edge_index, shift = edges
        d = edge_vectors(cart, lattice, batch, edge_index, shift).norm(dim=-1)
        rbf = self.basis(d)
        h = self.embed(atom_types - 1)
        for blk in self.blocks:
            h, _ = blk(h, edge_index, rbf, self.cfg.enc_max_neighbors)
        pooled = scatter_mean(h, batch, len(num_atoms))
        mu, logvar = self.readout(pooled).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)


class ScoreDecoder(nn.Module):
    """Equivariant periodic score network ε(x̃, Ã, L, z, σ).

    ``forward`` returns the coordinate output [N, 3] (Å-free: trained to equal
    (x − x̃)/σ, the minimum-image displacement back to the clean structure in units of σ) and the
    type logits [N, N_TYPES].
    """

    def __init__(self, cfg: CDVAEConfig):
        super().__init__()
        self.cfg = cfg
        H = cfg.dec_hidden
        self.embed = nn.Embedding(N_TYPES, H)
        self.cond = mlp(cfg.latent_dim + 16, H, H, layers=1)
        self.inp = nn.Sequential(nn.Linear(2 * H, H), nn.SiLU(), nn.Linear(H, H))
        self.basis = RadialBasis(cfg.dec_cutoff, cfg.n_rbf)
        self.blocks = nn.ModuleList([Interaction(H, cfg.n_rbf) for _ in range(cfg.dec_layers)])
        self.coord = nn.Sequential(nn.Linear(H, H), nn.SiLU(), nn.Linear(H, 1))
        self.types = mlp(H, H, N_TYPES, layers=1)
        self.register_buffer("freqs", torch.arange(1, 9, dtype=torch.float32) * math.pi / 8.0)

    def _sigma_features(self, log_sigma):
        x = log_sigma[:, None] * self.freqs  # log σ in [-4.6, 2.3]
        return torch.cat([torch.sin(x), torch.cos(x)], -1)

    def forward(self, z, frac, atom_types, lattice, num_atoms, batch, sigma):
        """z [B, latent], frac [N, 3], atom_types [N] (Z), lattice [B, 3, 3], num_atoms [B],
        batch [N], sigma [B] (Å, the coordinate noise level) → (score [N, 3], logits [N, N_TYPES])."""
        cart = torch.einsum("ni,nij->nj", frac, lattice[batch])
        edge_index, shift = periodic_edges(cart, lattice, num_atoms, self.cfg.dec_cutoff, self.cfg.dec_max_neighbors)
        vec = edge_vectors(cart, lattice, batch, edge_index, shift)
        d = vec.norm(dim=-1)
        rbf = self.basis(d)
        c = self.cond(torch.cat([z, self._sigma_features(torch.log(sigma))], -1))
        h = self.inp(torch.cat([self.embed(atom_types - 1), c[batch]], -1))
        m = None
        for blk in self.blocks:
            h, m = blk(h, edge_index, rbf, self.cfg.dec_max_neighbors)
        w = self.coord(m)  # [E, 1] invariant weight per edge
        score = scatter_sum(w * vec / d.clamp(min=1e-6)[:, None], edge_index[1], h.shape[0])
        return score, self.types(h)


class CDVAE(nn.Module):
    """Encoder + heads + score decoder; ``loss(batch)`` is the paper's training objective.

    Buffers (saved in every checkpoint): ``lattice_mean``/``lattice_std`` [6] (standardisation of
    (a, b, c)/N^(1/3) and α, β, γ over the training set), ``prop_mean``/``prop_std`` [P],
    ``sigmas`` [L] and ``type_sigmas`` [L] (geometric, decreasing).
    """

    def __init__(self, cfg: CDVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = ScoreDecoder(cfg)
        Z, Hh, nl = cfg.latent_dim, cfg.head_hidden, cfg.head_layers
        self.fc_num_atoms = mlp(Z, Hh, cfg.max_atoms + 1, nl)
        self.fc_lattice = mlp(Z, Hh, 6, nl)
        self.fc_composition = mlp(Z, Hh, N_TYPES, nl)
        self.fc_property = mlp(Z, Hh, len(cfg.props), nl) if cfg.props else None
        L = cfg.num_noise_level
        self.register_buffer("sigmas", torch.tensor(np.geomspace(cfg.sigma_begin, cfg.sigma_end, L), dtype=torch.float32))
        self.register_buffer("type_sigmas", torch.tensor(np.geomspace(cfg.type_sigma_begin, cfg.type_sigma_end, L),
                                                         dtype=torch.float32))
        self.register_buffer("lattice_mean", torch.zeros(6))
        self.register_buffer("lattice_std", torch.ones(6))
        self.register_buffer("prop_mean", torch.zeros(len(cfg.props)))
        self.register_buffer("prop_std", torch.ones(len(cfg.props)))

    # ---- statistics ------------------------------------------------------------------------
    @staticmethod
    def lattice_targets(lengths, angles, num_atoms):
        """[B, 6]: lengths / N^(1/3) (Å) and angles (degrees), before standardisation."""
        scale = num_atoms.to(lengths.dtype).pow(1.0 / 3.0)[:, None]
        return torch.cat([lengths / scale, angles], -1)

    @torch.no_grad()
    def fit_scalers(self, data_list) -> None:
        """Set the lattice (and property) standardisation from training crystals (list of Data)."""
        lengths = torch.cat([d.lengths for d in data_list])
        angles = torch.cat([d.angles for d in data_list])
        n = torch.cat([d.num_atoms for d in data_list])
        t = self.lattice_targets(lengths, angles, n)
        self.lattice_mean.copy_(t.mean(0))
        self.lattice_std.copy_(t.std(0).clamp(min=1e-3) if len(t) > 1 else torch.ones(6))
        if self.cfg.props:
            y = torch.cat([d.y for d in data_list]).float()
            self.prop_mean.copy_(torch.nanmean(y, 0))
            std = torch.sqrt(torch.nanmean((y - self.prop_mean) ** 2, 0))
            self.prop_std.copy_(std.clamp(min=1e-6))

    # ---- pieces (public: reused by sampling, property optimisation and PXRDNet) ---------------
    def encode(self, batch):
        """(μ, log σ²), each [B, latent_dim], of a PyG batch."""
        lattice = lattice_from_params(batch.lengths, batch.angles)
        edges = (batch.enc_edge_index, batch.enc_shift) if "enc_edge_index" in batch else None
        return self.encoder(batch.frac_coords, batch.atom_types, lattice, batch.num_atoms, batch.batch, edges)

    def predict_num_atoms(self, z) -> torch.Tensor:
        """[B, max_atoms + 1] logits of the number of atoms."""
        return self.fc_num_atoms(z)

    def predict_lattice(self, z, num_atoms):
        """(standardised [B, 6] output, lengths [B, 3] Å, angles [B, 3] degrees) for given atom counts."""
        raw = self.fc_lattice(z)
        t = raw * self.lattice_std + self.lattice_mean
        lengths = t[:, :3].clamp(min=0.5) * num_atoms.to(t.dtype).pow(1.0 / 3.0)[:, None]
        return raw, lengths, t[:, 3:]

    def predict_composition(self, z) -> torch.Tensor:
        """[B, N_TYPES] logits of the composition distribution (index Z − 1)."""
        return self.fc_composition(z)

    def predict_property(self, z) -> torch.Tensor:
        """[B, P] properties in their own units (de-standardised)."""
        if self.fc_property is None:
            raise ValueError("this model has no property head (trained without props)")
        return self.fc_property(z) * self.prop_std + self.prop_mean

    def decode_step(self, z, frac, atom_types, lattice, num_atoms, batch, sigma):
        """One score evaluation; see :class:`ScoreDecoder`."""
        return self.decoder(z, frac, atom_types, lattice, num_atoms, batch, sigma)

    def extra_losses(self, batch, z) -> dict:
        """``{name: loss}`` added to the objective by models built on CDVAE (PXRDNet's pattern
        regressor), each weighted by :meth:`term_weights`; none here."""
        return {}

    def term_weights(self) -> dict[str, float]:
        """Weight of every term :meth:`loss` reports, by name (subclasses add their extra terms)."""
        cfg = self.cfg
        weights = {"natom": cfg.cost_natom, "lattice": cfg.cost_lattice, "composition": cfg.cost_composition,
                   "coord": cfg.cost_coord, "type": cfg.cost_type, "kl": cfg.beta}
        if self.fc_property is not None:
            weights["property"] = cfg.cost_property
        return weights

    # ---- training objective ---------------------------------------------------------------
    def loss(self, batch, generator: torch.Generator | None = None, sample_z: bool = True) -> dict:
        """Paper objective on a PyG batch; returns the weighted total ``loss`` and every term.

        Randomness (z sample, noise level, coordinate and type noise) comes from ``generator``
        when given (deterministic validation), else from torch's global RNG.
        """
        cfg = self.cfg
        g = generator
        B = len(batch.num_atoms)
        mu, logvar = self.encode(batch)
        if sample_z:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, device=mu.device)
        else:
            z = mu
        kl = torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))

        natom_loss = F.cross_entropy(self.predict_num_atoms(z), batch.num_atoms.clamp(max=cfg.max_atoms))
        raw_lat, _, _ = self.predict_lattice(z, batch.num_atoms)
        target_lat = (self.lattice_targets(batch.lengths, batch.angles, batch.num_atoms) - self.lattice_mean) / self.lattice_std
        lattice_loss = F.mse_loss(raw_lat, target_lat)
        comp_logits = self.predict_composition(z)
        tgt_type = batch.atom_types - 1
        comp_loss = scatter_mean(F.cross_entropy(comp_logits[batch.batch], tgt_type, reduction="none"),
                                 batch.batch, B).mean()

        # noisy structure: per crystal one coordinate and one, independent, type noise level (as the
        # reference implementation): the decoder then also sees clean geometry with scrambled types
        # and learns to correct types from geometry, which argmax typing during Langevin relies on
        level = torch.randint(0, cfg.num_noise_level, (B,), generator=g, device=mu.device)
        type_level = torch.randint(0, cfg.num_noise_level, (B,), generator=g, device=mu.device)
        sig = self.sigmas[level]
        sig_a = self.type_sigmas[type_level]
        sig_n, sig_an = sig[batch.batch], sig_a[batch.batch]
        lattice = lattice_from_params(batch.lengths, batch.angles)  # teacher-forced lattice (paper)
        lat_n = lattice[batch.batch]
        cart = torch.einsum("ni,nij->nj", batch.frac_coords, lat_n)
        noisy_cart = cart + torch.randn(cart.shape, generator=g, device=cart.device) * sig_n[:, None]
        inv = torch.linalg.inv(lattice)
        noisy_frac = torch.einsum("ni,nij->nj", noisy_cart, inv[batch.batch]) % 1.0
        probs = F.one_hot(tgt_type, N_TYPES).float() + torch.softmax(comp_logits, -1).detach()[batch.batch] * sig_an[:, None]
        noisy_types = torch.multinomial(probs, 1, generator=g).squeeze(1) + 1
        type_weight = 1.0 / sig_an
        if cfg.type_permute_prob > 0:
            shuffled = shuffle_within_crystals(batch.batch, g)
            pick = (torch.rand(B, generator=g, device=mu.device) < cfg.type_permute_prob)[batch.batch]
            noisy_types = torch.where(pick, tgt_type[shuffled] + 1, noisy_types)
            type_weight = torch.where(pick, torch.ones_like(type_weight), type_weight)

        score, type_logits = self.decoder(z, noisy_frac, noisy_types, lattice, batch.num_atoms, batch.batch, sig)
        # minimum-image displacement noisy → clean, in units of σ (the paper's denoising target)
        dfrac = batch.frac_coords - noisy_frac
        dfrac = dfrac - torch.round(dfrac)
        target = _min_image(torch.einsum("ni,nij->nj", dfrac, lat_n), lat_n) / sig_n[:, None]
        coord_loss = scatter_mean(0.5 * ((score - target) ** 2).sum(-1), batch.batch, B).mean()
        type_loss = scatter_mean(F.cross_entropy(type_logits, tgt_type, reduction="none") * type_weight,
                                 batch.batch, B).mean()

        out = {"natom": natom_loss, "lattice": lattice_loss, "composition": comp_loss, "coord": coord_loss,
               "type": type_loss, "kl": kl}
        out.update(self.extra_losses(batch, z))  # heads of subclasses (PXRDNet)
        if self.fc_property is not None and getattr(batch, "y", None) is not None:
            y = (batch.y.float() - self.prop_mean) / self.prop_std
            ok = torch.isfinite(y)
            pred = self.fc_property(z)
            out["property"] = ((pred - torch.nan_to_num(y)) ** 2)[ok].mean() if ok.any() else pred.sum() * 0
        weights = self.term_weights()  # one place for the weights: the objective and best.pt selection
        out["loss"] = sum(weights[name] * value for name, value in out.items())
        return out


def shuffle_within_crystals(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Index [N] that permutes atoms at random inside each crystal (``batch`` [N], atoms grouped by
    crystal as PyG batches them): sorting crystal index + U(0, 1) keeps every crystal's block."""
    noise = torch.rand(len(batch), generator=generator, dtype=torch.float64, device=batch.device)
    return torch.argsort(batch.to(torch.float64) + noise)


def attach_encoder_edges(items, cfg: CDVAEConfig) -> list:
    """Copies of CDVAE ``Data`` items carrying their encoder graph (``enc_edge_index`` [2, E],
    ``enc_shift`` [E, 3]): a clean crystal's edges never change, so training builds them once
    instead of at every step (12 of 77 ms in a profiled cpu-preset step). The same edges as the
    encoder builds itself (tested)."""
    out = []
    for d in items:
        d = d.clone()
        lattice = lattice_from_params(d.lengths, d.angles)
        cart = d.frac_coords @ lattice[0]
        d.enc_edge_index, d.enc_shift = periodic_edges(cart, lattice, d.num_atoms, cfg.enc_cutoff, cfg.enc_max_neighbors)
        out.append(d)
    return out


def _min_image(vec: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
    """Shortest periodic image of Cartesian vectors [N, 3] in their cells [N, 3, 3] (search ±1 cell
    around the wrapped fractional difference, which covers skewed cells)."""
    shifts = torch.cartesian_prod(*[torch.tensor([-1.0, 0.0, 1.0], device=vec.device)] * 3)  # [27, 3]
    cand = vec[:, None, :] + torch.einsum("kx,nxy->nky", shifts.to(vec.dtype), lat)
    best = cand.norm(dim=-1).argmin(1)
    return cand[torch.arange(len(vec), device=vec.device), best]


__all__ = ["CDVAE", "attach_encoder_edges", "shuffle_within_crystals", "Encoder", "ScoreDecoder", "RadialBasis", "mlp"]
