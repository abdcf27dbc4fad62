"""`vocals2song train DATA RUN`: pix2pix on paired spectrogram images, into a run folder that resumes.

The driver: it reads the pairs, sets up TensorFlow (`runtime`), builds the networks of the recipe (`model`), lays
out the run folder (`runfolder`), trains with one ``fit`` whose side jobs are callbacks (`callbacks`), and
calibrates the kept generator at the end (`calibrate`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from vocals2song import baselines, calibrate, runfolder, runtime, transforms
from vocals2song import data as data_mod
from vocals2song.codec import ImageMeta
from vocals2song.config import (
    GAN_LOSSES,
    GENERATORS,
    KEEP_BEST_BY,
    MODELS,
    NORMS,
    PHASE_REPRS,
    RECON_LOSSES,
    VIEWS,
    TrainConfig,
)
from vocals2song.errors import Vocals2SongError
from vocals2song.gate import gate_radius


@dataclasses.dataclass
class TrainSummary:
    run: Path
    start: int
    step: int
    seconds: float
    steps_per_second: float
    strategy: str
    notes: list[str]
    last_row: dict


def train(data: str | os.PathLike, run: str | os.PathLike, cfg: TrainConfig | None = None, resume: bool = True,
          progress: bool = True, log=print) -> TrainSummary:
    """Train (or resume) a pix2pix run on DATA's paired images into RUN (`runfolder`)."""
    cfg = cfg or TrainConfig()
    _check_config(cfg)
    run = Path(run)
    pairs = data_mod.find_pairs(data, cfg.input_subdir, cfg.target_subdir)
    runtime.quiet_tensorflow()
    import keras
    import tensorflow as tf

    from vocals2song.callbacks import Checkpoints, History, Progress, RunState, Samples
    from vocals2song.model import build_pix2pix

    strategy, is_chief, strategy_name = runtime.make_strategy()  # first: it configures TensorFlow's context
    keras.utils.set_random_seed(cfg.seed)
    notes = list(pairs.notes)
    policy, note = runtime.choose_policy(cfg.mixed_precision, bool(tf.config.list_logical_devices("GPU")))
    notes += [note] if note else []
    keras.mixed_precision.set_global_policy(policy)
    fmt = pairs.meta.format
    transforms.check_phase_repr(fmt, cfg.phase_repr)
    nb_rows, nb_channels = pairs.info.nb_rows - 1, transforms.nb_net_channels(fmt, cfg.phase_repr)
    val = data_mod.fixed_tiles(pairs.valid, fmt, cfg.tile, cfg.val_tiles, cfg.phase_repr)
    config = run_config(data, cfg, pairs, val[2], strategy_name, strategy.num_replicas_in_sync, nb_rows, nb_channels)
    recorded = runfolder.read_config(run) if resume and (run / runfolder.CONFIG).is_file() else {}
    if cfg.generator == "powersum-mean":  # the prior is part of what the weights learned on: a resume keeps it
        config["model"]["prior"] = recorded["model"]["prior"] if recorded else prior(pairs)
        # how the head smooths its gate: as the run recorded it (0 for runs from before the smoothing)
        config["model"]["gate_radius"] = (recorded["model"]["gate_radius"] if recorded
                                          else gate_radius(pairs.meta.sr, pairs.meta.hop))
    config["precision"] = policy  # the Keras dtype policy: float32, mixed_bfloat16 (CPU) or mixed_float16 (GPU)
    best_file = run / runfolder.BEST_GENERATOR
    if cfg.keep_best and "best" in recorded and best_file.is_file():  # a resume keeps the best so far
        config["best"], config["generator"] = recorded["best"], runfolder.BEST_GENERATOR
        if "keep_best_start" in recorded:
            config["keep_best_start"] = recorded["keep_best_start"]
    if is_chief:
        runfolder.prepare(run, resume)
        if recorded:
            runfolder.check_resume(recorded, config, run)

    with strategy.scope():
        gan = build_pix2pix(nb_rows, nb_channels, cfg, range_db=pairs.meta.range_db, prior=config["model"]["prior"],
                            gate_radius=config["model"]["gate_radius"], policy=policy, sr=pairs.meta.sr)
        # what a resume must find again; a recipe without a discriminator builds and checkpoints none
        networks = {"generator": gan.generator, "g_optimizer": gan.g_optimizer}
        if gan.discriminator is not None:
            networks.update(discriminator=gan.discriminator, d_optimizer=gan.d_optimizer)
        checkpoint = tf.train.Checkpoint(**networks)
    ckpt_dir = run / runfolder.CHECKPOINTS if is_chief else Path(tempfile.mkdtemp(prefix="vocals2song-worker-"))
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=cfg.keep_checkpoints)
    start = 0
    if resume and manager.latest_checkpoint:
        try:  # every network and optimizer must come back: a missing one would resume from fresh weights
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except AssertionError as exc:
            raise Vocals2SongError(f"the checkpoint does not hold all of this model ({str(exc).split('.')[0]}); "
                                   "use a new RUN folder, or --no-resume to start this one over",
                                   manager.latest_checkpoint, usage=True) from exc
        start = int(gan.g_optimizer.iterations.numpy())
    if is_chief:
        history = run / runfolder.HISTORY
        runfolder.drop_partial_row(history)
        rows = [r for r in runfolder.read_history(history) if r["step"] <= start]  # a kill may leave later rows
        runfolder.write_history(history, rows)
        config["step"] = start
        runfolder.write_config(run, config)
    if start >= cfg.steps:
        log(f"{run}: already at step {start} of {cfg.steps}; raise --steps to train on")
        _finish(run, cfg, pairs, config, is_chief, log)  # config.json was rewritten without the calibration
        return TrainSummary(run, start, start, 0.0, 0.0, strategy_name, notes, {})
    for note in notes:
        log(f"note: {note}")
    log(f"{run}: training {cfg.model} from step {start} to {cfg.steps} on {len(pairs.train)} pairs "
        f"(valid {len(pairs.valid)}), {strategy_name}")

    state = RunState(run, cfg, config, start, val, is_chief)
    callbacks = [History(state), Samples(state), Checkpoints(state, manager)]
    if progress:
        callbacks.append(Progress(state))
    global_batch = cfg.batch_size * strategy.num_replicas_in_sync
    ds = data_mod.make_dataset(pairs.train, fmt, nb_rows, cfg.tile, global_batch, seed=cfg.seed + start,
                               phase_repr=cfg.phase_repr)
    t0 = time.monotonic()
    gan.fit(ds, epochs=1, steps_per_epoch=cfg.steps - start, verbose=0, callbacks=callbacks)
    seconds = time.monotonic() - t0
    keras.mixed_precision.set_global_policy("float32")  # the policy is process-wide: leave none behind
    _finish(run, cfg, pairs, config, is_chief, log)
    if not is_chief:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainSummary(run, start, state.step, seconds, (state.step - start) / max(seconds, 1e-9), strategy_name,
                        notes, state.last_row)


