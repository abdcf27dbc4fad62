"""The quality work: the additive generator, phase representations, the phase-correct cross-fade, the gated
baseline, and the listener's metrics (loudness, bands, buzz, harmony). Each test names the defect it catches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SR
from vocals2song import audio, baselines, codec, loudness, metrics, transforms
from vocals2song.config import MODELS, CodecConfig
from vocals2song.predict import Predictor, predict_song
from vocals2song.train import codec_meta


def _config(phase_repr: str, generator: str = "powersum", fmt: str = "rgb8", tile: int = 128) -> dict:
    from vocals2song.config import RANGE_DB

    return {"codec": {"format": fmt, "sr": SR, "n_fft": 1024, "hop": 256, "win": 1024, "window": "hann",
                      "top_db": 20 * np.log10(512), "range_db": RANGE_DB[fmt], "split": None},
            "target": "mixture", "training": {"tile": tile},
            "model": {"generator": generator, "phase_repr": phase_repr}}


def _keras_predictor(phase_repr: str, generator: str = "powersum", tile: int = 128) -> Predictor:
    from vocals2song.model import build_generator

    config = _config(phase_repr, generator, tile=tile)
    net = build_generator(512, transforms.nb_net_channels("rgb8", phase_repr), MODELS["tiny"], generator, 100.0)
    return Predictor(config, codec_meta(config), lambda t: np.asarray(net(t, training=False)), tile)


def _encode(y: np.ndarray):
    return codec.encode_audio(y, CodecConfig())


# --- the additive generator --------------------------------------------------------------------------------

@pytest.mark.parametrize("phase_repr", ["none", "angle"])
def test_untrained_powersum_model_gives_the_vocals_back(excerpt, phase_repr):
    """An untrained model must never be worse than doing nothing: its song is the vocals. (Fails with a randomly
    initialised last layer, or a generator that replaces the vocals.) A magnitude-only model's song keeps the vocals
    as they are (103 dB SNR; re-synthesised from the 8-bit image they came back at about 40 dB); one that makes its
    phase gives them back at the codec's precision."""
    vocals = excerpt["vocals"][: 3 * SR]
    pixels, meta = _encode(vocals)
    pred = predict_song(vocals, pixels, meta, _keras_predictor(phase_repr))
    if phase_repr == "none":
        assert audio.snr_db(vocals, pred.song) >= 90.0
        # the picture is the same song: within a pixel step of the input's magnitude
        assert np.abs(pred.pixels[1:, :, 0].astype(int) - pixels[1:, :, 0]).max() <= 1
    else:
        np.testing.assert_array_equal(pred.pixels[1:, :, 0], pixels[1:, :, 0])  # the magnitude, pixel for pixel


