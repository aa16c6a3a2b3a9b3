"""One user's playground: the current model, its trainer and training job, its page-side copy, its runs.

The page asks its workspace for everything; the workspace knows nothing about the
page. A workspace belongs to an address token (``?ws=...``), not to one browser
session: ``Workspaces`` hands every session of a token the same live workspace, so
a reload or a second browser finds the model, its history and a training still
running. The supervisor's janitor ``close``s it once no session of the token has
been alive for a while: training stops (the run is kept as "interrupted") and the
model's memory goes. What a later session (or a restarted server) needs to carry
on is kept in the token's folder, in ``current/``.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from playground.config import Settings
from playground.data import Dataset
from playground.history import History
from playground.inference import Inference
from playground.jobs import Supervisor, TrainingJob
from playground.models import VariationalAutoEncoder, build_vae
from playground.runs import (
    WorkspaceLease,
    new_run_folder,
    prune_runs,
    read_history,
    read_model,
    read_run_info,
    write_run,
)
from playground.training import RunResult, TrainingData
from playground.workers import TrainingCrashed

log = logging.getLogger("playground")


CURRENT = "current"  # the folder, beside the runs, that keeps the current model, history and settings
CHECKPOINT_POLL_SECONDS = 0.5  # how often a training's checkpointer looks for a finished epoch


@dataclass(frozen=True)
class LoadedData:
    """A dataset and its tensors in device memory."""

    dataset: Dataset
    device: TrainingData


DataLoader = Callable[[str], LoadedData]  # a dataset's name -> its data (a ValueError if it can't be had)


@dataclass(frozen=True)
class Status:
    """Where training stands, for a progress bar."""

    state: str  # idle, queued, running, paused, finished, stopped, diverged, failed
    epoch: int  # the epoch in progress (1-based) or the last one completed
    target_epoch: int
    step: int
    epoch_step: int
    steps_per_epoch: int
    steps_per_second: float
    seconds_left: float | None
    queue_position: int | None
    result: RunResult | None
    error: str | None
    save_error: str | None  # the run trained but could not be kept on disk
    crash: TrainingCrashed | None = None  # its worker process died: how, and the weights the model kept
    waiting_for_cluster: bool = False  # queued because a Ray cluster has no free CPU for it yet
    compiling: bool = False  # running, no step yet, and its loop is being compiled (not merely starting)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "paused")

    @property
    def fraction(self) -> float:
        """How much of the planned epochs is done, 0..1."""
        total = self.target_epoch * self.steps_per_epoch
        return min(1.0, self.step / total) if total else 0.0


def _one_at_a_time(method):
    """Run ``method`` under the workspace's model lock.

    The page can run two script threads for one session at once (Streamlit's fast
    reruns start the next run before the last one has stopped): a Start clicked while
    a size change is still building its trainer must wait for it, not start the old
    model while the new one takes its place.
    """

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._model_lock:
            return method(self, *args, **kwargs)

    return locked


class Workspace:
    """A user's model, trainer, training job and saved runs."""

    def __init__(
        self,
        settings: Settings,
        load_data: DataLoader,
        supervisor: Supervisor,
        runs_dir: Path | None = None,
        lease: WorkspaceLease | None = None,
    ):
        if lease is not None:  # several app servers share the runs: this one writes the folder (WorkspaceBusy if not)
            lease.acquire()
        self.lease = lease
        self.supervisor = supervisor
        self.load_data = load_data
        self.runs_dir = runs_dir
        self.run_folder: Path | None = None  # where the current model's run is saved
        self.job: TrainingJob | None = None
        self.trainer = None
        self.dataset: Dataset | None = None
        self.closed = False
        self._interrupted = False  # the janitor is closing: a stopped run ends as "interrupted"
        self._lock = threading.Lock()
        self._gone = threading.Event()  # set once ``close`` has finished
        self._model_lock = threading.RLock()  # model switches, starts and resets, one at a time
        try:
            if not self._restore():
                self.switch(settings)
        except BaseException:
            if lease is not None:
                lease.release()
            raise

    # the model

    @_one_at_a_time
    def switch(
        self,
        settings: Settings,
        model: VariationalAutoEncoder | None = None,
        history: History | None = None,
        run_folder: Path | None = None,
    ) -> None:
        """Make a new current model: fresh for ``settings``, or ``model`` (and its history) to train on.

        Loads ``settings.dataset`` first if it is another dataset; if that fails the
        ValueError leaves everything as it was. Any training stops first. One trainer
        is made (or recycled) per switch.
        """
        same_data = self.dataset is not None and settings.dataset == self.dataset.name
        loaded = None if same_data else self.load_data(settings.dataset)
        self._end_job()
        if self.trainer is not None:
            self.supervisor.recycle(self.trainer)
        data = self.data if loaded is None else loaded.device
        trainer = self.supervisor.trainer(settings, data)
        if model is not None:
            trainer.adopt(model.get_weights(), history)
        inference = Inference(settings)
        # Readers outside the lock (the page's fragments) see the new model whole: trainer, then settings.
        if loaded is not None:
            self.dataset, self.data = loaded.dataset, loaded.device
        self.trainer, self.inference, self.settings = trainer, inference, settings
        self.run_folder = run_folder
        self._keep_or_forget_current()

    @_one_at_a_time
    def reset(self) -> None:
        """Same settings, new initial weights, a fresh optimizer, an empty history (and no last run's ending)."""
        self._end_job()
        self.trainer.reset()
        self.run_folder = None
        self._keep_or_forget_current()

    @_one_at_a_time
    def update(self, settings: Settings) -> None:
        """Take new rates, loss, batch size or epochs for the same model (not while training)."""
        if self.training:
            raise ValueError("Settings can change only while training is stopped.")
        self.trainer.apply(settings)
        self.settings = settings

    @property
    def trained(self) -> bool:
        return len(self.trainer.history) > 0

    def refresh(self) -> Inference:
        """The page's model copy, brought up to the latest published weights."""
        self.inference.sync(*self.trainer.weights())
        return self.inference

    # training

    @property
    def training(self) -> bool:
        return self.job is not None and self.job.active

    @_one_at_a_time
    def start(self) -> None:
        """Start training, or carry on where a stopped run left off."""
        if self.closed or self.training:
            return
        self.job = TrainingJob(self.trainer, self.supervisor, on_done=self._save_run).start()
        self._start_checkpoints(self.job)

    def stop(self, wait: bool = False) -> None:
        if self.job is not None:
            self.job.stop(timeout=30.0 if wait else None)

    def _end_job(self) -> None:
        """Stop training, wait for it, and forget the job: its ending no longer describes the model."""
        self.stop(wait=True)
        if self.job is not None and not self.job.active:
            self.job = None

    def pause(self) -> None:
        if self.training:
            self.job.control.pause()

    def resume(self) -> None:
        if self.job is not None:
            self.job.control.resume()

    def status(self) -> Status:
        """A consistent snapshot read without touching the model's variables (safe while training)."""
        job, trainer = self.job, self.trainer
        state = "idle" if job is None else job.state
        if state == "running" and job.control.paused:
            state = "paused"
        last = trainer.history.last("train")
        step = last.step if last else 0
        speed = last.steps_per_second if last and state == "running" else 0.0
        spe = trainer.steps_per_epoch
        target = max(trainer.target_epoch, trainer.epoch)
        left = (target * spe - step) / speed if speed > 0 else None
        return Status(
            state=state,
            epoch=trainer.epoch + (1 if state in ("running", "paused", "queued") else 0),
            target_epoch=target,
            step=step,
            epoch_step=trainer.epoch_step if state in ("running", "paused") else 0,
            steps_per_epoch=spe,
            steps_per_second=speed,
            seconds_left=left,
            queue_position=job.queue_position if job is not None else None,
            result=job.result if job is not None else None,
            error=job.error if job is not None else None,
            save_error=job.save_error if job is not None else None,
            crash=job.crash if job is not None else None,
            waiting_for_cluster=job is not None and state == "queued" and job.waiting_for_cluster,
            compiling=state == "running" and step == 0 and trainer.compiling,
        )

    # runs and the current model on disk

    def _save_run(self, job: TrainingJob) -> None:
        """Keep the run, and the current model, on disk when a training job ends (in the job's thread)."""
        if self.runs_dir is None or self.closed or job.trainer is not self.trainer or not self.trained:
            return
        with self._lock:
            if self.run_folder is None:
                self.run_folder = new_run_folder(self.runs_dir)
            reason = "interrupted" if self._interrupted and job.state == "stopped" else job.state
            summary = {"reason": reason, "epochs": self.trainer.epoch, "steps": self.trainer.step,
                       "source": self.dataset.source}  # fmt: skip
            if job.result is not None:
                summary.update(loss=job.result.loss, val_loss=job.result.val_loss,
                               val_reconstruction_loss=job.result.val_reconstruction_loss)  # fmt: skip
            write_run(self.run_folder, self.settings, self.trainer.history, self.trainer.model, summary)
            prune_runs(self.runs_dir)
        self.save_current()

    def save_current(self, during: TrainingJob | None = None) -> None:
        """Write the current model, its history and settings to ``current/`` (atomically, file by file).

        Safe from any thread: it saves the weights the trainer last published.
        ``during``: a checkpoint of that job's run, skipped once the run has ended
        (its end writes the final state, which a late checkpoint must not overwrite).
        """
        if self.runs_dir is None or self.trainer is None:
            return
        trainer = self.trainer
        _, weights = trainer.weights()
        model = build_vae(self.settings)
        model.set_weights(weights)
        summary = {"reason": "saved" if during is None else "training", "epochs": trainer.epoch, "steps": trainer.step,
                   "source": self.dataset.source, "run": self.run_folder.name if self.run_folder else None}  # fmt: skip
        with self._lock:
            if during is not None and during.state != "running":
                return
            write_run(self.runs_dir / CURRENT, self.settings, trainer.history, model, summary)

    def _keep_or_forget_current(self) -> None:
        """After a switch or a reset: a trained model (a reopened run, a loaded file) is the one to come back
        to; an untrained one is not worth keeping, and the model it replaced must not come back."""
        if self.runs_dir is None or self.closed:
            return
        if self.trained:
            self.save_current()
        else:
            with self._lock:
                shutil.rmtree(self.runs_dir / CURRENT, ignore_errors=True)

    def _start_checkpoints(self, job: TrainingJob) -> None:
        """Save the current model at each epoch's end while ``job`` trains (in a thread of its own)."""
        if self.runs_dir is None:
            return
        thread = threading.Thread(target=self._checkpoint_loop, args=(job,), name="playground-checkpoint", daemon=True)
        thread.start()

    def _checkpoint_loop(self, job: TrainingJob) -> None:
        saved_epoch = job.trainer.epoch
        while job.active and not self.closed:
            time.sleep(CHECKPOINT_POLL_SECONDS)
            epoch = job.trainer.epoch
            if epoch != saved_epoch and job.trainer is self.trainer and not self.closed:
                try:
                    self.save_current(during=job)
                except Exception:  # a full disk must not stop training; the end of the run tries again
                    log.exception("checkpoint failed")
                saved_epoch = epoch

    def _restore(self) -> bool:
        """Carry on from ``current/`` if an earlier workspace of this token left one; False if none."""
        folder = None if self.runs_dir is None else self.runs_dir / CURRENT
        if folder is None or not folder.is_dir():
            return False
        try:
            saved = read_run_info(folder)
            history, model = read_history(saved), read_model(saved)
            self.switch(saved.settings, model, history)
        except ValueError:
            log.warning("could not restore %s", folder, exc_info=True)
            return False
        run = saved.summary.get("run")
        if isinstance(run, str) and run.startswith("run-") and (self.runs_dir / run).is_dir():
            self.run_folder = self.runs_dir / run
        if saved.summary.get("reason") == "training":  # the server stopped mid-run: keep that run too
            self._keep_interrupted(saved)
        return True

    def _keep_interrupted(self, saved) -> None:
        """Save the run a stopped server interrupted, from its last checkpoint."""
        if self.run_folder is None:
            self.run_folder = new_run_folder(self.runs_dir)
        summary = {**saved.summary, "reason": "interrupted"}
        summary.pop("run", None)
        write_run(self.run_folder, self.settings, self.trainer.history, self.trainer.model, summary)
        prune_runs(self.runs_dir)
        self.save_current()

    @_one_at_a_time
    def close(self) -> None:
        """Stop training (the run is kept as "interrupted"), save the current model, let go of it."""
        if self.closed:
            return
        self._interrupted = True
        self.stop(wait=True)  # the job's on_done saves the run
        try:
            if self.trained:
                self.save_current()
        except Exception:  # the session is gone: nobody to tell, but the log
            log.exception("could not save the current model on close")
        self.closed = True
        self.job = None
        if self.trainer is not None:
            self.supervisor.recycle(self.trainer)
        self.trainer = self.inference = None  # type: ignore[assignment]
        if self.lease is not None:
            self.lease.release()  # another app server may open this workspace now
        self._gone.set()

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._gone.wait(timeout)