def _finish(run: Path, cfg: TrainConfig, pairs: data_mod.PairSet, config: dict, is_chief: bool, log) -> None:
    """When training ends (or a finished run is trained again): calibrate the kept generator (additive generators
    on mixtures, unless the recipe turns both fits off), then tell the user what was kept."""
    if not is_chief:
        return
    fit = (cfg.envelope or cfg.loudness_calibration) and calibrate.can_calibrate(config)
    if fit and runfolder.generator_path(run, config).is_file():
        from vocals2song.predict import load_predictor

        calibrate.calibrate_run(run, config, load_predictor(run), pairs, cfg.envelope, cfg.loudness_calibration, log)
    from vocals2song.callbacks import describe_best

    if kept := describe_best(config):
        log(f"{run}: {kept}")


def _check_config(cfg: TrainConfig) -> None:
    for name, value, allowed in (("model", cfg.model, MODELS), ("generator", cfg.generator, GENERATORS),
                                 ("gan-loss", cfg.gan_loss, GAN_LOSSES), ("recon-loss", cfg.recon_loss, RECON_LOSSES),
                                 ("phase-repr", cfg.phase_repr, PHASE_REPRS), ("norm", cfg.norm, NORMS),
                                 ("view", cfg.view, VIEWS), ("keep_best_by", cfg.keep_best_by, KEEP_BEST_BY)):
        if value not in allowed:
            raise Vocals2SongError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}", usage=True)
    for name in ("steps", "batch_size", "tile", "checkpoint_every", "sample_every", "log_every", "keep_checkpoints",
                 "val_tiles", "sample_tiles"):
        if getattr(cfg, name) < 1:
            raise Vocals2SongError(f"{name} must be at least 1, not {getattr(cfg, name)}", usage=True)
    if not 0.0 <= cfg.ema < 1.0:
        raise Vocals2SongError(f"ema must be at least 0 and under 1, not {cfg.ema}", usage=True)
    if not (cfg.lr > 0.0 and cfg.lambda_recon >= 0.0):
        raise Vocals2SongError(f"lr must be over 0 and lambda_recon at least 0, not {cfg.lr} and {cfg.lambda_recon}",
                               usage=True)
    if cfg.tile < 16:
        raise Vocals2SongError("tile must be at least 16 frames", usage=True)
    if cfg.view == "log" and (not cfg.generator.startswith("powersum") or cfg.phase_repr != "none"):
        raise Vocals2SongError("the log-frequency view (view log) is for additive generators of the magnitude "
                               f"alone: use --generator powersum-mean --phase-repr none, not {cfg.generator} and "
                               f"{cfg.phase_repr}", usage=True)


