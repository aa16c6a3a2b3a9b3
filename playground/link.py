"""The experiment in the page address: settings as short query parameters, and a teacher's flags.

``?data=mnist&loss=elbo&latent=8&hidden=256&lr=0.001&batch=64&epochs=10&kl=1&warmup=0&seed=0``
holds a whole experiment; ``hide=loss,dataset,runs`` hides parts of the page and
``lesson=collapse`` opens a lesson. Everything here is pure: the page reads and
writes ``st.query_params`` through ``playground.ui.link``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from playground.config import ARCHITECTURES, DATASETS, LOSSES, Settings
from playground.data import is_upload_name

# Settings field -> its name in the address (short enough to read, long enough to guess).
PARAMS = {
    "dataset": "data",
    "loss": "loss",
    "latent_dim": "latent",
    "intermediate_dim": "hidden",
    "hidden_layers": "layers",
    "conditional": "cond",
    "architecture": "arch",
    "learning_rate": "lr",
    "batch_size": "batch",
    "epochs": "epochs",
    "kl_weight": "kl",
    "kl_warmup_steps": "warmup",
    "seed": "seed",
}
HIDE_PARAM = "hide"
LESSON_PARAM = "lesson"
# What ``hide=`` can name besides the settings: the sidebar's other parts and the tabs.
PAGE_PARTS = ("presets", "language", "sidebar", "draw", "explore", "map", "runs", "model", "code", "lessons")
HIDEABLE = (*PARAMS.values(), *PAGE_PARTS)


@dataclass(frozen=True)
class Note:
    """A value in the address that was not used, and why (shown on the page)."""

    param: str
    value: str
    reason: str


def format_value(value: int | float | str) -> str:
    """A setting as the address shows it: ``0.001``, ``1``, ``64``, ``1`` for on (exact: it reads back equal)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        short = format(value, "g")
        return short if float(short) == value else repr(value)
    return str(value)


def params_from_settings(settings: Settings) -> dict[str, str]:
    """The address's parameters for ``settings``."""
    return {param: format_value(getattr(settings, name)) for name, param in PARAMS.items()}


def settings_from_params(params: Mapping[str, str], defaults: Settings) -> tuple[Settings, list[Note]]:
    """``defaults`` with every valid setting of ``params`` applied; each bad value is a ``Note``."""
    settings, notes = defaults, []
    for name, param in PARAMS.items():
        if param not in params:
            continue
        value = str(params[param]).strip()
        try:
            settings = settings.replace(**{name: _parsed(name, value)})
        except ValueError as error:
            notes.append(Note(param, value, str(error)))
    return settings, notes


def _parsed(name: str, value: str) -> str | float:
    if name == "dataset":
        if value not in DATASETS and not is_upload_name(value):  # your own images, kept in the workspace
            raise ValueError(f"The dataset must be one of {', '.join(DATASETS)}.")
        return value
    if name == "loss":
        if value not in LOSSES:
            raise ValueError(f"The loss must be one of {', '.join(LOSSES)}.")
        return value
    if name == "architecture":
        if value not in ARCHITECTURES:
            raise ValueError(f"The architecture must be one of {', '.join(ARCHITECTURES)}.")
        return value
    return value  # Settings checks numbers and on/off itself: type, bounds, whole or not


def hidden_parts(value: str | None) -> tuple[frozenset[str], list[Note]]:
    """The parts ``hide=a,b,c`` names; unknown names are notes."""
    names = [part.strip().lower() for part in (value or "").split(",") if part.strip()]
    names = [PARAMS.get(name, name) for name in names]  # a setting's own name works too: dataset, latent_dim
    unknown = [name for name in names if name not in HIDEABLE]
    notes = [Note(HIDE_PARAM, name, f"Only these can be hidden: {', '.join(HIDEABLE)}.") for name in unknown]
    return frozenset(name for name in names if name in HIDEABLE), notes


def changed_settings(before: Settings, after: Settings) -> dict[str, tuple]:
    """Field -> (before, after) for every setting that differs."""
    return {
        name: (getattr(before, name), getattr(after, name))
        for name in PARAMS
        if getattr(before, name) != getattr(after, name)
    }
