"""Training on a local Ray cluster through the Ray backend, inside a network namespace of its own (tests/netns.py).

Outside the namespace only ``test_in_a_network_namespace`` runs: it runs this module
again inside one, where a 2-CPU Ray head node listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from playground.config import Settings
from playground.models import build_vae
from playground.training import TrainerState, TrainingData
from playground.worker_core import Command, Failed, Finished, JobSpec, LoadData, NeedData, Started, Update, Weights
from playground.workers import WorkerDied
from playground.workspace import LoadedData, Workspace
from tests.browser import (
    ARTIFACTS,
    POINTS_JS,
    Server,
    launch_chromium,
    open_context,
    require_chromium,
    set_number,
    start_button,
)
from tests.netns import in_namespace, listening_addresses, ray_cluster, rerun_here  # noqa: F401  (a fixture)
from tests.support import wait_for

test_in_a_network_namespace = rerun_here(__file__)

if in_namespace():
    pytest.importorskip("ray")
    import ray
    import ray.util.state

    from playground import ray_backend

SETTINGS = Settings(loss="elbo", latent_dim=3, intermediate_dim=32, epochs=1000)


@pytest.fixture(scope="module")
def cluster(ray_cluster):  # noqa: F811
    connected = ray_backend.RayCluster(ray_cluster.address)
    yield connected
    connected.shutdown()


@pytest.fixture(scope="module")
def flat(tiny):
    return tiny.x_train.reshape(-1, 784), tiny.x_test.reshape(-1, 784)


def collect(worker, flat, until, timeout: float = 120.0) -> list:
    """Messages from ``worker`` (answering its NeedData) until ``until(messages)`` holds."""
    messages, deadline = [], time.monotonic() + timeout
    while not until(messages):
        assert time.monotonic() < deadline, f"timed out; got {[type(m).__name__ for m in messages][-20:]}"
        message = worker.receive(0.5)
        if isinstance(message, NeedData):
            worker.send(LoadData(message.key, *flat))
        if message is not None:
            messages.append(message)
    return messages


def job(job_id: str) -> JobSpec:
    return JobSpec(job_id, TrainerState(SETTINGS, build_vae(SETTINGS).get_weights()), "tiny")


def test_the_cluster_listens_on_loopback_only(ray_cluster):  # noqa: F811
    assert listening_addresses() <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, listening_addresses()


def test_an_actor_trains_streams_and_stops(cluster, flat):
    worker = cluster.worker()
    try:
        worker.send(job("one"))
        messages = collect(worker, flat, lambda got: sum(isinstance(m, Update) for m in got) >= 20)
        assert isinstance(messages[1], Started) or any(isinstance(m, Started) for m in messages)
        assert any(isinstance(m, Weights) for m in messages)
        names = [actor.name for actor in ray.util.state.list_actors(filters=[("state", "=", "ALIVE")])]
        assert worker.name in names
        worker.send(Command("one", "stop"))
        end = collect(worker, flat, lambda got: any(isinstance(m, Finished | Failed) for m in got), timeout=10)
        assert isinstance(end[-1], Finished) and end[-1].result.reason == "stopped"
        assert np.all(np.isfinite(end[-1].state.weights[0]))
    finally:
        worker.close()


# An app server outside the cluster's network connects through Ray Client; one process holds one connection.
CLIENT_SCRIPT = """
import sys, time
from playground import ray_backend
from playground.config import Settings
from playground.models import build_vae
from playground.training import TrainerState
from playground.worker_core import Command, Finished, JobSpec, LoadData, NeedData, Update
from playground.data import load_dataset
data = load_dataset("mnist", "bundled")
flat = data.x_train[:700].reshape(-1, 784), data.x_test[:100].reshape(-1, 784)
cluster = ray_backend.RayCluster(sys.argv[1])
worker = cluster.worker()
settings = Settings(loss="elbo", latent_dim=3, intermediate_dim=32, epochs=1000)
worker.send(JobSpec("client", TrainerState(settings, build_vae(settings).get_weights()), "tiny"))
updates, deadline = 0, time.monotonic() + 240
while time.monotonic() < deadline:
    message = worker.receive(0.5)
    if isinstance(message, NeedData):
        worker.send(LoadData(message.key, *flat))
    updates += isinstance(message, Update)
    if updates == 10:
        worker.send(Command("client", "stop"))
    if isinstance(message, Finished):
        print("ended", message.result.reason, updates)
        break
