"""Pins on the library internals the sources lean on, against the installed libraries.

Each test names the library, its version and the code of ours that depends on the detail, so
that an upgrade that changes one fails here, loudly, instead of degrading intake quietly.
"""

from __future__ import annotations

import asyncio
import imaplib
import importlib.metadata
import inspect
import sys

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from imapclient import IMAPClient

from mailticket.intake.imap.idle import take_announcements
from tests.intake.test_imap import make_mail, mailbox_for


def _changed(library: str, what: str, ours: str) -> str:
    version = (sys.version.split()[0] if library == "imaplib"
               else importlib.metadata.version(library))
    return (f"{library} {version}: {what} is not what {ours} relies on; adapt {ours} "
            "to this version (and this pin with it)")


# --- imaplib (the standard library) ---------------------------------------------------------------

def test_imaplib_response_pops_what_the_reader_collected():
    """idle.take_announcements reads untagged EXISTS/RECENT through IMAP4.response (public)."""
    imap = imaplib.IMAP4.__new__(imaplib.IMAP4)  # no connection: only the bookkeeping
    imap.debug, imap.untagged_responses = 0, {}
    why = _changed("imaplib", "IMAP4.response/_append_untagged",
                   "mailticket.intake.imap.idle.take_announcements")
    try:
        imap._append_untagged("EXISTS", b"3")
        first, again = imap.response("EXISTS"), imap.response("EXISTS")
    except Exception as exc:  # noqa: BLE001 - any change of shape is the news
        pytest.fail(f"{why}: {exc!r}")
    assert (first, again) == (("EXISTS", [b"3"]), ("EXISTS", [None])), why


# --- imapclient -----------------------------------------------------------------------------------

@pytest.mark.integration
def test_imapclient_keeps_its_imaplib_connection_in__imap(fresh_mailbox):
    """IMAPClient has no public accessor for its imaplib connection; take_announcements uses
    the private ``_imap`` to see what the server announced after a SEARCH result."""
    server = fresh_mailbox
    box = mailbox_for(server)
    why = _changed("imapclient", "IMAPClient._imap", "mailticket.intake.imap.idle")
    with IMAPClient(box.host, box.port, ssl=False, timeout=10) as client:
        client.login(box.username, box.password.value)
        assert isinstance(getattr(client, "_imap", None), imaplib.IMAP4), why
        client.select_folder("INBOX")
        take_announcements(client)  # SELECT's own EXISTS (the source clears it the same way)
        assert not take_announcements(client), why
        server.append("desk", make_mail("announced after the search"))
        client.search(["ALL"])  # Dovecot announces the new message after the SEARCH result
        assert take_announcements(client), why
        assert not take_announcements(client), why  # forgotten once taken


# --- aiosmtpd -------------------------------------------------------------------------------------

def test_aiosmtpd_help_attributes_of_smtp_methods():
    """smtp._same_help copies these from SMTP.smtp_MAIL / smtp_DATA onto our overrides."""
    why = _changed("aiosmtpd", "the __smtp_syntax*__ attributes", "mailticket.intake.smtp")
    for method in (SMTP.smtp_MAIL, SMTP.smtp_DATA):
        for name in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
            assert hasattr(method, name), f"{why}: {method.__name__} has no {name}"


def test_aiosmtpd_data_replies_and_line_limit():
    """_IntakeSMTP.push recognises the replies of SMTP.smtp_DATA by their start ("354", "500
    Line too long", "552 "), and sets line_length_limit before SMTP.__init__ reads it; its own
    _in_data and _replies_due must not be aiosmtpd's names."""
    why = _changed("aiosmtpd", "SMTP.smtp_DATA or SMTP.__init__", "mailticket.intake.smtp")
    data, init = inspect.getsource(SMTP.smtp_DATA), inspect.getsource(SMTP.__init__)
    for reply in ("'354 ", '"500 Line too long', "'552 "):
        assert reply in data, f"{why}: no {reply!r} reply in smtp_DATA"
    assert "self.line_length_limit" in data and "self.line_length_limit" in init, why
    assert isinstance(SMTP.line_length_limit, int), why
    whole = inspect.getsource(sys.modules[SMTP.__module__])
    assert "_in_data" not in whole and "_replies_due" not in whole, why


def test_aiosmtpd_controller_kwargs_loop_and_server():
    """_IntakeController.factory builds our protocol from Controller.SMTP_kwargs; stop() runs
    _drain in Controller.loop and closes Controller.server (None until started)."""
    why = _changed("aiosmtpd", "Controller.SMTP_kwargs/loop/server", "mailticket.intake.smtp")
    controller = Controller(object(), hostname="127.0.0.1", port=0, data_size_limit=7,
                            decode_data=False)
    try:
        assert controller.SMTP_kwargs.get("data_size_limit") == 7, why
        assert controller.SMTP_kwargs.get("decode_data") is False, why
        assert isinstance(controller.loop, asyncio.AbstractEventLoop), why
        assert controller.server is None, why
        assert "SMTP_kwargs" in inspect.getsource(Controller.factory), why
    finally:
        controller.loop.close()
