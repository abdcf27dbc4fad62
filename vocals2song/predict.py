"""`vocals2song predict RUN INPUT... --out DIR`: a whole song from vocals of any length.

Each input (audio of any length, rate and channel count, or an encoded vocals image) is encoded with the run's
codec, and the generator runs over the whole spectrogram in tiles of the training width that overlap and are
cross-faded, so there are no seams, no resize, and the network's memory is bounded by the tile, not the song.
The output phase comes from the predicted G channel (``model``), the input vocals (``vocals``), or Griffin-Lim
on the predicted magnitude (``griffinlim``). Accompaniment models get the input vocals added back.

Per input ``NAME``: ``NAME.mixture.wav`` (exactly the input's duration, at the run's sample rate), the predicted
image ``NAME.mixture.<ext>`` (decodable by image2sound), and ``NAME.spectrograms.png`` (input and prediction).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from vocals2song import audio, calibrate, codec, loudness, runfolder, transforms
from vocals2song.codec import ImageMeta
from vocals2song.config import CodecConfig
from vocals2song.errors import Failure, Vocals2SongError, run_each
from vocals2song.gate import floor_power, mean_power, power_scale
from vocals2song.imagefile import EXTENSIONS, IMAGE_SUFFIXES, read_image, write_image
from vocals2song.transforms import crop_or_pad

#: where the song's phase comes from: the model's (its G channel; for a magnitude-only additive model, Griffin-Lim on
#: the accompaniment it adds), the input vocals' (a random one where the vocals have none to give), or Griffin-Lim on
#: the predicted song's whole magnitude
PHASES = ("model", "vocals", "griffinlim")
GRIFFINLIM_ITERS = 32
#: tiles overlap by this share of the tile and are cross-faded over the overlap
OVERLAP = 0.25
TILE_BATCH = 4
#: magnitudes at or under half an 8-bit step are silence: the random-phase lift leaves them (a powersum head starts
#: its accompaniment at u = 0.001, just under it, where it adds nothing)
SILENT_U = 0.5 / 255


def check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise Vocals2SongError(f"unknown phase source {phase!r}; use one of {', '.join(PHASES)}", usage=True)


# --- tiling ------------------------------------------------------------------------------------------

def tile_starts(nb_frames: int, tile: int, overlap: int) -> list[int]:
    """Start frames of tiles of ``tile`` frames covering ``nb_frames``, consecutive tiles sharing ``overlap``."""
    if nb_frames <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, nb_frames - tile, step))
    return starts + [nb_frames - tile]


def crossfade_window(tile: int, overlap: int) -> np.ndarray:
    """Tile weights ``(tile,)``: raised-cosine ramps over ``overlap`` frames at both ends, 1 between.

    Never exactly 0, so frames that only one tile covers (the song's edges) keep their value after normalising.
    """
    w = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 0.5) / overlap)
        w[:overlap] = ramp
        w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return np.maximum(w, 1e-3)


def apply_tiled(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tile: int, overlap: int | None = None,
                batch: int = TILE_BATCH) -> np.ndarray:
    """Run ``fn`` on ``(batch, rows, tile, C)`` tiles of ``x`` ``(rows, frames, C)`` and blend the outputs.

    Inputs shorter than a tile are padded with -1 (silence). Returns ``(rows, frames, C_out)``:
    ``sum_i w_i * fn(x_i) / sum_i w_i``, so an identity ``fn`` gives ``x`` back exactly.
    """
    rows, nb_frames, _ = x.shape
    overlap = int(round(OVERLAP * tile)) if overlap is None else overlap
    starts = tile_starts(nb_frames, tile, overlap)
    window = crossfade_window(tile, overlap)
    out = None
    weight = np.zeros(max(nb_frames, tile), dtype=np.float32)
    for i in range(0, len(starts), batch):
        chunk = starts[i: i + batch]
        y = np.asarray(fn(np.stack([crop_or_pad(x, s, tile) for s in chunk])), dtype=np.float32)
        if out is None:
            out = np.zeros((rows, max(nb_frames, tile), y.shape[3]), dtype=np.float32)
        for k, s in enumerate(chunk):
            out[:, s: s + tile] += y[k] * window[None, :, None]
            weight[s: s + tile] += window
    out /= weight[None, :, None]
    return out[:, :nb_frames]


# --- the model -------------------------------------------------------------------------------------

@dataclass
class Predictor:
    """A trained run, ready to turn vocals into a song."""

    config: dict
    meta: ImageMeta  # the run's codec (length 0)
    generate: Callable[[np.ndarray], np.ndarray]  # (batch, rows, tile, C) -> same
    tile: int

    @property
    def codec_config(self) -> CodecConfig:
        m = self.meta  # container None: the format's default one
        return CodecConfig(format=m.format, sr=m.sr, n_fft=m.n_fft, hop=m.hop, win=m.win,
                           window=m.window, range_db=m.range_db)

    @property
    def phase_repr(self) -> str:
        return self.config["model"]["phase_repr"]

    def spectrogram(self, x: np.ndarray) -> np.ndarray:
        """Network input ``(rows, frames, C)`` -> predicted network output, tiled over the whole width.

        A phase channel (stored angle or instantaneous frequency, both ``angle / pi``) is blended as unit
        phasors: averaging the values themselves is wrong across the wrap at +-1 (a cross-fade of 0.99 and
        -0.99 would give 0, the opposite direction). rgba8 splits the phase in two channels and is blended as is.
        """
        if self.phase_repr == "none" or self.meta.format == "rgba8":
            return apply_tiled(self.generate, x, self.tile)

        def phasors(tiles: np.ndarray) -> np.ndarray:  # float64: float32 pi would turn +1 into -1 (same angle)
            y = np.asarray(self.generate(tiles), dtype=np.float64)
            angle = np.pi * y[..., 1]
            return np.stack([y[..., 0], np.cos(angle), np.sin(angle)], axis=-1)

        blended = apply_tiled(phasors, x, self.tile)
        phase = np.arctan2(blended[..., 2], blended[..., 1]) / np.pi
        return np.stack([blended[..., 0], phase], axis=-1).astype(np.float32)

    @property
    def gate_radius(self) -> int:
        """How the powersum-mean head smooths its gate (`gate.smooth_gate`; 0: the raw gate)."""
        return int(self.config["model"]["gate_radius"])

    @property
    def adds_to_vocals(self) -> bool:
        """Whether the network adds an accompaniment to the vocals it is given (a powersum generator making
        mixtures), so the song can keep the vocals as they are."""
        return calibrate.can_calibrate(self.config)

    def envelope_db(self, u_vocals: np.ndarray) -> np.ndarray | None:
        """The accompaniment's gain in dB per frame that training fitted (`calibrate.envelope_db`); None for runs
        without one."""
        return calibrate.envelope_db(self.config, u_vocals, self.meta)

    @property
    def loudness_gain(self) -> list[float] | None:
        """The accompaniment gain per bin that training fitted (`calibrate.loudness_gain`); None without one."""
        return calibrate.loudness_gain(self.config)

    def planes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Network input -> predicted planes ``u``, ``v`` (``v`` None for a magnitude-only network)."""
        return transforms.net_to_planes(self.spectrogram(x), self.meta.format, self.config["codec"].get("split"),
                                        self.phase_repr)


def load_predictor(run: str | os.PathLike) -> Predictor:
    """Load RUN's config.json and its generator (the generator in inference mode: no dropout, BN statistics)."""
    from vocals2song.runtime import float32_model, quiet_tensorflow

    config = runfolder.read_config(run)
    path = runfolder.generator_path(run, config)
    if not path.is_file():
        raise Vocals2SongError(f"the run has no {path.name} yet; train it until its first checkpoint", run,
                               usage=True)
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from vocals2song import model  # noqa: F401 - registers the generator's custom layers

    try:
        generator = float32_model(keras.saving.load_model(path, compile=False))  # a mixed-precision run, too
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign files raise many types
        raise Vocals2SongError(f"cannot load the generator ({type(exc).__name__}: {exc})", path) from exc
    step = tf.function(lambda t: generator(t, training=False), reduce_retracing=True)
    return Predictor(config, runfolder.codec_meta(config), lambda tiles: step(tf.constant(tiles)).numpy(),
                     int(config["training"]["tile"]))


# --- one input -------------------------------------------------------------------------------------

@dataclass
class Prediction:
    vocals: np.ndarray  # (nb_samples,) at meta.sr
    song: np.ndarray  # (nb_samples,) predicted mixture
    u_in: np.ndarray  # (nb_bins, nb_frames) input magnitude plane
    u_out: np.ndarray  # predicted magnitude plane
    pixels: np.ndarray  # the predicted image
    meta: ImageMeta  # the predicted image's metadata
    accompaniment: np.ndarray | None = None

    @property
    def added(self) -> np.ndarray:
        """What the model added to the vocals ``(nb_samples,)``: the accompaniment it made, or the song less the
        vocals."""
        if self.accompaniment is not None:
            return self.accompaniment
        n = min(len(self.song), len(self.vocals))
        return self.song[:n] - self.vocals[:n]


def vocals_input(path: Path, predictor: Predictor) -> tuple[np.ndarray, np.ndarray, ImageMeta]:
    """An audio file or encoded vocals image -> (vocals audio at the run's rate, pixels, their metadata)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        pixels, meta_json = read_image(path)
        if meta_json is None:
            raise Vocals2SongError("the image has no vocals2song metadata; predict from the audio instead", path)
        meta = ImageMeta.from_json(meta_json, path)
        run = predictor.meta
        if (meta.format, meta.sr, meta.n_fft, meta.hop, meta.range_db) != (run.format, run.sr, run.n_fft, run.hop,
                                                                           run.range_db):
            raise Vocals2SongError(f"the image is {meta.format} at {meta.sr} Hz, n_fft {meta.n_fft}, hop {meta.hop}, "
                                   f"range {meta.range_db} dB, but the model was trained on {run.format} at {run.sr} "
                                   f"Hz, n_fft {run.n_fft}, hop {run.hop}, range {run.range_db} dB; give the audio",
                                   path)
        return codec.decode_audio(pixels, meta, path=path), pixels, meta
    y, sr = audio.load_audio(path)
    y = audio.check_audio(audio.to_mono(y), path)
    if sr != predictor.meta.sr:
        y = audio.resample(y, sr, predictor.meta.sr)
    if len(y) == 0:
        raise Vocals2SongError("the audio is empty", path)
    pixels, meta = codec.encode_audio(y, predictor.codec_config, source={"track": path.stem, "stem": "vocals",
                                                                         "start": 0})
    return y, pixels, meta


def predict_song(vocals: np.ndarray, pixels: np.ndarray, meta: ImageMeta, predictor: Predictor,
                 phase: str = "model", add_vocals: bool | None = None, iters: int = GRIFFINLIM_ITERS) -> Prediction:
    """Vocals (audio and their encoded pixels) -> the predicted song."""
    from vocals2song.baselines import random_phase_gain, song_phase

    check_phase(phase)
    fmt = predictor.meta.format
    u, v = predictor.planes(transforms.pixels_to_net(pixels, fmt, predictor.phase_repr))
    u_in = codec.decode_planes(pixels, meta)[0]
    around = v is None and phase != "griffinlim" and predictor.adds_to_vocals
    frame_db = predictor.envelope_db(u_in)
    if predictor.loudness_gain or (frame_db is not None and not around):
        u = loudness.apply_gain(u, u_in, predictor.loudness_gain or [0.0] * u.shape[0], meta.top_db, meta.range_db,
                                None if around else frame_db)
    if around:  # the model's phase: Griffin-Lim on what it adds; the vocals': theirs, and random elsewhere
        return _song_around_vocals(vocals, meta, predictor, u, u_in, frame_db,
                                   "griffinlim" if phase == "model" else "random", iters)
    vocals_angle = None
    if phase == "vocals" or v is None:  # a magnitude-only model's own phase is the vocals' (where they count)
        Z_voc = _vocals_stft(vocals, meta, u.shape[1])
        power = codec.planes_to_magnitude(u, meta.top_db, meta.range_db).astype(np.float64) ** 2
        phasor = song_phase(Z_voc, power, gain=random_phase_gain(meta.n_fft, meta.hop, meta.win, meta.window))
        vocals_angle = np.angle(phasor).astype(np.float32)
        # where the phase is random, lift the magnitude by what the overlap-add of unrelated phases loses
        lift = (20.0 / meta.range_db) * np.log10(np.abs(phasor)).astype(np.float32)
        u = np.where(u > SILENT_U, np.clip(u + lift, 0.0, 1.0), u).astype(np.float32)
        if v is None:
            v = ((vocals_angle + np.pi) / (2 * np.pi)).astype(np.float32)
    # Quantise as the predicted image stores it, so image2sound on that image gives this very WAV.
    encode, decode = codec.CODECS[fmt][:2]
    out_pixels, split = encode(u, v, meta.range_db)
    u, v = decode(out_pixels, split)
    stem = "predicted " + predictor.config["target"]
    out_meta = dataclasses.replace(meta, source={**(meta.source or {}), "stem": stem}, split=split)
    angle = vocals_angle if phase == "vocals" else None
    generated = codec.planes_to_audio(u, v, out_meta, phase=angle,
                                      griffinlim_iters=iters if phase == "griffinlim" else 0)
    accompaniment = None
    if predictor.config["target"] == "accompaniment":
        accompaniment = generated
        add = True if add_vocals is None else add_vocals
        song = generated + vocals[: len(generated)] if add else generated
    else:
        song = generated
    return Prediction(vocals, song.astype(np.float32), u_in, u, out_pixels, out_meta, accompaniment)


def _vocals_stft(vocals: np.ndarray, meta: ImageMeta, nb_frames: int) -> np.ndarray:
    """The vocals' complex STFT on the codec's geometry, ``nb_frames`` wide."""
    padded = np.pad(vocals, (0, max(0, meta.hop * (nb_frames - 1) - len(vocals))))
    return audio.stft(padded, meta.n_fft, meta.hop, meta.win, meta.window)[:, :nb_frames]


def added_power(u: np.ndarray, u_in: np.ndarray, meta: ImageMeta, prior: list[float] | None,
                gate_radius: int = 0) -> np.ndarray:
    """What an additive model adds to the vocals ``(nb_bins, nb_frames)``: its output's power less its input's plane
    ``u_in`` (`model.PowerSum`'s inverse, the power above the floor), and for a powersum-mean model (``prior``:
    config.json's model "prior") at least the training mean where that lies under the image floor, in the frames
    its head starts at the mean (`mean_power`)."""
    floor, k = floor_power(meta.top_db, meta.range_db), power_scale(meta.range_db)
    above = np.maximum(np.expm1(k * u.astype(np.float64)) - np.expm1(k * u_in.astype(np.float64)), 0.0)
    silent = np.log1p(above) / k <= SILENT_U  # what a powersum head adds at its start, u = 0.001, is silence
    added = np.where(silent, 0.0, floor * above)
    if prior is not None:  # powersum-mean: under the image's floor, where the network cannot paint, the mean
        added = np.maximum(added, np.minimum(mean_power(u_in, meta, prior, gate_radius)[0], floor))
    return added


def _song_around_vocals(vocals: np.ndarray, meta: ImageMeta, predictor: Predictor, u: np.ndarray,
                        u_in: np.ndarray, frame_db: np.ndarray | None = None, song_phase: str = "griffinlim",
                        iters: int = GRIFFINLIM_ITERS) -> Prediction:
    """A magnitude-only additive model's song: the vocals as they are, plus the power the network adds to its
    input (its output's power less the input's), laid on the way `baselines.mean_accompaniment` lays its mean
    (`baselines.song_with`): the vocals' phase where they hold `VOCALS_PHASE_SHARE` of a bin's power, and elsewhere
    ``song_phase``: Griffin-Lim on the added accompaniment given the vocals, or a lifted random phase.

    A powersum-mean model's accompaniment is never under the training mean's where that lies under the image
    floor (100 dB under a full-scale sine), in the frames its head starts at the mean: the network cannot paint
    there (its output is clipped at the floor), and the mean is the baseline's estimate. Inaudible, but lsd weighs
    bins down to 134 dB under full scale: without it a trained model lost 0.25 dB of lsd above 4 kHz to the mean.

    The vocals do not go through the 8-bit image (re-synthesised from it they come back at about 40 dB SNR). The
    predicted image stores the same song at the codec's precision.
    """
    from vocals2song.baselines import song_with

    top, span = meta.top_db, meta.range_db
    Z_voc = _vocals_stft(vocals, meta, u.shape[1])
    added = added_power(u, u_in, meta, predictor.config["model"]["prior"], predictor.gate_radius)
    if frame_db is not None:  # the fitted envelope (vocals2song.envelope), the same in every bin of a frame
        added *= np.power(10.0, frame_db / 10.0)[None, :]
    Z = song_with(Z_voc, added, meta, song_phase, iters, power=np.abs(Z_voc) ** 2 + added)
    encode, decode = codec.CODECS[predictor.meta.format][:2]
    out_pixels, split = encode(*codec.spectrogram_to_planes(Z.astype(np.complex64), top, span), span)
    out_meta = dataclasses.replace(meta, source={**(meta.source or {}), "stem": "predicted mixture"}, split=split)
    song = codec.spectrogram_to_audio(Z, out_meta)
    return Prediction(vocals, song, u_in, decode(out_pixels, split)[0], out_pixels, out_meta)


def write_prediction(pred: Prediction, out: Path, name: str, predictor: Predictor, midi: bool = False) -> list[Path]:
    """NAME.mixture.wav, NAME.mixture.<ext> (the predicted image), NAME.spectrograms.png (and
    NAME.accompaniment.wav for accompaniment runs); with ``midi``, NAME.accompaniment.mid, the notes of what the
    model added (`vocals2song.notes`), to take into a DAW. Returns the paths written."""
    from vocals2song import plots

    sr, hop = pred.meta.sr, pred.meta.hop
    wav = out / f"{name}.mixture.wav"
    audio.write_wav(wav, pred.song, sr)
    written = [wav]
    if pred.accompaniment is not None:
        audio.write_wav(out / f"{name}.accompaniment.wav", pred.accompaniment, sr)
        written.append(out / f"{name}.accompaniment.wav")
    image = out / f"{name}.mixture{EXTENSIONS[predictor.codec_config.container_name]}"
    write_image(image, pred.pixels, pred.meta.to_json())
    picture = out / f"{name}.spectrograms.png"
    plots.save_spectrograms(picture, [("input vocals", pred.u_in), (f"predicted {predictor.config['target']}",
                                                                     pred.u_out)], sr, hop,
                            title=f"{name}: vocals -> song")
    written += [image, picture]
    if midi:
        from vocals2song import notes

        notes.write_midi(notes.transcribe(pred.added, sr), out / f"{name}.accompaniment.mid")
        written.append(out / f"{name}.accompaniment.mid")
    return written


# --- the batch -------------------------------------------------------------------------------------

def _names(inputs: list[Path]) -> dict[Path, str]:
    """Output names: the file stem; inputs that share one are told apart by their folder, then their extension
    (``vocals.wav`` and ``vocals.flac`` give ``vocals_wav`` and ``vocals_flac``), then by a number. Never two alike."""
    levels = (lambda p: p.stem, lambda p: f"{p.parent.name}_{p.stem}", lambda p: f"{p.stem}_{p.suffix[1:]}",
              lambda p: f"{p.parent.name}_{p.stem}_{p.suffix[1:]}")
    counts = [Counter(level(p) for p in inputs) for level in levels]
    names = {}
    for p in inputs:
        names[p] = next((level(p) for level, count in zip(levels, counts) if count[level(p)] == 1), p.stem)
    wanted, used = set(names.values()), set()
    for p in inputs:  # a name from one level may still equal another input's name from another level
        name, k = names[p], 2
        while name in used or (name != names[p] and name in wanted):
            name, k = f"{names[p]}_{k}", k + 1
        names[p] = name
        used.add(name)
    return names


def find_inputs(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files as given; folders give their audio and image files (not recursively). A file given twice counts once."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in audio.AUDIO_EXTENSIONS + IMAGE_SUFFIXES)
        else:
            found.append(item)
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def predict(run: str | os.PathLike, inputs: list[str | os.PathLike], out: str | os.PathLike, phase: str = "model",
            add_vocals: bool | None = None, progress: Callable | None = None,
            predictor: Predictor | None = None, page: bool = True,
            warn: Callable[[str], None] | None = None, midi: bool = True) -> tuple[list[Path], list[Failure]]:
    """Predict a song for each input; returns (files written, failures). Bad inputs do not stop the batch.

    Missing inputs are found before the model loads. ``midi``: also write each song's added accompaniment as notes
    (``NAME.accompaniment.mid``); a missing transcriber is a one-line error before anything runs. ``page``: also
    write ``out/index.html`` to listen to the results (`listen`). ``warn`` gets one line per input that looks wrong
    but is used anyway (an image of a stem other than vocals).
    """
    check_phase(phase)  # before loading the model
    if midi:
        from vocals2song import notes

        notes.require()
    paths = find_inputs(inputs)
    if not paths:
        raise Vocals2SongError("no audio or image inputs found", usage=True)
    missing = [p for p in paths if not p.is_file()]
    if len(missing) == len(paths):
        more = f" (and {len(missing) - 1} more missing inputs)" if len(missing) > 1 else ""
        raise Vocals2SongError(f"no such file{more}", missing[0], usage=True)
    predictor = predictor or load_predictor(run)
    out = Path(out)
    names = _names(paths)
    written: list[Path] = []
    listened: list = []

    def work(path: Path) -> None:
        if not path.is_file():
            raise Vocals2SongError("no such file", path)
        vocals, pixels, meta = vocals_input(path, predictor)
        stem = (meta.source or {}).get("stem", "vocals")
        if stem != "vocals" and warn is not None:
            warn(f"Warning: {path}: the image's metadata names the stem '{stem}', not vocals; the model expects "
                 "vocals (predicting anyway)")
        pred = predict_song(vocals, pixels, meta, predictor, phase, add_vocals)
        written.extend(write_prediction(pred, out, names[path], predictor, midi))
        if page:
            listened.append(page_item(pred, out, names[path], predictor, midi))

    failures = run_each(paths, work, lambda p: p, progress)
    if listened:
        from vocals2song.listen import write_listening_page

        written += [p for item in listened for p in item.audio.values()]
        written.append(write_listening_page(out, f"Songs from {Path(run).name}", listened,
                                            f"Predicted with the run {run}, phase from {phase}. Page copies of the "
                                            "audio are in audio/; the 32-bit float WAVs are beside this page."))
    return written, failures


def page_item(pred: Prediction, out: Path, name: str, predictor: Predictor, midi: bool = False):
    """A listening-page item: the spectrogram picture, the input vocals and the predicted song (and accompaniment)."""
    from vocals2song.listen import PageItem, page_audio_path, write_page_audio

    sr, target = pred.meta.sr, predictor.config["target"]
    waves = {"vocals (input)": pred.vocals, "predicted song": pred.song}
    if pred.accompaniment is not None:
        waves[f"predicted {target}"] = pred.accompaniment
    audio_files = {label: write_page_audio(page_audio_path(out, name, label), y, sr) for label, y in waves.items()}
    links = {"the added accompaniment's notes (MIDI)": out / f"{name}.accompaniment.mid"} if midi else {}
    return PageItem(name, audio_files, out / f"{name}.spectrograms.png", links=links)
