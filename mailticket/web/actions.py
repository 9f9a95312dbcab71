"""The forms that change something: sign in (a link by mail), sign out (here or everywhere),
ask for a new link, add a note, the Ticket Status dropdown (reopen, "it's fixed, close it",
a new linked request), and new requests (signed in, or confirmed by a mailed link).

Notes, reopens and requests are handed to intake as the mail they stand for (``submit``);
closing goes through the desk. Each change commits before the page answers; every POST passed
the CSRF check first (``guard``)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import peewee
from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from mailticket.config.addresses import valid_address
from mailticket.db import reading, transaction
from mailticket.desk import public
from mailticket.desk.core import ticket_context, view
from mailticket.desk.views import Reopen, reopening
from mailticket.errors import InvalidRequest
from mailticket.mail.compose import Recipient
from mailticket.models import PortalRequest
from mailticket.portal.links import CONFIRM, SIGN_IN, LinkRefused
from mailticket.vocabulary import IntakeOutcome, TicketStatus
from mailticket.web import guard
from mailticket.web.context import error_page, portal, stop
from mailticket.web.pages import NEW_REQUEST_FIELDS, pending, show_ticket, viewer, visible
from mailticket.web.submit import Upload, hand_in, note_subject, portal_mail

blueprint = Blueprint("actions", __name__)

_TEXT_LIMIT = 100_000
_SUBJECT_LIMIT = 300


# --- signing in and out --------------------------------------------------------------------

@blueprint.post("/sign-in")
def sign_in() -> Any:
    """Mail a sign-in link. The page says the same for every address (whether it has tickets
    is nobody's business); the mail counts against the caps on automatic mail."""
    address = request.form.get("address", "").strip()
    if not valid_address(address):
        return render_template("sign_in.html.j2", viewer=viewer(), address=address[:320],
                               problem="That is not an email address (name@example.org)."), 400
    mail_link("sign_in", address.lower())
    return render_template("sent.html.j2", viewer=viewer(), address=address,
                           what="a sign-in link", minutes=portal().web.sign_in_minutes)


@blueprint.post("/s/<token>")
def use_sign_in_link(token: str) -> Any:
    row = pending(SIGN_IN, token)
    if not use_once(row):
        return error_page(410, title="This link was used already", sign_in=True)
    guard.start_session(portal().links, row.address, ticket=None)
    return redirect(url_for("pages.my_tickets"), 303)


@blueprint.post("/renew")
def renew() -> Any:
    """"Send me a new link" on an expired or revoked ticket link: a fresh one is mailed to the
    address the old one was for (still on the ticket), never shown here."""
    links = portal().links
    token = request.form.get("token", "")
    try:
        links.ticket_grant(token)
        address, number = None, None  # still valid: nothing to renew
    except LinkRefused as refused:
        address, number = refused.address, refused.ticket
    if address and number:
        limited()
        with transaction(links.db):
            ticket = public.visible_ticket(number, address)
            if ticket is not None:
                core = portal().core
                core.mailer.queue("ticket_link", ticket, to=[Recipient("", address)],
                                  context={"ticket": ticket_context(ticket)}, auto_reply=True)
            _count_request("ticket_link", address)
        portal().wake()
    return render_template("sent.html.j2", viewer=viewer(), address=None,
                           what="a new link", minutes=None)


@blueprint.post("/sign-out")
def sign_out() -> Any:
    guard.end_session()
    flash("You are signed out on this browser.")
    return redirect(url_for("pages.home"), 303)


@blueprint.post("/sign-out-everywhere")
def sign_out_everywhere() -> Any:
    """Every link and session of this address so far stops working, on every device."""
    who = viewer()
    if who is not None:
        with transaction(portal().links.db):
            portal().links.revoke(who.address)
    guard.end_session()
    flash("You are signed out everywhere: the links in the mail we sent you before no longer "
          "work. Newer mail from the desk brings new links.")
    return redirect(url_for("pages.home"), 303)


# --- a ticket ------------------------------------------------------------------------------

@blueprint.post("/tickets/<int:number>/notes")
def add_note(number: int) -> Any:
    who = viewer()
    ticket = visible(who, number)
    assert who is not None
    text = _text("note")
    if ticket.status == TicketStatus.CLOSED:
        return show_ticket(number, status=409, note=text, problem=(
            "This ticket is closed. To reopen it, choose Reopen under Ticket Status."))
    if not text:
        return show_ticket(number, status=400, problem="The note is empty: write something.")
    files = uploads()
    result = submit(who.address, note_subject(_prefix(), number, ticket.subject), text, files)
    done = "Your note was added."
    if ticket.status == TicketStatus.RESOLVED:  # a reply to a resolved ticket reopens it
        with reading(portal().links.db):
            now = public.visible_ticket(number, who.address)
        if now is not None and now.status != ticket.status:
            done = "Your note was added, and the ticket is open again: the desk will look at it."
    return after_submit(result, number, done)


@blueprint.post("/tickets/<int:number>/status")
def change_status(number: int) -> Any:
    """The Ticket Status dropdown: reopen (a note is required), it's fixed (close it), or a new
    request linked to a ticket closed too long ago."""
    who = viewer()
    ticket = visible(who, number)
    assert who is not None
    choice = request.form.get("status", "")
    text = _text("note")
    if choice == "close":
        if ticket.status != TicketStatus.RESOLVED:
            return show_ticket(number, status=409, problem="Only a resolved ticket can be "
                               "closed here.")
        try:
            with transaction(portal().links.db):
                portal().core.desk.confirm_fixed(number, who.address)
        except InvalidRequest as exc:  # changed meanwhile (an agent closed it first)
            return show_ticket(number, status=409, problem=f"Not done: {exc}.")
        portal().wake()
        flash(f"Ticket #{number} is closed. Thank you!")
        return redirect(url_for("pages.ticket_page", number=number), 303)
    if choice not in ("reopen", "new_linked"):
        return show_ticket(number, status=400, note=text, problem="Choose what to do with the "
                           "ticket.")
    if not text:
        return show_ticket(number, status=400, problem="Say what is still wrong: a note is "
                           "needed to reopen the ticket.")
    desk = portal().settings.desk
    rule, why = reopening(view(ticket), who.address, now=portal().core.desk.clock(),
                          window=timedelta(days=desk.reopen_window_days))
    if rule is Reopen.NOT_CLOSED:
        return show_ticket(number, status=409, note=text, problem="This ticket is open: add "
                           "a note instead.")
    if rule is Reopen.NEW_LINKED and choice == "reopen":
        return show_ticket(number, status=409, note=text, offer_linked=why)
    files = uploads()
    result = submit(who.address, note_subject(_prefix(), number, ticket.subject), text, files)
    return after_submit(result, number, f"Ticket #{number} is open again; the desk was told."
                        if rule is not Reopen.NEW_LINKED else "")


# --- new requests --------------------------------------------------------------------------

@blueprint.post("/new")
def new_request() -> Any:
    who = viewer()
    form = {key: request.form.get(key, "").strip() for key in NEW_REQUEST_FIELDS}
    form["text"] = _text("text")
    subject = " ".join(form["subject"].split())[:_SUBJECT_LIMIT]
    problem = None
    if not subject:
        problem = "Give your request a subject."
    elif not form["text"]:
        problem = "Describe what you need."
    elif who is None and not valid_address(form["address"]):
        problem = "Give the email address we should answer (name@example.org)."
    if problem:
        return render_template("new.html.j2", viewer=who, problem=problem, form=form,
                               nonce=portal().links.new_nonce(),
                               limits=portal().settings.limits), 400
    files = uploads()
    if who is not None:
        result = submit(who.address, subject, form["text"], files, name=form["name"])
        return after_submit(result, None, "Your request was logged.")
    address = form["address"].lower()
    store = portal().core.store
    kept = [{"filename": f.filename, "content_type": f.content_type, "sha256": store.put(f.data)}
            for f in files]
    store.sync()
    mail_link("confirm_request", address, payload={
        "name": form["name"][:200], "subject": subject, "text": form["text"], "files": kept},
        subject=subject)
    return render_template("sent.html.j2", viewer=None, address=address,
                           what="a link to confirm your request",
                           minutes=portal().web.sign_in_minutes)


@blueprint.post("/c/<token>")
def confirm_request(token: str) -> Any:
    """The mailed link of a request typed in while signed out: only now is it logged."""
    row = pending(CONFIRM, token)
    draft: dict[str, Any] = row.payload or {}
    store = portal().core.store
    files = [Upload(f["filename"], f["content_type"], store.get(f["sha256"]))
             for f in draft.get("files", ())]
    # Logged first, the link used up after: a request that could not be filed (the database
    # away, a stored file unreadable) is not lost with its link. Intake's key on the nonce
    # makes a second press of the button meanwhile the same ticket, not another.
    result = submit(row.address, draft.get("subject", ""), draft.get("text", ""), files,
                    name=draft.get("name", ""), key=f"confirm/{row.nonce}")
    if result.ticket is not None:
        use_once(row)
    guard.start_session(portal().links, row.address, ticket=result.ticket or 0)
    return after_submit(result, None, "Your request was logged.")


# --- shared steps --------------------------------------------------------------------------

def submit(address: str, subject: str, text: str, files: list[Upload], *, name: str = "",
           key: str | None = None) -> Any:
    core = portal().core
    raw = portal_mail(sender=address, name=name, desk_address=core.settings.desk.address,
                      subject=subject, text=text, files=files)
    if key is None:
        # The form's nonce with what was written: the same form sent twice counts once, but
        # a form sent again with other words (back, edit, send) is a note of its own.
        nonce = request.form.get("nonce", "")[:64] or portal().links.new_nonce()
        written = hashlib.sha256("\x00".join(
            [subject, text, *(f"{f.filename}:{hashlib.sha256(f.data).hexdigest()}"
                              for f in files)]).encode("utf-8", "surrogatepass")).hexdigest()
        key = f"{address}/{nonce}/{written[:32]}"
    return hand_in(core.pipeline, key, raw)


def after_submit(result: Any, number: int | None, done: str) -> Any:
    """Where a submission lands: its ticket's page (a new linked ticket's, when intake made
    one), with a line saying what happened."""
    if result.outcome is IntakeOutcome.QUARANTINED or result.ticket is None:
        return error_page(500, title="We could not file this", text=(
            "It was kept for the desk's admin, who will look at it. You do not need to send "
            "it again."))
    guard.see_also(result.ticket)
    portal().wake()
    if result.outcome is IntakeOutcome.DUPLICATE:
        done = "This was sent already; it is on the ticket once."
    elif number is not None and result.ticket != number:
        done = (f"Ticket #{number} cannot be reopened any more, so your note was logged as a "
                f"new ticket, #{result.ticket}, linked to it.")
    elif number is None:
        done = f"{done} It is ticket #{result.ticket}; a confirmation is on its way by mail."
    if done:
        flash(done)
    return redirect(url_for("pages.ticket_page", number=result.ticket), 303)


def uploads() -> list[Upload]:
    """The form's files, within the intake limits; 413 with the reason otherwise."""
    limits = portal().settings.limits
    given = [f for f in request.files.getlist("files") if f and f.filename]
    if len(given) > limits.max_attachments:
        raise RequestEntityTooLarge(f"upload: at most {limits.max_attachments} files at once; "
                                    f"this had {len(given)}. Nothing was changed.")
    files = []
    for given_file in given:
        data = given_file.read(limits.max_attachment_bytes + 1)
        if len(data) > limits.max_attachment_bytes:
            raise RequestEntityTooLarge(
                f"upload: {given_file.filename} is over the "
                f"{limits.max_attachment_bytes // (1024 * 1024)} MB limit for one file. "
                "Nothing was changed.")
        files.append(Upload((given_file.filename or "attachment")[:200],
                            given_file.mimetype or "application/octet-stream", data))
    return files


def mail_link(kind: str, address: str, *, payload: dict | None = None, subject: str = "") -> None:
    """Keep a waiting sign-in (or request) and mail its link, within this client's limit."""
    limited()
    links = portal().links
    nonce = links.new_nonce()
    with transaction(links.db):
        PortalRequest.create(kind="sign_in" if kind == "sign_in" else "new_request",
                             nonce=nonce, address=address, client=_client(), payload=payload,
                             created_at=portal().core.desk.clock())
        link = links.nonce_link(SIGN_IN if kind == "sign_in" else CONFIRM, nonce, address)
        portal().core.mailer.queue(
            kind, None, to=[Recipient("", address)], auto_reply=True,
            context={"link": link, "minutes": portal().web.sign_in_minutes, "ticket": None,
                     "subject": subject})
    portal().wake()


def limited() -> None:
    """429 once this client asked for web.requests_per_client_per_hour links in the hour."""
    since = portal().core.desk.clock() - timedelta(hours=1)
    with reading(portal().links.db):
        recent = (PortalRequest.select(peewee.fn.COUNT(PortalRequest.id))
                  .where(PortalRequest.client == _client(), PortalRequest.created_at >= since)
                  .scalar())
    if recent >= portal().web.requests_per_client_per_hour:
        stop(429)


def _count_request(kind: str, address: str) -> None:
    PortalRequest.create(kind=kind, nonce=portal().links.new_nonce(), address=address,
                         client=_client(), used_at=portal().core.desk.clock(),
                         created_at=portal().core.desk.clock())


def use_once(row: PortalRequest) -> bool:
    """Mark a waiting sign-in or request used; False when another request used it first."""
    with transaction(portal().links.db):
        used = (PortalRequest.update(used_at=portal().core.desk.clock())
                .where(PortalRequest.id == row.id, PortalRequest.used_at.is_null()).execute())
    return used == 1


def _client() -> str:
    return (request.remote_addr or "")[:64]


def _prefix() -> str:
    return portal().settings.desk.ticket_prefix


def _text(name: str) -> str:
    return request.form.get(name, "").replace("\r\n", "\n").strip()[:_TEXT_LIMIT]

