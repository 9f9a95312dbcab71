"""Spike detection (the desk monitoring application availability): at intake, when
``outages.spike.tickets`` new tickets from distinct users that look alike (desk/lookalike.py)
arrive within ``outages.spike.within``, the lead, ``outages.notify`` and the desk (level 1)
groups get one alert with the tickets and the command that opens an outage from them.

One alert per spike: a spike is a ``Spike`` row whose ``open_key`` (unique) is its topic's key
while it stands, written in the transaction of the ticket that tipped it. While it stands, later
look-alikes join it (no second alert). It stops standing when it expires (no look-alike for
``within``) or, once an outage was opened from it, when that outage is resolved; the next
look-alikes may then form a new spike. Counted: new tickets (mail and portal) in the window by
the desk's clock, from distinct users, not linked to an outage still open.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import peewee

from mailticket.desk.core import DeskCore
from mailticket.desk.lookalike import Topic, topics
from mailticket.desk.outages import OutageWork, outage_staff
from mailticket.errors import InvalidRequest, UnknownSpike
from mailticket.mail.compose import Recipient
from mailticket.models import Outage, OutageTicket, Spike, SpikeTopic, Ticket
from mailticket.vocabulary import SYSTEM_ACTOR, OutageState, SpikeState, TicketStatus

log = logging.getLogger(__name__)


def spike_staff(settings: Any) -> list[str]:
    """Who is alerted: who is told of outages, and the desk's (level 1) groups."""
    desk = [a for g in settings.process.groups if g.level == 1 for a in g.recipients]
    return list(dict.fromkeys([*outage_staff(settings), *(a.lower() for a in desk)]))


class SpikeWatch(DeskCore):
    """The intake side: each new ticket's topics recorded and its spikes checked."""

    def watch_for_spike(self, ticket: Ticket, body: str) -> Spike | None:
        """Called for each new ticket, in its transaction: the spike it tipped (alerted), or
        None. Three statements when nothing happens (the topics written, the window read,
        the spikes standing read)."""
        found = topics(ticket.subject or "", body, self.settings.outages.applications)
        if not found:
            return None
        now = ticket.created_at
        rule = self.settings.outages.spike
        since = now - rule.within
        requester = (ticket.requester or "").lower()
        SpikeTopic.insert_many([{"ticket": ticket.number, "key": t.key, "requester": requester,
                                 "at": now} for t in found]).execute()
        keys = [t.key for t in found]
        standing = {s.key: s for s in Spike.select(Spike.number, Spike.key, Spike.state,
                                                   Spike.last_at, Spike.outage)
                    .where(Spike.open_key.in_(keys))}
        window: dict[str, list[tuple[int, str]]] = {}
        for key, number, who in (SpikeTopic.select(SpikeTopic.key, SpikeTopic.ticket,
                                                   SpikeTopic.requester)
                                 .where(SpikeTopic.key.in_(keys), SpikeTopic.at >= since)
                                 .order_by(SpikeTopic.at, SpikeTopic.ticket).tuples()):
            window.setdefault(key, []).append((number, who))
        tipped = None
        for topic in found:
            spike = standing.get(topic.key)
            if spike is not None and self._still_stands(spike, since):
                if spike.state == SpikeState.OPEN:
                    self._join(spike.number, ticket)
                continue
            rows = window.get(topic.key, [])
            if len({who for _, who in rows}) < rule.tickets:
                continue  # the usual case: stop here
            rows = self._not_in_outages(rows)
            if len({who for _, who in rows}) >= rule.tickets:
                tipped = self._form(topic, [n for n, _ in rows], now) or tipped
        return tipped

    def _still_stands(self, spike: Spike, since: datetime) -> bool:
        """A spike stands while it is open and its last ticket within the window, or while
        the outage opened from it is not resolved; otherwise it is let go (its key freed)."""
        if spike.state == SpikeState.OPEN and spike.last_at >= since:
            return True
        if spike.state == SpikeState.OUTAGE and Outage.select().where(
                Outage.number == spike.outage_id,
                Outage.state.in_(OutageState.current())).exists():
            return True
        update: dict[Any, Any] = {Spike.open_key: None}
        if spike.state == SpikeState.OPEN:
            update[Spike.state] = SpikeState.EXPIRED
        Spike.update(update).where(Spike.number == spike.number).execute()
        return False

    def _join(self, number: int, ticket: Ticket) -> None:
        query = Spike.select().where(Spike.number == number)
        if self.db.for_update:  # two daemons adding to one spike add one after the other
            query = query.for_update()
        spike = query.get()
        if ticket.number not in spike.tickets:
            spike.tickets = [*spike.tickets, ticket.number]
            spike.last_at = max(spike.last_at, ticket.created_at)
            spike.save()

    def _not_in_outages(self, rows: list[tuple[int, str]]) -> list[tuple[int, str]]:
        linked = {n for (n,) in OutageTicket.select(OutageTicket.ticket).join(Outage)
                  .where(OutageTicket.ticket.in_([n for n, _ in rows]),
                         Outage.state.in_(OutageState.current())).tuples()}
        return [(n, who) for n, who in rows if n not in linked]

    def _form(self, topic: Topic, numbers: list[int], now: datetime) -> Spike | None:
        """The spike, and its one alert. Another daemon may have formed it a moment before:
        the unique ``open_key`` refuses the second, which then joins the first instead."""
        tickets = list(Ticket.select(Ticket.number, Ticket.subject, Ticket.requester,
                                     Ticket.agency, Ticket.created_at)
                       .where(Ticket.number.in_(numbers)).order_by(Ticket.number))
        first = min(t.created_at for t in tickets)
        try:
            with self.db.atomic():
                spike = Spike.create(key=topic.key, open_key=topic.key, label=topic.label,
                                     state=SpikeState.OPEN, tickets=[t.number for t in tickets],
                                     first_at=first, last_at=now, alerted_at=now)
        except peewee.IntegrityError:
            other = Spike.get(Spike.open_key == topic.key)
            self._join(other.number, tickets[-1])
            return None
        self._alert(spike, tickets)
        log.warning("spike #%d: %d look-alike tickets about %r (%s)", spike.number,
                    len(tickets), topic.label, topic.key)
        return spike

    def _alert(self, spike: Spike, tickets: Sequence[Ticket]) -> None:
        to = spike_staff(self.settings)
        if not to:
            log.warning("spike #%d: nobody to alert (no lead, outages.notify, desk group or "
                        "desk.alerts_to)", spike.number)
            return
        self.mailer.queue("outage_spike", None, to=[Recipient("", a) for a in to],
                          context={"ticket": None, "spike": spike_context(spike, tickets)})


