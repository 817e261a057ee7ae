"""The quick reader of plain HTML (`_Xhtml.feed_plain`) makes exactly the XHTML that HTMLParser's reading makes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.epub import _Xhtml
from generator.markdown import markdown, sanitize

ROOT = Path(__file__).resolve().parents[1]


def href(link: str) -> str | None:
    return None if link.startswith("x") else link + "!"


def image(src: str) -> str | None:
    return None if not src else "img/" + src


def by_htmlparser(html: str) -> tuple[str, list[str]]:
    converter = _Xhtml(href, image)
    converter.feed(html)
    return converter.result(), sorted(converter.ids)


def quickly(html: str) -> tuple[str, list[str]] | None:
    converter = _Xhtml(href, image)
    if not converter.feed_plain(html):
        return None
    return converter.result(), sorted(converter.ids)


TAGS = ["p", "em", "a", "img", "br", "div", "span", "li", "ol", "hr", "section", "b", "script", "style", "td",
        "A", "Img", "sup"]
ATTRIBUTES = [' id="i1"', ' id="i1 x"', ' href="x"', ' href="y&amp;z"', ' src=""', ' src="s"', " reversed",
              ' alt=""', " ID='q'", ' colspan="0"', ' rowspan="2"', ' class="footnote-item"', '\n title="a&quot;b"',
              " x=y", ' start="-3"', ' lang="en-GB"', ' dir="up"', ' data-n="1"', ' cite="u"', " a b", ' href="#fn1"',
              ' id="fnref1"', ' title="a>b"', ' title="<p>"']
TEXT = ["text", "a&amp;b", "<", ">", "&", " ", "&nbsp;", "&#39;", "\u00a0", "&bogus;", "\n", "&lt;b&gt;", "“q”",
        "<!-- c -->", "<?pi?>", "<!DOCTYPE html>", "</>", "< p>"]


@st.composite
def tag_soup(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 14))):
        tag = draw(st.sampled_from(TAGS))
        kind = draw(st.sampled_from(["open", "attributes", "close", "self-closed", "text"]))
        if kind == "open":
            parts.append(f"<{tag}>")
        elif kind == "attributes":
            attributes = "".join(draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=3)))
            parts.append(f"<{tag}{attributes}{draw(st.sampled_from(['', ' ', '/', ' /']))}>")
        elif kind == "close":
            parts.append(f"</{tag}>")
        elif kind == "self-closed":
            parts.append(f"<{tag}/>")
        else:
            parts.append(draw(st.sampled_from(TEXT)))
    return "".join(parts)


@settings(max_examples=1500, deadline=None)
@given(tag_soup())
def test_plain_html_converts_as_through_htmlparser(html):
    quick = quickly(html)
    if quick is not None:
        assert quick == by_htmlparser(html)


@pytest.mark.parametrize("html", [
    "<p>a<b>b</p>c</b>", "<br></br><p/>x<img>", '<img src="q" alt="A&amp;">', "<ul><li>one<li>two</ul>",
    "</div>stray", "<div><p>unclosed", "<hr/><hr>", '<a href="y"><em>x</a></em>', '<p id="a">1</p><p id="a">2</p>',
    '<ol reversed start="">', "<br />", '<p\n  id="a b"\n>&nbsp;&amp</p>', '<P CLASS="x">Up</P>',
    '<td colspan="0" rowspan="2">t</td>', '<a href="x1">gone</a> <a href="y">kept</a>',
    '<p title="a>b">x > y &gt; z</p>', "<IMG><Em>x</EM>", "<Br>a</P>",
])
def test_plain_html_cases(html):
    assert quickly(html) == by_htmlparser(html)


@pytest.mark.parametrize("html", ["<!-- c --><p>x</p>", "<p>a < b</p>", "<p class=x>y</p>", "<script>a<b</script>",
                                  "<p title='single'>q</p>", "<STYLE>p{}</STYLE>", "<script/>"])
def test_anything_else_is_left_to_htmlparser(html):
    assert quickly(html) is None


def test_the_sample_chapters_take_the_quick_way():
    """The HTML the Markdown stage makes is plain: the quick way is the one taken, and gives the same XHTML."""
    texts = [path.read_text("utf-8") for path in sorted((ROOT / "content").rglob("*.md"))]
    assert texts
    for text in texts:
        html = sanitize(markdown().render(text, {"docId": "c"}))
        assert quickly(html) == by_htmlparser(html)
