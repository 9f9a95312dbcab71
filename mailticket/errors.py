"""The exception tree: every error mailticket raises on purpose is a MailticketError.

Only ``cli`` turns these into exit codes and one-line messages.
"""


class MailticketError(Exception):
    """Base of every error we raise on purpose."""


class ConfigError(MailticketError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` lists every problem found, each already naming the file and key.
    """

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemporaryFailure(MailticketError):
    """Something that may work later (a server down, a lock held): retry."""


class PermanentFailure(MailticketError):
    """Something that will never work as asked (a 5xx, a message over the size limit)."""


class UnknownTicket(MailticketError):
    """A ticket number that does not exist."""

    def __init__(self, number: int):
        self.number = number
        super().__init__(f"no ticket #{number}")


class InvalidRequest(MailticketError):
    """A request that makes no sense for the ticket's state (closing a closed ticket...)."""


class UnknownOutage(InvalidRequest):
    """An outage number that does not exist (an invalid request: an agent's ``#outage 99``
    is reported back to the agent, like any other command that cannot be done)."""

    def __init__(self, number: int):
        self.number = number
        super().__init__(f"no outage #{number}")


class UnknownSpike(InvalidRequest):
    """A spike number that does not exist (the number in a spike alert's command)."""

    def __init__(self, number: int):
        self.number = number
        super().__init__(f"no spike #{number} (its number is in the alert's subject and "
                         "command: mailticket outage open TITLE --from-spike N)")


def describe(exc: BaseException, limit: int = 2000, *, text: str | None = None,
             prefix: bool | None = None) -> str:
    """One line about an error for a log, a quarantine row or an outbox row.

    Our own errors say what they say; anything else is prefixed with its class, since
    "[Errno 28] No space left" means little without "OSError". A timeout says "timed out".
    Whitespace runs become one space; the error's own text longer than ``limit`` characters is
    cut with "..." (before the class name goes in front of it).

    A protocol's describer redacts first and passes what may be shown as ``text`` (then the
    timeout shortcut is its own business); ``prefix`` True or False overrides "prefixed unless
    ours" (SMTP replies read better without "SMTPServerDisconnected: ").
    """
    if text is None:
        if isinstance(exc, TimeoutError):
            return "timed out"
        text = str(exc)
    name = exc.__class__.__name__
    text = " ".join(text.split()) or name
    if len(text) > limit:
        text = text[:limit] + "..."
    if prefix is None:
        prefix = not isinstance(exc, MailticketError)
    return f"{name}: {text}" if prefix and text != name else text
