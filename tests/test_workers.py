"""Training in worker processes, through the workspace the page uses: streaming, pause and stop, a worker
killed mid-run, a worker that raises, retirement, and nothing left behind when the server goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from playground.config import Settings
from playground.jobs import Supervisor, TrainingJob
from playground.training import TrainerState, TrainingData
from playground.workers import RemoteTrainer, WorkerPool
from playground.workspace import LoadedData, Workspace
from tests.support import wait_for

SETTINGS = Settings(loss="elbo", latent_dim=3, intermediate_dim=32, epochs=1000)


@pytest.fixture(scope="module")
def loaded(tiny):
    return LoadedData(tiny, TrainingData.from_dataset(tiny))


@pytest.fixture(scope="module")
def supervisor():
    return Supervisor(max_workers=2, mode="processes")  # its workers are this process's shared pool


def workspace(loaded, supervisor, settings=SETTINGS, runs_dir=None) -> Workspace:
    return Workspace(settings, lambda name: loaded, supervisor, runs_dir)


def test_a_run_in_a_worker_streams_its_history_and_weights_and_obeys_pause_and_stop(loaded, supervisor):
    ws = workspace(loaded, supervisor)
    version = ws.trainer.weights()[0]
    ws.start()
    wait_for(lambda: ws.trainer.epoch >= 2, 120, "no two epochs")
    assert ws.trainer.worker_pid not in (None, os.getpid())
    # Snapshots come at most twice a second: with the trainer compiled before Start, two epochs can take less.
    wait_for(lambda: ws.trainer.weights()[0] > version, 30, "no weights snapshot arrived while it trained")
    assert len(ws.trainer.history.records("val")) >= 2 and ws.trainer.history.kl_per_dim.shape == (3,)
    ws.pause()
    wait_for(lambda: ws.status().state == "paused")
    # The call in flight when the pause came still lands; after it, nothing moves.
    wait_for(lambda: _holds_still(ws, 1.0), 30, "paused, it went on training")
    step = ws.status().step
    ws.resume()
    wait_for(lambda: ws.status().step > step, 30, "resume did not carry on")
    ws.stop(wait=True)
    status = ws.status()
    assert status.state == "stopped" and status.result.reason == "stopped"
    assert status.step == ws.trainer.history.last("train").step
    codes = np.zeros((1, 3))
    before = ws.refresh().decode(codes)
    ws.update(SETTINGS.replace(epochs=1))
    ws.start()  # carries on from where it stopped: the epoch in progress first
    wait_for(lambda: not ws.training, 60, "the next run did not end")
    assert ws.status().state == "finished" and ws.trainer.epoch == status.epoch + 1
    assert not np.array_equal(ws.refresh().decode(codes), before)


def _holds_still(ws, seconds: float) -> bool:
    step = ws.status().step
    time.sleep(seconds)
    return ws.status().step == step


@pytest.mark.slow  # two trainings, one of them restarted in a fresh worker
def test_a_worker_killed_mid_run_fails_its_job_only_and_start_carries_on_from_its_last_weights(loaded, supervisor):
    victim = workspace(loaded, supervisor)
    bystander = workspace(loaded, supervisor, SETTINGS.replace(latent_dim=4, epochs=15))
    victim.start(), bystander.start()
    wait_for(lambda: victim.trainer.weights()[0] >= 3 and victim.trainer.epoch >= 1, 120, "no weights came")
    pid = victim.trainer.worker_pid
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: victim.status().state == "failed", 5, "the page did not learn of the failure in 5 s")
    print(f"failure seen {time.monotonic() - killed:.2f} s after kill -9")
    status = victim.status()
    assert "killed by signal 9 (SIGKILL)" in status.error and f"step {victim.trainer.step:,}" in status.error
    assert victim.trainer.history.last("train").step <= victim.trainer.step
    assert all(np.isfinite(w).all() for w in victim.trainer.weights()[1])
    assert victim.refresh().decode(np.zeros((1, 3))).shape == (1, 28, 28), "the model stays usable"
    kept = victim.trainer.step
    victim.start()
    wait_for(lambda: victim.status().step > kept + 20, 120, "Start did not carry on")
    assert victim.trainer.worker_pid != pid
    victim.stop(wait=True)
    wait_for(lambda: not bystander.training, 180, "the other session's training did not end")
    assert bystander.status().state == "finished" and bystander.trainer.epoch == 15


def test_a_run_that_raises_in_its_worker_fails_with_the_reason_and_the_worker_lives_on(loaded, supervisor):
    trainer = supervisor.trainer(SETTINGS.replace(epochs=1), loaded.device)
    trainer.adopt([np.zeros(3, np.float32)])  # weights of no such model: the worker cannot load them
    job = TrainingJob(trainer, supervisor).start()
    wait_for(lambda: not job.active, 120)
    assert job.state == "failed" and job.error.startswith("ValueError:") and job.crash is None
    pid = trainer.worker_pid
    assert os.path.exists(f"/proc/{pid}"), "the worker is still there for the next job"


@pytest.mark.slow
def test_a_worker_past_its_model_limit_is_retired_between_jobs(loaded):
    pool = WorkerPool(max_models=1, max_mb=100_000)
    try:
        supervisor = Supervisor(max_workers=1, mode="threads")  # the slots; the trainers bring their own pool
        pids = []
        for latent in (2, 3, 3):
            trainer = RemoteTrainer(SETTINGS.replace(latent_dim=latent, epochs=1), loaded.device, pool)
            job = TrainingJob(trainer, supervisor).start()
            wait_for(lambda job=job: not job.active, 180)
            assert job.state == "finished"
            pids.append(trainer.worker_pid)
        assert pids[0] == pids[1], "one model: kept"
        assert pool.retired == 1 and pids[2] != pids[1], "a second shape passed the limit: a fresh worker"
        wait_for(lambda: not os.path.exists(f"/proc/{pids[1]}") or _zombie(pids[1]), 30, "the retired one lingers")
    finally:
        pool.shutdown()


def test_a_model_prepared_before_any_worker_is_ready_is_compiled_by_the_first_one_free(loaded):
    """A page opened while the workers still import TensorFlow asks for its model to be compiled; the
    first worker ready does it, so that Start finds a trainer built and compiled."""
    pool = WorkerPool()
    try:
        trainer = RemoteTrainer(SETTINGS.replace(epochs=1), loaded.device, pool)
        trainer.prepare()  # no worker yet: the preparation waits for one
        pool.keep_warm(1)
        holds = (trainer.settings.model_key(), trainer.data_key)
        wait_for(lambda: any(holds in worker.holds for worker in pool._idle), 180, "the first worker got nothing")
        job = TrainingJob(trainer, Supervisor(max_workers=1, mode="threads")).start()
        wait_for(lambda: not job.active, 180)
        assert job.state == "finished" and trainer.built_for_run is False, "Start found the trainer ready"
    finally:
        pool.shutdown()


def test_a_start_behind_a_preparation_says_it_compiles_until_the_worker_starts_it(loaded):
    """Start right after the settings changed: the worker compiles what it was asked to prepare first, and
    the page says "compiling", not "starting", until the job has started."""
    pool = WorkerPool()
    try:
        pool.keep_warm(1)
        wait_for(lambda: pool._idle, 180, "no worker started")
        trainer = RemoteTrainer(SETTINGS.replace(latent_dim=4, epochs=1), loaded.device, pool)
        trainer.prepare()  # a new model: seconds of compiling in the worker
        seen = []
        job = TrainingJob(trainer, Supervisor(max_workers=1, mode="threads")).start()
        while job.active and not trainer.history.records("train"):
            seen.append(trainer.compiling)
            time.sleep(0.005)
        wait_for(lambda: not job.active, 180)
        assert job.state == "finished" and True in seen, "it said 'compiling' while the worker compiled"
        assert not trainer.compiling and trainer.built_for_run is False, "the job found the trainer prepared"
    finally:
        pool.shutdown()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


SERVER = """
import os, sys, time
from playground.config import Settings
from playground.data import load_dataset
from playground.jobs import Supervisor
from playground.training import TrainingData
from playground.workers import pool
from playground.workspace import LoadedData, Workspace

