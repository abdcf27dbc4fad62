"""Every default in one place. CLI options replace a field only when given."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

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
#: adversarial losses: the published binary cross-entropy, or none (no discriminator is built: the generator learns
#: from the reconstruction loss alone)
GAN_LOSSES = ("bce", "none")
#: the reconstruction loss on the image planes: L1 (published, median-seeking) or L2 (mean-seeking, like lsd)
RECON_LOSSES = ("l1", "l2")
#: the generator's normalisation: BatchNorm (published; at batch 1 it trains on each tile's own statistics and
#: predicts with moving averages) or instance norm (the same in training and at inference; model.normalization)
NORMS = ("batch", "instance")
#: the validation figure keep-best goes by: the log-spectral distance in dB (lowest), or the chroma correlation of
#: the added accompaniment with the true one (highest, while val_lsd stays within `callbacks.LSD_GUARD_DB` of the
#: start's): a note-aware figure that a wash does not win
KEEP_BEST_BY = ("val_lsd", "val_harmony")
#: `chorales`' accompaniment: each track's own instruments, pans and levels drawn from its name (the vocals cannot
#: tell them), or one band for every track (the instruments known: what is left to learn is the music)
BANDS = ("random", "fixed")
#: how the network sees the phase: as stored, as instantaneous frequency (GANSynth), or not at all
PHASE_REPRS = ("angle", "if", "none")
#: the frequency axis the network sees: the STFT's linear rows, or log-frequency rows
#: (`transforms.log_frequency_matrices`)
VIEWS = ("linear", "log")


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


#: the recipe `train` uses when none is given
DEFAULT_RECIPE = "additive-l2"


@dataclass(frozen=True)
class TrainConfig:
    """How `train` runs: the default recipe's fields (`RECIPES`). ``model`` names a preset of `MODELS`."""

    recipe: str | None = DEFAULT_RECIPE  # the recipe these fields came from (None: a run from before recipes)
    steps: int = 10000
    batch_size: int = 4  # per replica
    tile: int = 256  # frames per random crop
    model: str = "default"
    generator: str = "powersum-mean"  # GENERATORS: "unet" (published), "powersum" (adds to the vocals), ...
    phase_repr: str = "none"  # PHASE_REPRS: the phase as stored ("angle"), "if", or "none" (magnitude only)
    view: str = "linear"  # VIEWS: the frequency axis the network sees, "linear" STFT rows or "log" (3 a semitone)
    gan_loss: str = "none"  # GAN_LOSSES: "bce" is pix2pix's; "none" builds no discriminator
    recon_loss: str = "l2"  # RECON_LOSSES: "l1" is pix2pix's
    lambda_recon: float = 1000.0  # weight of the reconstruction loss (pix2pix: 100)
    lr: float = 1e-4  # Adam's learning rate (beta_1 0.5, as published; pix2pix: 2e-4)
    norm: str = "instance"  # NORMS: the generator's normalisation ("batch" is pix2pix's)
    # momentum of the moving average of the generator's weights that validation, keep-best and generator.keras use
    # (0: off, the weights as trained)
    ema: float = 0.995
    # powersum generators on mixtures: fit the accompaniment's loudness on training pairs at the end (loudness.py)
    loudness_calibration: bool = True
    # powersum-mean generators on mixtures: fit the accompaniment's level frame by frame from the vocals (envelope.py)
    envelope: bool = True
    # keep the best generator by `keep_best_by` (the start included) as generator_best.keras, and predict with it
    keep_best: bool = True
    keep_best_by: str = "val_lsd"  # KEEP_BEST_BY
    seed: int = 0
    checkpoint_every: int = 500
    sample_every: int = 500
    log_every: int = 100  # steps per history.csv row (losses averaged over them, val_recon and val_lsd at the row)
    keep_checkpoints: int = 3
    val_tiles: int = 32  # fixed validation tiles for val_recon and val_lsd (8 let keep-best chase noise)
    sample_tiles: int = 3  # of those, shown in samples/ and TensorBoard
    input_subdir: str = "vocals"
    target_subdir: str | None = None  # None: the dataset's target (mixture unless encoded as accompaniment)
    mixed_precision: bool = False
    xla: bool = False


