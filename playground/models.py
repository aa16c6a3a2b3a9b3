"""The guide's variational autoencoder, subclassed and functional (files: ``model_files``)."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from keras import layers

from playground.config import Settings
from playground.layers import Sampling
from playground.losses import guide_kl

ORIGINAL_DIM = 784  # 28 x 28 MNIST pixels, flattened
PACKAGE = "playground"  # the registered names of the classes below start with it


def _dense(units: int, seed: int | None, offset: int, **kwargs) -> layers.Dense:
    """A Dense layer whose initial weights follow ``seed`` (each layer its own offset)."""
    if seed is None:
        return layers.Dense(units, **kwargs)
    return layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(seed + offset), **kwargs)


class VAEOutput(NamedTuple):
    """One forward pass of the VAE."""

    z_mean: object  # [B, L]
    z_log_var: object  # [B, L]
    z: object  # [B, L]
    reconstruction: object  # [B, 784], in (0, 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Encoder(layers.Layer):
    """Maps digits [B, 784] to (z_mean, z_log_var, z), each [B, latent_dim]."""

    def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", seed=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.latent_dim = int(latent_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.seed = seed
        self.dense_proj = _dense(intermediate_dim, seed, 0, activation="relu", name="dense_proj")
        self.dense_mean = _dense(latent_dim, seed, 1, name="z_mean")
        self.dense_log_var = _dense(latent_dim, seed, 2, name="z_log_var")
        self.sampling = Sampling(seed=None if seed is None else seed + 3, name="sampling")

    def build(self, input_shape):
        self.dense_proj.build(input_shape)
        hidden_shape = (*input_shape[:-1], self.intermediate_dim)
        self.dense_mean.build(hidden_shape)
        self.dense_log_var.build(hidden_shape)

    def call(self, inputs, epsilon=None):
        x = self.dense_proj(inputs)  # [B, intermediate_dim]
        z_mean = self.dense_mean(x)
        z_log_var = self.dense_log_var(x)
        z = self.sampling((z_mean, z_log_var), epsilon=epsilon)
        return z_mean, z_log_var, z

    def compute_output_shape(self, input_shape):
        shape = (*input_shape[:-1], self.latent_dim)
        return shape, shape, shape

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "intermediate_dim": self.intermediate_dim,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class Decoder(layers.Layer):
    """Maps codes [B, latent_dim] back to digits [B, original_dim] in (0, 1)."""

    def __init__(self, original_dim, intermediate_dim=64, name="decoder", seed=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.original_dim = int(original_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.seed = seed
        self.dense_proj = _dense(intermediate_dim, seed, 10, activation="relu", name="dense_proj")
        self.dense_output = _dense(original_dim, seed, 11, activation="sigmoid", name="dense_output")

    def build(self, input_shape):
        self.dense_proj.build(input_shape)
        self.dense_output.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, inputs):
        return self.dense_output(self.dense_proj(inputs))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.original_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "original_dim": self.original_dim,
            "intermediate_dim": self.intermediate_dim,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class VariationalAutoEncoder(keras.Model):
    """Encoder and decoder end to end: [B, 784] -> [B, 784], adding the KL term as a loss."""

    def __init__(
        self,
        original_dim,
        intermediate_dim=64,
        latent_dim=32,
        kl_weight=1.0,
        name="autoencoder",
        seed=None,
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.original_dim = int(original_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.latent_dim = int(latent_dim)
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim, seed=seed)
        self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim, seed=seed)

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build((*input_shape[:-1], self.latent_dim))

    def forward(self, inputs, epsilon=None) -> VAEOutput:
        """Encode, sample (with ``epsilon`` as the noise, if given) and decode."""
        z_mean, z_log_var, z = self.encoder(inputs, epsilon=epsilon)
        return VAEOutput(z_mean, z_log_var, z, self.decoder(z))

    def call(self, inputs):
        output = self.forward(inputs)
        self.add_loss(self.kl_weight * guide_kl(output.z_mean, output.z_log_var))
        return output.reconstruction

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.original_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "original_dim": self.original_dim,
            "intermediate_dim": self.intermediate_dim,
            "latent_dim": self.latent_dim,
            "kl_weight": self.kl_weight,
            "seed": self.seed,
        }


def build_vae(settings: Settings) -> VariationalAutoEncoder:
    """A built VAE over MNIST-sized inputs with the sizes, KL weight and seed of ``settings``."""
    model = VariationalAutoEncoder(
        ORIGINAL_DIM,
        intermediate_dim=settings.intermediate_dim,
        latent_dim=settings.latent_dim,
        kl_weight=settings.kl_weight,
        seed=settings.seed,
    )
    model.build((None, ORIGINAL_DIM))
    return model


@keras.saving.register_keras_serializable(package=PACKAGE)
class KLDivergenceLayer(layers.Layer):
    """Passes (z_mean, z_log_var) through and adds the guide's KL term as a loss.

    Keras 3 refuses ``Model.add_loss`` on symbolic tensors, so a functional model
    carries its KL term in a layer like this one.
    """

    def __init__(self, kl_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.kl_weight = float(kl_weight)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        self.add_loss(self.kl_weight * guide_kl(z_mean, z_log_var))
        return z_mean, z_log_var

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight}


def build_functional_vae(original_dim, intermediate_dim=64, latent_dim=32):
    """The guide's Functional-API VAE, reusing ``Sampling``: returns (encoder, decoder, vae)."""
    original_inputs = keras.Input(shape=(original_dim,), name="encoder_input")
    x = layers.Dense(intermediate_dim, activation="relu")(original_inputs)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z_mean, z_log_var = KLDivergenceLayer(name="kl_divergence")((z_mean, z_log_var))
    z = Sampling()((z_mean, z_log_var))
    encoder = keras.Model(inputs=original_inputs, outputs=z, name="encoder")

    latent_inputs = keras.Input(shape=(latent_dim,), name="z_sampling")
    x = layers.Dense(intermediate_dim, activation="relu")(latent_inputs)
    outputs = layers.Dense(original_dim, activation="sigmoid")(x)
    decoder = keras.Model(inputs=latent_inputs, outputs=outputs, name="decoder")

    vae = keras.Model(inputs=original_inputs, outputs=decoder(z), name="vae")
    return encoder, decoder, vae


