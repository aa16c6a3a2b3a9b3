"""What a training worker does, whatever carries its messages: run one job, stream it, obey commands.

A job is plain data (``JobSpec``: the model's whole ``TrainerState`` and the key of its
dataset), so any process can run it. ``WorkerCore.run`` trains it and hands each message
to ``emit``; ``WorkerCore.command`` (from any thread) stops, pauses, resumes or changes
the rates of the job in progress. The messages are the small frozen dataclasses below;
``PROTOCOL.md`` (at the repository's top) lists who sends which. ``workers.py`` carries
them over multiprocessing pipes; a Ray actor can carry them as well.

A worker keeps recycled trainers (one per model shape and dataset) and counts the shapes
it has compiled: TensorFlow keeps memory for every compiled function
(tensorflow/tensorflow#62854), so the host retires a worker that has compiled too many.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from playground.config import Settings
from playground.history import Record
from playground.training import (
    Control,
    RunResult,
    Trainer,
    TrainerState,
    TrainingData,
    load_trainer_state,
    trainer_state,
)

WEIGHTS_SECONDS = 0.5  # a weights snapshot at most this often (the page shows a new version about once a second)
MAX_IDLE_TRAINERS = 4  # recycled trainers a worker keeps (each holds its compiled functions)
MAX_DATASETS = 2  # datasets a worker keeps (the oldest goes first)
DATA_WAIT_SECONDS = 300.0  # how long a job waits for the dataset it asked for


# ---- host -> worker ----


@dataclass(frozen=True)
class JobSpec:
    """One training run: the model to carry on from and the dataset (by key) to train it on."""

    job_id: str
    state: TrainerState
    data_key: str


@dataclass(frozen=True)
class LoadData:
    """A dataset's flat images, sent once per worker (after it asked with ``NeedData``)."""

    key: str
    x_train: np.ndarray  # [N, 784] float32
    x_test: np.ndarray  # [M, 784] float32
    y_train: np.ndarray | None = None  # [N] int32: the labels, which a conditional model trains on
    y_test: np.ndarray | None = None  # [M] int32

    @classmethod
    def of(cls, key: str, data) -> LoadData:
        """The message that carries ``data`` (a ``TrainingData``): its images and, if it has them, its labels."""
        arrays = (data.x_train, data.x_test, data.y_train, data.y_test)
        return cls(key, *(None if x is None else np.asarray(x) for x in arrays))

    @property
    def arrays(self) -> tuple:
        """What ``WorkerCore.add_data`` takes after the key."""
        return self.x_train, self.x_test, self.y_train, self.y_test


@dataclass(frozen=True)
class Command:
    """``action``: "stop", "pause" or "resume" the job ``job_id`` (ignored if it is not the one running)."""

    job_id: str
    action: str


@dataclass(frozen=True)
class Rates:
    """New learning rate, KL weight and warm-up for the job in progress, taken between two compiled calls."""

    job_id: str
    settings: Settings  # same sizes and seed; only the rates are taken


@dataclass(frozen=True)
class Prepare:
    """Build and compile a trainer for this model now, so that its first Start is quick; a trainer held
    already takes the state's settings and compiles only what they need anew (skipped if the worker lacks
    the dataset)."""

    state: TrainerState
    data_key: str


@dataclass(frozen=True)
class Shutdown:
    """The worker exits (after stopping a job in progress)."""


# ---- worker -> host ----


@dataclass(frozen=True)
class NeedData:
    job_id: str
    key: str


@dataclass(frozen=True)
class Compiling:
    """The job waits while the worker compiles a model it was asked to prepare first; ``Started`` follows."""

    job_id: str


@dataclass(frozen=True)
class Started:
    """The job is training (its dataset is there and its trainer ready)."""

    job_id: str
    target_epoch: int
    compiler: str
    compiled: bool  # a new trainer was built for it (its first call compiles)


@dataclass(frozen=True)
class Update:
    """A loss record (train: a compiled call's mean, with the KL per dimension; val: an epoch's end) and progress."""

    job_id: str
    record: Record
    kl_per_dim: np.ndarray | None
    epoch: int  # epochs completed
    epoch_step: int
    step: int


