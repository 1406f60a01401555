"""Pattern readers: the 15 IUCr powder CIFs, PDF .gr files, column text, and bad input."""

import warnings

import numpy as np
import pytest

from nanosolve import InputError
from nanosolve.scattering import q_from_two_theta
from nanosolve.scattering.readers import read_pattern, read_patterns, read_pdcif_fit

# Derived from the file text with grep/awk, independently of the parser: first/last 2θ of the
# intensity loop (or _pd_*_2theta_range_min/max when the loop has no 2θ column), the number of
# rows with a numeric observed intensity, and the wavelength by the documented rule
# (_pd_proc_wavelength > _diffrn_radiation_wavelength (first of a loop) > _diffrn_radiation_type,
# then another block of the same file).
PXRD_PROFILES = {  # stem: (2θ min, 2θ max, points, wavelength Å)
    "av5088sup4": (4.05, 80.69, 7665, 1.54056),                 # counts; 2θ from _pd_proc_2theta_range_*
    "br1322Isup2": (15.016, 89.975, 9652, 1.54056),
    "br1340Isup2": (10.00, 90.00, 4001, 1.5418),
    "ck5030Vsup6": (8.5189, 129.9931, 7270, 1.54178),
    "gw5052Mg2Si_100K_LTsup2": (7.00, 75.00, 6801, 0.49935),    # wavelength only in the phase block
    "gw5052Mg2Sn_100K_LTsup23": (5.50, 76.30, 7081, 0.49935),
    "iz1026Isup2": (15.00, 118.00, 5151, 1.5418),              # loop of one type/wavelength
    "ks5409BTsup2": (15.0632, 119.9432, 5245, 1.540560),       # only _pd_proc_wavelength
    "sh0123Xraysup5": (10.0, 110.0, 2001, 1.540562),           # 2θ from _pd_meas_2theta_range_*
    "sq1033Isup2": (10.0, 140.0, 6501, 1.5418),
    "sq3214Isup2": (5.0332, 109.0132, 5200, 1.540590),
    "wh5012phaseIIIsup3": (5.00418, 18.21831, 553, 0.71073),   # Mo Kα, 5-19°
    "wh5012phaseIIsup2": (5.00418, 19.00829, 586, 0.71073),
    "wm2446Isup2": (9.87202, 109.81503, 5880, 1.54060),        # _pd_proc_wavelength loop 1.54060/1.54443
    "wn6225Isup2": (10.000, 135.000, 6251, 1.54056),           # Kα1/Kα2 loop -> first
}


def _pxrd(shared_data, stem):
    return shared_data / "pxrdnet_experimental" / f"{stem}.rtv.combined.cif"


@pytest.mark.parametrize("stem", sorted(PXRD_PROFILES))
def test_pxrd_profiles_match_file_text(shared_data, stem):
    lo, hi, n, wl = PXRD_PROFILES[stem]
    with warnings.catch_warnings():  # read time: benchmarks/speed/bench_speed.py
        warnings.simplefilter("ignore")
        p = read_pattern(_pxrd(shared_data, stem))
    assert (p.kind, p.x_unit, p.radiation) == ("xrd", "tth", "xray")
    assert len(p) == n
    assert p.x[0] == pytest.approx(lo, abs=1e-6) and p.x[-1] == pytest.approx(hi, abs=1e-6)
    assert p.wavelength == pytest.approx(wl, abs=1e-6)
    assert p.metadata["observed"] is True and p.metadata["source"].endswith(f"{stem}.rtv.combined.cif")
    fit = read_pdcif_fit(_pxrd(shared_data, stem))[0]
    assert fit["x"] == pytest.approx(p.x)
    for key in ("calculated", "background", "ls_weight"):
        assert key not in p.metadata  # the Rietveld fit never rides on the Pattern a solve reads
        if key in fit:
            assert fit[key].shape == p.x.shape


