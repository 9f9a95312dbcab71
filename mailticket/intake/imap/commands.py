"""Thin functions over IMAPClient: one per thing the source asks of the server, by UID (RFC
3501), using MOVE (RFC 6851) and UIDPLUS (RFC 4315) when the server has them and falling back
when not; and ``describe``, the one safe way to put an IMAP error into a log line.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, ProtocolError

from mailticket import errors
from mailticket.config import ImapMailbox

DELETED = b"\\Deleted"
HEADER_FETCH_LIMIT = 256 * 1024  # of a message too big to download, this much of its header
DESCRIBE_LIMIT = 200  # characters of an error's own text in a log line
_BYTES_REPR = re.compile(r"b(['\"])(.*)\1")


def connect(mailbox: ImapMailbox) -> IMAPClient:
    """A logged-in client; TLS as ``mailbox.security`` says (never falls back to plain text)."""
    context = ssl.create_default_context()
    if mailbox.security == "ssl":
        client = IMAPClient(mailbox.host, mailbox.port, ssl=True, ssl_context=context,
                            timeout=mailbox.timeout)
    else:
        client = IMAPClient(mailbox.host, mailbox.port, ssl=False, timeout=mailbox.timeout)
    try:
        if mailbox.security == "starttls":
            client.starttls(context)  # raises CapabilityError when the server lacks STARTTLS
        client.login(mailbox.username, mailbox.password.value)
    except BaseException:
        close(client)
        raise
    return client


def close(client: IMAPClient) -> None:
    """Drop the connection without a word to the server (it may already be gone)."""
    try:
        client.shutdown()
    except Exception:
        pass


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """CREATE ``folder`` unless it exists (another client may create it at the same moment)."""
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClientError:
        if not client.folder_exists(folder):
            raise


def uids_after(client: IMAPClient, last_uid: int) -> list[int]:
    """UIDs above ``last_uid``, ascending. ``n:*`` also matches the highest UID when it is below
    n (RFC 3501 6.4.8), hence the filter."""
    return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)


def uids_up_to(client: IMAPClient, last_uid: int, *criteria: str) -> list[int]:
    """UIDs at or below ``last_uid`` matching ``criteria``, ascending."""
    if last_uid < 1:
        return []
    return sorted(uid for uid in client.search(["UID", f"1:{last_uid}", *criteria])
                  if uid <= last_uid)


def fetch_sizes(client: IMAPClient, uids: Sequence[int]) -> dict[int, int]:
    """RFC822.SIZE of each message: known before a byte of it is downloaded."""
    data = client.fetch(list(uids), ["RFC822.SIZE"])
    return {uid: int(item[b"RFC822.SIZE"]) for uid, item in data.items()
            if item.get(b"RFC822.SIZE") is not None}


def fetch_headers(client: IMAPClient, uids: Sequence[int]) -> dict[int, bytes]:
    """The header of each message (at most HEADER_FETCH_LIMIT bytes of it), without \\Seen."""
    data = client.fetch(list(uids), [f"BODY.PEEK[HEADER]<0.{HEADER_FETCH_LIMIT}>"])
    found = {}
    for uid, item in data.items():
        value = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER]")), None)
        if value is not None:
            found[uid] = bytes(value)
    return found


def fetch_raw(client: IMAPClient, uids: Sequence[int]) -> dict[int, bytes]:
    """The bytes of each message, in one UID FETCH, without setting \\Seen. Messages expunged
    meanwhile by another client are simply absent."""
    data = client.fetch(list(uids), ["BODY.PEEK[]"])
    wanted = set(uids)
    return {uid: bytes(item[b"BODY[]"]) for uid, item in data.items()
            if uid in wanted and item.get(b"BODY[]") is not None}


def expunge(client: IMAPClient, uids: Sequence[int]) -> None:
    """Expunge these \\Deleted messages: UID EXPUNGE with UIDPLUS, else a plain EXPUNGE (which
    also removes anything else flagged \\Deleted in the folder)."""
    if not uids:
        return
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(list(uids))
    else:
        client.expunge()


def move(client: IMAPClient, targets: dict[str, list[int]]) -> None:
    """Move messages of the selected folder into other folders: one UID MOVE per folder, or
    COPY + STORE +FLAGS \\Deleted per folder and one expunge when the server lacks MOVE."""
    targets = {folder: uids for folder, uids in targets.items() if uids}
    if not targets:
        return
    if client.has_capability("MOVE"):
        for folder, uids in targets.items():
            client.move(uids, folder)
        return
    copied: list[int] = []
    for folder, uids in targets.items():
        client.copy(uids, folder)
        client.add_flags(uids, [DELETED], silent=True)
        copied += uids
    expunge(client, copied)


def describe(exc: BaseException) -> str:
    """One line about an error, safe to log: no password, no message content."""
    if isinstance(exc, ProtocolError):
        return "ProtocolError (unparsable server response)"  # its text may quote mail content
    text = " ".join(str(exc).split())
    quoted = _BYTES_REPR.fullmatch(text)  # imapclient passes server replies on as "b'...'"
    if quoted:
        text = quoted.group(2)
    # Always prefixed (our TemporaryFailure too: the log line says what failed).
    return errors.describe(exc, DESCRIBE_LIMIT, text=text, prefix=True)
