"""A tiny CHILI-3K store (Zn and Au, radii 5 and 6 Å) shared by the CHILI benchmark tests of a module."""

from __future__ import annotations

import pytest

from nanosolve.datasets.chili.generate import dataset_attrs, generate
from nanosolve.datasets.chili.recipe import chili3k_tasks
from nanosolve.datasets.storage import GraphStore


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("chili_bench") / "tiny.sqlite"
    with GraphStore(path) as st:
        st.set_attrs(dataset_attrs("chili3k", (5.0, 6.0), True))
        generate(chili3k_tasks(metals=("Zn", "Au"), radii=(5.0, 6.0)), st, workers=0)
    return path
