"""Shared CLI plumbing: one readable error and a non-zero exit for every expected failure."""

from __future__ import annotations

import functools
import warnings

import typer
from rich.console import Console

from nanosolve.errors import NanosolveError

console = Console()
err_console = Console(stderr=True)

#: Exit code of a refused input / job.
EXIT_BAD_INPUT = 2


def friendly_errors(fn):
    """Turn NanosolveError (and missing files) into ``error: <file>: <problem>`` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return fn(*args, **kwargs)
        except NanosolveError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            err_console.print(f"[bold red]error:[/] {exc.filename}: {exc.strerror}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper
