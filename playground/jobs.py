"""Training jobs, a cap on how many run at once, and cleanup of abandoned owners.

A ``Supervisor`` is shared by every user of one server: it hands out at most
``max_workers`` training slots (the rest queue, first come first served) and,
given a way to tell whether an owner is still connected, closes what an
abandoned owner left behind. A ``TrainingJob`` runs one ``run`` of a trainer inside
a slot, from a daemon thread of its own. Where the training itself runs is the one
setting ``PLAYGROUND_TRAINING``: ``processes`` (the default: worker processes, see
``workers.py``; the trainer is a ``RemoteTrainer``) or ``threads`` (in this process;
a ``Trainer``). Nothing here knows about Streamlit.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

from playground.config import Settings
from playground.training import Control, RunResult, Trainer, TrainingData
from playground.workers import TRAINING_NICENESS, RemoteTrainer, TrainingCrashed, TrainingError, pool

MODE_ENV = "PLAYGROUND_TRAINING"
MODES = ("processes", "threads")

MAX_WORKERS_ENV = "PLAYGROUND_MAX_WORKERS"
# A training saturates about one core, and the web server needs some CPU too.
DEFAULT_MAX_WORKERS = max(1, (os.cpu_count() or 2) // 2)
# Idle trainers kept for reuse: each new trainer costs TensorFlow memory it never gives back.
MAX_IDLE_TRAINERS = 4
# An owner that stays disconnected this long is gone (a reconnecting tab is back sooner).
ABANDON_SECONDS = float(os.environ.get("PLAYGROUND_ABANDON_SECONDS", "20"))


def lower_priority() -> None:
    """Lower the calling thread's CPU priority to the workers' (Linux threads have their own; others:
    nothing): training is background work, pages, sliders and canvases of everyone on the server come first.

    Threads this one starts inherit it, XLA's thread pool among them when the
    first XLA training creates it.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TRAINING_NICENESS)


def mode_from_env() -> str:
    """Where trainings run, from ``PLAYGROUND_TRAINING``: "processes" (default) or "threads"."""
    raw = os.environ.get(MODE_ENV, "").strip().lower() or MODES[0]
    if raw not in MODES:
        raise ValueError(f"{MODE_ENV} must be 'processes' or 'threads' (got {raw!r}).")
    return raw


