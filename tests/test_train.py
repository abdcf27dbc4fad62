"""Training: the pix2pix networks, the tf.data stream, the run folder, resume, and scaling out."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import PUBLISHED, QUICK_MECHANICS, QUICK_TRAIN
from vocals2song import data as data_mod
from vocals2song.config import MODELS, PIX2PIX_TRAINING
from vocals2song.errors import Vocals2SongError
from vocals2song.imagefile import read_image

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from vocals2song.model import build_discriminator, build_generator, build_pix2pix  # noqa: E402
from vocals2song.train import KEEP_BEST_MARGIN  # noqa: E402

ROWS = 512


@pytest.mark.parametrize("frames", [256, 2584, 77])
def test_generator_keeps_the_shape(frames):
    gen = build_generator(ROWS, 2, MODELS["default"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, ROWS, frames, 2)).astype(np.float32)
    y = np.asarray(gen(x, training=False))
    assert y.shape == x.shape
    assert np.all(np.abs(y) <= 1.0)


def test_default_generator_is_the_published_unet():
    gen = build_generator(ROWS, 2, MODELS["default"])
    convs = [layer for layer in gen._flatten_layers() if isinstance(layer, keras.layers.Conv2D)
             and not isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [c.filters for c in convs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (4, 4) and c.strides == (2, 2) for c in convs)
    dropouts = [layer for layer in gen._flatten_layers() if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 3 and all(d.rate == 0.5 for d in dropouts)


def test_discriminator_patch_shape():
    disc = build_discriminator(ROWS, 2, MODELS["default"])
    x = np.zeros((2, ROWS, 256, 2), np.float32)
    assert tuple(disc([x, x]).shape) == (2, 62, 30, 1)  # 70x70 receptive fields on a 512 x 256 tile


def test_every_kernel_starts_from_its_own_draw_and_the_seed_reaches_them():
    """No two kernels start identical, and `keras.utils.set_random_seed` (train's --seed) decides them all."""
    def kernels(seed):
        keras.utils.set_random_seed(seed)
        nets = (build_generator(ROWS, 1, MODELS["small"]), build_discriminator(ROWS, 1, MODELS["small"]))
        return [np.asarray(w) for net in nets for w in net.trainable_weights if w.ndim == 4]

    first, again, other = kernels(3), kernels(3), kernels(4)
    assert len(first) > 20
    for i, a in enumerate(first):
        assert 0.015 < a.std() < 0.025  # N(0, 0.02), as published
        assert not any(a.shape == b.shape and np.array_equal(a, b) for b in first[i + 1:])
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))