if __name__ == "__main__":
    dataset = load_dataset("mnist", "bundled")
    loaded = LoadedData(dataset, TrainingData.from_dataset(dataset))
    supervisor = Supervisor(max_workers=2, mode="processes")
    ws = Workspace(Settings(latent_dim=2, intermediate_dim=16, epochs=1000), lambda name: loaded, supervisor)
    ws.start()
    while ws.trainer.step == 0:
        time.sleep(0.1)
    print(" ".join(str(pid) for pid in pool().pids()), flush=True)
    if sys.argv[1] == "exit":
        sys.exit(0)
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_no_worker_or_shared_memory_outlives_the_server(tmp_path, how):
    """A server that exits stops its workers at exit; one killed outright leaves workers that notice."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    shm_before = _our_shared_memory()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen([sys.executable, str(script), how], env=env, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in server.stdout.readline().split()]
        assert len(pids) >= 1
        if how == "kill":
            server.kill()
        server.wait(60)
        wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in pids), 30,
                 f"workers {pids} outlived the server")  # fmt: skip
    finally:
        if server.poll() is None:
            server.kill()
    assert _our_shared_memory() <= shm_before, "shared memory left behind"


def _our_shared_memory() -> set[str]:
    """Segments Python's multiprocessing makes (semaphores, shared_memory blocks), not other programs'."""
    return {name for name in os.listdir("/dev/shm") if name.startswith(("sem.mp-", "psm_", "mp-"))}


def _worker_rss(pids) -> dict[int, float]:
    from playground.worker_core import rss_mb

    return {pid: rss_mb(pid) for pid in pids}


@pytest.mark.slow
def test_thirty_model_shapes_leave_the_server_flat_and_the_workers_within_their_limit(loaded, supervisor, tmp_path):
    """Issue 11: a server that trained in threads grew about 22 MB per new model shape, for good."""
    from playground.worker_core import rss_mb
    from playground.workers import pool

    shapes = [(latent, hidden) for hidden in (8, 16, 24, 32, 40, 48) for latent in (2, 3, 4, 5, 6)]
    ws = workspace(loaded, supervisor, SETTINGS.replace(latent_dim=1, intermediate_dim=8, epochs=1), tmp_path)
    figures = []  # runs and the current model are saved, as in the app

    def train(latent: int, hidden: int) -> None:
        ws.switch(SETTINGS.replace(latent_dim=latent, intermediate_dim=hidden, epochs=1))
        ws.start()
        wait_for(lambda: not ws.training, 180, f"784-{hidden}-{latent} did not finish")
        assert ws.status().state == "finished"
        ws.refresh().decode(np.zeros((1, latent)))  # the page's use of the model
        workers = _worker_rss(pool().pids())
        figures.append((rss_mb(), max(workers.values(), default=0.0)))
        assert all(mb <= pool().max_mb for mb in workers.values()), f"a worker passed its limit: {workers}"

    train(*shapes[0])
    first = rss_mb()
    for shape in shapes[1:]:
        train(*shape)
    grown = rss_mb() - first
    print(f"server: {first:.0f} MB after the first shape, {rss_mb():.0f} MB after {len(shapes)} (+{grown:.0f} MB); "
          f"largest worker {max(w for _, w in figures):.0f} MB (limit {pool().max_mb} MB, "
          f"{pool().max_models} models); workers retired: {pool().retired}")  # fmt: skip
    assert len(set(shapes)) == 30 and grown < 150


@pytest.mark.slow
def test_the_page_says_a_worker_died_how_and_which_weights_it_kept_in_both_languages(app):
    from tests.test_app import button, number

    number(app, "Epochs").set_value(1000).run()
    button(app, "Start training").click().run()
    ws = app.session_state["workspace"]
    wait_for(lambda: ws.trainer.weights()[0] >= 3 and ws.status().step > 0, 120, "no weights came")
    os.kill(ws.trainer.worker_pid, signal.SIGKILL)
    wait_for(lambda: ws.status().state == "failed", 5, "the failure was not seen within 5 s")
    app.run()
    step = f"{ws.trainer.step:,}"
    errors = [e.value for e in app.error]
    assert any("killed by signal 9, SIGKILL" in e and f"weights from step {step}" in e for e in errors), errors
    app.session_state["lang"] = "zh"
    app.run()
    assert any("被信号 9（SIGKILL）终止" in e.value and f"第 {step} 步" in e.value for e in app.error)
    assert not app.button(key="start").disabled, "Start works again"


def test_a_reset_gives_the_page_a_new_version_of_the_initial_weights(loaded, supervisor):
    ws = workspace(loaded, supervisor, SETTINGS.replace(epochs=1))
    initial = ws.refresh().decode(np.zeros((1, 3)))
    ws.start()
    wait_for(lambda: not ws.training, 120)
    assert not np.array_equal(ws.refresh().decode(np.zeros((1, 3))), initial)
    ws.reset()
    np.testing.assert_array_equal(ws.refresh().decode(np.zeros((1, 3))), initial)


def test_a_conditional_model_trains_in_a_worker_on_the_labels_sent_with_the_images(loaded, supervisor):
    # The labels cross the pipe with the images: without them a conditional model cannot train there.
    ws = workspace(loaded, supervisor, SETTINGS.replace(conditional=True, epochs=2))
    ws.start()
    wait_for(lambda: not ws.training, 120, "the conditional run did not end")
    status = ws.status()
    assert status.state == "finished", status.error
    assert ws.trainer.worker_pid not in (None, os.getpid())
    model = ws.refresh()
    codes = np.zeros((2, 3), np.float32)
    as_two_classes = model.decode(codes, [1, 7])
    assert not np.allclose(as_two_classes[0], as_two_classes[1]), "the label changes what is drawn"


def test_a_queued_preparation_gives_way_to_a_later_one_for_the_same_model():
    """A page opened with the default settings, then set to a short run before its worker was free: the
    worker skips the first preparation (the second has the settings wanted now); a job behind one does not
    make it skip (the job's trainer is the one it prepares)."""
    from playground.worker_core import JobSpec, Prepare
    from playground.workers import JobQueue

    weights = []
    default, short = TrainerState(SETTINGS, weights), TrainerState(SETTINGS.replace(epochs=10), weights)
    other = TrainerState(SETTINGS.replace(latent_dim=7), weights)
    queue = JobQueue()
    assert not queue.preparing()
    first, second, elsewhere = Prepare(default, "d"), Prepare(short, "d"), Prepare(other, "d")
    for item in (first, elsewhere, second):
        queue.put(item)
    assert queue.preparing()
    assert queue.get() is first and queue.superseded(first), "a later Prepare of the same model is queued"
    queue.done()
    assert queue.get() is elsewhere and not queue.superseded(elsewhere)
    assert queue.preparing(), "taken and not done yet: a job put now waits behind its compile"
    queue.done()
    queue.put(JobSpec("job", short, "d"))
    assert queue.get() is second and not queue.superseded(second), "a job of the same model is no reason to skip"
    queue.done()
    assert not queue.preparing() and isinstance(queue.get(), JobSpec)
