"""Every behaviour the subclassing guide shows for its layers, on Keras 3."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from playground.layers import (
    ActivityRegularizationLayer,
    ComputeSum,
    CustomDropout,
    Linear,
    LogisticEndpoint,
    MLPBlock,
    Sampling,
)


def test_linear_with_input_dim_tracks_w_and_b_made_in_init():
    layer = Linear(4, 2)
    assert layer.weights == [layer.w, layer.b]  # made before any call
    x = tf.ones((2, 2))
    expected = x.numpy() @ layer.w.numpy() + layer.b.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(layer.b.numpy(), np.zeros(4))
    assert [w.trainable for w in layer.weights] == [True, True]


def test_linear_without_input_dim_builds_lazily_from_the_first_input():
    layer = Linear(32)
    assert layer.weights == []
    y = layer(tf.ones((2, 7)))
    assert y.shape == (2, 32)
    assert layer.w.shape == (7, 32) and layer.b.shape == (32,)
    assert layer.weights == [layer.w, layer.b]


def test_linear_config_round_trip_keeps_base_config_and_units():
    layer = Linear(64, name="my_linear")
    config = layer.get_config()
    assert {"name", "trainable", "dtype", "units", "input_dim"} <= set(config)
    assert config["units"] == 64 and config["name"] == "my_linear"
    clone = Linear.from_config(config)
    assert clone.units == 64 and clone.name == "my_linear"


def test_linear_rejects_a_size_that_is_not_a_positive_whole_number():
    with pytest.raises(ValueError, match="units"):
        Linear(0)
    with pytest.raises(ValueError, match="input_dim"):
        Linear(4, input_dim=2.5)


def test_compute_sum_has_one_non_trainable_weight_that_accumulates():
    my_sum = ComputeSum(2)
    x = tf.ones((2, 2))
    np.testing.assert_array_equal(my_sum(x).numpy(), [2.0, 2.0])
    np.testing.assert_array_equal(my_sum(x).numpy(), [4.0, 4.0])
    assert len(my_sum.weights) == 1
    assert len(my_sum.non_trainable_weights) == 1
    assert my_sum.trainable_weights == []


def test_mlp_block_tracks_the_weights_of_its_sublayers():
    mlp = MLPBlock()
    y = mlp(tf.ones((3, 64)))
    assert y.shape == (3, 1)
    assert len(mlp.weights) == 6
    assert len(mlp.trainable_weights) == 6


class _OuterLayer(keras.layers.Layer):
    def __init__(self):
        super().__init__()
        self.activity_reg = ActivityRegularizationLayer(1e-2)

    def call(self, inputs):
        return self.activity_reg(inputs)


def test_losses_are_collected_from_inner_layers_and_reset_on_every_call():
    layer = _OuterLayer()
    assert len(layer.losses) == 0
    layer(tf.zeros((1, 1)))
    assert len(layer.losses) == 1
    layer(tf.ones((2, 3)))
    assert len(layer.losses) == 1  # only the last forward pass's loss
    assert float(layer.losses[0]) == pytest.approx(1e-2 * 6)


def test_kernel_regularizer_losses_show_up_in_layer_losses():
    class Outer(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(32, kernel_regularizer=keras.regularizers.l2(1e-3))

        def call(self, inputs):
            return self.dense(inputs)

    layer = Outer()
    layer(tf.zeros((1, 1)))
    assert len(layer.losses) == 1
    kernel = layer.dense.kernel.numpy()
    assert float(layer.losses[0]) == pytest.approx(1e-3 * np.sum(kernel**2), rel=1e-5)


@pytest.mark.parametrize("compile_loss", ["mse", None])
def test_fit_trains_a_model_whose_only_or_extra_loss_comes_from_add_loss(compile_loss, rng):
    inputs = keras.Input(shape=(3,))
    outputs = ActivityRegularizationLayer()(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=compile_loss)
    x, y = rng.random((2, 3)), rng.random((2, 3))
    history = model.fit(x, y, verbose=0)
    expected = 1e-2 * x.sum() + (np.mean((x - y) ** 2) if compile_loss else 0.0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)


def test_logistic_endpoint_adds_its_loss_and_tracks_accuracy():
    layer = LogisticEndpoint()
    targets, logits = tf.ones((2, 2)), tf.ones((2, 2))
    predictions = layer(targets, logits)
    np.testing.assert_allclose(predictions.numpy(), np.full((2, 2), 0.5))
    assert len(layer.metrics) == 1
    assert float(layer.metrics[0].result()) == 1.0
    bce = np.log1p(np.exp(-1.0))  # cross-entropy of logit 1 against target 1
    assert float(layer.losses[0]) == pytest.approx(bce, rel=1e-5)


def test_a_functional_model_with_logistic_endpoint_trains_with_fit_and_reports_accuracy(rng):
    inputs = keras.Input(shape=(3,), name="inputs")
    targets = keras.Input(shape=(10,), name="targets")
    logits = keras.layers.Dense(10)(inputs)
    predictions = LogisticEndpoint(name="predictions")(targets, logits)
    model = keras.Model(inputs=[inputs, targets], outputs=predictions)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    data = {"inputs": rng.random((32, 3)), "targets": (rng.random((32, 10)) > 0.5).astype("float32")}
    history = model.fit(data, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "accuracy" in history.history
    assert 0.0 <= history.history["accuracy"][-1] <= 1.0


def test_custom_dropout_drops_only_in_training():
    layer = CustomDropout(0.5, seed=1)
    x = tf.ones((200, 200))
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    dropped = layer(x, training=True).numpy()
    assert 0.45 < np.mean(dropped == 0) < 0.55
    np.testing.assert_allclose(dropped[dropped != 0], 2.0)  # survivors scaled by 1 / (1 - rate)
    with pytest.raises(ValueError, match="rate"):
        CustomDropout(1.5)


def test_sampling_is_the_reparameterisation_and_repeats_with_a_seed():
    z_mean = tf.fill((20000, 2), 3.0)
    z_log_var = tf.fill((20000, 2), np.log(4.0).astype("float32"))  # std 2
    z = Sampling(seed=7)((z_mean, z_log_var)).numpy()
    assert z.mean() == pytest.approx(3.0, abs=0.05)
    assert z.std() == pytest.approx(2.0, rel=0.03)
    again = Sampling(seed=7)((z_mean, z_log_var)).numpy()
    np.testing.assert_array_equal(z, again)
    epsilon = tf.ones((20000, 2))
    np.testing.assert_allclose(Sampling()((z_mean, z_log_var), epsilon=epsilon).numpy(), 5.0)


@pytest.mark.parametrize(
    "layer",
    [Linear(3, 2), ComputeSum(2), ActivityRegularizationLayer(0.5), CustomDropout(0.2, seed=3), Sampling(seed=1)],
    ids=lambda layer: type(layer).__name__,
)
def test_every_layer_is_registered_and_serialises(layer):
    name = f"playground>{type(layer).__name__}"
    assert keras.saving.get_registered_object(name) is type(layer)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
