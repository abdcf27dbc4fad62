"""`vocals2song demo`: the whole chain with nothing to download.

It builds a MUSDB18-HQ-shaped tree from the real MUSDB18 excerpt inside stempeg ("The Easton Ellises - Falcon 69",
6 s, five stems), encodes it with sound2image, trains the tiny model on the CPU, predicts the mixture from the
excerpt's vocals, and leaves in ``OUT/listen/``: the vocals, the true mixture, the predicted mixture, and pictures.

One 6 s song is far too little to learn music from: the model learns this excerpt, and the demo shows the chain
working end to end (and what a few minutes of CPU training sound like), not a model that generalises.
"""

from __future__ import annotations

import os
import shutil
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
    written, failures = predict(out / "run", [folder / "vocals.wav"], listen, predictor=predictor)
    if failures:
        raise Vocals2SongError(failures[0].error)
    files = {"vocals": listen / "vocals.wav", "true mixture": listen / "true_mixture.wav",
             "predicted mixture": listen / "predicted_mixture.wav",
             "spectrograms": listen / "spectrograms.png", "training samples": out / "run" / "samples",
             "loss curves": out / "run" / "losses.png"}
    os.replace(listen / "vocals.mixture.wav", files["predicted mixture"])
    os.replace(listen / "vocals.spectrograms.png", files["spectrograms"])
    shutil.copyfile(folder / "vocals.wav", files["vocals"])
    shutil.copyfile(folder / "mixture.wav", files["true mixture"])
    os.replace(listen / "vocals.mixture.png", listen / "predicted_mixture.image.png")  # image2sound decodes it
    truth = audio.to_mono(audio.load_audio(folder / "mixture.wav")[0])  # 44.1 kHz, the run's rate
    vocals = audio.to_mono(audio.load_audio(folder / "vocals.wav")[0])
    predicted = audio.load_audio(files["predicted mixture"])[0][:, 0]
    n = min(len(truth), len(predicted))
    return DemoResult(out, files, trained.step, trained.seconds, trained.steps_per_second,
                      metrics.snr(truth[:n], predicted[:n]), metrics.lsd(truth[:n], predicted[:n]),
                      metrics.lsd(truth[:n], vocals[:n]))
