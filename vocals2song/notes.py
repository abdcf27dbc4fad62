"""The note-level judge: transcribe audio to notes with basic-pitch, and score an added accompaniment by its notes.

A listener hears notes, so an accompaniment is judged by what a transcriber hears in it: Spotify's basic-pitch
(Bittner et al., ICASSP 2022), run through its ONNX model (``nmp.onnx``, shipped in the wheel) with onnxruntime.

- `transcribe` ``(y, sr) -> Notes``: note events (onset and offset in seconds, MIDI pitch, amplitude 0-1), and
  from them a frame-wise view at `FRAME_RATE` (`Notes.pitch_classes`, `Notes.piano_roll`).
- `melody` ``Notes -> (nb_frames,)``: the sung pitch per frame, from the vocals' transcription.
- `judge` ``(accompaniment, truth, melody) -> dict``: notes per second, frame-wise pitch-class F1, mir_eval's note
  F1, consonance with the sung melody and polyphony; it takes transcriptions, so each audio is transcribed once.
  `judge_audio` transcribes and judges in one call.
- `write_midi` / `read_midi`: a `Notes` as a MIDI file (pretty_midi), written atomically.

basic-pitch pins an old TensorFlow, so it is installed without its dependencies (``pip install --no-deps
basic-pitch``, as ``scripts/setup.sh`` does) and what its ONNX path needs (onnxruntime, mir_eval, pretty_midi,
resampy, librosa, scipy) is listed in ``setup.cfg``. Where TensorFlow is importable basic-pitch picks its
TensorFlow SavedModel by default, which TensorFlow 2.21 cannot load (``'_UserObject' object has no attribute
'add_slot'``, and basic-pitch's ``Model`` then gives up). So the ONNX file is named explicitly and run with
onnxruntime directly, windowed as basic-pitch's ``run_inference`` windows a file (the same notes as its ``predict``
on the ONNX model), and TensorFlow is kept out of basic-pitch's import: it only serves the SavedModel, and
importing it costs about 4 s and prints C++ notices.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from vocals2song.errors import Vocals2SongError

#: what to run when the transcriber is missing (basic-pitch without its pinned TensorFlow, then its real needs)
INSTALL_HINT = ("bash scripts/setup.sh, or: pip install onnxruntime mir_eval pretty_midi 'resampy<0.4.3' "
                "&& pip install --no-deps basic-pitch==0.4.0")
#: frames per second of the frame-wise views (`Notes.pitch_classes`, `melody`): 10 ms, mir_eval's multipitch hop
FRAME_RATE = 100
#: basic-pitch's defaults (its ``predict``): onset and frame thresholds, shortest note (ms)
ONSET_THRESHOLD = 0.5
FRAME_THRESHOLD = 0.3
MIN_NOTE_MS = 127.70
#: note F1 (mir_eval.transcription): an onset within 50 ms, a pitch within 50 cents (on the integer MIDI pitches
#: of a transcription: the same semitone), offsets ignored
ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_CENTS = 50.0
#: consonant intervals between pitch classes, in semitones mod 12: unison, minor and major third, fourth, fifth,
#: minor and major sixth (closed under inversion, so above and below count alike); seconds, the tritone and
#: sevenths are not
CONSONANT = frozenset({0, 3, 4, 5, 7, 8, 9})
#: windows of audio sent to onnxruntime in one call
BATCH = 16


@dataclass(frozen=True, eq=False)
class Notes:
    """Note events of one audio, sorted by onset then pitch; ``duration`` is the audio's length in seconds.

    ``onsets``, ``offsets`` (s, float64), ``pitches`` (MIDI, int64) and ``amplitudes`` (0-1, float64) are
    ``(nb_notes,)`` each.
    """

    onsets: np.ndarray
    offsets: np.ndarray
    pitches: np.ndarray
    amplitudes: np.ndarray
    duration: float

    @classmethod
    def from_events(cls, events: Iterable[tuple[float, float, int, float]], duration: float) -> Notes:
        """From (onset s, offset s, MIDI pitch, amplitude) tuples, in any order."""
        rows = sorted((float(a), float(b), int(p), float(v)) for a, b, p, v in events)
        cols = list(zip(*rows)) if rows else [(), (), (), ()]
        return cls(np.array(cols[0], np.float64), np.array(cols[1], np.float64), np.array(cols[2], np.int64),
                   np.array(cols[3], np.float64), float(duration))

    def __len__(self) -> int:
        return len(self.pitches)

    def events(self) -> list[tuple[float, float, int, float]]:
        """The notes as (onset s, offset s, MIDI pitch, amplitude) tuples."""
        return [(float(a), float(b), int(p), float(v))
                for a, b, p, v in zip(self.onsets, self.offsets, self.pitches, self.amplitudes)]

    @property
    def nb_frames(self) -> int:
        """Frames of the frame-wise views: ``ceil(duration * FRAME_RATE)``."""
        return int(math.ceil(round(self.duration * FRAME_RATE, 6)))

    def notes_per_s(self) -> float:
        """Notes per second of audio (0 for empty audio)."""
        return len(self) / self.duration if self.duration > 0 else 0.0

    def piano_roll(self, nb_frames: int | None = None) -> np.ndarray:
        """``(128, nb_frames)`` float: each MIDI pitch's loudest amplitude per frame, 0 where it is silent. Frame
        ``i`` is the instant ``i / FRAME_RATE``; a note sounds there when ``onset <= i / FRAME_RATE < offset``."""
        nb_frames = self.nb_frames if nb_frames is None else nb_frames
        roll = np.zeros((128, nb_frames))
        first = np.ceil(np.round(self.onsets * FRAME_RATE, 6)).astype(np.int64)
        stop = np.ceil(np.round(self.offsets * FRAME_RATE, 6)).astype(np.int64)
        for a, b, p, v in zip(first, stop, self.pitches, self.amplitudes):
            a, b = max(a, 0), min(b, nb_frames)
            if b > a:
                roll[p, a:b] = np.maximum(roll[p, a:b], v)
        return roll

    def pitch_classes(self, nb_frames: int | None = None) -> np.ndarray:
        """``(12, nb_frames)`` bool: which pitch classes (C = 0) sound in each frame (see `piano_roll`)."""
        roll = self.piano_roll(nb_frames) > 0
        return np.stack([roll[pc::12].any(axis=0) for pc in range(12)])


# --- the transcriber -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_import():
    """basic-pitch's import warns through the root logger about every backend it lacks (CoreML, TFLite...); the
    module-level ``logging.warning`` would also give the root logger a stderr handler. Neither happens here. Also
    hide TensorFlow from it unless it is loaded already: basic-pitch only uses it for the SavedModel."""
    root, null = logging.getLogger(), logging.NullHandler()
    root.addHandler(null)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    hide_tf = "tensorflow" not in sys.modules
    if hide_tf:
        sys.modules["tensorflow"] = None  # `import tensorflow` raises ImportError, which basic-pitch expects
    try:
        yield
    finally:
        if hide_tf and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
        logging.disable(previous)
        root.removeHandler(null)


@dataclass(frozen=True)
class _Backend:
    session: object  # onnxruntime.InferenceSession on nmp.onnx
    model_output_to_notes: object  # basic_pitch.note_creation.model_output_to_notes
    sr: int  # the model's sample rate (22050)
    hop: int  # its frame hop in samples (256)
    window: int  # samples in one model input (2 s less a hop)
    fps: int  # its annotation frames per second (86)


@functools.lru_cache(maxsize=1)
def _backend() -> _Backend:
    """Load basic-pitch's ONNX model once per process, or raise one line naming the install command."""
    try:
        import onnxruntime

        with _quiet_import():
            from basic_pitch import FilenameSuffix, build_icassp_2022_model_path, constants
            from basic_pitch.note_creation import model_output_to_notes
    except ImportError as exc:
        missing = exc.name or "a module"
        raise Vocals2SongError(f"the note transcriber (basic-pitch's ONNX model) is not installed ({missing} "
                               f"cannot be imported); run: {INSTALL_HINT}") from None
    path = build_icassp_2022_model_path(FilenameSuffix.onnx)
    if not os.path.isfile(path):
        raise Vocals2SongError(f"basic-pitch's ONNX model is missing; reinstall it: {INSTALL_HINT}", path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _Backend(session, model_output_to_notes, constants.AUDIO_SAMPLE_RATE, constants.FFT_HOP,
                    constants.AUDIO_N_SAMPLES, constants.ANNOTATIONS_FPS)


def require() -> None:
    """Raise the one-line `Vocals2SongError` naming the install command unless the transcriber loads (it is loaded
    once per process, so this costs nothing after the first call)."""
    _backend()


#: basic-pitch's ONNX graph: its input, and its outputs in the order its ``Model.predict`` names them
_INPUT = "serving_default_input_2:0"
_OUTPUTS = {"note": "StatefulPartitionedCall:1", "onset": "StatefulPartitionedCall:2",
            "contour": "StatefulPartitionedCall:0"}
#: frames of overlap between windows (basic-pitch's run_inference), half of them cut from each side
_OVERLAP_FRAMES = 30


def _model_output(y: np.ndarray, b: _Backend) -> dict[str, np.ndarray]:
    """basic-pitch's ``run_inference`` on samples at the model's rate: windows overlapping by 30 frames, the
    half-overlaps cut and the rest laid end to end: ``{"note", "onset": (nb_frames, 88), "contour": (.., 264)}``."""
    overlap = _OVERLAP_FRAMES * b.hop
    step = b.window - overlap
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), y.astype(np.float32)])
    starts = list(range(0, len(padded), step))
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in _OUTPUTS}
    for i in range(0, len(starts), BATCH):
        batch = np.zeros((len(starts[i: i + BATCH]), b.window, 1), np.float32)
        for j, s in enumerate(starts[i: i + BATCH]):
            chunk = padded[s: s + b.window]
            batch[j, : len(chunk), 0] = chunk
        for key, value in zip(_OUTPUTS, b.session.run(list(_OUTPUTS.values()), {_INPUT: batch})):
            outputs[key].append(value)
    half = _OVERLAP_FRAMES // 2
    nb_frames = int(np.floor(len(y) * b.fps / b.sr))
    result = {}
    for key, parts in outputs.items():
        out = np.concatenate(parts)[:, half:-half, :]
        result[key] = out.reshape(-1, out.shape[-1])[:nb_frames]
    return result


