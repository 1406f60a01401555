"""The bad inputs: files of every reader kind and option values of every command.

Each case is ``(id, argv, expected)``: ``argv`` is the CLI call (``{d}`` is the folder of the
input files below, outputs are relative to a fresh working folder), ``expected`` the
case-insensitive fragments the single ``error:`` line must contain — the file or option it names
and the problem.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

# ----- input files ------------------------------------------------------------------------------------


def _xy(path: Path, x, y, header: str = "# 2theta intensity") -> None:
    path.write_text(header + "\n" + "\n".join(f"{a:.10g} {b:.10g}" for a, b in zip(x, y)) + "\n")


def make_files(d: Path) -> None:
    """Write every input file of the cases into ``d``."""
    from nanosolve.structures.builders.chili_types import build_chili_crystal
    from nanosolve.structures.builders.clusters import build_cluster
    from nanosolve.structures.io import write_structure

    d.mkdir(parents=True, exist_ok=True)
    tth = np.linspace(10, 80, 300)
    peaks = 100 * np.exp(-0.5 * ((tth[:, None] - np.array([30.0, 45.0, 60.0])) / 0.3) ** 2).sum(1) + 5
    _xy(d / "good.xy", tth, peaks, "# wavelength = 1.5406\n# 2theta intensity")
    r = np.arange(0.5, 30, 0.01)
    _xy(d / "good.gr", r, np.exp(-r / 10) * np.sin(2 * math.pi * r / 2.88), "# r G")

    # column text: every way a file can be broken
    (d / "empty.xy").write_text("")
    (d / "comments_only.xy").write_text("# 2theta intensity\n# nothing else\n")
    (d / "garbage.xy").write_bytes(bytes(range(256)) * 40)
    (d / "garbage.dat").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "onecol.xy").write_text("\n".join(str(v) for v in tth) + "\n")
    (d / "ragged.xy").write_text("10 1\n11 2 3 4 5 6 7\n12\n13 4\n")
    (d / "text.csv").write_text("a,b\nfoo,bar\nbaz,qux\n")
    _xy(d / "nan.xy", tth, np.where(np.arange(tth.size) == 50, np.nan, peaks))
    _xy(d / "inf.dat", tth, np.where(np.arange(tth.size) == 7, np.inf, peaks))
    _xy(d / "huge.xy", tth, np.where(np.arange(tth.size) == 9, 1e300, peaks))
    _xy(d / "huge.chi", tth, peaks * 1e299)
    _xy(d / "nonmono.xy", np.concatenate([tth[:150], tth[:150] + 0.01]), np.concatenate([peaks[:150]] * 2))
    _xy(d / "nonmono.xye", np.concatenate([tth[:150], tth[:150] + 0.01]), np.concatenate([peaks[:150]] * 2))
    _xy(d / "repeat.xy", np.repeat(tth[:100], 2), np.repeat(peaks[:100], 2))
    _xy(d / "negative.xy", tth, -peaks)
    _xy(d / "zero.xy", tth, np.zeros_like(tth))
    _xy(d / "diffcurve.xy", tth, np.sin(tth) * 100 - 50)
    _xy(d / "tth200.xy", np.linspace(20, 200, 300), peaks)
    _xy(d / "centideg.xy", tth * 100, peaks)
    _xy(d / "negtth.xy", np.linspace(-10, 60, 300), peaks)
    _xy(d / "negq.xy", np.linspace(-2, 6, 300), peaks, "# Q intensity")
    _xy(d / "bigq.xy", np.linspace(1, 5000, 300), peaks, "# Q intensity")
    _xy(d / "wl1e6.xy", tth, peaks, "# wavelength = 1e6\n# 2theta intensity")
    _xy(d / "hugex.xy", np.linspace(1e299, 2e299, 300), peaks, "# Q intensity")
    # PDF text
    (d / "empty.gr").write_text("")
    (d / "garbage.gr").write_bytes(b"\x00\xff" * 3000)
    _xy(d / "nan.gr", r, np.where(np.arange(r.size) == 3, np.nan, np.sin(r)), "# r G")
    (d / "cols5.gr").write_text("\n".join(f"{v} 1 2 3 4" for v in r[:100]) + "\n")
    _xy(d / "giant_r.gr", np.linspace(0.5, 1e6, 2000), np.sin(np.linspace(0, 100, 2000)), "# r G")
    _xy(d / "neg_r.gr", np.linspace(-5, 30, 2000), np.sin(np.linspace(0, 100, 2000)), "# r G")
    _xy(d / "huge.gr", r, np.sin(r) * 1e300, "# r G")
    _xy(d / "nonmono.gr", np.concatenate([r[:500], r[:500] + 0.001]), np.sin(np.r_[r[:500], r[:500]]), "# r G")
    (d / "header_only.gr").write_text("[DEFAULT]\nwavelength = 0.1\n#### start data\n#L r G\n")
    # powder CIF (pdCIF)
    loop = "".join(f"{a:.3f} {b:.3f}\n" for a, b in zip(tth, peaks))
    pd = "data_p\n_diffrn_radiation_wavelength 1.5406\nloop_\n_pd_meas_2theta_scan\n_pd_meas_intensity_total\n"
    (d / "pd_nan.cif").write_text(pd + loop.replace(f"{tth[5]:.3f} {peaks[5]:.3f}", f"{tth[5]:.3f} nan"))
    (d / "pd_tth200.cif").write_text(pd + "".join(f"{a:.3f} {b:.3f}\n" for a, b in zip(tth * 2.6, peaks)))
    (d / "pd_negative.cif").write_text(pd + "".join(f"{a:.3f} {-b:.3f}\n" for a, b in zip(tth, peaks)))
    (d / "pd_nonmono.cif").write_text(pd + loop + loop)
    (d / "pd_empty_loop.cif").write_text("data_p\n_pd_block_id x\n")
    (d / "pd_unterminated.cif").write_text(pd + ";\nopen text field\n" + loop)
    # diffractometer files
    (d / "empty.xrdml").write_text("")
    (d / "garbage.xrdml").write_text("<xrdMeasurements><not closed")
    (d / "garbage.gsa").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
    (d / "empty.raw").write_bytes(b"")
    bank = "title\nBANK 1 300 300 CONS 1000 23.4 0 0 FXYE\n"  # GSAS: 2θ in centidegrees
    cdeg = tth * 100
    (d / "over180.fxye").write_text(bank + "".join(f"{a * 3:.2f} {b:.3f} 1.0\n" for a, b in zip(cdeg, peaks)))
    (d / "nan.fxye").write_text(bank + "".join(f"{a:.2f} {'nan' if i == 5 else f'{b:.3f}'} 1.0\n"
                                               for i, (a, b) in enumerate(zip(cdeg, peaks))))
    (d / "negative.fxye").write_text(bank + "".join(f"{a:.2f} {-b:.3f} 1.0\n" for a, b in zip(cdeg, peaks)))
    (d / "empty.fxye").write_text("")
    # structures
    zno = build_chili_crystal("wurtzite", "Zn")
    write_structure(zno, d / "good.cif")
    good = (d / "good.cif").read_text()
    (d / "neg_cell.cif").write_text(good.replace(f"_cell_length_a {zno.cell_params[0]:.8f}",
                                                 f"_cell_length_a {-zno.cell_params[0]:.8f}"))
    (d / "angle200.cif").write_text(good.replace("_cell_angle_gamma 120.00000000", "_cell_angle_gamma 200"))
    (d / "huge_cell.cif").write_text(good.replace(f"_cell_length_c {zno.cell_params[2]:.8f}", "_cell_length_c 1e300"))
    (d / "nan_coord.cif").write_text(good.replace(" Zn 0.3333333333", " Zn nan", 1))
    ww = good.replace(" Zn ", " Ww ")
    (d / "ww_element.cif").write_text(ww)
    (d / "uuo_element.cif").write_text(good.replace(" Zn ", " Uuo "))
    (d / "empty.cif").write_text("")
    (d / "garbage.cif").write_bytes(bytes(range(256)) * 10)
    (d / "no_cell.cif").write_text("\n".join(ln for ln in good.splitlines() if "_cell_length_b" not in ln) + "\n")
    (d / "xx.xyz").write_text("2\ncomment\nXx 0 0 0\nAu 2.8 0 0\n")
    (d / "short.xyz").write_text("5\ncomment\nAu 0 0 0\n")
    (d / "nan.xyz").write_text("2\ncomment\nAu 0 0 0\nAu nan 0 0\n")
    (d / "empty.xyz").write_text("")
    write_structure(build_cluster("icosahedron", "Au", shells=2), d / "au13.xyz")
    # a 5,000-atom cell (Bragg XRD would need tens of GB)
    rng = np.random.default_rng(1)
    frac = rng.random((5000, 3))
    lines = ["data_big", "_cell_length_a 40", "_cell_length_b 40", "_cell_length_c 40", "_cell_angle_alpha 90",
             "_cell_angle_beta 90", "_cell_angle_gamma 90", "_symmetry_space_group_name_H-M 'P 1'",
             "loop_", "_symmetry_equiv_pos_as_xyz", "'x, y, z'",
             "loop_", "_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
             "_atom_site_fract_z"]
    lines += [f"Au{i} Au {f[0]:.5f} {f[1]:.5f} {f[2]:.5f}" for i, f in enumerate(frac)]
    (d / "big5000.cif").write_text("\n".join(lines) + "\n")
    # folders
    (d / "emptydir").mkdir(exist_ok=True)
    (d / "a_file.txt").write_text("not a folder\n")
    (d / "notsqlite.sqlite").write_text("hello, not a database\n")


# ----- earlier results in an output folder (stale output) -------------------------------------------------
def make_earlier_run(folder: Path) -> list[str]:
    """An output folder as a finished solve leaves it (plus one file of the user's); returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["01_Au13.xyz", "02_Au55.xyz", "fit.png", "fit.gr"]
    for n in names:
        (folder / n).write_text("earlier run\n")
    (folder / "summary.json").write_text(json.dumps({"candidates": [{"rank": 1, "file": "01_Au13.xyz"},
                                                                    {"rank": 2, "file": "02_Au55.xyz"}]}))
    (folder / "my_notes.txt").write_text("the user's own file\n")
    return names + ["summary.json", "my_notes.txt"]


# ----- the cases ----------------------------------------------------------------------------------------
F = "{d}/"
FILE_CASES = [  # (file, fragments): read by `info` (and below by `solve`)
    ("empty.xy", ["empty.xy", "empty"]),
    ("comments_only.xy", ["comments_only.xy", "no data rows"]),
    ("garbage.xy", ["garbage.xy"]),
    ("garbage.dat", ["garbage.dat"]),
    ("onecol.xy", ["onecol.xy", "column"]),
    ("ragged.xy", ["ragged.xy"]),
    ("text.csv", ["text.csv"]),
    ("nan.xy", ["nan.xy", "nan"]),
    ("inf.dat", ["inf.dat", "inf"]),
    ("huge.xy", ["huge.xy", "1e+300"]),
    ("huge.chi", ["huge.chi", "beyond"]),
    ("hugex.xy", ["hugex.xy", "Q runs"]),
    ("nonmono.xy", ["nonmono.xy", "not monotonic"]),
    ("nonmono.xye", ["nonmono.xye", "not monotonic"]),
    ("repeat.xy", ["repeat.xy", "repeat"]),
    ("negative.xy", ["negative.xy", "negative"]),
    ("zero.xy", ["zero.xy", "zero"]),
    ("diffcurve.xy", ["diffcurve.xy", "not an intensity"]),
    ("tth200.xy", ["tth200.xy", "outside (0, 180)"]),
    ("centideg.xy", ["centideg.xy", "outside (0, 180)"]),
    ("negtth.xy", ["negtth.xy", "outside (0, 180)"]),
    ("negq.xy", ["negq.xy", "Q runs"]),
    ("bigq.xy", ["bigq.xy", "Q runs"]),
    ("wl1e6.xy", ["wl1e6.xy", "wavelength"]),
    ("empty.gr", ["empty.gr", "empty"]),
    ("garbage.gr", ["garbage.gr"]),
    ("nan.gr", ["nan.gr", "nan"]),
    ("cols5.gr", ["cols5.gr", "columns"]),
    ("giant_r.gr", ["giant_r.gr", "r runs"]),
    ("neg_r.gr", ["neg_r.gr", "r runs"]),
    ("huge.gr", ["huge.gr", "beyond"]),
    ("nonmono.gr", ["nonmono.gr", "not monotonic"]),
    ("header_only.gr", ["header_only.gr"]),
    ("pd_nan.cif", ["pd_nan.cif"]),
    ("pd_tth200.cif", ["pd_tth200.cif", "outside (0, 180)"]),
    ("pd_negative.cif", ["pd_negative.cif", "negative"]),
    ("pd_nonmono.cif", ["pd_nonmono.cif", "not monotonic"]),
    ("pd_empty_loop.cif", ["pd_empty_loop.cif"]),
    ("pd_unterminated.cif", ["pd_unterminated.cif", "unterminated"]),
    ("empty.xrdml", ["empty.xrdml"]),
    ("garbage.xrdml", ["garbage.xrdml"]),
    ("garbage.gsa", ["garbage.gsa"]),
    ("empty.raw", ["empty.raw"]),
    ("over180.fxye", ["over180.fxye", "outside (0, 180)"]),
    ("nan.fxye", ["nan.fxye"]),
    ("negative.fxye", ["negative.fxye", "negative"]),
    ("empty.fxye", ["empty.fxye", "empty"]),
    ("missing.xy", ["missing.xy", "not found"]),
]
STRUCTURE_CASES = [  # read by `simulate xrd` (and `info`)
    ("neg_cell.cif", ["neg_cell.cif", "_cell_length_a"]),
    ("angle200.cif", ["angle200.cif", "_cell_angle_gamma"]),
    ("huge_cell.cif", ["huge_cell.cif", "_cell_length_c"]),
    ("nan_coord.cif", ["nan_coord.cif", "non-numeric"]),
    ("ww_element.cif", ["ww_element.cif", "unknown element 'Ww'"]),
    ("uuo_element.cif", ["uuo_element.cif", "unknown element 'Uuo'"]),
    ("empty.cif", ["empty.cif", "empty"]),
    ("garbage.cif", ["garbage.cif"]),
    ("no_cell.cif", ["no_cell.cif", "_cell_length_b"]),
    ("xx.xyz", ["xx.xyz", "Xx"]),
    ("short.xyz", ["short.xyz"]),
    ("nan.xyz", ["nan.xyz"]),
    ("empty.xyz", ["empty.xyz", "empty"]),
]

OPTION_CASES = [  # (id, argv, fragments)
    # solve: counts, steps, sizes, elements, formulas, outputs
    ("solve-steps-neg", ["solve", F + "good.xy", "-f", "SrTiO3", "--steps", "-5"], ["--steps"]),
    ("solve-steps-zero", ["solve", F + "good.xy", "-f", "SrTiO3", "--steps", "0"], ["--steps"]),
    ("solve-steps-text", ["solve", F + "good.xy", "-f", "SrTiO3", "--steps", "many"], ["--steps"]),
    ("solve-steps-huge", ["solve", F + "good.xy", "-f", "SrTiO3", "--steps", "1000000000"], ["--steps", "100000"]),
    ("solve-top-huge", ["solve", F + "good.xy", "-f", "SrTiO3", "--top", "100000000"], ["--top"]),
    ("sim-diameter-huge", ["simulate", "saxs", F + "good.cif", "--diameter", "5000", "-o", "o.xy"], ["--diameter"]),
    ("solve-langevin-zero", ["solve", F + "good.xy", "-f", "SrTiO3", "--langevin-steps", "0"], ["--langevin-steps"]),
    ("solve-top-neg", ["solve", F + "good.xy", "-f", "SrTiO3", "--top", "-3"], ["--top"]),
    ("solve-profile-top-neg", ["solve", F + "good.xy", "-f", "SrTiO3", "--profile-top", "-1"], ["--profile-top"]),
    ("solve-show-neg", ["solve", F + "good.gr", "--show", "-1"], ["--show"]),
    ("solve-k-zero", ["solve", F + "good.gr", "-k", "0"], ["-k"]),
    ("solve-k-neg", ["solve", F + "good.gr", "-k", "-4"], ["-k"]),
    ("solve-k-huge", ["solve", F + "good.gr", "-k", "1000000000"], ["-k", "would take"]),
    ("solve-k-overflow", ["solve", F + "good.gr", "-k", "99999999999999999999999"], ["-k"]),
    ("solve-qmax-zero", ["solve", F + "good.gr", "--qmax", "0"], ["--qmax"]),
    ("solve-qmax-neg", ["solve", F + "good.gr", "--qmax", "-3"], ["--qmax"]),
    ("solve-qmax-below-qmin", ["solve", F + "good.gr", "--qmin", "5", "--qmax", "2"], ["--qmax", "--qmin"]),
    ("solve-qmin-neg", ["solve", F + "good.gr", "--qmin", "-1"], ["--qmin"]),
    ("solve-qdamp-neg", ["solve", F + "good.gr", "--qdamp", "-0.1"], ["--qdamp"]),
    ("solve-rmin-neg", ["solve", F + "good.gr", "--rmin", "-2"], ["--rmin"]),
    ("solve-rmin-nan", ["solve", F + "good.gr", "--rmin", "nan"], ["--rmin"]),
    ("solve-size-zero", ["solve", F + "good.xy", "-f", "SrTiO3", "--size", "0"], ["--size"]),
    ("solve-size-neg", ["solve", F + "good.xy", "-f", "SrTiO3", "--size", "-10"], ["--size"]),
    ("solve-size-inf", ["solve", F + "good.xy", "-f", "SrTiO3", "--size", "inf"], ["--size"]),
    ("solve-element-uuo", ["solve", F + "good.gr", "--element", "Uuo"], ["--element", "Uuo"]),
    ("solve-element-ww", ["solve", F + "good.gr", "-e", "Ww"], ["--element", "Ww"]),
    ("solve-element-xx", ["solve", F + "good.gr", "-e", "Xx"], ["--element", "Xx"]),
    ("solve-element-nonmetal", ["solve", F + "good.gr", "-e", "O"], ["not a metal"]),
    ("solve-formula-huge", ["solve", F + "good.xy", "--formula", "Mg99999999999999999999O"], ["--formula", "too large"]),
    ("solve-formula-big", ["solve", F + "good.xy", "--formula", "Mg100000O"], ["--formula", "atoms"]),
    ("solve-formula-zero", ["solve", F + "good.xy", "--formula", "Mg0O4"], ["--formula", "Mg"]),
    ("solve-formula-xx", ["solve", F + "good.xy", "--formula", "Xx2O"], ["--formula", "Xx"]),
    ("solve-formula-uuo", ["solve", F + "good.xy", "--formula", "UuoO2"], ["--formula", "Uuo"]),
    ("solve-formula-bracket", ["solve", F + "good.xy", "--formula", "Sr(TiO3"], ["--formula", "bracket"]),
    ("solve-formula-frac", ["solve", F + "good.xy", "--formula", "Fe0.5O"], ["--formula", "Fe"]),
    ("solve-formula-junk", ["solve", F + "good.xy", "--formula", "Sr-Ti+O3"], ["--formula"]),
    ("solve-formula-lower", ["solve", F + "good.xy", "--formula", "srtio3"], ["--formula"]),
    ("solve-w-huge", ["solve", F + "good.gr", "-w", "1e6"], ["--wavelength", "outside"]),
    ("solve-w-neg", ["solve", F + "good.xy", "-f", "SrTiO3", "-w", "-1.5"], ["wavelength"]),
    ("solve-w-name", ["solve", F + "good.xy", "-f", "SrTiO3", "-w", "CuKz"], ["wavelength", "CuKz"]),
    ("solve-model", ["solve", F + "good.gr", "--model", "bogus"], ["bogus"]),
    ("solve-o-file", ["solve", F + "good.gr", "-o", F + "a_file.txt"], ["-o", "a_file.txt", "existing file"]),
    ("solve-o-under-file", ["solve", F + "good.gr", "-o", F + "a_file.txt/sub"], ["-o", "a_file.txt"]),
    ("solve-o-earlier", ["solve", F + "good.gr", "-o", "earlier"], ["-o", "earlier run", "--overwrite"]),
    ("solve-missing", ["solve", F + "missing.gr"], ["missing.gr", "not found"]),
    # simulate: grids, wavelengths, outputs
    ("sim-qstep-tiny-saxs", ["simulate", "saxs", F + "au13.xyz", "--qstep", "1e-9", "-o", "o.xy"], ["Q grid", "points"]),
    ("sim-qstep-zero", ["simulate", "saxs", F + "au13.xyz", "--qstep", "0", "-o", "o.xy"], ["--qstep"]),
    ("sim-qstep-neg", ["simulate", "iq", F + "au13.xyz", "--qstep", "-0.1", "-o", "o.xy"], ["--qstep"]),
    ("sim-qstep-tiny-xrd", ["simulate", "xrd", F + "good.cif", "--qstep", "1e-10", "-o", "o.xy"], ["--qstep", "points"]),
    ("sim-rstep-tiny", ["simulate", "gr", F + "good.cif", "--rstep", "1e-9", "-o", "o.gr"], ["--rstep", "points"]),
    ("sim-rstep-zero", ["simulate", "gr", F + "au13.xyz", "--rstep", "0", "-o", "o.gr"], ["--rstep"]),
    ("sim-rmax-neg", ["simulate", "gr", F + "au13.xyz", "--rmax", "-5", "-o", "o.gr"], ["--rmax"]),
    ("sim-rmax-huge", ["simulate", "gr", F + "good.cif", "--rmax", "1e9", "-o", "o.gr"], ["--rmax"]),
    ("sim-w-huge", ["simulate", "xrd", F + "good.cif", "-w", "1e6", "-o", "o.xy"], ["--wavelength", "1e+06"]),
    ("sim-w-zero", ["simulate", "xrd", F + "good.cif", "-w", "0", "-o", "o.xy"], ["wavelength"]),
    ("sim-w-neg", ["simulate", "nd", F + "good.cif", "-w", "-1.54", "-o", "o.xy"], ["wavelength"]),
    ("sim-w-nan", ["simulate", "xrd", F + "good.cif", "-w", "nan", "-o", "o.xy"], ["wavelength"]),
    ("sim-w-tiny", ["simulate", "xrd", F + "good.cif", "-w", "1e-9", "-o", "o.xy"], ["--wavelength"]),
    ("sim-qmax-zero", ["simulate", "xrd", F + "good.cif", "--qmax", "0", "-o", "o.xy"], ["--qmax"]),
    ("sim-qmin-neg", ["simulate", "iq", F + "au13.xyz", "--qmin", "-1", "-o", "o.xy"], ["--qmin"]),
    ("sim-qmax-below", ["simulate", "iq", F + "au13.xyz", "--qmin", "5", "--qmax", "1", "-o", "o.xy"], ["--qmax"]),
    ("sim-biso-neg", ["simulate", "xrd", F + "good.cif", "--biso", "-1", "-o", "o.xy"], ["--biso"]),
    ("sim-fwhm-zero", ["simulate", "xrd", F + "good.cif", "--fwhm", "0", "-o", "o.xy"], ["--fwhm"]),
    ("sim-size-neg", ["simulate", "xrd", F + "good.cif", "--size", "-3", "-o", "o.xy"], ["--size"]),
    ("sim-diameter-zero", ["simulate", "saxs", F + "good.cif", "--diameter", "0", "-o", "o.xy"], ["--diameter"]),
    ("sim-kind", ["simulate", "xray", F + "good.cif", "-o", "o.xy"], ["xray", "kind"]),
    ("sim-o-ext", ["simulate", "xrd", F + "good.cif", "-o", "o.pdf"], ["-o", "extension"]),
    ("sim-o-noext", ["simulate", "xrd", F + "good.cif", "-o", "o"], ["-o", "extension"]),
    ("sim-o-dir", ["simulate", "xrd", F + "good.cif", "-o", F + "emptydir"], ["-o", "folder"]),
    ("sim-o-under-file", ["simulate", "xrd", F + "good.cif", "-o", F + "a_file.txt/o.xy"], ["-o", "a_file.txt"]),
    ("sim-missing", ["simulate", "xrd", F + "missing.cif", "-o", "o.xy"], ["missing.cif", "not found"]),
    # build
    ("build-type-uuo", ["build", "type", "rocksalt", "Uuo", "-o", "o.cif"], ["Uuo"]),
    ("build-type-ww", ["build", "type", "rocksalt", "Ww", "-o", "o.cif"], ["Ww"]),
    ("build-type-anion", ["build", "type", "rocksalt", "Mg", "--anion", "Xx", "-o", "o.cif"], ["Xx"]),
    ("build-type-unknown", ["build", "type", "not_a_type", "Mg", "-o", "o.cif"], ["not_a_type"]),
    ("build-type-ext", ["build", "type", "rocksalt", "Mg", "-o", "o.docx"], ["-o", "extension"]),
    ("build-type-o-dir", ["build", "type", "rocksalt", "Mg", "-o", F + "emptydir"], ["-o", "folder"]),
    ("build-proto-element", ["build", "prototype", "AB_cF8_225_a_b", "Ww", "O", "-o", "o.cif"], ["Ww"]),
    ("build-cluster-layers", ["build", "cluster", "fcc", "Au", "--layers", "0,2,2", "-o", "o.xyz"], ["--layers"]),
    ("build-cluster-layers-text", ["build", "cluster", "fcc", "Au", "--layers", "a,b", "-o", "o.xyz"], ["integers"]),
    ("build-cluster-shells-neg", ["build", "cluster", "icosahedron", "Au", "--shells", "-1", "-o", "o.xyz"], ["--shells"]),
    ("build-cluster-shells-huge", ["build", "cluster", "icosahedron", "Au", "--shells", "100000", "-o", "o.xyz"],
     ["--shells"]),
    ("build-cluster-scale-zero", ["build", "cluster", "fcc", "Au", "--layers", "3,3,3", "--scale", "0", "-o", "o.xyz"],
     ["--scale"]),
    ("build-cluster-scale-nan", ["build", "cluster", "fcc", "Au", "--layers", "3,3,3", "--scale", "nan", "-o", "o.xyz"],
     ["--scale"]),
    ("build-cluster-element", ["build", "cluster", "fcc", "Uuo", "--layers", "3,3,3", "-o", "o.xyz"], ["Uuo"]),
    ("build-cut-radius-neg", ["build", "cut", F + "good.cif", "--radius", "-5", "-o", "o.xyz"], ["--radius"]),
    ("build-cut-radius-huge", ["build", "cut", F + "good.cif", "--radius", "1e9", "-o", "o.xyz"], ["--radius"]),
    ("build-cut-ext", ["build", "cut", F + "good.cif", "--radius", "5", "-o", "o.bogus"], ["-o", "extension"]),
    ("build-cut-particle", ["build", "cut", F + "au13.xyz", "--radius", "5", "-o", "o.xyz"], ["au13.xyz"]),
    # dataset
    ("ds-workers-neg", ["dataset", "chili3k", "s.sqlite", "--workers", "-1", "--metals", "Au"], ["--workers"]),
    ("ds-radii-neg", ["dataset", "chili3k", "s.sqlite", "--radii", "-5", "--metals", "Au"], ["--radii"]),
    ("ds-radii-text", ["dataset", "chili3k", "s.sqlite", "--radii", "five", "--metals", "Au"], ["--radii"]),
    ("ds-radii-huge", ["dataset", "chili3k", "s.sqlite", "--radii", "1e9", "--metals", "Au"], ["--radii"]),
    ("ds-shard-zero", ["dataset", "chili3k", "s", "--shard-size", "0", "--metals", "Au"], ["--shard-size"]),
    ("ds-out-dir", ["dataset", "chili3k", F + "emptydir", "--metals", "Au"], ["emptydir", "folder"]),
    ("ds-out-notsqlite", ["dataset", "chili3k", F + "notsqlite.sqlite", "--metals", "Au", "--radii", "5"],
     ["notsqlite.sqlite", "not a graph store"]),
    ("ds-out-shard-file", ["dataset", "chili3k", F + "a_file.txt", "--shard-size", "10", "--metals", "Au"],
     ["a_file.txt", "existing file"]),
    ("ds-types-unknown", ["dataset", "chili3k", "s.sqlite", "--metals", "Au", "--types", "fcc"], ["--types", "fcc"]),
    ("ds-metal-uuo", ["dataset", "chili3k", "s.sqlite", "--metals", "Uuo", "--radii", "5"], ["Uuo"]),
    ("ds-from-cifs-file", ["dataset", "from-cifs", F + "a_file.txt", "s.sqlite"], ["a_file.txt", "not a folder"]),
    ("ds-from-cifs-empty", ["dataset", "from-cifs", F + "emptydir", "s.sqlite"], ["emptydir", "no .cif"]),
    ("ds-stats-missing", ["dataset", "stats", "nothing.sqlite"], ["nothing.sqlite"]),
    # info
    ("info-w-huge", ["info", F + "good.xy", "-w", "1e6"], ["--wavelength", "outside"]),
    ("info-w-text", ["info", F + "good.xy", "-w", "blue"], ["blue"]),
]

# Range checks of the numeric options of the training, benchmark, prediction, generation and evaluation
# commands (plus the solve / dataset / report options without one before): each refused before any work,
# most by click while parsing (typer's min= / max=), the floats by check_number (NaN and inf too).
DS, CN = ["train", "deepstruc", "-o", "run"], ["train", "crystalnet", F + "emptydir", "-o", "run"]
CD, PX = ["train", "cdvae", F + "emptydir", "-o", "run"], ["train", "pxrdnet", "-o", "run"]
BENCH = ["bench", "chili", "--dataset", F + "notsqlite.sqlite", "--task", "graph_crystal_system"]
PRED = ["predict", "crystalnet", F + "good.xy", "-f", "SrTiO3", "--model-dir", F + "emptydir", "-o", "pred"]
GEN, EVAL = ["generate", "cdvae", F + "emptydir", "-o", "gen"], ["evaluate", "cdvae", F + "emptydir", F + "emptydir"]
RANGE_CASES = [
    # train deepstruc
    ("train-ds-epochs-zero", DS + ["--max-epochs", "0"], ["--max-epochs"]),
    ("train-ds-epochs-huge", DS + ["--max-epochs", "99999999999999999999"], ["--max-epochs"]),
    ("train-ds-minutes-zero", DS + ["--max-minutes", "0"], ["--max-minutes", "> 0"]),
    ("train-ds-minutes-nan", DS + ["--max-minutes", "nan"], ["--max-minutes", "nan"]),
    ("train-ds-seed-neg", DS + ["--seed", "-1"], ["--seed"]),
    ("train-ds-data-seed-huge", DS + ["--data-seed", "4294967296"], ["--data-seed"]),
    ("train-ds-split-seed-text", DS + ["--split-seed", "one"], ["--split-seed"]),
    ("train-ds-data-max-atoms-zero", DS + ["--data-max-atoms", "0"], ["--data-max-atoms"]),
    ("train-ds-threads-zero", DS + ["--threads", "0"], ["--threads"]),
    ("train-ds-set-lr-inf", DS + ["--set", "lr=Infinity"], ["lr", "finite"]),
    ("train-ds-set-lr-neg", DS + ["--set", "lr=-0.001"], ["lr", "> 0"]),
    ("train-ds-set-batch-zero", DS + ["--set", "batch_size=0"], ["batch_size"]),
    ("train-ds-set-batch-text", DS + ["--set", "batch_size=x"], ["--set"]),
    # train crystalnet
    ("train-cn-epochs-neg", CN + ["--max-epochs", "-3"], ["--max-epochs"]),
    ("train-cn-minutes-inf", CN + ["--max-minutes", "inf"], ["--max-minutes"]),
    ("train-cn-substitutions-neg", CN + ["--substitutions", "-1"], ["--substitutions"]),
    ("train-cn-seed-huge", CN + ["--seed", "99999999999999999999"], ["--seed"]),
    ("train-cn-threads-huge", CN + ["--threads", "100000"], ["--threads"]),
    ("train-cn-set-lr-nan", CN + ["--set", "lr=NaN"], ["lr"]),
    # train cdvae
    ("train-cdvae-epochs-zero", CD + ["--max-epochs", "0"], ["--max-epochs"]),
    ("train-cdvae-minutes-neg", CD + ["--max-minutes", "-5"], ["--max-minutes"]),
    ("train-cdvae-max-atoms-huge", CD + ["--max-atoms", "5000"], ["--max-atoms"]),
    ("train-cdvae-split-seed-neg", CD + ["--split-seed", "-7"], ["--split-seed"]),
    ("train-cdvae-set-lr-inf", CD + ["--set", "lr=Infinity"], ["lr", "finite"]),
    ("train-cdvae-set-batch-zero", CD + ["--set", "batch_size=0"], ["batch_size"]),
    # train pxrdnet
    ("train-pxrdnet-size-zero", PX + ["--size", "0"], ["--size"]),
    ("train-pxrdnet-size-nan", PX + ["--size", "nan"], ["--size"]),
    ("train-pxrdnet-prototypes-neg", PX + ["--prototypes", "-5"], ["--prototypes"]),
    ("train-pxrdnet-max-atoms-zero", PX + ["--max-atoms", "0"], ["--max-atoms"]),
    ("train-pxrdnet-max-per-source-zero", PX + ["--max-per-source", "0"], ["--max-per-source"]),
    ("train-pxrdnet-epochs-zero", PX + ["--max-epochs", "0"], ["--max-epochs"]),
    ("train-pxrdnet-set-opt-lr-inf", PX + ["--set", "opt_lr=Infinity"], ["opt_lr", "finite"]),
    # bench chili
    ("bench-lr-zero", BENCH + ["--lr", "0"], ["--lr"]),
    ("bench-lr-nan", BENCH + ["--lr", "nan"], ["--lr"]),
    ("bench-lr-huge", BENCH + ["--lr", "10"], ["--lr"]),
    ("bench-batch-zero", BENCH + ["--batch-size", "0"], ["--batch-size"]),
    ("bench-seeds-zero", BENCH + ["--seeds", "0"], ["--seeds"]),
    ("bench-budget-neg", BENCH + ["--budget-minutes", "-1"], ["--budget-minutes"]),
    ("bench-budget-inf", BENCH + ["--budget-minutes", "inf"], ["--budget-minutes"]),
    ("bench-epochs-zero", BENCH + ["--max-epochs", "0"], ["--max-epochs"]),
    ("bench-patience-neg", BENCH + ["--patience", "-1"], ["--patience"]),
    ("bench-hidden-zero", BENCH + ["--hidden", "0"], ["--hidden"]),
    ("bench-layers-zero", BENCH + ["--layers", "0"], ["--layers"]),
    ("bench-steps-neg", BENCH + ["--steps-per-epoch", "-1"], ["--steps-per-epoch"]),
    ("bench-val-graphs-neg", BENCH + ["--val-graphs", "-1"], ["--val-graphs"]),
    ("bench-crop-atoms-neg", BENCH + ["--crop-atoms", "-2"], ["--crop-atoms"]),
    ("bench-eval-crops-zero", BENCH + ["--eval-crops", "0"], ["--eval-crops"]),
    ("bench-threads-zero", BENCH + ["--threads", "0"], ["--threads"]),
    # predict crystalnet
    ("predict-threshold-zero", PRED + ["--threshold", "0"], ["--threshold"]),
    ("predict-threshold-one", PRED + ["--threshold", "1"], ["--threshold"]),
    ("predict-threshold-nan", PRED + ["--threshold", "nan"], ["--threshold"]),
    ("predict-samples-neg", PRED + ["--samples", "-1"], ["--samples"]),
    ("predict-threads-zero", PRED + ["--threads", "0"], ["--threads"]),
    # generate cdvae
    ("gen-n-zero", GEN + ["-n", "0"], ["-n"]),
    ("gen-n-huge", GEN + ["-n", "10000000"], ["-n"]),
    ("gen-steps-zero", GEN + ["--steps", "0"], ["--steps"]),
    ("gen-candidates-zero", GEN + ["--candidates", "0"], ["--candidates"]),
    ("gen-stoichiometries-over", GEN + ["--candidates", "2", "--stoichiometries", "3"],
     ["--stoichiometries", "--candidates"]),
    ("gen-seed-neg", GEN + ["--seed", "-1"], ["--seed"]),
    ("gen-threads-zero", GEN + ["--threads", "0"], ["--threads"]),
    # evaluate cdvae
    ("eval-n-zero", EVAL + ["-n", "0"], ["-n"]),
    ("eval-steps-huge", EVAL + ["--steps", "100000"], ["--steps"]),
    ("eval-candidates-neg", EVAL + ["--candidates", "-1"], ["--candidates"]),
    ("eval-stoichiometries-over", EVAL + ["--stoichiometries", "4"], ["--stoichiometries"]),
    ("eval-seed-huge", EVAL + ["--seed", "99999999999999999999"], ["--seed"]),
    # report
    ("report-max-views-neg", ["report", F + "emptydir", "--max-views", "-1"], ["--max-views"]),
    # solve: the options without a range before
    ("solve-seed-neg", ["solve", F + "good.gr", "--seed", "-1"], ["--seed"]),
    ("solve-time-budget-nan", ["solve", F + "good.xy", "-f", "SrTiO3", "--time-budget", "nan"], ["--time-budget"]),
    ("solve-time-budget-inf", ["solve", F + "good.xy", "-f", "SrTiO3", "--time-budget", "inf"], ["--time-budget"]),
    ("solve-z-huge", ["solve", F + "good.xy", "-f", "SrTiO3", "--z", "1000"], ["--z"]),
    ("solve-random-search-huge", ["solve", F + "good.xy", "-f", "SrTiO3", "--random-search", "10000000"],
     ["--random-search"]),
    ("solve-rietveld-top-huge", ["solve", F + "good.xy", "-f", "SrTiO3", "--rietveld-top", "100000"],
     ["--rietveld-top"]),
    ("solve-lattice-a-zero", ["solve", F + "good.gr", "--lattice-a", "0"], ["--lattice-a"]),
    ("solve-lattice-a-nan", ["solve", F + "good.gr", "--lattice-a", "nan"], ["--lattice-a"]),
    ("solve-max-atoms-huge", ["solve", F + "good.gr", "--max-atoms", "10000000"], ["--max-atoms"]),
    # dataset
    ("ds-workers-huge", ["dataset", "chili3k", "s.sqlite", "--workers", "100000", "--metals", "Au"], ["--workers"]),
    ("ds-from-cifs-workers-neg", ["dataset", "from-cifs", F + "emptydir", "s.sqlite", "--workers", "-1"],
     ["--workers"]),
    ("ds-from-cifs-shard-zero", ["dataset", "from-cifs", F + "emptydir", "s", "--shard-size", "0"], ["--shard-size"]),
]


def all_cases() -> list[tuple[str, list[str], list[str]]]:
    """Every in-process case: each bad file through `info` (patterns, structures), the pattern
    files also through `solve`, the structures through `simulate xrd`, and the option cases."""
    out = []
    for name, frag in FILE_CASES:
        out.append((f"info-{name}", ["info", F + name], frag))
    for name, frag in FILE_CASES:
        if name.endswith((".xrdml", ".raw", ".gsa", ".fxye")):
            continue  # solve reads them like info does; one command is enough for these
        out.append((f"solve-{name}", ["solve", F + name, "-f", "SrTiO3", "-o", "out"], frag))
    for name, frag in STRUCTURE_CASES:
        out.append((f"simulate-{name}", ["simulate", "xrd", F + name, "-o", "o.xy"], frag))
        if name.endswith(".cif"):
            out.append((f"info-{name}", ["info", F + name], frag))
    out += OPTION_CASES + RANGE_CASES
    return out


#: Cases run one per process (each could allocate tens of GB or run for hours if unchecked).
HEAVY_CASES = [
    ("heavy-formula", ["solve", F + "good.xy", "--formula", "Mg99999999999999999999O", "-o", "out"],
     ["--formula", "too large"]),
    ("heavy-saxs-qstep", ["simulate", "saxs", F + "au13.xyz", "--qstep", "1e-9", "-o", "o.xy"], ["points"]),
    ("heavy-xrd-5000", ["simulate", "xrd", F + "big5000.cif", "-o", "o.xy"], ["needs about", "big5000"]),
    ("heavy-k", ["solve", F + "good.gr", "-k", "1000000000", "-o", "out"], ["-k"]),
    ("heavy-giant-r", ["solve", F + "giant_r.gr", "-o", "out"], ["giant_r.gr", "r runs"]),
    ("heavy-w", ["simulate", "xrd", F + "good.cif", "-w", "1e6", "-o", "o.xy"], ["--wavelength"]),
    ("heavy-gr-rstep", ["simulate", "gr", F + "au13.xyz", "--rstep", "1e-10", "-o", "o.gr"], ["points"]),
]
