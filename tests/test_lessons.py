"""Lessons: verdicts computed from runs (and different when a run does not show the effect), and the tab end to end."""

from __future__ import annotations

import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground import lessons
from playground.config import Settings
from playground.lessons import LESSONS
from playground.losses import kl_per_dimension as tf_kl_per_dimension
from tests.support import wait_for
from tests.test_app import APP, button
from tests.test_data import write_idx

# ---- the verdicts, fed made-up runs ----


def test_kl_per_dimension_matches_the_trainers_closed_form(rng):
    z_mean, z_log_var = rng.normal(size=(50, 6)), rng.normal(scale=0.5, size=(50, 6))
    expected = np.mean(tf_kl_per_dimension(z_mean.astype(np.float32), z_log_var.astype(np.float32)).numpy(), axis=0)
    np.testing.assert_allclose(lessons.kl_per_dimension(z_mean, z_log_var), expected, rtol=1e-5)


def test_collapse_is_called_only_when_no_dimension_is_used_and_every_picture_is_the_same(rng):
    mean_image = rng.uniform(0, 0.3, 784)
    near_mean = mean_image * (1 + rng.uniform(-0.01, 0.01, (20, 784)))  # within 1%
    collapsed = lessons.collapse(np.full(32, 0.002), near_mean, mean_image)
    assert collapsed.state == "shown"
    assert collapsed.values["used"] == 0 and collapsed.values["dims"] == 32
    picture = near_mean.mean(axis=0)
    worst = max(np.sqrt(np.sum((row - picture) ** 2)) for row in near_mean) / np.sqrt(np.sum(picture**2))
    assert collapsed.values["worst"] == f"{worst:.1%}" and collapsed.values["data_gap"] == "0%"
    in_use = lessons.collapse(np.r_[np.full(29, 0.002), [0.5, 1.2, 0.02]], near_mean, mean_image)
    assert in_use.state == "not_shown" and in_use.values["used"] == 3
    digits = rng.uniform(0, 1, (20, 784))  # reconstructions that are pictures of their own
    assert lessons.collapse(np.full(32, 0.002), digits, mean_image).state == "not_shown"


def test_the_kl_sweep_verdict_follows_the_runs():
    trend = {0.0: (8, 0.010), 0.1: (8, 0.012), 1.0: (5, 0.020), 4.0: (2, 0.041)}
    verdict = lessons.kl_sweep(trend, 8)
    assert verdict.state == "shown" and (verdict.values["used_low"], verdict.values["used_high"]) == (8, 2)
    assert "β=4: 2 of 8, 0.0410" in verdict.values["table"]
    flat = {0.0: (8, 0.010), 4.0: (8, 0.009)}  # a heavy KL term that switched nothing off
    assert lessons.kl_sweep(flat, 8).state == "not_shown"
    assert lessons.kl_sweep({1.0: (5, 0.02)}, 8).state == "pending"


def test_the_latent_map_verdict_measures_how_digits_cluster(rng):
    labels = np.repeat(np.arange(10), 30)
    centres = np.stack([np.cos(np.arange(10) * 0.6), np.sin(np.arange(10) * 0.6)], axis=1) * 5  # [10, 2]
    clustered = centres[labels] + rng.normal(scale=0.3, size=(300, 2))
    verdict = lessons.latent_map(clustered, labels)
    assert verdict.state == "shown" and float(verdict.values["agreement"].rstrip("%")) > 90
    assert verdict.values["pairs"].split(", ")[0] in {f"{d}–{d + 1}" for d in range(9)}, "neighbours on the circle"
    scattered = lessons.latent_map(rng.normal(size=(300, 2)), labels)
    assert scattered.state == "not_shown" and float(scattered.values["agreement"].rstrip("%")) < 30
    assert lessons.latent_map(rng.normal(size=(300, 8)), labels).state == "pending"


def test_the_capacity_verdict_needs_the_small_network_clearly_worse():
    assert lessons.capacity((16, 180.0, 185.0), (512, 120.0, 130.0)).values["gap"] == "+50%"
    assert lessons.capacity((16, 180.0, 185.0), (512, 120.0, 130.0)).state == "shown"
    assert lessons.capacity((16, 121.0, 130.0), (512, 120.0, 131.0)).state == "not_shown"
    assert lessons.capacity(None, (512, 120.0, 130.0)).state == "pending"


def test_the_divergence_verdict_reads_how_the_run_ended():
    shown = lessons.divergence("diverged", [540.0, 3e8], 12, True)
    assert shown.state == "shown" and shown.values["step"] == "12" and shown.values["last"] == "3e+08"
    assert lessons.divergence("finished", [540.0, 210.0], 71, True).state == "not_shown"
    assert lessons.divergence("diverged", [540.0], 3, False).state == "not_shown", "spoiled weights: the guard failed"
    assert lessons.divergence(None, [], 0, True).state == "pending"


