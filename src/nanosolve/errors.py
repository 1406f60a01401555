"""Error types. Every user-facing failure is one readable message naming the file and the problem."""

from __future__ import annotations

import os


class NanosolveError(Exception):
    """Base class of every error nanosolve raises on purpose."""


class InputError(NanosolveError, ValueError):
    """Bad input: a malformed or empty file, an unknown element, NaN, a wrong column count...

    ``str(err)`` is ``"<path>: <problem>"`` when a path is known, else just the problem.
    """

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ResourceError(NanosolveError):
    """A job that would not fit in memory (or time) on this machine; refused before it starts."""


class FileFormatError(InputError):
    """A file that cannot be read as the format it claims: malformed CIF or column text, a wrong
    column count, a header without the data it announces. Same message shape as :class:`InputError`."""


class ConfigError(InputError):
    """A model or run configuration that cannot be used: an unknown key, a value out of range, a
    ``config.json`` written for another model family."""


class CheckpointError(InputError):
    """A checkpoint or shipped model that cannot be loaded: missing weights, a state dict that does not
    fit the configured model, a run folder without ``config.json``."""
