"""Where a PXRDNet model loses: each stage of a solve scored on held-out crystals from the truth.

On the same test crystals as ``bench_pxrdnet.py`` (``--run``, ``--n``, ``--every``, ``--unseen-by``
mean the same there), for each model directory given:

* regressor L1 at μ: mean |F(μ) − y| of the pattern predicted from the truth's own code (the
  encoder's mean) against its input pattern y;
* search L1 and ‖z* − μ‖: the best pattern L1 that latent optimisation reaches (K codes, the
  benchmark's steps and objective), and how far the closest optimised code lies from μ;
* decode(μ) R_wp² and match: the crystal decoded from the truth's code with the formula forced
  (what a perfect latent search would hand the decoder), scored like the benchmark (paper R_wp²,
  StructureMatcher);
* lattice head R_wp²: the truth's fractional coordinates placed in the lattice the heads predict
  at μ, isolating the lattice head.

A search L1 well below the regressor's own L1 at μ, with codes far from μ, means the search fits
the regressor rather than finding the truth's code. Nothing here is used by ``solve``.

Usage:
    python benchmarks/pxrdnet/diagnose_pxrdnet.py --run RUN --models RUN OTHER_MODEL_DIR [--unseen-by OTHER_RUN]
Prints a markdown table and writes benchmarks/pxrdnet/results/ablations/pxrdnet_diagnosis.json.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from bench_pxrdnet import HERE, _save, load_test

STAGES = ("l1_mu", "l1_search", "dist_search_mu", "norm_mu", "rwp2_decode_mu", "match_decode_mu", "rwp2_lattice_head")


def diagnose(model_dir: Path, crystals, patterns, k: int, steps: int, n_step_each: int, seed: int) -> list[dict]:
    """One record per crystal with the :data:`STAGES` scores of the model in ``model_dir``."""
    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.models.cdvae.sample import decode, encode
    from nanosolve.models.pxrdnet.sample import optimize_latents_batch
    from nanosolve.models.pxrdnet.train import load_model
    from nanosolve.solve.pxrd_refine import paper_rwp2
    from nanosolve.structures.crystal import Crystal, lattice_from_parameters

    model, _ = load_model(model_dir)
    types_list = [sorted(c.species) for c in crystals]
    y = torch.as_tensor(np.asarray(patterns), dtype=torch.float32)
    mu, _ = encode(model, crystals)
    with torch.no_grad():
        l1_mu = (model.predict_pattern(mu) - y).abs().mean(-1).numpy()
        _, lengths, angles = model.predict_lattice(mu, torch.tensor([len(c) for c in crystals]))
    fit = optimize_latents_batch(model, patterns, np.ones_like(patterns, dtype=bool), types_list, k, steps, seed)
    l1_search = fit.pattern_l1.reshape(len(crystals), k)
    dist = (fit.z.reshape(len(crystals), k, -1) - mu[:, None]).norm(dim=-1).numpy()
    decoded = decode(model, mu, atom_types=types_list, n_step_each=n_step_each, seed=seed)
    records = []
    for i, (truth, dec) in enumerate(zip(crystals, decoded)):
        in_head_lattice = Crystal(lattice_from_parameters(*lengths[i].tolist(), *angles[i].tolist()),
                                  truth.frac_coords, list(truth.species), name="truth_in_head_lattice")
        records.append({"formula": truth.formula, "l1_mu": float(l1_mu[i]), "l1_search": float(l1_search[i].min()),
                        "dist_search_mu": float(dist[i].min()), "norm_mu": float(mu[i].norm()),
                        "rwp2_decode_mu": paper_rwp2(truth, dec),
                        "match_decode_mu": bool(match_and_rmse(dec, truth)[0]),
                        "rwp2_lattice_head": paper_rwp2(truth, in_head_lattice)})
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="run directory that gives the test crystals")
    ap.add_argument("--models", type=Path, nargs="+", default=None, help="model directories (default: RUN)")
    ap.add_argument("--unseen-by", type=Path, nargs="+", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--n-step-each", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pxrdnet_diagnosis.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crystals, patterns, _, pick = load_test(args.run, args.n, args.seed, args.unseen_by, args.every)
    results = {"run": str(args.run), "unseen_by": [str(d) for d in args.unseen_by or []], "n": len(crystals),
               "test_indices": pick.tolist(), "k": args.k, "steps": args.steps, "n_step_each": args.n_step_each,
               "models": {}}
    for d in args.models or [args.run]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records = diagnose(d, crystals, patterns, args.k, args.steps, args.n_step_each, args.seed)
        results["models"][str(d)] = {"mean": {s: float(np.mean([r[s] for r in records])) for s in STAGES},
                                     "records": records}
        _save(args.out, results)
    print(f"n = {len(crystals)} test crystals of {args.run}; K = {args.k}, {args.steps} steps\n")
    print("| model | " + " | ".join(STAGES) + " |\n|---|" + "---|" * len(STAGES))
    for d, r in results["models"].items():
        print(f"| {d} | " + " | ".join(f"{r['mean'][s]:.3f}" for s in STAGES) + " |")


if __name__ == "__main__":
    main()
