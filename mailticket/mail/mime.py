"""The MIME tree of one message: built by the email package's FeedParser with compat32 header
handling, inside a budget of parts, depth and header size, and walked without recursion.

compat32, not policy.default: policy.default builds a header object every time the parser or we
read Content-Type, which makes parsing 15-20 times slower (20,000 small parts: 10.7 s against
0.5 s; a 25 MB message of them would take minutes). Header values are decoded by
``headertext``, and policy.default's header classes are used only where they help (address lists
in ``fields``, MIME parameters in ``attachments``).
"""

from __future__ import annotations

import email.feedparser
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Iterator
from email.message import EmailMessage, Message
from typing import TypeVar

from mailticket.mail.charsets import codec
from mailticket.mail.headertext import FOLD
from mailticket.mail.notes import Notes, short, size
from mailticket.mail.parsed import ParseLimits

__all__ = ["MAX_HEADER_FIELDS", "MIN_PARTS_READ", "Budget", "charset_guess", "children",
           "is_attachment", "payload_bytes",
           "is_lying_multipart", "package_defects", "parse_tree", "split_params", "walk"]

# The email package builds a Python object per MIME part and per header field (some hundred
# bytes each, for a part that may take 8 bytes of mail): past these the rest is not read.
MIN_PARTS_READ = 1000              # parts read: this, or 10 per attachment kept if more
MAX_HEADER_FIELDS = 1000           # header fields read per part
_FEED_CHUNK = 8192                 # what the email package's own parser feeds at a time

_TREE_POLICY = email.policy.compat32
_PARAM_TOKEN = re.compile(r'\\"|"|;')
_MISSING = object()

T = TypeVar("T")


# --- MIME parameters -----------------------------------------------------------------------------
def _param_item(item: str) -> str:
    if "=" in item:
        i = item.index("=")
        item = item[:i].strip().lower() + "=" + item[i + 1:].strip()
    return item.strip()


def split_params(value: str) -> list[str]:
    """``email.message._parseparam`` in linear time: the same items for the same value.

    The original recounts the quotes from the start of the value at every ";" and copies the
    rest of the value after each item: quadratic, and the parser calls it for every
    multipart's boundary (100,000 times "; a=\"" in one Content-Type took 2 s; 25 MB, hours).
    A ";" ends an item unless an odd number of quotes, not counting escaped ones, precede it.
    """
    items = []
    start = 0
    quoted = False
    for match in _PARAM_TOKEN.finditer(value):
        token = match.group()
        if token == '"':
            quoted = not quoted
        elif token == ";" and not quoted:
            items.append(_param_item(value[start:match.start()]))
            start = match.end()
    items.append(_param_item(value[start:]))
    return items


# --- the parts -----------------------------------------------------------------------------------
def _too_deep_while_parsing() -> str:
    return "text/plain"  # the parser reads the part as a leaf: its content stays text


def _too_deep() -> str:
    # Afterwards: a multipart with no parts, so get_body() and the attachment walk never read
    # it; only a message with no other body shows its text (see body.choose_body).
    return "multipart/x-nested-too-deeply"


class _Part(EmailMessage):
    """EmailMessage (get_body) over compat32 headers: headers are the strings as written."""

    _budget: Budget | None = None

    def is_attachment(self) -> bool:
        return self.get_content_disposition() == "attachment"

    def get_boundary(self, failobj: T | None = None) -> str | T | None:  # type: ignore[override]
        # compat32 leaves header values folded: unfold a boundary folded inside its quotes.
        boundary = super().get_boundary(failobj)
        return FOLD.sub("", boundary) if isinstance(boundary, str) else boundary

    def _get_params_preserve(self, failobj, header):
        # A private method of email.message.Message (pinned in tests/mail/test_library_pins.py),
        # here with split_params (linear) instead of email.message._parseparam. Every parameter
        # lookup goes through it: get_param, get_boundary, get_filename...
        value = self.get(header, _MISSING)
        if value is _MISSING:
            return failobj
        params = []
        for item in split_params(str(value)):
            name, _, val = item.partition("=")
            params.append((name.strip(), val.strip()))
        return email.utils.decode_params(params)

    def set_raw(self, name: str, value: str) -> None:
        """Called by the parser for each header field: long fields are cut, and fields past
        MAX_HEADER_FIELDS are not kept (the record of either is in ``dropped``)."""
        budget = self._budget
        if budget is not None:
            if len(self) >= MAX_HEADER_FIELDS:
                budget.dropped.add(f"header fields after the first {MAX_HEADER_FIELDS} of one "
                                   "MIME part: not read")
                return
            limit = budget.limits.max_header_bytes
            if len(name) + len(value) > limit:
                if len(name) >= limit:
                    budget.dropped.add(f"header field with a name longer than {size(limit)}: "
                                       "not read")
                    return
                budget.dropped.add(f'header "{short(name, 60)}" longer than {size(limit)}: cut')
                value = value[:limit - len(name)]
        super().set_raw(name, value)


