"""The experiment in the address: settings and a teacher's flags, read, written, validated, reproduced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from playground.config import ARCHITECTURES, DATASETS, EXPLORE, LOSSES, Settings, bounds, watchable
from playground.link import PARAMS, hidden_parts, params_from_settings, settings_from_params
from playground.training import Trainer
from tests.support import wait_for
from tests.test_app import APP, button, number
from tests.test_cli import run_cli


def _bounded(name: str):
    meta = bounds(name)
    if meta["integer"]:
        return st.integers(meta["low"], meta["high"])
    return st.floats(meta["low"], meta["high"], allow_nan=False)


ANY_SETTINGS = st.builds(
    Settings,
    dataset=st.sampled_from(DATASETS),
    loss=st.sampled_from(LOSSES),
    conditional=st.booleans(),
    architecture=st.sampled_from(ARCHITECTURES),
    **{name: _bounded(name) for name in list(PARAMS)[2:] if name not in ("conditional", "architecture")},
)


@given(ANY_SETTINGS)
@hypothesis_settings(max_examples=200, deadline=None)
def test_any_settings_survive_the_round_trip_through_the_address_exactly(chosen):
    params = params_from_settings(chosen)
    assert all(isinstance(value, str) and "&" not in value for value in params.values())
    back, notes = settings_from_params(params, Settings())
    assert notes == [] and back == chosen


def test_the_address_uses_short_readable_names():
    params = params_from_settings(EXPLORE)
    assert params == {"data": "mnist", "loss": "elbo", "latent": "8", "hidden": "256", "layers": "1", "cond": "0",
                      "arch": "dense", "lr": "0.001", "batch": "64", "epochs": "10", "kl": "1", "warmup": "0",
                      "seed": "0"}  # fmt: skip


def test_a_link_from_before_the_model_variants_opens_the_guide_s_dense_model():
    old = {"data": "mnist", "loss": "elbo", "latent": "8", "hidden": "256", "lr": "0.001", "batch": "64",
           "epochs": "10", "kl": "1", "warmup": "0", "seed": "0"}  # fmt: skip
    chosen, notes = settings_from_params(old, Settings(hidden_layers=3, conditional=True, architecture="conv"))
    assert notes == [] and (chosen.hidden_layers, chosen.conditional, chosen.architecture) == (3, True, "conv"), \
        "absent parameters keep the defaults they are read over"  # fmt: skip
    chosen, _ = settings_from_params({**old, "layers": "2", "cond": "1", "arch": "conv"}, Settings())
    assert (chosen.hidden_layers, chosen.conditional, chosen.architecture) == (2, True, "conv")


@pytest.mark.parametrize(
    ("param", "value", "reason"),
    [
        ("latent", "0", "Latent size must be between 1 and 64 (got 0)"),
        ("latent", "2.5", "Latent size must be a whole number"),
        ("lr", "fast", "Learning rate must be a number"),
        ("kl", "nan", "KL weight must be a finite number"),
        ("data", "cifar", "The dataset must be one of mnist, fashion_mnist"),
        ("loss", "mse", "The loss must be one of"),
        ("layers", "4", "Hidden layers must be between 1 and 3 (got 4)"),
        ("cond", "maybe", "Conditional (on the label) must be on or off"),
        ("arch", "lstm", "The architecture must be one of dense, conv"),
    ],
)
def test_a_bad_value_keeps_the_default_and_says_why(param, value, reason):
    chosen, notes = settings_from_params({param: value, "seed": "7"}, EXPLORE)
    assert chosen == EXPLORE.replace(seed=7), "the other values are still used"
    assert [(n.param, n.value) for n in notes] == [(param, value)] and reason in notes[0].reason


def test_hide_names_known_parts_and_notes_the_rest():
    parts, notes = hidden_parts("loss, dataset,runs,Seed,kl_weight,wings")
    assert parts == {"loss", "data", "runs", "seed", "kl"}, "a setting's field name is its parameter's alias"
    assert [n.value for n in notes] == ["wings"]


# ---- the page ----


@pytest.fixture
def page(monkeypatch, tmp_path):
    monkeypatch.setattr("playground.jobs.ABANDON_SECONDS", 3600.0)  # AppTest's session never looks alive to the janitor
    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    opened = []

    def open_page(**params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        opened.append(at)
        return at

    yield open_page
    for at in opened:
        if "workspace" in at.session_state:
            at.session_state["workspace"].stop(wait=True)


def _param(at: AppTest, name: str) -> str:
    value = at.query_params[name]
    return value[0] if isinstance(value, list) else value


LINK = {"loss": "guide", "latent": "3", "hidden": "48", "lr": "0.003", "batch": "128", "epochs": "2", "kl": "0.5",
        "warmup": "100", "seed": "5"}  # fmt: skip


def test_a_link_opens_the_page_with_its_settings(page):
    at = page(**LINK, lang="zh")
    expected = Settings(loss="guide", latent_dim=3, intermediate_dim=48, learning_rate=0.003, batch_size=128,
                        epochs=2, kl_weight=0.5, kl_warmup_steps=100, seed=5)  # fmt: skip
    assert at.session_state["workspace"].settings == expected
    assert at.radio(key="set_loss").value == "guide" and at.select_slider(key="set_learning_rate").value == 0.003
    assert at.session_state["lang"] == "zh", "lang= still works"
    assert not at.warning


def test_a_bad_value_in_the_link_is_a_note_and_the_default(page):
    at = page(latent="999", hidden="abc", seed="4")
    workspace = at.session_state["workspace"]
    assert workspace.settings == watchable(EXPLORE, len(workspace.dataset.x_train)).replace(seed=4)
    notes = [w.value for w in at.warning]
    assert any("`latent=999`" in n and "between 1 and 64" in n and "The default, 8" in n for n in notes), notes
    assert any("`hidden=abc`" in n and "must be a number" in n for n in notes), notes
    assert not at.error and not at.exception
    assert _param(at, "latent") == "8", "the address is corrected to what the page uses"


def test_the_sidebar_writes_the_address_and_keeps_ws_and_lang(page):
    at = page(lang="en")
    token = _param(at, "ws")
    number(at, "Latent size").set_value(5).run()
    at.select_slider(key="set_learning_rate").set_value(0.01).run()
    assert _param(at, "latent") == "5" and _param(at, "lr") == "0.01"
    assert _param(at, "ws") == token and _param(at, "lang") == "en"
    copied = {key: _param(at, key) for key in ("data", "loss", "latent", "hidden", "lr", "batch", "epochs", "kl",
                                               "warmup", "seed")}  # fmt: skip
    other = page(**copied)  # the copied link in another browser
    assert other.session_state["workspace"].settings == at.session_state["workspace"].settings


def test_hide_hides_the_named_inputs_and_tabs(page):
    at = page(hide="loss,runs,presets")
    styles = [h.proto.body for h in at.get("html")]
    assert any(".st-key-set_loss" in s and ".st-key-preset" in s and "display: none" in s for s in styles), styles
    labels = [tab.label for tab in at.tabs]
    assert "📁 Runs" not in labels and "🧱 Model" in labels
    assert at.radio(key="set_loss").value == "elbo", "a hidden input keeps its value"
    shown = page()
    assert "📁 Runs" in [tab.label for tab in shown.tabs] and not shown.get("html")


# ---- the same link, the same run ----


def _records(history) -> list[tuple]:
    return [
        (r.split, r.epoch, r.step, r.loss, r.reconstruction_loss, r.kl_loss, r.kl_weight) for r in history.records()
    ]


def test_two_trainers_with_the_same_settings_give_identical_records(mnist):
    """Records fall on steps set by the settings, not by the clock: repeated runs match exactly."""
    chosen = Settings(loss="elbo", latent_dim=8, intermediate_dim=64, epochs=2, seed=3)
    first = Trainer(chosen, mnist)
    first.run()
    second = Trainer(chosen, mnist, seconds_per_call=first.seconds_per_call)
    busy = np.random.default_rng(0).standard_normal((600, 600))
    second.run(on_update=lambda record: busy @ busy)  # a slower consumer must not move the records
    assert len(first.history.records("train")) > 2
    assert _records(first.history) == _records(second.history)


def test_two_sessions_on_the_same_link_train_identical_records(page):
    link = {"loss": "elbo", "latent": "2", "hidden": "32", "epochs": "2", "seed": "9"}
    sessions = [page(**link), page(**link)]
    for at in sessions:
        button(at, "Start training").click().run()
    workspaces = [at.session_state["workspace"] for at in sessions]
    for workspace in workspaces:
        wait_for(lambda w=workspace: not w.training, 240, "training did not end")
    first, second = (_records(w.trainer.history) for w in workspaces)
    assert len(first) >= 4 and first == second


@pytest.mark.slow
def test_the_cli_with_the_same_flags_gives_identical_json_losses(tmp_path):
    flags = ("train", "--source", "bundled", "--epochs", "2", "--loss", "elbo", "--latent-dim", "4",
             "--intermediate-dim", "64", "--seed", "5", "--json")  # fmt: skip
    outputs = []
    for _ in range(2):
        done = run_cli(*flags)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = ("steps", "epochs", "loss", "reconstruction_loss", "kl_loss", "val_loss")
    assert [outputs[0][k] for k in keys] == [outputs[1][k] for k in keys]


def test_the_readme_names_the_address_parameters():
    readme = (Path(APP).parent / "README.md").read_text()
    for param in (*params_from_settings(Settings()), "hide=", "lesson="):
        assert param in readme
