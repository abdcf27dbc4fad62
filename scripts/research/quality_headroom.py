"""How much of the song could a model predict? Oracle estimates of the accompaniment, on a dataset's test split.

Each row adds an accompaniment power to the vocals' in the frames where the vocals sound (the gate of
`baselines.sounding_frames`), and scores the song's magnitude against the true mixture's: lsd in dB on the
codec's own STFT (magnitudes only, no phase, no waveform), the median over frames, then over test items.

- ``vocals_only``; ``mean_accompaniment``: the training set's geometric mean accompaniment (the baseline's
  magnitude, from every training pair).
- Oracles, which peek at the true accompaniment: ``+ frame gain`` (the mean plus the true per-frame dB offset),
  ``track mean`` (this track's own geometric mean spectrum: its instruments and register), ``freq-smoothed``
  (the true accompaniment blurred over 9 bins, ~390 Hz at 44.1 kHz / 1024), ``time-smoothed`` (blurred over 43
  frames, ~0.25 s) and ``true accompaniment``.

The true accompaniment does not score 0: a power sum leaves out how the two parts interfere, and the images are
quantised. A row a model cannot reach from the vocals alone says where the gap to the truth lies. Chorales give every
track its own instruments from a hash of its name, so the vocals cannot tell them (docs/quality-log.md).

    python scripts/research/quality_headroom.py DATASET   # a sound2image dataset with train/ and test/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from vocals2song import baselines as B
from vocals2song.errors import Vocals2SongError

ROWS = ("vocals_only", "mean_accompaniment", "oracle: + frame gain", "oracle: track mean",
        "oracle: freq-smoothed", "oracle: time-smoothed", "oracle: true accompaniment")


def pairs(root: Path, split: str, target: str):
    """(name, vocals STFT, accompaniment STFT) of every pair in ``root/split``."""
    for v in sorted((root / split / "vocals").iterdir()):
        t = root / split / target / v.name
        if t.is_file():
            Z_voc, Z_tar = (B.image_spectrogram(*B.read_image_meta(p)) for p in (v, t))
            yield v.name, Z_voc, (Z_tar - Z_voc if target == "mixture" else Z_tar)


def lsd(P: np.ndarray, Q: np.ndarray) -> float:
    """Median over frames of the RMS dB difference over bins of two power spectrograms."""
    d = 10 * np.log10(P + B.POWER_FLOOR) - 10 * np.log10(Q + B.POWER_FLOOR)
    return float(np.median(np.sqrt(np.mean(d**2, axis=0))))


def scores(Z_voc: np.ndarray, Z_acc: np.ndarray, log_mean: np.ndarray) -> list[float]:
    sounding = B.sounding_frames(Z_voc)
    P_voc, P_song = np.abs(Z_voc) ** 2, np.abs(Z_voc + Z_acc) ** 2
    log_acc = np.log(np.abs(Z_acc) ** 2 + B.POWER_FLOOR)
    mean = np.repeat(log_mean[:, None], Z_voc.shape[1], axis=1)

    def song(log_power):
        P = P_voc.copy()
        P[:, sounding] += np.exp(log_power[:, sounding])
        return lsd(P_song, P)

    track = log_acc[:, sounding].mean(axis=1) if sounding.any() else log_mean
    return [lsd(P_song, P_voc), song(mean), song(mean + (log_acc - mean).mean(axis=0, keepdims=True)),
            song(np.repeat(track[:, None], Z_voc.shape[1], axis=1)), song(uniform_filter1d(log_acc, 9, axis=0)),
            song(uniform_filter1d(log_acc, 43, axis=1)), song(log_acc)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a sound2image dataset (train/ and test/)")
    parser.add_argument("--target", default="mixture", help="the target folder: mixture or accompaniment")
    args = parser.parse_args(argv)
    for split in ("train", "test"):
        if not (args.dataset / split / "vocals").is_dir():
            parser.error(f"{args.dataset / split / 'vocals'} is not a folder; give a sound2image dataset")
    try:  # the baseline's own mean, over every training pair
        stats = B.training_stats((Z_voc, Z_acc) for _, Z_voc, Z_acc in pairs(args.dataset, "train", args.target))
    except Vocals2SongError as exc:
        parser.error(str(exc))
    log_mean, frames = np.log(stats.mean_power), stats.nb_frames
    table = np.array([scores(Z_voc, Z_acc, log_mean) for _, Z_voc, Z_acc in pairs(args.dataset, "test", args.target)])
    print(f"{args.dataset}: {len(table)} test items, {frames} sounding training frames; "
          "median lsd (dB, codec STFT, magnitude only; lower is better)")
    for name, column in zip(ROWS, table.T):
        print(f"  {name:<28} {np.median(column):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
