"""The config loader as an admin relies on it: shipped files load, defaults apply, and every
problem names the file, the key path and what is wrong."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailticket import config
from mailticket.config import declare
from mailticket.config import load
from mailticket.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO / "config" / "mailticket.yaml"
EXAMPLE_FILE = REPO / "config" / "mailticket.example.yaml"

# The smallest config that loads: everything else has a default.
MINIMAL: dict[str, Any] = {
    "database": "sqlite:///desk.db",
    "desk": {"address": "desk@example.test"},
    "intake": {"smtp": {"listen": "127.0.0.1:8025"}},
    "outgoing": {"maildir": "sent"},
}
IMAP = {"host": "imap.example.test", "username": "desk", "password": "pw"}
RELAY = {"host": "smtp.example.test"}

_DELETE = object()


def edited(base: dict[str, Any] = MINIMAL, **changes: Any) -> dict[str, Any]:
    """A deep copy of base with dotted keys ('intake__imap' for intake.imap) set or deleted."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        if value is _DELETE:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return data


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working directory: relative paths in the config resolve against it. It holds the
    example directory file, which the example config names."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE_FILE.parent / "directory.example.yaml", tmp_path / "config")
    return tmp_path


@pytest.fixture
def write(workdir):
    """Write a config (a mapping, or YAML text) to a file and return its path."""
    def write(data: dict[str, Any] | str, name: str = "mailticket.yaml") -> Path:
        path = workdir / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
        return path
    return write


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path, environ={} if environ is None else environ)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def env_refs(node: Any) -> set[str]:
    """The ${VAR} names used in the values of a parsed config (comments do not count)."""
    if isinstance(node, dict):
        return set().union(*map(env_refs, node.values()))
    if isinstance(node, list):
        return set().union(*map(env_refs, node))
    if isinstance(node, str):
        return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", node))
    return set()