def test_the_elbo_verdict_compares_codes_and_pixels():
    assert lessons.elbo_vs_guide((0, 0.067), (8, 0.015), 8).state == "shown"
    assert lessons.elbo_vs_guide((6, 0.02), (6, 0.021), 8).state == "not_shown"
    assert lessons.elbo_vs_guide(None, (8, 0.015), 8).state == "pending"


def test_the_overfitting_verdict_finds_the_epoch_validation_turned():
    val = [160.0, 140.0, 131.0, 129.0, 128.0, 128.5, 130.0, 132.0, 134.0, 136.0]
    shown = lessons.overfitting(val, [170.0, 140.0, 125.0, 118.0, 112.0, 107.0, 104.0, 101.0, 99.0, 97.0])
    smooth = np.convolve(val, np.ones(3) / 3, mode="valid")
    assert shown.state == "shown" and shown.values["best_epoch"] == 5, "epochs 4-6 average lowest"
    assert shown.values["rise"] == f"{smooth[-1] / smooth.min() - 1:+.1%}"
    falling = lessons.overfitting([160.0, 140.0, 131.0, 129.0, 128.0], [170.0, 140.0, 125.0, 118.0, 112.0])
    assert falling.state == "not_shown" and falling.values["best_epoch"] == 4
    # A plateau whose single epochs wobble by 1% is noise, not overfitting (measured: epochs 26-40 of
    # 784-1024-32 at KL weight 1, learning rate 0.003, on the bundled sample).
    plateau = [115.54, 114.81, 114.22, 114.06, 113.81, 114.28, 113.52, 114.24, 114.72, 115.13, 113.13, 113.52, 114.06,
               114.6, 114.33]  # fmt: skip
    assert plateau[-1] / min(plateau) - 1 > 0.01 and lessons.overfitting(plateau, [1.0]).state == "not_shown"
    assert lessons.overfitting([150.0, 140.0, 139.0], [160.0]).state == "pending"


def test_a_comparison_lesson_matches_its_runs_and_picks_the_next_value():
    sweep = LESSONS["kl_sweep"]
    assert sweep.matches(sweep.run_settings(4.0)) and not sweep.matches(sweep.run_settings(4.0).replace(seed=1))
    assert not sweep.matches(sweep.run_settings(2.0)), "only the lesson's values"
    assert sweep.next_value(set()) == 0.0 and sweep.next_value({0.0, 0.1}) == 1.0
    assert sweep.next_value(set(sweep.values)) == 0.0
    assert len(LESSONS) >= 6 and LESSONS["collapse"].settings == Settings()


# ---- the tab, end to end ----


@pytest.fixture(scope="module")
def small_idx(tmp_path_factory, request):
    """700 training and 100 test digits of the bundled sample as IDX files: fast lessons."""
    mnist = request.getfixturevalue("mnist")
    folder = tmp_path_factory.mktemp("idx")
    arrays = {
        "train-images-idx3-ubyte": (mnist.x_train[:700] * 255).round(),
        "train-labels-idx1-ubyte": mnist.y_train[:700],
        "t10k-images-idx3-ubyte": (mnist.x_test[:100] * 255).round(),
        "t10k-labels-idx1-ubyte": mnist.y_test[:100],
    }
    for stem, array in arrays.items():
        write_idx(folder / stem, array)
    return folder


@pytest.fixture
def page(monkeypatch, tmp_path, small_idx):
    monkeypatch.setattr("playground.jobs.ABANDON_SECONDS", 3600.0)  # AppTest's session never looks alive to the janitor
    monkeypatch.setenv("PLAYGROUND_SOURCE", f"idx:{small_idx}")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["tab_id"] = "lessons"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    at.session_state["workspace"].stop(wait=True)


def _verdict_texts(at: AppTest) -> list[str]:
    return [e.value for kind in ("success", "warning") for e in getattr(at, kind)]


