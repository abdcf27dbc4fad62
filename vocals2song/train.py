"""`vocals2song train DATA RUN`: pix2pix on paired spectrogram images, into a run folder that resumes.

The run folder (SPEC.md, "The run folder")::

    RUN/config.json        codec + model + training settings + strategy; predict/evaluate read only this
    RUN/checkpoints/       tf.train.CheckpointManager: both models, both optimizers (and so the step)
    RUN/generator.keras    the latest generator
    RUN/generator_best.keras  the generator of the lowest val_lsd (or val_l1: --keep-best-by), the untrained
                           start included (--keep-best, the default; config.json "best" says its step, and
                           "generator" names it for predict)
    RUN/history.csv        step,gen_total,gen_gan,gen_l1,disc,val_l1,val_lsd
    RUN/logs/              TensorBoard: losses, image strips, audio of predicted mixtures
    RUN/samples/           PNG strips input | target | prediction of fixed validation tiles
    RUN/losses.png         loss curves

Side jobs (history, samples, checkpoints, the progress bar) are Keras callbacks around one ``fit``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vocals2song import data as data_mod
from vocals2song import plots, precision, transforms
from vocals2song.codec import ImageMeta, planes_to_audio
from vocals2song.config import (GAN_LOSSES, GENERATORS, KEEP_BEST_BY, MODELS, NORMS, PHASE_REPRS, RECON_LOSSES,
                                TrainConfig)
from vocals2song.errors import Vocals2SongError
from vocals2song.files import atomic_path, write_bytes_atomic

RUN_VERSION = 1
HISTORY_COLUMNS = plots.HISTORY_COLUMNS
#: settings that must not change when a run resumes (they change what the weights mean)
FIXED_ON_RESUME = ("codec", "model", "target")
#: what `--no-resume` removes: the run folder's own artefacts, nothing else
RUN_ARTEFACTS = ("config.json", "checkpoints", "generator.keras", "generator_best.keras", "history.csv", "logs",
                 "samples", "losses.png")
#: where --keep-best keeps the generator of the lowest val_lsd (--keep-best-by)
BEST_GENERATOR = "generator_best.keras"
#: how much lower (relative) than the untrained start's a trained generator's figure must be for --keep-best to keep
#: it; after that the lowest wins. The validation tiles come from a few tunes and instruments, so small gains are
#: theirs: in the demo a step-100 generator scored 5.671 dB against the start's 5.689 on its 10 tiles, and 11.9
#: against 9.4 dB on the test songs (README, "Quality"). (Until 2026-11-22's fourth session every replacement had to
#: be 1% under the kept one: with --ema the curve falls smoothly, and that kept step 300 of 2000 on the chorales,
#: whose songs scored lsd 10.98 against step 2000's 10.25. Runs from before it keep that rule.)
KEEP_BEST_MARGIN = 0.01


def quiet_tensorflow() -> None:
    """Import TensorFlow and find its devices with stderr silenced.

    TensorFlow 2.21 prints C++ notices at import (oneDNN, "Could not find cuda drivers", cuInit errors on a CPU
    machine) before its logging honours TF_CPP_MIN_LOG_LEVEL. A failed import still raises.
    """
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        if not os.environ.get("TF_CONFIG"):  # a multi-worker strategy must configure the context first
            tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --- distribution ----------------------------------------------------------------------------------

def make_strategy():
    """`MultiWorkerMirroredStrategy` when TF_CONFIG names a cluster, `MirroredStrategy` on several GPUs,
    else the default strategy. Returns (strategy, is_chief, description)."""
    import tensorflow as tf

    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster = tf_config.get("cluster") or {}
    nb_workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    if nb_workers > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = tf_config.get("task") or {}
        is_chief = task.get("type") == "chief" or (task.get("type") == "worker" and task.get("index", 0) == 0
                                                   and "chief" not in cluster)
        return strategy, is_chief, f"MultiWorkerMirroredStrategy ({nb_workers} workers)"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), True, f"MirroredStrategy ({len(gpus)} GPUs)"
    return tf.distribute.get_strategy(), True, "default (one device: " + ("GPU" if gpus else "CPU") + ")"


# --- the run folder --------------------------------------------------------------------------------

def read_run_config(run: str | os.PathLike) -> dict:
    """RUN/config.json, checked; what predict and evaluate build on."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise Vocals2SongError("not a run folder (no config.json); train one with `vocals2song train DATA RUN`",
                               run, usage=True)
    try:
        config = json.loads(path.read_text())
        ImageMeta(**{**config["codec"], "length": 0})
        config["model"]["preset"], config["training"]["tile"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Vocals2SongError(f"config.json is not valid ({type(exc).__name__}: {exc})", path) from exc
    if config.get("version") != RUN_VERSION:
        raise Vocals2SongError(f"run folder version {config.get('version')} is not supported", path)
    return config


def codec_meta(config: dict, length: int = 0) -> ImageMeta:
    """The run's codec as image metadata (``length`` in samples)."""
    return ImageMeta(**{**config["codec"], "length": int(length)})


def _write_json(path: Path, obj: dict) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_history(path: Path) -> list[dict]:
    return plots.read_history(path) if path.is_file() else []


def _drop_partial_row(path: Path) -> None:
    """A SIGKILL during an append can leave a last row without its newline: cut it off."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            write_bytes_atomic(path, data[: data.rfind(b"\n") + 1])


def _write_history(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in HISTORY_COLUMNS])
    write_bytes_atomic(path, buf.getvalue().encode())


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return str(int(value)) if isinstance(value, (int, np.integer)) else f"{float(value):.6g}"


def _prepare_run(run: Path, resume: bool) -> None:
    if run.exists() and not run.is_dir():
        raise Vocals2SongError("exists and is not a folder", run, usage=True)
    if not resume:
        for name in RUN_ARTEFACTS:
            target = run / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    run.mkdir(parents=True, exist_ok=True)


def run_settings(run: str | os.PathLike) -> dict:
    """The training settings RUN/config.json recorded (``TrainConfig`` fields, ``model`` the preset's name), so a
    rerun needs no option repeated; {} when RUN is not a run yet (or its config is unreadable: `train` says so)."""
    try:
        config = json.loads((Path(run) / "config.json").read_text())
        settings = {k: v for k, v in config["training"].items() if k in TrainConfig.__dataclass_fields__}
        settings["model"] = config["model"]["preset"]
        settings["norm"] = config["model"].get("norm", "batch")  # runs from before --norm used BatchNorm
        settings.setdefault("keep_best_by", "val_l1")  # runs from before val_lsd kept the lowest val_l1
        settings.setdefault("ema", 0.0)  # and runs from before --ema had no average
        settings.setdefault("power_loss", 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return settings


def _check_resume(old: dict, new: dict, run: Path) -> None:
    """Refuse to resume with a model, codec or target other than the run's, saying which in words."""
    differences = []
    was, now = {"norm": "batch", **old.get("model", {})}, new["model"]  # runs from before --norm: BatchNorm
    if was != now:
        named = [(flag, was.get(key, default), now.get(key))
                 for flag, key, default in (("--model", "preset", None), ("--generator", "generator", "unet"),
                                            ("--phase-repr", "phase_repr", "angle"), ("--norm", "norm", "batch"))]
        differences += [f"the run's model is {flag} {a}, this command's {flag} {b}" for flag, a, b in named if a != b]
        if all(a == b for _, a, b in named):
            differences.append(f"the sizes of --model {now['preset']} changed since the run was made")
    if old.get("codec") != new.get("codec"):
        keys = sorted(k for k in new["codec"] if old.get("codec", {}).get(k) != new["codec"][k])
        differences.append("the run's images were " + ", ".join(f"{k} {old.get('codec', {}).get(k)}" for k in keys)
                           + "; DATA's are " + ", ".join(f"{k} {new['codec'][k]}" for k in keys))
    had_ema, has_ema = float(old.get("training", {}).get("ema", 0.0)) > 0.0, float(new["training"]["ema"]) > 0.0
    if old.get("training") is not None and had_ema != has_ema:  # the optimizer's averages are in the checkpoint
        differences.append(f"the run was trained {'with' if had_ema else 'without'} --ema, this command asks "
                           f"{'for' if has_ema else 'for none'}")
    if old.get("target") != new.get("target"):
        differences.append(f"the run learns to make the {old.get('target')}, DATA's targets are the {new['target']} "
                           "(see --target-subdir)")
    if differences:
        raise Vocals2SongError(f"this run was trained with other settings: {'; '.join(differences)}. Leave the option "
                               "out to continue the run as it was, use a new RUN folder, or --no-resume to start this "
                               "one over", run, usage=True)


# --- callbacks -------------------------------------------------------------------------------------

def _callbacks():
    import keras
    import tensorflow as tf

    class RunState:
        """What the callbacks share: the run, its step, the fixed validation tiles, the TensorBoard writer."""

        def __init__(self, run: Path, cfg: TrainConfig, config: dict, start: int, val: tuple, is_chief: bool):
            self.run, self.cfg, self.config, self.step, self.start = run, cfg, config, start, start
            self.val_x, self.val_y, self.val_names = val
            self.is_chief = is_chief
            self.meta = codec_meta(config)
            self.writer = (tf.summary.create_file_writer(str(run / "logs")) if is_chief
                           else tf.summary.create_noop_writer())
            self.last_row: dict = {}
            self.best: dict | None = config.get("best")  # the lowest val_l1 so far (--keep-best) ...
            self.best_weights: list | None = None  # ... and its generator's weights, until save_run writes them
            self._predicted: tuple[int, np.ndarray] | None = None
            self._generate = None
            self._side_jobs = SideJobs()

        def due(self, every: int) -> bool:
            """Whether a job that runs every ``every`` steps (and at the last step) runs now."""
            return self.step % every == 0 or self.step == self.cfg.steps

        def predictions(self, model) -> np.ndarray:
            """The generator on the fixed validation tiles at this step (computed once per step)."""
            if self._predicted is None or self._predicted[0] != self.step:
                if self._generate is None:  # compiled once: an eager Keras call costs more than the tiles
                    self._generate = tf.function(lambda t: model.generator(t, training=False),
                                                 reduce_retracing=True)
                x = self.val_x
                averaged = getattr(model, "averaged", contextlib.nullcontext)  # scripts pass a bare generator
                with averaged():  # with --ema, the averaged weights are the ones validated and kept
                    pred = np.concatenate([self._generate(tf.constant(x[i: i + 16])).numpy()
                                           for i in range(0, len(x), 16)])
                self._predicted = (self.step, pred)
            return self._predicted[1]

        def val_error(self, pred: np.ndarray) -> float:
            """The reconstruction loss on the validation tiles (history's ``val_l1``, which --keep-best
            minimises): mean absolute error, or mean squared error with ``--recon-loss l2``."""
            error = pred - self.val_y
            return float(np.mean(np.square(error)) if self.cfg.recon_loss == "l2" else np.mean(np.abs(error)))

        def val_lsd(self, pred: np.ndarray) -> float:
            """The log-spectral distance of the validation tiles' magnitudes in dB (history's ``val_lsd``, which
            --keep-best minimises by default): per frame the RMS over bins of the dB difference, floored at the
            image's floor, then the mean over frames and tiles. Unlike L1 on the planes it weighs a frame's
            loud errors more, as `evaluate`'s lsd does (on the chorales' validation tiles L1 kept a step whose
            songs were worse than the start's; lsd of these tiles did not)."""
            target = getattr(self, "_val_y_magnitudes", None)
            if target is None:  # the tiles are fixed: their magnitudes once per run
                target = self._val_y_magnitudes = self.magnitudes(self.val_y)
            db = (self.magnitudes(pred) - target) * self.meta.range_db
            return float(np.mean(np.sqrt(np.mean(np.square(db), axis=1))))

        def magnitudes(self, x: np.ndarray) -> np.ndarray:
            """Network tiles ``(k, rows, tile, C)`` -> their magnitude planes ``(k, rows, tile)`` in [0, 1] (the
            network's rows, highest first, as `transforms.net_to_planes` reads them without the Nyquist row)."""
            if self.meta.format != "rgba8":  # channel 0 is the magnitude, whatever the phase channels hold
                return np.clip((x[..., 0] + 1.0) * 0.5, 0.0, 1.0)
            split, phase_repr = self.config["codec"].get("split"), self.config["model"].get("phase_repr", "angle")
            return np.stack([transforms.net_to_planes(t, "rgba8", split, phase_repr)[0][-2::-1] for t in x])

        def val_row(self, model) -> dict:
            """``val_l1`` and ``val_lsd`` of the generator on the validation tiles at this step."""
            pred = self.predictions(model)
            return {"val_l1": self.val_error(pred), "val_lsd": self.val_lsd(pred)}

        def background(self, fn, *args) -> None:
            """Run ``fn(*args)`` off the training loop (PNG plots, audio summaries); `drain` waits for it."""
            self._side_jobs.submit(fn, *args)

        def drain(self) -> None:
            self._side_jobs.drain()

        def tile_audio(self, x: np.ndarray) -> np.ndarray:
            """Network tiles ``(k, rows, tile, C)`` -> waveforms ``(k, samples, 1)`` decoded with the codec."""
            meta = dataclasses.replace(self.meta, length=self.meta.hop * (x.shape[2] - 1))
            waves = []
            phase_repr = self.config["model"].get("phase_repr", "angle")
            for tile in x:
                u, v = transforms.net_to_planes(tile, meta.format, self.config["codec"].get("split"), phase_repr)
                if v is None:  # a magnitude-only network: Griffin-Lim, enough to hear what it makes
                    y = planes_to_audio(u, u, meta, phase=np.zeros_like(u), griffinlim_iters=16)
                else:
                    y = planes_to_audio(u, v, meta)
                waves.append(np.clip(y, -1.0, 1.0))
            return np.stack(waves)[..., None]

    class History(keras.callbacks.Callback):
        """Every ``log_every`` steps: a history.csv row of mean losses since the last row, with val_l1 and
        val_lsd; with ``keep_best``, the weights of the lowest ``keep_best_by`` (the ones training starts from
        included) are held for `save_run` to write."""

        def __init__(self, state: RunState):
            super().__init__()
            self.state = state

        def on_train_begin(self, logs=None):
            state = self.state
            if state.is_chief and state.cfg.keep_best and state.best is None:  # the start is a candidate too
                self.keep_if_best(state.val_row(self.model))

        def keep_if_best(self, row: dict) -> None:
            """Hold the weights in memory when ``row[keep_best_by]`` is the lowest yet and at least
            `KEEP_BEST_MARGIN` under the untrained start's (the first row a run keeps); `save_run` writes them (a
            file per improvement cost the tiny model 9% of its steps/s). A run that recorded no start (from before
            this rule) needs the margin under the kept one instead. A best recorded without the figure (a run from
            before val_lsd, resumed with --keep-best-by val_lsd) is beaten by the first row."""
            state, key = self.state, self.state.cfg.keep_best_by
            if not state.is_chief:
                return
            if state.best is None:  # the start: what a trained generator must beat by the margin
                state.config["keep_best_start"] = {k: round(row[k], 7) for k in ("val_l1", "val_lsd")}
            else:
                kept = state.best.get(key, math.inf)
                start = state.config.get("keep_best_start", {}).get(key)
                limit = kept * (1.0 - KEEP_BEST_MARGIN) if start is None else start * (1.0 - KEEP_BEST_MARGIN)
                if not (row[key] < kept and row[key] <= limit):
                    return
            state.best = {"step": state.step, **{k: round(row[k], 7) for k in ("val_l1", "val_lsd")}}
            with self.model.averaged():
                state.best_weights = self.model.generator.get_weights()

        def on_train_batch_end(self, batch, logs=None):
            state = self.state
            state.step = state.start + batch + 1
            if not state.due(state.cfg.log_every):
                return
            row = {"step": state.step, **{k: float(np.mean(logs[k])) for k in HISTORY_COLUMNS[1:5]},
                   **state.val_row(self.model)}
            for metric in self.model.metrics:
                metric.reset_state()
            state.last_row = row
            if state.cfg.keep_best:
                self.keep_if_best(row)
            if not state.is_chief:
                return
            with open(state.run / "history.csv", "a", newline="") as f:
                f.write(",".join(_cell(row[c]) for c in HISTORY_COLUMNS) + "\n")
            with state.writer.as_default(step=state.step):
                for name, value in row.items():
                    if name != "step":
                        tf.summary.scalar(f"loss/{name}", value)

    class Samples(keras.callbacks.Callback):
        """Every ``sample_every`` steps: samples/step_NNNNNN.png, TensorBoard image strips and audio."""

        def __init__(self, state: RunState):
            super().__init__()
            self.state = state

        def on_train_begin(self, logs=None):
            state = self.state
            k = state.cfg.sample_tiles
            if state.is_chief:
                with state.writer.as_default(step=state.step):
                    sr = state.meta.sr
                    tf.summary.audio("audio/input_vocals", state.tile_audio(state.val_x[:k]), sr, max_outputs=k)
                    tf.summary.audio("audio/target", state.tile_audio(state.val_y[:k]), sr, max_outputs=k)

        def on_train_batch_end(self, batch, logs=None):
            state = self.state
            if state.is_chief and state.due(state.cfg.sample_every):
                write_samples(state, self.model)

    class Checkpoints(keras.callbacks.Callback):
        """Every ``checkpoint_every`` steps and at the end: checkpoint, generator.keras, config, losses.png."""

        def __init__(self, state: RunState, manager):
            super().__init__()
            self.state, self.manager = state, manager

        def on_train_batch_end(self, batch, logs=None):
            state = self.state
            if state.due(state.cfg.checkpoint_every):
                save_run(state, self.model, self.manager)

        def on_train_end(self, logs=None):
            self.state.drain()  # every sample and plot is on disk when training returns

    class Progress(keras.callbacks.Callback):
        """One line: step, losses, steps/s, ETA; redrawn on a terminal, printed per history row otherwise."""

        def __init__(self, state: RunState, stream=sys.stderr):
            super().__init__()
            self.state, self.stream = state, stream
            self.tty = stream.isatty()
            self.t0 = self.last_draw = 0.0

        def on_train_begin(self, logs=None):
            self.t0 = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            state, now = self.state, time.monotonic()
            row_step = state.due(state.cfg.log_every)
            if not (row_step or (self.tty and now - self.last_draw > 0.5)):
                return
            self.last_draw = now
            done = state.step - state.start
            rate = done / max(now - self.t0, 1e-9)
            eta = (state.cfg.steps - state.step) / rate if rate > 0 else float("inf")
            width = 24
            filled = int(width * state.step / state.cfg.steps)
            logs = {k: float(np.mean(v)) for k, v in (logs or {}).items()}
            line = (f"step {state.step}/{state.cfg.steps} [{'#' * filled}{'.' * (width - filled)}] "
                    f"gen {logs.get('gen_total', float('nan')):.3f} (gan {logs.get('gen_gan', float('nan')):.3f}, "
                    f"l1 {logs.get('gen_l1', float('nan')):.4f}) disc {logs.get('disc', float('nan')):.3f}")
            if row_step and state.last_row.get("step") == state.step:
                line += f" val_l1 {state.last_row['val_l1']:.4f} val_lsd {state.last_row['val_lsd']:.2f}"
            line += f" | {rate:.2f} steps/s | ETA {_duration(eta)}"
            if self.tty:
                self.stream.write("\r\033[K" + line)
                if state.step == state.cfg.steps:
                    self.stream.write("\n")
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    return RunState, History, Samples, Checkpoints, Progress


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def write_samples(state, model) -> None:
    """samples/step_NNNNNN.png and TensorBoard strips + predicted-mixture audio of the fixed tiles."""
    import tensorflow as tf

    k = state.cfg.sample_tiles
    x, y = state.val_x[:k], state.val_y[:k]
    pred = state.predictions(model)[:k]
    step = state.step

    def draw() -> None:  # in the background: matplotlib and the ISTFTs cost more than many tiny steps
        rows = [(x[i, ..., 0], y[i, ..., 0], pred[i, ..., 0]) for i in range(len(x))]  # magnitude channel
        plots.save_strips(state.run / "samples" / f"step_{step:06d}.png", rows, value_range=(-1.0, 1.0))
        with state.writer.as_default(step=step):
            tf.summary.image("strips/input|target|prediction", plots.strip_image(rows)[None], max_outputs=1)
            tf.summary.audio("audio/predicted_mixture", state.tile_audio(pred), state.meta.sr, max_outputs=k)
        state.writer.flush()

    state.background(draw)


def save_run(state, model, manager) -> None:
    """Checkpoint (every worker: MultiWorkerMirroredStrategy needs all to save), then the chief's files."""
    manager.save(checkpoint_number=state.step)
    if not state.is_chief:
        return
    with model.averaged(), atomic_path(state.run / "generator.keras") as tmp:
        model.generator.save(tmp)
    if state.best_weights is not None:  # a new best since the last save: written with the generator's own layout
        latest = model.generator.get_weights()
        model.generator.set_weights(state.best_weights)
        try:
            with atomic_path(state.run / BEST_GENERATOR) as tmp:
                model.generator.save(tmp)
        finally:
            model.generator.set_weights(latest)
        state.config["best"], state.config["generator"], state.best_weights = state.best, BEST_GENERATOR, None
    state.config["step"] = state.step
    _write_json(state.run / "config.json", state.config)
    state.background(plots.save_losses, state.run / "losses.png", read_history(state.run / "history.csv"))


class SideJobs:
    """One background thread for the run's side jobs, in submission order; `drain` waits and re-raises.

    The training step runs in TensorFlow's own threads, so drawing PNGs here overlaps it instead of stopping it.
    """

    def __init__(self):
        self._pool = None
        self._pending: list = []

    def submit(self, fn, *args) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="vocals2song-side-job")
        self._pending = [f for f in self._pending if not f.done() or f.exception()]  # keep failures to raise
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()


# --- the driver ------------------------------------------------------------------------------------

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
    """Train (or resume) a pix2pix run on DATA's paired images; see the module docstring for RUN."""
    cfg = cfg or TrainConfig()
    _check_config(cfg)
    run = Path(run)
    pairs = data_mod.find_pairs(data, cfg.input_subdir, cfg.target_subdir)
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from vocals2song.model import build_pix2pix

    strategy, is_chief, strategy_name = make_strategy()  # first: it configures TensorFlow's context
    keras.utils.set_random_seed(cfg.seed)
    notes = list(pairs.notes)
    policy, note = precision.choose_policy(cfg.mixed_precision, bool(tf.config.list_logical_devices("GPU")))
    notes += [note] if note else []
    keras.mixed_precision.set_global_policy(policy)
    fmt = pairs.meta.format
    transforms.check_phase_repr(fmt, cfg.phase_repr)
    nb_rows, nb_channels = pairs.info.nb_rows - 1, transforms.nb_net_channels(fmt, cfg.phase_repr)
    val = data_mod.fixed_tiles(pairs.valid, fmt, cfg.tile, cfg.val_tiles, cfg.phase_repr)
    config = _run_config(data, cfg, pairs, val[2], strategy_name, strategy.num_replicas_in_sync, nb_rows, nb_channels)
    recorded = read_run_config(run) if resume and (run / "config.json").is_file() else {}
    prior, gate_radius = None, 0
    if cfg.generator == "powersum-mean":  # the prior is part of what the weights learned on: a resume keeps it
        prior = config["model"]["prior"] = recorded.get("model", {}).get("prior") or _prior(pairs)
        gate_radius = _gate_radius(recorded, pairs)
        if gate_radius:
            config["model"]["gate_radius"] = gate_radius
    config["precision"] = policy  # the Keras dtype policy: float32, mixed_bfloat16 (CPU) or mixed_float16 (GPU)
    if cfg.keep_best and "best" in recorded and (run / BEST_GENERATOR).is_file():  # a resume keeps the best so far
        config["best"], config["generator"] = recorded["best"], BEST_GENERATOR
        if "keep_best_start" in recorded:
            config["keep_best_start"] = recorded["keep_best_start"]
    if is_chief:
        _prepare_run(run, resume)
        if recorded:
            _check_resume(recorded, config, run)

    with strategy.scope():
        gan = build_pix2pix(nb_rows, nb_channels, MODELS[cfg.model], cfg.lambda_l1, cfg.lr,
                            mixed_precision=policy == "mixed_float16", jit_compile=cfg.xla,
                            generator=cfg.generator, range_db=pairs.meta.range_db, gan_loss=cfg.gan_loss, prior=prior,
                            recon_loss=cfg.recon_loss, norm=cfg.norm, ema=cfg.ema, power_loss=cfg.power_loss,
                            gate_radius=gate_radius)
        checkpoint = tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator,
                                         g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer)
    ckpt_dir = run / "checkpoints" if is_chief else Path(tempfile.mkdtemp(prefix="vocals2song-worker-"))
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
        _drop_partial_row(run / "history.csv")
        rows = [r for r in read_history(run / "history.csv") if r["step"] <= start]  # a kill may leave later rows
        _write_history(run / "history.csv", rows)
        config["step"] = start
        _write_json(run / "config.json", config)
    if start >= cfg.steps:
        log(f"{run}: already at step {start} of {cfg.steps}; raise --steps to train on")
        _finish(run, cfg, pairs, config, is_chief, log)  # config.json was rewritten without the calibration
        return TrainSummary(run, start, start, 0.0, 0.0, strategy_name, notes, {})
    for note in notes:
        log(f"note: {note}")
    log(f"{run}: training {cfg.model} from step {start} to {cfg.steps} on {len(pairs.train)} pairs "
        f"(valid {len(pairs.valid)}), {strategy_name}")

    RunState, History, Samples, Checkpoints, Progress = _callbacks()
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


