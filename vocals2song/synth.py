"""Synthetic MUSDB18-HQ-shaped audio for tests and benchmarks.

The accompaniment is a deterministic, *learnable* function of the vocals:

* vocals: a pentatonic melody (MIDI 55-72) on an eighth-note grid at 120 BPM, harmonic
  tone with a vowel-like formant envelope, delayed vibrato, phrase rests.
* bass:   the same note timeline exactly one octave below the sung pitch (no vibrato).
* drums:  a fixed one-bar pattern (kick on 1 and 3, snare on 2 and 4, hi-hat on eighths).
* other:  a soft pad playing the diatonic triad rooted one octave below the sung pitch.

The only per-track randomness is the melody (key, notes, rhythm, vowels) and the drum noise.
All arrays follow musdb's convention: shape (nb_samples, nb_channels), dtype float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["STEMS", "synth_stems", "write_track", "make_musdb_tree"]

STEMS = ("vocals", "drums", "bass", "other")

TEMPO_BPM = 120.0
EIGHTH_S = 60.0 / TEMPO_BPM / 2  # 0.25 s: every note/rest boundary lies on this grid
VOCAL_RANGE = (55, 72)  # MIDI G3..C5
PENTATONIC = (0, 2, 4, 7, 9)  # major pentatonic degrees relative to the key
# Triad third per pentatonic degree, diatonic in the major key (I, ii, iii, V, vi).
_TRIAD_THIRD = {0: 4, 2: 3, 4: 3, 7: 4, 9: 3}
BASS_OCTAVES = 1  # bass = sung pitch - 12 * BASS_OCTAVES (MIDI 43..60, well above E1)

# Rough vowel formants (F1, F2, F3) in Hz for a, e, i, o, u.
_VOWELS = np.array(
    [[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]],
    dtype=np.float64,
)
_FORMANT_GAIN = np.array([1.0, 0.7, 0.4])
_FORMANT_BW = np.array([150.0, 200.0, 250.0])
_N_VOCAL_HARMONICS = 9  # fundamental + 8 overtones

_VOCAL_PEAK = 0.3
_MIX_PEAK = 0.9  # all stems are scaled together if the mixture would exceed this


def _midi_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _pan_gains(pan: float, channels: int) -> np.ndarray:
    """Per-channel gains for a pan position in [-1, 1] (left..right); loudest channel gain is 1.

    Gains are linear in the channel position so any channel count works; mono gets gain 1.
    """
    if channels == 1:
        return np.ones(1, dtype=np.float32)
    pos = np.linspace(-1.0, 1.0, channels)
    g = 1.0 + pan * pos
    return (g / g.max()).astype(np.float32)


def _melody(n: int, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Note/rest timeline covering n samples.

    Returns (bounds, midi, vowel, key): bounds (nb_segments + 1,) int64 sample boundaries with
    bounds[0] == 0 and bounds[-1] == n; midi (nb_segments,) int with 0 marking a rest;
    vowel (nb_segments,) index into _VOWELS; key the pitch class of the tonic.
    """
    key = int(rng.integers(12))
    scale = np.array([m for m in range(VOCAL_RANGE[0], VOCAL_RANGE[1] + 1) if (m - key) % 12 in PENTATONIC])
    needed = int(np.ceil(n / (sr * EIGHTH_S)))
    lengths: list[int] = []  # in eighths
    pitches: list[int] = []
    idx = len(scale) // 2
    total = 0
    while total < needed:
        for _ in range(int(rng.integers(3, 7))):  # a phrase of 3-6 notes
            # Mostly stepwise random walk over the scale, reflected at the range ends.
            idx += int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
            idx = abs(idx) if idx < 0 else min(idx, 2 * (len(scale) - 1) - idx)
            lengths.append(int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.15, 0.2])))
            pitches.append(int(scale[idx]))
        lengths.append(int(rng.choice([2, 3])))  # 0.5-0.75 s breath between phrases
        pitches.append(0)
        total = sum(lengths)
    # Round cumulative grid positions (not individual lengths) so there is no drift vs the drums.
    bounds = np.round(np.cumsum([0] + lengths) * (sr * EIGHTH_S)).astype(np.int64)
    nseg = int(np.searchsorted(bounds, n, side="left"))  # segments starting before n
    bounds = np.append(bounds[:nseg], n)
    midi = np.array(pitches[:nseg], dtype=np.int64)
    vowel = rng.integers(len(_VOWELS), size=nseg)
    return bounds, midi, vowel, key


