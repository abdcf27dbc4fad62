"""Tests for vocals2song.synth (synthetic MUSDB18-HQ-shaped audio)."""


import musdb
import numpy as np
import pytest
import soundfile as sf

from vocals2song.synth import STEMS, make_musdb_tree, synth_stems, write_track

ALL = ("mixture",) + STEMS


@pytest.mark.parametrize("channels", [1, 2])
def test_shapes_dtype_sum_and_peak(channels):
    sr = 22050
    stems = synth_stems(3.0, sr=sr, seed=1, channels=channels)
    assert set(stems) == set(ALL)
    for name in ALL:
        assert stems[name].shape == (3 * sr, channels)
        assert stems[name].dtype == np.float32
        assert np.abs(stems[name]).max() > 0.0, name
    assert np.array_equal(stems["mixture"], sum(stems[s] for s in STEMS))
    assert np.abs(stems["mixture"]).max() < 1.0
    assert 0.1 < np.abs(stems["vocals"]).max() <= 0.3 + 1e-6


def test_stereo_channels_differ():
    stems = synth_stems(3.0, sr=16000, seed=0, channels=2)
    # Pan differences make the mono downmix differ from either channel.
    for name in ("vocals", "drums", "other", "mixture"):
        assert not np.allclose(stems[name][:, 0], stems[name][:, 1]), name


def test_deterministic_per_seed():
    a = synth_stems(3.0, sr=16000, seed=7)
    b = synth_stems(3.0, sr=16000, seed=7)
    c = synth_stems(3.0, sr=16000, seed=8)
    for name in ALL:
        assert np.array_equal(a[name], b[name]), name
    assert not np.allclose(a["vocals"], c["vocals"])
    assert not np.allclose(a["drums"], c["drums"])


def test_silence_zeroes_only_vocals():
    sr = 16000
    stems = synth_stems(6.0, sr=sr, seed=3, silence=(1.0, 2.5))
    gap = slice(round(1.0 * sr), round(2.5 * sr))
    assert np.all(stems["vocals"][gap] == 0.0)
    assert np.abs(stems["mixture"][gap]).max() > 0.01
    assert np.abs(stems["vocals"][: round(0.9 * sr)]).max() > 0.01  # the melody starts at t=0
    # Without the silence argument the same seed sings in that interval.
    assert np.abs(synth_stems(6.0, sr=sr, seed=3)["vocals"][gap]).max() > 0.01


def _peak_hz(frames: np.ndarray, sr: int, lo: float, hi: float, nfft: int) -> np.ndarray:
    """Frequency of the largest (zero-padded, Hann-windowed) spectral peak within [lo, hi] per frame."""
    spec = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), n=nfft, axis=1))
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    band = (freqs >= lo) & (freqs <= hi)
    return freqs[band][np.argmax(spec[:, band], axis=1)]


def test_bass_is_an_octave_below_the_vocals():
    sr = 16000
    stems = synth_stems(12.0, sr=sr, seed=5, channels=1)
    voc, bass = stems["vocals"][:, 0], stems["bass"][:, 0]
    win, hop = 2048, 512  # 128 ms windows: shorter than any note (>= 250 ms)
    starts = np.arange(0, len(voc) - win, hop)
    vf = np.stack([voc[s : s + win] for s in starts])
    bf = np.stack([bass[s : s + win] for s in starts])
    # Frames where both sound (not in phrase rests, not in note releases).
    rms_v, rms_b = np.sqrt((vf**2).mean(1)), np.sqrt((bf**2).mean(1))
    active = (rms_v > 0.3 * rms_v.max()) & (rms_b > 0.2 * rms_b.max())
    assert active.sum() > 20
    # Vocals span MIDI 55-72 (196-523 Hz) with a dominant fundamental. The bass band reaches down to
    # 40 Hz so a bass two octaves down would be caught by its fundamental, not its 2nd harmonic.
    f_voc = _peak_hz(vf[active], sr, 150, 600, 16 * win)
    f_bass = _peak_hz(bf[active], sr, 40, 300, 16 * win)
    ratio = f_voc / f_bass
    # Frames straddling a note change can disagree; most frames sit inside one sustained note.
    # Vibrato (+-0.3 semitone) moves the vocal peak by up to ~2 %.
    assert np.median(ratio) == pytest.approx(2.0, rel=0.01)
    assert np.mean(np.abs(ratio / 2.0 - 1.0) < 0.03) > 0.8
    # Several different notes were checked, not one long drone.
    assert len(np.unique(np.round(12 * np.log2(f_bass / 440.0)))) >= 3


