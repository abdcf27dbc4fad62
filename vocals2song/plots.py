"""The pictures the tool writes: spectrograms, validation strips, loss curves and metric bars.

Everything is drawn with matplotlib's Agg canvas on a private ``Figure`` (no pyplot, so no global
state and no display), and every file is written atomically through `atomic_path`: a failure while
drawing or saving leaves the target absent (or its old content), never half-written.

Orientation conventions:

- spectrogram planes (`save_spectrograms`) are ``(nb_bins, nb_frames)`` with the LOWEST frequency in
  row 0, as the codec stores them, and are drawn with ``origin="lower"``;
- validation tiles (`save_strips`, `strip_image`) are ``(nb_rows, nb_frames)`` images with the
  HIGHEST frequency in row 0, and are drawn with ``origin="upper"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vocals2song.files import atomic_path
from vocals2song.runfolder import HISTORY_COLUMNS

#: spectrogram planes are max-pooled to at most this many columns before drawing.
MAX_DISPLAY_COLUMNS = 4000
#: white gap, in pixels, between tiles in `strip_image`.
STRIP_GAP = 2
DPI = 100
CMAP = "magma"
COLORBAR_LABEL = "magnitude (0 = floor, 1 = top)"


# ---------------------------------------------------------------------------------------------- helpers


def _new_figure(width: float, height: float) -> Figure:
    """A Figure attached to its own Agg canvas (no pyplot), with constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike, dpi: int = DPI) -> None:
    """Write ``fig`` to ``path`` as PNG atomically, then free the figure."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        fig.clear()


def _max_pool(a: np.ndarray, axis: int, limit: int) -> np.ndarray:
    """Max-pool ``a`` along ``axis`` in blocks so that it has at most ``limit`` entries there.

    The last block may be shorter; NaN propagates. Returns ``a`` itself when already small enough.
    """
    n = a.shape[axis]
    if n <= limit:
        return a
    factor = math.ceil(n / limit)
    return np.maximum.reduceat(a, np.arange(0, n, factor), axis=axis)


def _as_plane(a: Any, what: str) -> np.ndarray:
    """``a`` as a non-empty 2-D float32 array, or ValueError naming ``what``."""
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what}: empty array of shape {arr.shape}")
    return arr


# ---------------------------------------------------------------------------------------------- spectrograms


#: the spectrogram pictures' frequency axis: log-frequency, 3 rows per semitone from A1 to 8 kHz, so that a note
#: is a line and an interval the same height in every register
PICTURE_FMIN, PICTURE_FMAX, PICTURE_ROWS_PER_SEMITONE = 55.0, 8000.0, 3


def log_picture(u: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """A plane ``(nb_bins, nb_frames)``, lowest frequency first, on the pictures' log-frequency rows (lowest
    first, 3 a semitone from `PICTURE_FMIN`), and how many octaves over `PICTURE_FMIN` they span."""
    from vocals2song.transforms import log_frequency_matrices

    top = min(PICTURE_FMAX, sr / 2)
    per_octave = 12 * PICTURE_ROWS_PER_SEMITONE
    nb_rows = int(np.floor(per_octave * np.log2(top / PICTURE_FMIN))) + 1
    to_log = log_frequency_matrices(u.shape[0], sr, nb_rows, PICTURE_FMIN, PICTURE_ROWS_PER_SEMITONE)[0]
    return np.clip(to_log @ u, 0.0, 1.0), nb_rows / per_octave


def log_tile(tile: np.ndarray, sr: int) -> np.ndarray:
    """A network tile's magnitude ``(nb_rows, nb_frames)`` in [0, 1], highest frequency first and without the
    Nyquist row, on the pictures' log-frequency rows (`log_picture`), highest first as strips are drawn."""
    plane = np.concatenate([np.asarray(tile, np.float32)[::-1], np.zeros((1, tile.shape[1]), np.float32)])
    return log_picture(plane, sr)[0][::-1]


