"""Saved runs: overlay their loss curves, decode the same latent grid with each, reopen one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from playground.config import Settings
from playground.data import DATASETS as DATASET_TITLES
from playground.figures import runs_figure
from playground.history import History
from playground.imaging import tile, to_display
from playground.inference import Inference
from playground.latent import grid_codes
from playground.runs import RunInfo, differing_settings, list_runs, read_history, read_model, reconstruction_mse
from playground.ui import same_start
from playground.ui import uploads as own_data
from playground.ui.feedback import flash, guarded
from playground.ui.i18n import t
from playground.ui.sidebar import set_widgets
from playground.ui.tabs import open_tab, rerun_if_asked
from playground.workspace import Workspace

GRID_STEPS = 7
GRID_SPAN = 2.0
MSE_DIGITS = 500  # test digits each run's reconstruction error is measured on
SETTING_NAMES = tuple(spec.name for spec in dataclasses.fields(Settings))  # each has a "settings.<name>" label
RUN_ENDINGS = ("finished", "stopped", "diverged", "failed", "interrupted")
DIFFERS_STYLE = {"background-color": "rgba(255, 189, 69, 0.35)", "font-weight": "bold"}


def render(ws: Workspace) -> None:
    st.fragment(_panel)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    rerun_if_asked()
    runs = list_runs(ws.runs_dir) if ws.runs_dir is not None else []
    if not runs:
        st.info(t("runs.none"))
        return
    by_name = {run.name: run for run in runs}
    st.caption(t("runs.where_one") if len(runs) == 1 else t("runs.where", count=len(runs)))
    _select_new_runs(list(by_name))
    chosen = st.multiselect(t("runs.pick"), list(by_name), format_func=lambda name: _label(by_name[name]),
                            key="runs_chosen")  # fmt: skip
    if not chosen:
        return
    picked = [by_name[name] for name in chosen]
    histories = _histories(picked)
    _settings_table(ws, picked, histories)
    _curves(picked, histories)
    _grids(ws, picked)


def _select_new_runs(names: list[str]) -> None:
    """Runs that appeared since the last look join the comparison; deleted ones leave it."""
    known = st.session_state.setdefault("runs_known", set())
    chosen = [name for name in st.session_state.get("runs_chosen", []) if name in names]
    fresh = [name for name in names if name not in known]
    st.session_state["runs_chosen"] = (fresh + chosen)[:4]
    known.update(names)


def _label(run: RunInfo) -> str:
    s = run.settings
    return t("runs.label", name=run.name, loss=t(f"runs.loss_{s.loss}"), latent=s.latent_dim,
             hidden=s.intermediate_dim, kl=f"{s.kl_weight:g}")  # fmt: skip


def _histories(runs: list[RunInfo]) -> dict[str, History]:
    """Each readable run's loss history by name (a warning for the others)."""
    histories = {}
    for run in runs:
        try:
            histories[run.name] = read_history(run)
        except ValueError as error:
            st.warning(t("runs.unreadable", name=run.name, detail=error))
    return histories


def _settings_table(ws: Workspace, runs: list[RunInfo], histories: dict[str, History]) -> None:
    """Each run's settings, the ones that differ highlighted, and one measure to compare them all on."""
    differ = differing_settings(runs)
    columns = {t("runs.run"): [run.name for run in runs]}
    for name in SETTING_NAMES:
        columns[t(f"settings.{name}")] = [_setting_text(run.settings, name) for run in runs]
    columns[t("runs.epochs_done")] = [run.summary.get("epochs") for run in runs]
    columns[t("runs.ended")] = [_ended(run) for run in runs]
    columns[t("runs.val_reconstruction")] = [_last_val_reconstruction(histories.get(run.name)) for run in runs]
    columns[t("runs.test_mse")] = [_test_mse(ws, run) for run in runs]
    highlighted = [t(f"settings.{name}") for name in differ]
    table = pd.DataFrame(columns).style.set_properties(subset=highlighted, **DIFFERS_STYLE)
    st.dataframe(table, hide_index=True, key="runs_table")
    if len(runs) == 1:
        st.caption(t("runs.one_chosen"))  # one run has nothing to be the same as
    else:
        st.caption(t("runs.differ", names=", ".join(highlighted)) if differ else t("runs.same_settings"))
    st.caption(t("runs.test_mse_help"))


