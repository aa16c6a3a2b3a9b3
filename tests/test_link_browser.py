"""A link copied from one browser and opened in another: the same sidebar, and the same loss records."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.browser import Server, expect_number, launch_chromium, open_context, require_chromium, start_button
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    runs_dir = tmp_path_factory.mktemp("runs")
    running = Server(runs_dir, PLAYGROUND_MAX_WORKERS="2")
    running.runs_dir = runs_dir
    yield running
    running.stop()


def _finished_histories(runs_dir) -> list[list]:
    histories = []
    for config in sorted(runs_dir.glob("*/run-*/config.json")):
        if json.loads(config.read_text())["summary"].get("reason") == "finished":
            records = json.loads((config.parent / "history.json").read_text())
            histories.append([(r["split"], r["step"], r["loss"], r["kl_loss"]) for r in records])
    return histories


def test_a_copied_link_gives_the_same_sidebar_and_identical_loss_records(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        first_context, first = open_context(
            browser, f"{server.url}/?loss=elbo&latent=2&hidden=32&epochs=2&seed=9", height=1200
        )
        wait_for(lambda: "lr=" in first.url, 20, "the page did not write its settings into the address")
        params = [(key, value) for key, value in parse_qsl(urlsplit(first.url).query) if key != "ws"]
        assert dict(params)["latent"] == "2" and dict(params)["batch"] == "64"
        copied = f"{server.url}/?{urlencode(params)}"  # the link a learner shares (their runs folder left out)
        second_context, second = open_context(browser, copied, height=1200)
        for page in (first, second):
            for label, value in (("Latent size", "2"), ("Intermediate size", "32"), ("Seed", "9")):
                expect_number(page, label, value)
        for page in (first, second):
            start_button(page).click()
        histories = wait_for(lambda: len(h := _finished_histories(server.runs_dir)) == 2 and h, 240, "runs missing")
        first_context.close(), second_context.close()
        browser.close()
    assert len(histories[0]) >= 4 and histories[0] == histories[1]
