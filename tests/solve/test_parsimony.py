"""Hamilton's R-ratio test: more free parameters must fit significantly better.

Oracles: Student's t (b = 1: F(1, ν) = t²(ν)) and the tabulated value; the Rietveld stage's use of it
is tested on simulated patterns in test_rietveld.py."""

import math

import pytest
from scipy.stats import t as student_t

from nanosolve.solve.parsimony import Fit, beats, hamilton_critical, parsimonious_order, significantly_better


def test_critical_ratio_matches_student_t_and_the_tables():
    for dof in (5, 30, 100, 1000):
        want = math.sqrt(student_t.ppf(0.975, dof) ** 2 / dof + 1)  # F(1, ν; α) = t²(ν; α/2)
        assert hamilton_critical(1, dof, 0.05) == pytest.approx(want, rel=1e-9)
    assert hamilton_critical(1, 100, 0.05) == pytest.approx(1.0195, abs=1e-4)  # International Tables C, 8.4
    assert hamilton_critical(5, 40, 0.05) > hamilton_critical(5, 400, 0.05) > 1.0
    assert hamilton_critical(3, 0) == math.inf and hamilton_critical(0, 50) == 1.0


def test_order_prefers_the_simpler_model_unless_the_gain_is_significant():
    simple, slight, large = Fit(0.367, 20, 35), Fit(0.364, 27, 170), Fit(0.20, 27, 170)
    assert not significantly_better(slight, simple) and significantly_better(large, simple)
    assert parsimonious_order([slight, simple]) == [1, 0]
    assert parsimonious_order([simple, large]) == [1, 0]
    # equal parameter counts: the order by R
    assert parsimonious_order([Fit(0.3, 10, 40), Fit(0.2, 10, 40), Fit(0.25, 10, 40)]) == [1, 2, 0]
    # more parameters than independent intensities: never significant
    assert not significantly_better(Fit(0.01, 30, -5), Fit(0.3, 10, 15))
    # a model that does not beat the simple one can still be beaten by a third: lowest R never loses
    a, b, c = Fit(0.30, 10, 90), Fit(0.295, 14, 86), Fit(0.15, 20, 80)
    assert beats(c, a) and not beats(b, a)
    assert parsimonious_order([a, b, c])[0] == 2
