"""The page's logic, driven headlessly with Streamlit's AppTest on the bundled MNIST sample."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from playground.config import Settings
from playground.model_files import save_vae
from playground.models import build_vae
from tests.conftest import APP
from tests.support import wait_for


def open_tab(at: AppTest, tab_id: str) -> AppTest:
    """Switch tabs as a click would: only the open tab's panel runs."""
    at.session_state["tab_id"] = tab_id
    return at.run()


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def number(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


def wait_until_idle(at: AppTest, timeout: float = 120) -> None:
    workspace = at.session_state["workspace"]
    wait_for(lambda: not workspace.training, timeout, "training did not end")
    at.run()


def digit_on_canvas(image: np.ndarray) -> np.ndarray:
    """A 28 x 28 digit drawn large, as the 280 x 280 RGBA canvas returns it."""
    grey = np.kron(image, np.ones((10, 10)))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., :3] = (grey[..., None] * 255).astype(np.uint8)
    rgba[..., 3] = 255
    return rgba


def test_the_page_loads_with_its_settings_and_controls(app):
    latent, hidden = number(app, "Latent size"), number(app, "Intermediate size")
    assert (latent.value, hidden.value) == (8, 256)
    assert "Allowed: 1 to 64." in latent.help and "Allowed: 8 to 1,024." in hidden.help
    for label in ("Start training", "Stop training", "Pause", "Reset model"):
        button(app, label)
    assert button(app, "Stop training").disabled and not button(app, "Start training").disabled
    assert any("bundled sample" in c.value for c in app.caption)
    assert not [s for s in app.slider if s.label.startswith("z")], "hidden tabs do not run"
    open_tab(app, "explore")
    assert [s.label for s in app.slider if s.label.startswith("z")] == [f"z{i}" for i in (0, 4, 1, 5, 2, 6, 3, 7)]
    assert not app.error


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_start_training_runs_in_the_background_and_fills_the_chart(app):
    number(app, "Epochs").set_value(2).run()
    button(app, "Start training").click().run()
    workspace = app.session_state["workspace"]
    assert workspace.training
    assert button(app, "Stop training").disabled is False
    wait_until_idle(app)
    assert workspace.status().state == "finished"
    assert workspace.trainer.epoch == 2
    assert len(workspace.trainer.history.records("val")) == 2
    assert app.get("plotly_chart"), "the loss chart is drawn"
    assert any("2 epochs" in p.proto.text for p in app.get("progress"))
    runs = list(Path(workspace.runs_dir).glob("run-*/model.keras"))
    assert len(runs) == 1, "the finished run is kept on disk"


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_start_clicked_with_a_value_just_typed_trains_with_that_value(app):
    # A value typed and Start clicked at once (the field commits on the click's blur): the click's rerun is the
    # first to carry the value, and Start's callback runs before the sidebar does. It must not train with the old one.
    number(app, "Epochs").set_value(2)
    button(app, "Start training").click().run()
    workspace = app.session_state["workspace"]
    assert workspace.status().target_epoch == 2
    wait_until_idle(app)
    assert workspace.trainer.epoch == 2 and workspace.settings.epochs == 2


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_start_clicked_with_a_new_size_just_typed_trains_the_new_model(app):
    number(app, "Latent size").set_value(3)
    number(app, "Epochs").set_value(1)
    button(app, "Start training").click().run()
    workspace = app.session_state["workspace"]
    assert workspace.settings.latent_dim == 3 and workspace.status().target_epoch == 1
    wait_until_idle(app)
    assert workspace.trainer.model.latent_dim == 3 and workspace.trainer.epoch == 1


