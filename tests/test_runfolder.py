"""The run folder: the settings config.json records, runs written before a setting existed, and what a rerun takes
from the run or refuses."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK_MECHANICS, QUICK_TRAIN, recipe_file

from vocals2song.config import TrainConfig
from vocals2song.errors import Vocals2SongError

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from vocals2song.model import build_pix2pix  # noqa: E402


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
    """A recipe's norm (batch, which is not the default) goes into config.json and the saved generator; a rerun
    keeps it and says so, another norm is refused in one line, and a version-1 run that recorded no norm resumes
    as the BatchNorm it was."""
    run = tmp_path / "run"
    batch = recipe_file(tmp_path, "additive-l2", norm="batch")
    assert run_cli("train", train_data, run, "--steps", "2", *QUICK_MECHANICS, *batch).exit_code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["norm"] == config["training"]["norm"] == "batch"
    saved = keras.saving.load_model(run / "generator.keras", compile=False)
    kinds = {type(layer).__name__ for block in saved.layers if isinstance(block, keras.Sequential)
             for layer in block.layers}
    assert "BatchNormalization" in kinds and "GroupNormalization" not in kinds
    result = run_cli("train", train_data, run, "--steps", "4", *QUICK_MECHANICS)
    assert result.exit_code == 0 and "from step 2" in result.output and "norm batch" in result.stderr
    other = run_cli("train", train_data, run, "--steps", "6", *QUICK_MECHANICS,
                    *recipe_file(tmp_path, "additive-l2", norm="instance"))
    assert other.exit_code == 2 and "norm batch, this command's norm instance" in other.output
    assert len(other.output.strip().splitlines()) == 1
    old = tmp_path / "old"
    assert run_cli("train", train_data, old, "--steps", "2", *QUICK_MECHANICS, *batch).exit_code == 0
    config = json.loads((old / "config.json").read_text())
    config["version"] = 1
    del config["model"]["norm"], config["training"]["norm"]
    config["training"]["keep_best_by"] = "val_lsd"
    config["training"]["lambda_l1"] = config["training"].pop("lambda_recon")
    (old / "config.json").write_text(json.dumps(config))
    result = run_cli("train", train_data, old, "--steps", "4", *QUICK_MECHANICS)
    assert result.exit_code == 0 and "from step 2" in result.output, result.output
    upgraded = json.loads((old / "config.json").read_text())
    assert upgraded["version"] == 2 and upgraded["model"]["norm"] == "batch" and upgraded["step"] == 4


@pytest.mark.slow
def test_ema_run_saves_the_average_and_resumes_only_with_it(train_data, tmp_path, run_cli):
    """With a weight average (ema), generator.keras holds the averaged weights, the checkpoint holds both (and no
    discriminator: the recipe has none), and a rerun without one is refused in words (its optimizer would not match
    the checkpoint)."""
    run = tmp_path / "run"
    fields = dict(gan_loss="none", recon_loss="l2", lr=1e-2, ema=0.5, keep_best=False, envelope=False,
                  loudness_calibration=False)
    flags = ["--model", "tiny", "--log-every", "3", "--checkpoint-every", "3", "--sample-every", "3"]
    result = run_cli("train", train_data, run, "--steps", "3", *flags, *recipe_file(tmp_path, "additive-l2", **fields))
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["ema"] == 0.5 and config["training"]["gan_loss"] == "none"
    saved = keras.saving.load_model(run / "generator.keras", compile=False).get_weights()

    model = config["model"]
    cfg = TrainConfig(**{k: v for k, v in config["training"].items() if k in TrainConfig.__dataclass_fields__})
    gan = build_pix2pix(model["nb_rows"], model["nb_channels"], cfg, prior=model["prior"],
                        gate_radius=model["gate_radius"])
    assert gan.discriminator is None
    latest = tf.train.latest_checkpoint(run / "checkpoints")
    tf.train.Checkpoint(generator=gan.generator, g_optimizer=gan.g_optimizer).restore(
        latest).assert_existing_objects_matched()
    assert not [name for name, _ in tf.train.list_variables(latest) if name.startswith("discriminator")]
    raw = gan.generator.get_weights()
    with gan.averaged():
        averaged = gan.generator.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, averaged))
    assert any(not np.array_equal(a, b) for a, b in zip(saved, raw))

    refused = run_cli("train", train_data, run, "--steps", "6",
                      *recipe_file(tmp_path, "additive-l2", **{**fields, "ema": 0.0}))
    assert refused.exit_code != 0 and "with a weight average (ema), this command's recipe has none" in refused.output
    assert json.loads((run / "config.json").read_text())["step"] == 3  # nothing lost


# --- upgrade: every run folder the project could write loads as the current version -------------------------

OLD_RUNS = Path(__file__).parent / "fixtures" / "old_runs"


def _v1(**training) -> dict:
    """A version-1 config.json as the first layout wrote it: no model keys beyond the sizes, lambda_l1."""
    config = json.loads((OLD_RUNS / "pix2pix" / "config.json").read_text())
    for key in ("generator", "phase_repr", "norm", "gate_radius", "prior"):
        config["model"].pop(key, None)
    for key in ("ema", "keep_best_by", "power_loss", "norm", "generator", "phase_repr"):
        config["training"].pop(key, None)
    config["training"].update(training)
    config.pop("generator", None)
    config["best"] = {"step": 4, "val_l1": 0.5}
    return config


def test_upgrade_gives_a_version_1_run_what_it_was_trained_with():
    from vocals2song import runfolder

    old = _v1()
    new = runfolder.upgrade(old)
    assert new["version"] == runfolder.RUN_VERSION == 2 and old["version"] == 1  # the original is left alone
    assert {k: new["model"][k] for k in runfolder.MODEL_DEFAULTS_V1} == runfolder.MODEL_DEFAULTS_V1
    assert new["training"]["lambda_recon"] == 100.0 and "lambda_l1" not in new["training"]
    assert new["training"]["ema"] == 0.0 and new["training"]["recipe"] is None
    assert new["best"] == {"step": 4, "val_recon": 0.5} and new["generator"] == runfolder.GENERATOR
    # keep-best by the reconstruction loss, what runs from before val_lsd did, is retired: it does not train on
    assert new["training"]["retired"] == {"keep_best_by": "val_l1"}
    assert runfolder.upgrade(new) is new  # the current version passes through


@pytest.mark.parametrize("training, flag", [({"power_loss": 10.0, "keep_best_by": "val_lsd"}, "--power-loss 10.0"),
                                            ({"gan_loss": "lsgan", "keep_best_by": "val_lsd"}, "--gan-loss lsgan"),
                                            ({"keep_best_by": "val_l1"}, "--keep-best-by val_l1")])
def test_a_run_trained_with_a_retired_setting_predicts_but_does_not_train_on(tmp_path, training, flag):
    from vocals2song import runfolder

    run = tmp_path / "run"
    shutil.copytree(OLD_RUNS / "pix2pix", run)
    (run / "config.json").write_text(json.dumps(_v1(**training)))
    assert runfolder.read_config(run)["training"]["retired"]  # it loads
    with pytest.raises(Vocals2SongError) as err:
        runfolder.run_settings(run)
    assert flag in str(err.value) and "no longer trains with" in str(err.value) and "\n" not in str(err.value)
    clean = _v1(keep_best_by="val_lsd", power_loss=0.0)  # the same settings, off: nothing retired
    (run / "config.json").write_text(json.dumps(clean))
    assert runfolder.run_settings(run)["lambda_recon"] == 100.0


def test_an_unknown_run_version_is_one_line(tmp_path):
    from vocals2song import runfolder

    (tmp_path / "config.json").write_text(json.dumps({**_v1(), "version": 7}))
    with pytest.raises(Vocals2SongError) as err:
        runfolder.read_config(tmp_path)
    assert "version 7 is not supported" in str(err.value) and "\n" not in str(err.value)


def test_an_old_history_is_read_with_the_new_column_names(tmp_path):
    from vocals2song import runfolder

    rows = runfolder.read_history(OLD_RUNS / "additive" / "history.csv")  # written with gen_l1, val_l1
    assert (OLD_RUNS / "additive" / "history.csv").read_text().startswith("step,gen_total,gen_gan,gen_l1,")
    assert rows and all(np.isfinite(r["val_recon"]) and np.isfinite(r["gen_recon"]) for r in rows)
    runfolder.write_history(tmp_path / "history.csv", rows)
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == ",".join(runfolder.HISTORY_COLUMNS)
    assert runfolder.read_history(tmp_path / "history.csv") == rows


# --- history.csv ----------------------------------------------------------------------------------------------

def test_read_history_round_trip(tmp_path):
    from vocals2song import plots, runfolder

    csv_path = tmp_path / "history.csv"
    csv_path.write_text("step,gen_total,gen_gan,gen_recon,disc,val_recon\n"
                        "0,5.5,0.75,0.47,0.69,0.51\n"
                        "100,4.25,0.7,0.355,0.68,\n"
                        "200,3.5,0.65,0.285,0.66,0.3\n")
    rows = runfolder.parse_history(csv_path)
    assert [r["step"] for r in rows] == [0, 100, 200]
    assert all(isinstance(r["step"], int) for r in rows)
    assert math.isnan(rows[0].pop("val_lsd")) and math.isnan(rows[0].pop("val_harmony"))  # an older history
    assert rows[0] == {"step": 0, "gen_total": 5.5, "gen_gan": 0.75, "gen_recon": 0.47, "disc": 0.69, "val_recon": 0.51}
    assert math.isnan(rows[1]["val_recon"]) and rows[1]["gen_recon"] == 0.355
    plots.save_losses(tmp_path / "losses.png", rows)
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_history_header_only_and_bad_cells(tmp_path):
    from vocals2song import runfolder

    p = tmp_path / "h.csv"
    p.write_text(",".join(runfolder.HISTORY_COLUMNS) + "\n")
    assert runfolder.parse_history(p) == []
    p.write_text("step,gen_recon\n5,0.2\n")  # columns the header lacks are NaN
    (row,) = runfolder.parse_history(p)
    assert row["step"] == 5 and row["gen_recon"] == 0.2 and math.isnan(row["disc"])
    p.write_text("step,gen_recon\n5,abc\n")
    with pytest.raises(Vocals2SongError, match="line 2"):
        runfolder.parse_history(p)
    p.write_text("when,gen_recon\n5,0.1\n")
    with pytest.raises(Vocals2SongError, match="step"):
        runfolder.parse_history(p)
