"""Songs made without learning, to measure a model against. One signature: ``(Z_vocals, stats) -> Z_song``.

``Z_vocals`` is the vocals' complex STFT ``(nb_bins, nb_frames)`` on the codec's absolute scale; ``stats`` is what a
baseline may know of the training data (`TrainingStats`, from `training_stats`). Each returns the song's STFT;
an optional third argument, the codec's `ImageMeta`, gives the STFT geometry, and ``phase`` (`SONG_PHASES`) how an
added power gets its phase (`song_with`: Griffin-Lim, or random).

- ``vocals_only``: the vocals alone. What an untrained additive model makes.
- ``mean_accompaniment``: the vocals plus the training set's mean accompaniment spectrum, added only in frames where
  the vocals sound, with the vocals' phase where they count. The mean is taken of the log power (a geometric mean):
  on unseen rendered chorales (with a random phase) it beats the vocals alone on lsd and mrstft (10.18 and 1.385
  against 13.35 and 1.595, 9 test items), while the mean of the power, which rare loud attacks inflate, loses to
  them (17.39 and 1.759); the median power scores 11.70 and 1.312. So a model has to learn more than an average to
  beat it. (The first version added the mean *magnitude* in every frame; it lost to the vocals alone and taught
  nothing.)
- ``parallel``: the vocals plus copies of them a sixth and two octaves below: a harmoniser that knows no chords.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vocals2song import codec
from vocals2song.codec import ImageMeta
from vocals2song.errors import Vocals2SongError
from vocals2song.gate import POWER_FLOOR, floor_power, gate_radius, power_scale, sounding_frames


@dataclass(frozen=True)
class TrainingStats:
    """What the baselines learn from training pairs."""

    mean_power: np.ndarray  # (nb_bins,) geometric mean accompaniment power per bin where the vocals sound
    nb_frames: int  # frames averaged


def training_stats(pairs: Iterable[tuple[np.ndarray, np.ndarray]], radius: int = 0) -> TrainingStats:
    """From (vocals STFT, accompaniment STFT) pairs: the geometric mean of the accompaniment power (the mean of
    its log) per bin, over the frames where the vocals sound (the gate smoothed with ``radius``: `smooth_gate`)."""
    total, frames = None, 0
    for Z_voc, Z_acc in pairs:
        sounding = sounding_frames(Z_voc, radius=radius)
        log_power = np.log(np.abs(Z_acc[:, sounding]) ** 2 + POWER_FLOOR)
        total = log_power.sum(axis=1) if total is None else total + log_power.sum(axis=1)
        frames += int(sounding.sum())
    if total is None or frames == 0:
        raise Vocals2SongError("no training frame where the vocals sound; the mean accompaniment needs some")
    return TrainingStats(np.exp(total / frames), frames)


#: training pairs (spread over the list) that `stats_from_images` averages
MEAN_PAIRS = 32


def read_image_meta(path: Path, fallback: ImageMeta | None = None) -> tuple[np.ndarray, ImageMeta]:
    """An encoded image's pixels and metadata; an image without metadata takes ``fallback`` (the codec a training
    set was found to use), or is refused."""
    from vocals2song.imagefile import read_image

    pixels, meta_json = read_image(path)
    if meta_json is None:
        if fallback is None:
            raise Vocals2SongError("the image has no vocals2song metadata; encode the data with sound2image", path)
        return pixels, fallback
    return pixels, ImageMeta.from_json(meta_json, path)


def image_spectrogram(pixels: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Pixels -> the complex STFT ``(nb_bins, nb_frames)`` they encode."""
    u, v = codec.decode_planes(pixels, meta)
    return codec.planes_to_spectrogram(u, v, meta.top_db, meta.range_db)


