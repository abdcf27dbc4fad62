"""Helpers and constants shared by the benchmark scripts (``scripts/bench_*.py``) and the research probes.

The benchmarks run as ``python scripts/bench_x.py``, so this folder is on ``sys.path`` and they import from here with
``from benchlib import ...``; that holds as well for the child processes they start with
``sys.executable, __file__, ...``. A research probe (``scripts/research/x.py``) puts this folder on ``sys.path``
itself.

Run as a script, it is the peak-RSS wrapper that `peak_rss_command` builds:
``python scripts/benchlib.py --peak-rss LOG -- CMD ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
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
#: a train track that musdb lists as validation (`sound2image.validation_tracks`): sound2image puts it in valid/
VALID_TRACK = "Actions - One Minute Smile"
#: the published pix2pix recipe (`config.RECIPES`): the unet generator with its phase channel, the PatchGAN, L1
#: weight 100, and pix2pix's training; the CLI's default recipe is powersum-mean, magnitude only
PUBLISHED = "pix2pix"


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


def maxrss_bytes(usage: resource.struct_rusage) -> int:
    """``usage.ru_maxrss`` in bytes (it is bytes on macOS, KiB on Linux)."""
    return usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def self_peak_rss() -> int:
    """This process's peak RSS in bytes."""
    return maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF))


def peak_rss_command(log: Path, cmd: list[str]) -> list[str]:
    """The command that runs ``cmd`` (output to ``log``) under a fresh wrapper process, which prints a
    ``RESULT_TAG`` line with its exit status, peak RSS, wall and CPU seconds (read it with
    ``run_timed(..., result=True)``). A fresh wrapper per measurement, since RUSAGE_CHILDREN keeps the maximum
    over every child ever waited for."""
    return [sys.executable, str(Path(__file__).resolve()), "--peak-rss", str(log), "--", *cmd]


def child_peak_rss(log: Path, cmd: list[str]) -> int:
    """The wrapper of `peak_rss_command`: run ``cmd`` (output to ``log``); print its exit status and peak RSS."""
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(RESULT_TAG + json.dumps({"rc": rc, "maxrss_bytes": maxrss_bytes(usage),
                                   "wall": time.perf_counter() - t0, "cpu": usage.ru_utime + usage.ru_stime}),
          flush=True)
    return 0


def print_machine() -> None:
    """The benchmark's first lines: the date and time, the machine, and the versions it ran with."""
    from importlib.metadata import version

    print(f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"Machine: {platform.machine()}, CPU count {os.cpu_count() or 1}, Python {platform.python_version()}, "
          f"TensorFlow {version('tensorflow')}, Keras {version('keras')}")


def build_synthetic_dataset(work: Path, segment: float, nb_train: int) -> Path:
    """A MUSDB18-HQ-shaped tree in ``work/musdb`` (`vocals2song.synth.make_musdb_tree`: ``nb_train`` synthetic train
    tracks ``Synth NN - Bench`` of 2 x ``segment`` seconds and `VALID_TRACK` of one segment), encoded by
    `sound2image` into ``work/dataset`` (rgb8 PNG, ``segment`` s images, 2 workers); returns the dataset's root.
    Exits on a failed track."""
    from vocals2song.config import CodecConfig, DatasetConfig
    from vocals2song.sound2image import sound2image
    from vocals2song.synth import make_musdb_tree

    tree, data = work / "musdb", work / "dataset"
    tracks = [("train", f"Synth {i:02d} - Bench", 2 * segment) for i in range(1, nb_train + 1)]
    make_musdb_tree(tree, [*tracks, ("train", VALID_TRACK, segment)], seed=0)
    summary = sound2image(tree, data, CodecConfig(), DatasetConfig(segment=segment, workers=2))
    if summary.failed:
        sys.exit("sound2image failed: " + "; ".join(r.error or "" for r in summary.failed))
    return data


def models_arg(text: str) -> list[str]:
    """argparse type of ``--models``: comma-separated presets, returned once each in ``MODEL_ORDER``."""
    models = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in models if m not in MODEL_ORDER]
    if not models or bad:
        raise argparse.ArgumentTypeError(f"choose among {','.join(MODEL_ORDER)}")
    return [m for m in MODEL_ORDER if m in models]


def add_work_folder_args(parser: argparse.ArgumentParser, keep_help: str = "keep the work folder") -> None:
    """``--workdir DIR`` and ``--keep``, the options `work_folder` takes."""
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help=keep_help)


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


if __name__ == "__main__":
    if sys.argv[1:2] != ["--peak-rss"] or len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit("usage: python scripts/benchlib.py --peak-rss LOG -- CMD ...")
    sys.exit(child_peak_rss(Path(sys.argv[2]), sys.argv[4:]))
