"""The crash-safety chaos run, shared by ``bench/chaos.py`` and ``tests/test_chaos.py``.

Mail is appended to a real Dovecot INBOX while the daemon (a child process) is killed with
SIGKILL at random moments and started again; a last, clean run drains everything. Then every
message fed is looked up in the database and every acknowledgement at the SMTP sink is counted:
nothing may be lost, no request may make two tickets, every follow-up must be on the ticket it
answers. What is fed:

- new requests from distinct senders, each with a unique token (``CH-n00042``) in its subject
  and body and a unique Message-ID;
- follow-ups, written only once the acknowledgement of their request has reached the sink (the
  ticket number is read from it): ``Re: <the ack's subject>`` (tag), ``Re: <the request's
  subject>`` with In-Reply-To/References naming the ack (thread), or both; each from the
  requester, with a token (``CH-f00007``) in its body;
- duplicates: the very same bytes (same Message-ID) appended a second time, sometimes in the
  same burst, sometimes long after (across kills).

Kills come in kinds, dealt in proportion (``KILL_WEIGHTS``) and shuffled: during start-up
(before 'mailticket running': imports, migrations, the IMAP catch-up), during the catch-up of
mail that arrived while the daemon was down, in the middle of a batch (the moment the daemon has
logged its decision on the k-th message of the batch, k random: the transaction is open), the
moment a batch has committed (the mailbox cursor in the database moved: the messages are
recorded but most likely not yet moved out of INBOX), at a random moment up to 1.5 s after a
burst was appended, the moment an acknowledgement reaches the sink (the sender in the middle of
a chunk), and when all is quiet.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from imapclient import IMAPClient

from tests.helpers import make_mail, write_config
from tests.servers.daemon import DaemonProcess
from tests.servers.dovecot import Dovecot
from tests.servers.smtpsink import SmtpSink

TOKEN = re.compile(r"CH-[nf]\d{5}")
HEADERS = email.parser.BytesHeaderParser(policy=email.policy.default)
KILL_KINDS = ("start-up", "catch-up", "mid-batch", "commit", "after-burst", "sender", "idle")
KILL_WEIGHTS = (2, 2, 3, 2, 4, 2, 2)
DECISION = "mailticket.decisions:"  # the daemon logs one such line per message, before commit
RECOVERED = re.compile(r"(\d+) message\(s\) recorded before the last disconnect moved aside")

NAMES = ["Ann User", "Bob Smith", "Carol Jones", "Dan Brown", "Jürgen Müller", "Zoë Faßbender",
         "José Núñez", "Søren Ørsted"]
WHAT = ["Printer on floor 3 prints blank pages", "Cannot log in to the portal",
        "Password expired, need a reset", "VPN drops every ten minutes",
        "Account locked after three attempts", "Notification emails not arriving",
        "Zugang gesperrt – bitte prüfen", "Impossible de me connecter au portail (réseau)"]


class ChaosError(Exception):
    """The run could not go on (the daemon would not start, a wait ran out of time)."""


# --- what is fed ---------------------------------------------------------------------------------

@dataclass
class Fed:
    """One logical message; ``copies`` counts its APPENDs (2 for a duplicate)."""

    kind: str             # "new" | "follow-up"
    token: str
    message_id: str
    sender: str
    subject: str
    raw: bytes
    ticket: int | None = None     # follow-ups: the ticket their acknowledgement named
    request: str = ""             # follow-ups: the token of the request they answer
    how: str = ""                 # follow-ups: "tag", "thread" or "tag+thread"
    copies: int = 0
    first_append: float = 0.0     # time.monotonic() just before the first APPEND


@dataclass
class Ack:
    message_id: str
    ticket: int | None
    request_id: str       # its In-Reply-To: the Message-ID of the request it answers
    subject: str
    arrived: float        # when this process first saw it at the sink (time.monotonic())


class Acks:
    """The acknowledgements the sink received, parsed as they come (every mail the desk sends in
    this workload is an acknowledgement: follow-ups cause none)."""

    def __init__(self, sink: SmtpSink):
        self.sink = sink
        self.seen = 0
        self.deliveries: collections.Counter[str] = collections.Counter()  # ack Message-ID -> n
        self.by_id: dict[str, Ack] = {}
        self.by_request: dict[str, list[Ack]] = collections.defaultdict(list)

    def update(self) -> int:
        with sink_lock(self.sink):
            new = list(self.sink.messages[self.seen:])
        now = time.monotonic()
        for message in new:
            headers = HEADERS.parsebytes(message.raw)
            ack_id = str(headers.get("Message-ID", "")).strip()
            self.deliveries[ack_id] += 1
            if ack_id not in self.by_id:
                ticket = headers.get("X-Mailticket-Ticket")
                ack = Ack(ack_id, int(ticket) if ticket else None,
                          str(headers.get("In-Reply-To", "")).strip(),
                          str(headers.get("Subject", "")), now)
                self.by_id[ack_id] = ack
                self.by_request[ack.request_id].append(ack)
        self.seen += len(new)
        return len(new)

    def first_for(self, request_id: str) -> Ack | None:
        acks = self.by_request.get(request_id)
        return acks[0] if acks else None


def sink_lock(sink: SmtpSink):
    return sink._lock  # the sink's own lock guards its list of messages


class Workload:
    """Makes the mail, in the proportions asked, as the run asks for it."""

    def __init__(self, messages: int, seed: int, follow_up_share: float = 0.26,
                 duplicate_share: float = 0.06):
        self.rng = random.Random(seed)
        self.planned = messages
        self.budget = {"dup": round(messages * duplicate_share),
                       "follow-up": round(messages * follow_up_share)}
        self.budget["new"] = messages - self.budget["dup"] - self.budget["follow-up"]
        self.fed: list[Fed] = []
        self.appends = 0
        self.replies_to: collections.Counter[str] = collections.Counter()  # request token -> n

    @property
    def remaining(self) -> int:
        return sum(self.budget.values())

    def requests(self) -> list[Fed]:
        return [f for f in self.fed if f.kind == "new"]

    def follow_ups(self) -> list[Fed]:
        return [f for f in self.fed if f.kind == "follow-up"]

    def take(self, count: int, acks: Acks, *, fallback_to_new: bool = True) -> list[Fed]:
        """Up to ``count`` messages to append now (a duplicate is the same Fed again)."""
        out: list[Fed] = []
        acks.update()
        for _ in range(min(count, self.remaining)):
            kinds = [k for k, n in self.budget.items() if n > 0]
            kind = self.rng.choices(kinds, [self.budget[k] for k in kinds])[0]
            item = None
            if kind == "dup":
                item = self._duplicate(out)
            elif kind == "follow-up":
                item = self._follow_up(acks)
            if item is None and kind != "new":
                if not fallback_to_new or self.budget["new"] == 0:
                    continue  # nothing to duplicate or answer yet: later
                kind = "new"
            if kind == "new":
                item = self._new()
            self.budget[kind] -= 1
            out.append(item)
        return out

    def _new(self) -> Fed:
        k = sum(1 for f in self.fed if f.kind == "new") + 1
        token = f"CH-n{k:05d}"
        sender = f"user{k:05d}@req{k % 31}.example.org"
        name = self.rng.choice(NAMES)
        subject = f"{self.rng.choice(WHAT)} ({token})"
        message_id = f"<{token}.{self.rng.getrandbits(48):012x}@chaos.example.org>"
        raw = make_mail(subject=subject, sender=f"{name} <{sender}>", message_id=message_id,
                        body=f"Hello desk,\n\nit does not work since this morning.\n"
                             f"Reference {token}.\n\n{name}\n")
        fed = Fed("new", token, message_id, sender, subject, raw)
        self.fed.append(fed)
        return fed

    def _follow_up(self, acks: Acks) -> Fed | None:
        ready = [(f, ack) for f in self.requests()
                 if self.replies_to[f.token] < 2 and (ack := acks.first_for(f.message_id))
                 and ack.ticket is not None]
        if not ready:
            return None
        request, ack = self.rng.choice(ready)
        self.replies_to[request.token] += 1
        k = sum(1 for f in self.fed if f.kind == "follow-up") + 1
        token = f"CH-f{k:05d}"
        how = self.rng.choice(["tag", "thread", "tag+thread", "tag+thread"])
        subject = f"Re: {ack.subject}" if "tag" in how else f"Re: {request.subject}"
        thread = how != "tag"
        message_id = f"<{token}.{self.rng.getrandbits(48):012x}@chaos.example.org>"
        raw = make_mail(subject=subject, sender=request.sender, message_id=message_id,
                        in_reply_to=ack.message_id if thread else None,
                        references=f"{request.message_id} {ack.message_id}" if thread else None,
                        body=f"It still fails, see the attached steps.\nReference {token}.\n")
        fed = Fed("follow-up", token, message_id, request.sender, subject, raw,
                  ticket=ack.ticket, request=request.token, how=how)
        self.fed.append(fed)
        return fed

    def _duplicate(self, burst: list[Fed]) -> Fed | None:
        if burst and self.rng.random() < 0.4:
            pool = [f for f in burst if f.copies == 0 and burst.count(f) == 1]
        else:
            pool = [f for f in self.fed if f.copies == 1]
        return self.rng.choice(pool) if pool else None


# --- the daemon, killed and started again --------------------------------------------------------

class Incarnation(DaemonProcess):
    """One run of the daemon, with its own log; may be killed before it says it is running."""

    def spawn(self) -> "Incarnation":
        self.spawned = time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mailticket", "--config", str(self.config), "run"],
                stdout=handle, stderr=subprocess.STDOUT, cwd=self.config.parent, env=self.env)
        return self

    def wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while "mailticket running" not in self.log_text():
            if self.process.poll() is not None:
                raise ChaosError(f"the daemon exited with {self.process.returncode} while "
                                 f"starting:\n{tail(self.log_text())}")
            if time.monotonic() > deadline:
                raise ChaosError(f"the daemon did not start within {timeout:g} s:\n"
                                 f"{tail(self.log_text())}")
            time.sleep(0.02)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def kill_schedule(kills: int, rng: random.Random) -> list[str]:
    """``kills`` kinds of kill in proportion to KILL_WEIGHTS (largest remainders), shuffled."""
    total = sum(KILL_WEIGHTS)
    counts = {k: kills * w // total for k, w in zip(KILL_KINDS, KILL_WEIGHTS)}
    by_remainder = sorted(zip(KILL_KINDS, KILL_WEIGHTS), key=lambda kw: -(kills * kw[1] % total))
    for kind, _w in by_remainder[:kills - sum(counts.values())]:
        counts[kind] += 1
    deck = [kind for kind in KILL_KINDS for _ in range(counts[kind])]
    rng.shuffle(deck)
    return deck


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- the run -------------------------------------------------------------------------------------

@dataclass
class Tally:
    """What the run did and what the database and the sink show afterwards."""

    kills: int = 0
    kill_kinds: dict[str, int] = field(default_factory=dict)
    incarnations: int = 0
    unexpected_exits: int = 0
    messages_in: int = 0
    requests: int = 0
    follow_ups: int = 0
    follow_ups_by_how: dict[str, int] = field(default_factory=dict)
    duplicate_ids: int = 0
    duplicate_copies: int = 0
    tickets_expected: int = 0
    tickets_created: int = 0
    requests_on_a_ticket: int = 0
    duplicated_tickets: int = 0          # tickets beyond one per request
    unexpected_tickets: int = 0          # tickets opened by a follow-up or by unknown mail
    duplicate_extra_tickets: int = 0     # of the duplicated tickets, those from duplicate copies
    follow_ups_attached: int = 0         # on the ticket their acknowledgement named
    follow_ups_misattached: int = 0      # recorded, but on another ticket or none
    messages_recorded_twice: int = 0     # one fed message, several message rows
    lost: int = 0                        # content on no ticket
    lost_tokens: list[str] = field(default_factory=list)
    acks_expected: int = 0
    acks_delivered: int = 0              # requests with at least one acknowledgement
    acks_resent: int = 0                 # the same acknowledgement (Message-ID) again
    acks_second: int = 0                 # a second, different acknowledgement for a request
    acks_wrong_ticket: int = 0           # naming another ticket than the one holding the request
    # First APPEND of a request -> its first acknowledgement at the sink (to ~0.1 s).
    ack_wait_p50_s: float | None = None
    ack_wait_max_s: float | None = None
    acks_later_than_10s: int = 0
    inbox_left: int = 0
    quarantined: int = 0                 # Quarantine folder + held quarantine rows
    recovered_moves: int = 0             # committed before a kill, moved out of INBOX on restart
    outbox_unsent: int = 0
    final_exit_code: int | None = None
    feed_s: float = 0.0
    drain_s: float = 0.0
    total_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def judge(self) -> None:
        checks = [
            (self.lost, "message(s) lost (content on no ticket)"),
            (self.duplicated_tickets, "duplicated ticket(s)"),
            (self.unexpected_tickets, "ticket(s) opened by a follow-up or unknown mail"),
            (self.follow_ups_misattached, "follow-up(s) on the wrong ticket"),
            (self.messages_recorded_twice, "message(s) recorded twice"),
            (self.tickets_expected - self.requests_on_a_ticket, "request(s) on no ticket"),
            (self.acks_expected - self.acks_delivered, "request(s) never acknowledged"),
            (self.acks_second, "request(s) acknowledged by two different mails"),
            (self.acks_wrong_ticket, "acknowledgement(s) naming the wrong ticket"),
            (self.inbox_left, "message(s) left in INBOX"),
            (self.quarantined, "message(s) quarantined"),
            (self.outbox_unsent, "outbox row(s) not sent"),
            (self.unexpected_exits, "daemon exit(s) nobody asked for"),
        ]
        for value, what in checks:
            if value:
                self.problems.append(f"{value} {what}")
        if self.final_exit_code not in (0, None):
            self.problems.append(f"the final daemon exited with {self.final_exit_code}")

    def rows(self) -> list[tuple[str, str]]:
        kinds = ", ".join(f"{self.kill_kinds.get(k, 0)} {k}" for k in KILL_KINDS)
        how = ", ".join(f"{n} {k}" for k, n in sorted(self.follow_ups_by_how.items()))
        wait = ("-" if self.ack_wait_max_s is None else
                f"{self.ack_wait_p50_s:.1f} / {self.ack_wait_max_s:.1f} s; "
                f"{self.acks_later_than_10s} later than 10 s")
        return [
            ("kills (SIGKILL)", f"{self.kills}  ({kinds}); {self.incarnations} daemon runs"),
            ("messages in (APPENDs)", f"{self.messages_in}  ({self.requests} new requests, "
                                      f"{self.follow_ups} follow-ups, {self.duplicate_copies} "
                                      "duplicate copies)"),
            ("tickets expected / created", f"{self.tickets_expected} / {self.tickets_created}"),
            ("follow-ups expected / attached", f"{self.follow_ups} / {self.follow_ups_attached}"
                                               f"  ({how}); wrong ticket "
                                               f"{self.follow_ups_misattached}"),
            ("duplicates: Message-IDs fed twice / extra tickets",
             f"{self.duplicate_ids} / {self.duplicate_extra_tickets}"),
            ("LOST (content on no ticket)", str(self.lost)),
            ("DUPLICATED tickets", f"{self.duplicated_tickets}  (+ {self.unexpected_tickets} "
                                   "opened by follow-ups; messages recorded twice "
                                   f"{self.messages_recorded_twice})"),
            ("acks expected / delivered / duplicated",
             f"{self.acks_expected} / {self.acks_delivered} / {self.acks_resent}  (second acks "
             f"{self.acks_second}, wrong ticket {self.acks_wrong_ticket})"),
            ("ack delay p50 / max (APPEND -> sink)", wait),
            ("committed before a kill, moved at restart", str(self.recovered_moves)),
            ("mail left in INBOX", str(self.inbox_left)),
            ("quarantined", str(self.quarantined)),
            ("outbox not sent", str(self.outbox_unsent)),
            ("time: feeding with kills / final drain / all",
             f"{self.feed_s:.1f} / {self.drain_s:.1f} / {self.total_s:.1f} s"),
        ]

    def table(self) -> str:
        lines = [f"{label:<52} {value}" for label, value in self.rows()]
        lines.append("RESULT: " + ("OK: nothing lost, nothing duplicated" if self.ok else
                                   "FAILED: " + "; ".join(self.problems)))
        return "\n".join(lines)


class ChaosRun:
    """Feeds ``messages`` mails while killing the daemon ``kills`` times; ``run()`` -> Tally.

    ``dovecot`` and ``sink`` are running; ``database_url`` names an empty database; ``tmp``
    holds the config, the store and one log per daemon run.
    """

    def __init__(self, tmp: Path, database_url: str, dovecot: Dovecot, sink: SmtpSink, *,
                 messages: int = 500, kills: int = 20, seed: int = 1,
                 drain_timeout: float = 200.0, start_timeout: float = 60.0,
                 relay_timeout: float = 10.0,
                 user: str = "desk", log: Callable[[str], None] = lambda line: None):
        if kills < 1 or messages < kills:
            raise ValueError("need kills >= 1 and messages >= kills")
        self.tmp, self.database_url = tmp, database_url
        self.dovecot, self.sink, self.user = dovecot, sink, user
        self.kills, self.seed = kills, seed
        self.drain_timeout, self.start_timeout = drain_timeout, start_timeout
        self.log = log
        self.rng = random.Random(seed * 7919 + 1)
        self.schedule = kill_schedule(kills, self.rng)
        self.workload = Workload(messages, seed)
        self.acks = Acks(sink)
        self.tally = Tally()
        self.daemon: Incarnation | None = None
        self.client: IMAPClient | None = None
        self.db = None  # a connection of our own, to watch the mailbox cursor
        intake = (f"imap:\n"
                  f"    - {{host: 127.0.0.1, port: {dovecot.port}, security: none, "
                  f"username: {user}, password: '${{DESK_IMAP_PASSWORD}}', idle: true, "
                  f"poll_interval: 1}}")
        # The relay timeout sets the sender's lease (4 x timeout, at least 120 s): the time an
        # acknowledgement claimed by a killed daemon waits before it is sent.
        outgoing = (f"smtp: {{host: 127.0.0.1, port: {sink.port}, security: none, "
                    f"timeout: {relay_timeout:g}}}\n"
                    f"  retry: {{base_seconds: 0.5, max_seconds: 2}}")
        # The default caps on automatic mail hold: one acknowledgement per (distinct) requester,
        # fewer than the desk-wide cap per hour.
        self.config = write_config(tmp, database_url, intake=intake, outgoing=outgoing)

    # --- the whole run ---------------------------------------------------------------------------

    def run(self) -> Tally:
        started = time.monotonic()
        try:
            for cycle in range(self.kills):
                self._cycle(cycle)
            self.tally.feed_s = time.monotonic() - started
            drain_started = time.monotonic()
            self._final()
            self.tally.drain_s = time.monotonic() - drain_started
        finally:
            self.stop()
        self.tally.total_s = time.monotonic() - started
        self.count()
        return self.tally

    def stop(self) -> None:
        """Kill a daemon still running (on error or interrupt), close our database connection
        and log the IMAP client out."""
        if self.daemon is not None and self.daemon.alive:
            self.daemon.kill()
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:  # noqa: BLE001 - best effort on the way out
                self.client.shutdown()
            self.client = None

    def _quota(self, cycle: int) -> int:
        """Messages to feed by the end of ``cycle`` (the last share is left for the clean run)."""
        planned = self.workload.planned
        return round(planned * (cycle + 1) / (self.kills + 1))

    def _cycle(self, cycle: int) -> None:
        rng, kind = self.rng, self.schedule[cycle]
        if kind == "catch-up":  # mail arrives while the daemon is down: a backlog at start-up
            self._feed_towards(cycle, rng.randint(1, 3))
        daemon = self._spawn()
        if kind == "start-up":
            self._sleep(rng.uniform(0.05, 1.0))   # python start-up, migrations, IMAP connect
        else:
            daemon.wait_running(self.start_timeout)
            if kind == "catch-up":
                self._sleep(rng.uniform(0.0, 0.3))
            elif kind == "mid-batch":
                self._settle(10.0)  # a catch-up at start-up must not count
                before = daemon.log_text().count(DECISION)
                fed = self._feed_towards(cycle, 1)
                nth = before + rng.randint(1, max(1, min(10, fed)))
                self._wait(lambda: daemon.log_text().count(DECISION) >= nth, 15.0, poll=0.005)
            elif kind == "commit":
                self._settle(10.0)
                before = self._cursor()
                self._feed_towards(cycle, 1)
                self._wait(lambda: self._cursor() > before, 15.0, poll=0.0)
            else:
                self._feed_towards(cycle, rng.randint(1, 3))
                if kind == "after-burst":
                    self._sleep(rng.uniform(0.0, 1.5))
                elif kind == "sender":  # the moment an acknowledgement reached the relay
                    before = self.acks.seen
                    self._wait(lambda: self.acks.seen > before, 15.0, poll=0.01)
                else:  # all quiet: INBOX empty, no acknowledgement for a second
                    self._settle(20.0)
                    self._sleep(rng.uniform(0.0, 1.0))
        self._kill(kind)
        if kind != "catch-up" and rng.random() < 0.3:  # a little mail while it is down
            self._append(self.workload.take(rng.randint(1, 5), self.acks))
        self._sleep(rng.uniform(0.0, 0.3))

    def _feed_towards(self, cycle: int, bursts: int) -> int:
        """Append what this cycle's quota leaves, in ``bursts`` bursts with short pauses; return
        how many messages were appended."""
        appended = 0
        for i in range(bursts):
            due = self._quota(cycle) - self.workload.appends
            if due <= 0:
                break
            batch = self.workload.take(max(1, due // (bursts - i)), self.acks)
            self._append(batch)
            appended += len(batch)
            if i < bursts - 1:
                self._sleep(self.rng.uniform(0.0, 0.8))
        return appended

    def _final(self) -> None:
        """A clean run: feed what is left, wait until everything is taken in and acknowledged,
        stop with SIGTERM."""
        daemon = self._spawn()
        daemon.wait_running(self.start_timeout)
        started = time.monotonic()
        deadline = started + self.drain_timeout
        while self.workload.remaining:
            # Follow-ups wait for acknowledgements; after half the time limit, new requests
            # take the place of those that cannot be written.
            late = time.monotonic() > started + self.drain_timeout / 2
            batch = self.workload.take(self.workload.remaining, self.acks, fallback_to_new=late)
            self._append(batch)
            if not batch and late:
                self.workload.budget["new"] += self.workload.budget["follow-up"]
                self.workload.budget["follow-up"] = 0
            if self.workload.remaining:
                if time.monotonic() > deadline:
                    raise ChaosError("final run: could not feed the last messages in time")
                self._sleep(0.2)
        requests = self.workload.requests()

        def settled() -> bool:
            if self._inbox_count() != 0:
                return False
            return all(self.acks.first_for(f.message_id) for f in requests)

        if not self._wait(settled, max(10.0, deadline - time.monotonic())):
            self.log(f"final run: not settled within {self.drain_timeout:g} s; counting anyway")
        self._sleep(1.0)  # an acknowledgement sent twice may still be on its way
        try:
            self.tally.final_exit_code = daemon.stop(timeout=60)
        except subprocess.TimeoutExpired:
            self.tally.problems.append("the final daemon did not stop within 60 s of SIGTERM")
        self.tally.inbox_left = self._inbox_count()

    # --- helpers ---------------------------------------------------------------------------------

    def _spawn(self) -> Incarnation:
        n = self.tally.incarnations = self.tally.incarnations + 1
        self.daemon = Incarnation(self.config, self.tmp / "logs" / f"daemon-{n:02d}.log",
                                  env={"DESK_IMAP_PASSWORD": "secret"}).spawn()
        return self.daemon

    def _kill(self, kind: str) -> None:
        daemon = self.daemon
        assert daemon is not None
        if not daemon.alive:
            self.tally.unexpected_exits += 1
            self.log(f"the daemon had exited by itself ({daemon.process.returncode}):\n"
                     f"{tail(daemon.log_text())}")
            return
        daemon.kill()
        self.tally.kills += 1
        self.tally.kill_kinds[kind] = self.tally.kill_kinds.get(kind, 0) + 1
        self.log(f"kill {self.tally.kills:>2}/{self.kills} ({kind}); "
                 f"{self.workload.appends} appended, {self.acks.seen} acks at the sink")

    def _imap(self) -> IMAPClient:
        if self.client is None:
            client = IMAPClient(self.dovecot.host, self.dovecot.port, ssl=False, timeout=30)
            client.login(*self.dovecot.user(self.user))
            self.client = client
        return self.client

    def _append(self, batch: list[Fed]) -> None:
        if not batch:
            return
        now = time.monotonic()
        for fed in batch:
            fed.copies += 1
            if fed.copies == 1:
                fed.first_append = now
        client = self._imap()
        if client.has_capability("MULTIAPPEND"):
            client.multiappend("INBOX", [f.raw for f in batch])
        else:
            for fed in batch:
                client.append("INBOX", fed.raw)
        self.workload.appends += len(batch)

    def _cursor(self) -> int:
        """The mailbox cursor (last UID recorded) as committed in the database, 0 before any."""
        if self.db is None:
            from mailticket import db as dbmod

            self.db = dbmod.open_database(self.database_url)
            self.db.connect(reuse_if_open=True)
        try:
            row = self.db.execute_sql("SELECT MAX(last_uid) FROM mailbox_state").fetchone()
        except Exception:  # noqa: BLE001 - no table before the first migration (autocommit)
            return 0
        return int(row[0] or 0)

    def _inbox_count(self) -> int:
        status = self._imap().folder_status("INBOX", [b"MESSAGES"])
        return int(status[b"MESSAGES"])

    def _folder_count(self, folder: str) -> int:
        client = self._imap()
        if not client.folder_exists(folder):
            return 0
        return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def _sleep(self, seconds: float) -> None:
        """Sleep, reading the sink meanwhile (so acknowledgement times are known to ~50 ms)."""
        deadline = time.monotonic() + seconds
        while True:
            self.acks.update()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    def _wait(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
        """Poll ``predicate`` (reading the sink meanwhile) until it holds (True), the time limit
        passes or the daemon is gone (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self.acks.update()
            if predicate():
                return True
            if self.daemon is not None and not self.daemon.alive:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)

    def _settle(self, timeout: float) -> None:
        """Until INBOX is empty and no acknowledgement came for a second (or ``timeout``)."""
        quiet_since = [time.monotonic(), self.acks.seen]

        def quiet() -> bool:
            if self.acks.seen != quiet_since[1]:
                quiet_since[:] = [time.monotonic(), self.acks.seen]
            return self._inbox_count() == 0 and time.monotonic() - quiet_since[0] > 1.0

        self._wait(quiet, timeout)

    # --- counting --------------------------------------------------------------------------------

    def count(self) -> Tally:
        """Look every fed message up in the database (the daemon has stopped) and at the sink."""
        t, w = self.tally, self.workload
        self.acks.update()
        requests, follow_ups = w.requests(), w.follow_ups()
        t.messages_in = w.appends
        t.requests, t.follow_ups = len(requests), len(follow_ups)
        t.follow_ups_by_how = dict(collections.Counter(f.how for f in follow_ups))
        t.duplicate_ids = sum(1 for f in w.fed if f.copies > 1)
        t.duplicate_copies = sum(f.copies - 1 for f in w.fed if f.copies > 1)
        t.tickets_expected = t.acks_expected = len(requests)

        rows = read_database(self.database_url)
        t.tickets_created = len(rows.tickets)
        t.outbox_unsent = rows.outbox_unsent
        by_token: dict[str, list[tuple[str, int | None]]] = collections.defaultdict(list)
        for message_id, ticket, body in rows.messages:
            for token in set(TOKEN.findall(body)):
                by_token[token].append((message_id, ticket))
        fed_by_token = {f.token: f for f in w.fed}

        # Which request opened each ticket (its first incoming message).
        opened_by: dict[str, list[int]] = collections.defaultdict(list)
        t.unexpected_tickets = len(set(rows.tickets) - set(rows.first_messages))
        for number, first_body in rows.first_messages.items():
            tokens = TOKEN.findall(first_body or "")
            fed = fed_by_token.get(tokens[0]) if tokens else None
            if fed is None or fed.kind != "new":
                t.unexpected_tickets += 1
            else:
                opened_by[fed.token].append(number)
        request_ticket: dict[str, int] = {}
        for fed in requests:
            numbers = opened_by.get(fed.token, [])
            if numbers:
                request_ticket[fed.token] = min(numbers)
                t.requests_on_a_ticket += 1
            t.duplicated_tickets += max(0, len(numbers) - 1)
            if fed.copies > 1:
                t.duplicate_extra_tickets += max(0, len(numbers) - 1)

        for fed in w.fed:
            recorded = by_token.get(fed.token, [])
            t.messages_recorded_twice += max(0, len(recorded) - 1)
            tickets = {ticket for _mid, ticket in recorded if ticket is not None}
            if not tickets:
                t.lost += 1
                t.lost_tokens.append(fed.token)
            elif fed.kind == "follow-up":
                if tickets == {fed.ticket}:
                    t.follow_ups_attached += 1
                else:
                    t.follow_ups_misattached += 1

        # Acknowledgements: one per request, naming the ticket the request is on.
        waits = []
        for fed in requests:
            acks = self.acks.by_request.get(fed.message_id, [])
            if acks:
                t.acks_delivered += 1
                waits.append(acks[0].arrived - fed.first_append)
            t.acks_second += max(0, len(acks) - 1)
            expected = request_ticket.get(fed.token)
            t.acks_wrong_ticket += sum(1 for a in acks if a.ticket != expected)
        t.acks_resent = sum(n - 1 for n in self.acks.deliveries.values() if n > 1)
        if waits:
            waits.sort()
            t.ack_wait_p50_s = waits[(len(waits) - 1) // 2]
            t.ack_wait_max_s = waits[-1]
            t.acks_later_than_10s = sum(1 for w in waits if w > 10)
        t.quarantined = self._folder_count("Quarantine") + rows.quarantine_held
        for log in sorted((self.tmp / "logs").glob("daemon-*.log")):
            text = log.read_text(errors="replace")
            t.recovered_moves += sum(int(n) for n in RECOVERED.findall(text))
        t.judge()
        return t


@dataclass
class DatabaseRows:
    tickets: list[int]
    messages: list[tuple[str, int | None, str]]   # incoming: (Message-ID, ticket, body)
    first_messages: dict[int, str]                 # ticket -> body of its first incoming message
    outbox_unsent: int
    quarantine_held: int


def read_database(url: str) -> DatabaseRows:
    """The rows the tally needs, read with mailticket's own models (the daemon has stopped)."""
    from mailticket.models import Message, Outbox, Quarantine, Ticket
    from mailticket.wiring import attach, detach

    attach(url, migrate=False)
    try:
        tickets = [t.number for t in Ticket.select(Ticket.number)]
        messages, first = [], {}
        for m in (Message.select(Message.message_id, Message.ticket, Message.body)
                  .where(Message.direction == "in").order_by(Message.id)):
            messages.append((m.message_id, m.ticket_id, m.body))
            if m.ticket_id is not None:
                first.setdefault(m.ticket_id, m.body)
        unsent = Outbox.select().where(Outbox.status != "sent").count()
        held = Quarantine.select().where(Quarantine.status == "held").count()
    finally:
        detach(url)
    return DatabaseRows(tickets, messages, first, unsent, held)
