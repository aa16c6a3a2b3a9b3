"""Download the experiment: model, settings, loss history and a script that retrains it (one zip)."""

from __future__ import annotations

import streamlit as st

from playground.export import experiment_zip
from playground.ui.i18n import t
from playground.workspace import Workspace


def download(ws: Workspace) -> None:
    st.download_button(t("export.download"), data=lambda: _zip(ws), file_name="vae-experiment.zip",
                       mime="application/zip", key="download_experiment", disabled=not ws.trained or ws.training,
                       help=t("export.help"))  # fmt: skip


def _zip(ws: Workspace) -> bytes:
    """Made when the learner clicks: the current weights, settings and history."""
    return experiment_zip(ws.settings, ws.trainer.history, ws.refresh().model, ws.dataset)
