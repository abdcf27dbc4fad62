"""The gate (`vocals2song.gate`): where the vocals sound, and its smoothing."""

from __future__ import annotations

import numpy as np

import vocals2song.gate as gates


def test_the_gate_loses_its_short_runs_and_keeps_its_long_ones():
    """Real singing fading out toggled the gate every few frames, and the accompaniment stuttered on and off: runs of
    up to ``2 * radius`` frames go, longer ones stay (fails without the closing, or with a window two frames too
    wide)."""
    runs = [(1, 30), (0, 4), (1, 1), (0, 1), (1, 3), (0, 40), (1, 4), (0, 30), (1, 5), (0, 5), (1, 30)]
    gate = np.concatenate([np.full(n, bool(v)) for v, n in runs])
    smoothed = gates.smooth_gate(gate, 2)  # runs of up to 4 frames go
    want = [(1, 39), (0, 74), (1, 5), (0, 5), (1, 30)]  # gaps of 4 and 1 close; the blip of 4 goes; runs of 5 stay
    np.testing.assert_array_equal(smoothed, np.concatenate([np.full(n, bool(v)) for v, n in want]))
    np.testing.assert_array_equal(gates.smooth_gate(gate, 0), gate)
    assert gates.gate_radius(44100, 256) == 8  # runs of up to 93 ms at the default geometry
