"""image2sound: a dataset decoded to WAVs in the same layout, two images of one name refused, summaries that count."""

from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf
from conftest import SR
from helpers import SEG

from vocals2song import audio


@pytest.mark.parametrize("phase", ["image", "griffinlim"])
def test_dataset_decodes_to_wavs_in_the_same_layout(small_tree, tmp_path, run_cli, phase):
    data, wav = tmp_path / "data", tmp_path / "wav"
    assert run_cli("sound2image", small_tree, data, *SEG, "--format", "png16", "--subsets", "test").exit_code == 0
    result = run_cli("image2sound", data, "--out", wav, "--phase", phase, "--iters", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((data / "dataset.json").read_text())
    for pair in manifest["pairs"]:
        for stem in ("vocals", "mixture"):
            y, sr = sf.read(wav / pair[stem].replace(".png", ".wav"))
            assert sr == SR and len(y) == pair["length"]  # the true length, not the padded one
    y, _ = sf.read(wav / "test/vocals/B - Two__000.wav", dtype="float32")
    source, _ = sf.read(small_tree / "test/B - Two/vocals.wav", dtype="float32")
    assert audio.snr_db(source.mean(axis=1)[: 2 * SR], y) > (80 if phase == "image" else 25)


def test_image2sound_refuses_two_images_of_one_name(train_data, tmp_path, run_cli):
    folder = tmp_path / "images"
    folder.mkdir()
    source = train_data / "test" / "vocals" / "B - Two__000.png"
    shutil.copy(source, folder / "x.png")
    shutil.copy(source, folder / "x.PNG")
    result = run_cli("image2sound", folder, "--out", tmp_path / "wav")
    assert result.exit_code == 2 and "would be written to the same x.wav" in result.stderr
    assert "rename one of them" in result.stderr and not (tmp_path / "wav").exists()


def test_summaries_count_and_say_what_was_done(train_data, tmp_path, run_cli):
    good = train_data / "test" / "vocals" / "B - Two__000.png"
    one = run_cli("image2sound", good, "--out", tmp_path / "one")
    assert one.exit_code == 0 and one.output.strip().endswith(": wrote 1 WAV file")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    bad = run_cli("image2sound", tmp_path / "bad.png", "--out", tmp_path / "bad")
    assert bad.exit_code == 1 and "1 of 1 images failed; none was done." in bad.stderr
    mixed = run_cli("image2sound", good, tmp_path / "bad.png", "--out", tmp_path / "mixed")
    assert mixed.exit_code == 1 and "1 of 2 images failed; the other 1 was done." in mixed.stderr
