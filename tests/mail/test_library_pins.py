"""The private and internal parts of the standard library that mail/ relies on, pinned.

Each test runs against the installed Python and fails, naming the version, when one of them
changes shape or disappears; the message says which of our modules to revisit. Public
replacements were used wherever one behaves identically (mime._Part calls len() and
Message.set_raw rather than touching Message._headers); these have none.
"""

from __future__ import annotations

import codecs
import email.feedparser
import email.message
import email.policy
import inspect
import sys
from html.parser import HTMLParser

import pytest

from mailticket.mail import mime
from mailticket.mail.notes import Notes
from mailticket.mail.parsed import ParseLimits

PYTHON = f"Python {sys.version}"


def changed(what: str, ours: str) -> str:
    return f"{what} changed in {PYTHON}: revisit {ours}"


# --- email.message -------------------------------------------------------------------------------
def test_message_routes_parameter_lookups_through_get_params_preserve():
    # mime._Part overrides this private method to split parameters in linear time.
    original = getattr(email.message.Message, "_get_params_preserve", None)
    assert original is not None, changed("email.message.Message._get_params_preserve (gone)",
                                         "mime._Part._get_params_preserve")
    assert list(inspect.signature(original).parameters) == ["self", "failobj", "header"], \
        changed("the signature of Message._get_params_preserve", "mime._Part")
    calls: list[str] = []

    class Recording(email.message.Message):
        def _get_params_preserve(self, failobj, header):  # type: ignore[no-untyped-def]
            calls.append(header)
            return super()._get_params_preserve(failobj, header)

    msg = Recording()
    msg["Content-Type"] = 'multipart/mixed; boundary="b"; charset=utf-8; name="n.txt"'
    msg["Content-Disposition"] = 'attachment; filename="f.txt"'
    for name, lookup in (("get_param", lambda: msg.get_param("charset")),
                         ("get_params", msg.get_params), ("get_boundary", msg.get_boundary),
                         ("get_filename", msg.get_filename),
                         ("get_content_charset", msg.get_content_charset)):
        calls.clear()
        lookup()
        assert calls, changed(f"Message.{name} no longer calls _get_params_preserve",
                              "mime._Part")


@pytest.mark.parametrize("value", [
    'text/plain; charset="utf-8"; format=flowed',
    'attachment; filename*=utf-8\'\'%C3%A9t%C3%A9.pdf; size=12',
    'multipart/mixed; boundary="a;b"; x="q\\"uo;te"',
    'text/plain;; ; charset = us-ascii ;bare',
    'application/pdf; name*0="long "; name*1="name.pdf"',
])
def test_our_parameter_lookup_matches_the_email_package(value):
    ours = mime.Budget(ParseLimits(), Notes(), Notes())()
    theirs = email.message.Message()
    for msg in (ours, theirs):
        msg["Content-Type"] = value
    assert ours._get_params_preserve(None, "content-type") == \
        theirs._get_params_preserve(None, "content-type"), \
        changed("Message._get_params_preserve's result", "mime._Part._get_params_preserve")
    # The quadratic original that mime.split_params replaces, item for item.
    parseparam = getattr(email.message, "_parseparam", None)
    assert parseparam is not None, changed("email.message._parseparam (gone)",
                                           "mime.split_params and its test in test_limits.py")
    assert mime.split_params(value) == parseparam(value), \
        changed("email.message._parseparam", "mime.split_params")


# --- email.feedparser ----------------------------------------------------------------------------
NESTED = ("Content-Type: multipart/mixed; boundary=a\n\n--a\n"
          "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
          "Content-Type: text/plain\n\ndeep\n--b--\n--a--\n")


def test_feedparser_keeps_its_open_parts_in_msgstack():
    # mime.Budget reads FeedParser._msgstack to know how deep the part it makes will be.
    parsers: list[email.feedparser.FeedParser] = []
    depths: list[int] = []

    def factory(policy=email.policy.compat32):  # type: ignore[no-untyped-def]
        if parsers:
            stack = getattr(parsers[0], "_msgstack", None)
            depths.append(-1 if stack is None else len(stack))
        return email.message.Message(policy=policy)

    parsers.append(email.feedparser.FeedParser(factory, policy=email.policy.compat32))
    assert isinstance(getattr(parsers[0], "_msgstack", None), list), \
        changed("email.feedparser.FeedParser._msgstack (gone or not a list)",
                "mime.Budget.open_parts")
    parsers[0].feed(NESTED)
    parsers[0].close()
    assert depths == [0, 1, 2], changed("what FeedParser._msgstack holds when a part is made",
                                        "mime.Budget.open_parts")


