"""Real servers for the tests (Dovecot, an SMTP sink, the daemon itself), all on loopback."""

import os

import pytest


def unavailable(reason: str) -> None:
    """Skip for lack of a tool on a developer's machine; on CI (CI=true) that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (on CI every test must run)", pytrace=False)
    pytest.skip(reason)
