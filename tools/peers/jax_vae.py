"""The same VAE, losses and Adam in JAX: ``jit`` + ``lax.scan`` over an epoch's batches (a peer to beat).

Not part of the package and not run by the tests: JAX is not a project dependency.
Install it in a scratch environment (``python -m venv ENV && ENV/bin/pip install jax optax numpy``)
and run it from the repository root, or let ``tools/peers/compare.py`` drive it.

As a worker (``--serve``) it compiles and warms up once, then answers each line
``run EPOCHS`` on stdin with one JSON line: steps, seconds and CPU seconds (compile excluded), the last loss.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for playground.data

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from playground.data import load_dataset  # noqa: E402  (numpy only: no TensorFlow here)

ORIGINAL_DIM = 784


def glorot_uniform(key, fan_in: int, fan_out: int):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)


def init_params(key, intermediate_dim: int, latent_dim: int) -> dict:
    """Five Dense layers as Keras builds them: Glorot-uniform kernels, zero biases."""
    shapes = {
        "encoder_proj": (ORIGINAL_DIM, intermediate_dim),
        "z_mean": (intermediate_dim, latent_dim),
        "z_log_var": (intermediate_dim, latent_dim),
        "decoder_proj": (latent_dim, intermediate_dim),
        "decoder_output": (intermediate_dim, ORIGINAL_DIM),
    }
    keys = jax.random.split(key, len(shapes))
    return {
        name: {"kernel": glorot_uniform(k, *shape), "bias": jnp.zeros(shape[1], jnp.float32)}
        for k, (name, shape) in zip(keys, shapes.items())
    }


def dense(layer, x):
    return x @ layer["kernel"] + layer["bias"]


def losses(params, images, epsilon, loss_kind: str, kl_weight: float):
    """(total, (reconstruction, kl)) of one batch: the guide's MSE + mean KL, or the ELBO."""
    hidden = jax.nn.relu(dense(params["encoder_proj"], images))  # [B, H]
    z_mean = dense(params["z_mean"], hidden)  # [B, L]
    z_log_var = dense(params["z_log_var"], hidden)
    z = z_mean + jnp.exp(0.5 * z_log_var) * epsilon
    reconstruction = jax.nn.sigmoid(dense(params["decoder_output"], jax.nn.relu(dense(params["decoder_proj"], z))))
    kl = -0.5 * (1.0 + z_log_var - jnp.square(z_mean) - jnp.exp(z_log_var))  # [B, L]
    if loss_kind == "guide":
        reconstruction_loss = jnp.mean(jnp.square(images - reconstruction))
        kl_loss = jnp.mean(kl)
    else:  # the ELBO, with Keras' clipped binary cross-entropy
        p = jnp.clip(reconstruction, 1e-7, 1.0 - 1e-7)
        bce = -(images * jnp.log(p) + (1.0 - images) * jnp.log(1.0 - p))
        reconstruction_loss = jnp.mean(jnp.sum(bce, axis=-1))
        kl_loss = jnp.mean(jnp.sum(kl, axis=-1))
    return reconstruction_loss + kl_weight * kl_loss, (reconstruction_loss, kl_loss)


def make_epoch(optimizer, loss_kind: str, kl_weight: float, batch_size: int, latent_dim: int):
    """One jitted epoch: shuffle on device, then ``lax.scan`` a value_and_grad + Adam step over the batches."""
    grad_fn = jax.value_and_grad(losses, has_aux=True)

    def epoch(params, opt_state, key, x_train):
        count = x_train.shape[0]
        steps = count // batch_size  # the last partial batch is dropped, as the usual JAX loop does
        shuffle_key, noise_key = jax.random.split(key)
        batches = jax.random.permutation(shuffle_key, count)[: steps * batch_size].reshape(steps, batch_size)

        def step(carry, inputs):
            params, opt_state = carry
            rows, step_key = inputs
            images = x_train[rows]  # [B, 784], gathered on device
            epsilon = jax.random.normal(step_key, (batch_size, latent_dim))
            (loss, _), grads = grad_fn(params, images, epsilon, loss_kind, kl_weight)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        keys = jax.random.split(noise_key, steps)
        (params, opt_state), step_losses = jax.lax.scan(step, (params, opt_state), (batches, keys))
        return params, opt_state, step_losses

    return jax.jit(epoch, donate_argnums=(0, 1))


class Peer:
    """The JAX loop for one model on one dataset, compiled and warmed up."""

    def __init__(self, args):
        data = load_dataset(args.dataset, args.source)
        self.x_train = jax.device_put(np.ascontiguousarray(data.x_train.reshape(-1, ORIGINAL_DIM), np.float32))
        key = jax.random.PRNGKey(args.seed)
        self.key, init_key = jax.random.split(key)
        self.params = init_params(init_key, args.intermediate_dim, args.latent_dim)
        optimizer = optax.adam(args.learning_rate, eps=1e-7)  # Keras' Adam epsilon
        self.opt_state = optimizer.init(self.params)
        self.epoch = make_epoch(optimizer, args.loss, args.kl_weight, args.batch_size, args.latent_dim)
        self.steps_per_epoch = int(self.x_train.shape[0]) // args.batch_size
        started = time.perf_counter()
        self.run(1)  # compiles
        self.compile_seconds = time.perf_counter() - started

    def run(self, epochs: int) -> dict:
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(epochs):
            self.key, epoch_key = jax.random.split(self.key)
            self.params, self.opt_state, step_losses = self.epoch(self.params, self.opt_state, epoch_key, self.x_train)
        last = float(jnp.mean(step_losses))  # waits for the device
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        return {"steps": epochs * self.steps_per_epoch, "seconds": seconds, "cpu_seconds": cpu_seconds, "loss": last}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--source", default="idx:/usr/share/datasets/fashion-mnist")
    parser.add_argument("--loss", choices=("guide", "elbo"), default="guide")
    parser.add_argument("--intermediate-dim", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--kl-weight", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (without --serve)")
    parser.add_argument("--serve", action="store_true", help="answer 'run EPOCHS' lines on stdin")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    peer = Peer(args)
    info = {"ready": True, "jax": jax.__version__, "compile_seconds": peer.compile_seconds}
    print(json.dumps(info), flush=True)
    if not args.serve:
        result = peer.run(args.epochs)
        print(json.dumps({**result, "steps_per_second": result["steps"] / result["seconds"]}), flush=True)
        return 0
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["run"]:
            result = peer.run(int(words[1]))
            print(json.dumps({**result, "steps_per_second": result["steps"] / result["seconds"]}), flush=True)
        elif words[:1] == ["quit"]:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