def _train_lesson_run(at: AppTest, lesson_id: str) -> str:
    """Press the lesson's button, train, and return the page's message about what changed."""
    workspace = at.session_state["workspace"]
    button(at, next(b.label for b in at.button if b.key == "lesson_apply")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    message = next(s.value for s in at.success)
    assert LESSONS[lesson_id].matches(workspace.settings)
    button(at, "Start training").click().run()
    wait_for(lambda: not workspace.training, 240, "training did not end")
    at.run()
    return message


@pytest.mark.slow
def test_seven_lessons_run_end_to_end_with_verdicts_from_the_run(page):
    at = page
    assert any("No trained model yet" in i.value for i in at.info), "no verdict before a run"
    ws = at.session_state["workspace"]
    plans = {"collapse": 1, "kl_sweep": 2, "latent_2d": 1, "capacity": 2, "divergence": 1, "elbo_vs_guide": 2,
             "overfitting": 1}  # fmt: skip
    for lesson_id, runs in plans.items():
        at.selectbox(key="lesson_id").set_value(lesson_id).run()
        message = _train_lesson_run(at, lesson_id)
        if lesson_id == "collapse":
            assert re.search(r"Latent size \d+ → 32", message) and re.search(r"Intermediate size \d+ → 64", message)
        if runs == 2:
            assert any("fewer than two have finished" in i.value for i in at.info), lesson_id
            _train_lesson_run(at, lesson_id)
        verdicts = _verdict_texts(at)
        assert len(verdicts) == 1 and re.search(r"\d", verdicts[0]), (
            lesson_id,
            [e.value for e in at.error],
            [i.value for i in at.info],
        )
        _check_numbers(lesson_id, verdicts[0], ws)
    assert not at.exception


def _check_numbers(lesson_id: str, verdict: str, ws) -> None:
    """The verdict's numbers are the run's, recomputed here from the model and history."""
    history = ws.trainer.history
    if lesson_id == "collapse":
        z_mean, z_log_var = ws.refresh().encode(ws.dataset.x_test[:500])
        kl = np.mean(0.5 * (z_mean**2 + np.exp(z_log_var) - 1 - z_log_var), axis=0)
        assert f"{int(np.sum(kl >= 0.01))} of 32 dimensions" in verdict
    elif lesson_id == "divergence":
        assert ws.status().result.reason in ("diverged", "finished")
        assert f"{ws.trainer.step:,}" in verdict
    elif lesson_id == "overfitting":
        val = [r.loss for r in history.records("val")]
        means = [sum(val[i : i + 3]) / 3 for i in range(len(val) - 2)]  # 3-epoch means, epochs i+1..i+3
        lowest = min(range(len(means)), key=means.__getitem__)
        assert f"around epoch {lowest + 2}" in verdict and f"{means[lowest]:.2f}" in verdict
    elif lesson_id == "latent_2d":
        assert ws.settings.latent_dim == 2 and "nearest codes" in verdict


def test_the_lesson_button_says_what_it_changed_and_a_link_opens_a_lesson(page, monkeypatch):
    at = page
    at.selectbox(key="lesson_id").set_value("divergence").run()
    button(at, "Set up this lesson").click().run()
    message = next(s.value for s in at.success)
    assert "Learning rate 0.001 → 10" in message and re.search(r"Epochs \d+ → 1\b", message)
    assert at.session_state["workspace"].settings.learning_rate == 10.0
    assert at.select_slider(key="set_learning_rate").value == 10.0, "the sidebar shows it"
    linked = AppTest.from_file(APP, default_timeout=120)
    linked.query_params["lesson"] = "overfitting"
    linked.query_params["hide"] = "runs"
    linked.run()
    assert linked.session_state["tab_id"] == "lessons"
    assert any("A small sample trained long" in h.value for h in linked.subheader)
    wrong = AppTest.from_file(APP, default_timeout=120)
    wrong.query_params["lesson"] = "nope"
    wrong.run()
    assert any("The link opens the lesson `nope`, which does not exist" in w.value for w in wrong.warning)
    assert not wrong.exception


def test_the_lesson_names_a_changed_loss_as_the_sidebar_does(page):
    at = page
    at.selectbox(key="lesson_id").set_value("collapse").run()
    button(at, "Set up this lesson").click().run()
    message = next(s.value for s in at.success)
    assert "Loss ELBO → guide's loss" in message, message


def test_lessons_speak_chinese(page):
    at = page
    at.radio(key="lang").set_value("zh").run()
    assert any("指南的设置" in h.value for h in at.subheader)
    assert "按本课设置" in [b.label for b in at.button]


# ---- same start, one change (from the Runs tab) ----


def test_train_again_from_the_same_start_with_one_change(page):
    at = page
    at.number_input(key="set_latent_dim").set_value(4).run()
    at.number_input(key="set_intermediate_dim").set_value(32).run()
    at.number_input(key="set_epochs").set_value(1).run()
    ws = at.session_state["workspace"]
    initial = [w.copy() for w in ws.trainer.model.get_weights()]
    button(at, "Start training").click().run()
    wait_for(lambda: not ws.training, 120, "training did not end")
    first = ws.trainer.history.records()
    at.session_state["tab_id"] = "runs"
    at.run()
    at.selectbox(key="same_start_name_run-001").set_value("loss").run()
    assert at.radio(key="same_start_value_run-001_loss").options == ["ELBO", "guide's loss"], "named as in the sidebar"
    at.selectbox(key="same_start_name_run-001").set_value("epochs").run()
    at.number_input(key="same_start_value_run-001_epochs").set_value(2).run()
    next(b for b in at.button if b.key == "same_start_go_run-001").click().run()
    assert any("initial weights with one change: Epochs 1 → 2" in s.value for s in at.success)
    wait_for(lambda: not ws.training, 120, "training did not end")
    at.run()
    assert ws.settings == Settings(loss="elbo", latent_dim=4, intermediate_dim=32, epochs=2)
    again = ws.trainer.history.records()

    def losses(records, epoch):
        return [(r.split, r.step, r.loss, r.reconstruction_loss, r.kl_loss) for r in records if r.epoch == epoch]

    assert losses(again, 1) == losses(first, 1) and losses(again, 2), "the same start: epoch 1 repeats exactly"
    assert not all(np.array_equal(a, b) for a, b in zip(initial, ws.trainer.model.get_weights()))
