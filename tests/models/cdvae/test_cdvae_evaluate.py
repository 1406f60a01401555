"""CDVAE metrics: matching/RMSE, validity, fingerprints, coverage, EMD, success rates."""


import numpy as np
import pytest
import torch

from nanosolve.errors import InputError
from nanosolve.models.cdvae.evaluate import (
    COV_CUTOFFS,
    composition_feature_names,
    composition_fingerprint,
    composition_valid,
    coverage,
    fingerprints,
    generation_metrics,
    match_and_rmse,
    reconstruction_metrics,
    structure_fingerprint,
    structure_valid,
    success_rates,
)
from nanosolve.paths import shared_data_dir
from nanosolve.structures.crystal import Crystal

torch.set_num_threads(1)
DATA = shared_data_dir() / "cdvae"

FCC = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])


def rocksalt(a=5.64, cation="Na", anion="Cl") -> Crystal:
    frac = np.vstack([FCC, FCC + [0.5, 0, 0]])
    return Crystal(np.eye(3) * a, frac, [cation] * 4 + [anion] * 4)


def cscl(a=4.12) -> Crystal:
    return Crystal(np.eye(3) * a, [[0, 0, 0], [.5, .5, .5]], ["Cs", "Cl"])


def fcc_metal(a=3.61, el="Cu") -> Crystal:
    return Crystal(np.eye(3) * a, FCC, [el] * 4)


def perovskite(a=3.9, b="Ti", x="O", d=0.0) -> Crystal:
    return Crystal(np.eye(3) * a, [[0, 0, 0], [.5 + d, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                   ["Sr", b, x, x, x])


def _rotation(seed=0) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


# ----- reconstruction ------------------------------------------------------------------------------
def test_match_and_rmse_same_structure_variants():
    c = Crystal.from_parameters(5.1, 5.6, 7.3, 88.0, 97.0, 101.0, ["Na", "Cl", "O", "O", "K"],
                                np.random.default_rng(1).random((5, 3)))
    rng = np.random.default_rng(2)
    # perturbed by ~0.02 Å
    noisy = Crystal(c.lattice, c.frac_coords + rng.normal(0, 0.02, (5, 3)) @ np.linalg.inv(c.lattice), c.species)
    ok, rms = match_and_rmse(noisy, c)
    assert ok and 1e-4 < rms < 0.05
    # permuted rows, rotated frame, skewed equivalent cell: same crystal exactly
    perm = [3, 0, 4, 1, 2]
    permuted = Crystal(c.lattice, c.frac_coords[perm], [c.species[i] for i in perm])
    rotated = Crystal(c.lattice @ _rotation().T, c.frac_coords, c.species)
    m = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1]])
    skewed = Crystal(m @ c.lattice, c.frac_coords @ np.linalg.inv(m), c.species)
    for other in (permuted, rotated, skewed, c.supercell((1, 2, 1))):
        ok, rms = match_and_rmse(other, c)
        assert ok and rms < 1e-6
    # the noisier, the larger the RMSE
    noisier = Crystal(c.lattice, c.frac_coords + rng.normal(0, 0.1, (5, 3)) @ np.linalg.inv(c.lattice), c.species)
    assert match_and_rmse(noisier, c)[1] > match_and_rmse(noisy, c)[1]


def test_match_and_rmse_different_structures():
    assert match_and_rmse(rocksalt(), rocksalt()) == (True, pytest.approx(0.0, abs=1e-8))
    assert match_and_rmse(cscl(), rocksalt(cation="Cs")) == (False, None)  # B2 vs B1 CsCl
    assert match_and_rmse(rocksalt(cation="K"), rocksalt()) == (False, None)  # other element


def test_reconstruction_metrics():
    truths = [rocksalt(), cscl(), perovskite()]
    squeezed = Crystal(np.eye(3) * 4.12, [[0, 0, 0], [.5, .5, .5], [.05, 0, 0]], ["Cs", "Cl", "Cl"])
    preds = [rocksalt(), Crystal(np.eye(3) * 4.12, [[0, 0, 0], [.5, .5, .5]], ["Cs", "Cl"]),
             perovskite(d=0.02)]
    r = reconstruction_metrics(preds, truths)
    assert r["match_rate"] == 1.0 and r["n"] == 3 and r["rmse"] < 0.05
    r = reconstruction_metrics([rocksalt(), squeezed, perovskite()], truths)
    assert r["match_rate"] == pytest.approx(2 / 3) and r["matched"] == [True, False, True] and r["n_valid"] == 2
    assert r["rmse"] == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(InputError):
        reconstruction_metrics(preds[:2], truths)


