"""TensorFlow's runtime for a run: quiet start-up, the distribution strategy, and the dtype policy.

**Quiet.** `quiet_tensorflow` imports TensorFlow with its C++ start-up notices silenced.

**Strategy.** `make_strategy`: `MultiWorkerMirroredStrategy` when TF_CONFIG names a cluster, `MirroredStrategy` on
several GPUs, else the default strategy.

**Precision.** ``--mixed-precision`` asks for mixed precision. It becomes ``mixed_float16`` on a GPU (with a
loss-scaling optimizer), ``mixed_bfloat16`` on a CPU whose flags say it computes bfloat16 natively (``avx512_bf16``
or ``amx_bf16`` in /proc/cpuinfo: Zen 4, Cooper Lake, Sapphire Rapids and later), and float32 elsewhere, with a
note: float16 and emulated bfloat16 are slower than float32 on a CPU. Variables stay float32 under either mixed
policy, so a checkpoint or ``generator.keras`` trained in one loads and runs in float32 (`float32_model`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: /proc/cpuinfo flags of native bfloat16 arithmetic
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The bfloat16 flags this CPU reports (empty where /proc/cpuinfo is missing: no guessing)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return [f for f in BF16_FLAGS if f in flags]


def choose_policy(mixed_precision: bool, has_gpu: bool, bf16_flags: list[str] | None = None) -> tuple[str, str | None]:
    """The dtype policy for a run and a note for the log (None when there is nothing to say).

    ``bf16_flags``: the CPU's bfloat16 flags (default: read from /proc/cpuinfo).
    """
    if not mixed_precision:
        return "float32", None
    if has_gpu:
        return "mixed_float16", None
    flags = cpu_bf16_flags() if bf16_flags is None else bf16_flags
    if flags:
        return "mixed_bfloat16", f"--mixed-precision: bfloat16 compute on this CPU ({', '.join(flags)})"
    return "float32", "--mixed-precision ignored: no GPU and no native bfloat16 on this CPU (float16 is slow there)"


_LOW = ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def _float32_config(obj):
    """A Keras config with every mixed or 16-bit dtype replaced by float32: layer policies, and the inputs of
    nested ``Sequential`` blocks, which a mixed policy saves as ``bfloat16`` or ``float16``."""
    if isinstance(obj, dict):
        return {k: "float32" if k in ("dtype", "name") and v in _LOW else _float32_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    return obj


def float32_model(model):
    """``model`` computing in float32: itself when no layer has a mixed policy, else a float32 copy with its weights.

    A model saved under ``mixed_bfloat16`` or ``mixed_float16`` keeps that policy per layer when loaded; inference
    wants float32 (full precision, and bfloat16 is slow on CPUs without it).
    """
    if not any(layer.dtype_policy.name in _LOW for layer in _all_layers(model)):
        return model
    copy = model.__class__.from_config(_float32_config(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _all_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


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
