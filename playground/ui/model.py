"""The model as the guide defines it: layers, shapes, parameters, its loss, its config; download and load."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from playground.architecture import describe
from playground.losses import kl_per_dimension, loss_terms
from playground.model_files import MAX_MODEL_BYTES, load_vae, save_vae
from playground.models import settings_of
from playground.ui import experiment
from playground.ui.feedback import flash, guarded
from playground.ui.i18n import t
from playground.ui.sidebar import set_widgets
from playground.ui.tabs import open_tab, rerun_if_asked
from playground.workspace import Workspace


def render(ws: Workspace) -> None:
    st.fragment(_panel)(ws)


@guarded  # a fragment reruns on its own: it needs its own guard
def _panel(ws: Workspace) -> None:
    rerun_if_asked()
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


# The KL term exactly as playground.losses.loss_terms computes it for each loss: per example,
# the mean (guide) or the sum (ELBO) over the L latent dimensions; then the mean over the batch.
_KL_TERM = r"\mathrm{KL}_{bj} &= -\tfrac{1}{2}\left(1 + \log\sigma_{bj}^2 - \mu_{bj}^2 - \sigma_{bj}^2\right)"
_OVER_LATENT = {"guide": r"\frac{1}{L}\sum_{j=1}^{L}", "elbo": r"\sum_{j=1}^{L}"}  # mean, or sum
KL_FORMULAS = {  # two lines, so that the formula fits a phone's width
    loss: r"\begin{aligned}\mathcal{L}_{KL} &= \beta \cdot \frac{1}{B}\sum_{b=1}^{B} "
    + over
    + r" \mathrm{KL}_{bj} \\ "
    + _KL_TERM
    + r"\end{aligned}"
    for loss, over in _OVER_LATENT.items()
}
KL_SAMPLE = 256  # test images the shown value is averaged over


def kl_term(ws: Workspace) -> tuple[float, float]:
    """(KL, β · KL) of the current model on the first test images, as the current loss computes the term."""
    images = ws.dataset.x_test[:KL_SAMPLE].reshape(-1, 784)  # [B, 784]
    inference = ws.refresh()
    labels = ws.dataset.y_test[:KL_SAMPLE] if ws.settings.conditional else None  # [B]: a conditional model's
    z_mean, z_log_var = inference.encode(images, labels)  # each [B, L]
    reconstruction = inference.decode(z_mean, labels).reshape(-1, 784)
    terms = loss_terms(ws.settings.loss, images, reconstruction, kl_per_dimension(z_mean, z_log_var))
    kl = float(np.mean(np.asarray(terms.kl)))
    return kl, ws.settings.kl_weight * kl


def _losses(ws: Workspace, model) -> None:
    st.markdown(f"**{t('model.losses_title')}**")
    st.latex(KL_FORMULAS[ws.settings.loss])
    kl, weighted = kl_term(ws)
    st.caption(t(f"model.kl_value_{ws.settings.loss}", count=KL_SAMPLE, latent=ws.settings.latent_dim,
                 beta=f"{ws.settings.kl_weight:g}", kl=f"{kl:.5g}", value=f"{weighted:.5g}"))  # fmt: skip
    if ws.settings.kl_warmup_steps:
        st.caption(t("model.kl_warmup", steps=f"{ws.settings.kl_warmup_steps:,}"))
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
    open_tab("model")  # this callback runs in a fragment: redraw the whole page (message, sidebar) at once
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.keras"
        path.write_bytes(upload.getvalue())
        try:
            model = load_vae(path)
        except ValueError as error:
            flash("error", t("model.upload_error", detail=error))
            return
    config = model.get_config()
    settings = ws.settings.replace(**settings_of(model), kl_weight=model.kl_weight, seed=config.get("seed") or 0)
    ws.switch(settings, model)
    set_widgets(settings)
    flash("success", t("model.upload_done", name=upload.name, latent=model.latent_dim))
