"""IUCr powder CIF (pdCIF) profiles, e.g. the ``*.rtv.combined.cif`` files of IUCr journals.

CIF syntax is tokenised by pymatgen's ``CifFile``. Rules, applied to every data block:

* a block is a profile if it has a loop of observed or calculated intensities.
* observed y, first present of: ``_pd_meas_counts_total``, ``_pd_meas_intensity_total``,
  ``_pd_proc_intensity_total``, ``_pd_proc_intensity_net`` (raw before processed: fewest
  corrections, and counts give Poisson sigmas). Blocks with only ``_pd_calc_intensity_*`` are
  calculated profiles (``metadata['observed'] = False``).
* only what was measured reaches the :class:`Pattern` (x, observed y, sigma, wavelength, radiation):
  the Rietveld fit a file carries (calculated profile ``_pd_calc_intensity_total``/``_net``,
  fitted background ``_pd_proc_intensity_bkg_calc``/``_bkg_fix``, ``_pd_proc_ls_weight``, peak and
  reflection lists ``_pd_peak_*``/``_refln_*``, R factors, the phase blocks holding the refined
  structure) is the answer of a previous solution, so a solve must never see it. It is read only
  by the explicit :func:`read_pdcif_fit` (arrays aligned with the Pattern's x), e.g. to plot or
  compare with the published fit.
* x: a loop column ``_pd_proc_2theta_corrected`` (zero-shift corrected) > ``_pd_meas_2theta_scan``
  > ``_pd_proc_recip_len_Q`` (Q) > ``_pd_proc_d_spacing`` (Q = 2π/d); else an evenly spaced
  grid from ``_pd_proc_2theta_range_min/max/inc`` > ``_pd_meas_2theta_range_*``, used only
  if (max - min)/inc + 1 matches the number of rows.
* rows whose x or observed y is ``.``/``?`` are dropped (counted in ``metadata['dropped_points']``).
* sigma: su in brackets (``1234(35)``) when every point has one, else sqrt(counts) for
  ``_pd_meas_counts_total``, else None (``_pd_proc_ls_weight`` scales vary too much to trust).
* wavelength (Å): ``_pd_proc_wavelength`` (what the refinement used) > ``_diffrn_radiation_wavelength``
  > ``_diffrn_radiation_type`` ('Cu K\\a~1~' -> CuKa1); a loop of wavelengths gives the one of
  largest ``_diffrn_radiation_wavelength_wt``, else the first (Kα1), all kept in
  ``metadata['wavelengths']``. If the profile block has none, the value shared by the file's
  other blocks (pdCIF spreads one experiment over several blocks); else the ``wavelength`` argument.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.scattering.readers.validate import check_x_order
from nanosolve.scattering.units import wavelength as _named_wavelength
from nanosolve.structures.io.cif import cif_number, parse_cif_blocks, read_text

OBS_TAGS = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total", "_pd_proc_intensity_net")
CALC_TAGS = ("_pd_calc_intensity_total", "_pd_calc_intensity_net")
BKG_TAGS = ("_pd_proc_intensity_bkg_calc", "_pd_proc_intensity_bkg_fix", "_pd_meas_counts_background")
X_TAGS = (("_pd_proc_2theta_corrected", "tth"), ("_pd_meas_2theta_scan", "tth"),
          ("_pd_proc_recip_len_q", "q"), ("_pd_proc_d_spacing", "d"))
RANGE_PREFIXES = ("_pd_proc_2theta_range", "_pd_meas_2theta_range")
FIT_SCALARS = {"_pd_proc_ls_prof_r_factor": "Rp", "_pd_proc_ls_prof_wr_factor": "Rwp",
               "_pd_proc_ls_prof_wr_expected": "Rexp", "_refine_ls_goodness_of_fit_all": "GoF"}
_TUBE_RE = re.compile(r"\b([A-Z][a-z]?)\s*K\s*(?:\\a|α|alpha|a)\s*(?:~?\s*([12])\s*~?)?", re.IGNORECASE)


class _Block:
    """Case-insensitive view of a pymatgen CifBlock (CIF tags are case-insensitive)."""

    def __init__(self, name, block):
        self.name = name
        self.data = {k.lower(): v for k, v in block.data.items()}

    def values(self, tag):
        v = self.data.get(tag)
        if v is None:
            return None
        return list(v) if isinstance(v, list) else [v]

    def scalar(self, tag):
        v = self.values(tag)
        return None if not v else v[0]

    def is_loop(self, tag):
        return isinstance(self.data.get(tag), list)


def _numbers(values) -> tuple[np.ndarray, np.ndarray]:
    """Values and su's (NaN where absent) of a list of CIF numbers."""
    out = np.full(len(values), np.nan)
    su = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        x, s = cif_number(v)
        out[i] = x
        if s is not None:
            su[i] = s
    return out, su


