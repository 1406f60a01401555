"""Unit conversions between 2θ (degrees), Q (Å⁻¹) and wavelengths (Å)."""

from __future__ import annotations

import numpy as np

from nanosolve.errors import InputError

# Weighted Kα1/Kα2 means (Å), as in most diffraction software; pymatgen's WAVELENGTHS keys.
WAVELENGTHS = {
    "CuKa": 1.54184, "CuKa1": 1.54056, "CuKa2": 1.54439,
    "MoKa": 0.71073, "MoKa1": 0.70930, "MoKa2": 0.71359,
    "CoKa": 1.79026, "CoKa1": 1.78896, "CoKa2": 1.79285,
    "FeKa": 1.93735, "FeKa1": 1.93604, "FeKa2": 1.93998,
    "CrKa": 2.29100, "CrKa1": 2.28970, "CrKa2": 2.29361,
    "AgKa": 0.560885, "AgKa1": 0.559421, "AgKa2": 0.563813,
}


def wavelength(value: float | str | None) -> float | None:
    """Wavelength in Å from a number or a name such as ``'CuKa'`` / ``'Mo Kα'`` (None passes through)."""
    if value is None:
        return None
    if isinstance(value, str):
        key = value.replace(" ", "").replace("α", "a").replace("K-L3", "Ka1").replace("K-L2", "Ka2")
        for name, wl in WAVELENGTHS.items():
            if key.lower() == name.lower():
                return wl
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"unknown wavelength {value!r}; give Å or one of {', '.join(WAVELENGTHS)}") from None
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"wavelength must be a positive number of Å, got {value}")
    return value


def q_from_two_theta(two_theta_deg, wavelength_A: float) -> np.ndarray:
    """Q = 4π sin(θ)/λ (Å⁻¹) from 2θ in degrees."""
    return 4 * np.pi * np.sin(np.radians(np.asarray(two_theta_deg, dtype=float)) / 2) / wavelength_A


def two_theta_from_q(q, wavelength_A: float) -> np.ndarray:
    """2θ in degrees from Q (Å⁻¹); NaN where Q exceeds 4π/λ (not reachable at this wavelength)."""
    s = np.asarray(q, dtype=float) * wavelength_A / (4 * np.pi)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(s) <= 1, 2 * np.degrees(np.arcsin(np.clip(s, -1, 1))), np.nan)
