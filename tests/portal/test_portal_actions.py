"""What a user may do on the portal, served for real on loopback, and that each is what the same
wish by mail does: a note is a mailed follow-up (the same history, the same word to the agent or
group, marked as from the portal, counted once, within the upload limits); the Ticket Status
dropdown reopens (with a note, within the window; later a new linked ticket, as a late reply
by mail makes), or closes a resolved ticket; a new request is a ticket with the usual
acknowledgement, and signed out nothing is logged until the mailed link is followed.

Where the portal and mail must agree, the test does both on twin tickets and compares what
happened; nothing is patched."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from datetime import timedelta

import pytest

from mailticket import cli
from mailticket.models import Attachment, Event, Message, Outbox, Ticket
from tests.portal.desk_steps import (
    ADA,
    ANN,
    BOB,
    DESK_OPTIONS,
    GROUPS,
    NORA,
    act,
    latest,
    messages,
    new_ticket,
    open_link,
    reply_to,
    sign_in,
    tag,
)

STRANGER = "zoe@elsewhere.example"
MAX_FILES, MAX_BYTES = 3, 2048


@pytest.fixture
def portal_settings_extra():
    return GROUPS + (f"limits: {{max_attachments: {MAX_FILES}, max_attachment_size: "
                     f"{MAX_BYTES}, auto_replies_per_recipient_per_hour: 100}}\n")


@pytest.fixture
def portal_desk_options():
    return DESK_OPTIONS


def link_for(portal, number: int, who: str) -> str:
    """``who``'s own link to ticket ``number``, from the newest mail to them about it."""
    found = [m for m in portal.mails(to=who) if m.row.ticket_id == number and m.links]
    assert found, f"no mail with a link to #{number} for {who}"
    return found[-1].link


def opened(portal, number: int, who: str):
    """A browser that followed ``who``'s link to ticket ``number``."""
    return open_link(portal, link_for(portal, number, who))


def counts() -> dict[str, int]:
    """How much the desk has recorded: nothing changed when none of these moved."""
    return {model.__name__: model.select().count()
            for model in (Ticket, Message, Attachment, Event, Outbox)}


def problem(page) -> str:
    found = re.search(r'<div class="problem" role="alert"><p>(.*?)</p>', page.text, re.S)
    return found.group(1) if found else ""


def flashed(page) -> str:
    found = re.search(r'<div class="notice" role="status">\s*<p>(.*?)</p>', page.text, re.S)
    return found.group(1) if found else ""


# --- what happened, comparable between twin tickets ----------------------------------------

def mark() -> tuple[int, int, int]:
    def top(model):
        return model.select(model.id).order_by(model.id.desc()).scalar() or 0
    return top(Event), top(Outbox), top(Message)


def happened(number: int, since: tuple[int, int, int]) -> dict:
    """What the desk did to ticket ``number`` (and to tickets it made from it) since ``since``,
    with ticket numbers and Message-IDs written alike, so twins compare equal."""
    made = [t for t in Ticket.select().where(Ticket.linked_to == number).order_by(Ticket.number)]
    names = {number: "#OLD", **{t.number: f"#NEW{i}" for i, t in enumerate(made)}}

    def same(text: str) -> str:
        text = re.sub(r"<[^<>@\s]+@[^<>\s]+>", "<id>", text)
        return re.sub(r"#(\d+)", lambda m: names.get(int(m.group(1)), m.group(0)), text)

    tickets = list(names)
    ticket = Ticket.get_by_id(number)
    return {
        "status": ticket.status,
        "closed": ticket.closed_at is not None,
        "events": [(names[e.ticket_id], e.kind, e.actor, same(e.detail)) for e in
                   Event.select().where(Event.id > since[0], Event.ticket.in_(tickets))
                   .order_by(Event.id)],
        "mails": sorted((names[o.ticket_id], o.kind, tuple(o.recipients)) for o in
                        Outbox.select().where(Outbox.id > since[1], Outbox.ticket.in_(tickets))),
        "messages": [(names[m.ticket_id], m.direction, m.verdict, m.decision, m.sender,
                      m.body.strip(), sorted(a.filename for a in m.attachments))
                     for m in Message.select().where(Message.id > since[2],
                                                     Message.ticket.in_(tickets))
                     .order_by(Message.id)],
        "new": [(t.requester, t.status, t.group, names[t.linked_to_id]) for t in made],
    }


