"""Naming a process "host/pid/start" so that another can tell whether it still runs (a claim
of a dead sender is handed back at once instead of when its lease runs out).
"""

from __future__ import annotations

import os
import socket


def process_identity(pid: int | None = None) -> str:
    """"host/pid/start" of a process: the start time (clock ticks since boot, from /proc) tells
    a reused pid apart; without /proc it is left empty."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or ''}"


def process_alive(owner: str) -> bool:
    """Whether the process named by ``process_identity`` still runs on this host (True when in
    doubt: its claim then waits for the lease, as before)."""
    host, _, rest = owner.partition("/")
    pid_text, _, start = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user
    return not start or _start_ticks(pid) == start


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None
