"""report.html: table read back equals summary.json, hkl ticks vs pymatgen, 3-D view contents, and the
page in headless Chromium (loads without console errors, the viewer draws, the table matches)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from nanosolve.solve.html_report import (
    _hkl_ticks,
    candidate_columns,
    structure_view,
    table_from_html,
    write_html_report,
)
from nanosolve.structures import Crystal, Particle
from nanosolve.structures.io import write_cif, write_xyz

WL = 1.5406


def _batio3(a=4.0):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Ba", "Ti", "O", "O", "O"],
                                   [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])


def _nacl(a=5.64):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, ["Na"] * 4 + ["Cl"] * 4,
                                   [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5],
                                    [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])


def powder_folder(tmp: Path) -> Path:
    """A powder solve folder as written by the solve: CIFs, profile_fit.xy, summary.json (SCHEMA fields)."""
    from nanosolve.scattering.bragg import simulate_xrd

    tmp.mkdir(parents=True, exist_ok=True)
    crystals = [_batio3(4.0), _batio3(4.1), _nacl()]
    names = ["01_BaTiO3_prototype.cif", "02_BaTiO3_pxrdnet.cif", "03_NaCl_random.cif"]
    for c, n in zip(crystals, names):
        write_cif(c, tmp / n)
    p = simulate_xrd(crystals[0], WL, fwhm=0.15, two_theta_range=(15.0, 90.0))
    rng = np.random.default_rng(0)
    obs = p.y / p.y.max() * 1000 + 20 + rng.normal(0, 3, p.y.size)
    calc = p.y / p.y.max() * 1000 + 20
    np.savetxt(tmp / "profile_fit.xy", np.column_stack([p.x, obs, calc, np.ones_like(p.x)]),
               header="2theta (deg), measured, best candidate, fitted (1/0)")
    cands = [
        {"rank": 1, "file": names[0], "source": "prototype AB3C_cP5_221_a_c_b", "formula": "BaTiO3", "z": 1,
         "n_atoms": 5, "spacegroup": "Pm-3m", "spacegroup_number": 221, "rwp": 0.1234, "rexp": 0.05,
         "gof": 6.09, "rwp_measured": 0.1234,
         "sanity": {"plausible": True, "flags": [], "min_distance": {"pair": "Ti-O", "distance": 2.0,
                                                                     "expected_min": 1.6}, "density": 6.0},
         "measured_profile_refinement": {"params": {"wavelength": WL, "zero_deg": 0.0}}},
        {"rank": 2, "file": names[1], "source": "pxrdnet", "formula": "BaTiO3", "z": 1, "n_atoms": 5,
         "spacegroup": "Pm-3m", "rwp": 0.31, "gof": 20.1,
         "sanity": {"plausible": False, "flags": ["Ba-O 1.62 Å < 2.4 Å"]}},
        {"rank": 3, "file": names[2], "source": "random-search Fm-3m", "formula": "NaCl", "n_atoms": 8,
         "score": 0.5},  # missing keys must not break anything
    ]
    summary = {"input": "measured.xye", "model": "pxrdnet", "formula": "BaTiO3", "seconds": 12.5,
               "z_searched": [1, 2], "indexed": False, "candidates": cands}
    (tmp / "summary.json").write_text(json.dumps(summary))
    return tmp


def pdf_folder(tmp: Path) -> Path:
    from nanosolve.structures.builders.clusters import icosahedron

    tmp.mkdir(parents=True, exist_ok=True)
    p = icosahedron("Au", 2)
    write_xyz(p, tmp / "01_Au_ico.xyz")
    r = np.linspace(1, 20, 400)
    g = np.sin(3 * r) * np.exp(-r / 8)
    np.savetxt(tmp / "fit.gr", np.column_stack([r, g, 0.95 * g, 0.05 * g]))
    summary = {"input": "x.gr", "model": "deepstruc",
               "candidates": [{"rank": 1, "file": "01_Au_ico.xyz", "source": "library", "motif": "icosahedron",
                               "n_atoms": len(p), "rw": 0.21, "rw_positions": 0.18, "at_bound": ["biso"],
                               "sanity": {"plausible": True, "flags": [], "mean_coordination": 8.1}}],
               "motif_comparison": [{"motif": "icosahedron", "best_rw": 0.18, "delta_rw": 0.0},
                                    {"motif": "fcc-sphere", "best_rw": 0.25, "delta_rw": 0.07}]}
    (tmp / "summary.json").write_text(json.dumps(summary))
    return tmp


@pytest.fixture(scope="module")
def powder_report(tmp_path_factory):
    folder = powder_folder(tmp_path_factory.mktemp("powder"))
    return folder, write_html_report(folder)


def test_table_matches_summary(powder_report):
    folder, page = powder_report
    summary = json.loads((folder / "summary.json").read_text())
    text = page.read_text()
    rows = table_from_html(text)
    assert len(rows) == len(summary["candidates"])
    cols = [k for k, _, _ in candidate_columns(summary["candidates"])]
    for key in ("source", "spacegroup", "z", "rwp", "gof", "sanity", "rwp_measured", "score"):
        assert key in cols
    assert "motif" not in cols and "rw" not in cols  # absent from every candidate: no column
    for row, cand in zip(rows, summary["candidates"]):
        assert list(row) == cols
        for k in cols:
            assert row[k] == cand.get(k), k
    # rendered text: the flag of the implausible candidate is visible and marked
    assert "Ba-O 1.62 Å &lt; 2.4 Å" in text or "Ba-O 1.62 Å < 2.4 Å" in text
    assert re.search(r'class="bad">✗', text)


def test_self_contained(powder_report):
    _, page = powder_report
    text = page.read_text()
    assert "$3Dmol" in text and len(text) > 500_000  # the viewer is inlined
    assert not re.search(r'<script[^>]+src=|<link[^>]+href=|https?://[^"\s]*\.js', text)


def test_hkl_ticks_match_pymatgen(powder_report):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    folder, page = powder_report
    ticks, labels = _hkl_ticks(folder / "01_BaTiO3_prototype.cif", "tth", (15.0, 90.0), WL)
    ref = XRDCalculator(wavelength=WL).get_pattern(_batio3(4.0).to_pymatgen(), two_theta_range=(15.0, 90.0))
    np.testing.assert_allclose(sorted(ticks), sorted(ref.x), atol=1e-3)
    assert labels[0].startswith("(1 0 0)")
    # a zero shift moves every tick by it
    shifted, _ = _hkl_ticks(folder / "01_BaTiO3_prototype.cif", "tth", (15.0, 90.0), WL, {"zero_deg": 0.1})
    np.testing.assert_allclose(shifted, np.asarray(ticks) + 0.1, atol=1e-9)
    # every tick is drawn in the page's fit plot
    svg_ticks = re.search(r'<g class="hkl">(.*?)</g>', page.read_text(), re.S).group(1)
    assert svg_ticks.count("<line") == len(ref.x)


def test_structure_view_rocksalt_cell():
    v = structure_view(_nacl(5.64))
    inner = [a for a in v["atoms"] if not a.get("outside")]
    # 4 Na + 4 Cl sites, face/edge/corner images repeated: the 3x3x3 grid of a/2 points
    assert len(inner) == 27 and v["n_sites"] == 8
    assert sum(a["elem"] == "Na" for a in inner) == 14
    # plus the bonded atoms of the neighbouring cells: a 3x3 layer on each of the 6 faces
    assert len(v["atoms"]) == 27 + 6 * 9
    # nearest neighbours only (Na-Cl at a/2 = 2.82 Å; Na-Na 3.99 Å is no bond): 54 inside the cell,
    # one more per outside atom, none between two outside atoms
    assert len(v["bonds"]) == 54 + 54
    elems = [(v["atoms"][i]["elem"], v["atoms"][j]["elem"]) for i, j in v["bonds"]]
    assert all({a, b} == {"Na", "Cl"} for a, b in elems)
    np.testing.assert_allclose(v["cell"], np.diag([5.64] * 3), atol=1e-9)


def test_structure_view_shows_a_short_contact_across_the_cell_boundary():
    # two atoms 1.0 Å apart only through the periodic boundary (x = 0.02 and x = 0.9 in a 5 Å cell)
    c = Crystal.from_parameters(5, 5, 5, 90, 90, 90, ["O", "O"], [[0.02, 0.5, 0.5], [0.82, 0.5, 0.5]])
    v = structure_view(c)
    xyz = np.array([[a["x"], a["y"], a["z"]] for a in v["atoms"]])
    d = [np.linalg.norm(xyz[i] - xyz[j]) for i, j in v["bonds"]]
    assert len(d) == 2 and np.allclose(d, 1.0, atol=1e-6)  # one across each face, via an outside image


def test_structure_view_particle_has_no_cell():
    p = Particle(np.array([[0, 0, 0], [2.88, 0, 0], [0, 2.88, 0], [10, 10, 10]], float), ["Au"] * 4)
    v = structure_view(p)
    assert v["cell"] is None and len(v["atoms"]) == 4
    assert sorted(map(sorted, v["bonds"])) == [[0, 1], [0, 2]]  # 4.07 Å apart and the far atom: no bond


def test_pdf_report_has_motif_bars(tmp_path):
    page = write_html_report(pdf_folder(tmp_path)).read_text()
    assert "Best Rw per motif" in page and "fcc-sphere" in page
    rows = table_from_html(page)
    assert rows[0]["motif"] == "icosahedron" and rows[0]["rw_positions"] == 0.18 and rows[0]["at_bound"] == ["biso"]


def test_cli_report(tmp_path):
    from typer.testing import CliRunner

    from nanosolve.cli.main import app

    folder = powder_folder(tmp_path / "run")
    (folder / "report.html").unlink(missing_ok=True)
    res = CliRunner().invoke(app, ["report", str(folder)])
    assert res.exit_code == 0, res.output
    assert (folder / "report.html").is_file()
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no summary.json" in res.output


# ----- headless Chromium ---------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_page_in_headless_chromium(powder_report, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")
    from PIL import Image

    folder, page_path = powder_report
    summary = json.loads((folder / "summary.json").read_text())
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
    requests, problems = [], []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                        args=args, viewport={"width": 1200, "height": 900})
        page = browser.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_selector("#viewer[data-drawn='0']", timeout=30_000)
        shot = tmp_path / "viewer.png"
        page.locator("#viewer").screenshot(path=str(shot))
        n_rows = page.locator("#candidates tbody tr").count()
        cells = page.eval_on_selector_all("#candidates tbody tr:first-child td[data-key]",
                                          "els => els.map(e => [e.dataset.key, e.dataset.value])")
        page.locator("#candidates tbody tr").nth(2).locator("button").click()
        page.wait_for_selector("#viewer[data-drawn='2']", timeout=10_000)
        info = page.locator("#viewer-info").inner_text()
        browser.close()
    assert problems == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    assert n_rows == len(summary["candidates"])
    first = summary["candidates"][0]
    assert {k: json.loads(v) for k, v in cells} == {k: first.get(k) for k, _ in cells}
    assert "NaCl" in info or "Na" in info
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    # drawn: many colours and a non-white fraction of the canvas (a blank canvas is one colour)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    assert 0.01 < np.mean(img.sum(axis=2) < 600) < 0.9


def test_rietveld_fit_preferred(tmp_path):
    folder = powder_folder(tmp_path / "rv")
    prof = np.loadtxt(folder / "profile_fit.xy")
    x, obs = prof[:, 0], prof[:, 1]
    calc = 0.5 * obs  # distinguishable from the profile fit's curve
    np.savetxt(folder / "rietveld_fit.xy", np.column_stack([x, obs, calc, obs - calc]),
               header="2theta (deg), measured, calculated, difference")
    summary = json.loads((folder / "summary.json").read_text())
    summary["candidates"][0]["rietveld"] = {"zero_deg": 0.05, "wavelength": WL}
    (folder / "summary.json").write_text(json.dumps(summary))
    text = write_html_report(folder).read_text()
    assert "Rietveld fit" in text
    ticks = [float(v) for v in re.findall(r"\) at ([\d.]+)</title>", text)]
    ref, _ = _hkl_ticks(folder / "01_BaTiO3_prototype.cif", "tth", (x.min(), x.max()), WL, {"zero_deg": 0.05})
    np.testing.assert_allclose(ticks, np.round(ref, 3), atol=1e-3)


def test_pdf_solve_report_writes_report_html(tmp_path):
    from nanosolve.scattering.simulate import simulate
    from nanosolve.solve.pdf_refine import FitSettings, refine
    from nanosolve.solve.report import write_report
    from nanosolve.structures.builders.clusters import icosahedron

    p = icosahedron("Au", 2)
    g = simulate("gr", p, rmin=1.0, rmax=12.0, qmax=25.0)
    res = refine(p, g.x, g.y, FitSettings(qmax=25.0, rmax=12.0, refine_positions=False, max_nfev=5,
                                          expansion_scan=3))
    summary = write_report(tmp_path, [res], {"input": "sim.gr", "model": "test"})
    rows = table_from_html((tmp_path / "report.html").read_text())
    assert len(rows) == 1 and rows[0]["rw"] == summary["candidates"][0]["rw"]
    assert rows[0]["file"] == summary["candidates"][0]["file"]
