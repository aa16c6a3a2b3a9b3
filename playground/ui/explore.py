"""Walk the decoder: one slider per latent dimension, a manifold grid, interpolations between codes."""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.imaging import tile, to_display
from playground.latent import grid_codes, interpolate, order_by_kl
from playground.ui.feedback import guarded
from playground.ui.i18n import t
from playground.ui.tabs import open_tab
from playground.workspace import Workspace

SPAN = 4.0  # sliders reach four standard deviations of the prior
SLIDER_COLUMNS = 4


def code_key(dim: int) -> str:
    return f"z{dim}"


def current_code(latent_dim: int) -> np.ndarray:
    return np.array([st.session_state.get(code_key(i), 0.0) for i in range(latent_dim)], dtype=np.float32)


def set_code(code: np.ndarray) -> None:
    """Move the sliders to ``code`` (a widget callback: runs before the sliders are drawn)."""
    for dim, value in enumerate(np.clip(np.asarray(code, dtype=float), -SPAN, SPAN)):
        st.session_state[code_key(dim)] = round(float(value), 2)


def send_to_explorer(code: np.ndarray) -> None:
    """From another tab's callback: move the sliders to ``code`` and open the Explore tab."""
    set_code(code)
    open_tab("explore")


def render(ws: Workspace) -> None:
    st.fragment(_sliders)(ws)
    st.divider()
    grid, strip = st.columns(2)
    with grid:
        st.fragment(_manifold)(ws)
    with strip:
        st.fragment(_interpolation)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _sliders(ws: Workspace) -> None:
    latent_dim = ws.settings.latent_dim
    for dim in range(latent_dim):
        st.session_state.setdefault(code_key(dim), 0.0)
    image_column, slider_column = st.columns([1, 2])
    with slider_column:
        buttons = st.columns(3)
        buttons[0].button(t("explore.random"), on_click=_random, args=(latent_dim,), key="random_code")
        buttons[1].button(t("explore.zero"), on_click=set_code, args=(np.zeros(latent_dim),), key="zero_code")
        buttons[2].checkbox(t("explore.order_by_kl"), key="order_by_kl", help=t("help.order_by_kl"))
        order = list(range(latent_dim))
        if st.session_state.get("order_by_kl"):
            order = order_by_kl(ws.trainer.history.kl_per_dim, latent_dim)
        columns = st.columns(min(SLIDER_COLUMNS, latent_dim))
        for position, dim in enumerate(order):
            columns[position % len(columns)].slider(code_key(dim), -SPAN, SPAN, step=0.05, key=code_key(dim))
    code = current_code(latent_dim)
    image = ws.refresh().decode(code[None])[0]
    image_column.image(to_display(image, 8), caption=t("explore.caption"), output_format="PNG")


def _random(latent_dim: int) -> None:
    set_code(np.random.default_rng().standard_normal(latent_dim))


@guarded  # a fragment reruns on its own: it needs its own guard
def _manifold(ws: Workspace) -> None:
    latent_dim = ws.settings.latent_dim
    st.markdown(f"**{t('explore.grid_title')}**")
    if latent_dim < 2:
        dims = (0, 0)
    else:
        first, second = st.columns(2)
        dims = (
            first.selectbox(t("explore.grid_x"), range(latent_dim), format_func=code_key, key="grid_x"),
            second.selectbox(t("explore.grid_y"), range(latent_dim), index=1, format_func=code_key, key="grid_y"),
        )
    steps = st.slider(t("explore.grid_size"), 5, 21, 11, step=2, key="grid_steps")
    span = st.slider(t("explore.grid_span"), 0.5, SPAN, 2.0, step=0.25, key="grid_span")
    codes = grid_codes(current_code(latent_dim), dims, steps, span)
    images = ws.refresh().decode(codes)
    st.image(
        to_display(tile(images, steps, gap=0), 2),
        caption=t("explore.grid_caption", x=dims[0], y=dims[1]),
        output_format="PNG",
    )


@guarded  # a fragment reruns on its own: it needs its own guard
def _interpolation(ws: Workspace) -> None:
    latent_dim = ws.settings.latent_dim
    st.markdown(f"**{t('explore.strip_title')}**")
    sources = {"test": t("explore.strip_test"), "drawn": t("explore.strip_drawn")}
    source = st.radio(t("explore.strip_source"), list(sources), format_func=sources.get, horizontal=True,
                      key="strip_source")  # fmt: skip
    inference = ws.refresh()
    if source == "drawn":
        start, end = st.session_state.get("code_a"), st.session_state.get("code_b")
        if start is None or end is None or len(start) != latent_dim or len(end) != latent_dim:
            st.info(t("explore.strip_need_drawn"))
            return
    else:
        count = len(ws.dataset.x_test)
        first, second = st.columns(2)
        a = first.number_input(t("explore.strip_a"), 0, count - 1, 0, key="strip_a")
        b = second.number_input(t("explore.strip_b"), 0, count - 1, 1, key="strip_b")
        start, end = inference.encode(ws.dataset.x_test[[a, b]])[0]
    steps = st.slider(t("explore.strip_steps"), 3, 15, 9, key="strip_steps")
    images = inference.decode(interpolate(start, end, steps))
    st.image(to_display(tile(images, steps, gap=0), 3), caption=t("explore.strip_caption"), output_format="PNG")
