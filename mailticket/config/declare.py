"""Settings declared once: each field of a settings dataclass carries its key, converter, default
and help text, from which the reader takes the allowed keys, the conversions and the defaults.

A field is one of: ``setting`` (one value), ``items`` (a list of values), ``section`` (a mapping
read as another settings dataclass, or ``inline``: its keys beside the parent's), ``entries`` (a
list of mappings), ``named`` (mappings under names of the admin's choosing), ``options`` (a
mapping of a factory's keyword arguments, e.g. the calendar) or ``custom`` (its own reader).
A class may define ``check_config(raw, values)`` yielding ``(key, problem)`` for rules that span
its keys. ``mappings`` lists every mapping and its keys, so a test can hold the example to them.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from typing import Any

from mailticket.config.reader import Reader, join
from mailticket.config.values import show


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # no default: the key must be given
_META = "mailticket.config"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
Scope = Mapping[str, Any]  # the values read so far: this section's, then its parents'


@dataclass(frozen=True, kw_only=True)
class Declared:
    """What every kind of field declares: its help text, its key and when it is read."""

    help: str
    key: str = ""           # the key in the file; "" is the field's name
    first: bool = False     # read before the section's other keys (another's default needs it)
    within: str = ""        # read from this sub-mapping of the section (outgoing.retry)
    default: Any = REQUIRED
    default_from: Callable[[Scope], Any] | None = None  # a default that follows other values
    check: Callable[[Any, Scope], str | None] | None = None  # a problem with the value, or None
    spread: tuple[str, ...] = ()  # the value is a tuple filling these fields (listen: host, port)

    def read(self, r: Reader, mapping: Mapping[str, Any], where: str, scope: Scope) -> Any:
        raw = mapping.get(self.key)
        if raw is None:
            value = self.missing(r, where, scope)
        else:
            value = self.convert(r, raw, where, scope)
        if self.check is not None and value is not None:
            problem = self.check(value, scope)
            if problem:
                r.problem(where, problem)
        return value

    def missing(self, r: Reader, where: str, scope: Scope) -> Any:
        if self.default_from is not None:
            return self.default_from(scope)
        if self.default is REQUIRED:
            r.problem(where, "missing (required)")
            return None
        return self.default

    def convert(self, r: Reader, raw: Any, where: str, scope: Scope) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Value(Declared):
    converter: Callable[[Any], Any]

    def convert(self, r: Reader, raw: Any, where: str, scope: Scope) -> Any:
        return r.convert(where, raw, self.converter)


@dataclass(frozen=True, kw_only=True)
class Items(Declared):
    converter: Callable[[Any], Any]
    what: str               # "addresses": "expected a list of addresses"
    required: str = ""      # the problem when the list is empty

    def read(self, r: Reader, mapping: Mapping[str, Any], where: str, scope: Scope) -> Any:
        raw = mapping.get(self.key) or []
        if not isinstance(raw, list):
            r.problem(where, f"expected a list of {self.what}, got {show(raw)}")
            return ()
        found = []
        for i, item in enumerate(raw):
            at = f"{where}[{i}]"
            if item is None:
                r.problem(at, "missing (required)")
                continue
            value = r.convert(at, item, self.converter)
            if value is not None:
                found.append(value)
        if self.required and not found:
            r.problem(where, self.required)
        return tuple(found)


@dataclass(frozen=True, kw_only=True)
class Section(Declared):
    cls: type
    required: bool = False  # missing: "missing (a mapping is required)"
    optional: bool = False  # missing: None rather than every default
    when_missing: str = ""  # missing: this problem
    inline: bool = False    # its keys are the parent's

    def read(self, r: Reader, mapping: Mapping[str, Any], where: str, scope: Scope) -> Any:
        raw = mapping if self.inline else mapping.get(self.key)
        if raw is not None:
            raw = r.mapping(where, raw, None if self.inline else allowed_keys(self.cls))
            if raw is None:
                return None if self.required or self.optional or self.when_missing else \
                    read_section(r, self.cls, {}, where, scope)
            return read_section(r, self.cls, raw, where, scope)
        if self.required or self.when_missing:
            r.problem(where, self.when_missing or "missing (a mapping is required)")
            return None
        return None if self.optional else read_section(r, self.cls, {}, where, scope)


@dataclass(frozen=True, kw_only=True)
class Entries(Declared):
    """A list of mappings, each read as ``cls``; a single mapping is a list of one."""

    cls: type
    what: str

    def convert(self, r: Reader, raw: Any, where: str, scope: Scope) -> Any:
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list):
            r.problem(where, f"expected a list of {self.what}, got {show(raw)}")
            return ()
        found = []
        for i, entry in enumerate(raw):
            at = f"{where}[{i}]"
            entry = r.mapping(at, entry, allowed_keys(self.cls))
            if entry is not None:
                found.append(read_section(r, self.cls, entry, at, scope))
        return tuple(found)


@dataclass(frozen=True, kw_only=True)
class Named(Declared):
    """Mappings under names the admin chooses, each read as ``cls`` with its ``name``; ``inline``:
    the names are the section's keys other than its declared ones (the reports)."""

    cls: type
    what: str               # "group": "a group name is a letter..."
    hint: str = ""          # the keys shown when an entry is no mapping; "" is every key
    inline: bool = False

    def read(self, r: Reader, mapping: Mapping[str, Any], where: str, scope: Scope) -> Any:
        raw = mapping if self.inline else mapping.get(self.key)  # inline: the names alone
        if raw is not None and not self.inline:
            raw = r.mapping(where, raw, None)
        return tuple(self._entries(r, raw or {}, where, scope))

    def _entries(self, r: Reader, raw: Mapping[Any, Any], where: str,
                 scope: Scope) -> Iterator[Any]:
        hint = self.hint or ", ".join(allowed_keys(self.cls) or ())
        for name, entry in raw.items():
            at = join(where, name)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                r.problem(at, f"a {self.what} name is a letter, then up to 39 letters, digits, "
                              "'-' or '_'")
            elif not isinstance(entry, dict):
                r.problem(at, f"expected a mapping ({hint}), got {show(entry)}")
            else:
                r.mapping(at, entry, allowed_keys(self.cls))
                yield read_section(r, self.cls, entry, at, scope, given={"name": name})


