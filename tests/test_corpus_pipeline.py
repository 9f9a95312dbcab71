"""Every file of the third-party corpus through the whole pipeline, on a real database: a
defined outcome for each, no crash, and automated mail never acknowledged nor made a ticket."""

from __future__ import annotations

import pytest

from mailticket.intake.items import Outcome, RawMail
from mailticket.mail.parse import parse
from mailticket.models import Message, Outbox, Quarantine, Ticket
from tests import corpus
from tests.conftest import app_on_backend, backends

NEVER_TICKETS = ("autoreply/", "bounce/", "report/", "list/")


@pytest.fixture(scope="module", params=backends())
def app(request, tmp_path_factory):
    yield from app_on_backend(request, tmp_path_factory, "corpus")


@pytest.mark.parametrize("row", corpus.corpus_params())
def test_corpus_file_has_a_defined_outcome(app, row):
    raw = (corpus.corpus_dir() / row["file"]).read_bytes()
    acks_before = Outbox.select().where(Outbox.kind == "ack").count()
    [result] = app.pipeline.process_batch([RawMail("corpus", row["file"], raw)])

    assert result.outcome in (Outcome.RECORDED, Outcome.QUARANTINED, Outcome.DUPLICATE)
    acks = Outbox.select().where(Outbox.kind == "ack").count() - acks_before
    if result.outcome is Outcome.QUARANTINED:
        # Only mail nobody can be answered for is kept aside; every mail with a sender is
        # recorded, however broken (issue #2).
        assert parse(raw).sender is None, f"{row['file']} was quarantined: {result.detail}"
        held = Quarantine.get(Quarantine.source_key == row["file"])
        assert bytes(held.raw) == raw and held.error
        assert acks == 0
        return
    if result.outcome is Outcome.DUPLICATE:
        # Corpus files that share a Message-ID with an earlier one (copies of the same mail).
        assert result.ticket is None or Ticket.get_or_none(Ticket.number == result.ticket)
        assert acks == 0
        return
    message = Message.select().order_by(Message.id.desc()).get()
    if row["file"].startswith(NEVER_TICKETS):
        assert acks == 0, f"{row['file']} was acknowledged ({message.verdict})"
        assert result.ticket is None or message.decision == "attach", \
            f"{row['file']} made ticket #{result.ticket}"
        assert message.verdict != "human"
    if result.ticket is not None and message.decision == "new_ticket":
        assert acks == 1
        assert Ticket.get(Ticket.number == result.ticket).requester == message.sender