def test_one_train_step_gives_finite_losses():
    gan = build_pix2pix(ROWS, 4, MODELS["tiny"])
    rng = np.random.default_rng(1)
    x, y = (rng.uniform(-1, 1, (1, ROWS, 128, 4)).astype(np.float32) for _ in range(2))
    before = [w.copy() for w in gan.generator.get_weights()]
    logs = gan.train_on_batch(x, y, return_dict=True)
    assert set(logs) >= {"gen_total", "gen_gan", "gen_l1", "disc"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert float(logs["gen_total"]) == pytest.approx(float(logs["gen_gan"]) + 100 * float(logs["gen_l1"]), rel=1e-4)
    assert any(not np.array_equal(a, b) for a, b in zip(before, gan.generator.get_weights()))


def test_no_gan_trains_the_generator_alone():
    """``gan_loss="none"``: the reconstruction loss alone moves the generator; the discriminator is not trained."""
    gan = build_pix2pix(ROWS, 1, MODELS["tiny"], lambda_l1=3.0, gan_loss="none", recon_loss="l2")
    rng = np.random.default_rng(4)
    x, y = (rng.uniform(-1, 1, (2, ROWS, 64, 1)).astype(np.float32) for _ in range(2))
    gen_before, disc_before = gan.generator.get_weights(), gan.discriminator.get_weights()
    logs = {k: float(v) for k, v in gan.train_on_batch(x, y, return_dict=True).items()}
    assert logs["gen_gan"] == 0.0 and logs["disc"] == 0.0
    assert logs["gen_total"] == pytest.approx(3.0 * logs["gen_l1"], rel=1e-5) and logs["gen_l1"] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(gen_before, gan.generator.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(disc_before, gan.discriminator.get_weights()))


def test_averaged_weights_are_the_moving_average_of_the_steps():
    """``ema``: `Pix2Pix.averaged` swaps in the average a_1 = w_1, a_t = m a_(t-1) + (1 - m) w_t of the weights after
    each step, and gives the trained weights back after; before the first step it is the weights as they are."""
    momentum = 0.6
    gan = build_pix2pix(ROWS, 1, MODELS["tiny"], gan_loss="none", recon_loss="l2", lr=1e-2, ema=momentum)
    rng = np.random.default_rng(5)
    start = [np.asarray(v) for v in gan.generator.trainable_variables]
    with gan.averaged():  # no step yet: nothing to average (Keras starts the average at zeros, not the weights)
        for v, w in zip(gan.generator.trainable_variables, start):
            np.testing.assert_array_equal(np.asarray(v), w)
    average = None
    for _ in range(4):
        x, y = (rng.uniform(-1, 1, (1, ROWS, 64, 1)).astype(np.float32) for _ in range(2))
        gan.train_on_batch(x, y)
        weights = [np.asarray(v, dtype=np.float64) for v in gan.generator.trainable_variables]
        average = weights if average is None else [momentum * a + (1 - momentum) * w
                                                   for a, w in zip(average, weights)]
    trained = [np.asarray(v) for v in gan.generator.trainable_variables]
    with gan.averaged():
        inside = [np.asarray(v) for v in gan.generator.trainable_variables]
    assert any(not np.allclose(a, w) for a, w in zip(inside, trained))  # 4 steps at lr 1e-2 moved the weights
    for a, expected in zip(inside, average):
        np.testing.assert_allclose(a, expected, rtol=1e-4, atol=1e-6)
    for v, w in zip(gan.generator.trainable_variables, trained):
        np.testing.assert_array_equal(np.asarray(v), w)


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


@pytest.mark.parametrize("recon_loss", ["l1", "l2"])
def test_reconstruction_loss_is_the_one_asked_for(recon_loss):
    gan = build_pix2pix(ROWS, 1, MODELS["tiny"], recon_loss=recon_loss)
    rng = np.random.default_rng(2)
    x, y = (keras.ops.convert_to_tensor(rng.uniform(-1, 1, (1, ROWS, 64, 1)).astype(np.float32)) for _ in range(2))
    fake = np.asarray(gan.generator(x, training=False))
    _, _, rec, _ = gan.losses_for(x, y, training=False)
    error = np.asarray(y) - fake
    expected = np.mean(error**2) if recon_loss == "l2" else np.mean(np.abs(error))
    assert float(rec) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="reconstruction loss"):
        build_pix2pix(ROWS, 1, MODELS["tiny"], recon_loss="l3")


def test_power_loss_adds_the_spectral_convergence_and_pulls_toward_the_mean_power():
    """--power-loss W adds W times the batch's spectral convergence on the linear magnitude (model docstring) to
    the reconstruction loss, and it moves the best constant level above the log loss's (the mean of the levels)."""
    from vocals2song.model import SC_FLOOR_DB, spectral_convergence

    ops, k = keras.ops, 100.0 * np.log(10.0) / 20.0
    rng = np.random.default_rng(3)
    x, y = (rng.uniform(-1, 1, (2, ROWS, 64, 1)).astype(np.float32) for _ in range(2))
    plain = build_pix2pix(ROWS, 1, MODELS["tiny"], lambda_l1=3.0, gan_loss="none", recon_loss="l2")
    weighted = build_pix2pix(ROWS, 1, MODELS["tiny"], lambda_l1=3.0, gan_loss="none", recon_loss="l2",
                             power_loss=7.0)
    weighted.generator.set_weights(plain.generator.get_weights())
    fake = np.asarray(plain.generator(x, training=False))
    m_true, m_fake = (np.expm1(k * (a.astype(np.float64) + 1.0) / 2.0) for a in (y, fake))
    sc = np.linalg.norm(m_true - m_fake) / np.linalg.norm(m_true)
    assert float(spectral_convergence(y, fake, 100.0)) == pytest.approx(sc, rel=1e-4)
    total_plain, total_weighted = (float(g.losses_for(x, y, training=False)[0]) for g in (plain, weighted))
    assert total_weighted == pytest.approx(total_plain + 7.0 * sc, rel=1e-4)
    # a silent batch divides by the floor's magnitude, not by ~0
    silent = -np.ones((1, ROWS, 64, 1), np.float32)
    loud = silent + 2.0 * (SC_FLOOR_DB / 100.0)  # every bin SC_FLOOR_DB over the floor: the floor's magnitude
    reference = 10.0 ** (SC_FLOOR_DB / 20.0)
    assert float(spectral_convergence(silent, loud, 100.0)) == pytest.approx((reference - 1.0) / reference, rel=1e-4)
    # a bin loud half the time (u 0.8) and quiet the other half (u 0.4): L2 on the planes is least at u 0.6, the
    # spectral convergence at a level near the loud frames', within 6 dB of it (its mean magnitude)
    target = np.where(np.arange(64) % 2 == 0, 0.6, -0.2).astype(np.float32)  # net units of u 0.8 and 0.4
    target = np.broadcast_to(target[None, None, :, None], (1, ROWS, 64, 1))
    levels = np.linspace(-1.0, 1.0, 401).astype(np.float32)
    l2 = [float(np.mean((target - c) ** 2)) for c in levels]
    sc_levels = [float(spectral_convergence(target, np.full_like(target, c), 100.0)) for c in levels]
    assert levels[int(np.argmin(l2))] == pytest.approx(0.2, abs=0.01)
    assert 0.6 - 2 * 6.0 / 100.0 <= levels[int(np.argmin(sc_levels))] < 0.6


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


