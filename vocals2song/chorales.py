"""`chorales`: render music21's four-part Bach chorales with FluidSynth into a MUSDB18-HQ tree.

Layout of OUT::

    OUT/chorales.json                                  parameters, the splits, every track's settings
    OUT/mus.yaml                                       a musdb setup file naming the validation tracks
    OUT/{train,test}/<track>/{vocals,drums,bass,other,mixture}.wav

Stems: vocals = the soprano on a voice program, bass = the bass part on a bass program, other = alto + tenor
on per-track instruments, drums = silence, and mixture = the exact sum of the four 16-bit stems.

Tracks are split by tune, not by BWV number: chorales whose soprano openings match (a transposition-invariant
interval fingerprint) form one group, and a group lies in one split. The `train` tracks that ``mus.yaml``
lists as validation tracks go to ``valid/`` in `sound2image`, as musdb's own list does for MUSDB18.

Each track's tempo, transposition, instruments and levels come from a seed hashed from its name (with ``--band
fixed`` the accompaniment's instruments, pans and levels are one band's for every track), and every part is
rendered by a fresh synthesizer, so reruns write identical bytes. Tracks are rendered in a process pool, each WAV
is written atomically and ``chorales.json`` after every finished track, so a killed run resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import random
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vocals2song import fluidsynth
from vocals2song.config import BANDS, ChoralesConfig
from vocals2song.errors import Vocals2SongError, run_pool
from vocals2song.files import atomic_path, is_partial, read_manifest, write_bytes_atomic
from vocals2song.sound2image import MUSDB_SETUP_FILE

MANIFEST = "chorales.json"
#: musdb reads this setup file when given ``setup_file``; sound2image does when it lies in the root
SETUP_FILE = MUSDB_SETUP_FILE
#: bump when a change alters the rendered bytes, so old trees are not silently mixed with new ones
RENDER_VERSION = 1
PARTS = ("Soprano", "Alto", "Tenor", "Bass")
STEMS = ("vocals", "drums", "bass", "other", "mixture")
ARTIST = "Bach"
#: chorales whose sopranos open with the same intervals (repeated notes removed) are one tune ...
OPENING_INTERVALS = 6
#: ... and so are chorales whose sopranos share this many successive intervals anywhere
SHARED_RUN_INTERVALS = 16
#: shares of the tracks in test and valid; train gets the rest
SPLIT_SHARES = (("test", 0.1), ("valid", 0.1))
#: the mixture's peak after normalisation (-1 dBFS), so the 16-bit sum of the stems cannot clip
MIX_PEAK = 10 ** (-1 / 20)

# General MIDI programs, 0-based (the GM list numbers them from 1).
VOICE_PROGRAMS = {"voice_oohs": 53, "choir_aahs": 52}
#: Choir Aahs speaks late (0.25-0.5 s to full level); its notes start this much early so they sound on time
VOICE_LEAD_S = {"voice_oohs": 0.0, "choir_aahs": 0.12}
OTHER_PROGRAMS = {"piano": 0, "electric_piano": 4, "harpsichord": 6, "church_organ": 19, "reed_organ": 20,
                  "nylon_guitar": 24, "steel_guitar": 25, "strings": 48, "slow_strings": 49, "clarinet": 71,
                  "bassoon": 70, "french_horn": 60}
#: bass programs and the octave shift they play the bass part at (bass guitars sound an octave down)
BASS_PROGRAMS = {"acoustic_bass": (32, -12), "finger_bass": (33, -12), "fretless_bass": (35, -12),
                 "cello": (42, 0), "contrabass": (43, -12), "organ_pedal": (19, -12)}
#: ``--band fixed``: every track's accompaniment on these instruments, pans and levels
FIXED_BAND = {"programs": {"alto": "piano", "tenor": "piano", "bass": "acoustic_bass"},
              "pans": {"alto": -0.25, "tenor": 0.25, "bass": 0.0},
              "gains_db": {"bass": 0.0, "other": -3.0}}


@dataclass(frozen=True)
class Chorale:
    """One four-part chorale of the corpus: its track name, corpus path and soprano melody."""

    name: str
    source: str  # path relative to music21's corpus folder, e.g. "bach/bwv104.6.mxl"
    intervals: tuple[int, ...]  # the soprano's intervals in semitones between successive different pitches


@dataclass(frozen=True)
class TrackPlan:
    name: str
    source: str
    tune: str  # the tune group: the name of its first chorale
    split: str  # train | valid | test (valid tracks are written under train/)
    settings: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def folder(self) -> str:
        return "test" if self.split == "test" else "train"


@dataclass
class TrackResult:
    plan: TrackPlan
    seconds: float = 0.0
    error: str | None = None
    traceback: str | None = None


# --- the corpus --------------------------------------------------------------------------------------

def _corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def track_name(source: str) -> str:
    """``bach/bwv104.6.mxl`` -> ``Bach - BWV 104.6``."""
    stem = Path(source).name.rsplit(".", 1)[0]
    return f"{ARTIST} - BWV {stem[3:] if stem.lower().startswith('bwv') else stem}"


def soprano_intervals(score) -> tuple[int, ...]:
    """Transposition-invariant melody: the soprano's intervals between successive different pitches (ties
    merged, grace notes left out, repeats as written)."""
    pitches = [n.pitches[0].midi for n in score.parts[0].stripTies().flatten().notes if not n.duration.isGrace]
    return tuple(b - a for a, b in zip(pitches, pitches[1:]) if b != a)


def build_index() -> dict:
    """Scan music21's corpus (about 1 min the first time, then music21's cache): the four-part (Soprano, Alto,
    Tenor, Bass) Bach chorales and their soprano intervals, loaded by full path (a short name such as
    ``bach/bwv112.5`` can load a 7-part variant). `scripts/make_chorale_index.py` writes it to `INDEX`."""
    import music21
    from music21 import corpus

    root = _corpus_root()
    chorales = []
    for path in sorted(p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml")):
        score = corpus.parse(path)
        if tuple(p.partName for p in score.parts) != PARTS:
            continue
        source = Path(path).relative_to(root).as_posix()
        chorales.append({"name": track_name(source), "source": source,
                         "soprano": " ".join(f"{i:+d}" for i in soprano_intervals(score))})
    chorales.sort(key=lambda c: _natural_key(c["name"]))
    if len({c["name"] for c in chorales}) != len(chorales):
        raise Vocals2SongError("two chorales of music21's corpus map to one track name")
    return {"music21": music21.__version__, "parts": list(PARTS), "chorales": chorales}


#: the corpus facts, made by `build_index` (scripts/make_chorale_index.py), so a run need not parse 410 scores
INDEX = Path(__file__).with_name("chorale_index.json")


@functools.lru_cache(maxsize=1)
def corpus_chorales() -> tuple[Chorale, ...]:
    """The 365 four-part chorales, in BWV order, from the shipped index."""
    index = json.loads(INDEX.read_text())
    return tuple(Chorale(c["name"], c["source"], tuple(int(i) for i in c["soprano"].split()))
                 for c in index["chorales"])


def _natural_key(name: str) -> tuple:
    """``BWV 9.7`` before ``BWV 10.7``."""
    parts = name.replace("-", " ").replace(".", " ").split()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def tune_groups(chorales: tuple[Chorale, ...] | list[Chorale]) -> dict[str, str]:
    """Track name -> its tune group (the group's first name in BWV order). Two chorales are one tune when
    their soprano openings match (the first `OPENING_INTERVALS` intervals) or when their sopranos share a
    run of `SHARED_RUN_INTERVALS` intervals anywhere (a variant opening, an ornament). Groups are the
    connected components, so a chain of such matches is one group: safe against leakage, at the cost of
    merging a few different tunes."""
    parent = {c.name: c.name for c in chorales}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys: dict[tuple, str] = {}
    for c in chorales:
        runs = [("run", c.intervals[i: i + SHARED_RUN_INTERVALS])
                for i in range(len(c.intervals) - SHARED_RUN_INTERVALS + 1)]
        for key in [("opening", c.intervals[:OPENING_INTERVALS])] + runs:
            if key in keys:
                a, b = find(keys[key]), find(c.name)
                if a != b:
                    parent[max(a, b, key=_natural_key)] = min(a, b, key=_natural_key)
            else:
                keys[key] = c.name
    return {c.name: find(c.name) for c in chorales}


def assign_splits(chorales: tuple[Chorale, ...] | list[Chorale]) -> dict[str, str]:
    """Track name -> split. Chorales of one tune share a split. Tune groups are taken in an order hashed
    from their name: test fills to its share of the tracks first, then valid; train gets the rest."""
    groups: dict[str, list[str]] = {}
    for name, tune in tune_groups(chorales).items():
        groups.setdefault(tune, []).append(name)
    targets = {split: share * len(chorales) for split, share in SPLIT_SHARES}
    filled = dict.fromkeys(targets, 0)
    splits = {}
    for tune in sorted(groups, key=lambda t: (_hash(t), t)):
        split = next((s for s in targets if filled[s] < targets[s]), "train")
        if split in filled:
            filled[split] += len(groups[tune])
        for name in groups[tune]:
            splits[name] = split
    return splits


def select(chorales: list[TrackPlan], limit: int | None) -> list[TrackPlan]:
    """A deterministic subset of ``limit`` tracks that keeps the splits' shares and spreads over the corpus:
    each split contributes in proportion to its size, evenly spaced through its tracks in BWV order."""
    if limit is None or limit >= len(chorales):
        return list(chorales)
    by_split: dict[str, list[TrackPlan]] = {}
    for t in chorales:
        by_split.setdefault(t.split, []).append(t)
    # Largest remainder, with at least one track per split when the limit allows it.
    exact = {s: limit * len(ts) / len(chorales) for s, ts in by_split.items()}
    quota = {s: min(len(by_split[s]), max(1 if limit >= len(by_split) else 0, int(q))) for s, q in exact.items()}
    for s in sorted(exact, key=lambda s: (quota[s] - exact[s], s)):
        if sum(quota.values()) >= limit:
            break
        if quota[s] < len(by_split[s]):
            quota[s] += 1
    while sum(quota.values()) > limit:  # the minimum of one per split can overshoot a tiny limit
        s = max(quota, key=lambda s: (quota[s], s))
        quota[s] -= 1
    chosen = []
    for s, ts in by_split.items():
        k = quota[s]
        chosen += [ts[int((i + 0.5) * len(ts) / k)] for i in range(k)]
    return sorted(chosen, key=lambda t: _natural_key(t.name))


def track_settings(name: str, band: str = "random") -> dict:
    """Tempo, transposition, instruments, pans, velocities and levels: a pure function of the track name; with
    ``band`` "fixed", the accompaniment's instruments, pans and levels are `FIXED_BAND`'s instead (the draws are
    made all the same, so the rest is what "random" gives)."""
    if band not in BANDS:
        raise Vocals2SongError(f"--band must be one of {', '.join(BANDS)}, not {band!r}", usage=True)
    rng = random.Random(_hash(name))
    voice = rng.choice(sorted(VOICE_PROGRAMS))
    alto = rng.choice(sorted(OTHER_PROGRAMS))
    tenor = alto if rng.random() < 0.5 else rng.choice(sorted(OTHER_PROGRAMS))
    bass = rng.choice(sorted(BASS_PROGRAMS))
    settings = {
        "tempo_bpm": rng.randrange(60, 97, 2),
        "transpose": rng.randint(-4, 4),
        "fermata_hold_beats": rng.choice([0.5, 1.0, 1.0, 1.5]),
        "programs": {"soprano": voice, "alto": alto, "tenor": tenor, "bass": bass},
        "pans": {"soprano": 0.0, "alto": round(rng.uniform(-0.5, 0.0), 2), "tenor": round(rng.uniform(0.0, 0.5), 2),
                 "bass": round(rng.uniform(-0.15, 0.15), 2)},
        "velocities": {p: rng.randint(80, 110) for p in ("soprano", "alto", "tenor", "bass")},
        "gains_db": {"vocals": 0.0, "bass": round(rng.uniform(-3.0, 3.0), 1),
                     "other": round(rng.uniform(-6.0, 0.0), 1)},
    }
    if band == "fixed":
        for key, values in FIXED_BAND.items():
            settings[key].update(values)
    return settings


def plan_tracks(limit: int | None = None, band: str = "random") -> list[TrackPlan]:
    """Every track to render, with its split and settings (``band``: see `track_settings`). The splits are decided
    on the whole corpus, so a track keeps its split whatever ``limit`` is."""
    chorales = corpus_chorales()
    splits, tunes = assign_splits(chorales), tune_groups(chorales)
    plans = [TrackPlan(c.name, c.source, tunes[c.name], splits[c.name], track_settings(c.name, band))
             for c in chorales]
    return select(plans, limit)


# --- one track -----------------------------------------------------------------------------------------

LEAD_IN_S = 0.25  # silence before the first note
TAIL_S = 1.5  # after the last note-off, for the release


def score_notes(chorale: Chorale) -> tuple[dict[str, list[tuple[float, float, int]]], list[float]]:
    """Notes of each part as (onset, duration) in quarter notes and MIDI pitch, repeats expanded, ties merged,
    grace notes and rests left out; and the quarter-note times where a fermata note ends."""
    import music21
    from music21 import corpus, expressions

    score = corpus.parse(_corpus_root() / chorale.source)
    if tuple(p.partName for p in score.parts) != PARTS or soprano_intervals(score) != chorale.intervals:
        raise Vocals2SongError(f"differs from the chorale index {INDEX.name} (made with another music21 than "
                               f"{music21.__version__}); rebuild it: python scripts/make_chorale_index.py",
                               _corpus_root() / chorale.source)
    with contextlib.suppress(Exception):  # a few scores have repeat marks music21 cannot expand: play as written
        score = score.expandRepeats()
    parts: dict[str, list[tuple[float, float, int]]] = {}
    fermatas: set[float] = set()
    for name, part in zip(PARTS, score.parts, strict=True):
        notes = []
        for n in part.stripTies().flatten().notes:
            if n.duration.isGrace or n.quarterLength <= 0:
                continue
            onset, length = float(n.offset), float(n.quarterLength)
            notes += [(onset, length, int(p.midi)) for p in n.pitches]
            if any(isinstance(e, expressions.Fermata) for e in n.expressions):
                fermatas.add(onset + length)
        parts[name.lower()] = notes
    return parts, sorted(fermatas)


def note_events(parts: dict[str, list[tuple[float, float, int]]], fermatas: list[float], settings: dict,
                sr: int) -> tuple[dict[str, list[fluidsynth.Note]], int]:
    """Quarter notes -> samples at the track's tempo. Each fermata holds its chord ``fermata_hold_beats``
    longer, and everything after it moves later. Returns the notes per part and the track length."""
    beat = 60.0 / settings["tempo_bpm"]
    hold = settings["fermata_hold_beats"] * beat
    ends = np.asarray(fermatas, dtype=np.float64)

    def seconds(q: float) -> float:  # notes ending on a fermata are held; notes starting there wait
        return LEAD_IN_S + q * beat + hold * int(np.count_nonzero(ends <= q + 1e-9))

    out: dict[str, list[fluidsynth.Note]] = {}
    last = 0.0
    for part, notes in parts.items():
        program = settings["programs"][part]
        shift = settings["transpose"] + (BASS_PROGRAMS[program][1] if part == "bass" else 0)
        lead = VOICE_LEAD_S[program] if part == "soprano" else 0.0
        events = []
        for onset, length, pitch in notes:
            start, end = seconds(onset) - lead, seconds(onset + length) - lead
            last = max(last, end)
            on = max(0, int(round(start * sr)))
            events.append(fluidsynth.Note(on, max(on + 1, int(round(end * sr))),  # a note-off never precedes its on
                                          min(127, max(0, pitch + shift)), settings["velocities"][part]))
        out[part] = events
    return out, int(round((last + TAIL_S) * sr))


def _program(part: str, name: str) -> int:
    if part == "soprano":
        return VOICE_PROGRAMS[name]
    if part == "bass":
        return BASS_PROGRAMS[name][0]
    return OTHER_PROGRAMS[name]


def render_stems(plan: TrackPlan, cfg: ChoralesConfig) -> dict[str, np.ndarray]:
    """The five stems as int16 ``(nb_samples, 2)``; mixture is the exact sum of the other four."""
    parts, fermatas = score_notes(next(c for c in corpus_chorales() if c.name == plan.name))
    s = plan.settings
    notes, nb_samples = note_events(parts, fermatas, s, cfg.sr)
    rendered = {part: fluidsynth.render_part(notes[part], nb_samples, cfg.soundfont, cfg.sr,
                                             _program(part, s["programs"][part]), pan=s["pans"][part])
                .astype(np.float64) for part in notes}
    gain = {stem: 10 ** (db / 20) for stem, db in s["gains_db"].items()}
    stems = {"vocals": rendered["soprano"] * gain["vocals"], "drums": np.zeros((nb_samples, 2)),
             "bass": rendered["bass"] * gain["bass"], "other": (rendered["alto"] + rendered["tenor"]) * gain["other"]}
    mix = stems["vocals"] + stems["bass"] + stems["other"]
    peak = max(float(np.max(np.abs(y))) for y in (*stems.values(), mix))
    if peak == 0:
        raise Vocals2SongError("rendered silence; the SoundFont lacks the General MIDI programs", cfg.soundfont)
    scale = MIX_PEAK * 32767 / peak
    ints = {stem: np.round(y * scale).astype(np.int16) for stem, y in stems.items()}
    total = sum(ints[stem].astype(np.int32) for stem in ("vocals", "drums", "bass", "other"))
    if np.max(np.abs(total)) > 32767:  # cannot happen: |mix| <= MIX_PEAK and rounding adds at most 2 LSB
        raise AssertionError("the 16-bit mixture would clip")
    ints["mixture"] = total.astype(np.int16)
    return ints


def write_stems(folder: Path, stems: dict[str, np.ndarray], sr: int) -> None:
    import soundfile as sf

    for stem in STEMS:  # mixture last: a track folder with mixture.wav is complete
        with atomic_path(folder / f"{stem}.wav") as tmp:
            sf.write(str(tmp), stems[stem], sr, subtype="PCM_16", format="WAV")


def render_track(plan: TrackPlan, cfg: ChoralesConfig, out: str) -> TrackResult:
    """Render and write one track; never raises (the error is returned, so a batch goes on)."""
    result = TrackResult(plan)
    try:
        stems = render_stems(plan, cfg)
        write_stems(Path(out) / plan.folder / plan.name, stems, cfg.sr)
        result.seconds = len(stems["mixture"]) / cfg.sr
    except Vocals2SongError as exc:
        result.error = str(exc) if exc.path else f"{plan.source}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a batch must survive any one bad track
        result.error = f"{plan.source}: unexpected {type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    return result


# --- the batch -----------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_params(cfg: ChoralesConfig, soundfont: Path) -> dict:
    """What decides the bytes of every WAV (and which tracks there are): a rerun must use the same."""
    params = {"version": RENDER_VERSION, "sr": cfg.sr, "subtype": "PCM_16", "limit": cfg.limit,
              "soundfont_sha256": _sha256(soundfont)}
    if cfg.band != "random":  # trees rendered before --band have no entry, and are random
        params["band"] = cfg.band
    return params


def load_manifest(out: Path) -> dict | None:
    return read_manifest(out / MANIFEST, "delete it to render again")


def write_manifest(out: Path, params: dict, plans: list[TrackPlan], done: dict[str, dict], soundfont: Path) -> dict:
    """chorales.json, atomically; its bytes depend only on the params and the finished tracks."""
    import music21

    tracks = {}
    for p in plans:
        if p.name in done:
            tracks[p.name] = {"split": p.split, "folder": f"{p.folder}/{p.name}", "source": p.source, "tune": p.tune,
                              "settings": p.settings, **done[p.name]}
    counts = {split: sum(1 for p in plans if p.split == split) for split in ("train", "valid", "test")}
    counts.update(tracks=len(plans), rendered=len(tracks),
                  seconds=round(sum(t["seconds"] for t in tracks.values()), 3))
    manifest = {"params": params, "music21": music21.__version__, "soundfont": soundfont.name, "counts": counts,
                "validation_tracks": sorted(p.name for p in plans if p.split == "valid"),
                "tunes": len({p.tune for p in plans}), "tracks": tracks}
    write_bytes_atomic(out / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def write_setup_file(out: Path, plans: list[TrackPlan], sr: int) -> None:
    """musdb's own mus.yaml with our validation tracks: sound2image (and musdb.DB(setup_file=...)) read it."""
    import musdb
    import yaml

    with open(Path(musdb.__file__).parent / "configs" / "mus.yaml") as f:
        setup = yaml.safe_load(f)
    setup["sample_rate"] = float(sr)
    setup.pop("sample-url", None)
    setup["validation_tracks"] = sorted(p.name for p in plans if p.split == "valid")
    write_bytes_atomic(out / SETUP_FILE, yaml.safe_dump(setup, sort_keys=True).encode())


def _complete(out: Path, plan: TrackPlan) -> bool:
    return all((out / plan.folder / plan.name / f"{stem}.wav").is_file() for stem in STEMS)


@dataclass
class BatchSummary:
    manifest: dict
    done: list[TrackResult]
    failed: list[TrackResult]
    reused: int


def check_config(cfg: ChoralesConfig) -> Path:
    """Usage checks, then the synthesizer and the SoundFont; returns the SoundFont's path."""
    lo, hi = fluidsynth.SAMPLE_RATES
    if not lo <= cfg.sr <= hi:
        raise Vocals2SongError(f"--sr must be between {lo} and {hi} Hz (FluidSynth's range)", usage=True)
    if cfg.workers < 1:
        raise Vocals2SongError("--workers must be at least 1", usage=True)
    if cfg.limit is not None and cfg.limit < 1:
        raise Vocals2SongError("--limit must be at least 1", usage=True)
    if cfg.band not in BANDS:
        raise Vocals2SongError(f"--band must be one of {', '.join(BANDS)}", usage=True)
    fluidsynth.library()
    return fluidsynth.check_soundfont(cfg.soundfont)


def render_chorales(out: str | os.PathLike, cfg: ChoralesConfig | None = None,
                    progress: Callable[[int], object] | None = None) -> BatchSummary:
    """Render the chorales into OUT; see the module docstring. ``progress(total)`` returns a context manager
    whose ``update(1, label)`` is called per finished track."""
    out = Path(out)
    cfg = cfg or ChoralesConfig()
    soundfont = check_config(cfg)
    cfg = dataclasses.replace(cfg, soundfont=str(soundfont.resolve()))
    params = manifest_params(cfg, soundfont)
    old = load_manifest(out)
    done_info: dict[str, dict] = {}
    if old is not None:
        if old.get("params") != params:
            changed = sorted(k for k in params if old.get("params", {}).get(k) != params[k])
            raise Vocals2SongError(f"holds chorales rendered with other settings ({', '.join(changed)}); use another "
                                   "OUT, or the same options as before to resume", out / MANIFEST, usage=True)
        done_info = {n: {"seconds": t["seconds"]} for n, t in old.get("tracks", {}).items()}
    plans = plan_tracks(cfg.limit, cfg.band)
    done_info = {n: v for n, v in done_info.items() if any(p.name == n and _complete(out, p) for p in plans)}
    todo = [p for p in plans if p.name not in done_info]
    reused = len(plans) - len(todo)
    out.mkdir(parents=True, exist_ok=True)
    for partial in out.glob("*/*/.*.part.wav"):  # left by a killed run (atomic_path's temporary files)
        if is_partial(partial):
            partial.unlink()
    write_setup_file(out, plans, cfg.sr)
    manifest = write_manifest(out, params, plans, done_info, soundfont)
    done, failed = [], []

    def finish(result: TrackResult, bar) -> None:
        nonlocal manifest
        if result.error:
            failed.append(result)
        else:
            done.append(result)
            done_info[result.plan.name] = {"seconds": round(result.seconds, 3)}
            manifest = write_manifest(out, params, plans, done_info, soundfont)
        if bar is not None:
            bar.update(1, result.plan.name)

    with (progress(len(todo)) if progress else contextlib.nullcontext()) as bar:
        # spawn, not fork: a child forked after the parent loaded FluidSynth (glib) can deadlock
        run_pool(render_track, todo, (cfg, str(out)), lambda result: finish(result, bar), cfg.workers, out,
                 mp_context=multiprocessing.get_context("spawn"))
    return BatchSummary(manifest, done, failed, reused)


def describe(summary: BatchSummary) -> str:
    c = summary.manifest["counts"]
    return (f"{c['rendered']} of {c['tracks']} chorales (train {c['train']}, valid {c['valid']}, test {c['test']}; "
            f"{summary.manifest['tunes']} tunes), {c['seconds'] / 60:.1f} min of audio; {len(summary.done)} rendered "
            f"now, {summary.reused} already complete, {len(summary.failed)} failed")
