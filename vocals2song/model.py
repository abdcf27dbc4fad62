"""pix2pix in Keras 3: the U-Net generator, the 70x70 PatchGAN discriminator, and the GAN that trains them.

As published (Isola et al. 2017) and in the TensorFlow tutorial: kernel 4, stride 2, BatchNorm, LeakyReLU 0.2,
dropout 0.5 on the first three decoder blocks, tanh output; loss GAN BCE + lambda * L1; Adam(2e-4, beta_1 0.5).
`build_pix2pix` builds what a recipe (`config.RECIPES`) asks for: another generator head, L2, instance norm, or no
discriminator.
Tensors are NHWC: ``(nb_batch, nb_rows, nb_frames, nb_channels)`` with ``nb_rows = n_fft / 2`` (Nyquist dropped).
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import layers, ops

from vocals2song.config import GAN_LOSSES, GENERATORS, MODELS, NORMS, RECON_LOSSES, VIEWS, ModelConfig, TrainConfig
from vocals2song.gate import gate_u, power_scale
from vocals2song.transforms import log_frequency_matrices

KERNEL = 4


def init() -> keras.initializers.Initializer:
    """pix2pix's kernel initializer, N(0, 0.02), a new one for each layer.

    A Keras initializer built without a seed draws an int seed from Python's `random` once, when it is built, and
    then gives the same values at every call: one shared instance started every same-shaped kernel identical (13
    pairs in the small generator) and `keras.utils.set_random_seed` (train's ``--seed``) did not reach it.
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def normalization(norm: str = "batch") -> layers.Layer:
    """``batch``: BatchNorm (published). ``instance``: each example's channels normalised over their own rows and
    frames (GroupNorm with a group per channel), the same in training and at inference.

    pix2pix trains at batch 1, where BatchNorm normalises each tile by its own statistics, but predicts with the
    moving averages, which no tile had: on 8 chorale tiles the small generator fitted to a training-mode L2 of
    0.0045 scored 0.0131 in inference mode (0.0208 untrained); with instance norm both were 0.0043-0.0047.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; use one of {', '.join(NORMS)}")
    return layers.BatchNormalization() if norm == "batch" else layers.GroupNormalization(groups=-1, epsilon=1e-3)


def downsample(filters: int, apply_batchnorm: bool = True, norm: str = "batch") -> keras.Sequential:
    """Conv 4x4 stride 2 -> [normalization] -> LeakyReLU(0.2): halves both axes."""
    block = keras.Sequential()
    block.add(layers.Conv2D(filters, KERNEL, strides=2, padding="same", kernel_initializer=init(), use_bias=False))
    if apply_batchnorm:
        block.add(normalization(norm))
    block.add(layers.LeakyReLU(negative_slope=0.2))
    return block


def upsample(filters: int, apply_dropout: bool = False, norm: str = "batch") -> keras.Sequential:
    """Transposed conv 4x4 stride 2 -> normalization -> [Dropout 0.5] -> ReLU: doubles both axes."""
    block = keras.Sequential()
    block.add(layers.Conv2DTranspose(filters, KERNEL, strides=2, padding="same", kernel_initializer=init(),
                                     use_bias=False))
    block.add(normalization(norm))
    if apply_dropout:
        block.add(layers.Dropout(0.5))
    block.add(layers.ReLU())
    return block


@keras.saving.register_keras_serializable(package="vocals2song")
class PadToMultiple(layers.Layer):
    """Pads rows and frames up to a multiple of ``multiple`` with -1 (the magnitude floor, i.e. silence)."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple

    def call(self, x):
        shape = ops.shape(x)
        pad_rows = (-shape[1]) % self.multiple
        pad_frames = (-shape[2]) % self.multiple
        return ops.pad(x, [[0, 0], [0, pad_rows], [0, pad_frames], [0, 0]], constant_values=-1.0)

    def compute_output_shape(self, input_shape):
        def up(n):
            return None if n is None else -(-n // self.multiple) * self.multiple
        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="vocals2song")
class CropLike(layers.Layer):
    """Crops ``x`` back to the rows and frames of ``reference``."""

    def call(self, x, reference):
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package="vocals2song")
class PowerSum(layers.Layer):
    """The song's magnitude: the input vocals' power plus a predicted accompaniment's, in the image's units.

    Both magnitudes are net units ``x = 2u - 1`` of the codec's ``u = (dB - floor) / range_db``. With
    ``k = range_db * ln(10) / 10``, ``expm1(k u)`` is the power above the floor, so ``u = 0`` (the floor) is
    silence and adds nothing: ``u_out = log1p(expm1(k u_vocals) + expm1(k u_acc)) / k``. The output is never
    quieter than the vocals, and an accompaniment at the floor gives the vocals back exactly. Computed in float32.
    Other channels (phase) pass through from ``rest``.
    """

    def __init__(self, range_db: float, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.range_db = float(range_db)

    def call(self, vocals, accompaniment, rest=None):
        k = power_scale(self.range_db)
        u_voc = (ops.cast(vocals, "float32") + 1.0) * 0.5
        u_acc = (ops.cast(accompaniment, "float32") + 1.0) * 0.5
        power = ops.expm1(k * u_voc) + ops.expm1(k * u_acc)
        out = ops.log1p(power) * (2.0 / k) - 1.0
        return out if rest is None else ops.concatenate([out, ops.cast(rest, "float32")], axis=-1)

    def get_config(self):
        return {**super().get_config(), "range_db": self.range_db}


def _filters(base: int, maximum: int, level: int) -> int:
    return min(base * 2**level, maximum)


#: the powersum generator's accompaniment starts here (net units): u = 0.001, under half an 8-bit step, so an
#: untrained model's song is the vocals to codec precision, with the gradient alive (it is clipped, not squashed)
POWERSUM_START = -0.998


@keras.saving.register_keras_serializable(package="vocals2song")
class RowMap(layers.Layer):
    """A fixed map of the rows (the frequency axis) of NHWC tensors: the network's linear rows (highest first,
    Nyquist dropped) to the log-frequency rows of `transforms.log_frequency_matrices` (``"to_log"``, highest first),
    or back (``"from_log"``). The matrix is made from ``nb_rows`` and ``sr``, so a saved model stores no weights."""

    def __init__(self, direction: str, nb_rows: int, sr: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if direction not in ("to_log", "from_log"):
            raise ValueError(f"unknown row map {direction!r}")
        self.direction, self.nb_rows, self.sr = direction, int(nb_rows), int(sr)
        to_log, from_log = log_frequency_matrices(self.nb_rows + 1, self.sr)  # + the Nyquist row
        # network order: highest first, without the Nyquist bin; log rows highest first too
        self.matrix = (to_log[::-1, self.nb_rows - 1::-1] if direction == "to_log"
                       else from_log[self.nb_rows - 1::-1, ::-1]).copy()

    def call(self, x):
        m = ops.convert_to_tensor(self.matrix, "float32")
        return ops.einsum("or,brtc->botc", m, ops.cast(x, "float32"))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.matrix.shape[0], input_shape[2], input_shape[3])

    def get_config(self):
        return {**super().get_config(), "direction": self.direction, "nb_rows": self.nb_rows, "sr": self.sr}


def build_generator(nb_rows: int, nb_channels: int, cfg: ModelConfig, output: str = "unet",
                    range_db: float = 100.0, prior: list[float] | None = None, norm: str = "batch",
                    gate_radius: int = 0, view: str = "linear", sr: int = 44100) -> keras.Model:
    """U-Net: ``(batch, nb_rows, nb_frames, nb_channels)`` in [-1, 1] -> the same shape, any nb_frames.

    With the default 8 levels and a 512 x 256 tile: 512x256 -> 256x128 -> ... -> 2x1 and back up.
    Inputs whose sides are not multiples of ``2**levels`` are padded internally and cropped back.

    ``output="unet"`` is the published generator (tanh on every channel). ``"powersum"`` keeps the vocals: its
    first channel is an accompaniment magnitude that `PowerSum` adds to the input's (channel 0), its other
    channels (phase) are predicted as in ``unet``; the last layer starts at zero weights with the accompaniment
    at the floor, so an untrained model gives the vocals back. ``"powersum-mean"`` starts its accompaniment at
    ``prior`` (``(nb_rows,)`` in net units, row 0 highest: the training set's mean accompaniment) in the frames
    where the vocals sound, so an untrained model is the ``mean_accompaniment`` baseline and learns what the
    mean misses. ``gate_radius``: how that gate is smoothed (`gate.smooth_gate`; 0: not at all).

    ``view="log"`` (additive generators, magnitude only): the U-Net sees the vocals on log-frequency rows (`RowMap`,
    3 a semitone from 55 Hz at ``sr``), where an interval is the same shift in every register, and what it adds is
    mapped back to the linear rows before the head; rows outside the view add nothing of the network's.
    """
    if output not in GENERATORS:
        raise ValueError(f"unknown generator {output!r}; use one of {', '.join(GENERATORS)}")
    if (output == "powersum-mean") != (prior is not None):
        raise ValueError("the powersum-mean generator, and only it, needs a prior")
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    if view == "log" and (not output.startswith("powersum") or nb_channels != 1):
        raise ValueError("the log-frequency view is for additive generators of the magnitude alone")
    inputs = keras.Input(shape=(nb_rows, None, nb_channels), name="vocals")
    seen = RowMap("to_log", nb_rows, sr, name="to_log")(inputs) if view == "log" else inputs
    x = PadToMultiple(2**cfg.levels, name="pad")(seen)
    down_stack = [downsample(_filters(cfg.gen_filters, cfg.gen_max_filters, i), apply_batchnorm=i > 0, norm=norm)
                  for i in range(cfg.levels)]  # (rows / 2**(i+1), frames / 2**(i+1), filters_i)
    up_stack = [upsample(_filters(cfg.gen_filters, cfg.gen_max_filters, i), apply_dropout=j < 3, norm=norm)
                for j, i in enumerate(reversed(range(cfg.levels - 1)))]  # mirrors the encoder, first 3 drop out
    skips = []
    for down in down_stack:
        x = down(x)
        skips.append(x)
    for up, skip in zip(up_stack, reversed(skips[:-1])):
        x = up(x)
        x = layers.Concatenate()([x, skip])
    powersum = output.startswith("powersum")
    x = layers.Conv2DTranspose(nb_channels, KERNEL, strides=2, padding="same", name="to_image",
                               kernel_initializer="zeros" if powersum else init(),
                               )(x)  # (padded rows, padded frames, nb_channels)
    if not powersum:
        x = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    outputs = CropLike(dtype="float32", name="crop")(x, seen)  # float32 out under a mixed policy too
    if view == "log":
        outputs = RowMap("from_log", nb_rows, sr, name="from_log")(outputs)
    if powersum:  # the accompaniment channel starts at the floor, or at the prior where the vocals sound
        outputs = _AccompanimentHead(POWERSUM_START, range_db, prior, quiet_rows_keep_prior=prior is not None,
                                     gate_radius=gate_radius, name="accompaniment_head")(outputs, inputs)
        rest = _Slice(1, None, name="phase")(outputs) if nb_channels > 1 else None
        outputs = PowerSum(range_db, name="power_sum")(_Slice(0, 1, name="vocals_magnitude")(inputs),
                                                       _Slice(0, 1, name="accompaniment")(outputs), rest)
    return keras.Model(inputs, outputs, name="generator")


@keras.saving.register_keras_serializable(package="vocals2song")
class _Slice(layers.Layer):
    """Channels ``start:stop`` of an NHWC tensor."""

    def __init__(self, start: int, stop: int | None, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start: self.stop]

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def quiet_rows(prior: list[float], range_db: float) -> np.ndarray:
    """Boolean ``(nb_rows,)``: the prior's rows (net units, as `baselines.prior_rows` writes them) whose power above
    the floor, ``floor * expm1(k u)``, is under the floor's own, i.e. ``u < ln(2) / k``. On the chorales: the 308
    rows over 8.6 kHz."""
    u = (np.asarray(prior, dtype=np.float64) + 1.0) * 0.5
    return u < np.log(2.0) / power_scale(range_db)


@keras.saving.register_keras_serializable(package="vocals2song")
class _AccompanimentHead(layers.Layer):
    """Channel 0, the accompaniment magnitude: ``clip(x + start, -1, 1)``; other channels (phase): tanh.

    With a ``prior`` (``(nb_rows,)`` net units), frames whose loudest vocals bin is within `GATE_DBFS` of full
    scale start at the prior instead of ``start``: ``clip(x + where(sounding, prior, start), -1, 1)``.

    Clipped rather than squashed: a tanh started near the floor is saturated, and its vanishing gradient kept the
    accompaniment silent (measured on the synthetic task: lsd 28.7 against 27.3 for a tanh started mid-range).
    Below the floor the gradient is 0 where the accompaniment should be silent anyway.

    ``quiet_rows_keep_prior`` (powersum-mean generators): in the rows where the prior, the training mean, has less
    power than the image's floor (`quiet_rows`), the network adds nothing. The image cannot show what lies under
    its floor (100 dB under a full-scale sine), so neither the training loss nor val_lsd sees it, but the songs'
    lsd does (down to 134 dB under): on the 172 chorales the first generator trained to a lower val_lsd painted
    those rows (about 300 of 512, over ~9 kHz) just above the floor, and its songs' lsd above 4 kHz was 14.1 dB
    against 9.4 for the start. Runs saved before it (no such key) paint every row, as they did.

    ``gate_radius`` (powersum-mean generators): the gate loses its runs of up to ``2 *
    gate_radius`` frames, as `gate.smooth_gate` smooths it (a max pool along frames; the tile's own frames: a
    gap at a tile's edge is judged by what the tile holds). Runs saved before it (no such key) keep the raw gate.
    """

    def __init__(self, start: float, range_db: float = 100.0, prior: list[float] | None = None,
                 quiet_rows_keep_prior: bool = False, gate_radius: int = 0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.start, self.range_db = float(start), float(range_db)
        self.prior = None if prior is None else [float(p) for p in prior]
        self.quiet_rows_keep_prior = bool(quiet_rows_keep_prior) and self.prior is not None
        self.gate_radius = int(gate_radius) if self.prior is not None else 0

    def call(self, x, vocals):
        x = ops.cast(x, "float32")
        base = self.start
        if self.prior is not None:
            u_loudest = (ops.max(ops.cast(vocals[..., :1], "float32"), axis=1, keepdims=True) + 1.0) * 0.5
            sounding = u_loudest >= gate_u(self.range_db)  # (batch, 1, frames, 1)
            if self.gate_radius:  # gate.smooth_gate: a closing, then an opening, along frames
                size = (1, 2 * self.gate_radius + 1)

                def dilate(g):
                    return ops.max_pool(g, size, strides=1, padding="same")

                def erode(g):
                    return -dilate(-g)

                gate = ops.cast(sounding, "float32")
                sounding = dilate(erode(erode(dilate(gate)))) > 0.5
            prior = ops.reshape(ops.convert_to_tensor(self.prior, "float32"), (1, -1, 1, 1))
            base = ops.where(sounding, prior, self.start)
        painted = x[..., :1]
        if self.quiet_rows_keep_prior:  # rows whose prior is under the floor: the network adds nothing there
            quiet = quiet_rows(self.prior, self.range_db)
            painted = painted * ops.reshape(ops.convert_to_tensor(~quiet, "float32"), (1, -1, 1, 1))
        return ops.concatenate([ops.clip(painted + base, -1.0, 1.0), ops.tanh(x[..., 1:])], axis=-1)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "range_db": self.range_db, "prior": self.prior,
                "quiet_rows_keep_prior": self.quiet_rows_keep_prior, "gate_radius": self.gate_radius}


def build_discriminator(nb_rows: int, nb_channels: int, cfg: ModelConfig) -> keras.Model:
    """70x70 PatchGAN on (input, target): ``2 x (batch, rows, frames, C)`` -> logits ``(batch, r, f, 1)``.

    For a 512 x 256 tile the patch grid is 62 x 30: C64 -> C128 -> C256 (stride 2) -> C512 -> 1 (stride 1).
    """
    inp = keras.Input(shape=(nb_rows, None, nb_channels), name="input_image")
    tar = keras.Input(shape=(nb_rows, None, nb_channels), name="target_image")
    x = layers.Concatenate()([inp, tar])  # (rows, frames, 2C)
    for i in range(3):
        x = downsample(_filters(cfg.disc_filters, cfg.disc_max_filters, i), apply_batchnorm=i > 0)(x)
    x = layers.ZeroPadding2D()(x)  # (rows/8 + 2, frames/8 + 2)
    x = layers.Conv2D(_filters(cfg.disc_filters, cfg.disc_max_filters, 3), KERNEL, strides=1,
                      kernel_initializer=init(), use_bias=False)(x)  # (rows/8 - 1, frames/8 - 1)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.ZeroPadding2D()(x)
    x = layers.Conv2D(1, KERNEL, strides=1, kernel_initializer=init())(x)  # (rows/8 - 2, frames/8 - 2, 1)
    x = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model([inp, tar], x, name="discriminator")


class Pix2Pix(keras.Model):
    """The GAN: owns both networks; ``fit`` on ``(vocals, target)`` batches trains them.

    ``discriminator`` None (``gan_loss="none"``): the generator learns from the reconstruction loss alone, and no
    discriminator or optimizer for one exists. ``recon_loss``: "l1" (published) or "l2" on the image planes, weighed
    by ``lambda_recon``.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model | None, lambda_recon: float = 100.0,
                 gan_loss: str = "bce", recon_loss: str = "l1", **kwargs):
        super().__init__(**kwargs)
        if gan_loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {gan_loss!r}; use one of {', '.join(GAN_LOSSES)}")
        if recon_loss not in RECON_LOSSES:
            raise ValueError(f"unknown reconstruction loss {recon_loss!r}; use one of {', '.join(RECON_LOSSES)}")
        if (gan_loss == "none") != (discriminator is None):
            raise ValueError("a discriminator is built for an adversarial loss, and only for one")
        self.recon_loss = recon_loss
        self.generator = generator
        self.discriminator = discriminator
        self.lambda_recon = float(lambda_recon)
        self.gan_loss = gan_loss
        self.d_optimizer = None
        # Losses and metrics in float32 whatever the global policy (a mixed policy would make them bfloat16/float16).
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="sum_over_batch_size", dtype="float32")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("gen_total", "gen_gan", "gen_recon", "disc")}

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer | None = None,
                **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.generator(x, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skip Keras' symbolic build: `build_pix2pix` builds both networks and optimizers eagerly.

        Keras 3.15 builds by reducing the first distributed batch with ``strategy.reduce``, which raises for
        ``MultiWorkerMirroredStrategy`` (PerReplica values cannot become a tensor there).
        """

    def losses_for(self, x, y, training: bool):
        """One forward pass of both networks: (gen_total, gen_gan, gen_recon, disc) losses as scalars. Without a
        discriminator its terms are 0."""
        fake = self.generator(x, training=training)
        error = ops.cast(y, "float32") - ops.cast(fake, "float32")
        gen_recon = ops.mean(ops.square(error)) if self.recon_loss == "l2" else ops.mean(ops.abs(error))
        recon = self.lambda_recon * gen_recon
        if self.discriminator is None:
            zero = ops.zeros((), "float32")
            return recon, zero, gen_recon, zero
        real_logits = ops.cast(self.discriminator([x, y], training=training), "float32")
        fake_logits = ops.cast(self.discriminator([x, fake], training=training), "float32")
        gen_gan = self.bce(ops.ones_like(fake_logits), fake_logits)
        disc = self.bce(ops.ones_like(real_logits), real_logits) + self.bce(ops.zeros_like(fake_logits), fake_logits)
        gen_total = gen_gan + recon
        return gen_total, gen_gan, gen_recon, disc

    def train_step(self, data):
        import tensorflow as tf  # the step needs gradient tapes: the TensorFlow backend

        x, y = data[0], data[1]  # (x, y) or (x, y, sample_weight)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            gen_total, gen_gan, gen_recon, disc = self.losses_for(x, y, training=True)
            # Replicas' gradients are summed (all-reduce SUM), so each replica contributes its mean / replicas.
            replicas = self.distribute_strategy.num_replicas_in_sync
            g_loss = self.g_optimizer.scale_loss(gen_total / replicas)
            d_loss = None if self.discriminator is None else self.d_optimizer.scale_loss(disc / replicas)
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
        if self.discriminator is not None:
            d_vars = self.discriminator.trainable_variables
            self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        for name, value in zip(self.trackers, (gen_total, gen_gan, gen_recon, disc)):
            self.trackers[name].update_state(value)
        return self._logs(self.trackers)

    @contextlib.contextmanager
    def averaged(self):
        """Inside, the generator's trainable weights are their moving average (``ema`` of `build_pix2pix`, kept by
        Keras' ``use_ema``), and as trained again after. Without one, or before the first step (the average
        starts at the first step's weights), the weights as they are."""
        opt = getattr(self.g_optimizer, "inner_optimizer", self.g_optimizer)  # under a LossScaleOptimizer
        if not opt.use_ema or int(opt.iterations.numpy()) == 0:
            yield
            return
        variables = self.generator.trainable_variables
        # Keras keeps one average per variable of the list the optimizer was built on (no public accessor)
        averages = [opt._model_variables_moving_average[opt._get_variable_index(v)] for v in variables]
        trained = [ops.convert_to_numpy(v) for v in variables]
        for v, average in zip(variables, averages):
            v.assign(ops.convert_to_numpy(average))
        try:
            yield
        finally:
            for v, value in zip(variables, trained):
                v.assign(value)

    def _logs(self, trackers: dict) -> dict:
        """Metric results; shape (1,) under MultiWorkerMirroredStrategy, whose Keras 3.15 log reduction
        (``strategy.reduce("MEAN", v, axis=0)``) fails on scalars."""
        import tensorflow as tf

        multi = isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
        return {name: ops.reshape(t.result(), (1,)) if multi else t.result() for name, t in trackers.items()}


def make_optimizer(lr: float, mixed_precision: bool = False, ema: float = 0.0) -> keras.optimizers.Optimizer:
    """Adam(lr, beta_1 0.5), as published; with ``ema`` > 0 it also keeps a moving average of the weights it
    trains, with that momentum (`Pix2Pix.averaged`)."""
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=0.5, use_ema=ema > 0.0, ema_momentum=ema or 0.99)
    return keras.optimizers.LossScaleOptimizer(opt) if mixed_precision else opt


