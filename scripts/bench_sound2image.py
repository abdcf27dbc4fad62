"""Benchmark `vocals2song sound2image` against a plain per-file encoder of the original project's kind.

It writes a MUSDB18-HQ-shaped tree of synthetic tracks (`vocals2song.synth.make_musdb_tree`, 16-bit stereo WAV
at 44.1 kHz; default 4 tracks x 180 s) and times, wall clock, from interpreter start to exit:

- ours: ``python -m vocals2song sound2image TREE OUT`` (default rgb8 PNG, ``--workers`` = CPU count);
- the baseline: ``python bench_sound2image.py --baseline-only TREE OUT``, written here the way a notebook
  author would: a process pool of ``cpu_count - 1`` workers, one task per stem file (vocals.wav and mixture.wav
  of every track); each task reads the file with soundfile, mixes to mono, and for each 15 s segment runs
  ``librosa.stft(n_fft=1024, hop_length=256)``, takes ``np.abs`` and ``np.angle``, converts the magnitude with
  ``librosa.amplitude_to_db``, scales magnitude and phase to 0..255 uint8, stacks R = magnitude, G = phase,
  B = 0 and saves an 8-bit BMP with PIL.

Both run as subprocesses, so interpreter and import start-up count the same way for each. Runs alternate
(baseline, ours, baseline, ours, ...) into fresh output folders; the median wall time of each is reported with
the audio duration encoded (a vocals + mixture pair counts once, as one track duration), x realtime (audio
seconds / wall seconds), images written, and the speed-up baseline / ours against the target (>= 2x, aim 3x).

    python scripts/bench_sound2image.py [--tracks 4] [--seconds 180] [--runs 3] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import add_work_folder_args, others_note, run_measured, work_folder

TARGET_SPEEDUP = 2.0
AIM_SPEEDUP = 3.0
IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


# --- the baseline: a straightforward per-file encoder ---------------------------------------------------

def baseline_encode_file(job: tuple[str, str]) -> int:
    """Encode one stem file into 15 s BMP spectrogram images; returns the number written."""
    import librosa
    import numpy as np
    import soundfile as sf
    from PIL import Image

    wav_path, out_dir = job
    y, sr = sf.read(wav_path, dtype="float32")
    if y.ndim == 2:
        y = y.mean(axis=1)
    segment = 15 * sr
    name = Path(wav_path).parent.name + "__" + Path(wav_path).stem
    count = 0
    for i, start in enumerate(range(0, len(y), segment)):
        chunk = y[start:start + segment]
        if len(chunk) < segment:
            chunk = np.pad(chunk, (0, segment - len(chunk)))
        stft = librosa.stft(chunk, n_fft=1024, hop_length=256)
        mag = np.abs(stft)
        phase = np.angle(stft)
        mag_db = librosa.amplitude_to_db(mag)
        r = (mag_db - mag_db.min()) / (mag_db.max() - mag_db.min() + 1e-8) * 255
        g = (phase + np.pi) / (2 * np.pi) * 255
        b = np.zeros_like(r)
        img = np.stack([r, g, b], axis=-1).astype(np.uint8)
        img = np.flipud(img)  # highest frequency on top
        Image.fromarray(img).save(os.path.join(out_dir, f"{name}_{i:03d}.bmp"))
        count += 1
    return count


def baseline_main(tree: Path, out: Path, workers: int) -> int:
    from multiprocessing import Pool

    out.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p) for stem in ("vocals", "mixture") for p in tree.glob(f"*/*/{stem}.wav"))
    with Pool(workers) as pool:
        counts = pool.map(baseline_encode_file, [(f, str(out)) for f in files])
    print(f"baseline: wrote {sum(counts)} images from {len(files)} files")
    return 0


# --- the benchmark ----------------------------------------------------------------------------------

def make_tree(root: Path, nb_tracks: int, seconds: float) -> float:
    """Write the synthetic tree; returns the total audio duration in seconds (one per track)."""
    from vocals2song.synth import make_musdb_tree

    tracks = [("train" if i % 4 != 3 else "test", f"Synth {i + 1:02d} - Bench", seconds) for i in range(nb_tracks)]
    make_musdb_tree(root, tracks, seed=0)
    import soundfile as sf

    return sum(sf.info(str(root / subset / name / "mixture.wav")).duration for subset, name, _ in tracks)


def timed(cmd: list[str]) -> tuple[float, float, float | None]:
    """Run ``cmd``; returns (wall seconds, its CPU seconds, CPU seconds other processes used meanwhile)."""
    proc, wall, cpu, others = run_measured(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}")
    return wall, cpu, others


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=4, help="synthetic tracks (default 4)")
    parser.add_argument("--seconds", type=float, default=180.0, help="seconds per track (default 180)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each, alternating (default 3)")
    add_work_folder_args(parser, "keep the work folder with the generated tree (run outputs are always deleted)")
    parser.add_argument("--format", default="rgb8", help="our image format (default rgb8)")
    parser.add_argument("--container", default=None, help="our container (default: the format's, PNG for rgb8)")
    parser.add_argument("--workers", type=int, default=cpus, help=f"our workers (default: CPU count, {cpus})")
    parser.add_argument("--baseline-workers", type=int, default=max(1, cpus - 1),
                        help=f"baseline pool size (default: CPU count - 1, {max(1, cpus - 1)})")
    parser.add_argument("--baseline-only", nargs=2, type=Path, metavar=("TREE", "OUT"),
                        help="internal: run only the baseline encoder on TREE into OUT")
    args = parser.parse_args(argv)
    if args.baseline_only:
        return baseline_main(*args.baseline_only, workers=args.baseline_workers)
    from vocals2song.config import CodecConfig

    if args.tracks < 1 or args.seconds <= 0 or args.runs < 1:
        parser.error("--tracks, --seconds and --runs must be positive")

    with work_folder(parser, args.workdir, "bench_sound2image_", args.keep) as work:
        t0 = time.perf_counter()
        tree = work / "musdb"
        duration = make_tree(tree, args.tracks, args.seconds)
        print(f"Tree: {args.tracks} synthetic tracks x {args.seconds:g} s (16-bit stereo WAV, 44.1 kHz) in {tree}, "
              f"written in {time.perf_counter() - t0:.1f} s")
        print(f"CPU count: {cpus}")
        ours_cmd = [sys.executable, "-m", "vocals2song", "sound2image", str(tree), None, "--format", args.format,
                    "--workers", str(args.workers)] + (["--container", args.container] if args.container else [])
        base_cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-only", str(tree), None,
                    "--baseline-workers", str(args.baseline_workers)]
        print(f"ours:     {' '.join(c or 'OUT' for c in ours_cmd)}")
        print(f"baseline: {' '.join(c or 'OUT' for c in base_cmd)}")
        print()
        times: dict[str, list[float]] = {"baseline": [], "ours": []}
        cpu_times: dict[str, list[float]] = {"baseline": [], "ours": []}
        others_total: list[float] = []
        images: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for run in range(1, args.runs + 1):
            for label, cmd in (("baseline", base_cmd), ("ours", ours_cmd)):
                out = work / f"out_{label}_{run}"
                wall, cpu, others = timed([out.as_posix() if c is None else c for c in cmd])
                times[label].append(wall)
                cpu_times[label].append(cpu)
                others_total.append(others or 0.0)
                images[label], sizes[label] = count_images(out), folder_bytes(out)
                print(f"run {run} {label:<8} wall {wall:6.2f} s, CPU {cpu:6.2f} s, {images[label]} images"
                      + others_note(others))
                shutil.rmtree(out)

        if max(others_total) > 0.5:
            print(f"Other processes used up to {max(others_total):.1f} CPU s during a run: the machine was shared, "
                  "timings are noisy.")
        print()
        print(f"Audio encoded per run: {duration:.0f} s ({args.tracks} tracks x {args.seconds:g} s; "
              "vocals + mixture of a track count once)")
        header = (f"{'encoder':<10} {'workers':>7} {'container':>9} {'median wall':>12} {'median CPU':>11} "
                  f"{'x realtime':>11} {'images':>7} {'output':>9}")
        print(header)
        print(f"{'':<10} {'':>7} {'':>9} {'(s)':>12} {'(s)':>11} {'':>11} {'':>7} {'(MB)':>9}")
        print("-" * len(header))
        medians = {k: statistics.median(v) for k, v in times.items()}
        container = CodecConfig(format=args.format, container=args.container).container_name
        for label, workers, cont in (("baseline", args.baseline_workers, "bmp"),
                                     ("ours", args.workers, container)):
            print(f"{label:<10} {workers:>7} {cont:>9} {medians[label]:>12.2f} "
                  f"{statistics.median(cpu_times[label]):>11.2f} {duration / medians[label]:>10.1f}x "
                  f"{images[label]:>7} {sizes[label] / 1e6:>9.1f}")
        ratio = medians["baseline"] / medians["ours"]
        print()
        print(f"Speed-up baseline / ours: {ratio:.2f}x (target >= {TARGET_SPEEDUP:g}x, aim {AIM_SPEEDUP:g}x): "
              + ("target met" + (", aim met" if ratio >= AIM_SPEEDUP else ", aim not met")
                 if ratio >= TARGET_SPEEDUP else "TARGET NOT MET"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
