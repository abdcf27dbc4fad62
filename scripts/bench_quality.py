"""The quality benchmark: train model variants on rendered Bach chorales and score them on unseen tunes.

1. The corpus: ``--corpus DIR`` if it holds one already, else ``vocals2song chorales WORK/chorales --limit N``
   (``--limit``, default 60; ``--band``, default random). Test tunes never occur in training (the chorales command
   splits by tune). Nothing is rendered when ``WORK/dataset`` exists.
2. The dataset: ``vocals2song sound2image`` with its defaults (15 s segments, rgb8) into ``WORK/dataset``.
3. Each variant of ``--variants`` is trained with the same budget (``--model``, ``--steps``) into
   ``WORK/runs/<variant>`` through the CLI (a rerun resumes or skips a finished run), then scored with
   ``vocals2song evaluate`` on the test split (``WORK/eval/<variant>/``), or on ``--split valid`` to choose a
   recipe without looking at the test tunes.
4. A table of medians over the test items: lsd, mrstft, SI-SDR, loudness difference, lsd below 500 Hz, 500 Hz to
   4 kHz and above, frame-rate buzz, harmony (chroma correlation), the note judge's figures of the added
   accompaniment (notes per second, pitch-class F1, note F1, consonance; the true accompaniment's own in the last
   row), training time; the baselines (`vocals_only`, the gated `mean_accompaniment`, `parallel`) come from the
   first variant's report (they do not depend on the model), and for each variant the items on which it beats the
   mean accompaniment (lsd, mrstft; what `evaluate`'s verdict counts). Printed, and written to ``WORK/quality.md``.

    python scripts/bench_quality.py [--work WORK] [--corpus DIR] [--limit 60] [--band random] [--model small]
        [--steps 3000] [--variants published,powersum,...] [--phase model]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from vocals2song.config import RECIPES

#: the additive generator, magnitude only
_ADDITIVE = {"generator": "powersum-mean", "phase_repr": "none"}
#: variant name -> the recipe it trains: a built-in recipe and the fields it changes (`vocals2song train --recipe`
#: takes them as a JSON file). Each says its loss weight and whether it keeps its best generator, so that a row
#: means the same whatever the defaults are. Variants of settings this version no longer trains with (LSGAN, the
#: power loss, keep-best by the reconstruction loss) are in docs/quality-log.md with their figures.
VARIANTS: dict[str, dict] = {
    "published": {"base": "pix2pix", "keep_best": False},  # pix2pix's network, lambda and training
    "powersum": {"base": "pix2pix", "keep_best": False, "generator": "powersum", "phase_repr": "none"},
    "powersum-mean": {"base": "pix2pix", "keep_best": False, **_ADDITIVE},
    "powersum-mean-l1x10": {"base": "pix2pix", "keep_best": False, **_ADDITIVE, "lambda_recon": 1000.0},
    "powersum-mean-bf16": {"base": "pix2pix", "keep_best": False, **_ADDITIVE, "mixed_precision": True},
    "powersum-mean-lr5e-5": {"base": "pix2pix", "keep_best": False, **_ADDITIVE, "lambda_recon": 1000.0,
                             "lr": 5e-5},
    "powersum-mean-l2": {"base": "pix2pix", "keep_best": False, **_ADDITIVE, "lambda_recon": 4000.0,
                         "recon_loss": "l2"},
    "powersum-tile512": {"base": "pix2pix", "keep_best": False, "generator": "powersum", "phase_repr": "none",
                         "tile": 512},
    "powersum-if": {"base": "pix2pix", "keep_best": False, "generator": "powersum", "phase_repr": "if"},
    "powersum-angle": {"base": "pix2pix", "keep_best": False, "generator": "powersum", "phase_repr": "angle"},
    # the GAN recipe: lambda 1000 and the best generator kept (the lowest val_lsd on the validation tiles, by a 1%
    # margin), with pix2pix's training; training also fits the accompaniment's envelope (vocals2song.envelope)
    "gan-default": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 1000.0},
    "default-noenvelope": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 1000.0, "envelope": False},
    "default-lr5e-5": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 1000.0, "lr": 5e-5},
    # lambda 1e5: the GAN term is a hundredth of the L1's weight of the GAN recipe, nearly plain L1 regression
    "default-l1only": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 100000.0},
    # instance norm in the generator: BatchNorm at batch 1 trains on each tile's statistics and predicts with
    # moving averages that no tile had (model.normalization)
    "default-instance": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 1000.0, "norm": "instance"},
    # 2 and 4 times the context (3 and 6 s tiles); at the same budget in frames seen, a half and a quarter of the steps
    "default-tile512": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 1000.0, "tile": 512},
    "default-tile1024": {"base": "pix2pix", **_ADDITIVE, "lambda_recon": 1000.0, "tile": 1024},
    # the default recipe, whatever it is now
    "default": {},
    # pix2pix again: the additive generator with the PatchGAN discriminator, keep-best by the added chords
    # (val_harmony) while val_lsd stays within 1 dB of the start's; on linear or log-frequency rows
    "additive-gan": {"base": "additive-l2", "gan_loss": "bce", "keep_best_by": "val_harmony"},
    "additive-gan-log": {"base": "additive-l2", "gan_loss": "bce", "keep_best_by": "val_harmony", "view": "log"},
    "additive-l2-log": {"base": "additive-l2", "view": "log"},
    # no discriminator: L2 regression on batches of 4, Adam 1e-4, instance norm, and the moving average of the
    # weights validated and kept: its val_lsd falls below the untrained start's and stays there (the default
    # recipe at lambda 1)
    "regression": {"base": "additive-l2", "lambda_recon": 1.0},
}
assert all(v.get("base", "additive-l2") in RECIPES for v in VARIANTS.values())


def recipe_flags(variant: str, folder: Path) -> list[str]:
    """``--recipe`` flags that train ``variant``: a built-in name, or a JSON file of its fields in ``folder``."""
    fields = VARIANTS[variant]
    if not fields:
        return ["--recipe", "additive-l2"]
    if set(fields) == {"base"}:
        return ["--recipe", fields["base"]]
    path = folder / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields, indent=1, sort_keys=True) + "\n")
    return ["--recipe", str(path)]


#: (report key, column title, format)
COLUMNS = (("lsd", "lsd", "{:.2f}"), ("mrstft", "mrstft", "{:.3f}"), ("si_sdr", "SI-SDR", "{:.1f}"),
           ("loudness_db", "loudness dB", "{:+.1f}"), ("lsd_low", "lsd <500", "{:.2f}"),
           ("lsd_mid", "lsd 0.5-4k", "{:.2f}"), ("lsd_high", "lsd >4k", "{:.2f}"), ("buzz_db", "buzz dB", "{:.1f}"),
           ("harmony", "harmony", "{:+.2f}"), ("notes_per_s", "notes/s", "{:.2f}"), ("pc_f1", "pc F1", "{:.2f}"),
           ("note_f1", "note F1", "{:.2f}"), ("consonance", "consonance", "{:.2f}"))


def cli(*args: str, log: Path | None = None) -> float:
    """Run ``python -m vocals2song ARGS``; returns the wall time. Output goes to ``log`` (else the terminal)."""
    cmd = [sys.executable, "-m", "vocals2song", *args]
    t0 = time.monotonic()
    if log is None:
        subprocess.run(cmd, check=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = log.read_text().strip().splitlines()[-3:]
            raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd)}\n  " + "\n  ".join(tail))
    return time.monotonic() - t0


def row(name: str, values: dict, seconds: str = "", paired: str = "") -> str:
    cells = []
    for key, _, fmt in COLUMNS:
        value = values.get(key)
        cells.append("n/a" if value is None else fmt.format(value))
    return f"| {name} | " + " | ".join(cells) + f" | {paired} | {seconds} |"


def paired_counts(report: dict, exclude: set[str], baseline: str = "mean_accompaniment") -> str:
    """"a, b of n; c, d of t tracks": the items where the model's lsd, and its mrstft, are lower than
    ``baseline``'s, then the tracks where the mean over their items is (a track's segments share its tune and
    instruments: the tracks are the independent draws)."""
    from vocals2song.evaluate import _by_track, _mean

    items = [item for item in report["items"] if item.get("track") not in exclude and baseline in item]
    better = [sum(item["model"][m] < item[baseline][m] for item in items) for m in ("lsd", "mrstft")]
    tracks = _by_track(items).values()
    by_track = [sum(_mean(t, "model", m) < _mean(t, baseline, m) for t in tracks) for m in ("lsd", "mrstft")]
    return f"{better[0]}, {better[1]} of {len(items)}; {by_track[0]}, {by_track[1]} of {len(tracks)} tracks"


def _medians(report: dict, exclude: set[str]) -> dict[str, dict[str, float]]:
    """Per estimate, the median of each metric over the report's items whose track is not in ``exclude``."""
    import numpy as np

    items = [item for item in report["items"] if item.get("track") not in exclude]
    names = ["model", *report["baselines"], *(["truth"] if "truth" in items[0] else [])]
    return {n: {m: float(np.nanmedian([item[n][m] for item in items])) for m in items[0][n]} for n in names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("datasets/quality"), help="Folder for everything.")
    parser.add_argument("--corpus", type=Path, default=None, help="A rendered chorale corpus to reuse.")
    parser.add_argument("--limit", type=int, default=60, help="Chorales to render when there is no corpus.")
    parser.add_argument("--band", default="random", help="chorales --band, when there is no corpus: random or fixed.")
    parser.add_argument("--model", default="small")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--variants", default="published,gan-default,default",
                        help=f"Comma-separated, of: {', '.join(VARIANTS)}.")
    parser.add_argument("--phase", default="model", help="evaluate --phase for every variant.")
    parser.add_argument("--extra", default="", help="More train flags for every variant, space-separated.")
    parser.add_argument("--split", default="test",
                        help="The split to score: test, or valid to choose a recipe without looking at test.")
    parser.add_argument("--exclude", default="",
                        help="Comma-separated test tracks to leave out of the medians (e.g. a tune found in training).")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    work = args.work
    corpus = args.corpus or work / "chorales"
    dataset = work / "dataset"
    if not (dataset / "dataset.json").is_file() or not (dataset / "test").is_dir():
        if not (corpus / "chorales.json").is_file():  # only for a dataset to make: a tree is never rendered over
            print(f"rendering {args.limit} chorales into {corpus}", flush=True)
            cli("chorales", str(corpus), "--limit", str(args.limit), "--band", args.band)
        print(f"sound2image {corpus} -> {dataset}", flush=True)
        cli("sound2image", str(corpus), str(dataset))
    excluded = f" without {args.exclude}" if args.exclude else ""
    lines = [f"Chorales `{corpus}`, `--model {args.model} --steps {args.steps}` {args.extra}, evaluate --phase "
             f"{args.phase}; medians over the {args.split} items{excluded}. Lower is better except SI-SDR and harmony; "
             "loudness nearer 0 is better.", "",
             "| estimate | " + " | ".join(title for _, title, _ in COLUMNS)
             + " | items (tracks) better than the mean | train s |",
             "|---|" + "---|" * (len(COLUMNS) + 2)]
    baselines, truth = None, None
    for variant in variants:
        extra = "-" + args.extra.replace(" ", "") if args.extra else ""
        run = work / "runs" / f"{variant}-{args.model}-{args.steps}{extra}"
        out = work / "eval" / run.name / (args.phase if args.split == "test" else f"{args.phase}-{args.split}")
        print(f"{variant}: train -> {run}", flush=True)
        timing = run.parent / f"{run.name}.seconds"  # wall time of the call that trained it (start-up included)
        seconds = cli("train", str(dataset), str(run), "--model", args.model, "--steps", str(args.steps),
                      "--checkpoint-every", "500", "--sample-every", "1000", *recipe_flags(variant, work / "recipes"),
                      *args.extra.split(),
                      log=run.parent / f"{run.name}.log")
        if not timing.is_file():
            timing.write_text(f"{seconds:.0f}\n")
        print(f"{variant}: evaluate -> {out}", flush=True)
        cli("evaluate", str(run), str(dataset), "--out", str(out), "--phase", args.phase, "--split", args.split,
            log=out.parent / f"evaluate-{args.split}.log")
        report = json.loads((out / "report.json").read_text())
        exclude = {t.strip() for t in args.exclude.split(",") if t.strip()}
        medians = _medians(report, exclude)
        baselines = baselines or {b: medians[b] for b in report["baselines"]}
        truth = truth or medians.get("truth")
        lines.append(row(variant, medians["model"], timing.read_text().strip(), paired_counts(report, exclude)))
        print(lines[-1], flush=True)
    for name, values in (baselines or {}).items():
        lines.append(row(name, values))
    if truth:
        lines.append(row("true accompaniment", truth))
    lines += ["", "train s: wall time of the `train` call that trained the run, start-up included."]
    text = "\n".join(lines) + "\n"
    (work / ("quality.md" if args.split == "test" else f"quality-{args.split}.md")).write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
