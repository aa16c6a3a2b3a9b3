"""The page and the workspace: feedback from callbacks in fragments, photo uploads, runs compared (AppTest)."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from playground.config import Settings
from playground.model_files import save_vae
from playground.models import build_vae
from tests.test_app import APP, button, number, open_tab, png_bytes, wait_until_idle
from tests.test_imaging import photo_of


def watch_whole_page_requests(monkeypatch) -> list[bool]:
    """Record, for each page run, whether a callback asked for the whole page to be redrawn.

    A button in a fragment reruns only that fragment in the browser: a callback that
    changes the sidebar or flashes a message must ask for the whole page, or nothing
    shows until another tab is clicked.
    """
    import streamlit as st

    from playground.ui import tabs

    asked, render = [], tabs.render

    def spy(panels):
        asked.append(bool(st.session_state.get(tabs.RERUN_APP)))
        render(panels)

    monkeypatch.setattr(tabs, "render", spy)
    return asked


def test_reopening_a_run_shows_at_once_and_switches_the_dataset_with_no_question(app, monkeypatch):
    import dataclasses

    from playground.ui import state
    from playground.workspace import LoadedData

    def load(name):  # Fashion-MNIST stands in for the bundled digits under its own name
        loaded = state.load_by_name("mnist")
        return LoadedData(dataclasses.replace(loaded.dataset, name=name), loaded.device)

    workspace = app.session_state["workspace"]
    workspace.load_data = load
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    app.selectbox(key="set_dataset").set_value("fashion_mnist").run()
    button(app, "Discard the trained model and apply").click().run()
    assert workspace.dataset.name == "fashion_mnist"
    open_tab(app, "runs")
    asked = watch_whole_page_requests(monkeypatch)
    next(b for b in app.button if b.key == "reopen_run-001").click().run()
    assert asked[-1], "the reopen asked for the whole page: the message and the sidebar show at once"
    assert len([s for s in app.success if s.value.startswith("Reopened run-001")]) == 1
    assert workspace.dataset.name == "mnist" and workspace.trained
    assert app.selectbox(key="set_dataset").value == "mnist"
    assert not any("needs a new model" in w.value for w in app.warning), "no pending question"
    app.run()
    assert not [s for s in app.success if "Reopened" in s.value], "the message shows once"


def test_loading_a_model_file_shows_at_once(app, monkeypatch, tmp_path):
    path = save_vae(build_vae(Settings(latent_dim=5, intermediate_dim=40)), tmp_path / "m.keras")
    open_tab(app, "model")
    asked = watch_whole_page_requests(monkeypatch)
    app.file_uploader(key="model_upload").set_value(("m.keras", path.read_bytes(), "application/zip")).run()
    assert asked[-1], "the upload asked for the whole page: the message and the sidebar show at once"
    assert len([s for s in app.success if "Loaded m.keras" in s.value]) == 1


def test_a_photo_upload_is_read_as_its_digit_and_a_picture_of_two_warns(app, mnist):
    app.radio(key="draw_source").set_value("upload").run()
    photo = photo_of(mnist.x_test[0], 0)
    app.file_uploader(key="draw_upload").set_value(("photo.png", png_bytes(photo), "image/png")).run()
    assert not app.exception and not app.error and not app.warning
    from playground.imaging import to_mnist

    digit = app.session_state["drawn"]["digit"]
    assert np.corrcoef(digit.ravel(), to_mnist(mnist.x_test[0]).ravel())[0, 1] > 0.9
    pair = photo_of(np.concatenate([mnist.x_test[0], mnist.x_test[1]], axis=1), 0, box=(100, 20, 460))
    app.file_uploader(key="draw_upload").set_value(("pair.png", png_bytes(pair), "image/png")).run()
    assert any("more than one digit" in w.value for w in app.warning)
    app.radio(key="lang").set_value("zh").run()
    assert any("不止一个数字" in w.value for w in app.warning)


def test_every_photo_problem_has_a_message_in_both_languages():
    import tomllib
    from pathlib import Path

    from playground.imaging import PHOTO_PROBLEMS

    table = tomllib.loads((Path(__file__).parents[1] / "playground/ui/strings.toml").read_text(encoding="utf-8"))
    assert all(set(table[f"draw.photo_{problem}"]) == {"en", "zh"} for problem in PHOTO_PROBLEMS)


def test_runs_show_their_settings_with_the_differing_ones_and_one_measure_for_all(app):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    number(app, "Latent size").set_value(3).run()
    button(app, "Discard the trained model and apply").click().run()
    number(app, "KL weight").set_value(0.1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    open_tab(app, "runs")
    table = app.dataframe[0].value
    assert list(table["Run"]) == ["run-002", "run-001"]
    assert list(table["Latent size"]) == ["3", "8"] and list(table["KL weight"]) == ["0.1", "1"]
    assert list(table["Ended"]) == ["Finished", "Finished"]
    assert table["Test MSE (same measure for all)"].between(0, 0.2).all()
    assert table["Validation reconstruction loss"].notna().all()
    assert any("differ in (Latent size, KL weight)" in c.value for c in app.caption)
    assert app.multiselect(key="runs_chosen").options[0] == "run-002 · ELBO · latent 3 · hidden 256 · KL weight 0.1"
    app.radio(key="lang").set_value("zh").run()
    assert app.multiselect(key="runs_chosen").options[0] == "run-002 · ELBO · 潜在 3 维 · 中间层 256 · KL 权重 0.1"
    assert "训练" in app.dataframe[0].value.columns


def test_two_sessions_of_one_address_share_the_workspace_and_follow_each_others_settings(app):
    token = app.query_params["ws"]
    token = token[0] if isinstance(token, list) else token
    other = AppTest.from_file(APP, default_timeout=120)  # the same address in another browser
    other.query_params["ws"] = token
    other.run()
    workspace = app.session_state["workspace"]
    assert other.session_state["workspace"] is workspace
    number(app, "Latent size").set_value(3).run()
    assert workspace.settings.latent_dim == 3
    other.run()  # the other page polls or is clicked: it shows the new size instead of undoing it
    assert number(other, "Latent size").value == 3 and workspace.settings.latent_dim == 3
    number(other, "KL weight").set_value(0.25).run()
    app.run()
    assert number(app, "KL weight").value == 0.25 and workspace.settings.kl_weight == 0.25
