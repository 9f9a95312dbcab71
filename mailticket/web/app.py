"""The portal's Flask application: built around a wired ``App`` (the daemon's own, or one of
its own for a WSGI server), with the pages' templates (overridable: ``web/`` in the templates
folder of the config), the security headers, the CSRF check and a page for every error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jinja2
from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from mailticket.web import actions, guard, pages
from mailticket.web.context import (
    CSRF_PROBLEM,
    ERRORS,
    Portal,
    error_page,
    outages,
    template_dirs,
)
from mailticket.wiring import App

log = logging.getLogger(__name__)

def make_app(core: App, *, wake: Callable[[], None] | None = None) -> Flask:
    """The portal for ``core`` (whose settings have a ``web`` section)."""
    web = core.settings.web
    links = core.links
    if web is None or links is None:
        raise ValueError("the portal needs a web section in the config")
    app = Flask("mailticket.web", static_folder=None, template_folder=None)
    app.jinja_loader = jinja2.FileSystemLoader([str(d) for d in template_dirs(core.settings)])
    app.jinja_env.autoescape = True  # every page is HTML (the names end in .j2, not .html)
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.config.update(
        SECRET_KEY=links.derived_key("session cookie"),
        SESSION_COOKIE_NAME="mailticket_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # Strict would drop the cookie after a link in webmail
        SESSION_COOKIE_SECURE=web.secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=web.session_hours),
        # The lifetime counts from signing in, not from the last page: the cookie is only
        # written when the session changes (and no page pays for signing it again).
        SESSION_REFRESH_EACH_REQUEST=False,
        # A submission is a mail: the intake limit bounds it (plus the form's own fields).
        MAX_CONTENT_LENGTH=core.settings.limits.max_message_bytes + 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["mailticket"] = Portal(core, links, wake or (lambda: None))
    app.jinja_env.globals.update(csrf_token=guard.csrf_token, desk=core.settings.desk,
                                 outages=outages)
    app.jinja_env.filters["size"] = _size
    if web.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=web.trusted_proxies,
                                x_proto=web.trusted_proxies, x_host=0)
    app.before_request(guard.check_csrf)
    app.after_request(guard.secure_headers)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(actions.blueprint)
    app.register_error_handler(HTTPException, _error_page)
    app.register_error_handler(Exception, _failure_page)
    return app


def _error_page(exc: HTTPException) -> Any:
    if exc.response is not None:  # stop(error_page(...)): the page is made already
        return exc.response
    status = exc.code or 500
    if status == 400 and exc.description == "csrf":
        title, text = CSRF_PROBLEM
        return error_page(400, title=title, text=text)
    if status in ERRORS:
        ours = status == 413 and exc.description and exc.description.startswith("upload:")
        response = error_page(status, text=exc.description[7:].strip() if ours else None,
                              sign_in=status in (403, 404, 410))
        allowed = getattr(exc, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response
    return exc


def _failure_page(exc: Exception) -> Any:
    from mailticket.errors import TemporaryFailure

    if isinstance(exc, TemporaryFailure):
        log.error("portal: could not record a submission: %s", exc)
        return error_page(503)
    log.exception("portal: a request failed")
    return error_page(500)


def _size(value: int) -> str:
    if value >= 1024 * 1024:
        return f"{value / 1024 / 1024:.1f} MB"
    if value >= 1024:
        return f"{value / 1024:.0f} KB"
    return f"{value} bytes"