def test_start_clicked_with_a_value_out_of_range_just_typed_does_not_train(app):
    number(app, "Epochs").set_value(0)
    button(app, "Start training").click().run()
    assert not app.session_state["workspace"].training
    assert any("Epochs" in e.value for e in app.error), "the page says which value is out of range"
    assert button(app, "Start training").disabled


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_stop_training_stops_the_worker(app):
    number(app, "Epochs").set_value(1000).run()
    button(app, "Start training").click().run()
    workspace = app.session_state["workspace"]
    wait_for(lambda: workspace.trainer.history.records(), 60, "training did not start")
    button(app, "Stop training").click().run()
    wait_until_idle(app, timeout=10)
    assert workspace.status().state == "stopped"
    steps = workspace.status().step
    time.sleep(0.5)
    assert workspace.status().step == steps


def test_explorer_sliders_drive_the_decoder(app):
    open_tab(app, "explore")
    before = [img.value for img in app.image if "decoder's output" in img.captions[0]]
    next(s for s in app.slider if s.label == "z0").set_value(2.5).run()
    after = [img.value for img in app.image if "decoder's output" in img.captions[0]]
    assert before and after and before != after
    button(app, "Back to zero").click().run()
    assert next(s for s in app.slider if s.label == "z0").value == 0.0
    button(app, "Random sample").click().run()
    assert any(s.value != 0.0 for s in app.slider if s.label.startswith("z"))


def test_a_drawn_digit_is_reconstructed_and_sent_to_the_explorer(app, mnist):
    assert any("Draw a digit" in i.value for i in app.info)  # empty canvas: no reconstruction of noise
    app.session_state["draw_image"] = digit_on_canvas(mnist.x_test[0])
    app.run()
    assert not app.exception
    assert not any("Draw a digit" in i.value for i in app.info)
    drawn = app.session_state["drawn"]
    assert drawn["z_mean"].shape == (8,) and drawn["digit"].shape == (28, 28)
    captions = [c for img in app.image for c in img.captions]
    assert "The model's reconstruction" in captions
    button(app, "Explore this code").click().run()
    assert app.session_state["tab_id"] == "explore", "the Explore tab opens"
    z0 = next(s for s in app.slider if s.label == "z0").value
    assert z0 == pytest.approx(float(np.clip(drawn["z_mean"][0], -4, 4)), abs=0.01)


def test_a_blank_drawing_asks_for_a_digit(app):
    app.session_state["draw_image"] = np.zeros((280, 280, 4), dtype=np.uint8)
    app.run()
    assert any("Draw a digit" in i.value for i in app.info)


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_changing_the_architecture_of_a_trained_model_asks_first(app):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    workspace = app.session_state["workspace"]
    number(app, "Latent size").set_value(3).run()
    assert any("needs a new model" in w.value for w in app.warning)
    assert workspace.settings.latent_dim == 8, "nothing is thrown away before the user says so"
    button(app, "Keep the current model").click().run()
    assert number(app, "Latent size").value == 8 and workspace.trained
    number(app, "Latent size").set_value(3).run()
    button(app, "Discard the trained model and apply").click().run()
    workspace = app.session_state["workspace"]
    assert workspace.settings.latent_dim == 3 and not workspace.trained
    open_tab(app, "explore")
    assert [s.label for s in app.slider if s.label.startswith("z")] == ["z0", "z1", "z2"]


def test_an_untrained_model_follows_the_size_inputs_at_once(app):
    number(app, "Intermediate size").set_value(32).run()
    assert app.session_state["workspace"].settings.intermediate_dim == 32
    assert not app.warning


def test_the_guide_preset_sets_the_guide_settings_and_explains_the_collapse(app):
    app.selectbox(key="preset").set_value("guide").run()
    button(app, "Use preset").click().run()
    assert number(app, "Latent size").value == 32 and number(app, "Intermediate size").value == 64
    assert app.radio(key="set_loss").value == "guide"
    assert any("Expect a collapse" in i.value for i in app.info)
    assert app.session_state["workspace"].settings == Settings()


def test_the_page_speaks_chinese(app):
    app.radio(key="lang").set_value("zh").run()
    labels = [b.label for b in app.button]
    assert "开始训练" in labels and "停止训练" in labels
    assert any("自带样本" in c.value and "训练集 4,500 张" in c.value for c in app.caption)
    assert not app.exception


