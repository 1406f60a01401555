"""Shared fixtures: where the read-only reference data lives beside the clone."""

from pathlib import Path

import pytest

from nanosolve.paths import shared_data_dir

SHARED_DATA = shared_data_dir()


@pytest.fixture(scope="package")  # module-scoped fixtures depend on it
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set NANOSOLVE_DATA, or place shared/data beside the clone)")
    return SHARED_DATA
