"""Waiting for new mail on an IMAP connection: IDLE (RFC 2177) in slices, and the new-mail
announcements that arrived in the responses of other commands.
"""

from __future__ import annotations

import threading
import time

from imapclient import IMAPClient

IDLE_SLICE = 1.0  # seconds between looks at the stop event while idling
# Leave IDLE and search at least this often, a safety net: mail announced where we cannot see
# it (see take_announcements) would otherwise wait for the next arrival or the IDLE renewal.
IDLE_RECHECK = 10.0


def take_announcements(client: IMAPClient) -> bool:
    """Whether the server announced new messages (untagged EXISTS/RECENT) in responses that
    IMAPClient did not hand back to us, such as those of a SEARCH; forgets them.

    Dovecot syncs the mailbox at the end of a command: a message that lands while we SEARCH is
    announced after the search result, and IDLE then has nothing new to say about it.

    IMAPClient keeps its imaplib connection in the private ``_imap`` (no public accessor);
    imaplib's public ``response(code)`` pops what it collected. Both are pinned by
    tests/intake/test_library_pins.py. Without them this says False, and IDLE_RECHECK still
    finds the mail.
    """
    response = getattr(getattr(client, "_imap", None), "response", None)
    if not callable(response):
        return False
    exists, recent = response("EXISTS")[1], response("RECENT")[1]  # [None]: not received
    return exists != [None] or recent != [None]


def wait_idle(client: IMAPClient, stop: threading.Event, renew: float,
              slice_seconds: float = IDLE_SLICE) -> bool:
    """IDLE until the mailbox changes, ``renew`` seconds pass or ``stop`` is set; True when the
    server announced a change."""
    announced = False
    client.idle()
    deadline = time.monotonic() + renew
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = min(slice_seconds, remaining)
        started = time.monotonic()
        responses = client.idle_check(timeout=timeout)
        if any(not _is_keepalive(r) for r in responses):
            announced = True
            break
        if not responses and time.monotonic() - started < timeout / 2:
            # Readable yet nothing parsed: most likely the server hung up (idle_check swallows
            # EOF). Leave IDLE; idle_done() raises if the connection is gone.
            break
    client.idle_done()
    return announced


def _is_keepalive(response: object) -> bool:
    return isinstance(response, tuple) and len(response) > 0 and response[0] == b"OK"
