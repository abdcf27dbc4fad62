"""The note-level judge (vocals2song.notes) and the `parallel` baseline. Audio is built here by additive synthesis
of harmonic tones, so nothing but the transcriber is needed. Each test names the defect it was seen to catch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vocals2song import audio, baselines, notes
from vocals2song.codec import ImageMeta
from vocals2song.errors import Vocals2SongError

SR = 44100
#: C, A minor, F, G: bass an octave under each chord's root, 2 s a chord
PROGRESSION = [(48, 60, 64, 67), (45, 57, 60, 64), (41, 57, 60, 65), (43, 55, 59, 62)]
CHORD_S = 2.0


def tone(pitch: int, seconds: float, sr: int = SR, vibrato: float = 0.0) -> np.ndarray:
    """A harmonic tone: partials falling as 1/k^2, a 10 ms attack, a gentle decay and a 30 ms release."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    phase = 2 * np.pi * f0 * (t + vibrato * np.sin(2 * np.pi * 5.5 * t) / (2 * np.pi * 5.5))
    y = sum(np.sin(k * phase) / k**2 for k in range(1, 9) if k * f0 < sr / 2)
    env = np.minimum(1.0, t / 0.01) * np.exp(-0.5 * t) * np.clip((seconds - t) / 0.03, 0.0, 1.0)
    return y * env


def render(events: list[tuple[float, float, int]], seconds: float, level: float = 0.15,
           vibrato: float = 0.0) -> np.ndarray:
    """(onset s, offset s, MIDI pitch) events -> mono float64 audio at `SR`."""
    y = np.zeros(int(seconds * SR))
    for onset, offset, pitch in events:
        a = int(onset * SR)
        part = tone(pitch, offset - onset, vibrato=vibrato)
        y[a: a + len(part)] += level * part[: len(y) - a]
    return y


def progression_events() -> list[tuple[float, float, int]]:
    return [(i * CHORD_S, (i + 1) * CHORD_S - 0.1, p) for i, chord in enumerate(PROGRESSION) for p in chord]


@pytest.fixture(scope="module")
def progression() -> tuple[notes.Notes, notes.Notes]:
    """The progression's known notes and its transcription (each transcribed once for the module)."""
    seconds = len(PROGRESSION) * CHORD_S
    known = notes.Notes.from_events([(a, b, p, 1.0) for a, b, p in progression_events()], seconds)
    return known, notes.transcribe(render(progression_events(), seconds), SR)


def sung(events: list[tuple[float, float, int]], seconds: float) -> np.ndarray:
    return render(events, seconds, level=0.3, vibrato=0.004)


MELODY = [(0.0, 1.0, 64), (1.0, 2.0, 67), (2.0, 3.0, 69), (3.0, 4.0, 72)]  # E4 G4 A4 C5


# --- transcription ---------------------------------------------------------------------------------------------

def test_a_rendered_progression_transcribes_to_its_notes(progression):
    """Catches audio handed to the model at the wrong rate (44.1 kHz read as its 22.05 kHz: pitches an octave
    down, times doubled; pc_f1 0.57, note F1 0.06)."""
    known, heard = progression
    scores = notes.judge(heard, known, known)
    assert scores["pc_f1"] >= 0.9, scores
    assert scores["note_f1"] >= 0.8, scores
    assert scores["truth_notes_per_s"] == pytest.approx(16 / 8.0)
    assert 1.5 <= scores["notes_per_s"] <= 3.0, scores
    # every chord's notes are found, with onsets within the note F1's 50 ms
    for onset, _, pitch in progression_events():
        assert np.any((heard.pitches == pitch) & (np.abs(heard.onsets - onset) <= notes.ONSET_TOLERANCE_S)), pitch


