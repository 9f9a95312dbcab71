"""What the portal's views share: the ``Portal`` (the wired app, the links, the sender's wake-up)
of the current Flask app, the outages every page shows, and the error pages every view can end
with."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from flask import Response, abort, current_app, g, make_response, render_template

from mailticket.config import Settings, Web
from mailticket.db import reading
from mailticket.desk import public
from mailticket.errors import TemporaryFailure
from mailticket.mail.compose import shipped_templates
from mailticket.portal.links import Links
from mailticket.wiring import App

log = logging.getLogger(__name__)

# What each error page says; the status is the HTTP one.
ERRORS = {
    400: ("Something in the form was wrong", "Nothing was changed. Go back, reload the page and "
          "try again."),
    403: ("This link does not work", "It is not a link we made, or it was changed on the way."),
    404: ("Nothing here", "There is no such page, or no ticket of yours with this number."),
    405: ("Not like this", "This page cannot be used that way. Use the forms on the pages."),
    410: ("This link has expired", "Links in our mail work for a limited time."),
    413: ("Too much at once", "The files are too many or too large for the desk."),
    429: ("Too many requests", "Too many links were asked for from your network in the last "
          "hour. Try again later, or use the link in the newest mail from the desk."),
    500: ("Something went wrong on our side", "Nothing you did caused it. Try again in a "
          "minute; the desk's admin has been told in the log."),
    503: ("The desk cannot take this right now", "Nothing was changed. Try again in a minute."),
}
CSRF_PROBLEM = ("This form had expired or did not come from our pages", "Nothing was changed. "
                "Reload the page and send the form again.")


@dataclass
class Portal:
    """What the views use: the wired app (database, desk, pipeline, store), the links, and a
    callback that wakes the sender after a change queued mail."""

    core: App
    links: Links
    wake: Callable[[], None]

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def web(self) -> Web:
        assert self.core.settings.web is not None
        return self.core.settings.web


def portal() -> Portal:
    return current_app.extensions["mailticket"]


def outages() -> list[public.PublicOutage]:
    """The outages this request's pages show (the banner, the status page): read once per
    request, by the desk's clock. When the database cannot be read the banner is left out, so
    that the page saying so (503) still renders; the status page itself answers 503."""
    if "outages" not in g:
        try:
            with reading(portal().links.db):
                g.outages = public.outages(portal().core.desk.clock())
        except TemporaryFailure as exc:
            log.warning("portal: outages not shown: %s", exc)
            g.outages = None
    return g.outages or []


def stop(answer: int | Response) -> NoReturn:
    """End the request here with an error status (its page) or a ready error page."""
    abort(answer)
    raise AssertionError("abort returned")  # flask's abort always raises


def error_page(status: int, *, title: str | None = None, text: str | None = None,
               **context: Any) -> Response:
    """The page for an error ``status``: what happened, and what the user can do next."""
    default_title, default_text = ERRORS.get(status, ERRORS[500])
    context = {"renew": None, "sign_in": False, "viewer": None, **context}
    return make_response(render_template("error.html.j2", status=status,
                                         title=title or default_title,
                                         text=text or default_text, **context), status)


def template_dirs(settings: Settings) -> list[Path]:
    """Where the pages' templates and stylesheet are looked for: ``web/`` in the config's
    templates folder first (an admin's overrides), then the shipped ones."""
    shipped = shipped_templates() / "web"
    return [settings.templates / "web", shipped] if settings.templates else [shipped]


PAGES = ("base", "home", "sign_in", "sent", "follow", "tickets", "ticket", "new", "error",
         "status")


def check_pages(settings: Settings) -> None:
    """Every page template found and compiled (``check-config``): an admin's override with a
    syntax error fails here, not on a user's screen. ConfigError names each problem."""
    import jinja2

    from mailticket.errors import ConfigError

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        [str(d) for d in template_dirs(settings)]), autoescape=True)
    env.filters["size"] = str  # the app's own filters: compiling only needs their names
    problems = []
    for page in PAGES:
        name = f"{page}.html.j2"
        try:
            env.get_template(name)
        except jinja2.TemplateNotFound:
            problems.append(f"templates: web/{name} not found")
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"templates: web/{name}, line {exc.lineno}: {exc.message}")
    if not any((d / "portal.css").is_file() for d in template_dirs(settings)):
        problems.append("templates: web/portal.css not found")
    if problems:
        raise ConfigError(problems)
