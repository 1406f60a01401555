"""Memory estimates and guards for scattering jobs.

A job that would not fit is refused up front with :class:`ResourceError` (one readable message
with the estimate, what is available and what to change) instead of being killed by the kernel's
OOM killer half-way through. The estimates are deliberately conservative (peak, not average).
"""

from __future__ import annotations

import math

import psutil

from nanosolve.errors import ResourceError

#: Fraction of the currently available memory a single job may plan to use.
DEFAULT_FRACTION = 0.8


#: Environment variable capping the memory a job may plan on (``'1.5G'``, ``'800M'`` or bytes), e.g.
#: on a shared machine or in CI; the smaller of it, the address-space limit and the OS's figure is used.
MEMORY_LIMIT_ENV = "NANOSOLVE_MEMORY_LIMIT"


def _parse_bytes(text: str) -> int | None:
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}.get(t[-1:], 1)
    try:
        v = float(t[:-1] if t[-1:] in "KMGT" else t) * mult
    except ValueError:
        return None
    return int(v) if v > 0 and math.isfinite(v) else None


def available_memory_bytes() -> int:
    """Memory a job may use (bytes): the OS's available memory, capped by the process' address-space
    limit (RLIMIT_AS) and by :data:`MEMORY_LIMIT_ENV` when set."""
    import os

    avail = _os_available_bytes()
    limit = _parse_bytes(os.environ.get(MEMORY_LIMIT_ENV, "") or "x")
    if limit:
        avail = min(avail, limit)
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            avail = min(avail, max(0, int(soft) - _address_space_used()))
    except (ImportError, ValueError, OSError):  # not on POSIX
        pass
    return avail


def _address_space_used() -> int:
    """Virtual memory this process already maps (bytes; counts against RLIMIT_AS)."""
    try:
        with open("/proc/self/statm") as fh:
            import os

            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def _os_available_bytes() -> int:
    """Memory the OS can give us without swapping (bytes), from psutil on every platform (on Linux the
    kernel's MemAvailable estimate)."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError):  # /proc not readable (some sandboxes): assume a modest laptop
        return 8 * 1024**3


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def debye_grid_nodes(diameter: float, qmax: float, step_factor: float = 0.05) -> int:
    """Number of distance-grid nodes the histogram Debye engine uses for a particle of ``diameter`` Å."""
    dr = 2.0 ** math.floor(math.log2(step_factor / max(abs(qmax), 1e-3)))
    return int(math.ceil(max(diameter, 0.0) / dr)) + 6


def estimate_debye_bytes(
    n_atoms: int,
    n_q: int,
    *,
    n_r: int = 0,
    n_elements: int = 1,
    chunk_pairs: int = 2_000_000,
    method: str = "grid",
    n_nodes: int = 0,
    n_threads: int = 1,
    requires_grad: bool = False,
    itemsize: int = 8,
    n_subbins: int = 16,
) -> int:
    """Peak bytes of one Debye job (a conservative estimate).

    Args:
        n_atoms: atoms in the particle.
        n_q: Q points.
        n_r: r points of a G(r) (0 if no G(r) is wanted).
        n_elements: distinct elements (the engine keeps one histogram per element pair).
        chunk_pairs: atom pairs processed per batch.
        method: ``'grid'`` (histogram) or ``'direct'`` (exact sum; memory ∝ pairs-per-batch × n_q).
        n_nodes: distance-grid nodes (grid method), see :func:`debye_grid_nodes`.
        n_threads: concurrent batches.
        requires_grad: autograd through the direct sum keeps one batch alive per checkpoint.
        itemsize: bytes per float (8 for float64).
        n_subbins: sub-bins per node of the grid method's per-thread float32 pair counts.
    """
    n_pairs_el = n_elements * (n_elements + 1) // 2
    base = 4 * n_atoms * 8 + 2 * n_q * n_pairs_el * itemsize + n_q * n_r * itemsize
    if method == "direct":
        per_pair = n_q * itemsize * 3 + 4 * itemsize  # d, d·q, sinc(d·q) batch and weights
        pairs = min(chunk_pairs, max(1, n_atoms * n_atoms // 2))
        work = pairs * per_pair * (2 if requires_grad else 1)
    else:
        # distances, bin positions, int64 bins, 4 moments, mask/weights: ~12 numbers per pair
        pairs = min(chunk_pairs, max(1, n_atoms * n_atoms // 2))
        work = n_threads * pairs * 12 * itemsize
        work += (n_threads + 2) * 4 * n_nodes * n_pairs_el * itemsize  # per-thread moment histograms
        work += n_threads * n_nodes * n_subbins * 8  # per-thread float32 sub-bin sums Σw, Σw·t (one element pair at a time)
        side = int(math.ceil(math.sqrt(max(n_nodes, 1))))
        work += 6 * side * n_q * n_pairs_el * itemsize  # node transform blocks
    return int(base + work + 64 * 1024**2)  # + interpreter / allocator slack


def check_memory(required: int, what: str, hint: str = "", fraction: float = DEFAULT_FRACTION) -> None:
    """Raise :class:`ResourceError` if ``required`` bytes exceed ``fraction`` of the available memory."""
    avail = available_memory_bytes()
    if required > fraction * avail:
        msg = (f"{what} needs about {human_bytes(required)} but only {human_bytes(avail)} is available "
               f"(limit {fraction:.0%} of it)")
        raise ResourceError(msg + (f"; {hint}" if hint else ""))


def guard_debye(n_atoms: int, n_q: int, **kw) -> int:
    """Estimate a Debye job's peak memory and refuse it (ResourceError) if it would not fit. Returns bytes."""
    need = estimate_debye_bytes(n_atoms, n_q, **kw)
    check_memory(need, f"Debye calculation for {n_atoms} atoms × {n_q} Q points",
                 hint="use fewer Q points, a smaller chunk_pairs, or method='grid'")
    return need