def transcribe(y: np.ndarray, sr: int, onset_threshold: float = ONSET_THRESHOLD,
               frame_threshold: float = FRAME_THRESHOLD, min_note_ms: float = MIN_NOTE_MS) -> Notes:
    """Audio ``(nb_samples,)`` or ``(nb_samples, nb_channels)`` (mixed to mono) at ``sr`` -> its `Notes`.

    basic-pitch's ONNX model with its own note decoding (thresholds and shortest note as its ``predict``
    defaults, the melodia trick on, no pitch bends). Empty audio gives no notes; NaN or infinite samples are an
    error. The first call loads the model (about 1.5 s); after it, about 0.5 s per minute of audio on 2 cores.
    """
    from vocals2song import audio

    y = np.asarray(y)
    if y.ndim == 2:
        y = audio.to_mono(y)
    if y.ndim != 1:
        raise Vocals2SongError(f"transcribe takes (nb_samples,) or (nb_samples, nb_channels), not {y.shape}")
    if not np.isfinite(y).all():
        raise Vocals2SongError("the audio contains NaN or infinite samples; repair or re-export it")
    duration = len(y) / sr
    b = _backend()
    y = audio.resample(np.asarray(y, np.float32), sr, b.sr)
    if len(y) * b.fps < b.sr:  # under one model frame: nothing to decode
        return Notes.from_events([], duration)
    output = _model_output(y, b)
    with np.errstate(invalid="ignore", divide="ignore"):  # its inferred onsets divide 0 by 0 on silence
        _, events = b.model_output_to_notes(output, onset_thresh=onset_threshold, frame_thresh=frame_threshold,
                                            min_note_len=int(np.round(min_note_ms / 1000 * b.sr / b.hop)),
                                            include_pitch_bends=False, melodia_trick=True)
    return Notes.from_events(((min(a, duration), min(e, duration), p, v) for a, e, p, v, _ in events
                              if a < duration), duration)


