"""The pages users read: the welcome and sign-in pages, following a link from mail, "My
tickets", one ticket's public timeline with its forms, downloads, and the forms for new
requests. Reads go through ``desk.public``; every page answers 404 alike for a ticket that does
not exist and for one the browser may not see."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, g, make_response, redirect, render_template, url_for

from mailticket.db import reading
from mailticket.desk import public
from mailticket.desk.core import view
from mailticket.desk.views import Reopen, reopening
from mailticket.models import PortalRequest, Ticket
from mailticket.portal.links import CONFIRM, SIGN_IN, LinkRefused
from mailticket.vocabulary import TicketStatus
from mailticket.web import guard
from mailticket.web.context import error_page, outages, portal, stop, template_dirs

blueprint = Blueprint("pages", __name__)

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def viewer() -> guard.Viewer | None:
    return guard.current_viewer(portal().links)


@blueprint.get("/")
def home() -> Any:
    if viewer() is not None:
        return redirect(url_for("pages.my_tickets"), 303)
    return render_template("home.html.j2", viewer=None)


@blueprint.get("/status")
def status() -> Any:
    """The outages, open and lately resolved, for everyone: no sign-in. Signed out, the page is
    the same for every visitor, so a shared cache may keep it a minute; signed in it names the
    viewer (and carries their sign-out form), so it stays out of caches like every page."""
    who = viewer()
    shown = outages_or_503()
    response = make_response(render_template("status.html.j2", viewer=who, shown=shown))
    if who is None:
        response.headers["Cache-Control"] = "public, max-age=60"
        response.vary.add("Cookie")
    return response


def outages_or_503() -> list[public.PublicOutage]:
    shown = outages()
    if g.outages is None:
        stop(503)
    return shown


@blueprint.get("/portal.css")
def stylesheet() -> Response:
    [css] = [d / "portal.css" for d in template_dirs(portal().settings)
             if (d / "portal.css").is_file()][:1]
    response = Response(css.read_bytes(), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.get("/sign-in")
def sign_in_form() -> Any:
    return render_template("sign_in.html.j2", viewer=viewer(), problem=None, address="")


@blueprint.get("/t/<token>")
def follow_ticket_link(token: str) -> Any:
    """A link from mail: it proves the address for one ticket; the session takes it over and
    the token leaves the address bar (and so the history) at once."""
    links = portal().links
    try:
        grant = links.ticket_grant(token)
    except LinkRefused as refused:
        return refused_page(refused, token)
    with reading(links.db):
        ticket = public.visible_ticket(grant.ticket or 0, grant.address)
    if ticket is None:
        stop(404)
    guard.start_session(links, grant.address, ticket=ticket.number)
    return redirect(url_for("pages.ticket_page", number=ticket.number), 303)


@blueprint.get("/s/<token>")
def sign_in_link(token: str) -> Any:
    """A sign-in link: a page with one button, so that a mail scanner fetching the link does
    not use it up (only the POST does)."""
    row = pending(SIGN_IN, token)
    return render_template("follow.html.j2", viewer=viewer(), kind=SIGN_IN, row=row,
                           token=token, minutes=portal().web.sign_in_minutes)


@blueprint.get("/c/<token>")
def confirm_link(token: str) -> Any:
    row = pending(CONFIRM, token)
    return render_template("follow.html.j2", viewer=viewer(), kind=CONFIRM, row=row,
                           token=token, minutes=portal().web.sign_in_minutes)


def pending(kind: str, token: str) -> PortalRequest:
    """The waiting sign-in or request a link names; an error page when there is none."""
    links = portal().links
    try:
        payload = links.read(kind, token)
    except LinkRefused as refused:
        stop(refused_page(refused, None))
    nonce = payload.get("n")
    row = PortalRequest.get_or_none(PortalRequest.nonce == nonce) if isinstance(nonce, str) \
        else None
    if row is None or row.kind != ("sign_in" if kind == SIGN_IN else "new_request"):
        stop(error_page(403, sign_in=True))
    try:
        links.check_nonce_link(payload, row.address)
    except LinkRefused as refused:
        stop(refused_page(refused, None))
    if row.used_at is not None:
        stop(error_page(410, title="This link was used already",
                         text="Each sign-in or confirmation link works once.", sign_in=True))
    return row


def refused_page(refused: LinkRefused, token: str | None) -> Any:
    """An expired or revoked link offers a new one (mailed to the address it was for); a link
    that was changed, or is none of ours, offers the sign-in form."""
    renew = token if refused.address and refused.ticket else None
    if refused.why == "expired":
        return error_page(410, renew=renew, sign_in=True)
    if refused.why == "revoked":
        return error_page(403, title="This link no longer works",
                          text="The links sent to this address before were switched off "
                               "(signed out everywhere, or by the desk).",
                          renew=renew, sign_in=True)
    return error_page(403, sign_in=True)


@blueprint.get("/tickets")
def my_tickets() -> Any:
    who = viewer()
    if who is None:
        return render_template("sign_in.html.j2", viewer=None, address="", problem=(
            "Sign in to see your tickets: we mail you a link.")), 401
    with reading(portal().links.db):
        found = public.tickets_of(who.address, None if who.everything else who.tickets)
    return render_template("tickets.html.j2", viewer=who, tickets=found)


@blueprint.get("/tickets/<int:number>")
def ticket_page(number: int) -> Any:
    return show_ticket(number)


def show_ticket(number: int, *, status: int = 200, problem: str | None = None,
                offer_linked: str | None = None, note: str = "") -> Any:
    """The ticket's page; also re-shown by a form that had a problem (``status``)."""
    who = viewer()
    ticket = visible(who, number)
    assert who is not None
    desk = portal().settings.desk
    with reading(portal().links.db):
        shown = public.timeline(ticket, who.address, desk.name)
    now = portal().core.desk.clock()
    rule, why = reopening(view(ticket), who.address, now=now,
                          window=timedelta(days=desk.reopen_window_days))
    return render_template(
        "ticket.html.j2", viewer=who, shown=shown, ticket=ticket, reopen=rule.value,
        reopen_why=why, can_close=ticket.status == TicketStatus.RESOLVED,
        closed=ticket.status == TicketStatus.CLOSED, problem=problem,
        offer_linked=offer_linked or (why if rule is Reopen.NEW_LINKED and
                                      ticket.status == TicketStatus.CLOSED else None),
        note=note, nonce=portal().links.new_nonce(), limits=portal().settings.limits,
    ), status