def _fit_at_batch_one(norm: str, steps: int = 150) -> tuple[float, float]:
    """A tiny U-Net fitted by L1 to 4 fixed tiles (target: the input upside down), one tile per step as pix2pix
    trains: its inference-mode L1 on those tiles before and after."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(0, 1, (4, ROWS, 64, 1)).cumsum(axis=1) / 8).astype(np.float32)
    y = np.flip(x, axis=1).copy()
    gen = build_generator(ROWS, 1, MODELS["tiny"], "unet", norm=norm)
    opt = keras.optimizers.Adam(1e-3, beta_1=0.5)

    @tf.function
    def step(a, b):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(b - gen(a, training=True)))
        opt.apply_gradients(zip(tape.gradient(loss, gen.trainable_variables), gen.trainable_variables))

    def l1() -> float:
        return float(np.mean(np.abs(np.asarray(gen(x, training=False)) - y)))

    start = l1()
    for i in range(steps):
        step(x[i % 4: i % 4 + 1], y[i % 4: i % 4 + 1])
    return start, l1()


def test_instance_norm_predicts_what_it_learned():
    """At batch 1, BatchNorm trains on each tile's own statistics and predicts with moving averages no tile had:
    what it learned barely shows at inference (0.70 -> 0.66 here). Instance norm behaves the same both ways."""
    batch_start, batch_after = _fit_at_batch_one("batch")
    start, after = _fit_at_batch_one("instance")
    assert after < 0.4 * start
    assert after < 0.5 * batch_after
    gen = build_generator(ROWS, 1, MODELS["tiny"], "powersum-mean", 100.0, [-0.5] * ROWS, norm="instance")
    kinds = {type(layer).__name__ for block in gen.layers if isinstance(block, keras.Sequential) for layer in block.layers}
    assert "GroupNormalization" in kinds and "BatchNormalization" not in kinds
    with pytest.raises(ValueError, match="normalisation"):
        build_generator(ROWS, 1, MODELS["tiny"], norm="layer")


# --- data --------------------------------------------------------------------------------------------

def _self_pairs(train_data, tmp_path) -> Path:
    """A flat input/ + output/ folder where every target is its input: any crop must match exactly."""
    root = tmp_path / "self"
    for sub in ("input", "output"):
        shutil.copytree(train_data / "train" / "vocals", root / sub)
    return root


def test_stream_pairs_and_crops_identically(train_data, tmp_path):
    pairs = data_mod.find_pairs(_self_pairs(train_data, tmp_path), "input", "output")
    assert pairs.meta.format == "rgb8" and pairs.held_out
    ds = data_mod.make_dataset(pairs.train, "rgb8", ROWS, 128, batch_size=3, seed=0)
    offsets = set()
    for x, y in ds.take(6):
        assert x.shape == (3, ROWS, 128, 2) and x.dtype == tf.float32
        np.testing.assert_array_equal(x.numpy(), y.numpy())
        assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
        offsets.add(float(x[0, 100, 0, 1]))  # a phase pixel: differs between crops
    assert len(offsets) > 1


def test_stream_decodes_like_numpy_with_nyquist_dropped(train_data):
    pairs = data_mod.find_pairs(train_data)
    width = read_image(pairs.train[0].input)[0].shape[1]
    ds = data_mod.make_dataset(pairs.train[:1], "rgb8", ROWS, width, batch_size=1, crops_per_image=1)
    x, y = next(iter(ds))
    np.testing.assert_allclose(x[0].numpy(), data_mod.load_net_image(pairs.train[0].input, "rgb8"), atol=1e-6)
    np.testing.assert_allclose(y[0].numpy(), data_mod.load_net_image(pairs.train[0].target, "rgb8"), atol=1e-6)
    pixels = read_image(pairs.train[0].target)[0]
    assert np.allclose(y[0, 0, :, 0].numpy(), pixels[1, :, 0] / 127.5 - 1)  # row 0 of the net = pixel row 1


def test_dataset_splits_keep_tracks_apart(train_data):
    pairs = data_mod.find_pairs(train_data)
    assert len(pairs.train) == 8 and len(pairs.valid) == 2 and not pairs.held_out
    assert {p.track for p in pairs.valid} == {"Actions - One Minute Smile"}
    assert not {p.track for p in pairs.train} & {p.track for p in pairs.valid}


def test_hold_out_whole_tracks_without_a_valid_split(train_data, tmp_path):
    root = tmp_path / "flat"
    for sub in ("vocals", "mixture"):
        (root / sub).mkdir(parents=True)
        for split in ("train", "valid", "test"):
            for f in (train_data / split / sub).iterdir():
                shutil.copy(f, root / sub / f.name)
    pairs = data_mod.find_pairs(root)
    assert pairs.held_out and pairs.valid
    held = {p.track for p in pairs.valid}
    assert not held & {p.track for p in pairs.train}  # never neighbouring segments of a training track
    assert len(pairs.train) + len(pairs.valid) == 13


def test_track_of_without_metadata():
    assert data_mod.track_of(Path("Song name__003.png"), None) == "Song name"
    assert data_mod.track_of(Path("song_12.png"), None) == "song"
    assert data_mod.track_of(Path("x.png"), '{"source": {"track": "T"}}') == "T"


def test_unmatched_and_unreadable_images_are_named(train_data, tmp_path):
    root = _self_pairs(train_data, tmp_path)
    lonely = root / "input" / "zz only here__000.png"
    shutil.copy(root / "input" / "A - One__000.png", lonely)
    with pytest.raises(Vocals2SongError, match="zz only here__000.png"):
        data_mod.find_pairs(root, "input", "output")
    lonely.unlink()
    victim = root / "output" / "A - One__001.png"
    victim.write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(Vocals2SongError, match="truncated") as err:
        data_mod.find_pairs(root, "input", "output")
    assert "A - One__001.png" in str(err.value)


# --- the run folder ----------------------------------------------------------------------------------

def _event_tags(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in logdir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        tags |= set(acc.Tags()["tensors"])
    return tags


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
    assert lines[0] == "step,gen_total,gen_gan,gen_l1,disc,val_l1,val_lsd"
    rows = [list(map(float, line.split(","))) for line in lines[1:]]
    assert [r[0] for r in rows] == [2, 4] and all(np.isfinite(r).all() for r in rows)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert (run / "losses.png").stat().st_size > 1000
    generator = keras.saving.load_model(run / "generator.keras", compile=False)
    assert generator.output_shape[1:] == (ROWS, None, 2)
    tags = _event_tags(run / "logs")
    assert {"loss/gen_l1", "loss/val_l1", "audio/predicted_mixture", "audio/target",
            "strips/input|target|prediction"} <= tags
    assert "steps/s" in result.output and not list(run.rglob(".*.part*"))
    assert "loudness" not in config  # the published generator has no accompaniment of its own to calibrate


def _tile_lsd(pred: np.ndarray, y: np.ndarray, range_db: float = 100.0) -> float:
    """The log-spectral distance in dB of magnitude-only network tiles: per frame the RMS over rows of the dB
    difference, then the mean over frames and tiles."""
    db = (np.clip(pred[..., 0], -1, 1) - y[..., 0]) * range_db / 2
    return float(np.mean(np.sqrt(np.mean(db ** 2, axis=1))))


def test_default_recipe_keeps_the_best_and_calibrates_its_loudness(train_data, tmp_path, run_cli):
    """The default recipe keeps the generator of the lowest val_lsd, its untrained start included (a high learning
    rate makes training erratic), and predicts with it; its accompaniment gain is fitted on training pairs when
    training ends (after the accompaniment's envelope), kept by a rerun of the finished run, and left out with
    --no-loudness-calibration (--no-envelope)."""
    from vocals2song.data import find_pairs, fixed_tiles

    run = tmp_path / "run"
    quick = ["--model", "tiny", "--steps", "4", "--log-every", "2", "--checkpoint-every", "2", "--sample-every", "4",
             "--lr", "0.5"]
    result = run_cli("train", train_data, run, *quick)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["generator"] == "powersum-mean" and config["training"]["keep_best_by"] == "val_lsd"
    history = {int(r["step"]): float(r["val_lsd"]) for r in csv.DictReader(open(run / "history.csv"))}
    best = config["best"]
    assert config["generator"] == "generator_best.keras" and best["step"] in (0, *history)
    # no row beat the kept one, nor the start by the margin unless the kept one is a trained one
    assert min(history.values()) >= min(best["val_lsd"], config["keep_best_start"]["val_lsd"] * (1 - KEEP_BEST_MARGIN)) - 1e-6
    pairs = find_pairs(train_data, "vocals", None)
    x, y, _ = fixed_tiles(pairs.valid, "rgb8", 256, config["training"]["val_tiles"], "none")
    kept = keras.saving.load_model(run / "generator_best.keras", compile=False)
    kept_pred = np.asarray(kept(x, training=False))
    assert _tile_lsd(kept_pred, y) == pytest.approx(best["val_lsd"], rel=1e-4)
    error = kept_pred - y  # val_l1 holds the reconstruction loss: the default is L2
    assert config["training"]["recon_loss"] == "l2" and config["training"]["power_loss"] == 0.0  # recorded, off
    assert float(np.mean(np.square(error))) == pytest.approx(best["val_l1"], rel=1e-4)
    # the untrained start (its last layer is zero: the prior, whatever the seed) is a candidate too; at this
    # learning rate every later row is worse than it
    from vocals2song.baselines import gate_radius
    from vocals2song.train import _gate_radius

    # the gate smoothed as the baseline smooths it at DATA's geometry; a run saved before that (no key) keeps none
    assert config["model"]["gate_radius"] == gate_radius(pairs.meta.sr, pairs.meta.hop) >= 1
    assert _gate_radius({"model": {"prior": [0.0]}}, pairs) == 0 and _gate_radius(config, pairs) >= 1
    start = build_generator(ROWS, 1, MODELS["tiny"], "powersum-mean", 100.0, config["model"]["prior"],
                            gate_radius=config["model"]["gate_radius"])
    start_lsd = _tile_lsd(np.asarray(start(x, training=False)), y)
    assert best["val_lsd"] <= start_lsd + 1e-6
    assert config["keep_best_start"]["val_lsd"] == pytest.approx(start_lsd, rel=1e-4)  # what later rows must beat
    assert len(config["loudness"]["gain_db"]) == 513 and np.isfinite(config["loudness"]["alpha_db"])
    assert config["loudness"]["pairs"] >= 1 and "loudness calibration" in result.output
    said = "kept the untrained start" if best["step"] == 0 else f"kept step {best['step']}: val_lsd"
    assert f"--keep-best {said}" in result.output  # the user is told which generator predict will use
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
    off = run_cli("train", train_data, run, *quick, "--no-loudness-calibration", "--no-envelope")
    assert off.exit_code == 0
    assert not {"loudness", "envelope"} & set(json.loads((run / "config.json").read_text()))


@pytest.mark.parametrize("by, start, kept", [("val_lsd", True, [0, 0, 20, 20, 40]), ("val_l1", True, [0, 10, 10, 30, 40]),
                                             ("val_lsd", False, [0, 0, 20, 20, 20])])
def test_keep_best_follows_the_figure_asked_for(by, start, kept):
    """--keep-best-by picks the history column that --keep-best minimises: rows where val_l1 falls while val_lsd
    rises keep different steps. A trained generator must be KEEP_BEST_MARGIN under the start's figure (step 10's
    val_lsd 6.95 is not); after that the lowest wins, by however little (the last row). A run that recorded no
    start (resumed from before the rule) needs the margin under the kept generator: the last row is not kept."""
    from types import SimpleNamespace

    from vocals2song.train import _callbacks, describe_best

    history_cb = _callbacks()[1]
    state = SimpleNamespace(is_chief=True, cfg=SimpleNamespace(keep_best_by=by), best=None, best_weights=None, step=0,
                            config={})
    callback = history_cb(state)
    weights = []
    model = SimpleNamespace(generator=SimpleNamespace(get_weights=lambda: [state.step]), averaged=contextlib.nullcontext)
    callback.set_model(model)
    for step, l1, lsd in ((0, 0.50, 7.0), (10, 0.40, 6.95), (20, 0.45, 6.5), (30, 0.30, 6.8), (40, 0.299, 6.48)):
        state.step = step
        callback.keep_if_best({"val_l1": l1, "val_lsd": lsd})
        weights.append(state.best_weights[0])
        if step == 0:
            assert state.config["keep_best_start"] == {"val_l1": 0.5, "val_lsd": 7.0}
            if not start:
                del state.config["keep_best_start"]
    assert weights == kept and state.best["step"] == kept[-1]
    assert set(state.best) == {"step", "val_l1", "val_lsd"}
    config = {**state.config, "best": state.best, "training": {"keep_best_by": by}}
    said = describe_best(config)  # what train tells the user it kept, and against what
    assert said.startswith(f"--keep-best kept step {kept[-1]}: {by} {state.best[by]:.3f}")
    assert ("untrained start's" in said) == start
    assert "untrained start" in describe_best({**config, "best": {**state.best, "step": 0}})
    assert describe_best({**config, "best": None}) is None


@pytest.mark.parametrize("fmt, channels", [("rgb8", 2), ("rgba8", 4)])
def test_val_lsd_reads_the_magnitude_of_any_format(fmt, channels):
    """val_lsd is the dB distance of the magnitude planes as `net_to_planes` decodes them (rgba8's split
    magnitude included), over the network's rows: a tile against itself scores 0, against a copy 3 dB louder 3."""
    from types import SimpleNamespace

    from vocals2song import transforms
    from vocals2song.train import _callbacks

    run_state = _callbacks()[0]
    rng = np.random.default_rng(3)
    y = rng.uniform(-0.8, 0.6, (2, ROWS, 32, channels)).astype(np.float32)
    state = SimpleNamespace(meta=SimpleNamespace(format=fmt, range_db=100.0), val_y=y,
                            config={"codec": {"split": {"mag": 0.5}}, "model": {"phase_repr": "angle"}})
    state.magnitudes = lambda x: run_state.magnitudes(state, x)
    mags = state.magnitudes(y)
    u = transforms.net_to_planes(y[1], fmt, {"mag": 0.5}, "angle")[0]
    np.testing.assert_allclose(mags[1], u[-2::-1], atol=1e-6)
    assert run_state.val_lsd(state, y) == 0.0
    louder = y.copy()
    louder[..., 0] += 0.06  # +3 dB at range 100 (net units span 2 for 100 dB)
    if fmt == "rgba8":
        louder[..., 2] += 0.06
    assert run_state.val_lsd(state, louder) == pytest.approx(3.0, abs=1e-4)


