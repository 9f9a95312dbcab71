"""The ``outages:`` settings: who is told at once when an outage is opened and resolved, the
partners advised of it, the applications an outage may name (with the names agents use for
them and the systems related to them), and the spike of look-alike new tickets that suggests an
outage (desk/spikes.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mailticket.config import values as v
from mailticket.config.declare import Scope, items, named, section, setting
from mailticket.config.directory.entries import fold


@dataclass(frozen=True)
class Application:
    """An application outages name: its key, the other names agents may use (any case), and the
    applications or systems related to it (listed in the outage's impact)."""

    name: str
    names: tuple[str, ...] = items(v.string, what="names",
                                   help="other names agents may give it (any case)")
    related: tuple[str, ...] = items(v.string, what="names",
                                     help="related applications or systems, for the impact")

    def answers_to(self, given: str) -> bool:
        wanted = fold(given)
        return wanted == fold(self.name) or any(wanted == fold(n) for n in self.names)


@dataclass(frozen=True)
class Spike:
    """So many look-alike new tickets (desk/lookalike.py) from distinct users so fast suggest an
    outage: the lead, outages.notify and the desk groups get one alert (desk/spikes.py)."""

    tickets: int = setting(v.integer(2), 5,
                           help="look-alike new tickets from distinct users...")
    within: timedelta = setting(v.plain_duration, timedelta(minutes=15),
                                help="...within this long")


@dataclass(frozen=True)
class Outages:
    notify: tuple[str, ...] = items(
        v.address, what="addresses",
        help="told at once of an outage and of its resolution (the lead, application support)")
    partners: tuple[str, ...] = items(v.address, what="addresses",
                                      help="advised of an outage with --advise-partners")
    applications: tuple[Application, ...] = named(
        Application, what="application", help="the applications outages name, by key")
    spike: Spike = section(Spike, help="the rate of new tickets that suggests an outage")

    @staticmethod
    def check_config(raw: Mapping[str, Any], values: Scope) -> Iterator[tuple[str, str]]:
        owner: dict[str, str] = {}
        for app in values["applications"] or ():
            for name in (app.name, *app.names):
                held = owner.setdefault(fold(name), app.name)
                if held != app.name:
                    yield (f"applications.{app.name}.names",
                           f"{name!r} already names application {held}")

    def application(self, given: str) -> Application | None:
        """The configured application ``given`` names (its key or one of its names)."""
        return next((a for a in self.applications if a.answers_to(given)), None)
