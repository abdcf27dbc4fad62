"""Benchmark `vocals2song train` on this machine: steps/s of each model preset, float32 against bfloat16, the CLI
against the bare train step, and peak memory vs dataset size.

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

2. float32 against mixed_bfloat16. For each preset, one subprocess builds the GAN under each policy and times its
   compiled ``train_step`` on one fixed 512 x 256 tile (the bare step: no input pipeline, no callbacks), ``--rounds``
   rounds of the preset's N steps, alternating in ABBA order; the table gives steps/s and the ratio. Only CPUs with
   ``avx512_bf16`` or ``amx_bf16`` compute bfloat16 natively (`vocals2song.runtime`); elsewhere it is emulated.

3. CLI against the bare step (tiny). One subprocess alternates the bare step (``--bare-steps``, 300) with the real
   `train()` at its default side-job intervals (history row every 100 steps, samples and checkpoint every 500) for
   ``--cli-steps`` (1000): bare, CLI, bare, CLI, bare (``--cli-rounds`` 2). CLI steps/s run from the end of step
   ``--warmup`` to the end of the last step. Target: CLI >= 0.85 x bare.

4. Peak memory vs number of pairs. Two flat folders (``DIR/vocals/*.png`` + ``DIR/mixture/*.png``, no valid split,
   so whole tracks are held out) of ``--pairs-small`` (20) and ``--pairs-large`` (400) pairs, named
   ``Track NN__kkk.png``, made by hard-linking (else copying) the dataset's images under new names. The images
   keep their embedded metadata, whose source track is what hold-out goes by, so the split follows the base
   dataset's 4 tracks. Each folder is trained with ``python -m vocals2song train DIR RUN --model tiny --tile T``
   (``--memory-tile``, 64: cheap steps) in a process that counts the training stream's decodes and stops
   ``--memory-margin`` (20) steps after every training image has been decoded at least once (so a pipeline that
   cached decoded images would show it), under its own wrapper process, which reports the child's peak RSS
   (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it exits); the RSS at the step every pair had been read is
   reported too. Target: peak(large) / peak(small) <= 1.25, with every pair read.

Targets not met are reported; the exit status is non-zero only on errors.

    python scripts/bench_train.py [--models tiny,small,default] [--warmup 3] [--steps-tiny 100]
        [--steps-small 20] [--steps-default 5] [--segment 15] [--pairs-small 20] [--pairs-large 400]
        [--rounds 4] [--cli-steps 1000] [--cli-rounds 2] [--bare-steps 300] [--memory-tile 64]
        [--memory-margin 20] [--memory-max-steps 20000] [--skip-precision] [--skip-cli] [--skip-memory]
        [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

from benchlib import (
    MODEL_ORDER,
    PUBLISHED,
    RESULT_TAG,
    VALID_TRACK,
    add_work_folder_args,
    build_synthetic_dataset,
    models_arg,
    others_note,
    peak_rss_command,
    print_machine,
    run_timed,
    self_peak_rss,
    work_folder,
)

TARGET_TINY_STEPS_PER_S = 5.0
TARGET_MEMORY_RATIO = 1.25
TARGET_CLI_SHARE = 0.85  # tiny through the CLI path against the bare train step


# --- child modes -----------------------------------------------------------------------------------
# The train() runs and the bare step train the same recipe, PUBLISHED, so that the two are like for like.

def append_fit_callback(keras, callback) -> None:
    """Make every ``keras.Model.fit`` of this process call ``callback`` after the run's own callbacks."""
    fit = keras.Model.fit

    def fit_with(self, *args, callbacks=None, **kwargs):
        return fit(self, *args, callbacks=[*(callbacks or []), callback], **kwargs)

    keras.Model.fit = fit_with


