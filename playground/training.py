"""The guide's custom training loop (GradientTape + Adam), compiled so that it is fast: running it,
stopping and pausing it, and publishing its weights. The math of a step lives in ``steps.py``.

Each compiled call runs many optimizer steps in a while loop over batches gathered
from data that already sits in device memory, so there is no Python work per step.
Between calls the trainer streams an update and checks for stop and pause requests.
One call lasts about ``SECONDS_PER_CALL``, which bounds both the update rate and
the stop latency. The best state so far (the starting weights, then each better
epoch) is kept aside and restored if the run diverges.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from playground.config import Settings, require_same_model
from playground.data import Dataset
from playground.history import History, Record
from playground.models import CLASSES, ORIGINAL_DIM, build_vae, multiply_adds
from playground.steps import StepVariables, chunk_state, evaluate, train_chunk, train_chunk_fast

# Measured on a 2-core CPU (`python -m playground bench` runs both): XLA runs the
# guide's VAE at about 1,800 steps/s and the app's 784-256-8 ELBO VAE at about 510,
# the plain TensorFlow graph at about 1,200 and 370. But XLA first compiles for
# 1.5-2.5 s where the graph traces in 0.7 s, so short runs finish sooner without it.
# "auto" uses XLA for dense models' runs of at least XLA_MIN_STEPS steps (the convolutional model: never,
# XLA's CPU convolution gradients run 40x slower than TensorFlow's graph); True or False force it.
JIT_COMPILE = "auto"
XLA_MIN_STEPS = 2000
SECONDS_PER_CALL = 0.1  # the page's runs: update rate >= 4/s and stop latency well under 0.5 s
# A run nobody watches move (the CLI's progress line): each call costs a few ms besides its steps, and
# longer calls were 4-9% faster on the app's model (2026-11-27, interleaved in one process); a stop
# (Ctrl-C) still takes effect within about 0.3 s on a quiet 2-core machine.
UNWATCHED_SECONDS_PER_CALL = 0.4
PUBLISH_SECONDS = 0.2  # readers poll the weights at most a few times a second
FIRST_CALL_SPEED = 80.0  # steps/s assumed until measured: the first call compiles, keep it short
MIN_CALL_STEPS = 8  # a call slowed by a busy machine must not shrink the next ones to a step each
# A run has exploded when an epoch's mean training loss exceeds EXPLODED_RATIO times the
# loss of the weights the model started from or of the state before that epoch, both
# scored at the current KL weight (so a KL warm-up or a raised KL weight is no explosion).
# Measured on the bundled sample, 6 epochs: 38 healthy runs (both losses; KL weights 0,
# 0.01, 1, 10, 100, with and without a warm-up; 784-256-8 and 784-1024-64; learning rates
# up to 0.01) peaked at 0.93 (784-1024-64 guide at 0.01; all others at most 0.64), while
# runs that explode without reaching infinity measured 27 (784-1024-64 ELBO trained two
# epochs, then a learning rate of 0.1), 4e11 (ELBO at 0.03) and 1e14 (guide at 0.03).
EXPLODED_RATIO = 5.0
# A call's length in steps comes from the model's size, never from the clock, so that a run's loss
# records fall on the same steps every time it is repeated (a shared link reproduces its curves).
# The rate is what a 2-core CPU sustains on these matmuls (about 75 GFLOP/s measured), a little low.
ASSUMED_FLOPS_PER_SECOND = 60e9
ASSUMED_SECONDS_PER_STEP = 2e-4  # the loop's own cost per step, whatever the model's size


def call_steps(settings: Settings, seconds: float) -> int:
    """Steps one compiled call runs to last about ``seconds``, from the model's size alone (deterministic)."""
    row = multiply_adds(settings)  # encoder + decoder, one row
    step_seconds = 6 * settings.batch_size * row / ASSUMED_FLOPS_PER_SECOND + ASSUMED_SECONDS_PER_STEP
    return max(1, round(seconds / step_seconds))


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per loaded dataset
class TrainingData:
    """A dataset's images as flat tensors in device memory, shareable by many trainers."""

    x_train: tf.Tensor  # [N, 784] float32
    x_test: tf.Tensor  # [M, 784] float32
    y_train: tf.Tensor | None = None  # [N] int32: the labels, read only by a conditional model
    y_test: tf.Tensor | None = None  # [M] int32

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> TrainingData:
        flat = (
            np.ascontiguousarray(x.reshape(-1, ORIGINAL_DIM), dtype=np.float32)
            for x in (dataset.x_train, dataset.x_test)
        )
        labels = (getattr(dataset, name, None) for name in ("y_train", "y_test"))
        labels = [None if y is None else tf.constant(np.asarray(y, dtype=np.int32)) for y in labels]
        return cls(*(tf.constant(x) for x in flat), *labels)


