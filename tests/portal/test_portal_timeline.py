"""What a user sees on the portal, served for real on loopback: a ticket's public timeline only
(their mail and the other participants', the desk's replies, status changes, the resolution;
never internal notes, notes to the comment address, outsiders' or automated mail, staff
notifications, agent-only events or agents' addresses), "My tickets" (exactly the tickets the
address is on), the attachments (always downloads, sandboxed; none of a hidden message), and
the personal link in every mail to a user about a ticket.

Tickets are made as the desk makes them: mail through intake, agents' operations as the CLI runs
them, the SLA job as the scheduler runs it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mailticket.db import transaction
from mailticket.jobs import run_job
from mailticket.models import Attachment, Message, Ticket
from tests.portal.desk_steps import (
    ADA,
    AGENT_ADDRESSES,
    ALERTS,
    ANN,
    BOB,
    COMMENT,
    DESK_OPTIONS,
    GROUPS,
    NORA,
    act,
    latest,
    listed,
    new_ticket,
    open_link,
    reply_to,
    sign_in,
)

MALLORY = "mallory@elsewhere.example"  # not on the ticket, writes with its tag
CAROL = "carol@elsewhere.example"      # not on the ticket, answers mail Bob forwarded to her


@pytest.fixture
def portal_settings_extra():
    return GROUPS + "limits: {auto_replies_per_recipient_per_hour: 100}\n"


@pytest.fixture
def portal_desk_options():
    return DESK_OPTIONS


def busy_ticket(portal) -> int:
    """Ann's ticket (Bob in copy) with everything a ticket collects: public mail and replies
    with files, and everything that is not for users: SLA warning and breach, escalation,
    assignment, an outage opened from it, an agent's #comment, a note to the comment address,
    tagged mail from an outsider, a reply from someone Bob forwarded our mail to, an
    out-of-office reply, and the staff notices all of these sent. Then it is resolved."""
    number = new_ticket(portal, sender=f"Ann User <{ANN}>", cc=f"Bob <{BOB}>",
                        body="PUBLIC-ANN It prints blank pages.\n",
                        attachments=[("ann-photo.png", "image/png", b"\x89PNG ann")])
    ticket = Ticket.get_by_id(number)
    due = ticket.response_due_at
    for at in (due - timedelta(hours=1), due + timedelta(minutes=1)):
        run_job("sla-check", portal.app.desk.as_at(at), portal.app.db, at)
    portal.clock.now = due + timedelta(minutes=5)
    act(portal, "escalate", number, "Ada Lovelace", "network",
        "SECRET-ESCALATION the switch port on floor 3 is dead")
    act(portal, "assign", number, "Ada Lovelace", "nora")
    # The old incident mark is an outage opened from the ticket now (with no public text: not
    # shown on the portal).
    act(portal, "outage_from_ticket", number, "Ada Lovelace", "SECRET-OUTAGE incident")
    reply_to(portal, number, f"Ada Lovelace <{ADA}>", "PUBLIC-REPLY-ADA Please restart it.\n",
             cc=f"Nora Net <{NORA}>",
             attachments=[("desk-guide.pdf", "application/pdf", b"%PDF-1.4 guide")])
    act(portal, "reply", number, "Nora Net", "PUBLIC-REPLY-NORA The fuser is on order.")
    reply_to(portal, number, f"Nora Net <{NORA}>",
             "#comment\nSECRET-COMMENT-COMMAND Ann is a VIP.\n",
             attachments=[("internal-log.txt", "text/plain", b"SECRET log")])
    reply_to(portal, number, f"Ada Lovelace <{ADA}>",
             "SECRET-COMMENT-ADDRESS vendor case 991\n", to=COMMENT,
             attachments=[("vendor.txt", "text/plain", b"SECRET vendor")])
    reply_to(portal, number, f"Mallory <{MALLORY}>", "SECRET-OUTSIDER Please close this.\n",
             attachments=[("mallory.html", "text/html", b"<script>alert(1)</script>")])
    forwarded = latest(portal, "reply", BOB)
    reply_to(portal, number, f"Carol <{CAROL}>", "SECRET-THREADED Bob sent me this.\n",
             subject=f"Re: {forwarded.message['Subject']}",
             in_reply_to=forwarded.message["Message-ID"],
             attachments=[("carol.txt", "text/plain", b"SECRET carol")])
    reply_to(portal, number, f"Ann User <{ANN}>", "SECRET-AUTOREPLY I am out of the office.\n",
             headers={"Auto-Submitted": "auto-replied"},
             attachments=[("ooo.txt", "text/plain", b"SECRET ooo")])
    reply_to(portal, number, f"Bob <{BOB}>", "PUBLIC-BOB Same on floor 4.\n",
             attachments=[("bob-photo.jpg", "image/jpeg", b"\xff\xd8 bob")])
    act(portal, "resolve", number, "Nora Net", "PUBLIC-RESOLUTION Replaced the fuser unit.")
    return number


PUBLIC = ("PUBLIC-ANN", "PUBLIC-REPLY-ADA", "PUBLIC-REPLY-NORA", "PUBLIC-BOB",
          "PUBLIC-RESOLUTION", "ann-photo.png", "desk-guide.pdf", "bob-photo.jpg")
SECRET = ("SECRET", "internal-log.txt", "vendor.txt", "mallory.html", "carol.txt", "ooo.txt",
          MALLORY, CAROL, "first response due", "incident", "switch port")
PUBLIC_FILES = {"ann-photo.png", "desk-guide.pdf", "bob-photo.jpg"}


def test_the_busy_ticket_really_has_the_hidden_things(portal):
    """The setup is what the next test says it is: each hidden thing is on the ticket, and each
    staff notice was queued (so their absence from the page means something)."""
    number = busy_ticket(portal)
    bodies = " ".join(m.body for m in Message.select().where(Message.ticket == number))
    for marker in ("SECRET-COMMENT-COMMAND", "SECRET-COMMENT-ADDRESS", "SECRET-OUTSIDER",
                   "SECRET-THREADED", "SECRET-AUTOREPLY"):
        assert marker in bodies, marker
    staff = {(m.kind, r) for m in portal.mails() if m.row.ticket_id == number
             for r in m.row.recipients if r in AGENT_ADDRESSES}
    for kind, to in (("sla_warning", ADA), ("sla_breach", "lee@desk.example.test"),
                     ("escalated", "network@desk.example.test"), ("assigned", NORA),
                     ("agent_report", NORA), ("unverified", ALERTS), ("handed_back", ADA)):
        assert (kind, to) in staff, (kind, to, staff)


@pytest.mark.parametrize("who", [ANN, BOB], ids=["requester", "cc"])
def test_a_user_sees_the_public_timeline_and_nothing_else(portal, who):
    number = busy_ticket(portal)
    client = open_link(portal, latest(portal, "resolved", who).link)
    page = client.get(f"/tickets/{number}")
    assert page.status_code == 200
    text = page.text
    assert f"Signed in as {who}" in text
    for public in PUBLIC:
        assert public in text, public
    for secret in SECRET + AGENT_ADDRESSES:
        assert secret.lower() not in text.lower(), secret
    statuses = re.findall(r"Status changed to <strong>(\w+)</strong>", text)
    assert statuses == ["open", "resolved"]
    # Each user's own mail is "You"; the other participant's shows who wrote it.
    assert re.search(r"<strong>You</strong>.*?PUBLIC-" + ("ANN" if who == ANN else "BOB"),
                     text, re.S)
    other = "Bob" if who == ANN else "Ann User"
    assert re.search(rf"<strong>{other}</strong>", text)


@pytest.mark.parametrize("body, resolution", [
    ("#assign nora\n", None),
    ("#resolve\n\nPUBLIC-RESOLVED Replaced the fuser.\n", "PUBLIC-RESOLVED Replaced the fuser."),
], ids=["commands-only", "resolution"])
def test_an_agents_mail_that_relays_nothing_shows_no_entry_and_no_file(portal, body, resolution):
    """Commands alone, or "#resolve" whose text is the resolution (the user gets it in the
    resolved mail): no user was sent this mail or its file, so the page shows neither; the
    resolution is on the page as the resolution."""
    number = new_ticket(portal)
    reply_to(portal, number, f"Ada Lovelace <{ADA}>", body,
             attachments=[("diagnostics.txt", "text/plain", b"SECRET diagnostics")])
    assert portal.mails("reply") == []  # the user was sent no mail with the file
    client = open_link(portal, latest(portal, "ack", ANN).link)
    text = client.get(f"/tickets/{number}").text
    assert "diagnostics.txt" not in text and "SECRET" not in text
    assert 'class="entry entry-out"' not in text
    if resolution:
        assert latest(portal, "resolved", ANN).text.count(resolution) == 1
        assert text.count(resolution) == 1  # the resolution, once
    [file_id] = [a.id for a in Attachment.select()]
    assert client.get(f"/tickets/{number}/files/{file_id}").status_code == 404


def test_my_tickets_lists_exactly_the_tickets_an_address_is_on(portal):
    """Requester or Cc, whatever the case it was written in; never an address that only looks
    like it (a LIKE pattern, a substring, another domain)."""
    mine = [
        new_ticket(portal, sender=f"Ann <{ANN}>"),
        new_ticket(portal, sender="Ann <Ann@Example.ORG>", subject="Written in capitals"),
        new_ticket(portal, sender=f"Bob <{BOB}>", cc="ANN@example.org", subject="Ann in Cc"),
        new_ticket(portal, sender=f"Bob <{BOB}>", to=f"desk@example.test, {ANN}",
                   subject="Ann in To"),
    ]
    others = {
        "a_n@example.org": new_ticket(portal, sender="a_n@example.org", subject="underscore"),
        "a%n@example.org": new_ticket(portal, sender=f"Bob <{BOB}>", cc="a%n@example.org",
                                      subject="percent in Cc"),
        "jann@example.org": new_ticket(portal, sender="jann@example.org", subject="longer"),
        "ann@example.org.uk": new_ticket(portal, sender="x@example.org",
                                         cc="ann@example.org.uk", subject="other domain"),
        "ann@example.or": new_ticket(portal, sender="ann@example.or", subject="shorter"),
    }
    page = sign_in(portal, "ANN@example.org").get("/tickets")
    assert sorted(listed(page.text)) == sorted(mine)
    for address, number in others.items():
        assert listed(sign_in(portal, address).get("/tickets").text) == [number], address


def test_a_ticket_of_someone_else_is_the_same_404_as_no_ticket(portal):
    ann_ticket = new_ticket(portal)
    bob_ticket = new_ticket(portal, sender=f"Bob <{BOB}>", subject="Bob's own")
    client = sign_in(portal, ANN)
    assert client.get(f"/tickets/{ann_ticket}").status_code == 200
    theirs, nothing = client.get(f"/tickets/{bob_ticket}"), client.get("/tickets/999")
    assert theirs.status_code == nothing.status_code == 404
    assert "Bob's own" not in theirs.text
    assert theirs.text == nothing.text


# --- attachments ---------------------------------------------------------------------------

def file_ids(number: int) -> dict[str, int]:
    return {a.filename: a.id for a in Attachment.select().join(Message)
            .where(Message.ticket == number)}


def assert_download(response, filename: str, media_type: str, data: bytes) -> None:
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["Content-Type"].split(";")[0] == media_type
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and filename in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp


def test_the_users_and_the_desks_public_files_download_as_files(portal):
    number = busy_ticket(portal)
    client = open_link(portal, latest(portal, "resolved", ANN).link)
    page = client.get(f"/tickets/{number}").text
    ids = file_ids(number)
    stored = {a.filename: a for a in Attachment.select()}
    for name, data in (("ann-photo.png", b"\x89PNG ann"), ("desk-guide.pdf", b"%PDF-1.4 guide"),
                       ("bob-photo.jpg", b"\xff\xd8 bob")):
        href = f"/tickets/{number}/files/{ids[name]}"
        assert f'href="{href}"' in page
        assert_download(client.get(href), name, stored[name].content_type, data)


def test_files_of_hidden_messages_and_of_other_tickets_are_404_whatever_the_id(portal):
    number = busy_ticket(portal)
    other = new_ticket(portal, subject="Ann's second ticket",
                       attachments=[("second.txt", "text/plain", b"second")])
    client = open_link(portal, latest(portal, "resolved", ANN).link)
    open_link(portal, latest(portal, "ack", ANN).link, client)  # Ann may see both tickets
    every = list(Attachment.select().join(Message))
    assert len(every) == 9  # eight on the busy ticket, one on the other
    for guess in range(1, max(a.id for a in every) + 4):
        shown = {a.id: a.filename for a in every if a.message.ticket_id == number}
        status = client.get(f"/tickets/{number}/files/{guess}").status_code
        expected = 200 if shown.get(guess) in PUBLIC_FILES else 404
        assert status == expected, (guess, shown.get(guess))
    [second] = file_ids(other).values()
    assert client.get(f"/tickets/{other}/files/{second}").status_code == 200
    assert client.get(f"/tickets/{number}/files/{second}").status_code == 404


HOSTILE = [
    ("page.html", "text/html", b"<html><script>alert(document.cookie)</script></html>"),
    ("drawing.svg", "image/svg+xml",
     b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
]


@pytest.mark.parametrize("how", ["mail", "portal"])
def test_uploaded_html_and_svg_never_render(portal, how):
    number = new_ticket(portal, attachments=HOSTILE if how == "mail" else ())
    client = open_link(portal, latest(portal, "ack", ANN).link)
    if how == "portal":
        sent = client.form(f"/tickets/{number}", f"/tickets/{number}/notes",
                           {"note": "Two files."},
                           files=[("files", (name, data, media)) for name, media, data in HOSTILE])
        assert sent.status_code == 200, sent.text
    page = client.get(f"/tickets/{number}").text
    for tag_name in ("<img", "<iframe", "<object", "<embed", "<svg", "<script"):
        assert tag_name not in page
    ids = file_ids(number)
    for name, media, data in HOSTILE:
        assert_download(client.get(f"/tickets/{number}/files/{ids[name]}"), name, media, data)


# --- links in mail -------------------------------------------------------------------------

def test_every_mail_to_a_user_about_a_ticket_carries_their_own_link(portal):
    """ack, reply, resolved, closed, reopened: each recipient's copy has one link, theirs; it
    opens this ticket signed in as them (a Cc's is never the requester's)."""
    number = new_ticket(portal, sender=f"Ann User <{ANN}>", cc=BOB)
    act(portal, "reply", number, "Ada Lovelace", "Please restart it.")
    act(portal, "resolve", number, "Ada Lovelace", "Replaced the fuser.")
    act(portal, "close", number, "Ada Lovelace", "Replaced the fuser.")
    reply_to(portal, number, ANN, "It is broken again.")
    assert Ticket.get_by_id(number).status == "open"
    seen: dict[str, set[str]] = {ANN: set(), BOB: set()}
    for kind in ("ack", "reply", "resolved", "closed", "reopened"):
        for who in ([ANN] if kind == "ack" else [ANN, BOB]):
            mail = latest(portal, kind, who)
            assert mail.row.recipients == [who], (kind, mail.row.recipients)
            link = mail.link
            assert link in (mail.html or link), kind
            client = open_link(portal, link)
            page = client.last
            assert page.url.endswith(f"/tickets/{number}"), (kind, who)
            assert f"Signed in as {who}" in page.text, (kind, who)
            seen[who].add(link)
    assert not seen[ANN] & seen[BOB]
    assert [m.kind for m in portal.mails(to=ANN) if m.kind == "ack"] == ["ack"]
    assert portal.mails("ack", to=BOB) == []  # the acknowledgement is the requester's
