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

import json
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import peewee

from mailticket.config import Settings
from mailticket.db import Prepared, transaction
from mailticket.desk.core import DeskCore
from mailticket.desk.lookalike import Topic, topics
from mailticket.desk.outages import OutageWork, outage_staff
from mailticket.errors import InvalidRequest, UnknownSpike
from mailticket.mail.compose import Recipient
from mailticket.models import Outage, OutageTicket, Spike, SpikeTopic, Ticket
from mailticket.vocabulary import SYSTEM_ACTOR, OutageState, SpikeState, TicketStatus

log = logging.getLogger(__name__)


class _Standing(NamedTuple):
    number: int
    key: str
    state: str
    last_at: Any             # a datetime (PostgreSQL) or its text (SQLite)
    outage_state: str | None


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else Spike.last_at.python_value(value)


# The statements run for every new ticket, prepared once per number of topics (db.Prepared):
# building peewee's SQL cost more than running it (bench/README.md, "Spike detection").
def _per_count(build: Callable[[int], Callable[..., peewee.Query]],
               arity: Callable[[int], int]) -> Callable[[int], Prepared]:
    cache: dict[int, Prepared] = {}

    def prepared(count: int) -> Prepared:
        found = cache.get(count)
        if found is None:
            found = cache[count] = Prepared(build(count), arity(count))
        return found
    return prepared


_insert_topics = _per_count(
    lambda count: lambda *p: SpikeTopic.insert_many(
        [p[i:i + 4] for i in range(0, 4 * count, 4)],
        fields=[SpikeTopic.ticket, SpikeTopic.key, SpikeTopic.requester, SpikeTopic.at])
    .returning(), lambda count: 4 * count)
_standing = _per_count(
    lambda count: lambda *keys: Spike.select(
        Spike.number, Spike.key, Spike.state, Spike.last_at, Outage.state)
    .join(Outage, peewee.JOIN.LEFT_OUTER).where(Spike.open_key.in_(list(keys))),
    lambda count: count)
_window = _per_count(
    lambda count: lambda *p: SpikeTopic.select(
        SpikeTopic.key, SpikeTopic.ticket, SpikeTopic.requester)
    .where(SpikeTopic.key.in_(list(p[:count])) & (SpikeTopic.at >= p[count]))
    .order_by(SpikeTopic.at, SpikeTopic.ticket), lambda count: count + 1)
_MEMBERS = Prepared(lambda n: Spike.select(Spike.tickets, Spike.last_at)
                    .where(Spike.number == n), 1)
_MEMBERS_LOCKED = Prepared(lambda n: Spike.select(Spike.tickets, Spike.last_at)
                           .where(Spike.number == n).for_update(), 1)
_JOIN = Prepared(lambda t, at, n: Spike.update({Spike.tickets: peewee.Value(t),
                                                Spike.last_at: at}).where(Spike.number == n), 3)


def spike_staff(settings: Settings) -> list[str]:
    """Who is alerted: who is told of outages, and the desk's (level 1) groups."""
    desk = [a for g in settings.process.groups if g.level == 1 for a in g.recipients]
    return list(dict.fromkeys([*outage_staff(settings), *(a.lower() for a in desk)]))


