"""The in-page instrument: one Components v2 component that runs the VAE's dense layers in the browser.

The server sends weights, not pixels: ``pack_weights``' blob behind a small JSON
block (labels, the code or the strokes to start from), as one ``bytes`` payload
(Components v2 cannot carry bytes inside a dict). The page decodes and encodes on
every pointer move and calls back only when a gesture ends. While training, a new
version goes out at most once a second, and less often for large models (see
``push_interval``) so that the page never receives more than about 2 MB a second.
"""

from __future__ import annotations

import functools
import json
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from playground.inference import HEADER_BYTES, pack_weights
from playground.ui.i18n import item_name, language, t
from playground.workspace import Workspace

HERE = Path(__file__).parent
MAGIC = b"VAEI"
PUSH_SECONDS = 1.0  # while training, a new weights version at most once a second ...
PUSH_BYTES_PER_SECOND = 2_000_000  # ... and no more than this much a second (784-1024-64: 3.5 MB / 7 MB)
PUSH_SLACK = 0.2  # a poll that comes a little early still sends: polls and pushes share the same period
_BLOBS = "instrument_blobs"  # per session and mode: the last packed weights and when they were packed
_PAGE_RUNS = "instrument_runs_in_page"  # set once the page has said it runs the model (never in AppTest)
_SENDS = "instrument_sends"  # per session: numbers every block sent, so that no two are the same message


@functools.cache
def _component():
    """The component, registered once per server process (its JS and CSS are read from the files beside)."""
    return st.components.v2.component(
        "vae_instrument",
        html="",
        css=(HERE / "instrument.css").read_text(encoding="utf-8"),
        js=(HERE / "instrument.js").read_text(encoding="utf-8"),
    )


def push_interval(blob_bytes: int) -> float:
    """Seconds between two weights versions sent while training: 1 s, longer for blobs over 2 MB."""
    return max(PUSH_SECONDS, blob_bytes / PUSH_BYTES_PER_SECOND)


def poll_seconds(ws: Workspace) -> float | None:
    """How often the instrument's fragment looks for new weights: only while training."""
    return PUSH_SECONDS if ws.training else None


def envelope(meta: dict, weights: bytes) -> bytes:
    """MAGIC, the JSON block's length (uint32 LE), the JSON padded to 4 bytes, then the packed weights."""
    block = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    return MAGIC + struct.pack("<I", len(block)) + block + b"\0" * (-len(block) % 4) + weights


def runs_in_page(settings) -> bool:
    """Whether the page can run this model: the dense ones; a convolutional one decodes on the server."""
    return settings.architecture == "dense"


# What the page gets for a model it cannot run: no weights, so it only draws (Draw) and the server decodes.
_NO_WEIGHTS = {"identity": None, "blob": b"", "key": "", "at": 0.0, "sent_at": 0, "delivered": True}


def _weights(ws: Workspace, mode: str, encoder: bool) -> dict:
    """The packed weights for ``mode`` (key, blob, when packed), re-packed only when there is news."""
    if not runs_in_page(ws.settings):
        return dict(_NO_WEIGHTS)
    inference = ws.refresh()
    identity = (id(ws.trainer), inference.version, encoder, ws.settings.model_key())
    blobs = st.session_state.setdefault(_BLOBS, {})
    cached = blobs.get(mode)
    if cached is not None and cached["identity"] == identity:
        return cached
    too_soon = cached is not None and time.monotonic() - cached["at"] < push_interval(len(cached["blob"])) - PUSH_SLACK
    if too_soon and ws.training:
        return cached  # throttled: a later poll sends the newer weights
    blob = pack_weights(inference.model, inference.version or 0, encoder=encoder)
    key = f"{zlib.crc32(blob[HEADER_BYTES:])}:{(len(blob) - HEADER_BYTES) // 4}"  # what the page caches them by
    blobs[mode] = {"identity": identity, "blob": blob, "key": key, "at": time.monotonic(),
                   "sent_at": time.time() * 1000, "delivered": False}  # fmt: skip
    return blobs[mode]


def mount(ws: Workspace, mode: str, meta: dict, key: str, on_change: dict[str, Callable[[], None]]):
    """Mount the instrument in ``mode`` ("explore" or "draw") with ``meta`` for its JSON block.

    The weights travel once per version: later reruns send only their key, and a page that
    does not hold them (a reload, an evicted cache) asks for them with its "need" state.
    """
    weights = _weights(ws, mode, encoder=mode == "draw")
    # A new signature remounts the page's instrument: a convolutional model must not keep a dense one's weights.
    signature = f"{mode}:{ws.settings.latent_dim}:{ws.settings.architecture}:{language()}:{ws.settings.dataset}:" \
        f"{meta.get('order')}"  # fmt: skip
    # Streamlit sends an element the browser says it holds (over 10 kB: this one carries its JS) as a
    # reference to it; the browser may drop it before the reference comes (a fragment rerun asked while
    # another run ends), which stops the page with "Cached ForwardMsg MISS". A slider pressed back and
    # forth repeats a block; numbered, no block repeats, and the page gets each one whole.
    sends = st.session_state[_SENDS] = st.session_state.get(_SENDS, 0) + 1
    block = {**meta, "mode": mode, "labels": _labels(), "sent_at": weights["sent_at"], "signature": signature,
             "weights_key": weights["key"], "send": sends}  # fmt: skip
    payload = envelope(block, b"" if weights["delivered"] else weights["blob"])
    weights["delivered"] = True
    needed = functools.partial(_needed, key, mode)
    return _component()(key=key, data=payload, on_need_change=needed, on_ready_change=_ready, **on_change)


def page_runs_model() -> bool:
    """Whether this session's page runs the instrument; until then (and in AppTest) the server path shows."""
    return bool(st.session_state.get(_PAGE_RUNS))


def _ready() -> None:
    st.session_state[_PAGE_RUNS] = True


def _needed(key: str, mode: str) -> None:
    """The page lacks the weights it was told about: send them with the next run."""
    cached = st.session_state.get(_BLOBS, {}).get(mode)
    if cached is not None:
        cached["delivered"] = False


def _labels() -> dict[str, str]:
    return {
        "decoded": t("instrument.decoded"),
        "decoded_caption": t("instrument.decoded_caption"),
        "pad": t("instrument.pad"),
        "pad_x": t("instrument.pad_x"),
        "pad_y": t("instrument.pad_y"),
        "random": t("explore.random"),
        "zero": t("explore.zero"),
        "weights": t("instrument.weights"),
        "canvas": t("instrument.canvas"),
        "undo": t("instrument.undo"),
        "clear": t("instrument.clear"),
        "input": t("draw.input_caption", item=item_name()),
        "reconstruction": t("instrument.reconstruction"),
        "code_bars": t("instrument.code_bars"),
        "help": t("draw.canvas_help", item=item_name()),
    }
