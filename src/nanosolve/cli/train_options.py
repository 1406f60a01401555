"""Options and plumbing every ``nanosolve train <family>`` command shares: the run folder
(``--out/-o``; the older positional OUT still works), ``--device``, ``--tensorboard``, progress bars
that only the main process draws under torchrun, and the summary line."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from nanosolve.cli.common import check_number, console, err_console, finish_training
from nanosolve.errors import InputError

OUT_HELP = "run folder (config.json, best.pt, last.pt, history.json, metrics.csv); rerun = resume"
QUIET_HELP = "print nothing but errors (no progress, no summary line)"
DEVICE_HELP = ("cpu, cuda (cuda:N) or mps; under `torchrun --nproc_per_node N` training is data-parallel "
               "(gloo on cpu, NCCL on cuda)")
TENSORBOARD_HELP = "also log the per-epoch metrics for TensorBoard in OUT/tensorboard (needs the tensorboard package)"
MAX_MINUTES_HELP = "wall-time budget of this call (minutes); rerun to continue"


#: click settings of a command that still takes its run folder as a trailing positional (older form)
LEGACY_POSITIONAL = {"allow_extra_args": True}


def legacy_positional(ctx) -> Path | None:
    """The one extra positional argument of the older ``COMMAND ... OUT`` form, if given."""
    extra = list(getattr(ctx, "args", None) or [])
    if len(extra) > 1:
        raise InputError(f"unexpected arguments {' '.join(extra)}")
    return Path(extra[0]) if extra else None


def resolve_out(out: Path | None, positional: Path | None) -> Path:
    """The run folder from ``--out`` or the deprecated positional OUT (not both)."""
    if out is not None and positional is not None:
        raise InputError(f"the run folder is given twice ({positional} and --out {out}); use --out only")
    if out is None and positional is None:
        raise InputError("no run folder given: pass --out DIR")
    if out is None:
        if is_main():
            err_console.print("note: OUT as a positional argument is deprecated; use --out/-o", highlight=False)
        return positional
    return out


def check_max_minutes(max_minutes: float | None) -> None:
    """``--max-minutes``: None (no budget) or a finite number of minutes > 0 (InputError naming it)."""
    check_number("--max-minutes", max_minutes, 0, lo_open=True, unit="minutes")


def is_main() -> bool:
    from nanosolve.models.training import is_main_process

    return is_main_process()


def check_device(device: str) -> str:
    """Refuse an unavailable ``--device`` before any data is read; under torchrun, join the
    process group now (so that data preparation can let the main process go first)."""
    from nanosolve.models.training import init_distributed, resolve_device

    if init_distributed(resolve_device(device)):
        import torch.distributed as dist

        say(f"data-parallel training: {dist.get_world_size()} processes ({dist.get_backend()})")
    return device


def progress_bars():
    """Rich progress with an ``info`` field; drawn by the main process only. When the output is not a
    terminal (a log file, a pipe, a batch job) rich draws nothing, so each finished epoch is printed as
    one plain line instead."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class _Progress(Progress):
        def update(self, task_id, **kwargs):
            super().update(task_id, **kwargs)
            task = self._tasks[task_id]
            if (not self.disable and not self.console.is_terminal and task.description == "epochs"
                    and kwargs.get("completed") is not None):
                info = task.fields.get("info", "")
                self.console.print(f"epoch {int(task.completed)}/{int(task.total or 0)}  {info}".rstrip(),
                                   highlight=False)

    return _Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     TextColumn("{task.fields[info]}"), console=console, disable=not is_main())


def epoch_ticker(progress, config, max_epochs: int | None, describe: Callable[[dict], str]) -> Callable[[dict], None]:
    """Add the "epochs" bar to ``progress`` (total: ``max_epochs``, else the config's) and return the
    per-epoch callback for ``train(progress=...)``: it moves the bar to ``rec["epoch"] + 1`` with
    ``describe(rec)`` beside it (a plain line per epoch when the output is not a terminal)."""
    bar = progress.add_task("epochs", total=config.max_epochs if max_epochs is None else max_epochs, info="")

    def tick(rec: dict) -> None:
        progress.update(bar, completed=rec["epoch"] + 1, info=describe(rec))

    return tick


def say(message: str) -> None:
    """A plain line on the console (main process only)."""
    if is_main():
        console.print(message, highlight=False)


def finish(out: Path, result, seconds: float, label: str, digits: int = 5, **extra) -> dict | None:
    """``summary.json`` and the summary line, by the main process only."""
    if not is_main():
        return None
    return finish_training(out, result, seconds, label, digits=digits, **extra)


def run_training(train_fn, config, train_items, val_items, out: Path, max_minutes, max_epochs, seed: int,
                 extra_keys: tuple[str, ...] = (), device: str = "cpu", tensorboard: bool = False,
                 **summary) -> dict | None:
    """``train_fn`` (CDVAE's or PXRDNet's ``train``) with epoch and batch progress bars; the
    losses named in ``extra_keys`` are shown beside the total. Writes OUT/summary.json."""
    t0 = time.perf_counter()
    with progress_bars() as progress:

        def describe(rec: dict) -> str:
            info = f"loss {rec['train_loss']:.3f}" + "".join(f"  {k} {rec.get('train_' + k, float('nan')):.4f}"
                                                             for k in extra_keys)
            if "val_loss" in rec:
                info += f"  val {rec['val_loss']:.3f}" + "".join(f" ({k} {rec.get('val_' + k, float('nan')):.4f})"
                                                                for k in extra_keys)
            if config.select_on:
                info += f"  selected on {'+'.join(config.select_on)}: {rec['monitored']:.3f}"
            return info

        tick = epoch_ticker(progress, config, max_epochs, describe)
        inner = progress.add_task("batches", total=1, info="")

        def tick_batch(done: int, n: int):
            progress.update(inner, completed=done, total=n)

        result = train_fn(config, train_items, val_items, out, max_minutes=max_minutes, max_epochs=max_epochs,
                          seed=seed, resume=True, progress=tick, batch_progress=tick_batch, device=device,
                          tensorboard=tensorboard)
    label = f"val {'+'.join(config.select_on)}" if config.select_on else "val loss"
    return finish(out, result, time.perf_counter() - t0, label, digits=4, **summary)