def spread(items: list, count: int) -> list:
    """Up to ``count`` of ``items``, evenly spaced from the first."""
    return items[:: max(1, len(items) // count)][:count]


def stats_from_images(pairs: list[tuple[str, Path, Path]], target: str,
                      fallback: ImageMeta | None = None) -> TrainingStats:
    """`training_stats` of (up to `MEAN_PAIRS`) (name, vocals image, target image) pairs spread over the list;
    ``target`` says whether the target images hold the mixture or the accompaniment; ``fallback`` decodes images
    without metadata (see `read_image_meta`). The gate is smoothed as `mean_accompaniment` smooths it for the
    images' geometry (`gate_radius`)."""
    chosen = spread(pairs, MEAN_PAIRS)
    meta = read_image_meta(chosen[0][1], fallback)[1] if chosen else None

    def spectra():
        for _, voc_path, tar_path in chosen:
            Z_voc, Z_tar = (image_spectrogram(*read_image_meta(p, fallback)) for p in (voc_path, tar_path))
            yield Z_voc, (Z_tar - Z_voc if target == "mixture" else Z_tar)

    return training_stats(spectra(), gate_radius(meta.sr, meta.hop) if meta else 0)


def vocals_only(Z_vocals: np.ndarray, stats: TrainingStats | None = None, meta: ImageMeta | None = None,
                phase: str = "griffinlim") -> np.ndarray:
    """The vocals as the song."""
    return Z_vocals


def mean_accompaniment(Z_vocals: np.ndarray, stats: TrainingStats, meta: ImageMeta | None = None,
                       phase: str = "griffinlim") -> np.ndarray:
    """The vocals plus the mean accompaniment power in the frames where they sound, laid on as `song_with` lays an
    accompaniment (``phase``: `SONG_PHASES`).

    ``meta`` gives the STFT geometry (default: Hann, hop a quarter of the frame) and the gate's smoothing
    (`gate_radius`; none without it)."""
    added = np.zeros(Z_vocals.shape)
    radius = gate_radius(meta.sr, meta.hop) if meta is not None else 0
    added[:, sounding_frames(Z_vocals, radius=radius)] = stats.mean_power[:, None]
    return song_with(Z_vocals, added, meta, phase)


#: how an added accompaniment gets its phase (`song_with`): Griffin-Lim on it, given the vocals, or a random phase
SONG_PHASES = ("griffinlim", "random")
#: iterations of the accompaniment's Griffin-Lim (fast Griffin-Lim: `GRIFFINLIM_MOMENTUM`)
GRIFFINLIM_ITERS = 32
GRIFFINLIM_MOMENTUM = 0.99


def song_with(Z_vocals: np.ndarray, added_power: np.ndarray, meta: ImageMeta | None = None,
              phase: str = "griffinlim", iters: int = GRIFFINLIM_ITERS, power: np.ndarray | None = None) -> np.ndarray:
    """The vocals plus an accompaniment power ``(nb_bins, nb_frames)``: the song's STFT.

    Where the vocals hold `VOCALS_PHASE_SHARE` of a bin's power, the power sum with the vocals' phase. Elsewhere
    the accompaniment takes its phase from ``phase``: ``"griffinlim"`` (`accompaniment_phase`), so that its
    partials run on from frame to frame and sound as notes, or ``"random"``, a seeded random phase lifted by what
    the overlap-add of unrelated phases loses (`song_phase`), which smears every partial into noise: through it
    the true accompaniment's own magnitude transcribes to its pitch classes no better than a drone (F1 0.12 on
    rendered chorales, 0.91 with Griffin-Lim; docs/quality-log.md). ``meta`` gives the STFT geometry (default:
    Hann, hop a quarter of the frame). ``power``: the song's power, when the caller has it (default: the vocals'
    plus ``added_power``, in the vocals' precision)."""
    if phase not in SONG_PHASES:
        raise ValueError(f"unknown song phase {phase!r}; use one of {', '.join(SONG_PHASES)}")
    if power is None:
        power = np.abs(Z_vocals) ** 2
        power += added_power
    n_fft = 2 * (Z_vocals.shape[0] - 1)
    hop, win, window = (meta.hop, meta.win, meta.window) if meta is not None else (n_fft // 4, n_fft, "hann")
    if phase == "random":
        return np.sqrt(power) * song_phase(Z_vocals, power, gain=random_phase_gain(n_fft, hop, win, window))
    keep = vocals_dominate(Z_vocals, power)
    fixed = np.where(keep, np.sqrt(power) * _unit(Z_vocals), 0.0)  # the power sum on the vocals' phase
    accompaniment = accompaniment_phase(Z_vocals, np.sqrt(np.maximum(added_power, 0.0)), keep, fixed, hop, win,
                                        window, iters)
    return np.where(keep, fixed, Z_vocals + accompaniment)


def vocals_dominate(Z_vocals: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Boolean ``(nb_bins, nb_frames)``: the bins of a song of ``power`` where the vocals hold at least
    `VOCALS_PHASE_SHARE` of it, and there keep their phase."""
    magnitude = np.abs(Z_vocals)
    return (magnitude**2 >= VOCALS_PHASE_SHARE * power) & (magnitude > 0)


def accompaniment_phase(Z_vocals: np.ndarray, magnitude: np.ndarray, keep: np.ndarray, fixed: np.ndarray, hop: int,
                        win: int, window: str = "hann", iters: int = GRIFFINLIM_ITERS, seed: int = 0) -> np.ndarray:
    """An accompaniment of ``magnitude`` ``(nb_bins, nb_frames)`` with a phase found by Griffin-Lim given the vocals:
    each iteration lays the song (the vocals, the accompaniment, and the bins ``keep`` held at ``fixed``),
    makes its waveform and takes that waveform's STFT again, and the accompaniment keeps the phase of what the
    song's STFT holds beyond the vocals (fast Griffin-Lim, Perraudin et al. 2013, as librosa's: a momentum of
    `GRIFFINLIM_MOMENTUM`). It starts from a seeded random phase. Returns the complex accompaniment, 0 in ``keep``.
    """
    from vocals2song import audio

    n_fft = 2 * (Z_vocals.shape[0] - 1)
    nb_frames = Z_vocals.shape[1]
    length = hop * (nb_frames - 1)
    free = ~keep & (magnitude > 0)
    angles = np.random.default_rng(seed).uniform(-np.pi, np.pi, Z_vocals.shape)
    estimate = np.where(free, magnitude * np.exp(1j * angles), 0.0)
    previous = np.zeros_like(estimate)
    for _ in range(iters):  # as librosa.griffinlim iterates, with the vocals and the fixed bins in the song
        song = np.where(keep, fixed, Z_vocals + estimate)
        back = audio.stft(audio.istft(song, hop, win, window, length=length), n_fft, hop, win, window)
        rebuilt = _fit_frames(back, nb_frames) - Z_vocals  # what the consistent song holds beyond the vocals
        direction = rebuilt - (GRIFFINLIM_MOMENTUM / (1.0 + GRIFFINLIM_MOMENTUM)) * previous
        previous = rebuilt
        estimate = np.where(free, magnitude * _unit(direction), 0.0)
    return estimate


def _unit(Z: np.ndarray) -> np.ndarray:
    """``Z / |Z|``, 1 where ``Z`` is 0."""
    magnitude = np.abs(Z)
    out = np.ones(Z.shape, dtype=np.complex128)
    np.divide(Z, magnitude, out=out, where=magnitude > 0)
    return out


def _fit_frames(Z: np.ndarray, nb_frames: int) -> np.ndarray:
    """``Z`` cropped or zero-padded to ``nb_frames`` frames."""
    if Z.shape[1] >= nb_frames:
        return Z[:, :nb_frames]
    return np.pad(Z, ((0, 0), (0, nb_frames - Z.shape[1])))


#: a bin keeps the vocals' phase when the vocals hold at least this share of the song's power there (-10 dB)
VOCALS_PHASE_SHARE = 0.1


def song_phase(Z_vocals: np.ndarray, power: np.ndarray, seed: int = 0, gain: float = 1.0) -> np.ndarray:
    """Phasors for a song of ``power`` ``(nb_bins, nb_frames)`` made around the vocals.

    The vocals' own phase where they hold at least `VOCALS_PHASE_SHARE` of the song's power, and a random
    (seeded) phase elsewhere. Where the vocals are near silent, their phase is the leakage of their partials,
    coherent from bin to bin and frame to frame: accompaniment laid on it pulses at the frame rate (a buzz).
    The phasors are 1 long where they are the vocals' and ``gain`` long where they are random (see
    `random_phase_gain`).
    """
    magnitude = np.abs(Z_vocals)
    phasor = np.ones(Z_vocals.shape, dtype=np.complex128)
    np.divide(Z_vocals, magnitude, out=phasor, where=magnitude > 0)
    other = ~(magnitude**2 >= VOCALS_PHASE_SHARE * power) | (magnitude == 0)
    if other.any():
        angles = np.random.default_rng(seed).uniform(-np.pi, np.pi, int(other.sum()))
        phasor[other] = gain * np.exp(1j * angles)
    return phasor


@functools.lru_cache(maxsize=8)
def random_phase_gain(n_fft: int, hop: int, win: int, window: str = "hann") -> float:
    """The amplitude factor that brings bins with a random phase out of the inverse STFT as loud as asked.

    Frames whose phases are unrelated add incoherently in the overlap-add, so such bins come back quieter than
    their magnitude: 6.0 dB quieter with a Hann window at a hop of a quarter frame (measured here once per
    geometry: the power of a random-phase spectrogram against that of the STFT of its inverse). Before this
    correction the random-phase accompaniment of `mean_accompaniment` and of a magnitude-only model sounded 6 dB
    under what they predicted.
    """
    from vocals2song import audio

    nb_frames = 128
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, (n_fft // 2 + 1, nb_frames))
    Z = np.exp(1j * angles)
    y = audio.istft(Z, hop, win, window)
    inner = (slice(1, -1), slice(n_fft // hop, nb_frames - n_fft // hop))  # no DC/Nyquist, no edge frames
    back = audio.stft(y, n_fft, hop, win, window)[inner]
    return float(np.sqrt(np.mean(np.abs(Z[inner]) ** 2) / np.mean(np.abs(back) ** 2)))


def prior_rows(stats: TrainingStats, top_db: float, range_db: float) -> list[float]:
    """The mean accompaniment power as the network's rows: net units ``2u - 1``, highest frequency first, without
    the Nyquist bin (as `transforms.pixels_to_net` lays out an image).

    ``u`` is the power *above the floor* that `model.PowerSum` adds, ``floor * expm1(k u) = mean`` with
    ``k = range_db ln(10) / 10``, so an untrained model adds the mean itself. (Read as a plain level,
    ``floor * exp(k u)``, it added the mean less the floor: 3 dB short at 3 dB over the floor, and nothing in
    the 300 of 512 chorale rows whose geometric mean lies under it.)"""
    u = np.clip(np.log1p(stats.mean_power / floor_power(top_db, range_db)) / power_scale(range_db), 0.0, 1.0)
    return [round(float(2.0 * x - 1.0), 7) for x in u[::-1][1:]]


#: `parallel`'s added voices: (semitones from the vocals, gain): a major sixth below, and two octaves below
PARALLEL_VOICES = ((-9, 1.0), (-24, 1.0))


def parallel(Z_vocals: np.ndarray, stats: TrainingStats | None = None, meta: ImageMeta | None = None,
             phase: str = "griffinlim") -> np.ndarray:
    """The vocals plus copies of them a major sixth and two octaves lower (`PARALLEL_VOICES`): a harmoniser that
    follows the tune and knows no chords. ``stats`` and ``phase`` are not used (the copies keep their own phase);
    ``meta`` gives the STFT geometry (default: 44.1 kHz, Hann, hop a quarter of the frame).

    The shift is made on the vocals' audio (the inverse STFT, then librosa's pitch_shift: a phase vocoder and a
    resampling), and the shifted audio's STFT is added to the vocals' in the image's geometry. Shifting in the STFT
    would stretch the frequency axis and leave each bin's phase advancing at the old pitch's rate, so the inverse
    STFT would not sound at the new pitch; on 43 Hz bins, a voice two octaves down also lies between bins."""
    import librosa

    from vocals2song import audio

    n_fft = 2 * (Z_vocals.shape[0] - 1)
    sr, hop, win, window = ((meta.sr, meta.hop, meta.win, meta.window) if meta is not None
                            else (44100, n_fft // 4, n_fft, "hann"))
    y = audio.istft(Z_vocals, hop, win, window)
    added = sum(gain * librosa.effects.pitch_shift(y, sr=sr, n_steps=steps) for steps, gain in PARALLEL_VOICES)
    Z_added = audio.stft(np.asarray(added, dtype=y.dtype), n_fft, hop, win, window)
    return Z_vocals + Z_added[:, : Z_vocals.shape[1]].astype(Z_vocals.dtype)


#: ``(Z_vocals, stats, meta, phase=...) -> Z_song``; ``phase`` (`SONG_PHASES`) for those that lay a power on
Baseline = Callable[..., np.ndarray]
#: name -> baseline, in the order reports list them
BASELINES: dict[str, Baseline] = {"vocals_only": vocals_only, "mean_accompaniment": mean_accompaniment,
                                  "parallel": parallel}
