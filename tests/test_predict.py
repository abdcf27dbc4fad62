"""predict: any length, rate and channels; seamless tiling and the phase cross-fade; the phase sources; the song laid
around the vocals with the run's gain and envelope; inputs checked, named and kept apart."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import QUICK_TRAIN, SR
from helpers import _config, _encode

import vocals2song.gate as gates
from vocals2song import audio, baselines, codec, metrics
from vocals2song.imagefile import read_image
from vocals2song.predict import Predictor, apply_tiled, predict_song, tile_starts, vocals_input
from vocals2song.runfolder import codec_meta
from vocals2song.synth import synth_stems


def _identity_predictor(tile: int, fmt: str = "rgb8") -> Predictor:
    from vocals2song.config import RANGE_DB

    config = {"codec": {"format": fmt, "sr": SR, "n_fft": 1024, "hop": 256, "win": 1024, "window": "hann",
                        "top_db": 20 * np.log10(512), "range_db": RANGE_DB[fmt], "split": None},
              "target": "mixture", "training": {"tile": tile},
              "model": {"generator": "unet", "phase_repr": "angle", "gate_radius": 0, "prior": None}}
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


def test_cross_fade_blends_phase_across_the_wrap():
    """Tiles that disagree by a hair across the +-pi wrap (0.99 pi against -0.99 pi) must blend near pi, not 0,
    which is where a linear average of the values lands."""
    tile = 64

    def generate(tiles):  # phase +0.99 on even tiles, -0.99 on odd ones (the tile index rides on the input)
        out = np.zeros_like(tiles)
        for k, t in enumerate(tiles):
            index = int(round(t[0, 0, 0] * 100))
            out[k, ..., 0] = t[..., 0]
            out[k, ..., 1] = 0.99 if index % 2 == 0 else -0.99
        return out

    nb_frames = 400
    x = np.zeros((8, nb_frames, 2), np.float32)
    predictor = Predictor(_config("angle", "unet"), codec_meta(_config("angle", "unet")), generate, tile)
    starts = list(range(0, nb_frames - tile, tile - 16)) + [nb_frames - tile]
    for i, s in enumerate(starts):  # stamp each tile's index on its first frame
        x[0, s, 0] = i / 100
    blended = predictor.spectrogram(x)
    assert np.abs(blended[..., 1]).min() > 0.98, np.abs(blended[..., 1]).min()


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


@pytest.mark.slow
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


def test_magnitude_only_run_takes_the_vocals_phase(excerpt):
    """phase_repr none: the network sees one channel and the song's phase is the vocals'."""
    vocals = excerpt["vocals"][: 2 * SR]
    pixels, meta = _encode(vocals)
    seen = []

    def generate(tiles):
        seen.append(tiles.shape[-1])
        return tiles

    predictor = Predictor(_config("none"), codec_meta(_config("none")), generate, 128)
    pred = predict_song(vocals, pixels, meta, predictor)
    assert set(seen) == {1}
    Z_song, Z_voc = (audio.stft(y, 1024, 256, 1024) for y in (pred.song, vocals))
    loud = np.abs(Z_voc) > 0.1 * np.abs(Z_voc).max()
    error = np.angle(Z_song[loud] * np.conj(Z_voc[loud]))
    assert np.median(np.abs(error)) < 0.05


def test_old_runs_load_as_the_published_generator():
    """A version-1 run that recorded no generator or phase was the published U-Net on the stored phase."""
    from vocals2song.runfolder import upgrade

    config = {**_config("angle"), "version": 1, "model": {"preset": "tiny"}}
    predictor = Predictor(upgrade(config), codec_meta(config), lambda t: t, 64)
    assert predictor.phase_repr == "angle" and not predictor.adds_to_vocals and predictor.gate_radius == 0


# --- the song around the vocals ------------------------------------------------------------------------------

def test_song_adds_what_the_network_adds_to_the_vocals_as_they_are(monkeypatch):
    """The song of a magnitude-only powersum-mean model is the vocals' own STFT plus the power the network added,
    with the training mean in the rows under the image floor (as mean_accompaniment adds them) where the head
    started at the mean, and nothing in silent frames, where the head sits at its start. (Fails if the floor's
    power is left in, or the sub-floor rows or the start's trickle are dropped or kept where they should not be.)"""
    import vocals2song.predict as predict_mod

    config = _config("none", "powersum-mean")
    meta = codec_meta(config)
    top, span, nb_bins, nb_frames = meta.top_db, meta.range_db, 513, 40
    k, floor = span * np.log(10.0) / 10.0, gates.floor_power(top, span)
    rng = np.random.default_rng(3)
    Z_voc = rng.normal(size=(nb_bins, nb_frames)) * 1e-3 + 0j
    Z_voc[40, :30] = 400.0  # a loud partial in the first 30 frames: those sound, the last 10 do not
    u_in = codec.spectrogram_to_planes(Z_voc, top, span)[0].astype(np.float64)
    mean_power = floor * np.geomspace(1e-3, 1e3, nb_bins)  # 30 dB under the floor to 30 dB over it
    config["model"]["prior"] = baselines.prior_rows(baselines.TrainingStats(mean_power, 1), top, span)
    u_acc = np.where(np.arange(nb_frames) < 30, np.log1p(mean_power / floor)[:, None] / k, 0.001)
    u_out = np.log1p(np.expm1(k * u_in) + np.expm1(k * u_acc)) / k  # what PowerSum makes of them
    seen, vocals_dominate = {}, baselines.vocals_dominate

    def spy(Z_vocals, power):  # where the song's power is split into the vocals' bins and the added ones
        seen["power"] = power
        return vocals_dominate(Z_vocals, power)

    monkeypatch.setattr(predict_mod, "_vocals_stft", lambda vocals, meta, n: Z_voc)
    monkeypatch.setattr(baselines, "vocals_dominate", spy)
    predictor = Predictor(config, meta, lambda t: t, 128)
    predict_mod._song_around_vocals(np.zeros(256 * (nb_frames - 1), np.float32), meta, predictor,
                                    u_out.astype(np.float32), u_in.astype(np.float32))
    added = seen["power"] - np.abs(Z_voc) ** 2
    rows = np.arange(nb_bins - 1) != 40  # under the loud partial the addition is lost in float rounding
    np.testing.assert_allclose(added[:-1, :30][rows], np.repeat(mean_power[:-1, None], 30, axis=1)[rows], rtol=0.02)
    np.testing.assert_array_equal(added[:, 30:], 0.0)


def test_predict_applies_the_runs_loudness_gain(excerpt):
    """A run's fitted gain reaches its songs: the accompaniment power is scaled by it, the vocals' is not."""
    from vocals2song import loudness

    vocals = excerpt["vocals"][: 3 * SR]
    pixels, meta = _encode(vocals)
    config = _config("none", "powersum-mean")
    # a stand-in generator that adds accompaniment at u = 0.5 wherever the vocals are quieter
    predictor = Predictor(config, codec_meta(config), lambda t: np.maximum(t, 0.0), 128)
    plain = predict_song(vocals, pixels, meta, predictor)
    gain = np.full(meta.nb_bins, 6.0)
    predictor.config["loudness"] = {"alpha_db": 6.0, "gain_db": gain.tolist()}
    lifted = predict_song(vocals, pixels, meta, predictor)
    added = [loudness.accompaniment_power(p.u_out, p.u_in, meta.top_db, meta.range_db).sum() for p in (plain, lifted)]
    assert 10 * np.log10(added[1] / added[0]) == pytest.approx(6.0, abs=0.3)
    assert metrics.loudness_db(plain.song, lifted.song) > 0.5


def test_predict_applies_the_runs_envelope(excerpt):
    """A run's fitted envelope reaches its songs: each frame's accompaniment power is scaled by its offset, here
    +6 dB where the vocals are over their mean level and -6 dB where under; the vocals are not."""
    from vocals2song import envelope, loudness

    vocals = excerpt["vocals"][: 3 * SR]
    pixels, meta = _encode(vocals)
    config = _config("none", "powersum-mean")
    predictor = Predictor(config, codec_meta(config), lambda t: np.maximum(t, 0.0), 128)
    plain = predict_song(vocals, pixels, meta, predictor)
    weights = np.zeros(4 * envelope.LAGS + 3)
    weights[2 * envelope.LAGS] = 1000.0  # the level of the frame itself, saturating at +-LIMIT_DB: a step
    predictor.config["envelope"] = {"lags": envelope.LAGS, "weights": weights.tolist()}
    stepped = predict_song(vocals, pixels, meta, predictor)
    offsets = predictor.envelope_db(plain.u_in)
    added = [loudness.accompaniment_power(p.u_out, p.u_in, meta.top_db, meta.range_db).sum(axis=0)
             for p in (plain, stepped)]
    for side in (offsets > 0, offsets < 0):
        side &= added[0] > 0
        assert side.sum() > 20
        ratio = 10 * np.log10(added[1][side].sum() / added[0][side].sum())
        assert ratio == pytest.approx(np.sign(offsets[side][0]) * envelope.LIMIT_DB, abs=1.0)
    np.testing.assert_allclose(stepped.vocals, plain.vocals)


@pytest.mark.slow
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
    assert report["nb_items"] == 2 and set(report["baselines"]) == {"vocals_only", "mean_accompaniment", "parallel"}


# --- inputs --------------------------------------------------------------------------------------------------

@pytest.mark.slow
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


@pytest.mark.slow
def test_predict_checks_inputs_before_loading_the_model(trained_run, tmp_path, run_cli):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "generator.keras").write_bytes(b"not a model")  # loading it would fail: it must not be reached
    result = run_cli("predict", run, tmp_path / "missing.wav", tmp_path / "gone.flac", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'missing.wav'}: no such file (and 1 more missing inputs)\n"


@pytest.mark.slow
def test_predict_warns_about_an_image_of_another_stem(trained_run, train_data, tmp_path, run_cli):
    image = train_data / "test" / "mixture" / "B - Two__000.png"
    result = run_cli("predict", trained_run, image, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"Warning: {image}: the image's metadata names the stem 'mixture', not vocals" in result.stderr
    vocals = run_cli("predict", trained_run, train_data / "test" / "vocals" / "B - Two__000.png", "--out",
                     tmp_path / "out2")
    assert vocals.exit_code == 0 and "Warning" not in vocals.stderr


@pytest.mark.slow
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


@pytest.mark.slow
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