def test_keep_best_minimises_the_reconstruction_loss_asked_for(train_data, tmp_path, run_cli):
    """With --recon-loss l2, history's val_l1 is the validation tiles' mean squared error, and --keep-best-by val_l1
    keeps the generator of the lowest one (an L1 criterion would keep the median-seeking one)."""
    from vocals2song.data import find_pairs, fixed_tiles

    run = tmp_path / "run"
    result = run_cli("train", train_data, run, "--model", "tiny", "--steps", "4", "--log-every", "2",
                     "--checkpoint-every", "4", "--sample-every", "4", "--recon-loss", "l2", "--lambda-l1", "5000",
                     "--no-loudness-calibration", "--keep-best-by", "val_l1")
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    best = config["best"]
    x, y, _ = fixed_tiles(find_pairs(train_data, "vocals", None).valid, "rgb8", 256, config["training"]["val_tiles"],
                          "none")
    kept = np.asarray(keras.saving.load_model(run / "generator_best.keras", compile=False)(x, training=False))
    assert float(np.mean((kept - y) ** 2)) == pytest.approx(best["val_l1"], rel=1e-4)
    history = [float(r["val_l1"]) for r in csv.DictReader(open(run / "history.csv"))]
    assert min(history) >= best["val_l1"] * (1 - KEEP_BEST_MARGIN) - 1e-7


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


