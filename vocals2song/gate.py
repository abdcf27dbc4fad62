"""Where the vocals sound, and the power scale of the image planes.

The gate decides in which frames an accompaniment plays: a frame sounds when its loudest vocals bin is within
`GATE_DBFS` of a full-scale sine's, and runs shorter than `GATE_SMOOTH_S` are smoothed away. The power scale turns
a codec plane ``u`` into power over the image's floor. The model's accompaniment head, the baselines and predict
all take them from here, so the network and the no-learning songs gate and add power the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vocals2song.codec import ImageMeta


#: a frame sounds when its loudest bin is within this many dB of a full-scale sine's (the codec's scale); a hair
#: under -60 dB because an 8-bit level sits exactly there (102/255 of 100 dB), and float rounding must not split it
GATE_DBFS = -60.001


#: the gate ignores what is shorter than this (s): a silent gap between sounding frames, or a sounding blip between
#: silent ones. Real singing fading out hovers about the gate's level: the MUSDB18 excerpt's gate toggled 12 times in
#: 0.35 s (runs of 1 to 16 frames) and its accompaniment stuttered on and off; a breath is longer
GATE_SMOOTH_S = 0.1


def gate_radius(sr: int, hop: int, seconds: float = GATE_SMOOTH_S) -> int:
    """The radius in frames of `smooth_gate`'s window that removes runs of up to ``seconds`` (8 frames, runs of
    up to 16, at 44.1 kHz and a hop of 256)."""
    return int(seconds * sr / hop) // 2


def smooth_gate(sounding: np.ndarray, radius: int) -> np.ndarray:
    """A gate ``(..., nb_frames)`` without its short runs: a closing, then an opening, along frames with a window
    of ``2 * radius + 1`` (out-of-range frames ignored, as a max pool with "same" padding does). Silent gaps of up to
    ``2 * radius`` frames between sounding frames close, then sounding runs of up to that many frames go.
    `model._AccompanimentHead` does the same in the graph."""
    if radius <= 0:
        return sounding
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    size = 2 * radius + 1
    x = np.asarray(sounding, dtype=np.uint8)
    x = minimum_filter1d(maximum_filter1d(x, size, axis=-1, mode="nearest"), size, axis=-1, mode="nearest")
    x = maximum_filter1d(minimum_filter1d(x, size, axis=-1, mode="nearest"), size, axis=-1, mode="nearest")
    return x.astype(bool)


def sounding_frames(Z: np.ndarray, gate_dbfs: float = GATE_DBFS, radius: int = 0) -> np.ndarray:
    """``(nb_bins, nb_frames)`` -> boolean ``(nb_frames,)``: frames whose loudest bin is within ``gate_dbfs`` of a
    full-scale sine's (``n_fft / 2`` with a Hann window), smoothed with ``radius`` (`smooth_gate`). An absolute
    level, so a model can apply the same gate to a tile without seeing the whole song."""
    full_scale = Z.shape[0] - 1  # n_fft / 2
    return smooth_gate(np.abs(Z).max(axis=0) >= full_scale * 10 ** (gate_dbfs / 20), radius)


#: power floor for the log mean: 150 dB under a full-scale bin, far below anything a codec image holds
POWER_FLOOR = 1e-10


def power_scale(range_db: float) -> float:
    """``k = range_db ln(10) / 10``: a plane's ``u`` times ``k`` is its natural-log power over the floor's, so
    ``floor * expm1(k u)`` is the power above the floor (what `model.PowerSum` adds)."""
    return float(range_db * np.log(10.0) / 10.0)


def gate_u(range_db: float) -> float:
    """`GATE_DBFS` as a plane value: a frame sounds when its loudest ``u`` reaches it (as `sounding_frames`)."""
    return (range_db + GATE_DBFS) / range_db


def sounding_planes(u: np.ndarray, range_db: float, radius: int = 0) -> np.ndarray:
    """`sounding_frames` on a codec plane ``u`` ``(nb_bins, nb_frames)``: its frames whose loudest bin below
    Nyquist reaches `gate_u` (where a powersum-mean head starts at the mean), smoothed with ``radius``."""
    return smooth_gate(np.asarray(u)[:-1].max(axis=0) >= gate_u(range_db), radius)


def floor_power(top_db: float, range_db: float) -> float:
    """The power of a codec plane's floor (``u = 0``) on the codec's scale: ``range_db`` under ``top_db``."""
    return 10.0 ** ((top_db - range_db) / 10.0)


def mean_power(u_in: np.ndarray, meta: ImageMeta, prior: list[float],
               gate_radius: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A powersum-mean model's start: ``(power (nb_bins, nb_frames), sounding (nb_frames,))``, the training mean
    (config.json's model "prior", as `baselines.prior_rows` wrote it) in the frames where the vocals plane ``u_in``
    sounds (where the head starts at the mean; the gate smoothed with config.json's model "gate_radius"), 0
    elsewhere."""
    floor, k = floor_power(meta.top_db, meta.range_db), power_scale(meta.range_db)
    mean = floor * np.expm1(k * (np.asarray(prior[::-1] + [-1.0]) + 1.0) / 2.0)
    sounding = sounding_planes(u_in, meta.range_db, gate_radius)
    power = np.zeros(u_in.shape)
    power[:, sounding] = mean[:, None]
    return power, sounding
