"""Raw bytes -> ParsedMail, with the standard library's email package.

``parse`` is the one place where untrusted mail becomes values. It never decodes the raw bytes
before the email package sees them, and it degrades instead of raising: whatever could not be
read is recorded, in words, in ``ParsedMail.defects``; whatever was left out on purpose, because
it was over one of the ``ParseLimits``, in ``ParsedMail.dropped``. The only refusal is a message
with no header at all (``PermanentFailure``). Everything is bounded: subjects, bodies, attachments
and reference lists have caps, the MIME tree has a depth and a part budget, and no step is
quadratic, so a hostile 25 MB message costs seconds.

The MIME tree comes from ``email.message_from_bytes`` with compat32 header handling (see
_TREE_POLICY for why); header text is decoded here (_HeaderText), and policy.default's header
classes parse address lists and MIME parameters.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.feedparser
import email.parser
import email.policy
import email.utils
import hashlib
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage, Message
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, TypeVar

from mailticket.errors import PermanentFailure
from mailticket.mail.htmltext import html_to_text

__all__ = ["Address", "AttachmentPart", "ParseLimits", "ParsedMail", "parse"]


@dataclass(frozen=True)
class ParseLimits:
    """What one message may hold; what is over a limit is left out and named in ``dropped``."""
    max_attachments: int = 100                    # attachments kept per message; the rest dropped
    max_attachment_bytes: int = 25 * 1024 * 1024  # one attachment's decoded size
    max_depth: int = 20                           # MIME nesting depth; parts deeper are not walked
    max_header_bytes: int = 64 * 1024             # one header field (all its lines); longer is cut


@dataclass(frozen=True)
class Address:
    name: str
    address: str  # as written, domain lower-cased; compare with .key

    @property
    def key(self) -> str:
        return self.address.lower()


@dataclass(frozen=True)
class AttachmentPart:
    filename: str       # a display name only: never a path, never empty
    content_type: str   # e.g. "image/png"
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str                   # "<...>"; synthesized from the bytes when missing
    message_id_synthesized: bool
    sender: Address | None            # From (falls back to Sender); None when no usable address
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str                      # decoded, one line, no control characters; "" when absent
    date: datetime | None             # naive UTC
    in_reply_to: tuple[str, ...]      # Message-IDs, "<...>"
    references: tuple[str, ...]
    body: str                         # plain text (HTML converted when there is no text part)
    attachments: tuple[AttachmentPart, ...]
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    return_path: str | None = None    # None when absent, "" for the null path <>
    content_type: str = "text/plain"  # top-level type, lower case
    report_type: str | None = None    # report-type parameter of multipart/report
    defects: tuple[str, ...] = ()
    size: int = 0
    dropped: tuple[str, ...] = ()     # what was left out for a ParseLimits limit, one line each

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


# --- limits --------------------------------------------------------------------------------------
MAX_SUBJECT = 1000
MAX_BODY = 1_000_000
MAX_HTML_INPUT = 5_000_000         # HTML beyond this is not converted (the text is capped anyway)
MAX_IDS = 100                      # In-Reply-To / References entries kept
MAX_MESSAGE_ID = 250
MAX_FILENAME = 200
MAX_NAME = 256                     # display names
MAX_DEFECTS = 100                  # also the cap on ``dropped`` lines
# The email package builds a Python object per MIME part and per header field (some hundred
# bytes each, for a part that may take 8 bytes of mail): past these the rest is not read.
MIN_PARTS_READ = 1000              # parts read: this, or 10 per attachment kept if more
MAX_HEADER_FIELDS = 1000           # header fields read per part
MAX_DROPPED_NAMES = 5              # names listed when attachments over the count are dropped
_FEED_CHUNK = 8192                 # what the email package's own parser feeds at a time
# The email package's address parser is quadratic in the length of a value (400 KB of To:
# takes 30 s): longer address lists go through the linear legacy parser instead.
MAX_STRUCTURED_HEADER = 8_192
# Lines we look through for the real header block when a message starts with garbage.
GARBAGE_SCAN_LINES = 40

_POLICY = email.policy.default
# The MIME tree is parsed with compat32 header handling: policy.default builds a header
# object every time the parser or we read Content-Type, which makes parsing 15-20 times slower
# (20,000 small parts: 10.7 s against 0.5 s; a 25 MB message of them would take minutes).
# We decode every header ourselves anyway (_HeaderText) and use policy.default's header
# classes only where they help: address lists and MIME parameters.
_TREE_POLICY = email.policy.compat32
_GENERATE_POLICY = email.policy.compat32  # re-serializes parsed parts with their bytes as written
_UTF8_BOM = b"\xef\xbb\xbf"

# Header field names are printable ASCII except ":" (RFC 5322 section 3.6.8).
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_CONTINUATION_LINE = re.compile(rb"[ \t]+\S")
_MBOX_FROM = re.compile(rb"From (?![ \t]*:)")  # not "From  :" (RFC 2822 obsolete syntax)
_OBSOLETE_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n|\r\r")
# Header names that show a line really is in the header block (for the folding repair).
_KNOWN_HEADER = re.compile(
    rb"(?i)(?:from|to|cc|subject|date|message-id|received|return-path|mime-version|reply-to|"
    rb"references|in-reply-to|sender|content-[a-z-]+|x-[a-z0-9-]+)[ \t]*:")
_NON_SPACE = re.compile(rb"\S")
_FOLD = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\udc80-\udcff]")
# RFC 2047 encoded word; tolerates spaces inside the text, which some mailers write.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*?)\?=")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
_ADDRESS_AS_NAME = re.compile(r'(^|,)\s*([^\s<>",;:]+@[^\s<>",;:]+)\s*<')
_ISO2022JP_ESCAPE = re.compile(rb"\x1b(\$@|\$B|\(B|\(J|\(I)")
_WHITESPACE = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>]*)>")
_NULL_PATH = re.compile(r"^\s*<\s*>")
_ANGLE_ADDR = re.compile(r"<([^<>]*)>")
_PATH_SEPARATORS = re.compile(r"[/\\]")
# filename=/name= whose value is not quoted (and not RFC 2231 "filename*=").
_UNQUOTED_PARAM = {
    param: re.compile(rf'(?:^|;)\s*{param}\s*=\s*(?!["\s])([^;]*)', re.IGNORECASE)
    for param in ("filename", "name")
}
# Characters never kept in one-line text: C0/C1 controls, line and paragraph separators,
# and the bidi embedding/override/isolate controls (they make a name display as another).
# Lone surrogates (a UTF-7 decoder can make them) cannot be stored or encoded at all.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Charset labels that Python does not know, or knows as something narrower than what mail
# clients mean by them (WHATWG Encoding Standard mappings).
_CHARSET_ALIASES = {
    "x-mac-cyrillic": "mac_cyrillic", "x-mac-ukrainian": "mac_cyrillic",
    "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "iso-8859-8-i": "iso8859_8", "iso-8859-8-e": "iso8859_8", "iso-8859-6-i": "iso8859_6",
    "iso-8859-6-e": "iso8859_6", "logical": "iso8859_8", "visual": "iso8859_8",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cn-gb": "gb18030",
    "chinese": "gb18030", "csgb2312": "gb18030", "gb_2312-80": "gb18030", "x-euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949", "korean": "cp949", "csksc56011987": "cp949", "windows-949": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932", "csshiftjis": "cp932",
    "big5": "big5hkscs", "x-x-big5": "big5hkscs", "cn-big5": "big5hkscs",
    "windows-874": "cp874", "tis-620": "cp874", "iso-8859-11": "cp874",
    "x-user-defined": "latin-1",
}
# Raw 8-bit header bytes cannot be in a 7-bit charset: a message declaring one of these wrote
# its raw headers in the 8-bit sibling (Japanese mail: Shift_JIS next to ISO-2022-JP).
_EIGHT_BIT_FOR = {"iso2022_jp": "cp932", "iso2022_kr": "cp949", "hz": "gb18030", "utf-7": None}
# Labels meaning "we do not know": treat like a missing charset.
_UNKNOWN_CHARSETS = frozenset({"x-unknown", "unknown", "unknown-8bit", "none", "default",
                               "x-unknown-8bit", "charset", ""})

_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "text/csv": ".csv",
    "text/x-vcard": ".vcf", "text/vcard": ".vcf", "text/rfc822-headers": ".txt",
    "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png",
    "image/gif": ".gif", "application/pdf": ".pdf", "application/octet-stream": ".bin",
    "application/ms-tnef": ".dat", "application/vnd.ms-tnef": ".dat",
    "application/pgp-signature": ".asc", "application/pgp-encrypted": ".asc",
    "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m", "application/x-pkcs7-mime": ".p7m",
    "message/rfc822": ".eml", "message/global": ".eml",
}
_MIME_TYPES = mimetypes.MimeTypes()  # built-in table only: the same names on every machine

T = TypeVar("T")


class _Defects:
    """Human-readable notes about what could not be read, deduplicated and capped."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._seen: set[str] = set()

    def add(self, text: str) -> None:
        if text in self._seen or len(self.items) >= MAX_DEFECTS:
            return
        self._seen.add(text)
        self.items.append(text)

    def guard(self, what: str, func: Callable[[], T], default: T) -> T:
        """Run one extraction step; on an unexpected error record it and use ``default``.

        The email package is written to record defects, not raise, but its corners do raise
        (IndexError, AttributeError on groups, LookupError on charsets); one bad field must
        never cost us the whole message.
        """
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            self.add(f"{what}: could not be read ({type(exc).__name__}: {_short(str(exc))})")
            return default