@pytest.mark.parametrize("stem, rwp", [("av5088sup4", 0.1343), ("wm2446Isup2", 0.0682)])
def test_rietveld_arrays_reproduce_stated_rwp(shared_data, stem, rwp):
    """Observed, calculated and weights stay aligned: Rwp recomputed from them equals the file's."""
    p = read_pattern(_pxrd(shared_data, stem))
    fit = read_pdcif_fit(_pxrd(shared_data, stem))[0]
    w, yc = fit["ls_weight"], fit["calculated"]
    ok = np.isfinite(yc) & (w > 0)
    got = np.sqrt(np.sum(w[ok] * (p.y[ok] - yc[ok]) ** 2) / np.sum(w[ok] * p.y[ok] ** 2))
    assert got == pytest.approx(rwp, abs=1e-4)
    assert fit["Rwp"] == pytest.approx(rwp) and "Rwp" not in p.metadata
    # raw counts: Poisson sigma
    assert p.sigma == pytest.approx(np.sqrt(np.maximum(p.y, 1.0)))


def test_two_phase_file_profiles(shared_data):
    path = _pxrd(shared_data, "av5088sup4")
    assert len(read_patterns(path)) == 1  # one measured profile for both phases
    every = read_pdcif_fit(path)
    assert [f["block"] for f in every] == ["C4Br4S2G_p_01", "C4Br4S2G_phase_1_simulated_",
                                           "C4Br4S2G_phase_2_simulated_"]
    assert [f["observed"] for f in every] == [True, False, False]
    assert len(every[1]["pattern"]) == 250
    assert every[0]["phase_blocks"] == ["C4Br4S2G_phase_1", "C4Br4S2G_phase_2"]  # via _pd_block_id
    assert every[0]["phase_mass_percent"] == pytest.approx([57.5, 42.5], abs=1.0)


def test_peak_list_and_su_and_wavelength_sources(shared_data):
    p = read_pattern(_pxrd(shared_data, "sh0123Xraysup5"))
    peaks = read_pdcif_fit(_pxrd(shared_data, "sh0123Xraysup5"))[0]["peaks"]
    assert len(peaks["2theta_centroid"]) == 704 and peaks["2theta_centroid"][0] == pytest.approx(18.673)
    assert p.metadata["x_source"] == "_pd_meas_2theta_range_min/max/inc"
    ks = read_pattern(_pxrd(shared_data, "ks5409BTsup2"))
    assert ks.sigma[0] == pytest.approx(18.0) and ks.y[0] == pytest.approx(327.0)  # 327(18)
    assert ks.metadata["y_tag"] == "_pd_proc_intensity_total"
    gw = read_pattern(_pxrd(shared_data, "gw5052Mg2Si_100K_LTsup2"))
    assert "Mg2Si_100K_LT" in gw.metadata["wavelength_source"]
    wm = read_pattern(_pxrd(shared_data, "wm2446Isup2"))
    assert wm.metadata["wavelengths"] == pytest.approx([1.54060, 1.54443])


def test_tiny_pdcif_fixture(local_data):
    p1, p2 = read_patterns(local_data / "tiny_pdcif.cif")
    # 2θ from range 20.0-20.4 step 0.1; the '.' row at 20.2 is dropped
    assert p1.x == pytest.approx([20.0, 20.1, 20.3, 20.4]) and p1.metadata["dropped_points"] == 1
    assert p1.y == pytest.approx([1234, 1300, 1444, 1521]) and p1.sigma == pytest.approx([35, 36, 38, 39])
    fit = read_pdcif_fit(local_data / "tiny_pdcif.cif")[0]
    assert fit["calculated"] == pytest.approx([1200, 1290, 1440, 1500]) and "calculated" not in p1.metadata
    assert fit["background"] == pytest.approx([100, 101, 103, 104])
    assert p1.wavelength == pytest.approx(1.54056)  # largest _wt, though listed second
    assert p2.wavelength == pytest.approx(0.71073)  # 'Mo K\a' -> MoKa
    assert p2.sigma == pytest.approx([10, 20, 30])  # sqrt(counts)
    q = p1.to_q()
    assert q.x == pytest.approx(q_from_two_theta(p1.x, 1.54056))


