"""The desk's vocabulary, declared once: ticket statuses, channels, message directions, outbox
and quarantine statuses, intake outcomes. Everything that stores, compares or lists one of
these reads it from here.

They are ``StrEnum``s: a member is equal to its text, so it is stored as that text in the
database, compares equal to what was read back, and prints as itself in mail and in the CLI.
"""

from __future__ import annotations

import enum


class TicketStatus(enum.StrEnum):
    NEW = "new"            # logged, nobody has answered yet
    OPEN = "open"          # being worked
    RESOLVED = "resolved"  # fixed, the user asked to verify
    CLOSED = "closed"      # done; a reply within the reopen window reopens it

    @classmethod
    def not_closed(cls) -> tuple[TicketStatus, ...]:
        return tuple(s for s in cls if s is not cls.CLOSED)

    @classmethod
    def awaiting_response(cls) -> tuple[TicketStatus, ...]:
        """The statuses in which a ticket waits for the desk's first response."""
        return (cls.NEW, cls.OPEN)


class Channel(enum.StrEnum):
    """How a request reached the desk."""

    EMAIL = "email"
    PHONE = "phone"
    WALK_IN = "walk-in"
    VOICEMAIL = "voicemail"
    PORTAL = "portal"      # submitted on the self-service portal

    @classmethod
    def logged_by_agents(cls) -> tuple[Channel, ...]:
        """The channels an agent logs a request from (``ticket new --channel``)."""
        return (cls.PHONE, cls.WALK_IN, cls.VOICEMAIL)


class Direction(enum.StrEnum):
    """A message on a ticket: from a user, from us, or an internal note."""

    IN = "in"
    OUT = "out"
    NOTE = "note"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"    # waiting for the sender (or for its next attempt)
    SENT = "sent"          # the relay accepted it
    FAILED = "failed"      # refused for good (5xx, or too many 4xx)
    HELD = "held"          # over a cap on automatic mail: kept for an admin to release
    BOUNCED = "bounced"    # sent, and a bounce said it did not reach some recipients

    @classmethod
    def unsent(cls) -> tuple[OutboxStatus, ...]:
        """What ``outbox list`` shows by default: everything not delivered."""
        return (cls.PENDING, cls.HELD, cls.FAILED, cls.BOUNCED)

    @classmethod
    def undelivered(cls) -> tuple[OutboxStatus, ...]:
        """What ``outbox list --failed`` shows."""
        return (cls.FAILED, cls.BOUNCED)


class QuarantineStatus(enum.StrEnum):
    HELD = "held"          # waiting for an admin (``quarantine retry``)
    RELEASED = "released"  # retried and taken in


class IntakeOutcome(enum.StrEnum):
    """What became of one message a source handed over (stored on its intake key)."""

    RECORDED = "recorded"        # applied to a ticket (or kept as non-ticket mail)
    DUPLICATE = "duplicate"      # seen before (same source key, or same Message-ID)
    QUARANTINED = "quarantined"  # could not be processed, or its original was kept aside


class OutageState(enum.StrEnum):
    OPEN = "open"            # under way: tickets are linked, users kept informed
    RESOLVING = "resolving"  # fixed; its tickets are being closed (batch by batch, resumable)
    RESOLVED = "resolved"    # every linked ticket closed, the summary sent

    @classmethod
    def current(cls) -> tuple[OutageState, ...]:
        """Outages still affecting users (the status report lists them)."""
        return (cls.OPEN, cls.RESOLVING)


class SpikeState(enum.StrEnum):
    """A spike of look-alike new tickets (desk/spikes.py)."""

    OPEN = "open"        # alerted; look-alikes still join it while they come within the window
    OUTAGE = "outage"    # an outage was opened from it (outage open --from-spike)
    EXPIRED = "expired"  # no look-alike came within the window: the next ones form a new spike


SYSTEM_ACTOR = "mailticket"  # the actor of what the desk does by itself (jobs, links)
PORTAL_SOURCE = "portal"     # the intake source of what users submit on the portal
