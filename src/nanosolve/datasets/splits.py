"""Deterministic dataset splits: same inputs and seed -> same split, on any machine.

Every function returns sorted int64 index arrays (sorted so that reading a part walks the store
in order). Groups and class labels are ordered by value before any random draw, never by hash
or first appearance, so the result does not depend on PYTHONHASHSEED or input order of classes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from nanosolve.errors import InputError

__all__ = ["random_split", "grouped_split", "stratified_subset", "part_sizes", "derangement"]

_DEFAULT_NAMES = {1: ("train",), 2: ("train", "test"), 3: ("train", "val", "test")}


def _parse_fractions(fractions) -> tuple[tuple[str, ...], np.ndarray]:
    if isinstance(fractions, Mapping):
        names, values = tuple(str(k) for k in fractions), list(fractions.values())
    else:
        values = list(fractions)
        if len(values) not in _DEFAULT_NAMES:
            raise InputError(f"give 1-3 fractions (train, val, test) or a dict name -> fraction, got {len(values)}")
        names = _DEFAULT_NAMES[len(values)]
    f = np.asarray(values, dtype=np.float64)
    if f.size == 0 or not np.all(np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise InputError(f"fractions must be non-negative and sum to 1, got {values}")
    return names, f


def part_sizes(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Integer part sizes summing to ``n`` closest to ``n * fractions`` (largest remainder;
    ties go to the earlier part)."""
    f = np.asarray(fractions, dtype=np.float64)
    exact = n * f / f.sum()
    sizes = np.floor(exact).astype(np.int64)
    rest = n - int(sizes.sum())
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[:rest]] += 1
    return sizes


def _sorted_unique(values: Sequence[Hashable]) -> tuple[list, np.ndarray]:
    """Unique values sorted by (type name, value) and the inverse map item -> unique position."""
    try:
        uniq = sorted(set(values), key=lambda v: (type(v).__name__, v))
    except TypeError as err:
        raise InputError(f"labels/groups must be sortable hashable values: {err}") from None
    where = {u: i for i, u in enumerate(uniq)}
    return uniq, np.fromiter((where[v] for v in values), dtype=np.int64, count=len(values))