def test_untrained_powersum_mean_model_is_the_mean_accompaniment_baseline(excerpt):
    """powersum-mean starts where the gated mean_accompaniment baseline is: the same magnitudes, within a pixel
    step, in every bin (fails if the prior is laid out upside down, ungated, or added as magnitude not power)."""
    from vocals2song.model import build_generator

    vocals = excerpt["vocals"][: 7 * SR // 2]  # to the singer's breath at 3.2 s, after a fade that flickers
    pixels, meta = _encode(vocals)
    rng = np.random.default_rng(0)
    mean_power = (np.linspace(3.0, 0.01, meta.nb_bins) * rng.uniform(0.5, 1.5, meta.nb_bins)) ** 2
    stats = baselines.TrainingStats(mean_power, 1)
    config = _config("none", "powersum-mean")
    radius = config["model"]["gate_radius"] = baselines.gate_radius(meta.sr, meta.hop)
    prior = baselines.prior_rows(stats, meta.top_db, meta.range_db)
    net = build_generator(512, 1, MODELS["tiny"], "powersum-mean", 100.0, prior, gate_radius=radius)
    predictor = Predictor(config, codec_meta(config), lambda t: np.asarray(net(t, training=False)), 128)
    u_model = predict_song(vocals, pixels, meta, predictor).u_out
    Z_voc = baselines.image_spectrogram(pixels, meta)
    u_base, _ = codec.spectrogram_to_planes(baselines.mean_accompaniment(Z_voc, stats, meta), meta.top_db,
                                            meta.range_db)
    sounding = baselines.sounding_frames(Z_voc, radius=radius)
    assert 0 < sounding.sum() < sounding.size  # both kinds of frame occur in the excerpt
    assert (sounding != baselines.sounding_frames(Z_voc)).any()  # and its fade-out flickers: the smoothing counts
    # The Nyquist row is always silent. Both lift random-phase bins by the same 6 dB, but a bin right at the
    # vocals-phase share can fall on either side of it in each: under 0.5% of bins may differ by that lift.
    close = np.abs(u_model[:-1] - u_base[:-1]) <= 2.5 / 255
    lift = 20 * np.log10(baselines.random_phase_gain(meta.n_fft, meta.hop, meta.win)) / meta.range_db
    assert close.mean() > 0.995
    np.testing.assert_allclose(u_model[:-1], u_base[:-1], atol=lift + 2.5 / 255)


def test_song_adds_what_the_network_adds_to_the_vocals_as_they_are(monkeypatch):
    """The song of a magnitude-only powersum-mean model is the vocals' own STFT plus the power the network added,
    with the training mean in the rows under the image floor (as mean_accompaniment adds them) where the head
    started at the mean, and nothing in silent frames, where the head sits at its start. (Fails if the floor's
    power is left in, or the sub-floor rows or the start's trickle are dropped or kept where they should not be.)"""
    import vocals2song.predict as predict_mod

    config = _config("none", "powersum-mean")
    meta = codec_meta(config)
    top, span, nb_bins, nb_frames = meta.top_db, meta.range_db, 513, 40
    k, floor = span * np.log(10.0) / 10.0, baselines.floor_power(top, span)
    rng = np.random.default_rng(3)
    Z_voc = rng.normal(size=(nb_bins, nb_frames)) * 1e-3 + 0j
    Z_voc[40, :30] = 400.0  # a loud partial in the first 30 frames: those sound, the last 10 do not
    u_in = codec.spectrogram_to_planes(Z_voc, top, span)[0].astype(np.float64)
    mean_power = floor * np.geomspace(1e-3, 1e3, nb_bins)  # 30 dB under the floor to 30 dB over it
    config["model"]["prior"] = baselines.prior_rows(baselines.TrainingStats(mean_power, 1), top, span)
    u_acc = np.where(np.arange(nb_frames) < 30, np.log1p(mean_power / floor)[:, None] / k, 0.001)
    u_out = np.log1p(np.expm1(k * u_in) + np.expm1(k * u_acc)) / k  # what PowerSum makes of them
    seen, song_phase = {}, baselines.song_phase

    def spy(Z_vocals, power, seed=0, gain=1.0):
        seen["power"] = power
        return song_phase(Z_vocals, power, seed, gain)

    monkeypatch.setattr(predict_mod, "_vocals_stft", lambda vocals, meta, n: Z_voc)
    monkeypatch.setattr(baselines, "song_phase", spy)
    predictor = Predictor(config, meta, lambda t: t, 128)
    predict_mod._song_around_vocals(np.zeros(256 * (nb_frames - 1), np.float32), meta, predictor,
                                    u_out.astype(np.float32), u_in.astype(np.float32))
    added = seen["power"] - np.abs(Z_voc) ** 2
    rows = np.arange(nb_bins - 1) != 40  # under the loud partial the addition is lost in float rounding
    np.testing.assert_allclose(added[:-1, :30][rows], np.repeat(mean_power[:-1, None], 30, axis=1)[rows], rtol=0.02)
    np.testing.assert_array_equal(added[:, 30:], 0.0)


def test_powersum_only_adds():
    """The song's magnitude is never below the vocals', and adding silence changes nothing."""
    from vocals2song.model import PowerSum

    rng = np.random.default_rng(0)
    voc = rng.uniform(-1, 1, (2, 16, 8, 1)).astype(np.float32)
    acc = rng.uniform(-1, 1, (2, 16, 8, 1)).astype(np.float32)
    layer = PowerSum(100.0)
    out = np.asarray(layer(voc, acc))
    assert (out >= voc - 1e-5).all() and (out >= acc - 1e-5).all()
    np.testing.assert_allclose(np.asarray(layer(voc, -np.ones_like(acc))), voc, atol=1e-5)
    # power adds: two equal magnitudes give +3 dB, i.e. 3 / range_db in u, twice that in net units
    mid = np.zeros_like(voc)
    np.testing.assert_allclose(np.asarray(layer(mid, mid)), 2 * 10 * np.log10(2) / 100.0, atol=1e-3)


def test_powersum_starts_silent_with_its_gradient_alive():
    """At the start the accompaniment sits at the floor, yet a louder target pulls on the last layer: the gradient
    of the L1 loss is as strong as the published generator's (a tanh squashed near the floor gives ~1/300 of it,
    and its accompaniment never grew: measured lsd 28.7 against 28.0 on the synthetic task)."""
    import tensorflow as tf

    from vocals2song.model import build_generator

    x = np.full((1, 64, 32, 1), -1.0, np.float32)
    x[:, 20] = 0.5
    y = x.copy()
    y[:, 36] = 0.4  # the accompaniment the target has and the vocals lack

    def head_gradient(output: str) -> float:
        net = build_generator(64, 1, MODELS["tiny"], output)
        kernel = net.get_layer("to_image").trainable_variables
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(y - net(x, training=True)))
        return float(tf.linalg.global_norm(tape.gradient(loss, kernel)))

    assert head_gradient("powersum") > 0.2 * head_gradient("unet")


