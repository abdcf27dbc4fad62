"""Songs made without learning, to measure a model against. One signature: ``(Z_vocals, stats) -> Z_song``.

``Z_vocals`` is the vocals' complex STFT ``(nb_bins, nb_frames)`` on the codec's absolute scale; ``stats`` is what a
baseline may know of the training data (`TrainingStats`, from `training_stats`). Each returns the song's STFT.

- ``vocals_only``: the vocals alone. What an untrained additive model makes.
- ``mean_accompaniment``: the vocals plus the training set's mean accompaniment **power** spectrum, added only in
  frames where the vocals sound, with the vocals' phase. On unseen Bach chorales it beats the vocals alone on lsd
  and mrstft (QUALITY.md), so a model has to learn more than an average to beat it. (An earlier version added the
  mean *magnitude* in every frame; it lost to the vocals alone, 16.5 against 10.6 lsd, and taught nothing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

#: a frame sounds when its power is within this many dB of the loudest frame of its item
GATE_DB = -40.0


@dataclass(frozen=True)
class TrainingStats:
    """What the baselines learn from training pairs."""

    mean_power: np.ndarray  # (nb_bins,) mean accompaniment power per bin over frames where the vocals sound
    nb_frames: int  # frames averaged


def sounding_frames(Z: np.ndarray, gate_db: float = GATE_DB) -> np.ndarray:
    """``(nb_bins, nb_frames)`` -> boolean ``(nb_frames,)``: frames within ``gate_db`` of the loudest one."""
    energy = np.sum(np.abs(Z) ** 2, axis=0)
    if not np.any(energy > 0):
        return np.zeros(Z.shape[1], dtype=bool)
    return energy > energy.max() * 10 ** (gate_db / 10)


def training_stats(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> TrainingStats:
    """From (vocals STFT, accompaniment STFT) pairs: the mean accompaniment power where the vocals sound."""
    total, frames = None, 0
    for Z_voc, Z_acc in pairs:
        sounding = sounding_frames(Z_voc)
        power = np.abs(Z_acc[:, sounding]) ** 2
        total = power.sum(axis=1) if total is None else total + power.sum(axis=1)
        frames += int(sounding.sum())
    if total is None or frames == 0:
        raise ValueError("no training frame where the vocals sound")
    return TrainingStats((total / frames).astype(np.float64), frames)


def vocals_only(Z_vocals: np.ndarray, stats: TrainingStats | None = None) -> np.ndarray:
    """The vocals as the song."""
    return Z_vocals


def mean_accompaniment(Z_vocals: np.ndarray, stats: TrainingStats) -> np.ndarray:
    """The vocals plus the mean accompaniment power in the frames where they sound, with the vocals' phase."""
    power = np.abs(Z_vocals) ** 2
    sounding = sounding_frames(Z_vocals)
    power[:, sounding] += stats.mean_power[:, None]
    return np.sqrt(power) * song_phase(Z_vocals, power)


#: a bin keeps the vocals' phase when the vocals hold at least this share of the song's power there (-10 dB)
VOCALS_PHASE_SHARE = 0.1


def song_phase(Z_vocals: np.ndarray, power: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit phasors for a song of ``power`` ``(nb_bins, nb_frames)`` made around the vocals.

    The vocals' own phase where they hold at least `VOCALS_PHASE_SHARE` of the song's power, and a random
    (seeded) phase elsewhere. Where the vocals are near silent, their phase is the leakage of their partials,
    coherent from bin to bin and frame to frame: accompaniment laid on it pulses at the frame rate (a buzz).
    """
    magnitude = np.abs(Z_vocals)
    phasor = np.ones(Z_vocals.shape, dtype=np.complex128)
    np.divide(Z_vocals, magnitude, out=phasor, where=magnitude > 0)
    other = ~(magnitude**2 >= VOCALS_PHASE_SHARE * power) | (magnitude == 0)
    if other.any():
        angles = np.random.default_rng(seed).uniform(-np.pi, np.pi, int(other.sum()))
        phasor[other] = np.exp(1j * angles)
    return phasor


Baseline = Callable[[np.ndarray, TrainingStats], np.ndarray]
#: name -> baseline, in the order reports list them
BASELINES: dict[str, Baseline] = {"vocals_only": vocals_only, "mean_accompaniment": mean_accompaniment}
