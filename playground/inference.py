"""A private, read-only copy of a VAE for the page: encode and decode with the latest published weights.

The trainer publishes copies of its weights from its own thread; a page keeps an
``Inference`` of the same architecture and loads a newer copy only when one is
there. The page never touches the variables that training is updating.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from playground.config import Settings
from playground.models import ORIGINAL_DIM, VariationalAutoEncoder, build_vae


class Inference:
    """Encode digits to (z_mean, z_log_var) and decode codes to digits, as numpy arrays."""

    def __init__(self, settings: Settings):
        self.latent_dim = settings.latent_dim
        self.model = build_vae(settings)
        self.version: int | None = None
        # Graphs, not XLA: a single small call gains nothing from compiling.
        self._encode = tf.function(self._encode_graph, input_signature=[tf.TensorSpec([None, ORIGINAL_DIM])])
        self._decode = tf.function(self._decode_graph, input_signature=[tf.TensorSpec([None, self.latent_dim])])

    def _encode_graph(self, images):
        x = self.model.encoder.dense_proj(images)  # [B, intermediate]
        return self.model.encoder.dense_mean(x), self.model.encoder.dense_log_var(x)

    def _decode_graph(self, codes):
        return self.model.decoder(codes)

    def sync(self, version: int, weights: list[np.ndarray]) -> bool:
        """Load ``weights`` if they are newer than the ones held; True if they were loaded."""
        if version == self.version:
            return False
        self.model.set_weights(weights)
        self.version = version
        return True

    def load_from(self, model: VariationalAutoEncoder) -> None:
        self.model.set_weights(model.get_weights())
        self.version = None

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, 28, 28] or [N, 784] images -> (z_mean, z_log_var), each [N, L]."""
        flat = np.asarray(images, dtype=np.float32).reshape(-1, ORIGINAL_DIM)
        z_mean, z_log_var = self._encode(flat)
        return z_mean.numpy(), z_log_var.numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """[N, L] codes -> [N, 28, 28] images in [0, 1]."""
        flat = np.asarray(codes, dtype=np.float32).reshape(-1, self.latent_dim)
        return self._decode(flat).numpy().reshape(-1, 28, 28)

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Decode each image's mean code: the model's deterministic reconstruction."""
        return self.decode(self.encode(images)[0])
