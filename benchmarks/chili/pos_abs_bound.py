"""CHILI-3K pos_abs: a lower bound on the per-atom position error of a permutation-equivariant model, and the
radius leak of the random split, computed from the particles themselves.

**The bound.** pos_abs asks a GNN for every atom's position (Å, particle centred on its central metal atom)
from elements and bonds. The bond graph does not change under a symmetry operation g of the particle, so a
model that is exactly permutation-equivariant gives every atom of one orbit {g r} the same prediction p,
and the best common p for an orbit is its geometric median, which lies in the subspace F fixed by the
particle's symmetry group G. Each atom's error is then at least its distance to F:

* G contains the inversion, or rotations about two different axes: F = {centre}, bound |r|;
* G fixes one axis or one mirror plane: bound = the distance to that line / plane;
* G trivial: bound 0 (the model might be perfect there).

G is found per particle by testing, on the positions and species (KD-tree, 1e-3 Å), the 48 operations of
the cube and the 24 of the hexagonal prism in the particle's Cartesian frame (CHILI cells put a along x,
b in the xy plane): every operation kept is verified on the atoms, so a missed operation can only lower
the bound. Reported: the share of atoms in each class, and the bound averaged per atom (CHILI's
``position_MAE``) and per graph, counting only the F = {centre} particles (as quoted before) and
counting the axis/plane ones too.

The bound needs exact permutation equivariance. GraphUNet's top-k pooling breaks ties by node index, so
it is not exactly equivariant, and node order in CHILI follows the cutting order (distance from the
centre), which a model that sees indices can exploit: the bound does not apply to it.

**The radius leak.** Each CHILI crystal is cut at 5 radii around the same central atom, so the smaller
particles are the cores of the larger ones. The paper's split (and ``nanosolve bench chili``'s,
:func:`nanosolve.datasets.splits.random_split` over graphs) is random over graphs: the share of test
graphs whose crystal has another radius in training, and the share whose every atom sits at the same
position in a larger training particle, are computed for seeds 0-2 (no data needed: graph i is crystal
i // 5, radius i % 5).

Usage: python benchmarks/chili/pos_abs_bound.py [--out benchmarks/chili/results/pos_abs_bound.json] [--limit N]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from nanosolve.provenance import write_record

HERE = Path(__file__).resolve().parent
TOL = 1e-3  # Å


def candidate_operations() -> list[np.ndarray]:
    """[3, 3] orthogonal matrices: the cube's 48 (signed permutations) and the hexagonal prism's 24 (6-fold
    about z, with and without the mirror z -> -z, times the 2-fold about x), without duplicates."""
    ops = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            ops.append(m)
    for k in range(6):
        c, s = np.cos(k * np.pi / 3), np.sin(k * np.pi / 3)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        for flip in (np.eye(3), np.diag([1.0, -1.0, -1.0])):  # 2-fold about x
            for mz in (np.eye(3), np.diag([1.0, 1.0, -1.0])):
                ops.append(rz @ flip @ mz)
    out = []
    for m in ops:
        if not any(np.allclose(m, o, atol=1e-9) for o in out):
            out.append(m)
    return out


def symmetry_group(positions: np.ndarray, species: list[str], ops) -> list[np.ndarray]:
    """The operations of ``ops`` that map the particle (about the origin) onto itself, species kept."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    sp = np.asarray(species)
    tree = cKDTree(pos)
    probe = np.random.default_rng(0).choice(len(pos), min(len(pos), 64), replace=False)  # cheap rejection first
    kept = []
    for m in ops:
        d, j = tree.query(pos[probe] @ m.T, distance_upper_bound=TOL)
        if not (np.all(np.isfinite(d)) and np.array_equal(sp[j], sp[probe])):
            continue
        d, j = tree.query(pos @ m.T, distance_upper_bound=TOL)
        if np.all(np.isfinite(d)) and np.array_equal(sp[j], sp) and len(set(j.tolist())) == len(pos):
            kept.append(m)
    return kept


def fixed_subspace(group) -> np.ndarray:
    """[3, k] orthonormal basis of the subspace every operation of ``group`` fixes (k = 0..3)."""
    a = np.concatenate([m - np.eye(3) for m in group], axis=0) if group else np.zeros((1, 3))
    _, s, vt = np.linalg.svd(a)
    rank = int((s > 1e-8).sum())
    return vt[rank:].T


def particle_bound(positions, species, ops) -> dict:
    """Symmetry class and per-atom error bounds (Å) of one particle."""
    pos = np.asarray(positions, dtype=np.float64)
    group = symmetry_group(pos, species, ops)
    basis = fixed_subspace(group)
    has_inversion = any(np.allclose(m, -np.eye(3)) for m in group)
    k = basis.shape[1]
    dist = np.linalg.norm(pos - (pos @ basis) @ basis.T, axis=1)  # distance to F (|r| when F = {0})
    kind = "inversion" if has_inversion else {0: "rotations_centre_only", 1: "axis", 2: "plane", 3: "none"}[k]
    return {"kind": kind, "group_order": len(group), "fixed_dim": k, "n_atoms": len(pos),
            "bound_sum": float(dist.sum()), "radius_sum": float(np.linalg.norm(pos, axis=1).sum())}


