"""Training on a Ray cluster: each training worker is a Ray actor that hosts the same ``WorkerCore``.

With ``PLAYGROUND_RAY_ADDRESS`` set (``auto``, ``host:port`` or ``ray://host:port``),
the server starts one ``TrainingActor`` per training job instead of using a local
worker process. The actor asks Ray for ``PLAYGROUND_RAY_CPUS`` CPUs (default 1) and
``PLAYGROUND_RAY_GPUS`` GPUs (default: 1 when the cluster has GPUs, else 0), so
Ray's scheduler, not the server's slot cap, decides when and where it runs; until
Ray places it the job waits for cluster resources, and a stop then cancels it.
Each dataset is put in the object store once per server and handed to every actor
by reference. The messages are ``worker_core``'s, both ways (PROTOCOL.md): a
``RayWorker`` is the server's end of one actor, with the calls a pipe would have.

This module imports Ray; nothing imports this module unless the variable is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import ray
import ray.exceptions

from playground.config import Settings
from playground.jobs import RAY_ADDRESS_ENV, Supervisor, TrainingJob
from playground.training import Control, TrainingData
from playground.worker_core import Command, JobSpec, LoadData, Rates, Shutdown, WorkerCore
from playground.workers import TRAINING_NICENESS, RemoteTrainer, WorkerDied

log = logging.getLogger("playground")

RAY_CPUS_ENV = "PLAYGROUND_RAY_CPUS"
RAY_GPUS_ENV = "PLAYGROUND_RAY_GPUS"
NAMESPACE = "vae-playground"  # the app's actors, by name, in ``ray list actors`` and the dashboard
ACTOR_PREFIX = "vae-training-"
POLL_SECONDS = 0.1  # how long one poll waits in the actor for a message (the page polls every 0.5 s)
ACTOR_THREADS = 4  # a poll, a command and a data upload may overlap in one actor


def configured_address() -> str | None:
    """``PLAYGROUND_RAY_ADDRESS``, or None when training stays on this server."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    return address or None


def actor_resources(cluster_gpus: float) -> tuple[float, float]:
    """(CPUs, GPUs) each training actor asks for, from the environment and the cluster's GPU count."""
    cpus = _amount(RAY_CPUS_ENV, 1.0)
    gpus = _amount(RAY_GPUS_ENV, 1.0 if cluster_gpus > 0 else 0.0)
    if cpus <= 0:
        raise ValueError(f"{RAY_CPUS_ENV} must be more than 0 (a training needs a CPU).")
    return cpus, gpus


