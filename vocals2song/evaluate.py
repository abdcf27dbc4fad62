"""`vocals2song evaluate RUN DATA --out DIR`: score a trained model on held-out pairs against baselines.

For every pair of DATA's split (default ``test``), the model predicts the song from the vocals image, and the
prediction is compared with the true mixture, decoded from the target image (for an accompaniment model: vocals +
accompaniment). The baselines of `baselines.py` go through the same metrics: ``vocals_only`` (the vocals alone)
and ``mean_accompaniment`` (the vocals plus the training set's mean accompaniment power where the vocals sound).

Metrics (`metrics.py`): snr, si_sdr, lsd, spectral_convergence and mrstft against the true waveform, and what a
listener hears: the loudness difference, lsd per band, frame-rate buzz, and harmony (chroma correlation of the
added accompaniment with the true one). SNR and SI-SDR reward copying the one true waveform; for a generative
model lsd, mrstft, loudness, buzz and harmony say more.

Writes ``report.json`` (``{"model": {metric: median}, "baselines": {name: {metric: median}}, "means": {...},
"best_baseline": name, "items": [...]}``), ``report.md``, ``metrics.png``, ``items/<name>.png`` spectrogram
comparisons for a few items, and ``index.html``, a listening page with those pictures, players for the vocals, the
true mixture, the model's song and each baseline (page copies in ``audio/``), and the metrics with the winner
marked. With `museval` installed, BSSEval v4 SDR (``bss_sdr``) joins the metrics. """

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from vocals2song import baselines, codec, metrics
from vocals2song.data import match_pairs
from vocals2song.errors import Vocals2SongError, run_each
from vocals2song.files import write_bytes_atomic

BASELINES = tuple(baselines.BASELINES)
#: lsd differences smaller than this (dB) are reported as level, not as a win
TIE_DB = 0.05
#: items that get a spectrogram picture
PICTURES = 3


_read = baselines.read_image_meta
_spectrogram = baselines.image_spectrogram


def _train_pairs(data: Path, config: dict, voc: str, tar: str) -> list[tuple[str, Path, Path]]:
    """Training pairs for the mean_accompaniment baseline: DATA's train split, else the run's own data."""
    for root in (data, Path(config["data"]["root"])):
        if (root / "train" / voc).is_dir():
            return match_pairs(root / "train" / voc, root / "train" / tar)
    return []


