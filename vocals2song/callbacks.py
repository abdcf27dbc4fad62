"""The run's side jobs as Keras callbacks around one ``fit``: history rows and keep-best, samples, checkpoints, and
the progress line. They share a `RunState`: the run folder, the step, the fixed validation tiles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vocals2song import plots, runfolder, transforms
from vocals2song.codec import planes_to_audio
from vocals2song.config import TrainConfig
from vocals2song.files import atomic_path
from vocals2song.metrics import plane_harmony, plane_lsd

#: how much lower (relative) than the untrained start's a trained generator's val_lsd must be for keep-best to
#: keep it; after that the lowest wins. The validation tiles come from a few tunes and instruments, so small gains
#: are theirs: in the demo a step-100 generator scored 5.671 dB against the start's 5.689 on its 10 tiles, and 11.9
#: against 9.4 dB on the test songs (docs/quality-log.md). A run that recorded no start (keep_best_start) needs
#: the margin under the kept generator instead, as it did when it was trained.
KEEP_BEST_MARGIN = 0.01
#: keep-best by val_harmony: a generator is a candidate while its val_lsd is within this many dB of the untrained
#: start's (for powersum-mean generators, the mean accompaniment's: the distances are kept as guards), and is kept
#: when its val_harmony beats the kept one's by `HARMONY_MARGIN`
LSD_GUARD_DB = 1.0
HARMONY_MARGIN = 0.01
#: the validation figures a history row holds, and keep-best records of the generator it keeps
VALIDATION = ("val_recon", "val_lsd", "val_harmony")


class RunState:
    """What the callbacks share: the run, its step, the fixed validation tiles, the TensorBoard writer."""

    def __init__(self, run: Path, cfg: TrainConfig, config: dict, start: int, val: tuple, is_chief: bool):
        self.run, self.cfg, self.config, self.step, self.start = run, cfg, config, start, start
        self.val_x, self.val_y, self.val_names = val
        self.is_chief = is_chief
        self.meta = runfolder.codec_meta(config)
        self.writer = (tf.summary.create_file_writer(str(run / runfolder.LOGS)) if is_chief
                       else tf.summary.create_noop_writer())
        self.last_row: dict = {}
        self.best: dict | None = config.get("best")  # the lowest val_lsd so far (keep-best) ...
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
        """The reconstruction loss on the validation tiles (history's ``val_recon``): mean absolute error, or
        mean squared error with the recipe's ``recon_loss`` l2."""
        error = pred - self.val_y
        return float(np.mean(np.square(error)) if self.cfg.recon_loss == "l2" else np.mean(np.abs(error)))

    def val_lsd(self, pred: np.ndarray) -> float:
        """The log-spectral distance of the validation tiles' magnitudes in dB (history's ``val_lsd``, which
        keep-best minimises): per frame the RMS over bins of the dB difference, floored at the
        image's floor, then the mean over frames and tiles. Unlike L1 on the planes it weighs a frame's
        loud errors more, as `evaluate`'s lsd does (on the chorales' validation tiles L1 kept a step whose
        songs were worse than the start's; lsd of these tiles did not)."""
        target = getattr(self, "_val_y_magnitudes", None)
        if target is None:  # the tiles are fixed: their magnitudes once per run
            target = self._val_y_magnitudes = self.magnitudes(self.val_y)
        return plane_lsd(self.magnitudes(pred), target, self.meta.range_db, bins_axis=1)

    def magnitudes(self, x: np.ndarray) -> np.ndarray:
        """Network tiles ``(k, rows, tile, C)`` -> their magnitude planes ``(k, rows, tile)`` in [0, 1] (the
        network's rows, highest first, as `transforms.net_to_planes` reads them without the Nyquist row)."""
        if self.meta.format != "rgba8":  # channel 0 is the magnitude, whatever the phase channels hold
            return np.clip((x[..., 0] + 1.0) * 0.5, 0.0, 1.0)
        split, phase_repr = self.config["codec"].get("split"), self.config["model"]["phase_repr"]
        return np.stack([transforms.net_to_planes(t, "rgba8", split, phase_repr)[0][-2::-1] for t in x])

    def val_harmony(self, pred: np.ndarray) -> float:
        """The chroma correlation of the power the generator adds to the validation tiles with the power their
        targets add (`metrics.plane_harmony`, history's ``val_harmony``), averaged over the tiles where it is
        defined: whether the added accompaniment plays the true one's pitch classes."""
        inputs = getattr(self, "_val_x_magnitudes", None)
        if inputs is None:  # the tiles are fixed: their magnitudes once per run (val_lsd keeps the targets')
            inputs = self._val_x_magnitudes = self.magnitudes(self.val_x)
        targets = getattr(self, "_val_y_magnitudes", None)
        if targets is None:
            targets = self._val_y_magnitudes = self.magnitudes(self.val_y)
        predicted = self.magnitudes(pred)
        scores = [plane_harmony(x[::-1], y[::-1], p[::-1], self.meta.range_db, self.meta.sr, self.meta.n_fft)
                  for x, y, p in zip(inputs, targets, predicted)]  # lowest frequency first
        finite = [s for s in scores if np.isfinite(s)]
        return float(np.mean(finite)) if finite else float("nan")

    def val_row(self, model) -> dict:
        """``val_recon``, ``val_lsd`` and ``val_harmony`` of the generator on the validation tiles at this step."""
        pred = self.predictions(model)
        return {"val_recon": self.val_error(pred), "val_lsd": self.val_lsd(pred), "val_harmony": self.val_harmony(pred)}

    def background(self, fn, *args) -> None:
        """Run ``fn(*args)`` off the training loop (PNG plots, audio summaries); `drain` waits for it."""
        self._side_jobs.submit(fn, *args)

    def drain(self) -> None:
        self._side_jobs.drain()

    def tile_audio(self, x: np.ndarray) -> np.ndarray:
        """Network tiles ``(k, rows, tile, C)`` -> waveforms ``(k, samples, 1)`` decoded with the codec."""
        meta = dataclasses.replace(self.meta, length=self.meta.hop * (x.shape[2] - 1))
        waves = []
        phase_repr = self.config["model"]["phase_repr"]
        for tile in x:
            u, v = transforms.net_to_planes(tile, meta.format, self.config["codec"].get("split"), phase_repr)
            if v is None:  # a magnitude-only network: Griffin-Lim, enough to hear what it makes
                y = planes_to_audio(u, u, meta, phase=np.zeros_like(u), griffinlim_iters=16)
            else:
                y = planes_to_audio(u, v, meta)
            waves.append(np.clip(y, -1.0, 1.0))
        return np.stack(waves)[..., None]


class History(keras.callbacks.Callback):
    """Every ``log_every`` steps: a history.csv row of mean losses since the last row, with val_recon and
    val_lsd; with ``keep_best``, the weights of the lowest val_lsd (the ones training starts from included) are
    held for `save_run` to write."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def on_train_begin(self, logs=None):
        state = self.state
        if state.is_chief and state.cfg.keep_best and state.best is None:  # the start is a candidate too
            self.keep_if_best(state.val_row(self.model))

    def keep_if_best(self, row: dict) -> None:
        """Hold the weights in memory when ``row`` is the best yet by the recipe's ``keep_best_by``; the first row
        a run keeps is the untrained start's; `save_run` writes them (a file per improvement cost the tiny model 9%
        of its steps/s).

        - ``val_lsd``: the lowest, and at least `KEEP_BEST_MARGIN` under the start's (a run that recorded no start
          needs the margin under the kept one instead; a best recorded without the figure is beaten by the first
          row).
        - ``val_harmony``: the highest, by `HARMONY_MARGIN` over the kept one's, among the rows whose val_lsd is
          within `LSD_GUARD_DB` of the start's."""
        state = self.state
        key = state.cfg.keep_best_by
        if not state.is_chief:
            return
        if state.best is None:  # the start: what a trained generator must beat
            state.config["keep_best_start"] = {k: _round(row[k]) for k in VALIDATION if k in row}
        elif key == "val_harmony":
            start = state.config.get("keep_best_start", {})
            kept = state.best.get(key, -math.inf)
            guard = start.get("val_lsd", math.inf) + LSD_GUARD_DB
            if not (row["val_lsd"] <= guard and row[key] > (kept if np.isfinite(kept) else -math.inf) + HARMONY_MARGIN):
                return
        else:
            kept = state.best.get(key, math.inf)
            start = state.config.get("keep_best_start", {}).get(key)
            limit = kept * (1.0 - KEEP_BEST_MARGIN) if start is None else start * (1.0 - KEEP_BEST_MARGIN)
            if not (row[key] < kept and row[key] <= limit):
                return
        state.best = {"step": state.step, **{k: _round(row[k]) for k in VALIDATION if k in row}}
        with self.model.averaged():
            state.best_weights = self.model.generator.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        state = self.state
        state.step = state.start + batch + 1
        if not state.due(state.cfg.log_every):
            return
        row = {"step": state.step, **{k: float(np.mean(logs[k])) for k in runfolder.HISTORY_COLUMNS[1:5]},
               **state.val_row(self.model)}
        for metric in self.model.metrics:
            metric.reset_state()
        state.last_row = row
        if state.cfg.keep_best:
            self.keep_if_best(row)
        if not state.is_chief:
            return
        runfolder.append_history(state.run / runfolder.HISTORY, row)
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
                f"recon {logs.get('gen_recon', float('nan')):.4f}) disc {logs.get('disc', float('nan')):.3f}")
        if row_step and state.last_row.get("step") == state.step:
            line += f" val_recon {state.last_row['val_recon']:.4f} val_lsd {state.last_row['val_lsd']:.2f}"
        line += f" | {rate:.2f} steps/s | ETA {_duration(eta)}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if state.step == state.cfg.steps:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _round(value: float) -> float | None:
    """A figure as config.json records it: 7 decimals, None for NaN."""
    return round(float(value), 7) if np.isfinite(value) else None


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def write_samples(state, model) -> None:
    """samples/step_NNNNNN.png and TensorBoard strips + predicted-mixture audio of the fixed tiles."""
    k = state.cfg.sample_tiles
    x, y = state.val_x[:k], state.val_y[:k]
    pred = state.predictions(model)[:k]
    step = state.step

    def draw() -> None:  # in the background: matplotlib and the ISTFTs cost more than many tiny steps
        sr = state.meta.sr  # the magnitudes on the pictures' log-frequency axis, so that notes show as lines
        mags = [[plots.log_tile(t, sr) for t in state.magnitudes(tiles)] for tiles in (x, y, pred)]
        rows = [(mags[0][i], mags[1][i], mags[2][i]) for i in range(len(x))]
        plots.save_strips(state.run / runfolder.SAMPLES / f"step_{step:06d}.png", rows, value_range=(0.0, 1.0))
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
    with model.averaged(), atomic_path(state.run / runfolder.GENERATOR) as tmp:
        model.generator.save(tmp)
    if state.best_weights is not None:  # a new best since the last save: written with the generator's own layout
        latest = model.generator.get_weights()
        model.generator.set_weights(state.best_weights)
        try:
            with atomic_path(state.run / runfolder.BEST_GENERATOR) as tmp:
                model.generator.save(tmp)
        finally:
            model.generator.set_weights(latest)
        state.config["best"], state.config["generator"], state.best_weights = state.best, runfolder.BEST_GENERATOR, None
    state.config["step"] = state.step
    runfolder.write_config(state.run, state.config)
    state.background(plots.save_losses, state.run / runfolder.LOSSES,
                     runfolder.read_history(state.run / runfolder.HISTORY))


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


