"""Learned models built on the structures, scattering and datasets layers (DeepStruc, ...)."""
