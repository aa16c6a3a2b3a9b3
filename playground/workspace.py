"""One user's playground: the current model, its trainer and training job, its page-side copy, its runs.

The page keeps one ``Workspace`` per browser session and asks it for everything;
the workspace knows nothing about the page. The supervisor may ``close`` it from
its janitor thread once the session is gone, which stops training and lets the
model's memory go.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

from playground.config import Settings
from playground.data import Dataset
from playground.history import History
from playground.inference import Inference
from playground.jobs import Supervisor, TrainingJob
from playground.models import VariationalAutoEncoder
from playground.runs import new_run_folder, prune_runs, write_run
from playground.training import RunResult, TrainingData


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
        dataset: Dataset,
        data: TrainingData,
        supervisor: Supervisor,
        runs_dir: Path | None = None,
    ):
        self.supervisor = supervisor
        self.runs_dir = runs_dir
        self.run_folder: Path | None = None  # where the current model's run is saved
        self.job: TrainingJob | None = None
        self.closed = False
        self._lock = threading.Lock()
        self._model_lock = threading.RLock()  # model switches, starts and resets, one at a time
        self.rebuild(settings, dataset, data)

    # the model

    @_one_at_a_time
    def rebuild(self, settings: Settings, dataset: Dataset | None = None, data: TrainingData | None = None) -> None:
        """A fresh model for new sizes or data (any training stops first)."""
        self._end_job()
        if getattr(self, "trainer", None) is not None:
            self.supervisor.recycle(self.trainer)
        if dataset is not None:
            self.dataset, self.data = dataset, data
        self.settings = settings
        self.trainer = self.supervisor.trainer(settings, self.data)
        self.inference = Inference(settings)
        self.run_folder = None

    @_one_at_a_time
    def reset(self) -> None:
        """Same settings, new initial weights, a fresh optimizer, an empty history (and no last run's ending)."""
        self._end_job()
        self.trainer.reset()
        self.run_folder = None

    @_one_at_a_time
    def adopt(self, model: VariationalAutoEncoder, settings: Settings, history: History | None = None,
              run_folder: Path | None = None) -> None:  # fmt: skip
        """Make a loaded model the current one, to explore and to train further."""
        self.rebuild(settings)
        self.trainer.adopt(model.get_weights(), history)
        self.run_folder = run_folder

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
        )

    # runs

    def _save_run(self, job: TrainingJob) -> None:
        """Keep the run on disk when a training job ends (called in the job's thread)."""
        if self.runs_dir is None or self.closed or job.trainer is not self.trainer or not self.trained:
            return
        with self._lock:
            if self.run_folder is None:
                self.run_folder = new_run_folder(self.runs_dir)
            summary = {"reason": job.state, "epochs": self.trainer.epoch, "steps": self.trainer.step,
                       "source": self.dataset.source}  # fmt: skip
            if job.result is not None:
                summary.update(loss=job.result.loss, val_loss=job.result.val_loss)
            write_run(self.run_folder, self.settings, self.trainer.history, self.trainer.model, summary)
            prune_runs(self.runs_dir)

    @_one_at_a_time
    def close(self) -> None:
        """Stop training and let go of the model (the session is gone)."""
        self.closed = True
        self.stop(wait=True)
        self.job = None
        if self.trainer is not None:
            self.supervisor.recycle(self.trainer)
        self.trainer = self.inference = None  # type: ignore[assignment]