@pytest.mark.filterwarnings("ignore:'(aifc|audioop|sunau)' is deprecated:DeprecationWarning")  # librosa.load's
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")  # its Model, if TF is loaded
def test_transcribe_gives_the_notes_basic_pitchs_own_predict_gives(tmp_path):
    """`transcribe` windows arrays as basic-pitch's ``predict`` windows a file, on the same ONNX model: the same
    notes, to the sample of its frame clock. 4 s of the progression cross two window seams. Catches another
    overlap between windows (20 frames instead of 30) and the first half-overlap not padded."""
    import soundfile as sf

    y = render(progression_events(), 4.0)
    sf.write(tmp_path / "chords.wav", y, SR, subtype="FLOAT")
    with notes._quiet_import():  # as `notes` imports basic-pitch: no TensorFlow, so its Model takes the ONNX file
        from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
        from basic_pitch.inference import predict
    _, _, theirs = predict(tmp_path / "chords.wav", build_icassp_2022_model_path(FilenameSuffix.onnx))
    ours = notes.transcribe(y, SR)
    assert len(ours) >= 8
    assert [(round(a, 4), round(b, 4), int(p)) for a, b, p, _ in ours.events()] == sorted(
        (round(float(a), 4), round(float(b), 4), int(p)) for a, b, p, *_ in theirs)


def test_silence_and_a_drone_score_near_zero_against_the_progression(progression):
    """Catches a swapped estimate and reference (silence reported the truth's notes per second), an F1 that is
    only the precision (the tonic drone, right wherever it sounds, scored 0.74), and one empty set counted as a
    match (silence scored note F1 1)."""
    known, heard = progression
    seconds = len(PROGRESSION) * CHORD_S
    silence = notes.transcribe(np.zeros(int(seconds * SR)), SR)
    assert len(silence) == 0
    quiet = notes.judge(silence, heard, known)
    assert quiet["notes_per_s"] == 0 and quiet["truth_notes_per_s"] > 1.5
    assert quiet["pc_f1"] == 0 and quiet["note_f1"] == 0
    assert np.isnan(quiet["consonance"]) and np.isnan(quiet["polyphony"])
    # a drone on the tonic (C2 and C3) under all four chords: C sounds in three of them, so at best
    # 2 * 0.75 / (1 + 3) = 0.375 of the pitch classes, and one note onset of sixteen
    drone = notes.transcribe(render([(0.0, seconds, 36), (0.0, seconds, 48)], seconds, level=0.2), SR)
    assert set(drone.pitches % 12) == {0}, drone.events()
    droned = notes.judge(drone, heard, known)
    assert droned["pc_f1"] <= 0.4 and droned["note_f1"] <= 0.2, droned
    assert droned["polyphony"] == pytest.approx(1.0)


def test_consonance_of_thirds_and_fifths_is_high_and_of_tritones_and_seconds_low():
    """Catches a wrong interval set (the sixths left out: 0.50 for the consonant part; the tritone let in: 0.51
    for the dissonant one) and intervals not wrapped to a pitch class (0.37)."""
    seconds = 4.0
    vocals = notes.transcribe(sung(MELODY, seconds), SR)
    assert [p for p in notes.melody(vocals)[::50] if p >= 0][:: 2] == [64, 67, 69, 72], notes.melody(vocals)[::50]
    # under each sung note: a sixth and a fifth/fourth/third below (C3 G3 | E3 C4 | F3 E4 | A3 G4)
    good = [(0.0, 1.0, 48), (0.0, 1.0, 55), (1.0, 2.0, 52), (1.0, 2.0, 60), (2.0, 3.0, 53), (2.0, 3.0, 64),
            (3.0, 4.0, 57), (3.0, 4.0, 67)]
    # a tritone and a second (or seventh) below each (A#2 D#3 | C#3 F3 | D#3 G3 | F#3 D4)
    bad = [(0.0, 1.0, 46), (0.0, 1.0, 51), (1.0, 2.0, 49), (1.0, 2.0, 53), (2.0, 3.0, 51), (2.0, 3.0, 55),
           (3.0, 4.0, 54), (3.0, 4.0, 62)]
    scores = {}
    for name, part in (("good", good), ("bad", bad)):
        heard = notes.transcribe(render(part, seconds), SR)
        known = notes.Notes.from_events([(a, b, p, 1.0) for a, b, p in part], seconds)
        scores[name] = (notes.judge(heard, heard, vocals)["consonance"],
                        notes.judge(known, known, vocals)["consonance"])
    assert min(scores["good"]) >= 0.9, scores
    assert max(scores["bad"]) <= 0.1, scores


