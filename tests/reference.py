"""Independent references the tests check the package against: plain numpy and the guide's own loop."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def gaussian_kl(z_mean: np.ndarray, z_log_var: np.ndarray) -> np.ndarray:
    """KL(N(mu, sigma^2) || N(0, 1)) = (sigma^2 + mu^2 - 1 - ln sigma^2) / 2, per dimension."""
    return 0.5 * (np.exp(z_log_var) + z_mean**2 - 1.0 - z_log_var)


def dense(x, kernel, bias, activation=None):
    y = x @ kernel + bias
    if activation == "relu":
        return np.maximum(y, 0.0)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    return y


def vae_forward(model, x: np.ndarray, epsilon: np.ndarray):
    """The VAE's forward pass in numpy from its weights: (z_mean, z_log_var, reconstruction)."""
    enc, dec = model.encoder, model.decoder
    h = dense(x, enc.dense_proj.kernel.numpy(), enc.dense_proj.bias.numpy(), "relu")
    z_mean = dense(h, enc.dense_mean.kernel.numpy(), enc.dense_mean.bias.numpy())
    z_log_var = dense(h, enc.dense_log_var.kernel.numpy(), enc.dense_log_var.bias.numpy())
    z = z_mean + np.exp(0.5 * z_log_var) * epsilon
    h = dense(z, dec.dense_proj.kernel.numpy(), dec.dense_proj.bias.numpy(), "relu")
    return z_mean, z_log_var, dense(h, dec.dense_output.kernel.numpy(), dec.dense_output.bias.numpy(), "sigmoid")


def guide_training_loop(vae, x_train: np.ndarray, epochs: int, batch_size: int = 64, learning_rate: float = 1e-3):
    """The guide's loop as it prints it: tf.data batches, GradientTape, MSE + sum(vae.losses), Adam.

    Returns the running mean loss of the last epoch (the guide resets nothing
    between epochs; we report each epoch's own mean, as the trainer does).
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    mse_loss_fn = keras.losses.MeanSquaredError()
    train_dataset = tf.data.Dataset.from_tensor_slices(x_train).shuffle(buffer_size=1024, seed=0).batch(batch_size)

    @tf.function  # the same step, traced once: the reference stays the guide's math, only faster
    def train_step(x_batch_train):
        with tf.GradientTape() as tape:
            reconstructed = vae(x_batch_train)
            loss = mse_loss_fn(x_batch_train, reconstructed)
            loss += sum(vae.losses)
        grads = tape.gradient(loss, vae.trainable_weights)
        optimizer.apply_gradients(zip(grads, vae.trainable_weights))
        return loss

    epoch_means = []
    for _ in range(epochs):
        loss_metric = keras.metrics.Mean()
        for x_batch_train in train_dataset:
            loss_metric(train_step(x_batch_train))
        epoch_means.append(float(loss_metric.result()))
    return epoch_means
