"""The scripts in scripts/ (and the research probes in scripts/research/) run and print their figures (tiny sizes
here; the real figures come from their defaults)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def run_script(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_bench_codec_prints_every_format_and_passes_the_floors():
    out = run_script("bench_codec.py", "--repeats", "1")
    for fmt in ("rgb8", "rgba8", "tiff16", "png16", "float32"):
        assert fmt in out
    assert "All formats meet their fidelity floors" in out


@pytest.mark.slow
def test_bench_sound2image_reports_a_ratio(tmp_path):
    out = run_script("bench_sound2image.py", "--tracks", "1", "--seconds", "20", "--runs", "1",
                     "--workdir", str(tmp_path))
    assert "Speed-up baseline / ours:" in out and "x realtime" in out


@pytest.mark.slow
def test_bench_train_reports_steps_and_memory(tmp_path):
    out = run_script("bench_train.py", "--models", "tiny", "--steps-tiny", "5", "--warmup", "2", "--segment", "3",
                     "--rounds", "2", "--cli-steps", "6", "--cli-rounds", "1", "--bare-steps", "5",
                     "--pairs-small", "4", "--pairs-large", "12", "--memory-margin", "2", "--workdir", str(tmp_path))
    assert "steps/s" in out and "tiny target (>= 5 steps/s):" in out
    assert "float32 against mixed_bfloat16" in out and "bf16/fp32" in out
    assert "CLI / bare:" in out and "peak RSS" in out
    assert "16/16 training images decoded" in out  # the 12-pair folder: 8 train pairs, every one read
    assert "ratio 12/4:" in out and "memory target (12/4 <= 1.25, every pair read):" in out


@pytest.mark.slow
def test_bench_predict_reports_realtime_factor(tmp_path):
    out = run_script("bench_predict.py", "--models", "tiny", "--seconds", "8", "--short-seconds", "2",
                     "--workdir", str(tmp_path))
    assert "x realtime" in out
    assert "Peak RSS (tiny) 2 s input:" in out and "ratio 8/2 s:" in out and "MB per minute of audio" in out


@pytest.mark.slow
def test_quality_headroom_ranks_the_oracles(train_data):
    out = run_script("research/quality_headroom.py", str(train_data))
    scores = {line[:30].strip(): float(line[30:]) for line in out.splitlines()[1:]}
    assert len(scores) == 7 and "test items" in out
    # knowing the true accompaniment beats knowing nothing of it, and its frame gains beat the flat mean
    # (on these synthetic songs the mean itself loses to the vocals: about 31.7 against 22.6)
    assert scores["oracle: true accompaniment"] < min(scores["mean_accompaniment"], scores["vocals_only"])
    assert scores["oracle: + frame gain"] < scores["mean_accompaniment"]


@pytest.mark.slow
def test_bench_validation_reports_the_cost_per_step(train_data):
    out = run_script("research/bench_validation.py", str(train_data), "--models", "tiny", "--tiles", "1,32",
                     "--repeats", "1")
    lines = [line for line in out.splitlines() if "ms per validation" in line]
    assert "(2 valid pairs)" in out and len(lines) == 2
    assert "1 tiles:" in lines[0] and "2 tiles:" in lines[1]  # no more tiles than valid pairs, as in train
    assert all(float(line.split(",")[1].split()[0]) > 0 for line in lines)


@pytest.mark.slow
def test_score_generators_gives_train_s_figures(train_data, tmp_path):
    """The script scores the kept generator as train did when it kept it, and the untrained start beside it."""
    import json

    from vocals2song.config import TrainConfig
    from vocals2song.train import train

    run = tmp_path / "run"
    train(train_data, run, TrainConfig(model="tiny", steps=2, log_every=1, checkpoint_every=2, sample_every=100,
                                       lr=0.01), progress=False, log=lambda *a: None)
    best = json.loads((run / "config.json").read_text())["best"]
    out = run_script("research/score_generators.py", str(run), str(train_data), "generator_best.keras",
                     "generator.keras")
    rows = {line.split()[0]: float(line.split()[2]) for line in out.splitlines() if "val_lsd" in line}
    assert set(rows) == {"start", "generator_best.keras", "generator.keras"} and f"kept step {best['step']}" in out
    assert rows["generator.keras"] != rows["start"]  # two steps at lr 0.01 moved it: each network is scored
    assert abs(rows["generator_best.keras"] - best["val_lsd"]) < 1e-3
    assert rows["start"] >= best["val_lsd"] * (1 - 0.01) - 1e-3  # the start was a candidate


@pytest.mark.slow
def test_fit_check_fits_the_training_tiles(train_data):
    """The fit check's generator fits the few training tiles it sees (on this learnable synthetic task the unseen
    ones follow); a step that does not train leaves the first figure where it was."""
    out = run_script("research/fit_check.py", str(train_data), "--model", "tiny", "--tiles", "4", "--batch", "2",
                     "--steps", "150", "--every", "50")
    rows = [line for line in out.splitlines() if line.startswith("step")]
    assert len(rows) == 4 and "4 found" in out and "2 validation tiles" in out
    fitted = [float(row.split("fitted")[1].split()[0]) for row in rows]
    assert fitted[-1] < fitted[0] - 0.3, out  # about 9.31 -> 8.48
    assert out.splitlines()[-1].startswith("after 150 steps: fitted tiles")


@pytest.mark.slow
def test_compare_reports_counts_items_and_tracks(tmp_path):
    """compare_reports pairs two evaluate reports' items by name: A a hair better on the 4 segments of one track
    and clearly worse on 2 other tracks is better on 4 of 6 items but 1 of 3 tracks; the same report against
    itself ties everywhere (sign p 1); and a folder without a report is a one-line error."""
    def report(path, model_lsd):
        items = [{"name": f"{t}__{k}", "track": t, "model": {"lsd": v, "mrstft": v / 10}}
                 for (t, k), v in model_lsd.items()]
        path.mkdir()
        (path / "report.json").write_text(json.dumps({"items": items}))
        return str(path)

    keys = [("A", k) for k in range(4)] + [("B", 0), ("C", 0)]
    a = report(tmp_path / "a", dict(zip(keys, [9.9] * 4 + [12.0, 12.0])))
    b = report(tmp_path / "b", dict(zip(keys, [10.0] * 6)))
    lines = {line.split()[0]: line.split() for line in run_script("compare_reports.py", a, b).splitlines()
             if line.startswith(("lsd", "mrstft"))}
    assert lines["lsd"][1:4] == ["6", "4", "2"] and lines["lsd"][5:8] == ["3", "1", "2"]
    assert lines["mrstft"][5:8] == ["3", "1", "2"]
    same = {line.split()[0]: line.split() for line in run_script("compare_reports.py", a, a).splitlines()
            if line.startswith("lsd")}
    assert same["lsd"][2:5] == ["0", "0", "1"]
    result = subprocess.run([sys.executable, str(SCRIPTS / "compare_reports.py"), str(tmp_path), b],
                            capture_output=True, text=True)
    assert result.returncode != 0 and result.stderr.strip().startswith("Error:") and "Traceback" not in result.stderr


@pytest.mark.slow
def test_recalibrate_refits_what_it_is_asked_to(train_data, trained_run, tmp_path, run_cli):
    """recalibrate copies a run's generators and refits its envelope and gain with the choices given: the same
    choices give what training fitted, a louder aim a larger gain, --no-envelope leaves the envelope out, and
    --no-envelope --no-loudness leaves the generator alone. A run it cannot calibrate (the published unet) and an
    OUT that exists are one-line errors, with nothing written."""
    run = tmp_path / "run"
    quick = ["--model", "tiny", "--steps", "2", "--log-every", "1", "--checkpoint-every", "2", "--sample-every", "2"]
    assert run_cli("train", train_data, run, *quick).exit_code == 0
    trained = json.loads((run / "config.json").read_text())

    def recal(out, *flags):
        run_script("recalibrate.py", str(run), str(train_data), str(tmp_path / out), *flags)
        return json.loads((tmp_path / out / "config.json").read_text())

    same = recal("same")
    assert same["loudness"] == trained["loudness"] and same["envelope"] == trained["envelope"]
    assert (tmp_path / "same" / trained["generator"]).is_file() and not (tmp_path / "same" / "checkpoints").exists()
    quiet, louder = recal("quiet", "--no-envelope"), recal("louder", "--quietest-db", "-0.5", "--no-envelope")
    assert "envelope" not in louder and louder["loudness"]["alpha_db"] > quiet["loudness"]["alpha_db"]
    assert not {"envelope", "loudness"} & set(recal("alone", "--no-envelope", "--no-loudness"))
    for args in ((str(trained_run), str(train_data), str(tmp_path / "unet")),
                 (str(run), str(train_data), str(tmp_path / "same"))):
        result = subprocess.run([sys.executable, str(SCRIPTS / "recalibrate.py"), *args], capture_output=True,
                                text=True)
        assert result.returncode != 0 and result.stderr.startswith("Error:") and "Traceback" not in result.stderr
    assert not (tmp_path / "unet").exists()


def test_every_bench_quality_variant_is_a_valid_recipe(monkeypatch, tmp_path):
    """Each variant's recipe resolves to training settings `train` accepts (a misspelt field would fail only hours
    into a benchmark), and the published and regression variants ask for what their comments say."""
    import importlib.util

    from vocals2song.cli import train_cmd
    from vocals2song.config import recipe_config
    from vocals2song.train import _check_config

    monkeypatch.syspath_prepend(str(SCRIPTS))  # as when it runs: its folder on sys.path, for benchlib
    spec = importlib.util.spec_from_file_location("bench_quality", SCRIPTS / "bench_quality.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    configs = {}
    for name in bench.VARIANTS:
        flags = bench.recipe_flags(name, tmp_path)
        assert train_cmd.make_context("train", ["DATA", "RUN", *flags]).params["recipe"] == flags[1], name
        configs[name] = recipe_config(flags[1])
        _check_config(configs[name])
    published = configs["published"]
    assert (published.generator, published.phase_repr, published.lambda_recon) == ("unet", "angle", 100.0)
    assert published.gan_loss == "bce" and published.batch_size == 1 and published.keep_best is False
    regression = configs["regression"]
    assert (regression.gan_loss, regression.recon_loss, regression.lambda_recon) == ("none", "l2", 1.0)
    assert configs["default"] == recipe_config()


@pytest.mark.slow
def test_oracle_chorales_rerenders_the_notes_in_line_with_the_dataset(chorale_run):
    """The oracle on the rendered chorales' test split: the notes re-rendered on the track's own
    band must land where the dataset's accompaniment is (the same samples, the same level, through the same codec),
    so that its other rows (the notes on other bands) measure the band, not a misplaced render."""
    import subprocess
    import sys

    ds, _ = chorale_run
    script = SCRIPTS / "research" / "oracle_chorales.py"
    result = subprocess.run([sys.executable, str(script), str(ds), "--bands", "2", "--tracks", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line[:24].strip(): line[24:].split() for line in result.stdout.splitlines()[2:]}
    print(result.stdout)
    assert {"mean_accompaniment", "notes known", "notes on one band", "notes on its own band",
            "true accompaniment"} <= rows.keys()
    lsd, loud = {k: float(v[1]) for k, v in rows.items()}, {k: float(v[3]) for k, v in rows.items()}
    assert lsd["true accompaniment"] < lsd["mean_accompaniment"]
    # 0.02 dB apart as measured; 0.39 when the renders skipped the codec (their detail under the image's floor,
    # which the truth has not, counted against them: 4 dB at 44.1 kHz)
    assert lsd["notes on its own band"] < lsd["true accompaniment"] + 0.2
    assert abs(loud["notes on its own band"] - loud["true accompaniment"]) < 0.3


@pytest.mark.slow
def test_oracle_chorales_refuses_tracks_it_cannot_rerender(train_data):
    import subprocess
    import sys

    script = SCRIPTS / "research" / "oracle_chorales.py"
    result = subprocess.run([sys.executable, str(script), str(train_data), "--split", "valid"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "are not `chorales` tracks" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
def test_bench_quality_prints_its_table(chorale_run, tmp_path):
    """scripts/bench_quality.py end to end at toy size on the rendered chorales: it trains the variant, evaluates it,
    and prints a row per variant (with the items it beats the mean on) and one per baseline."""
    import subprocess
    import sys

    ds, _ = chorale_run
    work = tmp_path / "work"
    work.mkdir()
    (work / "dataset").symlink_to(ds)  # the bench reuses an encoded dataset
    script = SCRIPTS / "bench_quality.py"
    result = subprocess.run([sys.executable, str(script), "--work", str(work), "--corpus", str(ds.parent / "chorales"),
                             "--model", "tiny", "--steps", "4", "--variants", "default"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert {"default", "vocals_only", "mean_accompaniment"} <= rows.keys()
    report = json.loads(next((work / "eval").glob("*/model/report.json")).read_text())
    tracks = len({item["track"] for item in report["items"]})
    assert f"of {len(report['items'])}; " in rows["default"] and f"of {tracks} tracks |" in rows["default"]
    assert (work / "quality.md").read_text().count("| default |") == 1


@pytest.mark.slow
def test_judge_oracles_prints_every_case(chorale_run):
    """The note probe on rendered chorales: every case is a row; the truth against itself scores 1, the vocals
    alone play nothing."""
    ds, _ = chorale_run
    out = run_script("research/judge_oracles.py", str(ds.parent / "chorales"), "--split", "train", "--limit", "2")
    rows = {line[:26].strip(): [float(v) for v in line[26:].split()] for line in out.splitlines()[2:]}
    assert set(rows) == {"true vs itself", "true vs the score", "true, song's Griffin-Lim", "true, random phase",
                         "parallel", "another track", "vocals only"}
    assert rows["true vs itself"][1:3] == [1.0, 1.0] and rows["vocals only"][:3] == [0.0, 0.0, 0.0]
    assert rows["true vs the score"][1] > 0.5  # the transcriber hears the score's pitch classes
