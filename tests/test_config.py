"""Settings' field metadata is the one list the CLI, the sidebar and the Code tab are built from."""

from __future__ import annotations

import dataclasses
import re

import pytest

from playground.cli import _settings_from, build_parser
from playground.config import DATASETS, LOSSES, PRESETS, Settings, check, epochs_for, fields, spec, watchable
from playground.data import DATASETS as DATASET_TITLES

# A value for every field that differs from its default: the flags must carry each one through.
CHANGED = {
    "dataset": "fashion_mnist",
    "loss": "elbo",
    "latent_dim": 5,
    "intermediate_dim": 40,
    "hidden_layers": 3,
    "conditional": True,
    "architecture": "conv",
    "learning_rate": 0.003,
    "batch_size": 32,
    "epochs": 7,
    "kl_weight": 0.25,
    "kl_warmup_steps": 300,
    "seed": 11,
}


def test_every_setting_has_a_cli_flag_that_reaches_settings():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(Settings)}, "a new setting needs a value here"
    argv = ["train"]
    for name, value in CHANGED.items():
        argv += [spec(name).flag] if value is True else [spec(name).flag, str(value)]
    args = build_parser().parse_args(argv)
    assert _settings_from(args) == Settings(**CHANGED)
    assert _settings_from(build_parser().parse_args(["train"])) == Settings(), "no flags: the defaults"


def test_choices_come_from_one_place():
    assert tuple(DATASET_TITLES) == DATASETS, "dataset names and titles are one list"
    assert spec("dataset").choices == DATASETS and spec("loss").choices == LOSSES
    with pytest.raises(SystemExit):  # argparse refuses a loss that is not a choice
        build_parser().parse_args(["train", "--loss", "mse"])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("latent_dim", 100, "Latent size must be between 1 and 64 (got 100)"),
        ("epochs", 2.5, "Epochs must be a whole number"),
        ("loss", "mse", "Loss must be one of elbo, guide"),
        ("dataset", "cifar", "Dataset must be one of mnist, fashion_mnist"),
        ("hidden_layers", 0, "Hidden layers must be between 1 and 3 (got 0)"),
        ("conditional", "maybe", "Conditional (on the label) must be on or off"),
        ("conditional", 2, "Conditional (on the label) must be on or off"),
        ("architecture", "rnn", "Architecture must be one of dense, conv"),
    ],
)
def test_check_names_what_is_allowed(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings(**{name: value})


def test_every_field_says_how_the_page_offers_it():
    for setting in fields():
        assert setting.widget in ("select", "radio", "number", "steps", "toggle"), setting
        assert setting.text_key == f"settings.{setting.name}" and setting.help_key == f"help.{setting.name}"
        if setting.widget == "number":
            assert setting.step and setting.low <= setting.default <= setting.high


def test_default_epochs_make_a_first_run_of_about_thirty_thousand_steps():
    # 4,500 bundled digits at batch 64: 71 steps an epoch (the last one partial).
    assert epochs_for(4_500, 64) == round(30_000 / 71) == 423
    assert epochs_for(60_000, 64) == round(30_000 / 938) == 32
    assert epochs_for(60_000, 1) == 1, "never below one epoch"
    assert epochs_for(10, 1) == 1000, "never above the bound"
    explore = watchable(PRESETS["explore"], 4_500)
    assert explore.epochs == 423 and explore.replace(epochs=10) == PRESETS["explore"]


def test_presets_are_watchable_except_the_guide_s_own_run():
    from playground.config import preset

    assert preset("latent_2d", "mnist", 4_500).epochs == 423
    assert preset("guide", "mnist", 4_500) == Settings(), "the guide's exact run, 2 epochs"
    assert preset("explore", "fashion_mnist") == PRESETS["explore"].replace(dataset="fashion_mnist")


def test_on_off_settings_read_text_as_addresses_and_files_hold_it():
    assert Settings(conditional="1").conditional is True and Settings(conditional="off").conditional is False
    assert Settings.from_dict(Settings(conditional=True).to_dict()).conditional is True
    assert build_parser().parse_args(["train", "--no-conditional"]).conditional is False


def test_every_model_variant_field_asks_for_a_new_model():
    base = Settings()
    for changed in (dict(hidden_layers=2), dict(conditional=True), dict(architecture="conv")):
        assert base.replace(**changed).model_key() != base.model_key(), changed
    assert base.replace(epochs=9, loss="elbo").model_key() == base.model_key()


def test_a_change_of_model_is_refused_with_what_changed_and_other_changes_pass():
    from playground.config import require_same_model

    current = Settings()
    require_same_model(current, current.replace(learning_rate=0.01, epochs=3, loss="guide"), "Changing")
    with pytest.raises(ValueError) as refused:
        require_same_model(current, current.replace(latent_dim=3, architecture="conv"), "Changing the settings")
    assert str(refused.value) == ("Changing the settings needs the same model (Latent size 32 → 3, "
                                  "Architecture dense → conv): that needs a reset.")  # fmt: skip