@dataclass(frozen=True, kw_only=True)
class Options(Declared):
    """A mapping of keyword arguments for ``factory``; its ``error`` carries ``part: problem``
    lines, each reported under the part's key."""

    factory: Callable[..., Any]
    error: type[Exception]

    def convert(self, r: Reader, raw: Any, where: str, scope: Scope) -> Any:
        raw = r.mapping(where, raw, self.keys())
        if not raw:
            return self.default
        values = {k: r.expand(join(where, k), v) for k, v in raw.items() if k in self.keys()}
        try:
            return self.factory(**values)
        except self.error as exc:
            for problem in getattr(exc, "problems", (str(exc),)):
                part, _, message = problem.partition(": ")
                r.problem(join(where, part), message)
            return self.default

    def keys(self) -> tuple[str, ...]:
        return tuple(p.name for p in inspect.signature(self.factory).parameters.values()
                     if p.kind is p.KEYWORD_ONLY)


@dataclass(frozen=True, kw_only=True)
class Custom(Declared):
    reader: Callable[[Reader, Any, str, Scope], Any]

    def convert(self, r: Reader, raw: Any, where: str, scope: Scope) -> Any:
        return self.reader(r, raw, where, scope)


# --- the field constructors ---------------------------------------------------------------------

def _field(declared: Declared, in_code: bool, **field_options: Any) -> Any:
    """A dataclass field carrying ``declared``; its default is the constructor's too unless
    ``in_code`` is False (a field that code must give, before others without one)."""
    if in_code and declared.default is not REQUIRED:
        field_options["default"] = declared.default
    return dataclasses.field(metadata={_META: declared}, **field_options)


def setting(converter: Callable[[Any], Any], default: Any = REQUIRED, *, help: str,
            in_code: bool = True, repr: bool = True, kw_only: Any = MISSING,
            **options: Any) -> Any:
    return _field(Value(converter=converter, default=default, help=help, **options), in_code,
                  repr=repr, kw_only=kw_only)


def items(converter: Callable[[Any], Any], *, what: str, help: str, in_code: bool = True,
          kw_only: Any = MISSING, **options: Any) -> Any:
    return _field(Items(converter=converter, what=what, default=(), help=help, **options),
                  in_code, kw_only=kw_only)


def section(cls: type, *, help: str, **options: Any) -> Any:
    declared = Section(cls=cls, help=help, **options)
    if declared.optional:
        return dataclasses.field(default=None, metadata={_META: declared})
    if declared.required or declared.when_missing:
        return dataclasses.field(metadata={_META: declared})
    return dataclasses.field(default_factory=cls, metadata={_META: declared})


def entries(cls: type, *, what: str, help: str, **options: Any) -> Any:
    return _field(Entries(cls=cls, what=what, default=(), help=help, **options), True)


def named(cls: type, *, what: str, help: str, **options: Any) -> Any:
    return _field(Named(cls=cls, what=what, default=(), help=help, **options), True)


