"""What a newcomer tripped over (issue 10): each test pins one fix."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import numpy as np
import soundfile as sf

from conftest import QUICK_TRAIN, SR
from vocals2song.sound2image import segment_bounds
from vocals2song.synth import synth_stems


# --- 2. a tail that is mostly padding is no pair -------------------------------------------------------

def test_a_tail_under_half_a_segment_is_dropped_unless_it_is_the_whole_track():
    seg = 100
    assert segment_bounds(349, seg, "pad", 0.5) == [(0, 100), (100, 100), (200, 100)]  # 49 % of a segment
    assert segment_bounds(350, seg, "pad", 0.5)[-1] == (300, 50)  # half a segment: padded
    assert segment_bounds(349, seg, "pad", 0.0)[-1] == (300, 49)  # --min-tail 0: the old rule
    assert segment_bounds(30, seg, "pad", 0.5) == [(0, 30)]  # a short track still gives its one segment
    assert segment_bounds(350, seg, "drop", 0.5) == [(0, 100), (100, 100), (200, 100)]


def test_min_tail_option_and_manifest(small_tree, tmp_path, run_cli):
    out = tmp_path / "out"
    assert run_cli("sound2image", small_tree / "train" / "A - One", out, "--segment", "2",
                   "--min-tail", "0.2").exit_code == 0  # 0.5 s is a quarter of 2 s: kept
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["params"]["min_tail"] == 0.2 and manifest["counts"]["pairs"] == 3
    again = run_cli("sound2image", small_tree / "train" / "A - One", out, "--segment", "2")
    assert again.exit_code == 2 and "min_tail" in again.stderr


# --- 4. a rerun of train takes the run's settings ------------------------------------------------------

def test_rerun_takes_the_model_from_the_run_and_names_a_conflict(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    assert run_cli("train", train_data, run, "--steps", "2", *QUICK_TRAIN).exit_code == 0
    result = run_cli("train", train_data, run, "--steps", "4")  # no --model tiny, no --log-every 2
    assert result.exit_code == 0, result.output
    assert "note: as recorded in" in result.stderr and "--model tiny" in result.stderr
    assert "training tiny from step 2 to 4" in result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["preset"] == "tiny" and config["training"]["log_every"] == 2 and config["step"] == 4
    other = run_cli("train", train_data, run, "--steps", "6", "--model", "small")
    assert other.exit_code == 2 and other.stderr.count("Error:") == 1
    assert "the run's model is --model tiny, this command's --model small" in other.output
    assert "{" not in other.output  # words, not dicts


# --- 5. the printed TensorBoard command works without an active venv -------------------------------------

def test_tensorboard_command_names_a_program_that_exists(tmp_path):
    from vocals2song.cli import tensorboard_command

    words = shlex.split(tensorboard_command(tmp_path / "my logs"))
    assert os.path.isabs(words[0]) and os.access(words[0], os.X_OK)  # not a bare `tensorboard` off PATH
    assert words[-2:] == ["--logdir", str(tmp_path / "my logs")]
    if len(words) == 3:  # the venv's own script: its #! line names the venv's Python, so no activation is needed
        shebang = open(words[0], "rb").readline().decode().removeprefix("#!").split()
        assert os.path.isabs(shebang[0]) and os.access(shebang[0], os.X_OK)
        found = subprocess.run([shebang[0], "-c", "import tensorboard"], capture_output=True, env={"PATH": "/bin"})
        assert found.returncode == 0
    else:
        assert words[1:3] == ["-m", "tensorboard.main"]


# --- 6. two inputs never write the same output -------------------------------------------------------

def test_predict_keeps_both_inputs_of_one_name(trained_run, tmp_path, run_cli):
    y = synth_stems(1.0, sr=SR, seed=3)["vocals"]
    sf.write(tmp_path / "vocals.wav", y, SR)
    sf.write(tmp_path / "vocals.flac", y[:, ::-1] * 0.5, SR)
    out = tmp_path / "out"
    result = run_cli("predict", trained_run, tmp_path / "vocals.wav", tmp_path / "vocals.flac", tmp_path / "vocals.wav",
                     "--out", out)
    assert result.exit_code == 0, result.output
    assert "2 songs" in result.output
    assert sorted(p.name for p in out.glob("*.mixture.wav")) == ["vocals_flac.mixture.wav", "vocals_wav.mixture.wav"]


def test_image2sound_refuses_two_images_of_one_name(train_data, tmp_path, run_cli):
    folder = tmp_path / "images"
    folder.mkdir()
    source = train_data / "test" / "vocals" / "B - Two__000.png"
    shutil.copy(source, folder / "x.png")
    shutil.copy(source, folder / "x.PNG")
    result = run_cli("image2sound", folder, "--out", tmp_path / "wav")
    assert result.exit_code == 2 and "would be written to the same x.wav" in result.stderr
    assert "rename one of them" in result.stderr and not (tmp_path / "wav").exists()


def test_sound2image_refuses_two_files_for_one_stem(small_tree, tmp_path, run_cli):
    track = tmp_path / "T - Two Files"
    shutil.copytree(small_tree / "test" / "B - Two", track)
    y, sr = sf.read(track / "vocals.wav")
    sf.write(track / "vocals.flac", y, sr)
    result = run_cli("sound2image", track, tmp_path / "out", "--segment", "2")
    assert result.exit_code == 1 and "has vocals.wav and vocals.flac; keep one vocals file" in result.stderr


# --- 7. summaries that read right ----------------------------------------------------------------------

def test_summaries_count_and_say_what_was_done(train_data, tmp_path, run_cli):
    good = train_data / "test" / "vocals" / "B - Two__000.png"
    one = run_cli("image2sound", good, "--out", tmp_path / "one")
    assert one.exit_code == 0 and one.output.strip().endswith(": wrote 1 WAV file")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    bad = run_cli("image2sound", tmp_path / "bad.png", "--out", tmp_path / "bad")
    assert bad.exit_code == 1 and "1 of 1 images failed; none was done." in bad.stderr
    mixed = run_cli("image2sound", good, tmp_path / "bad.png", "--out", tmp_path / "mixed")
    assert mixed.exit_code == 1 and "1 of 2 images failed; the other 1 was done." in mixed.stderr


def test_sound2image_summary_counts_in_the_right_number(tmp_path):
    from vocals2song.sound2image import BatchSummary, describe

    counts = {"train": 2, "valid": 0, "test": 0, "pairs": 2, "tracks": 1, "skipped_silent": 1}
    line = describe(BatchSummary({"counts": counts}, [object()], [], 0))
    assert line.startswith("2 pairs from 1 track (train 2, valid 0, test 0); 1 silent segment skipped; 1 track encoded")


def test_evaluate_summary_names_every_baseline_and_the_winner():
    from vocals2song.evaluate import summary as evaluate_summary

    report = {"higher_is_better": {"lsd": False}, "model": {"lsd": 21.4},
              "baselines": {"vocals_only": {"lsd": 19.7}, "mean_accompaniment": {"lsd": 20.5}}}
    line = evaluate_summary(report)
    assert line == ("median lsd (lower is better): model 21.40, vocals_only 19.70, mean_accompaniment 20.50; "
                    "the model loses to vocals_only")
    report["model"]["lsd"] = 18.0
    assert evaluate_summary(report).endswith("; the model wins")
    report["model"]["lsd"] = 19.71
    assert evaluate_summary(report).endswith("; the model and vocals_only are level")



def test_evaluate_counts_tracks_as_well_as_items():
    """A track's segments are not independent draws: a model a hair better on the 3 segments of one track and
    clearly worse on two other tracks wins 3 of 5 items but only 1 of 3 tracks, and the summary and report.md say
    both."""
    from vocals2song.evaluate import _report, markdown

    def item(name, track, model, mean):
        scores = {"lsd": model, "mrstft": model / 10}
        return {"name": name, "track": track, "model": scores, "vocals_only": {"lsd": 30.0, "mrstft": 3.0},
                "mean_accompaniment": {"lsd": mean, "mrstft": mean / 10}}

    items = [item(f"A__{k}", "A", 9.9, 10.0) for k in range(3)] + [item("B__0", "B", 12.0, 10.0),
                                                                   item("C__0", None, 12.0, 10.0)]
    report = _report(items, "run", "data", "test", True)
    assert report["model_better_on"]["mean_accompaniment"]["lsd"] == 3
    assert report["nb_tracks"] == 3 and report["model_better_on_tracks"]["mean_accompaniment"]["lsd"] == 1
    assert report["model_better_on_tracks"]["vocals_only"]["mrstft"] == 3
    assert "on 3 of 5 items and 1 of 3 tracks" in markdown(report)


# --- 8 and 14. predict: a mixture image is named; missing inputs are found before the model loads --------

def test_predict_warns_about_an_image_of_another_stem(trained_run, train_data, tmp_path, run_cli):
    image = train_data / "test" / "mixture" / "B - Two__000.png"
    result = run_cli("predict", trained_run, image, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"Warning: {image}: the image's metadata names the stem 'mixture', not vocals" in result.stderr
    vocals = run_cli("predict", trained_run, train_data / "test" / "vocals" / "B - Two__000.png", "--out",
                     tmp_path / "out2")
    assert vocals.exit_code == 0 and "Warning" not in vocals.stderr


def test_predict_checks_inputs_before_loading_the_model(trained_run, tmp_path, run_cli):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "generator.keras").write_bytes(b"not a model")  # loading it would fail: it must not be reached
    result = run_cli("predict", run, tmp_path / "missing.wav", tmp_path / "gone.flac", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'missing.wav'}: no such file (and 1 more missing inputs)\n"


# --- 12. a run that encoded nothing leaves nothing ---------------------------------------------------------

def test_sound2image_of_a_text_file_leaves_nothing(tmp_path, run_cli):
    (tmp_path / "notes.txt").write_text("not audio")
    out = tmp_path / "new" / "out"
    result = run_cli("sound2image", tmp_path / "notes.txt", out)
    assert result.exit_code == 1 and "1 of 1 tracks failed; none was done." in result.stderr
    assert not (tmp_path / "new").exists()


# --- 13. the last step gets its history row ------------------------------------------------------------------

def test_training_logs_the_step_where_it_ends(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    result = run_cli("train", train_data, run, "--steps", "5", "--model", "tiny", "--log-every", "2",
                     "--checkpoint-every", "100", "--sample-every", "100")
    assert result.exit_code == 0, result.output
    steps = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 5]
    assert np.isfinite([float(c) for c in (run / "history.csv").read_text().splitlines()[-1].split(",")]).all()
