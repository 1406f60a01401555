"""Atomic scattering strengths: x-ray form factors f0(Q) and neutron coherent scattering lengths b.

* X-rays: Waasmaier & Kirfel (1995), Acta Cryst. A51, 416-431, the 5-Gaussian + constant fit
  f0(s) = c + Σ a_i exp(-b_i s²), s = sinθ/λ = Q/4π (Å⁻¹), neutral atoms. The coefficients are
  read from the table that ships with DebyeCalculator (``elements_info.yaml``), so our Debye
  simulator and DebyeCalculator use the very same numbers.
* Neutrons: coherent scattering lengths b (fm) of the natural isotope mixtures, Sears (1992),
  Neutron News 3, 26, as shipped with pymatgen. CHILI used cross-sections σ here; σ = 4πb² is
  always positive and squares the contrast, so we use b as the physics requires.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from nanosolve.errors import InputError
from nanosolve.structures.elements import normalize_symbol


@lru_cache(maxsize=1)
def _wk_table() -> dict[str, np.ndarray]:
    from debyecalculator.utility.generate import load_elements_info

    table = {}
    for key, row in load_elements_info().items():
        key = str(key).strip()
        if not key.isalpha():  # ions ('Fe3+') are not used: we scatter from neutral atoms
            continue
        table[key] = np.asarray(row[:11], dtype=np.float64)  # a1..a5, c, b1..b5
    return table


@lru_cache(maxsize=1)
def _neutron_table() -> dict[str, float]:
    path = resources.files("pymatgen.analysis.diffraction") / "neutron_scattering_length.json"
    data = json.loads(path.read_text())
    return {k: float(v) for k, v in data.items() if k.isalpha() and v is not None}


def wk_coefficients(symbol: str) -> np.ndarray:
    """[11] Waasmaier-Kirfel coefficients a1..a5, c, b1..b5 of a neutral atom."""
    s = normalize_symbol(symbol)
    try:
        return _wk_table()[s]
    except KeyError:
        raise InputError(f"no x-ray form factor tabulated for element {s}") from None


def neutron_length(symbol: str) -> float:
    """Coherent neutron scattering length b (fm) of the natural element."""
    s = normalize_symbol(symbol)
    try:
        return _neutron_table()[s]
    except KeyError:
        raise InputError(f"no neutron scattering length tabulated for element {s}") from None


def xray_form_factor(symbols, q) -> np.ndarray:
    """f0 [n_species, n_q] (electrons) of ``symbols`` at ``q`` (Å⁻¹), Waasmaier-Kirfel."""
    q = np.asarray(q, dtype=np.float64)
    s2 = (q / (4 * np.pi)) ** 2
    coef = np.stack([wk_coefficients(s) for s in symbols])
    a, c, b = coef[:, :5], coef[:, 5], coef[:, 6:]
    return c[:, None] + np.einsum("ek,ekq->eq", a, np.exp(-b[:, :, None] * s2[None, None, :]))


def scattering_factors(symbols, q, radiation: str = "xray") -> np.ndarray:
    """[n_species, n_q] scattering strength: f0(Q) for x-rays, constant b (fm) for neutrons."""
    radiation = normalize_radiation(radiation)
    q = np.asarray(q, dtype=np.float64)
    if radiation == "xray":
        return xray_form_factor(symbols, q)
    b = np.array([neutron_length(s) for s in symbols])
    return np.repeat(b[:, None], q.size, axis=1)


def scattering_factors_torch(symbols, q: torch.Tensor, radiation: str = "xray") -> torch.Tensor:
    """Torch version of :func:`scattering_factors`, differentiable in ``q`` (same dtype/device as q)."""
    radiation = normalize_radiation(radiation)
    if radiation == "neutron":
        b = torch.tensor([neutron_length(s) for s in symbols], dtype=q.dtype, device=q.device)
        return b[:, None].expand(len(symbols), q.shape[-1])
    coef = torch.tensor(np.stack([wk_coefficients(s) for s in symbols]), dtype=q.dtype, device=q.device)
    a, c, b = coef[:, :5], coef[:, 5], coef[:, 6:]
    s2 = (q / (4 * np.pi)) ** 2
    return c[:, None] + (a[:, :, None] * torch.exp(-b[:, :, None] * s2[None, None, :])).sum(1)


def normalize_radiation(radiation: str) -> str:
    """``'xray'`` or ``'neutron'`` from common spellings (x, X-ray, n, neutron...)."""
    r = str(radiation).lower().replace("-", "").replace("_", "")
    if r in ("x", "xray", "xrays", "xrd", "saxs"):
        return "xray"
    if r in ("n", "neutron", "neutrons", "nd", "sans"):
        return "neutron"
    raise InputError(f"unknown radiation {radiation!r}; use 'xray' or 'neutron'")
