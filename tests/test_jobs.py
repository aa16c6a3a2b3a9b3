"""Training jobs in threads, the cap on concurrent workers, and cleanup after abandoned owners."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playground import jobs
from playground.config import Settings
from playground.jobs import Supervisor, TrainingJob, max_workers_from_env
from playground.training import Trainer
from tests.support import wait_for


def one_running_one_queued(tiny) -> tuple[Supervisor, TrainingJob, TrainingJob]:
    """A supervisor with one slot, a long job in it and a short one waiting for it."""
    supervisor = Supervisor(max_workers=1)
    first = TrainingJob(Trainer(Settings(epochs=1000), tiny), supervisor).start()
    # Past its first call, which compiles: on a loaded machine that alone can outlast a stop's timeout.
    wait_for(lambda: first.state == "running" and first.trainer.step > 0, timeout=120)
    second = TrainingJob(Trainer(Settings(epochs=1), tiny), supervisor).start()
    wait_for(lambda: second.queue_position == 1)
    return supervisor, first, second


def test_jobs_beyond_the_cap_queue_and_start_when_a_slot_frees(tiny):
    supervisor, first, second = one_running_one_queued(tiny)
    assert second.state == "queued" and supervisor.running_count == 1
    first.stop(timeout=5)
    wait_for(lambda: not second.active)
    assert first.state == "stopped" and second.state == "finished"
    assert supervisor.running_count == 0 and supervisor.waiting_count == 0


def test_a_queued_job_can_be_cancelled(tiny):
    supervisor, first, second = one_running_one_queued(tiny)
    second.stop(timeout=5)
    assert second.state == "stopped" and second.trainer.step == 0
    first.stop(timeout=5)
    assert supervisor.running_count == 0


def test_a_failing_job_reports_and_frees_its_slot(tiny, monkeypatch):
    supervisor = Supervisor(max_workers=1)
    trainer = Trainer(Settings(epochs=1), tiny)
    monkeypatch.setattr(trainer, "run", lambda **_: 1 / 0)
    job = TrainingJob(trainer, supervisor).start()
    wait_for(lambda: not job.active)
    assert job.state == "failed" and "ZeroDivisionError" in job.error
    assert supervisor.running_count == 0


class StopOnceSlotted(Supervisor):
    """The user's Stop lands after the job gets its slot and before its run begins."""

    def acquire(self, job: TrainingJob) -> bool:
        granted = super().acquire(job)
        job.stop()
        return granted


def test_a_stop_between_getting_a_slot_and_running_is_obeyed(tiny):
    trainer = Trainer(Settings(epochs=1000), tiny)
    job = TrainingJob(trainer, StopOnceSlotted(max_workers=1)).start()
    job.stop(timeout=30)
    assert not job.active and job.state == "stopped" and trainer.step == 0


def test_a_trainer_still_training_is_never_recycled(tiny_data):
    supervisor = Supervisor(max_workers=1, mode="threads")  # threads recycle trainers; workers recycle their own
    trainer = Trainer(Settings(epochs=1000), tiny_data)
    job = TrainingJob(trainer, supervisor).start()
    wait_for(lambda: job.state == "running")
    supervisor.recycle(trainer)
    assert supervisor.trainer(trainer.settings, tiny_data) is not trainer
    job.stop(timeout=30)
    supervisor.recycle(trainer)  # once stopped, it may be reused
    assert supervisor.trainer(trainer.settings, tiny_data) is trainer


def test_sweep_closes_owners_gone_for_long_enough():
    supervisor = Supervisor(max_workers=1)
    closed = []
    supervisor.register("alive", lambda: closed.append("alive"))
    supervisor.register("gone", lambda: closed.append("gone"))
    start = time.monotonic()
    is_alive = {"alive": True, "gone": False}.__getitem__
    assert supervisor.sweep(is_alive, now=start + 1) == []  # a reload reconnects within the grace time
    assert supervisor.sweep(is_alive, now=start + jobs.ABANDON_SECONDS + 1) == ["gone"]
    assert closed == ["gone"] and supervisor.owners() == ["alive"]


