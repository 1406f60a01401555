"""CDVAE (Xie et al., ICLR 2022): periodic crystal VAE with a score-matching decoder.

Modules: ``batch`` (crystal <-> tensors), ``data`` (CSV/CIF loading, preprocessing, splits),
``config``, ``model``, ``train``, ``sample`` (annealed Langevin), ``evaluate`` (paper metrics),
``optimize`` (property optimisation in latent space).
"""