def test_powersum_mean_starts_by_adding_the_mean_power_itself():
    """An untrained powersum-mean model adds the training mean's power, near and under the image floor too: the
    prior is the power above the floor that PowerSum adds. (Read as a plain level it added the mean less the
    floor, 3 dB short at 3 dB over the floor, and nothing under it; a test of that fails here.)"""
    from vocals2song.model import build_generator

    top, span, rows = 20 * np.log10(512), 100.0, 64
    floor = baselines.floor_power(top, span)
    mean_power = floor * np.geomspace(0.05, 1e4, rows + 1)  # from 13 dB under the floor to 40 dB over it
    prior = baselines.prior_rows(baselines.TrainingStats(mean_power, 1), top, span)
    net = build_generator(rows, 1, MODELS["tiny"], "powersum-mean", span, prior)
    x = np.full((1, rows, 32, 1), -1.0, np.float32)
    x[:, 0] = 0.9  # one loud bin: every frame sounds, every other bin of the vocals is silent
    u_out = (np.asarray(net(x, training=False), np.float64)[0, 1:, :, 0] + 1.0) / 2.0
    k = span * np.log(10.0) / 10.0
    added = floor * np.expm1(k * u_out)  # the vocals add nothing in these bins
    expected = mean_power[::-1][2:]  # rows: highest frequency first, no Nyquist bin; row 0 is the loud one
    np.testing.assert_allclose(added, np.repeat(expected[:, None], 32, axis=1), rtol=2e-3)


def test_powersum_mean_paints_nothing_where_the_mean_is_under_the_floor():
    """The image hides what lies under its floor, so a trained network that paints the rows whose training mean is
    there just above the floor looks no worse to its loss, yet the songs' lsd, which sees 34 dB lower, counts
    +30 dB in each such bin (the high band of the first generator trained to a lower val_lsd: 14.1 dB against 9.4).
    A new head keeps those rows at the mean whatever the network does; a head saved before (no such key in its
    config) paints them as it did."""
    import keras

    from vocals2song.model import build_generator, quiet_rows

    top, span, rows = 20 * np.log10(512), 100.0, 64
    floor = baselines.floor_power(top, span)
    mean_power = floor * np.geomspace(1e4, 1e-4, rows + 1)  # bins up: 40 dB over the floor to 40 dB under it
    prior = baselines.prior_rows(baselines.TrainingStats(mean_power, 1), top, span)
    quiet = quiet_rows(prior, span)
    assert 20 < quiet.sum() < 44 and quiet[: quiet.sum()].all()  # the high rows (row 0 is the highest)
    net = build_generator(rows, 1, MODELS["tiny"], "powersum-mean", span, prior)
    last = net.get_layer("to_image")
    last.set_weights([np.random.default_rng(0).normal(0, 0.05, w.shape) for w in last.get_weights()])  # it paints
    x = np.full((1, rows, 32, 1), -1.0, np.float32)
    x[:, -1] = 0.9  # one loud low bin: every frame sounds

    def song(model):
        return np.asarray(model(x, training=False))[0, :, :, 0]

    start = np.repeat(np.clip(np.asarray(prior, np.float32), -1, 1)[:, None], 32, axis=1)
    new = song(net)
    np.testing.assert_array_equal(new[quiet], start[quiet])
    assert np.abs(new[~quiet][:-1] - start[~quiet][:-1]).max() > 0.01  # it paints the loud rows

    config = net.get_config()
    head = next(layer for layer in config["layers"] if layer["config"].get("name") == "accompaniment_head")
    assert head["config"].pop("quiet_rows_keep_prior") is True
    old = keras.Model.from_config(config)  # as a run saved before the key loads
    old.set_weights(net.get_weights())
    assert np.abs(song(old)[quiet] - start[quiet]).max() > 0.01


# --- phase representations and the cross-fade ------------------------------------------------------------------

def test_instantaneous_frequency_round_trip():
    p = np.random.default_rng(0).uniform(-1, 1, (7, 300)).astype(np.float32)
    f = transforms.phase_to_if(p)
    assert f.min() >= -1 and f.max() <= 1
    back = transforms.if_to_phase(f)
    np.testing.assert_allclose(((back - p) + 1) % 2 - 1, 0, atol=1e-5)
    # a steady tone has a constant instantaneous frequency
    steady = ((np.arange(300) * 0.3 + 1) % 2 - 1)[None].astype(np.float32)
    np.testing.assert_allclose(transforms.phase_to_if(steady)[0, 1:], 0.3, atol=1e-5)


