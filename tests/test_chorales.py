"""`chorales`: the MUSDB18-HQ tree it renders, exact sums, determinism, resume, tune splits, errors."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import files_bytes

from vocals2song import chorales, fluidsynth
from vocals2song.errors import Vocals2SongError

#: a low rate keeps the renders fast; FluidSynth and the tree work the same at 44.1 kHz
SR = 16000
#: three chorales: one per split (train, valid, test)
ARGS = ["--limit", "3", "--sr", str(SR)]
STEMS = ("vocals", "drums", "bass", "other", "mixture")


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    from vocals2song.cli import cli

    out = tmp_path_factory.mktemp("chorales") / "tree"
    result = CliRunner().invoke(cli, ["chorales", str(out), *ARGS, "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def _track_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def test_layout_manifest_and_musdb(tree):
    import musdb

    manifest = json.loads((tree / "chorales.json").read_text())
    assert manifest["counts"]["tracks"] == manifest["counts"]["rendered"] == 3
    by_split = {t["split"]: name for name, t in manifest["tracks"].items()}
    assert sorted(by_split) == ["test", "train", "valid"]
    assert [p.relative_to(tree).as_posix() for p in _track_dirs(tree)] == sorted(
        f"{'test' if s == 'test' else 'train'}/{n}" for s, n in by_split.items())
    for folder in _track_dirs(tree):
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.wav" for s in STEMS)
        for stem in STEMS:
            info = sf.info(folder / f"{stem}.wav")
            assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_16")
    settings = manifest["tracks"][by_split["test"]]["settings"]
    assert settings == chorales.track_settings(by_split["test"])  # every track's settings are recorded
    assert manifest["validation_tracks"] == [by_split["valid"]]
    # musdb reads the tree, and its validation split comes from OUT/mus.yaml
    valid = musdb.DB(root=str(tree), is_wav=True, subsets="train", split="valid", setup_file="mus.yaml")
    train = musdb.DB(root=str(tree), is_wav=True, subsets="train", split="train", setup_file="mus.yaml")
    test = musdb.DB(root=str(tree), is_wav=True, subsets="test")
    assert ([t.name for t in train], [t.name for t in valid], [t.name for t in test]) == (
        [by_split["train"]], [by_split["valid"]], [by_split["test"]])
    assert test.tracks[0].audio.shape[1] == 2 and test.tracks[0].rate == SR


def test_mixture_is_the_exact_sum_and_nothing_clips(tree):
    for folder in _track_dirs(tree):
        y = {s: sf.read(folder / f"{s}.wav", dtype="int16")[0] for s in STEMS}
        assert len({v.shape for v in y.values()}) == 1
        total = sum(y[s].astype(np.int32) for s in ("vocals", "drums", "bass", "other"))
        np.testing.assert_array_equal(total, y["mixture"].astype(np.int32))
        assert np.abs(total).max() < 32767 * chorales.MIX_PEAK + 4  # normalised to -1 dBFS: no clipping
        assert not y["drums"].any()
        for stem in ("vocals", "bass", "other"):  # each part sounds, at a sensible level
            rms_db = 10 * np.log10(np.mean((y[stem] / 32768.0) ** 2))
            assert -35 < rms_db < -10, (folder.name, stem, rms_db)
        # the soprano on its own: the vocals stem differs from the accompaniment stems
        assert not np.array_equal(y["vocals"], y["other"])


def test_rerun_changes_nothing_and_other_settings_are_refused(tree, run_cli):
    before = files_bytes(tree)
    result = run_cli("chorales", tree, *ARGS, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "0 rendered now, 3 already complete" in result.output
    assert files_bytes(tree) == before
    result = run_cli("chorales", tree, "--limit", "3", "--sr", "22050")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: ") and "(sr)" in result.output
    assert files_bytes(tree) == before


@pytest.mark.slow
def test_resume_after_kill_writes_the_same_bytes(tree, tmp_path):
    """SIGKILL a run once its first track is written; the rerun finishes with the bytes of a clean run."""
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "vocals2song", "chorales", str(out), *ARGS, "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*/*/mixture.wav")) and time.monotonic() < deadline:
            time.sleep(0.05)
            assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = json.loads((out / "chorales.json").read_text())["counts"]["rendered"]
    assert 0 <= done < 3
    assert len(list(out.glob("*/*/mixture.wav"))) < 3
    # what a kill in the middle of a write leaves behind (atomic_path's temporary file)
    (next(out.glob("*/*/mixture.wav")).parent / ".other.k1ll3d.part.wav").write_bytes(b"RIFF")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "already complete" in result.stdout
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    assert files_bytes(out) == files_bytes(tree)  # determinism: an independent, resumed run is byte-identical


def test_sound2image_reads_the_tree(tree, tmp_path, run_cli):
    out = tmp_path / "images"
    result = run_cli("sound2image", tree, out, "--sr", str(SR), "--segment", "10", "--workers", "1")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "dataset.json").read_text())
    tracks = json.loads((tree / "chorales.json").read_text())["tracks"]
    assert {t["split"] for t in manifest["tracks"].values()} == {"train", "valid", "test"}
    for name, t in manifest["tracks"].items():
        assert t["split"] == tracks[name]["split"]  # the chorales' valid track goes to valid/
    assert all(manifest["counts"][s] > 0 for s in ("train", "valid", "test"))
    from vocals2song.sound2image import find_tracks

    valid = next(n for n, t in tracks.items() if t["split"] == "valid")
    assert [j.split for j in find_tracks(tree / "train" / valid)] == ["valid"]  # one track folder alone too


def test_bad_soundfont_is_one_line(tmp_path, run_cli):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF not a soundfont" * 100)
    for soundfont in (bad, tmp_path / "missing.sf2"):
        result = run_cli("chorales", tmp_path / "out", "--soundfont", soundfont, "--limit", "1")
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {soundfont}: ")
        assert fluidsynth.INSTALL_HINT in lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_synthesizer_is_one_line(tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(fluidsynth, "LIBRARY_NAMES", ("no_such_fluidsynth_library",))
    fluidsynth.library.cache_clear()
    try:
        result = run_cli("chorales", tmp_path / "out", "--limit", "1")
    finally:
        fluidsynth.library.cache_clear()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not installed" in lines[0]
    assert "apt-get install fluidsynth fluid-soundfont-gm" in lines[0]


# --- the corpus, the tune groups and the splits (no rendering) ------------------------------------------

def test_no_tune_is_shared_across_splits():
    corpus = chorales.corpus_chorales()
    assert len(corpus) == 365
    splits, tunes = chorales.assign_splits(corpus), chorales.tune_groups(corpus)
    split_of_tune = collections.defaultdict(set)
    for c in corpus:
        split_of_tune[tunes[c.name]].add(splits[c.name])
    assert all(len(s) == 1 for s in split_of_tune.values())
    # and what makes a tune: no two chorales in different splits share an opening or a long run
    by_key = collections.defaultdict(set)
    run = chorales.SHARED_RUN_INTERVALS
    for c in corpus:
        by_key[("opening", c.intervals[:chorales.OPENING_INTERVALS])].add(splits[c.name])
        for i in range(len(c.intervals) - run + 1):
            by_key[("run", c.intervals[i: i + run])].add(splits[c.name])
    assert all(len(s) == 1 for s in by_key.values())
    # two harmonisations of one tune ("Gelobet seist du, Jesu Christ") whose openings differ after 6 intervals
    assert tunes["Bach - BWV 314"] == tunes["Bach - BWV 64.2"]
    counts = collections.Counter(splits.values())
    assert 0.08 < counts["test"] / len(corpus) < 0.15 and 0.08 < counts["valid"] / len(corpus) < 0.15


def test_limit_keeps_the_splits_and_spreads_over_the_corpus():
    full = {p.name: p.split for p in chorales.plan_tracks()}
    for limit in (3, 10, 60):
        plans = chorales.plan_tracks(limit)
        assert len(plans) == limit and len({p.name for p in plans}) == limit
        assert all(full[p.name] == p.split for p in plans)  # a track's split does not depend on --limit
        assert {p.split for p in plans} == {"train", "valid", "test"}
    counts = collections.Counter(p.split for p in chorales.plan_tracks(60))
    assert counts["train"] >= 40 and counts["valid"] >= 5 and counts["test"] >= 5
    order = [c.name for c in chorales.corpus_chorales()]
    positions = [order.index(p.name) for p in chorales.plan_tracks(10)]
    assert max(positions) - min(positions) > len(order) / 2  # not just the first files


def test_settings_come_from_the_name():
    a, b = chorales.track_settings("Bach - BWV 2.6"), chorales.track_settings("Bach - BWV 3.6")
    assert a == chorales.track_settings("Bach - BWV 2.6") and a != b
    tempos = {chorales.track_settings(c.name)["tempo_bpm"] for c in chorales.corpus_chorales()}
    programs = {chorales.track_settings(c.name)["programs"]["alto"] for c in chorales.corpus_chorales()}
    assert len(tempos) > 10 and programs == set(chorales.OTHER_PROGRAMS)


def test_a_fixed_band_changes_only_the_accompaniments_instruments_pans_and_levels():
    random_plans, fixed_plans = chorales.plan_tracks(), chorales.plan_tracks(band="fixed")
    assert [(p.name, p.split, p.tune) for p in random_plans] == [(p.name, p.split, p.tune) for p in fixed_plans]
    band = {"programs": ("alto", "tenor", "bass"), "pans": ("alto", "tenor", "bass"), "gains_db": ("bass", "other")}
    for r, f in zip(random_plans, fixed_plans, strict=True):
        for key, value in f.settings.items():
            kept = {k: v for k, v in value.items() if k not in band.get(key, ())} if isinstance(value, dict) else value
            assert kept == ({k: v for k, v in r.settings[key].items() if k not in band.get(key, ())}
                            if isinstance(value, dict) else r.settings[key])
        assert {key: {k: f.settings[key][k] for k in parts} for key, parts in band.items()} == chorales.FIXED_BAND
    assert len({p.settings["programs"]["bass"] for p in random_plans}) > 1  # random: each track its own
    with pytest.raises(Vocals2SongError, match="--band"):
        chorales.track_settings("Bach - BWV 2.6", band="house")


def test_the_band_is_recorded_and_a_tree_keeps_its_own(tree, tmp_path, run_cli):
    """A random tree's manifest is what it was before --band (no entry), so older trees still resume; a rerun
    with another band is refused; a fixed tree records its band and plays it."""
    assert "band" not in json.loads((tree / chorales.MANIFEST).read_text())["params"]
    before = files_bytes(tree)
    result = run_cli("chorales", tree, *ARGS, "--band", "fixed")
    assert result.exit_code == 2 and "(band)" in result.output and files_bytes(tree) == before
    out = tmp_path / "fixed"
    result = run_cli("chorales", out, "--limit", "1", "--sr", str(SR), "--band", "fixed", "--workers", "1")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / chorales.MANIFEST).read_text())
    assert manifest["params"]["band"] == "fixed"
    (track,) = manifest["tracks"].values()
    assert {k: track["settings"]["programs"][k] for k in ("alto", "tenor", "bass")} == \
        chorales.FIXED_BAND["programs"]


def test_fermatas_hold_and_delay_what_follows():
    settings = {"tempo_bpm": 60, "fermata_hold_beats": 1.0, "transpose": 2, "velocities": {"soprano": 90, "bass": 80},
                "programs": {"soprano": "voice_oohs", "bass": "acoustic_bass"}}
    parts = {"soprano": [(0.0, 1.0, 60), (1.0, 1.0, 62), (2.0, 1.0, 64)], "bass": [(0.0, 3.0, 48)]}
    notes, nb_samples = chorales.note_events(parts, [2.0], settings, sr=100)
    lead = int(chorales.LEAD_IN_S * 100)
    assert [(n.start - lead, n.end - lead, n.pitch) for n in notes["soprano"]] == [
        (0, 100, 62), (100, 300, 64), (300, 400, 66)]  # the fermata note ends a beat later; the next waits
    assert [(n.start - lead, n.end - lead, n.pitch) for n in notes["bass"]] == [(0, 400, 38)]  # bass an octave down
    assert nb_samples == lead + 400 + int(chorales.TAIL_S * 100)


@pytest.mark.slow
def test_shipped_index_matches_the_music21_corpus():
    """About 1 min on a cold music21 cache: the index must be what scripts/make_chorale_index.py makes."""
    assert chorales.build_index() == json.loads(chorales.INDEX.read_text())


# --- the oracle script's re-render of the notes --------------------------------------------------------------