def test_consonance_counts_pitch_classes_in_sung_frames_only():
    """The definition on a frame grid, where every number can be counted by hand. Catches frames where nothing
    is sung counted (0.4)."""
    sung_line = np.array([60, 60, -1, -1])  # C4 sung in two frames
    acc = np.zeros((12, 4), bool)
    acc[4, :2] = True  # E: a third, in the sung frames
    acc[6, 0] = True  # F#: a tritone
    acc[1, 2:] = True  # C#: a second, but nothing is sung there
    assert notes.consonance(acc, sung_line) == pytest.approx(2 / 3)
    assert notes.consonance(acc, np.where(sung_line >= 0, sung_line + 12, -1)) == pytest.approx(2 / 3)
    assert np.isnan(notes.consonance(acc[:, 2:], sung_line[2:]))
    assert notes.polyphony(acc) == pytest.approx(5 / 4)
    assert set(notes.CONSONANT) == {0, 3, 4, 5, 7, 8, 9}


def test_the_frame_grid_and_the_empty_cases():
    """A note sounds in the frames ``onset <= i / FRAME_RATE < offset``; the melody is the loudest note; no notes
    anywhere is agreement (F1 1) with nothing to judge (NaN). Catches a grid at another rate, an off-by-one at
    the offset, and a melody that takes the highest note instead of the loudest."""
    n = notes.Notes.from_events([(0.5, 1.0, 61, 0.8), (0.8, 1.5, 73, 0.3)], 2.0)
    pcs = n.pitch_classes()
    assert pcs.shape == (12, 2 * notes.FRAME_RATE)
    assert np.flatnonzero(pcs[1]).tolist() == list(range(50, 150))  # C#4 then C#5: one pitch class
    assert pcs.sum() == 100
    line = notes.melody(n)
    assert line[49] == -1 and line[50] == 61 and line[99] == 61 and line[100] == 73 and line[150] == -1
    empty = notes.Notes.from_events([], 2.0)
    scores = notes.judge(empty, empty, empty)
    assert scores["pc_f1"] == 1.0 and scores["note_f1"] == 1.0 and scores["notes_per_s"] == 0.0
    assert np.isnan(scores["consonance"]) and np.isnan(scores["polyphony"])
    assert notes.judge(n, empty, n)["pc_f1"] == 0.0 and notes.judge(n, empty, n)["note_f1"] == 0.0


