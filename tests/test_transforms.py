"""The network's view of the pixels: the phase as instantaneous frequency and back."""

from __future__ import annotations

import numpy as np
import pytest

from vocals2song import transforms


def test_instantaneous_frequency_round_trip():
    p = np.random.default_rng(0).uniform(-1, 1, (7, 300)).astype(np.float32)
    f = transforms.phase_to_if(p)
    assert f.min() >= -1 and f.max() <= 1
    back = transforms.if_to_phase(f)
    np.testing.assert_allclose(((back - p) + 1) % 2 - 1, 0, atol=1e-5)
    # a steady tone has a constant instantaneous frequency
    steady = ((np.arange(300) * 0.3 + 1) % 2 - 1)[None].astype(np.float32)
    np.testing.assert_allclose(transforms.phase_to_if(steady)[0, 1:], 0.3, atol=1e-5)


def _plane(y: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    from vocals2song import audio, codec

    return codec.spectrogram_to_planes(audio.stft(y.astype(np.float32), n_fft, n_fft // 4, n_fft),
                                       20 * np.log10(n_fft / 2), 100.0)[0]


def _tone(midi: float, seconds: float = 1.0, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    f = 440.0 * 2.0 ** ((midi - 69) / 12)
    return sum(0.2 / k * np.sin(2 * np.pi * f * k * t) for k in range(1, 6))


def test_the_log_frequency_view_round_trips():
    """STFT rows -> log rows -> STFT rows: exact where the log rows are finer than the bins (under 2 kHz), within
    2 dB RMS over every row the view sees (it averages the bins above), nothing outside it."""
    from vocals2song.synth import synth_stems

    to_log, from_log = transforms.log_frequency_matrices(513, 44100)
    assert to_log.shape == (transforms.LOG_ROWS, 513) and from_log.shape == (513, transforms.LOG_ROWS)
    np.testing.assert_allclose(to_log.sum(axis=1), 1.0, rtol=1e-5)  # each row a weighted mean of levels
    u = _plane(synth_stems(3.0, sr=44100, seed=1)["mixture"].mean(axis=1))
    back = transforms.from_log_rows(transforms.to_log_rows(u, to_log), from_log)
    freqs = np.arange(513) * 44100 / 1024
    seen = np.abs(from_log).sum(axis=1) > 0
    assert freqs[seen].min() < transforms.LOG_FMIN < freqs[seen][1] and 7000 < freqs[seen].max() < 8000
    low = seen & (freqs < 2000)
    assert np.abs(back - u)[low].max() < 1e-4
    rms_db = 100 * np.sqrt(np.mean((back - u)[seen] ** 2))
    assert rms_db < 2.0, rms_db
    np.testing.assert_array_equal(back[~seen], 0.0)


@pytest.mark.parametrize("n_fft, lowest", [(1024, 52), (4096, 36)])
def test_a_transposition_is_a_shift_of_the_log_rows(n_fft, lowest):
    """A harmonic tone moved up by s semitones moves its pattern on the log rows up by 3 s rows: the lag that best
    lines the two views up is 3 s (within a row), from the lowest note the STFT resolves: E3 at n_fft 1024 (43 Hz
    bins), C2 at 4096. On the linear rows an interval is a different number of rows in every octave."""
    to_log, _ = transforms.log_frequency_matrices(n_fft // 2 + 1, 44100)

    def view(midi):
        return transforms.to_log_rows(_plane(_tone(midi), n_fft), to_log).mean(axis=1)

    def lag(a, b):  # the shift of b that best matches a (correlation of the centred levels)
        a, b = a - a.mean(), b - b.mean()
        return int(np.argmax([np.dot(a[: len(a) - k], b[k:]) for k in range(60)]))

    for low in (lowest, lowest + 5, 60, 72):
        for s in (3, 4, 7, 12):
            found = lag(view(low), view(low + s))
            assert abs(found - transforms.LOG_ROWS_PER_SEMITONE * s) <= 1, (low, s, found)
    linear = [lag(_plane(_tone(m), n_fft).mean(axis=1), _plane(_tone(m + 7), n_fft).mean(axis=1)) for m in (48, 72)]
    assert linear[0] != linear[1]  # a fifth is a few bins low down and many more higher up: not one shift