def build_pix2pix(nb_rows: int, nb_channels: int, cfg: TrainConfig, range_db: float = 100.0,
                  prior: list[float] | None = None, gate_radius: int = 0, policy: str = "float32",
                  sr: int = 44100) -> Pix2Pix:
    """Build and compile the GAN of a recipe (inside the current distribution strategy's scope): the generator
    ``cfg.generator`` of size ``MODELS[cfg.model]`` (`build_generator`, with ``range_db``, ``prior`` and
    ``gate_radius``; ``cfg.view`` on the images' ``sr``), the discriminator only when the recipe has an
    adversarial loss (it keeps BatchNorm, which only training runs), the losses, and Adam(``cfg.lr``) with a
    moving average of the generator's weights when ``cfg.ema`` > 0. ``policy``: the Keras dtype policy the run
    uses (float16 needs loss scaling)."""
    sizes = MODELS[cfg.model]
    generator = build_generator(nb_rows, nb_channels, sizes, cfg.generator, range_db, prior, cfg.norm, gate_radius,
                                cfg.view, sr)
    discriminator = None if cfg.gan_loss == "none" else build_discriminator(nb_rows, nb_channels, sizes)
    gan = Pix2Pix(generator, discriminator, lambda_recon=cfg.lambda_recon, gan_loss=cfg.gan_loss,
                  recon_loss=cfg.recon_loss)
    scaled = policy == "mixed_float16"
    gan.compile(g_optimizer=make_optimizer(cfg.lr, scaled, cfg.ema),
                d_optimizer=None if discriminator is None else make_optimizer(cfg.lr, scaled),
                jit_compile=cfg.xla)
    gan.g_optimizer.build(gan.generator.trainable_variables)
    if discriminator is not None:
        gan.d_optimizer.build(discriminator.trainable_variables)
    return gan
