"""A reload in Debian's Chromium: the same address brings back the live training, its curve and settings;
reopening a saved run shows its message at once (the Runs tab is a fragment)."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import (
    ARTIFACTS,
    POINTS_JS,
    Server,
    expect_number,
    launch_chromium,
    require_chromium,
    set_number,
    start_button,
)
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    running = Server(tmp_path_factory.mktemp("runs"), PLAYGROUND_ABANDON_SECONDS="20")
    yield running
    running.stop()


def progress_text(page) -> str:
    return page.locator('[data-testid="stProgress"]').first.inner_text()


def epoch_now(page) -> int:
    """The epoch in progress, from the progress bar's text ("Training · epoch 12/1000 · ...")."""
    found = re.search(r"epoch (\d+)/", progress_text(page))
    return int(found.group(1)) if found else 0


def test_a_reload_mid_training_brings_back_the_training_its_curve_and_settings(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        try:
            page.goto(server.url)
            start_button(page).wait_for(timeout=90_000)
            set_number(page, "Latent size", 5, settle=1.0)
            set_number(page, "KL weight", 0.5, settle=1.0)
            set_number(page, "Epochs", 1000, settle=1.0)
            start_button(page).click()
            wait_for(lambda: page.evaluate(POINTS_JS) > 5, 60, "the chart did not grow")
            address = page.url
            assert "ws=" in address
            epoch = epoch_now(page)

            started = time.monotonic()
            page.reload()
            start_button(page).wait_for(timeout=90_000)
            wait_for(lambda: page.evaluate(POINTS_JS) > 5, 60, "the curve did not come back")
            wait_for(lambda: epoch_now(page) > epoch, 60, "training did not go on after the reload")
            print(f"curve back and training on {time.monotonic() - started:.1f} s after the reload")
            expect_number(page, "Latent size", "5")
            expect_number(page, "KL weight", "0.5")
            expect_number(page, "Epochs", "1000")

            other = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()  # another browser
            other.goto(address)
            start_button(other).wait_for(timeout=90_000)
            wait_for(lambda: other.evaluate(POINTS_JS) > 5, 60, "the same address elsewhere shows no curve")
            expect_number(other, "Latent size", "5")
            other.context.close()

            page.get_by_role("button", name="Stop training").click()
            wait_for(lambda: "Stopped" in progress_text(page), 30, "training did not stop")
            page.get_by_role("tab", name="Runs").click()
            reopen = page.get_by_role("button", name="Reopen").first
            reopen.wait_for(timeout=30_000)
            started = time.monotonic()
            reopen.click()
            page.get_by_text("Reopened run-001").wait_for(timeout=15_000)  # no other tab clicked
            print(f"reopen message shown {time.monotonic() - started:.1f} s after the click")
            expect_number(page, "Latent size", "5")
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "reload.png"))
            raise
        finally:
            browser.close()
