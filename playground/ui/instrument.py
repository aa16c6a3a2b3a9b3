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
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from playground.inference import pack_weights
from playground.ui.i18n import language, t
from playground.workspace import Workspace

HERE = Path(__file__).parent
MAGIC = b"VAEI"
PUSH_SECONDS = 1.0  # while training, a new weights version at most once a second ...
PUSH_BYTES_PER_SECOND = 2_000_000  # ... and no more than this much a second (784-1024-64: 3.5 MB / 7 MB)
_BLOBS = "instrument_blobs"  # per session and mode: the last packed weights and when they were packed


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


def _weights(ws: Workspace, mode: str, encoder: bool) -> tuple[bytes, float]:
    """(packed weights, when they were packed in ms since the epoch), re-packed only when there is news."""
    inference = ws.refresh()
    identity = (id(ws.trainer), inference.version, encoder, ws.settings.latent_dim, ws.settings.intermediate_dim)
    blobs = st.session_state.setdefault(_BLOBS, {})
    cached = blobs.get(mode)
    if cached is not None and cached["identity"] == identity:
        return cached["blob"], cached["sent_at"]
    if cached is not None and ws.training and time.monotonic() - cached["at"] < push_interval(len(cached["blob"])):
        return cached["blob"], cached["sent_at"]  # throttled: the next poll sends the newer weights
    blob = pack_weights(inference.model, inference.version or 0, encoder=encoder)
    blobs[mode] = {"identity": identity, "blob": blob, "at": time.monotonic(), "sent_at": time.time() * 1000}
    return blob, blobs[mode]["sent_at"]


def mount(ws: Workspace, mode: str, meta: dict, key: str, on_change: dict[str, Callable[[], None]]):
    """Mount the instrument in ``mode`` ("explore" or "draw") with ``meta`` for its JSON block."""
    blob, sent_at = _weights(ws, mode, encoder=mode == "draw")
    labels = _labels()
    signature = f"{mode}:{ws.settings.latent_dim}:{language()}:{meta.get('order')}"
    payload = envelope({**meta, "mode": mode, "labels": labels, "sent_at": sent_at, "signature": signature}, blob)
    return _component()(key=key, data=payload, **on_change)


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
        "input": t("draw.input_caption"),
        "reconstruction": t("instrument.reconstruction"),
        "code_bars": t("instrument.code_bars"),
        "help": t("draw.canvas_help"),
    }