def test_resume_refuses_a_checkpoint_that_lacks_an_object(train_data, tmp_path):
    """A checkpoint without the generator (or any other object) must stop the resume, not start it afresh."""
    from vocals2song.config import TrainConfig
    from vocals2song.train import train

    run = tmp_path / "run"
    cfg = TrainConfig(model="tiny", steps=2, log_every=2, checkpoint_every=2, sample_every=1000, generator="unet",
                      phase_repr="angle", **PIX2PIX_TRAINING)
    train(train_data, run, cfg, progress=False, log=lambda *a: None)
    gan = build_pix2pix(ROWS, 2, MODELS["tiny"])
    partial = tf.train.Checkpoint(discriminator=gan.discriminator, g_optimizer=gan.g_optimizer,
                                  d_optimizer=gan.d_optimizer)
    tf.train.CheckpointManager(partial, str(run / "checkpoints"), max_to_keep=5).save(checkpoint_number=3)
    with pytest.raises(Vocals2SongError, match="does not hold all of this model") as err:
        train(train_data, run, dataclasses.replace(cfg, steps=4), progress=False, log=lambda *a: None)
    assert "ckpt-3" in str(err.value) and "\n" not in str(err.value)


def test_seed_layout_without_metadata(train_data, tmp_path, run_cli):
    """The seed project's input/ + output/ folders of plain 8-bit PNGs (no metadata) train too."""
    from PIL import Image

    root = tmp_path / "seed"
    for sub, stem in (("input", "vocals"), ("output", "mixture")):
        (root / sub).mkdir(parents=True)
        for f in sorted((train_data / "train" / stem).iterdir())[:4]:
            Image.fromarray(read_image(f)[0]).save(root / sub / f"song_{f.stem[-1]}.png")
    result = run_cli("train", root, tmp_path / "run", "--input-subdir", "input", "--target-subdir", "output",
                     "--steps", "2", *[a for a in QUICK_TRAIN if a not in PUBLISHED])  # the default recipe, whose
    assert result.exit_code == 0, result.output  # prior decodes these images with the codec found for them
    assert "validation uses training pairs" in result.output


