"""Defaults and recipes (`vocals2song.config`): recipes by name or file, and how a rerun settles its settings."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from vocals2song.cli import cli
from vocals2song.config import (
    DEFAULT_RECIPE,
    RECIPES,
    RUN_FIELDS,
    TrainConfig,
    recipe_config,
    recipe_fields,
    train_config,
)
from vocals2song.errors import Vocals2SongError

NOT_GIVEN = {"model": None, "steps": None, "batch_size": None, "tile": None, "generator": None, "phase_repr": None,
             "gan_loss": None, "seed": None, "checkpoint_every": None, "sample_every": None, "log_every": None,
             "input_subdir": None, "target_subdir": None, "mixed_precision": None}


def test_train_help_lists_at_most_18_options():
    out = CliRunner().invoke(cli, ["train", "--help"]).output
    listed = out.split("\nOptions:\n", 1)[1].splitlines()
    options = [line for line in listed if line.startswith("  -")]
    assert "--recipe" in out and 10 <= len(options) <= 18, options


def test_the_train_command_takes_every_flag_the_settings_know():
    """Every flag `train` has is a TrainConfig field (or --recipe, --resume, --debug), and NOT_GIVEN names them."""
    params = {p.name for p in next(c for n, c in cli.commands.items() if n == "train").params}
    assert params - {"data", "run", "recipe", "resume", "debug"} == set(NOT_GIVEN)
    assert set(NOT_GIVEN) <= set(TrainConfig.__dataclass_fields__)


def test_pix2pix_is_the_published_training():
    cfg = recipe_config("pix2pix")
    assert (cfg.generator, cfg.phase_repr, cfg.gan_loss, cfg.recon_loss) == ("unet", "angle", "bce", "l1")
    assert (cfg.lambda_recon, cfg.batch_size, cfg.lr, cfg.norm, cfg.ema) == (100.0, 1, 2e-4, "batch", 0.0)
    assert cfg.recipe == "pix2pix"


def test_the_default_recipe_is_trainconfigs_defaults():
    assert recipe_config() == TrainConfig() and TrainConfig().recipe == DEFAULT_RECIPE
    assert RECIPES[DEFAULT_RECIPE] == {}


def test_a_recipe_file_changes_its_base(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"base": "pix2pix", "lambda_recon": 10, "keep_best": False}))
    cfg = recipe_config(str(path))
    assert cfg.recipe == str(path) and cfg.lambda_recon == 10.0 and isinstance(cfg.lambda_recon, float)
    assert cfg.keep_best is False and cfg.gan_loss == "bce"  # the rest is the base's
    path.write_text(json.dumps({"lr": 5e-5}))  # no base: the default recipe's
    assert recipe_config(str(path)) == dataclasses.replace(TrainConfig(), lr=5e-5, recipe=str(path))


@pytest.mark.parametrize("content, says", [
    ({"lambda_l1": 100}, "unknown training field 'lambda_l1'"),
    ({"steps": 1.5}, "'steps' cannot be 1.5"),
    ({"keep_best": 1}, "'keep_best' cannot be 1"),
    ({"generator": 3}, "'generator' cannot be 3"),
    ({"base": "cyclegan"}, "unknown base recipe 'cyclegan'"),
    ([1, 2], "one JSON object"),
])
def test_a_bad_recipe_file_is_one_line(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(Vocals2SongError) as err:
        recipe_fields(str(path))
    assert says in str(err.value) and "\n" not in str(err.value) and err.value.usage


def test_an_unknown_recipe_name_or_file_is_one_line(tmp_path):
    for spec, says in (("pix3pix", "unknown --recipe 'pix3pix'"), (str(tmp_path / "none.json"), "cannot read")):
        with pytest.raises(Vocals2SongError) as err:
            recipe_fields(spec)
        assert says in str(err.value) and "\n" not in str(err.value)


def test_a_flag_given_with_a_recipe_replaces_that_one_field():
    cfg = train_config({}, "pix2pix", {**NOT_GIVEN, "batch_size": 2})
    assert cfg == dataclasses.replace(recipe_config("pix2pix"), batch_size=2)


def test_a_rerun_continues_as_recorded_and_a_recipe_keeps_the_runs_own_fields():
    recorded = dataclasses.asdict(recipe_config("pix2pix", model="tiny", steps=300, seed=4, lr=1e-5))
    assert train_config(recorded, None, NOT_GIVEN) == TrainConfig(**recorded)  # as it was, lr included
    switched = train_config(recorded, DEFAULT_RECIPE, {**NOT_GIVEN, "steps": 600})
    assert (switched.model, switched.seed, switched.steps) == ("tiny", 4, 600)  # the run's own fields stay
    assert (switched.lr, switched.gan_loss, switched.recipe) == (1e-4, "none", DEFAULT_RECIPE)  # the recipe's
    assert {"model", "steps", "seed"} <= set(RUN_FIELDS) and "lr" not in RUN_FIELDS


def test_a_log_view_without_an_additive_magnitude_generator_is_refused_in_one_line():
    from vocals2song.train import _check_config

    _check_config(recipe_config(view="log"))  # the default recipe: powersum-mean, magnitude only
    with pytest.raises(Vocals2SongError) as err:
        _check_config(recipe_config("pix2pix", view="log"))
    assert "log-frequency view" in str(err.value) and "\n" not in str(err.value)
