"""Benchmark `vocals2song train` on this machine: steps/s of each model preset, and peak memory vs dataset size.

The data is real pipeline output: a MUSDB18-HQ-shaped tree of synthetic tracks (`vocals2song.synth.make_musdb_tree`;
3 train tracks of 2 x ``--segment`` seconds and musdb's validation track "Actions - One Minute Smile" of one
segment), encoded once with `sound2image` (rgb8 PNG, ``--segment`` 15 s: 513 x 2584 images, as in real use).

1. Steps/s. For each of ``--models`` (default tiny, small, default), a fresh subprocess runs the real
   `vocals2song.train.train` on that dataset (default tile 256 frames, batch 1: the network sees 512 x 256 x 2)
   for ``--warmup`` + N + 1 steps, with history rows, samples and checkpoints only at the last step. A Keras
   callback appended to ``fit`` (the only change to the real path) timestamps the end of every step; steps/s is
   N / (time from the end of step ``warmup`` to the end of step ``warmup`` + N), so graph tracing, the first
   fill of the tile shuffle buffer and the last step's side jobs (validation, samples, checkpoint) are excluded.
   N: ``--steps-tiny`` (100), ``--steps-small`` (20), ``--steps-default`` (5). The table also gives the
   generator and discriminator parameter counts, the first step's time (tracing included), and the CPU seconds
   other processes used meanwhile (a shared machine makes timings noisy). Target: tiny >= 5 steps/s.

2. Peak memory vs number of pairs. Two flat folders (``DIR/vocals/*.png`` + ``DIR/mixture/*.png``, no valid split,
   so whole tracks are held out) of ``--pairs-small`` (20) and ``--pairs-large`` (400) pairs, named
   ``Track NN__kkk.png``, made by hard-linking (else copying) the dataset's images under new names. The images
   keep their embedded metadata, whose source track is what hold-out goes by, so the split follows the base
   dataset's 4 tracks. Each folder is trained with ``python -m vocals2song train DIR RUN --model tiny --steps
   M`` (``--memory-steps``, 60) under its own wrapper process, which reports the child's peak RSS
   (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it exits). Target: peak(large) / peak(small) <= 1.25.

Targets not met are reported; the exit status is non-zero only on errors.

    python scripts/bench_train.py [--models tiny,small,default] [--warmup 3] [--steps-tiny 100]
        [--steps-small 20] [--steps-default 5] [--segment 15] [--pairs-small 20] [--pairs-large 400]
        [--memory-steps 60] [--skip-memory] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

from benchlib import MODEL_ORDER, RESULT_TAG, child_peak_rss, models_arg, others_note, run_timed, work_folder

TARGET_TINY_STEPS_PER_S = 5.0
TARGET_MEMORY_RATIO = 1.25
VALID_TRACK = "Actions - One Minute Smile"  # musdb lists it as validation: sound2image puts it in valid/


# --- child modes -----------------------------------------------------------------------------------

def child_steps(data: str, run: str, model: str, warmup: int, steps: int) -> int:
    """Train ``model`` on DATA for warmup + steps + 1 steps with the real `train()`; print a result line."""
    from vocals2song.train import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from vocals2song import data as data_mod
    from vocals2song import transforms
    from vocals2song.config import MODELS, TrainConfig
    from vocals2song.model import build_discriminator, build_generator
    from vocals2song.train import train

    stamps: list[float] = []
    begin: list[float] = []

    class StepTimer(keras.callbacks.Callback):
        """Last in the callback list: a step's timestamp comes after the run's own callbacks for that step."""

        def on_train_begin(self, logs=None):
            begin.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    fit = keras.Model.fit

    def timed_fit(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[*(callbacks or []), StepTimer()], **kwargs)

    keras.Model.fit = timed_fit
    total = warmup + steps + 1
    cfg = TrainConfig(model=model, steps=total, log_every=total, checkpoint_every=total, sample_every=total)
    summary = train(data, run, cfg, resume=False, progress=True, log=lambda msg: print(msg, file=sys.stderr))
    if len(stamps) != total or not begin:
        raise SystemExit(f"expected {total} timed steps, got {len(stamps)}")
    measured = stamps[warmup + steps - 1] - stamps[warmup - 1]
    pairs = data_mod.find_pairs(data)
    nb_rows, nb_channels = pairs.info.nb_rows - 1, transforms.nb_net_channels(pairs.meta.format)
    gen = build_generator(nb_rows, nb_channels, MODELS[model])
    disc = build_discriminator(nb_rows, nb_channels, MODELS[model])
    print(RESULT_TAG + json.dumps({
        "model": model, "steps": steps, "warmup": warmup, "seconds": measured, "steps_per_second": steps / measured,
        "first_step": stamps[0] - begin[0], "fit_seconds": summary.seconds, "fit_steps": summary.step - summary.start,
        "gen_params": int(gen.count_params()), "disc_params": int(disc.count_params()), "nb_rows": nb_rows,
        "nb_channels": nb_channels, "train_pairs": len(pairs.train), "valid_pairs": len(pairs.valid),
        "format": pairs.meta.format}), flush=True)
    return 0


# --- helpers ---------------------------------------------------------------------------------------

def build_base_dataset(work: Path, segment: float) -> Path:
    """Synthetic tree -> sound2image dataset (rgb8 PNG, ``segment`` s images, 2 workers); returns its root."""
    from vocals2song.config import CodecConfig, DatasetConfig
    from vocals2song.sound2image import sound2image
    from vocals2song.synth import make_musdb_tree

    tree, data = work / "musdb", work / "dataset"
    tracks = [("train", f"Synth {i:02d} - Bench", 2 * segment) for i in range(1, 4)]
    tracks.append(("train", VALID_TRACK, segment))
    make_musdb_tree(tree, tracks, seed=0)
    summary = sound2image(tree, data, CodecConfig(), DatasetConfig(segment=segment, workers=2))
    if summary.failed:
        sys.exit("sound2image failed: " + "; ".join(r.error or "" for r in summary.failed))
    return data


def base_images(data: Path) -> list[tuple[Path, Path]]:
    """(vocals, mixture) image pairs of the base dataset, ordered segment-major so neighbours differ in track."""
    pairs = [(v, v.parent.parent / "mixture" / v.name) for split in ("train", "valid")
             for v in sorted((data / split / "vocals").glob("*.png"))]
    pairs.sort(key=lambda p: (p[0].stem.rsplit("__", 1)[-1], p[0].stem))
    if not pairs or not all(m.is_file() for _, m in pairs):
        sys.exit(f"no vocals/mixture image pairs in {data}")
    return pairs


def link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def make_flat_folder(folder: Path, sources: list[tuple[Path, Path]], nb_pairs: int) -> tuple[int, bool]:
    """``nb_pairs`` pairs ``Track NN__kkk.png`` in folder/{vocals,mixture}/, cycling over ``sources``.
    Returns (number of track names, whether every file is a hard link)."""
    nb_tracks = max(2, round(math.sqrt(nb_pairs)))
    per_track = math.ceil(nb_pairs / nb_tracks)
    for sub in ("vocals", "mixture"):
        (folder / sub).mkdir(parents=True)
    linked = True
    for i in range(nb_pairs):
        name = f"Track {i // per_track + 1:02d}__{i % per_track:03d}.png"
        voc, mix = sources[i % len(sources)]
        linked &= link(voc, folder / "vocals" / name)
        linked &= link(mix, folder / "mixture" / name)
    return math.ceil(nb_pairs / per_track), linked


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-steps"]:
        data, run, model, warmup, steps = argv[1:6]
        return child_steps(data, run, model, int(warmup), int(steps))
    if argv[:1] == ["--peak-rss"] and len(argv) > 3 and argv[2] == "--":
        return child_peak_rss(Path(argv[1]), argv[3:])

    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=models_arg, default=list(MODEL_ORDER),
                        help="presets to time, comma-separated (default tiny,small,default)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones (default 3)")
    parser.add_argument("--steps-tiny", type=int, default=100, help="timed steps of tiny (default 100)")
    parser.add_argument("--steps-small", type=int, default=20, help="timed steps of small (default 20)")
    parser.add_argument("--steps-default", type=int, default=5, help="timed steps of default (default 5)")
    parser.add_argument("--segment", type=float, default=15.0,
                        help="seconds per image of the base dataset (default 15: 513 x 2584 images)")
    parser.add_argument("--pairs-small", type=int, default=20, help="pairs of the small folder (default 20)")
    parser.add_argument("--pairs-large", type=int, default=400, help="pairs of the large folder (default 400)")
    parser.add_argument("--memory-steps", type=int, default=60, help="tiny steps per memory run (default 60)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory comparison")
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    steps = {"tiny": args.steps_tiny, "small": args.steps_small, "default": args.steps_default}
    if args.warmup < 1 or min(steps.values()) < 1 or args.memory_steps < 1 or args.segment < 2:
        parser.error("--warmup, --steps-* and --memory-steps must be at least 1, --segment at least 2")
    if not args.skip_memory and not 2 <= args.pairs_small <= args.pairs_large:
        parser.error("need 2 <= --pairs-small <= --pairs-large")

    with work_folder(parser, args.workdir, "bench_train_", args.keep) as work:
        from importlib.metadata import version

        print(f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
        print(f"Machine: {platform.machine()}, CPU count {cpus}, Python {platform.python_version()}, "
              f"TensorFlow {version('tensorflow')}, Keras {version('keras')}")
        t0 = time.perf_counter()
        data = build_base_dataset(work, args.segment)
        sources = base_images(data)
        print(f"Base dataset: {len(sources)} pairs of {args.segment:g} s rgb8 PNG images (3 synthetic train tracks of "
              f"{2 * args.segment:g} s + '{VALID_TRACK}' {args.segment:g} s in valid/) in {data}, "
              f"built in {time.perf_counter() - t0:.1f} s")
        print()

        me = str(Path(__file__).resolve())
        results = []
        for model in [m for m in MODEL_ORDER if m in args.models]:
            cmd = [sys.executable, me, "--child-steps", str(data), str(work / f"run_{model}"), model,
                   str(args.warmup), str(steps[model])]
            res, wall, _, others = run_timed(cmd, work / f"steps_{model}.log", result=True)
            res["wall"], res["others"] = wall, others
            results.append(res)
            print(f"{model}: {res['warmup']} + {res['steps']} timed + 1 steps on {res['train_pairs']} pairs in "
                  f"{wall:.1f} s wall" + others_note(others))
        if results:
            r0 = results[0]
            print()
            print(f"Steps/s at tile 256 frames, batch 1: network input {r0['nb_rows']} x 256 x {r0['nb_channels']} "
                  f"({r0['format']})")
            header = (f"{'model':<8} {'gen params':>11} {'disc params':>12} {'timed steps':>11} {'steps/s':>8} "
                      f"{'s/step':>7} {'first step (s)':>14}")
            print(header)
            print("-" * len(header))
            for r in results:
                print(f"{r['model']:<8} {r['gen_params']:>11,} {r['disc_params']:>12,} {r['steps']:>11} "
                      f"{r['steps_per_second']:>8.2f} {1 / r['steps_per_second']:>7.3f} {r['first_step']:>14.1f}")
            tiny = [r for r in results if r["model"] == "tiny"]
            if tiny:
                met = tiny[0]["steps_per_second"] >= TARGET_TINY_STEPS_PER_S
                print(f"tiny target (>= {TARGET_TINY_STEPS_PER_S:g} steps/s): {'met' if met else 'not met'} "
                      f"({tiny[0]['steps_per_second']:.2f} steps/s)")
            if any(r["others"] and r["others"] > 0.1 * r["wall"] for r in results):
                print("Other processes used CPU during the runs: the machine was shared, timings are noisy.")

        if not args.skip_memory:
            print()
            peaks = {}
            for label, nb in (("small", args.pairs_small), ("large", args.pairs_large)):
                folder = work / f"pairs_{nb}_{label}"
                nb_tracks, linked = make_flat_folder(folder, sources, nb)
                train_cmd = [sys.executable, "-m", "vocals2song", "train", str(folder), str(work / f"run_mem_{label}"),
                             "--model", "tiny", "--steps", str(args.memory_steps)]
                log = work / f"memory_{label}.log"
                cmd = [sys.executable, me, "--peak-rss", str(log), "--", *train_cmd]
                res, _, _, others = run_timed(cmd, work / f"memory_{label}.wrapper.log", result=True)
                text = log.read_text(errors="replace")
                if res["rc"] != 0:
                    sys.exit(f"training failed ({res['rc']}): {' '.join(train_cmd)}\n{text[-4000:]}")
                seen = re.search(r"on (\d+) pairs \(valid (\d+)\)", text)
                split = f"train {seen.group(1)}, valid {seen.group(2)}" if seen else "split not reported"
                peaks[label] = res["maxrss_bytes"]
                print(f"{nb} pairs ({nb_tracks} track names, {'hard links' if linked else 'copies'}; {split}): "
                      f"tiny {args.memory_steps} steps in {res['wall']:.1f} s, peak RSS {res['maxrss_bytes'] / 1e6:.0f} MB"
                      + others_note(others))
            print(f"Memory runs: python {' '.join(train_cmd[1:4])} DIR RUN {' '.join(train_cmd[6:])}, each under its own "
                  "wrapper process")
            ratio = peaks["large"] / peaks["small"]
            print(f"Peak RSS {args.pairs_small} pairs: {peaks['small'] / 1e6:.0f} MB, {args.pairs_large} pairs: "
                  f"{peaks['large'] / 1e6:.0f} MB, ratio {args.pairs_large}/{args.pairs_small}: {ratio:.3f}")
            print(f"memory target ({args.pairs_large}/{args.pairs_small} <= {TARGET_MEMORY_RATIO:g}): "
                  f"{'met' if ratio <= TARGET_MEMORY_RATIO else 'not met'}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
