"""Small helpers shared by the tests."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 30.0, message: str = "timed out", poll: float = 0.02):
    """Call ``condition`` until it returns something true (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message)
        time.sleep(poll)