# ---- the model as a small public description, for copies that run without Keras (inference.py, the page) ----


class DensePlan(NamedTuple):
    """A dense VAE's layers as numpy arrays: what a copy needs to encode and decode with matrix products.

    ``encoder``: the hidden layers, in order, as ``(kernel [in, out], bias [out], activation)``;
    ``z_mean`` and ``z_log_var``: the heads' ``(kernel, bias)``; ``decoder``: every layer from the
    code to the pixels, as ``(kernel, bias, activation)``; ``classes``: 0 for an unconditional model
    (a conditional one's one-hot label is concatenated to the encoder's and the decoder's inputs).
    Activations are Keras names: "relu", "sigmoid", "linear".
    """

    encoder: list[tuple[np.ndarray, np.ndarray, str]]
    z_mean: tuple[np.ndarray, np.ndarray]
    z_log_var: tuple[np.ndarray, np.ndarray]
    decoder: list[tuple[np.ndarray, np.ndarray, str]]
    classes: int = 0


def dense_plan(model: VariationalAutoEncoder) -> DensePlan:
    """``model``'s current weights as a ``DensePlan`` (copies: later training does not change them)."""

    def layer(dense) -> tuple[np.ndarray, np.ndarray, str]:
        kernel, bias = (np.array(w, dtype=np.float32) for w in dense.get_weights())
        return kernel, bias, dense.activation.__name__

    encoder, decoder = model.encoder, model.decoder
    return DensePlan(
        encoder=[layer(encoder.dense_proj)],
        z_mean=layer(encoder.dense_mean)[:2],
        z_log_var=layer(encoder.dense_log_var)[:2],
        decoder=[layer(decoder.dense_proj), layer(decoder.dense_output)],
    )
