"""DeepStruc conditional VAE (and its deterministic DAE baseline), Kjær et al. 2023.

Three networks:

* encoder  q(z | structure, PDF): flattened node features (padding zeroed) + the atom mask +
  a PDF embedding (3 gated 1-D transposed convolutions) → FC ``[.., 384, 256, 128, 2H]``;
* prior    p(z | PDF): 3 gated 1-D convolutions ``[n_r, 48, 24, 2H]``;
* decoder  p(structure | z): FC ``[H, 128, 256, 384, 512]`` → ``max_atoms × (F + 1)``.

The PDF enters the gated convolutions as an ``n_r``-channel signal of length 1 with kernel size
1, as in the authors' implementation; such a convolution is a (gated) dense layer over all r
points, i.e. every output channel sees the whole PDF.

Atom count: the decoder emits, per padded row, the F node features *and* an existence logit
trained with BCE against the mask. A dedicated logit is used instead of the reference code's
−1 sentinel because it decouples "is there an atom" (a classification) from "where is it"
(a regression): the sentinel makes the MSE pull absent-row predictions to −1 while present rows
sit in [0, 2], so a half-trained model yields ambiguous rows; the BCE keeps a sharp, calibrated
decision (count = rows with p > 0.5) and the masked MSE spends all its capacity on real atoms.

Loss (CVAE) = masked MSE(features) + w_exist · BCE(existence) + β · KL(q ‖ p), the KL in closed
form between diagonal Gaussians, summed over latent dims and averaged over the batch.
Loss (DAE)  = masked MSE + w_exist · BCE + β · ‖z_enc − z_prior‖² (deterministic latents).

Optional hybrid objective (Sohn, Lee & Yan 2015, "GSNN" term), ``config.prior_weight`` = α:
loss = (1 − α) · loss + α · [MSE + w_exist · BCE of decode(z ~ p(z | PDF))]. It trains the
inference path (prior → decoder) directly. Without it (α = 0, the paper's objective) a small β
lets the posterior codes drift away from what the PDF-only prior can reach (prior-path error
≫ posterior-path error for hundreds of epochs), while β ≳ 0.1 collapses the posterior onto an
uninformative prior; see ``DeepStrucConfig.cpu``.

Shapes: ``pdf [B, n_r]``, ``features [B, max_atoms, F]`` (F = max_atoms + n_satellites, unit-
sphere units), ``mask [B, max_atoms]`` (1 = atom present), latents ``[B, H]``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from nanosolve.errors import InputError
from nanosolve.models.deepstruc.config import DeepStrucConfig

_ACT = nn.LeakyReLU


class GatedConv1d(nn.Module):
    """``conv_h(x) * sigmoid(conv_g(x))``; x ``[B, C_in, L]`` → ``[B, C_out, L']``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, transposed: bool = False):
        super().__init__()
        conv = nn.ConvTranspose1d if transposed else nn.Conv1d
        self.h = conv(c_in, c_out, kernel_size)
        self.g = conv(c_in, c_out, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def _gated_stack(widths: list[int], transposed: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(GatedConv1d(a, b, 1, transposed))
        if i < len(widths) - 2:
            layers.append(_ACT())
    return nn.Sequential(*layers)


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(_ACT())
    return nn.Sequential(*layers)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) ‖ N(mu_p, e^logvar_p)) of diagonal Gaussians, summed over the last dim.

    ``[..., H]`` inputs → ``[...]`` nats; ≥ 0, and exactly 0 when q == p.
    """
    var_ratio = torch.exp(logvar_q - logvar_p)
    mahal = (mu_q - mu_p).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + mahal - 1.0 - (logvar_q - logvar_p)).sum(-1)


def count_atoms(existence_prob: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Atom count per structure from existence probabilities ``[..., max_atoms]`` → ``[...]`` (long)."""
    return (existence_prob > threshold).sum(-1)


class DeepStruc(nn.Module):
    """CVAE (``config.kind == 'cvae'``) or DAE (``'dae'``) mapping a PDF to node features."""

    def __init__(self, config: DeepStrucConfig):
        super().__init__()
        config.validate()
        self.config = config
        c = config
        self.is_vae = c.kind == "cvae"
        h_out = 2 * c.latent_dim if self.is_vae else c.latent_dim
        n_flat = c.max_atoms * c.n_features
        self.pdf_embed = _gated_stack([c.n_r, *c.encoder_pdf_widths], transposed=True)
        self.encoder = _mlp([n_flat + c.max_atoms + c.encoder_pdf_widths[-1], *c.encoder_widths, h_out])
        self.prior_net = _gated_stack([c.n_r, *c.prior_widths, h_out], transposed=False)
        self.decoder = _mlp([c.latent_dim, *c.decoder_widths, c.max_atoms * (c.n_features + 1)])

    # ---- building blocks -------------------------------------------------------------------
    def _prepare_pdf(self, pdf: torch.Tensor) -> torch.Tensor:
        if pdf.shape[-1] != self.config.n_r:
            raise InputError(f"PDF has {pdf.shape[-1]} points, the model expects n_r = {self.config.n_r}")
        pdf = pdf.to(self._dtype())
        if self.config.normalize_pdf:
            pdf = pdf / pdf.abs().amax(-1, keepdim=True).clamp_min(1e-12)
        return pdf

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.is_vae:
            return out, None
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(self.config.logvar_min, self.config.logvar_max)

    def entry_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Which feature entries are real: ``[B, max_atoms]`` → ``[B, max_atoms, F]`` (float).

        Row i counts when atom i exists; of its distance-matrix columns only those of existing
        atoms j, plus every satellite column.
        """
        m = mask.to(self._dtype())
        cols = torch.cat([m, torch.ones(*m.shape[:-1], self.config.n_satellites, dtype=m.dtype, device=m.device)], -1)
        return m.unsqueeze(-1) * cols.unsqueeze(-2)

    def encode(self, features: torch.Tensor, mask: torch.Tensor, pdf: torch.Tensor):
        """q(z | structure, PDF): → ``(mu [B, H], logvar [B, H])`` (logvar is None for the DAE)."""
        c = self.config
        if features.shape[-2:] != (c.max_atoms, c.n_features):
            raise InputError(
                f"node features have shape {tuple(features.shape)}, the model expects [B, {c.max_atoms}, {c.n_features}]"
            )
        emask = self.entry_mask(mask)
        # Zeroing padded entries makes the encoder blind to the data pipeline's padding value.
        x = (features.to(emask.dtype) * emask).flatten(-2)
        e = self.pdf_embed(self._prepare_pdf(pdf).unsqueeze(-1)).squeeze(-1)
        return self._split(self.encoder(torch.cat([x, mask.to(x.dtype), e], -1)))

    def prior(self, pdf: torch.Tensor):
        """p(z | PDF): ``pdf [B, n_r]`` → ``(mu [B, H], logvar [B, H])`` (logvar is None for the DAE)."""
        return self._split(self.prior_net(self._prepare_pdf(pdf).unsqueeze(-1)).squeeze(-1))

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [..., H]`` → ``(features [..., max_atoms, F], existence_logits [..., max_atoms])``."""
        c = self.config
        out = self.decoder(z).unflatten(-1, (c.max_atoms, c.n_features + 1))
        return out[..., :-1], out[..., -1]

    # ---- training objective ----------------------------------------------------------------
    def forward(self, batch: dict, beta: float | None = None, sample: bool | None = None, with_prior: bool = False) -> dict:
        """Loss terms on a batch ``{pdf, features, mask, ...}``.

        ``sample``: draw z from q (reparameterised) instead of using its mean; default: only in
        training mode, so validation losses are deterministic. ``with_prior`` (implied when
        ``config.prior_weight > 0``) adds ``prior_recon`` / ``prior_existence`` / ``prior_loss`` /
        ``prior_count_correct``: the reconstruction when decoding z from the prior (its mean unless
        sampling), i.e. the path used at inference.

        Returns a dict of scalars ``loss, recon, existence, kl`` (for the DAE ``kl`` is the latent
        L2) and tensors ``features, existence_logits, z, mu_q, logvar_q, mu_p, logvar_p``.
        """
        beta = self.config.beta if beta is None else float(beta)
        sample = self.training if sample is None else sample
        pdf, features, mask = batch["pdf"], batch["features"], batch["mask"]
        mask = mask.to(self._dtype())
        target = features.to(self._dtype())
        mu_q, logvar_q = self.encode(target, mask, pdf)
        mu_p, logvar_p = self.prior(pdf)
        if self.is_vae:
            z = mu_q + torch.randn_like(mu_q) * torch.exp(0.5 * logvar_q) if sample else mu_q
            kl = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).mean()
        else:
            z = mu_q
            kl = (mu_q - mu_p).pow(2).sum(-1).mean()
        pred, logits = self.decode(z)
        recon, exist = self._reconstruction(pred, logits, target, mask)
        loss = recon + self.config.existence_weight * exist + beta * kl
        out = {
            "recon": recon,
            "existence": exist,
            "kl": kl,
            "features": pred,
            "existence_logits": logits,
            "z": z,
            "mu_q": mu_q,
            "logvar_q": logvar_q,
            "mu_p": mu_p,
            "logvar_p": logvar_p,
        }
        pw = self.config.prior_weight
        if with_prior or pw > 0:
            z_p = mu_p
            if self.is_vae and sample:
                z_p = mu_p + torch.randn_like(mu_p) * torch.exp(0.5 * logvar_p)
            p_pred, p_logits = self.decode(z_p)
            p_recon, p_exist = self._reconstruction(p_pred, p_logits, target, mask)
            prior_loss = p_recon + self.config.existence_weight * p_exist
            if pw > 0:
                loss = (1.0 - pw) * loss + pw * prior_loss
            out.update(
                prior_recon=p_recon,
                prior_existence=p_exist,
                prior_loss=prior_loss,
                prior_count_correct=(count_atoms(torch.sigmoid(p_logits)) == mask.sum(-1).round().long()).sum(),
            )
        out["loss"] = loss
        return out

    def _reconstruction(self, pred, logits, target, mask):
        w = self.entry_mask(mask)
        recon = ((pred - target).pow(2) * w).sum() / w.sum().clamp_min(1.0)
        exist = nnf.binary_cross_entropy_with_logits(logits, mask)
        return recon, exist

    # ---- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, pdf: torch.Tensor, n_samples: int = 1, use_mean: bool = False, generator: torch.Generator | None = None):
        """Draw structures for a PDF from the conditional prior.

        ``pdf [n_r]`` → ``(features [n, max_atoms, F], existence_prob [n, max_atoms])``;
        ``pdf [B, n_r]`` → ``[B, n, max_atoms, F]`` and ``[B, n, max_atoms]``.
        ``use_mean`` (and always for the DAE) decodes the prior mean, so all n samples coincide.
        Atom count: :func:`count_atoms` (rows with existence_prob > 0.5).
        """
        if n_samples < 1:
            raise InputError(f"n_samples must be >= 1, got {n_samples}")
        single = pdf.dim() == 1
        pdf = torch.as_tensor(pdf).reshape(-1, pdf.shape[-1])
        mu, logvar = self.prior(pdf)
        z = mu.unsqueeze(1).expand(-1, n_samples, -1)
        if self.is_vae and not use_mean:
            eps = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
            z = z + eps * torch.exp(0.5 * logvar).unsqueeze(1)
        feats, logits = self.decode(z)
        probs = torch.sigmoid(logits)
        return (feats[0], probs[0]) if single else (feats, probs)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


__all__ = ["DeepStruc", "GatedConv1d", "gaussian_kl", "count_atoms"]
