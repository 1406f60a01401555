"""Deterministic splits: reproducible, disjoint, covering, group-pure, balanced."""

from __future__ import annotations

import numpy as np
import pytest

from nanosolve.datasets.splits import grouped_split, part_sizes, random_split, stratified_subset
from nanosolve.errors import InputError


def _check_partition(parts: dict, n: int) -> None:
    allidx = np.concatenate(list(parts.values()))
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))  # disjoint + covering
    for v in parts.values():
        assert v.dtype == np.int64 and np.all(np.diff(v) > 0)


def test_random_split_is_deterministic_disjoint_covering():
    a = random_split(1003, (0.8, 0.1, 0.1), seed=7)
    assert list(a) == ["train", "val", "test"]
    _check_partition(a, 1003)
    assert [len(v) for v in a.values()] == [803, 100, 100]  # 802.4, 100.3, 100.3: the 1 left goes to .4
    b = random_split(1003, (0.8, 0.1, 0.1), seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = random_split(1003, (0.8, 0.1, 0.1), seed=8)
    assert not np.array_equal(a["test"], c["test"])
    two = random_split(10, (0.7, 0.3))
    assert list(two) == ["train", "test"] and [len(v) for v in two.values()] == [7, 3]
    named = random_split(5, {"a": 0.4, "b": 0.6}, seed=1)
    _check_partition(named, 5)
    assert len(named["a"]) == 2
    _check_partition(random_split(0), 0)
    for bad in [(0.5, 0.4), (1.2, -0.2), (0.5, 0.5, 0.0, 0.0)]:
        with pytest.raises(InputError):
            random_split(10, bad)


def test_part_sizes_sum_and_closeness():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 500))
        f = rng.random(int(rng.integers(1, 5)))
        f /= f.sum()
        s = part_sizes(n, f)
        assert s.sum() == n and np.all(np.abs(s - n * f) < 1)


def test_grouped_split_keeps_groups_whole_and_sizes_close():
    rng = np.random.default_rng(1)
    formulas = [f"F{k}" for k in range(120)]
    group_sizes = rng.integers(1, 12, len(formulas))
    groups = np.repeat(formulas, group_sizes)
    rng.shuffle(groups)
    n = len(groups)
    parts = grouped_split(groups, (0.8, 0.1, 0.1), seed=3)
    _check_partition(parts, n)
    seen = {}
    for name, idx in parts.items():
        for g in set(groups[idx]):
            assert seen.setdefault(g, name) == name, f"group {g} in two parts"
    target = part_sizes(n, (0.8, 0.1, 0.1))
    got = np.array([len(v) for v in parts.values()])
    # 120 groups of 1-11 items: the local search reaches the exact target sizes
    assert np.array_equal(got, target), (got, target)
    again = grouped_split(list(groups), (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = grouped_split(groups, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(parts["test"], other["test"])


def test_grouped_split_finds_a_swap_that_greedy_misses():
    # sizes 3,3,2,2,2 into halves: greedy largest-first gives 7/5; a 3<->2 swap gives 6/6
    groups = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2 + ["e"] * 2
    for seed in range(5):
        parts = grouped_split(groups, (0.5, 0.5), seed=seed)
        assert [len(v) for v in parts.values()] == [6, 6]


def test_grouped_split_deviation_bounded_by_largest_group():
    groups = ["big"] * 50 + [f"s{k}" for k in range(10)]
    parts = grouped_split(groups, (0.8, 0.1, 0.1), seed=0)
    _check_partition(parts, 60)
    # targets 48/6/6: the 50-item group must go to train with no small one (deviation >= 2
    # there, and >= 2 over val+test which share the 10 small items): optimum total deviation 4
    assert np.array_equal(parts["train"], np.arange(50))
    sizes = np.array([len(v) for v in parts.values()])
    assert np.abs(sizes - part_sizes(60, (0.8, 0.1, 0.1))).sum() == 4


def test_stratified_subset():
    labels = ["cubic"] * 500 + ["hexagonal"] * 100 + ["triclinic"] * 7
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    labels = [labels[k] for k in order]
    sub = stratified_subset(labels, per_class=25, seed=2)
    assert sub.dtype == np.int64 and np.all(np.diff(sub) > 0)
    counts = {c: sum(labels[k] == c for k in sub) for c in set(labels)}
    assert counts == {"cubic": 25, "hexagonal": 25, "triclinic": 7}
    assert set(k for k in range(len(labels)) if labels[k] == "triclinic") <= set(sub)  # all of a small class
    assert np.array_equal(sub, stratified_subset(labels, 25, seed=2))
    assert not np.array_equal(sub, stratified_subset(labels, 25, seed=3))
    ints = stratified_subset(np.array([7, 7, 7, 1, 1]), per_class=2, seed=0)
    assert len(ints) == 4 and {3, 4} <= set(ints)
    assert len(stratified_subset(labels, 0)) == 0
    with pytest.raises(InputError):
        stratified_subset(labels, -1)


def test_derangement_is_one_seeded_cycle_without_fixed_points():
    from nanosolve.datasets.splits import derangement
    from nanosolve.models.deepstruc.evaluate import derangement as deepstruc_derangement
    from nanosolve.solve.pxrd_eval import derangement as pxrd_derangement

    assert deepstruc_derangement is derangement is pxrd_derangement  # one function for every control
    for n in (2, 3, 7, 50):
        d = derangement(n, seed=n)
        assert sorted(d.tolist()) == list(range(n)) and not np.any(d == np.arange(n))
        seen, i = set(), 0  # following i -> d[i] visits every item once before returning: one cycle
        while i not in seen:
            seen.add(i)
            i = int(d[i])
        assert len(seen) == n
        np.testing.assert_array_equal(d, derangement(n, seed=n))
    assert derangement(2).tolist() == [1, 0]
    with pytest.raises(InputError, match="at least two"):
        derangement(1)
