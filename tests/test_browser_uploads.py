"""Your own images in the real page (Debian's Chromium): a refused file says why and the page goes on; a zip of
drawings becomes the dataset, named in the sidebar."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from tests.browser import ARTIFACTS, Server, launch_chromium, open_context, require_chromium, start_button

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _drawings_zip() -> bytes:
    """Dark rings and crosses on white, 60 x 60 PNGs, a folder each: what a student's scans look like."""
    from PIL import Image, ImageDraw

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("ring", "cross"):
            for i in range(8):
                picture = Image.new("L", (60, 60), 255)
                pen = ImageDraw.Draw(picture)
                if label == "ring":
                    pen.ellipse((10 + i, 10, 48, 50 - i), outline=0, width=5)
                else:
                    pen.line((10, 10 + i, 50, 50), fill=0, width=5)
                    pen.line((50, 10, 10, 50 - i), fill=0, width=5)
                png = io.BytesIO()
                picture.save(png, format="PNG")
                archive.writestr(f"shapes/{label}/{i}.png", png.getvalue())
    return buffer.getvalue()


def _evil_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.png", b"x")
    return buffer.getvalue()


def test_a_refused_file_then_a_zip_of_drawings_in_the_sidebar(tmp_path):
    from playwright.sync_api import sync_playwright

    require_chromium()
    (tmp_path / "shapes.zip").write_bytes(_drawings_zip())
    (tmp_path / "evil.zip").write_bytes(_evil_zip())
    server = Server(tmp_path / "runs")
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            context, page = open_context(browser, server.url)
            sidebar = page.locator('[data-testid="stSidebar"]')
            section = sidebar.locator("details", has_text="Your own images")
            files = page.locator(".st-key-data_upload input[type=file]")
            use = sidebar.get_by_role("button", name="Check and use these files")

            def send(path) -> None:
                """Open the section if a rerun closed it, choose the file, press the button once it is enabled."""
                if not section.evaluate("(details) => details.open"):
                    section.locator("summary").click()
                files.set_input_files(str(path))
                page.wait_for_function("(button) => !button.disabled", arg=use.element_handle(), timeout=60_000)
                use.click()

            try:
                send(tmp_path / "evil.zip")
                refused = sidebar.get_by_text("These files were not used, and the current dataset stays")
                refused.wait_for(timeout=60_000)
                assert "points outside the archive (path traversal)" in refused.inner_text()
                assert sidebar.get_by_text("MNIST — the bundled sample").count() == 1
                # The uploader adds files to those it holds: take the refused one away first, as a student would.
                page.get_by_role("button", name="Remove evil.zip").click()
                page.get_by_role("button", name="Remove evil.zip").wait_for(state="detached", timeout=60_000)
                send(tmp_path / "shapes.zip")
                page.get_by_text("Your images “shapes” are ready").wait_for(timeout=60_000)
                sidebar.get_by_text("shapes — your files shapes.zip, 14 train / 2 test images").wait_for(timeout=60_000)
                assert page.locator('[data-testid="stException"]').count() == 0
                assert start_button(page).is_enabled()
                page.get_by_text("Test pictures (top)").wait_for(timeout=60_000)  # the neutral word, not "digits"
                page.screenshot(path=str(ARTIFACTS / "own-images.png"))
            except Exception:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "own-images-failed.png"))
                raise
            finally:
                context.close()
                browser.close()
    finally:
        server.stop()
    assert np.any([path.suffix == ".npz" for path in (tmp_path / "runs").rglob("upload-*")])  # kept on disk
