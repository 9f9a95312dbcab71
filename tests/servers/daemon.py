"""The mailticket daemon as a real child process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.servers import wait_until  # noqa: F401 - re-exported for the tests and benchmarks

REPO = Path(__file__).resolve().parents[2]


class DaemonProcess:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None):
        self.config = config
        self.log = log
        self.env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "DaemonProcess":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailticket", "--config", str(self.config), "run"],
            stdout=handle, stderr=subprocess.STDOUT, cwd=self.config.parent, env=self.env)
        handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "mailticket running" in self.log_text():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not start within {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the mailticket command line against the same config."""
        env = dict(self.env, MAILTICKET_AGENT="ada")
        done = subprocess.run(
            [sys.executable, "-m", "mailticket", "--config", str(self.config), *args],
            capture_output=True, text=True, cwd=self.config.parent, env=env, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"mailticket {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args, "--json").stdout)
