"""DeepStruc CVAE/DAE: shapes, KL, masking, learning, checkpoints and exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from nanosolve.errors import InputError
from nanosolve.models.deepstruc.config import DeepStrucConfig
from nanosolve.models.deepstruc.model import DeepStruc, count_atoms, gaussian_kl
from nanosolve.models.deepstruc.train import evaluate, load_checkpoint, load_model, train

MAX_ATOMS, N_SAT, N_R = 10, 4, 60


# ---- a tiny local featuriser (independent of the package's representation module) ----------
def _satellites(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    theta = np.pi * (1 + 5**0.5) * k
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def _featurise(pos: np.ndarray, r: np.ndarray) -> dict:
    centre = np.argmin(np.linalg.norm(pos - pos.mean(0), axis=1))
    pos = pos - pos[centre]
    scale = np.linalg.norm(pos, axis=1).max()
    u = pos / scale
    n = len(pos)
    feats = np.full((MAX_ATOMS, MAX_ATOMS + N_SAT), -1.0)
    feats[:n, :n] = cdist(u, u)
    feats[:n, MAX_ATOMS:] = cdist(u, _satellites(N_SAT))
    mask = np.zeros(MAX_ATOMS)
    mask[:n] = 1
    d = cdist(pos, pos)[np.triu_indices(n, 1)]
    pdf = np.exp(-((r[:, None] - d[None]) ** 2) / (2 * 0.15**2)).sum(1) / n - 0.05 * r
    return {"pdf": pdf, "features": feats, "mask": mask, "scale": scale}


def _dataset(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    r = np.linspace(0, 8, N_R)
    items = []
    for _ in range(n):
        k = int(rng.integers(3, MAX_ATOMS + 1))
        items.append(_featurise(rng.normal(scale=1.5, size=(k, 3)), r))
    return {key: torch.tensor(np.array([it[key] for it in items]), dtype=torch.float32) for key in items[0]}


def _config(**kw) -> DeepStrucConfig:
    base = dict(max_atoms=MAX_ATOMS, n_satellites=N_SAT, n_r=N_R, lr=1e-3, batch_size=8, patience=50)
    base.update(kw)
    return DeepStrucConfig(**base)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny networks: intra-op threading only adds contention on a shared 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    return _dataset(48, seed=1), _dataset(16, seed=2)


# ---- config --------------------------------------------------------------------------------
def test_config_json_roundtrip_and_presets(tmp_path):
    cfg = DeepStrucConfig.cpu(max_atoms=50, kind="dae", extra={"dataset": "x"})
    cfg.to_json(tmp_path / "c.json")
    back = DeepStrucConfig.from_json(tmp_path / "c.json")
    assert back == cfg and back.n_features == 61
    paper = DeepStrucConfig.paper()
    assert (paper.lr, paper.batch_size, paper.patience, paper.latent_dim, paper.n_satellites) == (5e-5, 20, 50, 2, 11)
    assert paper.encoder_widths == (384, 256, 128) and paper.decoder_widths == (128, 256, 384, 512)
    assert paper.prior_widths == (48, 24)
    with pytest.raises(InputError, match="kind"):
        DeepStrucConfig(kind="gan")
    (tmp_path / "bad.json").write_text(json.dumps({"max_atoms": 5, "nonsense": 1}))
    with pytest.raises(InputError, match="bad.json.*nonsense"):
        DeepStrucConfig.from_json(tmp_path / "bad.json")


# ---- model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cvae", "dae"])
def test_shapes(kind, data):
    torch.manual_seed(0)
    model = DeepStruc(_config(kind=kind))
    batch = {k: v[:5] for k, v in data[0].items()}
    out = model(batch, with_prior=True)
    F = MAX_ATOMS + N_SAT
    assert out["features"].shape == (5, MAX_ATOMS, F)
    assert out["existence_logits"].shape == (5, MAX_ATOMS)
    assert out["z"].shape == out["mu_p"].shape == (5, 2)
    assert all(out[k].dim() == 0 for k in ("loss", "recon", "kl", "existence", "prior_loss"))
    mu, logvar = model.prior(batch["pdf"])
    assert mu.shape == (5, 2) and (logvar is None) == (kind == "dae")
    feats, prob = model.sample(batch["pdf"][0], n_samples=7)
    assert feats.shape == (7, MAX_ATOMS, F) and prob.shape == (7, MAX_ATOMS)
    assert ((prob >= 0) & (prob <= 1)).all()
    feats, prob = model.sample(batch["pdf"][:3], n_samples=2)
    assert feats.shape == (3, 2, MAX_ATOMS, F) and count_atoms(prob).shape == (3, 2)
    with pytest.raises(InputError, match="n_r"):
        model.prior(torch.zeros(2, N_R + 1))


def test_kl_closed_form():
    torch.manual_seed(0)
    mu_q, mu_p = torch.randn(64, 2), torch.randn(64, 2)
    lv_q, lv_p = torch.randn(64, 2), torch.randn(64, 2)
    kl = gaussian_kl(mu_q, lv_q, mu_p, lv_p)
    # Independent oracle: torch.distributions.
    q = torch.distributions.Normal(mu_q, torch.exp(0.5 * lv_q))
    p = torch.distributions.Normal(mu_p, torch.exp(0.5 * lv_p))
    ref = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(kl, ref, atol=1e-5)
    assert (kl >= 0).all() and kl.min() > 0
    assert torch.allclose(gaussian_kl(mu_q, lv_q, mu_q, lv_q), torch.zeros(64), atol=1e-7)


def test_sampling_spread_and_mean(data):
    torch.manual_seed(0)
    model = DeepStruc(_config()).eval()
    pdf = data[0]["pdf"][0]
    a, _ = model.sample(pdf, 4, use_mean=True)
    assert torch.equal(a[0], a[3])
    b, _ = model.sample(pdf, 4)
    assert not torch.allclose(b[0], b[1])
    dae = DeepStruc(_config(kind="dae")).eval()
    c, _ = dae.sample(pdf, 3)
    assert torch.equal(c[0], c[2])


def test_loss_ignores_padding_values(data):
    torch.manual_seed(0)
    model = DeepStruc(_config()).eval()
    batch = {k: v[:6] for k, v in data[0].items()}
    base = model(batch)
    emask = model.entry_mask(batch["mask"]).bool()
    poked = dict(batch, features=torch.where(emask, batch["features"], torch.full_like(batch["features"], 123.0)))
    again = model(poked)
    for k in ("loss", "recon", "kl", "existence"):
        assert torch.allclose(base[k], again[k]), k
    # ...but a real entry does count.
    real = batch["features"].clone()
    real[0, 0, MAX_ATOMS] += 1.0
    assert model(dict(batch, features=real))["recon"] > base["recon"]


def test_hybrid_prior_objective(data):
    torch.manual_seed(0)
    model = DeepStruc(_config(prior_weight=0.3, beta=0.2)).eval()
    batch = {k: v[:6] for k, v in data[0].items()}
    out = model(batch)
    teacher = out["recon"] + out["existence"] + 0.2 * out["kl"]
    assert torch.allclose(out["loss"], 0.7 * teacher + 0.3 * out["prior_loss"])
    # The prior term is the reconstruction of decoding the prior mean.
    feats, logits = model.decode(out["mu_p"])
    w = model.entry_mask(batch["mask"])
    assert torch.allclose(out["prior_recon"], ((feats - batch["features"]) ** 2 * w).sum() / w.sum())


@pytest.mark.parametrize("kind", ["cvae", "dae"])
def test_training_steps_reduce_loss(kind, data):
    torch.manual_seed(0)
    cfg = _config(kind=kind, beta=1e-2)
    model = DeepStruc(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train_set = data[0]
    before = evaluate(model, train_set)
    for _ in range(300):
        idx = torch.randint(0, 48, (8,))
        out = model({k: v[idx] for k, v in train_set.items()})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after = evaluate(model, train_set)
    assert after["loss"] < 0.3 * before["loss"]
    assert after["recon"] < 0.3 * before["recon"]
    assert after["existence"] < 0.3 * before["existence"]
    # Existence logits give the atom count (through the posterior path on training data).
    model.eval()
    res = model(train_set)
    counts = count_atoms(torch.sigmoid(res["existence_logits"]))
    assert (counts == train_set["mask"].sum(1).long()).float().mean() >= 0.9


# ---- training loop, checkpoints ------------------------------------------------------------
def _strip(history):
    return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]


def test_train_resume_matches_uninterrupted(tmp_path, data):
    cfg = _config()
    full = train(cfg, *data, tmp_path / "full", max_epochs=4, seed=3)
    assert full.epochs == 4 and full.stopped == "max_epochs"
    part = train(cfg, *data, tmp_path / "part", max_epochs=2, seed=3)
    assert part.epochs == 2
    resumed = train(cfg, *data, tmp_path / "part", max_epochs=4, seed=3)
    assert resumed.epochs == 4 and len(resumed.history) == 4
    last_a = load_checkpoint(tmp_path / "full" / "last.pt")
    last_b = load_checkpoint(tmp_path / "part" / "last.pt")
    for k, v in last_a["model"].items():
        assert torch.equal(v, last_b["model"][k]), k
    assert torch.equal(last_a["rng"]["torch"], last_b["rng"]["torch"])
    assert _strip(full.history) == _strip(resumed.history)
    assert json.loads((tmp_path / "part" / "history.json").read_text())[-1]["epoch"] == 3
    # A fresh (resume=False) run differs from continuing: it starts again from epoch 0.
    again = train(cfg, *data, tmp_path / "part", max_epochs=1, seed=3, resume=False)
    assert again.epochs == 1
    # load_model gives the best weights and the same predictions.
    model, cfg_back = load_model(tmp_path / "full")
    assert cfg_back == cfg
    pdf = data[1]["pdf"][:2]
    assert torch.allclose(model.prior(pdf)[0], full.model.prior(pdf)[0])


def test_early_stopping_and_time_budget(tmp_path, data):
    # lr so small that float32 weights cannot change: the validation loss never improves again.
    cfg = _config(lr=1e-12, patience=2)
    seen = []
    res = train(cfg, *data, tmp_path / "es", max_epochs=50, progress=seen.append)
    assert res.stopped == "early_stopping" and res.epochs == 3 and res.best_epoch == 0
    assert [r["epoch"] for r in seen] == [0, 1, 2] and "val_count_acc" in seen[0]
    assert train(cfg, *data, tmp_path / "es", max_epochs=50).epochs == 3  # finished stays finished
    res = train(_config(), *data, tmp_path / "t", max_minutes=0)
    assert res.stopped == "max_minutes" and res.epochs == 0


def test_dataset_of_dicts_and_batch_iterables(tmp_path, data):
    items = [{k: v[i] for k, v in data[0].items()} for i in range(20)]
    loader = [{k: v[i : i + 5] for k, v in data[1].items()} for i in range(0, 16, 5)]
    res = train(_config(kind="dae"), items, loader, tmp_path / "d", max_epochs=2)
    assert res.epochs == 2 and np.isfinite(res.best_val)
    with pytest.raises(InputError, match="dicts"):
        train(_config(), [(1, 2)] * 3, None, tmp_path / "bad", max_epochs=1)


def test_corrupted_checkpoints_raise_input_error(tmp_path, data):
    out = tmp_path / "run"
    train(_config(), *data, out, max_epochs=1)
    raw = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"last\.pt.*corrupted"):
        train(_config(), *data, out, max_epochs=2)
    (out / "best.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match=r"best\.pt.*corrupted"):
        load_model(out)
    # weights_only=True: a pickled arbitrary object is refused, not executed.
    torch.save({"model": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    # A checkpoint of a different architecture is named too.
    torch.save(DeepStruc(_config(max_atoms=6)).state_dict(), out / "best.pt")
    with pytest.raises(InputError, match=r"best\.pt.*does not match"):
        load_model(out)
    with pytest.raises(InputError, match="not found|no such"):
        load_model(tmp_path / "missing")


class _Evil:
    pass
