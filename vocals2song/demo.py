"""`vocals2song demo`: the whole chain with nothing to download.

It builds a MUSDB18-HQ-shaped tree from the real MUSDB18 excerpt inside stempeg ("The Easton Ellises - Falcon 69",
6 s, five stems), encodes it with sound2image, trains the tiny model on the CPU, predicts the mixture from the
excerpt's vocals, and leaves in ``OUT/listen/`` (named as `predict` names things, ``NAME.<what>.<ext>``):
``excerpt.wav`` (the vocals, mono), ``excerpt.true_mixture.wav`` (mono, like the prediction),
``excerpt.mixture.wav`` (the predicted song), ``excerpt.mixture.png`` (its image), ``excerpt.spectrograms.png``, and
``index.html``, a listening page with the three players and the metrics.

One 6 s song is far too little to learn music from: the model learns this excerpt, and the demo shows the chain
working end to end (and what a few minutes of CPU training sound like), not a model that generalises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocals2song import audio
from vocals2song.config import CodecConfig, DatasetConfig, TrainConfig
from vocals2song.errors import Vocals2SongError

TRACK = "The Easton Ellises - Falcon 69"
STEMS = ("mixture", "drums", "bass", "other", "vocals")  # stempeg's stream order
SEGMENT = 3.0  # seconds per image: the 6 s excerpt gives 2 training pairs
DEFAULT_STEPS = 1500


@dataclass
class DemoResult:
    out: Path
    listen: dict[str, Path]
    steps: int
    seconds: float
    steps_per_second: float
    snr_db: float  # predicted vs true mixture
    lsd_model: float
    lsd_vocals_only: float
    start: int = 0  # the step training started from (== steps: the run was already trained)


def excerpt_tree(root: Path) -> Path:
    """Write the stempeg excerpt as ``root/train/<TRACK>/{mixture,drums,bass,other,vocals}.wav``."""
    import stempeg

    streams, sr = stempeg.read_stems(stempeg.example_stem_path(), dtype=np.float32)
    folder = root / "train" / TRACK
    for i, stem in enumerate(STEMS):
        if not (folder / f"{stem}.wav").is_file():
            audio.write_wav(folder / f"{stem}.wav", streams[i], sr)
    return folder


def demo(out: str | os.PathLike = "demo", steps: int = DEFAULT_STEPS, progress: bool = True, log=print) -> DemoResult:
    """Run the chain into ``out``; a rerun reuses the tree, dataset and run (training resumes to ``steps``)."""
    from vocals2song import metrics
    from vocals2song.predict import load_predictor, predict
    from vocals2song.sound2image import describe, sound2image
    from vocals2song.train import train

    if steps < 1:
        raise Vocals2SongError("--steps must be at least 1", usage=True)
    out = Path(out)
    log(f"1/4 the MUSDB18 excerpt shipped with stempeg -> {out / 'musdb'}")
    folder = excerpt_tree(out / "musdb")
    log("2/4 sound2image: 3 s segments -> spectrogram images")
    summary = sound2image(out / "musdb", out / "dataset", CodecConfig(), DatasetConfig(segment=SEGMENT, workers=1))
    log(f"    {describe(summary)}")
    log(f"3/4 train the tiny pix2pix for {steps} steps on the CPU")
    cfg = TrainConfig(model="tiny", steps=steps, log_every=max(1, min(100, steps // 10)),
                      sample_every=max(1, steps // 4), checkpoint_every=max(1, steps // 4))
    trained = train(out / "dataset", out / "run", cfg, progress=progress, log=lambda m: log(f"    {m}"))
    log("4/4 predict the mixture from the excerpt's vocals")
    listen = out / "listen"
    predictor = load_predictor(out / "run")
    # The references are mono, as the model's song is (sound2image mixes down to mono): a fair comparison.
    truth = audio.to_mono(audio.load_audio(folder / "mixture.wav")[0])  # 44.1 kHz, the run's rate
    vocals = audio.to_mono(audio.load_audio(folder / "vocals.wav")[0])
    files = {"vocals": listen / "excerpt.wav", "true mixture": listen / "excerpt.true_mixture.wav",
             "predicted mixture": listen / "excerpt.mixture.wav", "spectrograms": listen / "excerpt.spectrograms.png",
             "listening page": listen / "index.html", "training samples": out / "run" / "samples",
             "loss curves": out / "run" / "losses.png"}
    audio.write_wav(files["vocals"], vocals, predictor.meta.sr)
    audio.write_wav(files["true mixture"], truth, predictor.meta.sr)
    written, failures = predict(out / "run", [files["vocals"]], listen, predictor=predictor, page=False)
    if failures:
        raise Vocals2SongError(failures[0].error)
    predicted = audio.load_audio(files["predicted mixture"])[0][:, 0]
    n = min(len(truth), len(predicted))
    scores = {"model": metrics.compute_all(truth[:n], predicted[:n]), "vocals_only": metrics.compute_all(truth[:n],
                                                                                                      vocals[:n])}
    write_page(listen, files, {"vocals": vocals, "true mixture": truth, "model": predicted}, predictor.meta.sr,
               scores, trained.step)
    return DemoResult(out, files, trained.step, trained.seconds, trained.steps_per_second,
                      scores["model"]["snr"], scores["model"]["lsd"], scores["vocals_only"]["lsd"], trained.start)


def write_page(listen: Path, files: dict[str, Path], waves: dict[str, np.ndarray], sr: int,
               scores: dict[str, dict[str, float]], steps: int) -> Path:
    """listen/index.html: the spectrograms, players for the vocals, the true and the predicted mixture, metrics."""
    from vocals2song.listen import MetricsTable, PageItem, page_audio_path, write_listening_page
    from vocals2song.listen import write_page_audio
    from vocals2song.metrics import HIGHER_IS_BETTER

    players = {label: write_page_audio(page_audio_path(listen, "excerpt", label), y, sr) for label, y in waves.items()}
    table = MetricsTable(scores, dict(HIGHER_IS_BETTER), "The model's song and the vocals alone against the true "
                                                         "mixture; vocals_only plays as the vocals.")
    item = PageItem(TRACK, players, files["spectrograms"], table)
    return write_listening_page(listen, "vocals2song demo", [item],
                                f"The tiny model after {steps} steps on this one 6 s excerpt: it shows the chain "
                                "working, not a model that generalises.")