def _additive(freq: np.ndarray, amps: list, sr: int) -> np.ndarray:
    """Sum of harmonics k=1..K of one phase-accumulated tone: sum_k amps[k-1] * sin(k * phase).

    freq: (n,) instantaneous fundamental in Hz; amps: scalars or (n,) arrays. Integrating the
    frequency (cumsum) keeps the waveform continuous across pitch changes, i.e. click-free.
    Harmonics that would reach Nyquist anywhere in the signal are dropped.
    """
    cycles = np.cumsum(freq, dtype=np.float64) / sr
    cycles -= np.floor(cycles)  # wrap in float64, then float32 is precise enough for sin
    phase = (2.0 * np.pi * cycles).astype(np.float32)
    fmax = float(freq.max()) if len(freq) else 0.0
    out = np.zeros(len(freq), dtype=np.float32)
    for k, a in enumerate(amps, start=1):
        if k * fmax >= 0.5 * sr:
            break
        out += np.asarray(a, dtype=np.float32) * np.sin(np.float32(k) * phase)
    return out


def _ramp_env(t_in: np.ndarray, t_left: np.ndarray, attack: float, release: float) -> np.ndarray:
    """Linear attack from the note start and linear release reaching 0 exactly at the note end."""
    return np.minimum(t_in / np.float32(attack), 1.0) * np.minimum(t_left / np.float32(release), 1.0)


def _drum_bar(sr: int, rng: np.random.Generator, channels: int) -> np.ndarray:
    """One 4/4 bar (nb_bar_samples, channels) of the fixed pattern; tails wrap around so it tiles seamlessly."""
    beat = 60.0 / TEMPO_BPM
    bar_len = int(round(4 * beat * sr))
    buf = np.zeros((2 * bar_len, channels), dtype=np.float32)

    def add(hit: np.ndarray, at_s: float, pan: float) -> None:
        start = int(round(at_s * sr))
        gain = np.float32(rng.uniform(0.9, 1.1))  # slight velocity variation
        buf[start : start + len(hit)] += gain * hit[:, None] * _pan_gains(pan, channels)

    def t(dur: float) -> np.ndarray:
        return np.arange(int(round(dur * sr))) / sr

    def highpassed_noise(nb: int, order: int) -> np.ndarray:
        # Differencing white noise is a cheap high-pass (+6 dB/octave per order).
        x = np.diff(rng.standard_normal(nb + order), n=order)
        return x / np.abs(x).max()

    for beat_idx in range(4):
        at = beat_idx * beat
        if beat_idx in (0, 2):  # kick: sine sweeping 155 -> 45 Hz with exponential decay
            tk = t(0.45)
            ph = 2 * np.pi * (45 * tk + 110 * 0.04 * (1 - np.exp(-tk / 0.04)))
            add((0.35 * np.sin(ph) * np.exp(-tk / 0.15)).astype(np.float32), at, 0.0)
        else:  # snare: high-passed noise burst + short body tone
            ts = t(0.25)
            body = np.sin(2 * np.pi * 185 * ts) + 0.5 * np.sin(2 * np.pi * 330 * ts)
            noise = highpassed_noise(len(ts), 1)
            add((0.12 * body * np.exp(-ts / 0.05) + 0.2 * noise * np.exp(-ts / 0.07)).astype(np.float32), at, -0.15)
    th = t(0.08)
    for eighth in range(8):  # closed hi-hat
        hat = 0.08 * highpassed_noise(len(th), 2) * np.exp(-th / 0.015)
        add(hat.astype(np.float32), eighth * EIGHTH_S, 0.4)
    return buf[:bar_len] + buf[bar_len:]


