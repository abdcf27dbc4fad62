"""demo: chorales rendered, a model trained on them, evaluated and listened to, end to end; a rerun reuses it."""

from __future__ import annotations

import json
import shutil

import browser
import numpy as np
import pytest
import soundfile as sf
from conftest import SR

pytestmark = pytest.mark.slow  # it trains a model


def test_demo_runs_end_to_end(tmp_path, run_cli):
    result = run_cli("demo", "--out", tmp_path / "demo", "--steps", "6", "--chorales", "3")
    assert result.exit_code == 0, result.output
    listen = tmp_path / "demo" / "listen"
    for item in ("chorale", "excerpt"):
        for name in (f"{item}.wav", f"{item}.true_mixture.wav", f"{item}.mixture.wav", f"{item}.mixture.png",
                     f"{item}.spectrograms.png"):
            assert (listen / name).stat().st_size > 1000
        predicted, sr = sf.read(listen / f"{item}.mixture.wav")
        vocals, sr_v = sf.read(listen / f"{item}.wav")
        truth, sr_t = sf.read(listen / f"{item}.true_mixture.wav")
        assert sr == sr_v == sr_t == SR and predicted.shape == vocals.shape == truth.shape == (len(vocals),)  # mono
        assert np.isfinite(predicted).all()
    report = json.loads((tmp_path / "demo" / "evaluate" / "report.json").read_text())
    assert report["split"] == "test" and report["nb_items"] >= 1
    assert "unseen chorale tunes" in result.output and "lower is better" in result.output
    assert "Listen" in result.output and "the model " in result.output
    # judged by its notes, in plain words, and the notes come out as MIDI, linked from the page
    assert "By its notes, the added accompaniment plays" in result.output and "notes per second" in result.output
    assert "pitch-class F1" in result.output and report["truth"]["notes_per_s"] > 0
    for item in ("chorale", "excerpt"):
        assert (listen / f"{item}.accompaniment.mid").stat().st_size > 20
        assert f"{item}.accompaniment.mid" in (listen / "index.html").read_text()
    if browser.find_chromium():
        from test_listen import check_page

        check_page(listen / "index.html", 6)  # per item: vocals, true mixture, the model's song
    again = run_cli("demo", "--out", tmp_path / "demo", "--steps", "6", "--chorales", "3")
    assert again.exit_code == 0 and "already trained to step 6; it was reused" in again.output
    assert "Trained" not in again.output
    shutil.rmtree(tmp_path / "demo")
