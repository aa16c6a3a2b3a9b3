"""Steps per second of the guide's loops, Keras ``fit()`` and this trainer, in one process.

Every contender trains the guide's default VAE (784-64-32, Adam 1e-3, batch 64) on
the same images. Compile and warm-up time is excluded everywhere.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from playground.config import Settings
from playground.data import load_dataset
from playground.models import ORIGINAL_DIM, build_vae
from playground.training import Trainer

WARMUP_STEPS = 5
REPEATS = 5  # this machine's speed wanders by a third from run to run: report the median of several
STREAMING_TILES = 8  # the streaming comparison needs epochs of many calls: the sample repeated 8 times


def run_benchmark(
    dataset: str = "mnist", source: str = "auto", epochs: int = 3, eager_steps: int = 60, repeats: int = REPEATS
) -> dict:
    """Time each training method ``repeats`` times; return the machine, the data and a row per method."""
    if epochs < 1 or eager_steps < 1 or repeats < 1:
        raise ValueError("The benchmark needs at least one epoch, one eager step and one repeat.")
    data = load_dataset(dataset, source)
    settings = Settings(epochs=epochs)
    images = data.x_train.reshape(-1, ORIGINAL_DIM)
    tiled = replace(data, x_train=np.concatenate([data.x_train] * STREAMING_TILES))
    long_epochs = settings.replace(epochs=max(1, epochs // STREAMING_TILES))
    timers = {
        "guide loop, eager": _guide_loop(images, settings, eager_steps, compiled=False),
        "guide loop, tf.function per step": _guide_loop(images, settings, None, compiled=True),
        "Keras fit()": _keras_fit(images, settings),
        "trainer, default (auto compiler)": _trainer(data, settings, jit="auto"),
        "trainer, XLA": _trainer(data, settings, jit=True),
        "trainer, graph (no XLA)": _trainer(data, settings, jit=False),
        "trainer, XLA, validating each epoch": _trainer(data, settings, jit=True, validate=True),
        f"trainer, XLA, {STREAMING_TILES}x data, streaming": _trainer(tiled, long_epochs, jit=True),
        f"trainer, XLA, {STREAMING_TILES}x data, one call an epoch": _trainer(tiled, long_epochs, True, 1e9),
    }
    rows = [_measure(name, timer, repeats) for name, timer in timers.items()]
    speed = {row["name"]: row["steps_per_second"] for row in rows}
    trainer = speed["trainer, default (auto compiler)"]
    streaming = speed[f"trainer, XLA, {STREAMING_TILES}x data, streaming"]
    return {
        "machine": _machine(),
        "data": data.source,
        "model": f"VAE 784-{settings.intermediate_dim}-{settings.latent_dim}, batch {settings.batch_size}",
        "repeats": repeats,
        "results": rows,
        "ratios": {
            "trainer / eager loop": trainer / speed["guide loop, eager"],
            "trainer / Keras fit()": trainer / speed["Keras fit()"],
            "streaming cost": 1.0 - streaming / speed[f"trainer, XLA, {STREAMING_TILES}x data, one call an epoch"],
        },
    }


Timer = Callable[[], tuple[int, float, str]]  # one timed run: (steps, seconds, compiler)


def _measure(name: str, timer: Timer, repeats: int) -> dict:
    """The median and best steps/s of ``repeats`` timed runs."""
    samples = [timer() for _ in range(repeats)]
    speeds = [steps / seconds for steps, seconds, _ in samples]
    compiler = samples[-1][2]
    return {
        "name": name,
        "label": f"{name} [{compiler}]" if "auto" in name else name,
        "steps": samples[-1][0],
        "steps_per_second": statistics.median(speeds),
        "best_steps_per_second": max(speeds),
        "samples": speeds,
    }


def _guide_loop(images: np.ndarray, settings: Settings, steps: int | None, compiled: bool) -> Timer:
    """The guide's loop as written: tf.data batches, GradientTape, MSE + sum(model.losses), a Mean metric."""
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

    def timed() -> tuple[int, float, str]:
        started = time.perf_counter()
        for _ in range(total):
            loss = step_fn(next(stream))
        float(loss)  # wait for the last step
        return total, time.perf_counter() - started, "graph" if compiled else "eager"

    return timed


def _keras_fit(images: np.ndarray, settings: Settings) -> Timer:
    """The guide's second way: compile(optimizer, MSE) and fit(), no validation data."""
    vae = build_vae(settings)
    vae.compile(keras.optimizers.Adam(learning_rate=settings.learning_rate), loss=keras.losses.MeanSquaredError())
    warmup = images[: settings.batch_size * WARMUP_STEPS]
    vae.fit(warmup, warmup, batch_size=settings.batch_size, epochs=1, verbose=0)

    def timed() -> tuple[int, float, str]:
        started = time.perf_counter()
        vae.fit(images, images, batch_size=settings.batch_size, epochs=settings.epochs, verbose=0)
        steps = settings.epochs * math.ceil(len(images) / settings.batch_size)
        return steps, time.perf_counter() - started, "graph"

    return timed


def _trainer(
    dataset, settings: Settings, jit: bool | str, seconds_per_call: float | None = None, validate: bool = False
) -> Timer:
    """This package's trainer: steady steps/s over ``settings.epochs`` more epochs a run, compiling excluded.

    Like fit() here, it does not score a validation split unless ``validate``.
    """
    options = {} if seconds_per_call is None else {"seconds_per_call": seconds_per_call}
    trainer = Trainer(settings, dataset, jit_compile=jit, validate=validate, **options)

    def timed() -> tuple[int, float, str]:
        result = trainer.run()
        return result.steps, result.steps / result.steps_per_second, result.compiler

    return timed


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
        f"Each row: the median of {report['repeats']} timed runs (steps per run in the second column).",
        "",
        "| method | steps a run | steps/s (median) | best | × eager |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['label']} | {row['steps']:,} | {row['steps_per_second']:,.0f} "
            f"| {row['best_steps_per_second']:,.0f} | {row['steps_per_second'] / slowest:,.1f} |"
        )
    lines.append("")
    for name, value in report["ratios"].items():
        lines.append(f"- {name}: {value:.1%}" if name == "streaming cost" else f"- {name}: {value:.1f}×")
    return "\n".join(lines)