def _pick(block: _Block, tags, n=None):
    for t in tags:
        v = block.values(t)
        if v is not None and (n is None or len(v) == n):
            return t, v
    return None, None


def block_wavelength(block: _Block) -> tuple[float | None, str | None, list[float]]:
    """(primary wavelength Å, tag it came from, all wavelengths listed) of one block."""
    for tag in ("_pd_proc_wavelength", "_diffrn_radiation_wavelength"):
        vals = block.values(tag)
        if not vals:
            continue
        wls = [cif_number(v)[0] for v in vals]
        good = [w for w in wls if np.isfinite(w) and w > 0]
        if not good:
            continue
        wts = block.values(tag + "_wt") or block.values("_diffrn_radiation_wavelength_wt")
        if wts and len(wts) == len(wls):
            w = np.array([cif_number(x)[0] for x in wts])
            ok = np.array([np.isfinite(x) and x > 0 for x in wls]) & np.isfinite(w)
            if ok.any():
                return float(np.asarray(wls)[ok][np.argmax(w[ok])]), tag, good
        return good[0], tag, good
    for tag in ("_diffrn_radiation_type", "_diffrn_source_target"):
        for v in block.values(tag) or []:
            m = _TUBE_RE.search(str(v))
            if m:
                try:
                    return _named_wavelength(f"{m.group(1).capitalize()}Ka{m.group(2) or ''}"), tag, []
                except InputError:
                    continue
    return None, None, []


def _radiation(block: _Block) -> str | None:
    text = " ".join(str(block.scalar(t) or "") for t in ("_diffrn_radiation_probe", "_diffrn_radiation_type",
                                                         "_diffrn_source", "_diffrn_source_type")).lower()
    if "neutron" in text:
        return "neutron"
    if any(s in text for s in ("x-ray", "xray", "synchrotron", "k\\a", "ka")):
        return "xray"
    return None


def _x_values(block: _Block, n: int, path) -> tuple[np.ndarray, str, str]:
    """(x [n], unit 'tth'|'q', where it came from)."""
    for tag, unit in X_TAGS:
        v = block.values(tag)
        if v is not None and block.is_loop(tag):
            if len(v) != n:
                raise InputError(f"block {block.name}: {tag} has {len(v)} values but the intensities {n}", path)
            x, _ = _numbers(v)
            if unit == "d":
                with np.errstate(divide="ignore", invalid="ignore"):
                    x = np.where(x > 0, 2 * np.pi / x, np.nan)
                unit = "q"
            return x, unit, tag
    tried = []
    for pre in RANGE_PREFIXES:
        lo, hi, inc = (cif_number(block.scalar(f"{pre}_{k}") or "?")[0] for k in ("min", "max", "inc"))
        if not (np.isfinite(lo) and np.isfinite(inc) and inc > 0):
            continue
        if not np.isfinite(hi):
            return lo + inc * np.arange(n), "tth", f"{pre}_min/inc"
        expected = (hi - lo) / inc + 1
        tried.append(f"{pre}_min/max/inc give {expected:.1f} points")
        if abs(expected - n) < 1.0:
            return np.linspace(lo, hi, n), "tth", f"{pre}_min/max/inc"
    detail = "; ".join(tried) if tried else "no 2θ/Q/d column and no _pd_*_2theta_range_* items"
    raise InputError(f"block {block.name}: cannot place the {n} intensities on x ({detail}, loop has {n})", path)