def test_an_uploaded_picture_of_a_digit_is_reconstructed(app, mnist):
    app.radio(key="draw_source").set_value("upload").run()
    dark_on_light = (255 - mnist.x_test[1] * 255).astype(np.uint8)  # a photo of ink on paper
    app.file_uploader(key="draw_upload").set_value(("seven.png", png_bytes(dark_on_light), "image/png")).run()
    assert not app.exception and not app.error
    assert app.session_state["drawn"]["digit"].max() == pytest.approx(1.0)


def test_a_bad_upload_is_a_message_not_a_crash(app):
    app.radio(key="draw_source").set_value("upload").run()
    app.file_uploader(key="draw_upload").set_value(("digit.png", b"\x89PNG\r\n\x1a\n truncated", "image/png")).run()
    assert not app.exception
    assert any("could not be used" in e.value for e in app.error)
    button(app, "Start training")  # the page is still there


def test_loading_a_saved_model_makes_it_current(app, tmp_path):
    path = save_vae(build_vae(Settings(latent_dim=5, intermediate_dim=40)), tmp_path / "m.keras")
    open_tab(app, "model")
    app.file_uploader(key="model_upload").set_value(("m.keras", path.read_bytes(), "application/zip")).run()
    workspace = app.session_state["workspace"]
    assert workspace.settings.latent_dim == 5 and workspace.settings.intermediate_dim == 40
    assert number(app, "Latent size").value == 5
    assert any("Loaded m.keras" in s.value for s in app.success)


def test_a_broken_model_file_is_refused_with_a_message(app):
    open_tab(app, "model")
    app.file_uploader(key="model_upload").set_value(("bad.keras", b"PK\x03\x04 not really", "application/zip")).run()
    assert any("could not be loaded" in e.value for e in app.error)
    assert app.session_state["workspace"].settings.latent_dim == 8
    assert not app.exception


