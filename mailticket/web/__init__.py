"""The self-service portal: users see their tickets' public timeline, add notes, reopen or close
them and submit new requests, through links mailed to them (no passwords).

``mailticket run`` serves it beside intake (``server``); ``create_app(CONFIG)`` is the same
portal as a WSGI application for gunicorn or another WSGI server, e.g.
``gunicorn -w 4 -b 127.0.0.1:8080 'mailticket.web:create_app("/etc/mailticket/mailticket.yaml")'``
behind nginx (the daemon, running elsewhere, delivers the mail the portal queues).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def create_app(config_path: str | Path | None = None) -> Flask:
    """The portal as a WSGI app, with its own connection to the desk's database: the config
    file is ``config_path``, else ``$MAILTICKET_CONFIG``, else config/mailticket.yaml."""
    from mailticket.config import load
    from mailticket.web.app import make_app
    from mailticket.wiring import build

    # Logging is the WSGI server's (gunicorn's error log); keep its access log off, or make
    # it leave out the paths /t/, /s/ and /c/, which carry tokens (README: "The portal").
    return make_app(build(load(config_path)))