def parsed(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --- the shipped files -------------------------------------------------------------------------

def test_embedded_default_loads_with_no_mail_server(workdir):
    settings = load(DEFAULT_FILE, environ={})
    assert settings.database == f"sqlite:///{workdir}/var/mailticket.db"
    assert settings.desk == config.DeskSettings("Service Desk", "desk@example.test", "DESK", 30)
    assert settings.intake.imap == ()
    assert settings.intake.smtp == config.SmtpIntake("127.0.0.1", 8025, "smtp")
    assert settings.outgoing.smtp is None
    assert settings.outgoing.maildir == workdir / "var" / "sent"
    assert settings.storage == workdir / "var" / "store"
    assert settings.logging == config.LoggingSettings("INFO", None)
    assert env_refs(parsed(DEFAULT_FILE)) == set()


def test_quick_start_finds_the_default_file_from_the_repository_root(monkeypatch):
    monkeypatch.chdir(REPO)
    settings = load(environ={})
    assert settings.path == config.DEFAULT_CONFIG_PATH
    assert settings.desk.address == "desk@example.test"


def _example_environ() -> dict[str, str]:
    return {name: f"secret-{name.lower()}" for name in env_refs(parsed(EXAMPLE_FILE))}


def test_example_loads_when_its_variables_are_set(workdir):
    (workdir / "templates").mkdir()
    environ = _example_environ()
    assert {"DESK_IMAP_PASSWORD", "DESK_SMTP_PASSWORD"} <= set(environ)
    settings = load(EXAMPLE_FILE, environ=environ)
    assert len(settings.intake.imap) == 2
    assert settings.intake.imap[0].password.value == "secret-desk_imap_password"
    assert settings.outgoing.smtp.password.value == "secret-desk_smtp_password"
    assert settings.templates == workdir / "templates"
    assert settings.logging.file == workdir / "var" / "log" / "mailticket.log"
    shown = repr(settings)
    for value in environ.values():
        assert value not in shown


def test_example_names_every_variable_it_needs_when_none_is_set(workdir):
    (workdir / "templates").mkdir()
    problems = problems_of(EXAMPLE_FILE)
    missing = {re.search(r"environment variable (\w+) is not set", p).group(1) for p in problems}
    assert missing == env_refs(parsed(EXAMPLE_FILE))
    assert all(p.startswith(f"{EXAMPLE_FILE}: ") for p in problems)


def _documented_tree() -> Any:
    """The example with its commented-out alternatives (e.g. '# maildir: var/sent') switched on."""
    text = re.sub(r"(?m)^(\s*)# ([a-z_]+:(?: .*)?)$", r"\1\2", EXAMPLE_FILE.read_text())
    return yaml.safe_load(text)


# Every mapping the loader reads: (key path, declared keys, whether other keys are names).
SECTIONS = list(declare.mappings(config.Settings))
_OPEN = {path: keys for path, keys, names in SECTIONS if names}


def _documented(node: Any, path: tuple[str, ...], here: tuple[str, ...] = ()):
    """The mappings at a declared key path of the documented example ('*': each entry)."""
    if not path:
        yield node
        return
    step, rest = path[0], path[1:]
    if step == "*":
        entries = node if isinstance(node, list) else [
            value for key, value in node.items() if key not in _OPEN.get(here, ())]
        for entry in entries:
            yield from _documented(entry, rest, here + ("*",))
    elif isinstance(node, dict) and step in node:
        yield from _documented(node[step], rest, here + (step,))


def test_the_declarations_reach_every_section_of_the_example():
    assert {path for path, _, _ in SECTIONS} == {
        (), ("desk",), ("intake",), ("intake", "imap", "*"), ("intake", "smtp"), ("outgoing",),
        ("outgoing", "smtp"), ("outgoing", "retry"), ("limits",), ("logging",), ("groups", "*"),
        ("sla",), ("sla", "calendar"), ("reports",), ("reports", "*"), ("web",),
        ("outages",), ("outages", "applications", "*"), ("outages", "spike")}


@pytest.mark.parametrize("where, accepted, names", SECTIONS,
                         ids=[".".join(where) or "top" for where, _, _ in SECTIONS])
def test_example_documents_exactly_the_keys_the_loader_accepts(where, accepted, names):
    nodes = list(_documented(_documented_tree(), where))
    assert nodes, f"the example has no {'.'.join(where) or 'top level'}"
    documented: set[str] = set()
    for node in nodes:
        keys = set(node) & set(accepted) if names else set(node)
        assert keys <= set(accepted), sorted(keys - set(accepted))
        documented |= keys
    assert documented == set(accepted)  # every declared key is in the example


def _key_nodes(node: yaml.Node, path: tuple = ()):
    """(path with list indexes as '*', key node) for every key in a composed YAML document."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield path + (key.value,), key
            yield from _key_nodes(value, path + (key.value,))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _key_nodes(item, path + ("*",))


def test_example_comments_every_key():
    text = EXAMPLE_FILE.read_text()
    lines = text.splitlines()
    documented: dict[tuple, bool] = {}
    for path, key in _key_nodes(yaml.compose(text)):
        here = lines[key.start_mark.line]
        above = lines[key.start_mark.line - 1].strip() if key.start_mark.line else ""
        commented = " # " in here or above.startswith(("#", "- #"))
        documented[path] = documented.get(path, False) or commented
    assert [path for path, ok in documented.items() if not ok] == []


def test_example_alternative_maildir_loads(write, workdir):
    data = _documented_tree()
    del data["outgoing"]["smtp"]
    (workdir / "templates").mkdir()
    settings = load(write(data), environ=_example_environ())
    assert settings.outgoing.smtp is None
    assert settings.outgoing.maildir == workdir / "var" / "sent"


# --- problems, each naming the file and the key ------------------------------------------------

ERRORS = [
    ("imap port not a number",
     edited(intake__imap=[dict(IMAP, port="abc")]),
     ["intake.imap[0].port: expected an integer, got 'abc'"]),
    ("imap port out of range",
     edited(intake__imap=[dict(IMAP, port=70000)]),
     ["intake.imap[0].port: must be at most 65535, got 70000"]),
    ("second mailbox named by index",
     edited(intake__imap=[IMAP, dict(IMAP, host="b.example.test", security="tls")]),
     ["intake.imap[1].security: expected one of ssl, starttls, none, got 'tls'"]),
    ("relay security choice",
     edited(outgoing={"smtp": dict(RELAY, security="ssl3")}),
     ["outgoing.smtp.security: expected one of ssl, starttls, none, got 'ssl3'"]),
    ("bad desk address",
     edited(desk__address="service desk"),
     ["desk.address: expected an email address like desk@example.org, got 'service desk'"]),
    ("typo at the top",
     edited(loging={"level": "info"}),
     ["loging: unknown key (expected one of: database, desk, intake, outgoing, templates, "
      "storage, limits, logging, groups, new_tickets_to, escalation, "
      "agents_require_authentication, trusted_authserv_ids, sla, directory, "
      "report_notes_address, reports, outages, web)"]),
    ("typo in a mailbox",
     edited(intake__imap=[dict(IMAP, passwd="x")]),
     ["intake.imap[0].passwd: unknown key (expected one of: host, port, security, username, "
      "password, folder, processed_folder, quarantine_folder, idle, poll_interval, idle_renew, "
      "batch_size, timeout)"]),
    ("typo in retry",
     edited(outgoing__retry={"max_attempt": 3}),
     ["outgoing.retry.max_attempt: unknown key (expected one of: base_seconds, max_seconds, "
      "max_attempts)"]),
    ("missing database",
     edited(database=_DELETE),
     ["database: missing (required)"]),
    ("missing desk address",
     edited(desk={"name": "Desk"}),
     ["desk.address: missing (required)"]),
    ("missing desk",
     edited(desk=_DELETE),
     ["desk: missing (a mapping is required)"]),
    ("missing outgoing",
     edited(outgoing=_DELETE),
     ["outgoing: missing (a mapping is required)"]),
    ("smtp and maildir both",
     edited(outgoing__smtp=RELAY),
     ["outgoing: give either smtp or maildir, not both"]),
    ("neither smtp nor maildir",
     edited(outgoing={"retry": {"max_attempts": 3}}),
     ["outgoing: give either smtp (a relay) or maildir (a local folder)"]),
    ("listen without a port",
     edited(intake__smtp__listen="localhost"),
     ["intake.smtp.listen: expected HOST:PORT such as 127.0.0.1:8025, got 'localhost'"]),
    ("listen port out of range",
     edited(intake__smtp__listen="127.0.0.1:99999"),
     ["intake.smtp.listen: must be at most 65535, got 99999"]),
    ("intake protocol",
     edited(intake__smtp__protocol="esmtp"),
     ["intake.smtp.protocol: expected one of smtp, lmtp, got 'esmtp'"]),
    ("no intake at all",
     edited(intake=_DELETE),
     ["intake: no intake configured: give intake.imap, intake.smtp or both"]),
    ("empty intake",
     edited(intake={"imap": []}),
     ["intake: no intake configured: give intake.imap, intake.smtp or both"]),
    ("imap not a list",
     edited(intake__imap="imap.example.test"),
     ["intake.imap: expected a list of mailboxes, got 'imap.example.test'"]),
    ("imap entry not a mapping",
     edited(intake__imap=["imap.example.test"]),
     ["intake.imap[0]: expected a mapping, got 'imap.example.test'"]),
    ("imap without login",
     edited(intake__imap=[{"host": "imap.example.test"}]),
     ["intake.imap[0].password: missing (required)",
      "intake.imap[0].username: missing (required)"]),
    ("same mailbox twice",
     edited(intake__imap=[IMAP, dict(IMAP, port=993)]),
     ["intake.imap: the same mailbox (host, port, username, folder) is listed twice"]),
    ("idle not a boolean",
     edited(intake__imap=[dict(IMAP, idle="sometimes")]),
     ["intake.imap[0].idle: expected true or false, got 'sometimes'"]),
    ("poll interval not a number",
     edited(intake__imap=[dict(IMAP, poll_interval="often")]),
     ["intake.imap[0].poll_interval: expected a number, got 'often'"]),
    ("bad size unit",
     edited(limits={"max_message_size": "25 XB"}),
     ["limits.max_message_size: expected a size such as 25 MB, got '25 XB'"]),
    ("zero size",
     edited(limits={"max_message_size": "0 MB"}),
     ["limits.max_message_size: must be at least 1 byte, got '0 MB'"]),
    ("username without password",
     edited(outgoing={"smtp": dict(RELAY, username="desk")}),
     ["outgoing.smtp: username and password go together: give both or neither"]),
    ("password without username",
     edited(outgoing={"smtp": dict(RELAY, password="pw")}),
     ["outgoing.smtp: username and password go together: give both or neither"]),
    ("relay without host",
     edited(outgoing={"smtp": {"port": 25}}),
     ["outgoing.smtp.host: missing (required)"]),
    ("negative reopen window",
     edited(desk__reopen_window_days=-1),
     ["desk.reopen_window_days: must be at least 0, got -1"]),
    ("reopen window a boolean",
     edited(desk__reopen_window_days=True),
     ["desk.reopen_window_days: expected an integer, got true"]),
    ("ticket prefix",
     edited(desk__ticket_prefix="#1"),
     ["desk.ticket_prefix: expected letters, digits, '-' or '_' (starting with a letter, at "
      "most 20), got '#1'"]),
    ("retry cap below base",
     edited(outgoing__retry={"base_seconds": 60, "max_seconds": 10}),
     ["outgoing.retry.max_seconds: must be at least base_seconds (60)"]),
    ("retry attempts",
     edited(outgoing__retry={"max_attempts": 0}),
     ["outgoing.retry.max_attempts: must be at least 1, got 0"]),
    ("database scheme",
     edited(database="mysql://desk@db/desk"),
     ["database: expected sqlite:///PATH or postgresql://USER@HOST/DB, "
      "got 'mysql://desk@db/desk'"]),
    ("log level",
     edited(logging={"level": "verbose"}),
     ["logging.level: expected one of debug, info, warning, error, got 'verbose'"]),
    ("section not a mapping",
     edited(limits=["25 MB"]),
     ["limits: expected a mapping, got a list"]),
    ("templates folder missing",
     edited(templates="no-such-templates"),
     ["templates: no such directory: {cwd}/no-such-templates"]),
    ("missing variable names it and the key",
     edited(intake__imap=[dict(IMAP, password="${DESK_IMAP_PASSWORD}")]),
     ["intake.imap[0].password: environment variable DESK_IMAP_PASSWORD is not set"]),
    ("two missing variables in one value",
     edited(database="postgresql://${DB_USER}:${DB_PASSWORD}@db/desk"),
     ["database: environment variable DB_USER is not set",
      "database: environment variable DB_PASSWORD is not set"]),
]


@pytest.mark.parametrize("data, expected", [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_each_problem_names_file_key_and_what_is_wrong(write, workdir, data, expected):
    path = write(data)
    problems = problems_of(path)
    assert problems == [f"{path}: {line.format(cwd=workdir)}" for line in expected]


def test_several_problems_are_reported_at_once(write):
    path = write(edited(
        database=_DELETE,
        desk__address="nobody",
        intake__imap=[dict(IMAP, port="abc", password="${NOPE}")],
        outgoing__smtp=RELAY,
        limits={"max_message_size": "25 XB", "acks_per_hour": 3},
    ))
    assert problems_of(path) == [f"{path}: {p}" for p in [
        "database: missing (required)",
        "desk.address: expected an email address like desk@example.org, got 'nobody'",
        "intake.imap[0].password: environment variable NOPE is not set",
        "intake.imap[0].port: expected an integer, got 'abc'",
        "outgoing: give either smtp or maildir, not both",
        "limits.acks_per_hour: unknown key (expected one of: max_message_size, "
        "auto_replies_per_recipient_per_hour, auto_replies_per_hour, max_attachments, "
        "max_attachment_size, max_mime_depth, max_header_size)",
        "limits.max_message_size: expected a size such as 25 MB, got '25 XB'",
    ]]


# --- problems with the file as a whole ---------------------------------------------------------

def test_missing_file(workdir):
    path = workdir / "nope.yaml"
    assert problems_of(path) == [f"{path}: no such config file"]


@pytest.mark.parametrize("text, expected", [
    ("database: sqlite:///x.db\ndesk: [unclosed\n", "line 3, column 1: not valid YAML: "),
    ("desk:\n  name: a\n address: b\n", "line 3, column 2: not valid YAML: "),
    ("desk:\n\tname: a\n", "line 2, column 1: not valid YAML: found character '\\t'"),
    ("database: a\ndesk: {}\ndatabase: b\n",
     "line 3, column 1: not valid YAML: duplicate key 'database'"),
    ("desk:\n  address: a@b.c\n  address: d@e.f\n",
     "line 3, column 3: not valid YAML: duplicate key 'address'"),
], ids=["unclosed flow", "bad indent", "tab", "duplicate top key", "duplicate nested key"])
def test_invalid_yaml_names_line_and_column(write, text, expected):
    path = write(text)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: {expected}")


@pytest.mark.parametrize("text, shown", [
    ("- database\n- desk\n", "a list"),
    ("just words\n", "'just words'"),
    ("42\n", "42"),
])
def test_top_level_must_be_a_mapping(write, text, shown):
    path = write(text)
    assert problems_of(path) == [f"{path}: the top level must be a mapping of keys, got {shown}"]


def test_empty_file_lists_what_is_required(write):
    path = write("# nothing yet\n")
    assert problems_of(path) == [f"{path}: {p}" for p in [
        "database: missing (required)",
        "desk: missing (a mapping is required)",
        "intake: no intake configured: give intake.imap, intake.smtp or both",
        "outgoing: missing (a mapping is required)",
    ]]


def test_yaml_merge_keys_may_be_overridden(write):
    # '<<' brings keys in; a key written after it overrides on purpose: not a duplicate.
    path = write("""
database: sqlite:///desk.db
desk: {address: desk@example.test}
outgoing: {maildir: sent}
intake:
  imap:
    - &box {host: imap.example.test, username: desk, password: pw}
    - {<<: *box, folder: Other}
""")
    settings = load(path, environ={})
    assert [b.folder for b in settings.intake.imap] == ["INBOX", "Other"]


# --- environment variables and secrets ---------------------------------------------------------

def test_variables_expand_and_secrets_stay_hidden(write):
    path = write(edited(
        intake__imap=[dict(IMAP, host="${IMAP_HOST}", port="${IMAP_PORT}",
                           password="${DESK_IMAP_PASSWORD}")],
        outgoing={"smtp": dict(RELAY, username="desk", password="${DESK_SMTP_PASSWORD}")},
        database="postgresql://desk:${DESK_DB_PASSWORD}@db.example.test/desk",
    ))
    environ = {"IMAP_HOST": "imap.example.test", "IMAP_PORT": "1993",
               "DESK_IMAP_PASSWORD": "imap-hunter2", "DESK_SMTP_PASSWORD": "smtp-hunter2",
               "DESK_DB_PASSWORD": "db-hunter2"}
    settings = load(path, environ=environ)
    box = settings.intake.imap[0]
    assert (box.host, box.port) == ("imap.example.test", 1993)
    assert box.password.value == "imap-hunter2"
    assert settings.outgoing.smtp.password.value == "smtp-hunter2"
    assert settings.database == "postgresql://desk:db-hunter2@db.example.test/desk"
    assert "***" in repr(box.password) and "***" in str(box.password)
    for shown in (repr(settings), str(settings), repr(box), repr(settings.outgoing)):
        assert "hunter2" not in shown


@pytest.mark.parametrize("raw, expanded", [
    ("pa$$word", "pa$word"),
    ("$${NOT_A_VAR}", "${NOT_A_VAR}"),
    ("${A}-${B}", "one-two"),
    ("${A}$$${B}", "one$two"),
    ("lone $ sign", "lone $ sign"),
])
def test_dollar_escapes(write, raw, expanded):
    path = write(edited(desk__name=raw))
    assert load(path, environ={"A": "one", "B": "two"}).desk.name == expanded


def test_process_environment_is_used_by_default(write, monkeypatch):
    monkeypatch.setenv("DESK_TEST_NAME", "From Env")
    path = write(edited(desk__name="${DESK_TEST_NAME}"))
    assert load(path).desk.name == "From Env"


def test_settings_are_frozen(write):
    settings = load(write(MINIMAL), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.database = "sqlite:///other.db"  # type: ignore[misc]


# --- defaults ----------------------------------------------------------------------------------

@pytest.mark.parametrize("security, port", [(None, 993), ("ssl", 993), ("starttls", 143),
                                            ("none", 143), ("STARTTLS", 143)])
def test_imap_port_follows_security(write, security, port):
    box = dict(IMAP) if security is None else dict(IMAP, security=security)
    settings = load(write(edited(intake__imap=[box])), environ={})
    assert settings.intake.imap[0].port == port
    assert settings.intake.imap[0].security == (security or "ssl").lower()


@pytest.mark.parametrize("security, port", [(None, 587), ("starttls", 587), ("ssl", 465),
                                            ("none", 25)])
def test_relay_port_follows_security(write, security, port):
    relay = dict(RELAY) if security is None else dict(RELAY, security=security)
    settings = load(write(edited(outgoing={"smtp": relay})), environ={})
    assert settings.outgoing.smtp.port == port
    assert settings.outgoing.smtp.security == (security or "starttls")
    assert (settings.outgoing.smtp.username, settings.outgoing.smtp.password) == (None, None)


def test_explicit_port_wins(write):
    settings = load(write(edited(intake__imap=[dict(IMAP, port=10993)])), environ={})
    assert settings.intake.imap[0].port == 10993


def test_defaults_for_everything_optional(write, workdir):
    settings = load(write(edited(intake__imap=[IMAP])), environ={})
    assert settings.desk == config.DeskSettings("Service Desk", "desk@example.test", "DESK", 30)
    box = settings.intake.imap[0]
    assert (box.folder, box.processed_folder, box.quarantine_folder) == \
        ("INBOX", "Processed", "Quarantine")
    assert (box.idle, box.poll_interval, box.idle_renew, box.batch_size, box.timeout) == \
        (True, 60.0, 600.0, 50, 60.0)
    assert box.label == "imap://desk@imap.example.test:993/INBOX"
    assert settings.intake.smtp == config.SmtpIntake("127.0.0.1", 8025, "smtp")
    out = settings.outgoing
    assert (out.retry_base, out.retry_max, out.max_attempts) == (30.0, 3600.0, 20)
    assert settings.limits == config.Limits(25 * 1024 * 1024, 5)
    assert settings.logging == config.LoggingSettings("INFO", None)
    assert settings.templates is None
    assert settings.storage == workdir / "var" / "store"


def test_a_single_mailbox_mapping_is_a_list_of_one(write):
    settings = load(write(edited(intake__imap=IMAP)), environ={})
    assert [b.host for b in settings.intake.imap] == ["imap.example.test"]


def test_desk_address_is_lowercased(write):
    settings = load(write(edited(desk__address="Desk@Example.TEST")), environ={})
    assert settings.desk.address == "desk@example.test"


@pytest.mark.parametrize("listen, host, port", [
    ("127.0.0.1:8025", "127.0.0.1", 8025),
    ("0.0.0.0:25", "0.0.0.0", 25),
    ("[::1]:8025", "::1", 8025),
    ("mx.example.test:24", "mx.example.test", 24),
])
def test_listen_forms(write, listen, host, port):
    settings = load(write(edited(intake__smtp={"listen": listen, "protocol": "lmtp"})), environ={})
    assert settings.intake.smtp == config.SmtpIntake(host, port, "lmtp")


@pytest.mark.parametrize("size, expected", [
    (1000, 1000),
    ("1000", 1000),
    ("512 KB", 512 * 1024),
    ("25 MB", 25 * 1024 ** 2),
    ("25MB", 25 * 1024 ** 2),
    ("10m", 10 * 1024 ** 2),
    ("1.5 GB", int(1.5 * 1024 ** 3)),
])
def test_sizes(write, size, expected):
    settings = load(write(edited(limits={"max_message_size": size})), environ={})
    assert settings.limits.max_message_bytes == expected


# --- paths -------------------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_working_directory(write, workdir):
    (workdir / "my-templates").mkdir()
    path = write(edited(outgoing__maildir="var/sent", storage="data/store",
                        templates="my-templates", logging={"file": "log/desk.log"}))
    settings = load(path, environ={})
    assert settings.outgoing.maildir == workdir / "var" / "sent"
    assert settings.storage == workdir / "data" / "store"
    assert settings.templates == workdir / "my-templates"
    assert settings.logging.file == workdir / "log" / "desk.log"
    for p in (settings.outgoing.maildir, settings.storage, settings.templates,
              settings.logging.file):
        assert p.is_absolute()


def test_home_is_expanded(write, workdir, monkeypatch):
    monkeypatch.setenv("HOME", str(workdir / "home"))
    settings = load(write(edited(storage="~/store")), environ={})
    assert settings.storage == workdir / "home" / "store"


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///desk.db", "sqlite:///{cwd}/desk.db"),
    ("sqlite:///var/mailticket.db", "sqlite:///{cwd}/var/mailticket.db"),
    ("sqlite:////srv/desk/desk.db", "sqlite:////srv/desk/desk.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("postgresql://desk@db.example.test/desk", "postgresql://desk@db.example.test/desk"),
    ("postgres://desk@db.example.test:5433/desk", "postgres://desk@db.example.test:5433/desk"),
])
def test_database_urls(write, workdir, url, expected):
    settings = load(write(edited(database=url)), environ={})
    assert settings.database == expected.format(cwd=workdir)


# --- which file --------------------------------------------------------------------------------

def test_mailticket_config_variable_selects_the_file(write, workdir):
    chosen = write(edited(desk__name="Chosen"), name="chosen.yaml")
    settings = load(environ={config.CONFIG_ENV_VAR: str(chosen)})
    assert settings.path == chosen
    assert settings.desk.name == "Chosen"


def test_explicit_path_beats_the_variable(write):
    chosen = write(edited(desk__name="Explicit"), name="explicit.yaml")
    other = write(edited(desk__name="Other"), name="other.yaml")
    settings = load(chosen, environ={config.CONFIG_ENV_VAR: str(other)})
    assert settings.desk.name == "Explicit"


def test_without_the_variable_the_default_path_is_read(write, workdir):
    (workdir / "config").mkdir(exist_ok=True)
    write(edited(desk__name="Default Path"), name="config/mailticket.yaml")
    settings = load(environ={})
    assert settings.path == config.DEFAULT_CONFIG_PATH
    assert settings.desk.name == "Default Path"


def test_variable_pointing_nowhere_names_that_file(workdir):
    missing = workdir / "elsewhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load(environ={config.CONFIG_ENV_VAR: str(missing)})
    assert caught.value.problems == [f"{missing}: no such config file"]


def test_desk_aliases_are_our_own_addresses(tmp_path):
    from mailticket import config as configmod

    path = tmp_path / "c.yaml"
    path.write_text("database: sqlite:///x.db\n"
                    "desk: {address: Desk@Example.org, aliases: [help@example.org, IT@example.org]}\n"
                    "intake: {smtp: {listen: '127.0.0.1:8025'}}\noutgoing: {maildir: sent}\n")
    desk = configmod.load(path, environ={}).desk
    assert desk.own_addresses == {"desk@example.org", "help@example.org", "it@example.org"}
    path.write_text(path.read_text().replace("[help@example.org, IT@example.org]", "[nope]"))
    with pytest.raises(configmod.ConfigError, match=r"desk.aliases\[0\]: expected an email address"):
        configmod.load(path, environ={})


def test_limits_and_desk_policy_keys(write):
    settings = load(write(edited(
        desk__outsider_mail="new_ticket", desk__alerts_to=["lead@example.org"],
        limits={"auto_replies_per_recipient_per_hour": 2, "auto_replies_per_hour": 50,
                "max_attachments": 3, "max_attachment_size": "1 MB", "max_mime_depth": 5,
                "max_header_size": "8 KB"})), environ={})
    assert (settings.desk.outsider_mail, settings.desk.alerts_to) == ("new_ticket",
                                                                      ("lead@example.org",))
    assert settings.limits == config.Limits(
        max_message_bytes=25 * 1024 ** 2, auto_replies_per_recipient_per_hour=2,
        auto_replies_per_hour=50, max_attachments=3, max_attachment_bytes=1024 ** 2,
        max_mime_depth=5, max_header_bytes=8 * 1024)


def test_limits_and_desk_policy_defaults(write):
    settings = load(write(edited()), environ={})
    assert (settings.desk.outsider_mail, settings.desk.alerts_to) == ("note", ())
    assert settings.limits == config.Limits()
    assert (settings.limits.auto_replies_per_recipient_per_hour,
            settings.limits.auto_replies_per_hour) == (5, 1000)


@pytest.mark.parametrize("edit, problem", [
    (dict(desk__outsider_mail="ignore"),
     "desk.outsider_mail: expected one of note, new_ticket, got 'ignore'"),
    (dict(desk__alerts_to="lead@example.org"),
     "desk.alerts_to: expected a list of addresses, got 'lead@example.org'"),
    (dict(desk__alerts_to=["nobody"]),
     "desk.alerts_to[0]: expected an email address like desk@example.org, got 'nobody'"),
    (dict(limits={"max_mime_depth": 0}), "limits.max_mime_depth: "),
    (dict(limits={"auto_replies_per_hour": -1}), "limits.auto_replies_per_hour: "),
])
def test_bad_policy_and_limit_values_are_named(write, edit, problem):
    path = write(edited(**edit))
    [found] = problems_of(path)
    assert found.startswith(f"{path}: {problem}")


GROUPS_OK = {"desk": {"level": 1, "members": ["Ada <ada@example.org>"]},
             "net": {"level": 2, "members": ["nora@example.org"], "address": "net@example.org"},
             "lead": {"level": 3, "members": ["Lee <lee@example.org>"]}}


def test_groups_escalation_and_new_tickets_to(write):
    settings = load(write(edited(groups=GROUPS_OK, escalation={"desk": ["net"]})), environ={})
    process = settings.process
    assert process.new_tickets_to == "desk"  # the first level 1 group
    assert process.group("NET") == config.Group("net", 2, (config.Agent("", "nora@example.org"),),
                                                "net@example.org")
    assert process.escalates_to("desk") == ("net",)
    assert process.escalates_to("net") == ("lead",)  # not listed: every higher level
    assert process.escalates_to("lead") == ()
    # In the file's order (the test writes its keys sorted).
    assert [str(a) for a in process.agents] == ["Ada <ada@example.org>", "Lee <lee@example.org>",
                                                "nora@example.org"]


@pytest.mark.parametrize("edit, problem", [
    (dict(new_tickets_to="moon"), "new_tickets_to: no such group: 'moon' (groups: desk, lead, net)"),
    (dict(escalation={"net": ["desk"]}),
     "escalation.net[0]: escalation goes up: desk is level 1, net level 2"),
    (dict(escalation={"desk": ["desk"]}), "escalation.desk[0]: a group cannot escalate to itself"),
    (dict(escalation={"desk": ["moon"]}), "escalation.desk[0]: no such group: 'moon'"),
    (dict(escalation={"moon": ["desk"]}), "escalation.moon: no such group: 'moon'"),
    (dict(groups=dict(GROUPS_OK, x={"level": 4, "members": ["a@example.org"]})),
     "groups.x.level: "),
    (dict(groups=dict(GROUPS_OK, x={"level": 2})),
     "groups.x: a group needs members or an address (or both)"),
    (dict(groups=dict(GROUPS_OK, x={"level": 2, "members": ["Ann <ann@example.org"]})),
     "groups.x.members[0]: expected an agent like 'Ada Lovelace <ada@example.org>', got "
     "'Ann <ann@example.org'"),
    (dict(groups=dict(GROUPS_OK, x={"level": 2, "address": "net@example.org"})),
     "groups.x.address: net@example.org is already the address of group net"),
    (dict(groups=dict(GROUPS_OK, x={"level": 2, "members": ["a@example.org"], "lvl": 1})),
     "groups.x.lvl: unknown key (expected one of: level, members, address)"),
    (dict(groups={"9x": {"level": 1, "members": ["a@example.org"]}}),
     "groups.9x: a group name is a letter, then up to 39 letters, digits, '-' or '_'"),
])
def test_bad_groups_are_named(write, edit, problem):
    edit = dict(edit)
    edit.setdefault("groups", GROUPS_OK)
    path = write(edited(**edit))
    found = problems_of(path)
    assert any(p.startswith(f"{path}: {problem}") for p in found), found


def test_agent_authentication_keys(write):
    settings = load(write(edited(agents_require_authentication=True,
                                 trusted_authserv_ids=["MX.example.org"],
                                 desk__comment_address="Desk-Comment@example.org")), environ={})
    assert settings.process.agents_require_authentication
    assert settings.process.trusted_authserv_ids == frozenset({"mx.example.org"})
    assert "desk-comment@example.org" in settings.desk.own_addresses  # never answered, never a Cc
    path = write(edited(agents_require_authentication=True))
    assert problems_of(path) == [
        f"{path}: agents_require_authentication: true needs trusted_authserv_ids: the servers "
        "whose Authentication-Results count"]
    path = write(edited(trusted_authserv_ids="mx.example.org"))
    assert problems_of(path) == [
        f"{path}: trusted_authserv_ids: expected a list of server ids like mx.example.org, "
        "got 'mx.example.org'"]


def test_sla_and_calendar(write):
    settings = load(write(edited(sla={
        "first_response": "4 hours", "warn_before": "30 minutes",
        "verify_close_after": "2 business days",
        "calendar": {"timezone": "Europe/Berlin", "days": "mon-thu", "hours": "08:00-16:00",
                     "holidays": ["2026-12-24"]}})), environ={})
    sla = settings.sla
    assert str(sla.first_response) == "4 hours" and str(sla.verify_close_after) == "2 business days"
    assert sla.warn_before.total_seconds() == 1800
    assert sla.calendar.timezone == "Europe/Berlin" and sla.calendar.days == frozenset({0, 1, 2, 3})
    assert load(write(edited()), environ={}).sla == config.Sla()


@pytest.mark.parametrize("edit, problem", [
    (dict(sla={"first_response": "2 days"}), "sla.first_response: expected a business duration"),
    (dict(sla={"warn_before": "soon"}), "sla.warn_before: "),
    (dict(sla={"calendar": {"hours": "7-17"}}), "sla.calendar.hours: expected HH:MM-HH:MM"),
    (dict(sla={"calendar": {"timezone": "Mars/Olympus"}}), "sla.calendar.timezone: "),
    (dict(sla={"calendar": {"weekdays": "mon-fri"}}), "sla.calendar.weekdays: unknown key"),
    (dict(directory="nowhere.yaml"), "no such directory file"),
])
def test_bad_sla_and_directory_values_are_named(write, workdir, edit, problem):
    path = write(edited(**edit))
    found = problems_of(path)
    assert any(problem in p for p in found), found


def test_reports(write):
    settings = load(write(edited(reports={
        "morning": {"at": "07:30", "to": ["r@example.org"], "title": "Morning"},
        "weekly": {"at": 450, "days": ["mon"], "to": ["r@example.org"], "timezone": "UTC"},
        "grace": "90 minutes", "old_ticket_days": 14})), environ={})
    reports = settings.reports
    assert (reports.grace.total_seconds(), reports.old_ticket_days) == (5400, 14)
    morning, weekly = reports.get("morning"), reports.get("weekly")
    assert (morning.at.hour, morning.at.minute, morning.days, morning.timezone) == (
        7, 30, frozenset({0, 1, 2, 3, 4}), "UTC")
    assert (weekly.at.hour, weekly.at.minute, weekly.days) == (7, 30, frozenset({0}))  # 07:30
    assert weekly.title == "Weekly"
    assert load(write(edited()), environ={}).reports == config.Reports()


@pytest.mark.parametrize("entry, problem", [
    ({"at": "7.30", "to": ["r@example.org"]}, "reports.r.at: expected a time of day like '07:30'"),
    ({"to": ["r@example.org"]}, "reports.r.at: missing (required)"),
    ({"at": "07:30"}, "reports.r.to: missing (a list of addresses is required)"),
    ({"at": "07:30", "to": ["r@example.org"], "days": "someday"}, "reports.r.days: "),
    ({"at": "07:30", "to": ["r@example.org"], "when": 1}, "reports.r.when: unknown key"),
])
def test_bad_reports_are_named(write, entry, problem):
    path = write(edited(reports={"r": entry}))
    found = problems_of(path)
    assert any(p.startswith(f"{path}: {problem}") for p in found), found


def test_a_report_for_one_agency(write):
    settings = load(write(edited(reports={"spd": {
        "at": "08:00", "to": ["chief@example.org"], "agency": "Springfield Police Department"}})),
        environ={})
    assert settings.reports.get("spd").agency == "Springfield Police Department"


def test_a_report_may_be_named_like_any_key_but_the_settings(write):
    """Every key of ``reports`` other than grace and old_ticket_days names a report, even one
    that is called like the list the loader keeps them in."""
    settings = load(write(edited(reports={"schedules": {"at": "07:30", "to": ["r@example.org"]}})),
                    environ={})
    assert [s.name for s in settings.reports.schedules] == ["schedules"]
