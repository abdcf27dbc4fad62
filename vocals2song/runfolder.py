"""The run folder that `train` writes and `predict`, `evaluate` and `recalibrate` read (SPEC.md, "The run folder")::

    RUN/config.json        the run's version, codec, model, training settings (`TrainConfig` fields), calibration
    RUN/checkpoints/       tf.train.CheckpointManager: the networks, their optimizers (and so the step)
    RUN/generator.keras    the latest generator
    RUN/generator_best.keras  the generator of the lowest val_lsd, the untrained start included (keep-best;
                           config.json "best" says its step, and "generator" names the file predict loads)
    RUN/history.csv        step,gen_total,gen_gan,gen_recon,disc,val_recon,val_lsd
    RUN/logs/              TensorBoard: losses, image strips, audio of predicted mixtures
    RUN/samples/           PNG strips input | target | prediction of fixed validation tiles
    RUN/losses.png         loss curves

Inference reads config.json through `read_config`, which brings a run of any earlier version to the current one
(`upgrade`), so no reader needs to know what older runs lacked.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from vocals2song.codec import ImageMeta
from vocals2song.config import KEEP_BEST_BY, TrainConfig
from vocals2song.errors import Vocals2SongError
from vocals2song.files import write_bytes_atomic

#: 2: the reconstruction figures are named for what they hold (``lambda_recon``, ``gen_recon``, ``val_recon``), every
#: model key is written, recipes are recorded; 1: the first layout
RUN_VERSION = 2
CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
GENERATOR = "generator.keras"
BEST_GENERATOR = "generator_best.keras"
HISTORY = "history.csv"
LOGS = "logs"
SAMPLES = "samples"
LOSSES = "losses.png"
#: what `--no-resume` removes: the run folder's own artefacts, nothing else
RUN_ARTEFACTS = (CONFIG, CHECKPOINTS, GENERATOR, BEST_GENERATOR, HISTORY, LOGS, SAMPLES, LOSSES)
HISTORY_COLUMNS = ("step", "gen_total", "gen_gan", "gen_recon", "disc", "val_recon", "val_lsd", "val_harmony")
#: history.csv columns of version-1 runs, by their current names
OLD_HISTORY_COLUMNS = {"gen_l1": "gen_recon", "val_l1": "val_recon"}
#: settings that must not change when a run resumes (they change what the weights mean)
FIXED_ON_RESUME = ("codec", "model", "target")
#: training settings that older versions had and this one no longer trains with: ``(key, value it had when off)``.
#: A run that used one still loads and predicts; resuming it is refused.
RETIRED = (("power_loss", 0.0, "--power-loss"),)
#: model keys every version-2 run writes, with what a version-1 run that lacks one was made with
MODEL_DEFAULTS_V1 = {"generator": "unet", "phase_repr": "angle", "norm": "batch", "view": "linear", "gate_radius": 0,
                     "prior": None}


def upgrade(config: dict) -> dict:
    """A config.json of any earlier version as the current version writes it (a new dict; ``config`` unchanged).

    Version 1 -> 2: the model keys a run lacked take the values it was trained with (`MODEL_DEFAULTS_V1`: the
    published U-Net with the stored phase and BatchNorm, the raw gate); ``lambda_l1`` becomes ``lambda_recon`` and
    ``val_l1`` ``val_recon``; a run from before the weight average had none (``ema`` 0); keep-best by the
    reconstruction figure, LSGAN and the power loss, which this version no longer trains with, move to
    ``training.retired`` when they were on (`check_retired`); ``recipe`` is None (a run from before recipes).
    """
    version = config.get("version")
    if version == RUN_VERSION:
        return config
    if version != 1:
        raise Vocals2SongError(f"run folder version {version} is not supported (this vocals2song reads 1 to "
                               f"{RUN_VERSION})", usage=True)
    config = copy.deepcopy(config)
    model = config["model"]
    for key, value in MODEL_DEFAULTS_V1.items():
        model.setdefault(key, value)
    training = config.setdefault("training", {})
    if "lambda_l1" in training:
        training["lambda_recon"] = training.pop("lambda_l1")
    training.setdefault("ema", 0.0)
    training.setdefault("keep_best_by", "val_l1")  # runs from before val_lsd kept the lowest reconstruction loss
    retired = {}
    for key, off, _ in RETIRED:
        value = training.pop(key, off)
        if value != off:
            retired[key] = value
    if training.get("gan_loss") == "lsgan":
        retired["gan_loss"] = "lsgan"
    if training["keep_best_by"] not in KEEP_BEST_BY:  # the reconstruction loss (val_l1)
        retired["keep_best_by"] = training["keep_best_by"]
        training["keep_best_by"] = KEEP_BEST_BY[0]
    if retired:
        training["retired"] = retired
    for key in ("generator", "phase_repr", "norm", "view"):
        training[key] = model[key]
    training.setdefault("recipe", None)
    for figures in (config.get("best"), config.get("keep_best_start")):
        if figures and "val_l1" in figures:
            figures["val_recon"] = figures.pop("val_l1")
    config.setdefault("generator", GENERATOR)
    config["version"] = RUN_VERSION
    return config


def read_config(run: str | os.PathLike) -> dict:
    """RUN/config.json, checked and upgraded to the current version: what predict and evaluate build on."""
    path = Path(run) / CONFIG
    if not path.is_file():
        raise Vocals2SongError("not a run folder (no config.json); train one with `vocals2song train DATA RUN`",
                               run, usage=True)
    try:
        config = json.loads(path.read_text())
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
        config = upgrade(config)
        ImageMeta(**{**config["codec"], "length": 0})
        config["model"]["preset"], config["training"]["tile"]
    except Vocals2SongError as exc:
        raise Vocals2SongError(str(exc), path, usage=exc.usage) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Vocals2SongError(f"config.json is not valid ({type(exc).__name__}: {exc})", path) from exc
    return config


def write_config(run: str | os.PathLike, config: dict) -> None:
    write_bytes_atomic(Path(run) / CONFIG, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


def codec_meta(config: dict, length: int = 0) -> ImageMeta:
    """The run's codec as image metadata (``length`` in samples)."""
    return ImageMeta(**{**config["codec"], "length": int(length)})


