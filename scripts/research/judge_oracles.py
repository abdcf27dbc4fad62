"""The note judge on a rendered chorale tree: what the accompaniments that know the notes score, and what the phase
does to them. For each track (``--split``, at most ``--limit``), the true accompaniment (bass + other + drums) is
transcribed, and judged against itself (a check) and against the score's alto, tenor and bass; then, judged
against the true accompaniment's transcription with the vocals' melody:

- ``true, song's Griffin-Lim``: the true accompaniment's magnitude laid on the vocals as a song lays an added
  accompaniment (`baselines.song_with`, the default), minus the vocals;
- ``true, random phase``: the same with the random phase (`--phase vocals`; what songs had before);
- ``parallel``: the parallel harmoniser's added part; ``another track``: the next track's true accompaniment (real
  notes, the wrong tune); ``vocals only``: nothing added.

Prints the medians over tracks of notes/s, pitch-class F1, note F1 and consonance.

    python scripts/research/judge_oracles.py CHORALES [--split test] [--limit 6]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a tree rendered by `vocals2song chorales`")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=6)
    args = parser.parse_args(argv)

    import soundfile as sf

    from vocals2song import audio, baselines, chorales, notes
    from vocals2song.codec import ImageMeta

    manifest_path = args.root / "chorales.json"
    if not manifest_path.is_file():
        raise SystemExit(f"Error: {args.root}: not a chorale tree (no chorales.json)")
    manifest = json.loads(manifest_path.read_text())
    names = [n for n, info in manifest["tracks"].items() if info["folder"].startswith(args.split + "/")][: args.limit]
    if len(names) < 2:
        raise SystemExit(f"Error: {args.root}: fewer than 2 {args.split} tracks")
    by_name = {c.name: c for c in chorales.corpus_chorales()}
    n_fft, hop = 1024, 256
    rows: dict[str, list[dict]] = {}
    tracks = {}
    for name in names:
        folder = args.root / manifest["tracks"][name]["folder"]
        stems = {s: audio.to_mono(sf.read(folder / f"{s}.wav", dtype="float32")[0]).astype(np.float64)
                 for s in ("vocals", "bass", "other", "drums")}
        sr = sf.info(folder / "vocals.wav").samplerate
        tracks[name] = (stems["vocals"], stems["bass"] + stems["other"] + stems["drums"], sr)
    heard = {name: notes.transcribe(acc, sr) for name, (_, acc, sr) in tracks.items()}
    for i, name in enumerate(names):
        vocals, acc, sr = tracks[name]
        truth, sung = heard[name], notes.transcribe(vocals, sr)
        parts, fermatas = chorales.score_notes(by_name[name])
        events, _ = chorales.note_events(parts, fermatas, manifest["tracks"][name]["settings"], sr)
        score = notes.Notes.from_events([(n.start / sr, n.end / sr, n.pitch, 1.0) for p in ("alto", "tenor", "bass")
                                         for n in events[p]], len(acc) / sr)
        meta = ImageMeta(format="rgb8", sr=sr, n_fft=n_fft, hop=hop, win=n_fft, window="hann", top_db=0.0,
                         range_db=100.0, length=len(vocals))
        Z_voc, Z_acc = (audio.stft(y, n_fft, hop, n_fft) for y in (vocals, acc))

        def added(Z_song):
            return audio.istft(Z_song, hop, n_fft, length=len(vocals)) - vocals

        other = heard[names[(i + 1) % len(names)]]
        other = notes.Notes.from_events([e for e in other.events() if e[0] < truth.duration], truth.duration)
        cases = {"true vs itself": (truth, truth), "true vs the score": (truth, score),
                 "true, song's Griffin-Lim": (notes.transcribe(added(baselines.song_with(
                     Z_voc, np.abs(Z_acc) ** 2, meta, "griffinlim")), sr), truth),
                 "true, random phase": (notes.transcribe(added(baselines.song_with(
                     Z_voc, np.abs(Z_acc) ** 2, meta, "random")), sr), truth),
                 "parallel": (notes.transcribe(added(baselines.parallel(Z_voc, None, meta)), sr), truth),
                 "another track": (other, truth), "vocals only": (notes.Notes.from_events([], truth.duration), truth)}
        for case, (estimate, reference) in cases.items():
            rows.setdefault(case, []).append(notes.judge(estimate, reference, sung))
        print(f"{name}: {len(vocals) / sr:.0f} s", file=sys.stderr, flush=True)
    keys = ("notes_per_s", "pc_f1", "note_f1", "consonance")
    print(f"{len(names)} {args.split} tracks of {args.root}; medians over tracks (the truth plays "
          f"{np.median([r['truth_notes_per_s'] for r in rows['true vs itself']]):.2f} notes/s)")
    print(f"{'case':<26}" + "".join(f"{k:>13}" for k in keys))
    for case, results in rows.items():
        print(f"{case:<26}" + "".join(f"{np.nanmedian([r[k] for r in results]):>13.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