def test_pipeline_if_equals_numpy_if(train_data):
    """The tf.data stream computes the same instantaneous frequency as `transforms.pixels_to_net`."""
    from vocals2song.data import find_pairs, load_net_image, make_dataset

    pairs = find_pairs(train_data)
    pair = pairs.train[0]
    ds = make_dataset([pair], "rgb8", 512, 64, 1, seed=0, crops_per_image=1, shuffle_tiles=1, phase_repr="if")
    x, _ = next(iter(ds))
    full = load_net_image(pair.input, "rgb8", "if")
    tile = np.asarray(x[0])
    starts = [s for s in range(full.shape[1] - 63) if np.allclose(full[:, s: s + 64, 0], tile[..., 0])]
    assert starts, "the tile's magnitude is not a crop of the image"
    np.testing.assert_allclose(full[:, starts[0]: starts[0] + 64, 1], tile[..., 1], atol=1e-5)


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
    config = _config("angle")
    del config["model"]
    assert Predictor(config, codec_meta(config), lambda t: t, 64).phase_repr == "angle"


# --- the baselines -----------------------------------------------------------------------------------------

def test_gated_mean_accompaniment_adds_power_only_where_the_vocals_sound():
    rng = np.random.default_rng(0)
    Z = (rng.normal(size=(5, 10)) + 1j * rng.normal(size=(5, 10)))
    Z[:, 6:] = 0  # the vocals rest
    stats = baselines.TrainingStats(np.full(5, 4.0), 1)
    song = baselines.mean_accompaniment(Z, stats)
    keeps = np.abs(Z[:, :6]) ** 2 >= baselines.VOCALS_PHASE_SHARE * (np.abs(Z[:, :6]) ** 2 + 4.0)
    assert 0 < keeps.sum() < keeps.size  # both kinds of bin occur
    lift = np.where(keeps, 1.0, baselines.random_phase_gain(8, 2, 8) ** 2)  # random-phase bins: what the ISTFT loses
    np.testing.assert_allclose(np.abs(song[:, :6]) ** 2, (np.abs(Z[:, :6]) ** 2 + 4.0) * lift)
    np.testing.assert_array_equal(song[:, 6:], 0)
    np.testing.assert_allclose(np.angle(song[:, :6][keeps]), np.angle(Z[:, :6][keeps]))
    assert baselines.vocals_only(Z, stats) is Z


def test_the_gate_loses_its_short_runs_and_keeps_its_long_ones():
    """Real singing fading out toggled the gate every few frames, and the accompaniment stuttered on and off: runs of
    up to ``2 * radius`` frames go, longer ones stay (fails without the closing, or with a window two frames too
    wide)."""
    runs = [(1, 30), (0, 4), (1, 1), (0, 1), (1, 3), (0, 40), (1, 4), (0, 30), (1, 5), (0, 5), (1, 30)]
    gate = np.concatenate([np.full(n, bool(v)) for v, n in runs])
    smoothed = baselines.smooth_gate(gate, 2)  # runs of up to 4 frames go
    want = [(1, 39), (0, 74), (1, 5), (0, 5), (1, 30)]  # gaps of 4 and 1 close; the blip of 4 goes; runs of 5 stay
    np.testing.assert_array_equal(smoothed, np.concatenate([np.full(n, bool(v)) for v, n in want]))
    np.testing.assert_array_equal(baselines.smooth_gate(gate, 0), gate)
    assert baselines.gate_radius(44100, 256) == 8  # runs of up to 93 ms at the default geometry


def test_the_networks_gate_is_smoothed_as_the_baselines(excerpt):
    """The powersum-mean head smooths its gate in the graph (a max pool) exactly as `baselines.smooth_gate` does,
    edges included, so an untrained model stays the baseline (fails with the opening and the closing swapped, or
    without the opening)."""
    from vocals2song.model import _AccompanimentHead

    rng = np.random.default_rng(5)
    gate = rng.random((3, 300)) < np.linspace(0.1, 0.9, 3)[:, None]  # flickering, from mostly off to mostly on
    gate[:, :2], gate[1, -3:] = True, False  # runs at both edges
    vocals = np.where(gate[:, None, :, None], 1.0, -1.0).astype(np.float32)  # (batch, rows 1, frames, 1), net units
    head = _AccompanimentHead(-1.0, 100.0, prior=[0.5], gate_radius=3)
    out = np.asarray(head(np.zeros_like(vocals), vocals))[:, 0, :, 0]
    np.testing.assert_array_equal(out == 0.5, baselines.smooth_gate(gate, 3))
    assert (baselines.smooth_gate(gate, 3) != gate).any()


def test_song_phase_is_random_where_the_vocals_do_not_count():
    """Accompaniment laid on the vocals' leakage phase buzzes: those bins get a phase of their own."""
    Z = np.full((4, 50), 1e-4 + 0j) * np.exp(1j * np.arange(50) * 0.3)  # near-silent, coherent leakage
    Z[0] = 1.0
    phasor = baselines.song_phase(Z, np.full(Z.shape, 1.0))
    np.testing.assert_allclose(phasor[0], 1.0)  # the loud row keeps its phase
    step = np.angle(phasor[2, 1:] * np.conj(phasor[2, :-1]))
    assert np.std(step) > 1.0  # no longer a steady advance of 0.3 rad per frame


