"""Listening pages: ``index.html`` with spectrogram pictures, audio players and metrics, opened from ``file://``.

`evaluate`, `predict` and `demo` write one beside their outputs. The page is one self-contained HTML file: inline
CSS and a few lines of inline script, no fonts, no CDN, no server. Every link is relative, so the folder can be
zipped, copied or opened on another machine. The audio it plays is a page copy of each waveform
(`write_page_audio`): MP3 when libsndfile can write it (about a tenth of a 16-bit WAV), else 16-bit PCM WAV. The
32-bit float WAVs the commands write stay as they are; the page copies live in ``OUT/audio/``.

The layout is one column that fits a phone (a ``viewport`` meta tag, images and players at 100% width, wide
tables scroll inside their box). When a player cannot load its file, the page says so under it.
"""

from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np

from vocals2song.files import atomic_path, write_bytes_atomic

PAGE = "index.html"
#: page audio lives here, relative to the page
AUDIO_DIR = "audio"
PAGE_AUDIO_FORMATS = ("mp3", "wav16")
#: the sample rates MPEG-1/2/2.5 layer III can hold; other rates get 16-bit WAV
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})


@dataclass
class MetricsTable:
    """Scores of several estimates against one reference: ``values[estimate][metric]``.

    ``higher_is_better[metric]`` says which way each metric points; the page marks the best estimate per metric.
    """

    values: Mapping[str, Mapping[str, float]]
    higher_is_better: Mapping[str, bool | None]  # None: nearer 0 is better
    caption: str = ""
    #: metrics shown without a winner (to read beside a reference's, e.g. notes per second beside the truth's)
    described: Sequence[str] = ()
    #: columns never marked best (a reference such as the truth)
    unranked: Sequence[str] = ()

    def best(self, metric: str) -> str | None:
        """The estimate that wins on ``metric`` (None when no value is finite, or for a described metric)."""
        if metric in self.described:
            return None
        scores = {name: v.get(metric) for name, v in self.values.items() if name not in self.unranked}
        finite = {n: float(s) for n, s in scores.items() if s is not None and math.isfinite(float(s))}
        if not finite:
            return None
        higher = self.higher_is_better.get(metric, False)
        if higher is None:  # nearer 0 is better (a loudness difference)
            return min(finite, key=lambda n: abs(finite[n]))
        return (max if higher else min)(finite, key=finite.get)


@dataclass
class PageItem:
    """One thing to listen to: a name, a picture, players (label -> audio file, in order), and scores."""

    name: str
    audio: Mapping[str, Path] = field(default_factory=dict)
    picture: Path | None = None
    metrics: MetricsTable | None = None
    note: str = ""
    links: Mapping[str, Path] = field(default_factory=dict)  # label -> a file to download (a MIDI file)


# --- page audio --------------------------------------------------------------------------------------

def page_audio_format() -> str:
    """``mp3`` when the installed libsndfile writes MP3 (1.1+), else ``wav16``."""
    import soundfile as sf

    return "mp3" if "MP3" in sf.available_formats() else "wav16"


def write_page_audio(path: str | os.PathLike, y: np.ndarray, sr: int, fmt: str | None = None) -> Path:
    """Write ``y`` ``(nb_samples,)`` or ``(nb_samples, nb_channels)`` as a page copy; returns the path written.

    ``path`` is given without a suffix: ``.mp3`` or ``.wav`` is appended to it (``.wav`` at a rate MP3 cannot
    hold, such as 96 kHz). Samples are clipped to
    [-1, 1] (16-bit and MP3 cannot hold more); the level is not changed, so the players compare loudness fairly.
    """
    import soundfile as sf

    fmt = fmt or page_audio_format()
    if fmt not in PAGE_AUDIO_FORMATS:
        raise ValueError(f"page audio format must be one of {PAGE_AUDIO_FORMATS}")
    if sr not in MP3_RATES:
        fmt = "wav16"
    y = np.clip(np.nan_to_num(np.asarray(y, dtype=np.float32)), -1.0, 1.0)
    path = Path(path)
    path = path.with_name(path.name + (".mp3" if fmt == "mp3" else ".wav"))
    with atomic_path(path) as tmp:
        if fmt == "mp3":
            # compression_level 0: libsndfile's best MP3 quality (variable bit rate, about 130 kbit/s on music)
            sf.write(str(tmp), y, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.0)
        else:
            sf.write(str(tmp), y, sr, format="WAV", subtype="PCM_16")
    return path


def page_audio_path(out_dir: str | os.PathLike, name: str, label: str) -> Path:
    """Where the page copy of ``label`` of item ``name`` goes: ``OUT/audio/<name>.<label>`` (suffix added later)."""
    return Path(out_dir) / AUDIO_DIR / f"{_slug(name)}.{_slug(label)}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# --- the page ----------------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light dark; --fg: #1b1b1f; --bg: #fbfbfd; --muted: #5d5d68; --line: #d5d5de; --win: #0a7d32; }
