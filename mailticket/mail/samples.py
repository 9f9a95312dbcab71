"""Sample template values: what ``check-config`` renders every template with. The report's
sample has the shape of the context ``reports.render.context_for`` builds
(tests/reports/test_render.py keeps the two alike); its times are local to the desk's calendar,
as the templates show them.
"""

from __future__ import annotations

from datetime import datetime

_ROW = {"number": 40, "subject": "Cannot log in to the records system", "status": "open",
        "requester": "bob@example.org", "requester_name": "Bob",
        "agency": "Springfield Police Department", "group": "network",
        "agent": "nora@example.org", "created_at": datetime(2026, 1, 2, 8, 15)}

REPORT_SAMPLE = {
    "report": {
        "title": "Morning status",
        "timezone": "America/New_York",
        "generated_at": datetime(2026, 1, 13, 7, 30),
        "agency": None,
        "period": {"start": datetime(2026, 1, 12, 17, 0), "end": datetime(2026, 1, 13, 7, 30),
                   "label": "Mon 12 Jan 17:00 - Tue 13 Jan 07:30", "hours": 14.5},
        "mail": {"total": 12, "mailboxes": [
            {"name": "imap://desk@mail.example.org:993/INBOX", "count": 9},
            {"name": "smtp://127.0.0.1:8025", "count": 3}]},
        "new_tickets": {"total": 6, "channels": [
            {"name": "email", "count": 4}, {"name": "phone", "count": 1},
            {"name": "walk-in", "count": 0}, {"name": "voicemail", "count": 1}]},
        "activity": {"follow_ups": 5, "resolved": 3, "closed": 2, "reopened": 1},
        "escalations": {"total": 1, "groups": [{"name": "network", "count": 1}]},
        "first_responses": {"total": 4, "within": 3, "outside": 1},
        "volume": {"unit": "hour", "total": 12, "max": 7, "bars": [
            {"label": "Mon 17:00", "count": 5, "percent": 71},
            {"label": "Mon 18:00", "count": 0, "percent": 0},
            {"label": "Tue 07:00", "count": 7, "percent": 100}]},
        "old_tickets": {"days": 7, "total": 1, "more": 0, "rows": [
            {**_ROW, "last_activity": datetime(2026, 1, 9, 14, 5), "age_days": 11}]},
        "sla": {"total": 1, "more": 0, "rows": [
            {**_ROW, "number": 44, "subject": "Printer on floor 3 is broken",
             "created_at": datetime(2026, 1, 12, 9, 0),
             "due_at": datetime(2026, 1, 13, 9, 0), "overdue": False}]},
        "incidents": [{"number": 41, "subject": "Mail delays for all users",
                       "users_affected": 120, "since": datetime(2026, 1, 12, 16, 20),
                       "tickets": 118, "open_tickets": 110,
                       "channels": [{"name": "email", "count": 100},
                                    {"name": "phone", "count": 18}],
                       "agencies": [{"name": "Springfield Police Department", "count": 90},
                                    {"name": "(no agency)", "count": 28}],
                       "reach": "all users", "state": "open", "applications": ["mail"]}],
        "notes": [{"sender": "Application Support <appsupport@example.org>",
                   "at": datetime(2026, 1, 12, 18, 2), "subject": "Release tonight",
                   "text": "The records system is down 22:00-23:00 for the release.\n"
                           "Expect calls about it."}],
    },
}


SAMPLE_TICKET = {"number": 42, "subject": "Printer on floor 3 is broken", "status": "open",
                 "requester": "ann@example.org", "requester_name": "Ann",
                 "resolution": "Replaced the fuser unit.",
                 "created_at": datetime(2026, 1, 5, 9, 30), "group": "desk", "agent": None,
                 "channel": "email", "agency": "Springfield Police Department",
                 "response_due_at": datetime(2026, 1, 6, 9, 30)}

SAMPLE_DESK = {"desk": {"name": "Service Desk", "address": "desk@example.org"},
               "tag": "[DESK #42]", "reopen_window_days": 30,
               "portal_link": "https://desk.example.org/t/eyJhIjoiYm9iQGV4YW1wbGUub3JnIn0.SAMPLE"}

OUTAGE_SAMPLE = {"number": 7, "title": "Records system down", "applications": ["records"],
                 "agencies": ["Springfield Police Department"],
                 "scope": "agencies: Springfield Police Department",
                 "public_text": "The records system is unavailable; we are working on it.",
                 "state": "open", "opened_at": datetime(2026, 1, 12, 16, 20),
                 "opened_by": "Ada", "resolution": "The database server was restarted.",
                 "resolved_at": None}

OUTAGE_IMPACT_SAMPLE = {
    "tickets": 14, "open_tickets": 12,
    "channels": [{"name": "email", "count": 9}, {"name": "phone", "count": 4},
                 {"name": "walk-in", "count": 0}, {"name": "voicemail", "count": 1},
                 {"name": "portal", "count": 0}],
    "users": 15, "agencies": [{"name": "Springfield Police Department", "count": 13},
                              {"name": "(no agency)", "count": 1}],
    "reach": "beyond its scope", "outside": 1, "related": ["portal", "notifications"]}

SPIKE_SAMPLE = {
    "number": 3, "label": "records system", "count": 2, "minutes": 12,
    "first_at": datetime(2026, 1, 12, 16, 2), "last_at": datetime(2026, 1, 12, 16, 14),
    "tickets": [{"number": 41, "subject": "Records system down?", "requester":
                 "cop@spd.example.gov", "agency": "Springfield Police Department"},
                {"number": 44, "subject": "RMS will not load", "requester":
                 "clerk@example.org", "agency": ""}],
    "agencies": [{"name": "Springfield Police Department", "count": 1},
                 {"name": "(no agency)", "count": 1}],
    "command": 'mailticket outage open "records system" --from-spike 3'}
