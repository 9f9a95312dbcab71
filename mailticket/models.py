"""The peewee models: tickets, their messages and events, attachments, the outbox, intake keys,
mailbox cursors and the quarantine. Times are naive UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import peewee

from mailticket.vocabulary import Channel, QuarantineStatus

# What the models are bound to: one database per process, bound by ``wiring.attach``.
database_proxy = peewee.DatabaseProxy()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False

    @classmethod
    def create(cls, **values):
        """``Model.create`` with the INSERT statement built once per set of columns.

        peewee builds the SQL of every INSERT anew, and intake makes five rows per message:
        building them cost more than executing them. Values still go through each field's
        ``db_value``, so what is stored is exactly what peewee would store.
        """
        instance = cls(**values)
        meta = cls._meta
        primary = meta.primary_key
        names = tuple(name for name in instance.__data__
                      if not (name == primary.name and instance.__data__[name] is None))
        db = meta.database.obj if isinstance(meta.database, peewee.DatabaseProxy) else meta.database
        key = (type(db), names)
        statement = _INSERTS.get((cls, key))
        returning = isinstance(primary, peewee.AutoField) and primary.name not in names
        if statement is None:
            columns = ", ".join(f'"{meta.fields[name].column_name}"' for name in names)
            marks = ", ".join([db.param] * len(names))
            statement = f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks})'
            if returning and isinstance(db, peewee.PostgresqlDatabase):
                statement += f' RETURNING "{primary.column_name}"'
            _INSERTS[(cls, key)] = statement
        params = [meta.fields[name].db_value(instance.__data__[name]) for name in names]
        cursor = db.execute_sql(statement, params)
        if returning:
            new_id = (cursor.fetchone()[0] if isinstance(db, peewee.PostgresqlDatabase)
                      else cursor.lastrowid)
            setattr(instance, primary.name, new_id)
        instance._dirty.clear()
        return instance


_INSERTS: dict[tuple[type, tuple[type, tuple[str, ...]]], str] = {}


class SchemaVersion(BaseModel):
    version = peewee.IntegerField(primary_key=True)
    applied_at = peewee.DateTimeField(default=utcnow)


class Ticket(BaseModel):
    """Numbers come from the database's sequence and tickets are never deleted, so a number is
    never reused."""

    number = peewee.AutoField()
    subject = peewee.TextField(default="")
    status = peewee.CharField(max_length=16, index=True)  # vocabulary.TicketStatus
    requester = peewee.TextField(index=True)
    requester_name = peewee.TextField(default="")
    cc = JSONField(default=list)
    resolution = peewee.TextField(null=True)
    linked_to = peewee.ForeignKeyField("self", null=True, backref="follow_ons",
                                       column_name="linked_to")
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow)
    closed_at = peewee.DateTimeField(null=True)
    # The desk's procedure (schema v3): who has it, how it came in, and its clocks.
    group = peewee.CharField(max_length=40, null=True, index=True)  # a key of config groups
    agent = peewee.TextField(null=True, index=True)                 # the assigned agent's address
    channel = peewee.CharField(max_length=16, default=Channel.EMAIL)  # vocabulary.Channel
    agency = peewee.TextField(null=True, index=True)
    resolved_at = peewee.DateTimeField(null=True)
    first_response_at = peewee.DateTimeField(null=True)
    response_due_at = peewee.DateTimeField(null=True, index=True)
    sla_warned_at = peewee.DateTimeField(null=True)
    sla_breached_at = peewee.DateTimeField(null=True)
    # An incident affecting users (schema v4). Superseded by outages (schema v6, ``Outage``):
    # the v6 step made each open flagged ticket an outage; nothing sets or reads it any more.
    incident_at = peewee.DateTimeField(null=True, index=True)


class Message(BaseModel):
    """A mail in (from a user), out (from us) or an internal note. ``message_id`` is unique:
    it is how a message seen twice is recognised."""

    ticket = peewee.ForeignKeyField(Ticket, null=True, backref="messages", index=True)
    direction = peewee.CharField(max_length=8)  # vocabulary.Direction
    message_id = peewee.TextField(unique=True)
    sender = peewee.TextField(default="")
    sender_name = peewee.TextField(default="")
    to = JSONField(default=list)
    cc = JSONField(default=list)
    subject = peewee.TextField(default="")
    body = peewee.TextField(default="")
    date = peewee.DateTimeField(null=True)
    in_reply_to = peewee.TextField(null=True)
    references = JSONField(default=list)
    verdict = peewee.CharField(max_length=32, default="human")
    verdict_reason = peewee.TextField(default="")
    decision = peewee.CharField(max_length=32, default="")
    raw_sha256 = peewee.CharField(max_length=64, null=True)
    source = peewee.TextField(default="")
    author = peewee.TextField(default="")
    defects = JSONField(default=list)
    created_at = peewee.DateTimeField(default=utcnow)


class Attachment(BaseModel):
    message = peewee.ForeignKeyField(Message, backref="attachments", index=True)
    filename = peewee.TextField()
    content_type = peewee.TextField()
    size = peewee.BigIntegerField()
    sha256 = peewee.CharField(max_length=64)


class Event(BaseModel):
    """The audit trail: who did what to a ticket, and when."""

    ticket = peewee.ForeignKeyField(Ticket, backref="events", index=True)
    at = peewee.DateTimeField(default=utcnow)
    actor = peewee.TextField()
    kind = peewee.CharField(max_length=32)
    detail = peewee.TextField(default="")


class Outbox(BaseModel):
    """Mail waiting to go out, rendered in the transaction that caused it."""

    ticket = peewee.ForeignKeyField(Ticket, null=True, backref="outgoing", index=True)
    kind = peewee.CharField(max_length=32)
    envelope_from = peewee.TextField()
    recipients = JSONField()
    primary_recipient = peewee.TextField(default="", index=True)
    message_id = peewee.TextField(unique=True)
    subject = peewee.TextField(default="")
    content = peewee.BlobField()
    status = peewee.CharField(max_length=16, index=True)  # vocabulary.OutboxStatus
    attempts = peewee.IntegerField(default=0)   # tries so far: drives the backoff
    refusals = peewee.IntegerField(default=0)   # 4xx answers from the relay: count to the limit
    next_attempt_at = peewee.DateTimeField(default=utcnow, index=True)
    claimed_until = peewee.DateTimeField(null=True)
    # Which sender holds the claim, "host/pid/start": a daemon restarted after a crash tells its
    # dead predecessor's claims from a live sender's (Sender.release_dead_claims).
    claimed_by = peewee.TextField(null=True)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    sent_at = peewee.DateTimeField(null=True)
    # Recipients a bounce said the mail never reached: [{"recipient", "status", "detail"}].
    bounced = JSONField(null=True)


class Quarantine(BaseModel):
    """A message that could not be processed, kept whole with the error."""

    source = peewee.TextField()
    source_key = peewee.TextField(default="")
    raw = peewee.BlobField()
    error = peewee.TextField()
    status = peewee.CharField(max_length=16, default=QuarantineStatus.HELD, index=True)
    message_id = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    released_at = peewee.DateTimeField(null=True)
    ticket = peewee.ForeignKeyField(Ticket, null=True)


class IntakeKey(BaseModel):
    """One row per message taken from a source: mailbox + UIDVALIDITY/UID (or the SMTP
    transaction's key). A message seen again after a crash finds its row and is not re-applied."""

    source = peewee.TextField()
    key = peewee.TextField()
    message_id = peewee.TextField(default="")
    outcome = peewee.CharField(max_length=16)  # vocabulary.IntakeOutcome
    message = peewee.ForeignKeyField(Message, null=True, column_name="message_ref")
    quarantine = peewee.ForeignKeyField(Quarantine, null=True)
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("source", "key"), True),)


