"""Tests for vocals2song.metrics: known values on synthetic audio, monotonicity in noise, silence, edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vocals2song import audio, metrics
from vocals2song.errors import Vocals2SongError

SR = 44100


def tones(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A few sines plus a little noise, float64 ``(nb_samples,)``: a stand-in for a mixture."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in [(0.3, 220.0, 0.1), (0.2, 445.0, 1.0), (0.1, 3000.0, 2.0)])
    return y + 0.01 * rng.standard_normal(len(t))


def add_noise(y: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """``y`` plus white noise scaled so the SNR is exactly ``snr_db``."""
    noise = np.random.default_rng(seed).standard_normal(len(y))
    noise *= np.sqrt(np.sum(y**2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return y + noise


def test_registry_keys():
    names = ["snr", "si_sdr", "lsd", "spectral_convergence", "mrstft"]
    assert list(metrics.METRICS) == names
    assert metrics.HIGHER_IS_BETTER == {"snr": True, "si_sdr": True, "lsd": False,
                                        "spectral_convergence": False, "mrstft": False}
    values = metrics.compute_all(tones(0.2), add_noise(tones(0.2), 10.0))
    assert list(values) == names
    assert all(type(v) is float for v in values.values())


def test_identical_signals_are_perfect():
    y = tones()
    values = metrics.compute_all(y, y.copy())
    assert values["snr"] == math.inf
    assert values["si_sdr"] > 100.0
    assert values["lsd"] == pytest.approx(0.0, abs=1e-9)
    assert values["spectral_convergence"] == pytest.approx(0.0, abs=1e-12)
    assert values["mrstft"] == pytest.approx(0.0, abs=1e-12)


def test_si_sdr_scale_invariant_snr_not():
    y = tones()
    est = add_noise(y, 15.0)
    assert metrics.si_sdr(y, 0.5 * est) == pytest.approx(metrics.si_sdr(y, est), abs=1e-9)
    # si_sdr also ignores a DC offset (both are made zero-mean).
    assert metrics.si_sdr(y, est + 0.1) == pytest.approx(metrics.si_sdr(y, est), abs=1e-6)
    assert abs(metrics.snr(y, 0.5 * est) - metrics.snr(y, est)) > 1.0


def test_si_sdr_known_value():
    # Whole cycles of sin and cos at one frequency are orthogonal: target 2 sin, error 0.2 cos -> 20 dB.
    t = np.arange(SR) / SR
    ref = np.sin(2 * np.pi * 100 * t)
    est = 2.0 * ref + 0.2 * np.cos(2 * np.pi * 100 * t)
    assert metrics.si_sdr(ref, est) == pytest.approx(20.0, abs=1e-6)
    # Plain SNR sees the gain error too: error = ref + 0.2 cos, energy ratio 1 / 1.04.
    assert metrics.snr(ref, est) == pytest.approx(-10 * np.log10(1.04), abs=1e-6)


def test_white_noise_at_known_snr():
    y = tones()
    est = add_noise(y, 20.0)
    assert metrics.snr(y, est) == pytest.approx(20.0, abs=0.1)
    # White noise is almost orthogonal to the reference, so SI-SDR is close to the SNR.
    assert metrics.si_sdr(y, est) == pytest.approx(20.0, abs=0.2)


def test_spectral_metrics_grow_with_noise():
    y = tones()
    levels = [30.0, 20.0, 10.0]  # decreasing SNR = more noise
    scores = [metrics.compute_all(y, add_noise(y, level)) for level in levels]
    for name in metrics.METRICS:
        series = [s[name] for s in scores]
        pairs = list(zip(series, series[1:]))
        if metrics.HIGHER_IS_BETTER[name]:
            assert all(a > b for a, b in pairs), (name, series)
        else:
            assert all(a < b for a, b in pairs), (name, series)


def test_half_gain_known_values():
    # Halving the estimate: |Y| = |X| / 2 everywhere, so the spectral metrics have closed forms.
    y = 0.1 * np.random.default_rng(5).standard_normal(SR // 2)
    half = 0.5 * y
    assert metrics.spectral_convergence(y, half) == pytest.approx(0.5, abs=1e-12)
    assert metrics.lsd(y, half) == pytest.approx(20 * np.log10(2), abs=1e-3)
    # Per resolution: spectral convergence 0.5 plus |log 2|, the power floor barely touches it.
    assert metrics.mrstft(y, half) == pytest.approx(0.5 + np.log(2), abs=1e-3)


def lsd_reference(reference: np.ndarray, estimate: np.ndarray, n_fft: int, hop: int, eps: float) -> float:
    """Straightforward LSD on librosa's STFT, frame by frame."""
    import librosa

    X = librosa.stft(reference, n_fft=n_fft, hop_length=hop, center=True, pad_mode="constant")
    Y = librosa.stft(estimate, n_fft=n_fft, hop_length=hop, center=True, pad_mode="constant")
    distances = []
    for frame in range(X.shape[1]):
        px = 10 * np.log10(np.abs(X[:, frame]) ** 2 + eps)
        py = 10 * np.log10(np.abs(Y[:, frame]) ** 2 + eps)
        distances.append(np.sqrt(np.mean((px - py) ** 2)))
    return float(np.mean(distances))


