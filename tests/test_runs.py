"""Runs on disk compared: which settings differ, and one reconstruction measure for runs of any loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from playground.config import Settings
from playground.models import build_vae
from playground.runs import RunInfo, differing_settings, reconstruction_mse
from tests.reference import vae_forward


def run(name: str, settings: Settings) -> RunInfo:
    return RunInfo(Path(name), name, settings, 0.0, {})


def test_differing_settings_are_named_in_the_settings_order():
    runs = [run("a", Settings(kl_weight=1.0, latent_dim=2)), run("b", Settings(kl_weight=0.1, latent_dim=2)),
            run("c", Settings(kl_weight=1.0, latent_dim=2, loss="elbo"))]  # fmt: skip
    assert differing_settings(runs) == ["loss", "kl_weight"]
    assert differing_settings(runs[:1]) == []


def test_reconstruction_mse_is_the_mean_squared_error_of_the_mean_code_reconstructions(mnist):
    model = build_vae(Settings(latent_dim=4, intermediate_dim=32, seed=3))
    images = mnist.x_test[:50]
    flat = images.reshape(-1, 784)
    # The reference decodes the mean code: a noise of zero makes z equal z_mean.
    _, _, reconstruction = vae_forward(model, flat, np.zeros((50, 4)))
    expected = np.mean((reconstruction - flat) ** 2)
    assert abs(reconstruction_mse(model, images) - expected) < 1e-6
