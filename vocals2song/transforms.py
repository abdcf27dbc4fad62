"""Image pixels <-> what the network sees, forward and inverse side by side.

The network sees an image's channels without the empty B channel (R, G for the RGB formats; R, G, B, A for
``rgba8``), scaled to [-1, 1], with the Nyquist row (pixel row 0) dropped: ``(nb_bins - 1, nb_frames, nb_channels)``,
highest frequency first, like the image. The TensorFlow input pipeline (`data.py`) does the same scaling in
TensorFlow ops; `pixel_scale` is the one place that says what full scale is.
"""

from __future__ import annotations

import functools

import numpy as np

from vocals2song import codec
from vocals2song.config import PHASE_REPRS
from vocals2song.errors import Vocals2SongError

#: format -> the pixel channels the network sees (with the stored phase, ``phase_repr="angle"``)
NET_CHANNELS = {"rgb8": (0, 1), "rgba8": (0, 1, 2, 3), "tiff16": (0, 1), "png16": (0, 1), "float32": (0, 1)}


def check_phase_repr(fmt: str, phase_repr: str) -> None:
    if phase_repr not in PHASE_REPRS:
        raise Vocals2SongError(f"unknown phase representation {phase_repr!r}; use one of {', '.join(PHASE_REPRS)}",
                               usage=True)
    if phase_repr != "angle" and fmt == "rgba8":
        raise Vocals2SongError(f"--phase-repr {phase_repr} needs one magnitude channel: use rgb8, png16, tiff16 or "
                               "float32 images (rgba8 splits the magnitude in two)", usage=True)


def net_channels(fmt: str, phase_repr: str = "angle") -> tuple[int, ...]:
    """The pixel channels the network sees: magnitude only for ``phase_repr="none"``."""
    return (0,) if phase_repr == "none" else NET_CHANNELS[fmt]


def nb_net_channels(fmt: str, phase_repr: str = "angle") -> int:
    return len(net_channels(fmt, phase_repr))


def phase_to_if(p: np.ndarray) -> np.ndarray:
    """Phase in net units (``angle / pi``, ``(nb_rows, nb_frames)``) -> instantaneous frequency in [-1, 1].

    GANSynth's (Engel et al. 2019): the frame-to-frame difference of the unwrapped phase, over pi; the first
    frame keeps its phase. The difference of the unwrapped phase is the wrapped difference of the phase.
    """
    p = np.asarray(p, dtype=np.float32)
    d = np.diff(p, axis=-1, prepend=np.zeros_like(p[..., :1]))
    return (d + 1.0) % 2.0 - 1.0


def if_to_phase(f: np.ndarray) -> np.ndarray:
    """Inverse of `phase_to_if`: the running sum over frames, wrapped back to [-1, 1)."""
    return (np.cumsum(np.asarray(f, dtype=np.float64), axis=-1) + 1.0) % 2.0 - 1.0


def pixel_scale(fmt: str) -> float:
    """The pixel value that maps to +1 (0 maps to -1)."""
    dtype = codec.CODECS[fmt][2]
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def pixels_to_net(pixels: np.ndarray, fmt: str, phase_repr: str = "angle") -> np.ndarray:
    """Pixels ``(nb_bins, nb_frames, nb_pixel_channels)`` -> float32 ``(nb_bins - 1, nb_frames, nb_channels)``."""
    x = pixels[1:, :, list(net_channels(fmt, phase_repr))].astype(np.float32)
    x *= 2.0 / pixel_scale(fmt)
    x -= 1.0
    if phase_repr == "if":
        x[..., 1] = phase_to_if(x[..., 1])
    return x


def net_to_planes(x: np.ndarray, fmt: str, split: dict | None = None,
                  phase_repr: str = "angle") -> tuple[np.ndarray, np.ndarray | None]:
    """Network output ``(nb_bins - 1, nb_frames, nb_channels)`` in [-1, 1] -> planes ``u``, ``v``.

    The planes are ``(nb_bins, nb_frames)`` float32 in [0, 1], lowest frequency first (as `codec.decode_planes`
    gives them), with silence in the dropped Nyquist row. The output is not quantised to the format's bit depth.
    ``rgba8`` needs the magnitude split point ``split["mag"]`` its targets were encoded with. A magnitude-only
    network (``phase_repr="none"``) gives ``v = None``: the phase comes from elsewhere.
    """
    x = np.asarray(x, dtype=np.float32)
    if phase_repr == "if":
        x = np.concatenate([x[..., :1], if_to_phase(x[..., 1])[..., None].astype(np.float32)], axis=-1)
    p = np.clip((x + 1.0) * 0.5, 0.0, 1.0)
    if phase_repr == "none":
        u = np.concatenate([np.zeros((1, p.shape[1]), dtype=np.float32), p[..., 0]])[::-1]
        return np.ascontiguousarray(u), None
    if fmt == "rgba8":
        s = float(split["mag"]) if split else 0.5
        u = s * p[..., 0] + (1.0 - s) * p[..., 2]
        v = codec.PHASE_SPLIT * p[..., 1] + (1.0 - codec.PHASE_SPLIT) * p[..., 3]
    else:
        u, v = p[..., 0], p[..., 1]
    nyquist = np.zeros((1, p.shape[1]), dtype=np.float32)
    u = np.concatenate([nyquist, u])[::-1]
    v = np.concatenate([nyquist + 0.5, v])[::-1]
    return np.ascontiguousarray(u), np.ascontiguousarray(v)