def test_the_janitor_thread_sweeps_on_its_own(monkeypatch):
    monkeypatch.setattr(jobs, "ABANDON_SECONDS", 0.0)
    supervisor = Supervisor(max_workers=1)
    closed = threading.Event()
    supervisor.register("tab", closed.set)
    supervisor.start_janitor(lambda owner: False, interval=0.05)
    assert closed.wait(5)


def test_where_training_runs_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(jobs.MODE_ENV, "threads")
    assert jobs.mode_from_env() == "threads" and Supervisor(max_workers=1).mode == "threads"
    monkeypatch.setenv(jobs.MODE_ENV, "gpu")
    with pytest.raises(ValueError, match="PLAYGROUND_TRAINING must be 'processes' or 'threads'"):
        jobs.mode_from_env()
    monkeypatch.delenv(jobs.MODE_ENV)
    assert jobs.mode_from_env() == "processes"


def test_worker_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(jobs.MAX_WORKERS_ENV, "3")
    assert max_workers_from_env() == 3
    monkeypatch.setenv(jobs.MAX_WORKERS_ENV, "zero")
    with pytest.raises(ValueError, match="PLAYGROUND_MAX_WORKERS must be a whole number"):
        max_workers_from_env()
    monkeypatch.delenv(jobs.MAX_WORKERS_ENV)
    assert max_workers_from_env() == jobs.DEFAULT_MAX_WORKERS >= 1


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def tiny_data(tiny):
    from playground.training import TrainingData

    return TrainingData.from_dataset(tiny)  # one per dataset, as the app's cached loader gives


def _workspace(tiny, supervisor, data, runs_dir=None, **changes):
    from playground.workspace import LoadedData, Workspace

    return Workspace(Settings(**changes), lambda name: LoadedData(tiny, data), supervisor, runs_dir)


def test_closing_a_workspace_stops_its_worker_and_recycles_its_trainer(tiny, tiny_data):
    supervisor = Supervisor(max_workers=1, mode="threads")
    workspace = _workspace(tiny, supervisor, tiny_data, epochs=1000)
    workspace.start()
    wait_for(lambda: workspace.status().state == "running" and len(workspace.trainer.history) > 0)
    trainer, job = workspace.trainer, workspace.job
    workspace.close()
    assert job.state == "stopped" and not job.active and supervisor.running_count == 0
    assert workspace.trainer is None and workspace.inference is None
    newcomer = _workspace(tiny, supervisor, tiny_data, epochs=1000)
    assert newcomer.trainer is trainer, "the next session with the same sizes reuses it"
    assert newcomer.trainer.step == 0 and len(newcomer.trainer.history) == 0


@pytest.mark.slow
def test_soak_sessions_coming_and_going_keep_memory_flat(tiny, tiny_data):
    supervisor = Supervisor(max_workers=1, mode="threads")  # this process's memory is what is measured

    def session() -> None:
        workspace = _workspace(tiny, supervisor, tiny_data, epochs=1000)
        workspace.start()
        wait_for(lambda: len(workspace.trainer.history) > 0)
        workspace.close()

    for _ in range(3):
        session()
    threads, memory = threading.active_count(), _rss_mb()
    for _ in range(20):
        session()
    assert threading.active_count() <= threads
    assert _rss_mb() - memory < 40, f"memory grew from {memory:.0f} MB to {_rss_mb():.0f} MB"


@pytest.mark.slow
def test_soak_training_and_stopping_repeatedly_keeps_threads_and_memory_flat(tiny, tiny_data):
    supervisor = Supervisor(max_workers=1, mode="threads")
    workspace = _workspace(tiny, supervisor, tiny_data, epochs=1000)

    def cycle():
        workspace.start()
        wait_for(lambda: len(workspace.trainer.history) > 0 and workspace.status().state == "running")
        time.sleep(0.2)
        workspace.stop(wait=True)

    # Warm up: compile, allocate. TensorFlow's allocator grows for the first few resets (about 10 MB
    # each, measured 2026-11-26) and then stays flat, so the measurement starts after three.
    for round_number in range(15):
        cycle()
        if round_number % 5 == 4:
            workspace.reset()
    threads, memory = threading.active_count(), _rss_mb()
    for round_number in range(20):
        cycle()
        if round_number % 5 == 4:
            workspace.reset()  # a fresh model now and then, as users do
    assert threading.active_count() <= threads
    assert _rss_mb() - memory < 40, f"memory grew from {memory:.0f} MB to {_rss_mb():.0f} MB"
    assert supervisor.running_count == 0 and not workspace.training