worker.close()
cluster.shutdown()
"""


def test_an_app_server_outside_the_cluster_trains_through_ray_client(ray_cluster):  # noqa: F811
    done = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, "ray://127.0.0.1:10001"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ended stopped" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_killed_actor_reads_as_a_dead_worker(cluster, flat):
    worker = cluster.worker()
    worker.send(job("two"))
    collect(worker, flat, lambda got: any(isinstance(m, Update) for m in got))
    ray.kill(worker.actor)
    with pytest.raises(WorkerDied):
        collect(worker, flat, lambda got: False, timeout=30)
    assert "killed" in worker.lost
    worker.close()


def test_a_third_actor_waits_for_a_cpu_on_a_two_cpu_cluster(cluster, flat):
    workers = [cluster.worker() for _ in range(3)]
    try:
        wait_for(lambda: not workers[0].waiting and not workers[1].waiting, 120, "two actors were not placed")
        time.sleep(1.0)
        assert workers[2].waiting
        workers[0].close()
        wait_for(lambda: not workers[2].waiting, 60, "the third actor did not get the freed CPU")
    finally:
        for worker in workers:
            worker.close()


# ---- through the workspace, as the page uses it ----


@pytest.fixture(scope="module")
def supervisor(ray_cluster):  # noqa: F811
    shared = ray_backend.RaySupervisor(ray_cluster.address)
    yield shared
    shared.shutdown()


@pytest.fixture(scope="module")
def loader(tiny):
    loaded = LoadedData(tiny, TrainingData.from_dataset(tiny))
    return lambda name: loaded


def training_actors() -> list:
    alive = ray.util.state.list_actors(filters=[("state", "=", "ALIVE")])
    return [actor for actor in alive if actor.class_name == "TrainingActor"]


def wait_training(workspace: Workspace, records: int = 5, timeout: float = 180.0) -> None:
    start = len(workspace.trainer.history)
    wait_for(lambda: workspace.status().state == "running" and len(workspace.trainer.history) >= start + records,
             timeout, f"no training updates: {workspace.status()}")  # fmt: skip


def test_a_workspace_trains_through_an_actor_streams_stops_at_once_and_starts_again(supervisor, loader, tmp_path):
    workspace = Workspace(SETTINGS, loader, supervisor, tmp_path)
    pressed = time.monotonic()
    workspace.start()
    wait_for(lambda: len(workspace.trainer.history) > 0, 180, "no first update")
    print(f"Start to the first update through a new actor: {time.monotonic() - pressed:.1f} s")
    wait_training(workspace)
    before, started = len(workspace.trainer.history), time.monotonic()
    time.sleep(3.0)
    rate = (len(workspace.trainer.history) - before) / (time.monotonic() - started)
    print(f"updates through Ray: {rate:.1f}/s")
    assert rate >= 2.0, f"{rate:.1f} updates/s"
    actors = training_actors()
    assert len(actors) == 1 and actors[0].name.startswith(ray_backend.ACTOR_PREFIX), actors
    asked = time.monotonic()
    workspace.stop()
    wait_for(lambda: not workspace.training, 10, "training did not stop")
    took = time.monotonic() - asked
    print(f"stop took {took:.2f} s")
    assert took < 1.0 and workspace.status().state == "stopped"
    wait_for(lambda: not training_actors(), 10, "the actor outlived its run")
    step = workspace.status().step
    workspace.start()  # carries on from where it stopped, in a new actor
    wait_training(workspace)
    assert workspace.status().step > step and min(r.step for r in workspace.trainer.history.records()) <= step
    workspace.stop(wait=True)


def test_a_killed_actor_fails_the_run_clearly_keeps_the_last_weights_and_start_works_again(supervisor, loader,
                                                                                          tmp_path):  # fmt: skip
    workspace = Workspace(SETTINGS, loader, supervisor, tmp_path)
    initial = [w.copy() for w in workspace.trainer.weights()[1]]
    workspace.start()
    wait_training(workspace, records=30)
    wait_for(lambda: workspace.trainer.weights()[0] > 0, 30, "no weights snapshot came")
    (actor,) = training_actors()
    ray.kill(ray.get_actor(actor.name, namespace=ray_backend.NAMESPACE))
    wait_for(lambda: workspace.status().state == "failed", 10, "the page was not told")
    wait_for(lambda: not workspace.training, 60, "the failed job did not end")  # it saves the run first
    status = workspace.status()
    assert status.crash is not None and status.crash.kept_step is not None, status
    assert "stopped unexpectedly" in status.error and f"step {status.crash.kept_step:,}" in status.error
    kept = workspace.trainer.weights()[1]
    assert any(not np.array_equal(a, b) for a, b in zip(kept, initial)), "the trained weights were thrown away"
    assert all(np.all(np.isfinite(w)) for w in kept)
    workspace.start()
    wait_training(workspace)
    workspace.stop(wait=True)
    assert workspace.status().state == "stopped"


def test_two_sessions_train_at_once_on_two_cpus_and_a_third_waits_and_can_stop(supervisor, loader, tmp_path):
    workspaces = [Workspace(SETTINGS, loader, supervisor, tmp_path / f"ws-{i}") for i in range(3)]
    try:
        for workspace in workspaces[:2]:
            workspace.start()
        for workspace in workspaces[:2]:
            wait_training(workspace)
        third = workspaces[2]
        third.start()
        wait_for(lambda: third.status().state == "queued", 10, "the third did not wait")
        time.sleep(2.0)
        status = third.status()
        assert status.state == "queued" and status.waiting_for_cluster and status.queue_position is None
        assert all(len(w.trainer.history) > 0 for w in workspaces[:2]) and len(third.trainer.history) == 0
        third.stop()
        wait_for(lambda: not third.training, 5, "stop did not end the wait")
        assert third.status().state == "stopped"
        pending = ray.util.state.list_actors(filters=[("state", "=", "PENDING_CREATION")])
        assert pending == [], "the cancelled actor still waits for a CPU"
    finally:
        for workspace in workspaces:
            workspace.stop(wait=True)


# ---- the page, in Chromium, on a server that trains on the cluster ----


def chart_growth(page, seconds: float = 4.0) -> float:
    """How many times a second the page's loss chart grew."""
    changes, last, started = 0, page.evaluate(POINTS_JS), time.monotonic()
    while time.monotonic() - started < seconds:
        now = page.evaluate(POINTS_JS)
        if now != last:
            changes, last = changes + 1, now
        time.sleep(0.05)
    return changes / seconds


