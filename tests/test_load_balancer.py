"""The README's nginx configuration for several app replicas keeps each browser on one replica and spreads
new browsers over all of them (run on loopback with two small stand-in replicas)."""

from __future__ import annotations

import collections
import http.cookiejar
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser import free_port

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_nginx_block() -> str:
    """The nginx configuration under "Serving a class", from ``map`` to the end of its code block."""
    text = README.read_text()
    start = text.index("map $cookie_vae_replica")
    return text[start : text.index("```", start)]


def replica(name: str) -> ThreadingHTTPServer:
    """A stand-in app server that answers every request with its name."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(name.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def balancer(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    replicas = {name: replica(name) for name in ("A", "B")}
    port = free_port()
    block = readme_nginx_block()
    block = block.replace("10.0.0.11:8501", f"127.0.0.1:{replicas['A'].server_port}")
    block = block.replace("10.0.0.12:8501", f"127.0.0.1:{replicas['B'].server_port}")
    block = block.replace("listen 80;", f"listen 127.0.0.1:{port};")
    config = tmp_path / "nginx.conf"
    config.write_text(f"worker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                      f"events {{}}\nhttp {{\naccess_log off;\n{block}}}\n")  # fmt: skip
    subprocess.run([nginx, "-c", str(config), "-p", str(tmp_path)], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        subprocess.run([nginx, "-c", str(config), "-p", str(tmp_path), "-s", "stop"], capture_output=True)
        for server in replicas.values():
            server.shutdown()


def test_the_readme_nginx_config_keeps_each_browser_on_one_replica_and_uses_both(balancer):
    first_seen: collections.Counter = collections.Counter()
    for _ in range(24):  # 24 browsers, each with its own cookies, each loading 5 times
        cookies = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        answers = {browser.open(balancer, timeout=10).read().decode() for _ in range(5)}
        assert len(answers) == 1, f"a browser moved between replicas: {answers}"
        assert [cookie.name for cookie in cookies] == ["vae_replica"]
        first_seen[answers.pop()] += 1
    assert set(first_seen) == {"A", "B"} and min(first_seen.values()) >= 4, first_seen