# Every call of t() whose key is built from a variable, and every key it can build. A new such
# call fails the test until its keys are listed here, so no built key goes untranslated.
def _built_keys() -> dict[str, set[str]]:
    import ast
    import re

    from playground.config import LOSSES, PRESETS, fields
    from playground.imaging import PHOTO_PROBLEMS
    from playground.lessons import LESSONS
    from playground.ui.i18n import _UPLOADER_TEXTS
    from playground.ui.latent_map import METHODS
    from playground.ui.runs import RUN_ENDINGS, SETTING_NAMES
    from playground.ui.same_start import CHANGEABLE

    root = Path(__file__).resolve().parents[1]
    jobs = (root / "playground/jobs.py").read_text() + (root / "playground/training.py").read_text()
    states = {"idle", "paused", *re.findall(r'(?:self\.state|reason) = "(\w+)"', jobs)}
    tabs = re.findall(r'^\s+\("(\w+)", \w+\.render\)', (root / "app.py").read_text(), re.M)
    loaders = ast.walk(ast.parse((root / "playground/data.py").read_text()))
    makes = [node for node in loaders if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_make"]
    origins = {node.args[6].value for node in makes}  # _make(name, x_train, ..., where, origin, location)
    assert states >= {"queued", "running", "finished", "stopped", "diverged", "failed"} and len(tabs) >= 6
    assert origins == {"keras", "bundled", "idx"}, origins
    curves = ("loss", "reconstruction_loss", "kl_loss")
    choices = {f"{s.name}.{value}" for s in fields() if s.choices and s.name != "dataset" for value in s.choices}
    return {
        'f"{name}.{value}"': choices,  # sidebar: the loss names (datasets keep their own titles)
        "setting.text_key": {s.text_key for s in fields()},
        "setting.help_key": {s.help_key for s in fields()},
        'f"source.{data.origin}"': {f"source.{o}" for o in origins - {"keras"}} | {"source.upload"},
        'f"source.keras_{data.location}"': {"source.keras_cache", "source.keras_download"},
        'f"preset.{name}"': {f"preset.{name}" for name in PRESETS},
        'f"tab.{tab_id}"': {f"tab.{tab_id}" for tab_id in tabs},
        "'state.' + state": {f"state.{state}" for state in states},
        'f"chart.{name}"': {f"chart.{name}" for name in curves},
        'f"chart.val_{name}"': {f"chart.val_{name}" for name in curves},
        'f"uploader.{name}"': {f"uploader.{name}" for name in _UPLOADER_TEXTS},
        'f"items.{ws.dataset.kind}"': {f"items.{name}" for name in (*fields()[0].choices, "upload")},
        'f"item.{kind}"': {f"item.{name}" for name in (*fields()[0].choices, "upload")},
        'f"model.kl_value_{ws.settings.loss}"': {f"model.kl_value_{loss}" for loss in LOSSES},
        'f"model.objective_{ws.settings.loss}"': {f"model.objective_{loss}" for loss in LOSSES},
        'f"runs.loss_{s.loss}"': {f"runs.loss_{loss}" for loss in LOSSES},
        'f"runs.loss_{value}"': {f"runs.loss_{loss}" for loss in LOSSES},
        'f"settings.{name}"': {f"settings.{name}" for name in SETTING_NAMES},
        'f"state.{reason}"': {f"state.{reason}" for reason in RUN_ENDINGS},
        'f"draw.photo_{problem}"': {f"draw.photo_{problem}" for problem in PHOTO_PROBLEMS},
        'f"map.method_{method}"': {f"map.method_{method}" for method in METHODS},
        'f"settings.{field}"': {f"settings.{name}" for name in SETTING_NAMES},  # link notes
        'f"settings.{n}"': {f"settings.{name}" for name in CHANGEABLE},  # same start, one change
        "f'settings.{name}'": {f"settings.{name}" for name in SETTING_NAMES},  # lessons, same start
        'f"lesson.{i}.title"': {f"lesson.{name}.title" for name in LESSONS},
        'f"lesson.{lesson.id}.title"': {f"lesson.{name}.title" for name in LESSONS},
        'f"lesson.{lesson.id}.question"': {f"lesson.{name}.question" for name in LESSONS},
        "f'lesson.{lesson.id}.watch'": {f"lesson.{name}.watch" for name in LESSONS},
        'f"lesson.{lesson.id}.{verdict.state}"': {
            f"lesson.{name}.{state}" for name in LESSONS for state in ("shown", "not_shown")
        },
    }


def test_every_text_has_both_languages_and_every_key_used_exists():
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    table = tomllib.loads((root / "playground/ui/strings.toml").read_text(encoding="utf-8"))
    assert all(set(entry) == {"en", "zh"} and all(entry.values()) for entry in table.values())
    for key, entry in table.items():
        names = [set(re.findall(r"{(\w+)}", entry[lang])) for lang in ("en", "zh")]
        assert names[0] == names[1], f"{key}: placeholders differ between languages"
    code = "\n".join(p.read_text() for p in [root / "app.py", *(root / "playground/ui").glob("*.py")])
    calls = re.findall(r"\bt\(\s*([^,)]+)", code)  # each call's first argument, as written
    literal = {call[1:-1] for call in calls if re.fullmatch(r"([\"'])[a-z_0-9.]+\1", call)}
    built = {call for call in calls if not re.fullmatch(r"([\"'])[a-z_0-9.]+\1", call)} - {"key: str"}
    enumerated = _built_keys()
    assert built == set(enumerated), "a t() call builds its key from a variable: list its keys in _built_keys"
    assert literal, "literal keys were found"
    used = literal | set().union(*enumerated.values())
    assert used - set(table) == set(), "keys used but not translated"


def plotly_values(values) -> np.ndarray:
    """A trace's x or y from a figure's JSON: a list, or Plotly's typed-array {dtype, bdata}."""
    if isinstance(values, dict):
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_link_with_lang_zh_opens_the_page_in_chinese(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lang"] = "zh"
    at.run()
    assert "开始训练" in [b.label for b in at.button]


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_runs_are_kept_compared_and_reopened(app):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    open_tab(app, "runs")
    assert any(c.value.startswith("1 saved run in this workspace") for c in app.caption), "one run, not 1 runs"
    assert "These runs have the same settings." not in [c.value for c in app.caption], "one run is not 'these runs'"
    button(app, "Reset model").click().run()
    number(app, "Epochs").set_value(2).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    workspace = app.session_state["workspace"]
    assert sorted(p.name for p in Path(workspace.runs_dir).glob("run-*")) == ["run-001", "run-002"]
    open_tab(app, "runs")
    assert any(c.value.startswith("2 saved runs in this workspace") for c in app.caption)
    chosen = app.multiselect(key="runs_chosen")
    assert set(chosen.value) == {"run-001", "run-002"}
    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    overlay = next(s for s in specs if {t.get("name") for t in s["data"]} == {"run-001", "run-002"})
    assert sorted(len(plotly_values(trace["x"])) for trace in overlay["data"]) == [1, 2], "a point per epoch"
    assert [b.label for b in app.button if b.label == "Reopen"] == ["Reopen", "Reopen"]
    reopen_first = next(b for b in app.button if b.key == "reopen_run-001")
    reopen_first.click().run()
    assert workspace.trainer.epoch == 1 and len(workspace.trainer.history.records("val")) == 1
    assert any("Reopened run-001" in s.value for s in app.success)
    button(app, "Train 1 more epoch").click().run()  # and it trains on from there
    wait_until_idle(app)
    assert workspace.trainer.epoch == 2


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_the_code_tab_snippet_rebuilds_and_reloads_the_model_outside_the_app(app, tmp_path):
    import subprocess
    import sys

    open_tab(app, "code")
    snippet = next(c.value for c in app.code if "load_vae" in c.value)
    assert "latent_dim=8, intermediate_dim=256" in snippet
    save_vae(app.session_state["workspace"].inference.model, tmp_path / "vae-playground.keras")
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}  # no PYTHONPATH: the snippet finds the package
    command = [sys.executable, "-c", snippet]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(8, 784)")
    from playground.cli import _settings_from, build_parser

    train_command = next(c.value for c in app.code if c.value.startswith("python -m playground train"))
    args = build_parser().parse_args(train_command.split()[3:])
    assert _settings_from(args) == app.session_state["workspace"].settings, "the command trains these settings"
    assert any("class Encoder" in c.value for c in app.code), "the model's source is shown"


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_the_kl_bars_show_during_training_and_can_order_the_sliders(app):
    number(app, "Epochs").set_value(2).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    kl = app.session_state["workspace"].trainer.history.kl_per_dim
    assert kl.shape == (8,) and any("dimensions in use" in c.value for c in app.caption)
    open_tab(app, "explore")
    app.checkbox(key="order_by_kl").check().run()
    labels = [s.label for s in app.slider if s.label.startswith("z")]
    columns = 4  # sliders fill four columns row by row; the page lists them column by column
    by_kl = [f"z{i}" for i in np.argsort(-kl, kind="stable")]
    assert labels == [by_kl[i] for c in range(columns) for i in range(c, len(by_kl), columns)]


def test_a_failing_panel_shows_a_short_error_and_the_rest_of_the_page_works(app, monkeypatch):
    from playground.inference import Inference

    def broken(self, codes):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(Inference, "decode", broken)
    open_tab(app, "explore")
    assert not app.exception, "no traceback on the page"
    assert any("Something went wrong in this panel" in e.value for e in app.error)
    button(app, "Start training")
    assert number(app, "Latent size").value == 8


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_runs_survive_a_reload_through_the_address(app, monkeypatch):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    token = app.query_params["ws"]
    token = token[0] if isinstance(token, list) else token
    reloaded = AppTest.from_file(APP, default_timeout=120)  # a new session: a reload of the same address
    reloaded.query_params["ws"] = token
    reloaded.run()
    open_tab(reloaded, "runs")
    assert reloaded.multiselect(key="runs_chosen").value == ["run-001"]
    stranger = AppTest.from_file(APP, default_timeout=120)  # another browser: another workspace
    stranger.run()
    open_tab(stranger, "runs")
    assert any("Every training run is kept here" in i.value for i in stranger.info)


def test_an_out_of_range_number_says_the_allowed_range_and_changes_nothing(app):
    number(app, "Latent size").set_value(100).run()
    assert any("Latent size must be between 1 and 64" in e.value for e in app.sidebar.error)
    assert app.session_state["workspace"].settings.latent_dim == 8
    assert app.button(key="start").disabled and any("out of its range" in c.value for c in app.main.caption)
    number(app, "Latent size").set_value(4).run()
    assert not app.error and app.session_state["workspace"].settings.latent_dim == 4
    assert not app.button(key="start").disabled
    app.radio(key="lang").set_value("zh").run()
    number(app, "潜在维度（Latent size）").set_value(0).run()
    assert any("必须在 1 到 64 之间" in e.value for e in app.sidebar.error)


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_a_change_of_model_asks_next_to_start_and_start_waits_for_the_answer(app):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    workspace = app.session_state["workspace"]
    number(app, "Latent size").set_value(3).run()
    assert app.button(key="start").disabled, "Start would train the old model while the sidebar shows the new one"
    assert any(w.value.startswith("Latent size 8 → 3:") for w in app.main.warning)
    assert any("Answer the question next to the training buttons" in w.value for w in app.sidebar.warning)
    assert [b.key for b in app.main.button if b.key in ("discard", "keep")] == ["discard", "keep"]
    assert not [b for b in app.sidebar.button if b.key in ("discard", "keep")]
    app.button(key="keep").click().run()
    assert not app.button(key="start").disabled and workspace.settings.latent_dim == 8
    number(app, "Latent size").set_value(3).run()
    app.button(key="discard").click().run()
    assert not app.button(key="start").disabled and app.session_state["workspace"].settings.latent_dim == 3


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_the_first_run_is_long_enough_to_watch_and_start_says_what_it_will_do(app):
    from playground.config import epochs_for

    assert number(app, "Epochs").value == epochs_for(4_500, 64) == 423
    number(app, "Epochs").set_value(2).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    assert app.button(key="start").label == "Train 2 more epochs"
    number(app, "Epochs").set_value(1000).run()
    app.button(key="start").click().run()
    workspace = app.session_state["workspace"]
    wait_for(lambda: workspace.trainer.epoch >= 3, 60, "training did not go on")
    button(app, "Stop training").click().run()
    wait_until_idle(app, timeout=30)
    target = workspace.trainer.target_epoch
    assert target == 1002 and app.button(key="start").label == f"Continue training to epoch {target}"
    button(app, "Reset model").click().run()
    assert app.button(key="start").label == "Start training"


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_an_untrained_model_never_reads_finished(app):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    assert any("Finished · 1 epochs" in p.proto.text for p in app.get("progress"))
    button(app, "Reset model").click().run()
    texts = [p.proto.text for p in app.get("progress")]
    assert texts == ["Ready · an untrained model"], texts


def test_time_left_reads_in_minutes_and_hours():
    from playground.ui.i18n import duration

    assert [duration(s) for s in (0, 42.4, 59.6, 200, 3599, 8560)] == [
        "0 s", "42 s", "1 min 0 s", "3 min 20 s", "59 min 59 s", "2 h 22 min",
    ]  # fmt: skip


@pytest.mark.slow  # trains a model (or starts a Python with TensorFlow)
def test_the_model_tab_shows_the_kl_term_of_the_current_loss_and_weight(app):
    from playground.losses import kl_per_dimension

    number(app, "KL weight").set_value(0.1).run()
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    workspace = app.session_state["workspace"]

    def shown() -> tuple[str, float]:
        open_tab(app, "model")
        latex = next(m.value for m in app.get("latex"))
        caption = next(c.value for c in app.caption if "KL =" in c.value)
        return latex, float(caption.split("= **")[1].split("**")[0])

    def by_numpy() -> float:  # the ELBO's KL: summed over latent dimensions, averaged over the images
        z_mean, z_log_var = workspace.refresh().encode(workspace.dataset.x_test[:256])
        kl = np.asarray(kl_per_dimension(z_mean, z_log_var)).sum(axis=1).mean()
        expected = -0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var))
        assert kl == pytest.approx(expected.sum(axis=1).mean(), rel=1e-5)
        return 0.1 * kl

    latex, trained = shown()
    assert r"\sum_{j=1}^{L}" in latex and r"\frac{1}{L}" not in latex, "the ELBO sums over latent dimensions"
    assert trained == pytest.approx(by_numpy(), rel=1e-4)
    assert any("β = 0.1 " in c.value for c in app.caption)
    button(app, "Reset model").click().run()
    _, reset = shown()
    assert reset == pytest.approx(by_numpy(), rel=1e-4) and reset != pytest.approx(trained, rel=1e-3)
    app.radio(key="set_loss").set_value("guide").run()
    latex, _ = shown()
    assert r"\frac{1}{L}\sum_{j=1}^{L}" in latex, "the guide's loss averages over latent dimensions"


