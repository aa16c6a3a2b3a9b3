"""A private, read-only copy of a VAE for the page: encode and decode with the latest published weights.

The trainer publishes copies of its weights (from its thread, or from a worker
process); a page keeps an ``Inference`` of the same architecture and loads a newer
copy only when one is there. Encoding and decoding are numpy matrix products over
``models.dense_plan``: the web server compiles nothing per session or per model shape
(TensorFlow keeps memory for every function it compiles). ``model`` is a Keras model
with the same weights, for what needs one (saving, the layer table, packing weights).
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

from playground.config import Settings
from playground.models import ORIGINAL_DIM, DensePlan, VariationalAutoEncoder, build_vae, dense_plan


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


class Inference:
    """Encode digits to (z_mean, z_log_var) and decode codes to digits, as numpy arrays."""

    def __init__(self, settings: Settings):
        self.latent_dim = settings.latent_dim
        self.model = build_vae(settings)
        self.version: int | None = None
        self.plan: DensePlan = dense_plan(self.model)

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
        if (packed.latent_dim, packed.intermediate_dim) != (self.latent_dim, self.model.intermediate_dim):
            raise ValueError("These weights belong to a model of another size.")
        self.model.decoder.dense_proj.set_weights(packed.decoder[:2])
        self.model.decoder.dense_output.set_weights(packed.decoder[2:])
        encoder = self.model.encoder
        for layer, index in ((encoder.dense_proj, 0), (encoder.dense_mean, 2), (encoder.dense_log_var, 4)):
            if packed.encoder:
                layer.set_weights(packed.encoder[index : index + 2])
        self.plan = dense_plan(self.model)
        self.version = packed.version

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, 28, 28] or [N, 784] images -> (z_mean, z_log_var), each [N, L]."""
        plan = self.plan  # one plan for the whole call, whatever a sync does meanwhile
        hidden = dense_layers(np.asarray(images, dtype=np.float32).reshape(-1, ORIGINAL_DIM), plan.encoder)
        (mean_kernel, mean_bias), (var_kernel, var_bias) = plan.z_mean, plan.z_log_var
        return hidden @ mean_kernel + mean_bias, hidden @ var_kernel + var_bias

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """[N, L] codes -> [N, 28, 28] images in [0, 1]."""
        flat = np.asarray(codes, dtype=np.float32).reshape(-1, self.latent_dim)
        return dense_layers(flat, self.plan.decoder).reshape(-1, 28, 28)

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Decode each image's mean code: the model's deterministic reconstruction."""
        return self.decode(self.encode(images)[0])


# ---- weights for the page: the dense layers as one little-endian float32 blob ----
WEIGHTS_MAGIC = b"VAEW"
WEIGHTS_FORMAT = 1
# magic, format, version, latent, intermediate, original, has_encoder, float count, crc32 of the floats
_HEADER = struct.Struct("<4s8I")


class PackedWeights(NamedTuple):
    """The dense layers' weights as the page receives them: decoder always, encoder when asked."""

    version: int
    latent_dim: int
    intermediate_dim: int
    original_dim: int
    decoder: list[np.ndarray]  # [L, H], [H], [H, 784], [784]
    encoder: list[np.ndarray]  # [784, H], [H], [H, L], [L], [H, L], [L]; empty when not packed


def layer_weights(model: VariationalAutoEncoder, encoder: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(decoder, encoder) dense kernels and biases in the order ``pack_weights`` writes them."""
    decoder = [*model.decoder.dense_proj.get_weights(), *model.decoder.dense_output.get_weights()]
    if not encoder:
        return decoder, []
    layers = (model.encoder.dense_proj, model.encoder.dense_mean, model.encoder.dense_log_var)
    return decoder, [w for layer in layers for w in layer.get_weights()]


def pack_weights(model: VariationalAutoEncoder, version: int, encoder: bool = True) -> bytes:
    """The model's dense layers as bytes: a 36-byte header (sizes, version, CRC-32) then float32 values.

    The page reads the header to know the shapes and whether it already holds this
    version, and checks the CRC before using the numbers.
    """
    decoder, encoder_parts = layer_weights(model, encoder)
    floats = np.concatenate([np.ravel(w) for w in decoder + encoder_parts]).astype("<f4").tobytes()
    latent_dim, intermediate_dim = decoder[0].shape
    header = _HEADER.pack(WEIGHTS_MAGIC, WEIGHTS_FORMAT, int(version) & 0xFFFFFFFF, latent_dim, intermediate_dim,
                          decoder[3].shape[0], int(encoder), len(floats) // 4, zlib.crc32(floats))  # fmt: skip
    return header + floats


def unpack_weights(data: bytes) -> PackedWeights:
    """Read what ``pack_weights`` wrote, checking its header and checksum (a ValueError if they do not hold)."""
    if len(data) < _HEADER.size:
        raise ValueError("The weights are cut short: there is no header.")
    magic, fmt, version, latent, hidden, original, has_encoder, count, crc = _HEADER.unpack_from(data)
    if magic != WEIGHTS_MAGIC or fmt != WEIGHTS_FORMAT:
        raise ValueError("These bytes are not packed weights of a known format.")
    floats = data[_HEADER.size :]
    if len(floats) != 4 * count or zlib.crc32(floats) != crc:
        raise ValueError("The weights are damaged: their length or checksum does not match the header.")
    values = np.frombuffer(floats, dtype="<f4")
    shapes = [(latent, hidden), (hidden,), (hidden, original), (original,)]
    if has_encoder:
        shapes += [(original, hidden), (hidden,), (hidden, latent), (latent,), (hidden, latent), (latent,)]
    if sum(int(np.prod(s)) for s in shapes) != count:
        raise ValueError("The weights' sizes do not add up to the values sent.")
    arrays, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(values[offset : offset + size].reshape(shape).astype(np.float32))
        offset += size
    return PackedWeights(version, latent, hidden, original, arrays[:4], arrays[4:])
