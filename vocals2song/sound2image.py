"""`sound2image`: batch-encode paired stems (vocals and mixture or accompaniment) into spectrogram images.

Layout of OUT::

    OUT/dataset.json                                  parameters + one record per pair
    OUT/{train,valid,test}/vocals/<track>__<kkk>.<ext>
    OUT/{train,valid,test}/<target>/<track>__<kkk>.<ext>

One job per track: read each stem once, mix down to mono, resample, then encode segment by segment (memory
is bounded by a track, not the dataset). Jobs run in a process pool. Each image is written atomically, and
`dataset.json` is rewritten after every finished track, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vocals2song import audio, codec, imagefile
from vocals2song.config import SPLITS, CodecConfig, DatasetConfig
from vocals2song.errors import Vocals2SongError, run_pool
from vocals2song.files import read_manifest, write_bytes_atomic

MANIFEST = "dataset.json"
ACCOMPANIMENT_STEMS = ("drums", "bass", "other")
#: stream order inside a MUSDB18 .stem.mp4 (musdb's mus.yaml, `stem_ids`)
STEM_IDS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
#: a musdb setup file in a root (musdb.DB's ``setup_file``) overrides musdb's list of validation tracks
MUSDB_SETUP_FILE = "mus.yaml"


@dataclass(frozen=True)
class TrackJob:
    """One track to encode. ``kind``: ``wav`` (a folder of stem files), ``stem`` (a .stem.mp4), ``file``
    (one audio file, encoded alone)."""

    name: str
    split: str  # train | valid | test; "" for a lone file
    kind: str
    path: str  # the track folder, the .stem.mp4, or the audio file


@dataclass
class TrackResult:
    job: TrackJob
    pairs: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    error: str | None = None  # one line: "<path>: <what is wrong>"
    traceback: str | None = None


# --- finding the tracks ------------------------------------------------------------------------------

def validation_tracks(root: Path | None = None) -> frozenset[str]:
    """The `train` tracks that form the validation split: from ROOT's own musdb setup file when it has one
    (`chorales` writes one), else musdb's list for MUSDB18 (its mus.yaml, read without importing musdb, whose
    import pulls in stempeg)."""
    import importlib.util

    import yaml

    if root is not None and (root / MUSDB_SETUP_FILE).is_file():
        path = root / MUSDB_SETUP_FILE
    else:
        spec = importlib.util.find_spec("musdb")
        if spec is None or not spec.submodule_search_locations:
            raise Vocals2SongError("the musdb package is missing; install vocals2song's dependencies")
        path = Path(list(spec.submodule_search_locations)[0]) / "configs" / "mus.yaml"
    with open(path) as f:
        return frozenset(yaml.safe_load(f).get("validation_tracks") or ())


def _split_of(name: str, subset: str, valid: frozenset[str]) -> str:
    return "valid" if subset == "train" and name in valid else subset


def _is_track_folder(folder: Path) -> bool:
    return any((folder / f"vocals{ext}").is_file() for ext in audio.AUDIO_EXTENSIONS)


def find_tracks(source: str | os.PathLike, subsets: tuple[str, ...] = ("train", "test")) -> list[TrackJob]:
    """List the tracks of SOURCE: a MUSDB18(-HQ) root, a folder of track folders or .stem.mp4 files, one
    track folder, one .stem.mp4, or one audio file. Raises a usage error when SOURCE is none of these."""
    source = Path(source)
    if not source.exists():
        raise Vocals2SongError("no such file or folder", source, usage=True)
    if source.is_file():
        if source.name.endswith(".stem.mp4"):
            name = source.name[: -len(".stem.mp4")]
            subset = source.parent.name if source.parent.name in ("train", "test") else "train"
            valid = validation_tracks(source.parent.parent if subset == source.parent.name else None)
            return [TrackJob(name, _split_of(name, subset, valid), "stem", str(source))]
        return [TrackJob(source.stem, "", "file", str(source))]
    if _is_track_folder(source):
        subset = source.parent.name if source.parent.name in ("train", "test") else "train"
        valid = validation_tracks(source.parent.parent if subset == source.parent.name else None)
        return [TrackJob(source.name, _split_of(source.name, subset, valid), "wav", str(source))]
    if any((source / s).is_dir() for s in ("train", "test")):
        return _musdb_tracks(source, subsets)
    # A plain folder of track folders or .stem.mp4 files: all training material, musdb's validation
    # tracks aside.
    valid = validation_tracks(source)
    jobs = [TrackJob(p.name, _split_of(p.name, "train", valid), "wav", str(p))
            for p in sorted(source.iterdir()) if p.is_dir() and _is_track_folder(p)]
    jobs += [TrackJob(p.name[: -len(".stem.mp4")], _split_of(p.name[: -len(".stem.mp4")], "train", valid), "stem",
                      str(p)) for p in sorted(source.glob("*.stem.mp4"))]
    if not jobs:
        raise Vocals2SongError("not a MUSDB18 root (train/, test/), a track folder (vocals.wav, mixture.wav, ...), "
                               "a .stem.mp4 or an audio file", source, usage=True)
    return jobs


def _musdb_tracks(root: Path, subsets: tuple[str, ...]) -> list[TrackJob]:
    """Tracks of a MUSDB18-HQ (wav) or MUSDB18 (.stem.mp4) root, as musdb lists them."""
    import musdb

    is_wav = not any(root.glob("*/*.stem.mp4"))
    if is_wav:
        return _musdb_wav_tracks(root, subsets)
    jobs = []
    for subset in subsets:
        if not (root / subset).is_dir():
            continue
        try:
            setup = {"setup_file": MUSDB_SETUP_FILE} if (root / MUSDB_SETUP_FILE).is_file() else {}
            db = musdb.DB(root=str(root), is_wav=False, subsets=subset, **setup)
        except Exception as exc:  # noqa: BLE001 - musdb/stempeg raise many types for broken trees
            raise Vocals2SongError(f"musdb cannot read this root ({type(exc).__name__}: {exc})", root) from exc
        valid = frozenset(db.setup["validation_tracks"])
        for track in db.tracks:
            jobs.append(TrackJob(track.name, _split_of(track.name, subset, valid), "stem", str(track.path)))
    if not jobs:
        raise Vocals2SongError(f"no tracks in the subsets {', '.join(subsets)}", root, usage=True)
    return jobs


def _musdb_wav_tracks(root: Path, subsets: tuple[str, ...]) -> list[TrackJob]:
    """Tracks of a MUSDB18-HQ root as musdb lists them (every folder of ``root/<subset>/``, sorted by name, musdb's
    validation tracks in valid), without ``musdb.DB``: it runs ffprobe on every stem file, one after the other
    (about 50 ms each), for metadata that encoding reads from the files anyway."""
    valid = validation_tracks(root)
    jobs = [TrackJob(p.name, _split_of(p.name, subset, valid), "wav", str(p))
            for subset in subsets if (root / subset).is_dir()
            for p in sorted((root / subset).iterdir(), key=lambda p: p.name) if p.is_dir()
            and not p.name.startswith(".")]
    if not jobs:
        raise Vocals2SongError(f"no tracks in the subsets {', '.join(subsets)}", root, usage=True)
    return jobs


# --- encoding one track ------------------------------------------------------------------------------

def _stem_file(folder: Path, stem: str) -> Path:
    found = [folder / f"{stem}{ext}" for ext in audio.AUDIO_EXTENSIONS if (folder / f"{stem}{ext}").is_file()]
    if len(found) > 1:  # which one is the stem? Never pick one silently
        raise Vocals2SongError(f"the track has {' and '.join(p.name for p in found)}; keep one {stem} file", folder)
    if found:
        return found[0]
    raise Vocals2SongError(f"the track has no {stem}.wav; every track folder needs vocals and {stem} stems",
                           folder)


def _read_stem_file(path: Path, sr: int) -> np.ndarray:
    y, file_sr = audio.load_mono(path)
    return audio.resample(y, file_sr, sr)


def load_pair(job: TrackJob, target: str, sr: int) -> dict[str, np.ndarray]:
    """Mono ``(nb_samples,)`` stems at ``sr``: {"vocals", target} (or {"audio"} for a lone file)."""
    if job.kind == "file":
        return {"audio": _read_stem_file(Path(job.path), sr)}
    names = ("vocals",) + (ACCOMPANIMENT_STEMS if target == "accompaniment" else ("mixture",))
    if job.kind == "wav":
        folder = Path(job.path)
        paths = {name: _stem_file(folder, name) for name in names}
        stems = {name: _read_stem_file(p, sr) for name, p in paths.items()}
    else:
        streams, file_sr = audio.load_stems(job.path, [STEM_IDS[n] for n in names])
        stems = {n: audio.resample(audio.to_mono(y), file_sr, sr) for n, y in zip(names, streams, strict=True)}
        paths = {n: Path(job.path) for n in names}
    lengths = {n: len(y) for n, y in stems.items()}
    if len(set(lengths.values())) > 1:
        bad = max(lengths, key=lambda n: abs(lengths[n] - lengths["vocals"]))
        raise Vocals2SongError(f"stems differ in length ({', '.join(f'{n} {k}' for n, k in lengths.items())} "
                               f"samples at {sr} Hz); vocals and {target} must be a matching pair", paths[bad])
    if target == "accompaniment":
        return {"vocals": stems["vocals"], "accompaniment": sum(stems[n] for n in ACCOMPANIMENT_STEMS)}
    return stems


def segment_bounds(nb_samples: int, segment_length: int, tail: str, min_tail: float = 0.0) -> list[tuple[int, int]]:
    """(start, true length) of each segment; a short tail is kept (to be zero-padded) or dropped.

    With ``tail == "pad"``, a tail shorter than ``min_tail * segment_length`` is dropped too, unless it is the whole
    track (a track shorter than that still gives one segment).
    """
    nb_full = nb_samples // segment_length
    bounds = [(k * segment_length, segment_length) for k in range(nb_full)]
    rest = nb_samples - nb_full * segment_length
    if rest > 0 and tail == "pad" and (rest >= min_tail * segment_length or nb_full == 0):
        bounds.append((nb_full * segment_length, rest))
    return bounds


def image_name(track: str, index: int, ext: str) -> str:
    return f"{track.replace(os.sep, '_')}__{index:03d}{ext}"


def image_relpath(job: TrackJob, stem: str, index: int, ext: str) -> str:
    name = image_name(job.name, index, ext)
    return name if job.kind == "file" else f"{job.split}/{stem}/{name}"


def encode_track(job: TrackJob, codec_cfg: CodecConfig, data_cfg: DatasetConfig, out: str) -> TrackResult:
    """Encode every segment of one track; never raises (the error is returned, so a batch goes on)."""
    result = TrackResult(job)
    try:
        _encode_track(job, codec_cfg, data_cfg, Path(out), result)
    except Vocals2SongError as exc:
        result.error, result.pairs, result.skipped = str(exc), [], []
    except Exception as exc:  # noqa: BLE001 - a batch must survive any one bad track
        result.error = f"{job.path}: unexpected {type(exc).__name__}: {exc}"
        result.traceback, result.pairs, result.skipped = traceback.format_exc(), [], []
    return result


def _encode_track(job, codec_cfg, data_cfg, out: Path, result: TrackResult) -> None:
    stems = load_pair(job, data_cfg.target, codec_cfg.sr)
    ext = imagefile.EXTENSIONS[codec_cfg.container_name]
    segment_length = int(round(data_cfg.segment * codec_cfg.sr))
    nb_samples = len(next(iter(stems.values())))
    bounds = segment_bounds(nb_samples, segment_length, data_cfg.tail, data_cfg.min_tail)
    for index, (start, length) in enumerate(bounds):
        chunks = {}
        for stem, y in stems.items():
            chunk = y[start: start + length]
            if length < segment_length:
                chunk = np.pad(chunk, (0, segment_length - length))
            chunks[stem] = chunk
        level = audio.rms_db(stems["vocals"][start: start + length]) if "vocals" in stems else None
        record = {"track": job.name, "split": job.split, "index": index, "start": start, "length": length}
        if level is not None:
            record["vocals_db"] = round(level, 2) if math.isfinite(level) else None
            if not level >= data_cfg.min_vocals_db:
                result.skipped.append(record)
                continue
        for stem, chunk in chunks.items():
            rel = image_relpath(job, stem, index, ext)
            record[stem] = rel
            if (out / rel).is_file():  # complete: files only appear by atomic rename
                continue
            source = {"track": job.name, "stem": stem, "start": start}
            pixels, meta = codec.encode_audio(chunk, codec_cfg, source=source, length=length)
            imagefile.write_image(out / rel, pixels, meta.to_json())
        result.pairs.append(record)


# --- the batch and its manifest ------------------------------------------------------------------------

def manifest_params(codec_cfg: CodecConfig, data_cfg: DatasetConfig) -> dict:
    """The parameters that decide the bytes of every image: a rerun must use the same ones."""
    return {
        "format": codec_cfg.format, "container": codec_cfg.container_name, "version": codec.FORMAT_VERSION,
        "sr": codec_cfg.sr, "n_fft": codec_cfg.n_fft, "hop": codec_cfg.hop, "win": codec_cfg.win_length,
        "window": codec_cfg.window, "top_db": codec_cfg.top_db, "range_db": codec_cfg.magnitude_range_db,
        "segment": data_cfg.segment, "target": data_cfg.target, "tail": data_cfg.tail,
        "min_tail": data_cfg.min_tail if data_cfg.tail == "pad" else None, "min_vocals_db": data_cfg.min_vocals_db,
    }


def load_manifest(out: Path) -> dict | None:
    return read_manifest(out / MANIFEST, "delete it to rebuild the dataset")


def write_manifest(out: Path, params: dict, tracks: dict[str, dict]) -> dict:
    """Write dataset.json atomically; its bytes depend only on the params and the tracks (sorted)."""
    pairs = [p for name in sorted(tracks) for p in tracks[name]["pairs"]]
    skipped = [s for name in sorted(tracks) for s in tracks[name]["skipped"]]
    counts = {split: sum(1 for p in pairs if p["split"] == split) for split in SPLITS}
    counts.update(pairs=len(pairs), tracks=len(tracks), skipped_silent=len(skipped))
    manifest = {"params": params, "counts": counts, "tracks": {n: tracks[n] for n in sorted(tracks)},
                "pairs": pairs, "skipped": skipped}
    write_bytes_atomic(out / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def _complete(out: Path, entry: dict, stems: tuple[str, ...]) -> bool:
    return all((out / pair[s]).is_file() for pair in entry["pairs"] for s in stems if s in pair)


@dataclass
class BatchSummary:
    manifest: dict
    done: list[TrackResult]
    failed: list[TrackResult]
    reused: int  # tracks already complete in OUT


def sound2image(source: str | os.PathLike, out: str | os.PathLike, codec_cfg: CodecConfig | None = None,
                data_cfg: DatasetConfig | None = None,
                progress: Callable[[int], object] | None = None) -> BatchSummary:
    """Encode SOURCE into OUT; see the module docstring. ``progress(total)`` returns a context manager
    whose ``update(1, label)`` is called per finished track."""
    out = Path(out)
    codec_cfg = codec_cfg or CodecConfig()
    data_cfg = data_cfg or DatasetConfig()
    _check_configs(codec_cfg, data_cfg)
    jobs = find_tracks(source, data_cfg.subsets)
    params = manifest_params(codec_cfg, data_cfg)
    tracks: dict[str, dict] = {}
    old = load_manifest(out)
    if old is not None:
        if old.get("params") != params:
            changed = sorted(k for k in params if old.get("params", {}).get(k) != params[k])
            raise Vocals2SongError(f"holds a dataset encoded with other parameters ({', '.join(changed)}); "
                                   "use another OUT, or the same options as before to resume", out / MANIFEST,
                                   usage=True)
        tracks = dict(old.get("tracks", {}))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise Vocals2SongError(f"two tracks are named {dup[0]!r}; track names must be unique", source, usage=True)
    stem_names = ("vocals", data_cfg.target, "audio")
    todo = [j for j in jobs if not (j.name in tracks and tracks[j.name]["split"] == j.split
                                    and _complete(out, tracks[j.name], stem_names))]
    reused = len(jobs) - len(todo)
    created = _missing_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    done, failed = [], []

    def finish(result: TrackResult, bar) -> None:
        if result.error:
            failed.append(result)
        else:
            done.append(result)
            tracks[result.job.name] = {"split": result.job.split, "pairs": result.pairs, "skipped": result.skipped}
            write_manifest(out, params, tracks)
        if bar is not None:
            bar.update(1, result.job.name)

    _preload()
    with (progress(len(todo)) if progress else contextlib.nullcontext()) as bar:
        run_pool(encode_track, todo, (codec_cfg, data_cfg, str(out)), lambda result: finish(result, bar),
                 data_cfg.workers, out)
    if not tracks:  # nothing was encoded, now or before: leave nothing behind (no manifest, no empty folders)
        for folder in created:
            _remove_empty_tree(folder)
        counts = {**{s: 0 for s in SPLITS}, "pairs": 0, "tracks": 0, "skipped_silent": 0}
        return BatchSummary({"params": params, "counts": counts, "tracks": {}, "pairs": [], "skipped": []}, done,
                            failed, reused)
    manifest = write_manifest(out, params, tracks)
    return BatchSummary(manifest, done, failed, reused)


def _missing_folders(out: Path) -> list[Path]:
    """``out`` and those of its parents that do not exist yet, outermost first."""
    missing = [p for p in [out, *out.parents] if not p.exists()]
    return missing[::-1][:1]


def _remove_empty_tree(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but empty folders."""
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*")), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def _preload() -> None:
    """Import the encoding path once in the parent, so forked workers start with it loaded."""
    import scipy.fft  # noqa: F401
    import soundfile  # noqa: F401
    import soxr  # noqa: F401

    from vocals2song import imagefile  # noqa: F401  (pulls in isal)