def describe_best(config: dict) -> str | None:
    """One line for the user: which generator `--keep-best` kept, and why (``None`` when it kept none). When it is
    the untrained start, say so plainly: the run learned nothing that carried to the validation tiles, and what
    `predict` and `evaluate` use is the start (for ``powersum-mean``, the mean accompaniment)."""
    best = config.get("best")
    if not best:
        return None
    key = config.get("training", {}).get("keep_best_by", "val_lsd")
    start = config.get("keep_best_start", {}).get(key)
    unit = " dB" if key == "val_lsd" else ""
    if best.get("step", 0) == 0:
        under = f"{KEEP_BEST_MARGIN:.0%} under the start's {start:.3f}{unit}" if start is not None else "better"
        what = " (the mean accompaniment)" if config.get("model", {}).get("generator") == "powersum-mean" else ""
        return (f"--keep-best kept the untrained start{what}: no trained generator's {key} came {under} on the "
                "validation tiles: nothing it learned held on unseen tracks (more training tunes help; README, "
                "\"Quality\")")
    if key not in best:
        return f"--keep-best kept step {best['step']}"
    versus = f" against the untrained start's {start:.3f}{unit}" if start is not None else ""
    return f"--keep-best kept step {best['step']}: {key} {best[key]:.3f}{unit}{versus}"


