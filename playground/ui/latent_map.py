"""The test set's codes on a map coloured by label, the drawn digit on it, a click to explore a point."""

from __future__ import annotations

import streamlit as st

from playground.figures import latent_map
from playground.latent import project_2d
from playground.ui.explore import send_to_explorer
from playground.ui.feedback import flash, guarded
from playground.ui.i18n import t
from playground.ui.tabs import rerun_if_asked
from playground.workspace import Workspace

REFRESH_SECONDS = 5.0  # while training; redrawing the map costs the browser more than the loss chart
MAX_POINTS = 2000  # test digits shown: enough to see the clusters, light enough to redraw


def render(ws: Workspace) -> None:
    st.fragment(run_every=REFRESH_SECONDS if ws.training else None)(_panel)(ws)


def _codes(ws: Workspace):
    """Mean codes of the shown test digits for the current weights, computed once per weights version."""
    inference = ws.refresh()
    cached = st.session_state.get("map_cache")
    key = (id(inference), inference.version)
    if cached is None or cached["key"] != key:
        count = min(len(ws.dataset.x_test), MAX_POINTS)
        z_mean, _ = inference.encode(ws.dataset.x_test[:count])
        cached = {"key": key, "z_mean": z_mean, "labels": ws.dataset.y_test[:count], "projection": project_2d(z_mean)}
        st.session_state["map_cache"] = cached
    return cached


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    rerun_if_asked()
    if ws.closed:
        return
    cached = _codes(ws)
    projection = cached["projection"]
    coords = projection.apply(cached["z_mean"])
    drawn = st.session_state.get("drawn")
    overlay = None
    if drawn is not None and len(drawn["z_mean"]) == ws.settings.latent_dim:
        overlay = (projection.apply(drawn["z_mean"][None])[0], projection.spread(drawn["z_log_var"]))
    if ws.settings.latent_dim > 2:
        axes = (t("map.pc", n=1, share=round(100 * projection.explained[0])),
                t("map.pc", n=2, share=round(100 * projection.explained[1])))  # fmt: skip
        st.caption(t("map.pca_note"))
    else:
        axes = ("z0", "z1" if ws.settings.latent_dim == 2 else "—")
    text = {"label": t("map.label"), "spread": t("map.spread"), "drawn": t("map.drawn"), "x": axes[0], "y": axes[1]}
    st.plotly_chart(latent_map(coords, cached["labels"], text, overlay), key="latent_map", on_select=_on_select,
                    selection_mode=("points", "box", "lasso"), config={"displayModeBar": True})  # fmt: skip
    st.caption(t("map.help"))


def _on_select() -> None:
    """Load the first selected test digit's code into the explorer."""
    selection = st.session_state.get("latent_map", {}).get("selection", {})
    points = selection.get("points") or []
    cached = st.session_state.get("map_cache")
    if not points or cached is None:
        return
    index = points[0].get("customdata")
    index = index[0] if isinstance(index, list) else index
    if index is None or not 0 <= int(index) < len(cached["z_mean"]):
        return
    send_to_explorer(cached["z_mean"][int(index)])
    st.session_state["map_picked"] = int(index)
    flash("info", t("map.picked", label=int(cached["labels"][int(index)])))
