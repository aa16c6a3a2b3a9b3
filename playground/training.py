"""The guide's custom training loop (GradientTape + Adam), compiled so that it is fast: running it,
stopping and pausing it, and publishing its weights. The math of a step lives in ``steps.py``.

Each compiled call runs many optimizer steps in a while loop over batches gathered
from data that already sits in device memory, so there is no Python work per step.
Between calls the trainer streams an update and checks for stop and pause requests;
each call first backs up the weights, restored if the loss diverges. One call lasts
about ``SECONDS_PER_CALL``, which bounds both the update rate and the stop latency.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from playground.config import Settings
from playground.data import Dataset
from playground.history import History, Record
from playground.models import ORIGINAL_DIM, build_vae
from playground.steps import StepVariables, evaluate, train_chunk, train_chunk_fast

# Measured on a 2-core CPU (`python -m playground bench` runs both): XLA runs the
# guide's VAE at about 1,800 steps/s and the app's 784-256-8 ELBO VAE at about 510,
# the plain TensorFlow graph at about 1,200 and 370. But XLA first compiles for
# 1.5-2.5 s where the graph traces in 0.7 s, so short runs finish sooner without it.
# "auto" uses XLA for runs of at least XLA_MIN_STEPS steps; True or False force it.
JIT_COMPILE = "auto"
XLA_MIN_STEPS = 2000
SECONDS_PER_CALL = 0.1  # update rate >= 4/s and stop latency well under 0.5 s
PUBLISH_SECONDS = 0.2  # readers poll the weights at most a few times a second
FIRST_CALL_SPEED = 80.0  # steps/s assumed until measured: the first call compiles, keep it short
MIN_CALL_STEPS = 8  # a call slowed by a busy machine must not shrink the next ones to a step each


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per loaded dataset
class TrainingData:
    """A dataset's images as flat tensors in device memory, shareable by many trainers."""

    x_train: tf.Tensor  # [N, 784] float32
    x_test: tf.Tensor  # [M, 784] float32

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> TrainingData:
        flat = (
            np.ascontiguousarray(x.reshape(-1, ORIGINAL_DIM), dtype=np.float32)
            for x in (dataset.x_train, dataset.x_test)
        )
        return cls(*(tf.constant(x) for x in flat))


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


