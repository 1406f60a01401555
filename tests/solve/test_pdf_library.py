"""Cluster library PDF solve: fast path vs full simulation and oracles, fits, bounds, sanity gate, r ranges, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nanosolve.models.deepstruc.pdf import cluster_pdf, default_qstep
from nanosolve.scattering.pattern import Pattern
from nanosolve.solve import cluster_library as cl
from nanosolve.solve.pdf_solve import PdfSolveSettings, sanity, solve_sources
from nanosolve.structures.builders.clusters import (
    build_library_cluster,
    decahedron,
    icosahedron,
    motif_of,
    octahedron,
    sphere_cluster,
)
from nanosolve.structures.elements import metallic_radius

NN_AU = 2 * metallic_radius("Au")
R = np.arange(1.0, 30.0, 0.01)


@pytest.fixture(scope="module")
def small_library(tmp_path_factory):
    """Library of clusters up to 350 atoms of six motifs, in a private cache folder ($NANOSOLVE_CACHE layout)."""
    folder = tmp_path_factory.mktemp("cache") / "cluster_library"
    motifs = ("icosahedron", "marks-decahedron", "truncated-octahedron", "cuboctahedron", "fcc-sphere", "hcp-sphere")
    return folder, motifs, cl.load_library(motifs, 13, 350, folder=folder)


def _relmax(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("particle", [icosahedron("Au", 4), decahedron("Au", 3, 2, 1), sphere_cluster("Au", "hcp", 2.6)])
@pytest.mark.parametrize("expansion, biso, delta2, qdamp", [(0.0, 0.4, 0.0, 0.03), (0.021, 0.7, 2.0, 0.05)])
def test_fast_path_matches_full_simulation(particle, expansion, biso, delta2, qdamp):
    e = cl.entry_from_positions(particle.positions, NN_AU, "t", motif="x")
    data = cl.PdfData(R, np.ones_like(R), 0.7, 25.0, qdamp, 0.0)
    ref = cluster_pdf(particle.positions * (1 + expansion), r=R, qmin=0.7, qmax=25.0, qdamp=qdamp, biso=biso,
                      delta2=delta2)
    full = cl.model_curve(e.hist.rebin(cl.FULL_BIN), data, NN_AU * (1 + expansion), biso, delta2, qdamp)
    assert _relmax(full, ref) < 1e-3
    if delta2 == 0.0:  # the screen's tabulated Debye sum read by a spline
        from scipy.interpolate import CubicSpline

        spline = CubicSpline(np.arange(e.s_table.size) * cl.QP_STEP, e.s_table)
        lam = NN_AU * (1 + expansion)
        fq = spline(data.q * lam) / lam * np.exp(-biso * data.q ** 2 / (8 * math.pi ** 2))
        screen = (fq @ data.k_full) * np.exp(-0.5 * (qdamp * R) ** 2)
        assert _relmax(screen, ref) < 1e-3


def test_fast_path_matches_debyecalculator():
    from debyecalculator import DebyeCalculator

    p = octahedron("Pt", 5, 1)
    nn = 2 * metallic_radius("Pt")
    r = np.arange(0.5, 20.0, 0.01)
    qstep = default_qstep(r)
    dc = DebyeCalculator(qmin=0.8, qmax=22.0, qstep=qstep, qdamp=0.03, rmin=0.5, rmax=20.0, rstep=0.01, biso=0.45,
                         device="cpu", dtype=torch.float64)
    r_dc, g_dc = dc.gr((list(p.species), p.positions))
    e = cl.entry_from_positions(p.positions, nn, "t", motif="x")
    data = cl.PdfData(np.asarray(r_dc), np.ones(len(r_dc)), 0.8, 22.0, 0.03, 0.0)
    ours = cl.model_curve(e.hist.rebin(cl.FULL_BIN), data, nn, 0.45, 0.0, 0.03)
    # documented convention (tests/test_debye.py): G = 2 G_DC, DebyeCalculator sums pairs i < j only
    assert _relmax(ours, 2 * np.asarray(g_dc)) < 2e-3


def test_rw_agrees_with_pdffit2():
    pdffit2 = pytest.importorskip("diffpy.pdffit2", reason="diffpy.pdffit2 not installed (needs GSL to build)")
    from diffpy.structure import Atom, Lattice, Structure

    p = icosahedron("Au", 3)
    box = 80.0  # no periodic image within the PDF range: a finite cluster
    r = np.arange(1.0, 20.0, 0.01)
    biso, qmax, qdamp = 0.5, 40.0, 0.03
    stru = Structure(lattice=Lattice(box, box, box, 90, 90, 90),
                     atoms=[Atom("Au", xyz=x / box + 0.5, Uisoequiv=biso / (8 * math.pi ** 2)) for x in p.positions])
    pf = pdffit2.PdfFit()
    pdffit2.redirect_stdout(open("/dev/null", "w"))
    pf.add_structure(stru)
    pf.alloc("X", qmax, qdamp, 1.0, 30.0, int(round((30.0 - 1.0) / 0.01)) + 1)
    pf.calc()
    r_pf, g_pf = np.array(pf.getR()), np.array(pf.getpdf_fit())
    g_pf = np.interp(r, r_pf, g_pf)
    # same cluster, same B, Qmax, Qdamp; Qmin = 0 (pdffit2 keeps the whole low-Q signal)
    e = cl.entry_from_positions(p.positions, NN_AU, "t", motif="x")
    data = cl.PdfData(r, np.ones_like(r), 0.0, qmax, qdamp, 0.0)
    ours = cl.model_curve(e.hist.rebin(cl.FULL_BIN), data, NN_AU, biso, 0.0, qdamp)
    noisy = ours + np.random.default_rng(0).normal(0, 0.03 * np.abs(ours).max(), r.size)
    sc_a, rw_ours = cl._vp(ours, noisy)
    sc_b, rw_pf = cl._vp(g_pf, noisy)
    assert abs(rw_ours - rw_pf) < 0.02 and abs(sc_b - 1) < 0.05, (rw_ours, rw_pf, sc_b)


def _simulated(particle, qmax=24.0, qdamp=0.035, biso=0.55, delta2=1.5, expansion=0.012, rmax=30.0, noise=0.02, seed=0):
    r = np.arange(0.0, rmax + 1e-9, 0.01)
    g = cluster_pdf(particle.positions * (1 + expansion), r=r, qmin=0.8, qmax=qmax, qdamp=qdamp, biso=biso,
                    delta2=delta2)
    g = g + np.random.default_rng(seed).normal(0, noise * np.abs(g).max(), r.size)
    return Pattern(r, g, kind="gr", x_unit="r", metadata={"qmin": 0.8, "qmax": qmax, "source": "simulated.gr"})


@pytest.mark.slow  # builds a ~300-cluster library in a private cache on first use
def test_library_fit_recovers_motif_size_lattice(small_library, monkeypatch):
    folder, motifs, _ = small_library
    monkeypatch.setenv("NANOSOLVE_CACHE", str(folder.parent))
    truth = decahedron("Pt", 3, 2, 1)  # Marks decahedron, 146 atoms (in the library)
    pattern = _simulated(truth, rmax=20.0)
    s = PdfSolveSettings(source="library", motifs=motifs, max_atoms=350, positions_top=1, write_top=5)
    top, summary, fits = solve_sources(pattern, "Pt", s)
    best = top[0].extra
    assert best["motif"] == "marks-decahedron" and len(top[0].particle) == len(truth)
    a_true = math.sqrt(2) * 2 * metallic_radius("Pt") * 1.012
    assert abs(best["lattice_a"] - a_true) < 0.01 * a_true
    assert top[0].rw < 0.2 and summary["motif_comparison"][0]["motif"] == "marks-decahedron"
    others = summary["motif_comparison"][1:]
    assert others and all(m["delta_rw"] > 0.02 for m in others)
    assert top[0].extra["rw_positions"] is not None and top[0].extra["rw_positions"] <= top[0].rw + 1e-6
    assert len(fits) == len(cl.load_library(motifs, 13, 350, folder=folder))
    # the size interval holds the answer, its neighbours were fitted in full, and it is reported in nm too
    sizes = summary["answer"]["sizes_within_noise"]
    assert sizes["n_atoms"][0] <= len(truth) <= sizes["n_atoms"][1] and sizes["fits_compared"] >= 3
    assert sizes["diameter_nm"][0] <= summary["answer"]["diameter_nm"] <= sizes["diameter_nm"][1]
    assert summary["answer"]["qdamp_fitted"] and 0 < summary["answer"]["qdamp"] < 0.1
    assert all(m["worse_beyond_noise"] for m in others if m["fit"] == "full")


def test_fit_moves_a_parameter_that_starts_at_zero():
    """An expansion scan lands on ε = 0 (to round-off) often: the local fits must still move it (a step taken
    relative to |ε| would be ~1e-21 and leave the fit where it started)."""
    import dataclasses

    p = decahedron("Au", 3, 2, 1)
    r = np.arange(1.0, 20.0, 0.01)
    g = cluster_pdf(p.positions * 0.9987, r=r, qmin=0.8, qmax=22.0, qdamp=0.03, biso=0.6, delta2=1.0)
    data = cl.PdfData(r, g, 0.8, 22.0, 0.03, 0.0)
    e = cl.entry_from_positions(p.positions, NN_AU, "t", motif="marks-decahedron")
    start = dataclasses.replace(cl.screen(e, data, NN_AU), expansion=5.551115123125783e-17, biso=0.5)
    full = cl.fit_full(start, data, NN_AU)
    assert full.expansion == pytest.approx(-0.0013, abs=2e-4) and full.rw < 0.02


def test_within_noise_f_test():
    from nanosolve.solve.pdf_solve import independent_points, within_noise

    # (Rw² − Rw_best²) / Rw_best² · (N − 6) against 3.84
    assert within_noise(0.101, 0.100, 121.0)  # 0.0201 · 115 = 2.31
    assert not within_noise(0.102, 0.100, 121.0)  # 0.0404 · 115 = 4.65
    assert within_noise(0.102, 0.100, 60.0)  # 0.0404 · 54 = 2.18: fewer independent points, wider
    data = cl.PdfData(np.arange(1.0, 20.0, 0.01), np.sin(np.arange(1.0, 20.0, 0.01)), 0.8, 22.0, 0.03, 0.0)
    assert independent_points(data) == pytest.approx((data.r[-1] - 1.0) * 22.0 / math.pi)


def test_bound_flagging():
    p = icosahedron("Au", 3)
    r = np.arange(1.0, 20.0, 0.01)
    g = cluster_pdf(p.positions * 1.10, r=r, qmin=0.8, qmax=24.0, qdamp=0.03, biso=0.5)  # 10 % beyond +6 % bound
    data = cl.PdfData(r, g, 0.8, 24.0, 0.03, 0.0)
    e = cl.entry_from_positions(p.positions, NN_AU, "t", motif="icosahedron")
    fit = cl.screen(e, data, NN_AU, (-0.06, 0.06))
    assert "expansion" in fit.at_bound and fit.expansion == pytest.approx(0.06, abs=1e-4)
    inside = cl.screen(e, cl.PdfData(r, cluster_pdf(p.positions * 1.02, r=r, qmin=0.8, qmax=24.0, qdamp=0.03,
                                                     biso=0.5), 0.8, 24.0, 0.03, 0.0), NN_AU, (-0.06, 0.06))
    assert "expansion" not in inside.at_bound and inside.expansion == pytest.approx(0.02, abs=2e-3)
    full = cl.fit_full(fit, data, NN_AU, (-0.06, 0.06))
    assert "expansion" in full.at_bound


def test_sanity_gate_ranks_loose_cloud_after_compact_cluster():
    s = PdfSolveSettings(source="library")
    compact = cl.entry_from_positions(icosahedron("Au", 3).positions, NN_AU, "c", source="cvae", motif="cvae-decoded")
    rng = np.random.default_rng(1)
    # 55 atoms spread so that nearest neighbours sit at ~1 nn but each has ~2 of them: a loose cloud
    x = np.cumsum(rng.normal(size=(55, 3)), axis=0)
    x = x / np.median(np.linalg.norm(np.diff(x, axis=0), axis=1)) * NN_AU
    loose = cl.entry_from_positions(x, NN_AU, "l", source="cvae", motif="cvae-decoded")
    sc, sl = sanity(compact, s), sanity(loose, s)
    assert sc["plausible"] and not sl["plausible"] and sl["mean_coordination"] < sl["expected_coordination"] * 0.75
    from nanosolve.solve.pdf_solve import _sort_key

    fits = [cl.ClusterFit(loose, 1, 0, 0.5, 0, 0, 0, 0.05, "full", NN_AU),
            cl.ClusterFit(compact, 1, 0, 0.5, 0, 0, 0, 0.30, "full", NN_AU)]
    ranked = sorted(zip(fits, [sl, sc]), key=_sort_key)
    assert ranked[0][0].entry is compact  # lower Rw of the loose cloud does not put it first


@pytest.mark.slow  # builds a ~300-cluster library in a private cache on first use
def test_r_range_ending_at_20_accepted_by_both_sources(small_library, monkeypatch):
    folder, motifs, _ = small_library
    monkeypatch.setenv("NANOSOLVE_CACHE", str(folder.parent))
    pattern = _simulated(icosahedron("Au", 4), rmax=20.0)
    s = PdfSolveSettings(source="both", motifs=motifs, max_atoms=350, k=3, positions_top=0, write_top=5)
    top, summary, fits = solve_sources(pattern, "Au", s)
    assert summary["fit_range"][1] == pytest.approx(20.0)
    assert summary["n_cvae"] >= 1 and summary["n_library"] > 50
    assert summary["cvae_input"]["padded_above"] == pytest.approx(10.0, abs=0.05)
    assert top[0].extra["motif"] == "icosahedron" and len(top[0].particle) == 147
    # --rmax below the data's end: the fit stops there
    s2 = PdfSolveSettings(source="library", motifs=("icosahedron",), max_atoms=350, rmax=12.0, positions_top=0)
    _, summary2, _ = solve_sources(pattern, "Au", s2)
    assert summary2["fit_range"][1] <= 12.0 + 1e-9


def test_library_motifs_and_sizes(small_library):
    _, _, lib = small_library
    assert {e.motif for e in lib} >= {"icosahedron", "marks-decahedron", "truncated-octahedron", "fcc-sphere"}
    assert all(13 <= e.n_atoms <= 350 for e in lib)
    assert len({(e.motif, e.n_atoms) for e in lib}) == len(lib)
    # cached on disk as .npz, read back identically
    again = cl.load_library(("icosahedron",), 13, 350, folder=small_library[0])
    ref = [e for e in lib if e.motif == "icosahedron"]
    assert [e.n_atoms for e in again] == [e.n_atoms for e in ref] == [13, 55, 147, 309]
    assert np.array_equal(again[1].hist.d, ref[1].hist.d)
    assert motif_of("octahedron", {"length": 5, "cutoff": 2}) == "cuboctahedron"
    assert len(build_library_cluster("decahedron", {"p": 3, "q": 2, "r": 1})) == 146


@pytest.mark.slow  # builds a ~300-cluster library in a private cache on first use
def test_cli_source_library_writes_summary_and_plots(small_library, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from nanosolve.cli.main import app
    from nanosolve.scattering.writers import write_pattern

    folder, motifs, _ = small_library
    monkeypatch.setenv("NANOSOLVE_CACHE", str(folder.parent))
    gr = tmp_path / "ico.gr"
    write_pattern(_simulated(icosahedron("Pt", 4), qmax=22.0, rmax=20.0, seed=3), gr)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["solve", str(gr), "--element", "Pt", "--source", "library", "--max-atoms", "350",
                                   "--no-positions", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answer"]["motif"] == "icosahedron" and summary["answer"]["n_atoms"] == 147
    assert summary["rw_vs_size_plot"] == "rw_vs_size.png" and (out / "rw_vs_size.png").stat().st_size > 5000
    assert (out / summary["fit_plot"]).stat().st_size > 5000
    c0 = summary["candidates"][0]
    for key in ("rank", "file", "source", "motif", "n_atoms", "diameter_nm", "lattice_a", "biso", "rw",
                "rw_positions", "at_bound", "sanity"):
        assert key in c0
    assert c0["source"] == "library" and (out / c0["file"]).is_file()
    assert summary["motif_comparison"][0]["motif"] == "icosahedron"
    assert "icosahedron" in res.output
