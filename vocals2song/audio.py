"""Audio in and out: loading, mono mix-down, resampling, STFT and its inverse, Griffin-Lim, SNR.

Waveforms are lower case: ``y`` is ``(nb_samples,)`` mono or ``(nb_samples, nb_channels)``.
Spectrograms are capitals: ``Z`` is complex ``(nb_bins, nb_frames)``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from vocals2song.errors import Vocals2SongError
from vocals2song.files import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".m4a", ".mp4")


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(nb_samples, nb_channels)`` and its sample rate.

    soundfile reads WAV/FLAC/OGG/MP3 losslessly and fast; anything else goes through ffmpeg
    (stempeg). Raises Vocals2SongError for missing, unreadable, empty or non-finite audio.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise Vocals2SongError("no such file", path)
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc_sf:  # noqa: BLE001 - soundfile raises several types
        if path.suffix.lower() not in (".mp4", ".m4a", ".aac", ".mp3"):
            raise Vocals2SongError(f"cannot read audio ({_first_line(exc_sf)}); is it a WAV/FLAC/MP3 file?",
                                   path) from exc_sf
        y, sr = _load_with_ffmpeg(path)
    return check_audio(y, path), int(sr)


#: integer PCM subtypes read as integers, and the full scale of those integers (24-bit ones come left-aligned in
#: int32). Not PCM_32: 32-bit integers do not fit float32, so mixing them would round differently from load_audio.
INTEGER_PCM = {"PCM_16": ("int16", 2.0**15), "PCM_24": ("int32", 2.0**31)}


def load_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """`load_audio` then `to_mono`, with the same samples and errors; 16 and 24-bit PCM files are read as integers
    and mixed straight to float32, which is about 3x faster (integers need no finiteness check either)."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            dtype, full_scale = INTEGER_PCM.get(f.subtype, (None, None))
            q = f.read(dtype=dtype, always_2d=True) if dtype else None
            sr = f.samplerate
    except Exception:  # noqa: BLE001 - load_audio below says what is wrong
        q = None
    if q is None or q.size == 0:
        y, sr = load_audio(path)
        return to_mono(y), sr
    mono = q[:, 0].astype(np.float32)
    for channel in range(1, q.shape[1]):
        mono += q[:, channel]
    mono *= np.float32(1.0 / q.shape[1]) / np.float32(full_scale)
    return mono, int(sr)