def generator_path(run: str | os.PathLike, config: dict) -> Path:
    """The generator predict uses: the one config.json names (keep-best's, or the latest)."""
    return Path(run) / config["generator"]


def read_history(path: Path) -> list[dict]:
    """`parse_history`, or no rows when there is no history yet."""
    return parse_history(path) if path.is_file() else []


def parse_history(path: str | os.PathLike) -> list[dict[str, float | int]]:
    """Read a training-history CSV with header `HISTORY_COLUMNS` (a version-1 run's old column names are read as
    their new ones: `OLD_HISTORY_COLUMNS`).

    Returns one dict per row: ``step`` as int, every other column as float; empty cells, and
    columns the header lacks, are NaN. Extra columns are kept as floats. A missing ``step`` column
    or a cell that is not a number raises `Vocals2SongError`.
    """
    path = Path(path)
    out: list[dict[str, float | int]] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [OLD_HISTORY_COLUMNS.get(c.strip(), c.strip()) for c in (reader.fieldnames or [])]
        if "step" not in fields:
            raise Vocals2SongError(f"not a training history: the header has no 'step' column ({fields})", path)
        reader.fieldnames = fields
        columns = list(HISTORY_COLUMNS) + [c for c in fields if c not in HISTORY_COLUMNS and c]
        for row in reader:
            try:
                step = row.get("step")
                if step is None or not step.strip():
                    raise ValueError("empty step")
                record: dict[str, float | int] = {"step": int(float(step))}
                for c in columns[1:]:
                    cell = row.get(c)
                    record[c] = math.nan if cell is None or not cell.strip() else float(cell)
            except ValueError as e:
                raise Vocals2SongError(f"line {reader.line_num}: {e}", path) from None
            out.append(record)
    return out


