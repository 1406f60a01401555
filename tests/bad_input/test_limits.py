"""The library pieces behind the bad-input suite: exact element symbols, the one formula parser,
pattern validation and the estimates made before an allocation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nanosolve.errors import InputError, ResourceError


@pytest.mark.parametrize("label,symbol", [("Fe", "Fe"), ("FE", "Fe"), ("Fe2+", "Fe"), ("O-2", "O"), ("Co1", "Co"),
                                          ("Co1a", "Co"), (" Au ", "Au"), ("U", "U")])
def test_element_labels_are_read(label, symbol):
    from nanosolve.structures.elements import normalize_symbol

    assert normalize_symbol(label) == symbol


@pytest.mark.parametrize("label", ["Uuo", "Ww", "Xx", "X", "Au Ag", "", "12", "Fee"])
def test_element_symbols_are_exact(label):
    from nanosolve.structures.elements import normalize_symbol

    with pytest.raises(InputError, match="unknown element"):
        normalize_symbol(label)


def test_formula_parser_keeps_valid_input():
    from nanosolve.structures.formula import parse_formula

    assert parse_formula("SrTiO3") == {"Sr": 1, "Ti": 1, "O": 3}
    assert parse_formula("Sr1Ti1O3") == {"Sr": 1, "Ti": 1, "O": 3}
    assert parse_formula("Ca(OH)2") == {"Ca": 1, "O": 2, "H": 2}
    assert parse_formula("Sr:1, Ti:1, O:3") == {"Sr": 1, "Ti": 1, "O": 3}
    assert parse_formula("Fe0.5O", integer=False) == {"Fe": 0.5, "O": 1.0}
    assert parse_formula({"Na": 2, "Cl": 2, "K": 0}) == {"Na": 2, "Cl": 2}


@pytest.mark.parametrize("text,match", [("Mg0O4", "count of Mg"), ("Fe0.5O", "whole"), ("Uuo", "Uuo"),
                                        ("MGO", "unknown element"), ("Sr(TiO3", "bracket"), ("", "empty"),
                                        ("Mg100000O", "100001 atoms"), ("Mg-1O", "cannot read")])
def test_formula_parser_refuses(text, match):
    from nanosolve.structures.formula import parse_formula

    with pytest.raises(InputError, match=match):
        parse_formula(text)


def test_huge_formula_fails_fast_before_any_expansion():
    from nanosolve.models.pxrdnet.sample import formula_types

    t0 = time.perf_counter()
    with pytest.raises(InputError, match="too large"):
        formula_types("Mg99999999999999999999O")
    with pytest.raises(InputError, match="at most 10000"):
        formula_types("Mg9999999O")  # 10⁷ atoms: refused on the count, no 10⁷-entry list
    assert time.perf_counter() - t0 < 1.0


def test_x_order():
    from nanosolve.scattering.readers.validate import check_x_order

    assert check_x_order([1, 2, 3]) is False
    assert check_x_order([3, 2, 1]) is True  # reversed by the reader
    with pytest.raises(InputError, match="turns back at point 3"):
        check_x_order([1, 2, 1.5, 3])


def test_validate_pattern_rules():
    from nanosolve.scattering.pattern import Pattern
    from nanosolve.scattering.readers.validate import validate_pattern

    x = np.linspace(10, 80, 50)
    ok = Pattern(x, np.linspace(1, 2, 50), "xrd", "tth", 1.54)
    assert validate_pattern(ok) is ok
    small_negatives = Pattern(x, np.r_[-0.1, np.ones(49)], "xrd", "tth", 1.54)  # subtracted background
    validate_pattern(small_negatives)
    gr = Pattern(np.linspace(0, 30, 50), np.sin(np.linspace(0, 30, 50)), "gr", "r")
    validate_pattern(gr)  # G(r) may be negative
    for bad, match in [(Pattern(x, -np.ones(50), "xrd", "tth", 1.54), "all zero or negative"),
                       (Pattern(x, np.r_[-5.0, np.ones(49)], "xrd", "tth", 1.54), "deeper"),
                       (Pattern(x * 3, np.ones(50), "xrd", "tth", 1.54), r"outside \(0, 180\)"),
                       (Pattern(x - 20, np.ones(50), "xrd", "q"), "Q runs"),
                       (Pattern(x, np.ones(50) * 1e300, "xrd", "tth", 1.54), "beyond"),
                       (Pattern(x, np.ones(50), "xrd", "tth", 1e6), "wavelength")]:
        with pytest.raises(InputError, match=match):
            validate_pattern(bad, "f.xy")


def test_grid_points_without_allocating():
    from nanosolve.scattering.memory import grid_points, guard_grid

    assert grid_points(0, 3, 0.01) == 300
    assert grid_points(0, 3, 1e-9) == 3_000_000_000
    assert guard_grid(0, 3, 0.01, "q") == 300
    with pytest.raises(ResourceError, match="3e\\+09 grid points"):
        guard_grid(0, 3, 1e-9, "--qstep 1e-09")


def test_memory_limit_env_and_estimates(monkeypatch):
    from nanosolve.scattering import memory

    monkeypatch.setenv(memory.MEMORY_LIMIT_ENV, "100M")
    assert memory.available_memory_bytes() == 100 * 1024**2
    # Bragg of a 5,000-atom 40 Å cell to Q = 8: 2.8e5 reflections x 5,000 sites x 4 float64 ≈ 41 GiB
    need, n_refl = memory.estimate_bragg_bytes(np.eye(3) * 40, 5000, 8.0)
    assert 2.5e5 < n_refl < 3.0e5 and 35 * 1024**3 < need < 50 * 1024**3
    with pytest.raises(ResourceError, match="needs about"):
        memory.guard_bragg(np.eye(3) * 40, 5000, 8.0)
    memory.guard_bragg(np.eye(3) * 4, 8, 8.0)  # a rock-salt cell fits in 100 MB
    # the [Q x r] kernel of a PDF fit over 10,000 Å: 95,000 Q points x 3,000 r points x 4 x 8 B
    with pytest.raises(ResourceError, match="r up to 1e\\+04"):
        memory.guard_pdf_fit(3000, 1e4, 30.0)
    with pytest.raises(ResourceError, match="would take about"):
        memory.guard_candidates(10**9, 1024, 1.0, "1e9 candidates")


@pytest.mark.parametrize("k, err", [(0, InputError), (-3, InputError), (2.5, InputError), (10**9, ResourceError)])
def test_api_solves_check_k_before_any_work(k, err):
    """The Python API refuses a bad k as the CLI does, before a model is loaded or a candidate built."""
    from nanosolve.solve import solve_pdf
    from nanosolve.solve.pxrd import PowderSolveSettings

    r = np.linspace(0.5, 30.0, 600)
    g = np.sin(2.4 * r) * np.exp(-r / 10.0)
    t0 = time.perf_counter()
    with pytest.raises(err, match="-k"):
        solve_pdf((r, g), element="Au", k=k)
    with pytest.raises(err, match="-k"):
        PowderSolveSettings(k=k).validate()
    assert time.perf_counter() - t0 < 30  # refused up front, not after sampling a billion candidates


def test_available_memory_comes_from_psutil(monkeypatch):
    """psutil is a dependency (imported plainly): the OS figure is its ``available``."""
    import psutil

    from nanosolve.scattering import memory

    monkeypatch.delenv(memory.MEMORY_LIMIT_ENV, raising=False)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("VM", (), {"available": 3 * 1024**3})())
    assert memory._os_available_bytes() == 3 * 1024**3
    assert memory.available_memory_bytes() <= 3 * 1024**3
