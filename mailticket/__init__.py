"""mailticket: a service desk that people reach by email."""

__version__ = "0.1.0"
