"""The run folder: the settings config.json records, runs written before a setting existed, and what a rerun takes
from the run or refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import QUICK_MECHANICS, QUICK_TRAIN
from vocals2song.config import MODELS

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from vocals2song.model import build_pix2pix  # noqa: E402


def test_power_loss_is_recorded_and_older_runs_have_none(tmp_path):
    from vocals2song.train import run_settings

    run = tmp_path / "run"
    run.mkdir()
    config = {"training": {"ema": 0.5}, "model": {"preset": "tiny", "norm": "instance"}}
    (run / "config.json").write_text(json.dumps(config))
    assert run_settings(run)["power_loss"] == 0.0  # a run from before --power-loss
    config["training"]["power_loss"] = 3.0
    (run / "config.json").write_text(json.dumps(config))
    assert run_settings(run)["power_loss"] == 3.0


@pytest.mark.slow
def test_rerun_takes_the_model_from_the_run_and_names_a_conflict(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    assert run_cli("train", train_data, run, "--steps", "2", *QUICK_TRAIN).exit_code == 0
    result = run_cli("train", train_data, run, "--steps", "4")  # no --model tiny, no --log-every 2
    assert result.exit_code == 0, result.output
    assert "note: as recorded in" in result.stderr and "--model tiny" in result.stderr
    assert "training tiny from step 2 to 4" in result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["preset"] == "tiny" and config["training"]["log_every"] == 2 and config["step"] == 4
    other = run_cli("train", train_data, run, "--steps", "6", "--model", "small")
    assert other.exit_code == 2 and other.stderr.count("Error:") == 1
    assert "the run's model is --model tiny, this command's --model small" in other.output
    assert "{" not in other.output  # words, not dicts


@pytest.mark.slow
def test_norm_is_recorded_and_kept_by_a_resume(train_data, tmp_path, run_cli):
    """--norm (batch, which is not the default since instance became it) goes into config.json and the saved
    generator; a rerun keeps it, another --norm is refused in one line, and a run from before --norm (no norm
    recorded) resumes as the BatchNorm it was (and one from before --keep-best-by as keeping the lowest val_l1)."""
    run = tmp_path / "run"
    assert run_cli("train", train_data, run, "--steps", "2", *QUICK_MECHANICS, "--norm", "batch").exit_code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["norm"] == config["training"]["norm"] == "batch"
    saved = keras.saving.load_model(run / "generator.keras", compile=False)
    kinds = {type(layer).__name__ for block in saved.layers if isinstance(block, keras.Sequential)
             for layer in block.layers}
    assert "BatchNormalization" in kinds and "GroupNormalization" not in kinds
    result = run_cli("train", train_data, run, "--steps", "4", *QUICK_MECHANICS)
    assert result.exit_code == 0 and "from step 2" in result.output and "--norm batch" in result.output
    other = run_cli("train", train_data, run, "--steps", "6", *QUICK_MECHANICS, "--norm", "instance")
    assert other.exit_code == 2 and "--norm batch, this command's --norm instance" in other.output
    assert len(other.output.strip().splitlines()) == 1
    old = tmp_path / "old"
    assert run_cli("train", train_data, old, "--steps", "2", *QUICK_MECHANICS, "--norm", "batch").exit_code == 0
    config = json.loads((old / "config.json").read_text())
    del config["model"]["norm"], config["training"]["norm"], config["training"]["keep_best_by"]
    (old / "config.json").write_text(json.dumps(config))
    result = run_cli("train", train_data, old, "--steps", "4", *QUICK_MECHANICS)
    assert result.exit_code == 0 and "from step 2" in result.output, result.output
    # ... and one from before val_lsd goes on keeping the lowest val_l1, as it did
    assert "--keep-best-by val_l1" in result.output
    assert json.loads((old / "config.json").read_text())["training"]["keep_best_by"] == "val_l1"


@pytest.mark.slow
def test_ema_run_saves_the_average_and_resumes_only_with_it(train_data, tmp_path, run_cli):
    """With --ema, generator.keras holds the averaged weights, the checkpoint holds both, and a rerun without
    --ema is refused in words (its optimizer would not match the checkpoint)."""
    run = tmp_path / "run"
    flags = ["--model", "tiny", "--log-every", "3", "--checkpoint-every", "3", "--sample-every", "3", "--gan-loss",
             "none", "--recon-loss", "l2", "--lr", "1e-2", "--ema", "0.5", "--no-keep-best", "--no-envelope",
             "--no-loudness-calibration"]
    result = run_cli("train", train_data, run, "--steps", "3", *flags)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["ema"] == 0.5 and config["training"]["gan_loss"] == "none"
    saved = keras.saving.load_model(run / "generator.keras", compile=False).get_weights()

    model = config["model"]
    gan = build_pix2pix(model["nb_rows"], model["nb_channels"], MODELS["tiny"], generator=model["generator"],
                        prior=model["prior"], gan_loss="none", recon_loss="l2", norm=model["norm"], ema=0.5)
    tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator, g_optimizer=gan.g_optimizer,
                        d_optimizer=gan.d_optimizer).restore(
        tf.train.latest_checkpoint(run / "checkpoints")).assert_existing_objects_matched()
    raw = gan.generator.get_weights()
    with gan.averaged():
        averaged = gan.generator.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, averaged))
    assert any(not np.array_equal(a, b) for a, b in zip(saved, raw))

    refused = run_cli("train", train_data, run, "--steps", "6", "--ema", "0")
    assert refused.exit_code != 0 and "trained with --ema, this command asks for none" in refused.output
    assert json.loads((run / "config.json").read_text())["step"] == 3  # nothing lost
