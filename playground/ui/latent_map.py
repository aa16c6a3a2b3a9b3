"""The test set's codes on a map coloured by label, the drawn digit on it, a click to explore a point.

PCA shows at once. t-SNE is computed in a thread (``latent.LayoutJob``) while the page
keeps answering; its result belongs to one model version and says so once training moves on.
"""

from __future__ import annotations

import streamlit as st

from playground.figures import latent_map
from playground.latent import LayoutJob, place_by_neighbours, project_2d
from playground.ui.explore import send_to_explorer
from playground.ui.feedback import flash, guarded
from playground.ui.i18n import t
from playground.ui.tabs import RERUN_APP, rerun_if_asked
from playground.workspace import Workspace

REFRESH_SECONDS = 5.0  # while training; redrawing the map costs the browser more than the loss chart
POLL_SECONDS = 0.5  # while a layout is computed: it shows within half a second of being ready
MAX_POINTS = 2000  # test digits shown: enough to see the clusters, light enough to redraw and lay out
METHODS = ("pca", "tsne")
METHOD = "map_method"  # the chosen method's id (the widget)
LAYOUT = "map_layout"  # per session: the latest non-linear layout and what it was computed for
NEIGHBOURS = 10  # codes whose map positions place a drawn digit on a t-SNE map
SEED = 0  # the same codes give the same map


def render(ws: Workspace) -> None:
    method = _method(ws)
    layout = None if ws.closed else _layout(ws, method)
    computing = layout is not None and not layout["job"].done
    every = POLL_SECONDS if computing else REFRESH_SECONDS if ws.training else None
    st.fragment(run_every=every)(_panel)(ws, method)


def _method(ws: Workspace) -> str:
    """The chosen method; PCA alone (no switch) for codes of one or two dimensions, which need no map."""
    if ws.settings.latent_dim <= 2:
        return "pca"
    # Kept while another tab is open: without persist_state Streamlit forgets a widget that is not drawn.
    return st.radio(t("map.method"), METHODS, format_func=_name, key=METHOD, horizontal=True,
                    help=t("map.method_help"), persist_state="page")  # fmt: skip


def _name(method: str) -> str:
    return t(f"map.method_{method}")


def _model(ws: Workspace) -> tuple:
    """What a layout belongs to: this model (a reset or a new model makes another), not its weights' version."""
    return (id(ws.trainer), ws.settings.latent_dim, ws.settings.dataset)


def _codes(ws: Workspace):
    """Mean codes of the shown test digits for the current weights, computed once per weights version."""
    inference = ws.refresh()
    cached = st.session_state.get("map_cache")
    key = (id(inference), inference.version)
    if cached is None or cached["key"] != key:
        count = min(len(ws.dataset.x_test), MAX_POINTS)
        labels = ws.dataset.y_test[:count] if ws.settings.conditional else None  # a conditional model's own labels
        z_mean, _ = inference.encode(ws.dataset.x_test[:count], labels)
        cached = {"key": key, "version": inference.version, "z_mean": z_mean, "labels": ws.dataset.y_test[:count],
                  "projection": project_2d(z_mean)}  # fmt: skip
        st.session_state["map_cache"] = cached
    return cached


def _layout(ws: Workspace, method: str) -> dict | None:
    """The layout for ``method``: started in the background the first time it is asked for on this model."""
    if method == "pca":
        return None
    layout = st.session_state.get(LAYOUT)
    if layout is None or layout["method"] != method or layout["model"] != _model(ws):
        layout = _start(ws, method)
    return layout


def _start(ws: Workspace, method: str) -> dict:
    cached = _codes(ws)
    job = LayoutJob(method, cached["z_mean"], seed=SEED)
    layout = {"method": method, "model": _model(ws), "version": cached["version"], "job": job, "shown": False}
    st.session_state[LAYOUT] = layout
    return layout


def _recompute(ws: Workspace) -> None:
    _start(ws, st.session_state[LAYOUT]["method"])
    st.session_state[RERUN_APP] = True  # a whole-page run sets the fragment polling for the result


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace, method: str) -> None:
    rerun_if_asked()
    if ws.closed:
        return
    cached = _codes(ws)
    layout = _layout(ws, method)
    job = None if layout is None else layout["job"]
    if job is not None and job.done and not layout["shown"]:
        layout["shown"] = True
        st.rerun(scope="app")  # the page stops polling for it
    if job is not None and job.coords is not None:
        _layout_view(ws, cached, layout)
    else:
        if job is not None and job.error is not None:
            st.error(t("map.failed", method=_name(method), detail=job.error))
        elif job is not None:
            st.info(t("map.computing", method=_name(method), count=job.count, seconds=round(job.seconds())))
        _pca_view(ws, cached)
    st.caption(t("map.help"))


def _pca_view(ws: Workspace, cached: dict) -> None:
    projection = cached["projection"]
    coords = projection.apply(cached["z_mean"])
    drawn = _drawn(ws)
    overlay = None if drawn is None else (projection.apply(drawn["z_mean"][None])[0],
                                          projection.spread(drawn["z_log_var"]))  # fmt: skip
    if ws.settings.latent_dim > 2:
        axes = (t("map.pc", n=1, share=round(100 * projection.explained[0])),
                t("map.pc", n=2, share=round(100 * projection.explained[1])))  # fmt: skip
        st.caption(t("map.pca_note"))
    else:
        axes = ("z0", "z1" if ws.settings.latent_dim == 2 else "—")
    _chart(coords, cached["labels"], axes, overlay)


def _layout_view(ws: Workspace, cached: dict, layout: dict) -> None:
    job, name = layout["job"], _name(layout["method"])
    if layout["version"] != cached["version"]:
        st.warning(t("map.stale", method=name))
        st.button(t("map.recompute", method=name), on_click=_recompute, args=(ws,), key="map_recompute")
    st.caption(t("map.layout_note", method=name, count=job.count, seconds=round(job.seconds(), 1),
                 kept=f"{job.kept:.2f}", pca_kept=f"{job.pca_kept:.2f}", k=NEIGHBOURS))  # fmt: skip
    drawn = _drawn(ws)
    overlay = None
    if drawn is not None:
        placed = place_by_neighbours(drawn["z_mean"], job.codes, job.coords, k=NEIGHBOURS)
        overlay = (placed.position, None)
        st.caption(t("map.placed", method=name, k=len(placed.neighbours)))
    axes = (t("map.axis", method=name, n=1), t("map.axis", method=name, n=2))
    _chart(job.coords, cached["labels"][: job.count], axes, overlay)


def _drawn(ws: Workspace) -> dict | None:
    drawn = st.session_state.get("drawn")
    if drawn is None or len(drawn["z_mean"]) != ws.settings.latent_dim:
        return None
    return drawn


def _chart(coords, labels, axes: tuple[str, str], overlay) -> None:
    text = {"label": t("map.label"), "spread": t("map.spread"), "drawn": t("map.drawn"), "x": axes[0], "y": axes[1]}
    st.plotly_chart(latent_map(coords, labels, text, overlay), key="latent_map", on_select=_on_select,
                    selection_mode=("points", "box", "lasso"), config={"displayModeBar": True})  # fmt: skip


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