def _finish(run: Path, cfg: TrainConfig, pairs: data_mod.PairSet, config: dict, is_chief: bool, log) -> None:
    """When training ends (or a finished run is trained again): calibrate, then tell the user what was kept."""
    _calibrate(run, cfg, pairs, config, is_chief, log)
    if is_chief and (kept := describe_best(config)):
        log(f"{run}: {kept}")


def _calibrate(run: Path, cfg: TrainConfig, pairs: data_mod.PairSet, config: dict, is_chief: bool, log) -> None:
    """Fit the saved generator's accompaniment envelope and loudness gain on training pairs into config.json
    (`vocals2song.envelope`, `vocals2song.loudness`): additive generators on mixtures, unless --no-envelope and
    --no-loudness-calibration."""
    if not (is_chief and (cfg.envelope or cfg.loudness_calibration) and cfg.generator.startswith("powersum")
            and pairs.target == "mixture" and (run / config["generator"]).is_file()):
        return
    from vocals2song import envelope, loudness
    from vocals2song.predict import calibrate, load_predictor

    for key in ("envelope", "envelope_check", "loudness"):  # a finished run trained again is calibrated afresh
        config.pop(key, None)
    config.update(calibrate(load_predictor(run), pairs.train, cfg.envelope, cfg.loudness_calibration,
                            check=pairs.valid))
    _write_json(run / "config.json", config)
    if "envelope" in config:
        log(f"{run}: {envelope.describe(config['envelope'])}")
    if "envelope_check" in config:
        log(f"{run}: {envelope.describe_check(config['envelope_check'])}")
    if "loudness" in config:
        log(f"{run}: {loudness.describe(config['loudness']['alpha_db'], config['loudness']['gain_db'], pairs.meta.sr)}")


