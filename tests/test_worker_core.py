"""The worker core: a job is plain data, and a model carried from one trainer to another trains on exactly."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from playground.config import Settings
from playground.models import build_vae
from playground.training import Control, Trainer, TrainerState, TrainingData, load_trainer_state, trainer_state
from playground.worker_core import Command, Failed, Finished, JobSpec, NeedData, Started, Update, Weights, WorkerCore

SETTINGS = Settings(loss="elbo", latent_dim=3, intermediate_dim=32, epochs=2)


@pytest.fixture(scope="module")
def flat(tiny):
    return tiny.x_train.reshape(-1, 784), tiny.x_test.reshape(-1, 784)


@pytest.fixture(scope="module")
def core(flat):
    worker = WorkerCore()
    worker.add_data("tiny", *flat)
    return worker


def run_job(core, spec) -> list:
    messages = []
    core.run(spec, messages.append)
    return messages


def run_job_stopped_at(core, spec, kind) -> list:
    """``spec``'s messages, with a Stop sent (from another thread, as the host does) at its first ``kind``."""
    messages = []

    def emit(message):
        messages.append(message)
        if isinstance(message, kind):
            threading.Thread(target=core.command, args=(Command(spec.job_id, "stop"),)).start()

    core.run(spec, emit)
    return messages


def test_a_stopped_run_carried_to_another_trainer_goes_on_exactly_as_in_the_same_one(tiny):
    data = TrainingData.from_dataset(tiny)
    here, there = Trainer(SETTINGS, data), Trainer(SETTINGS, data)
    control = Control()
    here.run(on_update=lambda record: control.stop() if record.step >= 5 else None, control=control)
    assert 0 < here.epoch_step < here.steps_per_epoch, "stopped mid-epoch"
    state = pickle.loads(pickle.dumps(trainer_state(here)))
    load_trainer_state(there, state)
    here.run(), there.run()
    assert here.step == there.step and here.epoch == there.epoch == 2
    for a, b in zip(here.model.get_weights(), there.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_job_streams_records_weights_and_ends_with_a_state_that_continues(core):
    state = TrainerState(SETTINGS, build_vae(SETTINGS).get_weights())
    messages = run_job(core, JobSpec("one", state, "tiny"))
    kinds = [type(m) for m in messages]
    assert kinds[0] is Started and kinds[-1] is Finished and Weights in kinds
    updates = [m for m in messages if isinstance(m, Update)]
    assert [m.record.epoch for m in updates if m.record.split == "val"] == [1, 2]
    assert all(m.kl_per_dim.shape == (3,) for m in updates if m.record.split == "train")
    end = messages[-1]
    assert end.result.reason == "finished" and end.state.epoch == 2 and end.state.carry is not None
    again = run_job(core, JobSpec("two", end.state, "tiny"))
    assert again[0].target_epoch == 4 and not again[0].compiled, "the recycled trainer compiles nothing"
    assert again[-1].state.epoch == 4 and core.models == 1


def test_a_missing_dataset_is_asked_for_and_a_stop_while_waiting_ends_the_job(core):
    state = TrainerState(SETTINGS, build_vae(SETTINGS).get_weights())
    messages = run_job_stopped_at(core, JobSpec("wait", state, "not-sent"), NeedData)
    assert isinstance(messages[0], NeedData) and messages[0].key == "not-sent"
    assert isinstance(messages[-1], Failed) and "never received its dataset" in messages[-1].error


def test_a_job_that_raises_ends_as_failed_and_the_worker_goes_on(core):
    wrong = TrainerState(SETTINGS, [np.zeros(3)])  # weights of no such model
    messages = run_job(core, JobSpec("bad", wrong, "tiny"))
    assert isinstance(messages[-1], Failed) and "ValueError" in messages[-1].error
    fine = run_job(core, JobSpec("fine", TrainerState(SETTINGS, build_vae(SETTINGS).get_weights()), "tiny"))
    assert isinstance(fine[-1], Finished)


def test_new_rates_and_a_pause_reach_the_job_in_progress(core):
    from playground.worker_core import Paused, Rates

    settings = SETTINGS.replace(kl_weight=1.0, epochs=3)
    state = TrainerState(settings, build_vae(settings).get_weights())
    messages = []

    def emit(message):
        messages.append(message)
        if isinstance(message, Update) and message.step > 0 and len(messages) < 4:
            core.command(Command("rates", "pause"))
            core.command(Rates("rates", settings.replace(kl_weight=0.25)))
            threading.Timer(0.3, core.command, args=(Command("rates", "resume"),)).start()

    core.run(JobSpec("rates", state, "tiny"), emit)
    weights = [m.record.kl_weight for m in messages if isinstance(m, Update) and m.record.split == "train"]
    assert weights[0] == 1.0 and weights[-1] == 0.25
    assert [m.paused for m in messages if isinstance(m, Paused)] == [True, False]
    assert messages[-1].state.settings.kl_weight == 0.25, "the next run keeps the new rates"


def test_a_prepared_trainer_is_prepared_again_for_what_new_settings_will_call(flat):
    """A worker that holds the model already compiles what a new run length, loss or batch size will call
    (here: a run of 1,000 epochs uses XLA, the first one the graph), so Start then compiles nothing."""
    worker = WorkerCore()
    worker.add_data("tiny", *flat)
    state = TrainerState(SETTINGS, build_vae(SETTINGS).get_weights())
    worker.prepare(state, "tiny")
    [(_, trainer)] = worker._idle
    assert set(trainer._train_calls) == {("graph", "elbo")}
    longer = TrainerState(SETTINGS.replace(epochs=1000), state.weights)
    worker.prepare(longer, "tiny")
    assert [t for _, t in worker._idle] == [trainer] and worker.models == 1, "the same trainer, no new model"
    assert trainer._train_calls[("xla", "elbo")].experimental_get_tracing_count() == 1
    worker.prepare(longer, "tiny")  # prepared again with nothing new: nothing traced again
    messages = run_job_stopped_at(worker, JobSpec("long", longer, "tiny"), Update)
    assert messages[0].compiler == "xla" and not messages[0].compiled
    assert messages[-1].result.reason == "stopped"
    assert trainer._train_calls[("xla", "elbo")].experimental_get_tracing_count() == 1, "Start traced nothing"
