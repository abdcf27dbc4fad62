"""The training pairs and the tf.data stream: pairing, splits that keep tracks apart, crops, decoding, the phase
channel, and folders without metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import PUBLISHED, QUICK_TRAIN
from helpers import ROWS

from vocals2song import data as data_mod
from vocals2song.errors import Vocals2SongError
from vocals2song.imagefile import read_image

tf = pytest.importorskip("tensorflow")


def _self_pairs(train_data, tmp_path) -> Path:
    """A flat input/ + output/ folder where every target is its input: any crop must match exactly."""
    root = tmp_path / "self"
    for sub in ("input", "output"):
        shutil.copytree(train_data / "train" / "vocals", root / sub)
    return root


def test_stream_pairs_and_crops_identically(train_data, tmp_path):
    pairs = data_mod.find_pairs(_self_pairs(train_data, tmp_path), "input", "output")
    assert pairs.meta.format == "rgb8" and pairs.held_out
    ds = data_mod.make_dataset(pairs.train, "rgb8", ROWS, 128, batch_size=3, seed=0)
    offsets = set()
    for x, y in ds.take(6):
        assert x.shape == (3, ROWS, 128, 2) and x.dtype == tf.float32
        np.testing.assert_array_equal(x.numpy(), y.numpy())
        assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        offsets.add(float(x[0, 100, 0, 1]))  # a phase pixel: differs between crops
    assert len(offsets) > 1


def test_stream_decodes_like_numpy_with_nyquist_dropped(train_data):
    pairs = data_mod.find_pairs(train_data)
    width = read_image(pairs.train[0].input)[0].shape[1]
    ds = data_mod.make_dataset(pairs.train[:1], "rgb8", ROWS, width, batch_size=1, crops_per_image=1)
    x, y = next(iter(ds))
    np.testing.assert_allclose(x[0].numpy(), data_mod.load_net_image(pairs.train[0].input, "rgb8"), atol=1e-6)
    np.testing.assert_allclose(y[0].numpy(), data_mod.load_net_image(pairs.train[0].target, "rgb8"), atol=1e-6)
    pixels = read_image(pairs.train[0].target)[0]
    assert np.allclose(y[0, 0, :, 0].numpy(), pixels[1, :, 0] / 127.5 - 1)  # row 0 of the net = pixel row 1


def test_pipeline_if_equals_numpy_if(train_data):
    """The tf.data stream computes the same instantaneous frequency as `transforms.pixels_to_net`."""
    from vocals2song.data import find_pairs, load_net_image, make_dataset

    pairs = find_pairs(train_data)
    pair = pairs.train[0]
    ds = make_dataset([pair], "rgb8", 512, 64, 1, seed=0, crops_per_image=1, shuffle_tiles=1, phase_repr="if")
    x, _ = next(iter(ds))
    full = load_net_image(pair.input, "rgb8", "if")
    tile = np.asarray(x[0])
    starts = [s for s in range(full.shape[1] - 63) if np.allclose(full[:, s: s + 64, 0], tile[..., 0])]
    assert starts, "the tile's magnitude is not a crop of the image"
    np.testing.assert_allclose(full[:, starts[0]: starts[0] + 64, 1], tile[..., 1], atol=1e-5)


def test_dataset_splits_keep_tracks_apart(train_data):
    pairs = data_mod.find_pairs(train_data)
    assert len(pairs.train) == 8 and len(pairs.valid) == 2 and not pairs.held_out
    assert {p.track for p in pairs.valid} == {"Actions - One Minute Smile"}
    assert not {p.track for p in pairs.train} & {p.track for p in pairs.valid}


def test_hold_out_whole_tracks_without_a_valid_split(train_data, tmp_path):
    root = tmp_path / "flat"
    for sub in ("vocals", "mixture"):
        (root / sub).mkdir(parents=True)
        for split in ("train", "valid", "test"):
            for f in (train_data / split / sub).iterdir():
                shutil.copy(f, root / sub / f.name)
    pairs = data_mod.find_pairs(root)
    assert pairs.held_out and pairs.valid
    held = {p.track for p in pairs.valid}
    assert not held & {p.track for p in pairs.train}  # never neighbouring segments of a training track
    assert len(pairs.train) + len(pairs.valid) == 13


def test_track_of_without_metadata():
    assert data_mod.track_of(Path("Song name__003.png"), None) == "Song name"
    assert data_mod.track_of(Path("song_12.png"), None) == "song"
    assert data_mod.track_of(Path("x.png"), '{"source": {"track": "T"}}') == "T"


def test_unmatched_and_unreadable_images_are_named(train_data, tmp_path):
    root = _self_pairs(train_data, tmp_path)
    lonely = root / "input" / "zz only here__000.png"
    shutil.copy(root / "input" / "A - One__000.png", lonely)
    with pytest.raises(Vocals2SongError, match="zz only here__000.png"):
        data_mod.find_pairs(root, "input", "output")
    lonely.unlink()
    victim = root / "output" / "A - One__001.png"
    victim.write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(Vocals2SongError, match="truncated") as err:
        data_mod.find_pairs(root, "input", "output")
    assert "A - One__001.png" in str(err.value)


@pytest.mark.slow
def test_seed_layout_without_metadata(train_data, tmp_path, run_cli):
    """The seed project's input/ + output/ folders of plain 8-bit PNGs (no metadata) train too."""
    from PIL import Image

    root = tmp_path / "seed"
    for sub, stem in (("input", "vocals"), ("output", "mixture")):
        (root / sub).mkdir(parents=True)
        for f in sorted((train_data / "train" / stem).iterdir())[:4]:
            Image.fromarray(read_image(f)[0]).save(root / sub / f"song_{f.stem[-1]}.png")
    result = run_cli("train", root, tmp_path / "run", "--input-subdir", "input", "--target-subdir", "output",
                     "--steps", "2", *[a for a in QUICK_TRAIN if a not in PUBLISHED])  # the default recipe, whose
    assert result.exit_code == 0, result.output  # prior decodes these images with the codec found for them
    assert "validation uses training pairs" in result.output