def _as_list(values) -> list:
    if isinstance(values, np.ndarray):
        return values.tolist()
    return list(values)


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of ``0..n-1`` with no fixed point: one random cycle through all n.

    The shuffled-input controls of the benchmarks use it: item ``i`` is solved from the input of
    item ``out[i]``, never its own. A single cycle needs no rejection loop, so it takes O(n) time
    for any n.

    Args:
        n: number of items (at least 2).
        seed: seed of the permutation.

    Returns:
        Index array [n] (int64) with ``out[i] != i`` for every i.
    """
    if n < 2:
        raise InputError(f"a shuffled control needs at least two items, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[perm] = np.roll(perm, -1)
    return out


def random_split(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Split ``range(n)`` at random into disjoint, covering parts.

    Args:
        n: number of items.
        fractions: (train, val, test), (train, test), or a dict name -> fraction; sum 1.
        seed: the permutation seed.

    Returns:
        dict part name -> sorted int64 item indices; sizes from :func:`part_sizes`.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    names, f = _parse_fractions(fractions)
    perm = np.random.default_rng(seed).permutation(int(n))
    bounds = np.concatenate([[0], np.cumsum(part_sizes(int(n), f))])
    return {name: np.sort(perm[bounds[k]:bounds[k + 1]]) for k, name in enumerate(names)}


def stratified_subset(labels: Sequence[Hashable], per_class: int, seed: int = 0) -> np.ndarray:
    """At most ``per_class`` items of every class, drawn at random ("equal per class", like
    CHILI-100K's 425 graphs per crystal system); a class with fewer items contributes all.

    Args:
        labels: [N] class label of each item (str or int...).
        per_class: items to keep per class.
        seed: the draw seed.

    Returns:
        sorted int64 indices of the kept items.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 0:
        raise InputError(f"per_class must be a non-negative integer, got {per_class!r}")
    labels = _as_list(labels)
    uniq, inverse = _sorted_unique(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(uniq)):  # classes in sorted order: draws do not depend on input order
        members = np.flatnonzero(inverse == c)
        keep.append(members if members.size <= per_class else rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, dtype=np.int64)


def grouped_split(groups: Sequence[Hashable], fractions=(0.8, 0.1, 0.1), seed: int = 0,
                  max_rounds: int = 200) -> dict[str, np.ndarray]:
    """Split items so that all items of a group land in the same part (e.g. group = reduced
    formula, so no composition is both trained on and tested on).

    Part sizes are made as close as possible, in number of items, to ``fractions``: groups are
    shuffled (seed), placed largest first into the part furthest below its target, then single
    moves and pairwise swaps of groups between parts are applied while they reduce the total
    deviation sum |size - target|. (An exact optimum is a partition problem, NP-hard; this
    reaches it in the usual cases, and the deviation of each part is at most the largest group.)

    Args:
        groups: [N] group of each item.
        fractions: as in :func:`random_split`.
        seed: shuffle seed.
        max_rounds: cap on improvement steps.

    Returns:
        dict part name -> sorted int64 item indices.
    """
    names, f = _parse_fractions(fractions)
    groups = _as_list(groups)
    n = len(groups)
    uniq, inverse = _sorted_unique(groups)
    g = len(uniq)
    sizes = np.bincount(inverse, minlength=g).astype(np.int64)
    target = part_sizes(n, f).astype(np.float64)
    k = len(names)

    rng = np.random.default_rng(seed)
    order = rng.permutation(g)
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, ties in shuffled order
    part = np.empty(g, dtype=np.int64)
    load = np.zeros(k, dtype=np.float64)
    for gi in order:
        # prefer the part with the largest shortfall relative to its size; an empty target never wins
        deficit = np.where(target > 0, target - load, -np.inf)
        p = int(np.argmax(deficit))
        part[gi] = p
        load[p] += sizes[gi]

    def cost(ld):
        return np.abs(ld - target).sum(axis=-1)

    for _ in range(max_rounds):
        current = cost(load)
        if current == 0:
            break
        best = (current - 1e-9, None)
        # single moves: group gi from part[gi] to q
        for q in range(k):
            movers = np.flatnonzero(part != q)
            if movers.size == 0:
                continue
            new = np.repeat(load[None, :], movers.size, axis=0)
            new[np.arange(movers.size), part[movers]] -= sizes[movers]
            new[:, q] += sizes[movers]
            c = cost(new)
            j = int(np.argmin(c))
            if c[j] < best[0]:
                best = (c[j], ("move", int(movers[j]), q))
        # swaps: group a (part p) <-> group b (part q); only size differences matter
        for p in range(k):
            for q in range(p + 1, k):
                a = np.flatnonzero(part == p)
                b = np.flatnonzero(part == q)
                if a.size == 0 or b.size == 0:
                    continue
                d = sizes[a][:, None] - sizes[b][None, :]  # items moving from p to q
                lp, lq = load[p] - d, load[q] + d
                rest = current - abs(load[p] - target[p]) - abs(load[q] - target[q])
                c = rest + np.abs(lp - target[p]) + np.abs(lq - target[q])
                j = int(np.argmin(c))
                if c.flat[j] < best[0]:
                    ia, ib = np.unravel_index(j, c.shape)
                    best = (c.flat[j], ("swap", int(a[ia]), int(b[ib])))
        if best[1] is None:
            break
        step = best[1]
        if step[0] == "move":
            _, gi, q = step
            load[part[gi]] -= sizes[gi]
            load[q] += sizes[gi]
            part[gi] = q
        else:
            _, ga, gb = step
            pa, pb = part[ga], part[gb]
            load[pa] += sizes[gb] - sizes[ga]
            load[pb] += sizes[ga] - sizes[gb]
            part[ga], part[gb] = pb, pa

    item_part = part[inverse] if n else np.zeros(0, dtype=np.int64)
    return {name: np.flatnonzero(item_part == j).astype(np.int64) for j, name in enumerate(names)}