def test_wavelength_argument_fills_in_and_file_wins(local_data):
    p = read_pattern(local_data / "fit2d.chi", wavelength="CuKa1")
    assert p.wavelength == pytest.approx(1.54056)
    with pytest.warns(UserWarning, match="ignored"):
        p = read_pattern(local_data / "tiny_pdcif.cif", wavelength=0.5)
    assert p.wavelength == pytest.approx(1.54056)


# ----- PDF files -----------------------------------------------------------------------------------------
def test_deepstruc_gr_files(shared_data):
    files = sorted((shared_data / "deepstruc_simulated" / "PDFs_simulated").glob("*.gr"))
    assert len(files) == 12
    for f in files:
        p = read_pattern(f)
        ref = np.loadtxt(f, comments="#")  # oracle: numpy's own text reader
        assert (p.kind, p.x_unit) == ("gr", "r")
        assert len(p) == 3000 and p.x[0] == 0.0 and p.x[-1] == pytest.approx(30.0)
        assert np.diff(p.x) == pytest.approx(30.0 / 2999)
        assert p.y == pytest.approx(ref[:, 1], rel=1e-12)


def test_pdfgetx3_header(local_data):
    p = read_pattern(local_data / "pdfgetx3.gr")
    assert (p.kind, p.x_unit, p.radiation) == ("gr", "r", "xray")
    assert p.wavelength == pytest.approx(0.1665)
    assert (p.metadata["qmax"], p.metadata["qdamp"], p.metadata["composition"]) == (24.5, 0.04, "Ni")
    assert p.metadata["header"]["version"] == "pdfgetx3-2.1.1"
    assert p.y == pytest.approx([0.0, -0.012, -0.025, -0.036, -0.041])


def test_gr_with_uncertainties(tmp_path):
    f = tmp_path / "fit.gr"
    f.write_text("History written: today\n##### start data\n#L r G dr dG\n1.0 0.5 0.0 0.01\n1.1 0.6 0.0 0.02\n")
    p = read_pattern(f)
    assert p.sigma == pytest.approx([0.01, 0.02]) and p.metadata["columns"] == ["r", "G", "dr", "dG"]


# ----- column text ---------------------------------------------------------------------------------------
def test_fit2d_chi_count_line(local_data):
    p = read_pattern(local_data / "fit2d.chi")
    assert (p.x_unit, len(p)) == ("tth", 5) and p.x[0] == pytest.approx(10.0) and p.y[-1] == pytest.approx(119.0)


def test_pyfai_q_in_inverse_nm_and_wavelength_in_metres(local_data):
    p = read_pattern(local_data / "pyfai_qnm.dat")
    assert p.x_unit == "q" and p.x == pytest.approx([1.0, 2.0, 3.0])  # 10, 20, 30 nm^-1
    assert p.wavelength == pytest.approx(1.54056)


def test_csv_header_names_and_sigma(local_data):
    p = read_pattern(local_data / "header_sigma.csv")
    assert p.x_unit == "tth" and p.sigma == pytest.approx([10, 11, 12, 13]) and p.y == pytest.approx([100, 121, 144, 169])


@pytest.mark.parametrize("text, unit, x0", [
    ("# Q  I\n0.5 1\n1.0 2\n", "q", 0.5),
    ("! tth  counts\n10\t5\n20\t6\n", "tth", 10.0),
    ("; r G(r)\n1.0 0.1\n2.0 0.2\n", "r", 1.0),
    ("'q_nm^-1' I\n5 1\n6 2\n", "q", 0.5),
    ("# 2-Theta Angle (Degrees)\n10, 1\n20 ,2\n", "tth", 10.0),  # comma separators, stray spaces
])
def test_units_from_headers(tmp_path, text, unit, x0):
    f = tmp_path / "p.xy"
    f.write_text(text)
    p = read_pattern(f)
    assert p.x_unit == unit and p.x[0] == pytest.approx(x0)