def _check_configs(codec_cfg: CodecConfig, data_cfg: DatasetConfig) -> None:
    from vocals2song.config import CONTAINERS, FORMATS, TAILS, TARGETS

    checks = [
        (codec_cfg.format in FORMATS, f"--format must be one of {', '.join(FORMATS)}"),
        (codec_cfg.container_name in CONTAINERS.get(codec_cfg.format, ()),
         f"--container {codec_cfg.container_name} does not hold format {codec_cfg.format}"),
        (codec_cfg.sr > 0 and codec_cfg.hop > 0 and codec_cfg.n_fft >= 16 and codec_cfg.n_fft % 2 == 0,
         "--sr and --hop must be positive and --n-fft an even number >= 16"),
        (codec_cfg.hop <= codec_cfg.win_length <= codec_cfg.n_fft, "need hop <= window <= n_fft"),
        (data_cfg.segment * codec_cfg.sr >= codec_cfg.n_fft, "--segment is shorter than one STFT window"),
        (data_cfg.target in TARGETS, f"--target must be one of {', '.join(TARGETS)}"),
        (data_cfg.tail in TAILS, f"--tail must be one of {', '.join(TAILS)}"),
        (set(data_cfg.subsets) <= {"train", "test"} and data_cfg.subsets, "--subsets takes train, test or both"),
        (data_cfg.workers >= 1, "--workers must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise Vocals2SongError(message, usage=True)


def describe(summary: BatchSummary) -> str:
    """One summary line for the user."""
    c = summary.manifest["counts"]
    lone = c["pairs"] - c["train"] - c["valid"] - c["test"]  # segments of a lone audio file have no split
    if lone:
        return f"{lone} images from {c['tracks']} audio file; {len(summary.failed)} failed"
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

    return (f"{count(c['pairs'], 'pair')} from {count(c['tracks'], 'track')} (train {c['train']}, valid {c['valid']}, "
            f"test {c['test']}); {count(c['skipped_silent'], 'silent segment')} skipped; "
            f"{count(len(summary.done), 'track')} encoded now, {summary.reused} already complete, "
            f"{len(summary.failed)} failed")
