"""Image files: the containers (PNG, BMP, TIFF) keep the pixels and the metadata, and other writers' PNGs read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import SR
from helpers import SEG, roundtrip_file

from vocals2song import audio, imagefile


def test_bmp_container_roundtrip(small_tree, tmp_path, run_cli):
    data, wav = tmp_path / "data", tmp_path / "wav"
    assert run_cli("sound2image", small_tree / "test" / "B - Two", data, *SEG, "--container", "bmp").exit_code == 0
    bmps = sorted(data.rglob("*.bmp"))
    assert len(bmps) == 4
    assert run_cli("image2sound", *bmps[:2], "--out", wav).exit_code == 0
    assert sorted(p.name for p in wav.iterdir()) == ["B - Two__000.wav", "B - Two__001.wav"]
    source, _ = sf.read(small_tree / "test/B - Two/mixture.wav", dtype="float32")
    source = source.mean(axis=1)
    for k, bmp in enumerate(bmps[:2]):  # mixture 000 (0-2 s) and 001 (2-3 s, a tail padded to 2 s)
        assert bmp.parent.name == "mixture"
        y, sr = sf.read(wav / f"{bmp.stem}.wav", dtype="float32")
        expected = source[k * 2 * SR: (k + 1) * 2 * SR]
        assert sr == SR and len(y) == len(expected)
        snr = audio.snr_db(expected, y)
        assert snr >= 40.0, snr  # the rgb8 floor (SPEC.md, "Fidelity floors"); measured 42.3 and 42.4 dB


def test_tiff_metadata_in_image_description(tmp_path):
    import tifffile

    y = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    _, _, _, path = roundtrip_file(y, "tiff16", "tiff", tmp_path)
    with tifffile.TiffFile(path) as tif:
        assert json.loads(tif.pages[0].description)["format"] == "tiff16"
        assert tif.pages[0].dtype == np.uint16 and tif.pages[0].shape[-1] == 3


def test_png16_reads_natively_in_tensorflow(tmp_path):
    """The training pipeline decodes png16 with tf.io.decode_png(dtype=uint16): it must see our pixels."""
    tf = pytest.importorskip("tensorflow")
    y = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    _, pixels, _, path = roundtrip_file(y, "png16", "png", tmp_path)
    decoded = tf.io.decode_png(tf.io.read_file(str(path)), channels=3, dtype=tf.uint16).numpy()
    np.testing.assert_array_equal(decoded, pixels)


def test_png_written_by_other_tools_reads_back(tmp_path):
    """Our writer uses filter 0; PNGs from other writers use row filters and take the fallback readers."""
    from PIL import Image

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, size=(64, 80, 3)), axis=1)  # filters pay off: Pillow will use them
    rgb8 = (smooth % 256).astype(np.uint8)
    Image.fromarray(rgb8).save(tmp_path / "pil.png", compress_level=9)
    np.testing.assert_array_equal(imagefile.read_image(tmp_path / "pil.png")[0], rgb8)
    tf = pytest.importorskip("tensorflow")
    rgb16 = (smooth * 257).astype(np.uint16)
    (tmp_path / "tf.png").write_bytes(tf.io.encode_png(rgb16).numpy())
    pixels, meta = imagefile.read_image(tmp_path / "tf.png")
    np.testing.assert_array_equal(pixels, rgb16)
    assert meta is None