@media (prefers-color-scheme: dark) { :root { --fg: #ececf1; --bg: #16161a; --muted: #a4a4b0; --line: #3a3a44;
  --win: #5bd68a; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 12px; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
main { max-width: 960px; margin: 0 auto; }
h1 { font-size: 1.35em; margin: 0.2em 0 0.4em; overflow-wrap: anywhere; }
h2 { font-size: 1.1em; margin: 0 0 0.5em; overflow-wrap: anywhere; }
p { margin: 0.4em 0; }
.note, figcaption, caption { color: var(--muted); font-size: 0.9em; }
section { border-top: 1px solid var(--line); padding: 14px 0 10px; }
img { display: block; max-width: 100%; height: auto; margin: 0 0 8px; }
.players { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 6px 14px; }
figure { margin: 0; min-width: 0; }
figcaption { margin: 2px 0; overflow-wrap: anywhere; }
audio { display: block; width: 100%; }
.missing { color: #c0392b; font-size: 0.85em; }
.table { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }
caption { text-align: left; padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 5px; text-align: right; vertical-align: top; }
td { white-space: nowrap; }
th { font-weight: 600; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
td .note { display: block; font-size: 0.8em; }
td.best { color: var(--win); font-weight: 700; }
td.best::after { content: " \\2713"; }
"""

# Shows, under a player, that its file did not load (moved, deleted, or a format this browser cannot play).
SCRIPT = """
document.querySelectorAll('audio').forEach(function (a) {
  a.addEventListener('error', function () {
    var p = document.createElement('div');
    p.className = 'missing';
    p.textContent = 'cannot play ' + a.getAttribute('src');
    a.insertAdjacentElement('afterend', p);
  });
});
"""


def _src(path: Path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(path).resolve(), out_dir.resolve())
    return quote(Path(rel).as_posix(), safe="/")


def _number(value) -> str:
    if value is None:
        return "–"
    value = float(value)
    if not math.isfinite(value):
        return "∞" if value > 0 else ("−∞" if value < 0 else "–")
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.4g}"


def metrics_html(table: MetricsTable) -> str:
    """A table: one row per metric ("lower/higher is better"), one column per estimate, the winner marked (bold,
    a check mark, and its name in the cell's title)."""
    names = list(table.values)
    metrics = [m for m in (*table.higher_is_better, *table.described) if any(m in table.values[n] for n in names)]
    e = html.escape
    rows = ["<tr><th>metric</th>" + "".join(f"<th>{e(n).replace('_', '_<wbr>')}</th>" for n in names) + "</tr>"]
    for metric in metrics:
        best = table.best(metric)
        way = ("compare with the truth" if metric in table.described
               else {True: "higher", False: "lower", None: "nearer 0"}[table.higher_is_better[metric]] + " is better")
        cells = "".join(f"<td class=\"best\" title=\"best: {e(n)}\">{_number(table.values[n].get(metric))}</td>"
                        if n == best else f"<td>{_number(table.values[n].get(metric))}</td>" for n in names)
        label = f"{e(metric).replace('_', '_<wbr>')} <span class=\"note\">({way})</span>"
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    caption = f"<caption>{e(table.caption + ' ' if table.caption else '')}\u2713 marks the best of each row.</caption>"
    return f"<div class=\"table\"><table>{caption}{''.join(rows)}</table></div>"


def page_html(out_dir: str | os.PathLike, title: str, items: Sequence[PageItem], note: str = "",
              summary: MetricsTable | None = None) -> str:
    """The page's HTML; paths in ``items`` are made relative to ``out_dir`` (where the page goes)."""
    out_dir = Path(out_dir)
    e = html.escape
    parts = ["<!doctype html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
             f"<title>{e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
             f"<h1>{e(title)}</h1>"]
    if note:
        parts.append(f"<p class=\"note\">{e(note)}</p>")
    if summary is not None:
        parts.append(metrics_html(summary))
    for item in items:
        parts.append(f"<section id=\"{e(_slug(item.name))}\">")
        parts.append(f"<h2>{e(item.name)}</h2>")
        if item.note:
            parts.append(f"<p class=\"note\">{e(item.note)}</p>")
        if item.picture is not None:
            parts.append(f"<img src=\"{e(_src(item.picture, out_dir))}\" alt=\"spectrograms of {e(item.name)}\">")
        if item.audio:
            parts.append("<div class=\"players\">")
            for label, path in item.audio.items():
                parts.append(f"<figure><figcaption>{e(label)}</figcaption>"
                             f"<audio controls preload=\"metadata\" src=\"{e(_src(path, out_dir))}\"></audio>"
                             "</figure>")
            parts.append("</div>")
        if item.links:
            parts.append("<p class=\"links\">" + " · ".join(
                f"<a href=\"{e(_src(path, out_dir))}\" download>{e(label)}</a>" for label, path in item.links.items())
                + "</p>")
        if item.metrics is not None:
            parts.append(metrics_html(item.metrics))
        parts.append("</section>")
    parts += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_listening_page(out_dir: str | os.PathLike, title: str, items: Sequence[PageItem], note: str = "",
                         summary: MetricsTable | None = None) -> Path:
    """Write ``out_dir/index.html`` (atomically) and return its path. Files the items name must lie under
    ``out_dir`` for the folder to stay self-contained; they are linked by relative paths."""
    path = Path(out_dir) / PAGE
    write_bytes_atomic(path, page_html(out_dir, title, items, note, summary).encode("utf-8"))
    return path
