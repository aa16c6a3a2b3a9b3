"""Workspaces by address: sessions of one token share a live workspace, the janitor keeps an interrupted
run, a later workspace (or a restarted server) carries on from disk, and switches build one trainer."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from playground import jobs
from playground.config import Settings
from playground.jobs import Supervisor
from playground.runs import list_runs, read_history, read_model
from playground.training import TrainingData
from playground.workspace import CURRENT, LoadedData, Workspace, Workspaces
from tests.support import wait_for

SETTINGS = Settings(loss="elbo", latent_dim=3, intermediate_dim=32, kl_weight=0.5, epochs=1000)


@pytest.fixture
def loader(tiny):
    """A data loader: the tiny MNIST subset under either dataset's name, loaded once per name."""
    loaded = {}

    def load(name: str) -> LoadedData:
        if name not in loaded:
            dataset = dataclasses.replace(tiny, name=name)
            loaded[name] = LoadedData(dataset, TrainingData.from_dataset(dataset))
        return loaded[name]

    return load


@pytest.fixture
def supervisor():
    return Supervisor(max_workers=2)


def summary(folder) -> dict:
    return json.loads((folder / "config.json").read_text())["summary"]


def test_sessions_of_one_address_share_the_live_workspace_until_all_are_gone(loader, supervisor, tmp_path,
                                                                             monkeypatch):  # fmt: skip
    monkeypatch.setattr(jobs, "ABANDON_SECONDS", 0.0)
    registry, made = Workspaces(), []

    def make():
        made.append(Workspace(SETTINGS, loader, supervisor, tmp_path / "token"))
        return made[-1]

    first = registry.open("token", "tab-1", make)
    supervisor.register("token", lambda: registry.close("token"))
    first.start()
    wait_for(lambda: first.trainer.epoch >= 1, 60, "training did not get through an epoch")
    reloaded = registry.open("token", "tab-2", make)  # a reload, or the same address in another browser
    assert reloaded is first and len(made) == 1 and reloaded.training
    alive = {"tab-2"}
    is_alive = lambda token: registry.alive(token, alive.__contains__)  # noqa: E731
    assert supervisor.sweep(is_alive) == [], "the first tab is gone but the second still looks at it"
    steps = first.status().step
    wait_for(lambda: first.status().step > steps, 30, "training stopped when the first tab went")
    alive.clear()
    assert supervisor.sweep(is_alive) == ["token"]
    assert first.closed and not first.training


def test_a_janitor_close_mid_run_keeps_the_run_as_interrupted(loader, supervisor, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "ABANDON_SECONDS", 0.0)
    registry = Workspaces()
    workspace = registry.open("token", "tab", lambda: Workspace(SETTINGS, loader, supervisor, tmp_path))
    supervisor.register("token", lambda: registry.close("token"))
    workspace.start()
    wait_for(lambda: len(workspace.trainer.history) > 3, 60, "training did not start")
    assert supervisor.sweep(lambda token: False) == ["token"]
    runs = list_runs(tmp_path)
    assert [run.name for run in runs] == ["run-001"]
    assert runs[0].summary["reason"] == "interrupted" and runs[0].settings == SETTINGS
    assert len(read_history(runs[0])) > 3
    assert read_model(runs[0]).latent_dim == 3


def test_a_later_workspace_of_the_address_carries_on_from_disk(loader, supervisor, tmp_path):
    registry = Workspaces()
    first = registry.open("token", "tab", lambda: Workspace(SETTINGS, loader, supervisor, tmp_path))
    first.update(SETTINGS.replace(epochs=2))
    first.start()
    wait_for(lambda: not first.training, 60, "training did not end")
    weights = first.trainer.model.get_weights()
    records = first.trainer.history.records()
    registry.close("token")  # every tab closed; later someone opens the address again
    again = registry.open("token", "tab-2", lambda: Workspace(Settings(), loader, supervisor, tmp_path))
    assert again is not first
    assert again.settings == SETTINGS.replace(epochs=2)
    assert again.trainer.history.records() == records and again.trainer.epoch == 2
    for restored, saved in zip(again.trainer.model.get_weights(), weights):
        np.testing.assert_array_equal(restored, saved)
    assert again.run_folder == tmp_path / "run-001", "training on continues the same run"
    again.start()
    wait_for(lambda: not again.training, 60, "training did not end")
    assert again.trainer.epoch == 4 and [run.name for run in list_runs(tmp_path)] == ["run-001"]


