"""Draw a digit (or upload one): see the 28 x 28 input, its reconstruction and its latent code.

Drawing happens in the page's instrument (``instrument.js``): it prepares the
digit, encodes and decodes it on every pointer move, and sends the strokes and
the prepared 28 x 28 digit here when a stroke ends. The server then holds the
code for "explore this code", the interpolation endpoints and the latent map.
An image put in ``DRAWN`` (the tests, the fallback) or uploaded is prepared and
shown by the server.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from playground.figures import code_bars
from playground.imaging import FIELD, is_blank, photo_to_mnist, read_image, tile, to_display, to_mnist
from playground.models import CLASSES
from playground.ui import instrument
from playground.ui.explore import class_names, send_to_explorer
from playground.ui.feedback import guarded
from playground.ui.i18n import item_name, t
from playground.ui.tabs import rerun_if_asked
from playground.workspace import Workspace

DRAWN = "draw_image"  # an image array to prepare on the server; tests put one here directly
STROKES = "draw_strokes"  # the page's strokes, so the drawing comes back when the tab does
PAGE_DIGIT = "draw_page_digit"  # the 28 x 28 digit the page prepared from them, or None
PAGE_KEY = "instrument_draw"
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
DRAW_CLASS = "draw_class"  # a conditional model: "guess" or the class (0-9) to encode the drawing with
GUESS = "guess"


def render(ws: Workspace) -> None:
    # New weights while training matter only to a drawing on the canvas (1.6 MB a version for the
    # default model); an empty canvas gets the latest ones with the first stroke's pointer-up.
    drawing = bool(st.session_state.get(STROKES))
    st.fragment(run_every=instrument.poll_seconds(ws) if drawing else None)(_panel)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    rerun_if_asked()
    choices = {"draw": t("draw.source_canvas"), "upload": t("draw.source_upload")}
    mode = st.radio(t("draw.source"), list(choices), format_func=choices.get, key="draw_source", horizontal=True)
    picked = _class_picker(ws)
    if mode == "upload":
        source, result = st.columns([1, 2])
        with source:
            image = _upload_image()
        with result:
            _show(ws, _prepare(image), pictures=True, picked=picked)
        return
    digit = st.session_state.get(PAGE_DIGIT)
    in_page = instrument.runs_in_page(ws.settings)
    if not in_page:
        st.info(t("draw.conv_server"))
    meta = {"strokes": st.session_state.get(STROKES, []), "label": _label_for(ws, picked, digit) or 0}
    instrument.mount(ws, "draw", meta, key=PAGE_KEY, on_change={"on_drawing_change": _drawing_from_page})
    if digit is not None:
        _show(ws, digit, pictures=not in_page, picked=picked)  # the page draws the pictures when it runs the model
    else:
        _show(ws, _prepare(st.session_state.get(DRAWN)), pictures=True, picked=picked)


def _class_picker(ws: Workspace) -> str | int | None:
    """A conditional model's choice of class for the drawing: ``GUESS`` or a class (None: not conditional)."""
    if not ws.settings.conditional:
        return None
    names = class_names(ws.settings.dataset)
    options = [GUESS, *range(CLASSES)]
    return st.radio(t("draw.class"), options, format_func=lambda v: t("draw.class_guess") if v == GUESS else names[v],
                    key=DRAW_CLASS, horizontal=True, help=t("help.draw_class"))  # fmt: skip


def _label_for(ws: Workspace, picked: str | int | None, digit: np.ndarray | None) -> int | None:
    """The class to encode ``digit`` with: the one picked, or the model's best guess, the class of lowest
    loss (``Inference.best_labels``); None for a model that is not conditional."""
    if picked is None:
        return None
    if picked != GUESS:
        return int(picked)
    if digit is None or is_blank(digit):
        return 0
    return int(ws.refresh().best_labels(digit[None])[0])


