"""Serving the portal with waitress (a production WSGI server, pure Python): in a thread of
``mailticket run`` (``web.workers: 0``), sharing its database and waking its sender when a page
queued mail; or as processes of their own (``mailticket portal serve``, which ``mailticket run``
starts ``web.workers`` of), sharing ``web.listen`` through SO_REUSEPORT so that pages use other
cores than intake. Waitress never logs request lines, which carry tokens."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable

from waitress import wasyncore
from waitress.server import create_server

from mailticket.web.app import make_app
from mailticket.wiring import App

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """A bound socket for ``host:port``; ``shared``: other processes may bind it too (the
    kernel spreads connections among them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class PortalServer:
    def __init__(self, core: App, *, wake: Callable[[], None], shared: bool = False):
        web = core.settings.web
        assert web is not None
        self.web = web
        self.app = make_app(core, wake=wake)
        # What waitress's loop watches: the listening socket, its wake-up pipe, and every
        # open connection (kept here, so that stop() can close them all).
        self.connections: dict[int, wasyncore.dispatcher] = {}
        # ident: no "Server: waitress" header.
        self.server = create_server(
            self.app, map=self.connections,
            sockets=[listening_socket(web.host, web.port, shared=shared)],
            threads=web.threads, ident="", clear_untrusted_proxy_headers=True,
            channel_timeout=60, backlog=1024)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.effective_port

    @property
    def label(self) -> str:
        host = self.web.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        self.thread = threading.Thread(target=self._serve, name="portal", daemon=True)
        self.thread.start()
        log.info("portal on %s (links point to %s)", self.label, self.web.base_url)

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            pass  # closed by stop()

    def stop(self) -> None:
        """Requests under way are finished (for a few seconds at most), then every connection
        is closed: one a browser keeps open between pages would otherwise still be answered,
        and waited for, until waitress's channel_timeout."""
        self.server.task_dispatcher.shutdown()
        if self.thread is not None and self.thread.is_alive():
            # Closed in the loop's own thread, which then ends (nothing left to watch).
            try:
                self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.connections))
            except OSError:  # its wake-up pipe is closed already: the loop is ending
                wasyncore.close_all(self.connections, ignore_all=True)
            self.thread.join(timeout=10)
        else:
            wasyncore.close_all(self.connections)


def serve(core: App) -> None:
    """``mailticket portal serve``: the portal alone, until SIGTERM or SIGINT. The mail it
    queues is sent by a daemon on the same database (its sender looks every second)."""
    server = PortalServer(core, wake=lambda: None, shared=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    stop.wait()
    server.stop()
    log.info("portal stopped")
