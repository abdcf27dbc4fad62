"""sound2image on MUSDB18-shaped trees: splits, counts, manifest, metadata, determinism, resume, sources;
short tails, refused inputs and options, and the summary line."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import soundfile as sf
from conftest import SR, VALID_TRACK, files_bytes

from vocals2song import audio, codec, imagefile
from vocals2song.config import CodecConfig, DatasetConfig
from vocals2song.sound2image import encode_track as _encode_track
from vocals2song.sound2image import segment_bounds, sound2image, write_manifest
from vocals2song.synth import make_musdb_tree, synth_stems, write_track

SEG = ["--segment", "2"]


def test_tree_splits_counts_manifest_and_metadata(small_tree, tmp_path, run_cli):
    out = tmp_path / "out"
    result = run_cli("sound2image", small_tree, out, *SEG, "--workers", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "dataset.json").read_text())
    # A - One: 4.5 s -> 2 full segments (the 0.5 s tail, a quarter of a segment, is dropped: --min-tail 0.5);
    # the validation track: 1; B - Two: 3 s -> 1 + a 1 s tail (half a segment: padded).
    assert manifest["counts"] == {"train": 2, "valid": 1, "test": 2, "pairs": 5, "tracks": 3, "skipped_silent": 0}
    names = {split: sorted(p.name for p in (out / split / "vocals").iterdir()) for split in ("train", "valid", "test")}
    assert names == {"train": ["A - One__000.png", "A - One__001.png"],
                     "valid": [f"{VALID_TRACK}__000.png"], "test": ["B - Two__000.png", "B - Two__001.png"]}
    for split, files in names.items():  # every vocals image has its mixture partner
        assert sorted(p.name for p in (out / split / "mixture").iterdir()) == files
    # no track on both sides of a split
    by_split = {s: {p["track"] for p in manifest["pairs"] if p["split"] == s} for s in ("train", "valid", "test")}
    assert not (by_split["train"] & by_split["valid"]) and not (by_split["train"] & by_split["test"])
    tail = next(p for p in manifest["pairs"] if p["track"] == "B - Two" and p["index"] == 1)
    assert tail["start"] == 2 * SR and tail["length"] == SR
    # the image carries its own decoding parameters and its source
    pixels, meta_json = imagefile.read_image(out / tail["mixture"])
    meta = codec.ImageMeta.from_json(meta_json)
    assert (meta.format, meta.sr, meta.n_fft, meta.hop, meta.length) == ("rgb8", SR, 1024, 256, SR)
    assert meta.source == {"track": "B - Two", "stem": "mixture", "start": 2 * SR}
    assert pixels.shape == (513, 1 + 2 * SR // 256, 3)  # the tail is padded to a full segment
    assert manifest["params"]["segment"] == 2.0 and manifest["params"]["target"] == "mixture"


def test_images_hold_the_source_audio(small_tree, tmp_path):
    """Decoding a pair gives back the mono mix-down of the stems at the right offset."""
    out = tmp_path / "out"
    sound2image(small_tree, out, CodecConfig(format="png16"), DatasetConfig(segment=2.0, workers=1))
    y, sr = sf.read(small_tree / "test" / "B - Two" / "vocals.wav", dtype="float32")
    mono = y.mean(axis=1)
    for index in (0, 1):
        pixels, meta_json = imagefile.read_image(out / f"test/vocals/B - Two__{index:03d}.png")
        decoded = codec.decode_audio(pixels, codec.ImageMeta.from_json(meta_json))
        expected = mono[index * 2 * SR: (index + 1) * 2 * SR]
        assert len(decoded) == len(expected)
        assert audio.snr_db(expected, decoded) > 80


def test_rerun_and_fresh_run_are_byte_identical(small_tree, tmp_path, run_cli):
    first, fresh = tmp_path / "first", tmp_path / "fresh"
    assert run_cli("sound2image", small_tree, first, *SEG, "--workers", "2").exit_code == 0
    before = files_bytes(first)
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*.png")}
    result = run_cli("sound2image", small_tree, first, *SEG, "--workers", "2")
    assert result.exit_code == 0 and "3 already complete" in result.output
    assert files_bytes(first) == before
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*.png")} == mtimes  # nothing rewritten
    assert run_cli("sound2image", small_tree, fresh, *SEG, "--workers", "1").exit_code == 0
    assert files_bytes(fresh) == before  # worker count and run do not change a byte


def test_resume_after_interrupted_run(small_tree, tmp_path, run_cli):
    out = tmp_path / "out"
    assert run_cli("sound2image", small_tree, out, *SEG).exit_code == 0
    complete = files_bytes(out)
    # Simulate a run killed mid-track: one image gone, a temporary file left behind, the manifest older.
    (out / "train/mixture/A - One__001.png").unlink()
    (out / "train/mixture/.A - One__001.x.part.png").write_bytes(b"half")
    manifest = json.loads((out / "dataset.json").read_text())  # as written when the two other tracks finished
    write_manifest(out, manifest["params"], {n: t for n, t in manifest["tracks"].items() if n != "A - One"})
    a_one = sum(1 for p in manifest["pairs"] if p["track"] == "A - One")  # 2 full segments (its 0.5 s tail: dropped)
    assert a_one == 2
    assert json.loads((out / "dataset.json").read_text())["counts"]["pairs"] == manifest["counts"]["pairs"] - a_one
    result = run_cli("sound2image", small_tree, out, *SEG)
    assert result.exit_code == 0 and "1 track encoded now, 2 already complete" in result.output
    (out / "train/mixture/.A - One__001.x.part.png").unlink()
    assert files_bytes(out) == complete  # the images and dataset.json, whose A - One records are back


def test_changed_parameters_are_refused(small_tree, tmp_path, run_cli):
    out = tmp_path / "out"
    assert run_cli("sound2image", small_tree, out, *SEG).exit_code == 0
    result = run_cli("sound2image", small_tree, out, *SEG, "--hop", "512")
    assert result.exit_code == 2
    assert "other parameters (hop)" in result.stderr


def test_accompaniment_target(small_tree, tmp_path):
    out = tmp_path / "out"
    summary = sound2image(small_tree, out, CodecConfig(format="float32"),
                          DatasetConfig(segment=2.0, target="accompaniment", subsets=("test",), workers=1))
    assert summary.manifest["counts"]["test"] == 2 and summary.manifest["counts"]["train"] == 0
    pixels, meta_json = imagefile.read_image(out / "test/accompaniment/B - Two__000.tiff")
    decoded = codec.decode_audio(pixels, codec.ImageMeta.from_json(meta_json))
    folder = small_tree / "test" / "B - Two"
    acc = sum(sf.read(folder / f"{s}.wav", dtype="float32")[0].mean(axis=1) for s in ("drums", "bass", "other"))
    assert audio.snr_db(acc[: 2 * SR], decoded) > 100


def test_silent_vocals_skipped_and_tail_drop(tmp_path):
    root = tmp_path / "musdb"
    make_musdb_tree(root, [("train", "C - Quiet", 6.5)], sr=SR, seed=2, silence={"C - Quiet": (1.9, 4.1)})
    out = tmp_path / "out"
    summary = sound2image(root, out, CodecConfig(), DatasetConfig(segment=2.0, workers=1, tail="drop"))
    counts = summary.manifest["counts"]
    # segments 0-2 s, 2-4 s (silent vocals), 4-6 s; the 0.5 s tail is dropped
    assert counts["pairs"] == 2 and counts["skipped_silent"] == 1
    assert summary.manifest["skipped"][0]["index"] == 1
    assert sorted(p.name for p in (out / "train" / "vocals").iterdir()) == ["C - Quiet__000.png", "C - Quiet__002.png"]


def test_resampling_and_mono(tmp_path):
    """A 22.05 kHz mono track is resampled to --sr; a 44.1 kHz stereo one is mixed down."""
    stems = synth_stems(3.0, sr=22050, seed=4, channels=1)
    write_track(tmp_path / "src" / "train" / "Lo - Fi", stems, 22050)
    out = tmp_path / "out"
    sound2image(tmp_path / "src", out, CodecConfig(format="png16"), DatasetConfig(segment=3.0, workers=1))
    pixels, meta_json = imagefile.read_image(out / "train/vocals/Lo - Fi__000.png")
    meta = codec.ImageMeta.from_json(meta_json)
    assert meta.sr == SR and meta.length == 3 * SR
    decoded = codec.decode_audio(pixels, meta)
    expected = audio.resample(stems["vocals"][:, 0], 22050, SR)
    assert audio.snr_db(expected, decoded) > 60


@pytest.mark.parametrize("kind", ["track_folder", "audio_file", "flat_folder"])
def test_other_source_kinds(small_tree, tmp_path, kind, run_cli):
    out = tmp_path / "out"
    if kind == "track_folder":
        result = run_cli("sound2image", small_tree / "test" / "B - Two", out, *SEG)
        expected = ["test/mixture/B - Two__000.png", "test/mixture/B - Two__001.png",
                    "test/vocals/B - Two__000.png", "test/vocals/B - Two__001.png"]
    elif kind == "audio_file":
        result = run_cli("sound2image", small_tree / "test" / "B - Two" / "vocals.wav", out, *SEG)
        expected = ["vocals__000.png", "vocals__001.png"]
        assert "2 images from 1 audio file" in result.output
    else:
        flat = tmp_path / "flat"
        shutil.copytree(small_tree / "train", flat)
        result = run_cli("sound2image", flat, out, *SEG)
        expected = ["train/mixture/A - One__000.png", "train/mixture/A - One__001.png",
                    "train/vocals/A - One__000.png", "train/vocals/A - One__001.png",
                    f"valid/mixture/{VALID_TRACK}__000.png", f"valid/vocals/{VALID_TRACK}__000.png"]
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == expected


def test_compressed_musdb_root_of_stem_mp4(tmp_path, excerpt):
    """A MUSDB18 root of .stem.mp4 files (the real excerpt), read through musdb and ffmpeg."""
    import stempeg

    root = tmp_path / "musdb18"
    (root / "test").mkdir(parents=True)
    shutil.copy(stempeg.example_stem_path(), root / "test" / "The Easton Ellises - Falcon 69.stem.mp4")
    out = tmp_path / "out"
    summary = sound2image(root, out, CodecConfig(format="png16"), DatasetConfig(segment=3.0, workers=1))
    # 268288 samples (6.08 s): two 3 s segments; the 0.08 s tail would be 97% padding and is dropped
    assert not summary.failed and summary.manifest["counts"]["test"] == 2
    assert summary.manifest["pairs"][-1]["length"] == 3 * SR
    pixels, meta_json = imagefile.read_image(out / "test/vocals/The Easton Ellises - Falcon 69__000.png")
    decoded = codec.decode_audio(pixels, codec.ImageMeta.from_json(meta_json))
    # The AAC stems decode slightly differently from stempeg's float path, so compare loosely.
    assert audio.snr_db(excerpt["vocals"][: 3 * SR], decoded) > 20


def _dies_on_b(job, *args):
    """encode_track, except that the worker encoding 'B - Two' is killed (module level: pools pickle it)."""
    if job.name == "B - Two":
        os.kill(os.getpid(), signal.SIGKILL)
    return _encode_track(job, *args)


def test_worker_killed_midway_keeps_finished_tracks_and_resumes(small_tree, tmp_path, monkeypatch, run_cli):
    """A worker dying (OOM killer, SIGKILL) ends the run with one line; the rerun completes it."""
    from vocals2song import sound2image as module

    out = tmp_path / "out"
    monkeypatch.setattr(module, "encode_track", _dies_on_b)
    result = run_cli("sound2image", small_tree, out, *SEG, "--workers", "2")
    assert result.exit_code == 1 and "a worker process died" in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setattr(module, "encode_track", _encode_track)
    assert run_cli("sound2image", small_tree, out, *SEG).exit_code == 0
    fresh = tmp_path / "fresh"
    assert run_cli("sound2image", small_tree, fresh, *SEG).exit_code == 0
    assert files_bytes(out) == files_bytes(fresh)


def test_wav_root_is_listed_as_musdb_lists_it(tmp_path):
    """The MUSDB18-HQ listing skips musdb.DB (an ffprobe per stem file) but must give musdb's tracks and splits."""
    import musdb

    from vocals2song.sound2image import find_tracks

    root = tmp_path / "musdb"
    make_musdb_tree(root, [("train", "B - Two", 0.5), ("train", VALID_TRACK, 0.5), ("train", "A - One", 0.5),
                           ("test", "C - Three", 0.5)], sr=SR, seed=0)
    ours = [(j.name, j.split, j.kind, j.path) for j in find_tracks(root)]
    theirs = []
    for subset in ("train", "test"):
        db = musdb.DB(root=str(root), is_wav=True, subsets=subset)
        valid = set(db.setup["validation_tracks"])
        theirs += [(t.name, "valid" if subset == "train" and t.name in valid else subset, "wav",
                    os.path.dirname(t.path)) for t in db.tracks]
    assert ours == theirs
    assert ("valid" in {split for _, split, _, _ in ours}) and [n for n, *_ in ours][:2] == ["A - One", VALID_TRACK]
    assert [j.name for j in find_tracks(root, ("test",))] == ["C - Three"]