def drop_partial_row(path: Path) -> None:
    """A SIGKILL during an append can leave a last row without its newline: cut it off."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            write_bytes_atomic(path, data[: data.rfind(b"\n") + 1])


def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv anew (atomically), with the header `HISTORY_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in HISTORY_COLUMNS])
    write_bytes_atomic(path, buf.getvalue().encode())


def append_history(path: Path, row: dict) -> None:
    """One history.csv row, appended (`drop_partial_row` repairs what a kill cuts short)."""
    with open(path, "a", newline="") as f:
        f.write(",".join(cell(row.get(c)) for c in HISTORY_COLUMNS) + "\n")


def cell(value) -> str:
    """A history.csv cell: an integer as such, a float to 6 significant digits, nothing for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return str(int(value)) if isinstance(value, (int, np.integer)) else f"{float(value):.6g}"


def prepare(run: Path, resume: bool) -> None:
    """Make RUN; without ``resume``, first remove the run's own artefacts (`RUN_ARTEFACTS`), and nothing else."""
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
    rerun needs no option repeated; {} when RUN is not a run yet (or its config is unreadable: `train` says so).
    A run trained with a setting this version no longer has is refused (`check_retired`)."""
    try:
        config = read_config(run)
    except Vocals2SongError:
        return {}
    check_retired(config, run)
    settings = {k: v for k, v in config["training"].items() if k in TrainConfig.__dataclass_fields__}
    settings["model"] = config["model"]["preset"]
    return settings


def check_retired(config: dict, run: str | os.PathLike) -> None:
    """Refuse, in one line, to train on a run that used a setting this version no longer trains with."""
    retired = config["training"].get("retired")
    if retired:
        flags = {**{key: flag for key, _, flag in RETIRED}, "keep_best_by": "--keep-best-by"}
        used = ", ".join(f"{flags.get(k, '--' + k.replace('_', '-'))} {v}" for k, v in retired.items())
        raise Vocals2SongError(f"this run was trained with {used}, which this version no longer trains with "
                               "(docs/quality-log.md has what they measured); it still predicts and evaluates; "
                               "train a new RUN folder to go on", run, usage=True)


def check_resume(old: dict, new: dict, run: Path) -> None:
    """Refuse to resume with a model, codec or target other than the run's, saying which in words (``old``: the
    recorded config, upgraded; ``new``: this command's)."""
    check_retired(old, run)
    differences = []
    was, now = old["model"], new["model"]
    if was != now:
        named = [(flag, was.get(key), now.get(key))
                 for flag, key in (("--model", "preset"), ("--generator", "generator"), ("--phase-repr", "phase_repr"),
                                   ("norm", "norm"), ("view", "view"))]
        differences += [f"the run's model is {flag} {a}, this command's {flag} {b}" for flag, a, b in named if a != b]
        if all(a == b for _, a, b in named):
            differences.append(f"the sizes of --model {now['preset']} changed since the run was made")
    if old["codec"] != new["codec"]:
        keys = sorted(k for k in new["codec"] if old["codec"].get(k) != new["codec"][k])
        differences.append("the run's images were " + ", ".join(f"{k} {old['codec'].get(k)}" for k in keys)
                           + "; DATA's are " + ", ".join(f"{k} {new['codec'][k]}" for k in keys))
    had_ema, has_ema = float(old["training"]["ema"]) > 0.0, float(new["training"]["ema"]) > 0.0
    if had_ema != has_ema:  # the optimizer's averages are in the checkpoint
        differences.append(f"the run was trained {'with' if had_ema else 'without'} a weight average (ema), this "
                           f"command's recipe has {'one' if has_ema else 'none'}")
    if old.get("target") != new.get("target"):
        differences.append(f"the run learns to make the {old.get('target')}, DATA's targets are the {new['target']} "
                           "(see --target-subdir)")
    if differences:
        raise Vocals2SongError(f"this run was trained with other settings: {'; '.join(differences)}. Leave the option "
                               "out to continue the run as it was, use a new RUN folder, or --no-resume to start this "
                               "one over", run, usage=True)
