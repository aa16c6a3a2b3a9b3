"""Walk the decoder: the in-page instrument (sliders, a 2-D pad), a manifold grid, interpolations between codes.

The code lives in the session (``CODE``): the page's instrument sends it when a
gesture ends, and the server's own sliders (the fallback, in an expander) and
other tabs ("explore this code", the latent map) set it with ``set_code``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.imaging import tile, to_display
from playground.latent import grid_codes, interpolate, order_by_kl
from playground.models import CLASSES
from playground.ui import instrument
from playground.ui.feedback import guarded
from playground.ui.i18n import t
from playground.ui.tabs import open_tab
from playground.workspace import Workspace

SPAN = 4.0  # sliders reach four standard deviations of the prior
SLIDER_COLUMNS = 4
CODE = "latent_code"  # the current code, [L] float32
CODE_SERIAL = "latent_code_serial"  # counts the server's moves of the code, so the page takes each once
KEPT = "explore_kept"  # the grid and interpolation settings, kept while another tab is open
PAGE_KEY = "instrument_explore"
CLASS = "explore_class"  # a conditional model's class: the sliders then change only its style


def class_names(dataset: str) -> list[str]:
    """The ten labels' names: digits, or Fashion-MNIST's kinds of clothing."""
    if dataset == "fashion_mnist":
        return t("classes.fashion_mnist").split("|")
    return [str(label) for label in range(CLASSES)]


def chosen_class(ws: Workspace) -> int | None:
    """The class picked for a conditional model (None for the others)."""
    if not ws.settings.conditional:
        return None
    label = st.session_state.get(CLASS, 0)
    return label if isinstance(label, int) and 0 <= label < CLASSES else 0


def runs_in_page(ws: Workspace) -> bool:
    """Whether the page's instrument can run this model (dense ones); a convolutional one decodes here."""
    return instrument.runs_in_page(ws.settings)


def code_key(dim: int) -> str:
    return f"z{dim}"


def current_code(latent_dim: int) -> np.ndarray:
    code = st.session_state.get(CODE)
    if code is None or len(code) != latent_dim:
        return np.zeros(latent_dim, dtype=np.float32)
    return np.asarray(code, dtype=np.float32)


def _store(code: np.ndarray) -> np.ndarray:
    code = np.round(np.clip(np.asarray(code, dtype=np.float64), -SPAN, SPAN), 2).astype(np.float32)
    st.session_state[CODE] = code
    for dim, value in enumerate(code):
        st.session_state[code_key(dim)] = float(value)  # the server's sliders follow
    return code


def set_code(code: np.ndarray) -> None:
    """Move the code (and every slider, in the page and on the server) to ``code``: a widget callback."""
    _store(code)
    st.session_state[CODE_SERIAL] = st.session_state.get(CODE_SERIAL, 0) + 1


def send_to_explorer(code: np.ndarray, label: int | None = None) -> None:
    """From another tab's callback: move the sliders to ``code`` (a conditional model's class picker to
    ``label``) and open the Explore tab."""
    set_code(code)
    if label is not None:
        st.session_state[CLASS] = int(label)
    open_tab("explore")


def render(ws: Workspace) -> None:
    st.checkbox(t("explore.order_by_kl"), key="order_by_kl", help=t("help.order_by_kl"))
    if ws.settings.conditional:
        names = class_names(ws.settings.dataset)
        st.session_state.setdefault(CLASS, 0)
        st.radio(t("explore.class"), list(range(CLASSES)), format_func=names.__getitem__, key=CLASS, horizontal=True,
                 help=t("help.explore_class"))  # fmt: skip
    if not runs_in_page(ws):
        st.info(t("explore.conv_server"))
        st.fragment(run_every=instrument.poll_seconds(ws))(_sliders)(ws)
    else:
        st.fragment(run_every=instrument.poll_seconds(ws))(_instrument)(ws)
    if runs_in_page(ws) and not instrument.page_runs_model():
        # The server's own sliders, for where the page cannot run the model (AppTest). Next to the
        # page's they would go stale and, sent back on the next run, move the code back.
        with st.expander(t("explore.server_title")):
            st.fragment(_sliders)(ws)
    st.divider()
    grid, strip = st.columns(2)
    with grid:
        st.fragment(_manifold)(ws)
    with strip:
        st.fragment(_interpolation)(ws)


def _order(ws: Workspace) -> list[int]:
    latent_dim = ws.settings.latent_dim
    if st.session_state.get("order_by_kl"):
        return [int(d) for d in order_by_kl(ws.trainer.history.kl_per_dim, latent_dim)]
    return list(range(latent_dim))


@guarded  # a fragment reruns on its own: it needs its own guard
def _instrument(ws: Workspace) -> None:
    latent_dim = ws.settings.latent_dim
    meta = {
        "code": [round(float(v), 4) for v in current_code(latent_dim)],
        "code_serial": st.session_state.get(CODE_SERIAL, 0),
        "order": _order(ws),
        "label": chosen_class(ws) or 0,
    }
    instrument.mount(ws, "explore", meta, key=PAGE_KEY,
                     on_change={"on_code_change": lambda: _code_from_page(latent_dim)})  # fmt: skip