# --- tails, refusals and the summary -------------------------------------------------------------------------

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


def test_sound2image_refuses_two_files_for_one_stem(small_tree, tmp_path, run_cli):
    track = tmp_path / "T - Two Files"
    shutil.copytree(small_tree / "test" / "B - Two", track)
    y, sr = sf.read(track / "vocals.wav")
    sf.write(track / "vocals.flac", y, sr)
    result = run_cli("sound2image", track, tmp_path / "out", "--segment", "2")
    assert result.exit_code == 1 and "has vocals.wav and vocals.flac; keep one vocals file" in result.stderr


def test_container_must_fit_the_format(small_tree, tmp_path, run_cli):
    result = run_cli("sound2image", small_tree, tmp_path / "o", "--format", "png16", "--container", "bmp")
    assert result.exit_code == 2 and "--container bmp does not hold format png16" in result.stderr


def test_sound2image_of_a_text_file_leaves_nothing(tmp_path, run_cli):
    (tmp_path / "notes.txt").write_text("not audio")
    out = tmp_path / "new" / "out"
    result = run_cli("sound2image", tmp_path / "notes.txt", out)
    assert result.exit_code == 1 and "1 of 1 tracks failed; none was done." in result.stderr
    assert not (tmp_path / "new").exists()


def test_sound2image_summary_counts_in_the_right_number(tmp_path):
    from vocals2song.sound2image import BatchSummary, describe

    counts = {"train": 2, "valid": 0, "test": 0, "pairs": 2, "tracks": 1, "skipped_silent": 1}
    line = describe(BatchSummary({"counts": counts}, [object()], [], 0))
    assert line.startswith("2 pairs from 1 track (train 2, valid 0, test 0); 1 silent segment skipped; 1 track encoded")
