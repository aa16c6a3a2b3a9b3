"""The model as the guide defines it: layers, shapes, parameters, its loss, its config; download and load."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from playground.models import MAX_MODEL_BYTES, describe, load_vae, save_vae
from playground.ui import experiment
from playground.ui.feedback import flash, guarded
from playground.ui.i18n import t
from playground.ui.sidebar import set_widgets
from playground.workspace import Workspace


def render(ws: Workspace) -> None:
    st.fragment(_panel)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    inference = ws.refresh()
    model = inference.model
    st.markdown(t("model.intro"))
    rows = describe(model)
    table = {
        t("model.layer"): [row.path for row in rows],
        t("model.kind"): [row.kind for row in rows],
        t("model.shape"): [str(row.output_shape) for row in rows],
        t("model.trainable"): [row.trainable for row in rows],
        t("model.non_trainable"): [row.non_trainable for row in rows],
    }
    st.dataframe(table, hide_index=True, width="stretch")
    trainable = sum(row.trainable for row in rows)
    st.caption(t("model.totals", trainable=f"{trainable:,}", non_trainable=sum(r.non_trainable for r in rows)))
    _losses(ws, model)
    with st.expander(t("model.config")):
        st.json(model.get_config())
    _downloads(ws)
    _upload(ws)


def _losses(ws: Workspace, model) -> None:
    st.markdown(f"**{t('model.losses_title')}**")
    st.latex(r"\mathcal{L}_{KL} = \beta \cdot \left(-\tfrac{1}{2}\,\operatorname{mean}\left(1 + \log\sigma^2"
             r" - \mu^2 - \sigma^2\right)\right)")  # fmt: skip
    model(ws.dataset.x_test[:256].reshape(-1, 784))  # one forward pass fills model.losses
    value = float(np.sum([float(loss) for loss in model.losses]))
    st.caption(t("model.losses_value", count=len(model.losses), beta=model.kl_weight, value=f"{value:.5g}"))
    st.markdown(t(f"model.objective_{ws.settings.loss}"))


def _model_bytes(ws: Workspace) -> bytes:
    """The current weights as a .keras file, made when the user clicks download."""
    with tempfile.TemporaryDirectory() as folder:
        path = save_vae(ws.inference.model, Path(folder) / "vae.keras")
        return path.read_bytes()


def _downloads(ws: Workspace) -> None:
    left, right = st.columns(2)
    left.download_button(t("model.download"), data=lambda: _model_bytes(ws), file_name="vae-playground.keras",
                         mime="application/zip", key="download_model")  # fmt: skip
    right.download_button(t("model.download_history"), data=ws.trainer.history.to_csv, file_name="loss-history.csv",
                          mime="text/csv", key="download_history", disabled=not ws.trained)  # fmt: skip
    experiment.download(ws)  # issue 13: model, settings, history and a retraining script in one zip


def _upload(ws: Workspace) -> None:
    st.file_uploader(t("model.upload"), type=["keras"], key="model_upload", on_change=_load_upload, args=(ws,),
                     help=t("help.upload_model", mb=MAX_MODEL_BYTES // 2**20), disabled=ws.training)  # fmt: skip


def _load_upload(ws: Workspace) -> None:
    upload = st.session_state.get("model_upload")
    if upload is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.keras"
        path.write_bytes(upload.getvalue())
        try:
            model = load_vae(path)
        except ValueError as error:
            flash("error", t("model.upload_error", detail=error))
            return
    config = model.get_config()
    settings = ws.settings.replace(latent_dim=model.latent_dim, intermediate_dim=model.intermediate_dim,
                                   kl_weight=model.kl_weight, seed=config.get("seed") or 0)  # fmt: skip
    ws.adopt(model, settings)
    set_widgets(settings)
    flash("success", t("model.upload_done", name=upload.name, latent=model.latent_dim))