def radius_leak(n_crystals: int = 636, n_radii: int = 5, seeds=(0, 1, 2), fractions=(0.8, 0.1, 0.1)) -> dict:
    """Per seed: share of test graphs with a sibling radius in training, and with a LARGER sibling in
    training (whose core holds the test particle's every atom at the same position)."""
    from nanosolve.datasets.splits import random_split

    n = n_crystals * n_radii
    out = {}
    for seed in seeds:
        parts = random_split(n, fractions, seed=seed)
        train = set(parts["train"].tolist())
        test = parts["test"]
        crystal, radius = test // n_radii, test % n_radii
        sibling = [any(c * n_radii + r in train for r in range(n_radii) if r != ri) for c, ri in zip(crystal, radius)]
        larger = [any(c * n_radii + r in train for r in range(ri + 1, n_radii)) for c, ri in zip(crystal, radius)]
        out[str(seed)] = {"n_test": int(len(test)), "sibling_in_train": float(np.mean(sibling)),
                          "larger_sibling_in_train": float(np.mean(larger)),
                          "largest_radius_test_graphs": float(np.mean(radius == n_radii - 1))}
    return out


def nested_cores(particles) -> bool:
    """True if each smaller particle (radius order) is exactly the set of atoms of the next larger one within
    its radius (same species at the same positions), i.e. the cores are shared."""
    from scipy.spatial import cKDTree

    for small, big in zip(particles, particles[1:]):
        d, j = cKDTree(np.asarray(big.positions)).query(np.asarray(small.positions), distance_upper_bound=TOL)
        if not (np.all(np.isfinite(d)) and list(np.asarray(big.species)[j]) == list(small.species)):
            return False
    return True


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "results" / "pos_abs_bound.json"))
    ap.add_argument("--limit", type=int, default=None, help="first N crystals only (a quick check)")
    args = ap.parse_args(argv)

    from nanosolve.datasets.chili.recipe import chili3k_tasks
    from nanosolve.structures.builders.cut import cut_nanoparticle

    ops = candidate_operations()
    tasks = chili3k_tasks()[: args.limit]
    t0 = time.monotonic()
    rows, nested = [], []
    for task in tasks:
        crystal = task.load()
        particles = [cut_nanoparticle(crystal, r) for r in task.radii]
        for r, p in zip(task.radii, particles):
            rows.append({"id": f"{task.key}_r{r:g}", "crystal": task.key, "radius": r,
                         **particle_bound(p.positions, list(p.species), ops)})
        nested.append(nested_cores(particles))
        if task.index % 20 == 0:
            print(f"{task.index + 1}/{len(tasks)} {task.key}: {[x['kind'] for x in rows[-5:]]} "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
    n_atoms = sum(r["n_atoms"] for r in rows)
    kinds = ("inversion", "rotations_centre_only", "axis", "plane", "none")
    share = {k: sum(r["n_atoms"] for r in rows if r["kind"] == k) / n_atoms for k in kinds}
    centre = [r for r in rows if r["fixed_dim"] == 0]
    per_atom_centre = sum(r["bound_sum"] for r in centre) / n_atoms
    per_atom_all = sum(r["bound_sum"] for r in rows) / n_atoms
    per_graph_centre = float(np.mean([r["bound_sum"] / r["n_atoms"] if r["fixed_dim"] == 0 else 0.0 for r in rows]))
    per_graph_all = float(np.mean([r["bound_sum"] / r["n_atoms"] for r in rows]))
    mean_radius = sum(r["radius_sum"] for r in rows) / n_atoms
    record = {
        "benchmark": "chili_pos_abs_bound", "part": "all CHILI-3K graphs (no model, no split)",
        "n_graphs": len(rows), "n_atoms": n_atoms, "atom_share": share,
        "bound_per_atom_centre_only": per_atom_centre, "bound_per_atom_with_axes_planes": per_atom_all,
        "bound_per_graph_centre_only": per_graph_centre, "bound_per_graph_with_axes_planes": per_graph_all,
        "mean_distance_from_centre_per_atom": mean_radius,
        "paper_best_pos_abs": 14.765, "paper_model": "GraphUNet (not exactly permutation-equivariant)",
        "nested_cores": {"crystals": len(nested), "nested": int(sum(nested))},
        "radius_leak_random_split": radius_leak(),
        "tolerance_A": TOL, "candidate_operations": len(ops), "seconds": round(time.monotonic() - t0, 1),
        "rows": rows,
    }
    write_record(args.out, record)
    print(f"atoms: {n_atoms:,} in {len(rows)} graphs; shares " + ", ".join(f"{k} {v:.1%}" for k, v in share.items()))
    print(f"bound per atom: {per_atom_centre:.2f} Å (centre-only groups), {per_atom_all:.2f} Å (with axes/planes); "
          f"per graph {per_graph_centre:.2f} / {per_graph_all:.2f} Å; paper 14.765 Å")
    for seed, v in record["radius_leak_random_split"].items():
        print(f"seed {seed}: test graphs with a sibling radius in train {v['sibling_in_train']:.1%}, with a larger "
              f"one (holding the test particle as its core) {v['larger_sibling_in_train']:.1%}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