# --- the melody and the judge ----------------------------------------------------------------------------------

def melody(vocals: Notes, nb_frames: int | None = None) -> np.ndarray:
    """The sung pitch per frame ``(nb_frames,)`` int64 MIDI, -1 where the singer holds no note: in each frame the
    loudest of the vocals' transcribed notes (by basic-pitch's amplitude; a tie goes to the higher note).

    From the transcription rather than from librosa.pyin: the vocals' transcription is made anyway (and reused), and
    on six rendered chorales (Choir Aahs) it found the score's soprano pitch in 88.5% of its frames against pyin's
    90.3% (median), while pyin took 14 s a track (about 14 s per minute of audio) on top of it."""
    roll = vocals.piano_roll(nb_frames)
    # argmax over pitches from the top, so a tie picks the higher pitch
    loudest = 127 - np.argmax(roll[::-1], axis=0)
    return np.where(roll.max(axis=0) > 0, loudest, -1).astype(np.int64)


def pitch_class_f1(estimate: np.ndarray, reference: np.ndarray) -> float:
    """F1 of two boolean ``(12, nb_frames)`` activities (see `Notes.pitch_classes`), padded with silence to the
    longer: ``2 TP / (|estimate| + |reference|)``. Two silences agree: 1.0; one silent and one not: 0.0."""
    est, ref = _same_length(estimate, reference)
    total = int(est.sum() + ref.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(est, ref).sum()) / total


