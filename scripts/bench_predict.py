"""Benchmark `vocals2song predict` on this machine: real-time factor on a long input, and peak memory vs length.

The runs: predict's speed does not depend on the weights, so each of ``--models`` (default tiny, default) is
trained for 1 step with the real `vocals2song.train.train` on a small real dataset (a MUSDB18-HQ-shaped tree of
synthetic tracks, `vocals2song.synth.make_musdb_tree`: 2 train tracks of 6 s and musdb's validation track
"Actions - One Minute Smile" of 3 s, encoded by `sound2image` as rgb8 PNG in 3 s segments). ``--runs-dir DIR``
reuses DIR/<model> where it already holds config.json + generator.keras (and trains and keeps it there if not).

The inputs: synthetic vocals (`synth_stems(seconds, sr=44100)["vocals"]`, 16-bit stereo WAV at 44.1 kHz) of
``--seconds`` (180) and ``--short-seconds`` (30).

1. Real-time factor on the long input, per model:
   - CLI: ``python -m vocals2song predict RUN long.wav --out OUT`` as a subprocess, wall clock from start to exit
     (interpreter, TensorFlow and model loading included: what a user waits for);
   - in-process: in a fresh subprocess, `load_predictor(RUN)`, one warm-up `predict(...)` on the short input
     (traces the tiled generator, imports the plotting), then `predict(...)` on the long input timed alone
     (steady state: decode, encode, tiled generator, decode to audio, writing the WAV, image and picture).
   x realtime = audio seconds / processing seconds. Target: the ``default`` model faster than real time on this
   machine (judged on the CLI wall time; the in-process figure is shown beside it). Each timing also gives the
   CPU seconds other processes used meanwhile: a shared machine makes timings noisy.

2. Peak memory, short vs long input (``default`` model, or the last of ``--models`` without it): the CLI predict
   above, each under its own wrapper process that reports the child's peak RSS
   (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it exits; a fresh wrapper per measurement, since
   RUSAGE_CHILDREN keeps the maximum over every child ever waited for). The network's memory is bounded by the
   tile but the spectrogram, the audio and the output image grow with the song, so the ratio long / short is
   above 1; it is reported with the difference per minute of audio.

Targets not met are reported; the exit status is non-zero only on errors.

    python scripts/bench_predict.py [--models tiny,default] [--seconds 180] [--short-seconds 30]
        [--runs-dir DIR] [--skip-memory] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchlib import (
    RESULT_TAG,
    VALID_TRACK,
    add_work_folder_args,
    build_synthetic_dataset,
    models_arg,
    others_note,
    peak_rss_command,
    print_machine,
    run_timed,
    work_folder,
)

SR = 44100
SEGMENT = 3.0


# --- child modes -----------------------------------------------------------------------------------

def child_train(data: str, runs: list[str], models: list[str]) -> int:
    """Train each model for 1 step on DATA into its run folder (one process: one TensorFlow start-up)."""
    from vocals2song.config import TrainConfig
    from vocals2song.train import train

    done = {}
    for run, model in zip(runs, models):
        t0 = time.perf_counter()
        cfg = TrainConfig(model=model, steps=1, log_every=1, sample_every=1, checkpoint_every=1)
        train(data, run, cfg, resume=False, progress=False, log=lambda msg: print(msg, file=sys.stderr))
        done[model] = time.perf_counter() - t0
    print(RESULT_TAG + json.dumps(done), flush=True)
    return 0


def child_inprocess(run: str, warm: str, long: str, out: str) -> int:
    """Load RUN's predictor, warm it up on WARM, then time predict() on LONG alone; print a result line."""
    from vocals2song.predict import load_predictor, predict

    t0 = time.perf_counter()
    predictor = load_predictor(run)
    t1 = time.perf_counter()
    _check(predict(run, [warm], Path(out) / "warmup", predictor=predictor))
    t2 = time.perf_counter()
    cpu0 = time.process_time()
    _check(predict(run, [long], Path(out) / "long", predictor=predictor))
    t3 = time.perf_counter()
    print(RESULT_TAG + json.dumps({"load": t1 - t0, "warmup": t2 - t1, "seconds": t3 - t2,
                                   "cpu": time.process_time() - cpu0}), flush=True)
    return 0


