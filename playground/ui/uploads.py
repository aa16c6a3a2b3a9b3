"""The sidebar's data section: the dataset picker (built-in and your own) and the uploader of your own images.

Files are checked whole by ``playground.uploads``; a refused file leaves the dataset in
use as it was and says why under the uploader. An accepted one is kept in the workspace's
``datasets/`` folder (so a reload, a restart and its runs find it again) and chosen in
the picker: an untrained model switches to it at once; a trained one asks first, as for any dataset.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from playground import uploads
from playground.config import epochs_for, fields
from playground.data import DATASETS as DATASET_TITLES
from playground.data import is_upload_name
from playground.ui.feedback import flash
from playground.ui.i18n import t
from playground.workspace import Workspace

PICKER = "set_dataset"  # the sidebar's dataset picker (sidebar.WIDGETS["dataset"]), which offers ``titles()``
FILES = "data_upload"  # the uploader's key
ERROR = "data_upload_error"  # why the last files were refused, shown under the uploader


def titles(ws: Workspace | None = None) -> dict[str, str]:
    """Every dataset this workspace can pick, name -> title: the built-in ones, then its own images."""
    ws = ws if ws is not None else st.session_state.get("workspace")
    names = {name: DATASET_TITLES[name] for name in fields()[0].choices}
    own = uploads.kept(ws.runs_dir) if ws is not None else {}
    names.update({name: f"{t('upload.own')}: {title}" for name, title in own.items()})
    chosen = st.session_state.get(PICKER)
    if is_upload_name(chosen) and chosen not in names:  # from a link or a run whose files this workspace lacks
        names[chosen] = f"{t('upload.own')}: {chosen}"
    return names


def render(ws: Workspace) -> None:
    """Upload your own images: the formats, the uploader, the button that checks and keeps them."""
    # A fixed ``expanded``: a changed one would open or close the section under the student's hands on a rerun.
    with st.expander(t("upload.title"), expanded=False):
        st.markdown(t("upload.formats", images=f"{uploads.MAX_IMAGES:,}", mb=st.get_option("server.maxUploadSize"),
                      classes=uploads.MAX_CLASSES, least=uploads.MIN_IMAGES))  # fmt: skip
        # New files clear the last refusal: a new verdict comes with the button.
        files = st.file_uploader(t("upload.files"), accept_multiple_files=True, key=FILES,
                                 help=t("upload.files_help"), disabled=ws.runs_dir is None,
                                 on_change=st.session_state.pop, args=(ERROR, None))  # fmt: skip
        st.button(t("upload.use"), key="data_upload_use", on_click=_use, args=(ws,), disabled=not files,
                  width="stretch")  # fmt: skip
        if st.session_state.get(ERROR):
            st.error(t("upload.refused", detail=st.session_state[ERROR]))


def _use(ws: Workspace) -> None:
    """Check the files; keep the dataset and pick it, or say why not (the dataset in use stays)."""
    files = st.session_state.get(FILES) or []
    st.session_state[ERROR] = None
    try:
        dataset = uploads.load_files([(upload.name, upload.getvalue()) for upload in files])
        uploads.keep(dataset, Path(ws.runs_dir))
    except ValueError as error:
        st.session_state[ERROR] = str(error)
        return
    except OSError as error:  # a full disk: nothing half-kept is used, the old dataset stays
        st.session_state[ERROR] = t("upload.not_kept", detail=error)
        return
    epochs = _follow_epochs(ws, len(dataset.x_train))
    st.session_state[PICKER] = dataset.name
    if not ws.trained and not ws.training:  # nothing to lose: switch now, so the whole page shows the new data
        try:
            ws.switch(ws.settings.replace(dataset=dataset.name, epochs=epochs or ws.settings.epochs))
        except ValueError as error:
            st.session_state[ERROR] = str(error)
            return
    flash("success", t("upload.done", title=dataset.title, train=f"{len(dataset.x_train):,}",
                       test=f"{len(dataset.x_test):,}", labels=", ".join(dataset.class_names[:12])))  # fmt: skip


def _follow_epochs(ws: Workspace, train_examples: int) -> int | None:
    """Epochs left at the current dataset's watchable default follow the new dataset's size (as the sidebar does):
    the new epochs, or None if the learner chose their own."""
    batch, epochs = st.session_state.get("set_batch_size"), st.session_state.get("set_epochs")
    if isinstance(batch, int) and batch >= 1 and epochs == epochs_for(len(ws.dataset.x_train), batch):
        st.session_state["set_epochs"] = epochs_for(train_examples, batch)
        return st.session_state["set_epochs"]
    return None
