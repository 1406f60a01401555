"""One particle, many signals (:class:`PairHistogram`) and the simulator with its grids and
resource guard (:class:`DebyeSimulator`, :func:`simulate_many`)."""


import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from nanosolve.errors import InputError
from nanosolve.scattering.debye.intensity import _intensity, _structure_functions, fq_to_gr
from nanosolve.scattering.debye.pairs import (
    _STEP_FACTOR,
    DEBYE_KINDS,
    _as_atoms,
    _Atoms,
    _element_pairs,
    _n_bins,
    _prefer_direct,
    _serial,
    coarsen_moments,
    grid_step,
    moments_to_nodes,
    node_sinc_sums,
    pair_sums_direct,
    spread_moments,
)
from nanosolve.scattering.form_factors import normalize_radiation, scattering_factors
from nanosolve.scattering.memory import debye_grid_nodes, guard_debye, guard_grid
from nanosolve.scattering.pattern import Pattern


# ------------------------------------------------------------------------------------------------
# one particle, many signals
# ------------------------------------------------------------------------------------------------
class PairHistogram:
    """The pair-distance moments of one particle, per element pair: every Debye signal without the atoms.

    Built once (the O(N²) part); then :meth:`iq`, :meth:`sq`, :meth:`fq`, :meth:`gr` and :meth:`saxs`
    evaluate any Q grid (up to :attr:`q_limit`), either radiation and any Debye-Waller factor in
    O(nodes × Q). Pair sums are cached per Q grid, so x-ray and neutron signals on the same grid
    share one transform. Values equal :class:`DebyeSimulator`'s (same conventions) to rounding.

    Attributes:
        elements: E element symbols (sorted); ``element_pairs`` lists the (a, b) pairs a <= b.
        element_occupancy: [E] Σ o_i per element (the self term).
        moments: [n_element_pairs, 4, n_bins] float64 tensor, Σ o_i o_j s^k (k = 0..3) over the
            pairs i<j in bin [k dr, (k+1) dr), s the fractional position in the bin.
        dr: bin width (Å).
        n_atoms, name: of the particle.
    """

    def __init__(self, elements, element_occupancy, moments: torch.Tensor, dr: float, n_atoms: int, name: str = ""):
        self.elements = list(elements)
        self.element_occupancy = np.asarray(element_occupancy, dtype=np.float64)
        self.moments = moments
        self.dr = float(dr)
        self.n_atoms = int(n_atoms)
        self.name = name
        self._sums: OrderedDict = OrderedDict()
        self._coarse: dict[int, torch.Tensor] = {1: moments}

    # ----- construction ---------------------------------------------------------------------
    @classmethod
    def from_particle(cls, particle, dr: float | None = None, *, qmax: float = 30.0, species=None, occupancies=None,
                      chunk_pairs: int = 2_000_000, n_threads: int | None = None) -> "PairHistogram":
        """Spread all pair distances of ``particle`` (a Particle, or positions [N, 3] Å with ``species``).

        Args:
            dr: bin width (Å); default ``grid_step(qmax)``, a power of two (then coarser grids are exact).
            qmax: largest |Q| (Å⁻¹) to be evaluated, sets the default ``dr``.
            chunk_pairs: atom pairs per batch (bounds memory); n_threads: worker threads.
        """
        atoms = _as_atoms(particle, species, occupancies)
        return cls._from_atoms(atoms, dr if dr is not None else grid_step(qmax), chunk_pairs, n_threads)

    @classmethod
    def _from_atoms(cls, atoms: _Atoms, dr: float, chunk_pairs: int = 2_000_000, n_threads: int | None = None,
                    guard: bool = True) -> "PairHistogram":
        if not dr > 0:
            raise InputError(f"histogram bin width dr must be positive, got {dr}")
        n = atoms.positions.shape[0]
        n_threads = n_threads or torch.get_num_threads()
        if guard:
            guard_debye(n, 0, n_elements=len(atoms.elements), chunk_pairs=chunk_pairs, method="grid",
                        n_nodes=_n_bins(atoms, dr) + 3, n_threads=n_threads)
        with torch.no_grad():
            moments = spread_moments(atoms, dr, chunk_pairs, n_threads)
        return cls(atoms.elements, atoms.element_occupancy.numpy(), moments, dr, n, atoms.name)

    # ----- properties -----------------------------------------------------------------------
    @property
    def element_pairs(self) -> list[tuple[str, str]]:
        return [(self.elements[a], self.elements[b]) for a, b in _element_pairs(len(self.elements))]

    @property
    def q_limit(self) -> float:
        """Largest |Q| (Å⁻¹) this histogram resolves to the engine's accuracy (Q·dr ≤ 0.1)."""
        return _STEP_FACTOR / self.dr

    @property
    def n_bins(self) -> int:
        return self.moments.shape[-1]

    @property
    def n_pairs(self) -> float:
        """Σ o_i o_j over pairs i<j (number of pairs at full occupancy)."""
        return float(self.moments[:, 0].sum())

    # ----- pair sums ------------------------------------------------------------------------
    def pair_sums(self, q) -> torch.Tensor:
        """P_ab(Q) = Σ_{i<j in a,b} o_i o_j sinc(Q r_ij), [n_element_pairs, n_q] float64 tensor (cached per grid)."""
        q_np = np.ascontiguousarray(q, dtype=np.float64).reshape(-1)
        if q_np.size == 0:
            raise InputError("empty Q grid")
        key = q_np.tobytes()
        hit = self._sums.get(key)
        if hit is not None:
            return hit
        qabs = float(np.abs(q_np).max())
        if qabs > self.q_limit * (1 + 1e-9):
            raise InputError(f"Q up to {qabs:g} Å⁻¹ needs a histogram bin of at most {grid_step(qabs):g} Å; this one "
                             f"has dr = {self.dr:g} Å (good to Q = {self.q_limit:g}); rebuild it with qmax={qabs:g}")
        # the coarsest power-of-two multiple of dr still fine enough for this grid: what DebyeSimulator uses
        factor = 2 ** max(0, math.floor(math.log2(grid_step(qabs) / self.dr) + 1e-9))
        with _serial():  # O(n_bins) work: not worth waking threads
            if factor not in self._coarse:
                self._coarse[factor] = coarsen_moments(self.moments, factor)
            nodes = moments_to_nodes(self._coarse[factor])
        sums = node_sinc_sums(nodes, self.dr * factor, torch.as_tensor(q_np))
        self._sums[key] = sums
        if len(self._sums) > 8:
            self._sums.popitem(last=False)
        return sums

    # ----- signals --------------------------------------------------------------------------
    def _iq_f(self, q, radiation: str, biso: float):
        q_np = np.ascontiguousarray(q, dtype=np.float64).reshape(-1)
        f = scattering_factors(self.elements, q_np, normalize_radiation(radiation))
        iq = _intensity(torch.as_tensor(self.element_occupancy), torch.as_tensor(f), self.pair_sums(q_np),
                        torch.as_tensor(q_np), biso)
        return q_np, iq.numpy(), f

    def iq(self, q, radiation: str = "xray", biso: float = 0.0) -> np.ndarray:
        """I(Q) [n_q] (electrons² or fm², per particle) on ``q`` (Å⁻¹); ``biso`` in Å²."""
        return self._iq_f(q, radiation, biso)[1]

    def saxs(self, q, radiation: str = "xray", biso: float = 0.0) -> np.ndarray:
        """Small-angle I(Q) [n_q]: the same Debye sum as :meth:`iq` (coarser bins are picked automatically)."""
        return self.iq(q, radiation, biso)

    def sq(self, q, radiation: str = "xray", biso: float = 0.0) -> np.ndarray:
        """S(Q) [n_q] (→ 1 at high Q)."""
        q_np, iq, f = self._iq_f(q, radiation, biso)
        return _structure_functions(q_np, iq, f, self.element_occupancy)[0]

    def fq(self, q, radiation: str = "xray", biso: float = 0.0) -> np.ndarray:
        """F(Q) = Q (S(Q) - 1), shape [n_q] (Å⁻¹)."""
        q_np, iq, f = self._iq_f(q, radiation, biso)
        return _structure_functions(q_np, iq, f, self.element_occupancy)[1]

    def gr(self, r, q, radiation: str = "xray", biso: float = 0.0, qdamp: float = 0.0, lorch: bool = False,
           qstep: float | None = None, qmax: float | None = None) -> np.ndarray:
        """G(r) [n_r] (Å⁻²) on ``r`` (Å) from F(Q) on the uniform grid ``q`` (Å⁻¹).

        ``qstep`` defaults to q[1] - q[0]; ``qmax`` (Lorch window only) to q[-1] + qstep. With
        ``q = arange(qmin, qmax, qstep)`` this is :meth:`DebyeSimulator.gr` with the same parameters.
        """
        q_np = np.ascontiguousarray(q, dtype=np.float64).reshape(-1)
        if qstep is None:
            if q_np.size < 2:
                raise InputError("G(r) needs at least two Q points (or qstep)")
            qstep = float(q_np[1] - q_np[0])
        return fq_to_gr(q_np, self.fq(q_np, radiation, biso), r, qstep, qdamp, lorch, qmax)