# --- the transcriber's installation -----------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["basic_pitch", "onnxruntime"])
def test_a_missing_transcriber_is_one_line_naming_the_install_command(monkeypatch, module):
    """Catches an import outside the guard (a bare ModuleNotFoundError and its traceback)."""
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    notes._backend.cache_clear()
    try:
        with pytest.raises(Vocals2SongError) as caught:
            notes.transcribe(np.zeros(SR), SR)
    finally:
        notes._backend.cache_clear()
    message = str(caught.value)
    assert "\n" not in message and module in message, message
    assert "pip install --no-deps basic-pitch" in message and "scripts/setup.sh" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_transcriber_runs_the_onnx_model_without_tensorflow_or_noise():
    """basic-pitch imported as `notes` imports it: no TensorFlow (it would pick the SavedModel, cost 4 s and print
    C++ notices), no backend warnings, no root log handler left behind; TensorFlow still imports afterwards.
    Catches TensorFlow left hidden, and the root logger left with the stderr handler basic-pitch's warnings give
    it."""
    code = ("import logging, sys, numpy as np\n"
            "from vocals2song import notes\n"
            "n = notes.transcribe(np.sin(2 * np.pi * 440 * np.arange(44100) / 44100), 44100)\n"
            "assert [int(p) for p in n.pitches] == [69], n.events()\n"
            "assert 'tensorflow' not in sys.modules and not logging.getLogger().handlers\n"
            "import basic_pitch\n"
            "assert not basic_pitch.TF_PRESENT and basic_pitch.ONNX_PRESENT\n"
            "assert sys.modules.get('tensorflow', 0) is not None\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_bad_audio_is_refused_and_odd_audio_transcribed_quietly():
    """Catches basic-pitch's 0/0 warning on a second of silence let through."""
    assert len(notes.transcribe(np.zeros(SR), SR)) == 0
    with pytest.raises(Vocals2SongError, match="NaN"):
        notes.transcribe(np.full(SR, np.nan), SR)
    assert len(notes.transcribe(np.zeros(0), SR)) == 0
    stereo = notes.transcribe(np.stack([tone(69, 1.0)] * 2, axis=1) * 0.2, SR)
    assert [int(p) for p in stereo.pitches] == [69]


# --- the parallel baseline ---------------------------------------------------------------------------------------

def test_parallel_adds_the_vocals_a_sixth_and_two_octaves_below():
    """The added part (song minus vocals) plays each sung note 9 and 24 semitones down, and the vocals stay as they
    were. Catches a wrong shift (a minor sixth, one octave) and the vocals added twice."""
    seconds = 3.0
    line = [(0.0, 1.5, 69), (1.5, 3.0, 72)]  # A4, C5
    vocals = sung(line, seconds)
    meta = ImageMeta(format="rgb8", sr=SR, n_fft=1024, hop=256, win=1024, window="hann", top_db=0.0,
                     range_db=100.0, length=len(vocals))
    Z = audio.stft(vocals, 1024, 256, 1024)
    song = baselines.parallel(Z, None, meta)
    assert song.shape == Z.shape and song.dtype == Z.dtype
    added = notes.transcribe(audio.istft(song - Z, 256, 1024, length=len(vocals)), SR)
    for onset, offset, pitch in line:
        during = (added.onsets < offset - 0.2) & (added.offsets > onset + 0.2)
        heard = set(added.pitches[during].tolist())
        assert {pitch - 9, pitch - 24} <= heard, (pitch, added.events())
        assert pitch not in heard and pitch - 8 not in heard and pitch - 12 not in heard, (pitch, added.events())


# --- MIDI ----------------------------------------------------------------------------------------------------------

def test_midi_round_trip(tmp_path):
    """pretty_midi reads back the notes that were written: pitches, times to its 2.3 ms tick, velocities
    127 * amplitude. Catches offsets written as durations and a velocity scale off."""
    import pretty_midi

    n = notes.Notes.from_events([(0.25, 0.75, 48, 0.5), (0.25, 1.5, 64, 1.0), (1.0, 1.2, 67, 0.004)], 2.0)
    path = tmp_path / "song.accompaniment.mid"
    notes.write_midi(n, path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic: no partial file left
    back = sorted(pretty_midi.PrettyMIDI(str(path)).instruments[0].notes, key=lambda x: (x.start, x.pitch))
    assert [x.pitch for x in back] == [48, 64, 67]
    np.testing.assert_allclose([x.start for x in back], n.onsets, atol=2.5e-3)
    np.testing.assert_allclose([x.end for x in back], n.offsets, atol=2.5e-3)
    assert [x.velocity for x in back] == [64, 127, 1]
    again = notes.read_midi(path, duration=2.0)
    assert again.pitches.tolist() == [48, 64, 67] and again.duration == 2.0
    empty = tmp_path / "empty.mid"
    notes.write_midi(notes.Notes.from_events([], 1.0), empty)
    assert len(notes.read_midi(empty)) == 0
