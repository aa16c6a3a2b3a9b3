"""The page logic around the instrument, headless (AppTest runs no JavaScript: the server's path).

Issue 9 item 16: the Explore tab's grid and interpolation settings outlive a visit to another
tab, and the interpolation's test digits are shown; the page's code and drawing, sent back by the
component when a gesture ends, reach the session.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.config import Settings
from playground.inference import Inference, pack_weights, unpack_weights
from playground.ui.instrument import PUSH_SECONDS, push_interval
from tests.test_app import APP, open_tab


@pytest.fixture
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    yield at
    if "workspace" in at.session_state:
        at.session_state["workspace"].stop(wait=True)


def test_grid_and_interpolation_settings_outlive_another_tab(app):
    open_tab(app, "explore")
    app.slider(key="grid_steps").set_value(7).run()
    app.selectbox(key="grid_y").set_value(3).run()
    app.number_input(key="strip_a").set_value(5).run()
    app.slider(key="strip_steps").set_value(4).run()
    open_tab(app, "draw")
    open_tab(app, "explore")
    assert app.slider(key="grid_steps").value == 7
    assert app.selectbox(key="grid_y").value == 3
    assert app.number_input(key="strip_a").value == 5
    assert app.slider(key="strip_steps").value == 4
    assert not app.exception


def test_the_interpolation_shows_the_chosen_test_digits(app):
    open_tab(app, "explore")
    app.number_input(key="strip_a").set_value(12).run()
    captions = [c for image in app.image for c in image.captions]
    assert "Test digits #12 (A) and #1 (B)" in captions


def test_a_model_read_back_from_the_page_blob_decodes_like_the_original():
    original = Inference(Settings(latent_dim=4, intermediate_dim=24, seed=1))
    copy = Inference(Settings(latent_dim=4, intermediate_dim=24, seed=2))
    codes = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    assert np.abs(copy.decode(codes) - original.decode(codes)).max() > 1e-3, "two seeds, two models"
    copy.load_packed(unpack_weights(pack_weights(original.model, 3)))
    np.testing.assert_array_equal(copy.decode(codes), original.decode(codes))
    digits = np.random.default_rng(2).random((2, 784)).astype(np.float32)
    np.testing.assert_array_equal(copy.encode(digits)[0], original.encode(digits)[0])
    other_size = Inference(Settings(latent_dim=5, intermediate_dim=24))
    with pytest.raises(ValueError, match="another size"):
        other_size.load_packed(unpack_weights(pack_weights(original.model, 3)))


def test_large_blobs_are_pushed_less_often():
    assert push_interval(816_000) == PUSH_SECONDS
    assert push_interval(7_200_000) == pytest.approx(3.6)
