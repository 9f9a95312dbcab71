"""Rendering the status report: both parts carry the figures, what users wrote is escaped in the
HTML and left as written in the plain text, the HTML stands alone (no images, no style block),
and the sample context Composer.check uses has the shape render gives the templates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html.parser import HTMLParser

import pytest

from mailticket.mail.compose import Composer
from mailticket.mail.kinds import sample_context
from mailticket.reports.figures import (Count, IncidentLine, NoteLine, Period, ReportData,
                                        SlaLine, TicketLine, VolumeBar)
from mailticket.reports.render import context_for, render
from mailticket.mail.samples import REPORT_SAMPLE as SAMPLE_CONTEXT

HOSTILE = '<script>alert("x")</script> & <b>bold</b>'


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text) + timedelta(hours=5)


def data(**changes) -> ReportData:
    start, end = ny("2026-01-12T17:00"), ny("2026-01-13T07:30")
    values = dict(
        period=Period(start, end), now=end, timezone="America/New_York", agency=None,
        mail_by_mailbox=(Count("imap://desk@mail.example.test:993/INBOX", 417),
                         Count("smtp://127.0.0.1:8025", 23)),
        new_by_channel=(Count("email", 91), Count("phone", 7), Count("walk-in", 0),
                        Count("voicemail", 5)),
        follow_ups=64, resolved=38, closed=29, reopened=3,
        escalations=(Count("apps", 2), Count("network", 11)),
        first_response_within=77, first_response_outside=6,
        volume_unit="hour",
        volume=tuple(VolumeBar(start + timedelta(hours=i), f"H{i:02d}", count)
                     for i, count in enumerate([40, 0, 1, 200, 179])),
        old_ticket_days=7,
        old_tickets=(TicketLine(1234, f"Old one {HOSTILE}", "open", "eve@example.org",
                                f"Eve {HOSTILE}", f"Agency {HOSTILE}", "network",
                                "nora@example.test", ny("2026-01-01T09:00"),
                                ny("2026-01-09T14:05"), 12),),
        old_tickets_total=250,
        sla_tickets=(SlaLine(1300, f"Late one {HOSTILE}", "new", "sam@example.org", "", None,
                             "desk", None, ny("2026-01-12T08:00"), ny("2026-01-12T15:00"),
                             True),),
        sla_tickets_total=1,
        incidents=(IncidentLine(1250, f"Outage {HOSTILE}", 120, ny("2026-01-12T16:20"),
                                tickets=130, open_tickets=118,
                                channels=(Count("email", 100), Count("phone", 30)),
                                agencies=(Count(f"Agency {HOSTILE}", 129),
                                          Count("(no agency)", 1)),
                                reach="subset", applications=("records",)),),
        notes=(NoteLine(f"Apps {HOSTILE} <apps@example.test>", ny("2026-01-12T18:02"),
                        f"Release {HOSTILE}", f"Line one {HOSTILE}\nLine two"),),
    )
    values.update(changes)
    return ReportData(**values)


@pytest.fixture(scope="module")
def composer():
    return Composer()


@pytest.fixture(scope="module")
def rendered(composer):
    return render(composer, data(), title="Morning status", desk_name="Service Desk",
                  desk_address="desk@example.test")


def visible_text(html: str) -> str:
    """The HTML as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    class Text(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts = []

        def handle_data(self, text):
            self.parts.append(text)

    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def test_the_subject_names_the_report_and_its_period(rendered):
    assert rendered.subject == "Morning status: Mon 12 Jan 17:00 - Tue 13 Jan 07:30"


@pytest.mark.parametrize("label, count", [
    ("Mail received", 440), ("imap://desk@mail.example.test:993/INBOX", 417),
    ("smtp://127.0.0.1:8025", 23), ("New tickets", 103), ("email", 91), ("phone", 7),
    ("walk-in", 0), ("voicemail", 5), ("Follow-ups", 64), ("Resolved", 38), ("Closed", 29),
    ("Reopened", 3), ("Escalations", 13), ("to apps", 2), ("to network", 11),
    ("First responses within the SLA", 77), ("First responses outside the SLA", 6),
])
def test_both_parts_carry_each_figure(rendered, label, count):
    assert re.search(rf"^\s+{re.escape(label)}\s+{count}$", rendered.text, re.M), label
    assert f"{label} {count}" in visible_text(rendered.html), label


def test_both_parts_carry_the_lists_and_the_chart(rendered):
    html = visible_text(rendered.html)
    for part in (rendered.text, html):
        assert "#1234" in part and "#1300" in part and "#1250" in part
        assert "Tickets open more than 7 days".lower() in part.lower()
        assert "250" in part and "249 more" in part  # the total, and the rows not listed
        assert "Fri 09 Jan 14:05" in part            # last activity, in New York time
        assert "Mon 12 Jan 15:00" in part            # the overdue target, local time
        assert "120 users" in part or "120" in part
        assert "America/New_York" in part
    assert "OVERDUE" in rendered.text and "overdue" in html


def test_the_text_chart_draws_bars_in_proportion(rendered):
    bars = dict(re.findall(r"^  (H\d\d) +(#*) +\d+$", rendered.text, re.M))
    assert {name: len(bar) for name, bar in bars.items()} == {
        "H00": 8, "H01": 0, "H02": 1, "H03": 40, "H04": 36}


def test_the_html_chart_draws_bars_with_widths(rendered):
    widths = re.findall(r'<table width="(\d+)%"', rendered.html)
    assert widths == ["20", "1", "100", "90"]  # the empty hour has no bar; 1 mail shows as 1 %


def test_user_text_is_escaped_in_the_html(rendered):
    html = rendered.html
    assert "<script" not in html.lower() and "<b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert html.count("&lt;script&gt;") == 9  # old/late/incident/note subjects, name, agency,
    #                                           note sender and note text, outage's agency
    assert f"Release {HOSTILE}" in visible_text(html)


def test_the_html_stands_alone(rendered):
    html = rendered.html.lower()
    assert "<img" not in html and "<style" not in html and "<link" not in html
    assert "url(" not in html and "background=" not in html and "src=" not in html
    assert "http://" not in html and "https://" not in html
    assert "<table" in html and 'style="' in html


def test_the_text_part_is_plain(rendered):
    text = rendered.text
    assert not re.search(r"</?(table|tr|td|div|p|br|html)\b", text)
    assert "&lt;" not in text and "&amp;" not in text and "&nbsp;" not in text
    assert f"Release {HOSTILE}" in text  # as the user wrote it
    assert "    Line two" in text
    assert all(len(line) <= 120 for line in text.splitlines() if HOSTILE not in line)


def test_single_line_fields_lose_control_characters(composer):
    line = TicketLine(1, "Broken\r\nBcc: x@example.org", "open", "a@example.org", "A\x00B",
                      None, None, None, ny("2026-01-01T09:00"), ny("2026-01-01T09:00"), 12)
    out = render(composer, data(old_tickets=(line,), old_tickets_total=1), title="T\nU",
                 desk_name="Desk", desk_address="desk@example.test")
    assert "Broken Bcc: x@example.org" in out.text and "A B <a@example.org>" in out.text
    assert out.subject.startswith("T U: ")


def test_an_empty_report_renders(composer):
    empty = data(mail_by_mailbox=(), new_by_channel=(), follow_ups=0, resolved=0, closed=0,
                 reopened=0, escalations=(), first_response_within=0,
                 first_response_outside=0, volume=(), old_tickets=(), old_tickets_total=0,
                 sla_tickets=(), sla_tickets_total=0, incidents=(), notes=())
    out = render(composer, empty, title="End of shift status", desk_name="Desk",
                 desk_address="desk@example.test")
    assert out.text.count("(none)") == 4
    assert visible_text(out.html).count("None.") == 4


def test_an_agency_report_says_so(composer):
    out = render(composer, data(agency="Springfield Police Department"), title="Police",
                 desk_name="Desk", desk_address="desk@example.test")
    assert "Springfield Police Department" in out.subject


def shape(value):
    """Keys all the way down (a list by its first item), with the kind of each leaf."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None or isinstance(value, str):
        return "text"
    return type(value).__name__


def test_the_sample_context_has_the_shape_render_gives(rendered):
    built = context_for(data(agency="A"), title="T", desk_name="D", desk_address="d@example.test")
    assert shape(built["report"]) == shape(SAMPLE_CONTEXT["report"])
    assert set(built) == {"report", "desk"}
    assert shape(built["desk"]) == shape(sample_context("ack")["desk"])


def test_the_sample_context_renders_as_composer_check_would(composer):
    out = composer.render("report", {**sample_context("ack"), **SAMPLE_CONTEXT})
    assert out.subject == "Morning status: Mon 12 Jan 17:00 - Tue 13 Jan 07:30"
    assert out.html is not None and "Release tonight" in out.text


def test_a_report_at_the_list_limits_stays_under_gmails_clipping_size(composer):
    import inspect

    from mailticket.reports.figures import gather

    limit = inspect.signature(gather).parameters["list_limit"].default
    long = "A fairly long subject line about the records system & <its> login page, again"
    old = tuple(TicketLine(10000 + i, long, "open", f"someone.long{i}@agency-name.example.org",
                           "Firstname Lastname-Longer", "Springfield County Sheriff's Office",
                           "network", "agent.name@desk.example.test", ny("2026-01-01T09:00"),
                           ny("2026-01-09T14:05"), 12) for i in range(limit))
    late = tuple(SlaLine(20000 + i, long, "open", f"someone.long{i}@agency-name.example.org",
                         "Firstname Lastname-Longer", "Springfield County Sheriff's Office",
                         "network", "agent.name@desk.example.test", ny("2026-01-12T08:00"),
                         ny("2026-01-12T15:00"), True) for i in range(limit))
    start = ny("2026-01-09T17:00")
    bars = tuple(VolumeBar(start + timedelta(hours=i), f"Sat {i % 24:02d}:00", i * 3)
                 for i in range(72))  # the longest period charted by hour
    big = data(old_tickets=old, old_tickets_total=400, sla_tickets=late, sla_tickets_total=90,
               volume=bars, period=Period(start, start + timedelta(hours=72)),
               notes=tuple(NoteLine("apps@example.test", start, long, long * 5)
                           for _ in range(5)),
               incidents=tuple(IncidentLine(i, long, 50, start) for i in range(5)))
    out = render(composer, big, title="Morning status", desk_name="Service Desk",
                 desk_address="desk@example.test")
    assert len(out.html.encode()) < 102_000
    assert out.text.count("\n  #10") == limit and f"{400 - limit} more" in out.text
