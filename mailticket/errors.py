"""The exception tree: every error mailticket raises on purpose is a MailticketError.

Only ``cli.py`` turns these into exit codes and one-line messages.
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
