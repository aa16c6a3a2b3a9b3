"""Saved runs: overlay their loss curves, decode the same latent grid with each, reopen one."""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.figures import runs_figure
from playground.imaging import tile, to_display
from playground.inference import Inference
from playground.latent import grid_codes
from playground.runs import RunInfo, list_runs, read_history, read_model
from playground.ui import same_start
from playground.ui.feedback import flash, guarded
from playground.ui.i18n import t
from playground.ui.sidebar import set_widgets
from playground.ui.state import rebuild
from playground.workspace import Workspace

GRID_STEPS = 7
GRID_SPAN = 2.0


def render(ws: Workspace) -> None:
    st.fragment(_panel)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    runs = list_runs(ws.runs_dir) if ws.runs_dir is not None else []
    if not runs:
        st.info(t("runs.none"))
        return
    by_name = {run.name: run for run in runs}
    st.caption(t("runs.where", count=len(runs)))
    _select_new_runs(list(by_name))
    chosen = st.multiselect(t("runs.pick"), list(by_name), format_func=lambda name: by_name[name].label(),
                            key="runs_chosen")  # fmt: skip
    if not chosen:
        return
    curves = {}
    for name in chosen:
        try:
            curves[name] = _curve(by_name[name])
        except ValueError as error:
            st.warning(t("runs.unreadable", name=name, detail=error))
    if curves:
        figure = runs_figure(curves, {"epoch": t("runs.epoch"), "loss": t("runs.loss")})
        st.plotly_chart(figure, key="runs_chart", config={"displayModeBar": False})
    same_start.differences([by_name[name] for name in chosen])  # issue 13: which settings differ
    _grids(ws, [by_name[name] for name in chosen])


def _select_new_runs(names: list[str]) -> None:
    """Runs that appeared since the last look join the comparison; deleted ones leave it."""
    known = st.session_state.setdefault("runs_known", set())
    chosen = [name for name in st.session_state.get("runs_chosen", []) if name in names]
    fresh = [name for name in names if name not in known]
    st.session_state["runs_chosen"] = (fresh + chosen)[:4]
    known.update(names)


def _curve(run: RunInfo) -> dict[str, np.ndarray]:
    history = read_history(run)
    columns = history.columns("val")
    if not len(columns["epoch"]):
        columns = history.columns("train")
    return {"epoch": columns["epoch"], "loss": columns["loss"]}


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
    cache = st.session_state.setdefault("run_grids", {})
    model_file = run.path / "model.keras"
    key = (str(model_file), model_file.stat().st_mtime_ns if model_file.exists() else 0)
    if key not in cache:
        inference = Inference(run.settings)
        inference.load_from(read_model(run))
        dims = (0, min(1, run.settings.latent_dim - 1))
        codes = grid_codes(np.zeros(run.settings.latent_dim), dims, GRID_STEPS, GRID_SPAN)
        cache[key] = to_display(tile(inference.decode(codes), GRID_STEPS, gap=0), 2)
    return cache[key]


def _reopen(ws: Workspace, run: RunInfo) -> None:
    try:
        model, history = read_model(run), read_history(run)
        rebuild(ws, run.settings)  # on the run's dataset
    except ValueError as error:
        flash("error", t("runs.unreadable", name=run.name, detail=error))
        return
    ws.adopt(model, run.settings, history, run.path)
    set_widgets(run.settings)
    flash("success", t("runs.reopened", name=run.name))
