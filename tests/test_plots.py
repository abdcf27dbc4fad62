"""The pictures in `vocals2song.plots`: valid PNGs, atomic writes, long planes, strips, history CSV."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from vocals2song import plots
from vocals2song.files import is_partial

SR, HOP = 44100, 256


def check_png(path: Path) -> Image.Image:
    """Open ``path`` as a PNG, check it is non-empty RGB(A), and that no partial file is left beside it."""
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        assert im.mode in ("RGB", "RGBA")
        assert im.width > 0 and im.height > 0
    assert not [p for p in path.parent.iterdir() if is_partial(p)]
    return im


def only_files(folder: Path) -> list[str]:
    """Names of everything in ``folder``, hidden temporaries included."""
    return sorted(p.name for p in folder.iterdir())


def plane(bins: int, frames: int, seed: int = 0) -> np.ndarray:
    """A (bins, frames) float32 plane in [0, 1]."""
    return np.random.default_rng(seed).random((bins, frames), dtype=np.float32)


def test_save_spectrograms(tmp_path):
    out = tmp_path / "pred.png"
    plots.save_spectrograms(out, [("input", plane(129, 200)), ("prediction", plane(129, 150, 1))],
                            sr=SR, hop=HOP, title="input vs prediction")
    check_png(out)
    assert only_files(tmp_path) == ["pred.png"]


def test_the_pictures_frequency_axis_is_log_frequency_up_to_8_khz():
    """A note is drawn at its pitch's height: A4's partial three octaves over the axis' A1 (108 rows of 3 a
    semitone), A6's two octaves higher still (72 rows: two octaves are the same height anywhere); the axis stops at
    8 kHz."""
    sr, nb_bins = 44100, 513
    u = np.zeros((nb_bins, 4), np.float32)
    for hz in (440.0, 1760.0):
        u[int(round(hz / (sr / 1024)))] = 1.0
    shown, octaves = plots.log_picture(u, sr)
    peaks = sorted(int(r) for r in np.argsort(shown[:, 0])[-2:])
    assert abs(peaks[0] - 108) <= 2 and abs(peaks[1] - peaks[0] - 72) <= 2, peaks
    assert plots.PICTURE_FMIN * 2 ** octaves == pytest.approx(8000.0, rel=0.03)


def test_save_spectrograms_long_plane_is_fast(tmp_path):
    u = plane(513, 40000)  # about 4 minutes at hop 256
    out = tmp_path / "long.png"
    start = time.perf_counter()
    plots.save_spectrograms(out, [("song", u)], sr=SR, hop=HOP)
    assert time.perf_counter() - start < 5.0
    check_png(out)


def test_max_pool_keeps_peaks():
    a = np.zeros((2, 10001), dtype=np.float32)
    a[1, 10000] = 1.0  # in the short last block
    a[0, 3] = 0.5
    pooled = plots._max_pool(a, 1, 4000)
    assert pooled.shape[1] <= 4000
    assert pooled[1, -1] == 1.0 and pooled[0].max() == 0.5
    assert plots._max_pool(a, 1, 20000) is a


@pytest.mark.parametrize("bad", [np.zeros(100), np.zeros((2, 3, 4)), np.zeros((10, 0))])
def test_save_spectrograms_bad_panel_leaves_nothing(tmp_path, bad):
    out = tmp_path / "bad.png"
    with pytest.raises(ValueError):
        plots.save_spectrograms(out, [("ok", plane(16, 8)), ("bad", bad)], sr=SR, hop=HOP)
    assert only_files(tmp_path) == []


def test_failure_while_saving_leaves_nothing(tmp_path, monkeypatch):
    """A crash half-way through writing the PNG leaves neither the target nor a temporary file."""
    def broken_savefig(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk on fire"):
        plots.save_spectrograms(tmp_path / "x.png", [("a", plane(16, 8))], sr=SR, hop=HOP)
    with pytest.raises(RuntimeError):
        plots.save_losses(tmp_path / "losses.png", [])
    assert only_files(tmp_path) == []


def test_failure_keeps_old_file(tmp_path):
    out = tmp_path / "pred.png"
    plots.save_spectrograms(out, [("a", plane(16, 8))], sr=SR, hop=HOP)
    before = out.read_bytes()
    with pytest.raises(ValueError):
        plots.save_spectrograms(out, [("a", np.zeros(5))], sr=SR, hop=HOP)
    assert out.read_bytes() == before
    assert only_files(tmp_path) == ["pred.png"]


def tiles(n_rows: int, h: int = 32, w: int = 48) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(5)
    return [tuple(rng.uniform(-1, 1, (h, w)).astype(np.float32) for _ in range(3)) for _ in range(n_rows)]


def test_save_strips(tmp_path):
    out = tmp_path / "strips.png"
    plots.save_strips(out, tiles(4))
    check_png(out)
    positive = [tuple((t + 1) / 2 for t in row) for row in tiles(2)]
    plots.save_strips(tmp_path / "positive.png", positive, titles=("a", "b", "c"))
    check_png(tmp_path / "positive.png")
    assert only_files(tmp_path) == ["positive.png", "strips.png"]


def test_save_strips_rejects_wrong_tile_count(tmp_path):
    with pytest.raises(ValueError):
        plots.save_strips(tmp_path / "s.png", [tuple(tiles(1)[0][:2])])
    assert only_files(tmp_path) == []


def test_strip_image_shape_and_colours():
    rows = tiles(3, h=32, w=48)
    img = plots.strip_image(rows)
    gap = plots.STRIP_GAP
    assert img.dtype == np.uint8
    assert img.shape == (3 * 32 + 2 * gap, 3 * 48 + 2 * gap, 3)
    # gaps are white
    assert (img[32:32 + gap] == 255).all()
    assert (img[:, 48:48 + gap] == 255).all()
    # -1 -> magma's darkest colour, +1 -> its brightest
    low = plots.strip_image([(np.full((2, 2), -1.0), np.full((2, 2), 1.0))])
    assert low.shape == (2, 4 + gap, 3)
    assert low[0, 0].sum() < 30 and low[0, -1].sum() > 600


def test_strip_image_uneven_rows_pad_white():
    rows = [(np.zeros((10, 20)), np.zeros((10, 5))), (np.zeros((4, 30)),)]
    img = plots.strip_image(rows)
    assert img.shape == (10 + 4 + plots.STRIP_GAP, 30, 3)
    assert (img[10 + plots.STRIP_GAP:, 30 - 5:] != 255).any()  # the 30-wide row fills its width
    assert (img[:10, 20 + plots.STRIP_GAP + 5:] == 255).all()  # the first row is padded on the right
    with pytest.raises(ValueError):
        plots.strip_image([(np.zeros((10, 2)), np.zeros((11, 2)))])


def history_rows(n: int) -> list[dict]:
    return [{"step": 100 * i, "gen_total": 5.0 - i * 0.1, "gen_gan": 0.7, "gen_recon": 0.4 - i * 0.01, "disc": 0.69,
             "val_recon": 0.5 - i * 0.01 if i % 5 == 0 else math.nan} for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 30])
def test_save_losses(tmp_path, n):
    out = tmp_path / "losses.png"
    plots.save_losses(out, history_rows(n))
    check_png(out)
    assert only_files(tmp_path) == ["losses.png"]


def test_save_losses_missing_and_none_values(tmp_path):
    history = [{"step": 1, "gen_gan": 0.7, "gen_recon": 0.3, "disc": 0.6},
               {"step": 2, "gen_gan": 0.6, "gen_recon": 0.2, "disc": 0.6, "val_recon": None},
               {"step": 3, "gen_gan": 0.5, "gen_recon": 0.2, "disc": 0.6, "val_recon": float("nan")}]
    plots.save_losses(tmp_path / "l.png", history)
    check_png(tmp_path / "l.png")


def test_save_metric_bars(tmp_path):
    report = {"model": {"l1": 0.21, "sdr": 4.2, "spectral_convergence": 0.5},
              "baselines": {"vocals_only": {"l1": 0.35, "sdr": -2.0, "spectral_convergence": float("nan")},
                            "mean_accompaniment": {"l1": 0.3, "sdr": 1.0}}}
    out = tmp_path / "metrics.png"
    plots.save_metric_bars(out, report)
    check_png(out)
    plots.save_metric_bars(tmp_path / "empty.png", {"model": {}, "baselines": {}})
    check_png(tmp_path / "empty.png")
    assert only_files(tmp_path) == ["empty.png", "metrics.png"]
