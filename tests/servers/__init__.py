"""Real servers for the tests (Dovecot, an SMTP sink, the daemon itself, headless Chromium), all on
loopback."""

import os
import time

import pytest


def unavailable(reason: str) -> None:
    """Skip for lack of a tool on a developer's machine; on CI (CI=true) that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (on CI every test must run)", pytrace=False)
    pytest.skip(reason)


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
