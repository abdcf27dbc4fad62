"""The `vocals2song` command line: a thin layer over plain functions.

Heavy libraries (librosa, musdb, TensorFlow) are imported inside the commands, so `--help` is instant.
Errors become one line, ``Error: <path>: <what is wrong>``; exit 1 when some inputs of a batch failed,
2 for usage errors; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from vocals2song import __version__
from vocals2song.config import (CONTAINERS, FORMATS, MODELS, TAILS, TARGETS, CodecConfig, DatasetConfig, TrainConfig,
                                replace_given)
from vocals2song.errors import Vocals2SongError

# Options are defined once and shared by every command that takes them. Defaults live in config.py:
# an option left out is None and leaves the dataclass default alone.
OPT_DEBUG = click.option("--debug", is_flag=True, default=False, help="Show tracebacks for errors.")
OPT_FORMAT = click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                          help="Image format: rgb8 (default), rgba8, tiff16, png16 or float32.")
OPT_SR = click.option("--sr", type=click.IntRange(min=1), default=None, help="Sample rate in Hz (default 44100).")
OPT_N_FFT = click.option("--n-fft", type=click.IntRange(min=16), default=None, help="FFT size (default 1024).")
OPT_HOP = click.option("--hop", type=click.IntRange(min=1), default=None, help="Hop in samples (default 256).")


def _progress(label: str):
    def make(total: int):
        return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True,
                                 item_show_func=lambda item: item[:40] if item else None)
    return make


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def _errors(debug: bool):
    """Turn exceptions into one-line errors and exit codes (2: usage, 1: failure)."""
    try:
        yield
    except Vocals2SongError as exc:
        if debug:
            raise
        _fail(str(exc), 2 if exc.usage else 1)
    except KeyboardInterrupt:
        _fail("interrupted; rerun the same command to resume", 130)
    except Exception as exc:  # noqa: BLE001 - anything unexpected still gets one line
        if debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1)


def _report_failures(failures: list[tuple[str, str | None]], debug: bool, total: int, what: str) -> None:
    for message, trace in failures:
        if debug and trace:
            click.echo(trace, err=True)
        click.echo(f"Error: {message}", err=True)
    if failures:
        click.echo(f"{len(failures)} of {total} {what} failed; the others were written.", err=True)
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vocals2song")
def cli() -> None:
    """Make a whole song around a singer's vocals: pix2pix on spectrogram images.

    \b
    sound2image  encode paired stems (MUSDB18-HQ, ...) as spectrogram images
    train        train pix2pix on the paired images (a run folder that resumes)
    predict      make a song from vocals of any length with a trained run
    image2sound  decode images back to WAV
    evaluate     score a run on held-out pairs against baselines
    demo         the whole chain on the MUSDB18 excerpt inside stempeg, nothing to download
    """


@cli.command("sound2image")
@click.argument("source", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@OPT_FORMAT
@click.option("--container", type=click.Choice(sorted({c for cs in CONTAINERS.values() for c in cs})), default=None,
              help="File type; rgb8 also takes bmp (the seed project's). Default: png, or tiff for tiff16/float32.")
@click.option("--segment", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Segment length in seconds (default 15).")
@OPT_SR
@OPT_N_FFT
@OPT_HOP
@click.option("--range-db", type=click.FloatRange(min=1), default=None,
              help="Magnitude range in dB (default: 100 for 8-bit, 120 for 16-bit, 300 for float32).")
@click.option("--target", type=click.Choice(TARGETS), default=None,
              help="What the vocals are paired with (default mixture; accompaniment = drums + bass + other).")
@click.option("--subsets", default=None, help="MUSDB subsets to encode, comma-separated (default train,test).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel processes (default: CPU count).")
@click.option("--tail", type=click.Choice(TAILS), default=None,
              help="A last segment shorter than --segment: zero-pad it (default) or drop it.")
@click.option("--min-vocals-db", type=float, default=None,
              help="Skip segments whose vocals RMS is below this many dBFS (default -60).")
@OPT_DEBUG
def sound2image_cmd(source, out, fmt, container, segment, sr, n_fft, hop, range_db, target, subsets, workers, tail,
                    min_vocals_db, debug):
    """Encode the vocals and mixture stems of SOURCE as spectrogram images in OUT.

    SOURCE is a MUSDB18-HQ root (train/, test/ of track folders), a MUSDB18 root of .stem.mp4 files, a
    folder of track folders, one track folder (vocals.wav, mixture.wav, ...), one .stem.mp4, or one audio
    file (encoded alone). Tracks are cut into segments; each becomes one image per stem under
    OUT/{train,valid,test}/{vocals,mixture}/, and OUT/dataset.json lists them. musdb's validation tracks
    go to valid/. A rerun skips what is complete, so an interrupted run resumes.

    \b
    Examples:
      vocals2song sound2image ~/data/musdb18hq datasets/musdb
      vocals2song sound2image ~/data/musdb18hq datasets/musdb16 --format png16 --workers 8
      vocals2song sound2image ~/data/musdb18hq datasets/acc --target accompaniment --subsets train
      vocals2song sound2image my_song/vocals.wav datasets/mine
    """
    from vocals2song.sound2image import describe, sound2image

    with _errors(debug):
        subset_tuple = None if subsets is None else tuple(s.strip() for s in subsets.split(",") if s.strip())
        codec_cfg = replace_given(CodecConfig(), format=fmt, container=container, sr=sr, n_fft=n_fft, hop=hop,
                                  range_db=range_db)
        data_cfg = replace_given(DatasetConfig(), segment=segment, target=target, subsets=subset_tuple,
                                 workers=workers, tail=tail, min_vocals_db=min_vocals_db)
        summary = sound2image(source, out, codec_cfg, data_cfg, progress=_progress("Encoding tracks"))
        click.echo(f"{out}: {describe(summary)}")
        _report_failures([(r.error, r.traceback) for r in summary.failed], debug,
                         len(summary.done) + len(summary.failed), "tracks")


@cli.command("train")
@click.argument("data", type=click.Path(path_type=str))
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--input-subdir", default=None, help="Folder of input images, per split (default vocals).")
@click.option("--target-subdir", default=None,
              help="Folder of target images (default: the dataset's target, mixture or accompaniment).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Train up to this many steps in all (default 10000).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Tiles per step and device (default 1).")
@click.option("--tile", type=click.IntRange(min=16), default=None, help="Frames per random crop (default 256).")
@click.option("--model", type=click.Choice(list(MODELS)), default=None,
              help="Network size: default (published pix2pix), small, or tiny (fast on a CPU).")
@click.option("--lambda-l1", type=click.FloatRange(min=0), default=None, help="Weight of the L1 loss (default 100).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate (default 2e-4).")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None,
              help="Steps between checkpoints; a killed run loses at most this many (default 500).")
@click.option("--sample-every", type=click.IntRange(min=1), default=None,
              help="Steps between sample strips and TensorBoard audio (default 500).")
@click.option("--log-every", type=click.IntRange(min=1), default=None,
              help="Steps per history.csv row, with val_l1 (default 50).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from RUN's newest checkpoint, or start RUN over (its old artefacts are deleted).")
@click.option("--mixed-precision", is_flag=True, default=None, help="Mixed precision: float16 on a GPU, bfloat16 on a CPU with AVX512_BF16 or AMX (else ignored).")
@click.option("--xla", is_flag=True, default=None, help="Compile the train step with XLA (helps GPUs; slower on CPUs).")
@OPT_DEBUG
def train_cmd(data, run, input_subdir, target_subdir, steps, batch_size, tile, model, lambda_l1, lr, seed,
              checkpoint_every, sample_every, log_every, resume, mixed_precision, xla, debug):
    """Train pix2pix on the paired images of DATA into the run folder RUN.

    DATA is a sound2image dataset (train/ and valid/ of vocals/ and mixture/ images) or any folder with
    input and target image folders paired by file name. Without a valid split, whole tracks are held out.
    RUN gets config.json, checkpoints/, generator.keras, history.csv, logs/ (TensorBoard), samples/ and
    losses.png. Rerunning on the same RUN resumes from its newest checkpoint up to --steps.
    Several GPUs are used with MirroredStrategy; TF_CONFIG naming a cluster selects
    MultiWorkerMirroredStrategy (run the same command on every worker; the chief writes RUN).

    \b
    Examples:
      vocals2song train datasets/musdb runs/musdb
      vocals2song train datasets/musdb runs/quick --model tiny --steps 2000
      vocals2song train seed_data/ runs/seed --input-subdir input --target-subdir output
      tensorboard --logdir runs/musdb/logs
    """
    from vocals2song.train import train

    with _errors(debug):
        cfg = replace_given(TrainConfig(), input_subdir=input_subdir, target_subdir=target_subdir, steps=steps,
                            batch_size=batch_size, tile=tile, model=model, lambda_l1=lambda_l1, lr=lr, seed=seed,
                            checkpoint_every=checkpoint_every, sample_every=sample_every, log_every=log_every,
                            mixed_precision=mixed_precision, xla=xla)
        summary = train(data, run, cfg, resume=resume, progress=True, log=click.echo)
        if summary.step > summary.start:
            row = summary.last_row
            click.echo(f"{run}: step {summary.step} in {summary.seconds:.1f} s ({summary.steps_per_second:.2f} steps/s); "
                       f"gen_l1 {row.get('gen_l1', float('nan')):.4f}, val_l1 {row.get('val_l1', float('nan')):.4f}. "
                       f"Listen: tensorboard --logdir {run}/logs")


@cli.command("image2sound")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str), metavar="IMAGE_OR_DIR...")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the WAV files (folders of images keep their layout).")
@click.option("--phase", type=click.Choice(["image", "griffinlim"]), default="image", show_default=True,
              help="Use the stored phase, or Griffin-Lim on the magnitude (started from the stored phase).")
@click.option("--iters", type=click.IntRange(min=1), default=32, show_default=True, help="Griffin-Lim iterations.")
@OPT_FORMAT
@OPT_SR
@OPT_N_FFT
@OPT_HOP
@OPT_DEBUG
def image2sound_cmd(inputs, out, phase, iters, fmt, sr, n_fft, hop, debug):
    """Decode spectrogram images back to 32-bit float WAV with the inverse STFT.

    Each image carries its own decoding parameters. --format, --sr, --n-fft and --hop are needed only for
    images without vocals2song metadata (they assume the format-version-1 scale).

    \b
    Examples:
      vocals2song image2sound datasets/musdb/test --out listen/
      vocals2song image2sound song__000.png --out listen/ --phase griffinlim --iters 64
    """
    from vocals2song.image2sound import image2sound

    with _errors(debug):
        fallback = None
        if None not in (fmt, sr, n_fft, hop):
            fallback = replace_given(CodecConfig(), format=fmt, sr=sr, n_fft=n_fft, hop=hop)
        written, failures = image2sound(list(inputs), out, phase, iters, fallback,
                                        progress=_progress("Decoding images"))
        click.echo(f"{out}: wrote {len(written)} WAV files")
        _report_failures([(f.error, f.traceback) for f in failures], debug, len(written) + len(failures), "images")


@cli.command("predict")
@click.argument("run", type=click.Path(path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str), metavar="AUDIO_OR_IMAGE...")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="Folder for the outputs.")
@click.option("--phase", type=click.Choice(["model", "vocals", "griffinlim"]), default="model", show_default=True,
              help="Output phase: the predicted G channel, the input vocals' phase, or Griffin-Lim on the "
                   "predicted magnitude.")
@click.option("--add-vocals/--no-add-vocals", default=None,
              help="Add the input vocals to a predicted accompaniment (default: on for accompaniment models).")
@OPT_DEBUG
def predict_cmd(run, inputs, out, phase, add_vocals, debug):
    """Make a song around each vocals recording with the model trained in RUN.

    AUDIO_OR_IMAGE is an audio file (WAV, FLAC, MP3, ...; any rate, mono or stereo, any length), an encoded
    vocals image, or a folder of them. Per input NAME, OUT gets NAME.mixture.wav (the predicted song, as long
    as the input, at the run's sample rate), NAME.mixture.png (the predicted image; image2sound decodes it)
    and NAME.spectrograms.png (input and prediction). Long inputs are tiled and cross-faded.

    \b
    Examples:
      vocals2song predict runs/musdb my_vocals.wav --out songs/
      vocals2song predict runs/musdb takes/ --out songs/ --phase griffinlim
    """
    from vocals2song.predict import predict

    with _errors(debug):
        written, failures = predict(run, list(inputs), out, phase, add_vocals, progress=_progress("Predicting"))
        songs = [p for p in written if p.name.endswith(".mixture.wav")]
        click.echo(f"{out}: {len(songs)} songs ({len(written)} files)")
        _report_failures([(f.error, f.traceback) for f in failures], debug, len(songs) + len(failures), "inputs")


@cli.command("evaluate")
@click.argument("run", type=click.Path(path_type=str))
@click.argument("data", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="Folder for the report.")
@click.option("--split", default="test", show_default=True, help="Which split of DATA to score.")
@OPT_DEBUG
def evaluate_cmd(run, data, out, split, debug):
    """Score RUN on the vocals/target pairs of DATA's split against two baselines.

    Metrics: SNR, SI-SDR, log-spectral distance (lsd), spectral convergence and multi-resolution STFT
    distance (mrstft) of the predicted against the true mixture, per item and as median and mean. Baselines:
    vocals_only, and mean_accompaniment (vocals plus the training set's average accompaniment spectrum).
    OUT gets report.json, report.md, metrics.png and items/*.png.

    \b
    Examples:
      vocals2song evaluate runs/musdb datasets/musdb --out reports/musdb
      vocals2song evaluate runs/musdb datasets/musdb --out reports/valid --split valid
    """
    from vocals2song.evaluate import evaluate

    with _errors(debug):
        report = evaluate(run, data, out, split, progress=_progress("Evaluating"))
        lsd = report["model"]["lsd"], report["baselines"]["vocals_only"]["lsd"]
        click.echo(f"{out}: {report['nb_items']} items; median lsd {lsd[0]:.2f} dB (vocals only {lsd[1]:.2f} dB); "
                   f"see {out}/report.md")
        _report_failures([(f, None) for f in report["failures"]], debug, report["nb_items"] + len(report["failures"]),
                         "pairs")


@cli.command("demo")
@click.option("--out", default="demo", show_default=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for everything the demo makes.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps for the tiny model (default 1500).")
@OPT_DEBUG
def demo_cmd(out, steps, debug):
    """Run the whole chain on the real MUSDB18 excerpt inside stempeg: nothing to download.

    Builds a MUSDB18-HQ-shaped tree from the 6 s excerpt, encodes it, trains the tiny model on the CPU for
    a few minutes, predicts the mixture from the excerpt's vocals, and writes OUT/listen/ with the vocals,
    the true and the predicted mixture, and pictures. One 6 s song only shows the chain working: the model
    learns this excerpt, it does not generalise.

    \b
    Examples:
      vocals2song demo
      vocals2song demo --out /tmp/demo --steps 300
    """
    from vocals2song.demo import DEFAULT_STEPS, demo

    with _errors(debug):
        result = demo(out, steps or DEFAULT_STEPS, progress=True, log=click.echo)
        click.echo(f"\nTrained {result.steps} steps in {result.seconds:.0f} s ({result.steps_per_second:.1f} steps/s). "
                   f"Predicted vs true mixture: SNR {result.snr_db:.1f} dB, log-spectral distance "
                   f"{result.lsd_model:.1f} dB (the vocals alone: {result.lsd_vocals_only:.1f} dB).")
        click.echo("Listen (any audio player, e.g. `ffplay -autoexit FILE` or `aplay FILE`):")
        for label, path in result.listen.items():
            click.echo(f"  {label:18s} {path}")
        click.echo(f"TensorBoard (losses, strips, audio): tensorboard --logdir {Path(out) / 'run' / 'logs'}")


def main(args: list[str] | None = None) -> None:
    """Console entry point; tests call it with ``args``."""
    cli.main(args=args, prog_name="vocals2song")


if __name__ == "__main__":
    main()
