"""The real page in Debian's Chromium: train, watch the chart grow, draw, steer the decoder, stop.

Also measures what users feel: Start to the first loss point on the page, slider-to-image
latency (median of repeated moves) and stroke-to-reconstruction time, written to
tests/artifacts/latency.json.
Screenshots of a failing test go to tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import pytest

from tests.browser import (
    ARTIFACTS,
    POINTS_JS,
    ROOT,
    Server,
    copy_screenshot,
    expect_number,
    launch_chromium,
    require_chromium,
    set_number,
    start_button,
)
from tests.support import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EXPLORE = ".vi-root[data-mode=explore]"  # the in-page instrument (playground/ui/instrument.js)
DRAW = ".vi-root[data-mode=draw]"
CODE_JS = "(root) => Array.from(root.instrument.code)"
SCREENSHOT_ENV = "PLAYGROUND_UPDATE_SCREENSHOT"  # set to refresh assets/screenshot.png from this test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    running = Server(tmp_path_factory.mktemp("runs"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        tab = browser.new_page(viewport={"width": 1440, "height": 1800})
        tab.goto(server.url)
        start_button(tab).wait_for(timeout=90_000)
        yield tab
        browser.close()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request, page):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))


def points(page) -> int:
    return page.evaluate(POINTS_JS)


def record_latency(name: str, values: list[float]) -> None:
    path = ARTIFACTS / "latency.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {"median_ms": statistics.median(values), "max_ms": max(values), "samples": len(values)}
    path.write_text(json.dumps(data, indent=2))
    print(f"{name}: median {statistics.median(values):.0f} ms over {len(values)} samples")


def save_screenshot(page, name: str, height: int = 1250) -> None:
    """The top of the page to tests/artifacts/NAME.png, and to assets/ when refreshing the README's pictures."""
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1440, "height": height})
    if os.environ.get(SCREENSHOT_ENV):
        copy_screenshot(shot, ROOT / "assets" / f"{name}.png")


def test_1_page_loads_without_an_exception(page):
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_role("heading", name="VAE Playground").count() == 1
    expect_number(page, "Latent size", "8")
    expect_number(page, "Intermediate size", "256")


def background_tasks(pid: int) -> dict[str, tuple[str, int]]:
    """The server's threads that run below its own priority, as a warm-up in threads does, and every thread
    of its worker processes (a worker starting up imports TensorFlow before it lowers its priority, then
    compiles the page's model): {task: (state, CPU ticks)}."""
    server_niceness = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    tasks, pids = {}, [pid]
    while pids:
        current = pids.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                if current != pid or int(fields[16]) > server_niceness:
                    tasks[f"{current}/{task.name}"] = (fields[0], int(fields[11]) + int(fields[12]))
                pids += [int(child) for child in (task / "children").read_text().split()]
    return tasks


def wait_until_warm(server, checks: int = 3, timeout: float = 300) -> None:
    """Until the background warm-up (compiling the next run's loop, at low priority) has finished, as
    it has for a visitor who reads the page first: no low-priority thread runnable or using CPU in
    ``checks`` looks 0.5 s apart. (A thread starved by a busy machine still shows as runnable.)"""
    deadline, quiet = time.monotonic() + timeout, 0
    before = background_tasks(server.process.pid)
    while quiet < checks:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server's warm-up ran for over {timeout} s")
        time.sleep(0.5)
        now = background_tasks(server.process.pid)
        busy = any(
            state == "R" or task not in before or ticks > before[task][1] for task, (state, ticks) in now.items()
        )
        quiet, before = (0 if busy else quiet + 1), now


def test_2_start_training_makes_the_loss_chart_grow(page, server):
    """Also the figure of issue 15: Start -> the first loss point drawn, once the warm-up has finished
    (the trainer streams its first record in about 0.1 s; the rest is the page's rerun and redraw).
    Printed and written to latency.json, not asserted: on two cores shared with other test runs the
    server's rerun alone took 3-30 s (its CPU share), while the target is 1 s on a quiet machine."""
    set_number(page, "Epochs", 1000)  # long enough to watch, stopped by test 5
    wait_until_warm(server)
    clicked = time.monotonic()
    start_button(page).click()
    wait_for(lambda: points(page) > 0, 60, "the loss chart never appeared", poll=0.01)
    record_latency("start_to_first_loss_point", [(time.monotonic() - clicked) * 1000])
    changes, last, started = 0, points(page), time.monotonic()
    while time.monotonic() - started < 4.0:
        now = points(page)
        if now != last:
            changes, last = changes + 1, now
        time.sleep(0.05)
    assert changes / 4.0 >= 2.0, f"the chart grew {changes} times in 4 s"