#: recipes by name: the TrainConfig fields each sets (the others keep TrainConfig's defaults, which are
#: `DEFAULT_RECIPE`'s). ``additive-l2``: the measured default (docs/quality-log.md): an additive generator that
#: starts at the mean accompaniment and never loses the vocals, magnitude only, L2 on batches of 4 tiles, no
#: discriminator, instance norm, a moving average of the weights. ``pix2pix``: the published training: the U-Net
#: and the PatchGAN discriminator, GAN BCE + 100 L1, batch 1, Adam 2e-4, BatchNorm, the stored phase.
RECIPES: dict[str, dict] = {
    "additive-l2": {},
    "pix2pix": {"generator": "unet", "phase_repr": "angle", "gan_loss": "bce", "recon_loss": "l1",
                "lambda_recon": 100.0, "batch_size": 1, "lr": 2e-4, "norm": "batch", "ema": 0.0},
}
#: the fields a recipe may set: every TrainConfig field but the recipe's own name
RECIPE_FIELDS = tuple(f for f in TrainConfig.__dataclass_fields__ if f != "recipe")


def recipe_fields(spec: str) -> tuple[str, dict]:
    """``--recipe`` -> ``(name, fields)``: a name of `RECIPES`, or a JSON file of TrainConfig fields, with an
    optional ``"base"`` naming the built-in recipe it changes (default `DEFAULT_RECIPE`). Raises `Vocals2SongError`
    in one line for an unknown name, an unreadable file, an unknown field or a value of the wrong type."""
    import json

    from vocals2song.errors import Vocals2SongError

    if spec in RECIPES:
        return spec, dict(RECIPES[spec])
    if not spec.endswith(".json"):
        raise Vocals2SongError(f"unknown --recipe {spec!r}; use one of {', '.join(RECIPES)}, or a JSON file of "
                               "training fields", usage=True)
    try:
        given = json.loads(Path(spec).read_text())
    except (OSError, ValueError) as exc:
        raise Vocals2SongError(f"cannot read the recipe ({type(exc).__name__}: {exc})", spec, usage=True) from exc
    if not isinstance(given, dict):
        raise Vocals2SongError("a recipe file holds one JSON object of training fields", spec, usage=True)
    base = given.pop("base", DEFAULT_RECIPE)
    if base not in RECIPES:
        raise Vocals2SongError(f"unknown base recipe {base!r}; use one of {', '.join(RECIPES)}", spec, usage=True)
    unknown = sorted(set(given) - set(RECIPE_FIELDS))
    if unknown:
        raise Vocals2SongError(f"unknown training field {unknown[0]!r}; a recipe sets these: "
                               f"{', '.join(RECIPE_FIELDS)}", spec, usage=True)
    defaults = TrainConfig()
    for key, value in given.items():
        if not _fits(value, getattr(defaults, key)):
            raise Vocals2SongError(f"recipe field {key!r} cannot be {value!r} (the default is "
                                   f"{getattr(defaults, key)!r})", spec, usage=True)
    return spec, {**RECIPES[base], **{k: float(v) if isinstance(getattr(defaults, k), float) else v
                                      for k, v in given.items()}}


def _fits(value, default) -> bool:
    """Whether a JSON value can stand for a field whose default is ``default`` (an int for a float; text or null
    for the text fields, some of which are optional)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and (isinstance(default, float) or isinstance(value, int))
    return value is None or isinstance(value, str)


def recipe_config(spec: str = DEFAULT_RECIPE, **fields) -> TrainConfig:
    """The TrainConfig of a recipe (`recipe_fields`), with ``fields`` replacing its own."""
    name, recipe = recipe_fields(spec)
    return TrainConfig(**{**recipe, **fields, "recipe": name})


#: the fields that say how a run is carried out, not what it learns: a rerun keeps the recorded ones even when it
#: names a recipe (the recipe's own fields, and the flags given, replace the rest)
RUN_FIELDS = ("model", "steps", "seed", "checkpoint_every", "sample_every", "log_every", "keep_checkpoints",
              "val_tiles", "sample_tiles", "input_subdir", "target_subdir", "mixed_precision", "xla")


def train_config(recorded: dict, recipe: str | None, flags: dict) -> TrainConfig:
    """`train`'s settings from what RUN recorded (``recorded``: TrainConfig fields, {} for a new run), the
    ``--recipe`` given (None: none), and the ``flags`` given (None: not given). Without a recipe a rerun continues
    as recorded; with one, the recipe replaces every field but the recorded `RUN_FIELDS`; a flag replaces its field
    whatever the rest."""
    if recipe is None:
        cfg = replace_given(TrainConfig(), **recorded)
    else:
        name, fields = recipe_fields(recipe)
        kept = {k: v for k, v in recorded.items() if k in RUN_FIELDS}
        cfg = TrainConfig(**{**kept, **fields, "recipe": name})
    return replace_given(cfg, **flags)


def replace_given(obj, **overrides):
    """``dataclasses.replace`` with only the overrides that are not None (i.e. given)."""
    return dataclasses.replace(obj, **{k: v for k, v in overrides.items() if v is not None})
