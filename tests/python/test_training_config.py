"""Training as configuration (issue 27): PretrainConfig / FinetuneConfig are the argument
lists, the command line's options map onto their fields, and the old keyword spelling
still works through a shim that warns."""
from __future__ import annotations

import inspect
import warnings
from dataclasses import fields

import pytest

from bulkformer.cli import training_commands as cli
from bulkformer.errors import ArgumentError
from bulkformer.training import FinetuneConfig, PretrainConfig, finetune, pretrain
from bulkformer.training.config import with_keywords

# config fields without a command-line option (each option is a field of the same name; --layers is p_repeat)
PRETRAIN_NOT_ON_CLI = {"max_val_samples", "graph_top_k", "graph_min_abs_r", "gene_init_scale", "log_every"}
FINETUNE_NOT_ON_CLI = {"aggregate", "weight_decay", "hidden"}


def _cli_parameters(command) -> set[str]:
    return set(inspect.signature(command).parameters)


@pytest.mark.parametrize("config, command, not_on_cli", [
    (PretrainConfig, cli.pretrain, PRETRAIN_NOT_ON_CLI), (FinetuneConfig, cli.finetune, FINETUNE_NOT_ON_CLI)])
def test_every_config_field_is_a_command_line_option(config, command, not_on_cli):
    names = {f.name for f in fields(config)}
    assert not_on_cli <= names
    missing = names - not_on_cli - _cli_parameters(command)
    assert not missing, f"config fields without a command-line option: {sorted(missing)}"


def test_the_library_functions_take_few_parameters():
    for function in (pretrain, finetune):
        assert len(inspect.signature(function).parameters) <= 6


def test_loose_keywords_are_the_deprecated_spelling_of_a_config():
    with pytest.warns(DeprecationWarning, match=r"pretrain\(\.\.\., epochs=, lr=\) is deprecated: pass the settings "
                                                r"as pretrain\(data, \.\.\., config=PretrainConfig\(epochs=\.\.\., lr="):
        config = with_keywords(None, PretrainConfig, {"epochs": 3, "lr": 1e-3}, "pretrain")
    assert config == PretrainConfig(epochs=3, lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a config alone: nothing to say
        assert with_keywords(PretrainConfig(seed=2), PretrainConfig, {}, "pretrain") == PretrainConfig(seed=2)
    with pytest.raises(ArgumentError, match=r"unknown argument 'epoch' of pretrain\(\); settings are the fields of "
                                            r"PretrainConfig \(activation_checkpointing, .*epochs"):
        with_keywords(None, PretrainConfig, {"epoch": 3}, "pretrain")
    with pytest.raises(ArgumentError, match="config must be a FinetuneConfig"):
        with_keywords(PretrainConfig(), FinetuneConfig, {}, "finetune")


@pytest.mark.parametrize("field, value, message", [
    ("max_time", 0, "max_time must be > 0 seconds"), ("checkpoint_minutes", -1, "checkpoint_minutes must be > 0"),
    ("workers", -1, "workers must be >= 0"), ("epochs", 0, "epochs must be >= 1")])
def test_settings_are_checked_before_any_data_is_read(field, value, message):
    with pytest.raises(ValueError, match=message):
        pretrain("no/such/data", None, PretrainConfig(**{field: value}))


def test_durations_on_the_command_line():
    assert cli.parse_duration("90m") == 5400 and cli.parse_duration("11.5h") == 41400
    assert cli.parse_duration("3600") == 3600 and cli.parse_duration(None) is None
    with pytest.raises(ValueError, match="--max-time 'soon' is not a duration"):
        cli.parse_duration("soon")
