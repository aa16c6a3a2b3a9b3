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
    deeper = [(block, layer, (None, hidden)) for block in (encoder,) for layer in block.deeper_proj]
    front = []
    if model.architecture == "conv":
        front = [(encoder, encoder.conv_1, (None, 14, 14, 32)), (encoder, encoder.conv_2, (None, 7, 7, 64))]
    layout = [
        *front,
        (encoder, encoder.dense_proj, (None, hidden)),
        *deeper,
        (encoder, encoder.dense_mean, (None, latent)),
        (encoder, encoder.dense_log_var, (None, latent)),
        (encoder, encoder.sampling, (None, latent)),
        (decoder, decoder.dense_proj, (None, hidden)),
        *[(decoder, layer, (None, hidden)) for layer in decoder.deeper_proj],
        *_decoder_output(model),
    ]
    rows = []
    for block, layer, shape in layout:
        rows.append(LayerRow(
            path=f"{block.name}/{layer.name}",
            kind=type(layer).__name__,
            output_shape=shape,
            trainable=sum(int(np.prod(w.shape)) for w in layer.trainable_weights),
            non_trainable=sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights),
        ))  # fmt: skip
    return rows


def _decoder_output(model: VariationalAutoEncoder) -> list[tuple]:
    """The decoder's layers after its hidden ones: one Dense to the pixels, or the transposed convolutions."""
    decoder = model.decoder
    if model.architecture != "conv":
        return [(decoder, decoder.dense_output, (None, model.original_dim))]
    return [
        (decoder, decoder.dense_grid, (None, 7 * 7 * 64)),
        (decoder, decoder.deconv_1, (None, 14, 14, 64)),
        (decoder, decoder.deconv_2, (None, 28, 28, 32)),
        (decoder, decoder.deconv_output, (None, 28, 28, 1)),
    ]
