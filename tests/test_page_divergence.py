"""The page tells a diverged run the way it ended, and Reset clears it (AppTest on the bundled sample)."""

from __future__ import annotations

from tests.test_app import button, number, wait_until_idle


def test_a_diverged_run_says_which_weights_it_kept_and_reset_clears_it(app):  # noqa: F811
    next(s for s in app.select_slider if s.label == "Learning rate").set_value(10.0).run()
    number(app, "Epochs").set_value(3).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    errors = [e.value for e in app.error]
    assert any("stopped being a finite number at step" in e and "initial weights were kept" in e for e in errors)
    button(app, "Reset model").click().run()
    assert not app.error
    assert app.session_state["workspace"].status().state == "idle"