def twin(portal, state: str, agent: str | None) -> int:
    """Ann's ticket (Bob in copy) in ``state``: open, resolved or closed; assigned to
    ``agent`` or left with its group."""
    number = new_ticket(portal, sender=f"Ann User <{ANN}>", cc=BOB)
    if agent:
        act(portal, "assign", number, "Ada Lovelace", agent)
    else:
        act(portal, "reply", number, "Ada Lovelace", "We are looking into it.")
    if state in ("resolved", "closed"):
        act(portal, "resolve", number, "Ada Lovelace", "Replaced the fuser unit.")
    if state == "closed":
        act(portal, "close", number, "Ada Lovelace", "Replaced the fuser unit.")
    return number


# --- add a note ----------------------------------------------------------------------------

FILE = ("jam.jpg", "image/jpeg", b"\xff\xd8 a jammed page")


@pytest.mark.parametrize("state, agent", [("open", "nora"), ("resolved", "nora"),
                                          ("resolved", None)],
                         ids=["open-assigned", "resolved-assigned", "resolved-group"])
def test_a_note_is_taken_in_exactly_as_a_mailed_follow_up(portal, state, agent):
    by_mail, by_portal = twin(portal, state, agent), twin(portal, state, agent)
    before = mark()
    reply_to(portal, by_mail, f"Ann User <{ANN}>", "It still jams on page 2.",
             attachments=[FILE])
    mailed = happened(by_mail, before)
    client = opened(portal, by_portal, ANN)
    before = mark()
    page = client.form(f"/tickets/{by_portal}", f"/tickets/{by_portal}/notes",
                       {"note": "It still jams on page 2."},
                       files=[("files", (FILE[0], FILE[2], FILE[1]))])
    assert page.status_code == 200 and page.url.endswith(f"/tickets/{by_portal}")
    assert "It still jams on page 2." in page.text and FILE[0] in page.text
    noted = happened(by_portal, before)
    assert noted == mailed
    assert [k for _, k, _, _ in noted["events"]][0] == "follow_up"
    told = [(kind, to) for _, kind, to in noted["mails"]]
    assert told == ([] if state == "open" else
                    [("user_reopened", (NORA,) if agent else (ADA,))])
    assert ("open again" in flashed(page)) == (state == "resolved")
    [note] = messages(by_portal)[-1:]
    [mail] = messages(by_mail)[-1:]
    assert (note.source, mail.source) == ("portal", "smtp")
    shown = agent_sees(portal, by_portal)  # and the agent sees where it came from
    assert "mail in via the portal from ann@example.org" in shown
    assert "via the portal" not in agent_sees(portal, by_mail)


