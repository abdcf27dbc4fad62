"""evaluate: every metric against the baselines, the summary line, items and tracks counted, and the quality
benchmark that trains and evaluates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vocals2song.metrics import METRICS


def test_evaluate_summary_names_every_baseline_and_the_winner():
    from vocals2song.evaluate import summary as evaluate_summary

    report = {"higher_is_better": {"lsd": False}, "model": {"lsd": 21.4},
              "baselines": {"vocals_only": {"lsd": 19.7}, "mean_accompaniment": {"lsd": 20.5}}}
    line = evaluate_summary(report)
    assert line == ("median lsd (lower is better): model 21.40, vocals_only 19.70, mean_accompaniment 20.50; "
                    "the model loses to vocals_only")
    report["model"]["lsd"] = 18.0
    assert evaluate_summary(report).endswith("; the model wins")
    report["model"]["lsd"] = 19.71
    assert evaluate_summary(report).endswith("; the model and vocals_only are level")


def test_evaluate_counts_tracks_as_well_as_items():
    """A track's segments are not independent draws: a model a hair better on the 3 segments of one track and
    clearly worse on two other tracks wins 3 of 5 items but only 1 of 3 tracks, and the summary and report.md say
    both."""
    from vocals2song.evaluate import _report, markdown

    def item(name, track, model, mean):
        scores = {"lsd": model, "mrstft": model / 10}
        return {"name": name, "track": track, "model": scores, "vocals_only": {"lsd": 30.0, "mrstft": 3.0},
                "mean_accompaniment": {"lsd": mean, "mrstft": mean / 10}}

    items = [item(f"A__{k}", "A", 9.9, 10.0) for k in range(3)] + [item("B__0", "B", 12.0, 10.0),
                                                                   item("C__0", None, 12.0, 10.0)]
    report = _report(items, "run", "data", "test", True)
    assert report["model_better_on"]["mean_accompaniment"]["lsd"] == 3
    assert report["nb_tracks"] == 3 and report["model_better_on_tracks"]["mean_accompaniment"]["lsd"] == 1
    assert report["model_better_on_tracks"]["vocals_only"]["mrstft"] == 3
    assert "on 3 of 5 items and 1 of 3 tracks" in markdown(report)


def _untrained_and_deaf(run):
    """Two predictors that must lose to RUN's model: the same config untrained (seeded), and RUN's own generator
    fed silence (magnitude at the floor, phase 0) whatever the vocals, i.e. a model deaf to its input."""
    import dataclasses

    from vocals2song.config import MODELS
    from vocals2song.model import build_generator
    from vocals2song.predict import load_predictor

    trained = load_predictor(run)
    model = trained.config["model"]
    fresh = build_generator(model["nb_rows"], model["nb_channels"], MODELS[model["preset"]])
    # model.init() draws each kernel's seed from Python's `random`, so in a full test session the untrained weights
    # would depend on what ran before (one CI run scored 30.15 instead of 31.4 and missed the margin below): draw
    # the kernels here, as init() would (normal, stddev 0.02), from a fixed seed
    rng = np.random.default_rng(0)
    fresh.set_weights([rng.normal(0.0, 0.02, w.shape).astype(w.dtype) if w.ndim > 1 else w
                       for w in fresh.get_weights()])

    def deaf(tiles):
        silence = np.zeros_like(tiles)
        silence[..., 0] = -1.0
        return trained.generate(silence)

    return (dataclasses.replace(trained, generate=lambda tiles: np.asarray(fresh(tiles, training=False))),
            dataclasses.replace(trained, generate=deaf))


@pytest.mark.slow
def test_evaluate_reports_every_metric_and_beats_vocals_only(trained_run, train_data, tmp_path, run_cli):
    from vocals2song.evaluate import evaluate

    out = tmp_path / "report"
    result = run_cli("evaluate", trained_run, train_data, "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["nb_items"] == 3 and len(report["items"]) == 3
    for system in (report["model"], *report["baselines"].values()):
        assert set(METRICS) <= set(system) and all(np.isfinite(v) for k, v in system.items()
                                                 if k not in ("snr", "consonance", "polyphony"))
    assert set(report["baselines"]) == {"vocals_only", "mean_accompaniment", "parallel"}
    assert report["model"]["lsd"] < report["baselines"]["vocals_only"]["lsd"], report["model"]
    assert "| lsd (lower is better) |" in (out / "report.md").read_text()
    assert (out / "metrics.png").is_file() and len(list((out / "items").glob("*.png"))) == 3
    # Training must show: on the same items, the model beats the untrained model of its config and, by 1 dB, itself
    # deaf to the vocals. Measured (lsd, dB) over 5 runs: trained 29.4-30.5 (CPU training is not
    # bit-reproducible), untrained 30.76 (the kernels seeded below), deaf 33.7-35.5, vocals_only 31.9. The untrained
    # margin was 1 dB too, and failed a CI run (29.36 against 30.15) when both sides moved by their spread.
    untrained, deaf = (evaluate(trained_run, train_data, tmp_path / name, predictor=p)
                       for name, p in zip(("untrained", "deaf"), _untrained_and_deaf(trained_run)))
    lsd = report["model"]["lsd"]
    assert lsd < untrained["model"]["lsd"] and lsd < deaf["model"]["lsd"] - 1.0, \
        (lsd, untrained["model"], deaf["model"])
    # The baselines do not depend on the model: the same scores whichever model is evaluated, and never the model's.
    for other in (untrained, deaf):
        for name, scores in report["baselines"].items():
            assert other["baselines"][name] == pytest.approx(scores, rel=1e-6, nan_ok=True), name
    for item, *others in zip(report["items"], untrained["items"], deaf["items"]):
        for name in report["baselines"]:
            assert item[name]["lsd"] not in {item["model"]["lsd"], *(o["model"]["lsd"] for o in others)}, name
