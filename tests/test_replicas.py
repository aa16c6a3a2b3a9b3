"""Several app servers (replicas) on one runs root: a workspace's folder is written by one replica at a time,
and a workspace closed on one replica reopens, with its model and runs, on another."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground import jobs, runs
from playground.config import Settings
from playground.jobs import Supervisor
from playground.runs import LEASE_FILE, WorkspaceBusy, WorkspaceLease, list_runs
from playground.training import TrainingData
from playground.workspace import LoadedData, Workspace, Workspaces
from tests.conftest import APP
from tests.support import wait_for

SETTINGS = Settings(loss="elbo", latent_dim=3, intermediate_dim=32, epochs=2)


class Replica:
    """What one ``streamlit run app.py`` process shares between its sessions: a supervisor and a registry."""

    def __init__(self, root, loader):
        self.root, self.loader = root, loader
        self.supervisor, self.registry = Supervisor(max_workers=1), Workspaces()

    def open(self, token: str, session: str = "tab") -> Workspace:
        folder = self.root / token
        return self.registry.open(token, session, lambda: Workspace(SETTINGS, self.loader, self.supervisor, folder,
                                                                    WorkspaceLease(folder)))  # fmt: skip


@pytest.fixture
def loader(tiny):
    loaded = LoadedData(tiny, TrainingData.from_dataset(tiny))
    return lambda name: loaded


@pytest.fixture
def quick_leases(monkeypatch):
    monkeypatch.setattr(runs, "LEASE_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(runs, "LEASE_HEARTBEAT_SECONDS", 0.1)


def train(workspace: Workspace) -> None:
    workspace.start()
    wait_for(lambda: not workspace.training, 120, "training did not end")


@pytest.mark.slow
def test_two_replicas_train_their_own_workspaces_on_one_runs_root(loader, tmp_path, quick_leases):
    a, b = Replica(tmp_path, loader), Replica(tmp_path, loader)
    first, second = a.open("token-aaaa"), b.open("token-bbbb")
    first.start()
    second.start()
    wait_for(lambda: not first.training and not second.training, 120, "training did not end")
    for token in ("token-aaaa", "token-bbbb"):
        assert [run.name for run in list_runs(tmp_path / token)] == ["run-001"]
    holders = {json.loads((tmp_path / token / LEASE_FILE).read_text())["id"] for token in ("token-aaaa", "token-bbbb")}
    assert holders == {first.lease.owner["id"], second.lease.owner["id"]}


@pytest.mark.slow
def test_a_workspace_open_on_one_replica_is_refused_on_another_then_reopens_there(loader, tmp_path, quick_leases,
                                                                                monkeypatch):  # fmt: skip
    monkeypatch.setattr(jobs, "ABANDON_SECONDS", 0.0)
    a, b = Replica(tmp_path, loader), Replica(tmp_path, loader)
    first = a.open("token-shared")
    a.supervisor.register("token-shared", lambda: a.registry.close("token-shared"))
    train(first)
    weights, records = first.trainer.model.get_weights(), first.trainer.history.records()
    with pytest.raises(WorkspaceBusy, match="open on another app server"):
        b.open("token-shared")
    assert b.registry.get("token-shared") is None
    assert a.supervisor.sweep(lambda token: False) == ["token-shared"]  # its tabs are gone: replica A lets go
    assert not (tmp_path / "token-shared" / LEASE_FILE).exists()
    again = b.open("token-shared")  # the learner's next request lands on replica B
    assert again.trainer.history.records() == records and again.trainer.epoch == 2
    for restored, saved in zip(again.trainer.model.get_weights(), weights):
        np.testing.assert_array_equal(restored, saved)
    train(again)  # training on continues the same run, now written by B
    assert again.trainer.epoch == 4 and [run.name for run in list_runs(tmp_path / "token-shared")] == ["run-001"]
    assert list_runs(tmp_path / "token-shared")[0].summary["epochs"] == 4
    with pytest.raises(WorkspaceBusy):
        a.open("token-shared")


def test_the_lease_heartbeat_moves_while_held(tmp_path, quick_leases):
    lease = WorkspaceLease(tmp_path / "token").acquire()
    try:
        first = lease.holder()["heartbeat"]
        wait_for(lambda: lease.holder()["heartbeat"] > first, 5, "the heartbeat did not move")
        assert lease.held and not lease.lost
    finally:
        lease.release()
    assert not (tmp_path / "token" / LEASE_FILE).exists()


def test_a_replica_that_died_is_taken_over_once_its_heartbeat_is_stale(tmp_path, quick_leases):
    folder = tmp_path / "token"
    folder.mkdir()
    died = {"host": "replica-b", "pid": 4242, "process": "x", "id": "gone", "heartbeat": time.time()}
    (folder / LEASE_FILE).write_text(json.dumps(died))
    with pytest.raises(WorkspaceBusy, match=r"another app server \(replica-b\)"):
        WorkspaceLease(folder).acquire()
    (folder / LEASE_FILE).write_text(json.dumps({**died, "heartbeat": time.time() - runs.LEASE_STALE_SECONDS - 1}))
    lease = WorkspaceLease(folder).acquire()
    try:
        assert lease.held and lease.holder()["host"] != "replica-b"
    finally:
        lease.release()


def test_a_stopped_server_on_this_host_is_taken_over_at_once(tmp_path, quick_leases):
    folder = tmp_path / "token"
    folder.mkdir()
    lease = WorkspaceLease(folder)
    gone = {**lease.owner, "process": "an earlier server", "pid": 2**22 + 17, "id": "old", "heartbeat": time.time()}
    (folder / LEASE_FILE).write_text(json.dumps(gone))
    lease.acquire()
    try:
        assert lease.held
    finally:
        lease.release()


def test_the_page_says_when_its_workspace_is_open_on_another_app_server(tmp_path, monkeypatch, quick_leases):
    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path))
    folder = tmp_path / "token-elsewhere"
    folder.mkdir()
    holder = {"host": "replica-b", "pid": 1, "process": "x", "id": "b", "heartbeat": time.time() + 60}
    (folder / LEASE_FILE).write_text(json.dumps(holder))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["ws"] = "token-elsewhere"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("open on another app server (replica-b)" in error.value for error in at.error)
    assert json.loads((folder / LEASE_FILE).read_text())["id"] == "b", "the other replica's lease is left alone"
