"""The body text of a MIME tree: the text part (with the inline text parts that follow it),
else the HTML part through ``html_to_text``, else a multipart that lost its boundary; decoded,
normalised and capped."""

from __future__ import annotations

from email.message import EmailMessage, Message

from mailticket.mail.charsets import decode_bytes, drop_surrogates
from mailticket.mail.htmltext import html_to_text
from mailticket.mail.mime import children, is_attachment, is_lying_multipart, walk
from mailticket.mail.notes import Notes

__all__ = ["MAX_BODY", "choose_body", "normalise_text", "part_text"]

MAX_BODY = 1_000_000
MAX_HTML_INPUT = 5_000_000         # HTML beyond this is not converted (the text is capped anyway)


def normalise_text(text: str) -> str:
    """Line ends as "\\n", no NUL characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x00", "") if "\x00" in text else text


def part_text(part: Message, defects: Notes, where: str) -> str:
    """The decoded content of a leaf part as text, in its declared charset."""
    payload = part.get_payload(decode=True)
    if not payload:
        return ""
    if isinstance(payload, str):  # defensive: decode=True returns bytes for every leaf
        return drop_surrogates(payload)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset(), defects, where)


def choose_body(msg: Message, parents: dict[int, Message | None],
                defects: Notes) -> tuple[str, set[int]]:
    """The body text and the ids of the parts it was made from (they are no attachments).

    ``parents`` maps each part's id to its parent. An error reading the inline parts after the
    text part is not caught here: the caller's guard gives up the whole body."""
    used: set[int] = set()
    plain = _find(msg, "plain", defects)
    text = "" if plain is None else _plain_text(plain, parents, used, defects)
    if not text.strip():
        html_part = _find(msg, "html", defects)
        if html_part is not None:
            used.add(id(html_part))
            text = _html_text(html_part, defects)
    if plain is None and not text.strip():
        # No usable body part: a declared multipart without boundaries is still text.
        part = next((part for part, _ in walk(msg) if is_lying_multipart(part)), None)
        if part is not None:
            used.add(id(part))
            text = part_text(part, defects, "body")
    text = normalise_text(text)
    if len(text) > MAX_BODY:
        defects.add(f"body of {len(text)} characters cut to {MAX_BODY}")
        text = text[:MAX_BODY]
    return text, used


def _find(msg: Message, preference: str, defects: Notes) -> Message | None:
    if not isinstance(msg, EmailMessage):  # parse builds every part as one (mime._Part)
        return None
    return defects.guard("body", lambda: msg.get_body(preferencelist=(preference,)), None)


def _plain_text(plain: Message, parents: dict[int, Message | None], used: set[int],
                defects: Notes) -> str:
    used.add(id(plain))
    text = defects.guard("text part", lambda: part_text(plain, defects, "text part"), "")
    # Apple Mail and others split one text into several inline parts around images: the plain
    # parts that follow in the same multipart/mixed belong to the body too.
    parent = parents.get(id(plain))
    if parent is None or parent.get_content_type() != "multipart/mixed":
        return text
    siblings = children(parent)
    pieces, length = [text], len(text)
    for sibling in siblings[siblings.index(plain) + 1:]:
        if (sibling.get_content_type() != "text/plain" or is_attachment(sibling)
                or sibling.get_filename()):
            continue
        used.add(id(sibling))
        if length > MAX_BODY:
            continue  # beyond the cap: still part of the body, not an attachment
        more = part_text(sibling, defects, "text part")
        if more.strip():
            pieces[-1] = pieces[-1].rstrip()
            pieces.append(more)
            length += len(more)
    return "\n\n".join(pieces)


def _html_text(html_part: Message, defects: Notes) -> str:
    markup = defects.guard("HTML part", lambda: part_text(html_part, defects, "HTML part"), "")
    if len(markup) > MAX_HTML_INPUT:
        defects.add(f"HTML body of {len(markup)} characters: converted the first "
                    f"{MAX_HTML_INPUT}")
        markup = markup[:MAX_HTML_INPUT]
    return html_to_text(markup)
