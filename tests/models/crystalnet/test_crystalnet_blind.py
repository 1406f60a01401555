"""CrystalNet's blind metrics: atom-site recall/precision, residual SSIM against the mean map, the blind
sample choice by fit to the input pattern."""

import numpy as np
import pytest

from nanosolve.models.crystalnet import density as dens
from nanosolve.models.crystalnet import evaluate as ev
from nanosolve.models.crystalnet import metrics
from nanosolve.models.crystalnet.inputs import xrd_vector
from nanosolve.structures.crystal import Crystal


def nacl(a=5.64):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Na"] * 4 + ["Cl"] * 4,
                                   [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5],
                                    [.5, .5, .5], [0, 0, .5], [0, .5, 0], [.5, 0, 0]])


def test_site_scores_hand_cases():
    t = nacl()
    assert metrics.site_scores(t, t) == {"recall": 1.0, "precision": 1.0, "matched": 8, "n_true": 8, "n_decoded": 8}
    # one Na moved 0.4 Å (kept), one moved 0.6 Å (lost); across the periodic boundary counts as near
    f = t.frac_coords.copy()
    f[1, 0] += 0.4 / 5.64
    f[2, 1] += 0.6 / 5.64
    f[0] = [0.99, 0.995, 0.0]  # 0.07 Å from (0, 0, 0) through the boundary
    r = metrics.site_scores(Crystal(t.lattice, f, t.species), t)
    assert (r["matched"], r["recall"], r["precision"]) == (7, 7 / 8, 7 / 8)
    # species swapped: positions right, species wrong -> nothing
    swapped = Crystal(t.lattice, t.frac_coords, ["Cl"] * 4 + ["Na"] * 4)
    assert metrics.site_scores(swapped, t)["matched"] == 0
    # a decoded subset: precision 1, recall 1/2; extra atoms lower precision only
    half = Crystal(t.lattice, t.frac_coords[::2], t.species[::2])
    assert metrics.site_scores(half, t)["recall"] == 0.5 and metrics.site_scores(half, t)["precision"] == 1.0
    assert metrics.site_scores(t, half)["precision"] == 0.5
    assert metrics.site_scores(None, t) == {"recall": 0.0, "precision": 0.0, "matched": 0, "n_true": 8, "n_decoded": 0}
    # no double counting: two decoded atoms on one true site match once
    two = Crystal(t.lattice, [[0, 0, 0], [0.01, 0, 0]], ["Na", "Na"])
    assert metrics.site_scores(two, t)["matched"] == 1


def test_residual_scores_separate_mean_map_from_truth():
    t = nacl()
    shifted = Crystal(t.lattice, (t.frac_coords + 0.25) % 1, t.species)
    cscl = Crystal.from_parameters(5.64, 5.64, 5.64, 90, 90, 90, ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]])
    a = dens.procrystal_density(t)
    others = [dens.procrystal_density(c) for c in (nacl(5.3), shifted, cscl)]
    mean = (a + sum(others)) / 4
    own = metrics.residual_scores(a, a, mean)
    assert own["ssim_res"] == pytest.approx(1.0) and own["psnr_res"] == float("inf")
    assert own["corr_res"] == pytest.approx(1.0) and own["skill"] == pytest.approx(1.0)
    m = metrics.residual_scores(mean, a, mean)
    assert m["corr_res"] == 0.0 and m["skill"] == pytest.approx(0.0)  # the mean map earns nothing
    # the zero map scores ~0.95 SSIM on the raw density (empty space) but is worse than the mean map
    assert metrics.ssim3d(np.zeros_like(a), a) > 0.9
    z = metrics.residual_scores(np.zeros_like(a), a, mean)
    assert z["skill"] < 0
    # another crystal's map (origin shifted by a quarter cell) is worse than the mean map too
    assert metrics.residual_scores(others[1], a, mean)["skill"] < 0
    assert metrics.residual_scores(others[1], a, mean)["corr_res"] < 0.2


def test_fit_to_input_prefers_the_right_structure():
    t = nacl()
    x = xrd_vector(t)
    assert ev.fit_to_input(t, x) == pytest.approx(0.0, abs=1e-9)
    wrong = Crystal(t.lattice, t.frac_coords, ["Cl"] * 4 + ["Na"] * 4)  # the two sublattices swapped
    cscl = Crystal.from_parameters(5.64, 5.64, 5.64, 90, 90, 90, ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]])
    assert ev.fit_to_input(cscl, x) > 0.3
    assert ev.fit_to_input(wrong, x) == pytest.approx(0.0, abs=1e-9)  # an origin shift: the same pattern
    assert ev.fit_to_input(None, x) == float("inf")


def test_decode_and_score_site_metrics():
    t = nacl()
    d = ev.decode_and_score(dens.procrystal_density(t), t)
    assert d["match"] and d["site_recall"] == 1.0 and d["site_precision"] == 1.0
    z = ev.decode_and_score(np.zeros((50, 50, 50)), t)
    assert not z["match"] and z["site_recall"] == 0.0 and z["site_precision"] == 0.0
