"""Training in worker processes: a pool of warm workers, and the server's face of a model trained there.

TensorFlow keeps memory for every function it compiles (tensorflow/tensorflow#62854),
and a native crash takes its whole process down. So the server trains nothing itself:
each training runs in a worker process (a fresh Python, started once and kept warm, since
importing TensorFlow takes seconds) that runs ``worker_core.WorkerCore``. A worker is
retired between jobs, never during one, once it has built more than ``max_models``
trainers or its memory passes ``max_mb``; a fresh one takes its place.

``RemoteTrainer`` is what the workspace holds instead of a ``Trainer``: the model's
state (``TrainerState``), its history, progress and latest weights, kept up to date by
the messages of the job running it; its ``run(control)`` has ``Trainer.run``'s
signature, so ``jobs.TrainingJob`` runs either. Workers exit when the server does:
at exit (``atexit``), when their pipe closes, or when their parent process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from playground.config import Settings, require_same_model
from playground.history import History
from playground.models import VariationalAutoEncoder, build_vae
from playground.training import Control, RunResult, TrainerState, TrainingData
from playground.worker_core import (
    Command,
    Compiling,
    Failed,
    Finished,
    Health,
    JobSpec,
    LoadData,
    NeedData,
    Paused,
    Prepare,
    Rates,  # fmt: skip
    Shutdown,
    Started,
    Update,
    Weights,
    WorkerCore,
)

log = logging.getLogger("playground")

MAX_MODELS_ENV = "PLAYGROUND_WORKER_MAX_MODELS"
MAX_MB_ENV = "PLAYGROUND_WORKER_MAX_MB"
# Measured (README, "Training in worker processes"): a worker holds about 780 MB once TensorFlow has
# trained its first model on the bundled sample, and each new model shape adds about 22 MB.
DEFAULT_MAX_MODELS = 12
DEFAULT_MAX_MB = 2000
TRAINING_NICENESS = 10  # workers run below the web server's priority
START_SECONDS = 300.0  # a new worker has this long to import TensorFlow and say it is ready (a loaded machine: minutes)
HEALTH_SECONDS = 10.0  # after a job, the worker's health report comes within this
MAX_PENDING_PREPARATIONS = 4  # models waiting for a free worker to compile them (the newest kept)
POLL_SECONDS = 0.05  # how often a job's thread looks at its control while waiting for messages


def limit_from_env(name: str, default: int) -> int:
    """A positive whole number from the environment variable ``name`` (``default`` if unset)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1 (got {raw!r}).")
    return int(raw)


# ---- the worker process ----


class JobQueue:
    """A worker's queue of ``JobSpec`` and ``Prepare`` messages (``None``: exit). A ``Prepare`` with a later
    ``Prepare`` for the same model queued behind it is skipped: the later one has the settings wanted now
    (a page opened with the default settings, then set to a short run before its worker was free, must
    not make Start wait for a compile of the loop it no longer uses). A job queued behind a ``Prepare`` of
    its own model does not skip it: each settings change sends one, so it has the job's settings, and the
    job then finds its trainer compiled."""

    def __init__(self):
        self._items: deque = deque()
        self._ready = threading.Condition()
        self._taken_prepare = False  # the item last taken is a Prepare, not yet done

    def put(self, item) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def get(self):
        with self._ready:
            self._ready.wait_for(lambda: self._items)
            item = self._items.popleft()
            self._taken_prepare = isinstance(item, Prepare)
            return item

    def done(self) -> None:
        """The item last taken has been dealt with."""
        with self._ready:
            self._taken_prepare = False

    def preparing(self) -> bool:
        """Whether a ``Prepare`` is queued or being compiled (a job put now would wait behind it)."""
        with self._ready:
            return self._taken_prepare or any(isinstance(item, Prepare) for item in self._items)

    def superseded(self, prepare: Prepare) -> bool:
        key = (prepare.state.settings.model_key(), prepare.data_key)
        with self._ready:
            return any(isinstance(item, Prepare) and (item.state.settings.model_key(), item.data_key) == key
                       for item in self._items)  # fmt: skip


