"""Progress of long work: a rich bar on a terminal, plain lines when the output is piped, nothing with --quiet.

Use::

    from nanosolve.cli.common import console
    from nanosolve.cli.progress import stage_progress

    with stage_progress(console, quiet) as p:
        p.stage("sampling candidates", total=k)   # a counted stage
        for _ in range(k):
            ...
            p.advance()                           # one step done (p.advance(n) for n)
        p.stage("writing the report")             # a stage of unknown length (spinner / one line)
        p.update(completed=3, total=10)           # or set the counts directly

``p.callback`` is a ``(done, total)`` function for library code that reports progress that way
(``batch_progress``, ``on_result``...), and ``p`` itself is a ``progress(stage, detail)`` callback
for library code that announces stages (``PowderSolveSettings.progress``, ``solve_pdf(progress=)``). Library code below the CLI must not import this module (it is
the CLI layer); it takes such a callback instead.

On a terminal (``console.is_terminal``) each stage is a rich progress bar (spinner, bar, count,
elapsed time). Otherwise each stage prints ``[stage k] <name>`` and counted stages print
``<name>: done/total`` about every 10 % (and at the end), so logs of piped or batch jobs show where
the work is without carriage-return noise. ``quiet`` prints nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["StageProgress", "stage_progress", "mute"]


class StageProgress:
    """Stages of one long job, each optionally counted. See the module docstring for the API."""

    def __init__(self, console: Console, quiet: bool = False, live: bool | None = None):
        self.console = console
        self.quiet = quiet
        self.live = (console.is_terminal if live is None else live) and not quiet
        self._progress: Progress | None = None
        self._task = None
        self.name: str | None = None
        self.total: int | None = None
        self.completed = 0
        self.stages = 0
        self._next_report = 0
        self._printed = 0

    # ----- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> StageProgress:
        if self.live:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                      transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._finish_stage()
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    # ----- API ---------------------------------------------------------------------------------
    def stage(self, name: str, total: int | None = None) -> None:
        """Start a new stage ``name`` with ``total`` steps (None: length unknown). Ends the previous one."""
        self._finish_stage()
        self.stages += 1
        self.name, self.total, self.completed, self._printed = name, total, 0, 0
        self._next_report = self._step(total)
        if self.quiet:
            return
        if self._progress is not None:
            self._task = self._progress.add_task(name, total=total)
        else:
            suffix = f" ({total} steps)" if total else ""
            self.console.print(f"[stage {self.stages}] {name}{suffix}", highlight=False, soft_wrap=True, markup=False)

    def advance(self, n: int = 1) -> None:
        """``n`` more steps of the current stage are done."""
        self.update(completed=self.completed + n)

    def update(self, completed: int | None = None, total: int | None = None) -> None:
        """Set the current stage's done count and/or total."""
        if total is not None and total != self.total:
            self.total = total
            self._next_report = self.completed + self._step(total)
        if completed is not None:
            self.completed = completed
        if self.quiet or self.name is None:
            return
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.completed, total=self.total)
        elif self.total and (self.completed >= self._next_report or self.completed >= self.total) \
                and self.completed != self._printed:
            self.console.print(f"  {self.name}: {self.completed}/{self.total}", highlight=False, soft_wrap=True, markup=False)
            self._printed = self.completed
            self._next_report = self.completed + self._step(self.total)

    def __call__(self, stage: str, detail: str | None = None, total: int | None = None) -> None:
        """``progress(stage, detail)``: the stage-announcing callback library code takes
        (e.g. ``PowderSolveSettings.progress``, ``solve_pdf(progress=...)``); starts stage
        ``"<stage>: <detail>"``."""
        self.stage(f"{stage}: {detail}" if detail else stage, total=total)

    def callback(self, done: int, total: int | None = None) -> None:
        """``(done, total)`` progress function for library code (sets the current stage's counts)."""
        self.update(completed=done, total=total)

    def log(self, message: str) -> None:
        """One line of text above the bar (or in the log); nothing when quiet."""
        if self.quiet:
            return
        (self._progress.console if self._progress is not None else self.console).print(
            message, highlight=False, soft_wrap=True, markup=False)

    # ----- internals ---------------------------------------------------------------------------
    @staticmethod
    def _step(total: int | None) -> int:
        return max(1, (total or 0) // 10)

    def _finish_stage(self) -> None:
        if self.name is None:
            return
        if self._progress is not None and self._task is not None:
            if self.total:  # a stage left before its count ends still shows as closed
                self._progress.update(self._task, completed=self.completed)
            else:
                self._progress.update(self._task, total=1, completed=1)
        elif not self.quiet and self.total and self.completed != self._printed:
            self.console.print(f"  {self.name}: {self.completed}/{self.total}", highlight=False, soft_wrap=True, markup=False)
        self._task = None
        self.name = None


@contextmanager
def stage_progress(console: Console, quiet: bool = False, live: bool | None = None) -> Iterator[StageProgress]:
    """Context manager yielding a :class:`StageProgress` (rich bar on a terminal, plain lines otherwise,
    silent when ``quiet``). ``live`` forces the bar on (True) or off (False)."""
    p = StageProgress(console, quiet=quiet, live=live)
    with p:
        yield p


def mute(console: Console, quiet: bool, ctx=None) -> None:
    """``--quiet``: the console prints nothing more (progress, tables, summaries; errors go to stderr
    through another console) until the command ends; ``ctx`` (a ``typer.Context``) restores it then."""
    if not quiet:
        return
    before = console.quiet
    console.quiet = True
    if ctx is not None:
        ctx.call_on_close(lambda: setattr(console, "quiet", before))
