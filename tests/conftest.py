"""Shared fixtures: real and synthetic audio, small MUSDB18-HQ-shaped trees, and a CLI runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vocals2song.cli import cli
from vocals2song.config import CodecConfig
from vocals2song.synth import make_musdb_tree, synth_stems

SR = 44100
#: musdb lists this train track as validation: it must land in valid/.
VALID_TRACK = "Actions - One Minute Smile"


@pytest.fixture(scope="session")
def excerpt() -> dict[str, np.ndarray]:
    """The real MUSDB18 excerpt shipped with stempeg, mono float32 at 44.1 kHz (~6 s)."""
    import stempeg

    streams, sr = stempeg.read_stems(stempeg.example_stem_path(), dtype=np.float32)
    assert sr == SR
    names = ("mixture", "drums", "bass", "other", "vocals")
    return {name: streams[i].mean(axis=1) for i, name in enumerate(names)}


@pytest.fixture(scope="session")
def synthetic() -> dict[str, np.ndarray]:
    """Synthetic stems, mono float32, 4 s."""
    return {k: v.mean(axis=1) for k, v in synth_stems(4.0, sr=SR, seed=3).items()}


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory) -> Path:
    """A MUSDB18-HQ-shaped tree: 2 train tracks (one a musdb validation track), 1 test track.

    With --segment 2: 'A - One' is 4.5 s (2 full segments + a 0.5 s tail, dropped by --min-tail 0.5), the
    validation track 2 s, and the test track 3 s (1 segment + a 1 s tail, padded).
    """
    root = tmp_path_factory.mktemp("musdb")
    make_musdb_tree(root, [("train", "A - One", 4.5), ("train", VALID_TRACK, 2.0), ("test", "B - Two", 3.0)],
                    sr=SR, seed=1)
    return root


@pytest.fixture
def tree_copy(small_tree, tmp_path) -> Path:
    """A private copy of `small_tree` that a test may damage."""
    return Path(shutil.copytree(small_tree, tmp_path / "musdb"))


@pytest.fixture
def run_cli():
    """Run the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    def run(*args: str):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return run


def files_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """A learnable sound2image dataset (3 s segments): train 8 pairs from 2 tracks, valid 2, test 3.

    The mixture is a function of the vocals (bass an octave under the sung pitch, a fixed drum bar, a pad).
    """
    from vocals2song.config import CodecConfig, DatasetConfig
    from vocals2song.sound2image import sound2image

    root = tmp_path_factory.mktemp("learnable")
    make_musdb_tree(root / "musdb", [("train", "A - One", 12.0), ("train", "C - Three", 12.0),
                                     ("train", VALID_TRACK, 6.0), ("test", "B - Two", 9.0)], sr=SR, seed=1)
    sound2image(root / "musdb", root / "ds", CodecConfig(), DatasetConfig(segment=3.0, workers=2))
    return root / "ds"


#: a few tiny-model steps with every side job firing
#: the published generator with its phase channel: these runs test the run folder's mechanics, which some tests
#: probe with two-channel tiles; the default recipe (powersum-mean, magnitude only) has its own tests
PUBLISHED = ["--recipe", "pix2pix"]
#: the run folder's mechanics with the current training defaults (a rerun without flags takes the recorded ones)
QUICK_MECHANICS = ["--model", "tiny", "--log-every", "2", "--checkpoint-every", "2", "--sample-every", "2",
                   "--generator", "unet", "--phase-repr", "angle"]
QUICK_TRAIN = [*QUICK_MECHANICS, "--recipe", "pix2pix"]


@pytest.fixture(scope="session")
def trained_run(train_data, tmp_path_factory) -> Path:
    """The tiny model after 300 steps on `train_data` (history row every 25 steps)."""
    from vocals2song.config import recipe_config
    from vocals2song.train import train

    run = tmp_path_factory.mktemp("trained") / "run"
    # The published generator with its phase channel: these tests exercise the plumbing (predict's phase sources,
    # tiling, evaluate); the default powersum-mean recipe has its own tests in test_model.py and test_train.py.
    # Its last generator, not the best-validation one: which step --keep-best picks varies from run to run (CPU
    # training is not bit-reproducible), and an early pick once left evaluate's "training must show" margin short.
    cfg = recipe_config("pix2pix", model="tiny", steps=300, log_every=25, sample_every=1000, checkpoint_every=1000,
                        keep_best=False)
    train(train_data, run, cfg, progress=False, log=lambda *a: None)
    return run


CHORALE_SR = 16000  # rendering and images at 16 kHz: a third of the samples, the same 513-row images


@pytest.fixture(scope="session")
def chorale_run(tmp_path_factory):
    """10 rendered chorales (test tunes unseen), encoded at 16 kHz, and the tiny powersum-mean model after 400
    steps on them; returns (dataset, run)."""
    from vocals2song.chorales import render_chorales
    from vocals2song.config import ChoralesConfig, DatasetConfig, TrainConfig
    from vocals2song.sound2image import sound2image
    from vocals2song.train import train

    root = tmp_path_factory.mktemp("chorale_learning")
    render_chorales(root / "chorales", ChoralesConfig(limit=10, sr=CHORALE_SR, workers=2))
    sound2image(root / "chorales", root / "ds", CodecConfig(sr=CHORALE_SR), DatasetConfig(workers=2))
    cfg = TrainConfig(model="tiny", steps=400, generator="powersum-mean", phase_repr="none", log_every=100,
                      sample_every=1000, checkpoint_every=1000)
    train(root / "ds", root / "run", cfg, progress=False, log=lambda *a: None)
    return root / "ds", root / "run"


def recipe_file(folder: Path, base: str = "pix2pix", **fields) -> list[str]:
    """``--recipe FILE`` flags for a JSON recipe of ``fields`` on ``base``, written in ``folder``."""
    import json

    path = folder / f"recipe_{len(list(folder.glob('recipe_*.json')))}.json"
    path.write_text(json.dumps({"base": base, **fields}))
    return ["--recipe", str(path)]
