"""The page's numpy copy of the model against the Keras model it copies."""

from __future__ import annotations

import numpy as np
import pytest

from playground.config import Settings
from playground.inference import Inference
from playground.models import build_vae, dense_plan


@pytest.mark.parametrize("latent, hidden", [(2, 16), (8, 256), (64, 1024)])
def test_numpy_encode_and_decode_match_keras(latent, hidden, mnist, rng):
    settings = Settings(latent_dim=latent, intermediate_dim=hidden, seed=3)
    model = build_vae(settings)
    # Weights unlike the initial ones (biases too, which start at zero), as after training.
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    inference = Inference(settings)
    inference.sync(1, model.get_weights())
    images = mnist.x_test[:50]
    z_mean, z_log_var = inference.encode(images)
    flat = images.reshape(-1, 784)
    keras_mean, keras_log_var, _ = model.encoder(flat)
    np.testing.assert_allclose(z_mean, keras_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(z_log_var, keras_log_var.numpy(), atol=1e-5)
    codes = rng.normal(0, 2, (50, latent)).astype(np.float32)
    np.testing.assert_allclose(inference.decode(codes).reshape(50, 784), model.decoder(codes).numpy(), atol=1e-5)
    assert inference.decode(codes).dtype == np.float32


def test_extreme_codes_decode_without_overflow():
    settings = Settings(latent_dim=2, intermediate_dim=16)
    inference = Inference(settings)
    with np.errstate(all="raise"):
        images = inference.decode(np.array([[1e4, -1e4], [-1e6, 1e6]]))
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


def test_dense_plan_describes_the_layers_and_is_a_copy():
    model = build_vae(Settings(latent_dim=3, intermediate_dim=8))
    plan = dense_plan(model)
    assert [(k.shape, a) for k, _, a in plan.encoder] == [((784, 8), "relu")]
    assert plan.z_mean[0].shape == plan.z_log_var[0].shape == (8, 3) and plan.classes == 0
    assert [(k.shape, a) for k, _, a in plan.decoder] == [((3, 8), "relu"), ((8, 784), "sigmoid")]
    model.decoder.dense_output.set_weights([np.zeros((8, 784)), np.ones(784)])
    assert not np.all(plan.decoder[1][1] == 1), "a plan keeps the weights it was made from"


def test_a_newer_version_is_loaded_and_the_same_version_is_not():
    settings = Settings(latent_dim=2, intermediate_dim=16)
    inference = Inference(settings)
    weights = build_vae(settings).get_weights()
    assert inference.sync(1, weights) and not inference.sync(1, [np.zeros_like(w) for w in weights])
    assert inference.sync(2, [np.zeros_like(w) for w in weights])
    np.testing.assert_array_equal(inference.decode(np.zeros((1, 2))), 0.5)
