"""Training on a local Ray cluster through the Ray backend, inside a network namespace of its own (tests/netns.py).

Outside the namespace only ``test_in_a_network_namespace`` runs: it runs this module
again inside one, where a 2-CPU Ray head node listens on 127.0.0.1 only.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from playground.config import Settings
from playground.models import build_vae
from playground.training import TrainerState
from playground.worker_core import Command, Failed, Finished, JobSpec, LoadData, NeedData, Started, Update, Weights
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
        for message in worker.receive(0.5):
            if isinstance(message, NeedData):
                worker.send(LoadData(message.key, *flat))
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


def test_a_killed_actor_reads_as_a_failed_job(cluster, flat):
    worker = cluster.worker()
    worker.send(job("two"))
    collect(worker, flat, lambda got: any(isinstance(m, Update) for m in got))
    ray.kill(worker.actor)
    messages = collect(worker, flat, lambda got: any(isinstance(m, Failed) for m in got), timeout=30)
    assert "lost" in messages[-1].error and messages[-1].job_id == "two"
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