# librosa warns that n_fft exceeds the 1000-sample signal; that case is the point.
@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("nb_samples, n_fft, hop", [(SR // 2, 2048, 512), (1000, 2048, 512), (3000, 512, 128)])
def test_lsd_matches_librosa(nb_samples, n_fft, hop):
    y = tones(1.0)[:nb_samples]
    est = add_noise(y, 12.0)
    expected = lsd_reference(y, est, n_fft, hop, metrics.LSD_EPS)
    assert metrics.lsd(y, est, n_fft=n_fft, hop=hop) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("nb_samples", [1, 100, 1000, int(0.1 * SR)])
def test_short_signals(nb_samples):
    # Shorter than the 2048-sample window too: centred zero-padded frames still cover them.
    y = tones(0.1)[:nb_samples]
    est = add_noise(y, 10.0)
    values = metrics.compute_all(y, est)
    assert all(np.isfinite(v) for v in values.values()), values
    assert values["lsd"] > 0 and values["spectral_convergence"] > 0 and values["mrstft"] > 0
    same = metrics.compute_all(y, y.copy())
    assert same["lsd"] == pytest.approx(0.0, abs=1e-9) and same["mrstft"] == pytest.approx(0.0, abs=1e-12)


def test_silence_gives_no_nan():
    silence = np.zeros(SR // 4)
    y = tones(0.25)
    both = metrics.compute_all(silence, silence)
    assert both["lsd"] == 0.0 and both["spectral_convergence"] == 0.0 and both["mrstft"] == 0.0
    assert np.isfinite(both["si_sdr"])
    for ref, est in [(silence, y), (y, silence), (silence, silence)]:
        values = metrics.compute_all(ref, est)
        assert not any(np.isnan(v) for v in values.values()), values
        assert np.isfinite(values["lsd"]) and np.isfinite(values["si_sdr"]) and np.isfinite(values["mrstft"])
    # A non-silent estimate of silence is very bad, not merely mediocre.
    assert metrics.si_sdr(silence, y) < -100.0
    assert metrics.spectral_convergence(silence, y) == math.inf


def test_float32_input_close_to_float64():
    y = tones(0.5)
    est = add_noise(y, 20.0)
    a = metrics.compute_all(y, est)
    b = metrics.compute_all(y.astype(np.float32), est.astype(np.float32))
    for name in a:
        assert b[name] == pytest.approx(a[name], rel=1e-3), name


@pytest.mark.parametrize("name", list(metrics.METRICS))
def test_length_mismatch_raises(name):
    y = tones(0.1)
    with pytest.raises(Vocals2SongError, match="length"):
        metrics.METRICS[name](y, y[:-1])


@pytest.mark.parametrize("ref, est, message", [
    (np.zeros((100, 2)), np.zeros((100, 2)), "mono"),
    (np.zeros(0), np.zeros(0), "empty"),
    (np.zeros(100), np.full(100, np.nan), "non-finite"),
])
def test_bad_input_raises(ref, est, message):
    with pytest.raises(Vocals2SongError, match=message):
        metrics.compute_all(ref, est)


def test_aggregate():
    items = [
        {"snr": 10.0, "lsd": 1.0, "mrstft": math.inf},
        {"snr": math.inf, "lsd": 3.0, "mrstft": math.inf},
        {"snr": 20.0, "lsd": 2.0, "mrstft": -math.inf},
        {"snr": 60.0, "lsd": math.nan, "mrstft": math.nan},
    ]
    summary = metrics.aggregate(items)
    assert list(summary) == ["snr", "lsd", "mrstft"]
    assert summary["snr"] == {"median": 20.0, "mean": 30.0}  # the inf is dropped
    assert summary["lsd"] == {"median": 2.0, "mean": 2.0}  # the NaN is dropped
    assert math.isnan(summary["mrstft"]["median"]) and math.isnan(summary["mrstft"]["mean"])
    assert metrics.aggregate([]) == {}


# --- the listener's metrics: loudness, bands, buzz, harmony --------------------------------------------------

def test_loudness_and_band_lsd():
    y = np.random.default_rng(0).normal(size=SR).astype(np.float64) * 0.1
    assert metrics.loudness_db(y, 2 * y) == pytest.approx(20 * np.log10(2))
    assert metrics.loudness_db(y, y) == 0.0
    everything = metrics.band_lsd(y, 0.5 * y, SR, (0.0, float("inf")))
    assert everything == pytest.approx(metrics.lsd(y, 0.5 * y), rel=1e-6)
    low = np.sin(2 * np.pi * 100 * np.arange(SR) / SR)
    values = metrics.music_metrics(low * 0, low, low + 0.1 * y, SR)
    assert values["lsd_high"] > values["lsd_low"]  # the noise sits where the tone is not


def test_buzz_finds_frame_rate_pulses(excerpt):
    """A constant-phase decode pulses at the frame rate; the true mixture and a random phase do not."""
    mix = excerpt["mixture"].astype(np.float64)
    Z = audio.stft(mix, 1024, 256, 1024)
    constant = audio.istft(np.abs(Z) * np.exp(0.3j), 256, 1024, length=len(mix))
    assert metrics.buzz_db(mix, SR) < 3.0
    assert metrics.buzz_db(constant, SR) > 10.0


def test_harmony_scores_the_right_chords(excerpt):
    vocals, mix = excerpt["vocals"].astype(np.float64), excerpt["mixture"].astype(np.float64)
    assert metrics.harmony(vocals, mix, mix, SR) > 0.99  # the true song
    assert metrics.harmony(vocals, mix, vocals, SR) == 0.0  # adds nothing
    shifted = vocals + np.roll(mix - vocals, 3 * SR // 2)  # the right instruments at the wrong time
    assert metrics.harmony(vocals, mix, shifted, SR) < 0.6
