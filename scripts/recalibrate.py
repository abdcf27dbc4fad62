"""Refit a trained run's envelope and loudness gain into a new run folder, with other choices, without training.

`train` fits the accompaniment's envelope and the loudness gain when it ends (docs/training.md). To measure what
they are worth, this copies RUN's `config.json` and generators to OUT (no checkpoints, no logs) and fits them again
on DATA's training pairs: with a louder or quieter aim (``--quietest-db``, `loudness.QUIETEST_DB` by default),
without the envelope (``--no-envelope``), or without either (``--no-envelope --no-loudness``: the generator alone).
As `train` does, it keeps the envelope only where DATA's validation songs are nearer the truth with it
(``--no-check``: keep it anyway). Then ``vocals2song evaluate OUT DATA`` scores it, and
``scripts/compare_reports.py`` compares it with RUN's report.

    python scripts/recalibrate.py RUN DATA OUT [--quietest-db -2.0] [--no-envelope] [--no-loudness] [--no-check]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vocals2song import calibrate, loudness

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a trained run folder (powersum generator on mixtures)")
    parser.add_argument("data", type=Path, help="the sound2image dataset it was trained on")
    parser.add_argument("out", type=Path, help="the new run folder (must not exist)")
    parser.add_argument("--quietest-db", type=float, default=loudness.QUIETEST_DB,
                        help=f"the loudness gain's aim, in dB under the true songs (default {loudness.QUIETEST_DB})")
    parser.add_argument("--no-envelope", action="store_true", help="fit no envelope")
    parser.add_argument("--no-loudness", action="store_true", help="fit no loudness gain")
    parser.add_argument("--no-check", action="store_true",
                        help="keep the envelope without checking it on the validation pairs")
    args = parser.parse_args(argv)

    from vocals2song import runfolder
    from vocals2song.errors import Vocals2SongError

    if args.out.exists():
        raise SystemExit(f"Error: {args.out}: already exists; give a new folder")
    try:
        config = runfolder.read_config(args.run)
    except Vocals2SongError as exc:
        raise SystemExit(f"Error: {exc}") from None
    if not calibrate.can_calibrate(config):
        raise SystemExit(f"Error: {args.run}: the envelope and the gain are for powersum generators on mixtures")

    from vocals2song import data as data_mod
    from vocals2song.predict import load_predictor

    pairs = data_mod.find_pairs(args.data)
    staging = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in {runfolder.GENERATOR, config["generator"]}:
        if (args.run / name).is_file():
            shutil.copy2(args.run / name, staging / name)
    for key in calibrate.ENTRIES:
        config.pop(key, None)
    runfolder.write_config(staging, config)
    fitted = calibrate.calibrate(load_predictor(staging), pairs.train, fit_envelope=not args.no_envelope,
                                 fit_loudness=not args.no_loudness, quietest_db=args.quietest_db,
                                 check=None if args.no_check else pairs.valid)
    config.update(fitted)
    runfolder.write_config(staging, config)
    staging.rename(args.out)  # the folder appears whole or not at all
    if "envelope_check" in fitted:
        from vocals2song.envelope import describe_check

        print(f"{args.out}: {describe_check(fitted['envelope_check'])}")
    print(f"{args.out}: " + (", ".join(
        f"{key} fitted" + (f" (accompaniment {fitted[key]['alpha_db']:+.2f} dB at its loudest bin)"
                           if key == "loudness" else "") for key in fitted if key != "envelope_check")
        or "nothing fitted: the generator alone"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
