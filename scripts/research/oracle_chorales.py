"""What would knowing the notes, or the instruments, be worth? Oracle songs on a chorale dataset, scored as `evaluate`
scores songs.

`chorales` draws every track's accompaniment instruments, pans and stem levels from a hash of its name, apart from
its tune, so the vocals cannot tell them. This script asks how far each kind of knowledge would carry a model on a
`sound2image` dataset of `chorales` tracks. Each row is a song made the way `mean_accompaniment` makes one: the
vocals as they are, plus an accompaniment power spectrogram, with the vocals' phase where they dominate and a
random one elsewhere (`baselines.song_phase`). Rows:

- ``mean_accompaniment``: the baseline (the training split's mean, in the frames where the vocals sound).
- ``instruments known``: the same track's *other* segments' mean accompaniment, gated the same way: its
  instruments and levels, not its notes (tracks with one segment are left out of this row).
- ``notes known``: the true notes (the score, the track's tempo, transposition and fermatas) re-rendered with
  FluidSynth on ``--bands`` bands drawn as `chorales` draws a track's band, their geometric mean power: a model
  that knows every note and has to guess the instruments, as a regression onto dB planes would.
- ``notes on one band``: the first of those renders alone: what a perfect sampler of songs would play, the right
  notes on some band.
- ``notes on its own band``: the true notes re-rendered on the track's own band (a check of the renders: it
  should score near the true accompaniment).
- ``true accompaniment``: the true accompaniment's power (what the song's phase costs).

It prints medians of lsd, mrstft, loudness and harmony, and on how many tracks (each track's items averaged) a row
is better than ``mean_accompaniment`` on lsd and mrstft.

    python scripts/research/oracle_chorales.py DATASET [--split test] [--bands 6] [--tracks N] [--band fixed]

Needs FluidSynth and the SoundFont `chorales` uses. 38 tracks of the 172 chorales take about 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vocals2song import audio, baselines, chorales, codec, metrics
from vocals2song.config import BANDS, ChoralesConfig
from vocals2song.data import match_pairs
from vocals2song.errors import Vocals2SongError

ROWS = ("mean_accompaniment", "instruments known", "notes known", "notes on one band", "notes on its own band",
        "true accompaniment")
MEASURES = ("lsd", "mrstft", "loudness_db", "harmony")


def band(settings: dict, name: str) -> dict:
    """``settings`` with another band: the accompaniment's programs, pans and stem levels that `chorales` would
    draw for a track called ``name``; the tune, tempo, transposition, velocities and the voice stay."""
    other = chorales.track_settings(name)
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in settings.items()}
    for key in ("programs", "pans", "gains_db"):
        out[key].update({part: v for part, v in other[key].items() if part not in ("soprano", "vocals")})
    return out


def render(plan: chorales.TrackPlan, settings: dict, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Mono (vocals, accompaniment) of ``plan``'s chorale played with ``settings``, as `chorales` renders them
    (both scaled by the render's own peak normalisation)."""
    stems = chorales.render_stems(chorales.TrackPlan(plan.name, plan.source, plan.tune, plan.split, settings),
                                  ChoralesConfig(sr=sr))
    mono = {stem: audio.to_mono(y.astype(np.float64) / 32768.0) for stem, y in stems.items()}
    return mono["vocals"], mono["bass"] + mono["other"] + mono["drums"]


class Item:
    """One dataset pair: its vocals and true mixture as `evaluate` decodes them."""

    def __init__(self, voc_path: Path, tar_path: Path, target: str):
        pixels, self.meta = baselines.read_image_meta(voc_path)
        tar_pixels, tar_meta = baselines.read_image_meta(tar_path)
        self.name, self.track = voc_path.stem, (self.meta.source or {}).get("track")
        self.Z_voc = baselines.image_spectrogram(pixels, self.meta)
        Z_tar = baselines.image_spectrogram(tar_pixels, tar_meta)
        self.Z_acc = Z_tar - self.Z_voc if target == "mixture" else Z_tar
        self.vocals = codec.spectrogram_to_audio(self.Z_voc, self.meta)
        self.truth = codec.decode_audio(tar_pixels, tar_meta, path=tar_path)
        if target == "accompaniment":
            self.truth = self.truth + self.vocals

    def segment(self, y: np.ndarray) -> np.ndarray:
        """This item's stretch of a whole-track waveform, zero-padded as `sound2image` pads a last segment."""
        start = self.meta.source["start"]
        out = np.zeros(max(self.meta.length, (self.Z_voc.shape[1] - 1) * self.meta.hop))
        part = y[start: start + len(out)]
        out[: len(part)] = part
        return out

    def power(self, y: np.ndarray) -> np.ndarray:
        """The power of this item's stretch of ``y`` as the dataset's images hold it: the codec's STFT, encoded and
        decoded (the truth has nothing under the image's floor, and lsd counts a render's detail there)."""
        m = self.meta
        Z = audio.stft(self.segment(y), m.n_fft, m.hop, m.win, m.window)[:, : self.Z_voc.shape[1]]
        return np.abs(baselines.image_spectrogram(codec.encode_spectrogram(Z, m)[0], m)) ** 2

    def song(self, acc_power: np.ndarray) -> np.ndarray:
        """The vocals plus ``acc_power``, as the baseline makes its song (`baselines.song_with`)."""
        return codec.spectrogram_to_audio(baselines.song_with(self.Z_voc, acc_power, self.meta), self.meta)[
            : len(self.truth)]

    def gated(self, stats: baselines.TrainingStats) -> np.ndarray:
        """The `mean_accompaniment` song of ``stats``' mean."""
        return codec.spectrogram_to_audio(baselines.mean_accompaniment(self.Z_voc, stats, self.meta), self.meta)[
            : len(self.truth)]

    def scores(self, song: np.ndarray) -> dict[str, float]:
        song = np.asarray(song, dtype=np.float64)
        return {"lsd": metrics.lsd(self.truth, song), "mrstft": metrics.mrstft(self.truth, song),
                "loudness_db": metrics.loudness_db(self.truth, song),
                "harmony": metrics.harmony(self.vocals[: len(self.truth)], self.truth, song, self.meta.sr)}