def test_the_loss_chart_puts_kl_in_its_own_panel_and_skips_the_first_spike():
    from playground.figures import MAX_MARKERS, loss_figure

    steps = np.arange(1, 2001, dtype=float)
    train = {"step": steps, "loss": 100 + 400 / steps, "reconstruction_loss": 90 + 400 / steps,
             "kl_loss": 10 + 0 * steps}  # fmt: skip
    train["loss"][0] = 500.0  # the untrained model's first record
    val_steps = np.arange(10, 2001, 5, dtype=float)  # 399 epochs
    val = {"step": val_steps, "loss": 101 + 0 * val_steps, "reconstruction_loss": 91 + 0 * val_steps,
           "kl_loss": 10 + 0 * val_steps}  # fmt: skip
    text = {k: k for k in ("loss", "reconstruction_loss", "kl_loss", "step", "loss_axis", "kl_axis")}
    text.update({f"val_{k}": f"val_{k}" for k in ("loss", "reconstruction_loss", "kl_loss")})
    figure = loss_figure(train, val, text)
    axis_of = {trace.name: trace.yaxis for trace in figure.data}
    assert axis_of["kl_loss"] == axis_of["val_kl_loss"] == "y2" and axis_of["loss"] == "y"
    layout = figure.layout
    assert layout.yaxis2.overlaying is None, "KL is a panel of its own, not drawn over the losses"
    assert set(layout.yaxis.domain).isdisjoint(layout.yaxis2.domain) or max(layout.yaxis2.domain) < min(
        layout.yaxis.domain
    )
    assert layout.yaxis.range[1] < 300, "the first record's 500 does not set the scale"
    assert layout.yaxis.range[0] < 91 and layout.yaxis.range[1] > 101 + 400 / 4
    val_loss = next(trace for trace in figure.data if trace.name == "val_loss")
    assert len(val_loss.x) == 399 and sum(size > 0 for size in val_loss.marker.size) <= MAX_MARKERS


