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
from vocals2song.config import (
    BANDS,
    CONTAINERS,
    DEFAULT_RECIPE,
    FORMATS,
    GAN_LOSSES,
    GENERATORS,
    MODELS,
    PHASE_REPRS,
    RECIPES,
    TAILS,
    TARGETS,
    ChoralesConfig,
    CodecConfig,
    DatasetConfig,
    TrainConfig,
    replace_given,
    train_config,
)
from vocals2song.errors import Vocals2SongError
from vocals2song.progress import bar

# Options are defined once and shared by every command that takes them. Defaults live in config.py:
# an option left out is None and leaves the dataclass default alone.
OPT_DEBUG = click.option("--debug", is_flag=True, default=False, help="Show tracebacks for errors.")
OPT_FORMAT = click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                          help="Image format: rgb8 (default), rgba8, tiff16, png16 or float32.")
OPT_SR = click.option("--sr", type=click.IntRange(min=1), default=None, help="Sample rate in Hz (default 44100).")
OPT_N_FFT = click.option("--n-fft", type=click.IntRange(min=16), default=None, help="FFT size (default 1024).")
OPT_HOP = click.option("--hop", type=click.IntRange(min=1), default=None, help="Hop in samples (default 256).")


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
        done = total - len(failures)
        rest = "none was done" if done == 0 else f"the other {done} {'was' if done == 1 else 'were'} done"
        click.echo(f"{len(failures)} of {total} {what} failed; {rest}.", err=True)
        sys.exit(1)


