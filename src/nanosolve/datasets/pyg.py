"""PyTorch Geometric view of a graph store (CHILI records).

The store *is* the processed dataset: no download or process step, nothing is copied. Graphs are
read one at a time from the store on ``get`` (random access, ~0.3 ms each), so datasets larger
than memory work, and DataLoader workers (fork or spawn) each open their own read connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from nanosolve.datasets.storage import GraphStore, ShardedGraphStore, open_store
from nanosolve.errors import InputError

__all__ = ["ChiliDataset", "ChiliData", "record_to_data"]

# Data attributes that are plain tensor slots; every other public name of Data is a method or
# property that a record field must not shadow
_DATA_SLOTS = {"x", "edge_index", "edge_attr", "edge_weight", "pos", "y", "face", "time", "batch"}
_RESERVED = {n for n in dir(Data) if not n.startswith("_")} - _DATA_SLOTS | {"ptr"}
_UNIT_CELL_NODE_FIELDS = ("unit_cell_x", "unit_cell_pos_abs", "unit_cell_pos_frac")


class ChiliData(Data):
    """A particle graph plus its unit-cell graph in one ``Data``.

    Batching shifts ``edge_index`` by the particle's node count (PyG default) and
    ``unit_cell_edge_index`` by the unit cell's node count, so both graphs stay consistent
    in a batch.
    """

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "unit_cell_edge_index":
            for name in _UNIT_CELL_NODE_FIELDS:
                if name in self:
                    return self[name].size(0)
            if "unit_cell_n_atoms" in self:
                return int(self["unit_cell_n_atoms"])
            raise InputError("unit_cell_edge_index needs unit_cell_x, unit_cell_pos_* or unit_cell_n_atoms "
                             "in the fields to be batched")
        return super().__inc__(key, value, *args, **kwargs)


def record_to_data(record: dict[str, Any]) -> ChiliData:
    """Turn a store record into a :class:`ChiliData`.

    * 2-D and higher arrays (node/edge features, ``edge_index``, positions) -> tensors as stored.
    * 1-D arrays are graph-level (signals [L], ``cell_params`` [6]) -> tensors [1, L], so a
      batch of B graphs stacks them to [B, L].
    * 0-d arrays and numeric labels (int, float, bool) -> 0-d tensors (int64, the default
      float dtype, bool), batched to [B].
    * strings and lists stay Python attributes (batched into lists); None values are left out.
    """
    data = ChiliData()
    n_nodes = None
    for name, value in record.items():
        if name in _RESERVED:
            raise InputError(f"record field {name!r} would shadow torch_geometric Data.{name}")
        if isinstance(value, np.ndarray):
            t = torch.from_numpy(value)
            if t.dim() == 1:
                t = t.unsqueeze(0)
            data[name] = t
        elif isinstance(value, bool):
            data[name] = torch.tensor(value)
        elif isinstance(value, int):
            data[name] = torch.tensor(value, dtype=torch.int64)
        elif isinstance(value, float):
            data[name] = torch.tensor(value, dtype=torch.get_default_dtype())
        elif value is not None:
            data[name] = value
    for name in ("x", "pos_abs", "pos_frac"):
        if name in record and isinstance(record[name], np.ndarray):
            n_nodes = record[name].shape[0]
            break
    if n_nodes is None and isinstance(record.get("n_atoms"), int):
        n_nodes = record["n_atoms"]
    if n_nodes is not None:
        data.num_nodes = int(n_nodes)
    return data


class ChiliDataset(Dataset):
    """A graph store as a ``torch_geometric.data.Dataset``.

    Args:
        path: a store file (:class:`GraphStore`) or directory (:class:`ShardedGraphStore`),
            opened read-only.
        transform: applied to each ``Data`` on access (PyG semantics).
        pre_filter: ``f(meta: dict) -> bool`` evaluated once, at construction, on each record's
            label dict (e.g. ``lambda m: m["radius"] <= 10``); records for which it is False are
            left out. It sees labels only, so filtering never reads an array.
        fields: names of arrays/labels to load (None = all); e.g. ``["x", "edge_index", "xrd",
            "crystal_system_number"]`` reads and converts only those.

    The dataset is a snapshot of the records present at construction. ``ds.meta`` is the list
    of label dicts of the records in dataset order; ``ds.attrs`` the store's attributes
    (signal grids, parameters). ``ds[i]``, ``ds[1:5]``, ``ds[[0, 3]]``, ``ds[tensor]``,
    ``ds.shuffle()`` and ``DataLoader`` work as for any PyG dataset; pass
    ``follow_batch=["unit_cell_x"]`` to the DataLoader to get ``unit_cell_x_batch``, the graph
    of each unit-cell node.
    """

    def __init__(self, path: str | os.PathLike, transform: Callable | None = None,
                 pre_filter: Callable[[dict], bool] | None = None, fields: Iterable[str] | None = None):
        super().__init__(root=None, transform=transform, pre_transform=None, pre_filter=pre_filter, log=False)
        self.path = str(path)
        self.store: GraphStore | ShardedGraphStore = open_store(path, mode="r")
        rows = self.store.meta_rows()
        if pre_filter is not None:
            rows = [r for r in rows if pre_filter(r[2])]
        self._idx = np.array([r[0] for r in rows], dtype=np.int64)
        self.record_keys: list[str] = [r[1] for r in rows]
        self.meta: list[dict[str, Any]] = [r[2] for r in rows]
        self.fields = None if fields is None else tuple(fields)
        if self.fields is not None and len(self._idx):
            available = set(self.store.read_idx(int(self._idx[0])).keys())
            unknown = sorted(set(self.fields) - available)
            if unknown:
                raise InputError(f"unknown fields {unknown}; records have {sorted(available)}", self.path)

    @property
    def attrs(self) -> dict[str, Any]:
        return self.store.attrs

    def len(self) -> int:
        return len(self._idx)

    def get(self, idx: int) -> ChiliData:
        record = self.store.read_idx(int(self._idx[idx]), fields=self.fields)
        return record_to_data(record)

    def __repr__(self) -> str:
        return f"ChiliDataset({self.path!r}, {len(self)} graphs)"
