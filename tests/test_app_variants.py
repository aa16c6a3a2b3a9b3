"""The model variants on the page (AppTest): the sidebar's choices, Explore's class picker, Draw's
"your digit as every class", the convolutional model's server-side decoding, the presets, the Code tab."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from playground.model_files import save_vae
from tests.test_app import button, digit_on_canvas, number, open_tab

DECODED = "decoder's output"


def decoded_image(at) -> str:
    return next(img.value for img in at.image if DECODED in img.captions[0])


def conditional_page(app):
    app.toggle(key="set_conditional").set_value(True).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.session_state["workspace"].settings.conditional, "an untrained model follows at once"
    return app


def test_the_sidebar_offers_every_variant_and_builds_it(app):
    number(app, "Hidden layers").set_value(3).run()
    app.radio(key="set_architecture").set_value("conv").run()
    conditional_page(app)
    model = app.session_state["workspace"].inference.model
    assert (model.hidden_layers, model.classes, model.architecture) == (3, 10, "conv")
    assert not app.exception and not app.error


def test_the_class_picker_changes_the_class_and_keeps_the_code(app):
    conditional_page(app)
    open_tab(app, "explore")
    picker = app.radio(key="explore_class")
    assert picker.options == [str(d) for d in range(10)]
    next(s for s in app.slider if s.label == "z0").set_value(1.5).run()
    before = decoded_image(app)
    code = app.session_state["latent_code"].copy()
    app.radio(key="explore_class").set_value(7).run()
    assert decoded_image(app) != before, "another class draws another picture"
    np.testing.assert_array_equal(app.session_state["latent_code"], code)


def test_draw_shows_your_digit_as_every_class_with_the_picked_class_or_the_best_guess(app, mnist):
    conditional_page(app)
    app.session_state["draw_image"] = digit_on_canvas(mnist.x_test[0])
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("best guess" in m.value for m in app.markdown)
    strips = [img for img in app.image if "each of the ten labels" in img.captions[0]]
    assert len(strips) == 1
    app.radio(key="draw_class").set_value(3).run()
    assert any("encoded as **3** (your pick)" in m.value for m in app.markdown)
    inference = app.session_state["workspace"].refresh()
    drawn = app.session_state["drawn"]
    np.testing.assert_allclose(drawn["z_mean"], inference.encode(drawn["digit"][None], 3)[0][0], atol=1e-6)
    button(app, "Explore this code").click().run()
    assert app.session_state["tab_id"] == "explore" and app.session_state["explore_class"] == 3


def test_a_conv_model_decodes_on_the_server_and_says_so(app, mnist):
    app.radio(key="set_architecture").set_value("conv").run()
    open_tab(app, "explore")
    assert any("runs on the server" in i.value for i in app.info)
    before = decoded_image(app)
    next(s for s in app.slider if s.label == "z0").set_value(3.0).run()
    assert decoded_image(app) != before
    open_tab(app, "draw")
    assert any("runs on the server" in i.value for i in app.info)
    app.session_state["draw_image"] = digit_on_canvas(mnist.x_test[0])
    app.run()
    assert "The model's reconstruction" in [c for img in app.image for c in img.captions]
    open_tab(app, "model")
    assert not app.exception, [e.value for e in app.exception]


@pytest.mark.parametrize("name", ["deep", "conditional", "conv"])
def test_each_variant_has_a_preset(app, name):
    app.selectbox(key="preset").set_value(name).run()
    button(app, "Use preset").click().run()
    settings = app.session_state["workspace"].settings
    assert {"deep": settings.hidden_layers == 2, "conditional": settings.conditional,
            "conv": settings.architecture == "conv"}[name]  # fmt: skip
    assert not app.exception


@pytest.mark.slow
def test_the_code_tab_snippet_runs_for_a_conditional_model(app, tmp_path):
    conditional_page(app)
    open_tab(app, "code")
    snippet = next(c.value for c in app.code if "load_vae" in c.value)
    assert "labels=labels" in snippet
    assert any("def _with_label" in c.value for c in app.code), "the code that appends the label is shown"
    save_vae(app.session_state["workspace"].inference.model, tmp_path / "vae-playground.keras")
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    train_command = next(c.value for c in app.code if c.value.startswith("python -m playground train"))
    assert "--conditional" in train_command.split()