def _check(result) -> None:
    written, failures = result
    if failures or not any(p.name.endswith(".mixture.wav") for p in written):
        raise SystemExit("predict failed: " + "; ".join(f.error for f in failures))


# --- helpers ---------------------------------------------------------------------------------------

def is_run(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "generator.keras").is_file()


def write_vocals(path: Path, seconds: float, seed: int) -> float:
    """Synthetic vocals, 16-bit stereo WAV at 44.1 kHz; returns the duration in seconds."""
    import soundfile as sf

    from vocals2song.synth import synth_stems

    vocals = synth_stems(seconds, sr=SR, seed=seed)["vocals"]
    sf.write(path, vocals, SR, subtype="PCM_16")
    return len(vocals) / SR


def wav_seconds(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-train"]:
        data, pairs = argv[1], argv[2:]
        return child_train(data, pairs[0::2], pairs[1::2])
    if argv[:1] == ["--child-inprocess"]:
        return child_inprocess(*argv[1:5])

    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=models_arg, default=["tiny", "default"],
                        help="presets to time, comma-separated (default tiny,default)")
    parser.add_argument("--seconds", type=float, default=180.0, help="long input, seconds (default 180)")
    parser.add_argument("--short-seconds", type=float, default=30.0,
                        help="short input (warm-up and memory), seconds (default 30)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="run folders DIR/<model>: reused where they hold a trained run, else trained and kept "
                             "there (default: trained in the work folder)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak memory comparison")
    add_work_folder_args(parser)
    args = parser.parse_args(argv)
    if not 0 < args.short_seconds <= args.seconds:
        parser.error("need 0 < --short-seconds <= --seconds")

    with work_folder(parser, args.workdir, "bench_predict_", args.keep) as work:
        print_machine()
        me = str(Path(__file__).resolve())

        # --- the runs
        runs_dir = args.runs_dir or work / "runs"
        runs = {m: runs_dir / m for m in args.models}
        missing = [m for m in args.models if not is_run(runs[m])]
        reused = [m for m in args.models if m not in missing]
        if reused:
            print(f"Runs reused from {runs_dir}: {', '.join(reused)}")
        if missing:
            t0 = time.perf_counter()
            data = build_synthetic_dataset(work, SEGMENT, nb_train=2)
            built = time.perf_counter() - t0
            cmd = [sys.executable, me, "--child-train", str(data)]
            for m in missing:
                cmd += [str(runs[m]), m]
            res, wall, _, _ = run_timed(cmd, work / "train.log", result=True)
            print(f"Runs trained for 1 step (weights do not matter for speed) in {runs_dir}: "
                  + ", ".join(f"{m} {res[m]:.1f} s" for m in missing)
                  + f"; dataset (2 synthetic tracks x {2 * SEGMENT:g} s + '{VALID_TRACK}' {SEGMENT:g} s, rgb8 PNG, "
                    f"{SEGMENT:g} s segments) built in {built:.1f} s, training process {wall:.1f} s")

        # --- the inputs
        inputs = work / "inputs"
        inputs.mkdir()
        long_wav, short_wav = inputs / "long.wav", inputs / "short.wav"
        long_s = write_vocals(long_wav, args.seconds, seed=1)
        short_s = write_vocals(short_wav, args.short_seconds, seed=2)
        print(f"Inputs: synthetic vocals, 16-bit stereo WAV at {SR} Hz: {long_s:g} s (long) and {short_s:g} s (short)")
        print()

        # --- real-time factor
        results = {}
        for m in args.models:
            out = work / f"out_cli_{m}"
            cli = [sys.executable, "-m", "vocals2song", "predict", str(runs[m]), str(long_wav), "--out", str(out)]
            _, wall, cpu, others = run_timed(cli, work / f"cli_{m}.log")
            song = out / "long.mixture.wav"
            if not song.is_file():
                sys.exit(f"predict wrote no {song.name}: {' '.join(cli)}")
            got = wav_seconds(song)
            print(f"{m}: CLI predict {long_s:g} s -> {got:g} s song in {wall:.1f} s wall, {cpu:.1f} CPU s"
                  + others_note(others))
            shutil.rmtree(out)
            out = work / f"out_inprocess_{m}"
            cmd = [sys.executable, me, "--child-inprocess", str(runs[m]), str(short_wav), str(long_wav), str(out)]
            res, _, _, others_in = run_timed(cmd, work / f"inprocess_{m}.log", result=True)
            print(f"{m}: in-process predict() {res['seconds']:.1f} s, {res['cpu']:.1f} CPU s (after load_predictor "
                  f"{res['load']:.1f} s and a {short_s:g} s warm-up {res['warmup']:.1f} s)" + others_note(others_in))
            shutil.rmtree(out)
            results[m] = {"cli": wall, "inprocess": res["seconds"], "others": max(others or 0, others_in or 0)}

        print()
        print(f"Real-time factor, {long_s:g} s input (x realtime = audio seconds / processing seconds; "
              "CLI includes start-up and model loading)")
        for m, r in results.items():
            print(f"{m:<8} CLI {r['cli']:7.1f} s wall = {long_s / r['cli']:6.2f} x realtime | in-process "
                  f"{r['inprocess']:7.1f} s = {long_s / r['inprocess']:6.2f} x realtime")
        if "default" in results:
            r = results["default"]
            met = r["cli"] < long_s
            print(f"default target (faster than real time on {cpus} CPU cores, CLI wall): "
                  f"{'met' if met else 'NOT MET'} (CLI {long_s / r['cli']:.2f} x realtime, {r['cli']:.1f} s for "
                  f"{long_s:g} s; in-process {long_s / r['inprocess']:.2f} x realtime, {r['inprocess']:.1f} s)")
        if any(r["others"] > 0.5 for r in results.values()):
            print(f"Other processes used up to {max(r['others'] for r in results.values()):.1f} CPU s during a "
                  "timing: the machine was shared, timings are noisy.")

        # --- peak memory
        if not args.skip_memory:
            model = "default" if "default" in args.models else args.models[-1]
            print()
            peaks = {}
            for label, wav, secs in (("short", short_wav, short_s), ("long", long_wav, long_s)):
                out = work / f"out_memory_{label}"
                cli = [sys.executable, "-m", "vocals2song", "predict", str(runs[model]), str(wav), "--out", str(out)]
                log = work / f"memory_{label}.log"
                res, _, _, others = run_timed(peak_rss_command(log, cli), work / f"memory_{label}.wrapper.log",
                                              result=True)
                if res["rc"] != 0:
                    sys.exit(f"predict failed ({res['rc']}): {' '.join(cli)}\n"
                             f"{log.read_text(errors='replace')[-4000:]}")
                peaks[label] = res["maxrss_bytes"]
                print(f"{model} {secs:g} s input: CLI predict in {res['wall']:.1f} s, peak RSS "
                      f"{res['maxrss_bytes'] / 1e6:.0f} MB" + others_note(others))
                shutil.rmtree(out, ignore_errors=True)
            ratio = peaks["long"] / peaks["short"]
            per_minute = (peaks["long"] - peaks["short"]) / ((long_s - short_s) / 60) if long_s > short_s else 0.0
            print("Memory runs: python -m vocals2song predict RUN INPUT --out OUT, each under its own wrapper process")
            print(f"Peak RSS ({model}) {short_s:g} s input: {peaks['short'] / 1e6:.0f} MB, {long_s:g} s input: "
                  f"{peaks['long'] / 1e6:.0f} MB, ratio {long_s:g}/{short_s:g} s: {ratio:.3f}, "
                  f"difference {per_minute / 1e6:.1f} MB per minute of audio")
        return 0


if __name__ == "__main__":
    sys.exit(main())