def _code_from_page(latent_dim: int) -> None:
    """The page's code at the end of a gesture (slider released, pad let go, random, zero)."""
    code = (st.session_state.get(PAGE_KEY) or {}).get("code")
    if code is None or len(code) != latent_dim:
        return
    values = np.asarray(code, dtype=np.float64)
    if np.all(np.isfinite(values)):
        _store(values)


@guarded  # a fragment reruns on its own: it needs its own guard
def _sliders(ws: Workspace) -> None:
    """The server's path: one Streamlit slider per dimension and the image decoded here (AppTest uses it)."""
    latent_dim = ws.settings.latent_dim
    code = current_code(latent_dim)
    for dim in range(latent_dim):
        st.session_state.setdefault(code_key(dim), float(code[dim]))
    image_column, slider_column = st.columns([1, 2])
    with slider_column:
        buttons = st.columns(2)
        buttons[0].button(t("explore.random"), on_click=_random, args=(latent_dim,), key="random_code")
        buttons[1].button(t("explore.zero"), on_click=set_code, args=(np.zeros(latent_dim),), key="zero_code")
        columns = st.columns(min(SLIDER_COLUMNS, latent_dim))
        for position, dim in enumerate(_order(ws)):
            columns[position % len(columns)].slider(code_key(dim), -SPAN, SPAN, step=0.05, key=code_key(dim),
                                                    on_change=_slider_moved, args=(latent_dim,))  # fmt: skip
    image = ws.refresh().decode(current_code(latent_dim)[None], chosen_class(ws))[0]
    image_column.image(to_display(image, 8), caption=t("explore.caption"), output_format="PNG")


def _slider_moved(latent_dim: int) -> None:
    set_code(np.array([st.session_state.get(code_key(d), 0.0) for d in range(latent_dim)]))


def _random(latent_dim: int) -> None:
    set_code(np.random.default_rng().standard_normal(latent_dim))


def _kept(key: str, default, allowed=None) -> str:
    """``key`` for a widget whose value outlives the tab: Streamlit forgets a widget that was not drawn."""
    kept = st.session_state.setdefault(KEPT, {})
    if key not in st.session_state:
        value = kept.get(key, default)
        st.session_state[key] = value if allowed is None or value in allowed else default
    return key


def _remember(*keys: str) -> None:
    kept = st.session_state.setdefault(KEPT, {})
    for key in keys:
        kept[key] = st.session_state[key]


@guarded  # a fragment reruns on its own: it needs its own guard
def _manifold(ws: Workspace) -> None:
    latent_dim = ws.settings.latent_dim
    st.markdown(f"**{t('explore.grid_title')}**")
    if latent_dim < 2:
        dims = (0, 0)
    else:
        first, second = st.columns(2)
        options = range(latent_dim)
        dims = (
            first.selectbox(t("explore.grid_x"), options, format_func=code_key, key=_kept("grid_x", 0, options)),
            second.selectbox(t("explore.grid_y"), options, format_func=code_key, key=_kept("grid_y", 1, options)),
        )
        _remember("grid_x", "grid_y")
    steps = st.slider(t("explore.grid_size"), 5, 21, step=2, key=_kept("grid_steps", 11))
    span = st.slider(t("explore.grid_span"), 0.5, SPAN, step=0.25, key=_kept("grid_span", 2.0))
    _remember("grid_steps", "grid_span")
    codes = grid_codes(current_code(latent_dim), dims, steps, span)
    images = ws.refresh().decode(codes, chosen_class(ws))
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
                      key=_kept("strip_source", "test", sources))  # fmt: skip
    _remember("strip_source")
    inference = ws.refresh()
    if source == "drawn":
        start, end = st.session_state.get("code_a"), st.session_state.get("code_b")
        if start is None or end is None or len(start) != latent_dim or len(end) != latent_dim:
            st.info(t("explore.strip_need_drawn"))
            return
    else:
        count = len(ws.dataset.x_test)
        indices = range(count)
        first, second = st.columns(2)
        a = first.number_input(t("explore.strip_a"), 0, count - 1, key=_kept("strip_a", 0, indices))
        b = second.number_input(t("explore.strip_b"), 0, count - 1, key=_kept("strip_b", 1, indices))
        _remember("strip_a", "strip_b")
        chosen = ws.dataset.x_test[[a, b]]
        st.image(to_display(tile(chosen, 2, gap=2), 2), caption=t("explore.strip_preview", a=a, b=b),
                 output_format="PNG")  # fmt: skip
        labels = ws.dataset.y_test[[a, b]] if ws.settings.conditional else None  # each with its own class
        start, end = inference.encode(chosen, labels)[0]
    steps = st.slider(t("explore.strip_steps"), 3, 15, key=_kept("strip_steps", 9))
    _remember("strip_steps")
    images = inference.decode(interpolate(start, end, steps), chosen_class(ws))
    st.image(to_display(tile(images, steps, gap=0), 3), caption=t("explore.strip_caption"), output_format="PNG")
