"""Same start, one change: train a saved run again from its initial weights with one setting changed.

A model's initial weights depend only on its sizes and seed (``Settings.model_key``), so a run
that keeps them and changes one other setting starts from the very same weights, sees the same
batches and the same noise: the two runs differ only in what the learner changed.
"""

from __future__ import annotations

import streamlit as st

from playground.config import LOSSES, Settings, bounds
from playground.link import format_value
from playground.runs import RunInfo
from playground.ui.feedback import flash
from playground.ui.i18n import t
from playground.ui.sidebar import set_widgets
from playground.workspace import Workspace

# What may change while the initial weights stay the same (sizes and seed define them).
CHANGEABLE = ("learning_rate", "kl_weight", "loss", "batch_size", "epochs", "kl_warmup_steps")


def render(ws: Workspace, run: RunInfo) -> None:
    """A small form under a run: pick one setting, give it a value, train from the same start."""
    with st.popover(t("same_start.open"), disabled=ws.training):
        st.caption(t("same_start.help"))
        name = st.selectbox(t("same_start.setting"), CHANGEABLE, format_func=lambda n: t(f"settings.{n}"),
                            key=f"same_start_name_{run.name}")  # fmt: skip
        value = _value_input(run.settings, name, f"same_start_value_{run.name}_{name}")
        st.button(t("same_start.train"), key=f"same_start_go_{run.name}", type="primary", on_click=_train,
                  args=(ws, run, name, value), disabled=ws.training)  # fmt: skip


def _value_input(settings: Settings, name: str, key: str):
    current = getattr(settings, name)
    if name == "loss":
        return st.radio(t("same_start.value"), LOSSES, index=LOSSES.index(current), key=key, horizontal=True,
                        format_func=lambda loss: value_text("loss", loss))  # fmt: skip
    meta = bounds(name)
    step = 1 if meta["integer"] else None
    fmt = None if meta["integer"] else "%.4g"
    return st.number_input(t("same_start.value"), min_value=meta["low"], max_value=meta["high"], value=current,
                           step=step, format=fmt, key=key)  # fmt: skip


def _train(ws: Workspace, run: RunInfo, name: str, value) -> None:
    try:
        settings = run.settings.replace(**{name: value})
        ws.switch(settings)  # fresh weights from the same sizes and seed: the run's own start
    except ValueError as error:
        flash("error", t("settings.invalid", detail=error))
        return
    set_widgets(settings)
    ws.start()
    change = f"{t(f'settings.{name}')} {value_text(name, getattr(run.settings, name))} → {value_text(name, value)}"
    flash("success", t("same_start.started", name=run.name, change=change))


def value_text(name: str, value) -> str:
    """A setting's value as the sidebar names it: "guide's loss", not the id ``guide``."""
    return t(f"runs.loss_{value}") if name == "loss" else format_value(value)
