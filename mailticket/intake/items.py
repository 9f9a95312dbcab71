"""The values that pass between a source and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from mailticket.vocabulary import IntakeOutcome


@dataclass(frozen=True)
class RawMail:
    """One message as a source took it: where from, its key there, and its bytes untouched.

    ``key`` identifies the message within ``source``: ``"UIDVALIDITY/UID"`` for IMAP, a digest of
    the bytes for SMTP/LMTP.
    """

    source: str
    key: str
    raw: bytes
    # The message's full size when the source took only its header because it was over
    # limits.max_message_size (IMAP: RFC822.SIZE before the fetch); 0 when ``raw`` is all of it.
    oversized: int = 0


@dataclass(frozen=True)
class Cursor:
    """How far a source has read: recorded in the same transaction as the batch it covers."""

    source: str
    uidvalidity: int
    last_uid: int


# What became of a message (recorded, duplicate, quarantined): the vocabulary's, stored on its
# intake key and answered to the source.
Outcome = IntakeOutcome


@dataclass(frozen=True)
class Result:
    key: str
    outcome: Outcome
    ticket: int | None = None
    detail: str = ""
