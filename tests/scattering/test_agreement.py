"""Agreement factors (nanosolve.scattering.agreement) against values computed by hand."""

import math

import numpy as np
import pytest

from nanosolve.errors import InputError
from nanosolve.scattering import agreement as ag

RNG = np.random.default_rng(7)
Y = RNG.uniform(10.0, 1000.0, 50)


def test_identical_profiles_agree_perfectly():
    assert ag.r_wp(Y, Y) == 0.0
    assert ag.r_wp(Y, Y, weights=1 / Y) == 0.0
    assert ag.r_p(Y, Y) == 0.0
    assert ag.pdf_rw(Y - 500, Y - 500) == 0.0
    assert ag.r_wp_shape(Y, Y) == pytest.approx(0.0, abs=1e-15)
    assert ag.r_wp_squared_integral(Y, Y) == 0.0


@pytest.mark.parametrize("c, d", [(100.0, 5.0), (2.0, -0.5), (50.0, 50.0)])
def test_constant_offset(c, d):
    """y_calc = y_obs + d on a flat y_obs = c: R_wp = R_p = Rw = |d| / c, R_wp² (integral) = d² / c²."""
    yo = np.full(7, c)
    yc = yo + d
    assert ag.r_wp(yo, yc) == pytest.approx(abs(d) / c)
    assert ag.r_wp(yo, yc, weights=np.full(7, 1 / c)) == pytest.approx(abs(d) / c)  # a constant weight cancels
    assert ag.r_p(yo, yc) == pytest.approx(abs(d) / c)
    assert ag.pdf_rw(yo, yc) == pytest.approx(abs(d) / c)
    assert ag.r_wp_squared_integral(yo, yc, x=np.linspace(0, 3, 7)) == pytest.approx(d * d / (c * c))


def test_weights_and_mask():
    # Σ w (y_o − y_c)² = 4·1² = 4, Σ w y_o² = 1·1 + 4·4 = 17
    assert ag.r_wp([1.0, 2.0], [1.0, 1.0], weights=[1.0, 4.0]) == pytest.approx(math.sqrt(4 / 17))
    assert ag.r_wp([1.0, 2.0], [1.0, 1.0]) == pytest.approx(math.sqrt(1 / 5))
    # the masked point (a huge misfit) does not count
    assert ag.r_wp([1.0, 2.0, 5.0], [1.0, 1.0, 0.0], mask=[True, True, False]) == pytest.approx(math.sqrt(1 / 5))
    assert ag.r_p([1.0, 2.0, 5.0], [1.0, 1.0, 0.0], mask=[True, True, False]) == pytest.approx(1 / 3)
    assert ag.r_p([1.0, -3.0], [2.0, -3.0]) == pytest.approx(1 / 4)  # Σ |y_o| in the denominator


def test_expected_r_and_goodness_of_fit():
    yo = np.array([1.0, 2.0, 3.0, 4.0])
    w = 1 / yo  # Poisson: σ² = counts, Σ w y_o² = Σ y_o = 10
    assert ag.r_exp(yo, w, n_params=1) == pytest.approx(math.sqrt(3 / 10))
    assert ag.r_exp(yo, w, n_params=9) == pytest.approx(math.sqrt(1 / 10))  # N − P at least 1
    assert ag.r_exp(yo, w, n_params=0, mask=[True, True, False, False]) == pytest.approx(math.sqrt(2 / 3))
    # χ² = Σ w (y_o − y_c)² / (N − P) whatever the data
    yc = Y + RNG.normal(0, 3, Y.size)
    wr = 1 / Y
    rwp, rexp = ag.r_wp(Y, yc, wr), ag.r_exp(Y, wr, n_params=5)
    assert ag.reduced_chi2(rwp, rexp) == pytest.approx(np.sum(wr * (Y - yc) ** 2) / (Y.size - 5))
    assert ag.gof_s(rwp, rexp) == pytest.approx(math.sqrt(ag.reduced_chi2(rwp, rexp)))
    assert math.isnan(ag.reduced_chi2(0.1, 0.0)) and math.isnan(ag.gof_s(0.1, 0.0))


