"""The one rule for who may reopen a ticket and when (desk.views.reopening), and that mail,
the CLI and the desk's notice follow it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mailticket.db import transaction
from mailticket.desk.views import Reopen, TicketView, reopening
from mailticket.errors import InvalidRequest
from mailticket.intake.items import RawMail
from mailticket.models import Outbox, Ticket
from tests.desk.test_procedure import GROUPS, make_app, new_ticket  # noqa: F401 - fixtures
from tests.helpers import make_mail

NOW = datetime(2026, 11, 24, 9, 0)
WINDOW = timedelta(days=30)


def ticket(status: str, closed_days_ago: int | None = None) -> TicketView:
    closed = NOW - timedelta(days=closed_days_ago) if closed_days_ago is not None else None
    return TicketView(7, status, "ann@example.org", frozenset({"cc@example.org"}), closed)


@pytest.mark.parametrize("view, by, staff, expected", [
    (ticket("closed", 3), "ann@example.org", False, Reopen.REOPEN),
    (ticket("closed", 3), "CC@example.org", False, Reopen.REOPEN),
    (ticket("closed", 30), "ann@example.org", False, Reopen.REOPEN),
    (ticket("closed", 31), "ann@example.org", False, Reopen.NEW_LINKED),
    (ticket("closed", 3), "mallory@example.net", False, Reopen.NEW_LINKED),
    (ticket("closed", 400), "ada@desk.example.test", True, Reopen.REOPEN),
    (ticket("resolved"), "ann@example.org", False, Reopen.BACK_TO_OPEN),
    (ticket("resolved"), "mallory@example.net", False, Reopen.NEW_LINKED),
    (ticket("open"), "ann@example.org", False, Reopen.NOT_CLOSED),
    (ticket("new"), "ada@desk.example.test", True, Reopen.NOT_CLOSED),
])
def test_who_may_reopen_and_when(view, by, staff, expected):
    verdict, why = reopening(view, by, now=NOW, window=WINDOW, staff=staff)
    assert verdict is expected
    assert why


def test_someone_counted_as_on_the_ticket_is_treated_as_on_it():
    verdict, _ = reopening(ticket("closed", 3), "alerts@desk.example.test", now=NOW,
                           window=WINDOW, involved=True)
    assert verdict is Reopen.REOPEN


def test_the_cli_reopens_only_closed_tickets_saying_why(make_app):  # noqa: F811
    app = make_app()
    number = new_ticket(app)
    with transaction(app.db), pytest.raises(InvalidRequest, match="is new, not closed"):
        app.desk.reopen(number, "Ada", "again")


def _close(app, number):
    with transaction(app.db):
        app.desk.close(number, "Ada", "Replaced the cable.")


def test_a_users_reopen_by_mail_tells_the_tickets_group(make_app):  # noqa: F811
    app = make_app()
    number = new_ticket(app, sender="Ann <ann@example.org>")
    _close(app, number)
    app.pipeline.process_batch([RawMail("test", "reply", make_mail(
        subject=f"Re: [DESK #{number}] Network is slow", sender="Ann <ann@example.org>",
        body="Still slow since this morning."))])
    assert Ticket.get_by_id(number).status == "open"
    [notice] = Outbox.select().where(Outbox.kind == "user_reopened")
    assert set(notice.recipients) == {"ada@desk.example.test", "al@desk.example.test"}
    assert b"Still slow since this morning." in bytes(notice.content)
    assert b"ann@example.org reopened it" in bytes(notice.content)


def test_the_assigned_agent_is_told_rather_than_the_group(make_app):  # noqa: F811
    app = make_app()
    number = new_ticket(app, sender="Ann <ann@example.org>")
    with transaction(app.db):
        app.desk.assign(number, "Ada", "nora@desk.example.test")
        app.desk.resolve(number, "Nora", "Restarted the switch.")
    app.pipeline.process_batch([RawMail("test", "reply", make_mail(
        subject=f"Re: [DESK #{number}] Network is slow", sender="Ann <ann@example.org>",
        body="No, it is not fixed."))])
    assert Ticket.get_by_id(number).status == "open"
    [notice] = Outbox.select().where(Outbox.kind == "user_reopened")
    assert notice.recipients == ["nora@desk.example.test"]
    assert b"says it is not fixed" in bytes(notice.content)


def test_an_agent_reopening_tells_no_one_but_the_user(make_app):  # noqa: F811
    app = make_app()
    number = new_ticket(app, sender="Ann <ann@example.org>")
    _close(app, number)
    with transaction(app.db):
        app.desk.reopen(number, "Ada", "The cable was not the cause.")
    assert not Outbox.select().where(Outbox.kind == "user_reopened").exists()
    assert Outbox.select().where(Outbox.kind == "reopened").count() == 1


def test_without_groups_a_reopen_by_mail_tells_nobody_extra(make_app):  # noqa: F811
    app = make_app(extra="")
    number = new_ticket(app, sender="Ann <ann@example.org>")
    _close(app, number)
    app.pipeline.process_batch([RawMail("test", "reply", make_mail(
        subject=f"Re: [DESK #{number}] Network is slow", sender="Ann <ann@example.org>"))])
    assert Ticket.get_by_id(number).status == "open"
    assert not Outbox.select().where(Outbox.kind == "user_reopened").exists()
