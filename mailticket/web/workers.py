"""The portal's processes beside ``mailticket run`` (``web.workers``): each is ``mailticket
portal serve`` on the same config, sharing ``web.listen``. One that dies is started again
(after a pause that grows while they keep dying); stopping the daemon stops them."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from mailticket import backoff
from mailticket.config import Web

log = logging.getLogger(__name__)


class PortalWorkers:
    def __init__(self, config: Path, web: Web, count: int):
        self.config = config
        self.web = web
        self.count = count
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.stopping = threading.Event()
        self.watcher: threading.Thread | None = None

    @property
    def label(self) -> str:
        host = self.web.host
        return (f"http://{f'[{host}]' if ':' in host else host}:{self.web.port} "
                f"({self.count} processes)")

    def start(self, timeout: float = 30.0) -> None:
        for i in range(self.count):
            self.processes[i] = self._spawn()
        self._wait_listening(timeout)
        self.watcher = threading.Thread(target=self._watch, name="portal workers", daemon=True)
        self.watcher.start()
        log.info("portal on %s (links point to %s)", self.label, self.web.base_url)

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "mailticket", "--config",
                                 str(self.config), "portal", "serve"], stdin=subprocess.DEVNULL)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p is not None and p.poll() is not None for p in self.processes):
                raise RuntimeError("a portal process exited at start (see its log lines above)")
            try:
                with socket.create_connection((self.web.host, self.web.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the portal did not listen on {self.label} within {timeout:g} s")

    def _watch(self) -> None:
        restarts = 0
        while not self.stopping.wait(1.0):
            for i, process in enumerate(self.processes):
                if process is None or process.poll() is None:
                    continue
                log.error("portal process %d exited with %s; starting it again", process.pid,
                          process.returncode)
                if self.stopping.wait(backoff.delay(restarts, 1.0, 60.0)):
                    return
                restarts += 1
                self.processes[i] = self._spawn()

    def stop(self) -> None:
        self.stopping.set()
        running = [p for p in self.processes if p is not None and p.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.watcher is not None:
            self.watcher.join(timeout=5)