def test_profile_agreement_of_a_fit_off_by_one_sigma():
    """Every residual one σ: χ² = S = 1 (with P = 0)."""
    yo, sigma = np.array([100.0, 400.0]), np.array([10.0, 20.0])
    agr = ag.profile_agreement(yo, yo + sigma, sigma, n_params=0)
    assert agr["rwp"] == pytest.approx(math.sqrt(2 / 500))  # Σ w r² = 1 + 1, Σ w y_o² = 100²/10² + 400²/20²
    assert agr["rexp"] == pytest.approx(agr["rwp"])
    assert agr["gof"] == pytest.approx(1.0) and agr["gof_s"] == pytest.approx(1.0)
    assert agr["rp"] == pytest.approx(30 / 500)


def test_poisson_weights_have_a_floor():
    assert ag.poisson_weights([0.0, 0.5, 100.0]) == pytest.approx([1.0, 1.0, 0.01])  # floor 0.01 · 100
    assert ag.poisson_weights([0.0, 0.5, 100.0], floor=0.001) == pytest.approx([10.0, 2.0, 0.01])


def test_shape_r_wp():
    assert ag.r_wp_shape(Y, 3.0 * Y) == pytest.approx(0.0, abs=1e-12)  # scale-free
    # y_ref = [1, 0] + 1 = [2, 1], y_model = [0, 1] + 1 = [1, 2], w = [1/2, 1]: s = 3 / 4.5 = 2/3,
    # residual [4/3, -1/3]: Σ w r² = 1, Σ w y_ref² = 3
    assert ag.r_wp_shape([1.0, 0.0], [0.0, 1.0], background=1.0) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(InputError, match="one non-empty shape"):
        ag.r_wp_shape([1.0, 2.0], [1.0, 2.0, 3.0])


def test_integrated_r_wp_squared():
    assert ag.r_wp_squared_integral([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert ag.r_wp_squared_integral([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]) == pytest.approx(0.25)
    # trapezoid on an uneven grid: ∫ diff² = 0.5 · 1 + 0.5 · 3 = 2, ∫ y² = 4
    assert ag.r_wp_squared_integral([1.0, 1.0, 1.0], [1.0, 0.0, 1.0], x=[0, 1, 4]) == pytest.approx(0.5)
    with pytest.raises(InputError, match="nonzero intensity"):
        ag.r_wp_squared_integral([0.0, 0.0], [1.0, 1.0])


def test_pdf_rw():
    assert ag.pdf_rw([1.0, -1.0], [0.5, -1.0]) == pytest.approx(math.sqrt(0.25 / 2.0))
    with pytest.raises(InputError, match="zero on the fit range"):
        ag.pdf_rw([0.0, 0.0], [1.0, 1.0])


def test_old_names_give_the_same_numbers():
    from nanosolve.models.crystalnet.evaluate import rwp as crystalnet_rwp
    from nanosolve.solve.pdf_refine import rw
    from nanosolve.solve.pxrd_refine import rwp, rwp2
    from nanosolve.solve.rietveld import agreement

    yc = Y * RNG.uniform(0.8, 1.2, Y.size)
    mask = Y > 200
    assert rw(Y, yc) == ag.pdf_rw(Y, yc)
    assert rwp(Y, yc, mask=mask) == ag.r_wp(Y[mask], yc[mask], ag.poisson_weights(Y[mask]))
    assert rwp(Y, yc, weights=1 / Y) == ag.r_wp(Y, yc, 1 / Y)
    assert rwp2(Y, yc, q=np.arange(Y.size) * 0.1) == ag.r_wp_squared_integral(Y, yc, np.arange(Y.size) * 0.1)
    assert crystalnet_rwp(Y, yc) == ag.r_wp_shape(Y, yc)
    assert agreement(Y, yc, np.sqrt(Y), 4) == ag.profile_agreement(Y, yc, np.sqrt(Y), 4)