def test_streamlit_s_keras_clean_up_is_turned_off_and_fails_loudly_if_it_moves(monkeypatch):
    from streamlit.runtime.scriptrunner import script_runner

    from playground.ui import state

    assert script_runner._clean_problem_modules is state._keep_modules, "Streamlit's hook is replaced"
    monkeypatch.delattr(script_runner, state.PRIVATE_HOOK)
    with pytest.raises(RuntimeError, match="_clean_problem_modules is gone"):
        state.keep_keras_state()
    assert not hasattr(script_runner, state.PRIVATE_HOOK), "no attribute added under the old name"


def test_the_uploaders_own_texts_are_translated(app):
    def styles() -> str:
        return "".join(element.proto.body for element in app.get("html"))

    assert "上传" not in styles(), "English needs no override"
    app.radio(key="lang").set_value("zh").run()
    css = styles()
    limit = 100  # MB: .streamlit/config.toml's server.maxUploadSize (your own datasets, playground/uploads.py)
    assert 'content: "上传"' in css and f'content: "每个文件不超过 {limit}MB"' in css and "把文件拖放到这里" in css
    # The CSS finds Streamlit's texts by test id: the installed Streamlit must still render them.
    import streamlit

    bundle = Path(streamlit.__file__).parent / "static/static/js"
    source = "".join(path.read_text(errors="ignore") for path in bundle.glob("FileUploader*.js"))
    for marker in ("stFileUploaderDropzone", "stFileUploaderDropzoneInstructions", "per file", "label:l?`Upload"):
        assert marker in source, f"Streamlit's uploader changed: {marker!r} is gone; update i18n._UPLOADER_TEXTS"


