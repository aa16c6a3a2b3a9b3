"""The VAE's loss terms as plain functions of tensors.

Two objectives share these pieces:

* ``guide``: the subclassing guide's loss, pixel-averaged MSE plus the KL term
  averaged over latent dimensions (and the batch), as its ``add_loss`` call adds it;
* ``elbo``: the negative evidence lower bound of the keras.io VAE example,
  binary cross-entropy summed over the 784 pixels plus the KL summed over latent
  dimensions, both averaged over the batch.
"""

from __future__ import annotations

from typing import NamedTuple

from keras import ops

LOSS_KINDS = ("guide", "elbo")


class LossTerms(NamedTuple):
    """Per-example loss terms of one batch: each [B]."""

    reconstruction: object
    kl: object  # not yet multiplied by the KL weight


def kl_per_dimension(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, 1)) per latent dimension: [B, L] -> [B, L]."""
    return -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))


def guide_kl(z_mean, z_log_var):
    """The guide's KL term: the mean of the per-dimension KL over batch and latent dims."""
    return ops.mean(kl_per_dimension(z_mean, z_log_var))


def mse_per_example(images, reconstruction):
    """Squared error averaged over pixels: [B, 784] x2 -> [B]."""
    return ops.mean(ops.square(images - reconstruction), axis=-1)


def bce_sum_per_example(images, reconstruction):
    """Binary cross-entropy summed over pixels (Keras clips at 1e-7): [B, 784] x2 -> [B]."""
    return ops.sum(ops.binary_crossentropy(images, reconstruction), axis=-1)


def loss_terms(kind: str, images, reconstruction, kl) -> LossTerms:
    """Per-example reconstruction and KL for ``kind`` ("guide" or "elbo"); ``kl`` is [B, L]."""
    if kind == "guide":
        return LossTerms(mse_per_example(images, reconstruction), ops.mean(kl, axis=-1))
    if kind == "elbo":
        return LossTerms(bce_sum_per_example(images, reconstruction), ops.sum(kl, axis=-1))
    raise ValueError(f"The loss must be one of {', '.join(LOSS_KINDS)} (got {kind!r}).")