# ------------------------------------------------------------------------------------------------
# the simulator
# ------------------------------------------------------------------------------------------------
@dataclass
class DebyeSimulator:
    """Debye-equation simulator for finite particles; defaults follow DebyeCalculator 1.1.1.

    Attributes:
        qmin, qmax, qstep: Q grid ``arange(qmin, qmax, qstep)`` (Å⁻¹) of I/S/F and of the G(r)
            transform; ``qstep=None`` gives π/(rmax + rstep) (Nyquist for the r range).
        qdamp: instrumental Gaussian damping of G(r), exp(-(qdamp r)²/2) (Å⁻¹).
        rmin, rmax, rstep: r grid ``arange(rmin, rmax, rstep)`` of G(r) (Å).
        biso: isotropic displacement B (Å²) for every atom (Debye-Waller factor on pair terms).
        radiation: ``'xray'`` (Waasmaier-Kirfel f0) or ``'neutron'`` (coherent b).
        lorch: multiply F(Q) by the Lorch function before the sine transform.
        saxs_qmin, saxs_qmax, saxs_qstep: Q grid (Å⁻¹) of :meth:`saxs` (small-angle I(Q)).
        method: pair-sum engine ``'auto' | 'direct' | 'grid'`` (see module docstring).
        chunk_pairs: atom pairs per batch (bounds memory).
        n_threads: worker threads of the grid engine (None: torch's thread count).
    """

    qmin: float = 1.0
    qmax: float = 30.0
    qstep: float | None = None
    qdamp: float = 0.04
    rmin: float = 0.0
    rmax: float = 20.0
    rstep: float = 0.01
    biso: float = 0.3
    radiation: str = "xray"
    lorch: bool = False
    saxs_qmin: float = 0.0
    saxs_qmax: float = 3.0
    saxs_qstep: float = 0.005
    method: str = "auto"
    chunk_pairs: int = 2_000_000
    n_threads: int | None = None

    def __post_init__(self):
        self.radiation = normalize_radiation(self.radiation)
        if self.qstep is None:
            self.qstep = math.pi / (self.rmax + self.rstep)
        for name in ("qmin", "qdamp", "rmin", "biso", "saxs_qmin"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("qstep", "rstep", "saxs_qstep"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.qmax > self.qmin:
            raise InputError(f"qmax ({self.qmax}) must exceed qmin ({self.qmin})")
        if not self.rmax > self.rmin:
            raise InputError(f"rmax ({self.rmax}) must exceed rmin ({self.rmin})")
        if not self.saxs_qmax > self.saxs_qmin:
            raise InputError(f"saxs_qmax ({self.saxs_qmax}) must exceed saxs_qmin ({self.saxs_qmin})")
        if self.method not in ("auto", "direct", "grid"):
            raise InputError(f"unknown Debye method {self.method!r}; use 'auto', 'direct' or 'grid'")

    # ----- grids ----------------------------------------------------------------------------
    @property
    def q(self) -> np.ndarray:
        """[n_q] Q grid (Å⁻¹) of I/S/F/G."""
        return torch.arange(self.qmin, self.qmax, self.qstep, dtype=torch.float64).numpy()

    @property
    def r(self) -> np.ndarray:
        """[n_r] r grid (Å) of G(r)."""
        return torch.arange(self.rmin, self.rmax, self.rstep, dtype=torch.float64).numpy()

    @property
    def q_saxs(self) -> np.ndarray:
        """[n_q] Q grid (Å⁻¹) of the small-angle I(Q)."""
        return torch.arange(self.saxs_qmin, self.saxs_qmax, self.saxs_qstep, dtype=torch.float64).numpy()

    def _params(self) -> dict:
        return {"engine": "nanosolve.debye", "qmin": self.qmin, "qmax": self.qmax, "qstep": self.qstep,
                "qdamp": self.qdamp, "rmin": self.rmin, "rmax": self.rmax, "rstep": self.rstep,
                "biso": self.biso, "lorch": self.lorch, "radiation": self.radiation}

    # ----- core -----------------------------------------------------------------------------
    def _guard(self, atoms: _Atoms, n_q: int, n_r: int, qmax: float) -> None:
        n = atoms.positions.shape[0]
        guard_debye(n, n_q, n_r=n_r, n_elements=len(atoms.elements), chunk_pairs=self.chunk_pairs,
                    method="direct" if self.method == "direct" else "grid",
                    n_nodes=debye_grid_nodes(atoms.diameter, qmax, _STEP_FACTOR), n_threads=self.n_threads or torch.get_num_threads())

    def _pair_sums(self, atoms: _Atoms, grids: list[np.ndarray], n_r: int) -> list[torch.Tensor]:
        """Pair sums on each Q grid; the grid engine spreads the pairs once for all grids."""
        qabs = max(float(np.abs(g).max()) for g in grids)
        self._guard(atoms, sum(g.size for g in grids), n_r, qabs)
        method = self.method
        if method == "auto":
            method = "direct" if _prefer_direct(atoms, qabs) else "grid"
        with torch.no_grad():
            if method == "direct":
                return [pair_sums_direct(atoms, torch.as_tensor(g)) for g in grids]
            hist = PairHistogram._from_atoms(atoms, grid_step(qabs), self.chunk_pairs, self.n_threads, guard=False)
            return [hist.pair_sums(g) for g in grids]

    def _all(self, atoms: _Atoms, kinds) -> dict[str, Pattern]:
        out: dict[str, Pattern] = {}
        meta = self._params() | {"particle": atoms.name, "n_atoms": int(atoms.positions.shape[0])}
        wide = any(k in kinds for k in ("iq", "sq", "fq", "gr"))
        # Grid sizes are checked from their bounds before any grid is allocated (the pair-sum
        # guard below needs the grids, and a 1e-9 step would not survive their allocation).
        if wide:
            guard_grid(self.qmin, self.qmax, self.qstep, f"Q grid {self.qmin:g}-{self.qmax:g} Å⁻¹, step {self.qstep:g}")
        if "saxs" in kinds:
            guard_grid(self.saxs_qmin, self.saxs_qmax, self.saxs_qstep,
                       f"SAXS Q grid {self.saxs_qmin:g}-{self.saxs_qmax:g} Å⁻¹, step {self.saxs_qstep:g}")
        if "gr" in kinds:
            guard_grid(self.rmin, self.rmax, self.rstep, f"r grid {self.rmin:g}-{self.rmax:g} Å, step {self.rstep:g}")
        grids = ([self.q] if wide else []) + ([self.q_saxs] if "saxs" in kinds else [])
        r = self.r if "gr" in kinds else np.zeros(0)
        sums = self._pair_sums(atoms, grids, r.size)
        occ = atoms.element_occupancy
        if wide:
            q = grids[0]
            f = scattering_factors(atoms.elements, q, self.radiation)
            iq = _intensity(occ, torch.as_tensor(f), sums[0], torch.as_tensor(q), self.biso).numpy()
            sq, fq = _structure_functions(q, iq, f, occ.numpy())
            if "iq" in kinds:
                out["iq"] = Pattern(q, iq, "iq", "q", radiation=self.radiation, metadata=dict(meta))
            if "sq" in kinds:
                out["sq"] = Pattern(q, sq, "sq", "q", radiation=self.radiation, metadata=dict(meta))
            if "fq" in kinds:
                out["fq"] = Pattern(q, fq, "fq", "q", radiation=self.radiation, metadata=dict(meta))
            if "gr" in kinds:
                out["gr"] = Pattern(r, self.transform_fq(q, fq, r), "gr", "r", radiation=self.radiation,
                                    metadata=dict(meta))
        if "saxs" in kinds:
            qs = grids[-1]
            f = scattering_factors(atoms.elements, qs, self.radiation)
            iq = _intensity(occ, torch.as_tensor(f), sums[-1], torch.as_tensor(qs), self.biso).numpy()
            kind = "saxs" if self.radiation == "xray" else "sans"
            out["saxs"] = Pattern(qs, iq, kind, "q", radiation=self.radiation, metadata=dict(meta))
        return out

    def transform_fq(self, q: np.ndarray, fq: np.ndarray, r: np.ndarray) -> np.ndarray:
        """G(r) [n_r] = (2/π) Σ_Q F(Q) M(Q) sin(Q r) ΔQ · exp(-(qdamp r)²/2) (rectangle rule, as DebyeCalculator)."""
        return fq_to_gr(q, fq, r, self.qstep, self.qdamp, self.lorch, self.qmax)

    # ----- public API -----------------------------------------------------------------------
    def simulate(self, particle, kinds=("iq", "sq", "fq", "gr")) -> dict[str, Pattern]:
        """Patterns of one particle, ``kinds`` ⊆ {iq, sq, fq, gr, saxs}; one pair pass serves all of them."""
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in DEBYE_KINDS]
        if bad:
            raise InputError(f"unknown Debye output {bad[0]!r}; choose from {', '.join(DEBYE_KINDS)}")
        return self._all(_as_atoms(particle), kinds)

    def histogram(self, particle) -> PairHistogram:
        """The :class:`PairHistogram` of ``particle``, fine enough for this simulator's Q grids."""
        atoms = _as_atoms(particle)
        qabs = max(abs(self.qmin), abs(self.qmax), abs(self.saxs_qmax))
        return PairHistogram._from_atoms(atoms, grid_step(qabs), self.chunk_pairs, self.n_threads)

    def iq(self, particle) -> Pattern:
        """I(Q) (electrons² for x-rays, fm² for neutrons; per particle, not per atom)."""
        return self.simulate(particle, ("iq",))["iq"]

    def sq(self, particle) -> Pattern:
        """Total-scattering structure function S(Q) (→ 1 at high Q)."""
        return self.simulate(particle, ("sq",))["sq"]

    def fq(self, particle) -> Pattern:
        """Reduced structure function F(Q) = Q[S(Q) - 1] (Å⁻¹)."""
        return self.simulate(particle, ("fq",))["fq"]

    def gr(self, particle) -> Pattern:
        """Reduced pair distribution function G(r) (Å⁻²)."""
        return self.simulate(particle, ("gr",))["gr"]

    def saxs(self, particle) -> Pattern:
        """Small-angle I(Q) on ``q_saxs`` (kind 'saxs' for x-rays, 'sans' for neutrons)."""
        return self.simulate(particle, ("saxs",))["saxs"]

    def simulate_many(self, particles, kinds=("iq", "gr")) -> list[dict[str, Pattern]]:
        """:meth:`simulate` for each particle (form factors and grids shared)."""
        return [self.simulate(p, kinds) for p in particles]


def simulate_many(particles, kinds=("iq", "gr"), simulator: DebyeSimulator | None = None, **params) -> list[dict[str, Pattern]]:
    """Debye patterns of many particles: a list of {kind: Pattern}; ``params`` build a :class:`DebyeSimulator`."""
    sim = simulator if simulator is not None else DebyeSimulator(**params)
    return sim.simulate_many(particles, kinds)