def test_write_track_roundtrip(tmp_path):
    sr = 16000
    stems = synth_stems(2.0, sr=sr, seed=0)
    write_track(tmp_path / "X - Y", stems, sr)
    for name in ALL:
        data, rate = sf.read(tmp_path / "X - Y" / f"{name}.wav", dtype="float32", always_2d=True)
        assert rate == sr
        assert sf.info(tmp_path / "X - Y" / f"{name}.wav").subtype == "PCM_16"
        np.testing.assert_allclose(data, stems[name], atol=1.0 / 32768 + 1e-7)


def test_make_musdb_tree_is_read_by_musdb(tmp_path):
    sr = 44100
    tracks = [("train", "A - One", 4.0), ("train", "Actions - One Minute Smile", 3.0), ("test", "B - Two", 5.0)]
    folders = make_musdb_tree(tmp_path, tracks, sr=sr, seed=0, silence={"B - Two": (1.0, 2.0)})
    assert folders == [tmp_path / subset / name for subset, name, _ in tracks]

    for (subset, name, seconds), folder in zip(tracks, folders):
        for stem in ALL:
            info = sf.info(folder / f"{stem}.wav")
            assert info.samplerate == sr
            assert info.channels == 2
            assert info.frames == round(seconds * sr)

    db = musdb.DB(root=str(tmp_path), is_wav=True)
    assert sorted((t.subset, t.name) for t in db) == sorted((s, n) for s, n, _ in tracks)
    assert [t.name for t in musdb.DB(root=str(tmp_path), is_wav=True, subsets="test")] == ["B - Two"]
    valid = musdb.DB(root=str(tmp_path), is_wav=True, subsets="train", split="valid")
    assert [t.name for t in valid] == ["Actions - One Minute Smile"]
    train = musdb.DB(root=str(tmp_path), is_wav=True, subsets="train", split="train")
    assert [t.name for t in train] == ["A - One"]

    track = valid[0]
    assert track.rate == sr
    assert track.audio.shape == (round(3.0 * sr), 2)
    assert track.targets["vocals"].audio.shape == (round(3.0 * sr), 2)

    vocals, _ = sf.read(folders[2] / "vocals.wav", always_2d=True)
    assert np.all(vocals[sr : 2 * sr] == 0.0)


def test_make_musdb_tree_deterministic_and_mono(tmp_path):
    tracks = [("train", "A - One", 2.0), ("test", "B - Two", 2.0)]
    a = make_musdb_tree(tmp_path / "a", tracks, sr=16000, seed=4, channels=1)
    b = make_musdb_tree(tmp_path / "b", tracks, sr=16000, seed=4, channels=1)
    for fa, fb in zip(a, b):
        assert sf.info(fa / "mixture.wav").channels == 1
        assert (fa / "mixture.wav").read_bytes() == (fb / "mixture.wav").read_bytes()
    # Tracks get different seeds from their index.
    va, _ = sf.read(a[0] / "vocals.wav")
    vb, _ = sf.read(a[1] / "vocals.wav")
    assert not np.allclose(va, vb)


def test_make_musdb_tree_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        make_musdb_tree(tmp_path, [("valid", "A - B", 1.0)])
    with pytest.raises(ValueError):
        make_musdb_tree(tmp_path, [("train", "A - B", 1.0), ("train", "A - B", 1.0)])
    with pytest.raises(ValueError):
        make_musdb_tree(tmp_path, [("train", "A - B", 1.0)], silence={"C - D": (0.0, 1.0)})