def worker_main(conn, parent_pid: int) -> None:
    """A worker process's life: run the jobs the pipe brings until the server goes."""
    with contextlib.suppress(OSError):
        os.nice(TRAINING_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the server's terminal is the server's to handle
    core = WorkerCore()
    jobs = JobQueue()
    send_lock = threading.Lock()

    def send(message) -> None:
        with send_lock, contextlib.suppress(OSError, ValueError):
            conn.send(message)

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the server is gone
                message = Shutdown()
            if isinstance(message, Prepare):
                jobs.put(message)
            elif isinstance(message, JobSpec):
                if jobs.preparing():  # it waits behind a compile: the page says so, not "starting"
                    send(Compiling(message.job_id))
                jobs.put(message)
            elif isinstance(message, LoadData):
                core.add_data(message.key, *message.arrays)
            elif isinstance(message, (Command, Rates)):
                core.command(message)
            elif isinstance(message, Shutdown):
                core.stop_all()
                jobs.put(None)
                return

    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        core.stop_all()  # the server died without closing the pipe: stop, and go
        jobs.put(None)
        time.sleep(10.0)
        os._exit(0)

    threading.Thread(target=read, name="playground-worker-read", daemon=True).start()
    threading.Thread(target=watch_parent, name="playground-worker-parent", daemon=True).start()
    send(core.health())
    while (job := jobs.get()) is not None:
        if isinstance(job, Prepare):
            try:
                if not jobs.superseded(job):
                    core.prepare(job.state, job.data_key)
            finally:
                jobs.done()
            continue
        core.run(job, send)
        send(core.health())
    conn.close()


# ---- the server's side of one worker ----


class WorkerDied(Exception):
    """A worker process ended (killed, crashed) or its pipe broke."""

    def __init__(self, exitcode: int | None):
        super().__init__(f"worker exited with {exitcode}")
        self.exitcode = exitcode


def how_it_ended(exitcode: int | None) -> str:
    """A worker's end in words: "killed by signal 9 (SIGKILL)", "exit code 1"."""
    if exitcode is None:
        return "its connection broke"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {-exitcode} ({signal.Signals(-exitcode).name})"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerProcess:
    """One worker process and the server's end of its pipe (one job's thread talks to it at a time).

    Started as ``python -m playground.workers FD PID`` rather than by ``multiprocessing``'s spawn,
    which would import the server's main module again in the child: under Streamlit that is the
    page script itself.
    """

    def __init__(self):
        self._conn, child = multiprocessing.Pipe()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        command = [sys.executable, "-m", "playground.workers", str(child.fileno()), str(os.getpid())]
        self.process = subprocess.Popen(command, pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
        child.close()
        self._send_lock = threading.Lock()
        self.health: Health | None = None
        self.holds: list[tuple] = []  # (model key, data key) of its recent trainers, newest first
        self.data_keys: set[str] = set()  # datasets sent to it

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def join(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, message) -> None:
        with self._send_lock:
            try:
                self._conn.send(message)
            except (OSError, ValueError):
                raise WorkerDied(self.exitcode) from None

    def receive(self, timeout: float):
        """The next message, or None after ``timeout``; WorkerDied if the process is gone."""
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            pass
        else:
            if self.alive():
                return None
        self.join(1.0)
        raise WorkerDied(self.exitcode)

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        self.health = self._expect(Health, timeout)

    def _expect(self, kind, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(min(1.0, deadline - time.monotonic()))
            if isinstance(message, kind):
                return message
        raise WorkerDied(None)

    def finish_job(self) -> Health:
        self.health = self._expect(Health, HEALTH_SECONDS)
        return self.health

    def close(self, timeout: float = 5.0) -> None:
        """Ask it to exit; kill it if it has not within ``timeout``."""
        with contextlib.suppress(WorkerDied):
            self.send(Shutdown())
        self.join(timeout)
        if self.alive():
            self.process.kill()
            self.join(5.0)
        self._conn.close()


class WorkerPool:
    """Warm worker processes for a server's trainings (shared by every ``Supervisor`` of the process)."""

    def __init__(self, max_models: int | None = None, max_mb: int | None = None):
        self.max_models = limit_from_env(MAX_MODELS_ENV, DEFAULT_MAX_MODELS) if max_models is None else max_models
        self.max_mb = limit_from_env(MAX_MB_ENV, DEFAULT_MAX_MB) if max_mb is None else max_mb
        self._lock = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._sending = 0  # idle workers taken out for a moment by ``prepare``
        self._warm = 0  # idle workers to keep ready
        # Models to compile as soon as a worker is free: a page opened while the workers still import
        # TensorFlow, or while all of them train, is prepared when one is ready (the latest state per model).
        self._pending: OrderedDict[tuple, tuple[TrainerState, TrainingData]] = OrderedDict()
        self._closed = False
        self.retired = 0  # workers retired for their memory or models (for the log and the tests)

    def keep_warm(self, count: int) -> None:
        """Keep at least ``count`` idle workers started (in the background)."""
        with self._lock:
            self._warm = max(self._warm, count)
        self._top_up()

    def _top_up(self) -> None:
        with self._lock:
            missing = 0 if self._closed else (self._warm - len(self._idle) - self._starting - self._sending
                                              - len(self._busy))  # fmt: skip
            self._starting += max(missing, 0)
        for _ in range(max(missing, 0)):
            threading.Thread(target=self._start_idle, name="playground-worker-start", daemon=True).start()

    def _start_idle(self) -> None:
        try:
            worker = self._new()
        except Exception:
            if not self._closed:  # at exit, a worker still starting is ended on purpose
                log.exception("a training worker did not start")
            worker = None
        with self._lock:
            self._starting -= 1
            if worker is not None and not self._closed:
                self._idle.append(worker)
                worker = None
            self._lock.notify_all()
        if worker is not None:
            worker.close()
        else:
            self._prepare_pending()

    def _new(self) -> WorkerProcess:
        worker = WorkerProcess()
        try:
            worker.wait_ready()
        except WorkerDied:
            worker.close(0.1)
            raise
        return worker

    def checkout(self, holds: tuple | None = None) -> WorkerProcess:
        """An idle worker (one holding a trainer for ``holds`` first), waiting for one that is starting,
        or a new one."""
        with self._lock:
            if self._closed:
                raise RuntimeError("The server is shutting down.")
            if not self._idle and (self._starting or self._sending):
                self._lock.wait_for(lambda: self._idle or not (self._starting or self._sending), START_SECONDS)
            chosen = next((w for w in self._idle if holds in w.holds), None)
            if chosen is None and self._idle:
                chosen = self._idle[0]
            if chosen is not None:
                self._idle.remove(chosen)
                self._busy.add(chosen)
        if chosen is not None and not chosen.alive():  # died while idle
            with self._lock:
                self._busy.discard(chosen)
            chosen.close(0.1)
            return self.checkout(holds)
        if chosen is None:
            chosen = self._new()
            with self._lock:
                self._busy.add(chosen)
        return chosen

    def prepare(self, state: TrainerState, data: TrainingData) -> None:
        """Have an idle worker build and compile a trainer for ``state`` now, so that Start is quick."""
        data_key = key_of(data)
        holds = (state.settings.model_key(), data_key)
        with self._lock:
            worker = next((w for w in self._idle if holds in w.holds), None) or next(iter(self._idle), None)
            if worker is None:  # every worker is starting or training: the first one free does it
                if not self._closed:
                    self._pending[holds] = (state, data)
                    self._pending.move_to_end(holds)
                    while len(self._pending) > MAX_PENDING_PREPARATIONS:
                        self._pending.popitem(last=False)
                return
            self._idle.remove(worker)  # out of checkout's reach while the messages go (a job waits for it)
            self._sending += 1
        # Sent even to a worker that holds this model: its loss, batch size or run length may have changed what
        # Start will call (a run of 1,000 epochs uses XLA, a short one the graph); compiled already, it costs ms.
        try:
            with contextlib.suppress(WorkerDied):
                if data_key not in worker.data_keys:
                    worker.send(LoadData.of(data_key, data))
                    worker.data_keys.add(data_key)
                worker.send(Prepare(state, data_key))
                if holds not in worker.holds:
                    worker.holds.insert(0, holds)
        finally:
            with self._lock:
                self._sending -= 1
                closed = self._closed
                if not closed:
                    self._idle.insert(0, worker)  # a worker that died meanwhile is found out by checkout
                self._lock.notify_all()
            if closed:  # the server shut down while the messages went: this one was not in its lists
                worker.close()

    def _prepare_pending(self) -> None:
        """Preparations asked for while no worker was free, now that one is (in the order they were asked)."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), OrderedDict()
        for state, data in pending:
            self.prepare(state, data)

    def checkin(self, worker: WorkerProcess) -> None:
        """A job ended normally: keep the worker, or retire it if it holds too much (and start another)."""
        try:
            health = worker.finish_job()
        except WorkerDied:
            self.discard(worker)
            return
        too_big = health.models > self.max_models or health.rss_mb > self.max_mb
        with self._lock:
            self._busy.discard(worker)
            keep = not too_big and not self._closed
            if keep:
                self._idle.insert(0, worker)
            self.retired += too_big
            self._lock.notify_all()
        if keep:
            self._prepare_pending()
        else:
            if too_big:
                log.info("retiring training worker %s: %d models, %.0f MB", worker.pid, health.models, health.rss_mb)
            threading.Thread(target=worker.close, name="playground-worker-retire", daemon=True).start()
        self._top_up()

    def discard(self, worker: WorkerProcess) -> None:
        """A worker that died or cannot be trusted: end it, start a replacement."""
        with self._lock:
            self._busy.discard(worker)
            self._lock.notify_all()
        worker.close(1.0)
        self._top_up()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in (*self._idle, *self._busy) if w.pid is not None]

    def shutdown(self) -> None:
        """Stop every worker (a job in progress stops first) and start no more."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
        for worker in workers:
            with contextlib.suppress(WorkerDied):
                worker.send(Shutdown())
        for worker in workers:
            worker.close()


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def pool() -> WorkerPool:
    """This process's worker pool, made on first use and shut down at exit."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool()
            atexit.register(_pool.shutdown)
        return _pool


def shutdown() -> None:
    """Stop this process's workers now (a server stopping; the next ``pool()`` starts a fresh pool)."""
    global _pool
    with _pool_lock:
        current, _pool = _pool, None
    if current is not None:
        current.shutdown()


# ---- datasets by content ----

_data_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def key_of(data: TrainingData) -> str:
    """A key that names a dataset's content, so that a worker keeps one copy whoever loaded it."""
    key = _data_keys.get(data)
    if key is None:
        crc = 0
        for x in (data.x_train, data.x_test, data.y_train, data.y_test):  # labels too: a conditional model reads them
            if x is not None:
                crc = zlib.crc32(np.ascontiguousarray(np.asarray(x)).view(np.uint8), crc)
        key = _data_keys[data] = f"{int(data.x_train.shape[0])}+{int(data.x_test.shape[0])}:{crc:08x}"
    return key


# ---- the server's face of a model trained in workers ----


class TrainingCrashed(RuntimeError):
    """A worker ended in the middle of a job (the model went back to the last weights received)."""

    def __init__(self, exitcode: int | None, kept_step: int | None):
        self.exitcode = exitcode  # negative: the signal that ended it; None: the pipe broke
        how = how_it_ended(exitcode)
        self.kept_step = kept_step  # None: the weights the model had before this run
        kept = ("the weights it had when this run started" if kept_step is None
                else f"the weights from step {kept_step:,}, the last copy the server received")  # fmt: skip
        super().__init__(f"The training process stopped unexpectedly ({how}). The model keeps {kept}; "
                         "Start carries on from them in a fresh process.")  # fmt: skip


class TrainingError(RuntimeError):
    """A job raised inside its worker (the worker lives on)."""


@dataclass
class _Progress:
    epoch: int = 0
    target_epoch: int = 0
    step: int = 0
    epoch_step: int = 0


class RemoteTrainer:
    """What the server keeps of a model trained in worker processes; the parts of ``Trainer`` the
    workspace and the page read (history, progress, published weights) and ``run``."""

    def __init__(self, settings: Settings, data: TrainingData, workers: WorkerPool):
        self.settings = settings
        self.data = data
        self.workers = workers
        self.data_key = key_of(data)
        self.control = Control()
        self.history = History()
        self.compiler = "graph"
        self.built_for_run: bool | None = None  # whether this run waits for its worker to build/compile a trainer
        self.worker_pid: int | None = None  # the process running this model's training, while it runs
        self._lock = threading.Lock()
        self._steps_per_epoch_rows = int(data.x_train.shape[0])
        self.reset()

    # the model's state

    def reset(self) -> None:
        """New initial weights (same seed), a fresh optimizer, an empty history."""
        version = self._version() + 1 if hasattr(self, "_weights") else 0  # readers see a new version
        self._set_state(TrainerState(self.settings, initial_weights(self.settings), weights_version=version),
                        _Progress())  # fmt: skip
        self.history.clear()

    def renew(self, settings: Settings) -> None:
        require_same_model(self.settings, settings, "Renewing a trainer")
        self.settings = settings
        self.reset()

    def adopt(self, weights: list[np.ndarray], history: History | None = None) -> None:
        """Continue from saved weights (and their history) with a fresh optimizer."""
        self.history.clear()
        records = history.records() if history is not None else []
        for record in records:
            self.history.append(record)
        epoch = max((r.epoch for r in records if r.split == "val"), default=0)
        step = max((r.step for r in records), default=0)
        state = TrainerState(self.settings, [np.asarray(w) for w in weights], epoch=epoch, step_offset=step,
                             weights_version=self._version() + 1)  # fmt: skip
        self._set_state(state, _Progress(epoch, 0, step, 0))

    def apply(self, settings: Settings) -> None:
        """New loss, rates, batch size or epochs for the same model (between runs)."""
        require_same_model(self.settings, settings, "Changing the settings of a trainer")
        with self._lock:
            state = self._state
            self._state = TrainerState(settings, state.weights, state.epoch, min(state.target_epoch, state.epoch),
                                       state.step_offset, state.weights_version, state.carry)  # fmt: skip
            self._progress.target_epoch = min(self._progress.target_epoch, self._progress.epoch)
            if settings.batch_size != self.settings.batch_size:
                self._progress.epoch_step = 0
        self.settings = settings
        self.prepare()

    def prepare(self) -> None:
        """Have a worker compile this model's trainer now (so the first Start is quick)."""
        with contextlib.suppress(Exception):
            self.workers.prepare(self._state, self.data)

    def _set_state(self, state: TrainerState, progress: _Progress) -> None:
        with self._lock:
            self._state, self._progress = state, progress
            self._weights = (state.weights_version, state.weights)

    def _version(self) -> int:
        with self._lock:
            return self._weights[0]

    @property
    def state(self) -> TrainerState:
        with self._lock:
            return self._state

    @property
    def epoch(self) -> int:
        return self._progress.epoch

    @property
    def target_epoch(self) -> int:
        return self._progress.target_epoch

    @property
    def step(self) -> int:
        return self._progress.step

    @property
    def epoch_step(self) -> int:
        return self._progress.epoch_step

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self._steps_per_epoch_rows / self.settings.batch_size)

    def weights(self) -> tuple[int, list[np.ndarray]]:
        """(version, the latest weights the server has): safe from any thread."""
        with self._lock:
            return self._weights

    @property
    def model(self) -> VariationalAutoEncoder:
        """A Keras model with the latest weights (built on each call: for saving, not for training)."""
        model = build_vae(self.settings)
        model.set_weights(self.weights()[1])
        return model

    @property
    def compiling(self) -> bool:
        """Whether the run in progress waits for a compile: its worker had to build a new trainer, or is
        compiling one it was asked to prepare before this job came."""
        return bool(self.built_for_run)

    # a run in a worker

    def run(self, on_update=None, control: Control | None = None) -> RunResult:
        """Train in a worker until the run ends; the same contract as ``Trainer.run``."""
        control = self.control if control is None else control
        job_id = uuid.uuid4().hex
        spec = JobSpec(job_id, self.state, self.data_key)
        self.built_for_run = None  # known once the worker says it started
        if self._progress.epoch >= self._progress.target_epoch:
            self._progress.target_epoch = self._progress.epoch + self.settings.epochs
        holds = (self.settings.model_key(), self.data_key)
        worker = self.workers.checkout(holds)
        self.worker_pid = worker.pid
        started_weights = (*self.weights(), self._progress.step)
        received: int | None = None  # the step of the last weights received in this run
        try:
            worker.send(spec)
            worker.holds = [holds, *(h for h in worker.holds if h != holds)][:4]
            stop_sent, paused_sent = False, False
            while True:
                if control.stop_requested and not stop_sent:
                    worker.send(Command(job_id, "stop"))
                    stop_sent = True
                elif control.paused != paused_sent and not stop_sent:
                    paused_sent = control.paused
                    worker.send(Command(job_id, "pause" if paused_sent else "resume"))
                message = worker.receive(POLL_SECONDS)
                if message is None or getattr(message, "job_id", job_id) != job_id:
                    continue
                if isinstance(message, NeedData):
                    worker.data_keys.add(message.key)
                    worker.send(LoadData.of(message.key, self.data))
                elif isinstance(message, Compiling):
                    self.built_for_run = True  # compiling what the worker was asked to prepare; Started follows
                elif isinstance(message, Started):
                    self._progress.target_epoch, self.compiler = message.target_epoch, message.compiler
                    self.built_for_run = message.compiled
                elif isinstance(message, Update):
                    self._take_update(message, on_update)
                elif isinstance(message, Weights):
                    with self._lock:
                        self._weights = (message.version, message.weights)
                    received = message.step
                elif isinstance(message, Paused):
                    pass
                elif isinstance(message, Finished):
                    self._finish(message)
                    self.workers.checkin(worker)
                    return message.result
                elif isinstance(message, Failed):
                    self.workers.checkin(worker)
                    self._fall_back(started_weights, received)
                    raise TrainingError(message.error)
        except WorkerDied as died:
            self.workers.discard(worker)
            self._fall_back(started_weights, received)
            raise TrainingCrashed(died.exitcode, received) from None

    def _take_update(self, message: Update, on_update) -> None:
        self.history.append(message.record, message.kl_per_dim)
        progress = self._progress
        progress.epoch, progress.epoch_step, progress.step = message.epoch, message.epoch_step, message.step
        if on_update is not None:
            on_update(message.record)

    def _finish(self, message: Finished) -> None:
        state = message.state
        plan = state.carry.get("plan") if state.carry else None
        progress = _Progress(state.epoch, state.target_epoch, self._progress.step, 0 if plan is None else plan[2])
        self._set_state(state, progress)

    def _fall_back(self, started: tuple[int, list[np.ndarray], int], received: int | None) -> None:
        """After a crash or an error: the last weights received (or those the run started from), a fresh
        optimizer, and the history up to those weights."""
        version, weights = self.weights()[:2] if received is not None else started[:2]
        limit = received if received is not None else started[2]
        records = [r for r in self.history.records() if r.step <= limit]
        kl = self.history.kl_per_dim
        self.history.clear()
        for index, record in enumerate(records):
            self.history.append(record, kl if index == len(records) - 1 else None)  # the KL bars stay
        epoch = max((r.epoch for r in records if r.split == "val"), default=0)
        step = max((r.step for r in records), default=0)
        state = TrainerState(self.settings, weights, epoch=epoch, target_epoch=self._progress.target_epoch,
                             step_offset=step, weights_version=version + 1)  # fmt: skip
        self._set_state(state, _Progress(epoch, self._progress.target_epoch, step, 0))


_initial_cache: dict[tuple, list[np.ndarray]] = {}


def initial_weights(settings: Settings) -> list[np.ndarray]:
    """A model's seeded initial weights (the same as ``build_vae(settings)``'s), a few shapes remembered."""
    key = settings.model_key()
    if key not in _initial_cache:
        if len(_initial_cache) >= 8:
            _initial_cache.pop(next(iter(_initial_cache)))
        _initial_cache[key] = build_vae(settings).get_weights()
    return _initial_cache[key]


if __name__ == "__main__":  # python -m playground.workers FD PARENT_PID: a worker (see WorkerProcess)
    from multiprocessing.connection import Connection

    worker_main(Connection(int(sys.argv[1])), int(sys.argv[2]))
