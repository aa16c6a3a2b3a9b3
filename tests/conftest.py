"""Shared fixtures: small, real data and quiet TensorFlow."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.data import Dataset, load_dataset


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The bundled 5,000-digit MNIST sample (4,500 train / 500 test)."""
    return load_dataset("mnist", "bundled")


@pytest.fixture(scope="session")
def tiny(mnist) -> Dataset:
    """700 real training digits and 100 test digits: epochs of 11 batches of 64, the last partial."""
    return Dataset(
        name="mnist",
        x_train=mnist.x_train[:700],
        y_train=mnist.y_train[:700],
        x_test=mnist.x_test[:100],
        y_test=mnist.y_test[:100],
        source="MNIST — tiny test subset, 700 train / 100 test images",
        origin="bundled",
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# Tests that take several seconds each (measured with --durations on 2 loaded cores) but sit in
# files whose owners have not marked them: ``-m "not slow"`` leaves them out of the fast loop.
# Prefer ``@pytest.mark.slow`` on the test itself; this list only catches the stragglers.
SLOW_ELSEWHERE = {
    "test_cli.py::test_bad_values_end_with_a_clear_error[flags4-does not hold the four IDX files]",
    "test_jobs.py::test_jobs_beyond_the_cap_queue_and_start_when_a_slot_frees",
    "test_jobs.py::test_closing_a_workspace_stops_its_worker_and_recycles_its_trainer",
    "test_jobs.py::test_a_run_that_cannot_be_saved_says_so_and_keeps_its_model",
    "test_training.py::test_apply_changes_rates_without_a_reset_and_refuses_new_sizes",
    "test_training.py::test_published_weights_follow_training",
    "test_models.py::test_the_guide_custom_loop_trains_the_subclassed_vae",
    "test_training.py::test_pause_holds_training_and_resume_continues",
    "test_training.py::test_stop_from_another_thread_takes_effect_quickly_and_resume_keeps_state",
    "test_training.py::test_the_same_seed_and_settings_give_the_same_losses",
    "test_training.py::test_reset_gives_fresh_weights_and_optimizer_and_repeats_the_first_run",
    "test_training.py::test_a_diverging_run_stops_and_keeps_finite_weights",
    "test_training.py::test_streamed_updates_carry_losses_and_speed",
    "test_training.py::test_validation_losses_come_at_each_epoch_end",
    "test_imaging.py::test_fuzz_to_mnist_either_works_or_says_why",
    "test_imaging.py::test_fuzz_to_mnist_returns_a_valid_input_for_any_image",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.removeprefix("tests/") in SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can screenshot failures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app(monkeypatch, tmp_path):
    """The page in AppTest, on the bundled sample, with its own runs folder."""
    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    # AppTest's sessions are not the server's: a janitor left by another test would close this one after 20 s.
    monkeypatch.setattr("playground.jobs.ABANDON_SECONDS", 3600.0)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    if "workspace" in at.session_state:
        at.session_state["workspace"].stop(wait=True)
