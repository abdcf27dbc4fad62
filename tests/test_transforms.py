"""The network's view of the pixels: the phase as instantaneous frequency and back."""

from __future__ import annotations

import numpy as np

from vocals2song import transforms


def test_instantaneous_frequency_round_trip():
    p = np.random.default_rng(0).uniform(-1, 1, (7, 300)).astype(np.float32)
    f = transforms.phase_to_if(p)
    assert f.min() >= -1 and f.max() <= 1
    back = transforms.if_to_phase(f)
    np.testing.assert_allclose(((back - p) + 1) % 2 - 1, 0, atol=1e-5)
    # a steady tone has a constant instantaneous frequency
    steady = ((np.arange(300) * 0.3 + 1) % 2 - 1)[None].astype(np.float32)
    np.testing.assert_allclose(transforms.phase_to_if(steady)[0, 1:], 0.3, atol=1e-5)
