"""Limits of a solve checked before any work: the number of candidates ``k`` of either solve."""

from __future__ import annotations

from nanosolve.errors import InputError

#: Rough cost of one candidate on this class of machine (refinement dominates): used only to refuse
#: a ``k`` whose time or memory is out of reach before any work starts.
SECONDS_PER_CANDIDATE = {"pdf": 1.0, "powder": 0.3}
BYTES_PER_CANDIDATE = {"pdf": 2 * 1024**2, "powder": 4 * 1024**2}


def check_k(k: int, kind: str, option: str = "-k") -> None:
    """InputError for ``k`` < 1; ResourceError when ``k`` candidates of a ``kind`` ('pdf' or 'powder') solve
    would not fit in this machine's memory or in the longest job allowed."""
    from nanosolve.scattering.memory import guard_candidates

    if int(k) != k or k < 1:
        raise InputError(f"must be a whole number >= 1, got {k}", option)
    guard_candidates(int(k), BYTES_PER_CANDIDATE[kind], SECONDS_PER_CANDIDATE[kind], f"{int(k)} candidates",
                     option=option)
