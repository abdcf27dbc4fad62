"""`vocals2song demo`: the whole chain on real music, with nothing to download.

1. Render a few dozen of Bach's four-part chorales with FluidSynth (`chorales.py`): the soprano is the "vocals",
   alto, tenor and bass the accompaniment, on one band for every track (`DEMO_BAND`); test tunes are never heard
   in training.
2. Encode them with `sound2image` (15 s segments).
3. Train the recipe (`DEMO_TRAIN`: the powersum-mean generator, which starts at the training set's mean
   accompaniment and learns what the mean misses) on the CPU.
4. Score it with `evaluate` on the test split, unseen tunes, against the vocals alone and the mean accompaniment
   (``OUT/evaluate/``: report.md and a listening page).
5. Predict songs for a held-out chorale melody (a whole test track) and for the real MUSDB18 vocals that ship with
   stempeg ("The Easton Ellises - Falcon 69", 6 s), into ``OUT/listen/`` (named as `predict` names things,
   ``NAME.<what>.<ext>``): ``NAME.wav`` (the vocals, mono), ``NAME.true_mixture.wav`` (mono, like the song),
   ``NAME.mixture.wav`` (the song), ``NAME.spectrograms.png``, and ``index.html`` with players and metrics.

A rerun reuses what is there (the corpus, the images, the run) and trains on only if ``steps`` grew.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocals2song import audio
from vocals2song.config import ChoralesConfig, CodecConfig, DatasetConfig, TrainConfig
from vocals2song.errors import Vocals2SongError

EXCERPT = "The Easton Ellises - Falcon 69"
STEMS = ("mixture", "drums", "bass", "other", "vocals")  # stempeg's stream order
#: chorales rendered for the demo (the split by tune keeps a few for valid and test)
DEMO_CHORALES = 24
DEFAULT_STEPS = 1000
#: the demo's band (`chorales --band`): one band for every track, so that what is left to learn is the music. With
#: each track's own band (random) the 24 chorales teach nothing that holds on unseen tunes, and the demo keeps its
#: untrained start, the mean accompaniment (docs/quality-log.md)
DEMO_BAND = "fixed"
#: the recipe the demo trains (the default recipe, the small model): only the steps come from the command line
DEMO_TRAIN = TrainConfig(model="small")


@dataclass
class DemoResult:
    out: Path
    listen: dict[str, Path]
    steps: int
    seconds: float
    steps_per_second: float
    report: dict  # evaluate's report on the unseen test tunes
    items: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # listen item -> estimate -> metrics
    start: int = 0  # the step training started from (== steps: the run was already trained)


def excerpt_stems() -> tuple[dict[str, np.ndarray], int]:
    """The stempeg excerpt's stems, mono float32, and their rate."""
    import stempeg

    streams, sr = stempeg.read_stems(stempeg.example_stem_path(), dtype=np.float32)
    return {stem: audio.to_mono(streams[i]) for i, stem in enumerate(STEMS)}, sr