def visible(who: guard.Viewer | None, number: int) -> Ticket:
    """The ticket, if this browser may see it; 404 otherwise (the same for every reason)."""
    if who is None or not who.may_see(number):
        stop(404)
    with reading(portal().links.db):
        ticket = public.visible_ticket(number, who.address)
    if ticket is None:
        stop(404)
    return ticket


@blueprint.get("/tickets/<int:number>/files/<int:file_id>")
def download(number: int, file_id: int) -> Response:
    """A public attachment, always as a download with its stored type (or octet-stream when
    that is no plain media type), nosniff and a sandboxing CSP: nothing uploaded renders."""
    ticket = visible(viewer(), number)
    with reading(portal().links.db):
        row = public.public_file(ticket, file_id)
    if row is None:
        stop(404)
    data = portal().core.store.get(row.sha256)
    media = (row.content_type or "").lower().split(";")[0].strip()
    response = Response(data, mimetype=media if _MEDIA_TYPE.fullmatch(media)
                        else "application/octet-stream")
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", row.filename or "attachment")[:100] or "attachment"
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(row.filename or fallback)}")
    response.headers["Content-Security-Policy"] = guard.DOWNLOAD_CSP
    response.headers["Cache-Control"] = "private, no-store"
    return response


# The new-request form's fields: the page starts with them empty, a problem re-shows them.
NEW_REQUEST_FIELDS = ("address", "name", "subject", "text")


@blueprint.get("/new")
def new_request_form() -> Any:
    return render_template("new.html.j2", viewer=viewer(), problem=None,
                           form=dict.fromkeys(NEW_REQUEST_FIELDS, ""),
                           nonce=portal().links.new_nonce(), limits=portal().settings.limits)
