"""Shared CLI plumbing: one readable error and a non-zero exit for every expected failure."""

from __future__ import annotations

import functools
import json
import warnings

import typer
from rich.console import Console

from nanosolve.errors import InputError, NanosolveError

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


def parse_overrides(items: list[str] | None) -> dict:
    """``--set key=value`` pairs of a config; the value is parsed as JSON when it is JSON
    (``decoder_widths=[64,128]``), else kept as a string."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
