"""What training does along its steps: the history rows and their validation figures, and --keep-best."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from helpers import ROWS

keras = pytest.importorskip("keras")



@pytest.mark.slow
def test_training_logs_the_step_where_it_ends(train_data, tmp_path, run_cli):
    run = tmp_path / "run"
    result = run_cli("train", train_data, run, "--steps", "5", "--model", "tiny", "--log-every", "2",
                     "--checkpoint-every", "100", "--sample-every", "100")
    assert result.exit_code == 0, result.output
    steps = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 5]
    assert np.isfinite([float(c) for c in (run / "history.csv").read_text().splitlines()[-1].split(",")]).all()


@pytest.mark.parametrize("fmt, channels", [("rgb8", 2), ("rgba8", 4)])
def test_val_lsd_reads_the_magnitude_of_any_format(fmt, channels):
    """val_lsd is the dB distance of the magnitude planes as `net_to_planes` decodes them (rgba8's split
    magnitude included), over the network's rows: a tile against itself scores 0, against a copy 3 dB louder 3."""
    from types import SimpleNamespace

    from vocals2song import transforms
    from vocals2song.callbacks import RunState as run_state

    rng = np.random.default_rng(3)
    y = rng.uniform(-0.8, 0.6, (2, ROWS, 32, channels)).astype(np.float32)
    state = SimpleNamespace(meta=SimpleNamespace(format=fmt, range_db=100.0), val_y=y,
                            config={"codec": {"split": {"mag": 0.5}}, "model": {"phase_repr": "angle"}})
    state.magnitudes = lambda x: run_state.magnitudes(state, x)
    mags = state.magnitudes(y)
    u = transforms.net_to_planes(y[1], fmt, {"mag": 0.5}, "angle")[0]
    np.testing.assert_allclose(mags[1], u[-2::-1], atol=1e-6)
    assert run_state.val_lsd(state, y) == 0.0
    louder = y.copy()
    louder[..., 0] += 0.06  # +3 dB at range 100 (net units span 2 for 100 dB)
    if fmt == "rgba8":
        louder[..., 2] += 0.06
    assert run_state.val_lsd(state, louder) == pytest.approx(3.0, abs=1e-4)


@pytest.mark.parametrize("start, kept", [(True, [0, 0, 20, 20, 40]), (False, [0, 0, 20, 20, 20])])
def test_keep_best_keeps_the_lowest_val_lsd_by_a_margin_over_the_start(start, kept):
    """Keep-best minimises val_lsd, whatever val_recon does (step 30's val_recon is the lowest, its val_lsd is not).
    A trained generator must be KEEP_BEST_MARGIN under the start's figure (step 10's val_lsd 6.95 is not); after that
    the lowest wins, by however little (the last row). A run that recorded no start needs the margin under the kept
    generator: the last row is not kept."""
    from types import SimpleNamespace

    from vocals2song.callbacks import History, describe_best

    state = SimpleNamespace(is_chief=True, best=None, best_weights=None, step=0, config={},
                            cfg=SimpleNamespace(keep_best_by="val_lsd"))
    callback = History(state)
    weights = []
    model = SimpleNamespace(generator=SimpleNamespace(get_weights=lambda: [state.step]),
                            averaged=contextlib.nullcontext)
    callback.set_model(model)
    for step, recon, lsd in ((0, 0.50, 7.0), (10, 0.40, 6.95), (20, 0.45, 6.5), (30, 0.30, 6.8), (40, 0.299, 6.48)):
        state.step = step
        callback.keep_if_best({"val_recon": recon, "val_lsd": lsd, "val_harmony": 0.1})
        weights.append(state.best_weights[0])
        if step == 0:
            assert state.config["keep_best_start"] == {"val_recon": 0.5, "val_lsd": 7.0, "val_harmony": 0.1}
            if not start:
                del state.config["keep_best_start"]
    assert weights == kept and state.best["step"] == kept[-1]
    assert set(state.best) == {"step", "val_recon", "val_lsd", "val_harmony"}
    config = {**state.config, "best": state.best, "training": {"keep_best_by": "val_lsd"},
              "model": {"generator": "unet"}}
    said = describe_best(config)  # what train tells the user it kept, and against what
    assert said.startswith(f"keep-best kept step {kept[-1]}: val_lsd {state.best['val_lsd']:.3f}")
    assert ("untrained start's" in said) == start
    assert "untrained start" in describe_best({**config, "best": {**state.best, "step": 0}})
    assert describe_best({**config, "best": None}) is None
    old = {**config, "training": {"keep_best_by": "val_lsd", "retired": {"keep_best_by": "val_l1"}}}  # as upgraded
    assert describe_best(old).startswith(f"keep-best kept step {kept[-1]}: val_recon")


def test_keep_best_by_val_harmony_keeps_the_best_chords_while_the_distance_stays_guarded():
    """keep_best_by val_harmony: the highest val_harmony wins (by HARMONY_MARGIN), but only among the rows whose
    val_lsd is within LSD_GUARD_DB of the start's: step 20's chords are the best but its val_lsd 1.5 dB worse."""
    import contextlib
    from types import SimpleNamespace

    from vocals2song.callbacks import HARMONY_MARGIN, LSD_GUARD_DB, History, describe_best

    state = SimpleNamespace(is_chief=True, best=None, best_weights=None, step=0, config={},
                            cfg=SimpleNamespace(keep_best_by="val_harmony"))
    callback = History(state)
    callback.set_model(SimpleNamespace(generator=SimpleNamespace(get_weights=lambda: [state.step]),
                                       averaged=contextlib.nullcontext))
    kept = []
    for step, lsd, harmony in ((0, 7.0, 0.30), (10, 7.5, 0.305), (20, 8.5, 0.60), (30, 7.9, 0.45), (40, 6.0, 0.44)):
        state.step = step
        callback.keep_if_best({"val_recon": 0.1, "val_lsd": lsd, "val_harmony": harmony})
        kept.append(state.best_weights[0])
    assert LSD_GUARD_DB == 1.0 and HARMONY_MARGIN == 0.01
    assert kept == [0, 0, 0, 30, 30]  # 10: under the margin; 20: past the guard; 40: not better than 30
    said = describe_best({**state.config, "best": state.best, "training": {"keep_best_by": "val_harmony"},
                          "model": {"generator": "powersum-mean"}})
    assert said.startswith("keep-best kept step 30: val_harmony 0.450") and "val_lsd 7.900 dB" in said
