"""Image pixels <-> what the network sees, forward and inverse side by side.

The network sees an image's channels without the empty B channel (R, G for the RGB formats; R, G, B, A for
``rgba8``), scaled to [-1, 1], with the Nyquist row (pixel row 0) dropped: ``(nb_bins - 1, nb_frames, nb_channels)``,
highest frequency first, like the image. The TensorFlow input pipeline (`data.py`) does the same scaling in
TensorFlow ops; `pixel_scale` is the one place that says what full scale is.
"""

from __future__ import annotations

import numpy as np

from vocals2song import codec

#: format -> the pixel channels the network sees
NET_CHANNELS = {"rgb8": (0, 1), "rgba8": (0, 1, 2, 3), "tiff16": (0, 1), "png16": (0, 1), "float32": (0, 1)}


def nb_net_channels(fmt: str) -> int:
    return len(NET_CHANNELS[fmt])


def pixel_scale(fmt: str) -> float:
    """The pixel value that maps to +1 (0 maps to -1)."""
    dtype = codec.CODECS[fmt][2]
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def pixels_to_net(pixels: np.ndarray, fmt: str) -> np.ndarray:
    """Pixels ``(nb_bins, nb_frames, nb_pixel_channels)`` -> float32 ``(nb_bins - 1, nb_frames, nb_channels)``."""
    x = pixels[1:, :, list(NET_CHANNELS[fmt])].astype(np.float32)
    x *= 2.0 / pixel_scale(fmt)
    x -= 1.0
    return x


def net_to_planes(x: np.ndarray, fmt: str, split: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Network output ``(nb_bins - 1, nb_frames, nb_channels)`` in [-1, 1] -> planes ``u``, ``v``.

    The planes are ``(nb_bins, nb_frames)`` float32 in [0, 1], lowest frequency first (as `codec.decode_planes`
    gives them), with silence in the dropped Nyquist row. The output is not quantised to the format's bit depth.
    ``rgba8`` needs the magnitude split point ``split["mag"]`` its targets were encoded with.
    """
    p = np.clip((np.asarray(x, dtype=np.float32) + 1.0) * 0.5, 0.0, 1.0)
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
