"""The models shipped in the package solve what they are shipped for, not only load: the 10 Å PXRDNet
finds SrTiO3 at rank 1 from its nano-broadened pattern (a random-structure search with the same
budget does not), and DeepStruc gets the atom count and the decahedral motif of the shipped example PDF
(the motif read by common-neighbour analysis, which tells the decahedron from an icosahedron and an fcc
cluster)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.analysis.structure_matcher import StructureMatcher
from scipy.spatial.distance import cdist

from nanosolve.scattering.nano_pxrd import model_grid, pxrdnet_pattern
from nanosolve.scattering.pattern import Pattern
from nanosolve.structures import Crystal
from nanosolve.structures.builders.clusters import decahedron, fcc_cluster, icosahedron

torch.set_num_threads(1)
MATCHER = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10)


def srtio3(a=3.905) -> Crystal:
    return Crystal(np.eye(3) * a, [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                   ["Sr", "Ti", "O", "O", "O"])


def _solve_sto(method: str):
    from nanosolve.cli.pxrdnet import shipped_model_dir
    from nanosolve.solve.pxrd import solve_pxrd

    pat = Pattern(model_grid(), pxrdnet_pattern(srtio3(), size=10.0), kind="xrd", x_unit="q")
    # prototypes off: the AFLOW perovskite would solve it without the model
    return solve_pxrd(pat, "SrTiO3", shipped_model_dir(10.0), k=8, steps=50, top=3, broaden=False, seed=0,
                      prototypes=False, method=method)


@pytest.mark.slow
def test_shipped_pxrdnet_solves_srtio3_at_rank_1():
    res = _solve_sto("pxrdnet")
    best = res.ranked[0]
    assert best.method == "pxrdnet"
    assert MATCHER.fit(best.final_crystal.to_pymatgen(), srtio3().to_pymatgen())
    # R on the model grid after refinement: 0.09-0.13 on different CPUs (the refinement's end point moves with
    # round-off); the random control below stays above 0.4
    assert best.score < 0.2


@pytest.mark.slow
def test_random_search_with_the_same_budget_does_not():
    """The control that makes the test above about the model: the same blind ranking and refinement of
    random cells of the formula misses SrTiO3 at rank 1 (and fits worse)."""
    res = _solve_sto("random")
    assert not MATCHER.fit(res.ranked[0].final_crystal.to_pymatgen(), srtio3().to_pymatgen())
    assert res.ranked[0].score > 0.2


# ---- DeepStruc ------------------------------------------------------------------------------------
def five_fold_axes(positions, cut_factor: float = 1.207) -> int:
    """Number of distinct five-fold axes of a cluster by common-neighbour analysis: bonds (cutoff between the
    first and second fcc shells, ``cut_factor`` × the median nearest-neighbour distance) whose two atoms share
    5 neighbours forming a closed 5-ring (CNA signature 555), grouped by direction (10°). 0 for fcc pieces,
    1 for a decahedron, 6 for an icosahedron."""
    pos = np.asarray(positions, dtype=float)
    d = cdist(pos, pos)
    nn = np.median(np.sort(d, axis=1)[:, 1])
    adj = (d < cut_factor * nn) & (d > 0)
    dirs: list[np.ndarray] = []
    for i, j in zip(*np.nonzero(np.triu(adj))):
        common = np.flatnonzero(adj[i] & adj[j])
        if len(common) != 5:
            continue
        ring = adj[np.ix_(common, common)]
        if not np.all(ring.sum(axis=1) == 2):  # each common neighbour bonded to exactly two others: a 5-ring
            continue
        v = (pos[j] - pos[i]) / np.linalg.norm(pos[j] - pos[i])
        if not any(abs(v @ u) > np.cos(np.radians(10)) for u in dirs):
            dirs.append(v)
    return len(dirs)


def test_five_fold_axes_tell_the_motifs_apart():
    assert five_fold_axes(decahedron("Au", p=2, q=2, r=1).positions) == 1
    assert five_fold_axes(icosahedron("Au", 3).positions) == 6
    assert five_fold_axes(fcc_cluster("Au").positions) == 0


@pytest.mark.slow
def test_shipped_deepstruc_gets_atom_count_and_motif_of_the_example():
    """The shipped example (75-atom Au Marks decahedron, simulated): the best candidate has 75 atoms and one
    five-fold axis. Its geometry is in the model's training set (see the file header), so this checks the
    shipped model and pipeline, not generalisation."""
    from nanosolve.solve import example_pdf, solve_pdf

    header = Path(example_pdf()).read_text().split("#### start data")[0]
    n_true = int(re.search(r"natoms = (\d+)", header).group(1))
    assert n_true == 75 and "Decahedron" in header
    res = solve_pdf(example_pdf(), element="Au", k=10, seed=0)
    best = res.ranked[0]
    assert len(best.particle) == n_true
    assert five_fold_axes(best.particle.positions) == 1
    assert best.rw < 0.05
