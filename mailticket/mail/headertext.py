"""Raw header values -> text: folding, raw 8-bit bytes and RFC 2047 encoded words, and the clean
one-line form of a value (subjects, display names)."""

from __future__ import annotations

import base64
import binascii
import re

from mailticket.mail.charsets import decode_bytes, fix_8bit
from mailticket.mail.notes import UNSAFE_CHARS, Notes

__all__ = ["FOLD", "HeaderText", "one_line"]

FOLD = re.compile(r"\r\n|\r|\n")
_WHITESPACE = re.compile(r"\s+")
# RFC 2047 encoded word; tolerates spaces inside the text, which some mailers write.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*?)\?=")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def one_line(value: str, limit: int) -> str:
    """``value`` on one line, white space collapsed, no unsafe characters, at most ``limit``."""
    value = _WHITESPACE.sub(" ", value)
    value = UNSAFE_CHARS.sub("", value).strip()
    return value[:limit].rstrip() if len(value) > limit else value


def _word_bytes(encoding: str, encoded: str) -> bytes:
    if encoding in "bB":
        letters = _NOT_BASE64.sub("", encoded)
        if len(letters) % 4 == 1:
            letters = letters[:-1]  # a truncated quantum carries no whole byte
        return binascii.a2b_base64(letters + "=" * (-len(letters) % 4))
    return binascii.a2b_qp(encoded.encode("utf-8", "surrogateescape"), header=True)


class HeaderText:
    """Decodes header values to text: raw 8-bit bytes, then RFC 2047 encoded words.

    Our own decoder rather than the email package's header parser: that parser is quadratic in
    the length of a value (a 400 KB To: takes 30 s), decodes each encoded word on its own (a
    character split across two words becomes two replacement characters), and knows only
    Python's charset names (not gb2312-as-gbk, ks_c_5601-1987, iso-8859-8-i...).
    """

    def __init__(self, charset_guess: str | None, notes: Notes) -> None:
        self.charset_guess = charset_guess
        self.notes = notes

    def __call__(self, name: str, raw: str) -> str:
        """The value as text."""
        return self._decode(name, raw, reencode=False)

    def normalise_words(self, name: str, raw: str) -> str:
        """The value with raw 8-bit bytes decoded and every run of encoded words decoded by us
        and re-encoded as one UTF-8 word, for the structured (address) parser to read."""
        return self._decode(name, raw, reencode=True)

    def _decode(self, name: str, raw: str, reencode: bool) -> str:
        value = FOLD.sub("", raw)
        guess = self.charset_guess
        if "=?" not in value:
            return fix_8bit(value, guess)
        text = _Pieces(name, self.notes, reencode)
        pos = 0
        for match in _ENCODED_WORD.finditer(value):
            between = value[pos:match.start()]
            try:
                # Raw 8-bit bytes inside an encoded word belong to the word's charset.
                data = _word_bytes(match.group(2), match.group(3))
            except (binascii.Error, ValueError):
                self.notes.add(f"{name}: broken encoded word kept as written")
                text.plain(fix_8bit(value[pos:match.end()], guess))
                pos = match.end()
                continue
            # White space between two encoded words is not part of the text (RFC 2047 6.2).
            if not (text.in_words() and not between.strip()):
                text.plain(fix_8bit(between, guess))
            text.word(match.group(1).split("*", 1)[0], data)  # no RFC 2231 language suffix
            pos = match.end()
        text.plain(fix_8bit(value[pos:], guess))
        return text.joined()


class _Pieces:
    """One header value as it is decoded: plain text, and runs of adjacent encoded words whose
    bytes are joined per charset before decoding (a character may be split across two words)."""

    def __init__(self, name: str, notes: Notes, reencode: bool) -> None:
        self.name = name
        self.notes = notes
        self.reencode = reencode
        self.out: list[str] = []
        self.words: list[str] = []   # decoded text of adjacent encoded words
        self.run: list[bytes] = []   # bytes of adjacent encoded words in one charset
        self.run_charset = ""

    def in_words(self) -> bool:
        return bool(self.run or self.words)

    def word(self, charset: str, data: bytes) -> None:
        if charset.lower() != self.run_charset.lower():
            self._end_run()
        self.run.append(data)
        self.run_charset = charset

    def plain(self, text: str) -> None:
        self._end_words()
        self.out.append(text)

    def joined(self) -> str:
        self._end_words()
        return "".join(self.out)

    def _end_run(self) -> None:
        if self.run:
            self.words.append(decode_bytes(b"".join(self.run), self.run_charset, self.notes,
                                           self.name))
            self.run.clear()

    def _end_words(self) -> None:
        self._end_run()
        if not self.words:
            return
        text = "".join(self.words)
        if self.reencode:
            # Control characters would make the address parser refuse the whole list (a CR or
            # LF in a display name): they never survive into a name anyway.
            text = UNSAFE_CHARS.sub(" ", text)
            text = "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode() + "?="
        self.out.append(text)
        self.words.clear()
