"""The sidebar's uploader of your own images, driven with AppTest: a good zip becomes the dataset and stays with
the workspace; a bad file is a message under the uploader and changes nothing."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from playground import uploads
from playground.config import epochs_for
from tests.conftest import APP
from tests.test_app import button, number, open_tab, wait_until_idle


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def drawings_zip(mnist, per_label: int = 12) -> bytes:
    """Real digits 3 and 7 as dark-on-light 28 x 28 PNGs, a folder each, zipped as a student would."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for digit in (3, 7):
            for i, image in enumerate(mnist.x_train[mnist.y_train == digit][:per_label]):
                archive.writestr(f"drawings/{digit}/{i}.png", _png((255 - image * 255).astype(np.uint8)))
    return buffer.getvalue()


def upload(at: AppTest, files) -> AppTest:
    at.file_uploader(key="data_upload").set_value(files).run()
    return button(at, "Check and use these files").click().run()


def kept_folder(at: AppTest):
    return at.session_state["workspace"].runs_dir


def test_an_uploaded_zip_becomes_the_dataset_and_is_kept_with_the_workspace(app, mnist):
    upload(app, [("drawings.zip", drawings_zip(mnist), "application/zip")])
    assert not app.exception and not app.error
    workspace = app.session_state["workspace"]
    assert workspace.dataset.origin == "upload" and workspace.dataset.class_names == ("3", "7")
    assert workspace.settings.dataset == workspace.dataset.name
    assert uploads.kept(workspace.runs_dir) == {workspace.dataset.name: "drawings"}
    assert any("Your images “drawings” are ready: 20 train / 4 test images" in s.value for s in app.success)
    assert app.selectbox(key="set_dataset").value == workspace.dataset.name
    assert number(app, "Epochs").value == workspace.settings.epochs == epochs_for(20, 64)  # a watchable run
    assert any("your files drawings.zip" in c.value for c in app.sidebar.caption)
    assert any(img.captions[0].startswith("Test pictures") for img in app.image)  # a neutral word, not "digits"
    np.testing.assert_array_equal(workspace.data.x_train.numpy().reshape(-1, 28, 28), workspace.dataset.x_train)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("cut.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (20, 784), }", "cut.npy"),
        ("evil.zip", None, "points outside the archive"),
    ],
)
def test_a_refused_file_says_why_and_the_dataset_stays(app, mnist, name, raw, message):
    if raw is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("../evil.png", b"x")
        raw = buffer.getvalue()
    before = app.session_state["workspace"].dataset
    upload(app, [(name, raw, "application/octet-stream")])
    assert not app.exception
    errors = [e.value for e in app.error]
    assert any(
        e.startswith("These files were not used, and the current dataset stays:") and message in e for e in errors
    )
    assert app.session_state["workspace"].dataset is before
    assert uploads.kept(kept_folder(app)) == {}
    button(app, "Start training")  # the page is still there
    app.file_uploader(key="data_upload").set_value([("drawings.zip", drawings_zip(mnist), "application/zip")]).run()
    button(app, "Check and use these files").click().run()
    assert not app.error and app.session_state["workspace"].dataset.origin == "upload"  # a good file still works


@pytest.mark.slow  # trains one short run
def test_a_run_on_uploaded_images_comes_back_after_a_restart(app, mnist):
    upload(app, [("drawings.zip", drawings_zip(mnist), "application/zip")])
    name = app.session_state["workspace"].dataset.name
    number(app, "Epochs").set_value(1).run()
    button(app, "Start training").click().run()
    wait_until_idle(app)
    token = app.query_params["ws"]
    token = token[0] if isinstance(token, list) else token
    app.session_state["workspace"].close()  # the janitor closes it; a later session restores it from disk
    reloaded = AppTest.from_file(APP, default_timeout=120)
    reloaded.query_params["ws"] = token
    reloaded.query_params["data"] = name  # the address the page wrote
    reloaded.run()
    assert not reloaded.exception and not reloaded.warning and not reloaded.error
    workspace = reloaded.session_state["workspace"]
    assert workspace is not app.session_state["workspace"] and workspace.trained
    assert workspace.dataset.name == name and workspace.dataset.class_names == ("3", "7")
    assert reloaded.selectbox(key="set_dataset").value == name
    open_tab(reloaded, "runs")
    assert not reloaded.exception
    table = reloaded.dataframe[0].value
    assert list(table["Dataset"]) == ["Your images: drawings"]
    workspace.stop(wait=True)


def test_the_uploader_speaks_chinese(app):
    app.radio(key="lang").set_value("zh").run()
    assert any(e.label == "你自己的图像" for e in app.sidebar.expander)
    assert any(b.label == "检查并使用这些文件" for b in app.button)


def test_the_code_tab_trains_on_the_same_files_from_the_terminal(app, mnist):
    from playground.cli import build_parser
    from playground.ui.code import command, snippet

    upload(app, [("drawings.zip", drawings_zip(mnist), "application/zip")])
    workspace = app.session_state["workspace"]
    line = command(workspace)
    assert "--source images:drawings.zip" in line and "--dataset" not in line
    args = build_parser().parse_args(line.split()[3:])  # the flags after "python -m playground"
    assert args.source == "images:drawings.zip"
    assert "load_dataset(settings.dataset, 'images:drawings.zip')" in snippet(workspace)
