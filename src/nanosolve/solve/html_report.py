"""``report.html``: one self-contained page of a solve output folder (works offline, nothing fetched).

:func:`write_html_report` is a pure function of the folder: it reads ``summary.json``, the ranked
structure files (``NN_*.cif`` / ``NN_*.xyz``) and the fit data files (``rietveld_fit.xy``,
``profile_fit.xy``, ``fit.xy``, ``fit.gr``) and writes ``report.html`` with

* the input and the solve settings (top-level scalar fields of ``summary.json``);
* the ranked candidate table: every column of the shared candidate fields that is present
  (source, space group, Z, R / Rwp / Rw, GoF, sanity flags...); missing fields are left out;
* the fit of the best candidate against the data with the difference curve, as inline SVG (powder:
  ``rietveld_fit.xy``, else ``profile_fit.xy``, else ``fit.xy``); powder data also get hkl tick marks of the best candidate, computed from its CIF with
  :func:`nanosolve.scattering.bragg.bragg_peaks` at the data's wavelength (on Q without one);
  a PDF solve also gets the best Rw per motif (``motif_comparison``, else per candidate source);
* an interactive 3-D view of each candidate (atoms, bonds, unit cell) drawn by 3Dmol.js
  (BSD-3-Clause, shipped in ``nanosolve/data/viewer/`` with its licence and inlined into the page).

Every cell of the candidate table carries ``data-key`` / ``data-value`` attributes holding the raw
``summary.json`` value, so tools (and the tests) can read the table back exactly.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np

from nanosolve.errors import InputError

__all__ = ["write_html_report", "candidate_columns", "structure_view", "VIEWER_JS"]

#: The 3-D viewer shipped with the package (3Dmol.js minified build; licence beside it).
VIEWER_JS = "3Dmol-min.js"

# (summary key(s), column header, kind). The first key present in any candidate names the column.
_COLUMNS: list[tuple[tuple[str, ...], str, str]] = [
    (("rank",), "rank", "int"),
    (("file",), "file", "text"),
    (("source", "method"), "source", "text"),
    (("motif",), "motif", "text"),
    (("formula",), "formula", "text"),
    (("spacegroup", "space_group"), "space group", "text"),
    (("spacegroup_number",), "SG #", "int"),
    (("z",), "Z", "int"),
    (("n_atoms",), "atoms", "int"),
    (("diameter_nm",), "d (nm)", "f2"),
    (("lattice_a",), "a (Å)", "f4"),
    (("rwp_measured",), "Rwp (measured)", "f4"),
    (("rwp",), "Rwp", "f4"),
    (("rexp",), "Rexp", "f4"),
    (("gof",), "GoF", "f3"),
    (("score",), "R (model grid)", "f4"),
    (("rw",), "Rw", "f4"),
    (("rw_positions",), "Rw (positions)", "f4"),
    (("biso",), "Biso (Å²)", "f3"),
    (("at_bound",), "at bound", "list"),
    (("sanity",), "sanity", "sanity"),
    (("duplicate_of_file",), "copy of", "text"),
]
_TOP_KEYS = ("input", "model", "model_kind", "method", "formula", "element", "wavelength", "k", "seed",
             "n_candidates", "z_searched", "indexed", "ranking", "seconds")


# ----- candidate table -----------------------------------------------------------------------------
def candidate_columns(candidates: list[dict]) -> list[tuple[str, str, str]]:
    """(summary key, header, kind) of every column with a value in at least one candidate."""
    cols = []
    for keys, header, kind in _COLUMNS:
        key = next((k for k in keys if any(c.get(k) is not None for c in candidates)), None)
        if key is not None:
            cols.append((key, header, kind))
    return cols


def _fmt(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "sanity":
        if not isinstance(value, dict):
            return html.escape(str(value))
        flags = value.get("flags") or []
        ok = value.get("plausible")
        mark = "" if ok is None else ("✓ " if ok else "✗ ")
        return html.escape(mark + ("; ".join(map(str, flags)) if flags else ("plausible" if ok else "")))
    if kind == "list":
        return html.escape(", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
    if kind.startswith("f") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{int(kind[1:])}f}"
    return html.escape(str(value))


def _table_html(candidates: list[dict]) -> str:
    cols = candidate_columns(candidates)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in cols) + "<th>3-D</th>"
    rows = []
    for i, c in enumerate(candidates):
        cells = []
        for key, _, kind in cols:
            v = c.get(key)
            raw = html.escape(json.dumps(v, ensure_ascii=False), quote=True)
            cls = ""
            if kind == "sanity" and isinstance(v, dict) and v.get("plausible") is False:
                cls = ' class="bad"'
            cells.append(f'<td data-key="{html.escape(key)}" data-value="{raw}"{cls}>{_fmt(v, kind)}</td>')
        cells.append(f'<td><button type="button" onclick="nsShow({i})">view</button></td>')
        rows.append(f'<tr data-rank="{html.escape(str(c.get("rank", i + 1)))}">{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table id="candidates"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


# ----- SVG plots -----------------------------------------------------------------------------------
def _decimate(x: np.ndarray, ys: list[np.ndarray], n_max: int = 2500):
    """Keep at most ~n_max points, preserving each bin's extremes (peaks stay visible)."""
    if x.size <= n_max:
        return x, ys
    step = int(math.ceil(x.size / (n_max / 2)))
    idx = []
    for s in range(0, x.size, step):
        seg = slice(s, min(s + step, x.size))
        for y in ys[:1]:
            lo, hi = s + int(np.argmin(y[seg])), s + int(np.argmax(y[seg]))
            idx.extend(sorted({lo, hi}))
    idx = np.unique(np.asarray(idx))
    return x[idx], [y[idx] for y in ys]


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda s: abs(s - raw))
    start = math.ceil(lo / step) * step
    return [round(v, 10) for v in np.arange(start, hi + step * 1e-6, step)]


