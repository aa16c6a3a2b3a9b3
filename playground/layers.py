"""The layers that the Keras guide "Making new Layers and Models via subclassing" builds.

Each one is small in the way the guide teaches: arguments checked in ``__init__``,
state made in ``__init__`` or ``build``, the math in ``call``, and ``get_config``
returning the base config plus the layer's own arguments. They run on Keras 3
(TensorFlow 2.21's ``tf.keras``), where ``add_metric`` is gone and randomness
comes from a ``SeedGenerator``.
"""

from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "playground"


def _check_rate(rate: float, name: str) -> float:
    """A rate is a float in [0, 1)."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be at least 0 and below 1 (got {rate}).")
    return rate


def _check_units(value: int, name: str) -> int:
    """A size is a positive whole number."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1 (got {value!r}).")
    return int(value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Linear(keras.layers.Layer):
    """y = x @ w + b: maps [..., input_dim] to [..., units].

    With ``input_dim`` the weights are made at once, as in the guide's first
    version; without it they are made in ``build`` from the first input.
    """

    def __init__(self, units: int = 32, input_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(units, "units")
        self.input_dim = None if input_dim is None else _check_units(input_dim, "input_dim")
        if self.input_dim is not None:
            self._make_weights(self.input_dim)
            self.built = True

    def _make_weights(self, input_dim: int) -> None:
        self.w = self.add_weight(shape=(input_dim, self.units), initializer="random_normal", trainable=True, name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="b")

    def build(self, input_shape):
        self._make_weights(int(input_shape[-1]))

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "input_dim": self.input_dim}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ComputeSum(keras.layers.Layer):
    """Keeps a running column sum of everything it sees: [B, input_dim] -> [input_dim]."""

    def __init__(self, input_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = _check_units(input_dim, "input_dim")
        self.total = self.add_weight(shape=(self.input_dim,), initializer="zeros", trainable=False, name="total")
        self.built = True

    def call(self, inputs):
        self.total.assign_add(ops.sum(inputs, axis=0))
        return ops.convert_to_tensor(self.total)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MLPBlock(keras.layers.Layer):
    """Three Linear layers with ReLU between them: [B, D] -> [B, 1]."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.linear_1 = Linear(32)
        self.linear_2 = Linear(32)
        self.linear_3 = Linear(1)

    def call(self, inputs):
        x = ops.relu(self.linear_1(inputs))
        x = ops.relu(self.linear_2(x))
        return self.linear_3(x)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ActivityRegularizationLayer(keras.layers.Layer):
    """Passes its input through and adds ``rate * sum(inputs)`` as a loss."""

    def __init__(self, rate: float = 1e-2, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)

    def call(self, inputs):
        self.add_loss(self.rate * ops.sum(inputs))
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogisticEndpoint(keras.layers.Layer):
    """Adds the binary cross-entropy of (targets, logits) as a loss and tracks accuracy.

    Keras 3 dropped ``Layer.add_metric``: the layer owns a ``BinaryAccuracy``
    metric that it updates on each call, so the metric shows in
    ``layer.metrics`` and in ``fit()``'s logs.
    """

    def __init__(self, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.accuracy_fn = keras.metrics.BinaryAccuracy(name="accuracy")

    def call(self, targets, logits, sample_weights=None):
        self.add_loss(self.loss_fn(targets, logits, sample_weights))
        # BinaryAccuracy thresholds probabilities at 0.5, so give it sigmoid(logits).
        self.accuracy_fn.update_state(targets, ops.sigmoid(logits), sample_weights)
        return ops.softmax(logits)

    def compute_output_shape(self, targets_shape, logits_shape, sample_weights_shape=None):
        return logits_shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CustomDropout(keras.layers.Layer):
    """Zeroes a fraction ``rate`` of the inputs (and rescales the rest), only when training."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate, "rate")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if training and self.rate > 0:
            return keras.random.dropout(inputs, self.rate, seed=self.seed_generator)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Sampling(keras.layers.Layer):
    """Draws z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I): ([B, L], [B, L]) -> [B, L]."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, epsilon=None):
        """``epsilon`` [B, L], if given, is the noise to use instead of a fresh draw."""
        z_mean, z_log_var = inputs
        if epsilon is None:
            epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
