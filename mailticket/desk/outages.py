"""Outages and emergencies: an outage record (what is down, for whom, what users are told, an
internal log), its tickets, its scope and impact (``impact``, the one query the CLI, the notices
and the status report share), and resolving it: every linked ticket still open closed with the
resolution and its users told once, in bounded batches that a later run resumes.

``OutageWork`` is mixed into ``Desk`` and, like every desk operation, runs in the caller's
transaction. Resolving spans several transactions, so ``resolve`` here (and the job
``resume_resolves``) opens them itself, one per batch, as the timed jobs do.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from mailticket.config import Settings
from mailticket.config.directory.entries import fold
from mailticket.db import transaction
from mailticket.desk.agent_work import AgentWork
from mailticket.desk.core import (  # noqa: F401 (scope_text: the CLI's)
    ALL_USERS,
    excerpt,
    outage_context,
    required_text,
    scope_text,
    ticket_context,
)
from mailticket.errors import InvalidRequest, UnknownOutage
from mailticket.mail.compose import Recipient
from mailticket.models import Outage, OutageLog, OutageTicket, Ticket
from mailticket.vocabulary import Channel, OutageState, TicketStatus

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # tickets closed per transaction when an outage is resolved

SUBSET, BEYOND_SCOPE = "subset", "beyond its scope"
NO_AGENCY = "(no agency)"


@dataclass(frozen=True)
class Impact:
    """An outage's scope and impact, as the database has it now.

    ``reach`` is the plain rule: "all users" when the outage names no agencies; "subset" when
    it names agencies and every linked ticket's requester is in one of them; "beyond its scope"
    when it names agencies but ``outside`` linked tickets come from another agency or from
    none known (the scope should be widened, or those tickets unlinked).
    """

    tickets: int                             # linked, whatever their status
    open_tickets: int                        # linked and not closed
    channels: tuple[tuple[str, int], ...]    # every vocabulary.Channel, in its order
    users: int                               # distinct requesters and Cc's of linked tickets
    agencies: tuple[tuple[str, int], ...]    # tickets per agency, most first; NO_AGENCY last
    reach: str
    outside: int
    related: tuple[str, ...]                 # from outages.applications

    def as_dict(self) -> dict[str, Any]:
        return {"tickets": self.tickets, "open_tickets": self.open_tickets,
                "channels": [{"name": n, "count": c} for n, c in self.channels],
                "users": self.users,
                "agencies": [{"name": n, "count": c} for n, c in self.agencies],
                "reach": self.reach, "outside": self.outside, "related": list(self.related)}


def impact(outage: Outage, settings: Settings) -> Impact:
    """The figures of ``outage`` now: one read of its linked tickets."""
    rows = list(Ticket.select(Ticket.channel, Ticket.agency, Ticket.requester, Ticket.cc,
                              Ticket.status)
                .join(OutageTicket, on=(OutageTicket.ticket == Ticket.number))
                .where(OutageTicket.outage == outage.number).tuples())
    channels: Counter[str] = Counter()
    agencies: Counter[str] = Counter()
    users: set[str] = set()
    open_tickets = outside = 0
    scope = {fold(a) for a in outage.agencies or ()}
    for channel, agency, requester, cc, status in rows:
        channels[channel] += 1
        agencies[agency or NO_AGENCY] += 1
        users.add(requester.lower())
        users.update(a.lower() for a in cc or ())
        if status != TicketStatus.CLOSED:
            open_tickets += 1
        if scope and (not agency or fold(agency) not in scope):
            outside += 1
    known = [c.value for c in Channel]
    by_channel = tuple((name, channels.get(name, 0)) for name in known) + tuple(
        sorted((n, c) for n, c in channels.items() if n not in known))
    by_agency = sorted(((n, c) for n, c in agencies.items() if n != NO_AGENCY),
                       key=lambda item: (-item[1], fold(item[0])))
    if NO_AGENCY in agencies:
        by_agency.append((NO_AGENCY, agencies[NO_AGENCY]))
    reach = ALL_USERS if not scope else (BEYOND_SCOPE if outside else SUBSET)
    related: dict[str, None] = {}
    for name in outage.applications or ():
        app = settings.outages.application(name)
        for other in app.related if app else ():
            related.setdefault(other, None)
    return Impact(tickets=len(rows), open_tickets=open_tickets, channels=by_channel,
                  users=len(users), agencies=tuple(by_agency), reach=reach, outside=outside,
                  related=tuple(related))


def outage_staff(settings: Settings) -> list[str]:
    """Who is told of outages: the lead (level 3 groups) and ``outages.notify``; else
    ``desk.alerts_to``."""
    lead = [a for g in settings.process.groups if g.level == 3 for a in g.recipients]
    to = list(dict.fromkeys(a.lower() for a in [*lead, *settings.outages.notify]))
    return to or list(settings.desk.alerts_to)


class OutageWork(AgentWork):
    """What agents do with outages: open, link and unlink tickets, tell users, resolve."""

    def outage(self, number: int) -> Outage:
        """The outage, locked until the transaction ends (PostgreSQL), as ``get`` locks a
        ticket: two agents (or a resolve and a link) act one after the other."""
        found = self._locked_row(Outage.number, number)
        if found is None:
            raise UnknownOutage(number)
        return found

    def open_outage(self, actor: str, title: str, *, applications: Sequence[str] = (),
                    agencies: Sequence[str] = (), public_text: str = "",
                    from_ticket: int | None = None, tickets: Sequence[int] = ()) -> Outage:
        """A new open outage (optionally with the ticket it was seen in, or ``tickets``,
        linked); the lead and ``outages.notify`` are told at once, with the current figures."""
        title = " ".join((title or "").split())[:300]
        if not title:
            raise InvalidRequest("the outage's title is empty")
        apps = [self._application(name) for name in applications]
        scope = [self._agency(name) for name in agencies]
        now = self.clock()
        outage = Outage.create(title=title, applications=list(dict.fromkeys(apps)),
                               agencies=list(dict.fromkeys(scope)),
                               public_text=(public_text or "").strip(), state=OutageState.OPEN,
                               opened_at=now, opened_by=actor, updated_at=now)
        self._outage_log(outage, actor, f"opened: {title}")
        if from_ticket is not None:
            self._link(outage, actor, from_ticket)
        for number in tickets:
            self._link(outage, actor, number)
        self._tell_staff("outage_opened", outage)
        log.info("outage #%d opened by %s: %s", outage.number, actor, title)
        return outage

    def outage_from_ticket(self, number: int, actor: str, title: str = "") -> Outage:
        """``#incident``, ``#outage open``, ``ticket incident``: an outage opened from the
        ticket (titled from its subject unless ``title`` is given), the ticket linked."""
        ticket = self.get(number)
        current = self.current_outages(number)
        if current:
            raise InvalidRequest(f"ticket #{number} is already linked to outage "
                                 f"#{current[0].number} ({current[0].title})")
        return self.open_outage(actor, title or ticket.subject or f"Incident of ticket #{number}",
                                from_ticket=number)

    def current_outages(self, number: int) -> list[Outage]:
        """The outages not yet resolved that ticket ``number`` is linked to."""
        return list(Outage.select().join(OutageTicket)
                    .where(OutageTicket.ticket == number, Outage.state.in_(OutageState.current()))
                    .order_by(Outage.number))

    def incident_off(self, number: int) -> None:
        """The old ``#incident off`` / ``ticket incident --off``: replaced by the outage's own
        commands, which this error names."""
        self.get(number)
        current = self.current_outages(number)
        where = (f"outage #{current[0].number}: mailticket outage unlink {current[0].number} "
                 f"{number}, or resolve it: mailticket outage resolve {current[0].number} "
                 "--message TEXT" if current else f"ticket #{number} is in no open outage")
        raise InvalidRequest(f"incidents are outages now; {where}")

    def link_tickets(self, number: int, actor: str, tickets: Iterable[int]) -> list[int]:
        """Link tickets to an open outage; a closed, unknown or already linked ticket is an
        error (the caller's transaction then changes nothing)."""
        outage = self._open(number)
        linked = [self._link(outage, actor, t) for t in dict.fromkeys(tickets)]
        self._changed(outage)
        return linked

    def unlink_tickets(self, number: int, actor: str, tickets: Iterable[int]) -> list[int]:
        outage = self._open(number)
        done = []
        for t in dict.fromkeys(tickets):
            ticket = self.get(t)
            deleted = OutageTicket.delete().where(OutageTicket.outage == outage.number,
                                                  OutageTicket.ticket == t).execute()
            if not deleted:
                raise InvalidRequest(f"ticket #{t} is not linked to outage #{number}")
            self._event(ticket, actor, "outage", f"unlinked from outage #{number}")
            self._outage_log(outage, actor, f"unlinked ticket #{t}")
            done.append(t)
        self._changed(outage)
        return done

    def update_outage(self, number: int, actor: str, public_text: str | None,
                      notify: bool = False, title: str | None = None) -> int:
        """Replace what users are told (``public_text``, and the ``title``, both public: on the
        portal and in acknowledgements; None leaves one as it is); with ``notify`` each linked
        ticket not closed gets one mail (to its requester and Cc's, threaded on it). How many
        tickets were told."""
        outage = self._open(number)
        if title is not None:
            title = " ".join(title.split())[:300]
            if not title:
                raise InvalidRequest("the outage's title is empty")
            outage.title = title
            self._outage_log(outage, actor, f"title: {title}")
        if public_text is not None or title is None:
            outage.public_text = required_text(public_text or "", "public")
            self._outage_log(outage, actor, f"public text: {excerpt(outage.public_text)}")
        self._changed(outage)
        if not notify:
            return 0
        told = 0
        for ticket in self._linked(outage, open_only=True):
            in_reply_to, references = self._thread(ticket)
            self.mailer.queue("outage_update", ticket, to=[self._requester(ticket)],
                              cc=self._cc(ticket),
                              context={"ticket": ticket_context(ticket),
                                       "outage": outage_context(outage)},
                              in_reply_to=in_reply_to, references=references)
            self._event(ticket, actor, "outage", f"told of outage #{number}: "
                        f"{excerpt(outage.public_text)}")
            told += 1
        self._outage_log(outage, actor, f"{told} ticket(s)' users told")
        return told

    def note_outage(self, number: int, actor: str, text: str) -> None:
        """An entry in the outage's internal log."""
        outage = self.outage(number)
        self._outage_log(outage, actor, required_text(text, "log"))

    def advise(self, number: int, actor: str, whom: str) -> list[str]:
        """Mail the outage's public text to ``whom``: "partners" (``outages.partners``) or
        "contacts" (the directory contacts with an address of the affected agencies: the
        outage's scope, else the agencies of its tickets). The addresses mailed."""
        outage = self.outage(number)
        if whom == "partners":
            to = list(self.settings.outages.partners)
            if not to:
                raise InvalidRequest("no partners to advise: outages.partners is empty")
        else:
            to = self._contacts(outage)
        self.mailer.queue("outage_advice", None, to=[Recipient("", a) for a in to],
                          context={"ticket": None, "outage": outage_context(outage),
                                   "audience": whom})
        self._outage_log(outage, actor, f"advised {whom}: {', '.join(to)}")
        return to

    def begin_resolve(self, number: int, actor: str, resolution: str) -> Outage:
        """Mark the outage as resolving, with its resolution: the durable mark that its tickets
        are to be closed. A second resolve of a resolved outage is an error; of one still
        resolving, it goes on with the resolution given first."""
        outage = self.outage(number)
        if outage.state == OutageState.RESOLVED:
            raise InvalidRequest(f"outage #{number} is already resolved "
                                 f"({outage.resolved_at:%Y-%m-%d %H:%M} UTC)")
        if outage.state == OutageState.OPEN:
            outage.resolution = required_text(resolution, "resolution")
            outage.resolved_by = actor
            outage.state = OutageState.RESOLVING
            self._changed(outage)
            self._outage_log(outage, actor, f"resolving: {excerpt(outage.resolution)}")
        return outage

    def resolve_batch(self, number: int, limit: int = BATCH_SIZE) -> int:
        """Close up to ``limit`` of a resolving outage's tickets not yet dealt with: each not
        closed is closed with the resolution ("Ticket #N has been closed" to its users, once),
        and its link marked settled, in this one transaction. How many were dealt with."""
        outage = self.outage(number)
        if outage.state != OutageState.RESOLVING:
            return 0
        links = list(OutageTicket.select().where(OutageTicket.outage == number,
                                                 OutageTicket.settled_at.is_null())
                     .order_by(OutageTicket.ticket).limit(limit))
        actor = outage.resolved_by or "mailticket"
        for link in links:
            ticket = self.get(link.ticket_id)
            if ticket.status == TicketStatus.CLOSED:
                link.settled = "already closed"
            else:
                self._event(ticket, actor, "outage", f"outage #{number} resolved")
                self.close(ticket.number, actor, outage.resolution or "")
                link.settled = "closed"
            link.settled_at = self.clock()
            link.save()
        return len(links)

    def finish_resolve(self, number: int) -> bool:
        """Once every ticket is dealt with: resolved, the public text is the resolution, and
        the lead and ``outages.notify`` get the summary with the final figures. False while
        tickets are left (or when it was finished already)."""
        outage = self.outage(number)
        if outage.state != OutageState.RESOLVING or OutageTicket.select().where(
                OutageTicket.outage == number, OutageTicket.settled_at.is_null()).exists():
            return False
        outage.state = OutageState.RESOLVED
        outage.resolved_at = self.clock()
        outage.public_text = outage.resolution or ""
        self._changed(outage)
        closed = OutageTicket.select().where(OutageTicket.outage == number,
                                             OutageTicket.settled == "closed").count()
        self._outage_log(outage, outage.resolved_by or "mailticket",
                         f"resolved; {closed} ticket(s) closed")
        self._tell_staff("outage_resolved", outage, closed=closed)
        return True

    # --- the shared steps -----------------------------------------------------------------

    def _open(self, number: int) -> Outage:
        outage = self.outage(number)
        if outage.state != OutageState.OPEN:
            raise InvalidRequest(f"outage #{number} is {outage.state}")
        return outage

    def _link(self, outage: Outage, actor: str, number: int) -> int:
        ticket = self.get(number)
        if ticket.status == TicketStatus.CLOSED:
            raise InvalidRequest(f"ticket #{number} is closed; reopen it first to link it")
        if OutageTicket.select().where(OutageTicket.outage == outage.number,
                                       OutageTicket.ticket == number).exists():
            raise InvalidRequest(f"ticket #{number} is already linked to outage "
                                 f"#{outage.number}")
        OutageTicket.create(outage=outage, ticket=ticket, linked_at=self.clock(),
                            linked_by=actor)
        self._event(ticket, actor, "outage", f"linked to outage #{outage.number}: "
                                             f"{outage.title}")
        self._touch(ticket)
        self._outage_log(outage, actor, f"linked ticket #{number}")
        return number

    def _linked(self, outage: Outage, open_only: bool = False) -> list[Ticket]:
        query = (Ticket.select().join(OutageTicket, on=(OutageTicket.ticket == Ticket.number))
                 .where(OutageTicket.outage == outage.number).order_by(Ticket.number))
        if open_only:
            query = query.where(Ticket.status != TicketStatus.CLOSED)
        return list(query)

    def _changed(self, outage: Outage) -> None:
        outage.updated_at = self.clock()
        outage.save()

    def _outage_log(self, outage: Outage, actor: str, text: str) -> None:
        OutageLog.create(outage=outage, at=self.clock(), author=actor, text=text)

    def _tell_staff(self, kind: str, outage: Outage, **extra: Any) -> None:
        to = self.outage_staff()
        if not to:
            log.warning("outage #%d: nobody to tell (no level 3 group, outages.notify or "
                        "desk.alerts_to)", outage.number)
            return
        self.mailer.queue(kind, None, to=[Recipient("", a) for a in to],
                          context={"ticket": None, "outage": outage_context(outage),
                                   "impact": impact(outage, self.settings).as_dict(), **extra})

    def outage_staff(self) -> list[str]:
        return outage_staff(self.settings)

    def _application(self, given: str) -> str:
        given = " ".join(given.split())
        outages = self.settings.outages
        if not outages.applications:
            if not given:
                raise InvalidRequest("an application name is empty")
            return given  # none configured: the name as given
        app = outages.application(given)
        if app is None:
            known = ", ".join(a.name for a in outages.applications)
            raise InvalidRequest(f"no application {given!r} in outages.applications "
                                 f"(applications: {known})")
        return app.name

    def _agency(self, given: str) -> str:
        directory = self.settings.directory
        if directory is None:
            raise InvalidRequest(f"no agency {given!r}: no directory is configured")
        wanted = fold(given)
        for agency in directory.agencies():
            if wanted in (fold(agency.name), fold(agency.code or "")):
                return agency.name
        raise InvalidRequest(f"no agency {given!r} in the directory (mailticket whois NAME "
                             "finds one)")

    def _contacts(self, outage: Outage) -> list[str]:
        directory = self.settings.directory
        if directory is None:
            raise InvalidRequest("no contacts to advise: no directory is configured")
        names = list(outage.agencies or ()) or [
            name for name, _ in impact(outage, self.settings).agencies if name != NO_AGENCY]
        if not names:
            raise InvalidRequest(f"no contacts to advise: outage #{outage.number} names no "
                                 "agency and none of its tickets has one")
        found: dict[str, None] = {}
        for name in names:
            for contact in directory.whois(name).contacts:
                if contact.email:
                    found.setdefault(contact.email.lower(), None)
        if not found:
            raise InvalidRequest(f"no contacts with an address for {', '.join(names)}")
        return list(found)


def resolve(desk: OutageWork, db: peewee.Database, number: int, actor: str, resolution: str,
            batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> tuple[int, bool]:
    """Resolve an outage: mark it resolving (one transaction), close its tickets in batches
    (one transaction each) and finish it (one transaction). Run again after a crash, or
    on an outage left resolving, it goes on where it stopped: a ticket is dealt with once.
    ``max_batches`` stops early (the tests' interruption). (tickets dealt with, finished)."""
    with transaction(db):
        desk.begin_resolve(number, actor, resolution)
    return _continue(desk, db, number, batch_size, max_batches)


def _continue(desk: OutageWork, db: peewee.Database, number: int, batch_size: int,
              max_batches: int | None) -> tuple[int, bool]:
    done = batches = 0
    while max_batches is None or batches < max_batches:
        with transaction(db):
            count = desk.resolve_batch(number, batch_size)
        batches += 1
        done += count
        if count < batch_size:
            break
    else:
        return done, False
    with transaction(db):
        finished = desk.finish_resolve(number)
    return done, finished


def resume_resolves(desk: OutageWork, db: peewee.Database, now: datetime) -> str:
    """The timed job (and the daemon at start): finish every outage left resolving, e.g. by a
    process killed mid-resolve."""
    pending = [n for (n,) in Outage.select(Outage.number)
               .where(Outage.state == OutageState.RESOLVING).order_by(Outage.number).tuples()]
    done = []
    for number in pending:
        count, finished = _continue(desk, db, number, BATCH_SIZE, None)
        done.append(f"#{number}: {count} ticket(s)" + (", resolved" if finished else ""))
    return "; ".join(done) or "nothing to resume"
