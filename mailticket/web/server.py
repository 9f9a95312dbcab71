"""Serving the portal inside ``mailticket run``: waitress (a production WSGI server, pure
Python) on ``web.listen`` in a thread of the daemon, sharing its database and waking its sender
when a page queued mail. Waitress answers requests from its own thread pool, so a slow page
never holds up intake, which runs in other threads on other connections."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from waitress.server import create_server

from mailticket.web.app import make_app
from mailticket.wiring import App

log = logging.getLogger(__name__)


class PortalServer:
    def __init__(self, core: App, *, wake: Callable[[], None]):
        web = core.settings.web
        assert web is not None
        self.web = web
        self.app = make_app(core, wake=wake)
        # ident: no "Server: waitress" header; the request line is never logged by waitress.
        self.server = create_server(self.app, host=web.host, port=web.port, threads=web.threads,
                                    ident="", clear_untrusted_proxy_headers=True,
                                    channel_timeout=60)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.effective_port

    def start(self) -> None:
        self.thread = threading.Thread(target=self._serve, name="portal", daemon=True)
        self.thread.start()
        log.info("portal on %s (links point to %s)", self.label, self.web.base_url)

    @property
    def label(self) -> str:
        host = self.web.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            pass  # closed by stop()

    def stop(self) -> None:
        self.server.close()
        if self.thread is not None:
            self.thread.join(timeout=10)