def _check_config(cfg: TrainConfig) -> None:
    for name, value, allowed in (("model", cfg.model, MODELS), ("generator", cfg.generator, GENERATORS),
                                 ("keep-best-by", cfg.keep_best_by, KEEP_BEST_BY),
                                 ("gan-loss", cfg.gan_loss, GAN_LOSSES), ("recon-loss", cfg.recon_loss, RECON_LOSSES),
                                 ("phase-repr", cfg.phase_repr, PHASE_REPRS), ("norm", cfg.norm, NORMS)):
        if value not in allowed:
            raise Vocals2SongError(f"unknown --{name} {value!r}; use one of {', '.join(allowed)}", usage=True)
    for name in ("steps", "batch_size", "tile", "checkpoint_every", "sample_every", "log_every", "keep_checkpoints",
                 "val_tiles", "sample_tiles"):
        if getattr(cfg, name) < 1:
            raise Vocals2SongError(f"--{name.replace('_', '-')} must be at least 1", usage=True)
    if not 0.0 <= cfg.ema < 1.0:
        raise Vocals2SongError(f"--ema must be at least 0 and under 1, not {cfg.ema}", usage=True)
    if cfg.tile < 16:
        raise Vocals2SongError("--tile must be at least 16 frames", usage=True)


def _run_config(data, cfg: TrainConfig, pairs: data_mod.PairSet, val_names: list[str], strategy: str,
                replicas: int, nb_rows: int, nb_channels: int) -> dict:
    meta = dataclasses.asdict(pairs.meta)
    codec = {k: meta[k] for k in ("format", "sr", "n_fft", "hop", "win", "window", "top_db", "range_db")}
    codec["split"] = _target_split(pairs)
    return {
        "version": RUN_VERSION,
        "codec": codec,
        "target": pairs.target,
        "model": {"preset": cfg.model, **dataclasses.asdict(MODELS[cfg.model]), "nb_rows": nb_rows,
                  "nb_channels": nb_channels, "generator": cfg.generator, "phase_repr": cfg.phase_repr,
                  "norm": cfg.norm},
        "training": dataclasses.asdict(cfg),
        "strategy": {"name": strategy, "replicas": replicas},
        "data": {"root": str(Path(data).resolve()), "train_pairs": len(pairs.train), "valid_pairs": len(pairs.valid),
                 "held_out_tracks": sorted({p.track for p in pairs.valid}) if pairs.held_out else [],
                 "valid_tiles": val_names, "notes": pairs.notes},
        "generator": "generator.keras",
        "step": 0,
    }


def _prior(pairs: data_mod.PairSet) -> list[float]:
    """The powersum-mean generator's start: the training targets' mean accompaniment power where the vocals
    sound (as the gated ``mean_accompaniment`` baseline adds it), as network rows."""
    from vocals2song import baselines

    stats = baselines.stats_from_images([(p.name, p.input, p.target) for p in pairs.train], pairs.target,
                                        fallback=pairs.meta)
    return baselines.prior_rows(stats, pairs.meta.top_db, pairs.meta.range_db)


def _gate_radius(recorded: dict, pairs: data_mod.PairSet) -> int:
    """How a powersum-mean head smooths its gate (`baselines.smooth_gate`): as the run recorded it (runs from before
    the smoothing recorded nothing: 0, the raw gate their weights learned with), else `baselines.gate_radius` for
    DATA's geometry."""
    from vocals2song import baselines

    if recorded:
        return int(recorded.get("model", {}).get("gate_radius", 0))
    return baselines.gate_radius(pairs.meta.sr, pairs.meta.hop)


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