def track_rows(items: list[Item], plan: chorales.TrackPlan, stats: baselines.TrainingStats,
               bands: int) -> list[dict]:
    """Every row's scores for each of one track's items."""
    sr = items[0].meta.sr
    vocals, own = render(plan, plan.settings, sr)
    # the renders' scale against the dataset's: the vocals are the same notes on the same voice in both
    num = sum(float(np.dot(it.vocals[: it.meta.length], it.segment(vocals)[: it.meta.length])) for it in items)
    den = sum(float(np.sum(it.segment(vocals)[: it.meta.length] ** 2)) for it in items)
    if den == 0.0:
        raise Vocals2SongError("its rendered vocals are silent where the dataset's are not", plan.name)
    scale = num / den
    others = [render(plan, band(plan.settings, f"{plan.name}/band {k}"), sr)[1] * scale for k in range(bands)]
    own = own * scale
    rows = []
    for it in items:
        powers = [it.power(y) for y in others]
        songs = {"mean_accompaniment": it.gated(stats),
                 "notes known": it.song(np.exp(np.mean([np.log(p + baselines.POWER_FLOOR) for p in powers], axis=0))),
                 "notes on one band": it.song(powers[0]),
                 "notes on its own band": it.song(it.power(own)),
                 "true accompaniment": it.song(np.abs(it.Z_acc) ** 2)}
        rest = [o for o in items if o is not it]
        if rest:
            radius = baselines.gate_radius(it.meta.sr, it.meta.hop)  # the gate `gated` lays the mean in
            songs["instruments known"] = it.gated(baselines.training_stats(((o.Z_voc, o.Z_acc) for o in rest), radius))
        rows.append({"name": it.name, "track": it.track, **{k: it.scores(y) for k, y in songs.items()}})
    return rows


def table(rows: list[dict]) -> list[str]:
    """Medians per row, and tracks better than the mean on lsd and mrstft."""
    tracks: dict[str, list[dict]] = {}
    for r in rows:
        tracks.setdefault(r["track"], []).append(r)
    lines = [f"{'song':<24} {'items':>5} {'lsd':>7} {'mrstft':>7} {'loud dB':>8} {'harmony':>8}  "
             "tracks better than the mean: lsd, mrstft"]
    for key in ROWS:
        have = [r for r in rows if key in r]
        if not have:
            continue
        med = [float(np.nanmedian([r[key][m] for r in have])) for m in MEASURES]
        groups = [g for g in tracks.values() if key in g[0]]
        better = [sum(np.mean([r[key][m] for r in g]) < np.mean([r["mean_accompaniment"][m] for r in g])
                      for g in groups) for m in ("lsd", "mrstft")]
        lines.append(f"{key:<24} {len(have):>5} {med[0]:7.2f} {med[1]:7.3f} {med[2]:+8.2f} {med[3]:+8.2f}  "
                     f"{better[0]}, {better[1]} of {len(groups)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a sound2image dataset of `chorales` tracks")
    parser.add_argument("--split", default="test", help="the split to score (default test)")
    parser.add_argument("--bands", type=int, default=6, help="random bands the notes are rendered on (default 6)")
    parser.add_argument("--tracks", type=int, default=None, help="score only the first N tracks")
    parser.add_argument("--band", choices=BANDS, default="random",
                        help="the band the corpus was rendered with (`chorales --band`; default random)")
    args = parser.parse_args(argv)
    if args.bands < 1:
        parser.error("--bands must be at least 1")
    target = next((t for t in ("mixture", "accompaniment") if (args.dataset / args.split / t).is_dir()), None)
    if target is None or not (args.dataset / args.split / "vocals").is_dir():
        parser.error(f"{args.dataset}: no {args.split}/vocals and {args.split}/mixture folders; give a sound2image "
                     "dataset")
    try:
        train = match_pairs(args.dataset / "train" / "vocals", args.dataset / "train" / target)
        if not train:
            raise Vocals2SongError("no training pairs for the mean accompaniment", args.dataset / "train")
        stats = baselines.stats_from_images(train, target)
        pairs = match_pairs(args.dataset / args.split / "vocals", args.dataset / args.split / target)
        by_track: dict[str, list[Item]] = {}
        for _, voc_path, tar_path in pairs:
            item = Item(voc_path, tar_path, target)
            by_track.setdefault(item.track, []).append(item)
        plans = {p.name: p for p in chorales.plan_tracks(band=args.band)}
        unknown = sorted(t for t in by_track if t not in plans)
        if unknown:
            raise Vocals2SongError(f"{len(unknown)} tracks are not `chorales` tracks (first: {unknown[0]!r}); this "
                                   "script re-renders their notes", args.dataset)
        chorales.check_config(ChoralesConfig())
        rows: list[dict] = []
        names = sorted(by_track)[: args.tracks]
        for i, name in enumerate(names):
            rows += track_rows(by_track[name], plans[name], stats, args.bands)
            print(f"[{i + 1}/{len(names)}] {name}", file=sys.stderr, flush=True)
    except Vocals2SongError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dataset} {args.split}: {len(rows)} items of {len(names)} tracks, {args.bands} bands; medians "
          "(lower is better; loudness nearer 0; harmony higher)")
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
