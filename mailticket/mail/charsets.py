"""Charset labels -> Python codecs, and bytes -> text the way mail clients mean their charsets
(WHATWG aliases, CP932 inside ISO-2022-JP, raw 8-bit header bytes)."""

from __future__ import annotations

import codecs
import re

from mailticket.mail.notes import Notes, short

__all__ = ["codec", "decode_bytes", "drop_surrogates", "fix_8bit"]

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

_SURROGATE = re.compile("[\udc80-\udcff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ISO2022JP_ESCAPE = re.compile(rb"\x1b(\$@|\$B|\(B|\(J|\(I)")


def codec(label: str | None) -> str | None:
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
    # CodecInfo._is_text_encoding is private (pinned in tests/mail/test_library_pins.py).
    if not getattr(info, "_is_text_encoding", True):
        return None  # rot13, zlib, base64...: not text encodings
    return info.name


def decode_bytes(data: bytes, label: str | None, notes: Notes, where: str) -> str:
    """``data`` as text in the charset ``label`` names; what cannot be decoded is replaced,
    and said in ``notes`` (``where`` names the field or part)."""
    text = _decode(data, label, notes, where)
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _decode(data: bytes, label: str | None, notes: Notes, where: str) -> str:
    name = codec(label)
    if name is None:
        return _without_charset(data, label, notes, where)
    try:
        return data.decode(name)
    except UnicodeDecodeError:
        rescued = _rescue(data, name)
        if rescued is not None:
            return rescued
        notes.add(f"{where}: bytes invalid in {name}, replaced")
    except Exception:  # noqa: BLE001 - some codecs raise other errors on bad input
        notes.add(f"{where}: decoding with {name} failed, decoded as Latin-1")
        return data.decode("latin-1")
    try:
        return data.decode(name, errors="replace")
    except Exception:  # noqa: BLE001
        return data.decode("latin-1")


def _without_charset(data: bytes, label: str | None, notes: Notes, where: str) -> str:
    """No usable charset: UTF-8 where the bytes are UTF-8, else Latin-1."""
    if label and label.strip().strip("\"'").lower() not in _UNKNOWN_CHARSETS:
        notes.add(f"{where}: unknown charset {short(label, 40)!r}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if label:
            notes.add(f"{where}: not UTF-8, decoded as Latin-1")
        return data.decode("latin-1")


def _rescue(data: bytes, name: str) -> str | None:
    """What a declared charset the bytes are invalid in most likely meant, or None."""
    if name == "iso2022_jp":
        try:
            return _iso2022jp_as_cp932(data)
        except UnicodeDecodeError:
            pass
    if name == "ascii":  # "us-ascii" with 8-bit bytes is nearly always UTF-8
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return None


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


def fix_8bit(value: str, charset_guess: str | None) -> str:
    """Turn raw 8-bit bytes in a header (surrogate escapes) into text: UTF-8 (RFC 6532), else the
    message's declared charset, else Latin-1."""
    if not _SURROGATE.search(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    for name in ("utf-8", _EIGHT_BIT_FOR.get(charset_guess or "", charset_guess)):
        if name:
            try:
                return data.decode(name)
            except (UnicodeDecodeError, LookupError):
                pass
    return data.decode("latin-1")


def drop_surrogates(value: str) -> str:
    """Bytes the email package could not decode (unknown charset in an encoded word)."""
    if not _SURROGATE.search(value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
