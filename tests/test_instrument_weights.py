"""The page's weights blob: pack_weights writes, unpack_weights reads back, numpy decodes like Keras."""

from __future__ import annotations

import numpy as np
import pytest

from playground.config import Settings
from playground.inference import Inference, pack_weights, unpack_weights
from playground.models import build_vae


@pytest.fixture(scope="module")
def inference():
    page = Inference(Settings(latent_dim=3, intermediate_dim=16, seed=4))
    return page


def test_packed_weights_round_trip_to_the_models_own_arrays(inference):
    data = pack_weights(inference.model, version=7)
    packed = unpack_weights(data)
    assert (packed.version, packed.latent_dim, packed.intermediate_dim, packed.original_dim) == (7, 3, 16, 784)
    model = inference.model
    expected = [*model.decoder.dense_proj.get_weights(), *model.decoder.dense_output.get_weights()]
    expected_encoder = [w for layer in (model.encoder.dense_proj, model.encoder.dense_mean, model.encoder.dense_log_var)
                        for w in layer.get_weights()]  # fmt: skip
    for got, want in zip(packed.decoder + packed.encoder, expected + expected_encoder, strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_decoder_only_blob_is_smaller_and_has_no_encoder(inference):
    full, decoder_only = pack_weights(inference.model, 1), pack_weights(inference.model, 1, encoder=False)
    assert len(decoder_only) < len(full)
    assert unpack_weights(decoder_only).encoder == []


def test_the_packed_layers_decode_like_keras(inference):
    """A plain numpy forward pass over the unpacked arrays: what the page's loops do, against Inference.decode."""
    packed = unpack_weights(pack_weights(inference.model, 1))
    codes = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    k1, b1, k2, b2 = packed.decoder
    hidden = np.maximum(codes @ k1 + b1, 0)
    images = 1 / (1 + np.exp(-(hidden @ k2 + b2)))
    np.testing.assert_allclose(images.reshape(-1, 28, 28), inference.decode(codes), atol=1e-5)


def test_damaged_or_foreign_bytes_are_refused(inference):
    data = bytearray(pack_weights(inference.model, 1))
    data[-1] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        unpack_weights(bytes(data))
    with pytest.raises(ValueError, match="not packed weights"):
        unpack_weights(b"PNG!" + bytes(64))
    with pytest.raises(ValueError, match="no header"):
        unpack_weights(b"VAEW")


def test_deeper_and_conditional_models_pack_every_layer_and_load_back():
    source = Inference(Settings(latent_dim=2, intermediate_dim=8, hidden_layers=3, conditional=True, seed=1))
    packed = unpack_weights(pack_weights(source.model, 5))
    assert (packed.hidden_layers, packed.classes) == (3, 10)
    assert packed.decoder[0].shape == (2 + 10, 8) and packed.encoder[0].shape == (784 + 10, 8)
    assert len(packed.decoder) == 2 * 4 and len(packed.encoder) == 2 * 5
    target = Inference(Settings(latent_dim=2, intermediate_dim=8, hidden_layers=3, conditional=True, seed=2))
    target.load_packed(packed)
    for got, want in zip(target.model.get_weights(), source.model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="another size"):
        Inference(Settings(latent_dim=2, intermediate_dim=8, hidden_layers=2, conditional=True)).load_packed(packed)
    with pytest.raises(ValueError, match="decodes on the server"):
        pack_weights(build_vae(Settings(architecture="conv", intermediate_dim=8, latent_dim=2)), 1)


def test_a_conditional_model_guesses_the_class_that_explains_a_digit_best(mnist):
    inference = Inference(Settings(latent_dim=2, intermediate_dim=8, conditional=True))
    losses = inference.class_losses(mnist.x_test[:4])
    assert losses.shape == (4, 10)
    np.testing.assert_array_equal(inference.best_labels(mnist.x_test[:4]), losses.argmin(axis=1))
    strip = inference.as_every_class(mnist.x_test[0], 3)
    assert strip.shape == (10, 28, 28)
    z_mean, _ = inference.encode(mnist.x_test[:1], 3)
    np.testing.assert_allclose(strip[7], inference.decode(z_mean, 7)[0], atol=1e-6)


def test_the_largest_model_packs_to_about_seven_megabytes():
    model = build_vae(Settings(latent_dim=64, intermediate_dim=1024))
    assert 6.5e6 < len(pack_weights(model, 1)) < 7.5e6
    assert 3e6 < len(pack_weights(model, 1, encoder=False)) < 4e6
