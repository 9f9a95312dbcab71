"""A status report's figures as a multipart mail: the ``report`` templates' context, and the
rendering through the Composer (so an admin's template overrides apply as for every other kind).

The context holds plain values only (templates never query the database), times converted to
the calendar's zone, and what users wrote as they wrote it: the HTML template's autoescaping is
what makes it safe, so nothing here escapes and no template marks user text ``|safe``. Single-line
fields (subjects, names) lose their control characters, which would break the text part's
columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailticket.mail.compose import Composer, Rendered, one_line
from mailticket.reports.figures import Count, ReportData, SlaLine, TicketLine

KIND = "report"


def render(composer: Composer, data: ReportData, *, title: str, desk_name: str,
           desk_address: str) -> Rendered:
    """Subject, text and HTML of the report (the ``report.*.j2`` templates)."""
    return composer.render(KIND, context_for(data, title=title, desk_name=desk_name,
                                             desk_address=desk_address))


def context_for(data: ReportData, *, title: str, desk_name: str,
                desk_address: str) -> dict[str, Any]:
    """The templates' context (its shape: ``mail.samples.REPORT_SAMPLE``)."""
    zone = UTC if data.timezone == "UTC" else ZoneInfo(data.timezone)

    def local(at: datetime) -> datetime:
        return at.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)

    start, end = local(data.period.start), local(data.period.end)
    peak = max((bar.count for bar in data.volume), default=0)
    return {
        "report": {
            "title": one_line(title),
            "timezone": data.timezone,
            "generated_at": local(data.now),
            "agency": one_line(data.agency) if data.agency else None,
            "period": {"start": start, "end": end, "label": _span(start, end),
                       "hours": round(data.period.length.total_seconds() / 3600, 1)},
            "mail": {"total": data.mail_total, "mailboxes": _counts(data.mail_by_mailbox)},
            "new_tickets": {"total": data.new_total, "channels": _counts(data.new_by_channel)},
            "activity": {"follow_ups": data.follow_ups, "resolved": data.resolved,
                         "closed": data.closed, "reopened": data.reopened},
            "escalations": {"total": data.escalations_total,
                            "groups": _counts(data.escalations)},
            "first_responses": {"total": data.first_responses,
                                "within": data.first_response_within,
                                "outside": data.first_response_outside},
            "volume": {"unit": data.volume_unit, "total": sum(b.count for b in data.volume),
                       "max": peak,
                       "bars": [{"label": bar.label, "count": bar.count,
                                 "percent": _percent(bar.count, peak)} for bar in data.volume]},
            "old_tickets": {"days": data.old_ticket_days, "total": data.old_tickets_total,
                            "more": data.old_tickets_total - len(data.old_tickets),
                            "rows": [{**_ticket(line, local),
                                      "last_activity": local(line.last_activity),
                                      "age_days": line.age_days}
                                     for line in data.old_tickets]},
            "sla": {"total": data.sla_tickets_total,
                    "more": data.sla_tickets_total - len(data.sla_tickets),
                    "rows": [{**_ticket(line, local), "due_at": local(line.due_at),
                              "overdue": line.overdue} for line in data.sla_tickets]},
            "incidents": [{"number": i.number, "subject": one_line(i.subject),
                           "users_affected": i.users_affected, "since": local(i.since),
                           "tickets": i.tickets, "open_tickets": i.open_tickets,
                           "channels": _counts(i.channels), "agencies": _counts(i.agencies),
                           "reach": i.reach, "state": i.state,
                           "applications": [one_line(a) for a in i.applications]}
                          for i in data.incidents],
            "notes": [{"sender": one_line(n.sender), "at": local(n.at),
                       "subject": one_line(n.subject),
                       "text": "\n".join(n.text.splitlines()).strip("\n")}
                      for n in data.notes],
        },
        "desk": {"name": one_line(desk_name), "address": one_line(desk_address)},
    }


def _span(start: datetime, end: datetime) -> str:
    if start.year != end.year:
        return f"{start:%a %d %b %Y %H:%M} - {end:%a %d %b %Y %H:%M}"
    return f"{start:%a %d %b %H:%M} - {end:%a %d %b %H:%M}"


def _counts(counts: tuple[Count, ...]) -> list[dict[str, Any]]:
    return [{"name": one_line(c.name), "count": c.count} for c in counts]


def _percent(count: int, peak: int) -> int:
    """A bar's length, 0-100; any mail at all shows as at least 1."""
    if count <= 0 or peak <= 0:
        return 0
    return max(1, round(100 * count / peak))


def _ticket(line: TicketLine | SlaLine, local) -> dict[str, Any]:
    return {"number": line.number, "subject": one_line(line.subject), "status": line.status,
            "requester": one_line(line.requester), "requester_name": one_line(line.requester_name),
            "agency": one_line(line.agency) if line.agency else None,
            "group": line.group, "agent": line.agent, "created_at": local(line.created_at)}