@pytest.mark.slow  # trains nothing, but builds two models and loads two datasets
def test_a_new_dataset_brings_its_own_watchable_epochs_and_words(monkeypatch, tmp_path):
    import dataclasses

    from playground.config import epochs_for
    from playground.data import load_dataset

    # No network and no Debian package needed: MNIST is the bundled sample, "Fashion-MNIST" a
    # same-shaped stand-in of another size (a source string of its own keeps the server cache apart).
    def loader(name, source):
        bundled = load_dataset("mnist", "bundled")
        if name == "mnist":
            return bundled
        more = np.concatenate([bundled.x_train, bundled.x_train])  # 9,000 training pictures
        return dataclasses.replace(bundled, name=name, x_train=more, y_train=np.concatenate([bundled.y_train] * 2))

    monkeypatch.setattr("playground.ui.state.load_dataset", loader)
    monkeypatch.setenv("PLAYGROUND_SOURCE", f"stand-in:{tmp_path}")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert number(at, "Epochs").value == epochs_for(4_500, 64)
    assert any(img.captions[0].startswith("Test digits") for img in at.image)
    at.selectbox(key="set_dataset").set_value("fashion_mnist").run()
    assert not at.exception and at.session_state["workspace"].dataset.name == "fashion_mnist"
    assert number(at, "Epochs").value == epochs_for(9_000, 64) != epochs_for(4_500, 64)
    assert any(img.captions[0].startswith("Test pictures of clothes") for img in at.image)
    at.session_state["workspace"].close()


