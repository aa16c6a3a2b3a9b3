"""The guide's variational autoencoder, subclassed and functional (files: ``model_files``), and its variants:
deeper (1 to 3 hidden layers), conditional (the one-hot label joins the encoder's and the decoder's
input) and convolutional (the keras.io VAE example's two strided convolutions and their mirror)."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from keras import layers, ops

from playground.config import ARCHITECTURES, Settings
from playground.layers import Sampling
from playground.losses import guide_kl

ORIGINAL_DIM = 784  # 28 x 28 MNIST pixels, flattened
PACKAGE = "playground"  # the registered names of the classes below start with it
CLASSES = 10  # a conditional model's labels: 0 to 9 (digits, or Fashion-MNIST's ten kinds)
IMAGE_SIDE = 28
CONV_GRID = (7, 7, 64)  # the convolutions' output: 28 x 28 halved twice, 64 channels


def _initializer(seed: int | None, offset: int):
    return "glorot_uniform" if seed is None else keras.initializers.GlorotUniform(seed + offset)


def _dense(units: int, seed: int | None, offset: int, **kwargs) -> layers.Dense:
    """A Dense layer whose initial weights follow ``seed`` (each layer its own offset)."""
    if seed is None:
        return layers.Dense(units, **kwargs)
    return layers.Dense(units, kernel_initializer=_initializer(seed, offset), **kwargs)


def _deeper(units: int, hidden_layers: int, seed: int | None, offset: int) -> list[layers.Dense]:
    """The hidden layers after the first (``dense_proj``): ``hidden_layers - 1`` Dense + ReLU of ``units``."""
    return [_dense(units, seed, offset + k, activation="relu", name=f"dense_proj_{k + 2}")
            for k in range(hidden_layers - 1)]  # fmt: skip


def _check_variant(hidden_layers, classes, architecture) -> tuple[int, int, str]:
    """The variant's arguments as a layer keeps them, or a ValueError saying what is allowed."""
    if isinstance(hidden_layers, bool) or int(hidden_layers) != hidden_layers or not 1 <= hidden_layers <= 3:
        raise ValueError(f"A VAE here has 1 to 3 hidden layers (got {hidden_layers!r}).")
    if isinstance(classes, bool) or int(classes) != classes or classes < 0:
        raise ValueError(f"The number of classes must be 0 (not conditional) or more (got {classes!r}).")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"The architecture must be one of {', '.join(ARCHITECTURES)} (got {architecture!r}).")
    return int(hidden_layers), int(classes), architecture


def _with_label(inputs, labels, classes: int):
    """``inputs`` [B, D] with the one-hot of ``labels`` [B] appended: [B, D + classes] (as is if classes is 0)."""
    if not classes:
        return inputs
    if labels is None:
        raise ValueError("A conditional VAE needs the labels of its inputs.")
    return ops.concatenate([inputs, ops.one_hot(ops.cast(labels, "int32"), classes, dtype=inputs.dtype)], axis=-1)