def child_steps(data: str, run: str, model: str, warmup: int, steps: int) -> int:
    """Train ``model`` on DATA for warmup + steps + 1 steps with the real `train()`; print a result line."""
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from vocals2song import data as data_mod
    from vocals2song import transforms
    from vocals2song.config import MODELS, recipe_config
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

    append_fit_callback(keras, StepTimer())
    total = warmup + steps + 1
    cfg = recipe_config(PUBLISHED, model=model, steps=total, log_every=total, checkpoint_every=total,
                        sample_every=total)
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
        "format": pairs.meta.format, "peak_rss": self_peak_rss()}), flush=True)
    return 0


def current_rss() -> int:
    """This process's resident set now, in bytes (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def bare_stepper(gan, nb_rows: int, nb_channels: int, tile: int = 256):
    """The bare train step: ``gan.train_step`` compiled, on one fixed batch; returns ``run(n) -> steps/s``
    (``run.cpu`` holds the process CPU seconds per step of the last run)."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, nb_rows, tile, nb_channels)).astype(np.float32))
    step = tf.function(gan.train_step)

    def run(n: int) -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            logs = step((x, x))
        float(logs["gen_total"])  # wait for the last step
        run.cpu = (time.process_time() - c0) / n
        return n / (time.perf_counter() - t0)

    run(3)  # trace, and the first steps' allocations
    return run


def child_precision(model: str, nb_rows: int, nb_channels: int, steps: int, rounds: int) -> int:
    """The bare train step of ``model`` in float32 and in mixed_bfloat16, one process, alternating (ABBA)."""
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from vocals2song.config import recipe_config
    from vocals2song.model import build_pix2pix
    from vocals2song.runtime import cpu_bf16_flags

    runs = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)  # a network computes in the policy it was built under
        gan = build_pix2pix(nb_rows, nb_channels, recipe_config(PUBLISHED, model=model))
        runs[policy] = bare_stepper(gan, nb_rows, nb_channels)
    keras.mixed_precision.set_global_policy("float32")
    seconds = {p: 0.0 for p in runs}
    order = [("float32", "mixed_bfloat16"), ("mixed_bfloat16", "float32")]
    for r in range(rounds):
        for policy in order[r % 2]:
            seconds[policy] += steps / runs[policy](steps)
    rate = {p: rounds * steps / seconds[p] for p in runs}
    print(RESULT_TAG + json.dumps({"model": model, "steps": steps, "rounds": rounds, "float32": rate["float32"],
                                   "bf16": rate["mixed_bfloat16"], "bf16_flags": cpu_bf16_flags(),
                                   "peak_rss": self_peak_rss()}), flush=True)
    return 0


def child_cli(data: str, work: str, steps: int, warmup: int, bare_steps: int, rounds: int) -> int:
    """Tiny: the real `train()` with its default side jobs against the bare step, alternating
    bare, CLI, bare, ..., bare in one process."""
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from vocals2song import data as data_mod
    from vocals2song import transforms
    from vocals2song.config import recipe_config
    from vocals2song.model import build_pix2pix
    from vocals2song.train import train

    stamps: list[tuple[float, float]] = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append((time.perf_counter(), time.process_time()))

    append_fit_callback(keras, StepTimer())
    pairs = data_mod.find_pairs(data)
    nb_rows, nb_channels = pairs.info.nb_rows - 1, transforms.nb_net_channels(pairs.meta.format)
    bare = bare_stepper(build_pix2pix(nb_rows, nb_channels, recipe_config(PUBLISHED, model="tiny")), nb_rows,
                        nb_channels)
    cfg = recipe_config(PUBLISHED, model="tiny", steps=steps)  # default history rows, samples and checkpoints
    bare_rates, cli_rates = [bare(bare_steps)], []
    bare_cpu, cli_cpu = [bare.cpu], []
    for r in range(rounds):
        stamps.clear()
        train(data, Path(work) / f"run_cli_{r}", cfg, resume=False, progress=True,
              log=lambda msg: print(msg, file=sys.stderr))
        cli_rates.append((steps - warmup) / (stamps[-1][0] - stamps[warmup - 1][0]))
        cli_cpu.append((stamps[-1][1] - stamps[warmup - 1][1]) / (steps - warmup))
        bare_rates.append(bare(bare_steps))
        bare_cpu.append(bare.cpu)
    print(RESULT_TAG + json.dumps({"steps": steps, "warmup": warmup, "rounds": rounds, "cli": cli_rates,
                                   "bare": bare_rates, "cli_cpu": cli_cpu, "bare_cpu": bare_cpu,
                                   "log_every": cfg.log_every, "sample_every": cfg.sample_every,
                                   "checkpoint_every": cfg.checkpoint_every, "peak_rss": self_peak_rss()}),
          flush=True)
    return 0


