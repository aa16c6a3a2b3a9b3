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
from tests.support import wait_for

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    if "workspace" in at.session_state:
        at.session_state["workspace"].stop(wait=True)


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
    assert (latent.min, latent.max, latent.value) == (1, 64, 8)
    assert (hidden.min, hidden.max, hidden.value) == (8, 1024, 256)
    for label in ("Start training", "Stop training", "Pause", "Reset model"):
        button(app, label)
    assert button(app, "Stop training").disabled and not button(app, "Start training").disabled
    assert any("bundled sample" in c.value for c in app.caption)
    assert not [s for s in app.slider if s.label.startswith("z")], "hidden tabs do not run"
    open_tab(app, "explore")
    assert [s.label for s in app.slider if s.label.startswith("z")] == [f"z{i}" for i in (0, 4, 1, 5, 2, 6, 3, 7)]
    assert not app.error


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
    used = set(re.findall(r'\bt\("([a-z_0-9.]+)"', code))
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


def test_runs_are_kept_compared_and_reopened(app):
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    button(app, "Reset model").click().run()
    number(app, "Epochs").set_value(2).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    workspace = app.session_state["workspace"]
    assert sorted(p.name for p in Path(workspace.runs_dir).glob("run-*")) == ["run-001", "run-002"]
    open_tab(app, "runs")
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
    button(app, "Start training").click().run()  # and it trains on from there
    wait_until_idle(app)
    assert workspace.trainer.epoch == 2


def test_the_code_tab_snippet_rebuilds_and_reloads_the_model_outside_the_app(app, tmp_path):
    import subprocess
    import sys

    open_tab(app, "code")
    snippet = next(c.value for c in app.code if "load_vae" in c.value)
    assert "latent_dim=8, intermediate_dim=256" in snippet
    save_vae(app.session_state["workspace"].inference.model, tmp_path / "vae-playground.keras")
    root = Path(APP).parent
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", snippet]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(8, 784)")
    assert any("class Encoder" in c.value for c in app.code), "the model's source is shown"


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