def spike_context(spike: Spike, tickets: Sequence[Ticket]) -> dict[str, Any]:
    """What the alert's templates see."""
    minutes = max(1, math.ceil((spike.last_at - spike.first_at).total_seconds() / 60))
    agencies: dict[str, int] = {}
    for t in tickets:
        agencies[t.agency or "(no agency)"] = agencies.get(t.agency or "(no agency)", 0) + 1
    return {"number": spike.number, "label": spike.label, "count": len(tickets),
            "minutes": minutes, "first_at": spike.first_at, "last_at": spike.last_at,
            "tickets": [{"number": t.number, "subject": t.subject, "requester": t.requester,
                         "agency": t.agency or ""} for t in tickets],
            "agencies": [{"name": n, "count": c} for n, c in agencies.items()],
            "command": f'mailticket outage open "{spike.label}" --from-spike {spike.number}'}


class SpikeOutages(OutageWork):
    """The agent's side: an outage opened from a spike, its tickets linked."""

    def outage_from_spike(self, number: int, actor: str, title: str = "",
                          **options: Any) -> tuple[Outage, list[int], list[int]]:
        """Open an outage (as ``open_outage``, with ``options``) and link the spike's tickets
        that are not closed nor in another outage still open. (outage, linked, skipped)."""
        query = Spike.select().where(Spike.number == number)
        if self.db.for_update:
            query = query.for_update()
        spike = query.first() if 0 < number < 2 ** 31 else None
        if spike is None:
            raise UnknownSpike(number)
        if spike.state == SpikeState.OUTAGE:
            raise InvalidRequest(f"spike #{number} was opened as outage #{spike.outage_id} "
                                 f"already: mailticket outage show {spike.outage_id}")
        linkable, skipped = [], []
        for ticket in spike.tickets:
            row = Ticket.get_or_none(Ticket.number == ticket)
            if row is None or row.status == TicketStatus.CLOSED or self.current_outages(ticket):
                skipped.append(ticket)
            else:
                linkable.append(ticket)
        outage = self.open_outage(actor or SYSTEM_ACTOR, title or f"Possible outage: {spike.label}",
                                  tickets=linkable, **options)
        self._outage_log(outage, actor, f"opened from spike #{number} ({spike.label}): "
                         f"{len(linkable)} ticket(s) linked")
        # It stands for its topic until the outage is resolved (no new alert meanwhile),
        # unless a newer spike about it stands already (this one had expired).
        holder = Spike.get_or_none(Spike.open_key == spike.key)
        Spike.update({Spike.state: SpikeState.OUTAGE, Spike.outage: outage.number,
                      Spike.open_key: spike.key if holder is None or holder.number == number
                      else None}).where(Spike.number == number).execute()
        return outage, linkable, skipped
