"""Memory estimates and guards for scattering jobs.

A job that would not fit is refused up front with :class:`ResourceError` (one readable message
with the estimate, what is available and what to change) instead of being killed by the kernel's
OOM killer half-way through. The estimates are deliberately conservative (peak, not average).
"""

from __future__ import annotations

import math

from nanosolve.errors import ResourceError

#: Fraction of the currently available memory a single job may plan to use.
DEFAULT_FRACTION = 0.8


def available_memory_bytes() -> int:
    """Memory the OS can give us without swapping (bytes): psutil, else /proc/meminfo MemAvailable."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unusable (containers): fall back to the kernel's own estimate
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3  # unknown platform: assume a modest laptop


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
