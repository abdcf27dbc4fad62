"""Audio: the STFT and ISTFT against librosa's, Griffin-Lim from magnitude alone, and reading files to mono."""

from __future__ import annotations

import numpy as np
import pytest

from vocals2song import audio
from vocals2song.errors import Vocals2SongError


@pytest.mark.parametrize("win", [1024, 600])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stft_equals_librosa(win, dtype):
    """SPEC geometry is librosa's (Hann, center=True); our STFT skips librosa's import but must agree."""
    import librosa

    y = np.random.default_rng(0).standard_normal(44100 + 123).astype(dtype)
    expected = librosa.stft(y, n_fft=1024, hop_length=256, win_length=win, center=True, pad_mode="constant")
    Z = audio.stft(y, 1024, 256, win)
    assert Z.shape == expected.shape and Z.dtype == expected.dtype
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    assert np.abs(Z - expected).max() <= tolerance * np.abs(expected).max()


@pytest.mark.parametrize("hop,win", [(256, 1024), (300, 600)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [None, 0, -100, 500])
def test_istft_equals_librosa(hop, win, dtype, extra):
    import librosa

    y = np.random.default_rng(1).standard_normal(20000).astype(dtype)
    Z = librosa.stft(y, n_fft=1024, hop_length=hop, win_length=win)
    length = None if extra is None else len(y) + extra
    expected = librosa.istft(Z, hop_length=hop, win_length=win, n_fft=1024, length=length)
    result = audio.istft(Z, hop, win, length=length)
    assert result.shape == expected.shape and result.dtype == expected.dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(result - expected).max() <= tolerance * np.abs(expected).max()


def test_griffinlim_from_magnitude_only_converges():
    """From random phase, more iterations give a more consistent spectrogram (lower spectral convergence)."""
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 44100
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    S = np.abs(audio.stft(y, 1024, 256, 1024))

    def convergence(iters):
        y2 = audio.griffinlim(S, 256, 1024, iters=iters, length=len(y))
        return np.linalg.norm(np.abs(audio.stft(y2, 1024, 256, 1024)) - S) / np.linalg.norm(S)

    assert convergence(30) < 0.5 * convergence(1)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
@pytest.mark.parametrize("nb_channels", [1, 2, 3])
def test_load_mono_equals_load_audio_then_to_mono(subtype, nb_channels, tmp_path):
    """load_mono reads integer PCM as integers (for speed); the samples must be exactly load_audio's, mixed down."""
    import soundfile as sf

    y = np.random.default_rng(2).uniform(-1, 1, (4410, nb_channels))
    path = tmp_path / "x.wav"
    sf.write(path, y, 44100, subtype=subtype)
    mono, sr = audio.load_mono(path)
    expected, expected_sr = audio.load_audio(path)
    assert sr == expected_sr == 44100 and mono.dtype == np.float32
    np.testing.assert_array_equal(mono, audio.to_mono(expected))


@pytest.mark.parametrize("damage,message", [("missing", "no such file"), ("garbage", "cannot read audio"),
                                            ("empty", "empty")])
def test_load_mono_errors_are_load_audios(damage, message, tmp_path):
    import soundfile as sf

    path = tmp_path / "x.wav"
    if damage == "garbage":
        path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    elif damage == "empty":
        sf.write(path, np.zeros((0, 2)), 44100, subtype="PCM_16")
    with pytest.raises(Vocals2SongError, match=message):
        audio.load_mono(path)
