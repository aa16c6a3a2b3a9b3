"""Steps per second of the guide's loops, Keras ``fit()`` and this trainer, in one process.

Every contender trains the guide's default VAE (784-64-32, Adam 1e-3, batch 64) on
the same images. Compile and warm-up time is excluded everywhere.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from playground.config import Settings
from playground.data import load_dataset
from playground.models import ORIGINAL_DIM, build_vae
from playground.training import Trainer

WARMUP_STEPS = 5


def run_benchmark(dataset: str = "mnist", source: str = "auto", epochs: int = 3, eager_steps: int = 60) -> dict:
    """Time each training method; return the machine, the data and one row per method."""
    if epochs < 1 or eager_steps < 1:
        raise ValueError("The benchmark needs at least one epoch and one eager step.")
    dataset = load_dataset(dataset, source)
    settings = Settings(epochs=epochs)
    images = dataset.x_train.reshape(-1, ORIGINAL_DIM)
    rows = [
        _row("guide loop, eager", *_guide_loop(images, settings, eager_steps, compiled=False)),
        _row("guide loop, tf.function per step", *_guide_loop(images, settings, None, compiled=True)),
        _row("Keras fit()", *_keras_fit(images, settings)),
        _row("trainer, default (auto compiler)", *_trainer(dataset, settings, jit="auto")),
        _row("trainer, XLA", *_trainer(dataset, settings, jit=True)),
        _row("trainer, graph (no XLA)", *_trainer(dataset, settings, jit=False)),
        _row("trainer, XLA, no streaming (one call an epoch)", *_trainer(dataset, settings, True, 1e9)),
        _row("trainer, XLA, validating each epoch", *_trainer(dataset, settings, jit=True, validate=True)),
    ]
    speed = {row["name"]: row["steps_per_second"] for row in rows}
    trainer = speed["trainer, default (auto compiler)"]
    return {
        "machine": _machine(),
        "data": dataset.source,
        "model": f"VAE 784-{settings.intermediate_dim}-{settings.latent_dim}, batch {settings.batch_size}",
        "results": rows,
        "ratios": {
            "trainer / eager loop": trainer / speed["guide loop, eager"],
            "trainer / Keras fit()": trainer / speed["Keras fit()"],
            "streaming cost": 1.0 - speed["trainer, XLA"] / speed["trainer, XLA, no streaming (one call an epoch)"],
        },
    }


def _row(name: str, steps: int, seconds: float, compiler: str = "") -> dict:
    label = f"{name} [{compiler}]" if compiler and "auto" in name else name
    return {"name": name, "label": label, "steps": steps, "seconds": seconds, "steps_per_second": steps / seconds}


def _guide_loop(images: np.ndarray, settings: Settings, steps: int | None, compiled: bool) -> tuple[int, float]:
    """The guide's loop as written: tf.data batches, GradientTape, MSE + sum(model.losses)."""
    vae = build_vae(settings)
    optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
    mse_loss_fn = keras.losses.MeanSquaredError()
    loss_metric = keras.metrics.Mean()
    batches = tf.data.Dataset.from_tensor_slices(images).shuffle(buffer_size=1024).batch(settings.batch_size)

    def train_step(x_batch):
        with tf.GradientTape() as tape:
            reconstructed = vae(x_batch)
            loss = mse_loss_fn(x_batch, reconstructed)
            loss += sum(vae.losses)
        grads = tape.gradient(loss, vae.trainable_weights)
        optimizer.apply_gradients(zip(grads, vae.trainable_weights))
        loss_metric(loss)
        return loss

    step_fn = tf.function(train_step) if compiled else train_step
    total = steps if steps is not None else settings.epochs * math.ceil(len(images) / settings.batch_size)
    stream = iter(batches.repeat())
    for _ in range(WARMUP_STEPS):
        step_fn(next(stream))
    started = time.perf_counter()
    for _ in range(total):
        loss = step_fn(next(stream))
    float(loss)  # wait for the last step
    return total, time.perf_counter() - started


def _keras_fit(images: np.ndarray, settings: Settings) -> tuple[int, float]:
    """The guide's second way: compile(optimizer, MSE) and fit()."""
    vae = build_vae(settings)
    vae.compile(keras.optimizers.Adam(learning_rate=settings.learning_rate), loss=keras.losses.MeanSquaredError())
    vae.fit(images[: settings.batch_size * WARMUP_STEPS], images[: settings.batch_size * WARMUP_STEPS],
            batch_size=settings.batch_size, epochs=1, verbose=0)  # fmt: skip
    started = time.perf_counter()
    vae.fit(images, images, batch_size=settings.batch_size, epochs=settings.epochs, verbose=0)
    seconds = time.perf_counter() - started
    return settings.epochs * math.ceil(len(images) / settings.batch_size), seconds


def _trainer(
    dataset, settings: Settings, jit: bool | str, seconds_per_call: float | None = None, validate: bool = False
) -> tuple[int, float, str]:
    """This package's trainer: steady steps/s over ``settings.epochs`` epochs, compiling excluded.

    Like fit() here, it does not score a validation split unless ``validate``.
    """
    options = {} if seconds_per_call is None else {"seconds_per_call": seconds_per_call}
    trainer = Trainer(settings, dataset, jit_compile=jit, validate=validate, **options)
    result = trainer.run()
    return result.steps, result.steps / result.steps_per_second, result.compiler


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def format_table(report: dict) -> str:
    """The report as a Markdown table with the machine and the ratios."""
    machine = report["machine"]
    slowest = min(row["steps_per_second"] for row in report["results"])
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}",
        f"Data: {report['data']}",
        f"Model: {report['model']}",
        "",
        "| method | steps | seconds | steps/s | × eager |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['label']} | {row['steps']:,} | {row['seconds']:.2f} | {row['steps_per_second']:,.0f} "
            f"| {row['steps_per_second'] / slowest:,.1f} |"
        )
    lines.append("")
    for name, value in report["ratios"].items():
        lines.append(f"- {name}: {value:.1%}" if name == "streaming cost" else f"- {name}: {value:.1f}×")
    return "\n".join(lines)