def save_spectrograms(path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray]], sr: int, hop: int,
                      title: str | None = None) -> None:
    """Draw magnitude planes stacked vertically on a shared time axis and write them as PNG.

    ``panels``: ``(label, u)`` pairs, ``u`` of shape ``(nb_bins, nb_frames)`` in [0, 1] with the lowest
    frequency in row 0 (frame counts may differ between panels). The x axis is in seconds
    (``frames * hop / sr``), the y axis a log-frequency axis from `PICTURE_FMIN` to `PICTURE_FMAX` (or Nyquist),
    ticked at every A (the planes mapped by `transforms.log_frequency_matrices`); colormap magma, 0..1, one shared
    colorbar. Long planes are max-pooled to at most `MAX_DISPLAY_COLUMNS` columns for display.
    """
    if not panels:
        raise ValueError("save_spectrograms: no panels")
    if sr <= 0 or hop <= 0:
        raise ValueError(f"save_spectrograms: sr and hop must be positive, got sr={sr}, hop={hop}")
    planes = [(str(label), _as_plane(u, f"panel {label!r}")) for label, u in panels]

    longest = max(u.shape[1] for _, u in planes) * hop / sr
    fig = _new_figure(12.0, 0.6 + 2.2 * len(planes) + (0.4 if title else 0.0))
    axes = fig.subplots(len(planes), 1, sharex=True, squeeze=False)[:, 0]
    image = None
    for ax, (label, u) in zip(axes, planes):
        duration = u.shape[1] * hop / sr
        shown, octaves = log_picture(_max_pool(u, 1, MAX_DISPLAY_COLUMNS), sr)
        image = ax.imshow(shown, origin="lower", aspect="auto", cmap=CMAP, vmin=0.0, vmax=1.0,
                          extent=(0.0, duration, 0.0, octaves), interpolation="nearest")
        ax.set_title(label, loc="left", fontsize="medium")
        ax.set_ylabel("frequency (Hz)")
        ticks = np.arange(0, int(octaves) + 1)
        ax.set_yticks(ticks, [f"{PICTURE_FMIN * 2 ** k:g}" for k in ticks])
        ax.set_ylim(0.0, octaves)
    axes[0].set_xlim(0.0, longest)
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=list(axes), label=COLORBAR_LABEL, fraction=0.03, pad=0.01)
    if title:
        fig.suptitle(title)
    _save(fig, path)


# ---------------------------------------------------------------------------------------------- strips


def _strip_range(rows: Sequence[Sequence[np.ndarray]]) -> tuple[float, float]:
    """(0, 1) when every tile is non-negative, else (-1, 1)."""
    finite_min = min((float(np.nanmin(t)) for row in rows for t in row if np.isfinite(t).any()), default=0.0)
    return (0.0, 1.0) if finite_min >= 0.0 else (-1.0, 1.0)


def save_strips(path: str | os.PathLike, rows: Sequence[Sequence[np.ndarray]],
                titles: Sequence[str] = ("input", "target", "prediction"),
                value_range: tuple[float, float] | None = None) -> None:
    """Draw a ``len(rows) x len(titles)`` grid of validation tiles and write it as PNG.

    ``rows``: one tuple per fixed validation tile, each holding ``len(titles)`` arrays of shape
    ``(nb_rows, nb_frames)`` in image orientation (highest frequency in row 0, drawn with
    ``origin="upper"``). ``value_range`` is the colour scale; by default (0, 1) when every value is
    non-negative, else (-1, 1). No ticks; column titles on the first row.
    """
    if not rows:
        raise ValueError("save_strips: no rows")
    tiles = [[_as_plane(t, f"row {i}, {titles[j] if j < len(titles) else j}") for j, t in enumerate(row)]
             for i, row in enumerate(rows)]
    for i, row in enumerate(tiles):
        if len(row) != len(titles):
            raise ValueError(f"save_strips: row {i} has {len(row)} tiles for {len(titles)} titles")
    lo, hi = value_range if value_range is not None else _strip_range(tiles)

    height, width = tiles[0][0].shape
    cell_w = 2.4
    cell_h = float(np.clip(cell_w * height / width, 0.6, 6.0))
    fig = _new_figure(cell_w * len(titles) + 0.3, cell_h * len(tiles) + 0.5)
    axes = fig.subplots(len(tiles), len(titles), squeeze=False)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            ax = axes[i, j]
            ax.imshow(tile, origin="upper", aspect="auto", cmap=CMAP, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize="medium")
    _save(fig, path)


def strip_image(rows: Sequence[Sequence[np.ndarray]],
                value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """The tiles of ``rows`` as one RGB picture, for TensorBoard image summaries.

    Each row's tiles (2-D, same height within a row, highest frequency in row 0) are joined
    horizontally and the rows vertically, with `STRIP_GAP` white pixels between; shorter rows are
    padded with white on the right. Values are mapped from ``value_range`` (default [-1, 1]) to
    [0, 1], clipped (NaN counts as the low end), and coloured with magma.

    Returns ``uint8`` of shape ``(sum(row heights) + STRIP_GAP * (len(rows) - 1), max(row widths), 3)``
    where a row's width is the sum of its tiles' widths plus ``STRIP_GAP`` per gap.
    """
    if not rows:
        raise ValueError("strip_image: no rows")
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"strip_image: empty value range {value_range}")
    cmap = matplotlib.colormaps[CMAP]
    white = np.full(3, 255, dtype=np.uint8)

    def colour(tile: np.ndarray) -> np.ndarray:
        x = np.nan_to_num((tile - lo) / (hi - lo), nan=0.0, posinf=1.0, neginf=0.0)
        return cmap(np.clip(x, 0.0, 1.0), bytes=True)[..., :3]

    strips = []
    for i, row in enumerate(rows):
        tiles = [_as_plane(t, f"row {i}, tile {j}") for j, t in enumerate(row)]
        if not tiles:
            raise ValueError(f"strip_image: row {i} is empty")
        if len({t.shape[0] for t in tiles}) != 1:
            raise ValueError(f"strip_image: row {i} mixes tile heights {[t.shape[0] for t in tiles]}")
        h = tiles[0].shape[0]
        parts = []
        for j, t in enumerate(tiles):
            if j:
                parts.append(np.broadcast_to(white, (h, STRIP_GAP, 3)))
            parts.append(colour(t))
        strips.append(np.concatenate(parts, axis=1))

    width = max(s.shape[1] for s in strips)
    height = sum(s.shape[0] for s in strips) + STRIP_GAP * (len(strips) - 1)
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    y = 0
    for s in strips:
        out[y:y + s.shape[0], :s.shape[1]] = s
        y += s.shape[0] + STRIP_GAP
    return out


