"""html_to_text(): markup in, readable text out; hostile markup in bounded time."""

from __future__ import annotations

import time

import pytest

from mailticket.mail.htmltext import html_to_text


@pytest.mark.parametrize("markup, expected", [
    ("", ""),
    ("plain text", "plain text"),
    ("<p>one</p><p>two</p>", "one\n\ntwo"),
    ("line<br>break<br/>again", "line\nbreak\nagain"),
    ("<div>a</div><div>b</div>", "a\nb"),
    ("<ul><li>first<li>second</ul>after", "- first\n- second\n\nafter"),
    ("<h1>Title</h1>text", "Title\n\ntext"),
    ("<blockquote>quoted</blockquote>", "quoted"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
    ("a&nbsp;&amp;&lt;b&gt;&#233;&eacute;", "a &<b>éé"),
    ("many    spaces\n\n and\tnewlines", "many spaces and newlines"),
    ("<p>a</p><p></p><p></p><br><br><br><p>b</p>", "a\n\nb"),
    # content that is never shown
    ("<head><title>T</title><style>p{}</style><meta x=y></head><body>body</body>", "body"),
    ("<script>if (a < b) { x() }</script>shown", "shown"),
    ("before<!-- hidden <b>comment</b> -->after", "beforeafter"),
    ("<!--[if gte mso 9]><xml><o:x>y</o:x></xml><![endif]-->visible", "visible"),
    ("<head><meta charset=utf-8><p>an unclosed head does not swallow this", "an unclosed head does "
     "not swallow this"),
    # links
    ('<a href="https://x.example/a">the docs</a>', "the docs (https://x.example/a)"),
    ('<a href="https://x.example/">https://x.example</a>', "https://x.example"),
    ('<a href="mailto:a@example.com">a@example.com</a>', "a@example.com"),
    ('<a href="#top">top</a> <a href="javascript:x()">run</a>', "top run"),
    ('<a href="https://x.example/i"><img src=i.png></a>', ""),
    ('<a href="u1">one<a href="u2">two</a>', "one (u1)two (u2)"),
    # pre keeps its lines
    ("<pre>a\n  b</pre>", "a\nb"),
    # unterminated constructs at the end
    ("text <a b=\"unterminated", "text"),
    ("text <!-- unterminated comment", "text"),
    ("text <b>bold", "text bold"),
])
def test_html_to_text(markup, expected):
    assert html_to_text(markup) == expected


@pytest.mark.parametrize("unit", [
    "<a b", '<a b="', "<!--", "</a", "<div>", "<![CDATA[", "<a href='x'>", "&amp", "<", "<<",
    "<table><tr><td>", "<p><span><b><i>",
])
def test_pathological_markup_is_linear(unit):
    # Python 3.11's HTMLParser.close() is quadratic on some of these (160 KB took minutes).
    markup = unit * 30_000
    started = time.monotonic()
    html_to_text(markup)
    assert time.monotonic() - started < 5


def test_deep_nesting_has_no_recursion():
    markup = "<div>" * 50_000 + "deep" + "</div>" * 50_000
    assert html_to_text(markup) == "deep"