def test_training_stats_average_power_over_sounding_frames():
    Z_voc = np.zeros((3, 4), complex)
    Z_voc[:, :2] = 1.0
    Z_acc = np.zeros((3, 4), complex)
    Z_acc[:, 0], Z_acc[:, 1], Z_acc[:, 3] = 2.0, 8.0, 100.0  # frame 3 is silent for the vocals: not counted
    stats = baselines.training_stats([(Z_voc, Z_acc)])
    np.testing.assert_allclose(stats.mean_power, np.sqrt(4 * 64), rtol=1e-6)  # geometric: not (4 + 64) / 2


# --- loudness: the random-phase lift and the fitted accompaniment gain ----------------------------------------

def test_random_phase_bins_come_back_as_loud_as_asked():
    """Frames with unrelated phases add incoherently in the overlap-add: without the gain, bins with a random phase
    come out of the ISTFT 6 dB under their magnitude (fails with a gain of 1, or one for another hop)."""
    rng = np.random.default_rng(3)
    magnitude = rng.uniform(0.5, 2.0, (513, 1))
    for hop in (256, 128):
        gain = baselines.random_phase_gain(1024, hop, 1024)
        Z = magnitude * gain * np.exp(1j * rng.uniform(-np.pi, np.pi, (513, 300)))
        back = audio.stft(audio.istft(Z, hop, 1024), 1024, hop, 1024)[1:-1, 20:-20]
        level = 10 * np.log10(np.mean(np.abs(back) ** 2) / np.mean(magnitude[1:-1] ** 2))
        assert abs(level) < 0.2, (hop, level)


def test_mean_accompaniment_sounds_at_the_mean_level(excerpt):
    """The baseline's decoded song holds its accompaniment at the asked power: the STFT of the decoded waveform
    carries the vocals' power plus the mean's in sounding frames, within 0.5 dB (it was 6 dB under before the lift)."""
    vocals = excerpt["vocals"][: 3 * SR]
    pixels, meta = _encode(vocals)
    Z_voc = baselines.image_spectrogram(pixels, meta)
    stats = baselines.TrainingStats(np.full(meta.nb_bins, 400.0), 1)  # loud: most bins take a random phase
    song = codec.spectrogram_to_audio(baselines.mean_accompaniment(Z_voc, stats, meta), meta)
    sounding = baselines.sounding_frames(Z_voc)
    assert sounding.sum() > 20
    back = audio.stft(song, meta.n_fft, meta.hop, meta.win)[1:-1, : Z_voc.shape[1]][:, sounding]
    asked = np.abs(Z_voc[1:-1, sounding]) ** 2 + 400.0
    assert abs(10 * np.log10(np.mean(np.abs(back) ** 2) / np.mean(asked))) < 0.5


def _planes(rng, shape=(65, 40)):
    """(u_song predicted, u_vocals, u_song true) with a quiet predicted accompaniment, loudest in the low rows."""
    from vocals2song import loudness

    top, rng_db = 20 * np.log10(512), 100.0
    u_voc = rng.uniform(0.3, 0.6, shape)
    shape_db = np.linspace(30, 0, shape[0])[:, None]  # accompaniment level by row, low rows loudest
    u_acc = np.clip(u_voc + (shape_db - 20 + rng.normal(0, 3, shape)) / rng_db, 0, 1)
    p_voc, p_acc = (loudness.power(u, top, rng_db) for u in (u_voc, u_acc))
    to_u = lambda p: np.clip((10 * np.log10(p) - (top - rng_db)) / rng_db, 0, 1)  # noqa: E731
    return to_u(p_voc + p_acc), u_voc, to_u(p_voc + 8.0 * p_acc), top, rng_db  # the truth: 8x the accompaniment


def test_loudness_gain_lifts_the_songs_to_the_aimed_power():
    """fit_gain gives the predicted songs exactly QUIETEST_DB of the true power (the least lift into range), puts
    the gain where the accompaniment's power is, and leaves alone songs already in range or without accompaniment.
    (Fails with a flat gain, a gain on the vocals too, or a sign error.)"""
    from vocals2song import loudness

    u_song, u_voc, u_true, top, rng_db = _planes(np.random.default_rng(4))
    alpha, gain = loudness.fit_gain([(u_song, u_voc, u_true)], top, rng_db)
    lifted = loudness.apply_gain(u_song, u_voc, gain, top, rng_db)
    ratio = 10 * np.log10(loudness.power(lifted, top, rng_db).sum() / loudness.power(u_true, top, rng_db).sum())
    assert alpha > 0 and abs(ratio - loudness.QUIETEST_DB) < 0.05
    assert gain[0] > 3 * gain[-1] and max(gain) == pytest.approx(alpha)  # the loud low rows carry the gain
    assert loudness.fit_gain([(u_true, u_voc, u_true)], top, rng_db)[0] == 0.0  # already as loud as the truth
    assert loudness.fit_gain([(u_voc, u_voc, u_true)], top, rng_db)[0] == 0.0  # nothing added: nothing to lift
    too_loud = loudness.fit_gain([(u_true, u_voc, u_song)], top, rng_db)[0]
    assert too_loud < 0  # louder than the truth: brought down to it
    np.testing.assert_allclose(loudness.apply_gain(u_song, u_voc, np.zeros(len(gain)), top, rng_db), u_song, atol=1e-5)


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


