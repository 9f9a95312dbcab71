"""The desk's procedure as configured: support groups and their agents, where new tickets go and
who escalates to whom, and when an agent's mail counts as the agent's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mailticket.config import values as v
from mailticket.config.declare import Scope, custom, items, named, setting
from mailticket.config.reader import Reader


@dataclass(frozen=True)
class Agent:
    name: str       # as the admin wrote it; may be ""
    address: str    # lower case

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


def _agent(value: Any) -> Agent:
    return Agent(*v.agent(value))


@dataclass(frozen=True)
class Group:
    """A support group: level 1 is the service desk, 2 the support groups, 3 the service lead."""

    name: str                       # the admin's key, e.g. "network"
    level: int = setting(v.integer(1, 3), help="1, 2 or 3")
    members: tuple[Agent, ...] = items(_agent, what="agents",
                                       help='"Name <address>" or a bare address')
    address: str | None = setting(v.address, None,
                                  help="the group's own address: its mail goes there")

    @property
    def recipients(self) -> tuple[str, ...]:
        """Where mail for the group goes: its address, else every member."""
        return (self.address,) if self.address else tuple(m.address for m in self.members)

    @staticmethod
    def check_config(raw: Mapping[str, Any], values: Scope) -> Iterator[tuple[str, str]]:
        if not values["members"] and values["address"] is None:
            yield "", "a group needs members or an address (or both)"


def _first_level_one(scope: Scope) -> str | None:
    return next((g.name for g in scope["groups"] if g.level == 1), None)


def _is_a_group(name: str, scope: Scope) -> str | None:
    names = {g.name for g in scope["groups"]}
    if name in names:
        return None
    return f"no such group: {name!r} (groups: {', '.join(sorted(names)) or 'none'})"


def _read_escalation(r: Reader, raw: Any, where: str,
                     scope: Scope) -> tuple[tuple[str, tuple[str, ...]], ...]:
    levels = {g.name: g.level for g in scope["groups"]}
    found = []
    for source, targets in (r.mapping(where, raw, None) or {}).items():
        key = f"{where}.{source}"
        if source not in levels:
            r.problem(key, f"no such group: {source!r}")
            continue
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list):
            r.problem(key, f"expected a list of groups, got {v.show(targets)}")
            continue
        found.append((source, tuple(_escalation_targets(r, key, source, targets, levels))))
    return tuple(found)


def _escalation_targets(r: Reader, key: str, source: str, targets: list[Any],
                        levels: dict[str, int]) -> Iterator[str]:
    for i, target in enumerate(targets):
        if target not in levels:
            r.problem(f"{key}[{i}]", f"no such group: {target!r}")
        elif target == source:
            r.problem(f"{key}[{i}]", "a group cannot escalate to itself")
        elif None not in (levels[target], levels[source]) and levels[target] < levels[source]:
            r.problem(f"{key}[{i}]", f"escalation goes up: {target} is level "
                                     f"{levels[target]}, {source} level {levels[source]}")
        else:
            yield target


@dataclass(frozen=True)
class Process:
    """The desk's procedure: its groups, where new tickets go and who escalates to whom."""

    groups: tuple[Group, ...] = named(Group, what="group", help="the support groups, by name")
    new_tickets_to: str | None = setting(
        v.string, None, default_from=_first_level_one, check=_is_a_group,
        help="the group new tickets go to; default: the first level 1 group")
    escalation: tuple[tuple[str, tuple[str, ...]], ...] = custom(
        _read_escalation, (), help="the groups each group may escalate to; default: every "
                                   "higher level")
    # Mail from an agent's address counts as the agent's only with a DKIM/SPF/DMARC pass in an
    # Authentication-Results header of one of these servers (mail/authres.py).
    agents_require_authentication: bool = setting(
        v.boolean, False, help="an agent's mail needs a pass from trusted_authserv_ids")
    trusted_authserv_ids: frozenset[str] = setting(
        v.server_ids, frozenset(), help="the authserv-ids of the site's border mail servers")

    @staticmethod
    def check_config(raw: Mapping[str, Any], values: Scope) -> Iterator[tuple[str, str]]:
        owner: dict[str, str] = {}
        for group in values["groups"]:
            if group.address is not None and owner.setdefault(group.address,
                                                              group.name) != group.name:
                yield (f"groups.{group.name}.address", f"{group.address} is already the "
                                                       f"address of group {owner[group.address]}")
        if values["agents_require_authentication"] and not values["trusted_authserv_ids"]:
            yield ("agents_require_authentication", "true needs trusted_authserv_ids: the "
                                                    "servers whose Authentication-Results count")

    def agent(self, address: str) -> Agent | None:
        return self._agents_by_address.get(address.lower())

    @cached_property
    def _agents_by_address(self) -> dict[str, Agent]:
        """Asked for every incoming mail: built once."""
        return {a.address: a for a in self.agents}

    def group(self, name: str) -> Group | None:
        wanted = name.strip().lower()
        return next((g for g in self.groups if g.name.lower() == wanted), None)

    def escalates_to(self, name: str) -> tuple[str, ...]:
        """The groups ``name`` may escalate to: as configured, else every higher level."""
        for source, targets in self.escalation:
            if source == name:
                return targets
        group = self.group(name)
        if group is None:
            return ()
        return tuple(g.name for g in self.groups if g.level > group.level)

    @cached_property
    def agents(self) -> tuple[Agent, ...]:
        seen: dict[str, Agent] = {}
        for group in self.groups:
            for member in group.members:
                seen.setdefault(member.address, member)
        return tuple(seen.values())

    def find_agents(self, query: str) -> tuple[Agent, ...]:
        """Agents named by ``query``: an address, a local part or a name (any case)."""
        q = query.strip().lower()
        if "@" in q:
            return tuple(a for a in self.agents if a.address == q)
        exact = tuple(a for a in self.agents
                      if a.address.partition("@")[0] == q or a.name.lower() == q)
        if exact:
            return exact
        return tuple(a for a in self.agents if a.name.lower().split()[:1] == [q])
