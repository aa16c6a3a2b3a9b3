"""Shared fixtures: small, real data and quiet TensorFlow."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can screenshot failures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
