"""The kinds of mail the desk sends, one row each: who reads it, whether it is automatic, whether
it counts against the caps on automatic answers, and the sample values ``check-config`` renders
its templates (``KIND.subject.j2``, ``KIND.txt.j2``, optionally ``KIND.html.j2``) with.

A new kind of mail is one row here plus its templates; the composer, the outbox and the samples
all read this table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mailticket.mail.samples import (
    OUTAGE_IMPACT_SAMPLE,
    OUTAGE_SAMPLE,
    REPORT_SAMPLE,
    SAMPLE_DESK,
    SAMPLE_TICKET,
    SPIKE_SAMPLE,
)


class Audience(enum.StrEnum):
    USER = "user"    # the requester and the ticket's Cc's
    STAFF = "staff"  # the desk's agents and groups: a reply to it goes to the comment address
    LIST = "list"    # a distribution list (the status reports)


@dataclass(frozen=True)
class MailKind:
    name: str
    audience: Audience
    # Marked Auto-Submitted (RFC 3834): everything but an agent's own words.
    automated: bool = True
    # It may answer incoming mail by itself, with no person deciding to send it (what a loop
    # with a robot is made of): counted against limits.auto_replies_per_*; over a cap it is
    # kept as held for an admin to release. The alert about unverified mail is one too: a
    # stranger's flood of tagged mail must not become a flood in the staff's inboxes.
    capped: bool = False
    sample: dict[str, Any] = field(default_factory=dict)  # besides desk, tag and ticket


_ROWS = (
    MailKind("ack", Audience.USER, capped=True, sample={
        "unknown_tag": 7, "linked_from": 3, "outage": OUTAGE_SAMPLE,
        "not_kept": ['attachment "scan.tif" (31.2 MB) is over the 25 MB limit for one '
                     'attachment: not kept']}),
    MailKind("reply", Audience.USER, automated=False,
             sample={"text": "Could you send the printer's name?", "author": "Ada"}),
    MailKind("closed", Audience.USER),
    MailKind("reopened", Audience.USER, capped=True, sample={"text": "It jams again."}),
    MailKind("resolved", Audience.USER, sample={"text": "Replaced the fuser unit."}),
    MailKind("unverified", Audience.STAFF, capped=True, sample={
        "sender": "Mallory <mallory@example.net>", "subject": "Re: [DESK #42] ...",
        "excerpt": "Please close this ticket.", "reason": "not on the ticket"}),
    MailKind("breaker", Audience.STAFF, sample={"recent": 1000, "limit": 1000, "ticket": None}),
    MailKind("assigned", Audience.STAFF,
             sample={"agent": "Nora <nora@example.org>", "author": "Ada"}),
    MailKind("escalated", Audience.STAFF, sample={
        "from_group": "desk", "to_group": "network", "level": 2, "author": "Ada",
        "text": "The switch on floor 3 drops packets."}),
    MailKind("handed_back", Audience.STAFF,
             sample={"text": "Replaced the fuser unit.", "author": "Nora"}),
    MailKind("user_reopened", Audience.STAFF, capped=True, sample={
        "actor": "bob@example.org", "what": "reopened it", "text": "It jams again."}),
    MailKind("agent_report", Audience.STAFF, sample={
        "results": ["#assign nora: assigned to nora@example.org",
                    "#frobnicate: unknown command, nothing done"],
        "relayed": True, "note": False}),
    MailKind("sla_warning", Audience.STAFF),
    MailKind("sla_breach", Audience.STAFF),
    MailKind("report", Audience.LIST, sample=REPORT_SAMPLE),
    # The portal's links, asked for on a web form: capped, so that a form cannot make the
    # desk mail one address (or everyone) without end.
    MailKind("sign_in", Audience.USER, capped=True, sample={
        "link": "https://desk.example.org/s/SAMPLE", "minutes": 15, "ticket": None}),
    MailKind("ticket_link", Audience.USER, capped=True),
    MailKind("confirm_request", Audience.USER, capped=True, sample={
        "link": "https://desk.example.org/c/SAMPLE", "minutes": 15, "ticket": None,
        "subject": "Printer on floor 3 is broken"}),
    # Outages (desk/outages.py): the lead and outages.notify told at once and at the end, the
    # users of each linked open ticket told what is known (threaded on their ticket), and the
    # partners or the agencies' directory contacts advised.
    MailKind("outage_opened", Audience.STAFF, sample={
        "ticket": None, "outage": OUTAGE_SAMPLE, "impact": OUTAGE_IMPACT_SAMPLE}),
    MailKind("outage_update", Audience.USER, sample={"outage": OUTAGE_SAMPLE}),
    MailKind("outage_resolved", Audience.STAFF, sample={
        "ticket": None, "closed": 12,
        "outage": {**OUTAGE_SAMPLE, "state": "resolved",
                   "resolved_at": OUTAGE_SAMPLE["opened_at"]},
        "impact": {**OUTAGE_IMPACT_SAMPLE, "open_tickets": 0}}),
    MailKind("outage_advice", Audience.LIST, sample={
        "ticket": None, "outage": OUTAGE_SAMPLE, "audience": "partners"}),
    # Spike detection (desk/spikes.py): look-alike new tickets, one alert per spike to the
    # lead, outages.notify and the desk groups. Not capped: one per spike by construction.
    MailKind("outage_spike", Audience.STAFF, sample={"ticket": None, "spike": SPIKE_SAMPLE}),
)

MAIL_KINDS: dict[str, MailKind] = {row.name: row for row in _ROWS}
KINDS = tuple(MAIL_KINDS)
CAPPED_KINDS = tuple(row.name for row in _ROWS if row.capped)
STAFF_KINDS = frozenset(row.name for row in _ROWS if row.audience is Audience.STAFF)


def sample_context(kind: str) -> dict[str, Any]:
    """The values ``check-config`` renders ``kind``'s templates with."""
    return {**SAMPLE_DESK, "ticket": dict(SAMPLE_TICKET), **MAIL_KINDS[kind].sample}