@dataclass(frozen=True)
class Weights:
    """A copy of the model's weights (``model.get_weights()`` order), at most every ``WEIGHTS_SECONDS``."""

    job_id: str
    version: int
    step: int
    weights: list[np.ndarray]


@dataclass(frozen=True)
class Paused:
    job_id: str
    paused: bool


@dataclass(frozen=True)
class Finished:
    """The run ended (finished, stopped or diverged: ``result.reason``); ``state`` carries the model on."""

    job_id: str
    result: RunResult
    state: TrainerState


@dataclass(frozen=True)
class Failed:
    """The run raised: ``error`` says what; the model is the last ``Weights`` sent."""

    job_id: str
    error: str


@dataclass(frozen=True)
class Health:
    """Sent when a worker is ready and after every job: what the host retires it by."""

    pid: int
    models: int  # trainers (model shapes) this worker has built
    rss_mb: float


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class WorkerCore:
    """Runs jobs one at a time; ``command`` and ``add_data`` may be called from other threads."""

    def __init__(self, max_idle_trainers: int = MAX_IDLE_TRAINERS, max_datasets: int = MAX_DATASETS):
        self.max_idle_trainers = max_idle_trainers
        self.max_datasets = max_datasets
        self.models = 0  # trainers built
        self._lock = threading.Condition()
        self._data: OrderedDict[str, TrainingData] = OrderedDict()
        self._idle: list[tuple[str, Trainer]] = []  # (data key, trainer)
        self._job_id: str | None = None
        self._control: Control | None = None
        self._rates: Settings | None = None
        self._stop_waiting = False
        self._early: dict[str, list] = {}  # commands that came before their job began (a quick Stop)

    # data

    def has_data(self, key: str) -> bool:
        with self._lock:
            return key in self._data

    def add_data(self, key: str, x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray | None = None,
                 y_test: np.ndarray | None = None) -> None:  # fmt: skip
        import tensorflow as tf

        labels = (None if y is None else tf.constant(np.asarray(y, np.int32)) for y in (y_train, y_test))
        data = TrainingData(tf.constant(np.asarray(x_train, np.float32)), tf.constant(np.asarray(x_test, np.float32)),
                            *labels)  # fmt: skip
        with self._lock:
            self._data[key] = data
            self._data.move_to_end(key)
            while len(self._data) > self.max_datasets:
                gone, _ = self._data.popitem(last=False)
                self._idle = [(k, t) for k, t in self._idle if k != gone]
            self._lock.notify_all()

    # commands

    def command(self, message: Command | Rates) -> None:
        """Stop, pause, resume or new rates for the job in progress (from any thread)."""
        with self._lock:
            if message.job_id != self._job_id:
                early = self._early.setdefault(message.job_id, [])
                early.append(message)
                while len(self._early) > 16:
                    self._early.pop(next(iter(self._early)))
                return
            if isinstance(message, Rates):
                self._rates = message.settings
            elif message.action == "stop":
                self._stop_waiting = True
                self._control.stop()
                self._lock.notify_all()
            elif message.action == "pause":
                self._control.pause()
            elif message.action == "resume":
                self._control.resume()

    def stop_all(self) -> None:
        """Stop the job in progress, if any (a shutdown)."""
        with self._lock:
            job_id = self._job_id
        if job_id is not None:
            self.command(Command(job_id, "stop"))

    def health(self) -> Health:
        return Health(os.getpid(), self.models, rss_mb())

    # the job

    def run(self, spec: JobSpec, emit: Callable[[object], None]) -> None:
        """Train ``spec``, sending its messages to ``emit``; ends with ``Finished`` or ``Failed``."""
        control = Control()
        emit = _serialised(emit)  # the pause watcher's thread emits too
        with self._lock:
            self._job_id, self._control, self._rates, self._stop_waiting = spec.job_id, control, None, False
            early = self._early.pop(spec.job_id, [])
        for message in early:
            self.command(message)
        try:
            data = self._wait_for_data(spec, emit)
            if data is None:
                emit(Failed(spec.job_id, "The training process never received its dataset."))
                return
            trainer, compiled = self._trainer(spec.state, spec.data_key, data)
            self._train(spec, trainer, compiled, control, emit)
        except Exception as error:  # the host says so on the page; the worker lives on
            emit(Failed(spec.job_id, f"{type(error).__name__}: {error}"))
        finally:
            with self._lock:
                self._job_id = self._control = None

    def prepare(self, state: TrainerState, data_key: str) -> None:
        """Build and warm up a trainer for ``state`` (between jobs), kept with the recycled ones. A trainer
        held already takes the state's settings and compiles what they need that it has not compiled yet
        (a new loss, batch size, or the other compiler for a new run length); otherwise this costs ms."""
        data = self._data.get(data_key)
        if data is None:
            return
        trainer, _ = self._trainer(state, data_key, data)
        trainer.warm_up()
        self._keep(data_key, trainer)

    def _wait_for_data(self, spec: JobSpec, emit) -> TrainingData | None:
        with self._lock:
            if spec.data_key not in self._data:
                emit(NeedData(spec.job_id, spec.data_key))
            deadline = time.monotonic() + DATA_WAIT_SECONDS
            while spec.data_key not in self._data and not self._stop_waiting and time.monotonic() < deadline:
                self._lock.wait(0.5)
            data = self._data.get(spec.data_key)
            if data is not None:
                self._data.move_to_end(spec.data_key)
            return data

    def _trainer(self, state: TrainerState, data_key: str, data: TrainingData) -> tuple[Trainer, bool]:
        """A recycled trainer of the state's sizes and seed on this dataset, or a new one (which compiles)."""
        key = state.settings.model_key()
        with self._lock:
            found = next((pair for pair in self._idle if pair[0] == data_key and pair[1].settings.model_key() == key),
                         None)  # fmt: skip
            if found is not None:
                self._idle.remove(found)
        if found is not None:
            trainer, compiled = found[1], False
        else:
            trainer, compiled = Trainer(state.settings, data), True
            self.models += 1
        load_trainer_state(trainer, state)
        return trainer, compiled

    def _train(self, spec: JobSpec, trainer: Trainer, compiled: bool, control: Control, emit) -> None:
        job_id = spec.job_id
        if trainer.epoch >= trainer.target_epoch:  # the rule of Trainer.run, known before it starts
            trainer._target_epoch = trainer.epoch + trainer.settings.epochs
        emit(Started(job_id, trainer.target_epoch, trainer.compiler_for_run(), compiled))
        sent = {"version": trainer.weights()[0], "at": 0.0, "paused": False}

        def on_update(record: Record) -> None:
            with self._lock:
                rates, self._rates = self._rates, None
            if rates is not None:
                trainer.settings = trainer.settings.replace(learning_rate=rates.learning_rate,
                                                            kl_weight=rates.kl_weight,
                                                            kl_warmup_steps=rates.kl_warmup_steps)  # fmt: skip
                trainer._take_rates(trainer.settings)
            kl = trainer.history.kl_per_dim if record.split == "train" else None
            emit(Update(job_id, record, kl, trainer.epoch, trainer.epoch_step, trainer.step))
            version, weights = trainer.weights()
            now = time.monotonic()
            if version != sent["version"] and now - sent["at"] >= WEIGHTS_SECONDS:
                emit(Weights(job_id, version, trainer.step, weights))
                sent.update(version=version, at=now)
            trainer.history.clear()  # the host keeps the history; the worker's would only grow

        watcher = threading.Thread(target=self._watch_pause, args=(job_id, control, emit), daemon=True)
        watcher.start()
        try:
            result = trainer.run(on_update=on_update, control=control)
        finally:
            with self._lock:
                self._job_id = None
                self._lock.notify_all()
            watcher.join()
        state = trainer_state(trainer)
        self._keep(spec.data_key, trainer)
        emit(Finished(job_id, result, state))

    def _watch_pause(self, job_id: str, control: Control, emit) -> None:
        """Tell the host when the run is paused or resumed (the loop blocks while paused)."""
        paused = False
        with self._lock:
            while self._job_id == job_id:
                if control.paused != paused:
                    paused = control.paused
                    emit(Paused(job_id, paused))
                self._lock.wait(0.05)

    def _keep(self, data_key: str, trainer: Trainer) -> None:
        with self._lock:
            self._idle.insert(0, (data_key, trainer))
            del self._idle[self.max_idle_trainers :]


def _serialised(emit: Callable[[object], None]) -> Callable[[object], None]:
    lock = threading.Lock()

    def send(message: object) -> None:
        with lock:
            emit(message)

    return send
