"""The values of parsing: ParsedMail and its Address and AttachmentPart, and the ParseLimits
that ``parse`` takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

__all__ = ["Address", "AttachmentPart", "ParseLimits", "ParsedMail"]


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