# ----- validity ------------------------------------------------------------------------------------
def test_structure_validity():
    assert structure_valid(rocksalt()) and structure_valid(perovskite())
    close = Crystal(np.eye(3) * 5.0, [[0.1, 0.1, 0.1], [0.1 + 0.3 / 5.0, 0.1, 0.1]], ["Na", "Cl"])
    assert not structure_valid(close)
    assert structure_valid(close, cutoff=0.25)
    # across the cell boundary (minimum image): 0.3 Å apart through the periodic face
    wrap = Crystal(np.eye(3) * 5.0, [[0.97, 0.5, 0.5], [0.03, 0.5, 0.5]], ["Na", "Cl"])
    assert not structure_valid(wrap)
    # an atom 0.4 Å from its own image
    assert not structure_valid(Crystal(np.diag([0.4, 4.0, 4.0]), [[0, 0, 0]], ["Cu"]))
    flagged = rocksalt()
    flagged.properties["invalid_lattice"] = True
    assert not structure_valid(flagged)


def test_composition_validity_smact():
    assert composition_valid(rocksalt())
    nacl2 = Crystal(np.eye(3) * 5.0, [[0, 0, 0], [.5, .5, .5], [.5, 0, 0]], ["Na", "Cl", "Cl"])
    assert not composition_valid(nacl2)
    cu3au = Crystal(np.eye(3) * 3.75, FCC, ["Au", "Cu", "Cu", "Cu"])  # alloy: all metals -> valid
    assert composition_valid(cu3au)
    assert composition_valid(perovskite()) and composition_valid(fcc_metal())
    lif2 = Crystal(np.eye(3) * 4.0, [[0, 0, 0], [.5, .5, .5], [.5, 0, 0]], ["Li", "F", "F"])
    assert not composition_valid(lif2)


# ----- fingerprints --------------------------------------------------------------------------------
def test_composition_fingerprint_hand_values():
    names = composition_feature_names()
    fp = dict(zip(names, composition_fingerprint(rocksalt())))
    assert len(names) == 132
    # Z: Na 11, Cl 17 at equal fractions
    assert fp["minimum Number"] == 11 and fp["maximum Number"] == 17 and fp["range Number"] == 6
    assert fp["mean Number"] == pytest.approx(14) and fp["avg_dev Number"] == pytest.approx(3)
    assert fp["mode Number"] == 11  # tie -> smallest
    # Fe2O3: fractions 0.4 / 0.6 -> mean Z = 0.4*26 + 0.6*8; mode = O (most abundant)
    fe2o3 = Crystal(np.eye(3) * 6, np.random.default_rng(0).random((5, 3)), ["Fe", "Fe", "O", "O", "O"])
    g = dict(zip(names, composition_fingerprint(fe2o3)))
    assert g["mean Number"] == pytest.approx(0.4 * 26 + 0.6 * 8)
    assert g["avg_dev Number"] == pytest.approx(0.4 * abs(26 - 15.2) + 0.6 * abs(8 - 15.2))
    assert g["mode Number"] == 8
    # independent of cell size: NaCl conventional cell vs its 2x1x1 supercell
    np.testing.assert_allclose(composition_fingerprint(rocksalt().supercell((2, 1, 1))),
                               composition_fingerprint(rocksalt()))


def test_structure_fingerprint_known_environments():
    fcc = structure_fingerprint(fcc_metal())
    salt = structure_fingerprint(rocksalt())
    # layout: [w(CN=1)], then per CN >= 2: [w(CN), w*op_1, ...]
    widths = [1, 4, 4, 5, 4, 4, 3, 3, 4, 4, 4, 5] + [1] * 12
    start = np.concatenate([[0], np.cumsum(widths)])
    cn12, cn6 = fcc[start[11]:start[12]], salt[start[5]:start[6]]
    assert cn12[0] == pytest.approx(1.0, abs=1e-6) and cn12[1] > 0.95  # cuboctahedral
    assert cn6[0] == pytest.approx(1.0, abs=1e-6) and cn6[2] > 0.95  # octahedral
    assert fcc.shape == salt.shape == (57,)
    # invariant under supercell, rotation and row order
    np.testing.assert_allclose(structure_fingerprint(rocksalt().supercell((1, 1, 2))), salt, atol=1e-8)
    r = rocksalt()
    np.testing.assert_allclose(structure_fingerprint(Crystal(r.lattice @ _rotation(3).T, r.frac_coords[::-1],
                                                             r.species[::-1])), salt, atol=1e-8)
    assert np.linalg.norm(structure_fingerprint(cscl()) - salt) > 0.5


