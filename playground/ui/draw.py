"""Draw a digit (or upload one): see the 28 x 28 input, its reconstruction and its latent code."""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from playground.figures import code_bars
from playground.imaging import is_blank, photo_to_mnist, read_image, to_display, to_mnist
from playground.ui.explore import send_to_explorer
from playground.ui.feedback import guarded
from playground.ui.i18n import t
from playground.ui.tabs import PREVIOUS_TAB, rerun_if_asked
from playground.workspace import Workspace

CANVAS_PIXELS = 280
DRAWN = "draw_image"  # the latest drawing or upload as an image array; tests put one here directly


def render(ws: Workspace) -> None:
    st.fragment(_panel)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    rerun_if_asked()
    source, result = st.columns([1, 2])
    with source:
        image = _input_image()
    with result:
        _show(ws, image)


def _input_image():
    """The image to encode: from the canvas or from an upload, whichever the user picked."""
    choices = {"draw": t("draw.source_canvas"), "upload": t("draw.source_upload")}
    mode = st.radio(t("draw.source"), list(choices), format_func=choices.get, key="draw_source", horizontal=True)
    if mode == "upload":
        upload = st.file_uploader(t("draw.upload"), type=["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"],
                                  key="draw_upload")  # fmt: skip
        if upload is None:
            return None
        try:
            prepared = photo_to_mnist(read_image(upload.getvalue()))  # ink apart from shaded paper, noise
        except ValueError as error:
            st.error(t("draw.bad_upload", detail=error))
            return None
        for problem in prepared.problems:
            st.warning(t(f"draw.photo_{problem}"))
        return prepared.digit
    if st.session_state.get(PREVIOUS_TAB) != "draw":
        # The canvas was unmounted while another tab was open: bring the drawing back with it.
        st.session_state["canvas_initial"] = st.session_state.get("canvas_json")
    canvas = st_canvas(stroke_width=18, stroke_color="#FFFFFF", background_color="#000000", height=CANVAS_PIXELS,
                       width=CANVAS_PIXELS, drawing_mode="freedraw", key="canvas", return_image_data=True,
                       initial_drawing=st.session_state.get("canvas_initial"))  # fmt: skip
    st.caption(t("draw.canvas_help"))
    if canvas.image_data is not None:
        st.session_state[DRAWN] = canvas.image_data
        st.session_state["canvas_json"] = canvas.json_data
    return st.session_state.get(DRAWN)


def _show(ws: Workspace, image) -> None:
    if image is None:
        st.info(t("draw.empty"))
        return
    try:
        digit = to_mnist(image)
    except ValueError as error:
        st.error(t("draw.bad_image", detail=error))
        return
    if is_blank(digit):
        st.info(t("draw.empty"))
        return
    inference = ws.refresh()
    z_mean, z_log_var = (code[0] for code in inference.encode(digit[None]))
    reconstruction = inference.decode(z_mean[None])[0]
    st.session_state["drawn"] = {"digit": digit, "z_mean": z_mean, "z_log_var": z_log_var}
    left, right = st.columns(2)
    left.image(to_display(digit, 6), caption=t("draw.input_caption"), output_format="PNG", width=168)
    right.image(to_display(reconstruction, 6), caption=t("draw.reconstruction_caption"), output_format="PNG", width=168)
    z_std = np.exp(0.5 * z_log_var)
    st.plotly_chart(code_bars(z_mean, z_std, {"mean": t("draw.code_axis")}), key="drawn_code",
                    config={"displayModeBar": False})  # fmt: skip
    send, keep_a, keep_b = st.columns(3)
    send.button(t("draw.send"), on_click=send_to_explorer, args=(z_mean,), key="send_code", type="primary")
    keep_a.button(t("draw.keep_a"), on_click=_keep, args=("a", z_mean), key="keep_a")
    keep_b.button(t("draw.keep_b"), on_click=_keep, args=("b", z_mean), key="keep_b")


def _keep(slot: str, code: np.ndarray) -> None:
    st.session_state[f"code_{slot}"] = np.array(code)
    st.toast(t("draw.kept", slot=slot.upper()))