class Control:
    """Stop, pause and resume a trainer from any thread."""

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

    def reset(self) -> None:
        self._stop.clear()
        self._running.set()

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
        # The state before the current call, copied in-graph: restored if the loss diverges.
        self._backup = [tf.Variable(v, trainable=False) for v in self._state_variables()]
        self._train_calls: dict[tuple[str, str], tf.types.experimental.PolymorphicFunction] = {}
        self._evaluate_calls: dict[str, tf.types.experimental.PolymorphicFunction] = {}
        self._train_call = self._train_function("xla" if self.jit_compile is True else "graph")
        self._warming: threading.Thread | None = None

    def warm_up(self) -> None:
        """Compile now what the next Start will call: the training loop of the compiler its run will
        use (and the scoring). A call of zero steps on batches of the plan's shapes: nothing trains."""
        indices = tf.zeros([self.steps_per_epoch, self.settings.batch_size], tf.int32)
        sizes = tf.fill([self.steps_per_epoch], self.settings.batch_size)
        self._train_function(self._compiler_for(self.settings.epochs))(indices, sizes, tf.constant(0), tf.constant(0))
        if self.validate:
            self._evaluate_function()(self.x_test)

    def start_warm_up(self, before: Callable[[], None] | None = None) -> None:
        """``warm_up`` in a background thread (``before`` runs first in it, e.g. to lower its priority);
        ``run`` waits for it, so the compiled calls never race."""
        if self._warming is not None and self._warming.is_alive():
            return

        def work() -> None:
            if before is not None:
                before()
            self.warm_up()

        self._warming = threading.Thread(target=work, name="playground-warm-up", daemon=True)
        self._warming.start()

    @property
    def warm(self) -> bool:
        """Whether a background warm-up has finished (or none was asked for)."""
        return self._warming is None or not self._warming.is_alive()

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
        self.history.clear()
        self._publish(force=True)

    def _take_rates(self, settings: Settings) -> None:
        self.optimizer.learning_rate.assign(settings.learning_rate)
        self._variables.kl_weight.assign(settings.kl_weight)
        self._variables.warmup_steps.assign(float(settings.kl_warmup_steps))
        self.model.kl_weight = settings.kl_weight

    def renew(self, settings: Settings) -> None:
        """Start over with ``settings`` of the same sizes and seed, keeping the compiled functions."""
        if settings.model_key() != self.settings.model_key():
            raise ValueError("A trainer can be renewed only for the same sizes and seed.")
        self.settings = settings
        self.control.reset()
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
        if settings.model_key() != self.settings.model_key():
            raise ValueError("Changing the latent size, intermediate size or seed needs a reset.")
        if settings.batch_size != self.settings.batch_size:
            self._plan = None  # the epoch in progress starts again with the new batches
        self.settings = settings
        self._take_rates(settings)
        self._target_epoch = min(self._target_epoch, self.epoch)

    def compiler_for_run(self) -> str:
        """ "xla" or "graph" for the run about to start (see JIT_COMPILE)."""
        return self._compiler_for(max(self._target_epoch - self.epoch, 0))

    def _compiler_for(self, epochs: int) -> str:
        """The compiler for a run of ``epochs`` more epochs from here (see JIT_COMPILE)."""
        if self.jit_compile != "auto":
            return "xla" if self.jit_compile else "graph"
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

    def _state_variables(self) -> list:
        return [*self.model.variables, *self.optimizer.variables, self._variables.steps_taken]

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
        """Back up the state in-graph, then run one chunk of steps (see ``steps.train_chunk_fast``)."""
        for backup, variable in zip(self._backup, self._state_variables()):
            backup.assign(variable)
        return train_chunk_fast(self.model, self.optimizer, self._variables, self.x_train, indices, sizes, start,
                                count, loss_kind=loss_kind, seed=self.settings.seed)  # fmt: skip

    def _replay_steps(self, indices, sizes, start, count, loss_kind: str):
        """A chunk again, checking each step (``steps.train_chunk``): it stops before the first bad one."""
        return train_chunk(self.model, self.optimizer, self._variables, self.x_train, indices, sizes, start, count,
                           loss_kind=loss_kind, seed=self.settings.seed)  # fmt: skip

    def _replay_function(self):
        """The checked loop for the current loss, made the first time a chunk diverges: a graph, which
        traces in a fraction of XLA's compile time, and divergence is rare."""
        key = ("replay", self.settings.loss)
        if key not in self._train_calls:
            replay = functools.partial(self._replay_steps, loss_kind=self.settings.loss)
            self._train_calls[key] = tf.function(replay, jit_compile=False)
        return self._train_calls[key]

    def _evaluate(self, images, loss_kind: str):
        losses = evaluate(self.model, self._variables, images, loss_kind=loss_kind, seed=self.settings.seed)
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

    def run(self, on_update: Callable[[Record], None] | None = None) -> RunResult:
        """Train until ``settings.epochs`` more epochs are done, or a stop, or divergence.

        After a stop, ``run`` carries on where the stopped run left off, with the
        same model and optimizer state.
        """
        self.control.reset()
        if self._warming is not None:
            self._warming.join()  # its calls share the variables this run is about to train
        if self.epoch >= self._target_epoch:
            self._target_epoch = self.epoch + self.settings.epochs
        self._train_call = self._train_function(self.compiler_for_run())
        clock = _Clock()
        reason = "finished"
        while self.epoch < self._target_epoch:
            clock.paused += self.control.wait_while_paused()
            if self.control.stop_requested:
                reason = "stopped"
                break
            if not self._train_once(clock, on_update):
                reason = "diverged"
                break
            if self._plan.position >= self._plan.batches:
                self._finish_epoch(clock, on_update)
        self._publish(force=True)
        return self._result(reason, clock)

    def _train_once(self, clock: _Clock, on_update) -> bool:
        """One compiled call of up to ``seconds_per_call``; False if the loss diverged."""
        if self._plan is None:
            self._plan = self._new_plan()
        plan = self._plan
        wanted = max(MIN_CALL_STEPS, round(self.seconds_per_call * clock.speed))
        count = min(wanted, plan.batches - plan.position)
        arguments = (plan.indices, plan.sizes, tf.constant(plan.position), tf.constant(count))
        chunk = clock.time(self._train_call, *arguments)
        if bool(chunk.diverged):  # back to the chunk's start, then again step by step up to the bad step
            self._restore_backup()
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
            self._emit_train(steps, sums, steps / max(clock.last_seconds, 1e-9), on_update)
        self._publish(force=bool(diverged))
        return not diverged

    def _weights_finite(self) -> bool:
        return all(np.isfinite(w).all() for w in self.model.get_weights())

    def _restore_backup(self) -> None:
        for variable, backup in zip(self._state_variables(), self._backup):
            variable.assign(backup)

    def _emit_train(self, steps: int, sums: tuple, speed: float, on_update) -> None:
        loss, reconstruction, kl, kl_dims = sums
        record = Record(
            split="train",
            epoch=self.epoch + 1,
            step=self.step,
            loss=loss / steps,
            reconstruction_loss=reconstruction / steps,
            kl_loss=kl / steps,
            kl_weight=float(self._variables.kl_weight_now()),
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
            "diverged": f"The loss stopped being a finite number at step {self.step + 1:,}; the last good "
            "weights were kept. Lower the learning rate and train again.",
        }
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
        )