def _amount(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number such as 1 or 0.5 (got {raw!r}).") from None
    if value < 0:
        raise ValueError(f"{name} cannot be negative (got {raw!r}).")
    return value


class TrainingActor:
    """A Ray actor hosting one ``WorkerCore``: ``start`` a job, ``poll`` its messages, send it commands."""

    def __init__(self):
        with contextlib.suppress(OSError):
            os.nice(TRAINING_NICENESS)  # as local workers: pages served from the same machine come first
        self.core = WorkerCore()
        self._outbox: list[object] = []
        self._ready = threading.Condition()
        self._starting: set[str] = set()  # jobs started whose first message has not come yet
        self._stops: set[str] = set()  # stops that came for them (the core would not know the job yet)

    def ready(self) -> dict:
        """Where the actor runs (the server waits on this to know Ray has placed it)."""
        context = ray.get_runtime_context()
        return {"pid": os.getpid(), "node": context.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def add_data(self, key: str, arrays: tuple) -> None:
        """A dataset from the object store (Ray resolves the reference to read-only arrays)."""
        self.core.add_data(key, *arrays)  # images, then labels (None when the dataset has none)

    def start(self, spec: JobSpec) -> None:
        """Run ``spec`` in a thread of the actor; its messages wait in the outbox for ``poll``."""
        with self._ready:
            self._starting.add(spec.job_id)
        threading.Thread(target=self.core.run, args=(spec, self._emit), name="playground-job", daemon=True).start()

    def command(self, message: Command | Rates) -> None:
        """Stop, pause, resume or new rates; a stop that overtakes its job's start is kept for it."""
        with self._ready:
            if message.job_id in self._starting and isinstance(message, Command) and message.action == "stop":
                self._stops.add(message.job_id)
        self.core.command(message)

    def poll(self, wait: float = POLL_SECONDS) -> list[object]:
        """Every message since the last poll, waiting up to ``wait`` s for the first."""
        with self._ready:
            if not self._outbox:
                self._ready.wait(wait)
            messages, self._outbox = self._outbox, []
        return messages

    def _emit(self, message: object) -> None:
        job_id = getattr(message, "job_id", None)
        with self._ready:
            self._outbox.append(message)
            self._ready.notify_all()
            first = job_id in self._starting
            self._starting.discard(job_id)
            stop = first and job_id in self._stops
            self._stops.discard(job_id)
        if stop:  # the core knows the job now (it emits only once it has taken it)
            self.core.command(Command(job_id, "stop"))


class RayCluster:
    """This app server's connection to the cluster: one per server, shared by its sessions."""

    def __init__(self, address: str):
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, ignore_reinit_error=True,
                 runtime_env=_runtime_env())  # fmt: skip
        self.address = address
        self.cpus, self.gpus = actor_resources(float(ray.cluster_resources().get("GPU", 0)))
        self._actor_class = ray.remote(max_concurrency=ACTOR_THREADS)(TrainingActor)
        self._lock = threading.Lock()
        self._data: dict[str, ray.ObjectRef] = {}

    def data_ref(self, message: LoadData) -> ray.ObjectRef:
        """The dataset's arrays in the object store, put there once per dataset key."""
        with self._lock:
            if message.key not in self._data:
                self._data[message.key] = ray.put(message.arrays)
            return self._data[message.key]

    def worker(self) -> RayWorker:
        """A new training actor (Ray places it when the cluster has the resources)."""
        name = ACTOR_PREFIX + uuid.uuid4().hex[:12]
        actor = self._actor_class.options(name=name, num_cpus=self.cpus, num_gpus=self.gpus).remote()
        return RayWorker(self, actor, name)

    def shutdown(self) -> None:
        ray.shutdown()


class RayWorker:
    """The server's end of one training actor: ``send`` messages, ``receive`` them, ``waiting`` for Ray."""

    def __init__(self, cluster: RayCluster, actor, name: str):
        self.cluster, self.actor, self.name = cluster, actor, name
        self._placed = actor.ready.remote()
        self._poll = None
        self._inbox: list[object] = []
        self.lost: str | None = None  # why the actor is gone, once it is
        self.closed = False
        self.holds: list[tuple] = []  # what a local worker process reports; an actor serves one run
        self.data_keys: set[str] = set()

    @property
    def waiting(self) -> bool:
        """True while Ray has not yet found the resources to start the actor."""
        if self.closed or self.lost:
            return False
        done, _ = ray.wait([self._placed], timeout=0)
        return not done

    def send(self, message: object) -> None:
        if isinstance(message, JobSpec):
            self.actor.start.remote(message)
        elif isinstance(message, LoadData):
            self.actor.add_data.remote(message.key, self.cluster.data_ref(message))
        elif isinstance(message, Command | Rates):
            self.actor.command.remote(message)
        elif isinstance(message, Shutdown):
            self.close()
        # anything else (a request to compile ahead) has no use: an actor is made for each run

    @property
    def pid(self) -> int | None:
        """The actor's process id on its node, once Ray has placed it."""
        if self.waiting or self.lost:
            return None
        try:
            return int(ray.get(self._placed, timeout=5)["pid"])
        except Exception:  # a dead or unreachable actor has no pid to show
            return None

    def receive(self, timeout: float) -> object | None:
        """The next message from the actor, or None after ``timeout`` s; WorkerDied once the actor is lost."""
        if not self._inbox:
            self._inbox = self._fetch(timeout)
        return self._inbox.pop(0) if self._inbox else None

    def _fetch(self, timeout: float) -> list[object]:
        if self.lost is not None:
            raise WorkerDied(None)
        if self.closed:
            return []
        if self._poll is None:
            self._poll = self.actor.poll.remote()
        done, _ = ray.wait([self._poll], timeout=timeout)
        if not done:
            return []
        poll, self._poll = self._poll, None
        try:
            return ray.get(poll)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as error:
            # Like a local worker that died: the run fails, the model keeps the last weights received.
            self.lost = _lost_detail(error)
            log.warning("training actor %s lost mid-run: %s", self.name, self.lost)
            raise WorkerDied(None) from None

    def close(self) -> None:
        """End the actor (a pending one is cancelled): its CPUs go back to the cluster."""
        if not self.closed:
            self.closed = True
            ray.kill(self.actor, no_restart=True)


def _lost_detail(error: Exception) -> str:
    text = str(error)
    if "ray.kill" in text or "killed by" in text:
        return "its actor was killed"
    if "node" in text.lower() and ("died" in text.lower() or "dead" in text.lower()):
        return "the node it ran on is gone"
    return f"{type(error).__name__}: {text.splitlines()[0] if text else 'its process died'}"


def _runtime_env() -> dict:
    """Ship this package to the actors' nodes (they need the same Python packages, not this folder); let
    TensorFlow take GPU memory as it needs it, so actors with a fraction of one GPU can share it."""
    package = str(Path(__file__).resolve().parent)
    return {"py_modules": [package], "env_vars": {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}}


class ActorSlot:
    """Where one model's runs train: a Ray actor reserved when a run is to start, ended when it ends.

    Plays the part of ``workers.WorkerPool`` for a ``RemoteTrainer``: one per model,
    so that the actor its job waited for is the one its run gets.
    """

    def __init__(self, cluster: RayCluster):
        self.cluster = cluster
        self._reserved: RayWorker | None = None
        self._lock = threading.Lock()

    def reserve(self, control: Control, poll: float = 0.1) -> bool:
        """Ask Ray for an actor and wait until it is placed; False (and no actor) if stopped meanwhile."""
        worker = self.cluster.worker()
        while worker.waiting and not control.stop_requested:
            time.sleep(poll)
        if control.stop_requested or worker.lost:
            worker.close()
            return False
        with self._lock:
            self._reserved = worker
        return True

    def checkout(self, holds: tuple | None = None) -> RayWorker:
        with self._lock:
            worker, self._reserved = self._reserved, None
        return worker if worker is not None else self.cluster.worker()

    def checkin(self, worker: RayWorker) -> None:
        """A run ended: its actor goes, and its CPUs go back to the cluster."""
        worker.close()

    def discard(self, worker: RayWorker) -> None:
        worker.close()

    def prepare(self, state, data) -> None:
        """Nothing to compile ahead: the actor is made for the run."""


class RaySupervisor(Supervisor):
    """The server's trainings on a Ray cluster: Ray schedules them (no local slot cap), the janitor is the same.

    A job is "queued" while Ray has not placed its actor ("waiting for a free CPU on
    the cluster" in the page: it has no place in a queue of this server's); a stop
    then cancels the actor.
    """

    def __init__(self, address: str | None = None):
        super().__init__(max_workers=1, mode="threads")  # neither this server's slots nor its worker processes
        self.cluster = RayCluster(address or configured_address() or "auto")

    def trainer(self, settings: Settings, data: TrainingData) -> RemoteTrainer:
        return RemoteTrainer(settings, data, ActorSlot(self.cluster))

    def recycle(self, trainer) -> None:
        """Nothing to keep: each run has its own actor."""

    def acquire(self, job: TrainingJob) -> bool:
        """Wait until Ray places the job's actor; False if the job was stopped while it waited."""
        with self._condition:
            self._queue.append(job)
        try:
            placed = job.trainer.workers.reserve(job.control)
        except Exception:  # the cluster refused: the run asks again, and fails with Ray's words on the page
            log.exception("could not reserve a training actor")
            placed = True
        with self._condition:
            self._queue.remove(job)
            if placed:
                self._running.add(job)
            self._condition.notify_all()
        return placed

    def queue_position(self, job: TrainingJob) -> int | None:
        return None

    def waiting_for_cluster(self, job: TrainingJob) -> bool:
        """True while ``job`` waits for Ray to find it a CPU (or GPU)."""
        with self._condition:
            return job in self._queue

    def shutdown(self) -> None:
        self.cluster.shutdown()