def options(factory: Callable[..., Any], default: Any, *, error: type[Exception], help: str,
            **more: Any) -> Any:
    return _field(Options(factory=factory, error=error, default=default, help=help, **more), True)


def custom(reader: Callable[[Reader, Any, str, Scope], Any], default: Any, *, help: str,
           **more: Any) -> Any:
    return _field(Custom(reader=reader, default=default, help=help, **more), True)


# --- reading ------------------------------------------------------------------------------------

def declared_fields(cls: type) -> list[tuple[str, Declared]]:
    """(attribute, declaration) of every declared field of ``cls``, init-only ones included, in
    the order they are declared; the key filled in."""
    found = []
    for name, f in cls.__dataclass_fields__.items():  # type: ignore[attr-defined]
        declared = f.metadata.get(_META)
        if declared is not None:
            if not declared.key:
                declared = dataclasses.replace(declared, key=name)
            found.append((name, declared))
    return found


def allowed_keys(cls: type) -> tuple[str, ...] | None:
    """The keys a mapping read as ``cls`` may hold, in declared order; None when any key may be
    a name (``named(inline=True)``)."""
    keys: list[str] = []
    for _, declared in declared_fields(cls):
        if isinstance(declared, Named) and declared.inline:
            return None
        if isinstance(declared, Section) and declared.inline:
            keys.extend(allowed_keys(declared.cls) or ())
        elif declared.within:
            keys.append(declared.within)
        else:
            keys.append(declared.key)
    return tuple(dict.fromkeys(keys))


def read_section(r: Reader, cls: type, mapping: Mapping[str, Any], where: str, scope: Scope,
                 given: Mapping[str, Any] | None = None) -> Any:
    """An instance of ``cls`` from ``mapping`` (the section at key path ``where``)."""
    return cls(**read_values(r, cls, mapping, where, scope, given))


def read_values(r: Reader, cls: type, mapping: Mapping[str, Any], where: str, scope: Scope,
                given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values of ``cls``'s declared fields, those marked ``first`` first, then in order."""
    values: dict[str, Any] = dict(given or {})
    here = ChainMap(values, scope)  # type: ignore[arg-type]
    fields = declared_fields(cls)
    subs: dict[str, Mapping[str, Any]] = {}
    for name, declared in sorted(fields, key=lambda item: not item[1].first):
        source, at = mapping, where
        if declared.within:
            at = join(where, declared.within)
            if declared.within not in subs:
                subs[declared.within] = _sub_mapping(r, cls, mapping, declared.within, at)
            source = subs[declared.within]
        if isinstance(declared, Named) and declared.inline:
            # The names are every key but the section's other declared ones (so a report may
            # be called like the inline field itself).
            taken = {d.within or d.key for _, d in fields if d is not declared}
            source = {k: v for k, v in mapping.items() if k not in taken}
        inline = isinstance(declared, (Section, Named)) and declared.inline
        value = declared.read(r, source, at if inline else join(at, declared.key), here)
        if declared.spread:
            values.update(zip(declared.spread, value or (None,) * len(declared.spread)))
        else:
            values[name] = value
    check = getattr(cls, "check_config", None)
    if check is not None:
        for key, problem in check(mapping, here):
            r.problem(join(where, key), problem)
    return values


def _sub_mapping(r: Reader, cls: type, mapping: Mapping[str, Any], within: str,
                 where: str) -> Mapping[str, Any]:
    raw = mapping.get(within)
    if raw is None:
        return {}
    keys = tuple(d.key for _, d in declared_fields(cls) if d.within == within)
    return r.mapping(where, raw, keys) or {}


# --- what the example must document -------------------------------------------------------------

def mappings(cls: type, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], bool]]:
    """(key path, declared keys, whether other keys are names) for every mapping read as ``cls``
    and below; ``*`` in a path stands for each entry of a list or each name."""
    fields = declared_fields(cls)
    keys = allowed_keys(cls)
    if keys is None:
        keys = tuple(d.key for _, d in fields if not isinstance(d, Named))
    yield path, keys, allowed_keys(cls) is None
    for within in dict.fromkeys(d.within for _, d in fields if d.within):
        yield path + (within,), tuple(d.key for _, d in fields if d.within == within), False
    for _, d in fields:
        if isinstance(d, Section):
            below = mappings(d.cls, path if d.inline else path + (d.key,))
            if d.inline:
                next(below)  # its keys are this mapping's
            yield from below
        elif isinstance(d, Named) and d.inline:
            yield from mappings(d.cls, path + ("*",))
        elif isinstance(d, (Entries, Named)):
            yield from mappings(d.cls, path + (d.key, "*"))
        elif isinstance(d, Options):
            yield path + (d.key,), d.keys(), False