def _setting_text(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    if name == "dataset":
        return DATASET_TITLES.get(value) or own_data.titles().get(value, value)  # your own images: their title
    if name == "loss":
        return t(f"runs.loss_{value}")
    if isinstance(value, bool):  # conditional
        return t("settings.on") if value else t("settings.off")
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ended(run: RunInfo) -> str:
    reason = run.summary.get("reason")
    return t(f"state.{reason}") if reason in RUN_ENDINGS else "—"


def _last_val_reconstruction(history: History | None) -> float | None:
    last = None if history is None else history.last("val")
    return None if last is None else round(last.reconstruction_loss, 5)


def _curves(runs: list[RunInfo], histories: dict[str, History]) -> None:
    """The validation reconstruction loss by epoch (training's, without validation), one curve a run."""
    curves = {}
    for name, history in histories.items():
        columns = history.columns("val")
        if not len(columns["epoch"]):
            columns = history.columns("train")
        curves[name] = {"epoch": columns["epoch"], "loss": columns["reconstruction_loss"]}
    if not curves:
        return
    figure = runs_figure(curves, {"epoch": t("runs.epoch"), "loss": t("runs.loss")})
    st.plotly_chart(figure, key="runs_chart", config={"displayModeBar": False})
    if len({run.settings.loss for run in runs}) > 1:
        st.caption(t("runs.scales_differ"))


def _grids(ws: Workspace, runs: list[RunInfo]) -> None:
    st.markdown(f"**{t('runs.grid_title', steps=GRID_STEPS)}**")
    columns = st.columns(len(runs))
    for column, run in zip(columns, runs):
        with column:
            st.caption(run.name)
            try:
                st.image(_grid_image(run), output_format="PNG")
            except ValueError as error:
                st.warning(t("runs.unreadable", name=run.name, detail=error))
                continue
            st.button(t("runs.reopen"), key=f"reopen_{run.name}", on_click=_reopen, args=(ws, run),
                      disabled=ws.training)  # fmt: skip
            same_start.render(ws, run)  # issue 13: train again from the same start, one setting changed


def _grid_image(run: RunInfo) -> np.ndarray:
    """The run's decoded grid over z0 and z1 (others zero), kept until its model file changes."""

    def draw(model) -> np.ndarray:
        inference = Inference(run.settings)
        inference.load_from(model)
        dims = (0, min(1, run.settings.latent_dim - 1))
        codes = grid_codes(np.zeros(run.settings.latent_dim), dims, GRID_STEPS, GRID_SPAN)
        return to_display(tile(inference.decode(codes), GRID_STEPS, gap=0), 2)

    return _per_model_file(run, "grid", draw)


def _test_mse(ws: Workspace, run: RunInfo) -> float | None:
    """The run's reconstruction error on its dataset's test digits (None if its model or data can't be read)."""
    try:
        images = ws.load_data(run.settings.dataset).dataset.x_test[:MSE_DIGITS]
        labels = ws.load_data(run.settings.dataset).dataset.y_test[:MSE_DIGITS]
        return round(_per_model_file(run, "mse", lambda model: reconstruction_mse(model, images, labels)), 5)
    except ValueError:
        return None


def _per_model_file(run: RunInfo, what: str, compute):
    """``compute(model)`` for the run's model, kept until its model file changes."""
    cache = st.session_state.setdefault("run_results", {})
    model_file = run.path / "model.keras"
    key = (what, str(model_file), model_file.stat().st_mtime_ns if model_file.exists() else 0)
    if key not in cache:
        cache[key] = compute(read_model(run))
    return cache[key]


def _reopen(ws: Workspace, run: RunInfo) -> None:
    try:
        ws.switch(run.settings, read_model(run), read_history(run), run.path)  # on the run's dataset
    except ValueError as error:
        flash("error", t("runs.unreadable", name=run.name, detail=error))
    else:
        set_widgets(run.settings)
        flash("success", t("runs.reopened", name=run.name))
    open_tab("runs")  # this callback ran in a fragment: redraw the whole page (message, sidebar) at once
