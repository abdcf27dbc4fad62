"""Helpers shared by several test files: the network's rows, CLI flags, a codec round trip, predictor configs."""

from __future__ import annotations

import sys

import numpy as np
from conftest import QUICK_TRAIN, SR

from vocals2song import codec, imagefile
from vocals2song.config import CodecConfig

#: rows of the network's images (513 bins less the Nyquist row)
ROWS = 512
SEG = ["--segment", "2"]


def roundtrip_file(y, fmt, container, tmp_path, length=None):
    cfg = CodecConfig(format=fmt, container=container)
    pixels, meta = codec.encode_audio(y, cfg, source={"track": "t", "stem": "vocals", "start": 0}, length=length)
    path = tmp_path / f"x{imagefile.EXTENSIONS[container]}"
    imagefile.write_image(path, pixels, meta.to_json())
    pixels2, meta_json = imagefile.read_image(path)
    assert meta_json is not None, "metadata must be embedded in the file"
    meta2 = codec.ImageMeta.from_json(meta_json)
    np.testing.assert_array_equal(pixels2, pixels)  # containers are lossless
    return codec.decode_audio(pixels2, meta2), pixels2, meta2, path


def _config(phase_repr: str, generator: str = "powersum", fmt: str = "rgb8", tile: int = 128) -> dict:
    """The config.json keys a `Predictor` reads, for a network built in the test."""
    from vocals2song.config import RANGE_DB

    return {"codec": {"format": fmt, "sr": SR, "n_fft": 1024, "hop": 256, "win": 1024, "window": "hann",
                      "top_db": 20 * np.log10(512), "range_db": RANGE_DB[fmt], "split": None},
            "target": "mixture", "training": {"tile": tile},
            "model": {"generator": generator, "phase_repr": phase_repr, "gate_radius": 0, "prior": None}}


def _encode(y: np.ndarray):
    return codec.encode_audio(y, CodecConfig())


def _train_cmd(data, run, *extra) -> list[str]:
    return [sys.executable, "-m", "vocals2song", "train", str(data), str(run), *QUICK_TRAIN, *extra]


def tiny_pix2pix(**fields):
    """The pix2pix recipe on the tiny model, with ``fields`` changed (a `TrainConfig` for `build_pix2pix`)."""
    from vocals2song.config import recipe_config

    return recipe_config("pix2pix", model="tiny", **fields)