# ----- estimates made BEFORE anything that scales with the input is allocated ---------------------
#: Most points one 1-D grid (a pattern's x axis, a Q or r grid) may have: 10⁷ points is already
#: 0.001° over 10,000° or 10⁻⁶ Å⁻¹ over 10 Å⁻¹, far finer than any instrument.
MAX_GRID_POINTS = 10_000_000
#: Longest job (seconds) started without being asked twice: a run estimated beyond one day is refused.
MAX_JOB_SECONDS = 24 * 3600.0


def human_seconds(s: float) -> str:
    """``5400`` -> ``'1.5 h'``."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.3g} days"


def grid_points(lo: float, hi: float, step: float) -> int:
    """Points of ``arange(lo, hi, step)``, computed without allocating it (0 for an empty range)."""
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(step)) or step <= 0:
        return 0
    n = (hi - lo) / step
    return max(0, int(math.ceil(n))) if math.isfinite(n) else MAX_GRID_POINTS * 1000


def guard_grid(lo: float, hi: float, step: float, what: str, bytes_per_point: int = 64,
               max_points: int = MAX_GRID_POINTS) -> int:
    """Refuse (ResourceError) a grid ``arange(lo, hi, step)`` with more than ``max_points`` points or
    more memory than available (``bytes_per_point`` of work per point); returns the point count.
    ``what`` names the option(s), e.g. ``'--qstep 1e-09 over Q 0-3 Å⁻¹'``."""
    n = grid_points(lo, hi, step)
    need = n * bytes_per_point + 64 * 1024**2
    if n > max_points:
        raise ResourceError(f"{what}: {n:.3g} grid points (about {human_bytes(need)}); at most "
                            f"{max_points:.0e} points are allowed — use a coarser step or a shorter range")
    check_memory(need, f"{what}: {n} grid points", hint="use a coarser step or a shorter range")
    return n


def estimate_bragg_bytes(lattice, n_atoms: int, q_max: float) -> tuple[int, int]:
    """(peak bytes, reflections) of a Bragg powder pattern up to ``q_max`` (Å⁻¹) of a cell
    ``lattice`` [3, 3] (Å) with ``n_atoms`` sites: the hkl box, and the [reflections × sites]
    phase matrix with its cos/sin copies (:func:`nanosolve.scattering.bragg.bragg_peaks`)."""
    import numpy as np

    lat = np.asarray(lattice, dtype=float).reshape(3, 3)
    g_max = q_max / (2 * math.pi)
    box = 1.0
    for n in np.floor(g_max * np.linalg.norm(lat, axis=1) + 1e-9):
        box *= 2 * float(n) + 1
    volume = abs(float(np.linalg.det(lat)))
    n_refl = int(min(box, (4 / 3) * math.pi * g_max**3 * volume / 2 + 1))
    need = box * 3 * 8 * 4 + n_refl * max(n_atoms, 1) * 8 * 4 + 64 * 1024**2
    return int(need), n_refl


def guard_bragg(lattice, n_atoms: int, q_max: float, what: str = "powder pattern") -> int:
    """Refuse (ResourceError) a Bragg pattern that would not fit in memory; returns the estimate (bytes)."""
    need, n_refl = estimate_bragg_bytes(lattice, n_atoms, q_max)
    check_memory(need, f"{what} of a {n_atoms}-site cell up to Q = {q_max:.3g} Å⁻¹ ({n_refl:.3g} reflections)",
                 hint="use a smaller cell, a lower Qmax, or a particle (Debye) instead")
    return need


def guard_candidates(k: int, bytes_each: float, seconds_each: float, what: str, option: str = "-k") -> None:
    """Refuse (ResourceError) ``k`` candidates whose memory (``bytes_each``) exceeds what is available
    or whose time (``seconds_each``, this machine's order of magnitude) exceeds :data:`MAX_JOB_SECONDS`."""
    need = int(k * bytes_each) + 256 * 1024**2
    secs = k * seconds_each
    if secs > MAX_JOB_SECONDS:
        raise ResourceError(f"{option} {k}: {what} would take about {human_seconds(secs)} and "
                            f"{human_bytes(need)}; at most {human_seconds(MAX_JOB_SECONDS)} is allowed — use a "
                            f"smaller {option}")
    check_memory(need, f"{option} {k}: {what} (about {human_seconds(secs)})", hint=f"use a smaller {option}")


def guard_pdf_fit(n_r: int, r_max: float, q_max: float, rstep: float | None = None,
                  what: str = "PDF fit") -> int:
    """Refuse (ResourceError) a real-space fit whose [n_Q × n_r] sine kernel would not fit: the Q grid
    has Nyquist step π/(r_max + 2Δr), so n_Q ≈ q_max (r_max + 2Δr) / π. Returns the estimate (bytes)."""
    n_q = int(q_max * (r_max + 2 * (rstep or 0.0)) / math.pi) + 1
    need = 4 * n_q * n_r * 8 + 64 * 1024**2
    check_memory(need, f"{what} over r up to {r_max:.4g} Å ({n_r} points) × {n_q} Q points",
                 hint="crop the data to a shorter r range")
    return need
