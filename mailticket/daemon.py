"""The long-running process: wires the sources, the pipeline and the sender; stops cleanly.

Each IMAP mailbox is read by its own thread, the SMTP/LMTP intake runs in aiosmtpd's thread, and
one sender thread drains the outbox, woken whenever a commit queued mail, APScheduler runs
the desk's timed jobs (SLA checks, auto-close), and waitress serves the portal (``web``). SIGTERM or SIGINT:
intake stops taking new mail, each source finishes the batch in hand, the sender delivers what
it can, then the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from mailticket.config import Settings
from mailticket.intake.imap import ImapSource
from mailticket.intake.smtp import SmtpIntakeServer
from mailticket.sender import Sender
from mailticket.transport import make_transport
from mailticket.web.server import PortalServer
from mailticket.web.workers import PortalWorkers
from mailticket.wiring import build

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop_event = threading.Event()     # set by a signal: stop taking mail in
        self.sender_stop = threading.Event()    # set once intake has stopped
        self.wake_sender = threading.Event()
        self.app = build(settings, after_commit=self.wake_sender.set)
        self.source_threads: list[threading.Thread] = []
        self.sender_thread: threading.Thread | None = None
        self.smtp_server: SmtpIntakeServer | None = None
        self.portal: PortalServer | PortalWorkers | None = None
        self.scheduler = None  # APScheduler's BackgroundScheduler, once started
        self.healthy = True  # False once a part of the daemon died: the exit status says so

    def start(self) -> None:
        settings = self.settings
        transport = make_transport(settings.outgoing)
        sender = Sender(self.app.db, transport, settings.outgoing)
        self.sender_thread = self._thread(
            "sender", lambda: sender.run(self.sender_stop, self.wake_sender))
        for mailbox in settings.intake.imap:
            source = ImapSource(mailbox, self.app.pipeline,
                                max_message_bytes=settings.limits.max_message_bytes)
            self.source_threads.append(
                self._thread(f"imap {mailbox.label}", partial(source.run, self.stop_event)))
        if settings.intake.smtp is not None:
            self.smtp_server = SmtpIntakeServer(settings.intake.smtp, self.app.pipeline,
                                                settings.limits.max_message_bytes)
            self.smtp_server.start()
        self._start_scheduler()
        if settings.web is not None and settings.web.workers:
            self.portal = PortalWorkers(settings.path, settings.web, settings.web.workers)
            self.portal.start()
        elif settings.web is not None:
            self.portal = PortalServer(self.app, wake=self.wake_sender.set)
            self.portal.start()
        where = [m.label for m in settings.intake.imap]
        if settings.intake.smtp is not None:
            where.append(settings.intake.smtp.label)
        out = (f"relay {settings.outgoing.smtp.host}:{settings.outgoing.smtp.port}"
               if settings.outgoing.smtp else f"maildir {settings.outgoing.maildir}")
        web = f"; portal {self.portal.label}" if self.portal is not None else ""
        log.info("mailticket running: intake %s; outgoing mail to %s%s", ", ".join(where), out, web)

    def _start_scheduler(self) -> None:
        """The desk's timed jobs (desk/jobs.py) in APScheduler's background thread: one at a
        time, a missed run coalesced into one, none run twice at once."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from mailticket.jobs import JOBS, run_job
        from mailticket.models import utcnow

        def run(name: str) -> None:
            try:
                run_job(name, self.app.desk, self.app.db, utcnow())
            except Exception:  # noqa: BLE001 - the next run tries again; the daemon carries on
                log.exception("job %s failed; it runs again at its next time", name)
            self.wake_sender.set()

        scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(1)},
                                        job_defaults={"coalesce": True, "max_instances": 1,
                                                      "misfire_grace_time": 3600},
                                        timezone="UTC")
        for job in JOBS.values():
            scheduler.add_job(run, "interval", seconds=job.every_seconds, args=[job.name],
                              id=job.name, name=job.name, next_run_time=datetime.now(UTC))
        scheduler.start()
        self.scheduler = scheduler

    def _thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except Exception:  # noqa: BLE001 - a dead thread must stop the daemon loudly
                log.exception("thread %s died; stopping", name)
                self.healthy = False
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Intake first (each source finishes the batch in hand), then the sender, so that the
        mail those last messages caused is delivered too when the relay takes it."""
        log.info("stopping: finishing the messages in hand")
        self.stop_event.set()
        if self.portal is not None:
            self.portal.stop()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        if self.smtp_server is not None:
            self.smtp_server.stop()
        threads = list(self.source_threads)
        for thread in threads:
            thread.join(timeout=60)
        self.sender_stop.set()
        self.wake_sender.set()
        if self.sender_thread is not None:
            self.sender_thread.join(timeout=60)
            threads.append(self.sender_thread)
        for thread in threads:
            if thread.is_alive():
                log.warning("thread %s did not stop within 60 s", thread.name)
        self.app.close()
        log.info("stopped")

    def run_forever(self) -> bool:
        """Run until a signal (or a dead part) stops the daemon; True when it ended cleanly."""
        def on_signal(signum: int, _frame: object) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            self.start()
            while not self.stop_event.wait(1.0):
                pass
        finally:
            self.stop()
        return self.healthy