def run_config(data, cfg: TrainConfig, pairs: data_mod.PairSet, val_names: list[str], strategy: str,
               replicas: int, nb_rows: int, nb_channels: int) -> dict:
    """The config.json a new run of ``cfg`` on ``pairs`` starts with (the prior and the gate are added for
    powersum-mean generators, the precision, the best generator and the calibration later)."""
    meta = dataclasses.asdict(pairs.meta)
    codec = {k: meta[k] for k in ("format", "sr", "n_fft", "hop", "win", "window", "top_db", "range_db")}
    codec["split"] = _target_split(pairs)
    return {
        "version": runfolder.RUN_VERSION,
        "codec": codec,
        "target": pairs.target,
        "model": {"preset": cfg.model, **dataclasses.asdict(MODELS[cfg.model]), "nb_rows": nb_rows,
                  "nb_channels": nb_channels, "generator": cfg.generator, "phase_repr": cfg.phase_repr,
                  "norm": cfg.norm, "view": cfg.view, "gate_radius": 0, "prior": None},
        "training": dataclasses.asdict(cfg),
        "strategy": {"name": strategy, "replicas": replicas},
        "data": {"root": str(Path(data).resolve()), "train_pairs": len(pairs.train), "valid_pairs": len(pairs.valid),
                 "held_out_tracks": sorted({p.track for p in pairs.valid}) if pairs.held_out else [],
                 "valid_tiles": val_names, "notes": pairs.notes},
        "generator": runfolder.GENERATOR,
        "step": 0,
    }


def prior(pairs: data_mod.PairSet) -> list[float]:
    """The powersum-mean generator's start: the training targets' mean accompaniment power where the vocals
    sound (as the gated ``mean_accompaniment`` baseline adds it), as network rows."""
    stats = baselines.stats_from_images([(p.name, p.input, p.target) for p in pairs.train], pairs.target,
                                        fallback=pairs.meta)
    return baselines.prior_rows(stats, pairs.meta.top_db, pairs.meta.range_db)


def _target_split(pairs: data_mod.PairSet) -> dict | None:
    """rgba8: the mean magnitude split point of some training targets, to decode predictions with."""
    if pairs.meta.format != "rgba8":
        return None
    from vocals2song.imagefile import probe_image

    splits = []
    for pair in pairs.train[:: max(1, len(pairs.train) // 16)]:
        meta_json = probe_image(pair.target).meta_json
        if meta_json:
            split = ImageMeta.from_json(meta_json, pair.target).split
            if split:
                splits.append(split["mag"])
    return {"mag": round(float(np.mean(splits)), 6) if splits else 0.5, "phase": 0.5}
