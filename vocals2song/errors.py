"""The project's one error type; `cli.py` turns it into a one-line message."""

from __future__ import annotations

import contextlib
import os
import traceback
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


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


@dataclass
class Failure:
    """One input of a batch that failed: its path, the one-line error, and the traceback if unexpected."""

    path: str
    error: str
    traceback: str | None = None


def run_each(items: Iterable[T], work: Callable[[T], None], path_of: Callable[[T], os.PathLike | str],
             progress: Callable | None = None) -> list[Failure]:
    """Call ``work`` on every item; a failing item is recorded and the batch goes on.

    ``progress(total)`` makes a context-managed bar with ``update(n, label)``, as `cli._progress` does.
    """
    items = list(items)
    failures: list[Failure] = []
    with (progress(len(items)) if progress else contextlib.nullcontext()) as bar:
        for item in items:
            path = str(path_of(item))
            try:
                work(item)
            except Vocals2SongError as exc:
                failures.append(Failure(path, str(exc) if exc.path else f"{path}: {exc}"))
            except Exception as exc:  # noqa: BLE001 - one bad input must not stop the batch
                failures.append(Failure(path, f"{path}: unexpected {type(exc).__name__}: {exc}",
                                        traceback.format_exc()))
            if bar is not None:
                bar.update(1, os.path.basename(path))
    return failures


def run_pool(work: Callable, jobs: list, args: tuple, finish: Callable, workers: int, where,
             mp_context=None) -> None:
    """Run ``work(job, *args)`` for every job, in ``workers`` processes when that is more than one, and call
    ``finish(result)`` in this process as each result arrives (so a manifest can be written after every job).

    ``work`` must be picklable (a module-level function). A worker that dies ends the batch with one line naming
    ``where``; the jobs already finished stay finished, so a rerun resumes.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        for job in jobs:
            finish(work(job, *args))
        return
    with ProcessPoolExecutor(workers, mp_context=mp_context) as pool:
        pending = {pool.submit(work, job, *args) for job in jobs}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    finish(future.result())
        except BrokenProcessPool as exc:
            raise Vocals2SongError(f"a worker process died ({exc}); out of memory? Rerun with fewer --workers: "
                                   "finished tracks are kept and the run resumes", where) from exc
