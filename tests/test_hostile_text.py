"""Hostile or unlucky text on its way into HTML and XML: the author's HTML left open, and characters XML does not
allow. Each through a real build: the chapter page, the feeds and the EPUB."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from datetime import date, timedelta
from html import unescape
from pathlib import Path

import feedparser
import html5lib
import pytest

from conftest import NOW, write_files
from generator.build import build
from generator.config import BuildOptions
from test_epub import epubcheck

BASE = "https://example.org/fic/"
STORY = "---\ntitle: The Box\nauthor: Ann\nrating: General Audiences\nstatus: ongoing\n---\nA summary.\n"


def site(root: Path, files: dict[str, str | bytes]) -> Path:
    return write_files(root, {"site.toml": f'title = "Scratch"\nbase_url = "{BASE}"\nfeed_items = 100\n',
                              "content/box/story.md": STORY, **files})


def chapter(title: str, number: int, body: str, extra: str = "") -> str:
    return f"---\ntitle: {title}\ndate: {date(2025, 1, 1) + timedelta(days=number)}\n{extra}---\n{body}\n"


def text(html: bytes | str) -> str:
    """The text of HTML or XHTML, as a reader sees it (one space between words)."""
    html = html.decode("utf-8") if isinstance(html, bytes) else html
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def epub_documents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as book:
        return {name: book.read(name) for name in book.namelist() if name.endswith((".xhtml", ".opf", ".ncx"))}


# --- the author's HTML left open ----------------------------------------------------------------------------------

# An element whose content is raw text, a `template`, `plaintext` and a comment, left open: the sanitiser would
# take the rest of the chapter for part of it.
OPEN = ["<script>", "<style>", "<template>", "<textarea>", "<title>", "<xmp>", "<iframe>", "<noscript>", "<noembed>",
        "<noframes>", "<plaintext>", "<SCRIPT type='x'>", "<!--"]
# Each in the middle of a sentence, and where markdown-it takes it for the start of a block of HTML.
PLACES = {
    "inline": "She typed {tag} into the box, and AFTER{n} the rest of the chapter.\n\nPARA{n} goes on *here*.",
    "block": "{tag}\nAFTER{n} on the next line.\n\nPARA{n} goes on *here*.",
    "quote": "> {tag}\n> AFTER{n} in the quote.\n\nPARA{n} goes on *here*.",
}
CASES = [(place, tag) for place in PLACES for tag in OPEN if (place, tag) != ("inline", "<!--")]  # (that one is text)
# And a tag whose quote is left open, in a block of HTML: it would take the text up to the next quote.
CASES.append(("block", '<div title="oops'))


@pytest.fixture(scope="module")
def open_markup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = {f"content/box/{n:02d}-case.md": chapter(f"Case {n}", n, PLACES[place].format(tag=tag, n=n)
                                                     + " [A link](https://example.org/) and END.")
             for n, (place, tag) in enumerate(CASES, start=1)}
    files["content/box/99-closed.md"] = chapter("Closed", 99, "Safe <script>alert('SCRIPT-BODY')</script> DONE99.")
    root = site(tmp_path_factory.mktemp("open") / "site", files)
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


@pytest.mark.parametrize("number", range(1, len(CASES) + 1), ids=[f"{p}-{t}" for p, t in CASES])
def test_html_left_open_does_not_take_the_rest_of_the_chapter(open_markup: Path, number: int) -> None:
    """What follows an unclosed `<script>` (and the like) is on the page, in the feed and in the EPUB."""
    wanted = [f"AFTER{number}", f"PARA{number}", "END."]
    html = (open_markup / f"box/{number:02d}-case/index.html").read_text("utf-8")
    assert f"PARA{number} goes on <em>here</em>" in html  # Markdown still, not the author's HTML
    page = text(html)
    assert all(word in page for word in wanted), page
    tag = CASES[number - 1][1]
    if not tag.startswith("<!--"):  # (a comment's `--` is a dash, as anywhere in the text)
        assert tag.split()[0] in page  # the tag left open is shown as text
    items = {entry.title: entry.description for entry in feedparser.parse(
        (open_markup / "box/feed.xml").read_bytes()).entries}
    assert all(word in text(items[f"The Box - Chapter {number}: Case {number}"]) for word in wanted)
    book = epub_documents(open_markup / "box/box.epub")
    assert all(word in text(book[f"EPUB/chapter-{number}.xhtml"]) for word in wanted)


def test_a_script_left_open_is_text_and_one_with_its_end_tag_is_left_out(open_markup: Path) -> None:
    page = text((open_markup / "box/01-case/index.html").read_bytes())
    assert "She typed <script> into the box, and AFTER1 the rest of the chapter." in page
    page = (open_markup / "box/99-closed/index.html").read_text("utf-8")
    assert "DONE99" in page and "SCRIPT-BODY" not in page
    assert "SCRIPT-BODY" not in (open_markup / "box/feed.xml").read_text("utf-8")


# --- characters XML does not allow --------------------------------------------------------------------------------

FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
CONTROLS = {
    "site.toml": f'title = "Scratch \\u0001 Site"\ndescription = "About \\u000c this"\nauthor = "Ann \\u0085"\n'
                 f'base_url = "{BASE}"\n',
    "content/box/story.md": '---\ntitle: "The \\x01 Box"\nauthor: "Ann \\x0c"\nrating: General Audiences\n'
                            'tags: ["Form \\x0c feed", "Clean"]\nfandoms: ["Fan \\uFFFF dom"]\n'
                            'notes_before: "Work note &#xC; here"\n---\nA summary &#1; with &#xFFFF; in it.\n',
    "content/box/01-one.md": chapter(
        "One \\x0b", 1,
        "Form feed A &#xC; B, a title <span title='&#1;'>TITLED</span>, &#xFFFF; and &#xD800; and &#x7f;.\n\n"
        "Raw <b>&#x85;&#xFDD0;&#1;&#xC;&#xFFFE;&#xDFFF;</b> END-XML.\n\nRaw \x0c form feed.",
        extra='summary: "Sum &#xC; mary"\nnotes_before: "Note &#1; before"\nnotes_after: "Note &#xFFFF; after"\n'),
}


@pytest.fixture(scope="module")
def controls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(tmp_path_factory.mktemp("controls") / "site", CONTROLS)
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


def test_feeds_and_sitemap_are_xml_whatever_the_text_holds(controls: Path) -> None:
    for name in ("feed.xml", "box/feed.xml", "sitemap.xml"):
        data = (controls / name).read_bytes()
        ET.fromstring(data)  # raises on a character XML does not allow
        assert not FORBIDDEN.search(data.decode("utf-8")), name
    feed = feedparser.parse((controls / "box/feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert "END-XML" in feed.entries[0].description and "TITLED" in feed.entries[0].description
    assert "Scratch" in feedparser.parse((controls / "feed.xml").read_bytes()).feed.title


def test_epub_documents_are_xml_whatever_the_text_holds(controls: Path) -> None:
    documents = epub_documents(controls / "box/box.epub")
    for name, data in documents.items():
        ET.fromstring(data)
        assert not FORBIDDEN.search(data.decode("utf-8")), name
    assert "END-XML" in text(documents["EPUB/chapter-1.xhtml"])
    assert "Scratch" in text(documents["EPUB/content.opf"])  # the publisher, not left out whole


def test_pages_hold_no_character_html_counts_as_an_error(controls: Path) -> None:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    pages = sorted(controls.rglob("*.html"))
    assert pages
    for page in pages:
        data = page.read_bytes()
        parser.parse(data)  # raises on a control character or a non-character
        assert not FORBIDDEN.search(data.decode("utf-8")), page
    chapter_page = text((controls / "box/01-one/index.html").read_bytes())
    assert "Form feed A B, a title TITLED" in chapter_page and "END-XML" in chapter_page


@pytest.mark.slow
def test_epub_with_forbidden_characters_passes_epubcheck(controls: Path) -> None:
    assert epubcheck(controls / "box/box.epub") == []


def test_the_quick_look_finds_every_character_xml_text_removes() -> None:
    """`xml_utf8` looks at a document's bytes rather than its characters: it must find the same ones."""
    from generator.xmlchars import xml_text, xml_utf8

    for code in [*range(0x11000), *range(0x1FFF0, 0x20010), *range(0x10FFF0, 0x110000)]:
        sample = f"a{chr(code)}é"
        assert xml_utf8(sample) == xml_text(sample).encode("utf-8", "surrogatepass"), hex(code)
        assert (xml_text(sample) == sample) == (FORBIDDEN.search(sample) is None), hex(code)