def max_workers_from_env() -> int:
    """The worker cap from ``PLAYGROUND_MAX_WORKERS``, or the default for this machine's cores."""
    raw = os.environ.get(MAX_WORKERS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_WORKERS
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{MAX_WORKERS_ENV} must be a whole number of at least 1 (got {raw!r}).")
    return int(raw)


class Supervisor:
    """Training slots for everyone on this server, and the janitor for abandoned owners."""

    def __init__(self, max_workers: int | None = None, mode: str | None = None):
        self.max_workers = max_workers_from_env() if max_workers is None else max_workers
        self.mode = mode_from_env() if mode is None else mode
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (got {self.mode!r}).")
        if self.mode == "processes":
            pool().keep_warm(self.max_workers)  # TensorFlow takes seconds to import: start them now
        self._condition = threading.Condition()
        self._running: set[TrainingJob] = set()
        self._queue: list[TrainingJob] = []
        self._closers: dict[str, Callable[[], None]] = {}
        self._last_seen: dict[str, float] = {}
        self._janitor: threading.Thread | None = None
        self._janitor_stop = threading.Event()
        self._idle: list[Trainer] = []

    # trainers

    def trainer(self, settings: Settings, data: TrainingData) -> Trainer | RemoteTrainer:
        """A trainer for ``settings`` on ``data``: in worker processes, a ``RemoteTrainer`` whose trainer a
        worker builds and compiles now; in threads, a recycled ``Trainer`` of the same sizes and seed if any.

        TensorFlow keeps some memory of every compiled function it has run
        (tensorflow/tensorflow#62854); recycling trainers keeps a busy server's
        memory flat as sessions come and go (and workers are retired once they hold too much).
        """
        if self.mode == "processes":
            remote = RemoteTrainer(settings, data, pool())
            remote.prepare()
            return remote
        with self._condition:
            match = next((t for t in self._idle if _reusable(t, settings, data)), None)
            if match is not None:
                self._idle.remove(match)
        if match is None:
            match = Trainer(settings, data)
        else:
            match.renew(settings)
        match.start_warm_up(before=lower_priority)  # compiled before Start, at background priority
        return match

    def recycle(self, trainer: Trainer | RemoteTrainer) -> None:
        """Keep a trainer that is no longer used for a later ``trainer`` call (one still training is let go;
        a ``RemoteTrainer`` holds nothing worth keeping: its worker keeps the compiled trainer)."""
        if isinstance(trainer, RemoteTrainer):
            return
        with self._condition:
            busy = any(job.trainer is trainer for job in (*self._running, *self._queue))
            if not busy and trainer not in self._idle and len(self._idle) < MAX_IDLE_TRAINERS:
                self._idle.append(trainer)

    # slots

    def acquire(self, job: TrainingJob) -> bool:
        """Wait for a slot; False if the job was stopped while it waited."""
        with self._condition:
            self._queue.append(job)
            while not job.control.stop_requested and (
                len(self._running) >= self.max_workers or self._queue[0] is not job
            ):
                self._condition.wait(timeout=0.25)
            self._queue.remove(job)
            if job.control.stop_requested:
                self._condition.notify_all()
                return False
            self._running.add(job)
            return True

    def release(self, job: TrainingJob) -> None:
        with self._condition:
            self._running.discard(job)
            self._condition.notify_all()

    def queue_position(self, job: TrainingJob) -> int | None:
        """1 for the next job to start, None when the job is not waiting."""
        with self._condition:
            return self._queue.index(job) + 1 if job in self._queue else None

    def waiting_for_cluster(self, job: TrainingJob) -> bool:
        """Whether ``job`` waits for a Ray cluster's resources (``ray_backend.RaySupervisor``); never here."""
        return False

    @property
    def running_count(self) -> int:
        with self._condition:
            return len(self._running)

    @property
    def waiting_count(self) -> int:
        with self._condition:
            return len(self._queue)

    # owners

    def register(self, owner: str, close: Callable[[], None]) -> None:
        """Call ``close`` once ``owner`` has been gone for ``ABANDON_SECONDS``."""
        with self._condition:
            self._closers[owner] = close
            self._last_seen[owner] = time.monotonic()

    def owners(self) -> list[str]:
        with self._condition:
            return list(self._closers)

    def sweep(self, is_alive: Callable[[str], bool], now: float | None = None) -> list[str]:
        """Close what every long-gone owner left; return those owners."""
        now = time.monotonic() if now is None else now
        gone = []
        with self._condition:
            for owner in list(self._closers):
                if is_alive(owner):
                    self._last_seen[owner] = now
                elif now - self._last_seen[owner] >= ABANDON_SECONDS:
                    gone.append((owner, self._closers.pop(owner)))
                    del self._last_seen[owner]
        for _, close in gone:
            close()
        return [owner for owner, _ in gone]

    def start_janitor(self, is_alive: Callable[[str], bool], interval: float = 2.0) -> None:
        """Sweep every ``interval`` seconds in a daemon thread (once per supervisor)."""
        with self._condition:
            if self._janitor is not None:
                return
            self._janitor = threading.Thread(
                target=self._janitor_loop, args=(is_alive, interval), name="playground-janitor", daemon=True
            )
            self._janitor.start()

    def _janitor_loop(self, is_alive: Callable[[str], bool], interval: float) -> None:
        while not self._janitor_stop.wait(interval):
            self.sweep(is_alive)


def _reusable(trainer: Trainer | RemoteTrainer, settings: Settings, data: TrainingData) -> bool:
    return trainer.settings.model_key() == settings.model_key() and trainer.x_train is data.x_train


class TrainingJob:
    """One ``run`` of a ``Trainer`` or a ``RemoteTrainer`` from a daemon thread, inside a supervisor slot."""

    def __init__(self, trainer: Trainer | RemoteTrainer, supervisor: Supervisor,
                 on_done: Callable[[TrainingJob], None] | None = None):  # fmt: skip
        self.trainer = trainer
        self.supervisor = supervisor
        self.on_done = on_done  # runs in the job's thread after training, outside the slot
        self.control = Control()  # this job's own: a stop sent before its run begins is kept
        self.state = "queued"  # queued, running, finished, stopped, diverged, failed
        self.result: RunResult | None = None
        self.error: str | None = None
        self.save_error: str | None = None
        self.crash: TrainingCrashed | None = None  # the worker process died: how, and which weights were kept
        self._thread = threading.Thread(target=self._work, name="playground-training", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _work(self) -> None:
        lower_priority()
        if not self.supervisor.acquire(self):
            self.state = "stopped"
            return
        try:
            self.state = "running"
            self.result = self.trainer.run(control=self.control)
            self.state = self.result.reason
        except TrainingCrashed as crash:  # a worker killed or crashed: the model is the last weights received
            self.crash, self.error = crash, str(crash)
            self.state = "failed"
        except Exception as error:  # reported on the page; the server must live on
            self.error = str(error) if isinstance(error, TrainingError) else f"{type(error).__name__}: {error}"
            self.state = "failed"
        finally:
            self.supervisor.release(self)
        if self.on_done is not None:
            try:
                self.on_done(self)
            except Exception as error:  # a full disk must not take the page down
                self.save_error = f"{type(error).__name__}: {error}"

    @property
    def active(self) -> bool:
        """Queued or running (paused counts as running)."""
        return self._thread.is_alive()

    @property
    def queue_position(self) -> int | None:
        return self.supervisor.queue_position(self)

    @property
    def waiting_for_cluster(self) -> bool:
        return self.supervisor.waiting_for_cluster(self)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the job to stop; with a timeout, wait up to that long for the thread to end."""
        self.control.stop()
        if timeout is not None and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


RAY_ADDRESS_ENV = "PLAYGROUND_RAY_ADDRESS"


def supervisor_from_env() -> Supervisor:
    """This server's supervisor: trainings on the Ray cluster at ``PLAYGROUND_RAY_ADDRESS`` if it is set
    (Ray is imported only then), else here."""
    if os.environ.get(RAY_ADDRESS_ENV, "").strip():
        from playground.ray_backend import RaySupervisor

        return RaySupervisor()
    return Supervisor()
