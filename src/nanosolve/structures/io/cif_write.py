"""Symmetrised CIFs of refined structures: space group, operations, Wyckoff sites, B_iso, R factors.

pymatgen's ``CifWriter(symprec=...)`` already writes the spglib-standardised conventional cell, the
space group's operations (``_symmetry_equiv_pos_as_xyz``) and one row per symmetry-independent site with
its multiplicity. We extend its CIF block rather than write our own: each site row gets its Wyckoff
letter (``_atom_site_Wyckoff_symbol``), ``_atom_site_adp_type Biso`` and ``_atom_site_B_iso_or_equiv``;
the block gets the modern space-group tags (``_space_group_IT_number``, ``_space_group_name_H-M_alt``) and, for a refined structure, the agreement factors of the
refinement (``_refine_ls_wR_factor_all`` = ``_pd_proc_ls_prof_wR_factor`` = R_wp,
``_pd_proc_ls_prof_R_factor`` = R_p, ``_pd_proc_ls_prof_wR_expected`` = R_exp,
``_refine_ls_goodness_of_fit_all`` = S = R_wp / R_exp), the number of refined parameters, the
wavelength and the March–Dollase parameter when refined. The file reads back in pymatgen
(``CifParser``) and ASE (``ase.io.read``) to the same structure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_write_text
from nanosolve.errors import InputError
from nanosolve.structures.coerce import as_crystal

__all__ = ["symmetrized_cif", "write_refined_cif", "with_esd"]


def _fmt(v: float, digits: int = 5) -> str:
    return f"{float(v):.{digits}f}"


def with_esd(value: float, esd: float | None) -> str:
    """Crystallographic value(esd): the esd to two significant digits when its first is 1, else one
    (0.30486(31) -> '0.3049(3)', 5.43102 ± 0.000026 -> '5.43102(3)'); no esd: the value to 6 places."""
    if esd is None or not np.isfinite(esd) or esd <= 0:
        return f"{float(value):.6f}"
    digits = max(0, -int(np.floor(np.log10(esd))))
    if esd * 10 ** digits < 2:
        digits += 1
    return f"{float(value):.{digits}f}({int(round(esd * 10 ** digits))})"


def symmetrized_cif(crystal, symprec: float = 0.01, b_iso=None, refinement: dict | None = None,
                    title: str | None = None, angle_tolerance: float = 5.0) -> str:
    """CIF text of ``crystal`` (Crystal / pymatgen Structure / ase.Atoms) in the space group spglib
    finds within ``symprec`` (Å), conventional standard cell.

    Args:
        b_iso: None, a float, or {element: B (Å²)}; written per site (``Biso``).
        refinement: None or a dict with any of rwp, rp, rexp, gof_s, n_params, n_points, wavelength,
            zero_deg, preferred_orientation ({"hkl": [...], "march_dollase_r": r})
            (:meth:`nanosolve.solve.rietveld.RietveldResult.cif_info`).
        title: data block name (default: the reduced formula).
    """
    from pymatgen.io.cif import CifWriter
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    cr = as_crystal(crystal)
    struct = cr.to_pymatgen()
    try:
        writer = CifWriter(struct, symprec=symprec, angle_tolerance=angle_tolerance)
        sga = SpacegroupAnalyzer(SpacegroupAnalyzer(struct, symprec, angle_tolerance).get_refined_structure(),
                                 symprec=min(symprec, 1e-3), angle_tolerance=angle_tolerance)
        sym = sga.get_symmetrized_structure()
    except Exception as exc:  # spglib finds no cell
        raise InputError(f"no space group found for {cr.name or cr.formula} ({type(exc).__name__}: {exc})") from None
    cif_file = writer.cif_file
    key = next(iter(cif_file.data))
    block = cif_file.data[key]
    d = block.data

    # Wyckoff letter of each written site: the equivalent-site group holding an atom at its position.
    groups = [(np.array([s.frac_coords for s in sites]), wy, sites[0].species_string)
              for sites, wy in zip(sym.equivalent_sites, sym.wyckoff_symbols)]
    lattice = sym.lattice
    wyck, bval = [], []
    if isinstance(b_iso, dict):
        btab = {str(k): float(v) for k, v in b_iso.items()}
    for sp, xs, ys, zs in zip(d["_atom_site_type_symbol"], d["_atom_site_fract_x"], d["_atom_site_fract_y"],
                              d["_atom_site_fract_z"]):
        pos = np.array([float(xs), float(ys), float(zs)])
        best, letter = np.inf, "?"
        for coords, wy, spec in groups:
            diff = coords - pos
            diff -= np.rint(diff)
            dist = np.linalg.norm(diff @ lattice.matrix, axis=1).min()
            if dist < best and (spec == sp or spec.startswith(sp)):
                best, letter = dist, wy
        if best > 1e-2:
            raise InputError(f"CIF writer: site {sp} at {pos} matches no Wyckoff orbit (nearest {best:.3g} Å)")
        wyck.append(letter.lstrip("0123456789"))
        if b_iso is None:
            bval.append(None)
        elif isinstance(b_iso, dict):
            el = "".join(c for c in sp if c.isalpha())
            bval.append(btab.get(el, btab.get(sp)))
        else:
            bval.append(float(b_iso))
    b_esd = {str(k): v for k, v in ((refinement or {}).get("b_iso_esd") or {}).items()}
    bstr = [None if b is None else with_esd(b, b_esd.get("".join(c for c in sp if c.isalpha()))) if b_esd
            else _fmt(b, 4) for b, sp in zip(bval, d["_atom_site_type_symbol"])]
    loop = next(lp for lp in block.loops if "_atom_site_label" in lp)
    d["_atom_site_Wyckoff_symbol"] = wyck
    loop.insert(loop.index("_atom_site_symmetry_multiplicity") + 1, "_atom_site_Wyckoff_symbol")
    if b_iso is not None:
        if any(b is None for b in bval):
            raise InputError(f"b_iso gives no value for some element of {cr.formula}: {b_iso}")
        d["_atom_site_adp_type"] = ["Biso"] * len(bval)
        d["_atom_site_B_iso_or_equiv"] = bstr
        loop += ["_atom_site_adp_type", "_atom_site_B_iso_or_equiv"]

    extra = {"_space_group_name_H-M_alt": f"'{sga.get_space_group_symbol()}'",
             "_space_group_IT_number": str(sga.get_space_group_number())}
    # (no _space_group_crystal_system: ASE then warns that the setting may be misread)
    ref = refinement or {}
    cell_esd = ref.get("cell_esd")
    if cell_esd is not None:  # the refined cell is the written one (symprec tight): lengths / angles with esds
        names = ("_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha", "_cell_angle_beta",
                 "_cell_angle_gamma")
        params = sym.lattice.parameters
        for tag, val, e in zip(names, params, cell_esd):
            extra[tag] = with_esd(val, e) if e else _fmt(val, 6)
    for tag, k in (("_refine_ls_wR_factor_all", "rwp"), ("_pd_proc_ls_prof_wR_factor", "rwp"),
                   ("_pd_proc_ls_prof_R_factor", "rp"), ("_pd_proc_ls_prof_wR_expected", "rexp"),
                   ("_refine_ls_goodness_of_fit_all", "gof_s")):
        if ref.get(k) is not None and np.isfinite(ref[k]):
            extra[tag] = _fmt(ref[k])
    if ref.get("n_params") is not None:
        extra["_refine_ls_number_parameters"] = str(int(ref["n_params"]))
    if ref.get("n_points") is not None:
        extra["_pd_proc_number_of_points"] = str(int(ref["n_points"]))
    if ref.get("wavelength") is not None:
        extra["_diffrn_radiation_wavelength"] = _fmt(ref["wavelength"], 5)
    if ref:
        extra["_refine_ls_structure_factor_coef"] = "Inet"
        extra["_computing_structure_refinement"] = "'nanosolve Rietveld (nanosolve.solve.rietveld)'"
    po = ref.get("preferred_orientation")
    if po:
        hkl = " ".join(f"{h:g}" for h in po["hkl"])
        extra["_pd_proc_ls_pref_orient_corr"] = f"'March-Dollase r = {po['march_dollase_r']:.4f} along ({hkl})'"
    if ref.get("zero_deg") is not None:
        extra["_pd_calib_2theta_offset"] = _fmt(ref["zero_deg"], 5)  # 2θ_obs = 2θ_calc + offset
    d.update(extra)
    text = str(cif_file)
    if title:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in title)[:60]
        text = text.replace(f"data_{key}", f"data_{safe}", 1)
    return text


def write_refined_cif(crystal, path: str | os.PathLike, symprec: float = 0.01, b_iso=None,
                      refinement: dict | None = None, title: str | None = None) -> Path:
    """Write :func:`symmetrized_cif` to ``path`` (atomically: nothing half-written on an error)."""
    text = symmetrized_cif(crystal, symprec=symprec, b_iso=b_iso, refinement=refinement, title=title)
    path = Path(path)
    atomic_write_text(path, text)  # unique temporary name beside it, renamed
    return path