def _short(text: str, limit: int = 80) -> str:
    text = _UNSAFE_CHARS.sub(" ", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- bytes before parsing ----------------------------------------------------------------------
def _lines(data: bytes, start: int, count: int) -> Iterator[tuple[int, bytes]]:
    """Up to ``count`` (offset, line) pairs from ``start``, without copying the whole input."""
    pos = start
    for _ in range(count):
        if pos >= len(data):
            return
        end = data.find(b"\n", pos)
        cr = data.find(b"\r", pos, end if end >= 0 else len(data))
        if cr >= 0 and (end < 0 or cr < end):
            end = cr + 1 if data[cr + 1:cr + 2] == b"\n" else cr
        stop = len(data) if end < 0 else end + 1
        yield pos, data[pos:stop].rstrip(b"\r\n")
        pos = stop


def _strip_preamble(raw: bytes, defects: _Defects) -> bytes:
    """Remove what may stand before the header block: a BOM, an mbox "From " line, garbage."""
    data = raw
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
        defects.add("the message starts with a UTF-8 byte order mark")
    if _MBOX_FROM.match(data):
        # An mbox envelope line; the email package would take it too, but not after a BOM.
        newline = data.find(b"\n")
        data = b"" if newline < 0 else data[newline + 1:]
    first = next(_lines(data, 0, 1), None)
    if first is None or _HEADER_LINE.match(first[1]):
        return _repair_header_block(data, defects)
    # The first line is not a header: look a little further for a block that starts like one
    # (a header line followed by another header line or a continuation line).
    candidates = list(_lines(data, 0, GARBAGE_SCAN_LINES + 1))
    for (offset, line), (_, following) in zip(candidates, candidates[1:]):
        if offset and _HEADER_LINE.match(line) and (
                _HEADER_LINE.match(following) or _CONTINUATION_LINE.match(following)):
            defects.add(f"skipped {offset} bytes before the header block")
            return _repair_header_block(data[offset:], defects)
    return data


def _repair_header_block(data: bytes, defects: _Defects) -> bytes:
    """Mend two header-block faults the email package would end the headers at, losing From
    and Subject: "Subject  : x" (RFC 2822 obsolete syntax) and continuation lines written
    without their leading white space. Only the header block is copied, and only when needed."""
    end = _HEADER_END.search(data)
    if end is None:
        return data  # no blank line: we cannot tell where the headers end, so do not guess
    head = data[:end.start()]
    repaired = head
    if _OBSOLETE_NAME.search(head):
        defects.add("obsolete header syntax: white space before a colon")
        repaired = _OBSOLETE_NAME.sub(rb"\1:", repaired)
    lines = repaired.split(b"\n")
    last_known = max((i for i, line in enumerate(lines) if _KNOWN_HEADER.match(line)), default=0)
    stray = [i for i in range(1, last_known)
             if not _HEADER_LINE.match(lines[i]) and not lines[i][:1] in (b" ", b"\t")]
    if stray:
        defects.add(f"{len(stray)} header line(s) without leading white space joined to the "
                    "header above")
        for i in stray:
            lines[i] = b" " + lines[i]
        repaired = b"\n".join(lines)
    return data if repaired is head else repaired + data[end.start():]


_PARAM_TOKEN = re.compile(r'\\"|"|;')
_MISSING = object()


def _param_item(item: str) -> str:
    if "=" in item:
        i = item.index("=")
        item = item[:i].strip().lower() + "=" + item[i + 1:].strip()
    return item.strip()


def _split_params(value: str) -> list[str]:
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


def _too_deep_while_parsing() -> str:
    return "text/plain"  # the parser reads the part as a leaf: its content stays text


def _too_deep() -> str:
    # Afterwards: a multipart with no parts, so get_body() and the attachment walk never read
    # it; only a message with no other body shows its text (see _choose_body).
    return "multipart/x-nested-too-deeply"


class _Part(EmailMessage):
    """EmailMessage (get_body) over compat32 headers: headers are the strings as written."""

    _budget: _Budget | None = None

    def is_attachment(self) -> bool:
        return self.get_content_disposition() == "attachment"

    def get_boundary(self, failobj: T | None = None) -> str | T | None:  # type: ignore[override]
        # compat32 leaves header values folded: unfold a boundary folded inside its quotes.
        boundary = super().get_boundary(failobj)
        return _FOLD.sub("", boundary) if isinstance(boundary, str) else boundary

    def _get_params_preserve(self, failobj, header):  # type: ignore[no-untyped-def]
        # Message's own, with _split_params (linear) instead of email.message._parseparam.
        # Every parameter lookup goes through here: get_param, get_boundary, get_filename...
        value = self.get(header, _MISSING)
        if value is _MISSING:
            return failobj
        params = []
        for item in _split_params(str(value)):
            name, _, val = item.partition("=")
            params.append((name.strip(), val.strip()))
        return email.utils.decode_params(params)

    def set_raw(self, name: str, value: str) -> None:
        """Called by the parser for each header field: long fields are cut, and fields past
        MAX_HEADER_FIELDS are not kept (the record of either is in ``dropped``)."""
        budget = self._budget
        if budget is not None:
            if len(self._headers) >= MAX_HEADER_FIELDS:
                budget.dropped.add(f"header fields after the first {MAX_HEADER_FIELDS} of one "
                                   "MIME part: not read")
                return
            limit = budget.limits.max_header_bytes
            if len(name) + len(value) > limit:
                if len(name) >= limit:
                    budget.dropped.add(f"header field with a name longer than {_size(limit)}: "
                                       "not read")
                    return
                budget.dropped.add(f'header "{_short(name, 60)}" longer than {_size(limit)}: cut')
                value = value[:limit - len(name)]
        self._headers.append((name, value))


class _Budget:
    """The part factory of one parse: counts the parts made, makes parts nested deeper than
    ``max_depth`` leaves, and lets its parts cut long header fields (``_Part.set_raw``)."""

    def __init__(self, limits: ParseLimits, dropped: _Defects, defects: _Defects) -> None:
        self.limits = limits
        self.dropped = dropped
        self.defects = defects
        self.max_parts = max(MIN_PARTS_READ, 10 * limits.max_attachments)
        self.parts = 0
        self.too_deep: list[_Part] = []
        # The parser's stack of open parts (their ancestors when a part is made), or None when
        # depth is not checked: the headers-only parse, or a Python whose FeedParser lacks it
        # (then RecursionError is the bound, see _parse_tree).
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


def _parse_tree(data: bytes, defects: _Defects, budget: _Budget) -> tuple[Message, bool]:
    """The parsed message, and whether its MIME structure was given up (headers only).

    The email package's parser is fed here as ``email.message_from_bytes`` would, with
    ``budget`` as the part factory. Two of its costs are bounded that way: it nests one
    generator per open part, every line passing through all of them (quadratic, and a
    RecursionError near 1,000 levels), so parts deeper than ``max_depth`` become leaves; and it
    builds a Python object per part, so feeding stops once ``budget.max_parts`` were made.
    """
    try:
        parser = email.feedparser.FeedParser(budget, policy=_TREE_POLICY)
        budget.parts = 0  # FeedParser made one part to learn the factory's signature
        budget.open_parts = getattr(parser, "_msgstack", None)
        fed = 0
        while fed < len(data):
            # Decoded a chunk at a time as BytesParser decodes the whole (every byte survives,
            # as itself or as a surrogate): no second copy of the message as text.
            parser.feed(data[fed:fed + _FEED_CHUNK].decode("ascii", "surrogateescape"))
            fed += _FEED_CHUNK
            if budget.parts > budget.max_parts and fed < len(data):
                budget.dropped.add(f"MIME parts after the first {budget.max_parts}: not read "
                                   f"(the last {_size(len(data) - fed)} of the message)")
                break
        return parser.close(), False
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


def _size(count: int) -> str:
    """"31.2 MB", "64 KB", "12 bytes" (binary units, as the limits are given)."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


# --- text decoding -------------------------------------------------------------------------------
def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None when unknown or absent."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if name in _UNKNOWN_CHARSETS:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None  # rot13, zlib, base64...: not text encodings
    return info.name


def _decode_bytes(data: bytes, label: str | None, defects: _Defects, where: str) -> str:
    text = _decode_bytes_to(data, label, defects, where)
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _decode_bytes_to(data: bytes, label: str | None, defects: _Defects, where: str) -> str:
    codec = _codec(label)
    if codec is None:
        if label and label.strip().strip("\"'").lower() not in _UNKNOWN_CHARSETS:
            defects.add(f"{where}: unknown charset {_short(label, 40)!r}")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            if label:
                defects.add(f"{where}: not UTF-8, decoded as Latin-1")
            return data.decode("latin-1")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if codec == "iso2022_jp":
            try:
                return _iso2022jp_as_cp932(data)
            except UnicodeDecodeError:
                pass
        if codec == "ascii":  # "us-ascii" with 8-bit bytes is nearly always UTF-8
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        defects.add(f"{where}: bytes invalid in {codec}, replaced")
    except Exception:  # noqa: BLE001 - some codecs raise other errors on bad input
        defects.add(f"{where}: decoding with {codec} failed, decoded as Latin-1")
        return data.decode("latin-1")
    try:
        return data.decode(codec, errors="replace")
    except Exception:  # noqa: BLE001
        return data.decode("latin-1")


def _iso2022jp_as_cp932(data: bytes) -> str:
    """ISO-2022-JP written by Windows clients carries CP932 extensions (NEC row 13: circled
    digits, "(株)"...) that Python's iso2022_jp rejects: re-encode the JIS X 0208 runs as
    Shift_JIS and decode with cp932, which has them."""
    out = bytearray()
    mode = b"(B"
    pos = 0
    for match in [*_ISO2022JP_ESCAPE.finditer(data), None]:
        chunk = data[pos:match.start() if match else len(data)]
        if mode in (b"$@", b"$B"):
            for i in range(0, len(chunk) - 1, 2):
                j1, j2 = chunk[i], chunk[i + 1]
                s1 = ((j1 - 0x21) >> 1) + 0x81
                s1 += 0x40 if s1 > 0x9F else 0
                s2 = j2 + (0x1F if j1 & 1 else 0x7E)
                s2 += 1 if (j1 & 1) and s2 >= 0x7F else 0
                out += bytes((s1 & 0xFF, s2 & 0xFF))
        elif mode == b"(I":  # JIS X 0201 katakana: 0x21-0x5F -> 0xA1-0xDF
            out += bytes((b | 0x80) & 0xFF for b in chunk)
        else:
            out += chunk
        if match:
            mode, pos = match.group(1), match.end()
    return out.decode("cp932")


def _fix_8bit(value: str, charset_guess: str | None) -> str:
    """Turn raw 8-bit bytes in a header (surrogate escapes) into text: UTF-8 (RFC 6532), else the
    message's declared charset, else Latin-1."""
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    for codec in ("utf-8", _EIGHT_BIT_FOR.get(charset_guess or "", charset_guess)):
        if codec:
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                pass
    return data.decode("latin-1")


def _drop_surrogates(value: str) -> str:
    """Bytes the email package could not decode (unknown charset in an encoded word)."""
    if not _SURROGATE.search(value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _one_line(value: str, limit: int) -> str:
    value = _WHITESPACE.sub(" ", value)
    value = _UNSAFE_CHARS.sub("", value).strip()
    return value[:limit].rstrip() if len(value) > limit else value


def _word_bytes(encoding: str, encoded: str) -> bytes:
    if encoding in "bB":
        letters = _NOT_BASE64.sub("", encoded)
        if len(letters) % 4 == 1:
            letters = letters[:-1]  # a truncated quantum carries no whole byte
        return binascii.a2b_base64(letters + "=" * (-len(letters) % 4))
    return binascii.a2b_qp(encoded.encode("utf-8", "surrogateescape"), header=True)


class _HeaderText:
    """Decodes header values to text: raw 8-bit bytes, then RFC 2047 encoded words.

    Our own decoder rather than the email package's header parser: that parser is quadratic in
    the length of a value (a 400 KB To: takes 30 s), decodes each encoded word on its own (a
    character split across two words becomes two replacement characters), and knows only
    Python's charset names (not gb2312-as-gbk, ks_c_5601-1987, iso-8859-8-i...).
    """

    def __init__(self, charset_guess: str | None, defects: _Defects) -> None:
        self.charset_guess = charset_guess
        self.defects = defects

    def __call__(self, name: str, raw: str) -> str:
        """The value as text."""
        return self._decode(name, raw, reencode=False)

    def normalise_words(self, name: str, raw: str) -> str:
        """The value with raw 8-bit bytes decoded and every run of encoded words decoded by us
        and re-encoded as one UTF-8 word, for the structured (address) parser to read."""
        return self._decode(name, raw, reencode=True)

    def _decode(self, name: str, raw: str, reencode: bool) -> str:
        value = _FOLD.sub("", raw)
        if "=?" not in value:
            return _fix_8bit(value, self.charset_guess)
        out: list[str] = []
        words: list[str] = []      # decoded text of adjacent encoded words
        run: list[bytes] = []      # bytes of adjacent encoded words in one charset
        run_charset = ""
        pos = 0

        def end_run() -> None:
            if run:
                words.append(_decode_bytes(b"".join(run), run_charset, self.defects, name))
                run.clear()

        def end_words() -> None:
            end_run()
            if words:
                text = "".join(words)
                if reencode:
                    # Control characters would make the address parser refuse the whole list
                    # (a CR or LF in a display name): they never survive into a name anyway.
                    text = _UNSAFE_CHARS.sub(" ", text)
                    text = "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode() + "?="
                out.append(text)
                words.clear()

        for match in _ENCODED_WORD.finditer(value):
            between = value[pos:match.start()]
            charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix
            try:
                # Raw 8-bit bytes inside an encoded word belong to the word's charset.
                data = _word_bytes(match.group(2), match.group(3))
            except (binascii.Error, ValueError):
                self.defects.add(f"{name}: broken encoded word kept as written")
                end_words()
                out.append(_fix_8bit(value[pos:match.end()], self.charset_guess))
                pos = match.end()
                continue
            # White space between two encoded words is not part of the text (RFC 2047 6.2),
            # and a character may be split across two words of one charset: join their bytes.
            if not ((run or words) and not between.strip()):
                end_words()
                out.append(_fix_8bit(between, self.charset_guess))
            elif charset.lower() != run_charset.lower():
                end_run()
            run.append(data)
            run_charset = charset
            pos = match.end()
        end_words()
        out.append(_fix_8bit(value[pos:], self.charset_guess))
        return "".join(out)


# --- addresses -----------------------------------------------------------------------------------
def _make_address(name: str, addr: str, header: str, defects: _Defects) -> Address | None:
    addr = _UNSAFE_CHARS.sub("", addr).strip()
    if not addr or addr == "<>":
        return None
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in domain):
        defects.add(f"{header}: unusable address {_short(addr, 60)!r} skipped")
        return None
    return Address(name=_one_line(name, MAX_NAME), address=f"{local}@{domain.lower()}")


def _addresses(header: str, raws: tuple[str, ...], text: _HeaderText,
               defects: _Defects) -> tuple[Address, ...]:
    found: list[Address] = []
    for raw in raws:
        value = _fix_8bit(_FOLD.sub("", raw), text.charset_guess)
        pairs = _simple_pairs(value)
        if pairs is None and len(value) <= MAX_STRUCTURED_HEADER:
            pairs = defects.guard(header, lambda: _structured_pairs(header, value, text), None)
        if pairs is None:
            # The legacy parser reads encoded words as written, so ":", "," or "<" inside one
            # would split the list there ("=?utf-8?q?Ann=0D=0ABcc:_evil@x?= <ann@x>" gave the
            # mailbox "_evil@x?="): it gets them re-encoded in base64, which has none.
            safe = defects.guard(header, lambda: text.normalise_words(header, value), "")
            pairs = [(text(header, name), addr) for name, addr in
                     defects.guard(header, lambda: email.utils.getaddresses([safe]), [])]
        for name, addr in pairs:
            address = _make_address(name, addr, header, defects)
            if address is not None:
                found.append(address)
    return tuple(found)


_SIMPLE_MAILBOX = re.compile(
    r"\s*(?:([A-Za-z0-9][A-Za-z0-9 .'-]*?)\s*<([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)>"
    r"|<([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)>|([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+))\s*(?:,|$)")


def _simple_pairs(value: str) -> list[tuple[str, str]] | None:
    """The common case, ``Ann User <ann@example.org>, bob@example.org``, without the header
    registry's full RFC 5322 parser (the costliest step of parsing an ordinary mail). Anything
    with quotes, comments, groups, encoded words or non-ASCII returns None: the full parser."""
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(value):
        match = _SIMPLE_MAILBOX.match(value, position)
        if match is None or match.end() == position:
            return None
        name, named, bracketed, bare = match.groups()
        pairs.append((" ".join(name.split()) if name else "", named or bracketed or bare))
        position = match.end()
    return pairs or None


def _comment_after(value: str, addr: str) -> str:
    """"jdoe@example.net (John Doe)": the old way of giving a name, as a comment."""
    at = value.find(addr)
    if at < 0:
        return ""
    rest = value[at + len(addr):].lstrip()
    close = rest.find(")")
    if not rest.startswith("(") or close < 0:
        return ""
    return rest[1:close].strip()


def _structured_pairs(header: str, value: str, text: _HeaderText) -> list[tuple[str, str]]:
    # "alice@example.com <bob@example.com>": an unquoted address as display name; the parser
    # would take alice, but the mailbox is bob. Quote the name first.
    value = _ADDRESS_AS_NAME.sub(r'\1"\2" <', text.normalise_words(header, value))
    parsed = _POLICY.header_factory(header, value)
    pairs = []
    for group in parsed.groups:  # groups, not .addresses: flattening is done here, safely
        for item in group.addresses:
            if not item.username:
                continue  # "<>", or a group name that the parser took for an address
            local, name = item.username, _drop_surrogates(item.display_name or "")
            if any(c.isspace() for c in local) and f'"{local}"' not in value:
                # "Test test@example.com": a name and an address without angle brackets.
                *words, local = local.split()
                name = name or " ".join(words)
                addr = f"{local}@{item.domain}" if item.domain else local
            else:
                addr = item.addr_spec if item.domain else local
            pairs.append((name or _comment_after(value, addr), addr))
    return pairs


# --- identifiers ---------------------------------------------------------------------------------
def _message_id(raw_value: str | None, raw: bytes) -> tuple[str, bool]:
    if raw_value is not None:
        value = _fix_8bit(_FOLD.sub("", raw_value), None)
        match = _MSGID.search(value)
        inner = match.group(1) if match else value
        inner = _UNSAFE_CHARS.sub("", _WHITESPACE.sub("", inner))
        if inner:
            msgid = f"<{inner}>"
            if len(msgid) <= MAX_MESSAGE_ID:
                return msgid, False
            digest = hashlib.sha256(msgid.encode("utf-8", "surrogatepass")).hexdigest()[:40]
            return f"<{digest}@long-id.invalid>", True
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@mailticket.invalid>", True


def _id_list(raws: tuple[str, ...], keep_root: bool) -> tuple[str, ...]:
    ids: list[str] = []
    seen: set[str] = set()
    for raw in raws:
        for match in _MSGID.finditer(_fix_8bit(_FOLD.sub("", raw), None)):
            inner = _UNSAFE_CHARS.sub("", _WHITESPACE.sub("", match.group(1)))
            msgid = f"<{inner}>"
            if inner and len(msgid) <= MAX_MESSAGE_ID and msgid not in seen:
                seen.add(msgid)
                ids.append(msgid)
    if len(ids) > MAX_IDS:
        # References lists the thread's root first and the parent last; keep both ends.
        ids = ids[:1] + ids[-(MAX_IDS - 1):] if keep_root else ids[:MAX_IDS]
    return tuple(ids)


def _return_path(raw_value: str | None) -> str | None:
    if raw_value is None:
        return None
    value = _UNSAFE_CHARS.sub("", _fix_8bit(_FOLD.sub("", raw_value), None)).strip()
    if not value or _NULL_PATH.match(value):
        return ""
    match = _ANGLE_ADDR.search(value)
    return (match.group(1) if match else value).strip()


def _date(raw_value: str | None, defects: _Defects) -> datetime | None:
    if raw_value is None:
        return None
    value = _fix_8bit(_FOLD.sub(" ", raw_value), None).strip()
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000": zone unknown; the best guess is UTC
            return parsed
        return parsed.astimezone(timezone.utc).replace(tzinfo=None)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, OverflowError on odd dates
        defects.add(f"Date: unparseable {_short(value, 60)!r}")
        return None


# --- MIME tree -----------------------------------------------------------------------------------
def _walk(root: Message) -> Iterator[tuple[Message, Message | None]]:
    """Every part with its parent, depth first, without recursion. message/* parts are leaves."""
    stack: list[tuple[Message, Message | None]] = [(root, None)]
    while stack:
        part, parent = stack.pop()
        yield part, parent
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            children = part.get_payload()
            stack.extend((child, part) for child in reversed(children))


def _is_lying_multipart(part: Message) -> bool:
    """A part declared multipart whose body the parser kept as text (no or wrong boundary)."""
    return part.get_content_maintype() == "multipart" and not part.is_multipart()


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment"


def _part_text(part: Message, defects: _Defects, where: str) -> str:
    payload = part.get_payload(decode=True)
    if not payload:
        return ""
    if isinstance(payload, str):  # defensive: decode=True returns bytes for every leaf
        return _drop_surrogates(payload)
    return _decode_bytes(payload, part.get_content_charset(), defects, where)


def _normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x00", "") if "\x00" in text else text


def _choose_body(msg: Message, parents: dict[int, Message | None],
                 defects: _Defects) -> tuple[str, set[int]]:
    """The body text and the ids of the parts it was made from."""
    used: set[int] = set()

    def find(preference: str) -> Message | None:
        return defects.guard("body", lambda: msg.get_body(preferencelist=(preference,)), None)

    plain = find("plain")
    text = ""
    if plain is not None:
        used.add(id(plain))
        text = defects.guard("text part", lambda: _part_text(plain, defects, "text part"), "")
        # Apple Mail and others split one text into several inline parts around images:
        # the plain parts that follow in the same multipart/mixed belong to the body too.
        parent = parents.get(id(plain))
        if parent is not None and parent.get_content_type() == "multipart/mixed":
            siblings = parent.get_payload()
            pieces, length = [text], len(text)
            for sibling in siblings[siblings.index(plain) + 1:]:
                if (sibling.get_content_type() == "text/plain" and not _is_attachment(sibling)
                        and not sibling.get_filename()):
                    used.add(id(sibling))
                    if length > MAX_BODY:
                        continue  # beyond the cap: still part of the body, not an attachment
                    more = _part_text(sibling, defects, "text part")
                    if more.strip():
                        pieces[-1] = pieces[-1].rstrip()
                        pieces.append(more)
                        length += len(more)
            text = "\n\n".join(pieces)
    if not text.strip():
        html_part = find("html")
        if html_part is not None:
            used.add(id(html_part))
            markup = defects.guard("HTML part",
                                   lambda: _part_text(html_part, defects, "HTML part"), "")
            if len(markup) > MAX_HTML_INPUT:
                defects.add(f"HTML body of {len(markup)} characters: converted the first "
                            f"{MAX_HTML_INPUT}")
                markup = markup[:MAX_HTML_INPUT]
            text = html_to_text(markup)
    if plain is None and not text.strip():
        # No usable body part: a declared multipart without boundaries is still text.
        for part, _ in _walk(msg):
            if _is_lying_multipart(part):
                used.add(id(part))
                text = _part_text(part, defects, "body")
                break
    text = _normalise_text(text)
    if len(text) > MAX_BODY:
        defects.add(f"body of {len(text)} characters cut to {MAX_BODY}")
        text = text[:MAX_BODY]
    return text, used


def _extension(content_type: str) -> str:
    return (_EXTENSIONS.get(content_type)
            or (".txt" if content_type.startswith(("text/", "message/")) else None)
            or _MIME_TYPES.guess_extension(content_type, strict=False)
            or ".bin")


def _safe_filename(name: str, keep_path_as_name: bool = False) -> str:
    """A display name: no directories, no control characters, no leading dots, bounded."""
    name = _UNSAFE_CHARS.sub("", unicodedata.normalize("NFC", name))
    if keep_path_as_name:
        name = _PATH_SEPARATORS.sub("-", name)
    else:
        name = _PATH_SEPARATORS.split(name)[-1]
    name = _WHITESPACE.sub(" ", name).strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_FILENAME].rstrip()
    return name