def test_while_training_the_current_model_is_saved_at_each_epoch(loader, supervisor, tmp_path):
    workspace = Workspace(SETTINGS, loader, supervisor, tmp_path)
    workspace.start()
    try:
        wait_for(lambda: (tmp_path / CURRENT / "config.json").exists() and summary(tmp_path / CURRENT)["epochs"] >= 2,
                 60, "no checkpoint after two epochs")  # fmt: skip
        assert workspace.training and summary(tmp_path / CURRENT)["reason"] == "training"
    finally:
        workspace.stop(wait=True)
    assert summary(tmp_path / CURRENT)["reason"] == "saved", "the run's end writes the final state"


def test_after_a_server_restart_mid_run_the_workspace_restores_and_keeps_the_run(loader, supervisor, tmp_path):
    workspace = Workspace(SETTINGS, loader, supervisor, tmp_path / "live")
    workspace.start()
    wait_for(lambda: (tmp_path / "live" / CURRENT / "config.json").exists(), 60, "no checkpoint")
    # The server dies here: what it left on disk is a checkpoint taken while training.
    shutil.copytree(tmp_path / "live" / CURRENT, tmp_path / "restarted" / CURRENT)
    workspace.stop(wait=True)
    restored = Workspace(Settings(), loader, supervisor, tmp_path / "restarted")
    assert restored.settings == SETTINGS and restored.trained and not restored.training
    runs = list_runs(tmp_path / "restarted")
    assert [run.name for run in runs] == ["run-001"] and runs[0].summary["reason"] == "interrupted"
    assert summary(tmp_path / "restarted" / CURRENT)["reason"] == "saved", "restored once, not again"


def test_reopening_a_run_builds_one_trainer(loader, supervisor, tmp_path, monkeypatch):
    workspace = Workspace(SETTINGS.replace(epochs=1), loader, supervisor, tmp_path)
    workspace.start()
    wait_for(lambda: not workspace.training, 60, "training did not end")
    workspace.switch(Settings(dataset="fashion_mnist"))
    run = list_runs(tmp_path)[0]
    made = []
    original = supervisor.trainer
    monkeypatch.setattr(supervisor, "trainer", lambda *args: made.append(args) or original(*args))
    workspace.switch(run.settings, read_model(run), read_history(run), run.path)
    assert len(made) == 1
    assert workspace.dataset.name == "mnist" and workspace.trainer.epoch == 1 and workspace.run_folder == run.path


def test_a_dataset_that_cannot_be_loaded_leaves_the_workspace_as_it_was(loader, supervisor):
    def load(name):
        if name == "fashion_mnist":
            raise ValueError("Fashion-MNIST is not on this server.")
        return loader(name)

    workspace = Workspace(SETTINGS, load, supervisor)
    trainer, settings = workspace.trainer, workspace.settings
    with pytest.raises(ValueError, match="not on this server"):
        workspace.switch(SETTINGS.replace(dataset="fashion_mnist", latent_dim=5))
    assert workspace.trainer is trainer and workspace.settings == settings and workspace.dataset.name == "mnist"


def test_a_reset_or_a_new_model_is_what_comes_back_not_the_model_it_replaced(loader, supervisor, tmp_path):
    workspace = Workspace(SETTINGS.replace(epochs=1), loader, supervisor, tmp_path)
    workspace.start()
    wait_for(lambda: not workspace.training, 60, "training did not end")
    assert (tmp_path / CURRENT).is_dir()
    workspace.reset()
    assert not (tmp_path / CURRENT).exists()
    assert not Workspace(Settings(), loader, supervisor, tmp_path).trained
    run = list_runs(tmp_path)[0]
    workspace.switch(run.settings, read_model(run), read_history(run), run.path)  # a reopened run is kept
    assert summary(tmp_path / CURRENT)["run"] == "run-001"
    assert Workspace(Settings(), loader, supervisor, tmp_path).trainer.epoch == 1
