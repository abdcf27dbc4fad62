"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception the temporary file is removed, so ``path`` is either absent, its old
    content, or complete: never half-written. The suffix is kept so format-sniffing writers work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def is_partial(path: Path) -> bool:
    """True for the temporary files `atomic_path` leaves only if a process is killed mid-write."""
    return path.name.startswith(".") and ".part" in path.name


def read_manifest(path: Path, remedy: str) -> dict | None:
    """A batch's JSON manifest (``dataset.json``, ``chorales.json``), or None when there is none yet; a corrupt
    one is a one-line usage error that ends with ``remedy`` (what to delete or rerun)."""
    import json

    from vocals2song.errors import Vocals2SongError

    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise Vocals2SongError(f"is not valid JSON ({exc}); {remedy}", path, usage=True) from exc
