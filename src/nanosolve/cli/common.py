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


def refuse_other_run(out, config, option: str = "OUT") -> dict | None:
    """The previous ``config.json`` (as a dict) of a resumable run in ``out``, or None when there is
    none; InputError when that run was started with other settings (``extra`` may differ)."""
    old = out / "config.json"
    if not ((out / "last.pt").is_file() and old.is_file()):
        return None
    previous = json.loads(old.read_text())
    settings = {k: v for k, v in config.to_dict().items() if k != "extra"}
    if {k: v for k, v in previous.items() if k != "extra"} != settings:
        raise InputError(f"holds a run with different settings; choose another {option} to start afresh", out)
    return previous


def finish_training(out, result, seconds: float, label: str, digits: int = 5, **extra) -> dict:
    """Write ``out/summary.json`` of a finished ``train`` call (epochs, best, stop reason, time, the
    last epoch's numbers, ``extra``) and print one line; returns the summary."""
    last = result.history[-1] if result.history else {}
    summary = {"epochs": result.epochs, "best_epoch": result.best_epoch, "best_val": result.best_val, **extra,
               "stopped": result.stopped, "seconds_this_call": round(seconds, 1),
               "last": {k: v for k, v in last.items() if isinstance(v, (int, float))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    console.print(f"{result.stopped or 'done'}: {result.epochs} epochs, best epoch {result.best_epoch} "
                  f"({label} {result.best_val:.{digits}f}); weights in {out}/best.pt", highlight=False)
    return summary