def crop_or_pad(x: np.ndarray, start: int, tile: int) -> np.ndarray:
    """Frames ``start:start+tile`` of ``(rows, frames, C)``, padded with -1 (silence) past the end."""
    out = np.full((x.shape[0], tile, x.shape[2]), -1.0, dtype=np.float32)
    part = x[:, start: start + tile]
    out[:, : part.shape[1]] = part
    return out


# --- the frequency axis: linear STFT rows, or log-frequency rows ---------------------------------------------

#: the log-frequency view: 3 rows per semitone from A1 (55 Hz), 256 rows, so up to 7.5 kHz: every alto, tenor
#: and bass fundamental and the partials that tell a chord (basic-pitch's harmonic CQT has 3 bins per semitone)
LOG_FMIN = 55.0
LOG_ROWS_PER_SEMITONE = 3
LOG_ROWS = 256


def log_frequencies(nb_rows: int = LOG_ROWS, fmin: float = LOG_FMIN,
                    per_semitone: int = LOG_ROWS_PER_SEMITONE) -> np.ndarray:
    """The centre frequencies in Hz ``(nb_rows,)`` of the log-frequency rows, lowest first."""
    return fmin * 2.0 ** (np.arange(nb_rows) / (12.0 * per_semitone))


@functools.lru_cache(maxsize=16)
def log_frequency_matrices(nb_bins: int, sr: int, nb_rows: int = LOG_ROWS, fmin: float = LOG_FMIN,
                           per_semitone: int = LOG_ROWS_PER_SEMITONE) -> tuple[np.ndarray, np.ndarray]:
    """The fixed maps between STFT rows and log-frequency rows, both lowest frequency first:
    ``(to_log (nb_rows, nb_bins), from_log (nb_bins, nb_rows))``, float32.

    Each log row is a weighted mean of the STFT rows near its centre: a triangle as wide as the larger of its
    spacing to its neighbours and the STFT's bin spacing, so that at low frequencies (rows finer than the bins)
    it interpolates between the two nearest bins, and at high ones it averages the bins between its neighbours.
    A transposition by ``s`` semitones is then a shift by ``per_semitone * s`` rows, from the lowest note the STFT
    resolves (E3 at 44.1 kHz and n_fft 1024, C2 at 4096). ``from_log`` is its pseudo-inverse over the STFT rows
    the view sees, so a plane comes back exactly where the log rows are finer than the bins (up to about 2.2 kHz
    at n_fft 1024) and smoothed above (1.7 dB RMS on synthetic music); rows outside the view (under ``fmin``, over
    the top row) get nothing (all-zero rows). Meant for planes in dB (the codec's ``u``). Made once per geometry
    (cached: the pictures and the network's views ask again and again); the arrays are read-only."""
    bin_hz = sr / 2.0 / (nb_bins - 1)
    bins = np.arange(nb_bins) * bin_hz
    centres = log_frequencies(nb_rows, fmin, per_semitone)
    ratio = 2.0 ** (1.0 / (12.0 * per_semitone))
    width = np.maximum(centres * (ratio - 1.0), bin_hz)  # the triangle's half-width
    weights = np.maximum(0.0, 1.0 - np.abs(bins[None, :] - centres[:, None]) / width[:, None])
    weights[centres > bins[-1]] = 0.0  # a row over Nyquist sees nothing
    to_log = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    from_log = np.linalg.pinv(to_log)
    from_log[weights.sum(axis=0) == 0] = 0.0
    to_log, from_log = to_log.astype(np.float32), from_log.astype(np.float32)
    to_log.flags.writeable = from_log.flags.writeable = False
    return to_log, from_log


def to_log_rows(u: np.ndarray, to_log: np.ndarray) -> np.ndarray:
    """A plane ``(nb_bins, ...)``, lowest frequency first, on the log-frequency rows ``(nb_rows, ...)``."""
    return np.tensordot(to_log, np.asarray(u, dtype=np.float32), axes=(1, 0))


def from_log_rows(v: np.ndarray, from_log: np.ndarray) -> np.ndarray:
    """Log-frequency rows ``(nb_rows, ...)`` back on STFT rows ``(nb_bins, ...)`` (0 outside the view)."""
    return np.tensordot(from_log, np.asarray(v, dtype=np.float32), axes=(1, 0))
