"""Calibration: what training fits on the saved generator when it ends, and how a song applies it.

For additive (powersum) generators making mixtures, `calibrate` fits on training pairs the accompaniment's envelope
(`vocals2song.envelope`: its level frame by frame from the vocals around each frame; powersum-mean generators) and
the loudness gain (`vocals2song.loudness`: a gain per bin so the songs come out as loud as the true ones). `train`
calls it at the end (`calibrate_run`), `scripts/recalibrate.py` refits a run with other choices, and predict applies
what config.json holds (`envelope_db`, `loudness_gain`).

The predictor it fits is any object with predict's `Predictor` interface (``meta``, ``config``, ``phase_repr``,
``gate_radius``, ``planes``): this module does not import predict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from vocals2song import codec, envelope, loudness, runfolder, transforms
from vocals2song.baselines import read_image_meta, spread
from vocals2song.codec import ImageMeta
from vocals2song.gate import mean_power
from vocals2song.metrics import plane_lsd


class Predicting(Protocol):
    """What calibration needs of a predictor (predict's `Predictor` is one)."""

    config: dict
    meta: ImageMeta
    phase_repr: str
    gate_radius: int

    def planes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


#: config.json's entries that `calibrate` writes
ENTRIES = ("envelope", "envelope_check", "loudness")


def envelope_db(config: dict, u_vocals: np.ndarray, meta: ImageMeta) -> np.ndarray | None:
    """The accompaniment's gain in dB per frame that training fitted from the vocals plane ``u_vocals``
    ``(nb_bins, nb_frames)``; None for runs without one."""
    fitted = config.get("envelope")
    if not fitted:
        return None
    return envelope.offsets_db(fitted, u_vocals, meta.range_db, meta.sr, meta.n_fft)


def loudness_gain(config: dict) -> list[float] | None:
    """The accompaniment gain per bin in dB that training fitted; None for runs without one."""
    return config.get("loudness", {}).get("gain_db")


def calibrate_run(run: Path, config: dict, predictor: Predicting, pairs, fit_envelope: bool, fit_loudness: bool,
                  log=print) -> dict:
    """Fit the calibration of RUN's ``predictor`` on ``pairs`` (`data.PairSet`: its training pairs, and its
    validation pairs to check the envelope) into ``config`` and RUN/config.json, and say what was fitted. Additive
    generators on mixtures only (`can_calibrate`); a finished run trained again is calibrated afresh."""
    for key in ENTRIES:
        config.pop(key, None)
    config.update(calibrate(predictor, pairs.train, fit_envelope, fit_loudness, check=pairs.valid))
    runfolder.write_config(run, config)
    if "envelope" in config:
        log(f"{run}: {envelope.describe(config['envelope'])}")
    if "envelope_check" in config:
        log(f"{run}: {envelope.describe_check(config['envelope_check'])}")
    if "loudness" in config:
        log(f"{run}: {loudness.describe(config['loudness']['alpha_db'], config['loudness']['gain_db'], pairs.meta.sr)}")
    return config


def can_calibrate(config: dict) -> bool:
    """Whether a run's songs take a calibration: an additive generator making mixtures."""
    return config["model"]["generator"].startswith("powersum") and config["target"] == "mixture"



def calibrate(predictor: Predicting, pairs: list, fit_envelope: bool = True, fit_loudness: bool = True,
              limit: int = 48, quietest_db: float = loudness.QUIETEST_DB, check: list | None = None) -> dict:
    """Fit what training ends with, on up to ``limit`` training pairs spread over ``pairs`` (`data.Pair`): the
    accompaniment's envelope (`vocals2song.envelope`; powersum-mean generators), fitted against the training mean
    the generator starts at, then the loudness gain (`vocals2song.loudness.fit_gain`) of the predictor's songs with
    that envelope, aiming at ``quietest_db``. Returns config.json's "envelope" and "loudness" entries, those asked
    for.

    The envelope is the mean accompaniment's, not the generator's: fitted against a trained generator's output it
    also undid the generator's level errors, and on the 134 valid items of a 172-chorale corpus that made the songs
    0.5 dB too loud and their mrstft 1.405 against 1.251 (docs/quality-log.md). So it suits a generator that is
    still near that mean, and can undo one that learned the accompaniment's dynamics: with ``check`` (validation
    pairs), the envelope is kept only if the songs of up to ``limit`` of them, each way with its own gain, are
    nearer the truth with it (`songs_lsd`); the "envelope_check" entry says what was measured."""
    chosen = spread(pairs, limit)
    meta = predictor.meta
    prior = predictor.config["model"]["prior"]
    fit_envelope = fit_envelope and prior is not None
    planes, fitting = [], []
    for pair in chosen:
        u_song, (u_vocals, v_vocals, vocals_meta), (u_true, v_true, target_meta) = _pair_planes(predictor, pair)
        planes.append((u_song, u_vocals, u_true))
        if fit_envelope:  # the true accompaniment: the target mixture's STFT less the vocals'
            Z_vocals, Z_true = (codec.planes_to_spectrogram(u, v, m.top_db, m.range_db)
                                for u, v, m in ((u_vocals, v_vocals, vocals_meta), (u_true, v_true, target_meta)))
            fitting.append((u_vocals, np.abs(Z_true - Z_vocals) ** 2,
                            *mean_power(u_vocals, meta, prior, predictor.gate_radius)))
    fitted: dict = {}
    if fit_envelope:
        fit = {**envelope.fit(fitting, meta.range_db, meta.sr, meta.n_fft), "pairs": len(chosen)}
        enveloped = _enveloped(planes, fit, meta)
        if check:
            fitted["envelope_check"] = _check_envelope(predictor, spread(check, limit), planes, enveloped, fit,
                                                       fit_loudness, quietest_db)
        if fitted.get("envelope_check", {}).get("kept", True):
            fitted["envelope"] = fit
            planes = enveloped
    if fit_loudness:
        alpha, gain = loudness.fit_gain(planes, meta.top_db, meta.range_db, quietest_db)
        fitted["loudness"] = {"alpha_db": alpha, "pairs": len(chosen), "gain_db": gain}
    return fitted


def _pair_planes(predictor: Predicting, pair) -> tuple[np.ndarray, tuple, tuple]:
    """A pair's predicted song plane ``u``, and its vocals' and target's ``(u, v, meta)``."""
    meta = predictor.meta
    pixels, vocals_meta = read_image_meta(pair.input, meta)
    target, target_meta = read_image_meta(pair.target, meta)
    u_song = predictor.planes(transforms.pixels_to_net(pixels, meta.format, predictor.phase_repr))[0]
    return (u_song, (*codec.decode_planes(pixels, vocals_meta), vocals_meta),
            (*codec.decode_planes(target, target_meta), target_meta))


def _enveloped(planes: list[tuple], fit: dict, meta: ImageMeta) -> list[tuple]:
    """``(u_song, u_vocals, u_true)`` planes with the envelope ``fit`` applied to each song's accompaniment."""
    return [(loudness.apply_gain(u_song, u_vocals, [0.0] * u_song.shape[0], meta.top_db, meta.range_db,
                                 envelope.offsets_db(fit, u_vocals, meta.range_db, meta.sr, meta.n_fft)),
             u_vocals, u_true) for u_song, u_vocals, u_true in planes]


def songs_lsd(planes: list[tuple[np.ndarray, np.ndarray]], range_db: float) -> float:
    """The mean over ``(u_song, u_true)`` plane pairs of their log-spectral distance in dB: per frame the RMS over
    bins of the dB difference, floored at the image's floor, then the mean over frames (train's ``val_lsd``, on
    whole songs)."""
    return float(np.mean([plane_lsd(u, t, range_db, bins_axis=0) for u, t in planes]))


def _check_envelope(predictor: Predicting, check: list, planes: list[tuple], enveloped: list[tuple], fit: dict,
                    fit_loudness: bool, quietest_db: float) -> dict:
    """Whether the envelope ``fit`` brings the songs of the ``check`` pairs nearer their truth (`songs_lsd`), each
    way with the loudness gain fitted on the training planes made that way (``planes``, ``enveloped``)."""
    meta = predictor.meta
    songs = [(u_song, u_vocals, u_true) for u_song, (u_vocals, *_), (u_true, *_) in
             (_pair_planes(predictor, pair) for pair in check)]
    lsd = {}
    for way, train_planes, check_planes in (("with", enveloped, _enveloped(songs, fit, meta)),
                                            ("without", planes, songs)):
        gain = (loudness.fit_gain(train_planes, meta.top_db, meta.range_db, quietest_db)[1] if fit_loudness
                else [0.0] * songs[0][0].shape[0])
        lsd[way] = songs_lsd([(loudness.apply_gain(u_song, u_vocals, gain, meta.top_db, meta.range_db), u_true)
                              for u_song, u_vocals, u_true in check_planes], meta.range_db)
    return {"kept": lsd["with"] <= lsd["without"], "pairs": len(songs), "lsd_with_db": round(lsd["with"], 4),
            "lsd_without_db": round(lsd["without"], 4)}
