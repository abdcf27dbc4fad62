"""Every default in one place. CLI options replace a field only when given."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

#: Image formats of format version 1 (see SPEC.md, "The image").
FORMATS = ("rgb8", "rgba8", "tiff16", "png16", "float32")
#: Magnitude range in dB by format: a narrower range clips quiet bins and caps fidelity.
RANGE_DB = {"rgb8": 100.0, "rgba8": 100.0, "tiff16": 120.0, "png16": 120.0, "float32": 300.0}
#: Containers each format may be written in; the first is the default.
CONTAINERS = {"rgb8": ("png", "bmp"), "rgba8": ("png",), "tiff16": ("tiff",), "png16": ("png",),
              "float32": ("tiff",)}
TARGETS = ("mixture", "accompaniment")
SPLITS = ("train", "valid", "test")
TAILS = ("pad", "drop")
#: generator output variants (model.build_generator): the published U-Net, or one that adds to the vocals
GENERATORS = ("unet", "powersum", "powersum-mean")
#: adversarial losses: the published binary cross-entropy, least squares, or none (no discriminator: the generator
#: learns from the reconstruction loss alone)
GAN_LOSSES = ("bce", "lsgan", "none")
#: the reconstruction loss on the image planes: L1 (published, median-seeking) or L2 (mean-seeking, like lsd)
RECON_LOSSES = ("l1", "l2")
#: the generator's normalisation: BatchNorm (published; at batch 1 it trains on each tile's own statistics and
#: predicts with moving averages) or instance norm (the same in training and at inference; model.normalization)
NORMS = ("batch", "instance")
#: what --keep-best minimises on the validation tiles: the log-spectral distance in dB, or the reconstruction loss
KEEP_BEST_BY = ("val_lsd", "val_l1")
#: `chorales`' accompaniment: each track's own instruments, pans and levels drawn from its name (the vocals cannot
#: tell them), or one band for every track (the instruments known: what is left to learn is the music)
BANDS = ("random", "fixed")
#: how the network sees the phase: as stored, as instantaneous frequency (GANSynth), or not at all
PHASE_REPRS = ("angle", "if", "none")


@dataclass(frozen=True)
class CodecConfig:
    """How audio becomes an image and back: STFT geometry and pixel format."""

    format: str = "rgb8"
    container: str | None = None  # None: the format's default container
    sr: int = 44100
    n_fft: int = 1024
    hop: int = 256
    win: int | None = None  # None: n_fft
    window: str = "hann"
    range_db: float | None = None  # None: RANGE_DB[format]

    @property
    def win_length(self) -> int:
        return self.win or self.n_fft

    @property
    def top_db(self) -> float:
        """The loudest magnitude a full-scale sine can reach: 20*log10(n_fft/2)."""
        return 20.0 * math.log10(self.n_fft / 2)

    @property
    def magnitude_range_db(self) -> float:
        return float(self.range_db if self.range_db is not None else RANGE_DB[self.format])

    @property
    def container_name(self) -> str:
        return self.container or CONTAINERS[self.format][0]

    @property
    def nb_bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclass(frozen=True)
class DatasetConfig:
    """How `sound2image` cuts tracks into segments and splits them."""

    segment: float = 15.0  # seconds
    target: str = "mixture"
    subsets: tuple[str, ...] = ("train", "test")
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    tail: str = "pad"
    # With --tail pad, a tail shorter than this share of a segment is dropped: it would be mostly padding (silent
    # rows in every crop of it). A track shorter than that gives its one padded segment all the same.
    min_tail: float = 0.5
    min_vocals_db: float = -60.0  # RMS dBFS of a segment's vocals below which it is skipped


@dataclass(frozen=True)
class ChoralesConfig:
    """How `chorales` renders the Bach chorales. ``limit``: how many (None: all 365). ``band``: `BANDS`."""

    sr: int = 44100
    soundfont: str = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian's fluid-soundfont-gm
    limit: int | None = None
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    band: str = "random"


@dataclass(frozen=True)
class ModelConfig:
    """pix2pix network sizes. Filters double per level from ``*_filters`` up to ``*_max_filters``."""

    gen_filters: int = 64
    gen_max_filters: int = 512
    levels: int = 8  # U-Net depth: inputs are padded internally to a multiple of 2**levels in both axes
    disc_filters: int = 64
    disc_max_filters: int = 512


#: --model presets; `default` is the published pix2pix, `tiny` trains at >= 5 steps/s on 2 CPU cores.
MODELS = {
    "default": ModelConfig(),
    "small": ModelConfig(gen_filters=32, gen_max_filters=256, disc_filters=32, disc_max_filters=256),
    "tiny": ModelConfig(gen_filters=8, gen_max_filters=32, levels=7, disc_filters=8, disc_max_filters=32),
}


@dataclass(frozen=True)
class TrainConfig:
    """How `train` runs. ``model`` names a preset of `MODELS`."""

    steps: int = 10000
    # The recipe since 2026-11-22's fourth session (README, "Quality"): no discriminator, L2 on batches of 4 tiles,
    # Adam 1e-4, instance norm and a moving average of the weights; pix2pix's own is `PIX2PIX_TRAINING`.
    batch_size: int = 4  # per replica; pix2pix trains at 1
    tile: int = 256  # frames per random crop
    model: str = "default"
    lambda_l1: float = 1000.0  # the quality benchmark's choice; 100 is the published value (README, "Quality")
    lr: float = 1e-4  # pix2pix: 2e-4
    seed: int = 0
    checkpoint_every: int = 500
    sample_every: int = 500
    log_every: int = 100  # steps per history.csv row (losses averaged over them, val_l1 and val_lsd at the row)
    keep_checkpoints: int = 3
    val_tiles: int = 32  # fixed validation tiles for val_l1 and val_lsd (8 let --keep-best chase noise)
    sample_tiles: int = 3  # of those, shown in samples/ and TensorBoard
    input_subdir: str = "vocals"
    target_subdir: str | None = None  # None: the dataset's target (mixture unless encoded as accompaniment)
    mixed_precision: bool = False
    xla: bool = False
    # The quality benchmark's choice (README, "Quality"): starts at the mean accompaniment, never loses the vocals.
    generator: str = "powersum-mean"  # GENERATORS: "unet" (published), "powersum" (adds to the vocals), ...
    phase_repr: str = "none"  # PHASE_REPRS: the phase as stored ("angle"), "if", or "none" (magnitude only)
    gan_loss: str = "none"  # GAN_LOSSES: "bce" is pix2pix's
    # momentum of the moving average of the generator's weights that validation, --keep-best and generator.keras
    # use (0: off, the weights as trained; runs from before it had none: train.run_settings)
    ema: float = 0.995
    recon_loss: str = "l2"  # RECON_LOSSES ("l1" is pix2pix's); --lambda-l1 weighs it whichever it is
    norm: str = "instance"  # NORMS: the generator's normalisation ("batch" is pix2pix's)
    # weight of a spectral-convergence term on the tiles' linear magnitude (model.spectral_convergence): the
    # loud bins' error, which the log planes' loss weighs no more than a quiet bin's (0: off)
    power_loss: float = 0.0
    # powersum generators on mixtures: fit the accompaniment's loudness on training pairs at the end (loudness.py)
    loudness_calibration: bool = True
    # powersum-mean generators on mixtures: fit the accompaniment's level frame by frame from the vocals (envelope.py)
    envelope: bool = True
    # keep the generator of the lowest val_lsd (the start included) as generator_best.keras, and predict with it
    keep_best: bool = True
    keep_best_by: str = "val_lsd"  # KEEP_BEST_BY: the history column --keep-best minimises


#: pix2pix's own training (the defaults until 2026-11-22's fourth session), as TrainConfig fields: the GAN at batch 1
#: with L1, Adam 2e-4 and BatchNorm, no weight average. ``TrainConfig(**PIX2PIX_TRAINING)`` trains it.
PIX2PIX_TRAINING = {"gan_loss": "bce", "recon_loss": "l1", "batch_size": 1, "lr": 2e-4, "norm": "batch", "ema": 0.0}


def cli_flags(fields: dict) -> list[str]:
    """TrainConfig fields -> `vocals2song train` flags, e.g. ``{"batch_size": 1}`` -> ``["--batch-size", "1"]``."""
    return [arg for key, value in fields.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def replace_given(obj, **overrides):
    """``dataclasses.replace`` with only the overrides that are not None (i.e. given)."""
    return dataclasses.replace(obj, **{k: v for k, v in overrides.items() if v is not None})
