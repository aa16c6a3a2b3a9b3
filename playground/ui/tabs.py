"""The page's tabs, remembered by id: only the open tab's panel runs, and a panel can open another."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from playground.ui.i18n import t

TAB = "tab_id"  # the open tab's id; the tabs widget itself holds its (translated) label
PREVIOUS_TAB = "previous_tab"  # the tab shown by the last full run, so a panel knows it was hidden


RERUN_APP = "rerun_app"


def open_tab(tab_id: str) -> None:
    """Open ``tab_id`` (from a widget callback in a fragment, whose own rerun would not redraw the tabs)."""
    st.session_state[TAB] = tab_id
    st.session_state[RERUN_APP] = True


def rerun_if_asked() -> None:
    """Called first in a fragment whose callbacks may open another tab: rerun the whole page then."""
    if st.session_state.pop(RERUN_APP, False):
        st.rerun(scope="app")


def render(panels: list[tuple[str, Callable[[], None]]]) -> None:
    """Tabs for ``panels`` (id, render); only the open one runs, so hidden tabs cost nothing."""
    st.session_state.pop(RERUN_APP, None)  # this is a whole-page run already: no panel needs to ask for one
    labels = {tab_id: t(f"tab.{tab_id}") for tab_id, _ in panels}
    current = st.session_state.get(TAB)
    st.session_state["tabs"] = labels.get(current, next(iter(labels.values())))
    tabs = st.tabs(list(labels.values()), key="tabs", on_change=_remember, args=(labels,))
    for (tab_id, panel), tab in zip(panels, tabs):
        if tab.open:
            with tab:
                panel()
            st.session_state[PREVIOUS_TAB] = tab_id


def _remember(labels: dict[str, str]) -> None:
    chosen = st.session_state["tabs"]
    st.session_state[TAB] = next((tab_id for tab_id, label in labels.items() if label == chosen), None)