def test_train_bad_data_is_one_line(tmp_path, run_cli):
    result = run_cli("train", tmp_path / "nowhere", tmp_path / "run")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "Error:" in result.output


def _train_cmd(data, run, *extra) -> list[str]:
    return [sys.executable, "-m", "vocals2song", "train", str(data), str(run), *QUICK_TRAIN, *extra]


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: `vocals2song train` that also saves the GAN's trainable weights before and after `fit` to argv[1] (.npz)
WORKER_SCRIPT = """
import sys
import numpy as np
import vocals2song.model as model_mod
from vocals2song.cli import main
real_fit = model_mod.Pix2Pix.fit
def weights(gan, when):
    variables = gan.generator.trainable_weights + gan.discriminator.trainable_weights
    return {f"{when}{i}": np.asarray(v) for i, v in enumerate(variables)}
def fit(self, *args, **kwargs):
    before = weights(self, "before")
    result = real_fit(self, *args, **kwargs)
    np.savez(sys.argv[1], **before, **weights(self, "after"))
    return result
model_mod.Pix2Pix.fit = fit
main(sys.argv[2:])
"""


def test_two_workers_train_together(train_data, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    run = tmp_path / "run"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        cmd = [sys.executable, "-c", WORKER_SCRIPT, str(tmp_path / f"worker{index}.npz"),
               *_train_cmd(train_data, run, "--steps", "4")[3:]]
        procs.append(subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("MultiWorkerMirroredStrategy (2 workers)" in out for out in outputs)
    config = json.loads((run / "config.json").read_text())
    assert config["step"] == 4 and config["strategy"]["replicas"] == 2
    assert (run / "generator.keras").is_file() and list((run / "checkpoints").glob("ckpt-4.index"))
    # Synchronous training: after 4 steps on different data, both workers hold the very same trainable weights.
    # (BatchNorm's moving statistics are each worker's own: they differ, and the chief's are the ones saved.)
    chief, other = (np.load(tmp_path / f"worker{index}.npz") for index in range(2))
    assert chief.files == other.files and len(chief.files) > 20
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    trained = [n for n in chief.files
               if n.startswith("after") and not np.array_equal(chief[n], chief["before" + n[len("after"):]])]
    assert len(trained) > len(chief.files) // 4  # the weights did move: 4 steps trained them
    generator = keras.saving.load_model(run / "generator.keras", compile=False)  # the chief's file, at step 4
    np.testing.assert_array_equal(generator.trainable_weights[0], chief["after0"])


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


def test_learning_on_the_learnable_task(trained_run, magnitude_l1):
    """The trained model uses the vocals: on training and held-out pairs it beats itself deaf to the vocals, and
    on held-out pairs it beats silence.

    Measured (300 steps, magnitude L1, held-out): model 0.228-0.231, deaf 0.276, floor 0.271; on the training
    pairs: model 0.229, deaf 0.277. Training on a CPU is not reproducible under load (TensorFlow's thread
    scheduling): one CI run on a busy machine gave model 0.253, deaf 0.291, floor 0.271, so the margin over the
    floor is 0.01; the margin over the deaf model, which is the claim (it uses the vocals), stays 0.02. The full
    claim, beating the best constant and the vocals copied, is the xfail test below.
    """
    from vocals2song.plots import read_history

    rows = read_history(trained_run / "history.csv")
    assert [r["step"] for r in rows] == list(range(25, 301, 25))
    train, held_out = magnitude_l1["train"], magnitude_l1["held_out"]
    assert train["model"] < train["deaf"] - 0.02, train
    assert held_out["model"] < held_out["deaf"] - 0.02 and held_out["model"] < held_out["floor"] - 0.01, held_out


@pytest.mark.xfail(strict=False, reason="the tiny model does not reliably beat what ignores the vocals: in 12 fresh "
                   "runs (300-800 steps, lr 2e-4 or 1e-3, batch 1 or 4) its held-out magnitude L1 was 0.19-0.30, "
                   "against 0.23 for a constant per-row median and 0.185 for the vocals copied (issue 11)")
def test_learning_beats_what_ignores_the_vocals(magnitude_l1):
    """What "it learns" means in full: on held-out pairs, better than the best constant and than the vocals alone."""
    held_out = magnitude_l1["held_out"]
    assert held_out["model"] < held_out["median"] - 0.02 and held_out["model"] < held_out["copy"] - 0.01, held_out


def test_gpu_options_do_no_harm_on_a_cpu(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    result = run_cli("train", train_data, run, "--steps", "2", "--xla", "--mixed-precision", *QUICK_TRAIN)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    if not tf.config.list_logical_devices("GPU"):  # bfloat16 where this CPU has it, else float32 with a note
        from vocals2song.precision import cpu_bf16_flags

        bf16 = bool(cpu_bf16_flags())
        assert config["precision"] == ("mixed_bfloat16" if bf16 else "float32")
        assert ("bfloat16 compute on this CPU" if bf16 else "--mixed-precision ignored") in result.output
    assert config["training"]["xla"] and config["training"]["mixed_precision"]
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 1 and all(cell and np.isfinite(float(cell)) for cell in rows[0].split(","))


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import vocals2song.train as train_mod
train_mod.make_strategy = lambda: (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), True,
                                   "MirroredStrategy (2 CPU replicas)")
from vocals2song.config import TrainConfig
summary = train_mod.train(sys.argv[1], sys.argv[2], TrainConfig(model="tiny", steps=4, log_every=2,
                          checkpoint_every=2, sample_every=2), progress=False)
print("final", summary.step, summary.last_row["gen_l1"])
"""


def test_mirrored_strategy_trains_on_two_replicas(train_data, tmp_path):
    """The MirroredStrategy path (several GPUs), run on two logical CPU devices."""
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(train_data), str(run)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "final 4" in out.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == {"name": "MirroredStrategy (2 CPU replicas)", "replicas": 2}
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(np.isfinite(float(c)) for row in rows for c in row.split(","))


# --- mixed precision -------------------------------------------------------------------------------

def test_precision_policy_follows_the_hardware(tmp_path):
    from vocals2song.precision import choose_policy, cpu_bf16_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_bf16_flags(cpuinfo) == ["avx512_bf16"]
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_bf16_flags(cpuinfo) == [] and cpu_bf16_flags(tmp_path / "missing") == []
    assert choose_policy(False, True, ["amx_bf16"]) == ("float32", None)
    assert choose_policy(True, True, [])[0] == "mixed_float16"
    assert choose_policy(True, False, ["amx_bf16"])[0] == "mixed_bfloat16"
    policy, note = choose_policy(True, False, [])
    assert policy == "float32" and "ignored" in note


def _train_with_policy(monkeypatch, train_data, run, policy: str):
    """Train the tiny model 3 steps in-process under a forced dtype policy (whatever this CPU has)."""
    from vocals2song import precision
    from vocals2song.config import TrainConfig
    from vocals2song.train import train

    monkeypatch.setattr(precision, "choose_policy", lambda mixed, gpu, flags=None: (policy, None))
    cfg = TrainConfig(model="tiny", steps=3, log_every=3, sample_every=3, checkpoint_every=3, mixed_precision=True,
                      generator="unet", phase_repr="angle")
    summary = train(train_data, run, cfg, progress=False, log=lambda *a: None)
    assert keras.mixed_precision.global_policy().name == "float32"  # not left behind for the rest of the process
    config = json.loads((run / "config.json").read_text())
    assert config["precision"] == policy and config["step"] == 3
    assert all(np.isfinite(summary.last_row[k]) for k in ("gen_total", "gen_gan", "gen_l1", "disc", "val_l1"))
    return config


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_run_predicts_in_float32(policy, train_data, tmp_path, monkeypatch):
    """bfloat16 (CPU) and float16 with loss scaling (GPU, forced here on a CPU: slow but correct) train with
    float32 losses, and predict runs the saved generator in float32, as a float32 build of the same weights does."""
    from vocals2song.predict import load_predictor

    run = tmp_path / "run"
    config = _train_with_policy(monkeypatch, train_data, run, policy)
    saved = keras.saving.load_model(run / config["generator"], compile=False)  # the one predict loads
    assert saved.get_layer("to_image").dtype_policy.name == policy  # the file keeps the training policy
    predictor = load_predictor(run)
    x = data_mod.fixed_tiles(data_mod.find_pairs(train_data).valid, "rgb8", 256, 1)[0]
    y = predictor.generate(x)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    fresh = build_generator(config["model"]["nb_rows"], config["model"]["nb_channels"], MODELS["tiny"],
                            norm=config["model"]["norm"])
    fresh.set_weights(saved.get_weights())
    np.testing.assert_allclose(y, np.asarray(fresh(x, training=False)), atol=1e-5)
    low = np.asarray(saved(x, training=False), dtype=np.float32)  # the same weights computing in 16 bits
    assert 0 < np.max(np.abs(low - y)) < 0.1
    names = [name for name, _ in tf.train.list_variables(str(run / "checkpoints"))]
    scaled = any("loss_scale" in name or "dynamic_scale" in name for name in names)
    assert scaled == (policy == "mixed_float16"), [n for n in names if "optimizer" in n][:20]
