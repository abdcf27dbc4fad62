"""What is fitted when training ends: the accompaniment's loudness gain and its envelope, and the validation check
that keeps or leaves out the envelope."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SR
from helpers import _config

from vocals2song import baselines, codec, transforms
from vocals2song.predict import Predictor
from vocals2song.runfolder import codec_meta

# --- the loudness gain ---------------------------------------------------------------------------------------

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
    """`calibrate.calibrate` fits the envelope against the training mean a powersum-mean generator starts at, so two
    generators that add different accompaniments get the same envelope, and only their loudness gains differ.
    (Fitted against each generator's own output, the envelopes differ: each undoes its own generator's level.)"""
    from vocals2song.calibrate import calibrate
    from vocals2song.data import find_pairs

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
    """With validation pairs to check on, `calibrate.calibrate` leaves the envelope out for a generator that already
    makes the true songs (the envelope, fitted for the mean accompaniment, would only move their frames' levels),
    and keeps it where it costs nothing (a generator that adds nothing: the envelope scales nothing). On chorales
    with one band for every track, the trained generator alone beat the mean on all 38 test tracks, and the
    envelope made it lose on mrstft (docs/quality-log.md)."""
    from vocals2song.baselines import read_image_meta
    from vocals2song.calibrate import calibrate
    from vocals2song.data import find_pairs

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
    # without: only the power sum's clipping where the mixture is under the vocals (0.36 dB measured)
    assert check["lsd_without_db"] < min(0.5, check["lsd_with_db"])
    silent = calibrate(Known(vocals), pairs.train, check=pairs.valid)
    assert silent["envelope_check"]["kept"] and "envelope" in silent
    assert silent["envelope_check"]["lsd_with_db"] == silent["envelope_check"]["lsd_without_db"] > 1.0
    unchecked = calibrate(Known(truth), pairs.train)  # no check asked: kept, as before the check
    assert "envelope_check" not in unchecked and "envelope" in unchecked
