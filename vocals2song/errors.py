"""The project's one error type; `cli.py` turns it into a one-line message."""

from __future__ import annotations

import os


class Vocals2SongError(Exception):
    """A problem with an input or an output that the user can fix.

    Rendered by the CLI as ``Error: <path>: <message>`` (or ``Error: <message>`` without a path).
    ``usage=True`` marks errors in how the command was called (exit code 2).
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, usage: bool = False):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.usage = usage

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message
