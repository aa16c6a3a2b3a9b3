"""The page address as the experiment: read on a session's first run, rewritten as the sidebar changes.

A teacher's flags ride along: ``hide=`` hides sidebar inputs and tabs, ``lesson=`` opens a lesson.
The ``ws`` (runs folder) and ``lang`` parameters are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from playground.config import Settings
from playground.lessons import LESSONS
from playground.link import (
    HIDE_PARAM,
    LESSON_PARAM,
    PARAMS,
    Note,
    hidden_parts,
    params_from_settings,
    settings_from_params,
)
from playground.ui.feedback import flash
from playground.ui.i18n import t

LESSON_KEY = "lesson_id"  # the lesson the Lessons tab shows
SIDEBAR_PARTS = {"presets": ("preset", "preset_apply"), "language": ("lang",)}


def from_address(defaults: Settings) -> Settings:
    """The address's settings over ``defaults`` (first run of a session); bad values are noted, not used."""
    settings, notes = settings_from_params(_params(), defaults)
    _, hide_notes = hidden_parts(st.query_params.get(HIDE_PARAM))
    lesson = st.query_params.get(LESSON_PARAM)
    if lesson is not None:
        notes += _open_lesson(lesson)
    for note in notes + hide_notes:
        flash("warning", _note_text(note, defaults))
    return settings


def write(settings: Settings) -> None:
    """Keep the address in step with the sidebar (only the parameters that changed are written)."""
    for param, value in params_from_settings(settings).items():
        if st.query_params.get(param) != value:
            st.query_params[param] = value


def hidden() -> frozenset[str]:
    return hidden_parts(st.query_params.get(HIDE_PARAM))[0]


def visible_panels(panels: list[tuple[str, Callable]]) -> list[tuple[str, Callable]]:
    """Hide what ``hide=`` names: sidebar inputs (by style, so their values stay) and tabs (not drawn)."""
    parts = hidden()
    _hide_sidebar_parts(parts)
    shown = [(tab_id, render) for tab_id, render in panels if tab_id not in parts]
    return shown or panels[:1]


def _params() -> dict[str, str]:
    return {param: st.query_params[param] for param in PARAMS.values() if param in st.query_params}


def _open_lesson(lesson_id: str) -> list[Note]:
    if lesson_id not in LESSONS:
        return [Note(LESSON_PARAM, lesson_id, ", ".join(LESSONS))]
    st.session_state[LESSON_KEY] = lesson_id
    st.session_state["tab_id"] = "lessons"  # tabs.TAB
    return []


def _note_text(note: Note, defaults: Settings) -> str:
    if note.param == HIDE_PARAM:
        return t("link.bad_hide", value=note.value, known=note.reason.split(": ", 1)[-1].rstrip("."))
    if note.param == LESSON_PARAM:
        return t("link.bad_lesson", value=note.value, known=note.reason)
    field = next(name for name, param in PARAMS.items() if param == note.param)
    default = params_from_settings(defaults)[note.param]
    return t("link.bad_value", param=note.param, value=note.value, detail=note.reason, default=default,
             label=t(f"settings.{field}"))  # fmt: skip


def _hide_sidebar_parts(parts: frozenset[str]) -> None:
    from playground.ui.sidebar import WIDGETS  # sidebar imports this module

    keys = [WIDGETS[name] for name, param in PARAMS.items() if param in parts]
    for part, part_keys in SIDEBAR_PARTS.items():
        if part in parts:
            keys += part_keys
    rules = [f".st-key-{key}" for key in keys]
    if "sidebar" in parts:
        rules += ['section[data-testid="stSidebar"]', 'div[data-testid="stSidebarCollapsedControl"]']
    if rules:
        st.html(f"<style>{', '.join(rules)} {{display: none !important;}}</style>")
