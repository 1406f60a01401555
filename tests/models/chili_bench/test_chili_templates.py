"""The template model of the CHILI structure-generation tasks (nanosolve.models.chili_bench.template)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanosolve.errors import InputError
from nanosolve.models.chili_bench import TASKS, make_model
from nanosolve.models.chili_bench.metrics import masked_mae
from nanosolve.models.chili_bench.template import DECISIONS, TemplateNet, template_errors, weighted_median

TASK = TASKS["gen_xrd_unit_cell"]


def _library(n_atoms=(2, 4, 3), seed=0):
    """Three distinct padded unit cells and a training set of 30 copies of them."""
    g = torch.Generator().manual_seed(seed)
    cells, masks = [], []
    for n in n_atoms:
        y = torch.zeros(TASK.out_dim)
        y[:3 * n] = torch.rand(3 * n, generator=g)
        m = torch.zeros(TASK.out_dim, dtype=torch.bool)
        m[:3 * n] = True
        cells.append(y)
        masks.append(m)
    label = torch.arange(30) % len(n_atoms)
    return torch.stack(cells), torch.stack(masks), label


def test_library_holds_the_distinct_training_targets():
    cells, masks, label = _library()
    model = make_model("templates", TASK, hidden=16, in_channels=580).fit_library(cells[label], masks[label])
    assert model.templates.shape == (3, TASK.out_dim)
    # every training target is in the library, exactly
    err = template_errors(cells, masks, model.templates)
    assert torch.all(err.min(1).values == 0)
    assert torch.all(torch.diagonal(model.cost) == 0) and torch.all(model.cost + torch.eye(3) > 0)
    # a cell's soft label puts most weight on itself
    q = model.soft_labels(cells, masks)
    assert torch.allclose(q.sum(1), torch.ones(3)) and torch.all(q[torch.arange(3), err.argmin(1)] > 0.5)


def test_template_errors_is_the_masked_mae():
    g = torch.Generator().manual_seed(1)
    y, t = torch.rand(5, 12, generator=g), torch.rand(4, 12, generator=g)
    mask = torch.rand(5, 12, generator=g) > 0.4
    mask[:, 0] = True
    err = template_errors(y, mask, t, chunk=2)
    for i in range(5):
        for k in range(4):
            assert err[i, k] == pytest.approx(masked_mae(y[i].numpy(), t[k].numpy(), mask[i].numpy()), rel=1e-5)
    assert torch.allclose(template_errors(y, mask, t, reduce="sum"), err * mask.sum(1, keepdim=True))


def test_weighted_median_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    t, p = torch.rand(7, 9, generator=g), torch.softmax(3 * torch.randn(4, 7, generator=g), -1)
    mask = torch.rand(7, 9, generator=g) > 0.3
    got = weighted_median(p, t, mask)
    for b in range(4):
        for e in range(9):
            w = (p[b] * mask[:, e]).numpy()
            # a weighted median minimises the weighted absolute deviation
            cost = [np.sum(w * np.abs(t[:, e].numpy() - c)) for c in t[:, e].numpy()]
            assert np.sum(w * np.abs(t[:, e].numpy() - float(got[b, e]))) == pytest.approx(min(cost), abs=1e-6)


def test_template_model_learns_to_pick_the_right_cell():
    # three "patterns" (a peak at a different place each) -> three cells
    cells, masks, label = _library()
    q = torch.linspace(0, 1, 580)
    centres = torch.tensor([0.2, 0.5, 0.8])
    g = torch.Generator().manual_seed(3)
    xrd = torch.exp(-((q - centres[label, None]) / 0.03) ** 2) + 0.05 * torch.rand(30, 580, generator=g) + 1e-3
    torch.manual_seed(0)
    model = make_model("templates", TASK, hidden=16, in_channels=580).fit_library(cells[label], masks[label])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(model({"xrd": xrd}), cells[label], masks[label])
        loss.backward()
        opt.step()
        losses.append(float(loss))
    # cross-entropy against soft labels bottoms out at their entropy: compare the excess (the KL)
    soft = model.soft_labels(cells[label], masks[label])
    floor = float(-(soft * soft.clamp_min(1e-12).log()).sum(-1).mean())
    assert losses[-1] - floor < 0.2 * (losses[0] - floor), (losses[0], losses[-1], floor)
    model.eval()
    with torch.no_grad():
        logits = model({"xrd": xrd})
    for rule in ("argmax", "expected"):
        model.decision = rule
        pred = model.predict(logits)
        assert torch.equal(pred, cells[label])  # whole cells from the library, the right ones
    scores = model.choose_decision(lambda: float((model.predict(logits) - cells[label]).abs()[masks[label]].mean()))
    assert set(scores) == set(DECISIONS) and scores[model.decision] == min(scores.values())


def test_template_model_rejects_misuse():
    with pytest.raises(InputError, match="padded structures"):
        TemplateNet(TASKS["p2p_xrd_cell_params"])
    with pytest.raises(InputError, match="fit_library"):
        make_model("templates", TASK, in_channels=580)({"xrd": torch.rand(2, 580)})
    with pytest.raises(InputError, match="graph input"):
        make_model("templates", TASKS["graph_saxs"], in_channels=7)
    model = make_model("templates", TASK, in_channels=580)
    with pytest.raises(InputError, match="unknown template decision"):
        model.decision = "mode"
