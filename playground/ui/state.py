"""What the page shares and what each session owns.

Shared, read-only or self-locking, behind ``st.cache_resource``: the datasets and
the supervisor of training workers. Per session, in ``st.session_state``: one
``Workspace`` and the widgets' values.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx, script_runner

from playground.config import EXPLORE, Settings, watchable
from playground.data import Dataset, load_dataset
from playground.jobs import Supervisor
from playground.runs import default_runs_root, workspace_dir
from playground.training import TrainingData
from playground.workspace import Workspace

SOURCE_ENV = "PLAYGROUND_SOURCE"  # where the app loads data from: auto (default), bundled, keras, idx:DIR
PRIVATE_HOOK = "_clean_problem_modules"  # Streamlit's private clean-up that keep_keras_state turns off
WORKSPACE_PARAM = "ws"  # the address's token for this browser's runs folder
log = logging.getLogger("playground")


def keep_keras_state() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit does that for apps that build a model inside the script. This app
    keeps its models in sessions and trains them in other threads; the clear (a
    full garbage collection and a flush of TensorFlow's kernel cache, four times a
    second while the page polls) made training ten times slower. Matplotlib,
    which the same hook also resets, is not used by the page.

    The hook is private: if a Streamlit release renamed it, assigning the old name
    would silently add an attribute and the slowdown would come back unnoticed, so
    the app refuses to start instead (and ``test_app`` checks the hook is replaced).
    """
    if not callable(getattr(script_runner, PRIVATE_HOOK, None)):
        raise RuntimeError(
            f"streamlit.runtime.scriptrunner.script_runner.{PRIVATE_HOOK} is gone (Streamlit {st.__version__}): "
            "find what clears Keras' session after each script run in this version and turn it off here, "
            "or training in the app runs ten times slower."
        )
    setattr(script_runner, PRIVATE_HOOK, _keep_modules)


def _keep_modules() -> None:
    """Stands in for Streamlit's clean-up of Keras and Matplotlib after each script run: does nothing."""


keep_keras_state()


@dataclass(frozen=True)
class LoadedData:
    dataset: Dataset
    device: TrainingData


def data_source() -> str:
    return os.environ.get(SOURCE_ENV, "auto")


@st.cache_resource(max_entries=4, show_spinner=False)
def load_data(name: str, source: str) -> LoadedData:
    """A dataset and its tensors, loaded once per server and shared by every session."""
    dataset = load_dataset(name, source)
    return LoadedData(dataset, TrainingData.from_dataset(dataset))


def _is_session_alive(session_id: str) -> bool:
    return Runtime.exists() and Runtime.instance().is_active_session(session_id)


@st.cache_resource(show_spinner=False)
def supervisor() -> Supervisor:
    """The server's training slots and its janitor for closed tabs."""
    shared = Supervisor()
    if Runtime.exists():
        shared.start_janitor(_is_session_alive)
    return shared


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def runs_folder():
    """This browser's runs folder, named by a token kept in the page address (so a reload finds it)."""
    try:
        return workspace_dir(default_runs_root(), st.query_params.get(WORKSPACE_PARAM, ""))
    except ValueError:  # no token yet, or one that is not ours: start a new workspace
        token = secrets.token_urlsafe(12)
        st.query_params[WORKSPACE_PARAM] = token
        return workspace_dir(default_runs_root(), token)


def rebuild(ws: Workspace, settings: Settings) -> None:
    """A new model for ``settings``, loading its dataset first if it is another one (ValueError if it can't)."""
    if settings.dataset == ws.dataset.name:
        ws.rebuild(settings)
    else:
        loaded = load_data(settings.dataset, data_source())
        ws.rebuild(settings, loaded.dataset, loaded.device)


def workspace() -> Workspace:
    """This session's workspace, made on the first run (and again if the janitor closed it)."""
    current = st.session_state.get("workspace")
    if current is not None and not current.closed:
        return current
    loaded = load_data(EXPLORE.dataset, data_source())
    first = watchable(EXPLORE, len(loaded.dataset.x_train))  # a first run long enough to watch
    created = Workspace(first, loaded.dataset, loaded.device, supervisor(), runs_folder())
    supervisor().register(session_id(), created.close)
    st.session_state["workspace"] = created
    return created