# --- the accompaniment's envelope ----------------------------------------------------------------------------

def _vocals_plane(rng, track_db: float, nb_frames: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A vocals plane whose level (dB over the envelope's rows) moves frame by frame around ``track_db``, and that
    movement (the level relative to the track's mean)."""
    from scipy.ndimage import uniform_filter1d

    moves = uniform_filter1d(rng.normal(0.0, 8.0, nb_frames), 5)
    profile = np.linspace(0.75, 0.45, 513)[:, None]
    u = profile + (track_db + moves)[None, :] / 100.0
    level = 100.0 * u[1:200].mean(axis=0)
    return u, level - level.mean()


def test_envelope_learns_how_the_accompaniment_follows_the_vocals():
    """Where the accompaniment's level follows the vocals' level frame by frame (here 0.8 dB per dB, 2 dB over the
    added mean), the fitted envelope predicts it on a new song, whatever the songs' overall levels: it reads the
    vocals' level relative to their own mean, as a track's vocals level says nothing of its accompaniment's. (Fails
    with absolute levels, 10 dB off on the louder song, or with a sign error in the fitted target.)"""
    from vocals2song import envelope

    rng = np.random.default_rng(5)
    mean_power = np.full((513, 1), 1e-3)
    items = []
    for track_db in (-10.0, 0.0, 5.0):
        u, relative = _vocals_plane(rng, track_db)
        true_power = mean_power * 10 ** ((0.8 * relative + 2.0) / 10)[None, :]
        items.append((u, true_power, np.broadcast_to(mean_power, u.shape), np.ones(u.shape[1], bool)))
    fitted = envelope.fit(items, 100.0, SR, 1024)
    assert fitted["rms_db"][1] < 0.05 * fitted["rms_db"][0] and fitted["frames"] == 1200
    u, relative = _vocals_plane(rng, -5.0)
    np.testing.assert_allclose(envelope.offsets_db(fitted, u, 100.0, SR, 1024),
                               np.clip(0.8 * relative + 2.0, *fitted["span_db"]), atol=0.1)  # span: see below
    np.testing.assert_allclose(envelope.offsets_db(fitted, u + 0.1, 100.0, SR, 1024),
                               envelope.offsets_db(fitted, u, 100.0, SR, 1024), atol=1e-6)
    # vocals that move 3 times as much as any training song's: the offsets stay within those of the training frames
    wild = envelope.offsets_db(fitted, 0.6 + 3 * (u - 0.6), 100.0, SR, 1024)
    low, high = fitted["span_db"]
    assert wild.min() >= low and wild.max() <= high and high - low > 10.0
    assert np.mean((wild == low) | (wild == high)) > 0.1
    # where the accompaniment's level does not follow the vocals (3 dB of noise per frame), a fit on a training
    # set's worth of frames (16000) is about flat
    unrelated = []
    for track_db in range(-8, 8, 2):
        v, _ = _vocals_plane(rng, track_db, 2000)
        noise = 10 ** (rng.normal(0.0, 3.0, v.shape[1]) / 10)[None, :]
        unrelated.append((v, mean_power * noise, np.broadcast_to(mean_power, v.shape), np.ones(v.shape[1], bool)))
    flat = envelope.offsets_db(envelope.fit(unrelated, 100.0, SR, 1024), u, 100.0, SR, 1024)
    assert np.std(flat) < 0.5 and abs(np.mean(flat)) < 0.5


def test_the_envelope_is_the_mean_accompaniments_whatever_the_generator(train_data):
    """`predict.calibrate` fits the envelope against the training mean a powersum-mean generator starts at, so two
    generators that add different accompaniments get the same envelope, and only their loudness gains differ.
    (Fitted against each generator's own output, the envelopes differ: each undoes its own generator's level.)"""
    from vocals2song.data import find_pairs
    from vocals2song.predict import calibrate

    pairs = find_pairs(train_data, "vocals", None)
    config = _config("none", "powersum-mean", tile=256)
    stats = baselines.stats_from_images([(p.name, p.input, p.target) for p in pairs.train], "mixture")
    config["model"]["prior"] = baselines.prior_rows(stats, config["codec"]["top_db"], config["codec"]["range_db"])
    fits = []
    for lift in (0.0, 0.1):  # the second generator adds 10 dB more wherever it adds
        predictor = Predictor(config, codec_meta(config), lambda t, lift=lift: np.minimum(t + 2 * lift, 1.0), 256)
        fits.append(calibrate(predictor, pairs.train))
    assert fits[0]["envelope"]["weights"] == fits[1]["envelope"]["weights"]
    assert fits[0]["envelope"]["frames"] > 100
    assert fits[1]["loudness"]["alpha_db"] < fits[0]["loudness"]["alpha_db"]


def test_the_envelope_is_kept_only_where_it_brings_validation_songs_nearer(train_data):
    """With validation pairs to check on, `predict.calibrate` leaves the envelope out for a generator that already
    makes the true songs (the envelope, fitted for the mean accompaniment, would only move their frames' levels),
    and keeps it where it costs nothing (a generator that adds nothing: the envelope scales nothing). On chorales
    with one band for every track, the trained generator alone beat the mean on all 38 test tracks, and the
    envelope made it lose on mrstft (docs/quality-log.md)."""
    from vocals2song.baselines import read_image_meta
    from vocals2song.data import find_pairs
    from vocals2song.predict import calibrate

    pairs = find_pairs(train_data, "vocals", None)
    config = _config("none", "powersum-mean", tile=256)
    stats = baselines.stats_from_images([(p.name, p.input, p.target) for p in pairs.train], "mixture")
    config["model"]["prior"] = baselines.prior_rows(stats, config["codec"]["top_db"], config["codec"]["range_db"])
    meta = codec_meta(config)

    class Known(Predictor):
        """A predictor whose song for each pair's vocals is given."""

        def __init__(self, songs):
            super().__init__(config, meta, None, 256)
            self.songs = songs

        def planes(self, x):
            return self.songs[x.tobytes()], None

    truth, vocals = {}, {}
    for pair in pairs.train + pairs.valid:
        pixels, vocals_meta = read_image_meta(pair.input, meta)
        key = transforms.pixels_to_net(pixels, meta.format, "none").tobytes()
        truth[key] = codec.decode_planes(*read_image_meta(pair.target, meta))[0]
        vocals[key] = codec.decode_planes(pixels, vocals_meta)[0]
    oracle = calibrate(Known(truth), pairs.train, check=pairs.valid)
    check = oracle["envelope_check"]
    assert not check["kept"] and "envelope" not in oracle and check["pairs"] == len(pairs.valid)
    # without: only the power sum's clipping where the mixture is under the vocals (0.36 dB when written)
    assert check["lsd_without_db"] < min(0.5, check["lsd_with_db"])
    silent = calibrate(Known(vocals), pairs.train, check=pairs.valid)
    assert silent["envelope_check"]["kept"] and "envelope" in silent
    assert silent["envelope_check"]["lsd_with_db"] == silent["envelope_check"]["lsd_without_db"] > 1.0
    unchecked = calibrate(Known(truth), pairs.train)  # no check asked: kept, as before the check
    assert "envelope_check" not in unchecked and "envelope" in unchecked


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


# --- the listener's metrics ----------------------------------------------------------------------------------

def test_buzz_finds_frame_rate_pulses(excerpt):
    """A constant-phase decode pulses at the frame rate; the true mixture and a random phase do not."""
    mix = excerpt["mixture"].astype(np.float64)
    Z = audio.stft(mix, 1024, 256, 1024)
    constant = audio.istft(np.abs(Z) * np.exp(0.3j), 256, 1024, length=len(mix))
    assert metrics.buzz_db(mix, SR) < 3.0
    assert metrics.buzz_db(constant, SR) > 10.0


def test_harmony_scores_the_right_chords(excerpt):
    vocals, mix = excerpt["vocals"].astype(np.float64), excerpt["mixture"].astype(np.float64)
    assert metrics.harmony(vocals, mix, mix, SR) > 0.99  # the true song
    assert metrics.harmony(vocals, mix, vocals, SR) == 0.0  # adds nothing
    shifted = vocals + np.roll(mix - vocals, 3 * SR // 2)  # the right instruments at the wrong time
    assert metrics.harmony(vocals, mix, shifted, SR) < 0.6


def test_loudness_and_band_lsd():
    y = np.random.default_rng(0).normal(size=SR).astype(np.float64) * 0.1
    assert metrics.loudness_db(y, 2 * y) == pytest.approx(20 * np.log10(2))
    assert metrics.loudness_db(y, y) == 0.0
    everything = metrics.band_lsd(y, 0.5 * y, SR, (0.0, float("inf")))
    assert everything == pytest.approx(metrics.lsd(y, 0.5 * y), rel=1e-6)
    low = np.sin(2 * np.pi * 100 * np.arange(SR) / SR)
    values = metrics.music_metrics(low * 0, low, low + 0.1 * y, SR)
    assert values["lsd_high"] > values["lsd_low"]  # the noise sits where the tone is not


# --- learning on real music ------------------------------------------------------------------------------------

CHORALE_SR = 16000  # rendering and images at 16 kHz: a third of the samples, the same 513-row images


@pytest.fixture(scope="session")
def chorale_run(tmp_path_factory):
    """10 rendered chorales (test tunes unseen), encoded at 16 kHz, and the tiny powersum-mean model after 400
    steps on them; returns (dataset, run)."""
    from vocals2song.chorales import render_chorales
    from vocals2song.config import ChoralesConfig, DatasetConfig, TrainConfig
    from vocals2song.sound2image import sound2image
    from vocals2song.train import train

    root = tmp_path_factory.mktemp("chorale_learning")
    render_chorales(root / "chorales", ChoralesConfig(limit=10, sr=CHORALE_SR, workers=2))
    sound2image(root / "chorales", root / "ds", CodecConfig(sr=CHORALE_SR), DatasetConfig(workers=2))
    cfg = TrainConfig(model="tiny", steps=400, generator="powersum-mean", phase_repr="none", log_every=100,
                      sample_every=1000, checkpoint_every=1000)
    train(root / "ds", root / "run", cfg, progress=False, log=lambda *a: None)
    return root / "ds", root / "run"


def test_a_model_trained_on_chorales_beats_the_vocals_alone_on_unseen_tunes(chorale_run, tmp_path):
    """The recipe on real music: the song is closer to the true mixture than the vocals alone, on lsd and mrstft,
    on tunes the model never heard, louder where it should be, without buzz; and training did not make it worse
    than where it started (the mean accompaniment), which a drifting GAN did before the prior was a log mean.

    What this does not show: learning beyond the mean. At this size (tiny, 400 steps, 8 training tunes) the model
    stays level with its start (measured with the GAN recipe of the third session: lsd 12.88 against 12.79 for
    mean_accompaniment, 15.73 for the vocals; the regression recipe at this size was not measured apart)."""
    from vocals2song.evaluate import evaluate

    ds, run = chorale_run
    report = evaluate(run, ds, tmp_path / "eval")
    model, vocals = report["model"], report["baselines"]["vocals_only"]
    print({k: (round(model[k], 3), round(vocals[k], 3), round(report["baselines"]["mean_accompaniment"][k], 3))
           for k in ("lsd", "mrstft", "loudness_db", "harmony", "buzz_db")})
    assert model["lsd"] < vocals["lsd"] - 1.0
    assert model["mrstft"] < vocals["mrstft"]
    assert abs(model["loudness_db"]) < abs(vocals["loudness_db"])
    assert model["buzz_db"] < 6.0
    assert model["lsd"] < report["baselines"]["mean_accompaniment"]["lsd"] + 0.5


def test_bench_quality_prints_its_table(chorale_run, tmp_path):
    """scripts/bench_quality.py end to end at toy size on the rendered chorales: it trains the variant, evaluates it,
    and prints a row per variant (with the items it beats the mean on) and one per baseline."""
    import subprocess
    import sys
    from pathlib import Path

    ds, _ = chorale_run
    work = tmp_path / "work"
    work.mkdir()
    (work / "dataset").symlink_to(ds)  # the bench reuses an encoded dataset
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_quality.py"
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


def test_oracle_chorales_rerenders_the_notes_in_line_with_the_dataset(chorale_run):
    """scripts/oracle_chorales.py on the rendered chorales' test split: the notes re-rendered on the track's own
    band must land where the dataset's accompaniment is (the same samples, the same level, through the same codec),
    so that its other rows (the notes on other bands) measure the band, not a misplaced render."""
    import subprocess
    import sys
    from pathlib import Path

    ds, _ = chorale_run
    script = Path(__file__).resolve().parent.parent / "scripts" / "oracle_chorales.py"
    result = subprocess.run([sys.executable, str(script), str(ds), "--bands", "2", "--tracks", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line[:24].strip(): line[24:].split() for line in result.stdout.splitlines()[2:]}
    print(result.stdout)
    assert {"mean_accompaniment", "notes known", "notes on one band", "notes on its own band",
            "true accompaniment"} <= rows.keys()
    lsd, loud = {k: float(v[1]) for k, v in rows.items()}, {k: float(v[3]) for k, v in rows.items()}
    assert lsd["true accompaniment"] < lsd["mean_accompaniment"]
    # 0.02 dB apart when written; 0.39 when the renders skipped the codec (their detail under the image's floor,
    # which the truth has not, counted against them: 4 dB at 44.1 kHz)
    assert lsd["notes on its own band"] < lsd["true accompaniment"] + 0.2
    assert abs(loud["notes on its own band"] - loud["true accompaniment"]) < 0.3


def test_oracle_chorales_refuses_tracks_it_cannot_rerender(train_data):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "oracle_chorales.py"
    result = subprocess.run([sys.executable, str(script), str(train_data), "--split", "valid"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "are not `chorales` tracks" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
