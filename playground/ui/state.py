"""What the page shares and what each session owns.

Shared, read-only or self-locking, behind ``st.cache_resource``: the datasets, the
supervisor of training workers and the open workspaces by address token. Per
session, in ``st.session_state``: the token's ``Workspace`` (shared with any other
session of the same address) and the widgets' values.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx, script_runner

from playground.config import EXPLORE, watchable
from playground.data import is_upload_name, load_dataset
from playground.jobs import Supervisor, supervisor_from_env
from playground.runs import WorkspaceBusy, WorkspaceLease, default_runs_root, workspace_dir
from playground.training import TrainingData
from playground.ui.i18n import t
from playground.uploads import load_kept
from playground.workspace import LoadedData, Workspace, Workspaces

SOURCE_ENV = "PLAYGROUND_SOURCE"  # where the app loads data from: auto (default), bundled, keras, idx:DIR
PRIVATE_HOOK = "_clean_problem_modules"  # Streamlit's private clean-up that keep_keras_state turns off
WORKSPACE_PARAM = "ws"  # the address's token for this browser's workspace and runs folder
_SETTINGS_SEEN = "settings_seen"
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


def data_source() -> str:
    return os.environ.get(SOURCE_ENV, "auto")


@st.cache_resource(max_entries=4, show_spinner=False)
def load_data(name: str, source: str) -> LoadedData:
    """A dataset and its tensors, loaded once per server and shared by every session."""
    dataset = load_dataset(name, source)
    return LoadedData(dataset, TrainingData.from_dataset(dataset))


def _is_session_alive(session_id: str) -> bool:
    return Runtime.exists() and Runtime.instance().is_active_session(session_id)


def load_by_name(name: str) -> LoadedData:
    """A built-in dataset by name, from this server's source."""
    return load_data(name, data_source())


@st.cache_resource(max_entries=4, show_spinner=False)
def load_own_data(folder: str, name: str) -> LoadedData:
    """Images uploaded to a workspace, kept in its folder (named by their contents: a name's data never changes)."""
    dataset = load_kept(Path(folder), name)
    return LoadedData(dataset, TrainingData.from_dataset(dataset))


def load_in_workspace(folder: Path, name: str) -> LoadedData:
    """A workspace's data loader: its own uploaded images (``upload-...``) or a built-in dataset."""
    return load_own_data(str(folder), name) if is_upload_name(name) else load_by_name(name)


@st.cache_resource(show_spinner=False)
def workspaces() -> Workspaces:
    """Every open workspace on this server, by address token."""
    return Workspaces()


@st.cache_resource(show_spinner=False)
def supervisor() -> Supervisor:
    """The server's training slots and its janitor for closed tabs (by token: a reload keeps its workspace)."""
    shared = supervisor_from_env()  # on a Ray cluster if PLAYGROUND_RAY_ADDRESS is set
    if Runtime.exists():
        registry = workspaces()
        shared.start_janitor(lambda token: registry.alive(token, _is_session_alive))
    return shared


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def workspace_token() -> str:
    """The address's workspace token (``?ws=...``); a new one if it has none or one that is not ours."""
    token = st.query_params.get(WORKSPACE_PARAM, "")
    try:
        workspace_dir(default_runs_root(), token)
    except ValueError:
        token = secrets.token_urlsafe(12)
        st.query_params[WORKSPACE_PARAM] = token
    return token


def workspace() -> Workspace:
    """This address's workspace: the live one if another session of it has one, else restored from its
    folder or new (and again if the janitor closed it)."""
    current = st.session_state.get("workspace")
    if current is not None and not current.closed:
        return current
    token = workspace_token()
    folder = workspace_dir(default_runs_root(), token)
    registry, shared = workspaces(), supervisor()
    loader = functools.partial(load_in_workspace, folder)
    make = lambda: Workspace(_first_settings(), loader, shared, folder, WorkspaceLease(folder))  # noqa: E731
    try:
        found = registry.open(token, session_id(), make)
    except WorkspaceBusy as busy:  # another app server (replica) has it open
        st.error(t("workspace.busy_elsewhere", host=busy.host))
        st.stop()
    shared.register(token, lambda: registry.close(token))
    st.session_state["workspace"] = found
    if found.training:
        st.session_state["was_active"] = True  # the training panel refreshes the page when it ends
    return found


def _first_settings():
    """The opening settings: a first run long enough to watch on the server's copy of the dataset."""
    return watchable(EXPLORE, len(load_by_name(EXPLORE.dataset).dataset.x_train))


def settings_changed_elsewhere(ws: Workspace) -> bool:
    """True when another session of this address changed the settings since this one last drew them."""
    return st.session_state.get(_SETTINGS_SEEN, ws.settings) != ws.settings


def settings_seen(ws: Workspace) -> None:
    """Note the settings this session's sidebar now shows (see ``settings_changed_elsewhere``)."""
    st.session_state[_SETTINGS_SEEN] = ws.settings