def test_feedparser_stores_every_header_field_through_set_raw():
    # mime._Part.set_raw is where long header fields are cut and extra ones left out.
    seen: list[str] = []

    class Recording(email.message.Message):
        def set_raw(self, name, value):  # type: ignore[no-untyped-def]
            seen.append(name)
            super().set_raw(name, value)

    parser = email.feedparser.FeedParser(Recording, policy=email.policy.compat32)
    parser.feed("From: a@example.org\nX-One: 1\nSubject: s\n\nbody\n")
    msg = parser.close()
    assert seen == ["From", "X-One", "Subject"] and len(msg) == 3, \
        changed("FeedParser no longer calls Message.set_raw per header field",
                "mime._Part.set_raw")


def test_feedparser_asks_the_part_whether_it_is_multipart():
    # mime.Budget makes a part nested too deeply a leaf by overriding its get_content_type.
    made: list[email.message.Message] = []

    def factory(policy=email.policy.compat32):  # type: ignore[no-untyped-def]
        part = email.message.Message(policy=policy)
        if len(made) == 1:  # the first part below the top-level message
            part.get_content_type = lambda: "text/plain"  # type: ignore[method-assign]
        made.append(part)
        return part

    parser = email.feedparser.FeedParser(factory, policy=email.policy.compat32)
    made.clear()
    parser.feed(NESTED)
    [child] = parser.close().get_payload()
    assert isinstance(child.get_payload(), str) and "--b" in child.get_payload(), \
        changed("FeedParser deciding multipart without part.get_content_maintype()",
                "mime.Budget.__call__")


# --- codecs --------------------------------------------------------------------------------------
def test_codec_info_says_which_codecs_are_text_encodings():
    # charsets.codec refuses rot13, base64, zlib... by CodecInfo._is_text_encoding.
    for name, expected in (("utf-8", True), ("iso2022_jp", True), ("rot13", False),
                           ("base64", False), ("zlib", False), ("hex", False)):
        info = codecs.lookup(name)
        assert getattr(info, "_is_text_encoding", None) is expected, \
            changed(f"codecs.CodecInfo._is_text_encoding (for {name})", "charsets.codec")


# --- html.parser ---------------------------------------------------------------------------------
def test_htmlparser_leaves_what_it_could_not_finish_in_rawdata():
    # htmltext.html_to_text turns the unfinished rest into text itself (see its docstring).
    parser = HTMLParser(convert_charrefs=True)
    parser.feed("text <a b")
    assert getattr(parser, "rawdata", None) == "<a b", \
        changed("HTMLParser.rawdata after feed()", "htmltext.html_to_text")


def test_htmlparser_names_the_open_raw_text_element_in_cdata_elem():
    parser = HTMLParser(convert_charrefs=True)
    parser.feed("<script>if (a < b")
    assert getattr(parser, "cdata_elem", None) == "script", \
        changed("HTMLParser.cdata_elem", "htmltext.html_to_text")


def test_htmlparser_reads_comments_through_parse_comment():
    # htmltext._Converter.parse_comment ends comments at "--!>" too, as HTML5 does.
    calls: list[int] = []

    class Recording(HTMLParser):
        def parse_comment(self, i, report=1):  # type: ignore[no-untyped-def]
            calls.append(i)
            return -1  # "not finished": the rest must stay in rawdata

    parser = Recording(convert_charrefs=True)
    parser.feed("a<!--x-->b")
    assert calls and parser.rawdata.startswith("<!--"), \
        changed("HTMLParser.goahead and parse_comment", "htmltext._Converter.parse_comment")


def test_htmlparser_refuses_unknown_marked_sections_with_assertionerror():
    # htmltext._Converter.parse_marked_section reads "<![foo[" as a bogus comment instead.
    parser = HTMLParser(convert_charrefs=True)
    parser.rawdata = "<![foo[ x ]]>"
    try:
        parser.parse_marked_section(0)
    except AssertionError:
        return
    pytest.fail(changed("HTMLParser.parse_marked_section on an unknown keyword (no longer "
                        "AssertionError)", "htmltext._Converter.parse_marked_section"))
