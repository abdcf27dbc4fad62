"""Item by item: is estimate A better than estimate B on the same held-out items? Two `evaluate` reports.

Medians hide which items moved, and a different baseline moves "items better than the mean" on its own (README,
"Quality": the 365-chorale run beat its own mean on more items than the 172's did, yet lost to the 172-trained
model item by item). This reads two `report.json` files (or their folders), pairs their items by name, and prints,
per metric, on how many items A is better, and on how many tracks (each track's items averaged: a track's
segments share its tune and instruments, so the tracks are the independent draws), each with a two-sided sign
test's p-value (ties left out), and the median and mean difference. Lower is better for every metric printed
except loudness, where the nearer to 0 is better.

    python scripts/compare_reports.py A B [--a model] [--b model] [--metrics lsd,mrstft,...]

A and B may be the same report, to compare two of its estimates: ``--a model --b mean_accompaniment``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

METRICS = ("lsd", "mrstft", "lsd_low", "lsd_mid", "lsd_high", "loudness_db")


def load(path: Path) -> dict:
    path = path / "report.json" if path.is_dir() else path
    if not path.is_file():
        raise SystemExit(f"Error: {path}: no evaluate report here (give a report.json or the folder holding one)")
    return json.loads(path.read_text())


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` at even odds."""
    from scipy.stats import binomtest

    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n).pvalue)


def compare(a: dict, b: dict, est_a: str = "model", est_b: str = "model",
            metrics: tuple[str, ...] = METRICS) -> list[dict]:
    """Per metric: items, A's wins and losses, median and mean of A - B (of |A| - |B| for loudness), sign p."""
    from vocals2song.evaluate import track_of

    by_name = {item["name"]: item for item in b["items"] if est_b in item}
    pairs = [(track_of(item), item[est_a], by_name[item["name"]][est_b]) for item in a["items"]
             if est_a in item and item["name"] in by_name]
    if not pairs:
        raise SystemExit(f"Error: no item has both {est_a} in A and {est_b} in B (are they reports of one split?)")
    rows = []
    for metric in metrics:
        values = [(t, x[metric], y[metric]) for t, x, y in pairs if metric in x and metric in y
                  and np.isfinite(x[metric]) and np.isfinite(y[metric])]
        if not values:
            continue
        x, y = (np.array([v[k] for v in values]) for k in (1, 2))
        diff = np.abs(x) - np.abs(y) if metric == "loudness_db" else x - y
        tracks: dict[str, list[float]] = {}
        for (track, *_), d in zip(values, diff):
            tracks.setdefault(track, []).append(float(d))
        per_track = np.array([np.mean(d) for d in tracks.values()])
        wins, losses = int((diff < 0).sum()), int((diff > 0).sum())
        t_wins, t_losses = int((per_track < 0).sum()), int((per_track > 0).sum())
        rows.append({"metric": metric, "items": len(diff), "a_better": wins, "b_better": losses,
                     "median_diff": float(np.median(diff)), "mean_diff": float(np.mean(diff)),
                     "p": sign_test(wins, losses), "median_a": float(np.median(x)), "median_b": float(np.median(y)),
                     "tracks": len(per_track), "tracks_a_better": t_wins, "tracks_b_better": t_losses,
                     "p_tracks": sign_test(t_wins, t_losses)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="evaluate report.json (or its folder) of estimate A")
    parser.add_argument("b", type=Path, help="the same for B (may be A's report)")
    parser.add_argument("--a", dest="est_a", default="model", help="A's estimate in its report (default: model)")
    parser.add_argument("--b", dest="est_b", default="model", help="B's estimate in its report (default: model)")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated report metrics")
    args = parser.parse_args(argv)
    a, b = load(args.a), load(args.b)
    rows = compare(a, b, args.est_a, args.est_b, tuple(m.strip() for m in args.metrics.split(",") if m.strip()))
    print(f"A = {args.est_a} of {args.a}\nB = {args.est_b} of {args.b}")
    print(f"{'metric':12s} {'items':>5s} {'A better':>8s} {'B better':>8s} {'sign p':>7s} {'tracks':>6s} "
          f"{'A better':>8s} {'B better':>8s} {'sign p':>7s} {'median A':>9s} {'median B':>9s} {'median A-B':>10s} "
          f"{'mean A-B':>9s}")
    for r in rows:
        print(f"{r['metric']:12s} {r['items']:5d} {r['a_better']:8d} {r['b_better']:8d} {r['p']:7.3g} "
              f"{r['tracks']:6d} {r['tracks_a_better']:8d} {r['tracks_b_better']:8d} {r['p_tracks']:7.3g} "
              f"{r['median_a']:9.3f} {r['median_b']:9.3f} {r['median_diff']:+10.3f} {r['mean_diff']:+9.3f}")
    print("Lower is better (loudness: nearer 0, compared as |dB|). Tracks: each track's items averaged; its "
          "segments share its tune and instruments, so the tracks are the independent draws. The sign tests leave "
          "ties out.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
