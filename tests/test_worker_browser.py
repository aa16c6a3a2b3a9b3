"""A training worker killed with kill -9, in Debian's Chromium: the page says so within 5 s, and Start
carries on in a fresh worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, POINTS_JS, Server, launch_chromium, require_chromium, set_number, start_button
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def busiest_child(server, seconds: float = 1.0) -> int:
    """The server's worker using the most CPU: the one training."""

    def cpu(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        return int(fields[11]) + int(fields[12])

    before = {pid: cpu(pid) for pid in server.children()}
    time.sleep(seconds)
    return max(before, key=lambda pid: cpu(pid) - before[pid])


def test_a_killed_worker_shows_on_the_page_within_5_s_and_start_carries_on(tmp_path):
    from playwright.sync_api import sync_playwright

    require_chromium()
    server = Server(tmp_path / "runs")
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(server.url)
            start_button(page).wait_for(timeout=90_000)
            set_number(page, "Epochs", 1000, settle=1.0)
            start_button(page).click()
            wait_for(lambda: page.evaluate(POINTS_JS) > 5, 120, "the chart did not grow")
            os.kill(busiest_child(server), signal.SIGKILL)
            killed = time.monotonic()
            page.get_by_text("The training process stopped unexpectedly").wait_for(timeout=5_000)
            print(f"the page showed the failure {time.monotonic() - killed:.1f} s after kill -9")
            assert "killed by signal 9, SIGKILL" in page.get_by_text("The training process stopped").inner_text()
            points = page.evaluate(POINTS_JS)
            start_button(page).click()
            clicked = time.monotonic()
            # A fresh worker starts (TensorFlow's import) and compiles: on a loaded machine, minutes.
            try:
                wait_for(lambda: page.evaluate(POINTS_JS) > points + 3, 300, "Start did not carry on")
            except AssertionError:
                page.screenshot(path=str(ARTIFACTS / "worker-crash-restart.png"))
                progress = page.locator('[data-testid="stProgress"]').first.inner_text()
                raise AssertionError(f"Start did not carry on: {points} -> {page.evaluate(POINTS_JS)}, {progress!r}, "
                                     f"workers {server.children()}") from None  # fmt: skip
            print(f"training went on {time.monotonic() - clicked:.1f} s after Start, in a fresh worker")
            browser.close()
    finally:
        server.stop()
