"""Shared CLI plumbing: one readable error and a non-zero exit for every expected failure."""

from __future__ import annotations

import functools
import json
import math
import warnings

import typer
from rich.console import Console

from nanosolve._io import atomic_write_text
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
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    console.print(f"{result.stopped or 'done'}: {result.epochs} epochs, best epoch {result.best_epoch} "
                  f"({label} {result.best_val:.{digits}f}); weights in {out}/best.pt", highlight=False)
    return summary


# ----- usage errors (click/typer) as one line -------------------------------------------------------
def _one_line_usage_error(exc) -> None:
    """click's usage errors (bad option value, out of range, missing argument) as one
    ``error: <option>: <problem>`` line instead of a framed panel; exit code stays 2."""
    if exc.__class__.__name__ == "NoArgsIsHelpError":
        return
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    msg = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    if param is not None and msg.startswith("Invalid value for "):
        # "Invalid value for '--steps': -5 is not in the range x>=1." -> "--steps: -5 is not in the range x>=1."
        msg = msg[len("Invalid value for "):].replace("'", "", 2)
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(msg + hint)}", highlight=False, soft_wrap=True)


def install_usage_errors() -> None:
    """Make typer print usage errors through :func:`_one_line_usage_error` (called once by the app)."""
    import typer.rich_utils

    typer.rich_utils.rich_format_error = _one_line_usage_error


# ----- range checks of option values, before any work -------------------------------------------------
# Ranges of integer options shared by several commands, as ``typer.Option(0, **SEED, ...)``: click refuses
# a value outside them while parsing, before any work, as one ``error: --seed: ...`` line (exit 2).
# Float options go through :func:`check_number` instead, which also refuses NaN and inf.
#: seeds: numpy's generators refuse negative ones; 2³² - 1 is the largest every generator in use takes
SEED = {"min": 0, "max": 2**32 - 1}
#: total epochs of a training run
EPOCHS = {"min": 1, "max": 1_000_000}
#: torch CPU threads
THREADS = {"min": 1, "max": 1024}


def check_number(option: str, value, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, unit: str = "") -> None:
    """InputError ``<option>: must be in <range>, got <value>`` unless ``value`` (None passes) is finite
    and inside [lo, hi] (open ends with ``lo_open`` / ``hi_open``)."""
    if value is None:
        return
    v = float(value)
    ok = math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo)) and \
        (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        left = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        right = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        rule = " and ".join(p for p in (left, right) if p) or "finite"
        raise InputError(f"must be {rule}{(' ' + unit) if unit else ''}, got {value}", option)


# ----- output files and folders ------------------------------------------------------------------------
#: Files a ``solve`` run writes into its folder: fixed names, and the ranked candidates ``NN_….xyz/.cif``.
RUN_FILES = ("summary.json", "fit.png", "fit.gr", "fit.xy", "profile_fit.png", "profile_fit.xy", "rietveld_fit.png",
             "rietveld_fit.xy", "rw_vs_size.png", "rw_vs_size.csv", "report.html")
RUN_FILE_PATTERN = r"^\d{2,}_[\w\-.]+\.(xyz|cif)$"


def earlier_run_files(out, names=RUN_FILES, pattern: str | None = RUN_FILE_PATTERN,
                       listed: tuple[str, ...] = ("candidates",)) -> list:
    """Files of an earlier run in folder ``out``: those its summary.json lists (the ``file`` of each
    entry of its ``listed`` lists), the fixed ``names`` and the files matching ``pattern``; nothing
    else (a user's own files are never touched). The defaults are a ``solve`` run's files."""
    import re

    out_names = set()
    summary = out / "summary.json"
    if listed and summary.is_file():
        try:
            data = json.loads(summary.read_text())
            for key in listed:
                out_names |= {str(c["file"]) for c in data.get(key, []) if isinstance(c, dict) and "file" in c}
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # unreadable summary: fall back to the name patterns
    out_names |= {n for n in names if (out / n).exists()}
    if pattern is not None:
        out_names |= {p.name for p in out.iterdir() if p.is_file() and re.match(pattern, p.name)}
    return sorted(out / n for n in out_names if "/" not in n and (out / n).is_file())


def output_folder(out, option: str = "-o", overwrite: bool = False, earlier=earlier_run_files):
    """Check a results folder before any work: not an existing file, and holding no earlier run's
    results (the files ``earlier(out)`` lists; a solve's by default) unless ``overwrite``. Nothing is
    removed or created here: the run writes through :func:`results_folder`, which replaces exactly the
    earlier run's files once the new results are complete, so no stale candidate is left beside the
    new ones and a failed run leaves the earlier results in place. Returns ``out``."""
    from pathlib import Path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is an existing file; {option} needs a folder (a new or an earlier results one)",
                         option)
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{parent} is a file, so {out} cannot be a folder", option)
    if out.is_dir():
        old = earlier(out)
        if old and not overwrite:
            raise InputError(f"{out} holds the results of an earlier run ({len(old)} files, e.g. {old[0].name}); "
                             f"pass --overwrite to replace them, or choose another {option}", option)
    return out


def results_folder(out, overwrite: bool = False, earlier=earlier_run_files):
    """``with results_folder(out, overwrite) as work:`` a run writes its results into ``work`` (a fresh
    folder beside ``out``); they appear in ``out`` only when the block ends without an exception,
    replacing an earlier run's files (``earlier(out)``) when ``overwrite``
    (:func:`nanosolve._io.staged_folder`). A failed run leaves ``out`` as it was: no partial results,
    the earlier ones kept."""
    from nanosolve._io import staged_folder

    return staged_folder(out, stale=earlier if overwrite else None)


def output_file(path, extensions, option: str = "-o"):
    """Check an output file path before any work: a known extension, not a folder, its parent not a
    file. Returns the path."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; {option} needs a file name ending in {', '.join(extensions)}", option)
    if path.suffix.lower() not in extensions:
        raise InputError(f"unknown output extension {path.suffix or '(none)'!r} of {path.name}; use one of "
                         f"{', '.join(extensions)}", option)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{parent} is a file, so {path} cannot be written", option)
    return path


def check_wavelength_option(value, option: str = "--wavelength") -> float | None:
    """The wavelength (Å) of ``-w``/``--wavelength`` (a number or a tube name such as CuKa), refused
    outside the range of real sources even when the file states its own."""
    if value is None:
        return None
    from nanosolve.scattering.readers.validate import check_wavelength
    from nanosolve.scattering.units import wavelength

    try:
        return check_wavelength(wavelength(value), "wavelength")
    except InputError as exc:
        raise InputError(exc.problem, option) from None