class SpikeWatch(DeskCore):
    """The intake side: each new ticket's topics recorded and its spikes checked."""

    def watch_for_spike(self, ticket: Ticket, body: str) -> Spike | None:
        """Called for each new ticket, in its transaction: the spike it tipped (alerted), or
        None. Three statements when nothing happens (the topics written, the spikes standing
        for them read, the window read), two when it joins a spike (and its update)."""
        found = topics(ticket.subject or "", body, self.settings.outages.applications)
        if not found:
            return None
        now = ticket.created_at
        rule = self.settings.outages.spike
        since = now - rule.within
        requester = (ticket.requester or "").lower()
        keys = [t.key for t in found]
        _insert_topics(len(keys)).execute(self.db, *(value for key in keys for value in (
            ticket.number, key, requester, now)))
        standing = {row[1]: _Standing(*row) for row in
                    _standing(len(keys)).execute(self.db, *keys).fetchall()}
        for topic in found:  # a ticket joins one spike at most: the first still standing
            spike = standing.get(topic.key)
            if spike is not None and self._still_stands(spike, since):
                if spike.state == SpikeState.OPEN:
                    self._join(spike.number, ticket)
                return None
        window: dict[str, list[tuple[int, str]]] = {}
        for key, number, who in _window(len(keys)).execute(self.db, *keys, since).fetchall():
            window.setdefault(key, []).append((number, who))
        tipping = [(len({who for _, who in window.get(t.key, [])}), -i, t)
                   for i, t in enumerate(found)]
        if max(count for count, _, _ in tipping) < rule.tickets:
            return None  # the usual case: stop here
        # A spike forms on one topic only (the one with the most users; the first on a tie),
        # of the tickets not in an outage still open nor in a spike still standing: the pairs
        # of one subject's words are one spike, not ten.
        taken = self._taken()
        for count, _, topic in sorted(tipping, key=lambda item: item[:2], reverse=True):
            if count < rule.tickets:
                break
            rows = self._not_in_outages([r for r in window[topic.key] if r[0] not in taken])
            if len({who for _, who in rows}) >= rule.tickets:
                return self._form(topic, [number for number, _ in rows], ticket)
        return None

    def _taken(self) -> set[int]:
        """The tickets of the spikes standing (few: an open one lasts a window)."""
        return {n for (numbers,) in Spike.select(Spike.tickets)
                .where(Spike.open_key.is_null(False)).tuples() for n in numbers or ()}

    def _still_stands(self, spike: _Standing, since: datetime) -> bool:
        """A spike stands while it is open and its last ticket within the window, or while
        the outage opened from it is not resolved; otherwise it is let go (its key freed)."""
        if spike.state == SpikeState.OPEN and _when(spike.last_at) >= since:
            return True
        if spike.state == SpikeState.OUTAGE and spike.outage_state in OutageState.current():
            return True
        update: dict[Any, Any] = {Spike.open_key: None}
        if spike.state == SpikeState.OPEN:
            update[Spike.state] = SpikeState.EXPIRED
        Spike.update(update).where(Spike.number == spike.number).execute()
        return False

    def _join(self, number: int, ticket: Ticket) -> None:
        # Two daemons adding to one spike add one after the other (PostgreSQL: FOR UPDATE).
        query = _MEMBERS_LOCKED if self.db.for_update else _MEMBERS
        (tickets, last_at), = query.execute(self.db, number).fetchall()
        members = json.loads(tickets) if tickets else []
        if ticket.number not in members:
            _JOIN.execute(self.db, json.dumps([*members, ticket.number]),
                          max(_when(last_at), ticket.created_at), number)

    def _not_in_outages(self, rows: list[tuple[int, str]]) -> list[tuple[int, str]]:
        linked = {n for (n,) in OutageTicket.select(OutageTicket.ticket).join(Outage)
                  .where(OutageTicket.ticket.in_([n for n, _ in rows]),
                         Outage.state.in_(OutageState.current())).tuples()}
        return [(n, who) for n, who in rows if n not in linked]

    def _form(self, topic: Topic, numbers: list[int], tipping: Ticket) -> Spike | None:
        """The spike, and its one alert. Another daemon may have formed it a moment before:
        the unique ``open_key`` refuses the second, which then joins the first instead."""
        tickets = list(Ticket.select(Ticket.number, Ticket.subject, Ticket.requester,
                                     Ticket.agency, Ticket.created_at)
                       .where(Ticket.number.in_(numbers)).order_by(Ticket.number))
        first, now = min(t.created_at for t in tickets), tipping.created_at
        try:
            with self.db.atomic():
                spike = Spike.create(key=topic.key, open_key=topic.key, label=topic.label,
                                     state=SpikeState.OPEN, tickets=[t.number for t in tickets],
                                     first_at=first, last_at=now, alerted_at=now)
        except peewee.IntegrityError:
            other = Spike.get(Spike.open_key == topic.key)
            self._join(other.number, tipping)
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
        spike = self._locked_row(Spike.number, number)
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


def sweep_spikes(desk: DeskCore, db: peewee.Database, now: datetime) -> str:
    """The timed job: spikes that stopped standing let go (an open one with no look-alike for
    ``within`` expired; one whose outage is resolved freed), so the record says what intake
    would find; and topics older than the window deleted (intake only reads the window)."""
    since = now - desk.settings.outages.spike.within
    with transaction(db):
        expired = (Spike.update({Spike.state: SpikeState.EXPIRED, Spike.open_key: None})
                   .where(Spike.state == SpikeState.OPEN, Spike.open_key.is_null(False),
                          Spike.last_at < since).execute())
        over = Outage.select(Outage.number).where(Outage.state == OutageState.RESOLVED)
        freed = (Spike.update({Spike.open_key: None})
                 .where(Spike.state == SpikeState.OUTAGE, Spike.open_key.is_null(False),
                        Spike.outage.in_(over)).execute())
        purged = SpikeTopic.delete().where(SpikeTopic.at < since).execute()
    return f"{expired} spike(s) expired, {freed} freed, {purged} old topic(s) deleted"
