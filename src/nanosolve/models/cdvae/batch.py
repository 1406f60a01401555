"""Crystals <-> the tensors CDVAE works on (one PyG ``Data`` per crystal, batched by PyG).

A crystal graph here carries no edges: CDVAE rebuilds periodic edges on the fly, for the clean
structure in the encoder and for every noisy structure in the decoder. Per-crystal fields:

* ``frac_coords`` [N, 3] float32, fractional, wrapped into [0, 1);
* ``atom_types``  [N] int64, atomic numbers Z (1..100);
* ``lengths``     [1, 3] float32, a b c (Å);  ``angles`` [1, 3] float32, α β γ (degrees);
* ``num_atoms``   [1] int64;  ``y`` [1, P] float32 properties (optional).

The lattice convention is :func:`nanosolve.structures.crystal.lattice_from_parameters`
(a along x, b in the xy plane); :func:`lattice_from_params` is its differentiable torch twin.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from nanosolve.structures.crystal import Crystal, lattice_from_parameters
from nanosolve.structures.elements import atomic_number

_SYMBOLS: list[str] | None = None


def _symbol(z: int) -> str:
    global _SYMBOLS
    if _SYMBOLS is None:
        from pymatgen.core.periodic_table import Element

        _SYMBOLS = [""] + [Element.from_Z(i).symbol for i in range(1, 119)]
    return _SYMBOLS[int(z)]


def crystal_to_data(crystal: Crystal, y: Sequence[float] | float | None = None) -> Data:
    """One crystal as a CDVAE ``Data`` (see module docstring); occupancies are ignored."""
    params = crystal.cell_params
    frac = np.mod(np.asarray(crystal.frac_coords, dtype=np.float64), 1.0)
    z = [atomic_number(s) for s in crystal.species]
    n = len(z)
    data = Data(
        frac_coords=torch.as_tensor(frac, dtype=torch.float32),
        atom_types=torch.as_tensor(z, dtype=torch.long),
        lengths=torch.as_tensor(params[:3], dtype=torch.float32).view(1, 3),
        angles=torch.as_tensor(params[3:], dtype=torch.float32).view(1, 3),
        num_atoms=torch.tensor([n], dtype=torch.long),
        num_nodes=n,
    )
    if y is not None:
        data.y = torch.as_tensor(np.atleast_1d(np.asarray(y, dtype=np.float32))).view(1, -1)
    return data


def lattice_from_params(lengths: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Differentiable lattice matrices [B, 3, 3] (rows a, b, c; Å) from lengths [B, 3] (Å) and
    angles [B, 3] (degrees), same convention as ``lattice_from_parameters``.

    The c_z component is clamped at a small positive value so that a network's impossible angle
    triple gives a flat (still finite) cell instead of NaN gradients.
    """
    a, b, c = lengths.unbind(-1)
    al, be, ga = torch.deg2rad(angles).unbind(-1)
    cos_al, cos_be, cos_ga, sin_ga = torch.cos(al), torch.cos(be), torch.cos(ga), torch.sin(ga)
    zero = torch.zeros_like(a)
    cx = c * cos_be
    cy = c * (cos_al - cos_be * cos_ga) / sin_ga
    cz = torch.sqrt(torch.clamp(c * c - cx * cx - cy * cy, min=1e-6))
    rows = [torch.stack([a, zero, zero], -1), torch.stack([b * cos_ga, b * sin_ga, zero], -1),
            torch.stack([cx, cy, cz], -1)]
    return torch.stack(rows, dim=-2)


def data_to_crystals(frac_coords: torch.Tensor, atom_types: torch.Tensor, lengths: torch.Tensor,
                     angles: torch.Tensor, num_atoms: torch.Tensor, names: Sequence[str] | None = None
                     ) -> list[Crystal]:
    """Split batched tensors (``frac_coords`` [ΣN, 3], ``atom_types`` [ΣN] Z, ``lengths``/``angles``
    [B, 3], ``num_atoms`` [B]) back into :class:`Crystal` objects.

    A cell whose angles cannot form a lattice (a model's impossible prediction) gets the clamped,
    nearly flat lattice of :func:`lattice_from_params` and ``properties["invalid_lattice"] = True``,
    so structural validity checks reject it.
    """
    frac = frac_coords.detach().cpu().double().numpy() % 1.0
    z = atom_types.detach().cpu().numpy()
    ls = lengths.detach().cpu().double().numpy()
    an = angles.detach().cpu().double().numpy()
    counts = num_atoms.detach().cpu().numpy().astype(int)
    out, start = [], 0
    for k, n in enumerate(counts):
        props = {}
        try:
            lattice = lattice_from_parameters(*ls[k], *an[k])
        except Exception:  # impossible angle triple predicted by a model
            lattice = lattice_from_params(torch.as_tensor(ls[k:k + 1]), torch.as_tensor(an[k:k + 1]))[0].numpy()
            props["invalid_lattice"] = True
        species = [_symbol(t) for t in z[start:start + n]]
        name = names[k] if names is not None else f"crystal_{k}"
        out.append(Crystal(lattice=lattice, frac_coords=frac[start:start + n], species=species, name=name,
                           properties=props))
        start += n
    return out


__all__ = ["crystal_to_data", "data_to_crystals", "lattice_from_params"]