# ----- coverage, EMD, generation ----------------------------------------------------------------------
def _family(n, seed, make):
    rng = np.random.default_rng(seed)
    return [make(rng, k) for k in range(n)]


def _perovs(n, seed):
    bs, xs = ["Ti", "Zr", "Sn", "Hf", "Ge"], ["O", "S"]
    return _family(n, seed, lambda rng, k: perovskite(a=rng.uniform(3.8, 4.2), b=bs[k % 5], x=xs[k % 2],
                                                      d=rng.uniform(0, 0.03)))


def _salts(n, seed):
    cats, ans = ["Na", "K", "Rb", "Li"], ["Cl", "Br", "I"]
    return _family(n, seed, lambda rng, k: rocksalt(a=rng.uniform(5.0, 7.0), cation=cats[k % 4], anion=ans[k % 3]))


def test_generation_metrics_self_and_disjoint():
    ref = _perovs(6, 0)
    ref_fps = fingerprints(ref, workers=1)
    m = generation_metrics(ref, ref, dataset="perov_5", workers=1)
    assert m["cov_r"] == 1.0 and m["cov_p"] == 1.0
    assert m["emd_density"] == 0.0 and m["emd_n_elements"] == 0.0
    assert m["valid_struct"] == 1.0 and m["n_generated"] == 6
    assert (m["struc_cutoff"], m["comp_cutoff"]) == COV_CUTOFFS["perov_5"] == (0.2, 4.0)
    other = _salts(6, 1)
    d = generation_metrics(other, ref, dataset="perov_5", workers=1, reference_fps=ref_fps)
    assert d["cov_r"] < 0.5 and d["cov_p"] < 0.5
    assert d["emd_density"] > 0.1 and d["emd_n_elements"] == pytest.approx(1.0)
    # half of the reference reproduced -> COV-R about 1/2, COV-P 1 for the reproduced ones
    h = generation_metrics(ref[:3], ref, workers=1, reference_fps=ref_fps)
    assert h["cov_p"] == 1.0 and 0.5 <= h["cov_r"] < 1.0
    # invalid crystals count against validity and COV-P
    bad = Crystal(np.eye(3) * 4.0, [[0, 0, 0], [0.02, 0, 0], [0.5, 0.5, 0.5]], ["Li", "F", "F"])
    v = generation_metrics(ref[:3] + [bad], ref, workers=1, reference_fps=ref_fps)
    assert v["valid_struct"] == 0.75 and v["valid_comp"] == 0.75 and v["valid"] == 0.75 and v["n_valid"] == 3
    assert v["cov_p"] <= 0.75
    with pytest.raises(InputError, match="unknown dataset"):
        generation_metrics(ref, ref, dataset="qm9", reference_fps=ref_fps)


def test_coverage_thresholds_and_parallel_fingerprints():
    a = _perovs(6, 2)
    fa = fingerprints(a, workers=1)
    fb = fingerprints(a, workers=2)  # one extra process: identical numbers
    np.testing.assert_allclose(fa[0], fb[0]) and np.testing.assert_allclose(fa[1], fb[1])
    shifted = (fa[0] + 0.3, fa[1])  # structure distances now 0.3*sqrt(57) > any cutoff
    assert coverage(shifted, fa, 0.2, 4.0)["cov_r"] == 0.0
    assert coverage(shifted, fa, 3.0, 4.0)["cov_r"] == 1.0
    broken = (np.vstack([fa[0][:3], np.full((1, fa[0].shape[1]), np.nan)]), fa[1][:4])
    c = coverage(broken, fa, 0.2, 4.0)
    assert c["cov_p"] == pytest.approx(3 / 4)


# ----- success rates -------------------------------------------------------------------------------
def test_success_rates_hand_values():
    train = np.arange(100.0)  # percentiles 4.95, 9.9, 14.85
    sr = success_rates([0.0, 5.0, 9.0, 20.0, np.nan], train)
    assert sr == {"SR5": pytest.approx(0.2), "SR10": pytest.approx(0.6), "SR15": pytest.approx(0.6)}
    # [steps, runs]: best over steps per run
    steps = np.array([[50.0, 3.0, np.nan], [4.0, 60.0, 12.0]])
    assert success_rates(steps, train) == {"SR5": pytest.approx(2 / 3), "SR10": pytest.approx(2 / 3),
                                           "SR15": pytest.approx(1.0)}
    up = success_rates([99.0, 94.0, 80.0], train, minimize=False)  # targets 94.05, 89.1, 84.15
    assert up == {"SR5": pytest.approx(1 / 3), "SR10": pytest.approx(2 / 3), "SR15": pytest.approx(2 / 3)}
    with pytest.raises(InputError):
        success_rates([], train)