def _table(block: _Block, prefix_tags) -> dict | None:
    """Loop columns whose tags start with one of ``prefix_tags`` -> {short name: array or list}."""
    out = {}
    for tag, v in block.data.items():
        if not isinstance(v, list) or not tag.startswith(prefix_tags):
            continue
        key = re.sub(r"\W", "", tag.removeprefix("_pd_peak_").removeprefix("_refln_").removeprefix("_pd_refln_"))
        nums, _ = _numbers(v)
        out[key] = nums if np.isfinite(nums).mean() > 0.5 else [str(x) for x in v]
    return out or None


def _profile(block: _Block, path, file_wl, kind) -> tuple[Pattern, dict]:
    """(Pattern of the observed profile - or of the calculated one for a calculated-only block -,
    the block's Rietveld-fit items aligned with the Pattern's x). Only the Pattern may reach a solve."""
    obs_tag, obs = _pick(block, OBS_TAGS)
    calc_tag, calc = _pick(block, CALC_TAGS)
    n = len(obs if obs is not None else calc)
    if calc is not None and len(calc) != n:
        calc_tag, calc = None, None
    x, unit, x_src = _x_values(block, n, path)
    y_raw = obs if obs is not None else calc
    y, su = _numbers(y_raw)
    # '?' and '.' are CIF's "unknown" / "not applicable" and are dropped; anything else that is not
    # a number (nan, inf, junk) is a broken file, not a point to skip silently.
    junk = [i for i in np.nonzero(~np.isfinite(y))[0] if str(y_raw[i]).strip() not in ("?", ".")]
    if junk:
        raise InputError(f"block {block.name}: intensity {y_raw[junk[0]]!r} at point {junk[0] + 1} is not a "
                         f"number ({len(junk)} such points)", path)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        raise InputError(f"block {block.name}: no numeric intensities", path)
    md: dict = {"source": path, "block": block.name, "observed": obs is not None,
                "y_tag": obs_tag or calc_tag, "x_source": x_src, "dropped_points": int((~keep).sum())}
    fit: dict = {"block": block.name, "observed": obs is not None}
    sigma = None
    if np.all(np.isfinite(su[keep])):
        sigma = su[keep]
    elif obs_tag == "_pd_meas_counts_total":
        sigma = np.sqrt(np.maximum(y[keep], 1.0))
    if calc is not None and obs is not None:
        fit["calculated"], fit["calculated_tag"] = _numbers(calc)[0][keep], calc_tag
    bkg_tag, bkg = _pick(block, BKG_TAGS, n)
    if bkg is not None:
        fit["background"], fit["background_tag"] = _numbers(bkg)[0][keep], bkg_tag
    w = block.values("_pd_proc_ls_weight")
    if w is not None and len(w) == n:
        fit["ls_weight"] = _numbers(w)[0][keep]
    wl, wl_tag, wls = block_wavelength(block)
    if wl is None and file_wl is not None:
        wl, wl_tag, wls = file_wl[0], f"{file_wl[1]} (block {file_wl[2]})", [file_wl[0]]
    md["wavelength_source"] = wl_tag
    if wls:
        md["wavelengths"] = wls
    for tag, key in FIT_SCALARS.items():
        v = cif_number(block.scalar(tag) or "?")[0]
        if np.isfinite(v):
            fit[key] = v
    peaks = _table(block, ("_pd_peak_",))
    if peaks:
        fit["peaks"] = peaks
    refl = _table(block, ("_refln_", "_pd_refln_"))
    if refl:
        fit["reflections"] = refl
    phases = block.values("_pd_phase_block_id")
    if phases:
        fit["phase_block_ids"] = phases  # resolved to data block names by the caller
        mass = block.values("_pd_phase_mass_%")
        if mass and len(mass) == len(phases):
            fit["phase_mass_percent"] = [cif_number(m)[0] for m in mass]
    x, y = x[keep], y[keep]
    check_x_order(x, path)  # up and down refused; increasing or decreasing is sorted below
    order = np.argsort(x, kind="stable")  # Pattern sorts x; keep the fit's arrays aligned
    for k in ("calculated", "background", "ls_weight"):
        if k in fit:
            fit[k] = fit[k][order]
    radiation = _radiation(block)
    if kind is None:
        kind = "nd" if radiation == "neutron" else "xrd"
    pattern = Pattern(x[order], y[order], kind=kind, x_unit=unit, wavelength=wl, radiation=radiation,
                      sigma=None if sigma is None else sigma[order], metadata=md)
    fit["x"] = pattern.x
    return pattern, fit


