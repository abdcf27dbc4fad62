"""Loudness calibration of an additive (``powersum``) generator's accompaniment.

A generator trained with L1 on dB planes predicts about the median of the accompaniment's level in each bin. That
is right for the log-spectral distance, but a song's loudness is its *power*, and most of an accompaniment's power
sits in a few loud bins and frames (low notes, attacks): the median is far below the mean there. On the chorales the
predicted songs came out 3.4 dB quieter than the true ones (docs/quality-log.md).

The fix is a gain on the predicted accompaniment's power, fitted on training pairs when training ends, so that the
predicted songs carry nearly the true songs' total power (`QUIETEST_DB`). The gain is not flat: bin ``f`` gets
``alpha * share[f]`` dB, where ``share`` is the bin's part of the predicted accompaniment's power (its loudest bin
1). A flat gain of ``c`` dB moves every bin's log error by ``c``; putting it where the power is moves the loudness
as much and the log-spectral distance hardly at all (measured on the chorales' codec STFT: +6 dB on the 11 loudest
bins moved the mean accompaniment from -2.8 to -0.6 dB of loudness for +0.01 dB of lsd; a flat +4 dB reached -1.4 dB
for +1.8 dB of lsd).

Everything here works on the codec's planes ``u`` (``(nb_bins, nb_frames)`` in [0, 1], lowest frequency first).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vocals2song import codec

#: the fitted alpha is kept within +-this many dB
ALPHA_LIMIT_DB = 30.0
#: the quietest the predicted songs may be, in dB under the true ones, before a gain lifts them (to exactly this).
#: A gain costs spectral accuracy, so it does the least that brings the loudness within reach: on the chorales,
#: lifting to 0 dB made the mrstft worse than the mean accompaniment's (1.411 against 1.361); docs/quality-log.md.
QUIETEST_DB = -2.0


def power(u: np.ndarray, top_db: float, range_db: float) -> np.ndarray:
    """Plane ``u`` -> linear power (float64), 0 at the floor."""
    return codec.planes_to_magnitude(np.asarray(u, dtype=np.float64), top_db, range_db) ** 2


def accompaniment_power(u_song: np.ndarray, u_vocals: np.ndarray, top_db: float, range_db: float) -> np.ndarray:
    """The power a powersum generator added to the vocals: ``P(song) - P(vocals)``, at least 0."""
    return np.maximum(power(u_song, top_db, range_db) - power(u_vocals, top_db, range_db), 0.0)


def apply_gain(u_song: np.ndarray, u_vocals: np.ndarray, gain_db: np.ndarray | list[float], top_db: float,
               range_db: float, frame_db: np.ndarray | None = None) -> np.ndarray:
    """The song plane with its accompaniment's power scaled by ``10**(gain_db[f]/10)`` in bin ``f`` (and by
    ``10**(frame_db[t]/10)`` in frame ``t``: `vocals2song.envelope`), float32."""
    gain_db = np.asarray(gain_db, dtype=np.float64)[:, None]
    if frame_db is not None:
        gain_db = gain_db + np.asarray(frame_db, dtype=np.float64)[None, :]
    gain = np.power(10.0, gain_db / 10.0)
    vocals = power(u_vocals, top_db, range_db)
    total = vocals + np.maximum(power(u_song, top_db, range_db) - vocals, 0.0) * gain
    with np.errstate(divide="ignore"):
        u = (10.0 * np.log10(total) - (top_db - range_db)) / range_db
    return np.clip(u, 0.0, 1.0).astype(np.float32)  # log10(0) = -inf: silence stays at the floor


def fit_gain(items: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], top_db: float, range_db: float,
             quietest_db: float = QUIETEST_DB) -> tuple[float, list[float]]:
    """``(alpha, gain_db per bin)``, the least gain that brings the predicted songs' total power within
    ``[quietest_db, 0]`` dB of the true songs'.

    ``items`` are ``(u_song predicted, u_vocals, u_song true)`` planes of training pairs. ``alpha`` solves
    ``sum(P_vocals) + sum_f A[f] * 10**(alpha * share[f] / 10) = aim`` (Brent's method), where ``A[f]`` is the
    predicted accompaniment's power in bin ``f`` over every item, ``share = A / max(A)``, and ``aim`` is the nearer
    end of that range (no gain when the songs are already in it). With no predicted accompaniment, the gain is 0.
    """
    import scipy.optimize  # here: predict imports this module, and only training fits

    vocals, added, truth = 0.0, None, 0.0
    for u_song, u_vocals, u_true in items:
        vocals += float(power(u_vocals, top_db, range_db).sum())
        rows = accompaniment_power(u_song, u_vocals, top_db, range_db).sum(axis=1)
        added = rows if added is None else added + rows
        truth += float(power(u_true, top_db, range_db).sum())
    predicted = vocals + (0.0 if added is None else float(added.sum()))
    aim = min(max(predicted, truth * 10.0 ** (quietest_db / 10.0)), truth)
    if added is None or added.max() <= 0.0 or aim <= vocals or aim == predicted:
        return 0.0, [0.0] * (0 if added is None else len(added))
    share = added / added.max()

    def excess(alpha: float) -> float:  # predicted minus aimed-at power; increasing in alpha
        return vocals + float(np.sum(added * np.power(10.0, alpha * share / 10.0))) - aim

    if excess(ALPHA_LIMIT_DB) <= 0.0 or excess(-ALPHA_LIMIT_DB) >= 0.0:  # out of reach: the nearer limit
        alpha = ALPHA_LIMIT_DB if excess(ALPHA_LIMIT_DB) <= 0.0 else -ALPHA_LIMIT_DB
    else:
        alpha = scipy.optimize.brentq(excess, -ALPHA_LIMIT_DB, ALPHA_LIMIT_DB, xtol=1e-6)
    return round(alpha, 4), [round(float(g), 4) for g in alpha * share]


def describe(alpha: float, gain_db: list[float], sr: int) -> str:
    """One line: the largest gain and where it sits."""
    if not gain_db or alpha == 0.0:
        return "loudness calibration: no gain"
    peak = int(np.argmax(np.abs(gain_db)))
    hz = peak * sr / (2 * (len(gain_db) - 1))
    wide = sum(abs(g) >= 0.5 * abs(alpha) for g in gain_db)
    return (f"loudness calibration: accompaniment {alpha:+.1f} dB at {hz:.0f} Hz, at least half that in "
            f"{wide} of {len(gain_db)} bins")