class Workspaces:
    """Every open workspace of a server by its address token, and the sessions that look at each.

    Shared by all sessions (it locks itself). Sessions of one token share one
    workspace; the janitor asks ``alive`` and closes a token's workspace through
    ``close`` only once none of its sessions is alive.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._open: dict[str, Workspace] = {}
        self._sessions: dict[str, set[str]] = {}

    def open(self, token: str, session: str, make: Callable[[], Workspace]) -> Workspace:
        """The live workspace of ``token`` (made by ``make`` if there is none), now seen by ``session``."""
        while True:
            with self._lock:
                workspace = self._open.get(token)
                if workspace is None:
                    workspace = self._open[token] = make()
                if not workspace.closed:
                    self._sessions.setdefault(token, set()).add(session)
                    return workspace
            # Being closed by the janitor: wait until its files are written, then make a new one from them.
            workspace.wait_closed(timeout=60)
            with self._lock:
                if self._open.get(token) is workspace:
                    del self._open[token]

    def alive(self, token: str, is_session_alive: Callable[[str], bool]) -> bool:
        """Whether any session of ``token`` is still connected (forgetting those that are not)."""
        with self._lock:
            sessions = {session for session in self._sessions.get(token, ()) if is_session_alive(session)}
            self._sessions[token] = sessions
            return bool(sessions)

    def close(self, token: str) -> None:
        """Close ``token``'s workspace (its sessions are gone)."""
        with self._lock:
            workspace = self._open.get(token)
        if workspace is None:
            return
        workspace.close()
        with self._lock:
            if self._open.get(token) is workspace:
                del self._open[token]
                self._sessions.pop(token, None)

    def get(self, token: str) -> Workspace | None:
        with self._lock:
            return self._open.get(token)
