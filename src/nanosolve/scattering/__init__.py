"""Scattering: pattern type, simulators (Bragg, Debye, PDF) and measured-data readers."""

from nanosolve.scattering.coerce import as_pattern
from nanosolve.scattering.pattern import KINDS, X_UNITS, Pattern
from nanosolve.scattering.units import WAVELENGTHS, q_from_two_theta, two_theta_from_q, wavelength

__all__ = ["Pattern", "as_pattern", "KINDS", "X_UNITS", "WAVELENGTHS", "q_from_two_theta", "two_theta_from_q", "wavelength"]
