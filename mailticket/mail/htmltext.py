"""HTML mail bodies -> readable plain text, on the standard library's html.parser.

No third-party converter (html2text is GPL). The converter keeps no tree and never recurses, so
arbitrarily deep nesting costs nothing, and it never lets HTMLParser finish an unterminated
construct itself: in Python 3.11 ``HTMLParser.close()`` rescans the rest of the document once per
stray ``<`` (quadratic: 160 KB of ``<a b`` takes minutes). ``feed()`` alone is linear and stops at
the first construct that does not end; we turn that remainder into text ourselves.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Elements whose content is never shown.
_SKIP = frozenset({"script", "style", "title", "template", "noscript", "xml"})
# What may appear inside <head>; any other tag, or visible text, ends it as in a browser
# (a <head> that is never closed must not swallow the message).
_HEAD_CONTENT = frozenset({"head", "meta", "link", "base", "basefont", "bgsound", "object"}) | _SKIP
# Elements that start and end a line.
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "tfoot", "thead", "tr",
    "ul", "caption",
})
# Blocks that read as paragraphs: a blank line around them.
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol",
                        "pre", "dl"})
_CELL = frozenset({"td", "th"})

_SPACE_RUN = re.compile(r"\s+")
_LINE_SPACE_RUN = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CRUDE_TAG = re.compile(r"<[^<>]*>")
_TAG_START = re.compile(r"</?[A-Za-z]")
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(//)?", re.IGNORECASE)
# How a comment ends in HTML5: "-->", or "--!>"; "<!-->" and "<!--->" are empty comments.
# Python 3.11's HTMLParser knows only "-->" and would treat the rest of the document as comment.
_COMMENT_END = re.compile(r"--!?>")
_EMPTY_COMMENTS = ("<!-->", "<!--->")
# For the fallback when HTMLParser gives up: what is never shown, up to its end or the end.
_HIDDEN = re.compile(r"<(script|style|title|template|noscript|xml)\b.*?(?:</\1\s*>|\Z)"
                     r"|<!--.*?(?:--!?>|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)", re.IGNORECASE | re.DOTALL)


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_tag: str | None = None
        self.skip_depth = 0
        self.in_head = False
        self.pending = 0  # line breaks owed before the next text: 1 or 2 (a blank line)
        self.pre_depth = 0
        self.link: tuple[str, int] | None = None  # (href, index in out where its text starts)

    # -- markup HTMLParser reads differently from a browser ------------------------------------
    # parse_comment, parse_marked_section, rawdata and cdata_elem are HTMLParser internals,
    # pinned in tests/mail/test_library_pins.py.
    def parse_comment(self, i: int, report: int = 1) -> int:
        rawdata = self.rawdata
        for empty in _EMPTY_COMMENTS:
            if rawdata.startswith(empty, i):
                return i + len(empty)
        match = _COMMENT_END.search(rawdata, i + 4)
        return -1 if match is None else match.end()

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # "<![CDATA[...]]>", "<![if ...]>" are read (and hidden) as _markupbase does; any other
        # keyword makes it raise AssertionError. HTML has no such sections: a browser reads
        # "<![foo[" as a bogus comment up to the next ">".
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i + 3)
            return -1 if end < 0 else end + 1

    # -- output -------------------------------------------------------------------------------
    def _break(self, level: int) -> None:
        """Ask for a line break (1) or a blank line (2) before the next text."""
        self.pending = max(self.pending, level)

    def _emit(self, text: str) -> None:
        if self.pending:
            if self.out:
                self.out.append("\n" * self.pending)
            self.pending = 0
        self.out.append(text)

    # -- tags ---------------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth += 1
            return
        if tag == "head":
            self.in_head = True
        elif self.in_head and tag not in _HEAD_CONTENT:
            self.in_head = False
        if self.in_head and tag not in _SKIP:
            return
        if tag in _SKIP:
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag == "br":
            self._emit("\n")
        elif tag == "li":
            self._break(1)
            self._emit("- ")
        elif tag in _BLOCK:
            self._break(2 if tag in _PARAGRAPH else 1)
            if tag == "pre":
                self.pre_depth += 1
        elif tag in _CELL:
            self.out.append(" ")
        elif tag == "a":
            # HTML does not nest links: a new <a> closes the open one. This also keeps link
            # handling linear, since every piece of text belongs to at most one link.
            self._end_link()
            href = next((value for name, value in attrs if name == "href" and value), None)
            if href is not None:
                self.link = (href.strip(), len(self.out))

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth <= 0:
                    self.skip_tag = None
            return
        if tag == "head":
            self.in_head = False
        if self.in_head:
            return
        if tag == "a":
            self._end_link()
        elif tag in _BLOCK and tag != "li":  # the next item or the list's end breaks the line
            self._break(2 if tag in _PARAGRAPH else 1)
            if tag == "pre" and self.pre_depth:
                self.pre_depth -= 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag != "br":
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self.skip_tag is not None or not data:
            return
        if self.in_head:
            if data.isspace():
                return
            self.in_head = False
        if self.pre_depth:
            self._emit(data.replace("\xa0", " "))
            return
        text = _SPACE_RUN.sub(" ", data)
        if text == " " and (self.pending or not self.out):
            return  # white space between blocks
        self._emit(text)

    # -- links --------------------------------------------------------------------------------
    def _end_link(self) -> None:
        if self.link is None:
            return
        href, start = self.link
        self.link = None
        text = _SPACE_RUN.sub(" ", "".join(self.out[start:])).strip()
        if text and _show_href(href, text):
            self.out.append(f" ({href})")

    def text(self) -> str:
        self._end_link()
        return "".join(self.out)


def _show_href(href: str, text: str) -> bool:
    if not href or href.startswith("#") or href.lower().startswith("javascript:"):
        return False
    if len(href) > 2000:  # tracking links of several KB help no one
        return False
    bare_href = _URL_SCHEME.sub("", href).rstrip("/").lower()
    bare_text = _URL_SCHEME.sub("", text).rstrip("/").lower()
    return bare_href != bare_text


def _tail_text(tail: str) -> str:
    """Text of the unparsed remainder: it starts with a construct that never ends."""
    if tail.startswith(("<!", "<?")):
        return ""  # an unterminated comment or declaration runs to the end: nothing to show
    if _TAG_START.match(tail):
        # A tag that never ends properly: drop it up to the first ">" (a browser drops the rest
        # of the document; we keep what follows, stripped of markup).
        end = tail.find(">")
        tail = "" if end < 0 else tail[end + 1:]
    return _SPACE_RUN.sub(" ", html.unescape(_CRUDE_TAG.sub(" ", tail)))


def _tidy(text: str) -> str:
    lines = [_LINE_SPACE_RUN.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """Readable text of an HTML document or fragment: blocks on their own lines, list items
    as "- ", links as "text (url)" when the text is not the url, no scripts, styles or comments."""
    if not markup:
        return ""
    conv = _Converter()
    try:
        conv.feed(markup)
    except Exception:  # noqa: BLE001 - HTMLParser asserts on some malformed markup
        # Crude, but never shows what a script, style or comment holds.
        text = _CRUDE_TAG.sub("\n", _HIDDEN.sub(" ", markup))
        return _tidy(_SPACE_RUN.sub(" ", html.unescape(text)))
    # rawdata is what feed() could not finish: see the module docstring.
    tail, conv.rawdata = conv.rawdata, ""
    in_raw_text = conv.skip_tag is not None or getattr(conv, "cdata_elem", None) is not None
    if tail and not in_raw_text:
        conv.handle_data(_tail_text(tail))
    return _tidy(conv.text())
