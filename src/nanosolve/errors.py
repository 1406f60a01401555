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
