"""The sidebar: language, dataset, presets and hyperparameters, and when to throw a model away."""

from __future__ import annotations

import streamlit as st

from playground.config import DATASETS, LOSSES, PRESETS, Settings, bounds
from playground.data import DATASETS as DATASET_TITLES
from playground.ui import link
from playground.ui.i18n import LANGUAGES, t
from playground.ui.state import rebuild
from playground.workspace import Workspace

# Settings field -> widget key.
WIDGETS = {
    "dataset": "set_dataset",
    "loss": "set_loss",
    "latent_dim": "set_latent_dim",
    "intermediate_dim": "set_intermediate_dim",
    "learning_rate": "set_learning_rate",
    "batch_size": "set_batch_size",
    "epochs": "set_epochs",
    "kl_weight": "set_kl_weight",
    "kl_warmup_steps": "set_kl_warmup_steps",
    "seed": "set_seed",
}
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0]


def set_widgets(settings: Settings) -> None:
    """Put ``settings`` into the widgets (call before they are drawn: first run or a callback)."""
    for name, key in WIDGETS.items():
        st.session_state[key] = getattr(settings, name)


def _settings_from_widgets() -> Settings:
    return Settings(**{name: st.session_state[key] for name, key in WIDGETS.items()})


def render(ws: Workspace) -> None:
    if WIDGETS["latent_dim"] not in st.session_state:
        if st.query_params.get("lang") in LANGUAGES:  # a shared link can open the page in Chinese: ?lang=zh
            st.session_state["lang"] = st.query_params["lang"]
        set_widgets(link.from_address(ws.settings))  # a shared link holds the experiment (ui/link.py)
    with st.sidebar:
        st.radio("Language / 语言", list(LANGUAGES), format_func=LANGUAGES.get, key="lang", horizontal=True,
                 on_change=_remember_language)  # fmt: skip
        st.header(t("settings.title"))
        _dataset(ws)
        _presets()
        _inputs()
        try:
            desired = _settings_from_widgets()
        except ValueError as error:
            st.error(t("settings.invalid", detail=error))
        else:
            _reconcile(ws, desired)
            link.write(desired)
        supervisor = ws.supervisor
        st.caption(t("server.load", running=supervisor.running_count, waiting=supervisor.waiting_count,
                     cap=supervisor.max_workers))  # fmt: skip


def _remember_language() -> None:
    st.query_params["lang"] = st.session_state["lang"]


def _dataset(ws: Workspace) -> None:
    st.selectbox(t("settings.dataset"), DATASETS, format_func=DATASET_TITLES.get, key=WIDGETS["dataset"])
    data = ws.dataset
    where = (
        t(f"source.{data.origin}", location=data.location)
        if data.origin != "keras"
        else t(f"source.keras_{data.location}")
    )
    st.caption(
        t("source.line", title=data.title, where=where, train=f"{len(data.x_train):,}", test=f"{len(data.x_test):,}")
    )
    if ws.dataset.origin == "bundled":
        with st.expander(t("settings.full_data_title")):
            st.markdown(t("settings.full_data_help"))


def _presets() -> None:
    names = {"explore": t("preset.explore"), "latent_2d": t("preset.latent_2d"), "guide": t("preset.guide")}
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    left.selectbox(t("preset.label"), list(names), format_func=names.get, key="preset")
    right.button(t("preset.apply"), on_click=_apply_preset, key="preset_apply", width="stretch")
    if st.session_state.get(WIDGETS["loss"]) == "guide" and st.session_state.get(WIDGETS["kl_weight"], 0) >= 0.5:
        st.info(t("preset.guide_note"))


def _apply_preset() -> None:
    preset = PRESETS[st.session_state["preset"]]
    set_widgets(preset.replace(dataset=st.session_state[WIDGETS["dataset"]]))


def _number(name: str, step, fmt: str | None = None) -> None:
    meta = bounds(name)
    st.number_input(t(f"settings.{name}"), min_value=meta["low"], max_value=meta["high"], step=step, format=fmt,
                    key=WIDGETS[name], help=t(f"help.{name}"))  # fmt: skip


def _inputs() -> None:
    loss_names = {"elbo": t("loss.elbo"), "guide": t("loss.guide")}
    st.radio(t("settings.loss"), LOSSES[::-1], format_func=loss_names.get, key=WIDGETS["loss"], help=t("help.loss"))
    _number("latent_dim", 1)
    _number("intermediate_dim", 8)
    rates = sorted({*LEARNING_RATES, st.session_state[WIDGETS["learning_rate"]]})
    st.select_slider(t("settings.learning_rate"), rates, key=WIDGETS["learning_rate"], format_func="{:g}".format,
                     help=t("help.learning_rate"))  # fmt: skip
    _number("batch_size", 16)
    _number("epochs", 1)
    _number("kl_weight", 0.1, "%.4g")
    _number("kl_warmup_steps", 100)
    _number("seed", 1)


def _reconcile(ws: Workspace, desired: Settings) -> None:
    """Apply what can be applied; ask before a change of model throws a trained one away."""
    new_model = desired.dataset != ws.dataset.name or desired.model_key() != ws.settings.model_key()
    if new_model and (ws.trained or ws.training):
        st.warning(t("settings.confirm_discard"))
        st.button(t("settings.discard"), on_click=_discard_and_apply, args=(ws,), type="primary", key="discard")
        st.button(t("settings.keep"), on_click=set_widgets, args=(ws.settings,), key="keep")
    elif new_model:
        _rebuild(ws, desired)
    elif desired != ws.settings:
        if ws.training:
            st.caption(t("settings.next_start"))
        else:
            ws.update(desired)


def _discard_and_apply(ws: Workspace) -> None:
    _rebuild(ws, _settings_from_widgets())  # the button shows only for valid settings


def _rebuild(ws: Workspace, settings: Settings) -> None:
    """A new model for new sizes, seed or data; an unavailable dataset leaves the old one in place."""
    try:
        rebuild(ws, settings)
    except ValueError as error:
        st.error(t("settings.data_error", detail=error))