def evaluate(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, split: str = "test",
             progress: Callable | None = None, predictor=None, phase: str = "model", judge_notes: bool = True) -> dict:
    """Evaluate RUN on DATA's ``split``; writes the report files into ``out`` and returns the report.

    ``judge_notes``: also transcribe every added accompaniment (song minus vocals) and judge its notes against the
    true accompaniment's and the sung melody (`vocals2song.notes`); a missing transcriber is a one-line error
    before anything runs."""
    from vocals2song import plots
    from vocals2song.predict import check_phase, load_predictor, predict_song

    check_phase(phase)
    song_phase = "random" if phase == "vocals" else "griffinlim"  # the baselines lay their power on as the model does
    if judge_notes:
        from vocals2song import notes

        notes.require()
    data, out = Path(data), Path(out)
    predictor = predictor or load_predictor(run)
    config = predictor.config
    voc = config["training"]["input_subdir"]
    tar = config["training"]["target_subdir"] or config["target"]
    if not (data / split / voc).is_dir():
        raise Vocals2SongError(f"no {split}/{voc}/ folder; give a sound2image dataset with a {split} split", data,
                               usage=True)
    pairs = match_pairs(data / split / voc, data / split / tar)
    if not pairs:
        raise Vocals2SongError(f"no image pairs in {split}/{voc}/ and {split}/{tar}/", data, usage=True)
    train_pairs = _train_pairs(data, config, voc, tar)
    stats = baselines.stats_from_images(train_pairs, config["target"]) if train_pairs else None
    bsseval = importlib.util.find_spec("museval") is not None
    items: list[dict] = []
    listened: dict[str, dict[str, Path]] = {}  # pictured item -> label -> page audio

    def work(pair: tuple[str, Path, Path]) -> None:
        name, voc_path, tar_path = pair
        pixels, meta = _read(voc_path)
        tar_pixels, tar_meta = _read(tar_path)
        Z_voc = _spectrogram(pixels, meta)
        vocals = codec.spectrogram_to_audio(Z_voc, meta)
        truth = codec.decode_audio(tar_pixels, tar_meta, path=tar_path)
        if config["target"] == "accompaniment":
            truth = truth + vocals
        pred = predict_song(vocals, pixels, meta, predictor, phase=phase, add_vocals=True)
        estimates = {"model": pred.song, "vocals_only": vocals}  # the vocals themselves: the page shares the player
        for baseline, make in baselines.BASELINES.items():
            if (stats is not None or baseline == "parallel") and baseline not in estimates:  # parallel needs no stats
                estimates[baseline] = codec.spectrogram_to_audio(make(Z_voc, stats, meta, phase=song_phase), meta)
        item = {"name": Path(name).stem, "track": (meta.source or {}).get("track"), "seconds": meta.length / meta.sr}
        for key, estimate in estimates.items():
            estimate = np.asarray(estimate[: len(truth)], dtype=np.float64)
            item[key] = {**metrics.compute_all(truth, estimate),
                         **metrics.music_metrics(vocals[: len(truth)], truth, estimate, meta.sr)}
            if bsseval:
                item[key]["bss_sdr"] = bss_sdr(truth, estimate, meta.sr)
        if judge_notes:
            judged = judge_items(vocals[: len(truth)], truth, estimates, meta.sr)
            item["truth"] = judged.pop("truth")
            for key, scores in judged.items():
                item[key].update(scores)
        items.append(item)
        if len(items) <= PICTURES:
            u_true = codec.decode_planes(tar_pixels, tar_meta)[0]
            plots.save_spectrograms(out / "items" / f"{item['name']}.png",
                                    [("vocals", pred.u_in), (f"true {config['target']}", u_true),
                                     (f"predicted {config['target']}", pred.u_out)], meta.sr, meta.hop,
                                    title=item["name"])
            listened[item["name"]] = page_audio(out, item["name"], meta.sr, vocals, truth, estimates)

    failures = run_each(pairs, work, lambda p: p[1], progress)
    if not items:
        raise Vocals2SongError(f"every pair failed; first: {failures[0].error}", data)
    report = _report(items, run, data, split, stats is not None)
    report["phase"] = phase
    if judge_notes:
        report["truth"] = {m: v["median"] for m, v in metrics.aggregate([i["truth"] for i in items]).items()}
        report["tracks"] = _note_tracks(items, ["model", *report["baselines"]])
    if bsseval:
        report["higher_is_better"]["bss_sdr"] = True
    report["failures"] = [f.error for f in failures]
    write_bytes_atomic(out / "report.json", (json.dumps(report, indent=2, allow_nan=True) + "\n").encode())
    write_bytes_atomic(out / "report.md", markdown(report).encode())
    plots.save_metric_bars(out / "metrics.png", {"model": report["model"], "baselines": report["baselines"]})
    write_page(out, report, listened)
    return report


#: what `judge_items` reports of each estimate's added accompaniment (`notes.judge`), and of the truth's own
NOTE_METRICS = ("notes_per_s", "pc_f1", "note_f1", "consonance", "polyphony")
TRUTH_NOTE_METRICS = ("notes_per_s", "consonance", "polyphony")


def judge_items(vocals: np.ndarray, truth: np.ndarray, estimates: dict[str, np.ndarray], sr: int) -> dict:
    """The note judge on one item: each estimate's added accompaniment (estimate minus vocals) transcribed and
    judged against the true accompaniment (truth minus vocals) and the sung melody. Returns ``{"truth": {...},
    estimate: {...}}`` with `NOTE_METRICS` per estimate and `TRUTH_NOTE_METRICS` of the truth; each audio is
    transcribed once (an estimate that adds nothing is judged as silence without transcribing)."""
    from vocals2song import notes

    n = len(truth)
    sung = notes.transcribe(vocals[:n], sr)
    true_acc = notes.transcribe(truth - vocals[:n], sr)
    judged: dict[str, dict] = {}
    for key, estimate in estimates.items():
        added = np.asarray(estimate[:n], dtype=np.float64) - vocals[:n]
        heard = (notes.transcribe(added, sr) if np.any(np.abs(added) > 1e-6)
                 else notes.Notes.from_events([], n / sr))
        scores = notes.judge(heard, true_acc, sung)
        judged[key] = {m: scores[m] for m in NOTE_METRICS}
        judged.setdefault("truth", {m: scores[f"truth_{m}"] for m in TRUTH_NOTE_METRICS})
    return judged


