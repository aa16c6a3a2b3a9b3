"""A private, read-only copy of a VAE for the page: encode and decode with the latest published weights.

The trainer publishes copies of its weights (from its thread, or from a worker
process); a page keeps an ``Inference`` of the same architecture and loads a newer
copy only when one is there. A dense model (any depth, conditional or not) encodes
and decodes with numpy matrix products over ``models.dense_plan``: the web server
compiles nothing per session or per model shape (TensorFlow keeps memory for every
function it compiles). The convolutional model has no such plan: its copy runs the
Keras layers on the server. ``model`` is a Keras model with the same weights, for
what needs one (saving, the layer table, packing weights).
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

from playground.config import Settings
from playground.models import CLASSES, ORIGINAL_DIM, DensePlan, VariationalAutoEncoder, build_vae, dense_plan


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), written so that no value overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


ACTIVATIONS = {"relu": relu, "sigmoid": sigmoid, "linear": lambda x: x}


def dense_layers(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray, str]]) -> np.ndarray:
    """``x`` through dense layers ``(kernel, bias, activation)``, in float32."""
    for kernel, bias, activation in layers:
        x = ACTIVATIONS[activation](x @ kernel + bias)
    return x


def with_label(x: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """A conditional model's input: ``x`` [N, D] followed by each row's one-hot label [N, classes]."""
    if not classes:
        return x
    return np.concatenate([x, np.eye(classes, dtype=np.float32)[labels]], axis=1)


class Inference:
    """Encode digits to (z_mean, z_log_var) and decode codes to digits, as numpy arrays."""

    def __init__(self, settings: Settings):
        self.latent_dim = settings.latent_dim
        self.model = build_vae(settings)
        self.classes = self.model.classes  # 0: not conditional; else encode and decode take labels [N]
        self.version: int | None = None
        self.plan: DensePlan | None = dense_plan(self.model)  # None: a convolutional model (Keras on the server)
        self._graphs = None  # the convolutional model's compiled encode and decode, made when first used

    def _labels(self, labels, count: int) -> np.ndarray:
        """``labels`` as int32 [count]: one label for all, or one each (0 for an unconditional model's unused input)."""
        if labels is None:
            return np.zeros(count, np.int32)
        values = np.broadcast_to(np.asarray(labels, dtype=np.int32), (count,))
        if self.classes and (values.min(initial=0) < 0 or values.max(initial=0) >= self.classes):
            raise ValueError(f"A class must be 0 to {self.classes - 1}.")
        return np.ascontiguousarray(values)

    def sync(self, version: int, weights: list[np.ndarray]) -> bool:
        """Load ``weights`` if they are newer than the ones held; True if they were loaded."""
        if version == self.version:
            return False
        self.model.set_weights(weights)
        self.plan = dense_plan(self.model)
        self.version = version
        return True

    def load_from(self, model: VariationalAutoEncoder) -> None:
        self.model.set_weights(model.get_weights())
        self.plan = dense_plan(self.model)
        self.version = None

    def load_packed(self, packed: PackedWeights) -> None:
        """Load weights that ``unpack_weights`` read (the page's copy) into this model's dense layers."""
        model = self.model
        if (packed.latent_dim, packed.intermediate_dim, packed.hidden_layers, packed.classes) != \
                (self.latent_dim, model.intermediate_dim, model.hidden_layers, model.classes):  # fmt: skip
            raise ValueError("These weights belong to a model of another size.")
        decoder, encoder = _dense_layers(model)
        for index, layer in enumerate(decoder):
            layer.set_weights(packed.decoder[2 * index : 2 * index + 2])
        if packed.encoder:
            for index, layer in enumerate(encoder):
                layer.set_weights(packed.encoder[2 * index : 2 * index + 2])
        self.plan = dense_plan(self.model)
        self.version = packed.version

    # the arithmetic: numpy over the plan, or the convolutional model's Keras layers

    def _encode_arrays(self, flat: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan  # one plan for the whole call, whatever a sync does meanwhile
        if plan is None:
            z_mean, z_log_var = self._keras_graphs()[0](flat, labels)
            return z_mean.numpy(), z_log_var.numpy()
        hidden = dense_layers(with_label(flat, labels, plan.classes), plan.encoder)
        (mean_kernel, mean_bias), (var_kernel, var_bias) = plan.z_mean, plan.z_log_var
        return hidden @ mean_kernel + mean_bias, hidden @ var_kernel + var_bias

    def _decode_arrays(self, codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        plan = self.plan
        if plan is None:
            return self._keras_graphs()[1](codes, labels).numpy().reshape(-1, ORIGINAL_DIM)
        return dense_layers(with_label(codes, labels, plan.classes), plan.decoder)

    def _keras_graphs(self):
        """The convolutional model's encode and decode as TensorFlow graphs (not XLA: one small call gains nothing)."""
        if self._graphs is None:
            import tensorflow as tf  # only a convolutional model's copy needs it

            model, latent = self.model, self.latent_dim
            labels_spec = tf.TensorSpec([None], tf.int32)

            def encode(images, labels):
                zeros = tf.zeros([tf.shape(images)[0], latent])  # no noise: only the mean and log-variance are used
                z_mean, z_log_var, _ = model.encoder(images, epsilon=zeros, labels=labels if self.classes else None)
                return z_mean, z_log_var

            def decode(codes, labels):
                return model.decoder(codes, labels=labels) if self.classes else model.decoder(codes)

            self._graphs = (
                tf.function(encode, input_signature=[tf.TensorSpec([None, ORIGINAL_DIM]), labels_spec]),
                tf.function(decode, input_signature=[tf.TensorSpec([None, latent]), labels_spec]),
            )
        return self._graphs

    # what the page asks

    def encode(self, images: np.ndarray, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """[N, 28, 28] or [N, 784] images -> (z_mean, z_log_var), each [N, L].

        A conditional model encodes each image with its label (one for all, or [N]); without
        labels, with the model's best guess (``best_labels``).
        """
        flat = np.asarray(images, dtype=np.float32).reshape(-1, ORIGINAL_DIM)
        if self.classes and labels is None:
            labels = self.best_labels(flat)
        return self._encode_arrays(flat, self._labels(labels, len(flat)))

    def decode(self, codes: np.ndarray, labels=None) -> np.ndarray:
        """[N, L] codes -> [N, 28, 28] images in [0, 1]; a conditional model draws class ``labels`` (default 0)."""
        flat = np.asarray(codes, dtype=np.float32).reshape(-1, self.latent_dim)
        return self._decode_arrays(flat, self._labels(labels, len(flat))).reshape(-1, 28, 28)

    def reconstruct(self, images: np.ndarray, labels=None) -> np.ndarray:
        """Decode each image's mean code: the model's deterministic reconstruction."""
        flat = np.asarray(images, dtype=np.float32).reshape(-1, ORIGINAL_DIM)
        if self.classes and labels is None:
            labels = self.best_labels(flat)
        return self.decode(self.encode(flat, labels)[0], labels)

    def class_losses(self, images: np.ndarray) -> np.ndarray:
        """A conditional model's loss (ELBO: pixel cross-entropy + KL, at the mean code) of each image as
        each class: [N, classes]. The lowest is the class that explains the image best."""
        flat = np.asarray(images, dtype=np.float32).reshape(-1, ORIGINAL_DIM)
        losses = np.empty((len(flat), self.classes), np.float32)
        for label in range(self.classes):
            labels = np.full(len(flat), label, np.int32)
            z_mean, z_log_var = self._encode_arrays(flat, labels)
            reconstruction = self._decode_arrays(z_mean, labels)
            kl = np.sum(-0.5 * (1.0 + z_log_var - np.square(z_mean) - np.exp(z_log_var)), axis=-1)
            p = np.clip(reconstruction, 1e-7, 1.0 - 1e-7)  # as Keras' binary cross-entropy clips
            bce = -np.sum(flat * np.log(p) + (1.0 - flat) * np.log(1.0 - p), axis=-1)
            losses[:, label] = bce + kl
        return losses

    def best_labels(self, images: np.ndarray) -> np.ndarray:
        """The model's best guess of each image's class: the one of lowest ``class_losses`` ([N] int32)."""
        return np.argmin(self.class_losses(images), axis=1).astype(np.int32)

    def as_every_class(self, image: np.ndarray, label: int) -> np.ndarray:
        """One image encoded with class ``label``, its mean code decoded as each class: [classes, 28, 28]."""
        z_mean, _ = self.encode(image[None], label)
        return self.decode(np.repeat(z_mean, self.classes, axis=0), np.arange(self.classes))


# ---- weights for the page: the dense layers as one little-endian float32 blob ----
WEIGHTS_MAGIC = b"VAEW"
WEIGHTS_FORMAT = 2  # 2: deeper and conditional models (hidden layers and classes after the checksum)
# magic, format, version, latent, intermediate, original, has_encoder, float count, crc32 of the floats,
# hidden layers, classes (0: not conditional)
_HEADER = struct.Struct("<4s10I")
HEADER_BYTES = _HEADER.size  # the floats start here


class PackedWeights(NamedTuple):
    """The dense layers' weights as the page receives them: decoder always, encoder when asked.

    With H hidden layers and C classes (0: not conditional), each layer a kernel then a bias:
    decoder [L + C, H], [H], (H - 1) x ([H, H], [H]), [H, 784], [784];
    encoder [784 + C, H], [H], (H - 1) x ([H, H], [H]), [H, L], [L] (mean), [H, L], [L] (log-variance).
    """

    version: int
    latent_dim: int
    intermediate_dim: int
    original_dim: int
    decoder: list[np.ndarray]
    encoder: list[np.ndarray]  # empty when not packed
    hidden_layers: int = 1
    classes: int = 0


def _dense_layers(model: VariationalAutoEncoder) -> tuple[list, list]:
    """(decoder, encoder) Dense layers in the order ``pack_weights`` writes them (a dense model only)."""
    if model.architecture != "dense":
        raise ValueError("Only a dense VAE runs in the page; a convolutional one decodes on the server.")
    encoder, decoder = model.encoder, model.decoder
    return ([decoder.dense_proj, *decoder.deeper_proj, decoder.dense_output],
            [encoder.dense_proj, *encoder.deeper_proj, encoder.dense_mean, encoder.dense_log_var])  # fmt: skip


def layer_weights(model: VariationalAutoEncoder, encoder: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(decoder, encoder) dense kernels and biases in the order ``pack_weights`` writes them."""
    decoder_layers, encoder_layers = _dense_layers(model)
    decoder = [w for layer in decoder_layers for w in layer.get_weights()]
    if not encoder:
        return decoder, []
    return decoder, [w for layer in encoder_layers for w in layer.get_weights()]


def pack_weights(model: VariationalAutoEncoder, version: int, encoder: bool = True) -> bytes:
    """The model's dense layers as bytes: a 36-byte header (sizes, version, CRC-32) then float32 values.

    The page reads the header to know the shapes and whether it already holds this
    version, and checks the CRC before using the numbers.
    """
    decoder, encoder_parts = layer_weights(model, encoder)
    floats = np.concatenate([np.ravel(w) for w in decoder + encoder_parts]).astype("<f4").tobytes()
    header = _HEADER.pack(WEIGHTS_MAGIC, WEIGHTS_FORMAT, int(version) & 0xFFFFFFFF, model.latent_dim,
                          model.intermediate_dim, model.original_dim, int(encoder), len(floats) // 4,
                          zlib.crc32(floats), model.hidden_layers, model.classes)  # fmt: skip
    return header + floats


def unpack_weights(data: bytes) -> PackedWeights:
    """Read what ``pack_weights`` wrote, checking its header and checksum (a ValueError if they do not hold)."""
    if len(data) < _HEADER.size:
        raise ValueError("The weights are cut short: there is no header.")
    magic, fmt, version, latent, hidden, original, has_encoder, count, crc, layers, classes = \
        _HEADER.unpack_from(data)  # fmt: skip
    if magic != WEIGHTS_MAGIC or fmt != WEIGHTS_FORMAT:
        raise ValueError("These bytes are not packed weights of a known format.")
    floats = data[_HEADER.size :]
    if len(floats) != 4 * count or zlib.crc32(floats) != crc:
        raise ValueError("The weights are damaged: their length or checksum does not match the header.")
    if not 1 <= layers <= 3 or classes not in (0, CLASSES):
        raise ValueError("The weights' header names a model this app does not build.")
    values = np.frombuffer(floats, dtype="<f4")
    deeper = [(hidden, hidden), (hidden,)] * (layers - 1)
    shapes = [(latent + classes, hidden), (hidden,), *deeper, (hidden, original), (original,)]
    decoder_count = len(shapes)
    if has_encoder:
        shapes += [(original + classes, hidden), (hidden,), *deeper, (hidden, latent), (latent,), (hidden, latent),
                   (latent,)]  # fmt: skip
    if sum(int(np.prod(s)) for s in shapes) != count:
        raise ValueError("The weights' sizes do not add up to the values sent.")
    arrays, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(values[offset : offset + size].reshape(shape).astype(np.float32))
        offset += size
    return PackedWeights(version, latent, hidden, original, arrays[:decoder_count], arrays[decoder_count:], layers,
                         classes)  # fmt: skip
