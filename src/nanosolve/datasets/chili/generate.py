"""Run a recipe into a store: local process pool by default, a Dask cluster on request.

Workers only compute; the calling process is the one writer. It writes each crystal's records
in one transaction as they arrive, so a run killed at any moment leaves only whole crystals,
and starting it again skips them (resume). Record indices come from the recipe, so the
finished dataset is the same whatever the order of completion, the number of workers, or the
number of restarts.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context

from nanosolve._workers import pool_kwargs
from nanosolve.datasets.chili.recipe import CrystalTask
from nanosolve.datasets.chili.record import RECORD_VERSION, build_records


@dataclass
class TaskResult:
    """What a worker sends back: the records of one crystal (or why there are none)."""

    task: CrystalTask
    records: list[tuple[int, str, dict]]
    error: str | None
    seconds: float


@dataclass
class GenerationReport:
    """Summary of one call of :func:`generate`."""

    total_tasks: int
    skipped: int = 0
    written: int = 0
    records_written: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    worker_seconds: float = 0.0


_THREADS_LIMITED = False


def _limit_threads() -> None:
    """One torch thread per worker process: the pool provides the parallelism."""
    global _THREADS_LIMITED
    if not _THREADS_LIMITED:
        import torch

        torch.set_num_threads(1)
        _THREADS_LIMITED = True


def run_task(task: CrystalTask, signals: bool = True) -> TaskResult:
    """Build every record of one crystal. Never raises: an error is returned as text."""
    _limit_threads()
    t0 = time.perf_counter()
    try:
        crystal = task.load()
        pairs = build_records(crystal, task.radii, task.crystal_type, task.source, task.key, signals=signals)
        records = [(idx, key, rec) for idx, (key, rec) in zip(task.record_indices, pairs)]
        return TaskResult(task, records, None, time.perf_counter() - t0)
    except (ImportError, NameError, AttributeError, TypeError):
        raise  # programming errors stop the run instead of being filed as bad crystals
    except Exception as exc:  # one bad crystal must not stop a 100k-crystal run; it is reported
        msg = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ValueError):
            msg += " | " + traceback.format_exc(limit=3).replace("\n", " ")
        return TaskResult(task, [], msg, time.perf_counter() - t0)


def dataset_attrs(recipe: str, radii, signals: bool = True) -> dict:
    """Dataset-level metadata (no timestamps: a resumed run must equal an uninterrupted one)."""
    from nanosolve.scattering import chili_signals as cs

    attrs = {"format": "nanosolve-chili", "record_version": RECORD_VERSION, "recipe": recipe,
             "radii": [float(r) for r in radii], "signals": bool(signals)}
    if signals:
        attrs["signal_parameters"] = cs.signal_parameters()
    return attrs


def generate(tasks: list[CrystalTask], store, *, workers: int | None = None, scheduler=None,
             signals: bool = True, on_result: Callable[[TaskResult, int, int], None] | None = None,
             max_in_flight: int | None = None) -> GenerationReport:
    """Compute every task not yet in ``store`` and write its records.

    Args:
        tasks: the recipe (see :mod:`.recipe`).
        store: an open GraphStore / ShardedGraphStore (written by this process only).
        workers: local processes (default: CPU count); 0 runs in this process (debugging, tests).
        scheduler: a Dask scheduler address (``'tcp://host:8786'``) or a ``distributed.Client``;
            when given, tasks run on that cluster instead of the local pool.
        on_result: progress callback ``(result, done, total)``.
    """
    from nanosolve.datasets.storage import store_lock

    with store_lock(store.path):  # one writer per store: a second one is refused, not interleaved
        return _generate(tasks, store, workers, scheduler, signals, on_result, max_in_flight)


def _generate(tasks, store, workers, scheduler, signals, on_result, max_in_flight) -> GenerationReport:
    t0 = time.perf_counter()
    present = set(store.keys())
    todo = [t for t in tasks if not all(k in present for k in t.record_keys)]
    report = GenerationReport(total_tasks=len(tasks), skipped=len(tasks) - len(todo))
    done = report.skipped
    for res in _results(todo, workers, scheduler, signals, max_in_flight):
        done += 1
        report.worker_seconds += res.seconds
        if res.error is None:
            store.put_many(res.records)
            report.written += 1
            report.records_written += len(res.records)
        else:
            report.failures[res.task.key] = res.error
        if on_result is not None:
            on_result(res, done, len(tasks))
    report.seconds = time.perf_counter() - t0
    return report


def _results(tasks: list[CrystalTask], workers, scheduler, signals, max_in_flight) -> Iterable[TaskResult]:
    if not tasks:
        return
    if scheduler is not None:
        yield from _dask_results(tasks, scheduler, signals)
        return
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers <= 0:
        for t in tasks:
            yield run_task(t, signals)
        return
    # spawn, not fork: the parent may already run torch/OpenMP threads, which fork cannot copy.
    limit = max_in_flight or 4 * workers
    # Workers die with this process (kill -9 included) instead of computing on as orphans.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), **pool_kwargs()) as pool:
        pending = set()
        queue = iter(tasks)
        for t in queue:
            pending.add(pool.submit(run_task, t, signals))
            if len(pending) >= limit:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(run_task, nxt, signals))


def _dask_results(tasks, scheduler, signals) -> Iterable[TaskResult]:
    try:
        from distributed import Client, as_completed
    except ImportError:  # pragma: no cover - depends on the install
        from nanosolve.errors import InputError

        raise InputError("a Dask scheduler was given but 'distributed' is not installed: "
                         "pip install 'nanosolve[dist]'") from None
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = client.map(run_task, tasks, signals=signals, pure=False)
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        if own:
            client.close()
