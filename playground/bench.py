"""Steps per second of the guide's loops, Keras ``fit()`` and this trainer, in one process.

Every contender trains the guide's default VAE (784-64-32, Adam 1e-3, batch 64) on
the same images. Compile and warm-up time is excluded everywhere. Each row's GFLOP/s
counts the step's matmuls; the ceiling is those matmuls alone, timed in the same run.
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
from typing import NamedTuple

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
CEILING_SECONDS = 0.2  # timed per matmul shape and compiler, after a warm-up call


class MatmulShape(NamedTuple):
    """One matrix product [m, k] @ [k, n] of a training step."""

    m: int
    k: int
    n: int
    role: str  # e.g. "forward encoder_proj"

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def step_matmuls(settings: Settings) -> list[MatmulShape]:
    """The matmuls of one training step at the batch's shapes: each Dense layer's forward product,
    its kernel gradient, and its input gradient (all but the first layer, whose input is the data)."""
    latent, hidden, batch = settings.latent_dim, settings.intermediate_dim, settings.batch_size
    layers = [
        ("encoder_proj", ORIGINAL_DIM, hidden),
        ("z_mean", hidden, latent),
        ("z_log_var", hidden, latent),
        ("decoder_proj", latent, hidden),
        ("decoder_output", hidden, ORIGINAL_DIM),
    ]
    shapes = []
    for index, (name, fan_in, fan_out) in enumerate(layers):
        shapes.append(MatmulShape(batch, fan_in, fan_out, f"forward {name}"))  # x @ W
        shapes.append(MatmulShape(fan_in, batch, fan_out, f"kernel gradient {name}"))  # x^T @ dy
        if index:
            shapes.append(MatmulShape(batch, fan_out, fan_in, f"input gradient {name}"))  # dy @ W^T
    return shapes


def step_gflop(settings: Settings) -> float:
    """Billions of floating-point operations in one step's matmuls."""
    return sum(shape.flops for shape in step_matmuls(settings)) / 1e9


def matmul_ceiling(settings: Settings, seconds: float = CEILING_SECONDS) -> dict:
    """The step's matmuls alone, each shape timed in a compiled loop under the graph and under XLA.

    Returns the seconds a step's matmuls take at the best compiler for each shape,
    and the GFLOP/s that makes: no training step can beat it.
    """
    shapes = step_matmuls(settings)
    best = {"graph": 0.0, "xla": 0.0, "best": 0.0}
    for shape in shapes:
        times = {compiler: _matmul_seconds(shape, compiler == "xla", seconds) for compiler in ("graph", "xla")}
        for compiler, value in times.items():
            best[compiler] += value
        best["best"] += min(times.values())
    flop = step_gflop(settings)
    return {
        "step_seconds": best["best"],
        "gflops": flop / best["best"],
        "gflops_graph": flop / best["graph"],
        "gflops_xla": flop / best["xla"],
        "shapes": len(shapes),
    }