def synth_stems(seconds: float, sr: int = 44100, seed: int = 0, channels: int = 2,
                silence: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Return {'vocals','drums','bass','other','mixture'} each (nb_samples, channels) float32,
    mixture = sum of the four.

    nb_samples = round(seconds * sr). silence=(start_s, end_s): the vocals (only) are exactly zero for
    samples round(start_s*sr) <= i < round(end_s*sr) (with 10 ms fades just outside, to avoid clicks).
    """
    n = int(round(seconds * sr))
    if n <= 0 or sr <= 0 or channels < 1:
        raise ValueError(f"need seconds > 0, sr > 0, channels >= 1 (got {seconds}, {sr}, {channels})")
    # Independent streams so the melody does not depend on how much drum noise is drawn.
    # (SeedSequence.spawn == default_rng(seed).spawn, which needs numpy >= 1.25.)
    rng_melody, rng_drums = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    bounds, midi, vowel, key = _melody(n, sr, rng_melody)
    seg_len = np.diff(bounds)
    voiced = midi > 0

    # Per-sample time since the segment start / until its end. Subtract in int64 (exact for any
    # length, never negative), then float32 is plenty for envelopes.
    idx = np.arange(n, dtype=np.int64)
    t_in = (idx - np.repeat(bounds[:-1], seg_len)).astype(np.float32) / np.float32(sr)
    t_left = (np.repeat(bounds[1:], seg_len) - idx).astype(np.float32) / np.float32(sr)
    del idx
    gate = np.repeat(voiced, seg_len).astype(np.float32)

    # Rests keep the previous note's pitch so oscillators never jump to a silly frequency.
    held = midi.copy()
    for i in range(1, len(held)):
        if held[i] == 0:
            held[i] = held[i - 1]
    if held[0] == 0:
        held[0] = VOCAL_RANGE[0]

    # --- vocals: formant-shaped harmonics, delayed vibrato (~5.5 Hz, +-0.3 semitone)
    f0_seg = _midi_to_hz(held)
    t_s = np.arange(n, dtype=np.float64) / sr
    vib_cycles = 5.5 * t_s
    vib_cycles -= np.floor(vib_cycles)
    del t_s
    vib = np.float32(0.3) * np.sin(np.float32(2 * np.pi) * vib_cycles.astype(np.float32))
    vib *= np.minimum(t_in / np.float32(0.2), 1.0)  # vibrato fades in over the first 200 ms of a note
    f0 = np.repeat(f0_seg.astype(np.float32), seg_len) * np.exp2(vib / np.float32(12.0))
    del vib
    k = np.arange(1, _N_VOCAL_HARMONICS + 1)
    fk = f0_seg[:, None] * k[None, :]  # (nseg, K) harmonic frequencies at the nominal pitch
    formants = _VOWELS[vowel]  # (nseg, 3)
    resonance = (_FORMANT_GAIN / (1.0 + ((fk[:, :, None] - formants[:, None, :]) / _FORMANT_BW) ** 2)).sum(-1)
    amp = 0.7 * k ** -0.7 * (0.25 + resonance)  # <= ~0.6 for k >= 2 ...
    amp[:, 0] = 1.0  # ... so the fundamental always dominates (makes pitch tracking unambiguous)
    vocal_amps = [np.repeat(amp[:, j].astype(np.float32), seg_len) for j in range(_N_VOCAL_HARMONICS)]
    vocals = _additive(f0, vocal_amps, sr) * _ramp_env(t_in, t_left, 0.03, 0.05) * gate
    del vocal_amps, f0
    peak = np.abs(vocals).max()
    if peak > 0:
        vocals *= np.float32(_VOCAL_PEAK / peak)
    if silence is not None:
        _silence(vocals, silence, sr)

    # --- bass: plucked tone exactly BASS_OCTAVES below the sung note
    bass_f = np.repeat(_midi_to_hz(held - 12 * BASS_OCTAVES).astype(np.float32), seg_len)
    bass_env = _ramp_env(t_in, t_left, 0.005, 0.02) * np.exp(-t_in / np.float32(0.6)) * gate
    bass = np.float32(0.13) * _additive(bass_f, [1.0, 0.5, 0.25, 0.12], sr) * bass_env
    del bass_f, bass_env

    # --- other: soft pad, diatonic triad rooted one octave below the sung pitch
    root = held - 12
    third = np.array([_TRIAD_THIRD[(m - key) % 12] for m in held])
    pad_env = _ramp_env(t_in, t_left, 0.08, 0.12) * gate
    other = np.zeros(n, dtype=np.float32)
    for voice in (root, root + third, root + 7):
        f = np.repeat(_midi_to_hz(voice).astype(np.float32), seg_len)
        other += _additive(f, [1.0, 0.35, 0.12], sr)
    other *= np.float32(0.025) * pad_env
    del pad_env, t_in, t_left, gate

    # --- drums: one bar, tiled
    bar = _drum_bar(sr, rng_drums, channels)
    drums = np.tile(bar, (-(-n // len(bar)), 1))[:n]

    stems = {
        "vocals": vocals[:, None] * _pan_gains(0.1, channels),
        "drums": np.ascontiguousarray(drums),
        "bass": bass[:, None] * _pan_gains(0.0, channels),
        "other": other[:, None] * _pan_gains(-0.3, channels),
    }
    mixture = sum(stems[s] for s in STEMS)
    peak = float(np.abs(mixture).max())
    if peak > _MIX_PEAK:  # same factor for every stem keeps mixture == sum and the stems' balance
        g = np.float32(_MIX_PEAK / peak)
        for s in STEMS:
            stems[s] *= g
        mixture = sum(stems[s] for s in STEMS)
    stems["mixture"] = mixture
    return stems


def _silence(x: np.ndarray, interval: tuple[float, float], sr: int, fade_s: float = 0.01) -> None:
    """Zero x[round(start*sr):round(end*sr)] in place, with short raised-cosine fades outside the gap."""
    start_s, end_s = interval
    if not 0 <= start_s <= end_s:
        raise ValueError(f"silence interval must satisfy 0 <= start <= end, got {interval}")
    n = len(x)
    a, b = min(int(round(start_s * sr)), n), min(int(round(end_s * sr)), n)
    if b <= a:
        return
    x[a:b] = 0.0
    nf = max(1, int(round(fade_s * sr)))
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(nf) + 0.5) / nf)).astype(np.float32)  # 0 -> 1
    lo = max(0, a - nf)
    x[lo:a] *= ramp[::-1][nf - (a - lo):]  # 1 -> 0 ending at a (truncated at the signal start)
    hi = min(n, b + nf)
    x[b:hi] *= ramp[: hi - b]


def write_track(folder: Path, stems: dict[str, np.ndarray], sr: int, subtype: str = "PCM_16") -> None:
    """Write <folder>/{mixture,vocals,drums,bass,other}.wav.

    stems: as returned by synth_stems, each (nb_samples, nb_channels) float array of the same shape.
    """
    folder = Path(folder)
    names = ("mixture",) + STEMS
    shapes = {stems[name].shape for name in names}
    if len(shapes) != 1:
        raise ValueError(f"all stems must have the same shape, got {shapes}")
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        sf.write(folder / f"{name}.wav", stems[name], sr, subtype=subtype)


def make_musdb_tree(root: Path, tracks: list[tuple[str, str, float]], sr: int = 44100, seed: int = 0,
                    channels: int = 2, silence: dict[str, tuple[float, float]] | None = None) -> list[Path]:
    """tracks: (subset 'train'|'test', 'Artist - Title', seconds). Returns the track folders. Deterministic for a seed
    (each track gets its own seed derived from seed and its index).

    Writes <root>/<subset>/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav (16-bit PCM), readable
    with musdb.DB(root, is_wav=True). silence maps a track name to a vocal-silence interval (see synth_stems).
    """
    root = Path(root)
    silence = silence or {}
    seen: set[tuple[str, str]] = set()
    for subset, name, _seconds in tracks:
        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid track name {name!r}")
        if (subset, name) in seen:
            raise ValueError(f"duplicate track {subset}/{name}")
        seen.add((subset, name))
    unknown = set(silence) - {name for _, name, _ in tracks}
    if unknown:
        raise ValueError(f"silence given for unknown tracks: {sorted(unknown)}")

    folders = []
    for i, (subset, name, seconds) in enumerate(tracks):
        track_seed = int(np.random.SeedSequence((seed, i)).generate_state(1)[0])
        stems = synth_stems(seconds, sr=sr, seed=track_seed, channels=channels, silence=silence.get(name))
        folder = root / subset / name
        write_track(folder, stems, sr)
        folders.append(folder)
    return folders