class VAEOutput(NamedTuple):
    """One forward pass of the VAE."""

    z_mean: object  # [B, L]
    z_log_var: object  # [B, L]
    z: object  # [B, L]
    reconstruction: object  # [B, 784], in (0, 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Encoder(layers.Layer):
    """Maps digits [B, 784] (with their labels [B] if ``classes``) to (z_mean, z_log_var, z), each [B, latent_dim]."""

    def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", seed=None, hidden_layers=1, classes=0,
                 **kwargs):  # fmt: skip
        super().__init__(name=name, **kwargs)
        self.latent_dim = int(latent_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.seed = seed
        self.hidden_layers, self.classes, _ = _check_variant(hidden_layers, classes, "dense")
        self.dense_proj = _dense(intermediate_dim, seed, 0, activation="relu", name="dense_proj")
        self.deeper_proj = _deeper(intermediate_dim, self.hidden_layers, seed, 20)
        self.dense_mean = _dense(latent_dim, seed, 1, name="z_mean")
        self.dense_log_var = _dense(latent_dim, seed, 2, name="z_log_var")
        self.sampling = Sampling(seed=None if seed is None else seed + 3, name="sampling")

    def features_shape(self, input_shape) -> tuple:
        """The shape of ``features`` of an input of ``input_shape``, the label not yet appended."""
        return tuple(input_shape)

    def features(self, images):
        """What the dense layers read: the pixels themselves, [B, 784]."""
        return images

    def build(self, input_shape):
        features = self.features_shape(input_shape)
        self.dense_proj.build((*features[:-1], features[-1] + self.classes))
        hidden_shape = (*input_shape[:-1], self.intermediate_dim)
        for layer in self.deeper_proj:
            layer.build(hidden_shape)
        self.dense_mean.build(hidden_shape)
        self.dense_log_var.build(hidden_shape)

    def call(self, inputs, epsilon=None, labels=None):
        x = _with_label(self.features(inputs), labels, self.classes)  # [B, F (+ classes)]
        x = self.dense_proj(x)  # [B, intermediate_dim]
        for layer in self.deeper_proj:
            x = layer(x)
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
            "hidden_layers": self.hidden_layers,
            "classes": self.classes,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class Decoder(layers.Layer):
    """Maps codes [B, latent_dim] (with labels [B] if ``classes``) back to digits [B, original_dim] in (0, 1)."""

    def __init__(self, original_dim, intermediate_dim=64, name="decoder", seed=None, hidden_layers=1, classes=0,
                 **kwargs):  # fmt: skip
        super().__init__(name=name, **kwargs)
        self.original_dim = int(original_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.seed = seed
        self.hidden_layers, self.classes, _ = _check_variant(hidden_layers, classes, "dense")
        self.dense_proj = _dense(intermediate_dim, seed, 10, activation="relu", name="dense_proj")
        self.deeper_proj = _deeper(intermediate_dim, self.hidden_layers, seed, 30)
        self.make_output()

    def make_output(self) -> None:
        """The layers from the last hidden layer to the pixels: one Dense with a sigmoid."""
        self.dense_output = _dense(self.original_dim, self.seed, 11, activation="sigmoid", name="dense_output")

    def build_output(self, hidden_shape) -> None:
        self.dense_output.build(hidden_shape)

    def output_pixels(self, hidden):
        """[B, intermediate_dim] -> [B, original_dim] in (0, 1)."""
        return self.dense_output(hidden)

    def build(self, input_shape):
        self.dense_proj.build((*input_shape[:-1], input_shape[-1] + self.classes))
        hidden_shape = (*input_shape[:-1], self.intermediate_dim)
        for layer in self.deeper_proj:
            layer.build(hidden_shape)
        self.build_output(hidden_shape)

    def call(self, inputs, labels=None):
        x = self.dense_proj(_with_label(inputs, labels, self.classes))  # [B, intermediate_dim]
        for layer in self.deeper_proj:
            x = layer(x)
        return self.output_pixels(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.original_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "original_dim": self.original_dim,
            "intermediate_dim": self.intermediate_dim,
            "seed": self.seed,
            "hidden_layers": self.hidden_layers,
            "classes": self.classes,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvEncoder(Encoder):
    """The keras.io VAE example's encoder: two strided 3 x 3 convolutions ([B, 784] as [B, 28, 28, 1] ->
    [B, 7, 7, 64]), flattened, then the dense layers to (z_mean, z_log_var, z)."""

    def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", seed=None, hidden_layers=1, classes=0,
                 **kwargs):  # fmt: skip
        super().__init__(latent_dim, intermediate_dim, name, seed, hidden_layers, classes, **kwargs)
        conv = dict(kernel_size=3, strides=2, padding="same", activation="relu")
        self.conv_1 = layers.Conv2D(32, kernel_initializer=_initializer(seed, 40), name="conv_1", **conv)
        self.conv_2 = layers.Conv2D(64, kernel_initializer=_initializer(seed, 41), name="conv_2", **conv)

    def features_shape(self, input_shape) -> tuple:
        return (*input_shape[:-1], int(np.prod(CONV_GRID)))

    def features(self, images):
        x = ops.reshape(images, (-1, IMAGE_SIDE, IMAGE_SIDE, 1))  # [B, 28, 28, 1]
        x = self.conv_2(self.conv_1(x))  # [B, 14, 14, 32] -> [B, 7, 7, 64]
        return ops.reshape(x, (-1, int(np.prod(CONV_GRID))))  # [B, 3136]

    def build(self, input_shape):
        self.conv_1.build((None, IMAGE_SIDE, IMAGE_SIDE, 1))
        self.conv_2.build((None, IMAGE_SIDE // 2, IMAGE_SIDE // 2, 32))
        super().build(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvDecoder(Decoder):
    """The mirror of ``ConvEncoder``: the dense layers, a Dense to [B, 7, 7, 64], two strided transposed
    convolutions to [B, 28, 28, 32] and a 3 x 3 one with a sigmoid to the pixels, [B, 784] in (0, 1)."""

    def make_output(self) -> None:
        seed = self.seed
        self.dense_grid = _dense(int(np.prod(CONV_GRID)), seed, 42, activation="relu", name="dense_grid")
        up = dict(kernel_size=3, strides=2, padding="same", activation="relu")
        self.deconv_1 = layers.Conv2DTranspose(64, kernel_initializer=_initializer(seed, 43), name="deconv_1", **up)
        self.deconv_2 = layers.Conv2DTranspose(32, kernel_initializer=_initializer(seed, 44), name="deconv_2", **up)
        self.deconv_output = layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid",
                                                    kernel_initializer=_initializer(seed, 45), name="deconv_output")

    def build_output(self, hidden_shape) -> None:
        self.dense_grid.build(hidden_shape)
        self.deconv_1.build((None, *CONV_GRID))
        self.deconv_2.build((None, IMAGE_SIDE // 2, IMAGE_SIDE // 2, 64))
        self.deconv_output.build((None, IMAGE_SIDE, IMAGE_SIDE, 32))

    def output_pixels(self, hidden):
        x = ops.reshape(self.dense_grid(hidden), (-1, *CONV_GRID))  # [B, 7, 7, 64]
        x = self.deconv_2(self.deconv_1(x))  # [B, 14, 14, 64] -> [B, 28, 28, 32]
        return ops.reshape(self.deconv_output(x), (-1, self.original_dim))  # [B, 28, 28, 1] -> [B, 784]


@keras.saving.register_keras_serializable(package=PACKAGE)
class VariationalAutoEncoder(keras.Model):
    """Encoder and decoder end to end: [B, 784] -> [B, 784], adding the KL term as a loss.

    A conditional model (``classes`` > 0) takes ``(images, labels)``: the labels [B] are whole numbers.
    """

    def __init__(
        self,
        original_dim,
        intermediate_dim=64,
        latent_dim=32,
        kl_weight=1.0,
        name="autoencoder",
        seed=None,
        hidden_layers=1,
        classes=0,
        architecture="dense",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.original_dim = int(original_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.latent_dim = int(latent_dim)
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.hidden_layers, self.classes, self.architecture = _check_variant(hidden_layers, classes, architecture)
        if architecture == "conv" and self.original_dim != IMAGE_SIDE**2:
            raise ValueError(f"The convolutional VAE reads 28 x 28 images, 784 inputs (got {original_dim}).")
        encoder, decoder = (ConvEncoder, ConvDecoder) if architecture == "conv" else (Encoder, Decoder)
        variant = dict(seed=seed, hidden_layers=self.hidden_layers, classes=self.classes)
        self.encoder = encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim, **variant)
        self.decoder = decoder(original_dim, intermediate_dim=intermediate_dim, **variant)

    def build(self, input_shape):
        if isinstance(input_shape[0], (tuple, list)):  # (images, labels)
            input_shape = input_shape[0]
        self.encoder.build(input_shape)
        self.decoder.build((*input_shape[:-1], self.latent_dim))

    def forward(self, inputs, epsilon=None, labels=None) -> VAEOutput:
        """Encode, sample (with ``epsilon`` as the noise, if given) and decode; ``labels`` [B] if conditional."""
        if not self.classes:  # the guide's model: exactly its graph
            z_mean, z_log_var, z = self.encoder(inputs, epsilon=epsilon)
            return VAEOutput(z_mean, z_log_var, z, self.decoder(z))
        z_mean, z_log_var, z = self.encoder(inputs, epsilon=epsilon, labels=labels)
        return VAEOutput(z_mean, z_log_var, z, self.decoder(z, labels=labels))

    def call(self, inputs):
        images, labels = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        output = self.forward(images, labels=labels)
        self.add_loss(self.kl_weight * guide_kl(output.z_mean, output.z_log_var))
        return output.reconstruction

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape[0], (tuple, list)):
            input_shape = input_shape[0]
        return (*input_shape[:-1], self.original_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "original_dim": self.original_dim,
            "intermediate_dim": self.intermediate_dim,
            "latent_dim": self.latent_dim,
            "kl_weight": self.kl_weight,
            "seed": self.seed,
            "hidden_layers": self.hidden_layers,
            "classes": self.classes,
            "architecture": self.architecture,
        }


def build_vae(settings: Settings) -> VariationalAutoEncoder:
    """A built VAE over MNIST-sized inputs with the sizes, variant, KL weight and seed of ``settings``."""
    model = VariationalAutoEncoder(
        ORIGINAL_DIM,
        intermediate_dim=settings.intermediate_dim,
        latent_dim=settings.latent_dim,
        kl_weight=settings.kl_weight,
        seed=settings.seed,
        hidden_layers=settings.hidden_layers,
        classes=CLASSES if settings.conditional else 0,
        architecture=settings.architecture,
    )
    model.build((None, ORIGINAL_DIM))
    return model


# Multiply-adds of one row through the convolutions (kernel 3 x 3): conv_1, conv_2, deconv_1, deconv_2, deconv_output.
CONV_MULTIPLY_ADDS = 9 * (14 * 14 * 32 + 7 * 7 * 32 * 64 + 7 * 7 * 64 * 64 + 14 * 14 * 64 * 32 + 28 * 28 * 32)


def multiply_adds(settings: Settings) -> int:
    """About how many multiply-adds one row takes through the model ``settings`` describe (the trainer
    sizes its calls by it)."""
    hidden, latent = settings.intermediate_dim, settings.latent_dim
    count = 2 * ORIGINAL_DIM * hidden + 3 * hidden * latent  # the guide's: encoder + decoder
    count += 2 * (settings.hidden_layers - 1) * hidden * hidden
    count += 2 * CLASSES * hidden if settings.conditional else 0
    if settings.architecture == "conv":  # the dense layers read and write 7 x 7 x 64 instead of 784
        count += CONV_MULTIPLY_ADDS + 2 * (int(np.prod(CONV_GRID)) - ORIGINAL_DIM) * hidden
    return count


def settings_of(model: VariationalAutoEncoder) -> dict:
    """The Settings fields a model's shapes come from (for a loaded file): latent and hidden sizes, variant."""
    return dict(latent_dim=model.latent_dim, intermediate_dim=model.intermediate_dim,
                hidden_layers=model.hidden_layers, conditional=bool(model.classes),
                architecture=model.architecture)  # fmt: skip


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
    """A dense VAE as plain arrays, for numpy or the page's JavaScript to run (``inference``, ``instrument.js``).

    Each layer is ``(kernel [in, out], bias [out], activation)``, activation "relu", "sigmoid" or
    "linear". A conditional model (``classes`` > 0) reads the one-hot label after the pixels in
    the encoder's first layer and after the code in the decoder's first layer.
    """

    encoder: list  # the hidden layers: [(kernel, bias, activation), ...]
    z_mean: tuple  # (kernel [H, L], bias [L])
    z_log_var: tuple  # (kernel [H, L], bias [L])
    decoder: list  # the hidden layers, then the output: [(kernel, bias, activation), ...]
    classes: int = 0  # 0: not conditional


def _dense_weights(layer: layers.Dense) -> tuple[np.ndarray, np.ndarray, str]:
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    return kernel, bias, keras.activations.serialize(layer.activation)


def dense_plan(model: VariationalAutoEncoder) -> DensePlan | None:
    """The arrays and activations of a dense VAE's layers in the order data flows (None: a convolutional one)."""
    if model.architecture != "dense":
        return None
    encoder, decoder = model.encoder, model.decoder
    return DensePlan(
        encoder=[_dense_weights(layer) for layer in (encoder.dense_proj, *encoder.deeper_proj)],
        z_mean=_dense_weights(encoder.dense_mean)[:2],
        z_log_var=_dense_weights(encoder.dense_log_var)[:2],
        decoder=[_dense_weights(layer) for layer in (decoder.dense_proj, *decoder.deeper_proj, decoder.dense_output)],
        classes=model.classes,
    )
