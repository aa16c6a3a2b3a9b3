"""The latent map's t-SNE view in Debian's Chromium: it appears within 30 s of asking, and the page answers
meanwhile. The time it took goes to tests/artifacts/latency.json."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.browser import ARTIFACTS, Server, launch_chromium, require_chromium, start_button

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TSNE_CHART = ".js-plotly-plot:has-text('t-SNE 1')"
WITHIN_SECONDS = 30.0  # issue 14: the t-SNE view within 30 s of asking, on the bundled sample's 500 test digits


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    require_chromium()
    server = Server(tmp_path_factory.mktemp("runs"))
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            tab = browser.new_page(viewport={"width": 1440, "height": 1600})
            tab.goto(server.url)
            start_button(tab).wait_for(timeout=90_000)
            yield tab
            browser.close()
    finally:
        server.stop()


def test_the_tsne_view_appears_within_30_s_and_the_page_answers_meanwhile(page):
    pca = page.locator(".js-plotly-plot").filter(has_text="principal component").first
    page.get_by_role("tab", name="Latent map").click()
    try:
        pca.wait_for(timeout=30_000)
    except Exception:  # seen once in CI: the page stayed on Draw after the click (a lost tab change?)
        page.screenshot(path=str(ARTIFACTS / "latent-map-pca-missing.png"), full_page=True)
        print("the Latent map tab did not open on the first click; clicking again")
        page.get_by_role("tab", name="Draw").click()
        page.get_by_role("tab", name="Latent map").click()
        pca.wait_for(timeout=60_000)
    asked = time.monotonic()
    page.get_by_text("t-SNE", exact=True).click()  # the switch's option
    # A page that waited for the layout would never show this: it shows while the layout is computed.
    page.get_by_text("in the background").first.wait_for(timeout=WITHIN_SECONDS * 1000)
    computing = time.monotonic() - asked
    # Meanwhile the server answers: another tab opens and its in-page sliders decode.
    page.get_by_role("tab", name="Explore").click()
    slider = page.locator(".vi-root[data-mode=explore]").get_by_role("slider", name="z0")
    slider.wait_for(timeout=WITHIN_SECONDS * 1000)
    slider.focus()
    slider.press("ArrowRight")
    answered = time.monotonic() - asked
    page.get_by_role("tab", name="Latent map").click()
    try:
        page.locator(TSNE_CHART).first.wait_for(timeout=90_000)  # waited for longer, to record how long it took
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "latent-map-tsne-missing.png"), full_page=True)
        raise
    shown = time.monotonic() - asked
    page.get_by_text("Nearest neighbours kept").first.wait_for(timeout=5_000)
    note = page.get_by_text("Nearest neighbours kept").first.inner_text()
    record = {"computing_message_s": round(computing, 2), "explore_answered_s": round(answered, 2),
              "tsne_view_s": round(shown, 2), "note": note}  # fmt: skip
    path = ARTIFACTS / "latency.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data["latent_map_tsne"] = record
    path.write_text(json.dumps(data, indent=2))
    print(record, "load average", os.getloadavg())
    assert shown < WITHIN_SECONDS
    points = page.locator(TSNE_CHART).first.locator(".scatterlayer .trace .points path")
    assert points.count() == 500, "every test digit of the bundled sample"
    page.screenshot(path=str(ARTIFACTS / "latent-map-tsne.png"))
