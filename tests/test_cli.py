"""The command line: help with examples, cheap start-up, and the sound2image -> image2sound chain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import SR
from vocals2song import audio

SEG = ["--segment", "2"]


@pytest.mark.parametrize("command", ["sound2image", "image2sound", "train", "predict", "evaluate", "chorales", "demo"])
def test_help_has_examples(run_cli, command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and f"vocals2song {command}" in result.output


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from vocals2song.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('tensorflow', 'librosa', 'musdb', 'stempeg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


def test_python_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "vocals2song", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "vocals2song" in result.stdout


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


def test_container_must_fit_the_format(small_tree, tmp_path, run_cli):
    result = run_cli("sound2image", small_tree, tmp_path / "o", "--format", "png16", "--container", "bmp")
    assert result.exit_code == 2 and "--container bmp does not hold format png16" in result.stderr
