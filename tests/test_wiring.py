"""One process serves one database: apps on the same database work side by side; an app on a
different database while another is open is refused with an error that says so."""

from __future__ import annotations

import pytest

from mailticket.errors import ConfigError
from mailticket.intake.items import Outcome, RawMail
from mailticket.models import Ticket
from mailticket.wiring import build
from tests.helpers import make_mail, settings_for


def test_two_apps_on_one_database_work_side_by_side(tmp_path, database_url):
    first = build(settings_for(tmp_path, database_url))
    second = build(settings_for(tmp_path, database_url))
    try:
        [one] = first.pipeline.process_batch([RawMail("test", "1/1", make_mail(subject="One"))])
        [two] = second.pipeline.process_batch([RawMail("test", "1/2", make_mail(subject="Two"))])
        assert (one.outcome, two.outcome) == (Outcome.RECORDED, Outcome.RECORDED)
        assert first.db is second.db
        first.close()  # the other app keeps the database open
        assert {t.subject for t in Ticket.select()} == {"One", "Two"}
        [three] = second.pipeline.process_batch([RawMail("test", "1/3", make_mail(subject="3"))])
        assert three.ticket == two.ticket + 1
    finally:
        first.close()
        second.close()


def test_an_app_on_another_database_is_refused_while_one_is_open(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    open_app = build(settings_for(tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}"))
    other = settings_for(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}")
    try:
        with pytest.raises(ConfigError) as refused:
            build(other)
        [problem] = refused.value.problems
        assert problem == (f"database: this process already serves sqlite:///{tmp_path / 'a.db'}"
                           "; one process serves one database (close the other app before "
                           f"opening sqlite:///{tmp_path / 'b.db'})")
        # The open app is untouched by the refusal.
        [taken] = open_app.pipeline.process_batch([RawMail("test", "1/1", make_mail())])
        assert taken.outcome is Outcome.RECORDED
    finally:
        open_app.close()
    later = build(other)  # once the first is closed, the other database may be served
    try:
        assert Ticket.select().count() == 0
    finally:
        later.close()


def test_a_refused_url_names_no_password(tmp_path):
    open_app = build(settings_for(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))
    try:
        with pytest.raises(ConfigError) as refused:
            build(settings_for(tmp_path, "postgresql://desk:s3cret@db.invalid/desk"))
        assert "s3cret" not in str(refused.value) and "***@db.invalid" in str(refused.value)
    finally:
        open_app.close()