def note_f1(estimate: Notes, reference: Notes) -> float:
    """mir_eval's note F1 (``transcription.precision_recall_f1_overlap``: onsets within `ONSET_TOLERANCE_S`,
    pitches within `PITCH_TOLERANCE_CENTS`, offsets ignored). No notes in either: 1.0; in only one: 0.0."""
    if len(estimate) == 0 or len(reference) == 0:
        return 1.0 if len(estimate) == len(reference) else 0.0
    try:
        import mir_eval.transcription
    except ImportError as exc:
        raise Vocals2SongError(f"mir_eval is not installed ({exc.name}); run: {INSTALL_HINT}") from None

    def intervals(n: Notes) -> np.ndarray:  # mir_eval wants positive durations
        return np.stack([n.onsets, np.maximum(n.offsets, n.onsets + 1e-3)], axis=1)

    def hz(n: Notes) -> np.ndarray:
        return 440.0 * 2.0 ** ((n.pitches - 69) / 12.0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
            intervals(reference), hz(reference), intervals(estimate), hz(estimate),
            onset_tolerance=ONSET_TOLERANCE_S, pitch_tolerance=PITCH_TOLERANCE_CENTS, offset_ratio=None)
    return float(f1)


def consonance(accompaniment: np.ndarray, sung: np.ndarray) -> float:
    """The share of accompaniment pitch classes, over the frames where the singer holds a note, that lie a
    `CONSONANT` interval from the sung pitch class. ``accompaniment``: bool ``(12, nb_frames)``; ``sung``: MIDI
    ``(nb_frames,)``, -1 where nothing is sung (the shorter is padded with silence). NaN when the accompaniment
    sounds in none of those frames."""
    acc, sung = _same_length(accompaniment, sung, fill=-1)
    held = sung >= 0
    acc = acc[:, held]
    if not acc.any():
        return float("nan")
    intervals = (np.arange(12)[:, None] - sung[held][None, :] % 12) % 12
    good = np.isin(intervals, sorted(CONSONANT))
    return float(np.logical_and(acc, good).sum() / acc.sum())


def polyphony(accompaniment: np.ndarray) -> float:
    """The mean number of pitch classes sounding ``(12, nb_frames)`` over the frames where any sounds; NaN where
    none does."""
    counts = np.asarray(accompaniment).sum(axis=0)
    sounding = counts > 0
    return float(counts[sounding].mean()) if sounding.any() else float("nan")


#: the scores of `judge` that have a better direction; notes per second and polyphony describe (read them beside
#: the truth's own), since evaluate's None means "nearer 0 is better", which silence would win
HIGHER_IS_BETTER: dict[str, bool] = {"pc_f1": True, "note_f1": True, "consonance": True}