def _count(n: int, noun: str) -> str:
    """``1 song``, ``2 songs``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def tensorboard_command(logdir: str | Path) -> str:
    """A TensorBoard command that works without an active venv: the tensorboard beside this Python, else
    ``python -m tensorboard.main``."""
    import shlex

    binary = Path(sys.executable).parent / "tensorboard"
    start = shlex.quote(str(binary)) if binary.is_file() else f"{shlex.quote(sys.executable)} -m tensorboard.main"
    return f"{start} --logdir {shlex.quote(str(logdir))}"


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
    chorales     render Bach's four-part chorales as MUSDB18-HQ stems (FluidSynth)
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
@click.option("--min-tail", type=click.FloatRange(0, 1), default=None,
              help="With --tail pad, drop a tail shorter than this share of a segment: it would be mostly padding "
                   "(default 0.5; 0 pads every tail). A track shorter than that still gives one segment.")
@click.option("--min-vocals-db", type=float, default=None,
              help="Skip segments whose vocals RMS is below this many dBFS (default -60).")
@OPT_DEBUG
def sound2image_cmd(source, out, fmt, container, segment, sr, n_fft, hop, range_db, target, subsets, workers, tail,
                    min_tail, min_vocals_db, debug):
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
                                 workers=workers, tail=tail, min_tail=min_tail,
                                 min_vocals_db=min_vocals_db)
        summary = sound2image(source, out, codec_cfg, data_cfg, progress=bar("Encoding tracks"))
        click.echo(f"{out}: {describe(summary)}")
        _report_failures([(r.error, r.traceback) for r in summary.failed], debug,
                         len(summary.done) + len(summary.failed), "tracks")


@cli.command("train")
@click.argument("data", type=click.Path(path_type=str))
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--recipe", default=None, metavar="NAME|FILE.json",
              help=f"The training recipe: {', '.join(RECIPES)} (default {DEFAULT_RECIPE}; pix2pix is the published "
                   "one), or a JSON file of training fields (docs/training.md). A flag below overrides that field.")
@click.option("--model", type=click.Choice(list(MODELS)), default=None,
              help="Network size: default (published pix2pix), small, or tiny (fast on a CPU).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Train up to this many steps in all (default 10000).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Tiles per step and device (default 4; pix2pix: 1).")
@click.option("--tile", type=click.IntRange(min=16), default=None, help="Frames per random crop (default 256).")
@click.option("--generator", type=click.Choice(list(GENERATORS)), default=None,
              help="unet: the published generator; powersum: adds an accompaniment to the vocals by power, so it "
                   "never loses them; powersum-mean: the same, starting at the training set's mean accompaniment.")
@click.option("--phase-repr", type=click.Choice(list(PHASE_REPRS)), default=None,
              help="The phase the network sees and makes: angle (as stored), if (instantaneous frequency), or none "
                   "(magnitude only; the song takes the vocals' phase).")
@click.option("--gan-loss", type=click.Choice(list(GAN_LOSSES)), default=None,
              help="bce: pix2pix's adversarial loss with its PatchGAN discriminator; none: no discriminator.")
@click.option("--seed", type=int, default=None, help="Random seed (default 0).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None,
              help="Steps between checkpoints; a killed run loses at most this many (default 500).")
@click.option("--sample-every", type=click.IntRange(min=1), default=None,
              help="Steps between sample strips and TensorBoard audio (default 500).")
@click.option("--log-every", type=click.IntRange(min=1), default=None,
              help="Steps per history.csv row, with val_recon and val_lsd (default 100).")
@click.option("--input-subdir", default=None, help="Folder of input images, per split (default vocals).")
@click.option("--target-subdir", default=None,
              help="Folder of target images (default: the dataset's target, mixture or accompaniment).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from RUN's newest checkpoint, or start RUN over (its old artefacts are deleted).")
@click.option("--mixed-precision/--no-mixed-precision", default=None,
              help="Mixed precision: float16 on a GPU, bfloat16 on a CPU with AVX512_BF16 or AMX (else float32).")
@OPT_DEBUG
def train_cmd(data, run, recipe, debug, resume, **flags):
    """Train pix2pix on the paired images of DATA into the run folder RUN.

    DATA is a sound2image dataset (train/ and valid/ of vocals/ and mixture/ images) or any folder with
    input and target image folders paired by file name. Without a valid split, whole tracks are held out.
    RUN gets config.json, checkpoints/, generator.keras, history.csv, logs/ (TensorBoard), samples/ and
    losses.png. Rerunning on the same RUN resumes from its newest checkpoint up to --steps; options not given
    are taken from RUN/config.json. The other training fields (loss weights, learning rate, normalisation,
    weight average, keep-best, calibration) come from the recipe: docs/training.md.
    Several GPUs are used with MirroredStrategy; TF_CONFIG naming a cluster selects
    MultiWorkerMirroredStrategy (run the same command on every worker; the chief writes RUN).

    \b
    Examples:
      vocals2song train datasets/musdb runs/musdb
      vocals2song train datasets/musdb runs/quick --model tiny --steps 2000
      vocals2song train datasets/musdb runs/published --recipe pix2pix
      vocals2song train datasets/musdb runs/mine --recipe my_recipe.json --steps 20000
      vocals2song train seed_data/ runs/seed --input-subdir input --target-subdir output
    """
    from vocals2song.runfolder import run_settings
    from vocals2song.train import train

    with _errors(debug):
        recorded = run_settings(run) if resume else {}  # a rerun continues the run as it was configured
        cfg = train_config(recorded, recipe, flags)
        default = TrainConfig()
        taken = [k for k, v in recorded.items() if flags.get(k) is None and getattr(cfg, k) == v
                 and v != getattr(default, k) and k != "recipe"]
        if taken:  # what the run recorded and this command did not say: flags as flags, recipe fields by name
            click.echo(f"note: as recorded in {Path(run) / 'config.json'}: " + ", ".join(
                (f"--{'no-' if recorded[k] is False else ''}{k.replace('_', '-')}"
                 + ("" if isinstance(recorded[k], bool) else f" {recorded[k]}")) if k in flags
                else f"{k} {recorded[k]}" for k in taken), err=True)
        summary = train(data, run, cfg, resume=resume, progress=True, log=click.echo)
        if summary.step > summary.start:
            row = summary.last_row
            click.echo(f"{run}: step {summary.step} in {summary.seconds:.1f} s "
                       f"({summary.steps_per_second:.2f} steps/s); "
                       f"gen_recon {row.get('gen_recon', float('nan')):.4f}, "
                       f"val_recon {row.get('val_recon', float('nan')):.4f}, "
                       f"val_lsd {row.get('val_lsd', float('nan')):.2f} dB. "
                       f"Listen: {tensorboard_command(Path(run) / 'logs')}")


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
                                        progress=bar("Decoding images"))
        click.echo(f"{out}: wrote {_count(len(written), 'WAV file')}")
        _report_failures([(f.error, f.traceback) for f in failures], debug, len(written) + len(failures), "images")


@cli.command("predict")
@click.argument("run", type=click.Path(path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str), metavar="AUDIO_OR_IMAGE...")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="Folder for the outputs.")
@click.option("--phase", type=click.Choice(["model", "vocals", "griffinlim"]), default="model", show_default=True,
              help="Output phase: the model's (its G channel, or for a magnitude-only model the vocals' phase where "
                   "they count and a random one elsewhere), the input vocals' phase, or Griffin-Lim on the predicted "
                   "magnitude.")
@click.option("--add-vocals/--no-add-vocals", default=None,
              help="Add the input vocals to a predicted accompaniment (default: on for accompaniment models).")
@click.option("--midi/--no-midi", default=True, show_default=True,
              help="Also write NAME.accompaniment.mid: the notes of the added accompaniment, transcribed with "
                   "basic-pitch, to take into a DAW.")
@OPT_DEBUG
def predict_cmd(run, inputs, out, phase, add_vocals, midi, debug):
    """Make a song around each vocals recording with the model trained in RUN.

    AUDIO_OR_IMAGE is an audio file (WAV, FLAC, MP3, ...; any rate, mono or stereo, any length), an encoded
    vocals image, or a folder of them. Per input NAME, OUT gets NAME.mixture.wav (the predicted song, as long as
    the input, at the run's sample rate), NAME.mixture.png (the predicted image; image2sound decodes it)
    NAME.spectrograms.png (input and prediction) and NAME.accompaniment.mid (the notes it added, as MIDI);
    OUT/index.html plays them all in a browser (page copies of the audio in OUT/audio/). Inputs sharing a name
    are kept apart. Long inputs are tiled and cross-faded.

    \b
    Examples:
      vocals2song predict runs/musdb my_vocals.wav --out songs/
      vocals2song predict runs/musdb takes/ --out songs/ --phase griffinlim
    """
    from vocals2song.predict import predict

    with _errors(debug):
        written, failures = predict(run, list(inputs), out, phase, add_vocals, progress=bar("Predicting"),
                                    warn=lambda line: click.echo(line, err=True), midi=midi)
        songs = [p for p in written if p.name.endswith(".mixture.wav")]
        page = Path(out) / "index.html"
        click.echo(f"{out}: {_count(len(songs), 'song')} ({_count(len(written), 'file')})"
                   + (f"; listen: open {page} in a browser" if page in written else ""))
        _report_failures([(f.error, f.traceback) for f in failures], debug, len(songs) + len(failures), "inputs")


@cli.command("evaluate")
@click.argument("run", type=click.Path(path_type=str))
@click.argument("data", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="Folder for the report.")
@click.option("--split", default="test", show_default=True, help="Which split of DATA to score.")
@click.option("--phase", type=click.Choice(["model", "vocals", "griffinlim"]), default="model", show_default=True,
              help="Phase of the model's song, as in predict (the baselines lay their power on the same way).")
@click.option("--notes/--no-notes", default=True, show_default=True,
              help="Judge every added accompaniment (song minus vocals) by its notes: transcribed with basic-pitch "
                   "and compared with the true accompaniment's and the sung melody.")
@OPT_DEBUG
def evaluate_cmd(run, data, out, split, phase, notes, debug):
    """Score RUN on the vocals/target pairs of DATA's split against two baselines.

    Metrics of the predicted against the true mixture, per item and as median and mean: SNR, SI-SDR,
    log-spectral distance (lsd, also per band), spectral convergence, multi-resolution STFT distance
    (mrstft), loudness difference, frame-rate buzz and harmony (chroma correlation of the added
    accompaniment). Baselines: vocals_only, and mean_accompaniment (the vocals plus the training set's
    mean accompaniment power where they sound). OUT gets report.json, report.md, metrics.png, items/*.png,
    and index.html: a page to listen to the pictured items (vocals, true mixture, the model and each
    baseline) with their metrics, opened from file://.

    \b
    Examples:
      vocals2song evaluate runs/musdb datasets/musdb --out reports/musdb
      vocals2song evaluate runs/musdb datasets/musdb --out reports/valid --split valid
    """
    from vocals2song.evaluate import evaluate

    with _errors(debug):
        from vocals2song.evaluate import notes_summary, summary

        report = evaluate(run, data, out, split, progress=bar("Evaluating"), phase=phase, judge_notes=notes)
        heard = notes_summary(report)
        click.echo(f"{out}: {_count(report['nb_items'], 'item')}; {summary(report)}. "
                   + (f"By its notes, {heard}. " if heard else "")
                   + f"See {Path(out) / 'report.md'}; listen: open {Path(out) / 'index.html'} in a browser")
        _report_failures([(f, None) for f in report["failures"]], debug, report["nb_items"] + len(report["failures"]),
                         "pairs")


@cli.command("chorales")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Render this many chorales, spread over the corpus with every split kept (default: all 365).")
@click.option("--soundfont", type=click.Path(path_type=str), default=None,
              help="General MIDI SoundFont (default /usr/share/sounds/sf2/FluidR3_GM.sf2, from fluid-soundfont-gm).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel processes (default: CPU count).")
@click.option("--band", type=click.Choice(list(BANDS)), default=None,
              help="The accompaniment's instruments, pans and levels: random (default: each track's own, drawn from "
                   "its name, which the vocals cannot tell) or fixed (one band for every track: piano on alto and "
                   "tenor, acoustic bass; what is left to learn is the music).")
@OPT_SR
@OPT_DEBUG
def chorales_cmd(out, limit, soundfont, workers, band, sr, debug):
    """Render music21's four-part Bach chorales with FluidSynth into a MUSDB18-HQ tree in OUT.

    OUT/{train,test}/<track>/ get vocals.wav (the soprano on a voice program), bass.wav (the bass part),
    other.wav (alto and tenor on instruments varied per track), drums.wav (silence) and mixture.wav (the
    exact sum), 16-bit stereo. Tracks are split by tune: chorales whose soprano openings match stay in one
    split. OUT/mus.yaml names the validation tracks that sound2image sends to valid/, and OUT/chorales.json
    records every track's settings (tempo, transposition, instruments, levels; all fixed by the track name).
    A rerun skips what is complete, so an interrupted run resumes. Needs `sudo apt-get install fluidsynth
    fluid-soundfont-gm`.

    \b
    Examples:
      vocals2song chorales datasets/chorales
      vocals2song chorales datasets/chorales60 --limit 60 --workers 2
      vocals2song chorales datasets/chorales_fixed --band fixed
      vocals2song chorales datasets/chorales --soundfont ~/sf2/MuseScore_General.sf2
      vocals2song sound2image datasets/chorales datasets/chorales_img
    """
    from vocals2song.chorales import describe, render_chorales

    with _errors(debug):
        cfg = replace_given(ChoralesConfig(), limit=limit, soundfont=soundfont, workers=workers, sr=sr, band=band)
        summary = render_chorales(out, cfg, progress=bar("Rendering chorales"))
        click.echo(f"{out}: {describe(summary)}")
        _report_failures([(r.error, r.traceback) for r in summary.failed], debug,
                         len(summary.done) + len(summary.failed), "chorales")


@cli.command("demo")
@click.option("--out", default="demo", show_default=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for everything the demo makes.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps (default 1000).")
@click.option("--chorales", type=click.IntRange(min=3), default=None,
              help="Chorales to render and learn from (default 24).")
@click.option("--band", type=click.Choice(list(BANDS)), default=None,
              help="The chorales' band (see chorales --band; default fixed: one band for every track).")
@OPT_DEBUG
def demo_cmd(out, steps, chorales, band, debug):
    """Run the whole chain on real music, with nothing to download.

    Renders Bach chorales with FluidSynth (the soprano is the "vocals", the other parts one band for
    every track unless --band random), encodes them, trains the default recipe on the CPU, scores it on tunes
    it never heard against the vocals alone and the mean accompaniment, and predicts songs for a held-out
    chorale melody and for the real MUSDB18 vocals inside stempeg. OUT/listen/index.html and OUT/evaluate/index.html
    are pages to listen in a browser.

    \b
    Examples:
      vocals2song demo
      vocals2song demo --out quick_demo --steps 300 --chorales 8
    """
    from vocals2song.demo import DEFAULT_STEPS, DEMO_BAND, DEMO_CHORALES, demo
    from vocals2song.evaluate import notes_summary, summary

    with _errors(debug):
        result = demo(out, steps or DEFAULT_STEPS, chorales or DEMO_CHORALES, progress=True, log=click.echo,
                      band=band or DEMO_BAND)
        if result.steps > result.start:
            click.echo(f"\nTrained steps {result.start} to {result.steps} in {result.seconds:.0f} s "
                       f"({result.steps_per_second:.1f} steps/s).")
        else:
            click.echo(f"\nThe run in {Path(out) / 'run'} was already trained to step {result.steps}; it was reused "
                       "(give a larger --steps to train on).")
        report = result.report
        click.echo(f"On {_count(report['nb_items'], 'segment')} of unseen chorale tunes, the log-spectral distance "
                   f"to the true mixture, {summary(report)}.")
        if heard := notes_summary(report):
            click.echo(f"By its notes, {heard}.")
        for name, scores in result.items.items():
            line = ", ".join(f"{k} {v['lsd']:.1f}" for k, v in scores.items() if "lsd" in v)
            model, truth = scores["model"], scores.get("truth", {})
            click.echo(f"The {name} song: lsd {line} dB (lower is better); its loudness is "
                       f"{model['loudness_db']:+.1f} dB from the true mixture's"
                       + (f"; its added accompaniment plays {model['notes_per_s']:.1f} notes per second (the true "
                          f"one {truth['notes_per_s']:.1f}), pitch-class F1 {model['pc_f1']:.2f}." if truth else "."))
        click.echo(f"Listen: open {result.listen['listening page']} (and {result.listen['evaluation page']}) in a "
                   "browser, or play the files with any player (`ffplay -autoexit FILE`):")
        for label, path in result.listen.items():
            click.echo(f"  {label:24s} {path}")
        click.echo(f"TensorBoard (losses, strips, audio): {tensorboard_command(Path(out) / 'run' / 'logs')}")


def main(args: list[str] | None = None) -> None:
    """Console entry point; tests call it with ``args``."""
    cli.main(args=args, prog_name="vocals2song")


if __name__ == "__main__":
    main()
