"""Prefer the simpler structure when a more complex one does not fit significantly better.

Hamilton's R-factor ratio test (W. C. Hamilton, Acta Cryst. 18, 502 (1965)): a model with ``b``
more parameters than another is significantly better at level α only when

    R_simple / R_complex  >  sqrt(b / (n - m) * F(b, n - m; α) + 1),

with ``n`` observations and ``m`` parameters of the complex model. In a Rietveld fit the profile
points are not independent observations (neighbouring points share a peak, and the misfit of real
data is systematic: texture, peak shape, background), so with n = points the test calls almost any
improvement significant. Here n is the data's independent intensities: the reflection positions of
the complex model in the fitted range (coincident reflections count once), and m the parameters
those intensities determine (free coordinates, B_iso, texture, scale); background, profile, zero and
lattice are fixed by the shape of the pattern, not by its intensities, and are not counted in n - m
(they are in b when the two models differ in them).

Why it matters: ranking by R_wp alone lets a lower-symmetry type with more free coordinates win by
fitting systematic errors (on measured BaTiO3 a 20-atom GdFeO3-type cell reached R_wp 0.364 against
the right 5-atom perovskite's 0.367).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: significance level of the test
ALPHA = 0.05


def hamilton_critical(b: int, dof: int, alpha: float = ALPHA) -> float:
    """Critical R ratio for ``b`` extra parameters and ``dof`` = n - m degrees of freedom (inf if dof < 1)."""
    if b < 1:
        return 1.0
    if dof < 1:
        return math.inf
    from scipy.stats import f

    return math.sqrt(b / dof * float(f.ppf(1.0 - alpha, b, dof)) + 1.0)


@dataclass(frozen=True)
class Fit:
    """One model's agreement: ``r`` (R_wp), ``n_params`` refined in all, ``dof`` = independent
    observations minus the parameters they determine (n - m of the test)."""

    r: float
    n_params: int
    dof: int


def significantly_better(complex_: Fit, simple: Fit, alpha: float = ALPHA) -> bool:
    """True when ``complex_`` (more parameters) fits significantly better than ``simple``."""
    b = complex_.n_params - simple.n_params
    if b < 1:
        return complex_.r < simple.r
    if not complex_.r > 0:
        return simple.r > 0
    return simple.r / complex_.r > hamilton_critical(b, complex_.dof, alpha)


def beats(d: Fit, c: Fit, alpha: float = ALPHA) -> bool:
    """``d`` is preferred to ``c``: lower R with no more parameters, or significantly lower R with more."""
    if d.n_params <= c.n_params:
        return d.r < c.r
    return significantly_better(d, c, alpha)


def parsimonious_order(fits: list[Fit], alpha: float = ALPHA) -> list[int]:
    """Indices of ``fits`` in preferred order: repeatedly, among the models no other remaining model
    beats (:func:`beats`), the one with the fewest parameters (then the lowest R). Beating implies a
    lower R, so the lowest-R model is never beaten and the order is always defined; with equal
    parameter counts it is the order by R."""
    left = list(range(len(fits)))
    order = []
    while left:
        free = [i for i in left if not any(beats(fits[j], fits[i], alpha) for j in left if j != i)]
        best = min(free, key=lambda i: (fits[i].n_params, fits[i].r, i))
        order.append(best)
        left.remove(best)
    return order


__all__ = ["ALPHA", "Fit", "hamilton_critical", "significantly_better", "beats", "parsimonious_order"]
