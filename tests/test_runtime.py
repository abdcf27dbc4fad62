"""The runtime: distribution strategies (several devices, several workers), GPU options on a CPU, mixed precision."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import QUICK_TRAIN, recipe_file
from helpers import _train_cmd

from vocals2song import data as data_mod
from vocals2song.config import MODELS

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from vocals2song.model import build_generator  # noqa: E402

# --- distribution strategies ---------------------------------------------------------------------------------

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


@pytest.mark.slow
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


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import vocals2song.runtime
import vocals2song.train as train_mod
vocals2song.runtime.make_strategy = lambda: (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), True,
                                   "MirroredStrategy (2 CPU replicas)")
from vocals2song.config import TrainConfig
summary = train_mod.train(sys.argv[1], sys.argv[2], TrainConfig(model="tiny", steps=4, log_every=2,
                          checkpoint_every=2, sample_every=2), progress=False)
print("final", summary.step, summary.last_row["gen_recon"])
"""


@pytest.mark.slow
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


# --- mixed precision -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_gpu_options_do_no_harm_on_a_cpu(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    result = run_cli("train", train_data, run, "--steps", "2", "--mixed-precision", *QUICK_TRAIN[:-2],
                     *recipe_file(tmp_path, "pix2pix", xla=True))
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    if not tf.config.list_logical_devices("GPU"):  # bfloat16 where this CPU has it, else float32 with a note
        from vocals2song.runtime import cpu_bf16_flags

        bf16 = bool(cpu_bf16_flags())
        assert config["precision"] == ("mixed_bfloat16" if bf16 else "float32")
        assert ("bfloat16 compute on this CPU" if bf16 else "--mixed-precision ignored") in result.output
    assert config["training"]["xla"] and config["training"]["mixed_precision"]
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 1 and all(cell and np.isfinite(float(cell)) for cell in rows[0].split(","))


def test_precision_policy_follows_the_hardware(tmp_path):
    from vocals2song.runtime import choose_policy, cpu_bf16_flags

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
    from vocals2song import runtime
    from vocals2song.config import TrainConfig
    from vocals2song.train import train

    monkeypatch.setattr(runtime, "choose_policy", lambda mixed, gpu, flags=None: (policy, None))
    cfg = TrainConfig(model="tiny", steps=3, log_every=3, sample_every=3, checkpoint_every=3, mixed_precision=True,
                      generator="unet", phase_repr="angle")
    summary = train(train_data, run, cfg, progress=False, log=lambda *a: None)
    assert keras.mixed_precision.global_policy().name == "float32"  # not left behind for the rest of the process
    config = json.loads((run / "config.json").read_text())
    assert config["precision"] == policy and config["step"] == 3
    assert all(np.isfinite(summary.last_row[k]) for k in ("gen_total", "gen_gan", "gen_recon", "disc", "val_recon"))
    return config


@pytest.mark.slow
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