def svg_fit_plot(x, y_obs, y_calc, x_label: str, y_label: str, ticks=None, tick_labels=None,
                 obs_label: str = "data", calc_label: str = "model", width: int = 900, height: int = 430) -> str:
    """Inline SVG: data (grey), model (red), difference (blue, offset below) and optional tick marks.

    Args:
        x, y_obs, y_calc: [M] arrays on the same grid.
        ticks: [P] x positions of reflection marks (drawn as a row of bars under the curves).
        tick_labels: [P] hover text per tick (e.g. hkl).
    """
    x, y_obs, y_calc = (np.asarray(a, float).reshape(-1) for a in (x, y_obs, y_calc))
    diff = y_obs - y_calc
    top = max(float(np.max(y_obs)), float(np.max(y_calc)))
    bottom = min(float(np.min(y_obs)), float(np.min(y_calc)))
    span = (top - bottom) or 1.0
    offset = bottom - 0.08 * span - float(np.max(diff))  # difference curve sits below everything
    lo_y = offset + float(np.min(diff)) - 0.04 * span
    hi_y = top + 0.05 * span
    has_ticks = ticks is not None and len(ticks) > 0
    ml, mr, mt, mb = 70, 20, 30, 50 + (22 if has_ticks else 0)
    pw, ph = width - ml - mr, height - mt - mb
    x0, x1 = float(x.min()), float(x.max())
    xs = lambda v: ml + (np.asarray(v) - x0) / ((x1 - x0) or 1.0) * pw  # noqa: E731
    ys = lambda v: mt + (hi_y - np.asarray(v)) / ((hi_y - lo_y) or 1.0) * ph  # noqa: E731

    def path(yv, color, w, cls):
        xd, (yd,) = _decimate(x, [yv])
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs(xd), ys(yd)))
        return f'<polyline class="{cls}" fill="none" stroke="{color}" stroke-width="{w}" points="{pts}"/>'

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="plot" role="img">',
             f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="white" stroke="#999"/>']
    for t in _nice_ticks(x0, x1):
        px = float(xs(t))
        parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{mt + ph}" y2="{mt + ph + 5}" stroke="#333"/>'
                     f'<text x="{px:.1f}" y="{mt + ph + 18}" text-anchor="middle">{t:g}</text>')
    parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{float(ys(offset)):.1f}" y2="{float(ys(offset)):.1f}" '
                 f'stroke="#bbb" stroke-dasharray="4 3"/>')
    parts.append(path(y_obs, "#555", 1.6, "obs"))
    parts.append(path(y_calc, "#d62728", 1.2, "calc"))
    parts.append(path(diff + offset, "#1f77b4", 1.0, "diff"))
    if has_ticks:
        ty = mt + ph + 24
        parts.append('<g class="hkl">')
        labels = tick_labels if tick_labels is not None else [""] * len(ticks)
        for t, lab in zip(ticks, labels):
            if x0 <= t <= x1:
                px = float(xs(t))
                parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{ty}" y2="{ty + 12}" stroke="#2ca02c" '
                             f'stroke-width="1.2"><title>{html.escape(str(lab))}</title></line>')
        parts.append("</g>")
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text transform="translate(16 {mt + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'{html.escape(y_label)}</text>')
    legend = [(obs_label, "#555"), (calc_label, "#d62728"), ("difference", "#1f77b4")]
    if has_ticks:
        legend.append(("reflections (hkl)", "#2ca02c"))
    lx = ml + 10
    for lab, col in legend:
        parts.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{mt - 12}" y2="{mt - 12}" stroke="{col}" stroke-width="2"/>'
                     f'<text x="{lx + 27}" y="{mt - 8}">{html.escape(lab)}</text>')
        lx += 40 + 7.2 * len(lab)
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(labels: list[str], values: list[float], y_label: str, width: int = 900, height: int = 260) -> str:
    """Inline SVG bar chart (e.g. best Rw per motif)."""
    ml, mr, mt, mb = 70, 20, 15, 70
    pw, ph = width - ml - mr, height - mt - mb
    vmax = max([v for v in values if v is not None and np.isfinite(v)] or [1.0]) * 1.1 or 1.0
    n = max(len(values), 1)
    bw = pw / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="plot bars" role="img">',
             f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="white" stroke="#999"/>']
    for t in _nice_ticks(0.0, vmax, 4):
        py = mt + ph - t / vmax * ph
        parts.append(f'<line x1="{ml - 5}" x2="{ml}" y1="{py:.1f}" y2="{py:.1f}" stroke="#333"/>'
                     f'<text x="{ml - 8}" y="{py + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, (lab, v) in enumerate(zip(labels, values)):
        if v is None:
            continue
        h = v / vmax * ph
        x = ml + i * bw + 0.15 * bw
        parts.append(f'<rect x="{x:.1f}" y="{mt + ph - h:.1f}" width="{0.7 * bw:.1f}" height="{h:.1f}" '
                     f'fill="#1f77b4"><title>{html.escape(lab)}: {v:.4f}</title></rect>'
                     f'<text x="{x + 0.35 * bw:.1f}" y="{mt + ph - h - 4:.1f}" text-anchor="middle">{v:.3f}</text>'
                     f'<text x="{x + 0.35 * bw:.1f}" y="{mt + ph + 16}" text-anchor="middle">{html.escape(lab[:22])}</text>')
    parts.append(f'<text transform="translate(16 {mt + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'{html.escape(y_label)}</text></svg>')
    return "".join(parts)


# ----- fit data ------------------------------------------------------------------------------------
def _load_columns(path: Path) -> np.ndarray | None:
    try:
        data = np.loadtxt(path, comments="#", ndmin=2)
    except (OSError, ValueError):
        return None
    return data if data.size and data.shape[1] >= 2 else None


def _hkl_ticks(structure_path: Path, x_unit: str, x_range, wavelength, params: dict | None = None
               ) -> tuple[list[float], list[str]]:
    """Reflection positions (x units of the plot) and 'hkl' labels of the crystal in ``structure_path``.

    ``params`` of a measured-profile refinement supply the refined cell (``a b c alpha beta gamma``)
    and the zero shift ``zero_deg`` (2θ_obs = 2θ_calc + zero), so ticks sit where the fitted peaks are.
    """
    from nanosolve.scattering.bragg import bragg_peaks
    from nanosolve.structures import Crystal
    from nanosolve.structures.io import read_structure

    s = read_structure(structure_path)
    if not isinstance(s, Crystal):
        return [], []
    params = params or {}
    if all(isinstance(params.get(k), (int, float)) for k in ("a", "b", "c", "alpha", "beta", "gamma")):
        s = Crystal.from_parameters(*(params[k] for k in ("a", "b", "c", "alpha", "beta", "gamma")),
                                    s.species, s.frac_coords, occupancies=s.occupancies)
    zero = float(params.get("zero_deg") or 0.0) if x_unit == "tth" else 0.0
    lo, hi = float(x_range[0]), float(x_range[1])
    if x_unit == "tth" and wavelength:
        peaks = bragg_peaks(s, wavelength, two_theta_range=(max(lo - zero, 0.0), min(hi - zero, 179.9)))
        pos = peaks.two_theta + zero
    else:
        peaks = bragg_peaks(s, None, q_min=max(lo, 0.0), q_max=hi)
        pos = peaks.q
    labels = []
    for fam, p in zip(peaks.families, pos):
        hkls = " ".join("(" + " ".join(str(int(v)) for v in h) + ")" for h in list(fam)[:3])
        labels.append(f"{hkls} at {p:.3f}")
    return [float(v) for v in pos], labels


def _find_number(d, key: str):
    """First positive number stored under ``key`` anywhere in nested dicts (depth-first), or None."""
    if isinstance(d, dict):
        v = d.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        for x in d.values():
            found = _find_number(x, key)
            if found is not None:
                return found
    return None


def _input_wavelength(folder: Path, summary: dict) -> float | None:
    """The wavelength (Å) of the solve's input: stated in summary.json (top level or the best
    candidate's fit records), else read from the input file."""
    for v in (summary.get("wavelength"), _find_number((summary.get("candidates") or [{}])[0], "wavelength")):
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    src = summary.get("input")
    if src:
        from nanosolve.scattering.readers import read_pattern

        for cand in (Path(src), folder / src, folder.parent / Path(src).name):
            if cand.is_file():
                try:
                    return read_pattern(cand).wavelength
                except (InputError, ValueError):
                    return None
    return None


def _powder_fit(folder: Path, summary: dict, best_file: Path | None) -> tuple[str, str]:
    """(heading, SVG) of the best candidate's fit to the input: the Rietveld fit when there is one,
    else the measured-profile fit, else the fit on the model grid."""
    best = (summary.get("candidates") or [{}])[0]
    params: dict = {}
    rv = _load_columns(folder / "rietveld_fit.xy") if (folder / "rietveld_fit.xy").is_file() else None
    prof = _load_columns(folder / "profile_fit.xy") if (folder / "profile_fit.xy").is_file() else None
    if rv is not None and rv.shape[1] >= 3:
        x, obs, calc = rv[:, 0], rv[:, 1], rv[:, 2]
        unit, xlabel, heading = "tth", "2θ (°)", "Best candidate: Rietveld fit to the pattern as measured"
        # the Rietveld record's zero shift: at the entry's top level or under "rietveld"
        zero = _find_number({k: v for k, v in best.items() if not isinstance(v, dict)}, "zero_deg")
        if zero is None:
            zero = _find_number(best.get("rietveld") or {}, "zero_deg")
        params = {"zero_deg": zero} if zero is not None else {}  # the CIF holds the refined cell
        wl = _input_wavelength(folder, summary)
    elif prof is not None and prof.shape[1] >= 3:
        x, obs, calc = prof[:, 0], prof[:, 1], prof[:, 2]
        if prof.shape[1] >= 4:  # only the fitted points enter the difference
            keep = prof[:, 3] > 0.5
            x, obs, calc = x[keep], obs[keep], calc[keep]
        unit, xlabel, heading = "tth", "2θ (°)", "Best candidate against the pattern as measured"
        params = (best.get("measured_profile_refinement") or {}).get("params") or {}
        wl = _input_wavelength(folder, summary)
    else:
        fit = _load_columns(folder / "fit.xy") if (folder / "fit.xy").is_file() else None
        if fit is None:
            return "", ""
        x, obs = fit[:, 0], fit[:, 1]
        calc = fit[:, 3] if fit.shape[1] >= 4 else fit[:, 2]
        if fit.shape[1] >= 4:
            keep = fit[:, 2] > 0.5
            x, obs, calc = x[keep], obs[keep], calc[keep]
        unit, xlabel, heading = "q", "Q (Å⁻¹)", "Best candidate against the input (model grid)"
        wl = None
    ticks, labels = [], []
    if best_file is not None and best_file.suffix.lower() == ".cif" and x.size and (unit == "q" or wl):
        try:
            ticks, labels = _hkl_ticks(best_file, unit, (x.min(), x.max()), wl, params)
        except (InputError, ValueError):
            ticks, labels = [], []
    return heading, svg_fit_plot(x, obs, calc, xlabel, "I (a.u.)", ticks, labels, obs_label="measured",
                                 calc_label="best candidate")


def _pdf_fit(folder: Path, summary: dict) -> tuple[str, str, str]:
    """(heading, fit SVG, per-motif Rw SVG) of a PDF solve."""
    fit = _load_columns(folder / "fit.gr") if (folder / "fit.gr").is_file() else None
    fit_svg = ""
    if fit is not None and fit.shape[1] >= 3:
        fit_svg = svg_fit_plot(fit[:, 0], fit[:, 1], fit[:, 2], "r (Å)", "G(r) (Å⁻²)", obs_label="data",
                               calc_label="best candidate")
    comp = summary.get("motif_comparison")
    if comp:
        labels = [str(m.get("motif")) for m in comp]
        values = [m.get("best_rw") for m in comp]
    else:
        best: dict[str, float] = {}
        for c in summary.get("candidates", []):
            key = str(c.get("motif") or c.get("source") or c.get("file"))
            r = c.get("rw_positions") if c.get("rw_positions") is not None else c.get("rw")
            if r is not None:
                best[key] = min(best.get(key, math.inf), float(r))
        labels, values = list(best), list(best.values())
    bars = svg_bars(labels, values, "best Rw") if labels else ""
    per = "motif" if comp or any(c.get("motif") for c in summary.get("candidates", [])) else "candidate"
    return f"Best Rw per {per}", fit_svg, bars


# ----- 3-D structures ------------------------------------------------------------------------------
def _is_metal(symbol: str) -> bool:
    from pymatgen.core import Element

    try:
        return bool(Element(symbol).is_metal)
    except ValueError:
        return False


def _bond_cut(rad_i, rad_j, bond_scale):
    return bond_scale * (rad_i + rad_j)


def structure_view(structure, bond_scale: float = 1.15) -> dict:
    """JSON-ready atoms, bonds and cell of one structure for the viewer.

    Crystals show the atoms of one unit cell, their images on the cell faces/edges/corners
    (fractional coordinate 0 repeated at 1), and, flagged ``"outside": true``, every atom of the
    neighbouring cells bonded to one of those (as VESTA shows a cell), so the bonds and any too-short
    contact across the cell boundary are visible. Bonds join atoms closer than ``bond_scale`` × the
    sum of their covalent radii (ase's table), never below 0.4 Å; bonds between two outside atoms and,
    in a compound with a non-metal, between two metals are left out.

    Returns:
        {"atoms": [{"elem", "x", "y", "z", ("outside")}], "bonds": [[i, j], ...],
         "cell": [[3], [3], [3]] or None, "formula", "n_sites"}
    """
    from ase.data import atomic_numbers, covalent_radii
    from scipy.spatial import cKDTree

    from nanosolve.structures import Crystal

    def radius(el):
        return float(covalent_radii[atomic_numbers.get(el, 0)])

    metal = {e: _is_metal(e) for e in set(structure.species)}
    # In a compound, metal-metal contacts are not drawn as bonds (Ba-Ti in BaTiO3 is 3.5 Å, inside the
    # covalent-radius sum); in an all-metal structure they are the bonds.
    skip_mm = not all(metal.values())
    outside: list[bool]
    if isinstance(structure, Crystal):
        frac = np.mod(structure.frac_coords, 1.0)
        frac[np.isclose(frac, 1.0, atol=1e-6)] = 0.0
        species = list(structure.species)
        pts, spec = [], []
        for f, el in zip(frac, species):
            shifts = [np.zeros(3)]
            for k in (k for k in range(3) if f[k] < 1e-3):  # repeat each face atom on the opposite face
                shifts += [sh + np.eye(3)[k] for sh in shifts]
            for sh in shifts:
                pts.append(f + sh)
                spec.append(el)
        inner = np.asarray(pts)
        # one shell of neighbouring cells: keep the images bonded to an atom of the cell
        grid = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], float)
        cand = (frac[None, :, :] + grid[:, None, :]).reshape(-1, 3)
        cand_spec = species * len(grid)
        inside = np.all((cand > -1e-3) & (cand < 1 + 1e-3), axis=1)
        cand, cand_spec = cand[~inside], [e for e, m in zip(cand_spec, inside) if not m]
        cart_in = inner @ structure.lattice
        cart_c = cand @ structure.lattice
        r_in = np.array([radius(e) for e in spec])
        extra_pts, extra_spec = [], []
        if len(cand):
            r_max = float(bond_scale * 2 * max(r_in.max(), max(radius(e) for e in cand_spec)))
            tree = cKDTree(cart_in)
            for ci, hits in enumerate(tree.query_ball_point(cart_c, r=r_max)):
                rc = radius(cand_spec[ci])
                for h in hits:
                    if skip_mm and metal[cand_spec[ci]] and metal[spec[h]]:
                        continue
                    d = float(np.linalg.norm(cart_c[ci] - cart_in[h]))
                    if 0.4 < d <= _bond_cut(rc, r_in[h], bond_scale):
                        extra_pts.append(cart_c[ci])
                        extra_spec.append(cand_spec[ci])
                        break
        cart = np.vstack([cart_in] + ([np.asarray(extra_pts)] if extra_pts else []))
        outside = [False] * len(spec) + [True] * len(extra_spec)
        spec = spec + extra_spec
        cell = structure.lattice.tolist()
    else:
        cart = np.asarray(structure.positions, float)
        cart = cart - cart.mean(axis=0)
        spec = list(structure.species)
        outside = [False] * len(spec)
        cell = None
    rad = np.array([radius(e) for e in spec])
    bonds: list[list[int]] = []
    if len(cart) > 1:
        tree = cKDTree(cart)
        for i, j in sorted(tree.query_pairs(r=float(bond_scale * 2 * rad.max()))):
            if (outside[i] and outside[j]) or (skip_mm and metal[spec[i]] and metal[spec[j]]):
                continue
            d = float(np.linalg.norm(cart[i] - cart[j]))
            if 0.4 < d <= _bond_cut(rad[i], rad[j], bond_scale):
                bonds.append([i, j])
    atoms = []
    for e, p, o in zip(spec, cart, outside):
        a = {"elem": e, "x": round(float(p[0]), 4), "y": round(float(p[1]), 4), "z": round(float(p[2]), 4)}
        if o:
            a["outside"] = True
        atoms.append(a)
    return {"atoms": atoms, "bonds": bonds, "cell": cell, "formula": structure.formula, "n_sites": len(structure)}


