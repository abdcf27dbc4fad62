"""The baselines: the gated mean accompaniment at its level, the random-phase lift, the song's phase, and the
training statistics."""

from __future__ import annotations

import numpy as np
from conftest import SR
from helpers import _encode

import vocals2song.gate as gates
from vocals2song import audio, baselines, codec


def test_gated_mean_accompaniment_adds_power_only_where_the_vocals_sound():
    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(5, 10)) + 1j * rng.normal(size=(5, 10)))
    Z[:, 6:] = 0  # the vocals rest
    stats = baselines.TrainingStats(np.full(5, 4.0), 1)
    song = baselines.mean_accompaniment(Z, stats, phase="random")
    keeps = np.abs(Z[:, :6]) ** 2 >= baselines.VOCALS_PHASE_SHARE * (np.abs(Z[:, :6]) ** 2 + 4.0)
    assert 0 < keeps.sum() < keeps.size  # both kinds of bin occur
    lift = np.where(keeps, 1.0, baselines.random_phase_gain(8, 2, 8) ** 2)  # random-phase bins: what the ISTFT loses
    np.testing.assert_allclose(np.abs(song[:, :6]) ** 2, (np.abs(Z[:, :6]) ** 2 + 4.0) * lift)
    np.testing.assert_array_equal(song[:, 6:], 0)
    np.testing.assert_allclose(np.angle(song[:, :6][keeps]), np.angle(Z[:, :6][keeps]))
    assert baselines.vocals_only(Z, stats) is Z


def test_mean_accompaniment_sounds_at_the_mean_level(excerpt):
    """The baseline's decoded song holds its accompaniment at the asked power: the STFT of the decoded waveform
    carries the vocals' power plus the mean's in sounding frames, within 0.5 dB (it was 6 dB under before the lift)."""
    vocals = excerpt["vocals"][: 3 * SR]
    pixels, meta = _encode(vocals)
    Z_voc = baselines.image_spectrogram(pixels, meta)
    stats = baselines.TrainingStats(np.full(meta.nb_bins, 400.0), 1)  # loud: most bins take a random phase
    song = codec.spectrogram_to_audio(baselines.mean_accompaniment(Z_voc, stats, meta), meta)
    sounding = gates.sounding_frames(Z_voc)
    assert sounding.sum() > 20
    back = audio.stft(song, meta.n_fft, meta.hop, meta.win)[1:-1, : Z_voc.shape[1]][:, sounding]
    asked = np.abs(Z_voc[1:-1, sounding]) ** 2 + 400.0
    assert abs(10 * np.log10(np.mean(np.abs(back) ** 2) / np.mean(asked))) < 0.5


def test_random_phase_bins_come_back_as_loud_as_asked():
    """Frames with unrelated phases add incoherently in the overlap-add: without the gain, bins with a random phase
    come out of the ISTFT 6 dB under their magnitude (fails with a gain of 1, or one for another hop)."""
    rng = np.random.default_rng(3)
    magnitude = rng.uniform(0.5, 2.0, (513, 1))
    for hop in (256, 128):
        gain = baselines.random_phase_gain(1024, hop, 1024)
        Z = magnitude * gain * np.exp(1j * rng.uniform(-np.pi, np.pi, (513, 300)))
        back = audio.stft(audio.istft(Z, hop, 1024), 1024, hop, 1024)[1:-1, 20:-20]
        level = 10 * np.log10(np.mean(np.abs(back) ** 2) / np.mean(magnitude[1:-1] ** 2))
        assert abs(level) < 0.2, (hop, level)


def test_song_phase_is_random_where_the_vocals_do_not_count():
    """Accompaniment laid on the vocals' leakage phase buzzes: those bins get a phase of their own."""
    Z = np.full((4, 50), 1e-4 + 0j) * np.exp(1j * np.arange(50) * 0.3)  # near-silent, coherent leakage
    Z[0] = 1.0
    phasor = baselines.song_phase(Z, np.full(Z.shape, 1.0))
    np.testing.assert_allclose(phasor[0], 1.0)  # the loud row keeps its phase
    step = np.angle(phasor[2, 1:] * np.conj(phasor[2, :-1]))
    assert np.std(step) > 1.0  # no longer a steady advance of 0.3 rad per frame


def test_training_stats_average_power_over_sounding_frames():
    Z_voc = np.zeros((3, 4), complex)
    Z_voc[:, :2] = 1.0
    Z_acc = np.zeros((3, 4), complex)
    Z_acc[:, 0], Z_acc[:, 1], Z_acc[:, 3] = 2.0, 8.0, 100.0  # frame 3 is silent for the vocals: not counted
    stats = baselines.training_stats([(Z_voc, Z_acc)])
    np.testing.assert_allclose(stats.mean_power, np.sqrt(4 * 64), rtol=1e-6)  # geometric: not (4 + 64) / 2


def _tones(t: np.ndarray, pitches: list[int], amplitude: float, harmonics: int) -> np.ndarray:
    """Harmonic tones at MIDI ``pitches`` over the times ``t``."""
    y = np.zeros_like(t)
    for m in pitches:
        f = 440.0 * 2.0 ** ((m - 69) / 12)
        for k in range(1, harmonics + 1):
            y += amplitude / k * np.sin(2 * np.pi * f * k * t)
    return y


def test_an_added_chord_keeps_its_notes_through_griffin_lim_and_loses_them_through_a_random_phase():
    """A song whose added magnitude is a known chord progression (C, Am, F, G under a sung line): laid on with
    Griffin-Lim given the vocals, its added part transcribes to the chords' pitch classes; with a random phase it
    does not. The vocals' own bins keep the vocals' phase either way."""
    from vocals2song import notes
    from vocals2song.codec import ImageMeta

    sr, n_fft, hop = 44100, 1024, 256  # the codec's geometry
    t = np.arange(int(sr * 6.0)) / sr
    vocals = np.concatenate([_tones(t[: len(t) // 8], [m], 0.1, 4) for m in (72, 74, 76, 77, 79, 77, 76, 74)])
    chords = ([48, 55, 60, 64], [45, 52, 57, 60], [41, 48, 53, 57], [43, 50, 55, 59])
    accompaniment = np.concatenate([_tones(t[: len(t) // 4], chord, 0.05, 5) for chord in chords])
    t = t[: len(vocals)]
    Z_voc = audio.stft(vocals, n_fft, hop, n_fft)
    added = np.abs(audio.stft(accompaniment, n_fft, hop, n_fft)) ** 2
    meta = ImageMeta(format="rgb8", sr=sr, n_fft=n_fft, hop=hop, win=n_fft, window="hann",
                     top_db=20 * np.log10(n_fft / 2), range_db=100.0, length=len(t))
    truth, sung = notes.transcribe(accompaniment, sr), notes.transcribe(vocals, sr)
    scores = {}
    for phase in baselines.SONG_PHASES:
        Z = baselines.song_with(Z_voc, added, meta, phase)
        keep = baselines.vocals_dominate(Z_voc, np.abs(Z_voc) ** 2 + added)
        assert 0 < keep.sum() < keep.size
        np.testing.assert_allclose(np.angle(Z[keep]), np.angle(Z_voc[keep]), atol=1e-6)
        heard = notes.transcribe(audio.istft(Z, hop, n_fft, length=len(t)) - vocals, sr)
        scores[phase] = notes.judge(heard, truth, sung)["pc_f1"]
    assert scores["griffinlim"] > 0.75 and scores["random"] < 0.4, scores
