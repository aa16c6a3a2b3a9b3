"""Messages set in widget callbacks, shown at the top of the next run."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import streamlit as st

from playground.ui.i18n import t

log = logging.getLogger("playground")

_KEY = "flash"


def flash(kind: str, text: str) -> None:
    """Queue a message ("info", "success", "warning" or "error") for the next run."""
    st.session_state.setdefault(_KEY, []).append((kind, text))


def show() -> None:
    for kind, text in st.session_state.pop(_KEY, []):
        getattr(st, kind)(text)


def guarded(panel: Callable[..., None]) -> Callable[..., None]:
    """Show a short error in place of a panel that fails, log the details, keep the page alive."""

    @functools.wraps(panel)
    def run(*args, **kwargs) -> None:
        try:
            panel(*args, **kwargs)
        except Exception:  # Streamlit's own rerun and stop signals are BaseExceptions and pass through
            log.exception("panel %s failed", panel.__name__)
            st.error(t("error.unexpected"))

    return run
