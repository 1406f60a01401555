"""Powder indexing of sharp patterns: cubic, tetragonal and hexagonal cells from peak positions.

No maintained pip-installable Python indexer exists (pyobjcryst's ``quick_index`` needs the
ObjCryst++ C++ library, which has no wheel; mlindex needs ~0.5 GB of model downloads), so this is a
small exhaustive search in the spirit of ITO / TREOR, limited to the three systems where two peaks
fix the cell:

* peaks: local maxima of the background-subtracted pattern (scipy ``find_peaks``, prominence
  >= :data:`MIN_PROMINENCE` of the largest), the first :data:`N_PEAKS` by angle, in
  q = 1/d² (Å⁻²);
* cubic: q = (h²+k²+l²)·A, A from each of the first three peaks and each index sum ≤ 20;
  tetragonal q = (h²+k²)·A + l²·C and hexagonal q = (4/3)(h²+hk+k²)·A + l²·C, (A, C) solved from
  every pair of the first six peaks with every pair of small index terms;
* every trial that indexes all peaks is refined (linear least squares of A, C on the assigned
  indices) and scored by de Wolff's M(N) = q_N / (2 ε̄ N_calc) over the first N peaks, where ε̄
  is the mean |q_obs − q_calc| of the nearest calculated line and N_calc the number of distinct
  calculated lines up to q_N; a trial counts only if every peak is indexed within
  :data:`TOL_2THETA` (degrees 2θ, converted to q per peak).

Of the cells whose M(N) reaches :data:`MIN_FOM`, the one of the highest symmetry whose M(N) is at
least :data:`SYMMETRY_PREFERENCE` of the best is returned (cubic before tetragonal / hexagonal, as
TREOR prefers higher symmetry; a large cubic cell can index a hexagonal pattern, but worse); None when no cell qualifies (low symmetry, broad or overlapping peaks, impurities). Zero shift
is not refined: patterns with a zero error over ~0.03° may fail to index.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

N_PEAKS = 12
MIN_PROMINENCE = 0.03
TOL_2THETA = 0.04
MIN_FOM = 10.0
MAX_INDEX = 6
#: a higher-symmetry cell is preferred when its M(N) is at least this fraction of the best one's
SYMMETRY_PREFERENCE = 0.5


@dataclass
class IndexResult:
    """An indexed cell: ``system`` (cubic / tetragonal / hexagonal), ``cell`` (a, b, c, α, β, γ in Å
    and degrees), ``fom`` de Wolff M(N) over ``n_peaks`` peaks, ``volume`` Å³."""

    system: str
    cell: tuple
    fom: float
    n_peaks: int
    volume: float

    def summary(self) -> dict:
        return {"system": self.system, "cell": [round(float(v), 5) for v in self.cell], "fom": round(self.fom, 2),
                "n_peaks": self.n_peaks, "volume": round(self.volume, 3)}


def peak_positions(tth, y, n: int = N_PEAKS, min_prominence: float = MIN_PROMINENCE) -> np.ndarray:
    """2θ (degrees) of the first ``n`` peaks of a pattern, by angle (see module docstring)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d
    from scipy.signal import find_peaks

    tth, y = np.asarray(tth, float), np.asarray(y, float)
    order = np.argsort(tth)
    tth, y = tth[order], y[order]
    w = max(5, len(y) // 40)
    bg = uniform_filter1d(minimum_filter1d(y, w), w)  # a rolling-minimum background, smoothed
    net = y - bg
    top = float(net.max())
    if not top > 0:
        return np.zeros(0)
    idx, _ = find_peaks(net, prominence=min_prominence * top, distance=2)
    out = []
    for i in idx[:n]:  # parabola through the top three points: sub-step position
        if 0 < i < len(y) - 1:
            a, b, c = net[i - 1], net[i], net[i + 1]
            den = a - 2 * b + c
            shift = 0.5 * (a - c) / den if den != 0 else 0.0
            out.append(tth[i] + float(np.clip(shift, -0.5, 0.5)) * (tth[i + 1] - tth[i - 1]) / 2)
        else:
            out.append(tth[i])
    return np.asarray(out)


def _q(tth, wavelength):
    return (2.0 * np.sin(np.radians(np.asarray(tth, float) / 2.0)) / wavelength) ** 2


def _terms(system: str):
    """(m, l²) index terms of the system's q = m·A + l²·C (cubic: m = h²+k²+l², C unused)."""
    r = range(0, MAX_INDEX + 1)
    if system == "cubic":
        ms = sorted({h * h + k * k + l * l for h in r for k in r for l in r} - {0})
        return np.array([[m, 0] for m in ms if m <= 3 * MAX_INDEX**2], float)
    if system == "tetragonal":
        ms = sorted({h * h + k * k for h in r for k in r})
    else:  # hexagonal: (4/3)(h² + hk + k²)
        ms = sorted({h * h + h * k + k * k for h in r for k in range(-MAX_INDEX, MAX_INDEX + 1)
                     if h * h + h * k + k * k >= 0})
        ms = [4.0 * m / 3.0 for m in ms]
    terms = [[m, l * l] for m in ms for l in r if (m, l) != (0, 0)]
    return np.array(terms, float)


def _score(q_obs, q_tol, lines):
    """(all indexed, de Wolff M) of observed q against calculated lines (sorted, distinct)."""
    pos = np.searchsorted(lines, q_obs)
    lo = lines[np.clip(pos - 1, 0, len(lines) - 1)]
    hi = lines[np.clip(pos, 0, len(lines) - 1)]
    err = np.minimum(np.abs(q_obs - lo), np.abs(q_obs - hi))
    if np.any(err > q_tol):
        return False, 0.0
    n_calc = int(np.searchsorted(lines, q_obs[-1] + q_tol[-1], side="right"))
    eps = max(float(err.mean()), 1e-9 * float(q_obs[-1]))
    return True, float(q_obs[-1] / (2.0 * eps * max(n_calc, 1)))


def _lines(terms, a_par, c_par, q_max):
    q = terms[:, 0] * a_par + terms[:, 1] * c_par
    return np.unique(np.round(q[(q > 0) & (q <= q_max)], 10))


def _least_squares(q, terms, a_par, c_par, cubic: bool):
    """(A, C) refined by linear least squares with each peak given the index term of its nearest line."""
    qt = terms[:, 0] * a_par + terms[:, 1] * c_par
    rows = terms[np.argmin(np.abs(q[:, None] - qt[None, :]), axis=1)]
    if cubic:
        m = rows[:, 0]
        return float(np.dot(m, q) / np.dot(m, m)), 0.0
    sol, *_ = np.linalg.lstsq(rows, q, rcond=None)
    return float(sol[0]), float(sol[1])


def index_peaks(tth_peaks, wavelength: float, tol_2theta: float = TOL_2THETA,
                min_fom: float = MIN_FOM) -> IndexResult | None:
    """Index peak positions (2θ, degrees; at least 4) with wavelength (Å); see module docstring."""
    tth = np.sort(np.asarray(tth_peaks, float))
    if len(tth) < 4:
        return None
    q = _q(tth, wavelength)
    dq = np.abs(_q(tth + tol_2theta, wavelength) - q)
    q_max = float(q[-1] + dq[-1])
    best: dict[str, tuple] = {}
    for system in ("cubic", "tetragonal", "hexagonal"):
        terms = _terms(system)
        trials = []
        if system == "cubic":
            for i in range(min(3, len(q))):
                for m in terms[:20, 0]:
                    trials.append((q[i] / m, 0.0))
        else:
            small = terms[(terms[:, 0] <= 8) & (terms[:, 1] <= 9)]
            for i, j in combinations(range(min(6, len(q))), 2):
                for t1 in small:
                    for t2 in small:
                        det = t1[0] * t2[1] - t1[1] * t2[0]
                        if abs(det) < 1e-9:
                            continue
                        a_par = (q[i] * t2[1] - q[j] * t1[1]) / det
                        c_par = (t1[0] * q[j] - t2[0] * q[i]) / det
                        if a_par > 0 and c_par > 0:
                            trials.append((a_par, c_par))
        for a_par, c_par in trials:
            ok, fom = _score(q, dq, _lines(terms, a_par, c_par, q_max))
            if ok:  # least squares of (A, C) on the indices just assigned, then scored again
                a_par, c_par = _least_squares(q, terms, a_par, c_par, system == "cubic")
                ok, fom = _score(q, dq, _lines(terms, a_par, c_par, q_max)) if a_par > 0 and c_par >= 0 else (False, 0)
            if ok and fom >= min_fom:
                a = 1.0 / np.sqrt(a_par)
                c = a if system == "cubic" else 1.0 / np.sqrt(c_par)
                vol = a * a * c * (np.sqrt(3) / 2 if system == "hexagonal" else 1.0)
                if system != "cubic" and abs(c - a) < 1e-3 * a:
                    continue  # a tetragonal cell with c = a is the cubic one
                cur = best.get(system)
                # the largest figure of merit; among near-equal ones the smallest cell
                if cur is None or fom > cur[0] * 1.05 or (fom > cur[0] / 1.05 and vol < cur[1] * 0.99):
                    best[system] = (fom, vol, a, c)
    if not best:
        return None
    top = max(v[0] for v in best.values())
    for system in ("cubic", "tetragonal", "hexagonal"):  # the highest symmetry that indexes about as well
        if system in best and best[system][0] >= SYMMETRY_PREFERENCE * top:
            fom, vol, a, c = best[system]
            gamma = 120.0 if system == "hexagonal" else 90.0
            return IndexResult(system, (a, a, c, 90.0, 90.0, gamma), fom, len(q), vol)
    return None


def index_pattern(pattern, n: int = N_PEAKS) -> IndexResult | None:
    """Index a measured 2θ Pattern with a wavelength (None for other patterns or when no cell qualifies)."""
    if pattern.wavelength is None or getattr(pattern, "x_unit", "tth") not in ("tth", "2theta"):
        return None
    wl = float(np.atleast_1d(pattern.wavelength)[0])
    return index_peaks(peak_positions(pattern.x, pattern.y, n), wl)


__all__ = ["IndexResult", "peak_positions", "index_peaks", "index_pattern", "N_PEAKS", "TOL_2THETA", "MIN_FOM"]
