"""Shared fixtures: where the checkout, the small test files and the read-only reference data live.

The tests are laid out like the package (``tests/structures``, ``tests/scattering``, ``tests/datasets``,
``tests/models/<family>``, ``tests/solve``, ``tests/cli``) plus ``tests/repo`` for checks on the
repository as a whole (layering, packaging, quoted numbers, provenance). A test that needs a file finds it
through these fixtures, never relative to its own location, so tests can move between folders.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from nanosolve.paths import shared_data_dir

#: The checkout (the folder holding pyproject.toml).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Small input files the tests read (tests/data).
TEST_DATA = REPO_ROOT / "tests" / "data"
SHARED_DATA = shared_data_dir()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout (benchmarks/, docs/, src/ below it)."""
    return REPO_ROOT


def _load_benchmark_script(relpath: str) -> ModuleType:
    path = REPO_ROOT / "benchmarks" / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def benchmark_script():
    """Import a script under benchmarks/ (not a package) as a module: ``benchmark_script("chili/x.py")``."""
    return _load_benchmark_script


@pytest.fixture(scope="session")
def local_data() -> Path:
    """tests/data: small files (pattern formats, CIFs) made for the tests (``shared_data``: the large reference data)."""
    return TEST_DATA


@pytest.fixture(scope="package")  # module-scoped fixtures depend on it
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"reference data not found at {SHARED_DATA} (set NANOSOLVE_DATA, or place shared/data beside the clone)"
        )
    return SHARED_DATA