def child_read_all(margin: int, train_args: list[str]) -> int:
    """`vocals2song train ...` in this process, counting the training stream's decodes; once every training pair
    has been decoded, note the RSS, train ``margin`` more steps and stop. Prints a result line."""
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from vocals2song import cli
    from vocals2song import data as data_mod

    seen: set[bytes] = set()
    decodes = [0]
    decoder = data_mod._decoder

    def counting_decoder(*args, **kwargs):
        decode = decoder(*args, **kwargs)

        def record(path):
            seen.add(bytes(path))
            decodes[0] += 1
            return np.int64(len(seen))

        def counted(path):
            count = tf.numpy_function(record, [path], tf.int64)
            with tf.control_dependencies([count]):
                return tf.identity(decode(path))
        return counted

    data_mod._decoder = counting_decoder
    expected = 2 * len(data_mod.find_pairs(train_args[1]).train)  # input and target images
    state = {"all_read_step": None, "rss_all_read": 0, "steps": 0}

    class StopWhenAllRead(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            state["steps"] = batch + 1
            if state["all_read_step"] is None and len(seen) >= expected:
                state["all_read_step"], state["rss_all_read"] = batch + 1, current_rss()
            if state["all_read_step"] is not None and batch + 1 >= state["all_read_step"] + margin:
                self.model.stop_training = True

    append_fit_callback(keras, StopWhenAllRead())
    try:
        cli.main(train_args)
    except SystemExit as exc:
        if exc.code:
            raise
    print(RESULT_TAG + json.dumps({"expected_images": expected, "images_read": len(seen), "decodes": decodes[0],
                                   **state, "rss_end": current_rss(), "peak_rss": self_peak_rss()}), flush=True)
    return 0


# --- helpers ---------------------------------------------------------------------------------------

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
    if argv[:1] == ["--child-precision"]:
        model, nb_rows, nb_channels, steps, rounds = argv[1:6]
        return child_precision(model, int(nb_rows), int(nb_channels), int(steps), int(rounds))
    if argv[:1] == ["--child-cli"]:
        data, work, steps, warmup, bare_steps, rounds = argv[1:7]
        return child_cli(data, work, int(steps), int(warmup), int(bare_steps), int(rounds))
    if argv[:1] == ["--child-read-all"] and len(argv) > 3 and argv[2] == "--":
        return child_read_all(int(argv[1]), argv[3:])

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
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds of the float32 / bfloat16 comparison (default 4)")
    parser.add_argument("--cli-steps", type=int, default=1000,
                        help="steps of each tiny CLI run compared with the bare step (default 1000)")
    parser.add_argument("--cli-rounds", type=int, default=2, help="CLI runs, each between two bare runs (default 2)")
    parser.add_argument("--bare-steps", type=int, default=300, help="steps of each bare-step run (default 300)")
    parser.add_argument("--memory-tile", type=int, default=64,
                        help="--tile of the memory runs (default 64: cheap steps, so reading every pair is quick)")
    parser.add_argument("--memory-margin", type=int, default=20,
                        help="steps a memory run goes on after it has read every training pair (default 20)")
    parser.add_argument("--memory-max-steps", type=int, default=20000,
                        help="a memory run stops here even if some pair is still unread (default 20000)")
    parser.add_argument("--skip-precision", action="store_true", help="skip the float32 / bfloat16 comparison")
    parser.add_argument("--skip-cli", action="store_true", help="skip the CLI / bare-step comparison")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory comparison")
    add_work_folder_args(parser)
    args = parser.parse_args(argv)
    steps = {"tiny": args.steps_tiny, "small": args.steps_small, "default": args.steps_default}
    if min(args.warmup, *steps.values(), args.rounds, args.cli_rounds, args.bare_steps, args.memory_margin,
           args.memory_max_steps) < 1 or args.segment < 2 or args.memory_tile < 16:
        parser.error("--warmup, --steps-*, --rounds, --cli-rounds, --bare-steps and --memory-* must be at least 1, "
                     "--memory-tile at least 16, --segment at least 2")
    if not args.skip_cli and args.cli_steps <= args.warmup:
        parser.error("--cli-steps must exceed --warmup")
    if not args.skip_memory and not 2 <= args.pairs_small <= args.pairs_large:
        parser.error("need 2 <= --pairs-small <= --pairs-large")

    with work_folder(parser, args.workdir, "bench_train_", args.keep) as work:
        print_machine()
        t0 = time.perf_counter()
        data = build_synthetic_dataset(work, args.segment, nb_train=3)
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

        if not args.skip_precision:
            from vocals2song import data as data_mod
            from vocals2song import transforms

            base = data_mod.find_pairs(data)
            nb_rows, nb_channels = base.info.nb_rows - 1, transforms.nb_net_channels(base.meta.format)
            print()
            rows = []
            for model in [m for m in MODEL_ORDER if m in args.models]:
                cmd = [sys.executable, me, "--child-precision", model, str(nb_rows), str(nb_channels),
                       str(steps[model]), str(args.rounds)]
                res, wall, _, others = run_timed(cmd, work / f"precision_{model}.log", result=True)
                res["wall"], res["others"] = wall, others
                rows.append(res)
            flags = rows[0]["bf16_flags"] if rows else []
            print(f"float32 against mixed_bfloat16, the bare train step (tile 256, batch 1), one process per model, "
                  f"{args.rounds} alternating rounds (ABBA); CPU bfloat16 flags: "
                  f"{', '.join(flags) or 'none (emulated)'}")
            header = f"{'model':<8} {'steps/round':>11} {'float32 steps/s':>16} {'bf16 steps/s':>13} {'bf16/fp32':>10}"
            print(header)
            print("-" * len(header))
            for r in rows:
                print(f"{r['model']:<8} {r['steps']:>11} {r['float32']:>16.2f} {r['bf16']:>13.2f} "
                      f"{r['bf16'] / r['float32']:>9.2f}x" + others_note(r["others"]))

        if not args.skip_cli:
            print()
            cmd = [sys.executable, me, "--child-cli", str(data), str(work), str(args.cli_steps), str(args.warmup),
                   str(args.bare_steps), str(args.cli_rounds)]
            res, wall, _, others = run_timed(cmd, work / "cli.log", result=True)
            cli_rate = sum(res["cli"]) / len(res["cli"])
            bare_rate = sum(res["bare"]) / len(res["bare"])
            print(f"tiny through train() (the CLI's path: tf.data stream, history row every {res['log_every']}, "
                  f"samples every {res['sample_every']}, checkpoint every {res['checkpoint_every']} steps), "
                  f"{args.cli_steps} steps per run, steps/s from step {args.warmup} to the last, against the bare "
                  f"train step ({args.bare_steps} steps per run), alternating bare, CLI, ..., bare in one process"
                  + others_note(others))
            print("CLI steps/s: " + ", ".join(f"{r:.2f}" for r in res["cli"]) + "; bare steps/s: "
                  + ", ".join(f"{r:.2f}" for r in res["bare"]))
            met = cli_rate >= TARGET_CLI_SHARE * bare_rate
            print(f"CLI / bare: {cli_rate:.2f} / {bare_rate:.2f} = {cli_rate / bare_rate:.2f} "
                  f"(target >= {TARGET_CLI_SHARE:g}: {'met' if met else 'not met'}); "
                  f"peak RSS {res['peak_rss'] / 1e6:.0f} MB")
            cli_cpu = sum(res["cli_cpu"]) / len(res["cli_cpu"])
            bare_cpu = sum(res["bare_cpu"]) / len(res["bare_cpu"])
            print(f"CPU per step (this process, every thread): CLI {1e3 * cli_cpu:.1f} ms, "
                  f"bare {1e3 * bare_cpu:.1f} ms; bare / CLI {bare_cpu / cli_cpu:.2f} (less sensitive to other "
                  "processes than wall time; spinning thread pools inflate both)")

        if not args.skip_memory:
            print()
            mems = {}
            for label, nb in (("small", args.pairs_small), ("large", args.pairs_large)):
                folder = work / f"pairs_{nb}_{label}"
                nb_tracks, linked = make_flat_folder(folder, sources, nb)
                train_args = ["train", str(folder), str(work / f"run_mem_{label}"), "--model", "tiny",
                              "--tile", str(args.memory_tile), "--steps", str(args.memory_max_steps)]
                log = work / f"memory_{label}.log"
                cmd = peak_rss_command(log, [sys.executable, me, "--child-read-all", str(args.memory_margin), "--",
                                             *train_args])
                res, _, _, others = run_timed(cmd, work / f"memory_{label}.wrapper.log", result=True)
                text = log.read_text(errors="replace")
                found = [line[len(RESULT_TAG):] for line in text.splitlines() if line.startswith(RESULT_TAG)]
                if res["rc"] != 0 or not found:
                    sys.exit(f"training failed ({res['rc']}): {' '.join(train_args)}\n{text[-4000:]}")
                child = json.loads(found[-1])
                seen = re.search(r"on (\d+) pairs \(valid (\d+)\)", text)
                split = f"train {seen.group(1)}, valid {seen.group(2)}" if seen else "split not reported"
                mems[label] = {**child, "peak": res["maxrss_bytes"]}
                all_read = child["all_read_step"] is not None
                print(f"{nb} pairs ({nb_tracks} track names, {'hard links' if linked else 'copies'}; {split}): "
                      f"{child['images_read']}/{child['expected_images']} training images decoded "
                      f"({child['decodes']} decodes) "
                      + (f"by step {child['all_read_step']}, RSS then {child['rss_all_read'] / 1e6:.0f} MB; "
                         if all_read else "- NOT every pair read; ")
                      + f"{child['steps']} steps in {res['wall']:.1f} s, peak RSS {res['maxrss_bytes'] / 1e6:.0f} MB"
                      + others_note(others))
            print(f"Memory runs: python -m vocals2song train DIR RUN --model tiny --tile {args.memory_tile}, each in "
                  f"its own process that counts the stream's decodes and stops {args.memory_margin} steps after every "
                  "training pair has been decoded, under its own wrapper process (peak RSS)")
            small, large = mems["small"], mems["large"]
            ratio = large["peak"] / small["peak"]
            every = small["all_read_step"] is not None and large["all_read_step"] is not None
            print(f"Peak RSS {args.pairs_small} pairs: {small['peak'] / 1e6:.0f} MB, {args.pairs_large} pairs: "
                  f"{large['peak'] / 1e6:.0f} MB, ratio {args.pairs_large}/{args.pairs_small}: {ratio:.3f}")
            if every:
                print(f"RSS once every pair was read, ratio {args.pairs_large}/{args.pairs_small}: "
                      f"{large['rss_all_read'] / small['rss_all_read']:.3f}")
            print(f"memory target ({args.pairs_large}/{args.pairs_small} <= {TARGET_MEMORY_RATIO:g}, every pair read): "
                  f"{'met' if ratio <= TARGET_MEMORY_RATIO and every else 'not met'}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
