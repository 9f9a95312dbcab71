#!/usr/bin/env python
"""Big-mail benchmark: peak memory and time for one message at the size limit.

Prints figures; asserts nothing. Run from the repo root::

    python bench/bigmail.py                 # both parts
    python bench/bigmail.py --skip-daemon   # (a) only

Two messages, each a short text and one base64 attachment of random bytes: one just under the
default ``limits.max_message_size`` (25 MiB), one 1 MiB over it. Over the limit, the ticket is
made from the header alone: in-process the whole bytes are in hand (and go to the store); the
IMAP source asks RFC822.SIZE first and downloads only the header, and the original is moved to
the quarantine folder.

(a) in-process: ``Pipeline.process_batch`` (parse + store + commit) on SQLite in a temp dir.
    Each case runs in a fresh child process that reads the mail from a file, so its peak RSS
    (``ru_maxrss``) is its own: once untraced (time, peak RSS, and RSS before = the mail and
    the app already in memory), then again on a fresh database under tracemalloc (peak of
    Python allocations, the mail not counted; slower). Memory the database engine allocates in
    C (SQLite copying a 25 MB blob) shows in RSS only.
(b) through the daemon: a throwaway Dovecot, an SMTP sink and the daemon as a child process,
    as bench/ingest.py starts them (tests/servers/*); the message is APPENDed to INBOX and
    timed until the acknowledgement reaches the sink (over the limit: until the original has
    left INBOX for the quarantine folder; the ack for its header-only ticket is counted). The daemon's VmHWM from /proc/PID/status, idle before and
    after. A fresh daemon and database per case, so one case's peak is not the other's.

Loopback only.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

from bench.ingest import proc_status as vm_status  # noqa: E402
from tests.helpers import make_mail, settings_for, write_config  # noqa: E402

LIMIT = 25 * 1024 * 1024           # the default limits.max_message_size
CASES = {"under": LIMIT - 64 * 1024, "over": LIMIT + 1024 * 1024}
MIB = 1024 * 1024


def big_mail(target: int, seed: int = 1) -> bytes:
    """A mail of about ``target`` bytes (never more): text and one base64 attachment."""
    def build(size: int) -> bytes:
        data = os.urandom(size) if seed is None else _pseudo_random(size, seed)
        return make_mail(subject="Scanned contract (big attachment)", body="See attached.\n",
                         attachments=[("contract-scan.tif", "image/tiff", data)])
    size = int(target / 1.37)
    raw = build(size)
    while len(raw) > target or target - len(raw) > 4096:
        size += int((target - len(raw)) / 1.37) - (64 if len(raw) > target else 0)
        raw = build(size)
    return raw


def _pseudo_random(size: int, seed: int) -> bytes:
    import random
    return random.Random(seed).randbytes(size)


# --- (a) in-process ------------------------------------------------------------------------------
def in_process(mail_file: Path) -> dict:
    """One case in this (fresh) process; prints nothing, returns the figures."""
    from mailticket.intake.items import RawMail
    from mailticket.wiring import build

    raw = mail_file.read_bytes()  # made by the parent: making it here would set the peak
    figures: dict = {"raw_bytes": len(raw)}
    for traced in (False, True):
        tmp = Path(tempfile.mkdtemp(prefix="mailticket-bigmail-"))
        try:
            app = build(settings_for(tmp, f"sqlite:///{tmp / 'mailticket.db'}"))
            item = RawMail("bench", "1", raw)
            if traced:
                tracemalloc.start()
            else:
                figures["rss_before_mib"] = vm_status(os.getpid()).get("VmRSS", 0) / 1024
            started = time.perf_counter()
            [result] = app.pipeline.process_batch([item])
            elapsed = time.perf_counter() - started
            if traced:
                figures["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / MIB
                figures["traced_s"] = elapsed
                tracemalloc.stop()
            else:
                figures["seconds"] = elapsed
                figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                figures["outcome"] = result.outcome.value
                figures["detail"] = (result.detail or "")[:60]
            app.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return figures


def part_a(mails: dict[str, bytes]) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="mailticket-bigmail-") as tmp:
        for case, raw in mails.items():
            mail_file = Path(tmp) / f"{case}.eml"
            mail_file.write_bytes(raw)
            done = subprocess.run([sys.executable, __file__, "--in-process", str(mail_file)],
                                  cwd=REPO, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"in-process case {case} failed:\n{done.stderr}")
            results[case] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


# --- (b) through the daemon ----------------------------------------------------------------------
def part_b(mails: dict[str, bytes]) -> dict[str, dict]:
    from tests.servers.daemon import DaemonProcess
    from tests.servers.dovecot import DOVECOT_BIN, Dovecot
    from tests.servers.smtpsink import SmtpSink

    if not DOVECOT_BIN.exists():
        raise RuntimeError(f"{DOVECOT_BIN} not found: part (b) needs Dovecot")
    results: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="mailticket-bigmail-"))
    dovecot = sink = daemon = None
    try:
        (tmp / "dovecot").mkdir()
        dovecot = Dovecot(tmp / "dovecot", tls=False)
        dovecot.start()
        sink = SmtpSink().start()
        for case, raw in mails.items():
            run_dir = tmp / case
            run_dir.mkdir()
            intake = (f"imap:\n    - {{host: 127.0.0.1, port: {dovecot.port}, security: none, "
                      "username: desk, password: '${DESK_IMAP_PASSWORD}', idle: true, "
                      "poll_interval: 1}")
            outgoing = (f"smtp: {{host: 127.0.0.1, port: {sink.port}, security: none}}\n"
                        "  retry: {base_seconds: 0.5, max_seconds: 2}")
            config = write_config(run_dir, f"sqlite:///{run_dir / 'mailticket.db'}",
                                  extra="logging:\n  level: INFO\n", intake=intake,
                                  outgoing=outgoing)
            dovecot.empty_all()
            sink.clear()
            daemon = DaemonProcess(config, run_dir / "daemon.log",
                                   env={"DESK_IMAP_PASSWORD": "secret"}).start()
            time.sleep(1.0)  # connected, folders made, idling
            pid = daemon.process.pid
            idle = vm_status(pid)
            started = time.monotonic()
            dovecot.append("desk", raw)
            figures: dict = {"raw_bytes": len(raw), "idle_hwm_mib": idle.get("VmHWM", 0) / 1024}
            deadline = started + 300
            if case == "under":
                while not sink.messages and time.monotonic() < deadline:
                    time.sleep(0.01)
                figures["what"] = "ack" if sink.messages else "no ack (timeout)"
            else:
                while time.monotonic() < deadline and (
                        dovecot.folder_uids("desk") or not _quarantined(dovecot)):
                    time.sleep(0.05)
                figures["what"] = "quarantined" if _quarantined(dovecot) else "timeout"
            figures["seconds"] = time.monotonic() - started
            if case == "over":
                time.sleep(1.0)
                figures["acks"] = len(sink.messages)  # 1: the ticket made from the header
            after = vm_status(pid)
            figures["hwm_mib"] = after.get("VmHWM", 0) / 1024
            figures["rss_after_mib"] = after.get("VmRSS", 0) / 1024
            daemon.stop()
            daemon = None
            results[case] = figures
    finally:
        if daemon is not None:
            try:
                daemon.stop(timeout=30)
            except Exception:  # noqa: BLE001 - clean up the rest regardless
                daemon.kill()
        if sink is not None:
            sink.stop()
        if dovecot is not None:
            dovecot.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def _quarantined(dovecot) -> bool:
    folders = [name for name in dovecot.folders("desk") if "uarantine" in name]
    return any(dovecot.folder_uids("desk", folder) for folder in folders)


# --- report --------------------------------------------------------------------------------------
def report(a: dict[str, dict], b: dict[str, dict] | None) -> None:
    print("\n(a) in-process: Pipeline.process_batch on SQLite (a fresh child process per case)")
    print(f"{'case':<7} {'raw MiB':>8} {'outcome':<12} {'time s':>7} {'RSS before':>11} "
          f"{'peak RSS':>9} {'+RSS':>7} {'tracemalloc peak':>17} {'traced s':>9}")
    for case, f in a.items():
        print(f"{case:<7} {f['raw_bytes'] / MIB:>8.2f} {f['outcome']:<12} {f['seconds']:>7.2f} "
              f"{f['rss_before_mib']:>9.0f} M {f['peak_rss_mib']:>7.0f} M "
              f"{f['peak_rss_mib'] - f['rss_before_mib']:>5.0f} M "
              f"{f['tracemalloc_peak_mib']:>15.0f} M {f['traced_s']:>9.2f}")
    if b is None:
        return
    print("\n(b) through the daemon: IMAP APPEND -> ack at the SMTP sink (VmHWM of the daemon)")
    print(f"{'case':<7} {'raw MiB':>8} {'until':<12} {'time s':>7} {'VmHWM idle':>11} "
          f"{'VmHWM after':>12} {'+HWM':>7}")
    for case, f in b.items():
        print(f"{case:<7} {f['raw_bytes'] / MIB:>8.2f} {f['what']:<12} {f['seconds']:>7.2f} "
              f"{f['idle_hwm_mib']:>9.0f} M {f['hwm_mib']:>10.0f} M "
              f"{f['hwm_mib'] - f['idle_hwm_mib']:>5.0f} M"
              + (f"   acks: {f['acks']}" if "acks" in f else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-daemon", action="store_true", help="part (a) only")
    parser.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        print(json.dumps(in_process(args.in_process)))
        return 0
    print(f"limit {LIMIT / MIB:.0f} MiB; cases: "
          + ", ".join(f"{c} {t / MIB:.2f} MiB" for c, t in CASES.items()), flush=True)
    mails = {case: big_mail(target) for case, target in CASES.items()}
    a = part_a(mails)
    b = None if args.skip_daemon else part_b(mails)
    report(a, b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
