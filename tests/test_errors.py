"""Bad input: one line naming the file and what to do, the rest of the batch done, nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import SR
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from vocals2song.errors import Vocals2SongError
from vocals2song.files import atomic_path

SEG = ["--segment", "2"]


def one_line_errors(result) -> list[str]:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in result.stderr
    return lines


def no_partial_files(root) -> bool:
    return not [p for p in root.rglob("*") if ".part" in p.name]


def test_missing_source_is_a_usage_error(tmp_path, run_cli):
    result = run_cli("sound2image", tmp_path / "nope", tmp_path / "out")
    assert result.exit_code == 2
    assert one_line_errors(result) == [f"Error: {tmp_path / 'nope'}: no such file or folder"]


def test_folder_without_tracks_is_a_usage_error(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    result = run_cli("sound2image", tmp_path / "empty", tmp_path / "out")
    assert result.exit_code == 2 and "not a MUSDB18 root" in result.stderr


@pytest.mark.parametrize("damage,message", [
    ("corrupt", "cannot read audio"),
    ("nan", "NaN"),
    ("short", "differ in length"),
    ("missing", "has no vocals.wav"),
])
def test_bad_track_fails_alone(tree_copy, tmp_path, run_cli, damage, message):
    folder = tree_copy / "train" / "A - One"
    if damage == "corrupt":
        (folder / "vocals.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    elif damage == "nan":
        y, sr = sf.read(folder / "vocals.wav", dtype="float32")
        y[1000] = np.nan
        sf.write(folder / "vocals.wav", y, sr, subtype="FLOAT")
    elif damage == "short":
        y, sr = sf.read(folder / "mixture.wav", dtype="float32")
        sf.write(folder / "mixture.wav", y[: len(y) // 2], sr)
    else:
        (folder / "vocals.wav").unlink()
    out = tmp_path / "out"
    result = run_cli("sound2image", tree_copy, out, *SEG)
    assert result.exit_code == 1, result.output
    errors = one_line_errors(result)
    assert len(errors) == 1 and str(folder) in errors[0] and message in errors[0]
    assert "1 of 3 tracks failed" in result.stderr
    manifest = json.loads((out / "dataset.json").read_text())
    assert sorted(manifest["tracks"]) == ["Actions - One Minute Smile", "B - Two"]  # the others are done
    assert not list((out / "train" / "vocals").glob("A - One*")) if (out / "train" / "vocals").exists() else True
    assert no_partial_files(out)


def test_corrupt_manifest_is_reported(small_tree, tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset.json").write_text("{not json")
    result = run_cli("sound2image", small_tree, out, *SEG)
    assert result.exit_code == 2 and "dataset.json" in one_line_errors(result)[0]


def test_debug_shows_the_traceback(tmp_path, run_cli):
    with pytest.raises(Vocals2SongError):
        run_cli("sound2image", tmp_path / "nope", tmp_path / "out", "--debug")


@pytest.fixture
def images(small_tree, tmp_path, run_cli):
    out = tmp_path / "images"
    assert run_cli("sound2image", small_tree / "test" / "B - Two", out, *SEG).exit_code == 0
    return sorted(out.rglob("*.png"))


def test_image_without_metadata_names_the_flags(images, tmp_path, run_cli):
    bare = tmp_path / "bare.png"
    Image.open(images[0]).save(bare)  # re-saved by another tool: the metadata is gone
    result = run_cli("image2sound", bare, "--out", tmp_path / "wav")
    assert result.exit_code == 1
    (error,) = one_line_errors(result)
    assert str(bare) in error and "no vocals2song metadata" in error
    for flag in ("--format", "--sr", "--n-fft", "--hop"):
        assert flag in error
    # ... and with those flags it decodes
    result = run_cli("image2sound", bare, "--out", tmp_path / "wav", "--format", "rgb8", "--sr", SR,
                     "--n-fft", "1024", "--hop", "256")
    assert result.exit_code == 0, result.output
    y, sr = sf.read(tmp_path / "wav" / "bare.wav")
    assert sr == SR and len(y) == 256 * (Image.open(bare).width - 1) and np.abs(y).max() > 0.01


@pytest.mark.parametrize("damage,message", [
    ("truncated", "corrupt or truncated"),
    ("text", "not a PNG, BMP or TIFF"),
    ("resized", "rows"),
    ("badmeta", "metadata is not valid"),
])
def test_bad_image_fails_alone(images, tmp_path, run_cli, damage, message):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = folder / "good.png"
    good.write_bytes(images[0].read_bytes())
    bad = folder / "bad.png"
    if damage == "truncated":
        bad.write_bytes(images[1].read_bytes()[:5000])
    elif damage == "text":
        bad.write_text("hello")
    else:
        with Image.open(images[1]) as im:
            info = PngInfo()
            if damage == "resized":
                info.add_text("vocals2song", im.text["vocals2song"])
                im.resize((im.width, 400)).save(bad, pnginfo=info)
            else:
                info.add_text("vocals2song", im.text["vocals2song"][:-5])  # cut JSON
                im.save(bad, pnginfo=info)
    result = run_cli("image2sound", folder, "--out", tmp_path / "wav")
    assert result.exit_code == 1, result.output
    (error,) = one_line_errors(result)
    assert error.startswith(f"Error: {bad}: ") and message in error
    assert "1 of 2 images failed" in result.stderr
    assert sorted(p.name for p in (tmp_path / "wav").iterdir()) == ["good.wav"]


def test_image2sound_usage_errors(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    result = run_cli("image2sound", tmp_path / "empty", "--out", tmp_path / "wav")
    assert result.exit_code == 2 and "no .png, .bmp or .tiff images" in result.stderr
    result = run_cli("image2sound", tmp_path / "missing.png", "--out", tmp_path / "wav")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_image2sound_refuses_two_inputs_with_one_output_name(images, tmp_path, run_cli):
    vocals = next(p for p in images if p.parent.name == "vocals")
    mixture = vocals.parent.parent / "mixture" / vocals.name
    result = run_cli("image2sound", vocals, mixture, "--out", tmp_path / "wav")
    assert result.exit_code == 2 and "same" in one_line_errors(result)[0]
    assert not (tmp_path / "wav").exists()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new but broken")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_wrong_kind_of_source_file(images, tmp_path, run_cli):
    """An image given where audio belongs: one line naming it, exit 1, nothing written but the manifest."""
    out = tmp_path / "out"
    result = run_cli("sound2image", images[0], out)
    assert result.exit_code == 1
    (error,) = one_line_errors(result)
    assert error.startswith(f"Error: {images[0]}: cannot read audio")
    assert not [p for p in out.rglob("*") if p.is_file() and p.name != "dataset.json"]
