"""Several people at once, in real browsers: isolation, the worker cap, a newcomer's wait, cleanup."""

from __future__ import annotations

import time

import pytest

from tests.browser import (
    POINTS_JS,
    Server,
    alive,
    launch_chromium,
    open_context,
    require_chromium,
    set_number,
    start_button,
)
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ABANDON_SECONDS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    running = Server(
        tmp_path_factory.mktemp("runs"),
        PLAYGROUND_MAX_WORKERS="2",
        PLAYGROUND_ABANDON_SECONDS=str(ABANDON_SECONDS),
    )
    yield running
    workers = running.children()
    running.stop()
    # Stopping the server stops its training workers: none is left behind.
    wait_for(lambda: not any(alive(pid) for pid in workers), 20, f"workers {workers} outlived the server")


def progress_text(page) -> str:
    return page.locator('[data-testid="stProgress"]').first.inner_text()


def test_sessions_are_isolated_capped_fast_for_newcomers_and_cleaned_up(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        first_context, first = open_context(browser, server.url)
        time.sleep(2)

        # Two people train different models at once.
        second_context, second = open_context(browser, server.url)
        set_number(second, "Latent size", 3, settle=0.8)
        for page in (first, second):
            set_number(page, "Epochs", 1000, settle=0.8)
            start_button(page).click()
        for page in (first, second):
            # Right after the server starts, its workers may still be importing TensorFlow.
            wait_for(lambda p=page: p.evaluate(POINTS_JS) > 3, 180, "a session's chart did not grow")
            assert "Training" in progress_text(page)
        for page in (first, second):
            page.get_by_role("tab", name="Explore").click()
            page.get_by_role("slider", name="z0").wait_for(timeout=20_000)  # the tab's panel runs when opened
        assert first.get_by_role("slider", name="z7").count() == 1
        assert second.get_by_role("slider", name="z3").count() == 0, "the second session has its own 3-D model"
        assert second.get_by_role("slider", name="z2").count() == 1

        # A newcomer gets a working page quickly while both train.
        started = time.monotonic()
        third_context, third = open_context(browser, server.url)
        ready = time.monotonic() - started
        print(f"newcomer's page ready in {ready:.1f} s with two sessions training")
        assert ready < 20
        assert third.evaluate(POINTS_JS) == 0, "the newcomer sees no one else's curves"
        third.get_by_role("tab", name="Model").click()
        third.get_by_text("trainable parameters").first.wait_for(timeout=20_000)

        # A third training is over the cap of two: it is queued, and says so.
        set_number(third, "Epochs", 1, settle=0.8)
        start_button(third).click()
        wait_for(lambda: "Queued" in progress_text(third), 20, "the third training was not queued")
        third.get_by_text("You are number 1 in the queue").wait_for(timeout=10_000)
        third.get_by_text("2 training now, 1 waiting").wait_for(timeout=10_000)

        # Everyone leaves: workers stop, threads go back, the server falls idle.
        for context in (first_context, second_context, third_context):
            context.close()
        browser.close()

    wait_for(lambda: server_is_idle(server), ABANDON_SECONDS + 40, "training went on after its session closed")
    with sync_playwright() as playwright:  # the server's own count of workers, as a visitor sees it
        browser = launch_chromium(playwright)
        context, page = open_context(browser, server.url)
        page.get_by_text("0 training now, 0 waiting (at most 2 at once)").wait_for(timeout=10_000)
        context.close()
        browser.close()
    settled, settled_names = server.threads(), server.thread_names()
    # Another round of visitors leaves no more threads behind than the first.
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context, page = open_context(browser, server.url)
        start_button(page).click()
        wait_for(lambda: not server_is_idle(server), 30, "training did not start")
        context.close()
        browser.close()
    wait_for(lambda: server_is_idle(server), ABANDON_SECONDS + 40, "training went on after its session closed")
    from collections import Counter

    grown = Counter(server.thread_names()) - Counter(settled_names)
    # The web server's own worker pool (AnyIO, up to 40 threads shared by everyone) may keep
    # a thread or two it started for the second visitor's requests; a session's threads may not stay.
    assert server.threads() <= settled + 3, f"threads grew from {settled} to {server.threads()}: {grown}"


def server_is_idle(server, seconds: float = 2.0) -> bool:
    """Under a tenth of a core busy over ``seconds``: nothing trains, nothing polls."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    busy = server.cpu_seconds() - before
    print(f"server CPU {busy:.2f} s over {seconds:.0f} s")
    return busy < 0.1 * seconds