def _is_profile(block: _Block) -> bool:
    return any(block.is_loop(t) for t in OBS_TAGS + CALC_TAGS)


def _read(path_or_text, wavelength, kind) -> list[tuple[Pattern, dict]]:
    """(Pattern, fit items) of every profile block, in file order."""
    text, path = read_text(path_or_text)
    raw_blocks, _ = parse_cif_blocks(text, path, sanitize=False)
    blocks = [_Block(name, b) for name, b in raw_blocks.items()]
    profiles = [b for b in blocks if _is_profile(b)]
    if not profiles:
        raise InputError("no powder profile (no _pd_meas/_pd_proc/_pd_calc intensity loop) in any data block", path)
    # Wavelength shared by the non-profile blocks of the file (same experiment, other block).
    others = {}
    for b in blocks:
        if not _is_profile(b):
            wl, tag, _ = block_wavelength(b)
            if wl is not None:
                others.setdefault(round(wl, 6), (wl, tag, b.name))
    file_wl = next(iter(others.values())) if len(others) == 1 else None
    id_to_block = {str(b.scalar("_pd_block_id")).strip(): b.name for b in blocks if b.scalar("_pd_block_id")}
    out = []
    for b in profiles:
        p, fit = _profile(b, path, file_wl, kind)
        if "phase_block_ids" in fit:
            fit["phase_blocks"] = [id_to_block.get(str(i).strip(), str(i)) for i in fit["phase_block_ids"]]
        if p.wavelength is None and wavelength is not None:
            p.wavelength = _named_wavelength(wavelength)
            p.metadata["wavelength_source"] = "argument"
        elif wavelength is not None and abs(_named_wavelength(wavelength) - p.wavelength) > 1e-3 * p.wavelength:
            warnings.warn(f"{path}: block {b.name} states wavelength {p.wavelength:g} Å; the argument "
                          f"{_named_wavelength(wavelength):g} Å is ignored", stacklevel=3)
        out.append((p, fit))
    return out


def read_pdcif_patterns(path_or_text, wavelength=None, kind: str | None = None) -> list[Pattern]:
    """Every measured powder profile in a pdCIF, in file order (see the module docstring for the rules).

    Only observed columns reach the returned Patterns: no calculated profile, fitted background,
    reflection list or refined phase (those are :func:`read_pdcif_fit`'s).

    Args:
        path_or_text: file path or CIF text.
        wavelength: Å or tube name, used only where the file gives none.
        kind: override the pattern kind (default ``'xrd'``, ``'nd'`` for neutrons).

    Raises:
        InputError if the file is not a CIF or holds no observed profile.
    """
    out = [p for p, _ in _read(path_or_text, wavelength, kind) if p.metadata["observed"]]
    if not out:
        raise InputError("only calculated profiles, no measured one (read_pdcif_fit reads them)",
                         read_text(path_or_text)[1])
    return out


def read_pdcif_fit(path_or_text, wavelength=None, kind: str | None = None) -> list[dict]:
    """The Rietveld fit a pdCIF carries, one dict per profile block in file order - never an input
    to a solve (it holds the previous solution), e.g. for plotting or comparing with the published fit.

    Each dict: ``block``, ``observed`` (False for a block of calculated intensities only),
    ``pattern`` (the block's :class:`Pattern`: observed, or the calculated curve of a calculated-only
    block), ``x`` (= ``pattern.x``) and where the file has them ``calculated``/``calculated_tag``,
    ``background``/``background_tag``, ``ls_weight`` (arrays aligned with ``x``), ``Rp``, ``Rwp``,
    ``Rexp``, ``GoF``, ``peaks`` and ``reflections`` ({column: values}), ``phase_block_ids``,
    ``phase_blocks`` (data block names of the refined phases), ``phase_mass_percent``.
    """
    return [{**fit, "pattern": p} for p, fit in _read(path_or_text, wavelength, kind)]