# ---------------------------------------------------------------------------------------------- losses


def _value(row: Mapping[str, Any], key: str) -> float:
    """``row[key]`` as float; NaN when missing, None or empty."""
    v = row.get(key)
    if v is None or v == "":
        return math.nan
    return float(v)


def save_losses(path: str | os.PathLike, history: Sequence[Mapping[str, Any]]) -> None:
    """Plot the training history and write it as PNG.

    ``history``: dicts with keys `runfolder.HISTORY_COLUMNS` (floats; any
    but ``step`` may be NaN, None or missing). Top panel: ``gen_gan`` and ``disc``; middle panel: ``gen_recon``
    and ``val_recon`` (its finite points only, with markers); bottom panel: ``val_lsd`` in dB (when any row has
    one: histories from before it have none), against ``step``. An empty history gives a figure saying "no
    history yet".
    """
    fig = _new_figure(10.0, 6.5)
    fig.suptitle("training losses")
    if not history:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no history yet", ha="center", va="center", fontsize="x-large", transform=ax.transAxes)
        ax.set_axis_off()
        _save(fig, path)
        return

    rows = sorted(history, key=lambda r: _value(r, "step"))
    step = np.array([_value(r, "step") for r in rows])
    series = {k: np.array([_value(r, k) for r in rows]) for k in HISTORY_COLUMNS[1:]}
    marker = "o" if len(rows) < 3 else None  # a lone point draws no line

    has_lsd = bool(np.isfinite(series["val_lsd"]).any())
    axes = fig.subplots(3 if has_lsd else 2, 1, sharex=True)
    top, middle = axes[0], axes[1]
    top.plot(step, series["gen_gan"], label="generator GAN", marker=marker)
    top.plot(step, series["disc"], label="discriminator", marker=marker)
    top.set_ylabel("GAN loss")
    middle.plot(step, series["gen_recon"], label="generator (train)", marker=marker)
    finite = np.isfinite(series["val_recon"])
    middle.plot(step[finite], series["val_recon"][finite], label="validation", marker="o")
    middle.set_ylabel("reconstruction loss")
    if has_lsd:
        finite = np.isfinite(series["val_lsd"])
        axes[2].plot(step[finite], series["val_lsd"][finite], label="lsd (validation)", marker="o", color="C2")
        axes[2].set_ylabel("lsd dB")
    axes[-1].set_xlabel("step")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    _save(fig, path)


# ---------------------------------------------------------------------------------------------- metrics


def save_metric_bars(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    """Draw one small bar chart per metric comparing the model with each baseline; write it as PNG.

    ``report``: ``{"model": {metric: value}, "baselines": {name: {metric: value}}}`` with float values
    (NaN or missing values are shown as "n/a"). Metrics are those of the model, then any only the
    baselines have.
    """
    systems: dict[str, Mapping[str, Any]] = {"model": report.get("model") or {}}
    for name, values in (report.get("baselines") or {}).items():
        systems[str(name)] = values or {}
    metrics: list[str] = []
    for values in systems.values():
        metrics += [m for m in values if m not in metrics]

    if not metrics:
        fig = _new_figure(6.0, 3.0)
        fig.suptitle("evaluation: model vs baselines")
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no metrics", ha="center", va="center", fontsize="x-large", transform=ax.transAxes)
        ax.set_axis_off()
        _save(fig, path)
        return

    ncols = min(len(metrics), 3)
    nrows = math.ceil(len(metrics) / ncols)
    names = list(systems)
    fig = _new_figure(1.0 + 0.9 * len(names) * ncols, 0.6 + 2.8 * nrows)
    fig.suptitle("evaluation: model vs baselines")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = [f"C{i}" for i in range(len(names))]
    x = np.arange(len(names))
    for ax, metric in zip(axes, metrics):
        values = np.array([_value(systems[n], metric) for n in names], dtype=float)
        finite = np.isfinite(values)
        bars = ax.bar(x, np.where(finite, values, 0.0), color=colours)
        labels = [f"{v:.3g}" if ok else "n/a" for v, ok in zip(values, finite)]
        ax.bar_label(bars, labels=labels, fontsize="x-small", padding=1)
        ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize="small")
        ax.set_title(metric, fontsize="medium")
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.margins(y=0.2)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    _save(fig, path)