def _queued_progress():
    from playground.ui.train import _progress
    from playground.workspace import Status

    _progress(Status(state="queued", epoch=1, target_epoch=0, step=0, epoch_step=0, steps_per_epoch=71,
                     steps_per_second=0.0, seconds_left=None, queue_position=2, result=None, error=None,
                     save_error=None))  # fmt: skip


def test_a_queued_run_says_its_place_not_epoch_1_of_0():
    at = AppTest.from_function(_queued_progress, default_timeout=60).run()
    assert [p.proto.text for p in at.get("progress")] == ["Queued · number 2 in the queue"]
    assert any("You are number 2 in the queue" in i.value for i in at.info)


def _starting_progress(compiling: bool):
    from playground.ui.train import _progress
    from playground.workspace import Status

    _progress(Status(state="running", epoch=1, target_epoch=423, step=0, epoch_step=0, steps_per_epoch=71,
                     steps_per_second=0.0, seconds_left=None, queue_position=None, result=None, error=None,
                     save_error=None, compiling=compiling))  # fmt: skip


@pytest.mark.parametrize("compiling", [True, False])
def test_a_run_before_its_first_record_says_compiling_only_when_it_compiles(compiling):
    at = AppTest.from_function(_starting_progress, args=(compiling,), default_timeout=60).run()
    text = "Training · compiling the training loop (a second or two)…" if compiling else "Training · starting…"
    assert [p.proto.text for p in at.get("progress")] == [text]

