"""Training end to end: the run folder it writes, the default recipe, resume (after a kill too), and learning on a
learnable task and on real music."""

from __future__ import annotations

import csv
import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK_TRAIN, recipe_file
from helpers import ROWS, _train_cmd

from vocals2song import data as data_mod
from vocals2song.config import MODELS, recipe_config
from vocals2song.errors import Vocals2SongError

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from vocals2song.callbacks import KEEP_BEST_MARGIN  # noqa: E402
from vocals2song.model import build_generator, build_pix2pix  # noqa: E402


def test_train_bad_data_is_one_line(tmp_path, run_cli):
    result = run_cli("train", tmp_path / "nowhere", tmp_path / "run")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Error:" in result.output


def _event_tags(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in logdir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        tags |= set(acc.Tags()["tensors"])
    return tags


@pytest.mark.slow
def test_cli_train_writes_every_artefact(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    result = run_cli("train", train_data, run, "--steps", "4", *QUICK_TRAIN)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["step"] == 4 and config["model"]["preset"] == "tiny" and config["target"] == "mixture"
    assert config["codec"]["format"] == "rgb8" and config["codec"]["n_fft"] == 1024
    assert config["strategy"]["replicas"] == 1 and config["training"]["tile"] == 256
    assert (run / "checkpoints" / "checkpoint").is_file() and list((run / "checkpoints").glob("ckpt-4.index"))
    lines = (run / "history.csv").read_text().splitlines()
    assert lines[0] == "step,gen_total,gen_gan,gen_recon,disc,val_recon,val_lsd,val_harmony"
    rows = [list(map(float, line.split(","))) for line in lines[1:]]
    assert [r[0] for r in rows] == [2, 4] and all(np.isfinite(r).all() for r in rows)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert (run / "losses.png").stat().st_size > 1000
    generator = keras.saving.load_model(run / "generator.keras", compile=False)
    assert generator.output_shape[1:] == (ROWS, None, 2)
    tags = _event_tags(run / "logs")
    assert {"loss/gen_recon", "loss/val_recon", "audio/predicted_mixture", "audio/target",
            "strips/input|target|prediction"} <= tags
    assert "steps/s" in result.output and not list(run.rglob(".*.part*"))
    assert "loudness" not in config  # the published generator has no accompaniment of its own to calibrate


def _tile_lsd(pred: np.ndarray, y: np.ndarray, range_db: float = 100.0) -> float:
    """The log-spectral distance in dB of magnitude-only network tiles: per frame the RMS over rows of the dB
    difference, then the mean over frames and tiles."""
    db = (np.clip(pred[..., 0], -1, 1) - y[..., 0]) * range_db / 2
    return float(np.mean(np.sqrt(np.mean(db ** 2, axis=1))))


@pytest.mark.slow
def test_default_recipe_keeps_the_best_and_calibrates_its_loudness(train_data, tmp_path, run_cli):
    """The default recipe keeps the generator of the lowest val_lsd, its untrained start included (a high learning
    rate makes training erratic), and predicts with it; its accompaniment gain is fitted on training pairs when
    training ends (after the accompaniment's envelope), kept by a rerun of the finished run, and left out with
    a recipe that turns both fits off."""
    from vocals2song.data import find_pairs, fixed_tiles

    run = tmp_path / "run"
    quick = ["--model", "tiny", "--steps", "4", "--log-every", "2", "--checkpoint-every", "2", "--sample-every", "4",
             *recipe_file(tmp_path, "additive-l2", lr=0.5)]
    result = run_cli("train", train_data, run, *quick)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["generator"] == "powersum-mean" and config["training"]["keep_best_by"] == "val_lsd"
    history = {int(r["step"]): float(r["val_lsd"]) for r in csv.DictReader(open(run / "history.csv"))}
    best = config["best"]
    assert config["generator"] == "generator_best.keras" and best["step"] in (0, *history)
    # no row beat the kept one, nor the start by the margin unless the kept one is a trained one
    margin = config["keep_best_start"]["val_lsd"] * (1 - KEEP_BEST_MARGIN)
    assert min(history.values()) >= min(best["val_lsd"], margin) - 1e-6
    pairs = find_pairs(train_data, "vocals", None)
    x, y, _ = fixed_tiles(pairs.valid, "rgb8", 256, config["training"]["val_tiles"], "none")
    kept = keras.saving.load_model(run / "generator_best.keras", compile=False)
    kept_pred = np.asarray(kept(x, training=False))
    assert _tile_lsd(kept_pred, y) == pytest.approx(best["val_lsd"], rel=1e-4)
    error = kept_pred - y  # val_recon holds the reconstruction loss: the default is L2
    assert config["training"]["recon_loss"] == "l2" and "power_loss" not in config["training"]
    assert float(np.mean(np.square(error))) == pytest.approx(best["val_recon"], rel=1e-4)
    # the untrained start (its last layer is zero: the prior, whatever the seed) is a candidate too; at this
    # learning rate every later row is worse than it
    from vocals2song import runfolder
    from vocals2song.gate import gate_radius

    # the gate smoothed as the baseline smooths it at DATA's geometry; a run saved before that (no key) keeps none
    assert config["model"]["gate_radius"] == gate_radius(pairs.meta.sr, pairs.meta.hop) >= 1
    old = {**config, "version": 1, "model": {k: v for k, v in config["model"].items() if k != "gate_radius"}}
    assert runfolder.upgrade(old)["model"]["gate_radius"] == 0
    start = build_generator(ROWS, 1, MODELS["tiny"], "powersum-mean", 100.0, config["model"]["prior"],
                            gate_radius=config["model"]["gate_radius"])
    start_lsd = _tile_lsd(np.asarray(start(x, training=False)), y)
    assert best["val_lsd"] <= start_lsd + 1e-6
    assert config["keep_best_start"]["val_lsd"] == pytest.approx(start_lsd, rel=1e-4)  # what later rows must beat
    assert len(config["loudness"]["gain_db"]) == 513 and np.isfinite(config["loudness"]["alpha_db"])
    assert config["loudness"]["pairs"] >= 1 and "loudness calibration" in result.output
    said = "kept the untrained start" if best["step"] == 0 else f"kept step {best['step']}: val_lsd"
    assert f"keep-best {said}" in result.output  # the user is told which generator predict will use
    from vocals2song.envelope import LAGS

    assert len(config["envelope"]["weights"]) == 4 * LAGS + 3 and config["envelope"]["frames"] > 100
    assert np.all(np.isfinite(config["envelope"]["weights"])) and "accompaniment envelope" in result.output
    # checked on the validation songs before it was kept (predict.calibrate's check)
    check = config["envelope_check"]
    assert check["kept"] and check["pairs"] == len(pairs.valid) and check["lsd_with_db"] <= check["lsd_without_db"]
    assert "accompaniment envelope kept (validation songs' lsd" in result.output
    again = run_cli("train", train_data, run, *quick)
    assert again.exit_code == 0 and "already at step 4" in again.output
    rerun = json.loads((run / "config.json").read_text())
    assert rerun["loudness"] == config["loudness"] and rerun["envelope"] == config["envelope"]
    assert rerun["model"] == config["model"]  # the prior and the gate's smoothing, as the weights learned them
    off = run_cli("train", train_data, run, *quick[:-2],
                  *recipe_file(tmp_path, "additive-l2", lr=0.5, loudness_calibration=False, envelope=False))
    assert off.exit_code == 0
    assert not {"loudness", "envelope"} & set(json.loads((run / "config.json").read_text()))


# --- resume --------------------------------------------------------------------------------------------------

#: a fixed network input on which saved and restored networks must agree
PROBE = np.random.default_rng(7).uniform(-1, 1, (1, ROWS, 64, 2)).astype(np.float32)


def _model_state(gan) -> list[np.ndarray]:
    """What a resume must bring back: both networks' outputs on PROBE (inference mode: BatchNorm statistics)
    and every optimizer variable (step counters, Adam moments), in build order."""
    return [np.asarray(gan.generator(PROBE, training=False)),
            np.asarray(gan.discriminator([PROBE, PROBE], training=False)),
            *[np.asarray(v) for v in gan.g_optimizer.variables], *[np.asarray(v) for v in gan.d_optimizer.variables]]


def _capture_fit(monkeypatch) -> dict[str, list]:
    """Make every `fit` record the GAN's state just before and just after it trains."""
    from vocals2song.model import Pix2Pix

    real_fit, states = Pix2Pix.fit, {"before": [], "after": []}

    def fit(self, *args, **kwargs):
        states["before"].append(_model_state(self))
        result = real_fit(self, *args, **kwargs)
        states["after"].append(_model_state(self))
        return result

    monkeypatch.setattr(Pix2Pix, "fit", fit)
    return states


@pytest.mark.slow
def test_resume_continues_the_history(train_data, tmp_path, run_cli, monkeypatch):
    run = tmp_path / "run"
    states = _capture_fit(monkeypatch)
    assert run_cli("train", train_data, run, "--steps", "4", *QUICK_TRAIN).exit_code == 0
    result = run_cli("train", train_data, run, "--steps", "8", *QUICK_TRAIN)
    assert result.exit_code == 0 and "from step 4" in result.output
    # the resumed GAN is the saved one: same predictions of both networks, same optimizer slots and counters
    saved, restored = states["after"][0], states["before"][1]
    assert len(saved) == len(restored) > 2 and int(restored[2]) == 4  # g_optimizer.iterations
    for a, b in zip(saved, restored):
        np.testing.assert_array_equal(a, b)
    steps = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 6, 8]
    assert json.loads((run / "config.json").read_text())["step"] == 8
    again = run_cli("train", train_data, run, "--steps", "8", *QUICK_TRAIN)
    assert again.exit_code == 0 and "already at step 8" in again.output
    other = run_cli("train", train_data, run, "--steps", "10", "--model", "small")
    assert other.exit_code == 2 and "other settings" in other.output


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_lacks_an_object(train_data, tmp_path):
    """A checkpoint without the generator (or any other object) must stop the resume, not start it afresh."""
    from vocals2song.train import train

    run = tmp_path / "run"
    cfg = recipe_config("pix2pix", model="tiny", steps=2, log_every=2, checkpoint_every=2, sample_every=1000)
    train(train_data, run, cfg, progress=False, log=lambda *a: None)
    gan = build_pix2pix(ROWS, 2, cfg)
    partial = tf.train.Checkpoint(discriminator=gan.discriminator, g_optimizer=gan.g_optimizer,
                                  d_optimizer=gan.d_optimizer)
    tf.train.CheckpointManager(partial, str(run / "checkpoints"), max_to_keep=5).save(checkpoint_number=3)
    with pytest.raises(Vocals2SongError, match="does not hold all of this model") as err:
        train(train_data, run, dataclasses.replace(cfg, steps=4), progress=False, log=lambda *a: None)
    assert "ckpt-3" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_sigkill_loses_at_most_one_checkpoint_interval(train_data, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(train_data, run, "--steps", "100000", "--checkpoint-every", "5",
                                       "--sample-every", "1000", "--log-every", "5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not list((run / "checkpoints").glob("ckpt-15.index")) and time.time() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    import tensorflow as tf  # noqa: F811 - read the checkpoint state as a reader would

    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    saved = int(latest.rsplit("-", 1)[1])
    assert saved >= 15
    rows_after_kill = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert max(rows_after_kill) - saved < 5 + 5  # at most one interval (plus the row being written) ahead
    with open(run / "history.csv", "a") as f:
        f.write("99999,1.2")  # as if killed in the middle of an append
    out = subprocess.run(_train_cmd(train_data, run, "--steps", str(saved + 5), "--checkpoint-every", "5",
                                    "--log-every", "5"), capture_output=True, text=True, check=True)
    assert f"from step {saved} " in out.stdout
    steps = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert steps == list(range(5, saved + 6, 5))


# --- learning ------------------------------------------------------------------------------------------------

def _net_images(train_data, splits) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vocals, mixture) network images, whole width, of every pair of ``splits``."""
    return [(data_mod.load_net_image(f, "rgb8"), data_mod.load_net_image(train_data / split / "mixture" / f.name,
                                                                          "rgb8"))
            for split in splits for f in sorted((train_data / split / "vocals").iterdir())]


@pytest.fixture(scope="module")
def magnitude_l1(trained_run, train_data) -> dict[str, dict[str, float]]:
    """Magnitude-channel L1 on the training pairs and on the held-out ones (valid + test: 5 pairs of 2 unseen tracks)
    of the trained model, the same model fed silence, a constant per-row median of the training targets (the best
    constant under L1), all floor, and the vocals copied.

    Magnitude only: the mixture's phase cannot be predicted from the vocals' magnitude outside the sung bins (every
    predictor here scores 0.48 on it, the per-row median included).
    """
    from vocals2song.predict import apply_tiled

    generator = keras.saving.load_model(trained_run / "generator.keras", compile=False)
    train_images = _net_images(train_data, ("train",))
    median = np.median(np.concatenate([y[..., 0] for _, y in train_images], axis=1), axis=1)[:, None, None]
    silence = np.zeros((ROWS, 256, 2), np.float32)
    silence[..., 0] = -1.0
    predictors = {
        "model": lambda x: apply_tiled(lambda t: np.asarray(generator(t, training=False)), x, 256),
        "deaf": lambda x: apply_tiled(lambda t: np.asarray(generator(np.broadcast_to(silence, t.shape),
                                                                      training=False)), x, 256),
        "median": lambda x: np.broadcast_to(median, x.shape),
        "floor": lambda x: np.full_like(x, -1.0),
        "copy": lambda x: x,
    }
    scores = {}
    for name, images in (("train", train_images), ("held_out", _net_images(train_data, ("valid", "test")))):
        assert sum(x.shape[1] for x, _ in images) >= 10 * 256  # at least ten tiles' worth of frames
        scores[name] = {k: float(np.mean([np.abs(f(x)[..., 0] - y[..., 0]).mean() for x, y in images]))
                        for k, f in predictors.items()}
    return scores


@pytest.mark.slow
def test_learning_on_the_learnable_task(trained_run, magnitude_l1):
    """The trained model uses the vocals: on training and held-out pairs it beats itself deaf to the vocals, and
    on held-out pairs it beats silence.

    Measured (300 steps, magnitude L1, held-out): model 0.228-0.231, deaf 0.276, floor 0.271; on the training
    pairs: model 0.229, deaf 0.277. Training on a CPU is not reproducible under load (TensorFlow's thread
    scheduling): one CI run on a busy machine gave model 0.253, deaf 0.291, floor 0.271, so the margin over the
    floor is 0.01; the margin over the deaf model, which is the claim (it uses the vocals), stays 0.02. The full
    claim, beating the best constant and the vocals copied, is the xfail test below.
    """
    from vocals2song.runfolder import read_history

    rows = read_history(trained_run / "history.csv")
    assert [r["step"] for r in rows] == list(range(25, 301, 25))
    train, held_out = magnitude_l1["train"], magnitude_l1["held_out"]
    assert train["model"] < train["deaf"] - 0.02, train
    assert held_out["model"] < held_out["deaf"] - 0.02 and held_out["model"] < held_out["floor"] - 0.01, held_out


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="the tiny model does not reliably beat what ignores the vocals: in 12 fresh "
                   "runs (300-800 steps, lr 2e-4 or 1e-3, batch 1 or 4) its held-out magnitude L1 was 0.19-0.30, "
                   "against 0.23 for a constant per-row median and 0.185 for the vocals copied")
def test_learning_beats_what_ignores_the_vocals(magnitude_l1):
    """What "it learns" means in full: on held-out pairs, better than the best constant and than the vocals alone."""
    held_out = magnitude_l1["held_out"]
    assert held_out["model"] < held_out["median"] - 0.02 and held_out["model"] < held_out["copy"] - 0.01, held_out


@pytest.mark.slow
def test_a_model_trained_on_chorales_beats_the_vocals_alone_on_unseen_tunes(chorale_run, tmp_path):
    """The recipe on real music: the song is closer to the true mixture than the vocals alone, on lsd and mrstft,
    on tunes the model never heard, louder where it should be, without buzz; and training did not make it worse
    than where it started (the mean accompaniment), which a drifting GAN did before the prior was a log mean.

    What this does not show: learning beyond the mean. At this size (tiny, 400 steps, 8 training tunes) the model
    stays level with its start (measured with an earlier recipe, a GAN: lsd 12.88 against 12.79 for
    mean_accompaniment, 15.73 for the vocals; the regression recipe at this size was not measured apart)."""
    from vocals2song.evaluate import evaluate

    ds, run = chorale_run
    report = evaluate(run, ds, tmp_path / "eval")
    model, vocals = report["model"], report["baselines"]["vocals_only"]
    print({k: (round(model[k], 3), round(vocals[k], 3), round(report["baselines"]["mean_accompaniment"][k], 3))
           for k in ("lsd", "mrstft", "loudness_db", "harmony", "buzz_db")})
    assert model["lsd"] < vocals["lsd"] - 1.0
    assert model["mrstft"] < vocals["mrstft"]
    assert abs(model["loudness_db"]) < abs(vocals["loudness_db"])
    assert model["buzz_db"] < 6.0
    assert model["lsd"] < report["baselines"]["mean_accompaniment"]["lsd"] + 0.5
