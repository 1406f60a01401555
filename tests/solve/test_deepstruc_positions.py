"""Atom-position refinement of a DeepStruc candidate against a PDF (solve/pdf_refine.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from typer.testing import CliRunner

from nanosolve.cli.main import app
from nanosolve.models.deepstruc.pdf import cluster_pdf, default_r_grid
from nanosolve.solve import example_pdf
from nanosolve.solve.pdf_refine import FitSettings, _PairDebye, refine
from nanosolve.structures.builders.clusters import icosahedron, octahedron
from nanosolve.structures.particle import Particle

R = default_r_grid(30.0, 3000)
PDF = dict(qmin=0.7, qmax=30.0, qdamp=0.04)


def _rmsd_superposed(x, y) -> float:
    """RMSD (Å) of two [N, 3] sets with the same atom order after the best rotation (Kabsch)."""
    a, b = x - x.mean(0), y - y.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return float(np.sqrt(((a @ rot - b) ** 2).sum(1).mean()))


def test_pair_debye_matches_cluster_pdf_and_its_jacobian_is_exact():
    rng = np.random.default_rng(3)
    x = icosahedron("Au", shells=2).positions + 0.08 * rng.standard_normal((13, 3))
    r = R[R >= 1.0]
    model = _PairDebye(r, np.ones_like(r), FitSettings(**PDF))
    i, j = np.triu_indices(13, 1)
    for biso, d2 in [(0.4, 0.0), (0.3, 2.0)]:
        f, dfdx, df_db, df_dd2 = model.fq(x, i, j, biso, d2, True)
        ref = cluster_pdf(x, r=r, biso=biso, delta2=d2, **PDF)
        # cluster_pdf rounds distances to 1e-6 Å: agreement to that level
        assert np.abs(model.curve(f, 1.0) - ref).max() < 1e-5 * np.abs(ref).max()
        h = 1e-6
        for k in (0, 7, 38):
            xp = x.copy()
            xp.flat[k] += h
            num = (model.fq(xp, i, j, biso, d2, False)[0] - f) / h
            assert np.abs(num - dfdx[k]).max() < 1e-4 * np.abs(dfdx[k]).max()
        num_b = (model.fq(x, i, j, biso + h, d2, False)[0] - f) / h
        assert np.abs(num_b - df_db).max() < 1e-4 * np.abs(df_db).max()
        if d2:
            num_d = (model.fq(x, i, j, biso, d2 + h, False)[0] - f) / h
            assert np.abs(num_d - df_dd2).max() < 1e-4 * np.abs(df_dd2).max()


def test_positions_recover_a_perturbed_cuboctahedron():
    truth = octahedron("Au", length=3, cutoff=1)  # 13-atom cuboctahedron
    assert len(truth) == 13
    x = truth.positions
    g = cluster_pdf(x, r=R, biso=0.4, **PDF)
    noisy = x + 0.1 * np.random.default_rng(0).standard_normal(x.shape)  # σ = 0.1 Å per coordinate
    start = _rmsd_superposed(noisy, x)
    assert start > 0.12
    res = refine(Particle(noisy, ["Au"] * 13), R, g,
                 FitSettings(rmax=30.0, refine_positions=True, position_max_nfev=400, **PDF))
    after = _rmsd_superposed(res.particle.positions, x)
    assert after < 0.03, (start, after)
    assert res.rw_global > 0.1 and res.rw < res.rw_global / 3
    assert res.rw < 1e-5  # the noise-free PDF is reproduced
    assert res.biso == pytest.approx(0.4, abs=0.03) and res.scale == pytest.approx(1.0, abs=1e-3)
    # the centre stays where the globally fitted (expanded) candidate had it
    assert np.allclose(res.particle.positions.mean(0), noisy.mean(0) * (1 + res.expansion), atol=1e-9)
    assert res.summary()["positions_refined"] and res.summary()["rw_global"] == res.rw_global
    assert res.position_shift > 0.05


def test_positions_off_unless_requested():
    assert FitSettings().refine_positions is False
    p = icosahedron("Au", shells=3)
    noisy = p.positions + 0.05 * np.random.default_rng(1).standard_normal(p.positions.shape)
    g = 1.7 * cluster_pdf(p.positions * 1.02, r=R, biso=0.5, **PDF)
    cand = Particle(noisy, ["Au"] * len(p))
    off = refine(cand, R, g, FitSettings(rmax=30.0, **PDF))
    # only scale / expansion / Biso: the candidate's shape is untouched
    assert off.rw_global is None and off.position_shift is None and not off.summary()["positions_refined"]
    assert np.allclose(off.particle.positions, noisy * (1 + off.expansion), atol=1e-12)
    on = refine(cand, R, g, FitSettings(rmax=30.0, refine_positions=True, **PDF))
    assert on.rw_global == pytest.approx(off.rw, rel=1e-9)  # same global fit first
    assert on.expansion == off.expansion
    assert on.rw < off.rw / 3


def test_contact_restraint_keeps_atoms_apart():
    # data of the same icosahedron shrunk by 30 %, beyond the expansion bounds: unrestrained, the
    # position fit pulls atoms onto each other; the restraint keeps every pair above ~0.75 d_nn
    p = icosahedron("Au", shells=3)
    g = cluster_pdf(p.positions * 0.7, r=R, biso=0.4, **PDF)
    free = refine(p, R, g, FitSettings(rmax=30.0, refine_positions=True, contact_weight=0.0,
                                       position_max_nfev=100, **PDF))
    held = refine(p, R, g, FitSettings(rmax=30.0, refine_positions=True, position_max_nfev=100, **PDF))
    d_nn = np.median(np.sort(np.linalg.norm(p.positions[:, None] - p.positions[None], axis=-1), 1)[:, 1])
    d_min = 0.75 * d_nn * (1 + held.expansion)
    assert pdist(free.particle.positions).min() < 0.5 * d_min
    assert pdist(held.particle.positions).min() > 0.97 * d_min


def test_solve_cli_positions_option(tmp_path):
    runner = CliRunner()
    for flag, expect in (([], True), (["--no-positions"], False)):
        out = tmp_path / ("on" if expect else "off")
        res = runner.invoke(app, ["solve", str(example_pdf()), "--element", "Au", "-k", "2", "-o", str(out), *flag])
        assert res.exit_code == 0, res.output
        summary = json.loads((out / "summary.json").read_text())
        # the solve ranks with positions fixed; the restrained position step runs on the best 2 (<= 150 atoms)
        # and is reported beside their Rw as rw_positions
        assert summary["settings"]["positions_top"] == (2 if expect else 0)
        top = summary["candidates"][0]
        if expect:
            assert top["rw_positions"] is not None and 0 <= top["rw_positions"] <= top["rw"] + 1e-6
        else:
            assert all(c["rw_positions"] is None for c in summary["candidates"])
