"""The pattern: one measured or simulated 1-D scattering signal with its units."""

from __future__ import annotations

from dataclasses import KW_ONLY, InitVar, dataclass, field

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.units import q_from_two_theta, two_theta_from_q
from nanosolve.scattering.units import wavelength as _wavelength

KINDS = ("xrd", "nd", "saxs", "sans", "iq", "sq", "fq", "gr")
X_UNITS = ("q", "tth", "r")  # Q in Å⁻¹, 2θ in degrees, r in Å
X_LABELS = {"q": "Q (Å⁻¹)", "tth": "2θ (°)", "r": "r (Å)"}
Y_LABELS = {"xrd": "I (a.u.)", "nd": "I (a.u.)", "saxs": "I(Q) (a.u.)", "sans": "I(Q) (a.u.)",
            "iq": "I(Q) (a.u.)", "sq": "S(Q)", "fq": "F(Q) (Å⁻¹)", "gr": "G(r) (Å⁻²)"}


def x_order_problem(x) -> str | None:
    """What is wrong with the order of ``x`` for a pattern, or None when it runs one way (up or down,
    repeats aside): ``"x is not monotonic: it turns back at point N (...)"`` (N counted from 1)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return None
    d = np.diff(x)
    if np.all(d >= 0) or np.all(d <= 0):
        return None
    first = int(np.argmax(d < 0)) if d[0] > 0 else int(np.argmax(d > 0))
    if d[0] == 0:  # a leading repeat: the first step that goes anywhere sets the direction
        step = int(np.argmax(d != 0))
        first = step + int(np.argmax((d[step:] < 0) if d[step] > 0 else (d[step:] > 0)))
    return (f"x is not monotonic: it turns back at point {first + 2} (x = {x[first + 1]:.6g} after "
            f"{x[first]:.6g})")


@dataclass
class Pattern:
    """A 1-D scattering signal.

    ``x`` must run one way: increasing, or decreasing throughout (a scan recorded downwards; then
    the points are reversed, each y, sigma and x-aligned metadata array with its x). An ``x`` that
    turns back (two scans pasted together, a column mix-up) is refused with :class:`InputError`
    (a ``ValueError``) unless ``sort=True`` is given, which sorts the points by x; repeated x values
    are refused either way.

    Attributes:
        x: [M] abscissa in ``x_unit`` (strictly increasing after construction).
        y: [M] intensity (or S, F, G).
        kind: one of ``xrd nd saxs sans iq sq fq gr``.
        x_unit: ``'q'`` (Å⁻¹), ``'tth'`` (2θ, degrees) or ``'r'`` (Å).
        wavelength: Å, or None (required to convert between 2θ and Q).
        radiation: ``'xray'`` or ``'neutron'`` (None if unknown).
        sigma: [M] standard uncertainties of y, or None.
        metadata: source file, header lines, simulation parameters...

    Args:
        sort: keyword only; sort points given in any order by x instead of refusing them.
    """

    x: np.ndarray
    y: np.ndarray
    kind: str = "xrd"
    x_unit: str = "q"
    wavelength: float | None = None
    radiation: str | None = None
    sigma: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    _: KW_ONLY
    sort: InitVar[bool] = False

    def __post_init__(self, sort: bool = False):
        src = self.metadata.get("source")
        self.x = np.asarray(self.x, dtype=np.float64).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        if self.kind not in KINDS:
            raise InputError(f"unknown pattern kind {self.kind!r}; expected one of {', '.join(KINDS)}", src)
        if self.x_unit not in X_UNITS:
            raise InputError(f"unknown x unit {self.x_unit!r}; expected one of {', '.join(X_UNITS)}", src)
        if self.x.size == 0:
            raise InputError("pattern has no points", src)
        if self.x.shape != self.y.shape:
            raise InputError(f"x has {self.x.size} points but y has {self.y.size}", src)
        bad = ~(np.isfinite(self.x) & np.isfinite(self.y))
        if bad.any():
            raise InputError(f"{int(bad.sum())} non-finite (NaN/inf) values, first at point {int(np.argmax(bad)) + 1}", src)
        if self.sigma is not None:
            self.sigma = np.asarray(self.sigma, dtype=np.float64).reshape(-1)
            if self.sigma.shape != self.x.shape:
                raise InputError("sigma and x differ in length", src)
        self.wavelength = _wavelength(self.wavelength)
        if self.radiation is None:
            self.radiation = "neutron" if self.kind in ("nd", "sans") else ("xray" if self.kind in ("xrd", "saxs") else None)
        self._order_points(bool(sort), src)

    def _order_points(self, sort: bool, src) -> None:
        """Make x strictly increasing (see the class docstring) or raise InputError."""
        n = self.x.size
        if n < 2:
            return
        d = np.diff(self.x)
        if not np.all(d > 0):
            problem = x_order_problem(self.x)
            if problem is None:
                order = np.arange(n)[::-1] if np.all(d <= 0) and np.any(d < 0) else None
            elif sort:
                order = np.argsort(self.x, kind="stable")
            else:
                raise InputError(f"{problem}; sort the points by x (Pattern(..., sort=True)) or split them into "
                                 "separate scans", src)
            if order is not None:
                self.x, self.y = self.x[order], self.y[order]
                if self.sigma is not None:
                    self.sigma = self.sigma[order]
                self.metadata = {k: (v[order] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n
                                     else v) for k, v in self.metadata.items()}
            same = np.diff(self.x) <= 0
            if same.any():
                i = int(np.argmax(same))
                raise InputError(f"x values repeat (x = {self.x[i]:.6g} more than once); a pattern needs strictly "
                                 "increasing x", src)

    def __len__(self) -> int:
        return self.x.size

    def _replace(self, x, y, x_unit=None, sigma=None, mask=None, **meta) -> Pattern:
        """Copy with new x/y. Metadata arrays aligned with x (calculated profile, background...)
        follow a ``mask``; any other change of points drops them rather than leave them misaligned."""
        md = {}
        for k, v in self.metadata.items():
            if isinstance(v, np.ndarray) and v.shape == self.x.shape:
                if mask is not None:
                    md[k] = v[mask]
                elif np.shape(x) == self.x.shape:
                    md[k] = v
                continue
            md[k] = v
        md.update(meta)
        return Pattern(x, y, self.kind, x_unit or self.x_unit, self.wavelength, self.radiation, sigma, md)

    # ----- units -----------------------------------------------------------------------------
    def to_q(self) -> Pattern:
        """Same pattern on Q (Å⁻¹); needs a wavelength if it is in 2θ."""
        if self.x_unit == "q":
            return self
        if self.x_unit != "tth":
            raise InputError(f"a pattern in {self.x_unit} cannot be converted to Q", self.metadata.get("source"))
        if self.wavelength is None:
            raise InputError("pattern is in 2θ but has no wavelength; give one (e.g. --wavelength 1.5406)",
                             self.metadata.get("source"))
        return self._replace(q_from_two_theta(self.x, self.wavelength), self.y, "q", self.sigma)

    def to_two_theta(self, wavelength: float | str | None = None) -> Pattern:
        """Same pattern on 2θ (degrees) at ``wavelength`` (Å; default: the pattern's own).

        Points beyond 2θ = 180° at that wavelength are dropped.
        """
        wl = _wavelength(wavelength) or self.wavelength
        if wl is None:
            raise InputError("a wavelength is needed to convert Q to 2θ", self.metadata.get("source"))
        p = self.to_q()
        tth = two_theta_from_q(p.x, wl)
        ok = np.isfinite(tth)
        out = p._replace(tth[ok], p.y[ok], "tth", None if p.sigma is None else p.sigma[ok], mask=ok)
        out.wavelength = wl
        return out

    # ----- grids -----------------------------------------------------------------------------
    def resample(self, grid, fill: float | None = 0.0) -> Pattern:
        """Linear interpolation onto ``grid`` (same unit). Outside the data: ``fill`` (None raises)."""
        grid = np.asarray(grid, dtype=float)
        if fill is None and (grid.min() < self.x.min() - 1e-9 or grid.max() > self.x.max() + 1e-9):
            raise InputError(
                f"data cover {self.x.min():.4g}-{self.x.max():.4g} {self.x_unit} but "
                f"{grid.min():.4g}-{grid.max():.4g} is needed", self.metadata.get("source"))
        f = 0.0 if fill is None else fill
        y = np.interp(grid, self.x, self.y, left=f, right=f)
        s = None if self.sigma is None else np.interp(grid, self.x, self.sigma, left=0.0, right=0.0)
        return self._replace(grid, y, sigma=s)

    def crop(self, xmin: float | None = None, xmax: float | None = None) -> Pattern:
        m = np.ones(self.x.size, bool)
        if xmin is not None:
            m &= self.x >= xmin
        if xmax is not None:
            m &= self.x <= xmax
        return self._replace(self.x[m], self.y[m], sigma=None if self.sigma is None else self.sigma[m], mask=m)

    def normalized(self, mode: str = "max") -> Pattern:
        """Scaled copy: ``'max'`` (max |y| = 1), ``'area'`` (∫|y| dx = 1) or ``'minmax'`` (y in [0, 1])."""
        y = self.y
        if mode == "max":
            s = np.abs(y).max()
            out = y / s if s > 0 else y.copy()
        elif mode == "area":
            s = np.trapezoid(np.abs(y), self.x) if self.x.size > 1 else 0.0
            out = y / s if s > 0 else y.copy()
        elif mode == "minmax":
            lo, hi = y.min(), y.max()
            out = (y - lo) / (hi - lo) if hi > lo else np.zeros_like(y)
            s = hi - lo if hi > lo else 1.0
        else:
            raise InputError(f"unknown normalisation {mode!r}")
        sig = None if self.sigma is None or not s else self.sigma / s
        return self._replace(self.x, out, sigma=sig)

    def __repr__(self) -> str:
        wl = f", λ={self.wavelength:g} Å" if self.wavelength else ""
        return (f"Pattern({self.kind}, {self.x.size} points, {self.x_unit} "
                f"{self.x.min():.4g}-{self.x.max():.4g}{wl})")
