"""Data-parallel training (torch.distributed, gloo on CPU): two processes with the same global
batch follow the loss trajectory of one process, hold identical weights, and only rank 0 writes.

The processes are started with torch.multiprocessing (what torchrun does, minus the launcher):
each gets RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT and the loop joins the group itself.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, job: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    try:
        model = JOBS[job](Path(out))
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, Path(out) / f"rank{rank}.pt")
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _spawn(job: str, out: Path, world: int = 2) -> None:
    import torch.multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(world, _free_port(), job, str(out)), nprocs=world, join=True)


# ---- jobs (module level: the spawned processes import them) ------------------------------------
def _toy(out: Path, max_epochs: int = 6):
    from test_training_loop import ToyAdapter

    from nanosolve.models.training import run_loop

    adapter = ToyAdapter(seed=0, batch_size=8)
    run_loop(adapter, out, max_epochs=max_epochs, patience=100, seed=0)
    return adapter.model


def _toy_part(out: Path):
    return _toy(out, max_epochs=3)


JOBS = {"toy": _toy, "toy_part": _toy_part}


def _history(out: Path) -> list[dict]:
    return json.loads((out / "history.json").read_text())


# ---- tests --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _spawn("toy", out)
    return out


def test_two_processes_follow_one_process(ddp_run, tmp_path):
    single = tmp_path / "single"
    _toy(single)
    h1, h2 = _history(single), _history(ddp_run)
    assert len(h1) == len(h2) == 6
    for a, b in zip(h1, h2):
        for key in ("train_loss", "train_mse", "train_abs", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["epoch"], key)
    # gradients were averaged: both ranks end with the same (best) weights, those of one process
    r0 = torch.load(ddp_run / "rank0.pt", weights_only=True)
    r1 = torch.load(ddp_run / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    best = torch.load(single / "best.pt", weights_only=True)
    assert all(torch.allclose(r0[k], best[k], rtol=1e-4, atol=1e-6) for k in r0)
    # only rank 0 wrote the run files (no temp files of another process left behind)
    names = sorted(p.name for p in ddp_run.iterdir())
    assert names == ["best.pt", "history.json", "last.pt", "metrics.csv", "rank0.pt", "rank1.pt"]
    assert len(torch.load(ddp_run / "last.pt", weights_only=True)["rng"]["ranks"]) == 2


def test_data_parallel_run_resumes_exactly(ddp_run, tmp_path):
    part = tmp_path / "part"
    _spawn("toy_part", part)
    assert len(_history(part)) == 3
    _spawn("toy", part)
    strip = (lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h])
    assert strip(_history(part)) == strip(_history(ddp_run))
