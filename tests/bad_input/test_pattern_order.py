"""The x order of a Pattern built from arrays: increasing as given, a downward scan reversed (its
y, sigma and x-aligned metadata with it), x that turns back or repeats refused with a message
saying where — sorted only when the caller asks (``sort=True``). Readers keep naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from nanosolve.errors import InputError
from nanosolve.scattering import Pattern, as_pattern


def test_increasing_x_is_kept_as_given():
    x = np.linspace(1, 5, 9)
    p = Pattern(x, x**2)
    np.testing.assert_array_equal(p.x, x)
    np.testing.assert_array_equal(p.y, x**2)


def test_a_downward_scan_is_reversed_with_everything_aligned_to_x():
    x = np.linspace(80, 10, 8)
    y, sigma, calc = np.arange(8.0) + 1, np.arange(8.0) / 10 + 0.1, np.arange(8.0) * 3
    p = Pattern(x, y, "xrd", "tth", 1.5406, sigma=sigma, metadata={"calculated": calc, "note": "scan down"})
    np.testing.assert_array_equal(p.x, x[::-1])
    np.testing.assert_array_equal(p.y, y[::-1])
    np.testing.assert_array_equal(p.sigma, sigma[::-1])
    np.testing.assert_array_equal(p.metadata["calculated"], calc[::-1])
    assert p.metadata["note"] == "scan down"


@pytest.mark.parametrize(
    "x, match",
    [
        ([1.0, 2.0, 1.5, 3.0], r"not monotonic: it turns back at point 3 \(x = 1\.5 after 2\)"),
        ([5.0, 4.0, 4.5, 1.0], r"not monotonic: it turns back at point 3 \(x = 4\.5 after 4\)"),
        ([1.0, 1.0, 0.5, 2.0], r"not monotonic: it turns back at point 4"),
    ],
)
def test_x_that_turns_back_is_refused_unless_sort_is_asked(x, match):
    y = np.arange(len(x), dtype=float) + 1
    with pytest.raises(InputError, match=match) as info:
        Pattern(x, y, metadata={"source": "scan.xy"})
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("scan.xy: ") and "sort=True" in str(info.value)
    if len(set(x)) == len(x):  # sortable: each y stays with its x
        p = Pattern(x, y, sort=True)
        order = np.argsort(x)
        np.testing.assert_array_equal(p.x, np.asarray(x)[order])
        np.testing.assert_array_equal(p.y, y[order])


@pytest.mark.parametrize("x", [[1.0, 1.0, 2.0], [3.0, 2.0, 2.0, 1.0], [2.0, 2.0, 2.0]])
def test_repeated_x_is_refused_even_with_sort(x):
    for sort in (False, True):
        with pytest.raises(InputError, match=r"x values repeat \(x = 2|x values repeat \(x = 1"):
            Pattern(x, np.ones(len(x)), sort=sort)


def test_as_pattern_passes_sort_through_for_arrays():
    x, y = np.array([3.0, 1.0, 2.0]), np.array([30.0, 10.0, 20.0])
    with pytest.raises(InputError, match="not monotonic"):
        as_pattern((x, y), x_unit="q")
    p = as_pattern((x, y), x_unit="q", sort=True)
    np.testing.assert_array_equal(p.x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(p.y, [10.0, 20.0, 30.0])


def test_derived_patterns_keep_working():
    """Unit conversions, cropping and resampling build new Patterns from ordered points."""
    p = Pattern(np.linspace(10, 80, 50), np.linspace(1, 2, 50), "xrd", "tth", 1.5406)
    q = p.to_q()
    assert np.all(np.diff(q.x) > 0)
    assert np.all(np.diff(q.to_two_theta().x) > 0)
    assert len(p.crop(20, 30)) > 0
    down = p.resample(np.linspace(70, 20, 11))  # a grid given downwards is reversed like a scan
    assert np.all(np.diff(down.x) > 0)


def test_readers_name_the_file(tmp_path):
    """Files go through the readers' own x-order check (file named, 'sort the file'); a downward
    column file is read reversed."""
    from nanosolve.scattering.readers import read_pattern

    (tmp_path / "down.xy").write_text("# Q I\n" + "".join(f"{q} {q * 2}\n" for q in (3.0, 2.0, 1.0)))
    p = read_pattern(tmp_path / "down.xy")
    np.testing.assert_array_equal(p.x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(p.y, [2.0, 4.0, 6.0])
    (tmp_path / "twoscans.xy").write_text("# Q I\n1 1\n2 2\n3 3\n1.5 1\n2.5 2\n")
    with pytest.raises(InputError, match=r"twoscans\.xy: x is not monotonic.*sort the file"):
        read_pattern(tmp_path / "twoscans.xy")


def test_gsas_fxye_that_turns_back_names_the_file(tmp_path):
    from nanosolve.scattering.readers import read_pattern

    bank = "title\nBANK 1 6 6 CONS 1000 23.4 0 0 FXYE\n"  # 2θ in centidegrees, listed per point
    rows = [(1000, 5), (1100, 6), (1200, 7), (1050, 5), (1150, 6), (1250, 7)]
    (tmp_path / "twoscans.fxye").write_text(bank + "".join(f"{a} {b} 1.0\n" for a, b in rows))
    with pytest.raises(InputError, match=r"twoscans\.fxye: x is not monotonic.*sort the file"):
        read_pattern(tmp_path / "twoscans.fxye", wavelength=1.5406)
