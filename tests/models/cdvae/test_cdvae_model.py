"""CDVAE model: symmetry of encoder and decoder, periodic edges vs vesin, loss, Langevin, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from nanosolve.errors import InputError
from nanosolve.models.cdvae.batch import crystal_to_data, lattice_from_params
from nanosolve.models.cdvae.config import CDVAEConfig, preset
from nanosolve.models.cdvae.edges import periodic_edges
from nanosolve.models.cdvae.model import CDVAE
from nanosolve.structures.crystal import Crystal, lattice_from_parameters

torch.set_num_threads(1)

SPECIES = ["Na", "Cl", "O", "Ti", "Sr", "O"]


def _tiny_cfg(**kw) -> CDVAEConfig:
    base = dict(latent_dim=16, enc_hidden=32, dec_hidden=32, head_hidden=32, n_rbf=16, max_atoms=24,
                enc_cutoff=5.0, dec_cutoff=5.0, enc_max_neighbors=12, dec_max_neighbors=12, type_permute_prob=0.0)
    base.update(kw)
    return preset("cpu", **base)


def _random_crystal(seed=0, n=6) -> Crystal:
    rng = np.random.default_rng(seed)
    lat = lattice_from_parameters(*rng.uniform(3.5, 5.5, 3), *rng.uniform(75, 105, 3))
    return Crystal(lat, rng.random((n, 3)), SPECIES[:n], name=f"random{seed}")


def _rotation(seed=1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _encode_raw(model, frac, species_z, lattice):
    """μ from explicit (possibly rotated) lattice matrix rows [3, 3] and fractional coords [N, 3]."""
    frac = torch.as_tensor(frac, dtype=torch.float32)
    n = len(frac)
    with torch.no_grad():
        mu, _ = model.encoder(frac, torch.as_tensor(species_z), torch.as_tensor(lattice, dtype=torch.float32)[None],
                              torch.tensor([n]), torch.zeros(n, dtype=torch.long))
    return mu[0]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CDVAE(_tiny_cfg()).eval()


def test_encoder_invariant_to_rotation_translation_permutation(model):
    c = _random_crystal()
    d = crystal_to_data(c)
    z = d.atom_types
    base = _encode_raw(model, d.frac_coords, z, c.lattice)
    rot = _encode_raw(model, d.frac_coords, z, c.lattice @ _rotation().T)
    shifted = _encode_raw(model, (d.frac_coords.numpy() + [0.31, -0.17, 0.52]) % 1.0, z, c.lattice)
    perm = np.random.default_rng(3).permutation(len(z))
    permuted = _encode_raw(model, d.frac_coords[perm], z[perm], c.lattice)
    for other in (rot, shifted, permuted):
        assert torch.allclose(base, other, atol=1e-6), (base - other).abs().max()
    worst = max(float((base - o).abs().max()) for o in (rot, shifted, permuted))
    # the encoder is not trivially constant: another structure gives a code 100x further away
    other = _encode_raw(model, _random_crystal(seed=5).frac_coords, z, c.lattice)
    assert (base - other).abs().max() > 100 * max(worst, 1e-7)


def test_encoder_invariant_to_cell_choice(model):
    c = _random_crystal(seed=2)
    base = _encode_raw(model, c.frac_coords, crystal_to_data(c).atom_types, c.lattice)
    sc = c.supercell((2, 1, 2))
    sup = _encode_raw(model, sc.frac_coords, crystal_to_data(sc).atom_types, sc.lattice)
    # an equivalent cell of the same lattice: a' = a + b, c' = c - a (unimodular), as Niggli would reach
    M = np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]])
    lat2 = M @ c.lattice
    frac2 = (c.frac_coords @ np.linalg.inv(M)) % 1.0
    other = _encode_raw(model, frac2, crystal_to_data(c).atom_types, lat2)
    # the cell seen through crystal_to_data (lattice rebuilt from its 6 parameters) agrees as well
    via_params = model.encode(Batch.from_data_list([crystal_to_data(Crystal(lat2, frac2, c.species))]))[0][0]
    for x in (sup, other, via_params.detach()):
        assert torch.allclose(base, x, atol=1e-6), (base - x).abs().max()


def _decoder_out(model, frac, types, lattice, sigma=0.3, seed=0):
    frac = torch.as_tensor(frac, dtype=torch.float32)
    n = len(frac)
    z = torch.randn(1, model.cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.decoder(z, frac, types, torch.as_tensor(lattice, dtype=torch.float32)[None], torch.tensor([n]),
                             torch.zeros(n, dtype=torch.long), torch.tensor([sigma]))


def test_decoder_score_rotates_with_input_and_is_periodic(model):
    c = _random_crystal(seed=4)
    d = crystal_to_data(c)
    R = _rotation(7)
    s0, t0 = _decoder_out(model, d.frac_coords, d.atom_types, c.lattice)
    s1, t1 = _decoder_out(model, d.frac_coords, d.atom_types, c.lattice @ R.T)
    assert s0.abs().max() > 1e-3  # a non-trivial field
    assert torch.allclose(s1, s0 @ torch.as_tensor(R.T, dtype=torch.float32), atol=1e-4)
    assert torch.allclose(t0, t1, atol=1e-4)  # type logits invariant
    moved = d.frac_coords.clone()
    moved[2] += torch.tensor([1.0, -1.0, 2.0])  # same atom, one lattice vector combination away
    s2, t2 = _decoder_out(model, moved, d.atom_types, c.lattice)
    assert torch.allclose(s0, s2, atol=1e-4) and torch.allclose(t0, t2, atol=1e-4)
    # the score does depend on positions (moving an atom changes it)
    nudged = d.frac_coords.clone()
    nudged[2] += 0.05
    s3, _ = _decoder_out(model, nudged, d.atom_types, c.lattice)
    assert (s3 - s0).abs().max() > 1e-4


def test_periodic_edges_equal_vesin_and_cap_keeps_ties():
    import vesin

    rng = np.random.default_rng(0)
    lats, carts, counts = [], [], []
    for _ in range(12):
        n = int(rng.integers(1, 9))
        lat = lattice_from_parameters(*rng.uniform(2.5, 7, 3), *rng.uniform(65, 115, 3))
        lats.append(lat)
        carts.append(rng.random((n, 3)) @ lat)
        counts.append(n)
    cart = torch.as_tensor(np.concatenate(carts))
    lat = torch.as_tensor(np.stack(lats))
    num = torch.tensor(counts)
    ours = {}
    for backend in ("torch", "vesin"):
        ei, sh = periodic_edges(cart, lat, num, 5.5, backend=backend)
        ours[backend] = set(zip(ei[1].tolist(), ei[0].tolist(), map(tuple, sh.long().tolist())))
    ref, off = set(), 0
    for b, n in enumerate(counts):  # vesin called directly, one cell at a time
        i, j, s, d = vesin.NeighborList(cutoff=5.5, full_list=True).compute(carts[b], lats[b], True, quantities="ijSd")
        ref |= {(a + off, c + off, tuple(x)) for a, c, x, dd in zip(i, j, s.astype(int).tolist(), d) if dd > 1e-8}
        off += n
    assert ours["torch"] == ref and ours["vesin"] == ref and len(ref) > 500

    # the neighbour cap keeps exactly the edges up to the k-th distance, ties included (rock salt: 6 at a/2)
    nacl = Crystal(lattice_from_parameters(5.6, 5.6, 5.6, 90, 90, 90),
                   [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]],
                   ["Na"] * 4 + ["Cl"] * 4)
    c = torch.as_tensor(nacl.cart_coords)
    ei, _ = periodic_edges(c, torch.as_tensor(nacl.lattice)[None], torch.tensor([8]), 6.0, max_neighbors=4)
    deg = torch.bincount(ei[1], minlength=8)
    assert deg.tolist() == [6] * 8  # k = 4 falls inside the first shell of 6 → all 6 kept
    ei, _ = periodic_edges(c, torch.as_tensor(nacl.lattice)[None], torch.tensor([8]), 6.0, max_neighbors=7)
    assert torch.bincount(ei[1], minlength=8).tolist() == [18] * 8  # 6 + 12 second shell


def _prototypes():
    from nanosolve.models.cdvae.data import preprocess
    from nanosolve.structures.builders.prototypes import build_prototype

    return [preprocess(build_prototype("AB_cP2_221_b_a", ["Cl", "Cs"])),
            preprocess(build_prototype("AB3C_cP5_221_a_c_b", ["Sr", "O", "Ti"])),
            preprocess(build_prototype("AB_cF8_225_a_b", ["Cl", "Na"])),
            preprocess(build_prototype("A_hP2_194_c", ["Mg"]))]


def _fit(cfg: CDVAEConfig, data, copies: int, steps: int) -> CDVAE:
    """A CDVAE trained for ``steps`` Adam steps (lr 3e-3, seed 0) on one batch of ``copies`` × data;
    returned in eval mode."""
    torch.manual_seed(0)
    m = CDVAE(cfg)
    m.fit_scalers(data)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    batch = Batch.from_data_list(data * copies)
    for _ in range(steps):
        out = m.loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return m.eval()


@pytest.mark.slow
def test_loss_falls_and_langevin_reproduces_training_crystals():
    from nanosolve.models.cdvae.evaluate import match_and_rmse
    from nanosolve.models.cdvae.sample import decode, encode, reconstruct

    crystals = _prototypes()
    data = [crystal_to_data(c) for c in crystals]
    torch.manual_seed(0)
    m = CDVAE(_tiny_cfg(max_atoms=8))
    m.fit_scalers(data)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    batch = Batch.from_data_list(data * 4)
    eval_gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731  same noise for before/after
    first = float(m.loss(batch, generator=eval_gen(), sample_z=False)["loss"].detach())
    for step in range(400):
        out = m.loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if step == 20:
            assert float(m.loss(batch, generator=eval_gen(), sample_z=False)["loss"].detach()) < 0.5 * first
    m.eval()
    preds = reconstruct(m, crystals, n_step_each=20, seed=0)
    results = [match_and_rmse(p, c) for p, c in zip(preds, crystals)]
    assert all(ok for ok, _ in results), [(p.formula, p.cell_params.round(2), r) for p, r in zip(preds, results)]
    assert max(r for _, r in results) < 0.05, results

    # teacher forcing: fixed counts and types are kept exactly
    mu, _ = encode(m, crystals[:2])
    forced = decode(m, mu, atom_types=[["Cs", "Cl"], ["Sr", "Ti", "O", "O", "O"]], n_step_each=2)
    assert sorted(forced[0].species) == ["Cl", "Cs"] and sorted(forced[1].species) == ["O", "O", "O", "Sr", "Ti"]
    with pytest.raises(InputError, match="at most 8"):
        encode(m, [crystals[2].supercell((3, 2, 1))])


def test_resume_after_interruption_continues_identically(tmp_path):
    from nanosolve.models.cdvae.train import load_model, train

    crystals = _prototypes()
    data = [crystal_to_data(c) for c in crystals] * 3
    cfg = _tiny_cfg(max_atoms=8, batch_size=4, enc_layers=1, dec_layers=1)
    train(cfg, data, data[:4], tmp_path / "full", max_epochs=3, seed=3)
    part = train(cfg, data, data[:4], tmp_path / "part", max_epochs=1, seed=3)
    assert part.epochs == 1
    resumed = train(cfg, data, data[:4], tmp_path / "part", max_epochs=3, seed=3)
    assert resumed.epochs == 3
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ha = json.loads((tmp_path / "full" / "history.json").read_text())
    hb = json.loads((tmp_path / "part" / "history.json").read_text())
    assert [r["train_loss"] for r in ha] == [r["train_loss"] for r in hb]
    model, config = load_model(tmp_path / "full")
    assert config.max_atoms == 8 and torch.equal(model.lattice_mean, a["model"]["lattice_mean"])
    (tmp_path / "full" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="best.pt"):
        load_model(tmp_path / "full")


def test_training_refuses_oversized_crystals(tmp_path):
    from nanosolve.models.cdvae.train import train

    big = crystal_to_data(_random_crystal(n=6).supercell((2, 1, 1)))
    with pytest.raises(InputError, match="max_atoms=8"):
        train(_tiny_cfg(max_atoms=8), [big], None, tmp_path / "x", max_epochs=1)


def test_property_optimisation_lowers_the_head_value_and_judge_is_independent(tmp_path):
    from nanosolve.models.cdvae.optimize import optimize_latent, train_property_predictor
    from nanosolve.models.cdvae.sample import encode

    crystals = _prototypes()
    data = [crystal_to_data(c, y=[float(k)]) for k, c in enumerate(crystals)]
    m = _fit(_tiny_cfg(max_atoms=8, props=("heat",)), data, copies=2, steps=40)
    mu, _ = encode(m, crystals)
    start = m.predict_property(mu)[:, 0].detach()
    decoded, values = optimize_latent(m, mu, n_steps=30, decode_every=15, n_step_each=1, lr=0.05)
    assert values.shape == (2, 4) and len(decoded) == 2 and all(len(d) == 4 for d in decoded)
    assert np.all(values[-1] < start.numpy() - 1e-3)  # every run moved downhill
    assert all(p.requires_grad for p in m.parameters())  # the model is left trainable

    judge, info = train_property_predictor(data, data, max_epochs=3, out_dir=tmp_path / "judge")
    assert (tmp_path / "judge" / "predictor.pt").is_file() and np.isfinite(info["val_mae"])
    assert judge.predict(crystals).shape == (4, 1)
    assert not any(p is q for p in judge.parameters() for q in m.parameters())
    again, _ = train_property_predictor(data, data, out_dir=tmp_path / "judge")  # loaded, not retrained
    assert np.allclose(again.predict(crystals), judge.predict(crystals))


def test_assign_types_keeps_the_composition_and_follows_the_logits():
    from nanosolve.models.cdvae.sample import assign_types

    types = torch.tensor([8, 8, 38, 22, 8, 11, 17])  # crystal 1: O O Sr Ti O; crystal 2: Na Cl
    logits = torch.full((7, 100), -5.0)
    for atom, z in enumerate([38, 8, 8, 8, 22, 17, 11]):  # the decoder's preferred element per atom
        logits[atom, z - 1] = 5.0
    logits[3, 37] = 4.0  # atom 3 also likes Sr, but Sr is taken by atom 0 which likes it more
    out = assign_types(logits, types, torch.tensor([5, 2]))
    assert out.tolist() == [38, 8, 8, 8, 22, 17, 11]
    assert sorted(out[:5].tolist()) == sorted(types[:5].tolist())
    # plain argmax would break the composition here: four atoms want O
    logits[4, 7] = 6.0
    assert sorted(assign_types(logits, types, torch.tensor([5, 2]))[:5].tolist()) == [8, 8, 8, 22, 38]


def test_cached_encoder_edges_give_the_same_code():
    from nanosolve.models.cdvae.model import attach_encoder_edges

    torch.manual_seed(0)
    cfg = _tiny_cfg()
    m = CDVAE(cfg).eval()
    items = [crystal_to_data(_random_crystal(seed=k, n=3 + k)) for k in range(4)]
    cached = attach_encoder_edges(items, cfg)
    assert all("enc_edge_index" not in d for d in items)  # the caller's items are left alone
    plain = Batch.from_data_list(items)
    with_edges = Batch.from_data_list(cached)
    assert with_edges.enc_edge_index.max() >= items[0].num_nodes  # indices offset per crystal by PyG
    with torch.no_grad():
        mu0, lv0 = m.encode(plain)
        mu1, lv1 = m.encode(with_edges)
    assert torch.equal(mu0, mu1) and torch.equal(lv0, lv1)


def test_shuffle_within_crystals_keeps_each_crystal_multiset():
    from nanosolve.models.cdvae.model import shuffle_within_crystals

    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    types = torch.tensor([8, 8, 22, 11, 17, 38, 22, 8, 8])
    moved = False
    for seed in range(20):
        idx = shuffle_within_crystals(batch, torch.Generator().manual_seed(seed))
        assert torch.equal(batch[idx], batch)  # every atom takes a type from its own crystal
        assert sorted(idx.tolist()) == list(range(len(batch)))  # a permutation
        for b in range(3):
            assert sorted(types[idx][batch == b].tolist()) == sorted(types[batch == b].tolist())
        moved |= not torch.equal(idx, torch.arange(len(batch)))
    assert moved


@pytest.mark.slow
def test_type_permutation_training_teaches_sites_from_geometry():
    """With permuted input types, the decoder must read each atom's element off the geometry:
    after training on SrTiO3 and NaCl, clean geometry + scrambled types → the true types."""
    from nanosolve.models.cdvae.sample import assign_types

    crystals = _prototypes()[1:3]  # SrTiO3 (cP5) and NaCl (cF8, reduced)
    data = [crystal_to_data(c) for c in crystals]
    m = _fit(_tiny_cfg(max_atoms=8, type_permute_prob=1.0), data, copies=8, steps=300)
    d = data[0]
    scrambled = d.atom_types[torch.tensor([1, 2, 0, 4, 3])]  # Sr/Ti/O moved to other sites
    assert not torch.equal(scrambled, d.atom_types)
    with torch.no_grad():
        mu, _ = m.encode(Batch.from_data_list([d]))
        _, logits = m.decoder(mu, d.frac_coords, scrambled, lattice_from_params(d.lengths, d.angles), d.num_atoms,
                              torch.zeros(5, dtype=torch.long), m.sigmas[-1:])
    assert torch.equal(assign_types(logits, scrambled, d.num_atoms), d.atom_types)


def _cell_kw(b):
    """A fixed cubic cell for b crystals: an untrained lattice head predicts sub-Å cells."""
    return dict(lengths=torch.full((b, 3), 4.2), angles=torch.full((b, 3), 90.0))


def test_fixed_type_mode_keeps_the_composition_heads_stoichiometry():
    from nanosolve.models.cdvae.sample import composition_counts, decode

    torch.manual_seed(0)
    m = CDVAE(_tiny_cfg(max_atoms=8)).eval()
    z = torch.randn(3, m.cfg.latent_dim, generator=torch.Generator().manual_seed(2))
    out = decode(m, z, num_atoms=[5, 4, 6], n_step_each=2, type_mode="fixed", **_cell_kw(3))
    probs = torch.softmax(m.predict_composition(z), -1)
    for k, (c, n) in enumerate(zip(out, [5, 4, 6])):
        want = composition_counts(probs[k].detach(), n).tolist()
        assert sorted(c.atomic_numbers.tolist()) == sorted(want)
    with pytest.raises(InputError, match="type_mode"):
        decode(m, z, num_atoms=[5, 4, 6], n_step_each=1, type_mode="majority", **_cell_kw(3))


def test_likely_stoichiometries_rank_one_atom_moves_by_kl_from_the_head():
    from math import log

    from nanosolve.models.cdvae.sample import likely_stoichiometries

    probs = torch.zeros(100)
    probs[[30, 32, 7, 8]] = torch.tensor([0.35, 0.10, 0.40, 0.15])  # Ga, As, O, F: rounding gives Ga2 O2 F1
    out = likely_stoichiometries(probs, 5, 4)
    counts = [tuple(sorted(t.tolist())) for t in out]
    assert counts[0] == (8, 8, 9, 31, 31)  # the largest-remainder rounding comes first
    assert counts[1] == (8, 8, 9, 31, 33)  # then one Ga moved to As: GaAsO2F, KL 0.085 (hand value)
    assert len(set(counts)) == 4 and all(len(t) == 5 for t in out)

    def kl(t):
        c = torch.bincount(t - 1, minlength=100)
        return sum(int(k) / 5 * log(int(k) / 5 / float(probs[i])) for i, k in enumerate(c) if k > 0)
    assert abs(kl(out[1]) - 0.0845) < 1e-3
    scores = [kl(t) for t in out[1:]]
    assert scores == sorted(scores)


def test_candidates_keep_the_decode_whose_posterior_fits_z_best():
    from nanosolve.models.cdvae.sample import decode, encode, likely_stoichiometries, log_posterior

    torch.manual_seed(0)
    m = CDVAE(_tiny_cfg(max_atoms=8)).eval()
    z = torch.randn(2, m.cfg.latent_dim, generator=torch.Generator().manual_seed(5))
    kw = dict(num_atoms=[4, 5], n_step_each=1, seed=3)
    best = decode(m, z, candidates=3, **_cell_kw(2), **kw, names=["a", "b"])
    many = decode(m, z.repeat_interleave(3, 0), num_atoms=[4, 4, 4, 5, 5, 5], n_step_each=1, seed=3, **_cell_kw(6))
    lq = log_posterior(z.repeat_interleave(3, 0), *encode(m, many)).view(2, 3)
    assert len({tuple(np.round(c.frac_coords.ravel(), 4)) for c in many[:3]}) == 3  # three different decodes
    for b in range(2):
        want = many[3 * b + int(lq[b].argmax())]
        assert np.allclose(best[b].frac_coords, want.frac_coords) and best[b].species == want.species
    assert [c.name for c in best] == ["a", "b"]
    with pytest.raises(InputError, match="candidates"):
        decode(m, z, candidates=0, **_cell_kw(2), **kw)
    with pytest.raises(InputError, match="stoichiometries"):
        decode(m, z, candidates=2, stoichiometries=3, **_cell_kw(2), **kw)
    # several starting stoichiometries: each candidate keeps its own (fixed typing), the chosen one among them
    probs = torch.softmax(m.predict_composition(z), -1)
    mixed = decode(m, z, candidates=4, stoichiometries=2, type_mode="fixed", **_cell_kw(2), **kw)
    for b, n in enumerate([4, 5]):
        allowed = [sorted(t.tolist()) for t in likely_stoichiometries(probs[b].detach(), n, 2)]
        assert sorted(mixed[b].atomic_numbers.tolist()) in allowed
