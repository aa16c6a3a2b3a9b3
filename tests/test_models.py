"""The guide's VAE: shapes, its KL loss against the closed form, both ways of training, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.config import Settings
from playground.model_files import load_vae, save_vae
from playground.models import (
    Decoder,
    Encoder,
    VariationalAutoEncoder,
    build_functional_vae,
    build_vae,
)
from tests.reference import gaussian_kl, guide_training_loop, vae_forward


@pytest.fixture
def digits(mnist):
    return mnist.x_train[:256].reshape(-1, 784)


def test_encoder_and_decoder_shapes_and_ranges(digits):
    z_mean, z_log_var, z = Encoder(latent_dim=5, intermediate_dim=16)(digits)
    assert z_mean.shape == z_log_var.shape == z.shape == (256, 5)
    reconstruction = Decoder(784, intermediate_dim=16)(z).numpy()
    assert reconstruction.shape == (256, 784)
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0


def test_vae_adds_the_guide_kl_term_which_matches_the_closed_form(digits):
    vae = VariationalAutoEncoder(784, 64, 32, kl_weight=0.5, seed=3)
    reconstruction = vae(digits)
    assert reconstruction.shape == (256, 784)
    assert len(vae.losses) == 1
    z_mean, z_log_var, _ = (t.numpy() for t in vae.encoder(digits))
    expected = 0.5 * gaussian_kl(z_mean.astype(np.float64), z_log_var.astype(np.float64)).mean()
    assert float(vae.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_vae_forward_matches_a_numpy_forward_pass(digits, rng):
    vae = build_vae(Settings(latent_dim=4, intermediate_dim=32))
    epsilon = rng.standard_normal((256, 4)).astype("float32")
    output = vae.forward(digits, epsilon=epsilon)
    z_mean, z_log_var, reconstruction = vae_forward(vae, digits, epsilon)
    np.testing.assert_allclose(output.z_mean.numpy(), z_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(output.z_log_var.numpy(), z_log_var, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(output.reconstruction.numpy(), reconstruction, rtol=1e-4, atol=1e-5)


def test_the_guide_custom_loop_trains_the_subclassed_vae(digits):
    vae = VariationalAutoEncoder(784, 64, 32, seed=0)
    losses = guide_training_loop(vae, digits, epochs=3)
    assert losses[-1] < losses[0]


def test_compile_and_fit_trains_the_subclassed_vae(digits):
    vae = VariationalAutoEncoder(784, 64, 32, seed=0)
    vae.compile(keras.optimizers.Adam(learning_rate=1e-3), loss=keras.losses.MeanSquaredError())
    history = vae.fit(digits, digits, epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_functional_vae_carries_its_kl_loss_and_trains_with_fit(digits):
    encoder, decoder, vae = build_functional_vae(784, 64, 32)
    assert encoder(digits).shape == (256, 32)
    assert decoder(tf.zeros((2, 32))).shape == (2, 784)
    vae(digits)
    assert len(vae.losses) == 1 and float(vae.losses[0]) > 0
    vae.compile(keras.optimizers.Adam(learning_rate=1e-3), loss=keras.losses.MeanSquaredError())
    history = vae.fit(digits, digits, epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_the_same_seed_builds_the_same_weights():
    first, second = build_vae(Settings(seed=5)), build_vae(Settings(seed=5))
    other = build_vae(Settings(seed=6))
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_model_save_and_keras_load_model_give_identical_encoder_means_and_decoder_outputs(digits, tmp_path):
    vae = VariationalAutoEncoder(784, 48, 6, kl_weight=0.25, seed=1)
    vae(digits)
    vae.save(tmp_path / "x.keras")
    loaded = keras.models.load_model(tmp_path / "x.keras")
    assert isinstance(loaded, VariationalAutoEncoder)
    assert loaded.get_config()["kl_weight"] == 0.25
    np.testing.assert_array_equal(loaded.encoder(digits)[0].numpy(), vae.encoder(digits)[0].numpy())
    codes = tf.random.normal((8, 6), seed=1)
    np.testing.assert_array_equal(loaded.decoder(codes).numpy(), vae.decoder(codes).numpy())


def test_save_vae_and_load_vae_round_trip(tmp_path, digits):
    vae = build_vae(Settings(latent_dim=3, intermediate_dim=16))
    path = save_vae(vae, tmp_path / "model.keras")
    loaded = load_vae(path)
    np.testing.assert_array_equal(loaded.encoder(digits)[0].numpy(), vae.encoder(digits)[0].numpy())
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_save_vae_is_atomic_when_saving_crashes(tmp_path, monkeypatch):
    path = save_vae(build_vae(Settings(latent_dim=2, intermediate_dim=8)), tmp_path / "model.keras")
    before = path.read_bytes()

    def crash(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as stream:
            stream.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(VariationalAutoEncoder, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_vae(build_vae(Settings(latent_dim=3, intermediate_dim=8)), path)
    assert path.read_bytes() == before
    assert load_vae(path).latent_dim == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