def _load_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    import stempeg

    try:
        y, sr = stempeg.read_stems(str(path), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - ffmpeg errors come in many types
        raise Vocals2SongError(f"ffmpeg cannot decode it ({_first_line(exc)})", path) from exc
    return np.asarray(y, dtype=np.float32), int(sr)


def load_stems(path: str | os.PathLike, stem_ids: list[int]) -> tuple[list[np.ndarray], int]:
    """Read streams of a ``.stem.mp4`` (MUSDB18): a list of ``(nb_samples, nb_channels)`` float32."""
    y, sr = _load_with_ffmpeg(Path(path))
    if y.ndim != 3 or y.shape[0] <= max(stem_ids):
        raise Vocals2SongError(f"expected a stem file with {max(stem_ids) + 1}+ streams, found "
                               f"{1 if y.ndim < 3 else y.shape[0]}", path)
    return [check_audio(y[i], path) for i in stem_ids], sr


def check_audio(y: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    if y.size == 0:
        raise Vocals2SongError("the audio is empty", path)
    if not np.isfinite(y).all():
        raise Vocals2SongError("the audio contains NaN or infinite samples; repair or re-export it", path)
    return y


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def to_mono(y: np.ndarray) -> np.ndarray:
    """``(nb_samples, nb_channels)`` -> ``(nb_samples,)``: the mean of the channels."""
    if y.ndim == 1:
        return y
    # Column by column: numpy's mean over the short, strided channel axis is ~4x slower.
    mono = y[:, 0].astype(np.float32, copy=True)
    for channel in range(1, y.shape[1]):
        mono += y[:, channel]
    if y.shape[1] > 1:
        mono *= np.float32(1.0 / y.shape[1])
    return mono


def resample(y: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample along the first axis with soxr "HQ" (librosa's default); a no-op when the rates match."""
    if sr_from == sr_to:
        return y
    import soxr

    return soxr.resample(y, sr_from, sr_to, quality="HQ").astype(np.float32, copy=False)


@functools.lru_cache(maxsize=8)
def stft_window(n_fft: int, win: int, window: str = "hann") -> np.ndarray:
    """librosa's analysis window: periodic ``window`` of ``win`` samples, centred in ``n_fft``. float64."""
    if window == "hann":
        w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
    else:
        import scipy.signal

        w = scipy.signal.get_window(window, win, fftbins=True)
    left = (n_fft - win) // 2
    return np.pad(w, (left, n_fft - win - left))


def stft(y: np.ndarray, n_fft: int, hop: int, win: int, window: str = "hann") -> np.ndarray:
    """``(nb_samples,)`` -> complex ``(nb_bins, nb_frames)``, equal to ``librosa.stft(center=True,
    pad_mode="constant")`` (tests check it), without importing librosa: its import costs each encoding
    worker about a second. Precision follows ``y``: float32 -> complex64, float64 -> complex128.
    """
    import scipy.fft

    frames, w = _frames(y, n_fft, hop, win, window)
    return scipy.fft.rfft(frames * w, axis=1).T


def stft_blocks(y: np.ndarray, n_fft: int, hop: int, win: int, window: str = "hann", block: int = 256):
    """`stft` in blocks of ``block`` frames: yields ``(first frame, complex (nb_bins, n))``, equal to the slices of
    ``stft(y, ...)``. Each block stays in the CPU cache through whatever follows it, which makes sound2image's
    encoding about 20% faster than one (513, 2584) pass (scripts/bench_sound2image.py). A yielded block is only
    valid until the next one is asked for.
    """
    import scipy.fft

    frames, w = _frames(y, n_fft, hop, win, window)
    buffer = np.empty((min(block, len(frames)), n_fft), dtype=frames.dtype)
    for start in range(0, len(frames), block):
        windowed = buffer[: min(block, len(frames) - start)]
        np.multiply(frames[start: start + block], w, out=windowed)
        yield start, scipy.fft.rfft(windowed, axis=1, overwrite_x=True).T


def _frames(y: np.ndarray, n_fft: int, hop: int, win: int, window: str) -> tuple[np.ndarray, np.ndarray]:
    """Centered, zero-padded frames ``(nb_frames, n_fft)`` of ``y`` (a view) and the window in their dtype."""
    y = np.asarray(y)
    if y.dtype not in (np.float32, np.float64):
        y = y.astype(np.float32)
    padded = np.pad(y, n_fft // 2)
    nb_frames = 1 + len(y) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:nb_frames]
    return frames, stft_window(n_fft, win, window).astype(y.dtype)


def istft(Z: np.ndarray, hop: int, win: int, window: str = "hann", length: int | None = None) -> np.ndarray:
    """Inverse of `stft`: complex ``(nb_bins, nb_frames)`` -> ``(length,)``, equal to ``librosa.istft(center=True)``.

    Weighted overlap-add of the inverse FFTs, divided by the summed squared window where it is not ~0.
    """
    import scipy.fft

    n_fft = 2 * (Z.shape[0] - 1)
    nb_frames = Z.shape[1]
    if length is not None:  # frames past the requested length do not contribute
        nb_frames = min(nb_frames, -(-(length + 2 * (n_fft // 2)) // hop))
    w = stft_window(n_fft, win, window)
    frames = scipy.fft.irfft(Z[:, :nb_frames].T, n=n_fft, axis=1)  # (nb_frames, n_fft)
    frames *= w.astype(frames.dtype)
    y = _overlap_add(frames, hop)
    norm = _overlap_add(np.broadcast_to(w.astype(frames.dtype) ** 2, frames.shape), hop)
    nonzero = norm > np.finfo(frames.dtype).tiny
    y[nonzero] /= norm[nonzero]
    start = n_fft // 2
    y = y[start:] if length is not None else y[start: len(y) - n_fft // 2]
    if length is not None:
        y = y[:length] if len(y) >= length else np.pad(y, (0, length - len(y)))
    return y


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Sum ``(nb_frames, n_fft)`` frames placed ``hop`` apart -> ``(n_fft + hop*(nb_frames-1),)``."""
    nb_frames, n_fft = frames.shape
    y = np.zeros(n_fft + hop * (nb_frames - 1), dtype=frames.dtype)
    if n_fft % hop == 0:  # vectorised: add the frames' hop-long blocks, block column by block column
        blocks = n_fft // hop
        shaped = y.reshape(-1, hop)
        for b in range(blocks):
            shaped[b: b + nb_frames] += frames[:, b * hop: (b + 1) * hop]
    else:
        for i in range(nb_frames):
            y[i * hop: i * hop + n_fft] += frames[i]
    return y


def griffinlim(S: np.ndarray, hop: int, win: int, window: str = "hann", iters: int = 32,
               phase: np.ndarray | None = None, length: int | None = None, momentum: float = 0.99) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al. 2013) from magnitudes ``S`` ``(nb_bins, nb_frames)``.

    Unlike `librosa.griffinlim`, it starts from a given ``phase`` (radians) when there is one, so a
    stored or predicted phase is refined instead of thrown away. Returns ``(length,)``.
    """
    n_fft = 2 * (S.shape[0] - 1)
    if phase is None:
        angles = np.exp(2j * np.pi * np.random.default_rng(0).random(S.shape))
    else:
        angles = np.exp(1j * phase)
    # Frames for the inverse must cover the same span as the forward STFT.
    nb_samples = length if length is not None else hop * (S.shape[1] - 1)
    rebuilt = np.zeros_like(angles)
    for _ in range(iters):
        y = istft(S * angles, hop, win, window, length=nb_samples)
        previous = rebuilt
        rebuilt = stft(y, n_fft, hop, win, window)[:, : S.shape[1]]
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles /= np.abs(angles) + 1e-16
    return istft(S * angles, hop, win, window, length=nb_samples)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB (inf when identical)."""
    reference = np.asarray(reference, dtype=np.float64)
    error = reference - np.asarray(estimate, dtype=np.float64)
    noise = float(np.sum(error**2))
    signal = float(np.sum(reference**2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-300) / noise)


def rms_db(y: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    power = float(np.mean(np.square(y, dtype=np.float64))) if y.size else 0.0
    return 10.0 * np.log10(power) if power > 0 else float("-inf")


def write_wav(path: str | os.PathLike, y: np.ndarray, sr: int) -> None:
    """Write 32-bit float WAV atomically (float keeps the codec's fidelity; no clipping)."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.asarray(y, dtype=np.float32), sr, subtype="FLOAT", format="WAV")