@pytest.mark.browser
def test_pages_train_on_the_cluster_two_at_once_while_a_third_waits(ray_cluster, supervisor, tmp_path):  # noqa: F811
    require_chromium()
    from playwright.sync_api import sync_playwright

    server = Server(tmp_path / "runs", PLAYGROUND_RAY_ADDRESS=ray_cluster.address)
    pages = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for _ in range(3):
                context, page = open_context(browser, server.url)
                set_number(page, "Epochs", 1000)
                pages.append(page)
            start_button(pages[0]).click()
            wait_for(lambda: pages[0].evaluate(POINTS_JS) > 0, 180, "the loss chart never appeared")
            rate = chart_growth(pages[0])  # the page's own polling sets the pace: a figure, not a pass mark here
            print(f"the page's loss chart grew {rate:.1f} times a second (load average {os.getloadavg()[0]:.1f})")
            assert rate > 0
            start_button(pages[1]).click()
            wait_for(lambda: pages[1].evaluate(POINTS_JS) > 0, 180, "the second page's chart never appeared")
            grown = pages[0].evaluate(POINTS_JS)
            wait_for(lambda: pages[0].evaluate(POINTS_JS) > grown, 10, "the first stopped when the second started")
            start_button(pages[2]).click()
            pages[2].get_by_text("waiting for a free CPU on the cluster").first.wait_for(timeout=20_000)
            assert len(training_actors()) == 2
            pages[2].get_by_role("button", name="Stop training").click()
            wait_for(lambda: start_button(pages[2]).is_enabled(), 10, "Stop did not end the wait")
            for page in pages[:2]:
                page.get_by_role("button", name="Stop training").click()
                wait_for(lambda page=page: start_button(page).is_enabled(), 10, "training did not stop")
            for page in pages:
                assert page.locator('[data-testid="stException"]').count() == 0
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for index, page in enumerate(pages):
                page.screenshot(path=str(ARTIFACTS / f"ray-page-{index}.png"))
            raise
        finally:
            browser.close()
            server.stop()
