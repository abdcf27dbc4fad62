"""Listening pages: the HTML, the page audio, and the pages of evaluate, predict and demo in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import browser
import numpy as np
import pytest
import soundfile as sf
from conftest import SR
from PIL import Image

from vocals2song.listen import MetricsTable, PageItem, page_html, write_listening_page, write_page_audio
from vocals2song.synth import synth_stems

needs_chromium = pytest.mark.skipif(browser.find_chromium() is None,
                                    reason="chromium is not installed; scripts/setup.sh installs it "
                                           "(apt-get install chromium)")


def check_page(page: Path, nb_audio: int) -> dict:
    """Load the page in Chromium at phone size: every player and picture loaded, nothing wider than the screen."""
    text = page.read_text(encoding="utf-8")
    assert 'name="viewport"' in text
    assert not re.search(r'(src|href)="(https?:|//|/|file:)', text), "every link must be relative"
    assert "http://" not in text and "https://" not in text, "the page must need no network"
    seen = browser.probe(page)
    assert len(seen["audio"]) == nb_audio, seen
    for player in seen["audio"]:
        assert player["error"] == 0 and player["readyState"] >= 1 and player["duration"] > 0, player
    assert seen["images"] and all(i["complete"] and i["width"] > 0 for i in seen["images"]), seen["images"]
    assert seen["scrollWidth"] <= seen["innerWidth"], "the page scrolls sideways on a phone"
    assert seen["missing"] == 0
    png = browser.screenshot(page, page.parent / "screenshot.png")
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (browser.PHONE[1], browser.PHONE[0])
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not a blank page
    return seen


# --- the page itself ---------------------------------------------------------------------------------

def test_metrics_table_marks_the_winner_each_way():
    table = MetricsTable({"model": {"lsd": 20.0, "snr": 3.0}, "vocals_only": {"lsd": 19.0, "snr": 5.0},
                          "other": {"lsd": float("nan"), "snr": float("inf")}}, {"lsd": False, "snr": True})
    assert table.best("lsd") == "vocals_only"  # lower is better; NaN is ignored
    assert table.best("snr") == "vocals_only"  # higher is better; inf (a degenerate score) is ignored
    text = page_html(".", "t", [PageItem("x", metrics=table)])
    assert "lsd <span class=\"note\">(lower is better)</span>" in text
    assert "snr <span class=\"note\">(higher is better)</span>" in text
    row = re.search(r"<tr><td>lsd .*?</tr>", text).group(0)
    assert "<th>vocals_<wbr>only</th>" in text  # long names break at underscores on a phone
    assert row.count('class="best"') == 1 and '<td class="best" title="best: vocals_only">19.00</td>' in row


def test_page_links_are_relative_and_escaped(tmp_path):
    out = tmp_path / "out"
    wav = write_page_audio(out / "audio" / "A & B – ½.vocals", np.zeros(100), SR, fmt="wav16")
    Image.new("RGB", (8, 8)).save(out / "pic one.png")
    page = write_listening_page(out, "<Title>", [PageItem("A & B", {"vocals <1>": wav}, out / "pic one.png")],
                                note="a \"note\"")
    text = page.read_text(encoding="utf-8")
    assert 'src="audio/A%20%26%20B%20%E2%80%93%20%C2%BD.vocals.wav"' in text
    assert 'src="pic%20one.png"' in text and "&lt;Title&gt;" in text and "vocals &lt;1&gt;" in text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "<script src" not in text and "<link" not in text and "@import" not in text


def test_page_audio_at_a_rate_mp3_cannot_hold_is_a_wav(tmp_path):
    path = write_page_audio(tmp_path / "x", np.zeros(960), 96000, fmt="mp3")
    assert path.name == "x.wav" and sf.info(str(path)).samplerate == 96000


@pytest.mark.parametrize("fmt", ["wav16", "mp3"])
def test_page_audio_is_small_and_keeps_length_and_level(tmp_path, fmt):
    y = synth_stems(2.0, sr=SR, seed=1)["mixture"].mean(axis=1)
    y[100] = 3.0  # over full scale: clipped, not rescaled
    path = write_page_audio(tmp_path / "x.song", y, SR, fmt=fmt)
    assert path.name == f"x.song.{fmt[:3]}"
    info = sf.info(str(path))
    assert info.samplerate == SR and info.channels == 1
    assert info.subtype == ("PCM_16" if fmt == "wav16" else "MPEG_LAYER_III")
    z, _ = sf.read(path, dtype="float32")
    if fmt == "wav16":
        assert len(z) == len(y) and z[100] == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(z[1000:2000], y[1000:2000], atol=1e-4)
    else:
        assert abs(len(z) - len(y)) < 0.05 * SR
        assert path.stat().st_size < 0.25 * len(y) * 2  # under a quarter of 16-bit PCM
        assert abs(np.sqrt(np.mean(z[SR // 2:] ** 2)) / np.sqrt(np.mean(y[SR // 2:] ** 2)) - 1) < 0.1


# --- in a browser --------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("fmt", ["wav16", "mp3"])
def test_browser_plays_the_page_audio_and_reports_a_broken_link(tmp_path, fmt):
    out = tmp_path / "page"
    y = synth_stems(1.5, sr=SR, seed=2)["vocals"].mean(axis=1)
    players = {label: write_page_audio(out / "audio" / f"x.{label}", y, SR, fmt=fmt) for label in ("a", "b")}
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 300, 3), dtype=np.uint8)).save(out / "x.png")
    page = write_listening_page(out, "t", [PageItem("x", players, out / "x.png")])
    seen = check_page(page, 2)
    assert all(abs(p["duration"] - 1.5) < 0.1 for p in seen["audio"])
    os.unlink(players["b"])  # a moved file: the probe sees the error and the page says so
    broken = browser.probe(page)
    assert [p["error"] for p in broken["audio"]] == [0, 4] and broken["missing"] == 1


@pytest.mark.slow
@needs_chromium
def test_evaluate_page_in_a_browser(trained_run, train_data, tmp_path, run_cli):
    out = tmp_path / "report"
    result = run_cli("evaluate", trained_run, train_data, "--out", out)
    assert result.exit_code == 0, result.output
    page = out / "index.html"
    text = page.read_text(encoding="utf-8")
    # per pictured item: vocals, true mixture, the model, and each baseline but vocals_only (the vocals player)
    baselines = [b for b in json.loads((out / "report.json").read_text())["baselines"] if b != "vocals_only"]
    players = 3 * (3 + len(baselines))
    seen = check_page(page, players)
    labels = re.findall(r"<figcaption>(.*?)</figcaption>", text)
    assert labels[: 3 + len(baselines)] == ["vocals", "true mixture", "model", *baselines]
    assert "mean_accompaniment" in baselines
    assert len(list((out / "audio").iterdir())) == players and "(lower is better)" in text
    assert all(2.9 < p["duration"] < 3.1 for p in seen["audio"])  # each item's true length, 3 s


@pytest.mark.slow
@needs_chromium
def test_predict_page_in_a_browser(trained_run, tmp_path, run_cli):
    for name, seed in (("take one", 1), ("take2", 2)):
        sf.write(tmp_path / f"{name}.wav", synth_stems(2.0, sr=SR, seed=seed)["vocals"], SR)
    out = tmp_path / "out"
    result = run_cli("predict", trained_run, tmp_path / "take one.wav", tmp_path / "take2.wav", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"{out / 'index.html'}" in result.output
    check_page(out / "index.html", 4)  # vocals and song, per input
    assert (out / "take one.mixture.wav").is_file()  # the float WAVs stay
    shutil.rmtree(out)
