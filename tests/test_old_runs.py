"""Run folders written by earlier versions load and predict the very same song (tests/fixtures/old_runs)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "old_runs"
HASHES = json.loads((FIXTURES / "songs.sha256.json").read_text())
#: the phase that makes today what an old run's phase made then: a magnitude-only additive model's "model" phase was
#: the vocals' with a random one elsewhere, which is `--phase vocals` now ("model" is Griffin-Lim on what it adds)
SAME_PHASE_NOW = {"additive/model": "vocals"}


def _song_hash(run: Path, phase: str) -> str:
    from vocals2song.predict import load_predictor, predict_song, vocals_input

    predictor = load_predictor(run)
    vocals, pixels, meta = vocals_input(FIXTURES / "vocals.wav", predictor)
    song = predict_song(vocals, pixels, meta, predictor, phase).song
    return hashlib.sha256(np.ascontiguousarray(song, dtype=np.float32).tobytes()).hexdigest()


@pytest.mark.parametrize("key", sorted(HASHES))
def test_an_old_run_predicts_the_same_song_bit_for_bit(key, tmp_path):
    name, phase = key.split("/")
    phase = SAME_PHASE_NOW.get(key, phase)
    run = Path(shutil.copytree(FIXTURES / name, tmp_path / name))  # loading must not need to write
    assert _song_hash(run, phase) == HASHES[key]