def judge(accompaniment: Notes, truth: Notes, melody_or_vocals: Notes | np.ndarray) -> dict[str, float]:
    """Score an added accompaniment's transcription against the true accompaniment's, with the sung melody.

    ``melody_or_vocals``: the vocals' `Notes` (turned into `melody`) or a melody ``(nb_frames,)`` at
    `FRAME_RATE`. Frames run over the longer of the two accompaniments. Returns:

    - ``notes_per_s``, ``truth_notes_per_s``: notes per second of each;
    - ``pc_f1``: frame-wise pitch-class F1 against the truth (`pitch_class_f1`: 1.0 when neither plays a note);
    - ``note_f1``: mir_eval's note F1 against the truth (`note_f1`: 1.0 when neither has a note);
    - ``consonance``, ``truth_consonance``: each one's share of consonant pitch classes where the singer holds a
      note (`consonance`: NaN when it plays nothing there);
    - ``polyphony``, ``truth_polyphony``: mean pitch classes per sounding frame (NaN when it plays nothing).
    """
    nb_frames = max(accompaniment.nb_frames, truth.nb_frames)
    est, ref = accompaniment.pitch_classes(nb_frames), truth.pitch_classes(nb_frames)
    sung = melody(melody_or_vocals, nb_frames) if isinstance(melody_or_vocals, Notes) else melody_or_vocals
    return {"notes_per_s": accompaniment.notes_per_s(), "truth_notes_per_s": truth.notes_per_s(),
            "pc_f1": pitch_class_f1(est, ref), "note_f1": note_f1(accompaniment, truth),
            "consonance": consonance(est, sung), "truth_consonance": consonance(ref, sung),
            "polyphony": polyphony(est), "truth_polyphony": polyphony(ref)}


def judge_audio(accompaniment: np.ndarray, truth: np.ndarray, vocals: np.ndarray, sr: int) -> dict[str, float]:
    """`judge` from audio ``(nb_samples,)``: the added accompaniment, the true one and the vocals, each transcribed
    once here (transcribe them yourself to reuse a transcription across several judgements)."""
    return judge(transcribe(accompaniment, sr), transcribe(truth, sr), transcribe(vocals, sr))


def _same_length(a: np.ndarray, b: np.ndarray, fill=0) -> tuple[np.ndarray, np.ndarray]:
    """Pad the last axis of the shorter of ``a`` and ``b`` with ``fill`` to the longer's length."""
    a, b = np.asarray(a), np.asarray(b)
    n = max(a.shape[-1], b.shape[-1])

    def pad(x):
        width = [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])]
        return np.pad(x, width, constant_values=fill) if x.shape[-1] < n else x

    return pad(a), pad(b)


# --- MIDI --------------------------------------------------------------------------------------------------------

def write_midi(notes: Notes, path: str | os.PathLike, program: int = 0) -> None:
    """Write ``notes`` as a one-track MIDI file on General MIDI ``program`` (0: piano), atomically; velocity is
    ``round(127 * amplitude)``, at least 1. pretty_midi's clock (120 BPM, 220 ticks a beat) rounds times to 2.3 ms."""
    try:
        import pretty_midi
    except ImportError as exc:
        raise Vocals2SongError(f"pretty_midi is not installed ({exc.name}); run: {INSTALL_HINT}") from None
    from vocals2song.files import atomic_path

    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=program)
    for onset, offset, pitch, amplitude in notes.events():
        velocity = int(min(127, max(1, round(127 * amplitude))))
        instrument.notes.append(pretty_midi.Note(velocity, pitch, onset, max(offset, onset + 1e-3)))
    midi.instruments.append(instrument)
    with atomic_path(path) as tmp:
        midi.write(str(tmp))


def read_midi(path: str | os.PathLike, duration: float | None = None) -> Notes:
    """A MIDI file's notes (all instruments but drums; amplitude = velocity / 127); ``duration`` defaults to the
    end of its last note."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    events = [(n.start, n.end, n.pitch, n.velocity / 127) for i in midi.instruments if not i.is_drum
              for n in i.notes]
    return Notes.from_events(events, midi.get_end_time() if duration is None else duration)