class MailboxState(BaseModel):
    """Where intake stands in one IMAP mailbox."""

    source = peewee.TextField(unique=True)
    uidvalidity = peewee.BigIntegerField()
    last_uid = peewee.BigIntegerField(default=0)
    updated_at = peewee.DateTimeField(default=utcnow)


class ReportRun(BaseModel):
    """One row per report and slot (schema v4): the unique key is what makes a scheduled report
    go out once, across restarts and with two daemons on one database."""

    report = peewee.CharField(max_length=64)
    slot = peewee.DateTimeField()                 # the scheduled moment (naive UTC)
    started_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)
    late = peewee.BooleanField(default=False)
    outcome = peewee.TextField(default="")         # sent, skipped (past grace), failed: why

    class Meta:
        indexes = ((("report", "slot"), True),)


class Setting(BaseModel):
    """Values the desk keeps for itself, such as the key of the tokens in our Message-IDs."""

    name = peewee.CharField(max_length=64, primary_key=True)
    value = peewee.TextField()


class PortalRevocation(BaseModel):
    """Per address (schema v5): every portal link and session carries the address's generation
    when it was made; revoking (``mailticket portal revoke``, "sign out everywhere") moves the
    generation on, and everything made before is refused."""

    address = peewee.CharField(max_length=320, primary_key=True)  # lower case
    generation = peewee.IntegerField(default=0)
    revoked_at = peewee.DateTimeField(default=utcnow)