def agent_sees(portal, number: int) -> str:
    """``mailticket ticket show NUMBER`` as an agent runs it on the portal's config."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = cli.main(["--config", str(portal.app.settings.path), "ticket", "show",
                             str(number)])
    finally:  # the command sets up its own logging; the tests' capture is given back
        root.handlers[:] = handlers
        root.setLevel(level)
    assert code == 0
    return out.getvalue()


def test_the_same_note_sent_twice_counts_once(portal):
    number = twin(portal, "open", "nora")
    client = opened(portal, number, ANN)
    form = client.get(f"/tickets/{number}")
    first = client.form(form, f"/tickets/{number}/notes", {"note": "Toner is low too."})
    again = client.form(form, f"/tickets/{number}/notes", {"note": "Toner is low too."})
    assert first.status_code == again.status_code == 200
    assert "sent already" in flashed(again)
    assert [m.body.strip() for m in messages(number)].count("Toner is low too.") == 1
    assert [e.kind for e in Event.select().where(Event.ticket == number)].count("follow_up") == 1


def test_an_empty_note_is_400_and_changes_nothing(portal):
    number = twin(portal, "open", "nora")
    client = opened(portal, number, ANN)
    before = counts()
    page = client.form(f"/tickets/{number}", f"/tickets/{number}/notes", {"note": " \r\n "})
    assert page.status_code == 400
    assert "The note is empty" in problem(page)
    assert counts() == before


def test_a_note_on_a_closed_ticket_is_409_and_points_to_reopen(portal):
    number = twin(portal, "closed", "nora")
    client = opened(portal, number, ANN)
    ticket_page = client.get(f"/tickets/{number}")
    assert "Add a note" not in ticket_page.text and '<option value="reopen">' in ticket_page.text
    before = counts()
    page = client.form(ticket_page, f"/tickets/{number}/notes", {"note": "Still broken."})
    assert page.status_code == 409
    assert "choose Reopen under Ticket Status" in problem(page)
    assert "Still broken." in page.text  # kept for the Reopen form
    assert counts() == before


@pytest.mark.parametrize("files, says", [
    ([(f"f{i}.txt", b"x", "text/plain") for i in range(MAX_FILES + 1)],
     f"at most {MAX_FILES} files at once; this had {MAX_FILES + 1}"),
    ([("big.bin", b"x" * (MAX_BYTES + 1), "application/octet-stream")], "big.bin is over the"),
], ids=["too-many", "too-large"])
@pytest.mark.parametrize("form", ["note", "reopen", "new"])
def test_files_over_the_limits_are_413_and_nothing_is_recorded(portal, files, says, form):
    number = twin(portal, "closed" if form == "reopen" else "open", "nora")
    client = opened(portal, number, ANN)
    action, data = {
        "note": (f"/tickets/{number}/notes", {"note": "Logs attached."}),
        "reopen": (f"/tickets/{number}/status", {"status": "reopen", "note": "Logs attached."}),
        "new": ("/new", {"subject": "Scanner", "text": "Logs attached."}),
    }[form]
    page_path = "/new" if form == "new" else f"/tickets/{number}"
    before = counts()
    page = client.form(page_path, action, data,
                       files=[("files", (name, data_, media)) for name, data_, media in files])
    assert page.status_code == 413
    assert says in page.text and "Nothing was changed." in page.text
    assert counts() == before
    assert Ticket.get_by_id(number).status == ("closed" if form == "reopen" else "open")


def test_files_within_the_limits_are_on_the_note(portal):
    number = twin(portal, "open", "nora")
    client = opened(portal, number, ANN)
    files = [(f"f{i}.txt", b"y" * MAX_BYTES, "text/plain") for i in range(MAX_FILES)]
    page = client.form(f"/tickets/{number}", f"/tickets/{number}/notes", {"note": "Three."},
                       files=[("files", f) for f in files])
    assert page.status_code == 200
    [note] = messages(number)[-1:]
    assert sorted((a.filename, a.size) for a in note.attachments) == [
        (name, len(data)) for name, data, _ in files]


# --- the Ticket Status dropdown ------------------------------------------------------------

@pytest.mark.parametrize("state", ["resolved", "closed"])
def test_reopen_needs_a_note(portal, state):
    number = twin(portal, state, "nora")
    client = opened(portal, number, ANN)
    before = counts()
    page = client.form(f"/tickets/{number}", f"/tickets/{number}/status",
                       {"status": "reopen", "note": "  "})
    assert page.status_code == 400
    assert "a note is needed to reopen" in problem(page)
    assert counts() == before and Ticket.get_by_id(number).status == state


@pytest.mark.parametrize("agent", ["nora", None], ids=["assigned", "group"])
def test_reopen_within_the_window_reopens_with_the_note_and_tells_the_desk(portal, agent):
    number = twin(portal, "closed", agent)
    client = opened(portal, number, ANN)
    portal.clock.now += timedelta(days=portal.app.settings.desk.reopen_window_days - 1)
    page = client.form(f"/tickets/{number}", f"/tickets/{number}/status",
                       {"status": "reopen", "note": "It jams again since Monday."})
    assert page.status_code == 200 and page.url.endswith(f"/tickets/{number}")
    assert "open again" in flashed(page)
    assert Ticket.get_by_id(number).status == "open"
    assert messages(number)[-1].body.strip() == "It jams again since Monday."
    assert "It jams again since Monday." in page.text
    told = latest(portal, "user_reopened", NORA if agent else ADA)
    assert told.row.ticket_id == number
    assert "It jams again since Monday." in told.text and ANN in told.text
    for who in (ANN, BOB):
        assert latest(portal, "reopened", who).row.ticket_id == number


def test_after_the_window_reopen_offers_a_new_linked_ticket_as_a_late_mail_makes(portal):
    by_mail, by_portal = twin(portal, "closed", "nora"), twin(portal, "closed", "nora")
    client = opened(portal, by_portal, ANN)  # signed in: the session outlives the link
    portal.clock.now += timedelta(days=portal.app.settings.desk.reopen_window_days + 1)
    before = mark()
    reply_to(portal, by_mail, ANN, "It jams again.")
    mailed = happened(by_mail, before)

    before, recorded = mark(), counts()
    page = client.form(f"/tickets/{by_portal}", f"/tickets/{by_portal}/status",
                       {"status": "reopen", "note": "It jams again."})
    assert page.status_code == 409
    assert '<option value="new_linked" selected>' in page.text
    assert '<option value="reopen">' not in page.text
    assert "It jams again." in page.text  # the note kept for the next step
    assert counts() == recorded
    page = client.form(page, f"/tickets/{by_portal}/status",
                       {"status": "new_linked", "note": "It jams again."})
    assert page.status_code == 200
    noted = happened(by_portal, before)
    assert noted == mailed
    [made] = Ticket.select().where(Ticket.linked_to == by_portal)
    assert page.url.endswith(f"/tickets/{made.number}")  # and this browser may see it
    assert (made.requester, made.channel, Ticket.get_by_id(by_portal).status) == (
        ANN, "portal", "closed")
    ack = latest(portal, "ack", ANN)
    assert ack.row.ticket_id == made.number and f"Ticket #{by_portal} was closed" in ack.text
    assert open_link(portal, ack.link).last.url.endswith(f"/tickets/{made.number}")


@pytest.mark.parametrize("who", [ANN, BOB, STRANGER], ids=["requester", "cc", "stranger"])
@pytest.mark.parametrize("state, days", [("closed", 1), ("closed", 31), ("resolved", 31)],
                         ids=["closed-within", "closed-after", "resolved"])
def test_the_portal_and_mail_answer_a_wish_to_reopen_alike(portal, who, state, days):
    """The one reopen rule: the same ticket state, the same person, by mail and on the
    portal (taking what the portal offers), comes to the same."""
    by_mail, by_portal = twin(portal, state, "nora"), twin(portal, state, "nora")
    if who == STRANGER:
        client = sign_in(portal, STRANGER)
    else:
        client = opened(portal, by_portal, who)
    portal.clock.now += timedelta(days=days)
    before = mark()
    reply_to(portal, by_mail, who, "Still broken.")
    mailed = happened(by_mail, before)

    before = mark()
    page = client.get(f"/tickets/{by_portal}")
    wish = {"status": "reopen", "note": "Still broken."}
    answer = client.form(page, f"/tickets/{by_portal}/status", wish)
    if answer.status_code == 409 and 'value="new_linked"' in answer.text:
        answer = client.form(answer, f"/tickets/{by_portal}/status",
                             {**wish, "status": "new_linked"})
    noted = happened(by_portal, before)
    if who == STRANGER:
        # Not on the ticket: the portal shows it to nobody else (404) and changes nothing;
        # by mail it is not reopened either (a new linked ticket, or an unverified note).
        assert page.status_code == answer.status_code == 404
        assert noted["events"] == noted["mails"] == noted["messages"] == []
        assert mailed["status"] == state and not any(
            kind in ("status", "reopened") for ticket, kind, _, _ in mailed["events"]
            if ticket == "#OLD")
        return
    assert answer.status_code == 200
    assert noted == mailed


def test_its_fixed_closes_a_resolved_ticket_with_the_usual_mail(portal):
    number = twin(portal, "resolved", "nora")
    client = opened(portal, number, BOB)
    page = client.get(f"/tickets/{number}")
    assert '<option value="close">It\'s fixed, close it</option>' in page.text
    page = client.form(page, f"/tickets/{number}/status", {"status": "close"})
    assert page.status_code == 200 and f"Ticket #{number} is closed" in flashed(page)
    ticket = Ticket.get_by_id(number)
    assert (ticket.status, ticket.resolution) == ("closed", "Replaced the fuser unit.")
    assert ticket.closed_at == portal.clock.now
    for who in (ANN, BOB):
        closed = latest(portal, "closed", who)
        assert closed.row.ticket_id == number
        assert str(closed.message["Subject"]).endswith(f"Ticket #{number} has been closed")
        assert "Replaced the fuser unit." in closed.text
    [(actor, detail)] = [(e.actor, e.detail) for e in Event.select().where(
        Event.ticket == number, Event.kind == "status", Event.detail.startswith("resolved"))]
    assert actor == BOB and detail.startswith("resolved -> closed")


@pytest.mark.parametrize("state", ["open", "closed"])
def test_its_fixed_on_a_ticket_that_is_not_resolved_is_409(portal, state):
    number = twin(portal, state, "nora")
    client = opened(portal, number, ANN)
    before = counts()
    page = client.form(f"/tickets/{number}", f"/tickets/{number}/status", {"status": "close"})
    assert page.status_code == 409
    assert "Only a resolved ticket can be closed here" in problem(page)
    assert counts() == before and Ticket.get_by_id(number).status == state


# --- new requests --------------------------------------------------------------------------

def ack_text(mail, number: int) -> str:
    return mail.text.replace(mail.link, "LINK").replace(f"#{number}", "#N")


def test_a_new_request_signed_in_is_a_ticket_with_the_acknowledgement_mail_gets(portal):
    mailed = new_ticket(portal, sender=ANN, subject="Scanner offline", body="It says E42.")
    mailed_ack = latest(portal, "ack", ANN)
    client = sign_in(portal, ANN)
    form = client.get("/new")
    page = client.form(form, "/new", {"subject": "Scanner offline", "text": "It says E42."},
                       files=[("files", (FILE[0], FILE[2], FILE[1]))])
    assert page.status_code == 200
    [made] = Ticket.select().where(Ticket.number != mailed)
    assert page.url.endswith(f"/tickets/{made.number}") and "It says E42." in page.text
    assert f"ticket #{made.number}" in flashed(page)
    assert (made.requester, made.subject, made.channel) == (ANN, "Scanner offline", "portal")
    [message] = messages(made.number)
    assert (message.source, message.body.strip(), [a.filename for a in message.attachments]) == (
        "portal", "It says E42.", [FILE[0]])
    ack = latest(portal, "ack", ANN)
    assert ack.row.ticket_id == made.number and ack.row.recipients == [ANN]
    assert ack_text(ack, made.number) == ack_text(mailed_ack, mailed)
    assert str(ack.message["Subject"]) == str(mailed_ack.message["Subject"]).replace(
        tag(mailed), tag(made.number))
    assert open_link(portal, ack.link).last.url.endswith(f"/tickets/{made.number}")


def test_a_new_request_signed_out_is_logged_only_when_its_mailed_link_is_followed(portal):
    client = portal.client()
    before = counts()
    page = client.form("/new", "/new", {"address": "Ann@Example.org", "name": "Ann User",
                                        "subject": "Badge reader", "text": "Door 4 is dead."},
                       files=[("files", (FILE[0], FILE[2], FILE[1]))])
    assert page.status_code == 200 and "Check your mail" in page.text
    assert {k: v for k, v in counts().items() if k != "Outbox"} == {
        k: v for k, v in before.items() if k != "Outbox"}
    [confirm] = portal.mails("confirm_request", to=ANN)
    assert "Badge reader" in confirm.text and confirm.row.ticket_id is None
    assert portal.mails("ack") == []

    scanner = portal.client().get(confirm.link)  # GET shows a button and logs nothing
    assert scanner.status_code == 200 and "Log my request" in scanner.text
    button = client.get(confirm.link)
    assert Ticket.select().count() == 0
    page = client.form(button, confirm.link)
    assert page.status_code == 200
    [made] = Ticket.select()
    assert (made.requester, made.requester_name, made.subject, made.channel) == (
        ANN, "Ann User", "Badge reader", "portal")
    assert [a.filename for m in messages(made.number) for a in m.attachments] == [FILE[0]]
    assert page.url.endswith(f"/tickets/{made.number}") and "Door 4 is dead." in page.text
    assert f"Signed in as {ANN}" in page.text
    assert latest(portal, "ack", ANN).row.ticket_id == made.number

    again = client.get(confirm.link)  # it works once
    assert again.status_code == 410
    assert client.form(again, confirm.link).status_code == 410
    assert Ticket.select().count() == 1


def test_a_confirmation_link_expires_after_sign_in_minutes(portal):
    client = portal.client()
    client.form("/new", "/new", {"address": ANN, "subject": "Badge reader",
                                 "text": "Door 4 is dead."})
    [confirm] = portal.mails("confirm_request", to=ANN)
    portal.clock.now += timedelta(minutes=portal.app.settings.web.sign_in_minutes + 1)
    page = client.get(confirm.link)
    assert page.status_code == 410
    assert client.form(page, confirm.link).status_code == 410
    assert Ticket.select().count() == 0


@pytest.mark.parametrize("signed_in, field, value, says", [
    (signed_in, *case) for signed_in in (False, True) for case in (
        ("subject", "  ", "Give your request a subject."),
        ("text", "\r\n", "Describe what you need."),
        ("address", "ann at example.org", "Give the email address we should answer"),
    ) if not (signed_in and case[0] == "address")  # signed in, the address is the session's
], ids=["signed-out-subject", "signed-out-text", "signed-out-address", "signed-in-subject",
        "signed-in-text"])
def test_an_incomplete_request_is_400_with_the_form_filled_in_again(portal, signed_in, field,
                                                                    value, says):
    client = sign_in(portal, ANN) if signed_in else portal.client()
    given = {"address": "ann@example.org", "name": "Ann <User>", "subject": "Badge & reader",
             "text": "Door <4> is dead."}
    given[field] = value
    if signed_in:
        del given["address"], given["name"]
    before = counts()
    page = client.form("/new", "/new", given)
    assert page.status_code == 400
    assert says in problem(page)
    for key, typed in given.items():
        if typed.strip():
            shown = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert shown in page.text, key
    assert counts() == before
