"""Score a run's saved generators, and its untrained start, on DATA's validation tiles with the figures that
`train --keep-best` compares: val_lsd (dB) and val_recon (`RunState.val_row`, the code `train` runs).

    python scripts/research/score_generators.py RUN DATA [--tiles 32] [GENERATOR ...]

GENERATOR names files in RUN (default: every ``*.keras`` there). The untrained start (``start``) is the run's
preset and generator built afresh: for ``powersum-mean`` that is the training set's mean accompaniment, whatever the
seed. Use it to ask whether the generator a run kept is better than its start on more tiles than it was chosen
on.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("generators", nargs="*", help="files in RUN (default: every *.keras)")
    parser.add_argument("--tiles", type=int, default=32, help="validation tiles (one per valid pair, spread)")
    args = parser.parse_intermixed_args()

    from vocals2song import data as data_mod
    from vocals2song.callbacks import RunState
    from vocals2song.config import MODELS, TrainConfig
    from vocals2song.runfolder import read_config
    from vocals2song.runtime import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from vocals2song.model import build_generator

    config = read_config(args.run)
    training, model_cfg = config["training"], config["model"]
    pairs = data_mod.find_pairs(args.data, training["input_subdir"], training["target_subdir"])
    phase_repr = model_cfg["phase_repr"]
    val = data_mod.fixed_tiles(pairs.valid, pairs.meta.format, training["tile"], args.tiles, phase_repr)
    cfg = TrainConfig(model=model_cfg["preset"], val_tiles=args.tiles, phase_repr=phase_repr)
    state = RunState(args.run, cfg, config, 0, val, False)  # not the chief: writes nothing
    names = args.generators or sorted(p.name for p in args.run.glob("*.keras"))
    networks = {"start": build_generator(model_cfg["nb_rows"], model_cfg["nb_channels"], MODELS[model_cfg["preset"]],
                                         model_cfg["generator"], config["codec"]["range_db"],
                                         model_cfg["prior"], model_cfg["norm"])}
    networks.update({name: keras.saving.load_model(args.run / name, compile=False) for name in names})
    best = config.get("best", {})
    print(f"{args.run}: {len(val[2])} validation tiles of {args.data}; the run kept step {best.get('step', '-')}")
    for step, (name, network) in enumerate(networks.items()):
        state.step, state._generate = step + 1, None  # a new network: predict and trace again
        row = state.val_row(type("Gan", (), {"generator": network})())
        print(f"{name:>28}  val_lsd {row['val_lsd']:7.3f} dB  val_recon {row['val_recon']:.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
