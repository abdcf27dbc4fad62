"""Can the generator learn at all, and does what it learns carry? Fit the default recipe's generator (powersum-mean,
magnitude only) by L2 to a few fixed *training* tiles, seen again and again, and print, every ``--every`` steps, the
log-spectral distance in dB (history's val_lsd, `RunState.val_lsd`) on those tiles and on the fixed validation
tiles of unseen tunes.

If the training tiles' figure does not fall, the optimisation is broken (a dead gradient, a frozen head). If it
falls and the validation figure rises, the network can fit what it sees and what it fits is particular to those
tiles: the limit is what the data tells it, not the optimiser. The last line gives both changes.

    python scripts/research/fit_check.py DATA [--model small] [--tiles 8] [--batch 4] [--steps 600] [--lr 1e-3]
        [--norm instance] [--every 100] [--val-tiles 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a sound2image dataset with train and valid splits")
    parser.add_argument("--model", default="small", help="model preset")
    parser.add_argument("--tiles", type=int, default=8, help="fixed training tiles to fit")
    parser.add_argument("--batch", type=int, default=4, help="tiles per step, drawn from those")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--norm", default="instance")
    parser.add_argument("--every", type=int, default=100, help="steps between printed figures")
    parser.add_argument("--val-tiles", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from vocals2song import data as data_mod
    from vocals2song import train as train_mod
    from vocals2song.callbacks import RunState
    from vocals2song.config import MODELS, TrainConfig
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from vocals2song.model import build_generator

    keras.utils.set_random_seed(args.seed)
    pairs = data_mod.find_pairs(args.data)
    if pairs.meta.format == "rgba8" or not pairs.train or not pairs.valid:
        raise SystemExit(f"{args.data}: needs train and valid pairs in a one-magnitude format (not rgba8)")
    fmt, nb_rows = pairs.meta.format, pairs.info.nb_rows - 1
    cfg = TrainConfig(model=args.model, val_tiles=args.val_tiles)
    fitted = data_mod.fixed_tiles(pairs.train, fmt, cfg.tile, args.tiles, "none")
    val = data_mod.fixed_tiles(pairs.valid, fmt, cfg.tile, args.val_tiles, "none")
    config = train_mod.run_config(args.data, cfg, pairs, val[2], "default", 1, nb_rows, 1)
    prior = train_mod.prior(pairs)
    generator = build_generator(nb_rows, 1, MODELS[args.model], "powersum-mean", pairs.meta.range_db, prior,
                                norm=args.norm)
    states = {name: RunState(args.data, cfg, config, 0, tiles, False)  # not the chief: writes nothing
              for name, tiles in (("fitted", fitted), ("valid", val))}
    model = type("Generator", (), {"generator": generator})()
    optimizer = keras.optimizers.Adam(args.lr, beta_1=0.5)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y - generator(x, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, generator.trainable_variables),
                                      generator.trainable_variables))

    def figures(at: int) -> dict[str, float]:
        for state in states.values():
            state.step = at  # a new step: the predictions are made again
        return {name: state.val_lsd(state.predictions(model)) for name, state in states.items()}

    print(f"{args.model} generator, L2, {args.tiles} training tiles of {args.data} ({len(fitted[2])} found), batch "
          f"{args.batch}, Adam {args.lr:g}, {args.norm} norm; lsd in dB on those tiles and on {len(val[2])} "
          "validation tiles of unseen tunes", flush=True)
    start = figures(0)
    print(f"step {0:6d}: fitted {start['fitted']:6.3f}  valid {start['valid']:6.3f}", flush=True)
    rng = np.random.default_rng(args.seed)
    x_fit, y_fit = fitted[0], fitted[1]
    t0, last = time.perf_counter(), start
    for i in range(1, args.steps + 1):
        chosen = rng.integers(0, len(x_fit), args.batch)
        step(tf.constant(x_fit[chosen]), tf.constant(y_fit[chosen]))
        if i % args.every == 0 or i == args.steps:
            last = figures(i)
            print(f"step {i:6d}: fitted {last['fitted']:6.3f}  valid {last['valid']:6.3f}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"after {args.steps} steps: fitted tiles {start['fitted']:.3f} -> {last['fitted']:.3f} dB "
          f"({last['fitted'] - start['fitted']:+.3f}), validation {start['valid']:.3f} -> {last['valid']:.3f} dB "
          f"({last['valid'] - start['valid']:+.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
