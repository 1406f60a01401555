"""Datasets: graph-record stores, the PyTorch Geometric dataset class, deterministic splits,
and the CHILI generators (:mod:`nanosolve.datasets.chili`).

``ChiliDataset`` is imported lazily so that processes that only write or read stores (generator
workers) do not pay for importing torch_geometric.
"""

from nanosolve.datasets.splits import grouped_split, random_split, stratified_subset
from nanosolve.datasets.storage import GraphStore, ShardedGraphStore, open_store

__all__ = ["GraphStore", "ShardedGraphStore", "open_store", "ChiliDataset",
           "random_split", "grouped_split", "stratified_subset"]


def __getattr__(name):
    if name == "ChiliDataset":
        from nanosolve.datasets.pyg import ChiliDataset
        return ChiliDataset
    raise AttributeError(f"module 'nanosolve.datasets' has no attribute {name!r}")