def checked_labels(data: TrainingData, classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The labels a conditional model of ``classes`` trains on, or a ValueError saying what is missing."""
    if data.y_train is None or data.y_test is None:
        raise ValueError("A conditional VAE needs labels, and this dataset has none: turn Conditional off.")
    for labels in (data.y_train, data.y_test):
        values = labels.numpy()
        if values.size and (values.min() < 0 or values.max() >= classes):
            raise ValueError(f"A conditional VAE here takes labels 0 to {classes - 1}; this dataset has "
                             f"{values.min()} to {values.max()}: turn Conditional off.")  # fmt: skip
    return data.y_train, data.y_test


class Score(NamedTuple):
    """Mean loss terms of some weights, to compare them at any KL weight."""

    reconstruction: float
    kl: float

    def at(self, kl_weight: float) -> float:
        return self.reconstruction + kl_weight * self.kl


@dataclass(frozen=True)
class Kept:
    """Where the state kept aside comes from: restored if a run diverges."""

    epoch: int | None  # the end of this epoch (0: the initial weights); None: a run began mid-epoch
    step: int
    score: Score | None  # None until needed: a run's starting state is scored at its first epoch's end
    loss_kind: str


@dataclass(frozen=True)
class RunResult:
    """How a call to ``Trainer.run`` ended, with the last epoch's mean losses."""

    reason: str  # "finished", "stopped" or "diverged"
    message: str
    steps: int  # optimizer steps in this call
    epochs: int  # epochs completed by the model so far
    seconds: float  # wall time of this call
    steps_per_second: float  # steady throughput, compile calls excluded
    compiler: str  # "xla" or "graph"
    loss: float
    reconstruction_loss: float
    kl_loss: float
    val_loss: float | None
    val_reconstruction_loss: float | None
    val_kl_loss: float | None
    # A diverged run: the step where it diverged, how much the loss had grown (None: it
    # stopped being a finite number), and the state that was restored.
    diverged_step: int | None = None
    loss_ratio: float | None = None
    restored_epoch: int | None = None  # 0: the initial weights
    restored_step: int | None = None


class Control:
    """Stop, pause and resume one run from any thread. Nothing clears a stop: a new run takes a new Control."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused; return the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        started = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - started


class _Sums:
    """Running sums of the loss terms over some steps (a call, an epoch)."""

    def __init__(self, latent_dim: int):
        self.steps = 0
        self.loss = self.reconstruction = self.kl = 0.0
        self.kl_per_dim = np.zeros(latent_dim)

    def add(self, steps: int, loss: float, reconstruction: float, kl: float, kl_per_dim: np.ndarray) -> None:
        self.steps += steps
        self.loss += loss
        self.reconstruction += reconstruction
        self.kl += kl
        self.kl_per_dim += kl_per_dim

    def means(self) -> tuple[float, float, float]:
        n = max(self.steps, 1)
        return self.loss / n, self.reconstruction / n, self.kl / n


class _EpochPlan:
    """One epoch's shuffled batches and how far training has got through them."""

    def __init__(self, indices: tf.Tensor, sizes: tf.Tensor, sums: _Sums):
        self.indices = indices  # [S, B] int32 row numbers; the last row is padded
        self.sizes = sizes  # [S] int32 real rows per batch
        self.batches = int(indices.shape[0])
        self.position = 0  # batches done
        self.sums = sums


def _copies(variables: list) -> tuple[list[tf.Variable], tf.types.experimental.PolymorphicFunction]:
    """Variables holding a copy of ``variables``, and a compiled call that copies them again (a graph:
    a few milliseconds, nothing for XLA to compile)."""
    copies = [tf.Variable(v, trainable=False) for v in variables]
    pairs = list(zip(copies, variables))

    def copy() -> None:
        for target, source in pairs:
            target.assign(source)

    return copies, tf.function(copy, jit_compile=False)


class _Clock:
    """Times a run: total, paused, and compiled calls apart, so the steady speed excludes compiling."""

    def __init__(self):
        self.started = time.perf_counter()
        self.paused = 0.0
        self.compile_seconds = 0.0
        self.compile_steps = 0
        self.steps = 0
        self.last_seconds = 0.0
        self.last_compiled = False
        self.speed = FIRST_CALL_SPEED

    def time(self, function, *args):
        """Call a tf.function, noting how long it took and whether it traced first."""
        traces = function.experimental_get_tracing_count()
        started = time.perf_counter()
        result = function(*args)
        self.last_seconds = time.perf_counter() - started
        self.last_compiled = function.experimental_get_tracing_count() != traces
        if self.last_compiled:
            self.compile_seconds += self.last_seconds
        return result

    def count(self, steps: int) -> None:
        self.steps += steps
        if self.last_compiled:
            self.compile_steps += steps
        elif steps:
            # A moving average: one call slowed by other work on the machine barely moves it.
            measured = steps / max(self.last_seconds, 1e-9)
            self.speed = measured if self.speed == FIRST_CALL_SPEED else 0.7 * self.speed + 0.3 * measured

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def steady_speed(self) -> float:
        """Steps a second over the run, pauses and compiling calls left out."""
        seconds = self.elapsed() - self.paused - self.compile_seconds
        return (self.steps - self.compile_steps) / seconds if seconds > 0 else 0.0


class Trainer:
    """Trains one VAE on one dataset with ``settings``; stoppable, pausable, resumable."""

    def __init__(
        self,
        settings: Settings,
        data: Dataset | TrainingData,
        *,
        jit_compile: bool | str = JIT_COMPILE,
        seconds_per_call: float = SECONDS_PER_CALL,
        validate: bool = True,
    ):
        self.settings = settings
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto' (got {jit_compile!r}).")
        self.jit_compile = jit_compile
        self.seconds_per_call = seconds_per_call
        self.validate = validate  # score the test split at each epoch's end
        data = data if isinstance(data, TrainingData) else TrainingData.from_dataset(data)
        self.x_train, self.x_test = data.x_train, data.x_test  # [N, 784], [M, 784]
        # [N], [M] int32 for a conditional model; None for the others, whose compiled graph reads no label.
        self.y_train, self.y_test = checked_labels(data, CLASSES) if settings.conditional else (None, None)
        self.control = Control()
        self.history = History()
        self._lock = threading.Lock()  # guards the published weights
        self._weights_version = 0
        self._published_at = 0.0
        self._build()
        self.reset()

    def _build(self) -> None:
        """The model, the optimizer and the variables the compiled steps read, made once.

        Compiled functions are never rebuilt: TensorFlow keeps some memory of every
        function it has run (tensorflow/tensorflow#62854), so a long-lived server must
        not make new ones for a reset or for new rates. Rates and weights are variables.
        """
        self.model = build_vae(self.settings)
        self.optimizer = keras.optimizers.Adam(learning_rate=self.settings.learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self._variables = StepVariables.zeros()  # the step counters, KL weight and warm-up (see steps.py)
        # The best state so far (weights and the optimizer's moments), restored if a run diverges.
        self._kept_variables, self._keep_call = _copies(self._restorable_variables())
        # The state a diverged chunk left (its start), copied before it is replayed step by step.
        self._chunk_start, self._back_up_call = _copies(self._chunk_variables())
        self._train_calls: dict[tuple[str, str], tf.types.experimental.PolymorphicFunction] = {}
        self._evaluate_calls: dict[str, tf.types.experimental.PolymorphicFunction] = {}
        self._train_call = self._train_function("xla" if self.jit_compile is True else "graph")
        self._warming: threading.Thread | None = None
        self._warm_before: Callable[[], None] | None = None

    def warm_up(self) -> None:
        """Compile now what the next Start will call: the training loop of the compiler its run will
        use, the scoring and the keeping. The loop runs zero steps on batches of the plan's shapes."""
        indices = tf.zeros([self.steps_per_epoch, self.settings.batch_size], tf.int32)
        sizes = tf.fill([self.steps_per_epoch], self.settings.batch_size)
        self._train_function(self._compiler_for(self.settings.epochs))(indices, sizes, tf.constant(0), tf.constant(0))
        self._evaluate_function()(self.x_test)  # every run scores its starting weights
        self._keep_call()  # keeps the state a run starts from (each run keeps its own again)

    def start_warm_up(self, before: Callable[[], None] | None = None) -> None:
        """``warm_up`` in a background thread (``before`` runs first in it, e.g. to lower its priority),
        after any warm-up still running; ``run`` waits for them, so the compiled calls never race.
        Settings applied later (a new loss, batch size or run length) warm up again the same way."""
        previous, self._warm_before = self._warming, before

        def work() -> None:
            if previous is not None:
                previous.join()
            if before is not None:
                before()
            self.warm_up()

        # Not a daemon: a process that exits mid-compile would abort inside TensorFlow ("terminate
        # called ..."), so exiting waits the second or two a compile takes.
        self._warming = threading.Thread(target=work, name="playground-warm-up", daemon=False)
        self._warming.start()

    @property
    def warm(self) -> bool:
        """Whether a background warm-up has finished (or none was asked for)."""
        return self._warming is None or not self._warming.is_alive()

    @property
    def compiling(self) -> bool:
        """Whether a run starting now waits for its loop to compile (a warm-up still running)."""
        return not self.warm

    def reset(self) -> None:
        """New initial weights (same seed), a fresh optimizer and an empty history, in place."""
        self.model.set_weights(build_vae(self.settings).get_weights())
        for variable in (*self.optimizer.variables, self._variables.steps_taken, self._variables.steps_before):
            variable.assign(tf.zeros_like(variable))
        self._take_rates(self.settings)
        self._rng = np.random.default_rng(self.settings.seed)
        self._step_offset = 0  # steps a loaded model had taken before this optimizer
        self.epoch = 0  # epochs completed
        self._target_epoch = 0
        self._plan: _EpochPlan | None = None
        self._last_epoch: tuple[float, float, float] | None = None
        self._last_val: Record | None = None
        self._train_seconds = 0.0
        self._kept: Kept | None = None  # what the state kept aside is
        self._first: Kept | None = None  # the weights the model started from (epoch 0 after a reset)
        self._last_score: Score | None = None  # the state before the epoch in progress
        self._divergence: tuple[int, float | None] | None = None  # (step, loss ratio or None: not finite)
        self.history.clear()
        self._publish(force=True)

    def _take_rates(self, settings: Settings) -> None:
        self.optimizer.learning_rate.assign(settings.learning_rate)
        self._variables.kl_weight.assign(settings.kl_weight)
        self._variables.warmup_steps.assign(float(settings.kl_warmup_steps))
        self.model.kl_weight = settings.kl_weight

    def renew(self, settings: Settings) -> None:
        """Start over with ``settings`` of the same sizes and seed, keeping the compiled functions."""
        require_same_model(self.settings, settings, "Renewing a trainer")
        self.settings = settings
        self.reset()

    def adopt(self, weights: list[np.ndarray], history: History | None = None) -> None:
        """Continue from saved weights (and their history) with a fresh optimizer."""
        self.reset()
        self.model.set_weights(weights)
        if history is not None and len(history):
            records = history.records()
            for record in records:
                self.history.append(record)
            self.epoch = max(r.epoch for r in records if r.split == "val") if history.records("val") else 0
            self._step_offset = max(r.step for r in records)
            self._variables.steps_before.assign(float(self._step_offset))  # the KL warm-up counts on
        self._publish(force=True)

    def apply(self, settings: Settings) -> None:
        """Take new non-architecture settings (loss, rates, batch size, epochs) without a reset."""
        require_same_model(self.settings, settings, "Changing the settings of a trainer")
        if settings.batch_size != self.settings.batch_size:
            self._plan = None  # the epoch in progress starts again with the new batches
        self.settings = settings
        self._take_rates(settings)
        self._target_epoch = min(self._target_epoch, self.epoch)
        if self._warming is not None:  # a warmed-up trainer stays warm for what Start will now call
            self.start_warm_up(self._warm_before)

    def compiler_for_run(self) -> str:
        """ "xla" or "graph" for the run about to start (see JIT_COMPILE)."""
        return self._compiler_for(max(self._target_epoch - self.epoch, 0))

    def _compiler_for(self, epochs: int) -> str:
        """The compiler for a run of ``epochs`` more epochs from here (see JIT_COMPILE)."""
        if self.jit_compile != "auto":
            return "xla" if self.jit_compile else "graph"
        if self.settings.architecture == "conv":  # XLA's CPU convolutions: 0.9 steps/s against the graph's 33-39
            return "graph"
        planned = epochs * self.steps_per_epoch - self.epoch_step
        return "xla" if planned >= XLA_MIN_STEPS else "graph"

    @property
    def compiler(self) -> str:
        """The compiler of the current (or last) run."""
        return "xla" if self._train_call is self._train_calls.get(("xla", self.settings.loss)) else "graph"

    @property
    def target_epoch(self) -> int:
        """The epoch the current (or last) run trains up to."""
        return self._target_epoch

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(int(self.x_train.shape[0]) / self.settings.batch_size)

    @property
    def step(self) -> int:
        """Optimizer steps taken by this model so far."""
        return int(self.optimizer.iterations.numpy()) + self._step_offset

    @property
    def epoch_step(self) -> int:
        """Steps done in the epoch in progress."""
        return 0 if self._plan is None else self._plan.position

    def weights(self) -> tuple[int, list[np.ndarray]]:
        """(version, the model's weights after the last finished call): safe from any thread."""
        with self._lock:
            return self._weights_version, self._weights

    def _publish(self, force: bool = False) -> None:
        """Copy the weights out for readers in other threads (every ``PUBLISH_SECONDS`` at most)."""
        now = time.perf_counter()
        if not force and now - self._published_at < PUBLISH_SECONDS:
            return
        weights = self.model.get_weights()
        with self._lock:
            self._weights = weights
            self._weights_version += 1
        self._published_at = now

    def _chunk_variables(self) -> list:
        """Everything a chunk changes (see ``steps.chunk_state``)."""
        return chunk_state(self.model, self.optimizer, self._variables)

    def _restorable_variables(self) -> list:
        """The model's variables and the optimizer's moments (not its step count or learning rate)."""
        counters = {id(self.optimizer.iterations), id(self.optimizer.learning_rate)}
        return [*self.model.variables, *(v for v in self.optimizer.variables if id(v) not in counters)]

    def _train_function(self, compiler: str):
        """The compiled training loop for ``compiler`` and the current loss, made on first use."""
        key = (compiler, self.settings.loss)
        if key not in self._train_calls:
            steps = functools.partial(self._train_steps, loss_kind=self.settings.loss)
            self._train_calls[key] = tf.function(steps, jit_compile=compiler == "xla")
        return self._train_calls[key]

    def _evaluate_function(self):
        """The compiled scoring of the test split for the current loss: a graph, not XLA, since one
        forward pass gains nothing from XLA and pays about 1 ms a launch."""
        loss_kind = self.settings.loss
        if loss_kind not in self._evaluate_calls:
            scoring = functools.partial(self._evaluate, loss_kind=loss_kind)
            self._evaluate_calls[loss_kind] = tf.function(scoring, jit_compile=False)
        return self._evaluate_calls[loss_kind]

    def _train_steps(self, indices, sizes, start, count, loss_kind: str):
        """One chunk of steps (see ``steps.train_chunk_fast``: a chunk that diverges changes nothing)."""
        return train_chunk_fast(self.model, self.optimizer, self._variables, self.x_train, indices, sizes, start,
                                count, loss_kind=loss_kind, seed=self.settings.seed, y_train=self.y_train)  # fmt: skip

    def _replay_steps(self, indices, sizes, start, count, loss_kind: str):
        """A chunk again, checking each step (``steps.train_chunk``): it stops before the first bad one."""
        return train_chunk(self.model, self.optimizer, self._variables, self.x_train, indices, sizes, start, count,
                           loss_kind=loss_kind, seed=self.settings.seed, y_train=self.y_train)  # fmt: skip

    def _replay_function(self):
        """The checked loop for the current loss, made the first time a chunk diverges: a graph, which
        traces in a fraction of XLA's compile time, and divergence is rare."""
        key = ("replay", self.settings.loss)
        if key not in self._train_calls:
            replay = functools.partial(self._replay_steps, loss_kind=self.settings.loss)
            self._train_calls[key] = tf.function(replay, jit_compile=False)
        return self._train_calls[key]

    def _evaluate(self, images, loss_kind: str):
        # ``images`` is always the test split, so its labels are the test split's (None: not conditional).
        losses = evaluate(self.model, self._variables, images, loss_kind=loss_kind, seed=self.settings.seed,
                          labels=self.y_test)  # fmt: skip
        return losses.loss, losses.reconstruction, losses.kl

    def _new_plan(self) -> _EpochPlan:
        """This epoch's shuffled batches; the last, partial one is padded and masked."""
        count, size = int(self.x_train.shape[0]), self.settings.batch_size
        batches = math.ceil(count / size)
        order = np.zeros(batches * size, dtype=np.int32)
        order[:count] = self._rng.permutation(count)
        sizes = np.full(batches, size, dtype=np.int32)
        sizes[-1] = count - size * (batches - 1)
        sums = _Sums(self.settings.latent_dim)
        return _EpochPlan(tf.constant(order.reshape(batches, size)), tf.constant(sizes), sums)

    def run(self, on_update: Callable[[Record], None] | None = None, control: Control | None = None) -> RunResult:
        """Train until ``settings.epochs`` more epochs are done, or a stop, or divergence.

        ``control`` stops and pauses this run (default: ``self.control``). Whoever
        starts a run owns its control: the trainer never clears it, so a stop sent
        before the run begins is obeyed. After a stop, ``run`` carries on where the
        stopped run left off, with the same model and optimizer state. After a
        divergence, the best state so far is restored (see ``RunResult``).
        """
        control = self.control if control is None else control
        if self._warming is not None:
            self._warming.join()  # its calls share the variables this run is about to train
        if self.epoch >= self._target_epoch:
            self._target_epoch = self.epoch + self.settings.epochs
        target = self._target_epoch  # read once: this run's end is fixed when it begins
        self._train_call = self._train_function(self.compiler_for_run())
        clock = _Clock()
        self._divergence = None
        reason = "finished"
        if self.epoch < target:
            self._keep_start()
        while self.epoch < target:
            clock.paused += control.wait_while_paused()
            if control.stop_requested:
                reason = "stopped"
                break
            if not self._train_once(clock, on_update):
                reason = "diverged"
                break
            if self._plan.position >= self._plan.batches:
                self._finish_epoch(clock, on_update)
                if not self._judge_epoch(clock):
                    reason = "diverged"
                    break
        result = self._result(reason, clock)  # first: it reports the epoch in progress, which a restore drops
        if reason == "diverged":
            self._restore()
        self._publish(force=True)
        return result

    def _score_test_split(self, clock: _Clock) -> Score:
        _, reconstruction, kl = clock.time(self._evaluate_function(), self.x_test)
        return Score(float(reconstruction), float(kl))

    def _keep_start(self) -> None:
        """Keep the state this run starts from aside: the state to fall back on.

        Copied eagerly (a few milliseconds) and scored only at the first epoch's end,
        so that nothing more is compiled before the first training call.
        """
        for kept, variable in zip(self._kept_variables, self._restorable_variables()):
            kept.assign(variable)
        epoch = self.epoch if self.epoch_step == 0 else None
        self._kept = Kept(epoch, self.step, None, self.settings.loss)
        first = self._first
        if first is None or first.score is None or first.loss_kind != self.settings.loss:
            self._first = self._kept

    def _score_start(self, clock: _Clock) -> None:
        """Score the state kept at the run's start (its weights, swapped in for a moment)."""
        current = [variable.numpy() for variable in self.model.variables]
        for variable, kept in zip(self.model.variables, self._kept_variables):
            variable.assign(kept)
        score = self._score_test_split(clock)
        for variable, value in zip(self.model.variables, current):
            variable.assign(value)
        scored = replace(self._kept, score=score)
        if self._first is self._kept:
            self._first = scored
        self._kept, self._last_score = scored, score

    def _keep(self, kept: Kept, clock: _Clock) -> None:
        clock.time(self._keep_call)  # timed: its first call traces, which the steady speed leaves out
        self._kept = kept

    def _judge_epoch(self, clock: _Clock) -> bool:
        """False if the epoch just ended exploded; else keep its state aside if it is the best so far.

        Scores are compared at the current KL weight, so that a KL warm-up or a new KL
        weight does not count as an explosion.
        """
        if self._kept.score is None:
            self._score_start(clock)
        kl_weight = float(self._variables.kl_weight_now())
        train = Score(self._last_epoch[1], self._last_epoch[2])
        reference = max(self._first.score.at(kl_weight), self._last_score.at(kl_weight), 1e-12)
        ratio = train.at(kl_weight) / reference
        if not ratio <= EXPLODED_RATIO:
            self._divergence = (self.step, ratio)
            return False
        val = self._last_val
        score = Score(val.reconstruction_loss, val.kl_loss) if val is not None and val.epoch == self.epoch else train
        self._last_score = score
        if score.at(kl_weight) < self._kept.score.at(kl_weight):
            self._keep(Kept(self.epoch, self.step, score, self.settings.loss), clock)
        return True

    def _restore(self) -> None:
        """Put back the state kept aside (weights and optimizer moments); the step count goes on."""
        for variable, kept in zip(self._restorable_variables(), self._kept_variables):
            variable.assign(kept)
        self._plan = None  # the next run starts a fresh epoch

    def _train_once(self, clock: _Clock, on_update) -> bool:
        """One compiled call of up to ``seconds_per_call``; False if the loss stopped being finite."""
        if self._plan is None:
            self._plan = self._new_plan()
        plan = self._plan
        wanted = call_steps(self.settings, self.seconds_per_call)
        if clock.steps == 0:  # the run's first call may compile: keep it short
            wanted = min(wanted, MIN_CALL_STEPS)
        count = min(wanted, plan.batches - plan.position)
        arguments = (plan.indices, plan.sizes, tf.constant(plan.position), tf.constant(count))
        chunk = clock.time(self._train_call, *arguments)
        if bool(chunk.diverged):  # the chunk left its start state: again, step by step up to the bad step
            self._back_up_call()
            chunk = self._replay_function()(*arguments)
            if not self._weights_finite():  # a bad update behind a finite loss: keep the chunk's start
                self._restore_backup()
                chunk = chunk._replace(steps=tf.constant(0), diverged=tf.constant(True))
        steps, diverged = int(chunk.steps), bool(chunk.diverged)
        clock.count(steps)
        self._train_seconds += clock.last_seconds
        if steps:
            sums = (float(chunk.loss_sum), float(chunk.reconstruction_sum), float(chunk.kl_sum),
                    chunk.kl_per_dim_sum.numpy())  # fmt: skip
            plan.sums.add(steps, *sums)
            plan.position += steps
            # A call that compiled says nothing of the speed (it would promise hours): 0, not measured.
            speed = 0.0 if clock.last_compiled else steps / max(clock.last_seconds, 1e-9)
            self._emit_train(steps, sums, speed, float(chunk.kl_weight), on_update)
        if diverged:
            self._divergence = (self.step + 1, None)  # the step whose loss was not finite
        else:
            self._publish()
        return not diverged

    def _weights_finite(self) -> bool:
        return all(np.isfinite(w).all() for w in self.model.get_weights())

    def _restore_backup(self) -> None:
        """Back to the state before the last chunk (the fast loop's replay starts there)."""
        for variable, backup in zip(self._chunk_variables(), self._chunk_start):
            variable.assign(backup)

    def _emit_train(self, steps: int, sums: tuple, speed: float, kl_weight: float, on_update) -> None:
        loss, reconstruction, kl, kl_dims = sums
        record = Record(
            split="train",
            epoch=self.epoch + 1,
            step=self.step,
            loss=loss / steps,
            reconstruction_loss=reconstruction / steps,
            kl_loss=kl / steps,
            kl_weight=kl_weight,
            steps_per_second=speed,
            seconds=self._train_seconds,
        )
        self.history.append(record, kl_dims / steps)
        if on_update is not None:
            on_update(record)

    def _finish_epoch(self, clock: _Clock, on_update) -> None:
        """Close the epoch: keep its mean training losses, then score the test split."""
        self._last_epoch = self._plan.sums.means()
        self.epoch += 1
        self._plan = None
        if not self.validate:
            return
        loss, reconstruction, kl = (float(v) for v in clock.time(self._evaluate_function(), self.x_test))
        self._last_val = Record(
            split="val",
            epoch=self.epoch,
            step=self.step,
            loss=loss,
            reconstruction_loss=reconstruction,
            kl_loss=kl,
            kl_weight=float(self._variables.kl_weight_now()),
            steps_per_second=0.0,
            seconds=self._train_seconds,
        )
        self.history.append(self._last_val)
        if on_update is not None:
            on_update(self._last_val)

    def _result(self, reason: str, clock: _Clock) -> RunResult:
        if self._last_epoch is not None:
            means = self._last_epoch
        else:  # no epoch finished yet: report the part done
            means = self._plan.sums.means() if self._plan is not None else (math.nan,) * 3
        messages = {
            "finished": f"Trained to epoch {self.epoch}.",
            "stopped": f"Stopped at step {self.step:,}, in epoch {self.epoch + 1}.",
        }
        diverged = {}
        if reason == "diverged":
            step, ratio = self._divergence
            kept = self._kept
            diverged = dict(diverged_step=step, loss_ratio=ratio, restored_epoch=kept.epoch, restored_step=kept.step)
            messages["diverged"] = divergence_message(**diverged)
        val = self._last_val
        return RunResult(
            reason=reason,
            message=messages[reason],
            steps=clock.steps,
            epochs=self.epoch,
            seconds=clock.elapsed(),
            steps_per_second=clock.steady_speed(),
            compiler=self.compiler,
            loss=means[0],
            reconstruction_loss=means[1],
            kl_loss=means[2],
            val_loss=None if val is None else val.loss,
            val_reconstruction_loss=None if val is None else val.reconstruction_loss,
            val_kl_loss=None if val is None else val.kl_loss,
            **diverged,
        )


def divergence_message(diverged_step: int, loss_ratio: float | None, restored_epoch: int | None,
                       restored_step: int) -> str:  # fmt: skip
    """What a diverged run did, in words (the page words the same facts through its strings)."""
    if loss_ratio is None:
        what = f"The loss stopped being a finite number at step {diverged_step:,}"
    else:
        times = f"{loss_ratio:,.0f}" if loss_ratio < 1e6 else f"{loss_ratio:.1e}"
        what = f"The loss exploded: by step {diverged_step:,} it had grown {times} times over"
    if restored_step == 0:
        kept = "the initial weights were kept"
    elif restored_epoch is not None:
        kept = f"the weights from the end of epoch {restored_epoch} were restored"
    else:
        kept = f"the weights from step {restored_step:,}, where this run started, were restored"
    return f"{what}; {kept}. Lower the learning rate and train again."


# ---- a trainer's state as plain data: to carry a model on in another process (see worker_core.py) ----


@dataclass
class TrainerState:
    """What a trainer needs to carry on in another process: numpy arrays and plain values, picklable.

    ``carry`` is None for a model that starts with a fresh optimizer (a new model, a reset, a
    reopened run or a crash's last copy); a run's end fills it, so that the next run goes on
    exactly as it would have in the same trainer (optimizer moments, the epoch in progress, the
    shuffling's random state, the state kept against divergence).
    """

    settings: Settings
    weights: list[np.ndarray]  # model.get_weights()
    epoch: int = 0  # epochs completed
    target_epoch: int = 0
    step_offset: int = 0  # steps a loaded model had taken before this optimizer
    weights_version: int = 0
    carry: dict | None = None


def trainer_state(trainer: Trainer) -> TrainerState:
    """``trainer``'s whole state, as numpy (call it between runs, from the thread that runs them)."""
    plan = trainer._plan
    carry = {
        "optimizer": [v.numpy() for v in trainer.optimizer.variables],
        "steps_taken": float(trainer._variables.steps_taken.numpy()),
        "kept_variables": [v.numpy() for v in trainer._kept_variables],
        "kept": trainer._kept, "first": trainer._first, "last_score": trainer._last_score,
        "rng": trainer._rng.bit_generator.state,
        "plan": None if plan is None else (plan.indices.numpy(), plan.sizes.numpy(), plan.position, plan.sums),
        "last_epoch": trainer._last_epoch, "last_val": trainer._last_val, "train_seconds": trainer._train_seconds,
    }  # fmt: skip
    return TrainerState(trainer.settings, trainer.model.get_weights(), trainer.epoch, trainer._target_epoch,
                        trainer._step_offset, trainer._weights_version, carry)  # fmt: skip


def load_trainer_state(trainer: Trainer, state: TrainerState) -> None:
    """Make ``trainer`` (of the same sizes and seed) carry on from ``state``; nothing compiles."""
    require_same_model(trainer.settings, state.settings, "Carrying on a run's state in another trainer")
    trainer.settings = state.settings
    trainer.reset()
    trainer.model.set_weights(state.weights)
    trainer.epoch, trainer._target_epoch, trainer._step_offset = state.epoch, state.target_epoch, state.step_offset
    trainer._variables.steps_before.assign(float(state.step_offset))
    carry = state.carry
    if carry is not None:
        for variable, value in zip(trainer.optimizer.variables, carry["optimizer"]):
            variable.assign(value)
        trainer._take_rates(state.settings)  # the settings' rates, not the restored learning-rate variable's
        trainer._variables.steps_taken.assign(carry["steps_taken"])
        for variable, value in zip(trainer._kept_variables, carry["kept_variables"]):
            variable.assign(value)
        trainer._kept, trainer._first, trainer._last_score = carry["kept"], carry["first"], carry["last_score"]
        trainer._rng.bit_generator.state = carry["rng"]
        if carry["plan"] is not None:
            indices, sizes, position, sums = carry["plan"]
            if indices.shape[1] == state.settings.batch_size:  # a new batch size starts the epoch again
                trainer._plan = _EpochPlan(tf.constant(indices), tf.constant(sizes), sums)
                trainer._plan.position = position
        trainer._last_epoch, trainer._last_val = carry["last_epoch"], carry["last_val"]
        trainer._train_seconds = carry["train_seconds"]
    with trainer._lock:
        trainer._weights_version = state.weights_version
    trainer._publish(force=True)
