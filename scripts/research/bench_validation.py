"""Benchmark what `train`'s validation costs a training step: the generator on the fixed validation tiles plus
history's val_recon and val_lsd (`RunState.val_row`, the code `train` runs at every history row), for each model preset
and number of tiles, on DATA's validation split.

Prints, per preset and tile count, the median time of one validation over ``--repeats`` (after one untimed call that
traces the graph), and that time spread over ``--log-every`` steps (what it adds to every training step; compare
with a step: `scripts/bench_train.py`). A validation split with fewer pairs than asked gives fewer tiles (one per
pair), as in `train`; the line says how many.

    python scripts/research/bench_validation.py DATA [--models tiny,small] [--tiles 8,32] [--log-every 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # scripts/, for benchlib
from benchlib import models_arg  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a sound2image dataset with a valid split")
    parser.add_argument("--models", type=models_arg, default=["tiny", "small"], help="comma-separated presets")
    parser.add_argument("--tiles", default="8,32", help="comma-separated validation tile counts")
    parser.add_argument("--log-every", type=int, default=100, help="steps per history row (train's default 100)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from vocals2song import data as data_mod
    from vocals2song import train as train_mod
    from vocals2song.callbacks import RunState
    from vocals2song.config import MODELS, TrainConfig
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    from vocals2song.model import build_generator

    pairs = data_mod.find_pairs(args.data)
    fmt, nb_rows = pairs.meta.format, pairs.info.nb_rows - 1
    print(f"validation on {args.data} ({len(pairs.valid)} valid pairs), {fmt}, history row every "
          f"{args.log_every} steps")
    for preset in args.models:
        generator = build_generator(nb_rows, 1, MODELS[preset], "powersum-mean", pairs.meta.range_db, [0.0] * nb_rows)
        model = type("Gan", (), {"generator": generator})()
        for count in (int(t) for t in args.tiles.split(",")):
            cfg = TrainConfig(model=preset, val_tiles=count, log_every=args.log_every)
            val = data_mod.fixed_tiles(pairs.valid, fmt, cfg.tile, count, cfg.phase_repr)
            config = train_mod.run_config(args.data, cfg, pairs, val[2], "default", 1, nb_rows, 1)
            state = RunState(args.data, cfg, config, 0, val, False)  # not the chief: writes nothing
            state.val_row(model)  # traces the graph
            seconds = []
            for repeat in range(args.repeats):
                state.step = repeat + 1  # a new step: the predictions are made again
                t0 = time.perf_counter()
                state.val_row(model)
                seconds.append(time.perf_counter() - t0)
            median = float(np.median(seconds))
            print(f"{preset:>7} {len(val[2]):3d} tiles: {median * 1000:7.1f} ms per validation, "
                  f"{median * 1000 / args.log_every:5.2f} ms per training step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