def _note_tracks(items: list[dict], names: list[str]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per track (its items averaged, `_mean`): each estimate's note figures and the truth's."""
    return {track: {"truth": {m: _mean(group, "truth", m) for m in TRUTH_NOTE_METRICS},
                    **{n: {m: _mean(group, n, m) for m in NOTE_METRICS} for n in names}}
            for track, group in sorted(_by_track(items).items())}


def page_audio(out: Path, name: str, sr: int, vocals: np.ndarray, truth: np.ndarray,
               estimates: dict[str, np.ndarray]) -> dict[str, Path]:
    """Page copies of one item's audio in ``out/audio/``: vocals, true mixture, then every estimate (one that is
    the vocals themselves, as ``vocals_only``, shares the vocals' player)."""
    from vocals2song.listen import page_audio_path, write_page_audio

    waves = {"vocals": vocals, "true mixture": truth}
    waves.update({key: y for key, y in estimates.items() if y is not vocals})
    return {label: write_page_audio(page_audio_path(out, name, label), y[: len(truth)], sr)
            for label, y in waves.items()}


def write_page(out: Path, report: dict, listened: dict[str, dict[str, Path]]) -> Path:
    """OUT/index.html: the medians, then each pictured item with its players and its own metrics."""
    from vocals2song.listen import MetricsTable, PageItem, write_listening_page

    higher = report["higher_is_better"]
    names = ["model", *report["baselines"]]
    described = [m for m in ("notes_per_s", "polyphony") if m in report["model"]]
    truth = {"truth": report["truth"]} if "truth" in report else {}
    medians = MetricsTable({**{n: report["model"] if n == "model" else report["baselines"][n] for n in names},
                            **truth}, higher, f"Median over {report['nb_items']} items of the {report['split']} "
                           "split" + ("; the notes are of the added accompaniment (song minus vocals)." if truth
                                      else "."), described, ["truth"])
    by_name = {item["name"]: item for item in report["items"]}
    items = [PageItem(name, audio, out / "items" / f"{name}.png",
                      MetricsTable({n: by_name[name][n] for n in [*names, "truth"] if n in by_name[name]}, higher,
                                   "This item against its true mixture.", described, ["truth"]))
             for name, audio in listened.items()]
    shared = [n for n in names if listened and n not in next(iter(listened.values()))]  # e.g. vocals_only
    note = (f"Run {report['run']}, data {report['data']}. Players are named like the table's columns"
            + (f"; {' and '.join(shared)} plays the same as the vocals." if shared else "."))
    return write_listening_page(out, f"Evaluation: {Path(str(report['run'])).name}", items, note, medians)


def bss_sdr(truth: np.ndarray, estimate: np.ndarray, sr: int) -> float:
    """BSSEval v4 SDR (museval, when installed): median over 1 s windows, in dB."""
    import museval

    sdr = museval.evaluate(truth[None, :, None], estimate[None, :, None], win=sr, hop=sr)[0]
    return float(np.nanmedian(sdr))


def _report(items: list[dict], run, data, split: str, with_mean: bool) -> dict:
    names = ["model", *[b for b in BASELINES if (with_mean or b != "mean_accompaniment") and b in items[0]]]
    agg = {name: metrics.aggregate([item[name] for item in items]) for name in names}
    medians = {name: {m: v["median"] for m, v in agg[name].items()} for name in names}
    means = {name: {m: v["mean"] for m, v in agg[name].items()} for name in names}
    higher = {**metrics.HIGHER_IS_BETTER, **metrics.MUSIC_HIGHER_IS_BETTER}
    if "truth" in items[0]:  # judged by notes: the figures with a direction count; notes/s is read beside the truth's
        from vocals2song.notes import HIGHER_IS_BETTER as NOTES_HIGHER

        higher.update(NOTES_HIGHER)
    return {
        "run": str(run), "data": str(data), "split": split, "nb_items": len(items),
        # paired: a model can win on the pooled median and still lose item by item; this counts the items
        "model_better_on": {b: {m: sum(_beats(item["model"].get(m), item[b].get(m), h) for item in items)
                                for m, h in higher.items()} for b in names[1:]},
        # the same by track (each track's items averaged): a track's segments share its instruments and tune, so
        # the tracks, not the items, are the independent draws (38 test tunes of the chorales)
        "nb_tracks": len(tracks := _by_track(items)),
        "model_better_on_tracks": {b: {m: sum(_beats(_mean(group, "model", m), _mean(group, b, m), h)
                                           for group in tracks.values()) for m, h in higher.items()}
                                   for b in names[1:]},
        "higher_is_better": higher,
        "best_baseline": min(names[1:], key=lambda b: medians[b]["lsd"]),
        "model": medians["model"],
        "baselines": {b: medians[b] for b in names[1:]},
        "means": {"model": means["model"], "baselines": {b: means[b] for b in names[1:]}},
        "items": items,
    }


def _counts_table(title: str, paired: dict[str, dict[str, int]], metrics_order: dict) -> list[str]:
    """report.md lines: ``title``, then a table of counts, a row per metric and a column per baseline."""
    lines = ["", title, "", "| metric | " + " | ".join(paired) + " |", "|---|" + "---|" * len(paired)]
    return lines + [f"| {m} | " + " | ".join(str(paired[b][m]) for b in paired) + " |" for m in metrics_order
                    if all(m in paired[b] for b in paired)]


def notes_markdown(report: dict) -> list[str]:
    """report.md's note section: the medians of the note figures beside the truth's, then per track."""
    names = ["model", *report["baselines"]]
    lines = ["", "## Notes", "", "The added accompaniment (song minus vocals) transcribed with basic-pitch and judged "
             "against the true accompaniment's transcription and the sung melody: notes per second, frame-wise "
             "pitch-class F1, note F1 (onset within 50 ms, the same semitone), consonance (the share of its pitch "
             "classes at a unison, third, fourth, fifth or sixth from the sung note, where one is sung) and polyphony "
             "(pitch classes per sounding frame). Medians over items.", "",
             "| | truth | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for metric in NOTE_METRICS:
        cells = [report["model"].get(metric) if n == "model" else report["baselines"][n].get(metric) for n in names]
        truth = report["truth"].get(metric)
        lines.append(f"| {metric} | {_cell(truth)} | " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "Per track (its items averaged): notes per second (the truth's) / pitch-class F1 / consonance.", "",
              "| track | truth | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for track, row in report.get("tracks", {}).items():
        truth = f"{_cell(row['truth']['notes_per_s'])} / - / {_cell(row['truth']['consonance'])}"
        cells = [" / ".join(_cell(row[n][m]) for m in ("notes_per_s", "pc_f1", "consonance")) for n in names]
        lines.append(f"| {track} | {truth} | " + " | ".join(cells) + " |")
    return lines


def _cell(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def notes_summary(report: dict) -> str | None:
    """The note figures in plain words (None for a report without them)."""
    if "truth" not in report:
        return None
    model, base, truth = report["model"], report["baselines"], report["truth"]
    rivals = ", ".join(f"{b} {base[b]['pc_f1']:.2f}" for b in ("parallel", "mean_accompaniment") if b in base)
    return (f"the added accompaniment plays {model['notes_per_s']:.1f} notes per second (the true one "
            f"{truth['notes_per_s']:.1f}); it matches the true accompaniment's pitch classes with F1 "
            f"{model['pc_f1']:.2f} (higher is better; {rivals}), its notes with F1 {model['note_f1']:.2f}, and "
            f"{_percent(model['consonance'])} of its pitch classes are consonant with the sung note (the true "
            f"accompaniment's {_percent(truth['consonance'])})")


def _percent(value: float) -> str:
    return "none" if not np.isfinite(value) else f"{100 * value:.0f}%"


def track_of(item: dict) -> str:
    """A report item's track (an item without one is a track of its own)."""
    return item.get("track") or item["name"]


def _by_track(items: list[dict]) -> dict[str, list[dict]]:
    """Items grouped by their track (`track_of`)."""
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(track_of(item), []).append(item)
    return groups


def _mean(group: list[dict], name: str, metric: str) -> float | None:
    """The mean of ``metric`` of estimate ``name`` over a track's items where it is finite (None: nowhere)."""
    values = [v for item in group if (v := item.get(name, {}).get(metric)) is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def _beats(a: float | None, b: float | None, higher: bool | None) -> bool:
    """Whether score ``a`` is strictly better than ``b`` (both finite)."""
    if a is None or b is None or not (np.isfinite(a) and np.isfinite(b)):
        return False
    return a != b and better([a, b], higher) == a


def better(values: list[float], higher: bool | None) -> float:
    """The best of ``values``: the largest, the smallest, or (``higher`` None) the nearest 0."""
    if higher is None:
        return min(values, key=abs)
    return max(values) if higher else min(values)


def summary(report: dict, metric: str = "lsd") -> str:
    """``median lsd (lower is better): model 21.40, vocals_only 19.70, ...; the model loses to vocals_only (...)``.

    The rival is the baseline with the best median. The verdict is paired when the report counts items
    (``model_better_on``): the model wins when it is better on most items, which a pooled median can hide (a
    model better on 4 of 26 items had the lower median). Otherwise medians decide, and differences under
    `TIE_DB` are level."""
    higher = report["higher_is_better"][metric]
    scores = {"model": report["model"][metric], **{b: v[metric] for b, v in report["baselines"].items()}}
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    others = {k: v for k, v in finite.items() if k != "model"}
    best = better(list(others.values()), higher) if others else None
    rival = next((k for k, v in others.items() if v == best), None)
    paired = report.get("model_better_on", {}).get(rival, {}).get(metric) if rival else None
    if "model" not in finite or rival is None:
        verdict = "no verdict"
    elif paired is not None:
        n = report["nb_items"]
        tracks = report.get("model_better_on_tracks", {}).get(rival, {}).get(metric)
        of_tracks = f" and {tracks} of {report['nb_tracks']} tracks" if tracks is not None else ""
        verdict = ("the model wins" if 2 * paired > n else f"the model loses to {rival}" if 2 * paired < n
                   else f"the model and {rival} are level") \
            + f" (better than {rival} on {paired} of {n} items{of_tracks})"
    elif abs(finite["model"] - best) < TIE_DB:
        verdict = f"the model and {rival} are level"
    elif better([finite["model"], best], higher) == finite["model"]:
        verdict = "the model wins"
    else:
        verdict = f"the model loses to {rival}"
    way = {True: "higher", False: "lower", None: "nearer 0"}[higher]
    return f"median {metric} ({way} is better): " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) \
        + f"; {verdict}"


def markdown(report: dict) -> str:
    """A readable report: one row per metric, medians (means in brackets), the best of each row in bold."""
    names = ["model", *report["baselines"]]
    lines = [f"# Evaluation of `{report['run']}`", "",
             f"{report['nb_items']} items of the `{report['split']}` split of `{report['data']}`. "
             "Median over items (mean in brackets).", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric, higher in report["higher_is_better"].items():
        medians = [report["model"].get(metric) if n == "model" else report["baselines"][n].get(metric) for n in names]
        means = [report["means"]["model"].get(metric) if n == "model" else report["means"]["baselines"][n].get(metric)
                 for n in names]
        finite = [m for m in medians if m is not None and np.isfinite(m)]
        best = better(finite, higher) if finite else None
        cells = []
        for med, mean in zip(medians, means):
            cell = "n/a" if med is None else f"{med:.3f} ({mean:.3f})"
            cells.append(f"**{cell}**" if med is not None and med == best else cell)
        direction = {True: "higher", False: "lower", None: "nearer 0"}[higher]
        lines.append(f"| {metric} ({direction} is better) | " + " | ".join(cells) + " |")
    for key, title in (("model_better_on", f"Items (of {report['nb_items']}) on which the model is better than each "
                                           "baseline:"),
                       ("model_better_on_tracks", f"Tracks (of {report.get('nb_tracks')}; each track's items averaged) "
                                                  "on which the model is better than each baseline. A track's "
                                                  "segments share its tune and instruments, so these are the "
                                                  "independent draws:")):
        if report.get(key):
            lines += _counts_table(title, report[key], report["higher_is_better"])
    if "truth" in report:
        lines += notes_markdown(report)
    lines += ["", summary(report) + ".", "",
              "Metrics: SNR and SI-SDR in dB (they reward copying the one true waveform); lsd, log-spectral "
              "distance in dB, also per band (low < 500 Hz, mid to 4 kHz, high above); spectral convergence; "
              "mrstft, multi-resolution STFT distance; loudness_db, the song's level minus the true mixture's; "
              "buzz_db, how far a pulse at the STFT frame rate stands out; harmony, the chroma correlation of the "
              "added accompaniment with the true one (0: no harmony).", ""]
    if report.get("failures"):
        lines += ["## Failures", "", *[f"- {f}" for f in report["failures"]], ""]
    return "\n".join(lines)