def _views(folder: Path, candidates: list[dict], max_views: int) -> list[dict | None]:
    from nanosolve.structures.io import read_structure

    out: list[dict | None] = []
    for i, c in enumerate(candidates):
        f = c.get("file")
        if i >= max_views:
            out.append({"error": f"no 3-D view embedded beyond the best {max_views} (nanosolve report --max-views)",
                        "file": f})
            continue
        if not f or not (folder / f).is_file():
            out.append(None)
            continue
        try:
            out.append({**structure_view(read_structure(folder / f)), "file": f})
        except (InputError, ValueError) as exc:  # one unreadable file must not lose the report
            out.append({"error": str(exc), "file": f})
    return out


_VIEWER_SCRIPT = r"""
var nsViewer = null;
function nsCell(v, cell) {
  var o = [0, 0, 0], a = cell[0], b = cell[1], c = cell[2];
  function add() { var r = [0, 0, 0]; for (var k = 0; k < arguments.length; k++)
    for (var d = 0; d < 3; d++) r[d] += arguments[k][d]; return r; }
  var P = [o, a, b, c, add(a, b), add(a, c), add(b, c), add(a, b, c)];
  var E = [[0,1],[0,2],[0,3],[1,4],[1,5],[2,4],[2,6],[3,5],[3,6],[4,7],[5,7],[6,7]];
  E.forEach(function (e) {
    v.addCylinder({start: {x: P[e[0]][0], y: P[e[0]][1], z: P[e[0]][2]},
                   end: {x: P[e[1]][0], y: P[e[1]][1], z: P[e[1]][2]},
                   radius: 0.04, color: "black", fromCap: 1, toCap: 1});
  });
}
function nsShow(i) {
  var s = NS_STRUCTURES[i], info = document.getElementById("viewer-info");
  var rows = document.querySelectorAll("#candidates tbody tr");
  rows.forEach(function (r, k) { r.classList.toggle("shown", k === i); });
  if (!s) { info.textContent = "no structure file for this candidate"; return; }
  if (s.error) { info.textContent = s.file + ": " + s.error; return; }
  if (typeof $3Dmol === "undefined") { info.textContent = "3-D viewer unavailable"; return; }
  if (!nsViewer) nsViewer = $3Dmol.createViewer(document.getElementById("viewer"),
                                                {backgroundColor: "white", antialias: true});
  var v = nsViewer;
  v.clear();
  var atoms = s.atoms.map(function (a, k) {
    return {elem: a.elem, atom: a.elem, x: a.x, y: a.y, z: a.z, serial: k, index: k, bonds: [], bondOrder: []};
  });
  s.bonds.forEach(function (b) {
    atoms[b[0]].bonds.push(b[1]); atoms[b[0]].bondOrder.push(1);
    atoms[b[1]].bonds.push(b[0]); atoms[b[1]].bondOrder.push(1);
  });
  var m = v.addModel();
  m.addAtoms(atoms);
  v.setStyle({}, {sphere: {scale: 0.3, colorscheme: "Jmol"}, stick: {radius: 0.12, colorscheme: "Jmol"}});
  var out = [];
  s.atoms.forEach(function (a, k) { if (a.outside) out.push(k); });
  if (out.length) v.setStyle({index: out}, {sphere: {scale: 0.12, colorscheme: "Jmol"},
                                            stick: {radius: 0.07, colorscheme: "Jmol"}});
  if (s.cell) nsCell(v, s.cell);
  if (s.cell) { v.rotate(-25, "y"); v.rotate(18, "x"); }  // a slanted view shows the cell as a box
  v.zoomTo();
  v.render();
  info.textContent = "rank " + (i + 1) + ": " + s.file + " — " + s.formula + ", " + s.atoms.length +
    " atoms shown" + (s.cell ? " (" + s.n_sites + " sites in the cell, face images repeated; small: bonded " +
    "atoms of the neighbouring cells)" : "") +
    ", " + s.bonds.length + " bonds. Drag to rotate, scroll to zoom.";
  document.getElementById("viewer").setAttribute("data-drawn", String(i));
}
window.addEventListener("load", function () { nsShow(0); });
"""

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.88em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f3f3f3;position:sticky;top:0}.scroll{max-height:460px;overflow:auto;display:inline-block;
max-width:100%}tr.shown{background:#fff6d5}td.bad{color:#b00020}
#candidates td[data-key=file]{font-family:monospace}
.plot{width:100%;height:auto;font-size:12px}#viewer{width:100%;height:520px;position:relative;
border:1px solid #ccc}#viewer-info{font-size:.9em;color:#444;margin:.3em 0}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:.9em}
dl.meta dt{font-weight:600}dl.meta dd{margin:0;font-family:monospace;word-break:break-all}
.note{color:#666;font-size:.85em}
"""


def _merit(cand: dict) -> str:
    """One line of the best candidate's figures of merit that summary.json holds."""
    names = (("rwp", "R<sub>wp</sub>"), ("rexp", "R<sub>exp</sub>"), ("gof", "GoF (χ²)"),
             ("rwp_measured", "R<sub>wp</sub> (measured profile)"), ("score", "R (model grid)"), ("rw", "Rw"),
             ("rw_positions", "Rw (positions refined)"))
    parts = [f"{label} = {cand[k]:.4g}" for k, label in names
             if isinstance(cand.get(k), (int, float)) and not isinstance(cand.get(k), bool)]
    name = html.escape(str(cand.get("file") or ""))
    return f"<p class='merit'>{name}: {', '.join(parts)}</p>" if parts else ""


def _meta_html(summary: dict) -> str:
    items = []
    for k in _TOP_KEYS:
        v = summary.get(k)
        if v is None:
            continue
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        items.append(f'<dt>{html.escape(k)}</dt><dd data-key="{html.escape(k)}">{html.escape(str(v))}</dd>')
    return f'<dl class="meta">{"".join(items)}</dl>'


def _script_json(obj) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")


def write_html_report(out_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                      max_views: int = 50) -> Path:
    """Write ``report.html`` (or ``path``) for the solve output folder ``out_dir``; returns its path.

    Raises:
        InputError: the folder holds no readable ``summary.json``.
    """
    folder = Path(out_dir)
    sj = folder / "summary.json"
    if not sj.is_file():
        raise InputError("no summary.json here; give the output folder of a solve", folder)
    try:
        summary = json.loads(sj.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"summary.json is not valid JSON ({exc})", folder) from None
    candidates = list(summary.get("candidates") or [])
    files = [str(c.get("file") or "") for c in candidates]
    is_pdf = any(f.lower().endswith(".xyz") for f in files) or (folder / "fit.gr").is_file()
    best = folder / files[0] if files and files[0] and (folder / files[0]).is_file() else None

    sections = []
    merit = _merit(candidates[0]) if candidates else ""
    if is_pdf:
        bars_heading, fit_svg, bars = _pdf_fit(folder, summary)
        if fit_svg:
            sections.append(f"<h2>Best candidate against the data</h2>{merit}{fit_svg}")
        if bars:
            sections.append(f"<h2>{bars_heading}</h2>{bars}")
    else:
        heading, fit_svg = _powder_fit(folder, summary, best)
        if fit_svg:
            sections.append(f"<h2>{heading}</h2>{merit}{fit_svg}<p class='note'>Green bars: reflections of the best "
                            "candidate's cell (hover for hkl).</p>")

    viewer_js = (resources.files("nanosolve") / "data" / "viewer" / VIEWER_JS).read_text(encoding="utf-8")
    views = _views(folder, candidates, max_views)
    title = f"nanosolve report — {Path(str(summary.get('input') or folder.name)).name}"
    page = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Input and settings</h2>", _meta_html(summary),
        f"<h2>Ranked candidates ({len(candidates)})</h2>",
        "<p class='note'>Ranked by fit to the input only. Sanity: ✓ plausible, ✗ flagged (shortest "
        "distances, density, coordination).</p>", _table_html(candidates),
        *sections,
        "<h2>3-D view</h2><div id='viewer-info'></div><div id='viewer'></div>",
        "<p class='note'>Viewer: 3Dmol.js (BSD-3-Clause), embedded in this file.</p>",
        "<script>" + viewer_js.replace("</script", "<\\/script") + "</script>",
        f"<script>var NS_STRUCTURES = {_script_json(views)};{_VIEWER_SCRIPT}</script>",
        "</body></html>",
    ]
    target = Path(path) if path is not None else folder / "report.html"
    from nanosolve._io import atomic_write_text

    atomic_write_text(target, "\n".join(page))  # unique temporary name beside it, renamed
    return target


def table_from_html(text: str) -> list[dict]:
    """Candidate rows read back from a report's table: [{key: value}] with the raw summary values."""
    rows = []
    for tr in re.findall(r'<tr data-rank="[^"]*">(.*?)</tr>', text, flags=re.S):
        row = {}
        for key, raw in re.findall(r'<td data-key="([^"]+)" data-value="([^"]*)"', tr):
            row[html.unescape(key)] = json.loads(html.unescape(raw))
        rows.append(row)
    return rows