def test_3_a_drawn_stroke_shows_its_reconstruction_while_drawing(page):
    page.get_by_role("tab", name="Draw").click()
    root = page.locator(DRAW)
    canvas = root.get_by_role("img", name="Drawing canvas")
    canvas.wait_for(timeout=30_000)
    box = canvas.bounding_box()
    before = root.evaluate("r => r.instrument.metrics.latency.length")
    page.mouse.move(box["x"] + 150, box["y"] + 45)
    page.mouse.down()
    for step in range(24):
        page.mouse.move(box["x"] + 150 - step * 0.8, box["y"] + 45 + step * 8)
    shown = root.evaluate("r => r.instrument.pixels.some(v => v > 0.05)")
    page.mouse.up()
    latencies = root.evaluate("r => r.instrument.metrics.latency")[before:]
    record_latency("stroke_move_to_reconstruction_while_training", latencies)
    assert shown, "the reconstruction was drawn before the pointer was lifted"
    assert statistics.median(latencies) < 1000
    page.get_by_role("button", name="Explore this code").wait_for(timeout=10_000)  # the server has the digit


def slider_latencies(page, moves: int = 16) -> list[float]:
    """Milliseconds from a key press on the page's z0 slider to the new decoded image drawn, per move."""
    page.get_by_role("tab", name="Explore").click()
    root = page.locator(EXPLORE)
    thumb = root.get_by_role("slider", name="z0")
    thumb.wait_for(timeout=30_000)
    thumb.focus()
    before = root.evaluate("r => r.instrument.metrics.latency.length")
    for move in range(moves):
        thumb.press("ArrowRight" if move % 2 == 0 else "ArrowLeft")
        time.sleep(0.05)
    latencies = root.evaluate("r => r.instrument.metrics.latency")[before:]
    assert len(latencies) == moves, "every key press redrew the digit"
    return latencies


def test_4_moving_z0_changes_the_decoded_image_while_training(page):
    """The explorer decodes in the page, on the current weights, during training. Here this session's
    own charts redraw twice a second on two shared cores, and a key press can wait behind them; the
    server path's old target (250 ms) still holds (tests/test_instrument.py measures the drag)."""
    latencies = slider_latencies(page)
    record_latency("slider_to_image_while_training", latencies)
    assert statistics.median(latencies) < 250


def test_5_stop_training_stops_the_chart(page):
    page.get_by_role("button", name="Stop training").click()
    wait_for(lambda: start_button(page).is_enabled(), 10, "training did not stop")
    time.sleep(1.0)
    settled = points(page)
    time.sleep(2.0)
    assert points(page) == settled
    assert page.locator('[data-testid="stException"]').count() == 0
    page.get_by_role("tab", name="Draw").click()
    time.sleep(1.0)
    save_screenshot(page, "screenshot")


def test_6_slider_latency_when_idle(page):
    latencies = slider_latencies(page)
    record_latency("slider_to_image_idle", latencies)
    assert statistics.median(latencies) < 16
    save_screenshot(page, "explore", height=1500)


def test_7_clicking_a_digit_on_the_latent_map_loads_its_code_into_the_explorer(page):
    page.get_by_role("tab", name="Latent map").click()
    chart = page.locator(".js-plotly-plot").filter(has_text="principal component")
    points = chart.locator(".scatterlayer .trace .points path")
    points.first.wait_for(timeout=30_000)
    assert points.count() == 501  # every test digit of the bundled sample, and the star of the drawn one
    save_screenshot(page, "latent-map", height=1450)
    box = points.nth(123).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_text("into the explorer").first.wait_for(timeout=10_000)  # the message at the top
    page.locator(EXPLORE).get_by_role("slider", name="z0").wait_for(timeout=10_000)  # the Explore tab opened
    values = wait_for(lambda: page.locator(EXPLORE).evaluate(CODE_JS), 10, "no slider values")
    assert len(values) == 8
    assert max(abs(v) for v in values) > 0.2, f"the sliders did not move to the digit's code: {values}"
