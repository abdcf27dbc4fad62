"""Helpers shared by the benchmark scripts (`bench_sound2image.py`, `bench_train.py`, `bench_predict.py`).

The scripts run as ``python scripts/bench_x.py``, so this folder is on ``sys.path`` and they import from here with
``from benchlib import ...``; that holds as well for the child processes they start with
``sys.executable, __file__, ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

RESULT_TAG = "BENCH_RESULT "  # a child mode prints its result as one line: RESULT_TAG + JSON
MODEL_ORDER = ("tiny", "small", "default")


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of every child process of this one waited for so far (RUSAGE_CHILDREN)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float, float, float | None]:
    """``subprocess.run(cmd, check=False, **kwargs)``, measured; returns (the completed process, wall seconds,
    its CPU seconds, CPU seconds other processes used meanwhile or None where /proc/stat is missing).
    Checks nothing: the caller judges the exit status and the output."""
    busy0, cpu0 = busy_cpu_seconds(), children_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, **kwargs)
    wall = time.perf_counter() - t0
    busy1, cpu = busy_cpu_seconds(), children_cpu_seconds() - cpu0
    others = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu)
    return proc, wall, cpu, others


def run_timed(cmd: list[str], log: Path, result: bool = False) -> tuple[dict | None, float, float, float | None]:
    """Run ``cmd`` (stderr, and stdout unless ``result``, to ``log``); returns (its result dict if ``result``,
    wall seconds, its CPU seconds, CPU seconds other processes used meanwhile). Exits on failure, and with
    ``result`` when the child printed no ``RESULT_TAG`` line (the last one is the result)."""
    with open(log, "wb") as f:
        proc, wall, cpu, others = run_measured(cmd, stdout=subprocess.PIPE if result else f, stderr=f)
    stdout = (proc.stdout or b"").decode(errors="replace")
    results = [line[len(RESULT_TAG):] for line in stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or (result and not results):
        tail = log.read_text(errors="replace")[-4000:]
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{stdout[-2000:]}{tail}")
    return (json.loads(results[-1]) if result else None), wall, cpu, others


def child_peak_rss(log: Path, cmd: list[str]) -> int:
    """Run ``cmd`` (output to ``log``); print its exit status and peak RSS. A fresh wrapper per measurement,
    since RUSAGE_CHILDREN keeps the maximum over every child ever waited for."""
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    print(RESULT_TAG + json.dumps({"rc": rc, "maxrss_bytes": usage.ru_maxrss * scale,
                                   "wall": time.perf_counter() - t0, "cpu": usage.ru_utime + usage.ru_stime}),
          flush=True)
    return 0


def models_arg(text: str) -> list[str]:
    """argparse type of ``--models``: comma-separated presets, returned once each in ``MODEL_ORDER``."""
    models = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in models if m not in MODEL_ORDER]
    if not models or bad:
        raise argparse.ArgumentTypeError(f"choose among {','.join(MODEL_ORDER)}")
    return [m for m in MODEL_ORDER if m in models]


def others_note(others: float | None) -> str:
    """The note on other processes' CPU seconds appended to a timing line ("" when unknown)."""
    return "" if others is None else f"  (other processes meanwhile: {others:.1f} CPU s)"


@contextlib.contextmanager
def work_folder(parser: argparse.ArgumentParser, workdir: Path | None, prefix: str, keep: bool) -> Iterator[Path]:
    """The benchmark's work folder, for a ``with`` block: a new temporary one (named ``prefix...``) without
    ``workdir``, else ``workdir``, made if missing (an existing non-empty ``workdir`` is a usage error,
    ``parser.error``). On leaving the block, however it ends, it is kept (``keep``: "Kept FOLDER" is printed)
    or deleted."""
    if workdir is None:
        work = Path(tempfile.mkdtemp(prefix=prefix))
    else:
        work = workdir
        if work.exists() and any(work.iterdir()):
            parser.error(f"--workdir {work} exists and is not empty; give a new or empty folder")
        work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if keep:
            print(f"Kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
