"""The configuration, a leaf package: the config file read into typed, frozen settings, checked
before anything runs, and what the settings are made of (the business calendar, the directory).

Its modules import nothing of mailticket's but each other and ``mailticket.errors`` (the leaf
rule in tests/test_layers.py allows ``mailticket.logs`` too). Each setting is declared once,
on its settings dataclass (settings.py, process.py, sla.py, outages.py; the machinery in
declare.py), and documented in config/mailticket.example.yaml.
"""

from mailticket.config.calendar import BusinessCalendar, BusinessDuration, CalendarError
from mailticket.config.directory import Directory, DirectoryError
from mailticket.config.loader import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, load
from mailticket.config.outages import Application, Outages, Spike
from mailticket.config.process import Agent, Group, Process
from mailticket.config.settings import (
                                        DeskSettings,
                                        ImapMailbox,
                                        Intake,
                                        Limits,
                                        LoggingSettings,
                                        Outgoing,
                                        OutgoingSmtp,
                                        Secret,
                                        Settings,
                                        SmtpIntake,
                                        Web,
)
from mailticket.config.sla import Reports, ReportSchedule, Sla
from mailticket.errors import ConfigError

__all__ = ["Agent", "Application", "BusinessCalendar", "BusinessDuration", "CONFIG_ENV_VAR",
           "CalendarError", "ConfigError", "DEFAULT_CONFIG_PATH", "Web", "DeskSettings", "Directory",
           "DirectoryError",
           "Group", "ImapMailbox", "Intake", "Limits", "LoggingSettings", "Outgoing",
           "OutgoingSmtp", "Outages", "Process", "ReportSchedule", "Reports", "Secret",
           "Settings", "Sla", "SmtpIntake", "Spike", "load"]