def _every_class(ws: Workspace, digit: np.ndarray, label: int, picked: str | int) -> None:
    """Your digit as every class: encoded with ``label``, its code decoded with each of the ten."""
    names = class_names(ws.settings.dataset)
    if picked == GUESS:
        st.markdown(t("draw.guessed", name=names[label], item=item_name()))
    else:
        st.markdown(t("draw.picked", name=names[label], item=item_name()))
    strip = ws.refresh().as_every_class(digit, label)  # [10, 28, 28]
    st.image(to_display(tile(strip, CLASSES, gap=2), 3), output_format="PNG",
             caption=t("draw.every_class_caption", names=", ".join(names)))  # fmt: skip


def _upload_image():
    """The uploaded picture, its ink apart from the paper, as 28 x 28; None (with a message) if unreadable."""
    upload = st.file_uploader(t("draw.upload", item=item_name()), type=UPLOAD_TYPES, key="draw_upload")
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


def _drawing_from_page() -> None:
    """The page's strokes and prepared digit at the end of a stroke, an undo or a clear."""
    drawing = (st.session_state.get(PAGE_KEY) or {}).get("drawing")
    if not isinstance(drawing, dict):
        return  # a remounted component reports its other states without the drawing: nothing was drawn
    st.session_state[STROKES] = drawing.get("strokes") or []
    st.session_state.pop(DRAWN, None)
    digit = drawing.get("digit")
    values = None if digit is None else np.asarray(digit, dtype=np.float32)
    if values is None or values.shape != (FIELD * FIELD,) or not np.all((values >= 0) & (values <= 1)):
        st.session_state[PAGE_DIGIT] = None
        st.session_state.pop("drawn", None)
        return
    st.session_state[PAGE_DIGIT] = values.reshape(FIELD, FIELD)


def _prepare(image) -> np.ndarray | None:
    """``image`` as an MNIST input, or None (with a message) when it is missing, unreadable or blank."""
    if image is None:
        st.info(t("draw.empty", item=item_name()))
        return None
    try:
        digit = to_mnist(image)
    except ValueError as error:
        st.error(t("draw.bad_image", detail=error))
        return None
    if is_blank(digit):
        st.info(t("draw.empty", item=item_name()))
        return None
    return digit


def _show(ws: Workspace, digit: np.ndarray | None, pictures: bool, picked: str | int | None = None) -> None:
    if digit is None:
        return
    inference = ws.refresh()
    label = _label_for(ws, picked, digit)
    z_mean, z_log_var = (code[0] for code in inference.encode(digit[None], label))
    st.session_state["drawn"] = {"digit": digit, "z_mean": z_mean, "z_log_var": z_log_var}
    if pictures:
        reconstruction = inference.decode(z_mean[None], label)[0]
        left, right = st.columns(2)
        left.image(to_display(digit, 6), caption=t("draw.input_caption", item=item_name()), output_format="PNG",
                   width=168)  # fmt: skip
        right.image(to_display(reconstruction, 6), caption=t("draw.reconstruction_caption"), output_format="PNG",
                    width=168)  # fmt: skip
        z_std = np.exp(0.5 * z_log_var)
        st.plotly_chart(code_bars(z_mean, z_std, {"mean": t("draw.code_axis")}), key="drawn_code",
                        config={"displayModeBar": False})  # fmt: skip
    if label is not None:
        _every_class(ws, digit, label, picked)
    send, keep_a, keep_b = st.columns(3)
    send.button(t("draw.send"), on_click=send_to_explorer, args=(z_mean, label), key="send_code", type="primary")
    keep_a.button(t("draw.keep_a"), on_click=_keep, args=("a", z_mean), key="keep_a")
    keep_b.button(t("draw.keep_b"), on_click=_keep, args=("b", z_mean), key="keep_b")


def _keep(slot: str, code: np.ndarray) -> None:
    st.session_state[f"code_{slot}"] = np.array(code)
    st.toast(t("draw.kept", slot=slot.upper()))