def demo(out: str | os.PathLike = "demo", steps: int = DEFAULT_STEPS, chorales: int = DEMO_CHORALES,
         progress: bool = True, log=print, band: str = DEMO_BAND) -> DemoResult:
    """Run the chain into ``out`` (see the module docstring); ``band``: `chorales`' ``--band``."""
    from vocals2song import baselines, notes
    from vocals2song.chorales import render_chorales
    from vocals2song.data import match_pairs
    from vocals2song.evaluate import evaluate
    from vocals2song.predict import load_predictor
    from vocals2song.sound2image import describe, sound2image
    from vocals2song.train import train

    if steps < 1:
        raise Vocals2SongError("--steps must be at least 1", usage=True)
    notes.require()  # the songs are judged by their notes: a missing transcriber is said before any work
    if chorales < 3:
        raise Vocals2SongError("--chorales must be at least 3 (one per split)", usage=True)
    out = Path(out)
    log(f"1/5 render {chorales} Bach chorales with FluidSynth ({band} band) -> {out / 'chorales'}")
    rendered = render_chorales(out / "chorales", ChoralesConfig(limit=chorales, band=band),
                               progress=_bar("rendering") if progress else None)
    if rendered.failed:
        raise Vocals2SongError(f"{len(rendered.failed)} chorales failed to render; first: {rendered.failed[0].error}")
    log("2/5 sound2image: 15 s segments -> spectrogram images")
    summary = sound2image(out / "chorales", out / "dataset", CodecConfig(), DatasetConfig(),
                          progress=_bar("encoding") if progress else None)
    log(f"    {describe(summary)}")
    cfg = dataclasses.replace(DEMO_TRAIN, **{"steps": steps, "log_every": max(1, min(100, steps // 10)),
                                            "sample_every": max(1, steps // 4), "checkpoint_every": max(1, steps // 4)})
    log(f"3/5 train the {cfg.model} {cfg.generator} model for {steps} steps on the CPU")
    trained = train(out / "dataset", out / "run", cfg, progress=progress, log=lambda m: log(f"    {m}"))
    predictor = load_predictor(out / "run")
    log("4/5 evaluate on the test split: tunes the model never heard")
    report = evaluate(out / "run", out / "dataset", out / "evaluate", "test", predictor=predictor)
    log("5/5 predict songs for a held-out chorale melody and for real MUSDB18 vocals")
    listen, items, files = out / "listen", {}, {}
    sr = predictor.meta.sr
    train_pairs = match_pairs(out / "dataset" / "train" / "vocals", out / "dataset" / "train" / "mixture")
    stats = baselines.stats_from_images(train_pairs, "mixture")
    for name, stems in (("chorale", _test_chorale(out / "chorales", sr)), ("excerpt", _excerpt(sr))):
        items[name], paths = listen_item(listen, name, stems["vocals"], stems["mixture"], predictor, stats)
        files.update(paths)
    files.update({"listening page": listen / "index.html", "evaluation page": out / "evaluate" / "index.html",
                  "loss curves": out / "run" / "losses.png"})
    write_page(listen, items, trained.step)
    return DemoResult(out, files, trained.step, trained.seconds, trained.steps_per_second, report, items,
                      trained.start)


def _bar(label: str):
    """A progress bar factory for one of the demo's steps, indented under its line."""
    from vocals2song.progress import bar

    return bar(f"    {label}")


def _test_chorale(root: Path, sr: int) -> dict[str, np.ndarray]:
    """The vocals and mixture of the first test chorale, mono at ``sr``."""
    tracks = sorted(p for p in (root / "test").iterdir() if p.is_dir())
    if not tracks:
        raise Vocals2SongError("the rendered corpus has no test track", root)
    stems = {}
    for stem in ("vocals", "mixture"):
        y, rate = audio.load_audio(tracks[0] / f"{stem}.wav")
        y = audio.to_mono(y)
        stems[stem] = audio.resample(y, rate, sr) if rate != sr else y
    return stems


def _excerpt(sr: int) -> dict[str, np.ndarray]:
    stems, rate = excerpt_stems()
    return {k: (audio.resample(stems[k], rate, sr) if rate != sr else stems[k]) for k in ("vocals", "mixture")}


def listen_item(listen: Path, name: str, vocals: np.ndarray, truth: np.ndarray, predictor,
                stats) -> tuple[dict[str, dict[str, float]], dict[str, Path]]:
    """Predict ``name``'s song from its vocals into ``listen``; score it and the baselines (``stats``: what they
    know of the training data) against ``truth``."""
    from vocals2song import baselines, codec, metrics
    from vocals2song.evaluate import judge_items
    from vocals2song.predict import predict_song, vocals_input, write_prediction

    sr = predictor.meta.sr
    files = {f"{name}: vocals": listen / f"{name}.wav", f"{name}: true mixture": listen / f"{name}.true_mixture.wav"}
    audio.write_wav(files[f"{name}: vocals"], vocals, sr)
    audio.write_wav(files[f"{name}: true mixture"], truth, sr)
    voc, pixels, meta = vocals_input(files[f"{name}: vocals"], predictor)
    pred = predict_song(voc, pixels, meta, predictor)
    write_prediction(pred, listen, name, predictor, midi=True)
    files[f"{name}: song"] = listen / f"{name}.mixture.wav"
    files[f"{name}: spectrograms"] = listen / f"{name}.spectrograms.png"
    files[f"{name}: notes (MIDI)"] = listen / f"{name}.accompaniment.mid"
    Z_voc = baselines.image_spectrogram(pixels, meta)
    n = min(len(truth), len(pred.song))
    estimates = {"model": pred.song, "vocals_only": vocals}
    for baseline in ("mean_accompaniment", "parallel"):
        estimates[baseline] = codec.spectrogram_to_audio(baselines.BASELINES[baseline](Z_voc, stats, meta), meta)
    scores = {key: {**metrics.compute_all(truth[:n], y[:n]), **metrics.music_metrics(vocals[:n], truth[:n], y[:n], sr)}
              for key, y in estimates.items()}
    judged = judge_items(vocals[:n], truth[:n], {k: y[:n] for k, y in estimates.items()}, sr)
    for key, heard in judged.items():
        scores.setdefault(key, {}).update(heard)
    return scores, files


def write_page(listen: Path, items: dict[str, dict[str, dict[str, float]]], steps: int) -> Path:
    """listen/index.html: per item the spectrograms, players (vocals, true mixture, song, mean accompaniment is on
    the evaluation page), and the metrics of the song and both baselines."""
    from vocals2song.listen import MetricsTable, PageItem, page_audio_path, write_listening_page, write_page_audio
    from vocals2song.metrics import HIGHER_IS_BETTER, MUSIC_HIGHER_IS_BETTER
    from vocals2song.notes import HIGHER_IS_BETTER as NOTES_HIGHER

    higher = {**HIGHER_IS_BETTER, **MUSIC_HIGHER_IS_BETTER, **NOTES_HIGHER}
    titles = {"chorale": "A held-out chorale melody (a tune the model never heard)",
              "excerpt": f"Real MUSDB18 vocals: {EXCERPT} (6 s, shipped with stempeg)"}
    page_items = []
    for name, scores in items.items():
        players = {}
        for label, suffix in (("vocals", ".wav"), ("true mixture", ".true_mixture.wav"), ("model", ".mixture.wav")):
            y, sr = audio.load_audio(listen / f"{name}{suffix}")
            players[label] = write_page_audio(page_audio_path(listen, name, label), audio.to_mono(y), sr)
        table = MetricsTable(scores, higher, "Against the true mixture; vocals_only plays as the vocals. The notes "
                             "are of the added accompaniment (song minus vocals), transcribed with basic-pitch.",
                             [m for m in ("notes_per_s", "polyphony") if m in scores["model"]], ["truth"])
        links = {"the added accompaniment's notes (MIDI)": listen / f"{name}.accompaniment.mid"}
        page_items.append(PageItem(titles.get(name, name), players, listen / f"{name}.spectrograms.png", table,
                                   links=links))
    return write_listening_page(listen, "vocals2song demo", page_items,
                                f"The {DEMO_TRAIN.model} {DEMO_TRAIN.generator} model after {steps} steps on "
                                "rendered Bach chorales.")