class PortalRequest(BaseModel):
    """A sign-in link or a new request waiting for its confirmation link (schema v5): each
    link works once (``used_at``), and the rows of the last hour are the per-client limit."""

    kind = peewee.CharField(max_length=16)          # "sign_in" or "new_request"
    nonce = peewee.CharField(max_length=64, unique=True)
    address = peewee.TextField()
    client = peewee.TextField(default="", index=True)  # the browser's IP address
    payload = JSONField(null=True)                  # new_request: name, subject, text, files
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    used_at = peewee.DateTimeField(null=True)
    ticket = peewee.ForeignKeyField(Ticket, null=True)


class Outage(BaseModel):
    """An outage or emergency affecting users (schema v6): what is down, for whom, what users
    are told, and its tickets (``OutageTicket``). Resolving goes open -> resolving -> resolved:
    ``resolving`` is the durable mark of a resolve under way, which a later run finishes."""

    number = peewee.AutoField()
    title = peewee.TextField()
    applications = JSONField(default=list)   # names as outages.applications keys (or as given)
    agencies = JSONField(default=list)       # the scope: the directory's agency names; [] = all
    public_text = peewee.TextField(default="")  # what users are told
    state = peewee.CharField(max_length=16, index=True)  # vocabulary.OutageState
    opened_at = peewee.DateTimeField(default=utcnow)
    opened_by = peewee.TextField()
    resolved_at = peewee.DateTimeField(null=True)  # the resolve finished
    resolved_by = peewee.TextField(null=True)
    resolution = peewee.TextField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)


class OutageLog(BaseModel):
    """The outage's internal log: who did or noted what, and when (never shown to users)."""

    outage = peewee.ForeignKeyField(Outage, backref="log", index=True)
    at = peewee.DateTimeField(default=utcnow)
    author = peewee.TextField()
    text = peewee.TextField()


class OutageTicket(BaseModel):
    """A ticket linked to an outage (once per pair). ``settled_at``: the outage's resolve has
    dealt with this ticket (``settled``: "closed" by it, or "already closed"), in the same
    transaction as the ticket's close and its mail, so a resumed resolve skips it."""

    outage = peewee.ForeignKeyField(Outage, backref="links", index=True)
    ticket = peewee.ForeignKeyField(Ticket, backref="outage_links", index=True)
    linked_at = peewee.DateTimeField(default=utcnow)
    linked_by = peewee.TextField()
    settled_at = peewee.DateTimeField(null=True)
    settled = peewee.CharField(max_length=16, null=True)

    class Meta:
        indexes = ((("outage", "ticket"), True),)


class SpikeTopic(BaseModel):
    """A new ticket's topics (desk/lookalike.py), written at intake: the window spike
    detection counts, by key and time (one indexed read)."""

    ticket = peewee.ForeignKeyField(Ticket, backref="topics", index=True)
    key = peewee.CharField(max_length=200)
    requester = peewee.TextField()   # lower case: spikes count distinct users
    at = peewee.DateTimeField()      # the ticket's created_at (the desk's clock)

    class Meta:
        indexes = ((("key", "at"), False),)


class Spike(BaseModel):
    """Look-alike new tickets that suggested an outage: alerted once. ``open_key`` is the
    topic's key while the spike stands for it (open, or opened as an outage not yet resolved)
    and NULL after: unique, so two daemons cannot both alert about one spike."""

    number = peewee.AutoField()
    key = peewee.CharField(max_length=200, index=True)
    open_key = peewee.CharField(max_length=200, null=True, unique=True)
    label = peewee.TextField()
    state = peewee.CharField(max_length=16, index=True)  # vocabulary.SpikeState
    tickets = JSONField(default=list)                     # ticket numbers, in arrival order
    first_at = peewee.DateTimeField()                     # the first ticket's created_at
    last_at = peewee.DateTimeField()                      # the latest ticket's created_at
    alerted_at = peewee.DateTimeField()
    outage = peewee.ForeignKeyField(Outage, null=True)


ALL_MODELS = [Ticket, Message, Attachment, Event, Outbox, Quarantine, IntakeKey, MailboxState,
              Setting, ReportRun, PortalRevocation, PortalRequest, Outage, OutageLog,
              OutageTicket, SpikeTopic, Spike]

THREAD_KEY = "thread_key"
PORTAL_KEY = "portal_key"


def thread_key(db: peewee.Database) -> bytes:
    """The desk's secret for the tokens in our Message-IDs (made by the v2 migration)."""
    return _key(db, THREAD_KEY)


def portal_key(db: peewee.Database) -> bytes:
    """The desk's secret the portal's links and sessions are signed with (made by v5)."""
    return _key(db, PORTAL_KEY)


def _key(db: peewee.Database, name: str) -> bytes:
    row = db.execute_sql(f'SELECT "value" FROM "setting" WHERE "name" = {db.param}',
                         (name,)).fetchone()
    return bytes.fromhex(row[0])