def test_a_run_that_cannot_be_saved_says_so_and_keeps_its_model(tiny, tiny_data, tmp_path):
    blocked = tmp_path / "runs"
    blocked.write_text("a file where the runs folder should be")
    workspace = _workspace(tiny, Supervisor(max_workers=1), tiny_data, runs_dir=blocked, epochs=1)
    workspace.start()
    wait_for(lambda: not workspace.training)
    status = workspace.status()
    assert status.state == "finished" and status.save_error
    assert workspace.trained


class SlowToBuild(Supervisor):
    """A supervisor whose trainers take a while to hand out, as a new one does (about a second)."""

    def __init__(self, **options):
        super().__init__(**options)
        self.building, self.proceed = threading.Event(), threading.Event()

    def trainer(self, settings, data):
        self.building.set()
        self.proceed.wait(10)
        return super().trainer(settings, data)


def test_start_clicked_while_a_size_change_builds_its_trainer_trains_the_new_model(tiny, tiny_data):
    """Streamlit's fast reruns run the Start click's script while the size change's run is still
    building the new trainer, in another thread: the start must wait for the new model."""
    supervisor = SlowToBuild(max_workers=1)
    supervisor.proceed.set()
    visitor = _workspace(tiny, supervisor, tiny_data, latent_dim=5, epochs=2)  # someone else's 5-D trainer,
    visitor.close()  # recycled when they leave
    workspace = _workspace(tiny, supervisor, tiny_data, epochs=2)
    supervisor.building.clear(), supervisor.proceed.clear()
    size_change = threading.Thread(target=workspace.switch, args=(Settings(latent_dim=5, epochs=2),))
    size_change.start()
    assert supervisor.building.wait(10)
    start_click = threading.Thread(target=workspace.start)
    start_click.start()
    start_click.join(0.3)  # unguarded, the start lands here, on the old model
    supervisor.proceed.set()
    size_change.join(10), start_click.join(10)
    wait_for(lambda: workspace.job is not None and not workspace.training)
    status = workspace.status()
    assert workspace.job.trainer is workspace.trainer and workspace.trainer.settings.latent_dim == 5
    assert status.state == "finished" and status.epoch == 2 and status.step == 2 * 11
    assert len(workspace.trainer.history.records("val")) == 2


def test_reset_clears_a_diverged_run_and_its_message(tiny, tiny_data):
    workspace = _workspace(tiny, Supervisor(max_workers=1), tiny_data, loss="elbo", learning_rate=10.0, epochs=5)
    workspace.start()
    wait_for(lambda: not workspace.training)
    status = workspace.status()
    assert status.state == "diverged" and status.result.restored_epoch == 0
    workspace.reset()
    status = workspace.status()
    assert status.state == "idle" and status.result is None and not workspace.trained


@pytest.mark.slow
def test_a_process_that_exits_while_trainers_warm_up_exits_cleanly(tmp_path):
    """Supervisor.trainer compiles in a background thread; exiting mid-compile used to abort in TensorFlow."""
    script = tmp_path / "exit_early.py"
    script.write_text(
        "from playground.config import Settings\n"
        "from playground.data import load_dataset\n"
        "from playground.jobs import Supervisor\n"
        "from playground.training import TrainingData\n"
        "data = TrainingData.from_dataset(load_dataset('mnist', 'bundled'))\n"
        "supervisor = Supervisor(max_workers=1, mode='threads')\n"
        "for latent in (3, 4):\n"
        "    supervisor.trainer(Settings(loss='elbo', latent_dim=latent, intermediate_dim=64, epochs=1000), data)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
