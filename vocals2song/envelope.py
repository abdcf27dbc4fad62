"""The accompaniment's envelope: how loud it is frame by frame, read from the vocals around each frame.

An additive (``powersum``) generator adds about the same accompaniment in every frame where the vocals sound: the
mean under the vocals, as `baselines.mean_accompaniment` adds it. But the accompaniment is not flat. Where the
vocals fade (the end of a note, a breath, a held fermata dying away) it fades too, and where they attack it
attacks. A gated mean cannot follow that; the small U-Net does not learn it in a CPU budget (docs/quality-log.md).

So training ends by fitting a linear model of the accompaniment's level in each frame: a ridge regression on the
vocals' level and onset strength (their positive spectral flux) in the frames around it. It is fitted on training
pairs against the training mean that a powersum-mean generator starts at (`predict.calibrate`), and applied at
predict as a gain of ``offset[t]`` dB on whatever the generator adds in that frame, the same in every bin.

Measured with `vocals2song evaluate` on the rendered chorales (docs/quality-log.md): the mean accompaniment with
this envelope (an untrained powersum-mean model, no loudness gain) against without it, median lsd 10.88 against
11.09 on 34 unseen test items of 60 chorales (better on 20) and mrstft 1.598 against 1.623 (better on 29); 10.56
against 10.89 and 1.407 against 1.423 on 145 test items of 172 chorales (better on 80 and 83). With the vocals'
absolute level as a feature the medians were as good but only 9 of 34 items better: it fitted a level per track,
right on some tracks and 1.5 dB wrong on others. A separate level per band over-fitted too (codec-STFT probes).

Everything works on the codec's planes ``u`` (``(nb_bins, nb_frames)`` in [0, 1], lowest frequency first).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: the bins whose mean level the features and the fitted target take: up to this frequency (not DC)
TOP_HZ = 8600.0
#: the frames each side of a frame whose vocals the envelope reads (24 frames: 140 ms at the default hop; on the
#: chorales' valid split 0 frames scored lsd 7.73, 6 frames 7.54, 24 frames 7.52 and 48 frames 7.51)
LAGS = 24
#: ridge penalty on the weights but the intercept (features in dB, over tens of thousands of training frames)
RIDGE = 10.0
#: the envelope's factor is kept within +-this many dB
LIMIT_DB = 20.0
#: the envelope's offsets are kept within these percentiles of its offsets on the training frames
SPAN_PERCENTILES = (1.0, 99.0)
#: natural-log power per dB
NEPER = np.log(10.0) / 10.0


def _rows(nb_bins: int, sr: int, n_fft: int) -> slice:
    return slice(1, max(2, min(nb_bins, int(round(TOP_HZ * n_fft / sr)))))


def features(u_vocals: np.ndarray, range_db: float, sr: int, n_fft: int, lags: int) -> np.ndarray:
    """``(nb_frames, 4 * lags + 3)``: the vocals' mean level (dB, relative to its mean over the frames where they
    sound) and positive flux (dB per frame) over the bins under `TOP_HZ`, in each frame from ``-lags`` to ``+lags``
    around it (the song's edge frames repeated), and 1.

    The level is relative: how loud a track's vocals are says nothing of how loud its accompaniment is (an
    absolute level fitted a level per track, right on some unseen tracks and 1.5 dB wrong on others)."""
    from vocals2song.gate import sounding_planes

    u_vocals = np.asarray(u_vocals, dtype=np.float64)
    level_db = range_db * u_vocals[_rows(u_vocals.shape[0], sr, n_fft)]
    level = level_db.mean(axis=0)
    sounding = sounding_planes(u_vocals, range_db)
    level -= level[sounding].mean() if sounding.any() else level.mean()
    flux = np.concatenate([[0.0], np.maximum(np.diff(level_db, axis=1), 0.0).mean(axis=0)])
    nb_frames = level.shape[0]
    columns = []
    for lag in range(-lags, lags + 1):
        at = np.clip(np.arange(nb_frames) + lag, 0, nb_frames - 1)
        columns += [level[at], flux[at]]
    return np.stack(columns + [np.ones(nb_frames)], axis=1)


def offsets_db(envelope: dict, u_vocals: np.ndarray, range_db: float, sr: int, n_fft: int) -> np.ndarray:
    """``(nb_frames,)``: the gain in dB that the fitted ``envelope`` (config.json's "envelope") gives the
    accompaniment in each frame, within the range its offsets took on the training frames (``span_db``; a linear
    fit must not extrapolate: real singing, with more onsets than the chorales' sung vowels, drove it to +20 dB and
    made the demo's MUSDB18 excerpt 2.5 dB too loud), and always within +-`LIMIT_DB`."""
    x = features(u_vocals, range_db, sr, n_fft, int(envelope["lags"]))
    low, high = envelope.get("span_db", (-LIMIT_DB, LIMIT_DB))
    return np.clip(x @ np.asarray(envelope["weights"], dtype=np.float64), max(low, -LIMIT_DB), min(high, LIMIT_DB))


def frame_error_db(true_power: np.ndarray, added_power: np.ndarray, rows: slice) -> np.ndarray:
    """``(nb_frames,)``: the mean over ``rows`` of the true accompaniment's level less the added one's, in dB (both
    over `gate.POWER_FLOOR`, as the training mean is taken)."""
    from vocals2song.gate import POWER_FLOOR

    ratio = np.log(true_power[rows] + POWER_FLOOR) - np.log(added_power[rows] + POWER_FLOOR)
    return ratio.mean(axis=0) / NEPER


def fit(items: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], range_db: float, sr: int,
        n_fft: int, lags: int = LAGS) -> dict:
    """config.json's "envelope": the ridge fit of `frame_error_db` on `features`, over the sounding frames of
    ``items`` = ``(u_vocals, true accompaniment power, added power, sounding)`` (powers ``(nb_bins,
    nb_frames)`` on the codec's scale; ``sounding`` the frames where the generator adds).

    Also ``rms_db``: the frames' level error before and after, over the same frames."""
    xs, ys = [], []
    for u_vocals, true_power, added_power, sounding in items:
        if not sounding.any():
            continue
        rows = _rows(u_vocals.shape[0], sr, n_fft)
        xs.append(features(u_vocals, range_db, sr, n_fft, lags)[sounding])
        ys.append(frame_error_db(true_power, added_power, rows)[sounding])
    if not xs:
        return {"lags": lags, "weights": [0.0] * (4 * lags + 3), "frames": 0, "span_db": [0.0, 0.0],
                "rms_db": [0.0, 0.0]}
    x, y = np.concatenate(xs), np.concatenate(ys)
    penalty = RIDGE * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # not on the intercept: the mean level error is the one thing every song shares
    weights = np.linalg.solve(x.T @ x + penalty, x.T @ y)
    fitted = x @ weights
    span = [round(float(v), 3) for v in np.percentile(fitted, SPAN_PERCENTILES)]
    after = y - np.clip(fitted, max(span[0], -LIMIT_DB), min(span[1], LIMIT_DB))
    return {"lags": lags, "weights": [float(w) for w in weights], "frames": int(len(y)), "span_db": span,
            "rms_db": [round(float(np.sqrt(np.mean(y**2))), 3), round(float(np.sqrt(np.mean(after**2))), 3)]}


def describe_check(check: dict) -> str:
    """One line: what `predict.calibrate`'s check of the envelope on validation songs found, and so did."""
    verdict = "kept" if check["kept"] else "left out: the generator's own dynamics hold better"
    return (f"accompaniment envelope {verdict} (validation songs' lsd {check['lsd_with_db']:.3f} dB with it, "
            f"{check['lsd_without_db']:.3f} without, on {check['pairs']} pairs)")


def describe(envelope: dict) -> str:
    """One line: what the envelope does to the training frames' level error."""
    before, after = envelope["rms_db"]
    return (f"accompaniment envelope: fitted on {envelope['frames']} training frames, their level error "
            f"{before:.1f} -> {after:.1f} dB RMS")
