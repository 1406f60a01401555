"""CrystalNet (Guo et al.): powder pattern + composition -> continuous electron density.

Data flow for a batch of B crystals queried at P points each::

    xrd [B, n_bins] --1-D DenseNet--> (μ, log σ²) [B, L] --reparam--> z_x ┐
    comp [B, 118]   --MLP-----------> (μ, log σ²) [B, L] --reparam--> z_c ┴ concat z [B, 2L]
    z --fusion MLP (4 linear)--> γ [B, n_layers, H];  z --fusion MLP--> β [B, n_layers, H]
    coords [B, P, 3] --random Fourier features (m, σ)--> 2 linear layers --> e [B, P, E]
    h_0 = e;  h_{l+1} = ReLU(γ_l ⊙ W_l [h_l (, e at skips)] + β_l);  density = softplus(w · h_L)

Loss: mean |ρ̂ - ρ| + β (KL(q(z_x) ‖ N(0, I)) + KL(q(z_c) ‖ N(0, I))), KLs summed (or, with
``kl_reduction='mean'``, averaged) over latent dimensions and averaged over the batch. Densities
are predicted in the units of the targets; scaling them (e.g. to max 1 per crystal or by a
dataset constant) is the training pipeline's job.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nanosolve.errors import InputError
from nanosolve.models.crystalnet.config import CrystalNetConfig

LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0


# ----- XRD encoder: 1-D DenseNet ------------------------------------------------------------
class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bn_size: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm1d(c_in), nn.ReLU(), nn.Conv1d(c_in, bn_size * growth, 1, bias=False),
            nn.BatchNorm1d(bn_size * growth), nn.ReLU(), nn.Conv1d(bn_size * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.net(x)], dim=1)


class DenseNet1d(nn.Module):
    """[B, 1, n] -> [B, C] (global-average-pooled features), DenseNet-BC layout in 1-D."""

    def __init__(self, stem: int, growth: int, blocks, bn_size: int):
        super().__init__()
        layers = [nn.Conv1d(1, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm1d(stem), nn.ReLU(),
                  nn.MaxPool1d(3, stride=2, padding=1)]
        c = stem
        for i, n_layers in enumerate(blocks):
            for _ in range(n_layers):
                layers.append(_DenseLayer(c, growth, bn_size))
                c += growth
            if i < len(blocks) - 1:  # transition: halve channels and length
                layers += [nn.BatchNorm1d(c), nn.ReLU(), nn.Conv1d(c, c // 2, 1, bias=False), nn.AvgPool1d(2)]
                c //= 2
        layers += [nn.BatchNorm1d(c), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x):
        return self.net(x)


def _mlp(sizes, final_act: bool = False) -> nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_act:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) [B], summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


class CrystalNet(nn.Module):
    """The network; see the module docstring for the data flow and :class:`CrystalNetConfig`."""

    def __init__(self, config: CrystalNetConfig | None = None):
        super().__init__()
        cfg = config or CrystalNetConfig.paper()
        self.config = cfg
        L, H = cfg.latent_dim, cfg.hidden
        self.xrd_encoder = DenseNet1d(cfg.dense_stem, cfg.dense_growth, cfg.dense_blocks, cfg.dense_bn_size)
        self.xrd_head = nn.Linear(self.xrd_encoder.out_channels, 2 * L)
        self.formula_encoder = _mlp((cfg.n_elements, *cfg.formula_widths), final_act=True)
        self.formula_head = nn.Linear(cfg.formula_widths[-1], 2 * L)
        fusion = (2 * L,) + (cfg.fusion_width,) * (cfg.fusion_layers - 1) + (cfg.n_layers * H,)
        self.fuse_gamma = _mlp(fusion)
        self.fuse_beta = _mlp(fusion)
        # Fixed random Fourier features: frequencies are not trained (Tancik et al.).
        gen = torch.Generator().manual_seed(cfg.seed)
        self.register_buffer("fourier_b", torch.randn(3, cfg.fourier_features, generator=gen) * cfg.fourier_sigma)
        self.pos_encoder = nn.Sequential(nn.Linear(2 * cfg.fourier_features, cfg.pos_width), nn.ReLU(),
                                         nn.Linear(cfg.pos_width, cfg.pos_width))
        self.layers = nn.ModuleList()
        for layer in range(cfg.n_layers):
            c_in = cfg.pos_width if layer == 0 else H + (cfg.pos_width if self._skip(layer) else 0)
            self.layers.append(nn.Linear(c_in, H))
        self.out = nn.Linear(H, 1)

    def _skip(self, layer: int) -> bool:
        return layer > 0 and layer % self.config.skip_every == 0

    # ----- pieces ---------------------------------------------------------------------------
    def _check(self, xrd, comp, coords):
        cfg = self.config
        if xrd.dim() != 2 or xrd.shape[1] != cfg.n_bins:
            raise InputError(f"xrd must be [B, {cfg.n_bins}], got {list(xrd.shape)}")
        if comp.dim() != 2 or comp.shape != (xrd.shape[0], cfg.n_elements):
            raise InputError(f"comp must be [B, {cfg.n_elements}] with B = {xrd.shape[0]}, got {list(comp.shape)}")
        if coords.dim() != 3 or coords.shape[0] != xrd.shape[0] or coords.shape[2] != 3:
            raise InputError(f"coords must be [B, P, 3] with B = {xrd.shape[0]}, got {list(coords.shape)}")

    def encode(self, xrd: torch.Tensor, comp: torch.Tensor):
        """(μ_x, logvar_x, μ_c, logvar_c), each [B, latent_dim]."""
        hx = self.xrd_head(self.xrd_encoder(xrd.unsqueeze(1)))
        hc = self.formula_head(self.formula_encoder(comp))
        mu_x, lv_x = hx.chunk(2, dim=-1)
        mu_c, lv_c = hc.chunk(2, dim=-1)
        return (mu_x, lv_x.clamp(LOGVAR_MIN, LOGVAR_MAX), mu_c, lv_c.clamp(LOGVAR_MIN, LOGVAR_MAX))

    def positional(self, coords: torch.Tensor) -> torch.Tensor:
        """[B, P, 3] fractional -> [B, P, pos_width]."""
        proj = 2 * math.pi * coords @ self.fourier_b
        return self.pos_encoder(torch.cat([proj.cos(), proj.sin()], dim=-1))

    def decode(self, z: torch.Tensor, coords: torch.Tensor | None, embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Latent z [B, 2 L] and coords [B, P, 3] -> density [B, P] (≥ 0).

        ``embedding``: a precomputed ``positional(coords)`` [B or 1, P, pos_width] (coords then
        unused); with a leading 1 it is shared by all B latents, which is how full-grid inference
        avoids re-embedding the same 125k points for every crystal and latent sample.
        """
        cfg = self.config
        gamma = 1.0 + self.fuse_gamma(z).view(-1, cfg.n_layers, 1, cfg.hidden)  # centred on identity
        beta = self.fuse_beta(z).view(-1, cfg.n_layers, 1, cfg.hidden)
        e = self.positional(coords) if embedding is None else embedding
        h = e
        for layer, lin in enumerate(self.layers):
            if self._skip(layer):
                h = torch.cat([h, e.expand(h.shape[0], -1, -1)], dim=-1)
            h = F.relu(gamma[:, layer] * lin(h) + beta[:, layer])
        return F.softplus(self.out(h).squeeze(-1))

    # ----- public ---------------------------------------------------------------------------
    def forward(self, xrd: torch.Tensor, comp: torch.Tensor, coords: torch.Tensor, sample: bool | None = None,
                return_kl: bool = False):
        """Density [B, P] at ``coords`` [B, P, 3] for ``xrd`` [B, n_bins] and ``comp`` [B, 118].

        ``sample``: draw z by reparameterisation (default: in training mode) or use the means.
        ``return_kl``: also return the KL term [B] (both encoders).
        """
        self._check(xrd, comp, coords)
        mu_x, lv_x, mu_c, lv_c = self.encode(xrd, comp)
        mu = torch.cat([mu_x, mu_c], dim=-1)
        logvar = torch.cat([lv_x, lv_c], dim=-1)
        if self.training if sample is None else sample:
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        else:
            z = mu
        rho = self.decode(z, coords)
        return (rho, kl_standard_normal(mu, logvar)) if return_kl else rho

    def loss(self, xrd, comp, coords, target) -> dict[str, torch.Tensor]:
        """{'loss', 'l1', 'kl'}: L1 to ``target`` [B, P] + β · KL (batch means; 'kl' in nats per
        crystal, divided by 2 latent_dim in the loss when ``config.kl_reduction`` is 'mean')."""
        rho, kl = self(xrd, comp, coords, return_kl=True)
        if target.shape != rho.shape:
            raise InputError(f"target must be {list(rho.shape)}, got {list(target.shape)}")
        l1 = (rho - target).abs().mean()
        kl = kl.mean()
        penalised = kl / (2 * self.config.latent_dim) if self.config.kl_reduction == "mean" else kl
        return {"loss": l1 + self.config.beta * penalised, "l1": l1, "kl": kl}

    @torch.no_grad()
    def sample(self, xrd, comp, coords, n_samples: int = 8) -> torch.Tensor:
        """[n_samples, B, P] densities from independent latent draws z ~ q(z | xrd, comp)."""
        self._check(xrd, comp, coords)
        mu_x, lv_x, mu_c, lv_c = self.encode(xrd, comp)
        mu = torch.cat([mu_x, mu_c], dim=-1)
        std = (0.5 * torch.cat([lv_x, lv_c], dim=-1)).exp()
        return torch.stack([self.decode(mu + torch.randn_like(mu) * std, coords) for _ in range(int(n_samples))])
