"""A real Dovecot IMAP server on loopback for the integration tests (a pytest plugin).

Fixtures:
- ``dovecot`` (session): Dovecot with its default capabilities (IDLE, MOVE, UIDPLUS...), plaintext
  IMAP on ``host:port`` and, when ``openssl`` is available, TLS (STARTTLS on the same port, implicit
  TLS on ``tls_port``, certificate authority in ``ca_file``).
- ``dovecot_nomove`` (session): the same without MOVE and IDLE in its capability list, for the
  COPY + \\Deleted + EXPUNGE fallback and for polling.
- ``fresh_mailbox`` (function): empties every folder of every user on ``dovecot`` (starting it
  again if a test left it stopped), then returns ``dovecot``.

Users are ``desk``, ``desk2`` and ``robot``, password ``secret``. The config, certificate and
``dovecot.log`` (the first place to look when a test fails) live in a ``tmp_path_factory``
directory. What Dovecot's unprivileged processes must reach (base_dir, the users file, the
maildirs) lives in a ``/tmp/mailticket-dovecot-*`` directory removed at the end: pytest keeps its
own directories 0700 and resets that at every session start, so they cannot be relied on.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from imapclient import IMAPClient

from tests.servers import unavailable

DOVECOT_BIN = Path("/usr/sbin/dovecot")
INSTALL_HINT = "dovecot-imapd is not installed: run scripts/install-test-deps"
USERS = ("desk", "desk2", "robot")
PASSWORD = "secret"

# Dovecot 2.3's default capability list without MOVE and IDLE. `imap_capability = +X` can only
# add, so dropping one means spelling out the rest.
CAPABILITY_WITHOUT_MOVE_AND_IDLE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mail_identity() -> tuple[int, int, str, str]:
    """The uid/gid (and names) Dovecot runs mail and internal processes as.

    As root: the ``dovecot`` system user (Dovecot refuses uid 0 for mail). Otherwise: ourselves,
    since an unprivileged Dovecot cannot switch users.
    """
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam("dovecot")
        except KeyError:
            entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid, entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    uid, gid = os.getuid(), os.getgid()
    return uid, gid, pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name


def _make_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 (it is its own CA), or None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True)
    if result.returncode != 0:
        return None
    return cert, key


class Dovecot:
    """One Dovecot instance under ``root``; stop() and start() keep its port and its mail."""

    host = "127.0.0.1"

    def __init__(self, root: Path, *, capability: str | None = None, tls: bool = True):
        self.root = root
        self.data = Path(tempfile.mkdtemp(prefix="mailticket-dovecot-"))
        self.port = free_port()
        self.tls_port: int | None = None
        self.ca_file: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / "dovecot.log"
        self.uid, self.gid, user_name, group_name = _mail_identity()
        self._write_config(capability, user_name, group_name, tls)

    # --- the server ----------------------------------------------------------------------------

    def _write_config(self, capability: str | None, user_name: str, group_name: str,
                      tls: bool) -> None:
        root, data = self.root, self.data
        unprivileged = os.geteuid() != 0
        os.chmod(data, 0o711)  # traversable, not listable
        for name in ("run", "state", "mail"):
            (data / name).mkdir()
        users = data / "users"
        users.write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in USERS))
        os.chmod(users, 0o640)
        if not unprivileged:
            os.chown(users, 0, self.gid)
            os.chown(data / "mail", self.uid, self.gid)
        os.chmod(data / "mail", 0o700)
        certificate = _make_certificate(root) if tls else None
        lines = [
            f"base_dir = {data}/run",
            f"state_dir = {data}/state",
            f"instance_name = mailticket-test-{self.port}",
            f"log_path = {self.log_path}",
            "protocols = imap",
            f"listen = {self.host}",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "auth_failure_delay = 0",  # see anvil-auth-penalty below
            f"default_internal_user = {user_name}",
            f"default_internal_group = {group_name}",
            f"default_login_user = {user_name}",
            f"first_valid_uid = {self.uid}",
            f"last_valid_uid = {self.uid}",
            f"first_valid_gid = {self.gid}",
            "mail_location = maildir:~/Maildir",
            # inotify normally wakes IDLE at once; this bounds the wait if it is unavailable.
            "mailbox_idle_check_interval = 1 secs",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%n {users}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={self.uid} gid={self.gid} home={data}/mail/%n",
            "}",
            "protocol imap {",
            "  mail_max_userip_connections = 100",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            f"    address = {self.host}",
            f"    port = {self.port}",
            "  }",
        ]
        if certificate is not None:
            self.tls_port = free_port()
            self.ca_file = certificate[0]
            lines += [
                "  inet_listener imaps {",
                f"    address = {self.host}",
                f"    port = {self.tls_port}",
                "    ssl = yes",
                "  }",
            ]
        else:
            lines += ["  inet_listener imaps {", "    port = 0", "  }"]
        if unprivileged:
            # An unprivileged master cannot chroot or change users.
            lines += ["  chroot ="]
        lines += ["}"]
        # Dovecot slows every login from an IP after a failed one (2 s, doubling to 15 s): with no
        # socket to reach anvil's penalty service, the auth process skips it.
        lines += ["service anvil {", "  unix_listener anvil-auth-penalty {", "    mode = 0", "  }"]
        lines += ["  chroot =", "}"] if unprivileged else ["}"]
        if unprivileged:
            for service in ("ipc", "old-stats", "pop3-login", "submission-login",
                            "imap-urlauth-login"):
                lines += [f"service {service} {{", "  chroot =", "}"]
        if certificate is not None:
            os.chmod(certificate[1], 0o600)
            lines += ["ssl = yes", f"ssl_cert = <{certificate[0]}", f"ssl_key = <{certificate[1]}"]
        else:
            lines += ["ssl = no"]
        if capability is not None:
            lines += [f"imap_capability = {capability}"]
        self.config_path = root / "dovecot.conf"
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server (if it is not running) and wait until it greets on its port."""
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(DOVECOT_BIN), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with status {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dovecot did not start listening in time:\n" + self.log_tail())
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; its clients are disconnected. Mail and port are kept for start()."""
        if self.process is None:
            return
        # The whole process group: the master alone lets an IDLE session linger for 10 s.
        group = self.process.pid
        if self.process.poll() is None:
            _signal_group(group, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(group, signal.SIGKILL)
                self.process.wait()
        _signal_group(group, signal.SIGKILL)  # any straggler still holding the port
        self.process = None

    def remove(self) -> None:
        """Stop and delete the mail (the config and log stay for pytest's usual retention)."""
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- helpers for tests -----------------------------------------------------------------------

    def user(self, name: str) -> tuple[str, str]:
        """(username, password) of a configured user."""
        if name not in USERS:
            raise KeyError(f"no such test user {name!r} (have {', '.join(USERS)})")
        return name, PASSWORD

    @contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """A logged-in IMAPClient for ``user``, logged out afterwards."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            client.login(*self.user(user))
            yield client
        finally:
            try:
                client.logout()
            except Exception:
                client.shutdown()

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> int:
        """Append a message; returns its UID."""
        with self.client(user) as c:
            response = c.append(folder, raw)
        match = _APPENDUID.search(response if isinstance(response, bytes) else response.encode())
        assert match, f"no APPENDUID in {response!r}"
        return int(match.group(2))

    def append_many(self, user: str, raws: list[bytes], folder: str = "INBOX") -> None:
        """Append several messages in one MULTIAPPEND (RFC 3502): they appear all at once, so a
        client that is idling sees them together."""
        with self.client(user) as c:
            c.multiappend(folder, raws)

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)

    def delete_folder(self, user: str, folder: str) -> None:
        with self.client(user) as c:
            c.delete_folder(folder)

    def folders(self, user: str) -> list[str]:
        with self.client(user) as c:
            return sorted(name for _flags, _sep, name in c.list_folders())

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as c:
            return int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def folder_uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """UIDs in ``folder`` (not counting messages flagged \\Deleted); [] if it does not exist."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            return sorted(c.search(["NOT", "DELETED"]))

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw bytes of every message in ``folder``, in UID order, without setting \\Seen."""
        return [raw for _uid, raw, _flags in self.fetch_messages(user, folder)]

    def fetch_messages(self, user: str, folder: str = "INBOX") -> list[tuple[int, bytes, tuple]]:
        """(uid, raw bytes, flags) of every message in ``folder``, in UID order."""
        with self.client(user) as c:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            data = c.fetch(c.search("ALL"), ["BODY.PEEK[]", "FLAGS"])
        return [(uid, data[uid][b"BODY[]"], data[uid][b"FLAGS"]) for uid in sorted(data)]

    def empty(self, user: str) -> None:
        """Delete every folder but INBOX and every message in INBOX."""
        with self.client(user) as c:
            names = [name for _flags, _sep, name in c.list_folders()]
            for name in sorted(names, key=len, reverse=True):  # children before parents
                if name.upper() != "INBOX":
                    c.delete_folder(name)
            c.select_folder("INBOX")
            uids = c.search("ALL")
            if uids:
                c.add_flags(uids, [b"\\Deleted"], silent=True)
                c.expunge()
            c.unselect_folder()

    def empty_all(self) -> None:
        for user in USERS:
            self.empty(user)

    # --- faults, for the outage tests ------------------------------------------------------------

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection ``imap`` processes (one per logged-in client)."""
        if not self.running:
            return []
        group = self.process.pid
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the ")".
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            if comm == "imap" and int(fields[2]) == group:
                pids.append(int(entry.name))
        return sorted(pids)

    def session_bytes_sent(self) -> int:
        """Bytes the live ``imap`` session processes have written (to their clients, mostly):
        tells a test that a client has fetched what it was waiting for."""
        total = 0
        for pid in self.session_pids():
            try:
                io = Path(f"/proc/{pid}/io").read_text()
            except OSError:
                continue
            total += int(re.search(r"^wchar: (\d+)$", io, re.M).group(1))
        return total

    def signal_sessions(self, signum: int = signal.SIGKILL) -> list[int]:
        """Send ``signum`` to every ``imap`` session process; return their PIDs. SIGKILL cuts the
        connections without a word (the process crashed); SIGSTOP makes the server hang with the
        connections open (SIGKILL them afterwards)."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        return pids

    def kick(self, user: str) -> None:
        """``doveadm kick``: the server says BYE to every connection of ``user`` and closes it."""
        subprocess.run(["doveadm", "-c", str(self.config_path), "kick", user], check=True,
                       capture_output=True, timeout=10)

    def deliver_offline(self, user: str, raw: bytes) -> None:
        """Put a message straight into ``user``'s INBOX Maildir, as a local delivery agent does
        (works while the server is stopped); it gets its UID when the server next looks."""
        maildir = self.data / "mail" / user / "Maildir"
        for directory in (maildir.parent, maildir, maildir / "tmp", maildir / "new",
                          maildir / "cur"):
            if not directory.exists():
                directory.mkdir(mode=0o700)
                if os.geteuid() == 0:
                    os.chown(directory, self.uid, self.gid)
        name = f"{time.time_ns()}.P{os.getpid()}.mailticket-test"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(raw)
        if os.geteuid() == 0:
            os.chown(tmp, self.uid, self.gid)
        os.rename(tmp, maildir / "new" / name)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _require_dovecot() -> None:
    if not DOVECOT_BIN.exists():
        unavailable(f"{DOVECOT_BIN} is missing: {INSTALL_HINT}")


@contextmanager
def _server(tmp_path_factory: pytest.TempPathFactory, name: str,
            capability: str | None = None) -> Iterator[Dovecot]:
    _require_dovecot()
    server = Dovecot(tmp_path_factory.mktemp(name), capability=capability)
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A running Dovecot with default capabilities (see the module docstring)."""
    with _server(tmp_path_factory, "dovecot") as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_nomove(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A running Dovecot that advertises neither MOVE nor IDLE (UIDPLUS is kept)."""
    with _server(tmp_path_factory, "dovecot-nomove", CAPABILITY_WITHOUT_MOVE_AND_IDLE) as server:
        yield server


@pytest.fixture
def fresh_mailbox(dovecot: Dovecot) -> Dovecot:
    """``dovecot``, running, with every user's mailbox empty."""
    dovecot.start()
    dovecot.empty_all()
    return dovecot
