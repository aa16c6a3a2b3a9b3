"""Every text the page shows, in English and Chinese, looked up by key from ``strings.toml``.

Translators edit ``strings.toml`` only: one table a message, ``en`` and ``zh``
side by side, ``{name}`` placeholders filled in by the page.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import streamlit as st

from playground.data import dataset_kind

STRINGS_FILE = Path(__file__).with_name("strings.toml")
LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"


@functools.cache
def table() -> dict[str, dict[str, str]]:
    """The parsed strings file (read once; it does not change while the server runs)."""
    return tomllib.loads(STRINGS_FILE.read_text(encoding="utf-8"))


def language() -> str:
    lang = st.session_state.get("lang", DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def t(key: str, **values) -> str:
    """The text for ``key`` in the page's language, with ``values`` filled in."""
    entry = table()[key]
    text = entry.get(language()) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


# Streamlit's file uploader has no parameters for its own texts ("Upload", "20MB per file",
# "Drag and drop file here"; streamlit/streamlit#13500). In Chinese the page draws them over
# with CSS: each English text is shrunk to nothing and the translation shown after it.
# test_app checks that the installed Streamlit still renders these test ids.
UPLOADER = '[data-testid="stFileUploaderDropzone"]'
_UPLOADER_TEXTS = {
    "upload": f'{UPLOADER} [data-testid="stBaseButton-secondary"] [data-testid="stMarkdownContainer"] p',
    "per_file": f'{UPLOADER} [data-testid="stFileUploaderDropzoneInstructions"] span',
    "drop": f"{UPLOADER} > div:not([data-testid]) > *",  # shown only while a file is dragged over
}


def uploader_css() -> str:
    """CSS that shows the file uploaders' own texts in the page's language ("" in English)."""
    if language() == DEFAULT_LANGUAGE:
        return ""
    megabytes = st.get_option("server.maxUploadSize")
    rules = []
    for name, selector in _UPLOADER_TEXTS.items():
        text = t(f"uploader.{name}", mb=megabytes).replace('"', "")
        rules.append(
            f'{selector} {{font-size: 0 !important;}} {selector}::after {{content: "{text}"; font-size: 0.875rem;}}'
        )
    return "<style>" + "\n".join(rules) + "</style>"


def localize_widgets() -> None:
    """Translate what Streamlit's widgets say by themselves (call once a run, before they are drawn)."""
    css = uploader_css()
    if css:
        st.html(css)


def duration(seconds: float) -> str:
    """A time left as people say it, in the page's language: "45 s", "3 min 20 s", "2 h 23 min"."""
    hours, rest = divmod(max(0, round(seconds)), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return t("time.hours", hours=hours, minutes=minutes)
    if minutes:
        return t("time.minutes", minutes=minutes, seconds=seconds)
    return t("time.seconds", seconds=seconds)


def item_name() -> str:
    """What one picture of the current dataset is called: "digit", or "piece of clothing" on Fashion-MNIST."""
    ws = st.session_state.get("workspace")
    dataset = ws.settings.dataset if ws is not None and ws.settings is not None else "mnist"
    kind = dataset_kind(dataset)  # "upload" for your own images: an "image"
    return t(f"item.{kind}")