def _raw_filename(part: Message, text: _HeaderText) -> str:
    """The filename as sent: Content-Disposition filename, else Content-Type name, decoded
    (RFC 2231, encoded words, raw 8-bit UTF-8)."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = next((raw for key, raw in part.raw_items() if key.lower() == header), None)
        if value is None:
            continue
        value = _fix_8bit(_FOLD.sub("", value), text.charset_guess)
        found = None
        unquoted = _UNQUOTED_PARAM[param].search(value)
        if unquoted and unquoted.group(1).strip():
            # Not valid MIME (a token cannot hold spaces or "=?"), but common: "name=a b.pdf",
            # "name==?utf-8?B?...?=". The header parser would keep only the first word.
            found = unquoted.group(1).strip()
        else:
            try:
                found = _POLICY.header_factory(header, value).params.get(param)
            except Exception:  # noqa: BLE001 - the legacy parser below copes with more
                found = None
        if found:
            found = _drop_surrogates(str(found))
            return text(header, found) if "=?" in found else found
    legacy = part.get_filename()  # the legacy path copes with broken RFC 2231 syntax
    if legacy:
        legacy = _fix_8bit(str(legacy), text.charset_guess)
        return text("filename", legacy) if "=?" in legacy else legacy
    return ""


def _message_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list):
        # message/rfc822 holds one message; delivery-status holds one block per recipient.
        return b"\n".join(sub.as_bytes(policy=_GENERATE_POLICY) for sub in payload)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _attachment_name(part: Message, content_type: str, number: int, text: _HeaderText) -> str:
    name = _safe_filename(_raw_filename(part, text))
    if name or content_type not in ("message/rfc822", "message/global"):
        return name
    # A forwarded message without a filename: name it after its subject, as RT does.
    inner = part.get_payload(0) if part.is_multipart() else None
    subject = next((raw for key, raw in inner.raw_items() if key.lower() == "subject"), None) \
        if inner is not None else None
    if subject:
        name = _safe_filename(_one_line(text("subject", subject), 150), keep_path_as_name=True)
    return f"{name}.eml" if name else f"message-{number}.eml"


def _attachment_type(part: Message) -> str | None:
    """The content type an attachment made of this part would have, or None when the part is
    no attachment (a container, an inline rendering of the text)."""
    content_type = part.get_content_type()
    maintype = part.get_content_maintype()
    if maintype == "multipart":
        # A multipart without boundaries not used as the body: its text, if any, is kept.
        return None if part.is_multipart() else "text/plain"
    if maintype == "text" and part.get_content_subtype() in ("plain", "html") and not (
            _is_attachment(part) or part.get_filename()):
        return None  # an alternative or inline rendering of the text, not a file
    return content_type


def _has_content(part: Message) -> bool:
    """Whether a part has any content, without decoding it."""
    payload = part.get_payload()
    return bool(payload.strip()) if isinstance(payload, str) else bool(payload)


def _attachments(msg: Message, skip: set[int], text: _HeaderText, defects: _Defects,
                 limits: ParseLimits, dropped: _Defects) -> tuple[AttachmentPart, ...]:
    found: list[AttachmentPart] = []
    number = 0                      # attachments met so far, kept or not: default names
    over_count: list[str] = []      # names of the first attachments over max_attachments
    over_count_total = 0

    def name_of(part: Message, content_type: str) -> str:
        name = defects.guard("attachment name",
                             lambda: _attachment_name(part, content_type, number, text), "")
        return name or f"attachment-{number}{_extension(content_type)}"

    for part, _ in _walk(msg):
        if id(part) in skip:
            continue
        content_type = _attachment_type(part)
        if content_type is None:
            continue
        if len(found) >= limits.max_attachments:
            # Not decoded: counted, and the first few named, for the note in ``dropped``.
            if _has_content(part):
                number += 1
                over_count_total += 1
                if len(over_count) < MAX_DROPPED_NAMES:
                    over_count.append(_short(name_of(part, content_type), 60))
            continue
        if part.get_content_maintype() == "multipart":
            data = defects.guard("multipart part", lambda: part.get_payload(decode=True), b"")
            if not data or not data.strip():
                continue
        elif part.get_content_maintype() == "message":
            data = defects.guard(f"{content_type} part", lambda: _message_bytes(part), b"")
        else:
            data = defects.guard(f"{content_type} part", lambda: part.get_payload(decode=True), b"")
        if not data:
            continue  # zero-length attachments are not worth keeping (nor are empty parts)
        number += 1
        name = name_of(part, content_type)
        if len(data) > limits.max_attachment_bytes:
            dropped.add(f'attachment "{name}" ({_size(len(data))}) is over the '
                        f"{_size(limits.max_attachment_bytes)} limit for one attachment: "
                        "not kept")
            continue
        found.append(AttachmentPart(filename=name, content_type=content_type, data=bytes(data)))
    if over_count_total:
        more = ", ..." if over_count_total > len(over_count) else ""
        dropped.add(f"{over_count_total} attachment{'s' if over_count_total > 1 else ''} over "
                    f"the limit of {limits.max_attachments}: not kept "
                    f"({', '.join(over_count)}{more})")
    return tuple(found)


def _charset_guess(msg: Message) -> str | None:
    """The first declared charset in the message: the likeliest one for raw 8-bit headers."""
    for count, (part, _) in enumerate(_walk(msg)):
        if count > 50:
            break
        codec = _codec(part.get_content_charset())
        if codec and codec not in ("ascii", "utf-8"):
            return codec
    return None


def _package_defects(msg: Message, defects: _Defects) -> None:
    for part, _ in _walk(msg):
        for defect in part.defects:
            doc = (type(defect).__doc__ or "").strip().splitlines()
            summary = doc[0].rstrip(".") if doc else ""
            defects.add(f"MIME: {type(defect).__name__}" + (f" ({summary})" if summary else ""))


# --- the stage -----------------------------------------------------------------------------------
def parse(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMail:
    """Parse one message. Raises PermanentFailure only when there is no header at all.

    What is over one of ``limits`` is left out, and each thing left out is named in
    ``ParsedMail.dropped``: the message itself always parses.
    """
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError(f"parse() takes bytes, not {type(raw).__name__}")
    defects = _Defects()
    dropped = _Defects()
    data = _strip_preamble(raw, defects)
    if not _NON_SPACE.search(data):
        raise PermanentFailure("empty message: no header and no body")
    budget = _Budget(limits, dropped, defects)
    msg, headers_only = _parse_tree(data, defects, budget)
    too_deep = budget.parsed()
    raw_headers = [(name.lower(), value) for name, value in msg.raw_items()]
    if not raw_headers:
        raise PermanentFailure("no header found: the data does not start with a mail header")

    charset_guess = defects.guard("Content-Type", lambda: _charset_guess(msg), None)
    text = _HeaderText(charset_guess, defects)

    grouped: dict[str, list[str]] = {}
    decoded: dict[str, list[str]] = {}
    for name, value in raw_headers:
        grouped.setdefault(name, []).append(value)
        value_text = defects.guard(name, lambda: text(name, value), value)
        decoded.setdefault(name, []).append(value_text.replace("\x00", ""))
    raw_of = {name: tuple(values) for name, values in grouped.items()}

    def first(name: str) -> str | None:
        values = raw_of.get(name)
        return values[0] if values else None

    message_id, synthesized = _message_id(first("message-id"), raw)
    senders = _addresses("from", raw_of.get("from", ()), text, defects)
    if not senders:
        senders = _addresses("sender", raw_of.get("sender", ()), text, defects)
    subject_raw = first("subject")
    subject = "" if subject_raw is None else _one_line(
        defects.guard("subject", lambda: text("subject", subject_raw), subject_raw), MAX_SUBJECT)

    content_type = defects.guard("Content-Type", msg.get_content_type, "text/plain")
    report_type = None
    if content_type.startswith("multipart/"):
        # Also read on other multipart types: some MTAs send multipart/mixed with report-type.
        param = defects.guard("Content-Type", lambda: msg.get_param("report-type"), None)
        if isinstance(param, str) and param.strip():
            report_type = param.strip().lower()

    if headers_only:
        payload = msg.get_payload()
        body = _normalise_text(_drop_surrogates(payload if isinstance(payload, str) else ""))
        body = body[:MAX_BODY]
        attachments: tuple[AttachmentPart, ...] = ()
    else:
        parents = {id(part): parent for part, parent in _walk(msg)}
        body, body_parts = defects.guard("body", lambda: _choose_body(msg, parents, defects),
                                         ("", set()))
        attachments = defects.guard(
            "attachments",
            lambda: _attachments(msg, body_parts | too_deep, text, defects, limits, dropped), ())
        _package_defects(msg, defects)

    return ParsedMail(
        message_id=message_id,
        message_id_synthesized=synthesized,
        sender=senders[0] if senders else None,
        reply_to=_addresses("reply-to", raw_of.get("reply-to", ()), text, defects),
        to=_addresses("to", raw_of.get("to", ()), text, defects),
        cc=_addresses("cc", raw_of.get("cc", ()), text, defects),
        subject=subject,
        date=_date(first("date"), defects),
        in_reply_to=_id_list(raw_of.get("in-reply-to", ()), keep_root=False),
        references=_id_list(raw_of.get("references", ()), keep_root=True),
        body=body,
        attachments=attachments,
        headers=MappingProxyType({name: tuple(values) for name, values in decoded.items()}),
        return_path=_return_path(first("return-path")),
        content_type=content_type,
        report_type=report_type,
        defects=tuple(defects.items),
        size=len(raw),
        dropped=tuple(dropped.items),
    )