class Budget:
    """The part factory of one parse: counts the parts made, makes parts nested deeper than
    ``max_depth`` leaves, and lets its parts cut long header fields (``_Part.set_raw``)."""

    def __init__(self, limits: ParseLimits, dropped: Notes, defects: Notes) -> None:
        self.limits = limits
        self.dropped = dropped
        self.defects = defects
        self.max_parts = max(MIN_PARTS_READ, 10 * limits.max_attachments)
        self.parts = 0
        self.too_deep: list[_Part] = []
        # The parser's stack of open parts (their ancestors when a part is made), or None when
        # depth is not checked: the headers-only parse, or a Python whose FeedParser lacks it
        # (then RecursionError is the bound, see parse_tree).
        self.open_parts: list[Message] | None = None

    def __call__(self, policy: email.policy.Policy = _TREE_POLICY) -> _Part:
        part = _Part(policy=policy)
        part._budget = self
        self.parts += 1
        if self.open_parts is not None and len(self.open_parts) > self.limits.max_depth:
            if not self.too_deep:
                self.dropped.add(f"MIME parts nested deeper than {self.limits.max_depth} "
                                 "levels: not read")
                self.defects.add(f"MIME structure nested too deeply: parts below level "
                                 f"{self.limits.max_depth} were not read")
            part.get_content_type = _too_deep_while_parsing  # type: ignore[method-assign]
            self.too_deep.append(part)
        return part

    def parsed(self) -> set[int]:
        """Call once parsing is over: the ids of the parts nested too deeply."""
        self.open_parts = None
        for part in self.too_deep:
            part.get_content_type = _too_deep  # type: ignore[method-assign]
        ids = {id(part) for part in self.too_deep}
        self.too_deep = []  # every part refers to its budget: no cycle keeps the tree alive
        return ids


# --- building the tree ---------------------------------------------------------------------------
def parse_tree(data: bytes, defects: Notes, budget: Budget) -> tuple[Message, bool]:
    """The parsed message, and whether its MIME structure was given up (headers only).

    The email package's parser is fed here as ``email.message_from_bytes`` would, with
    ``budget`` as the part factory. Two of its costs are bounded that way: it nests one
    generator per open part, every line passing through all of them (quadratic, and a
    RecursionError near 1,000 levels), so parts deeper than ``max_depth`` become leaves; and it
    builds a Python object per part, so feeding stops once ``budget.max_parts`` were made.
    """
    try:
        return _feed(data, budget), False
    except RecursionError:
        defects.add("MIME structure nested too deeply: only the headers were parsed")
    except Exception as exc:  # noqa: BLE001 - the parser is meant never to raise
        defects.add(f"MIME structure could not be parsed ({type(exc).__name__}): "
                    "only the headers were parsed")
    finally:
        budget.open_parts = None
    budget.too_deep.clear()
    parser = email.parser.BytesParser(_class=budget, policy=_TREE_POLICY)
    return parser.parsebytes(data, headersonly=True), True


def _feed(data: bytes, budget: Budget) -> Message:
    parser = email.feedparser.FeedParser(budget, policy=_TREE_POLICY)
    budget.parts = 0  # FeedParser made one part to learn the factory's signature
    # FeedParser._msgstack is private (pinned in tests/mail/test_library_pins.py).
    budget.open_parts = getattr(parser, "_msgstack", None)
    fed = 0
    while fed < len(data):
        # Decoded a chunk at a time as BytesParser decodes the whole (every byte survives, as
        # itself or as a surrogate): no second copy of the message as text.
        parser.feed(data[fed:fed + _FEED_CHUNK].decode("ascii", "surrogateescape"))
        fed += _FEED_CHUNK
        if budget.parts > budget.max_parts and fed < len(data):
            budget.dropped.add(f"MIME parts after the first {budget.max_parts}: not read "
                               f"(the last {size(len(data) - fed)} of the message)")
            break
    return parser.close()


# --- reading the tree ----------------------------------------------------------------------------
def walk(root: Message) -> Iterator[tuple[Message, Message | None]]:
    """Every part with its parent, depth first, without recursion. message/* parts are leaves."""
    stack: list[tuple[Message, Message | None]] = [(root, None)]
    while stack:
        part, parent = stack.pop()
        yield part, parent
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            stack.extend((child, part) for child in reversed(children(part)))


def children(part: Message) -> list[Message]:
    """The parts inside a multipart (or message/*) part: compat32 keeps them as a list."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def payload_bytes(part: Message) -> bytes | None:
    """A leaf part's content, transfer encoding undone (None for a multipart)."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else None


def is_lying_multipart(part: Message) -> bool:
    """A part declared multipart whose body the parser kept as text (no or wrong boundary)."""
    return part.get_content_maintype() == "multipart" and not part.is_multipart()


def is_attachment(part: Message) -> bool:
    """Whether the part says ``Content-Disposition: attachment``."""
    return part.get_content_disposition() == "attachment"


def charset_guess(msg: Message) -> str | None:
    """The first declared charset in the message: the likeliest one for raw 8-bit headers."""
    for count, (part, _) in enumerate(walk(msg)):
        if count > 50:
            break
        name = codec(part.get_content_charset())
        if name and name not in ("ascii", "utf-8"):
            return name
    return None


def package_defects(msg: Message, defects: Notes) -> None:
    """Add the email package's own defect records of every part to ``defects``, in words."""
    for part, _ in walk(msg):
        for defect in part.defects:
            doc = (type(defect).__doc__ or "").strip().splitlines()
            summary = doc[0].rstrip(".") if doc else ""
            defects.add(f"MIME: {type(defect).__name__}" + (f" ({summary})" if summary else ""))