def describe_best(config: dict) -> str | None:
    """One line for the user: which generator keep-best kept, and why (``None`` when it kept none). When it is
    the untrained start, say so plainly: the run learned nothing that carried to the validation tiles, and what
    `predict` and `evaluate` use is the start (for ``powersum-mean``, the mean accompaniment)."""
    best = config.get("best")
    if not best:
        return None
    key = config["training"]["keep_best_by"]
    retired = config["training"].get("retired", {}).get("keep_best_by")
    key = "val_recon" if retired == "val_l1" else key  # a run that kept its reconstruction loss says so
    start = config.get("keep_best_start", {}).get(key)
    unit = " dB" if key == "val_lsd" else ""
    if best.get("step", 0) == 0:
        if key == "val_harmony":
            under = (f"{HARMONY_MARGIN:g} over the start's {start:.3f} with its val_lsd within {LSD_GUARD_DB:g} dB"
                     if start is not None else "better")
        else:
            under = f"{KEEP_BEST_MARGIN:.0%} under the start's {start:.3f}{unit}" if start is not None else "better"
        what = " (the mean accompaniment)" if config["model"]["generator"] == "powersum-mean" else ""
        return (f"keep-best kept the untrained start{what}: no trained generator's {key} came {under} on the "
                "validation tiles: nothing it learned held on unseen tracks (more training tunes help; "
                "docs/quality-log.md)")
    if best.get(key) is None:
        return f"keep-best kept step {best['step']}"
    versus = f" against the untrained start's {start:.3f}{unit}" if start is not None else ""
    if key == "val_harmony" and best.get("val_lsd") is not None:
        versus += f" (val_lsd {best['val_lsd']:.3f} dB)"
    return f"keep-best kept step {best['step']}: {key} {best[key]:.3f}{unit}{versus}"