def _matmul_seconds(shape: MatmulShape, jit: bool, seconds: float) -> float:
    """Seconds for one [m, k] @ [k, n] product, from a compiled loop of many (the loop's cost included)."""
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((shape.m, shape.k)).astype(np.float32))
    b = tf.constant(rng.standard_normal((shape.k, shape.n)).astype(np.float32))

    @tf.function(jit_compile=jit)
    def loop(repeats):
        # Each product reads the last one's corner, so that no compiler can hoist it out of the loop.
        def body(i, carry):
            return i + 1, tf.matmul(a + carry, b)[0, 0] * 1e-30

        return tf.while_loop(lambda i, _: i < repeats, body, (tf.constant(0), tf.constant(0.0)))[1]

    float(loop(tf.constant(10)))  # compiles
    repeats = 64
    while True:
        started = time.perf_counter()
        float(loop(tf.constant(repeats)))
        elapsed = time.perf_counter() - started
        if elapsed >= seconds or repeats >= 1 << 22:
            return elapsed / repeats
        repeats = max(repeats * 2, int(repeats * seconds / max(elapsed, 1e-6)))


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
        "trainer, default, in a worker process": _in_worker(data, settings),
    }
    rows = [_measure(name, timer, repeats) for name, timer in timers.items()]
    ceiling = matmul_ceiling(settings)
    for row in rows:
        row["gflops"] = row["steps_per_second"] * step_gflop(settings)
        row["ceiling_fraction"] = row["gflops"] / ceiling["gflops"]
    speed = {row["name"]: row["steps_per_second"] for row in rows}
    trainer = speed["trainer, default (auto compiler)"]
    streaming = speed[f"trainer, XLA, {STREAMING_TILES}x data, streaming"]
    return {
        "machine": machine_info(),
        "data": data.source,
        "model": f"VAE 784-{settings.intermediate_dim}-{settings.latent_dim}, batch {settings.batch_size}",
        "repeats": repeats,
        "step_gflop": step_gflop(settings),
        "ceiling": ceiling,
        "results": rows,
        "ratios": {
            "trainer / eager loop": trainer / speed["guide loop, eager"],
            "trainer / Keras fit()": trainer / speed["Keras fit()"],
            "streaming cost": 1.0 - streaming / speed[f"trainer, XLA, {STREAMING_TILES}x data, one call an epoch"],
            "trainer in a worker process / in this process": speed["trainer, default, in a worker process"] / trainer,
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


def _keras_fit(images: np.ndarray, settings: Settings, labels: np.ndarray | None = None) -> Timer:
    """The guide's second way: compile(optimizer, MSE) and fit(), no validation data (a conditional
    model's inputs are (images, labels))."""
    vae = build_vae(settings)
    vae.compile(keras.optimizers.Adam(learning_rate=settings.learning_rate), loss=keras.losses.MeanSquaredError())

    def inputs(count: int | None = None):
        return (images[:count], labels[:count]) if settings.conditional else images[:count]

    warm = settings.batch_size * WARMUP_STEPS
    vae.fit(inputs(warm), images[:warm], batch_size=settings.batch_size, epochs=1, verbose=0)

    def timed() -> tuple[int, float, str]:
        started = time.perf_counter()
        vae.fit(inputs(), images, batch_size=settings.batch_size, epochs=settings.epochs, verbose=0)
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
    trainer.warm_up()  # compiled before the first timed run: a run of one call would otherwise time nothing

    def timed() -> tuple[int, float, str]:
        result = trainer.run()
        return result.steps, result.steps / result.steps_per_second, result.compiler

    return timed


def machine_info() -> dict:
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
        format_ceiling(report["step_gflop"], report["ceiling"]),
        "",
        "| method | steps a run | steps/s (median) | best | × eager | GFLOP/s | of ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['label']} | {row['steps']:,} | {row['steps_per_second']:,.0f} "
            f"| {row['best_steps_per_second']:,.0f} | {row['steps_per_second'] / slowest:,.1f} "
            f"| {row['gflops']:,.1f} | {row['ceiling_fraction']:.0%} |"
        )
    lines.append("")
    for name, value in report["ratios"].items():
        lines.append(f"- {name}: {value:.1%}" if name == "streaming cost" else f"- {name}: {value:.1f}×")
    return "\n".join(lines)


def format_ceiling(step_gflop: float, ceiling: dict) -> str:
    """One line: the step's matmul work and how fast those matmuls alone run."""
    return (
        f"Matmul ceiling: a step's {ceiling['shapes']} matmuls ({step_gflop * 1e3:.1f} MFLOP) alone run at "
        f"{ceiling['gflops']:,.0f} GFLOP/s (best of graph {ceiling['gflops_graph']:,.0f} and XLA "
        f"{ceiling['gflops_xla']:,.0f}, per shape): {1 / ceiling['step_seconds']:,.0f} steps/s at most."
    )


def _in_worker(dataset, settings: Settings) -> Timer:
    """The default trainer in a worker process (as the app trains), its messages crossing the pipe; its first
    run (the worker's start, the dataset's trip, compiling) is not timed."""
    from playground.training import TrainingData
    from playground.workers import RemoteTrainer, pool

    trainer = RemoteTrainer(settings, TrainingData.from_dataset(dataset), pool())
    trainer.run()

    def timed() -> tuple[int, float, str]:
        result = trainer.run()
        return result.steps, result.steps / result.steps_per_second, result.compiler

    return timed


# ---- the model variants (issue 14): the trainer against Keras fit() on the very same model ----
VARIANTS = {
    "guide's dense VAE": Settings(),
    "2 hidden layers": Settings(hidden_layers=2),
    "3 hidden layers": Settings(hidden_layers=3),
    "conditional": Settings(conditional=True),
    "convolutional": Settings(architecture="conv"),
}
CONV_EPOCHS = 1  # the convolutional model runs about 30 times slower a step on a CPU


def run_variant_benchmark(dataset: str = "mnist", source: str = "auto", epochs: int = 3,
                          repeats: int = REPEATS) -> dict:  # fmt: skip
    """Steps/s of Keras fit() and of this trainer (auto compiler) on each model variant, same data and model."""
    if epochs < 1 or repeats < 1:
        raise ValueError("The benchmark needs at least one epoch and one repeat.")
    data = load_dataset(dataset, source)
    images, labels = data.x_train.reshape(-1, ORIGINAL_DIM), data.y_train.astype(np.int32)
    rows = []
    for name, variant in VARIANTS.items():
        settings = variant.replace(epochs=CONV_EPOCHS if variant.architecture == "conv" else epochs)
        fit = _measure("Keras fit()", _keras_fit(images, settings, labels), repeats)
        trainer = _measure("trainer, default (auto compiler)", _trainer(data, settings, jit="auto"), repeats)
        compiler = trainer["label"].rsplit("[", 1)[-1].rstrip("]")  # "xla" or "graph": what auto chose
        rows.append({"name": name, "model": describe_settings(settings), "epochs": settings.epochs,
                     "fit": fit["steps_per_second"], "trainer": trainer["steps_per_second"],
                     "compiler": compiler})  # fmt: skip
    return {"machine": machine_info(), "data": data.source, "repeats": repeats, "variants": rows}


def describe_settings(settings: Settings) -> str:
    """A variant in a few words: "dense 784-64x2-32, conditional"."""
    hidden = f"{settings.intermediate_dim}x{settings.hidden_layers}" if settings.hidden_layers > 1 \
        else str(settings.intermediate_dim)  # fmt: skip
    kind = "conv" if settings.architecture == "conv" else "dense"
    return f"{kind} 784-{hidden}-{settings.latent_dim}" + (", conditional" if settings.conditional else "")


def format_variant_table(report: dict) -> str:
    """The variants' report as a Markdown table."""
    machine = report["machine"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores; TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}",
        f"Data: {report['data']}; the median of {report['repeats']} timed runs, compiling excluded.",
        "",
        "| variant | model | epochs a run | Keras fit() steps/s | trainer steps/s | trainer / fit() |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in report["variants"]:
        lines.append(f"| {row['name']} | {row['model']} | {row['epochs']} | {row['fit']:,.0f} | "
                     f"{row['trainer']:,.0f} [{row['compiler']}] | {row['trainer'] / row['fit']:.1f}x |")  # fmt: skip
    return "\n".join(lines)