def test_unnamed_columns_guess_q_below_40(tmp_path):
    f = tmp_path / "p.xy"
    f.write_text("x y\n0.5\t1\n20 2\n")
    with pytest.warns(UserWarning, match="guessed Q"):
        assert read_pattern(f).x_unit == "q"  # max x = 20 <= 40 -> Q by the documented rule


def test_unit_guess_and_override(tmp_path):
    f = tmp_path / "p.xy"
    f.write_text("10 1\n50 2\n90 3\n")
    with pytest.warns(UserWarning, match="guessed 2θ"):
        assert read_pattern(f).x_unit == "tth"
    p = read_pattern(f, x_unit="q", kind="saxs")
    assert (p.x_unit, p.kind) == ("q", "saxs")
    g = tmp_path / "w.dat"
    g.write_text("# wavelength = 0.7293 A\n# 2theta I\n1 2\n3 4\n")
    assert read_pattern(g).wavelength == pytest.approx(0.7293)
    g.write_text("# lambda: 0.1 nm\n# 2theta I\n1 2\n3 4\n")
    assert read_pattern(g).wavelength == pytest.approx(1.0)


# ----- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, problem", [
    ("e.xy", "", "empty"),
    ("c.xy", "# only a comment\n# another\n", "no data rows"),
    ("n.xy", "# tth I\n10 1\n11 2 3\n12 3\n", "line 3: 3 columns where the data have 2"),
    ("nan.xy", "# tth I\n10 1\n11 nan\n", "line 3: non-finite"),
    ("g.dat", "# tth I\n10 1\n11 2\noops here\n", "line 4: not a row of numbers"),
    ("one.xy", "# tth I\n10\n11\n", "announces 10 points|at least two columns"),
    ("dup.xy", "# tth I\n10 1\n10 2\n", "x values repeat"),
    ("chi.chi", "title\n2-Theta\nI\n  4\n1 2\n3 4\n", "line 4 announces 4 points but 2"),
    ("nogr.gr", "#### start data\n#L r G\n", "no data rows"),
    ("g.gr", "#### start data\n1 2\nabc def\n", "line 3: not a row of numbers"),
    ("p.cif", "data_x\n_cell_length_a 4\n", "no powder profile"),
    ("r.cif", "data_x\n_pd_meas_2theta_range_min 5\n_pd_meas_2theta_range_max 6\n_pd_meas_2theta_range_inc 0.1\n"
              "loop_\n_pd_meas_counts_total\n1\n2\n3\n", "11.0 points"),
    ("m.cif", "data_x\nloop_\n_pd_meas_2theta_scan\n_pd_meas_counts_total\n1 2 3\n", "malformed CIF"),
    ("s.cif", "data_x\nloop_\n_pd_calc_intensity_total\n1\n2\n_pd_proc_2theta_range_min 1\n"
              "_pd_proc_2theta_range_max 2\n_pd_proc_2theta_range_inc 1\n", "only calculated profiles"),
])
def test_bad_patterns(tmp_path, name, content, problem):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(InputError, match=problem) as err:
        read_pattern(f)
    assert str(f) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_pattern(tmp_path / "nothing.xy")


def test_content_sniffing_for_unknown_extension(tmp_path, local_data):
    f = tmp_path / "profile.out"
    f.write_text((local_data / "tiny_pdcif.cif").read_text())
    assert read_pattern(f).metadata["block"] == "tiny_profile_1"
    g = tmp_path / "pdf.out"
    g.write_text((local_data / "pdfgetx3.gr").read_text())
    assert read_pattern(g).kind == "gr"
