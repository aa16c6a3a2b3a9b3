"""Helpers for the real-browser tests: a `streamlit run app.py` server and Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Chromium here may reach no outside host: no background networking, no sync, no GPU.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REQUIRE_ENV = "PLAYGROUND_REQUIRE_BROWSER"  # set by .ci/run: a missing browser fails instead of skipping


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install chromium (the browser tests need Debian's Chromium)"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie waiting to be reaped is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Server:
    """`streamlit run app.py` on a free port, with its own runs folder and the bundled data."""

    def __init__(self, runs_dir: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = ARTIFACTS / f"server-{self.port}.log"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "PLAYGROUND_SOURCE": "bundled",
            "PLAYGROUND_RUNS_DIR": str(runs_dir),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **env,
        }
        command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(self.port),
                   "--server.headless", "true", "--server.address", "127.0.0.1"]  # fmt: skip
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited: see {self.log_path}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"streamlit did not start in {timeout} s: see {self.log_path}")

    def threads(self) -> int:
        """Threads of the server process now."""
        return len(list(Path(f"/proc/{self.process.pid}/task").iterdir()))

    def thread_names(self) -> list[str]:
        """The names of the server's threads, as the kernel knows them."""
        names = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                names.append((task / "comm").read_text().strip())
        return sorted(names)

    def cpu_seconds(self) -> float:
        """CPU time of the server and of its training workers (those alive now)."""
        total = 0
        for pid in (self.process.pid, *self.children()):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def children(self) -> list[int]:
        """Processes the server started (its training workers), alive now."""
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
                if fields.get("PPid", "").strip() == str(self.process.pid) and fields.get("State", "")[:1] != "Z":
                    found.append(int(status.parent.name))
        return found

    def activity(self) -> str:
        """The machine's busiest processes over the next second, the server's own marked: for failure messages."""
        ours = {self.process.pid, *self.children()}
        busiest = ", ".join(f"{'*' if pid in ours else ''}{name} (nice {nice}) {share:.0%}"
                            for pid, name, nice, share in busiest_processes())  # fmt: skip
        return f"busiest processes (* the server's): {busiest}; load {os.getloadavg()[0]:.1f}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def start_button(page):
    """The training button, whatever it reads ("Start training", "Train 10 more epochs", ...)."""
    # During a rerun Streamlit can keep the old element, hidden, beside the new one for a while.
    return page.locator(".st-key-start button:visible").first


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """Each process's (user + system clock ticks, nice value)."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            ticks[int(stat.parent.name)] = (int(fields[11]) + int(fields[12]), int(fields[16]))
    return ticks


def busiest_processes(seconds: float = 1.0, top: int = 6) -> list[tuple[int, str, int, float]]:
    """(pid, command, nice, share of one core) of the processes that used most CPU over ``seconds``."""
    before = _cpu_ticks()
    time.sleep(seconds)
    after = _cpu_ticks()
    used = sorted(((after[pid][0] - before[pid][0], pid) for pid in after if pid in before), reverse=True)[:top]
    used = [(ticks, pid) for ticks, pid in used if ticks > 0]
    found = []
    for ticks, pid in used:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            share = ticks / os.sysconf("SC_CLK_TCK") / seconds
            found.append((pid, command.strip()[:80], after[pid][1], share))
    return found


def progress_texts(page) -> list[str]:
    """What the training progress bars say now ("Running · epoch 3 of 10 ..."): for failure messages."""
    return page.locator("[data-testid=stProgress]:visible").all_inner_texts()


def set_number(page, label: str, value, settle: float = 0.5) -> None:
    """Type ``value`` into the number input labelled ``label`` and press Enter; wait ``settle`` s for the rerun."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    time.sleep(settle)


def expect_number(page, label: str, value: str, timeout: float = 15) -> None:
    """Wait until the number input labelled ``label`` shows ``value``. Read once, a field Streamlit has just
    drawn can still show "0" for a frame before its value arrives (seen in CI; a probe sampling every 5 ms
    saw it on two page loads of four), so a test waits; a value that stays wrong still fails."""
    from playwright.sync_api import expect

    expect(page.get_by_label(label, exact=True)).to_have_value(value, timeout=timeout * 1000)


def open_context(browser, url: str, height: int = 1400):
    """A new browser context (its own session) on ``url``, once the page is ready: (context, page)."""
    context = browser.new_context(viewport={"width": 1400, "height": height})
    page = context.new_page()
    page.goto(url)
    start_button(page).wait_for(timeout=90_000)
    return context, page


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# JavaScript run in the page.
POINTS_JS = """() => {
  const plot = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(p => (p._fullData || []).some(d => d.name === 'loss'));
  if (!plot) return 0;
  const trace = plot._fullData.find(d => d.name === 'loss');
  return trace && trace._length ? trace._length : (trace && trace.x ? trace.x.length : 0);
}"""

WATCH_IMAGE_JS = """([caption]) => {
  // Resolve window.__imageChanged with the time the image captioned `caption` gets a new source.
  const find = () => Array.from(document.querySelectorAll('[data-testid="stImage"]'))
    .find(el => el.innerText.includes(caption));
  const initial = find() ? find().querySelector('img').src : null;
  window.__imageChanged = null;
  const observer = new MutationObserver(() => {
    const el = find();
    const img = el && el.querySelector('img');
    if (!img || img.src === initial) return;
    observer.disconnect();
    const done = () => { window.__imageChanged = performance.now(); };
    if (img.complete && img.naturalWidth > 0) done(); else img.addEventListener('load', done, {once: true});
  });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  return initial;
}"""


def copy_screenshot(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
