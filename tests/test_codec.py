"""The codec: every format round-trips sound -> image file -> sound above its SPEC fidelity floor."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import roundtrip_file

from vocals2song import audio, codec
from vocals2song.config import CodecConfig

#: SPEC.md fidelity floors (SNR in dB, stored phase, real music)
FLOORS = {"rgb8": 40.0, "rgba8": 46.0, "tiff16": 85.0, "png16": 85.0, "float32": 120.0}
CASES = [("rgb8", "png"), ("rgb8", "bmp"), ("rgba8", "png"), ("tiff16", "tiff"), ("png16", "png"),
         ("float32", "tiff")]


@pytest.mark.parametrize("fmt,container", CASES)
@pytest.mark.parametrize("stem", ["mixture", "vocals"])
def test_real_music_roundtrip_meets_floor(excerpt, fmt, container, stem, tmp_path):
    y = excerpt[stem]
    y2, *_ = roundtrip_file(y, fmt, container, tmp_path)
    assert y2.shape == y.shape
    assert audio.snr_db(y, y2) >= FLOORS[fmt]


@pytest.mark.parametrize("fmt,container", CASES)
def test_synthetic_roundtrip_meets_floor(synthetic, fmt, container, tmp_path):
    y = synthetic["mixture"]
    y2, *_ = roundtrip_file(y, fmt, container, tmp_path)
    assert audio.snr_db(y, y2) >= FLOORS[fmt]


def test_geometry_of_a_15s_segment(tmp_path):
    """SPEC: at 44.1 kHz, n_fft 1024, hop 256, a 15 s segment is 513 rows x 2584 columns."""
    y = np.zeros(15 * 44100, dtype=np.float32)
    y[::997] = 0.1
    pixels, meta = codec.encode_audio(y, CodecConfig())
    assert pixels.shape == (513, 2584, 3) and pixels.dtype == np.uint8
    assert meta.top_db == pytest.approx(20 * np.log10(512))


def test_highest_frequency_in_row_zero():
    sr = 44100
    t = np.arange(sr) / sr
    high = (0.5 * np.sin(2 * np.pi * 20000 * t)).astype(np.float32)
    pixels, _ = codec.encode_audio(high, CodecConfig())
    loudest_row = int(np.argmax(pixels[..., 0].astype(float).mean(axis=1)))
    assert loudest_row < 513 * 0.15  # 20 kHz sits near the top (row 0 = 22.05 kHz)


def test_magnitude_scale_is_absolute():
    """Halving the amplitude lowers u by 6.02 dB / range_db everywhere: no per-image normalisation."""
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(44100)).astype(np.float32)
    cfg = CodecConfig(format="float32")
    loud, _ = codec.encode_audio(y, cfg)
    quiet, _ = codec.encode_audio(y / 2, cfg)
    delta = (loud[..., 0] - quiet[..., 0])[loud[..., 0] > 0.5]
    np.testing.assert_allclose(delta, 20 * np.log10(2) / 300, atol=1e-5)


def test_planes_inverse_to_float_precision():
    rng = np.random.default_rng(1)
    Z = (rng.standard_normal((513, 40)) + 1j * rng.standard_normal((513, 40))) * 10
    u, v = codec.spectrogram_to_planes(Z, top_db=54.19, range_db=300.0)
    Z2 = codec.planes_to_spectrogram(u, v, top_db=54.19, range_db=300.0)
    np.testing.assert_allclose(Z2, Z, rtol=1e-9, atol=1e-9)


def test_floor_decodes_to_silence():
    y = np.zeros(4096, dtype=np.float32)
    pixels, meta = codec.encode_audio(y, CodecConfig())
    assert pixels[..., 0].max() == 0
    assert np.all(codec.decode_audio(pixels, meta) == 0)


def test_padded_tail_decodes_to_true_length(tmp_path):
    rng = np.random.default_rng(2)
    y = (0.1 * rng.standard_normal(30000)).astype(np.float32)
    padded = np.pad(y, (0, 44100 - len(y)))
    y2, pixels, meta, _ = roundtrip_file(padded, "png16", "png", tmp_path, length=len(y))
    assert meta.length == len(y) and len(y2) == len(y)
    assert pixels.shape[1] == 1 + 44100 // 256  # the image spans the whole padded segment
    assert audio.snr_db(y, y2) > 85


def test_metadata_has_every_spec_field(tmp_path):
    y = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    _, _, meta, path = roundtrip_file(y, "rgba8", "png", tmp_path)
    fields = json.loads(meta.to_json())
    for key in ("format", "version", "sr", "n_fft", "hop", "win", "window", "top_db", "range_db", "split",
                "length", "source"):
        assert key in fields
    assert fields["source"] == {"track": "t", "stem": "vocals", "start": 0}
    assert 0 < fields["split"]["mag"] < 1 and fields["split"]["phase"] == 0.5
    # PNG metadata sits in a tEXt chunk under the key "vocals2song", which Pillow also sees.
    from PIL import Image

    with Image.open(path) as im:
        assert json.loads(im.text["vocals2song"])["format"] == "rgba8"


def test_rgba8_split_beats_rgb8(excerpt):
    """The split ranges of rgba8 must buy fidelity over rgb8 (SPEC: 46 vs 40 dB floors)."""
    y = excerpt["vocals"]
    snr = {}
    for fmt in ("rgb8", "rgba8"):
        pixels, meta = codec.encode_audio(y, CodecConfig(format=fmt))
        snr[fmt] = audio.snr_db(y, codec.decode_audio(pixels, meta))
    assert snr["rgba8"] > snr["rgb8"] + 4


def test_griffinlim_warm_start_keeps_stored_phase(excerpt):
    y = excerpt["vocals"][:44100]
    pixels, meta = codec.encode_audio(y, CodecConfig(format="png16"))
    warm = codec.decode_audio(pixels, meta, phase="griffinlim", iters=4)
    assert len(warm) == len(y)
    assert audio.snr_db(y, warm) > 30  # started from the stored phase, it stays close to the original


def test_resized_image_is_rejected():
    y = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    pixels, meta = codec.encode_audio(y, CodecConfig())
    with pytest.raises(Exception, match="rows"):
        codec.decode_audio(pixels[:400], meta)


@pytest.mark.parametrize("fmt", codec.COLUMNWISE_FORMATS)
@pytest.mark.parametrize("nb_samples", [256 * 600 + 77, 1000])
def test_blockwise_encoding_equals_whole_image(fmt, nb_samples):
    """encode_audio encodes these formats in blocks of frames (for speed); the pixels must be exactly those of the
    whole spectrogram at once, including a last, shorter block and a signal shorter than one block."""
    y = np.random.default_rng(1).standard_normal(nb_samples).astype(np.float32) * 0.1
    cfg = CodecConfig(format=fmt)
    pixels, meta = codec.encode_audio(y, cfg)
    whole, whole_meta = codec.encode_spectrogram(audio.stft(y, cfg.n_fft, cfg.hop, cfg.win_length), meta)
    assert pixels.shape == whole.shape and pixels.dtype == whole.dtype and meta == whole_meta
    np.testing.assert_array_equal(pixels, whole)


