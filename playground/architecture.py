"""The VAE's architecture as a table: each layer in the order data flows, its output shape and parameters."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from playground.models import VariationalAutoEncoder


class LayerRow(NamedTuple):
    """One line of an architecture table."""

    path: str
    kind: str
    output_shape: tuple
    trainable: int
    non_trainable: int


def describe(model: VariationalAutoEncoder) -> list[LayerRow]:
    """The VAE's layers in the order data flows through them, with shapes and parameter counts."""
    encoder, decoder = model.encoder, model.decoder
    latent, hidden = model.latent_dim, model.intermediate_dim
    layout = [
        (encoder, "dense_proj", hidden),
        (encoder, "dense_mean", latent),
        (encoder, "dense_log_var", latent),
        (encoder, "sampling", latent),
        (decoder, "dense_proj", hidden),
        (decoder, "dense_output", model.original_dim),
    ]
    rows = []
    for block, attribute, width in layout:
        layer = getattr(block, attribute)
        rows.append(LayerRow(
            path=f"{block.name}/{layer.name}",
            kind=type(layer).__name__,
            output_shape=(None, width),
            trainable=sum(int(np.prod(w.shape)) for w in layer.trainable_weights),
            non_trainable=sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights),
        ))  # fmt: skip
    return rows
