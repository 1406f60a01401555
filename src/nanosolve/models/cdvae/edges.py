"""Batched periodic neighbour lists (all lattice images within the cutoff) + a tie-inclusive k cap.

CDVAE rebuilds the graph of every noisy structure at every training and Langevin step. The pair
search is vesin's (C++ cell lists, one call per cell): measured on 200 perov_5 cells at a 7 Å
cutoff, a loop of vesin calls takes 0.03 s while enumerating the image cube of the whole batch in
torch (``backend="torch"``, kept as an independent cross-check and for non-CPU devices) takes
0.17 s, because a 4 Å cell needs 7³ images. Both give identical edge sets (tested).

Convention (same as :mod:`nanosolve.structures.graphs`): an edge e = (i, j, shift) has the vector
``cart[j] + shift @ lattice - cart[i]``; both directions of every pair are present; an atom's own
images (i == j, shift ≠ 0) are edges. Messages flow j → i (``edge_index[1]`` is the receiver i).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _pair_index(num_atoms: torch.Tensor):
    """All ordered (i, j) atom pairs inside each crystal (global indices) and the crystal of each pair."""
    device = num_atoms.device
    offsets = torch.cumsum(num_atoms, 0) - num_atoms
    n_pairs = num_atoms * num_atoms
    crystal = torch.repeat_interleave(torch.arange(len(num_atoms), device=device), n_pairs)
    local = torch.arange(int(n_pairs.sum()), device=device) - torch.repeat_interleave(
        torch.cumsum(n_pairs, 0) - n_pairs, n_pairs)
    n_of = num_atoms[crystal]
    i = torch.div(local, n_of, rounding_mode="floor") + offsets[crystal]
    j = local % n_of + offsets[crystal]
    return i, j, crystal


@torch.no_grad()
def periodic_edges(cart: torch.Tensor, lattice: torch.Tensor, num_atoms: torch.Tensor, cutoff: float,
                   max_neighbors: int | None = None, backend: str = "vesin", chunk: int = 4_000_000):
    """Periodic neighbour list of a batch of crystals.

    Args:
        cart: [N, 3] Cartesian positions (Å), atoms of crystal b contiguous, inside their cell
            (any position works; images are enumerated from the wrapped fractional difference).
        lattice: [B, 3, 3] lattice rows (Å).  num_atoms: [B] int64.
        cutoff: Å, edges with distance < cutoff.
        max_neighbors: keep per receiving atom the neighbours up to its ``max_neighbors``-th
            smallest distance *including every tie at that distance* (so the graph, and anything
            computed from distances on it, does not depend on atom order or on the cell choice).
    Returns:
        ``edge_index`` [2, E] (row 0 = source j, row 1 = receiver i), ``shift`` [E, 3] float
        (integer image offsets of j).
    """
    device = cart.device
    if cart.shape[0] == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=device), torch.zeros(0, 3, device=device)
    if backend == "vesin":
        src, dst, shift, dist = _vesin_pairs(cart, lattice, num_atoms, cutoff)
    elif backend == "torch":
        src, dst, shift, dist = _torch_pairs(cart, lattice, num_atoms, cutoff, chunk)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    if max_neighbors is not None and len(dist) > 0:
        keep = _tie_inclusive_knn(dst, dist, cart.shape[0], int(max_neighbors))
        src, dst, shift = src[keep], dst[keep], shift[keep]
    return torch.stack([src, dst]), shift.to(cart.dtype)


def _vesin_pairs(cart, lattice, num_atoms, cutoff):
    import vesin

    pos = cart.detach().cpu().double().numpy()
    lat = lattice.detach().cpu().double().numpy()
    counts = num_atoms.cpu().tolist()
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    ii, jj, ss, dd, off = [], [], [], [], 0
    for b, n in enumerate(counts):
        i, j, s, d = nl.compute(pos[off:off + n], lat[b], True, quantities="ijSd")
        keep = (d > 1e-8) & (d < cutoff)
        ii.append(i[keep].astype(np.int64) + off)
        jj.append(j[keep].astype(np.int64) + off)
        ss.append(s[keep])
        dd.append(d[keep])
        off += n
    dev = cart.device
    t = lambda parts, dt: torch.as_tensor(np.concatenate(parts), dtype=dt, device=dev)  # noqa: E731
    return t(jj, torch.long), t(ii, torch.long), t(ss, torch.float64).view(-1, 3), t(dd, torch.float64)


def _torch_pairs(cart, lattice, num_atoms, cutoff, chunk):
    device = cart.device
    lat = lattice.detach().to(torch.float64)
    inv = torch.linalg.inv(lat)  # columns = reciprocal vectors g_k (no 2π)
    i, j, crystal = _pair_index(num_atoms)
    frac = torch.einsum("nk,nkl->nl", cart.detach().to(torch.float64), inv[torch.repeat_interleave(
        torch.arange(len(num_atoms), device=device), num_atoms)])
    dfrac = frac[j] - frac[i]
    base = torch.round(dfrac)  # bring each pair difference into [-0.5, 0.5]: fewer images needed
    dfrac = dfrac - base
    # |dfrac_k + n_k| <= cutoff |g_k|  with |dfrac_k| <= 1/2  =>  |n_k| <= cutoff |g_k| + 1/2
    reach = torch.ceil(cutoff * inv.norm(dim=1).amax(0) + 0.5).long().tolist()  # per axis, batch max
    rng = [torch.arange(-r, r + 1, device=device, dtype=torch.float64) for r in reach]
    images = torch.cartesian_prod(*rng)  # [K, 3]
    K = images.shape[0]
    src, dst, shifts, dists = [], [], [], []
    step = max(1, chunk // K)
    for s in range(0, len(i), step):
        sl = slice(s, s + step)
        f = dfrac[sl, None, :] + images[None]  # [P, K, 3]
        v = torch.einsum("pkx,pxy->pky", f, lat[crystal[sl]])
        d = v.norm(dim=-1)
        ok = d < cutoff
        ok &= d > 1e-8
        p, k = ok.nonzero(as_tuple=True)
        src.append(j[sl][p])
        dst.append(i[sl][p])
        shifts.append(images[k] - base[sl][p])
        dists.append(d[p, k])
    return torch.cat(src), torch.cat(dst), torch.cat(shifts), torch.cat(dists)


def _tie_inclusive_knn(receiver: torch.Tensor, dist: torch.Tensor, n_nodes: int, k: int) -> torch.Tensor:
    """Mask of edges whose distance is <= the k-th smallest distance of their receiver (+1e-4 Å)."""
    counts = torch.bincount(receiver, minlength=n_nodes)
    width = int(counts.max())
    if width <= k:
        return torch.ones_like(dist, dtype=torch.bool)
    order = torch.argsort(receiver, stable=True)
    rec_sorted = receiver[order]
    start = torch.cumsum(counts, 0) - counts
    col = torch.arange(len(receiver), device=receiver.device) - start[rec_sorted]
    dense = torch.full((n_nodes, width), math.inf, dtype=dist.dtype, device=dist.device)
    dense[rec_sorted, col] = dist[order]
    kth = torch.topk(dense, k, dim=1, largest=False).values[:, -1]
    return dist <= kth[receiver] + 1e-4


def edge_vectors(cart: torch.Tensor, lattice: torch.Tensor, batch: torch.Tensor, edge_index: torch.Tensor,
                 shift: torch.Tensor) -> torch.Tensor:
    """[E, 3] differentiable edge vectors ``cart[j] + shift @ lattice[b] - cart[i]`` (Å)."""
    j, i = edge_index
    return cart[j] + torch.einsum("ek,ekl->el", shift, lattice[batch[i]]) - cart[i]


__all__ = ["periodic_edges", "edge_vectors"]
