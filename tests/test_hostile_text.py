"""Hostile or unlucky text on its way into HTML and XML: the author's HTML left open, characters XML does not
allow, and scripts in SVG images. Each through a real build: the chapter page, the feeds and the EPUB."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
import zipfile
from datetime import date, timedelta
from html import unescape
from pathlib import Path

import feedparser
import html5lib
import pytest

from conftest import NOW, run_cli, tree_bytes, write_files
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError
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
    # (site.toml refuses control characters itself: see test_hostile_input.py)
    "site.toml": f'title = "Scratch Site"\ndescription = "About this"\nauthor = "Ann"\nbase_url = "{BASE}"\n',
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


# --- SVG images ---------------------------------------------------------------------------------------------------

SVG = "http://www.w3.org/2000/svg"
UNSAFE_SVG = f"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="{SVG}" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100" onload="alert(1)">
  <script type="text/javascript">alert(document.cookie)</script>
  <a xlink:href=" jav&#x61;script:alert(2)"><rect width="50" height="50" onclick="alert(3)"/></a>
  <foreignObject width="10" height="10"><div xmlns="http://www.w3.org/1999/xhtml">HTML<script>alert(4)</script></div></foreignObject>
  <a href="https://example.org/"><text x="10" y="80">MAP-LABEL</text></a>
</svg>
""".encode()
CLEAN_SVG = (f'<?xml version="1.0"?>\n<!-- a comment -->\n<svg xmlns="{SVG}" width="10" height="10">'
             '<circle r="4" cx="5" cy="5"/>\n<text>Clean &amp; tidy</text></svg>\n').encode()


def svg_site(root: Path, image: bytes, cover: bytes | None = None) -> Path:
    files: dict[str, str | bytes] = {
        "content/box/01-one.md": chapter("One", 1, "The map: ![Map](images/map.svg)"),
        "content/box/images/map.svg": image,
    }
    if cover is not None:
        files["content/box/story.md"] = STORY.replace("status: ongoing\n", "status: ongoing\ncover: cover.svg\n")
        files["content/box/cover.svg"] = cover
    return site(root, files)


def unsafe_parts(data: bytes) -> list[str]:
    """What in an SVG image could run: scripts, foreign objects, HTML, event handlers, javascript: links."""
    found = []
    for element in ET.fromstring(data).iter():
        name = element.tag.rpartition("}")[2].lower()
        if name in ("script", "foreignobject") or element.tag.startswith("{http://www.w3.org/1999/xhtml}"):
            found.append(element.tag)
        for key, value in element.attrib.items():
            if key.rpartition("}")[2].lower().startswith("on") or "javascript:" in re.sub(r"\s", "", value).lower():
                found.append(f"{key}={value}")
    return found


def test_svg_images_are_published_without_scripts(tmp_path: Path) -> None:
    root = svg_site(tmp_path / "site", UNSAFE_SVG, cover=UNSAFE_SVG)
    result = build(root, BuildOptions(output=root / "output", now=NOW))
    out = root / "output"
    for name in ("box/images/map.svg", "box/cover.svg"):
        published = (out / name).read_bytes()
        assert unsafe_parts(published) == []
        assert "MAP-LABEL" in text(published)
        assert 'href="https://example.org/"' in published.decode()
    with zipfile.ZipFile(out / "box/box.epub") as book:  # the book has the same images as the site
        assert book.read("EPUB/images/cover.svg") == (out / "box/cover.svg").read_bytes()
        assert book.read("EPUB/images/image-2.svg") == (out / "box/images/map.svg").read_bytes()
    warnings = [str(w) for w in result.warnings]
    assert any("map.svg" in w and "<script>" in w and "onload=" in w for w in warnings), warnings


def test_a_scripted_svg_saved_over_a_clean_one_reaches_the_book_without_its_script(tmp_path: Path) -> None:
    """A clean image is published as it is; the EPUB's cache key is made from the bytes the book holds, so the
    same image with a script added makes a new book, without the script."""
    root = svg_site(tmp_path / "site", CLEAN_SVG)
    result = build(root, BuildOptions(output=root / "output", now=NOW))
    assert (root / "output/box/images/map.svg").read_bytes() == CLEAN_SVG and result.warnings == ()
    (root / "content/box/images/map.svg").write_bytes(UNSAFE_SVG)
    build(root, BuildOptions(output=root / "output", now=NOW))
    with zipfile.ZipFile(root / "output/box/box.epub") as book:
        image = book.read("EPUB/images/image-1.svg")
    assert unsafe_parts(image) == [] and "MAP-LABEL" in text(image)
    assert image == (root / "output/box/images/map.svg").read_bytes()


@pytest.mark.slow
def test_epub_with_a_scripted_svg_passes_epubcheck(tmp_path: Path) -> None:
    root = svg_site(tmp_path / "site", UNSAFE_SVG, cover=UNSAFE_SVG)
    build(root, BuildOptions(output=root / "output", now=NOW))
    assert epubcheck(root / "output/box/box.epub") == []


LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE svg [\n<!ENTITY a "hahahahahahahahahahahaha">\n'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n' for i in range(9))
          + f']>\n<svg xmlns="{SVG}"><text>&j;</text></svg>\n').encode()
BAD_SVGS = {
    "not well-formed": (f'<svg xmlns="{SVG}">\n<rect>\n</svg>\n'.encode(), "map.svg:3: error: the SVG image cannot be read"),
    "billion laughs": (LAUGHS, "map.svg:3: error: the SVG image declares the entity `a`"),
    "an entity from outside": (f'<!DOCTYPE svg SYSTEM "x.dtd">\n<svg xmlns="{SVG}">&nbsp;</svg>'.encode(),
                               "map.svg:2: error: the SVG image uses the entity `&nbsp;`"),
    "not an svg": (b'<html xmlns="http://www.w3.org/1999/xhtml"><body><script>alert(1)</script></body></html>',
                   "map.svg:1: error: the file is not an SVG image"),
    "empty": (b"", "map.svg:1: error: the SVG image cannot be read"),
}


@pytest.mark.parametrize("case", BAD_SVGS)
def test_an_svg_that_cannot_be_published_is_an_error_naming_it(tmp_path: Path, case: str) -> None:
    """Exit 1 with the file (and line), no traceback, and the previous output as it was."""
    image, message = BAD_SVGS[case]
    root = svg_site(tmp_path / "site", CLEAN_SVG)
    run_cli("build", root, check=True)
    before = tree_bytes(root / "output")
    (root / "content/box/images/map.svg").write_bytes(image)
    started = time.perf_counter()
    result = run_cli("build", root)
    assert time.perf_counter() - started < 30
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert tree_bytes(root / "output") == before


@pytest.mark.parametrize("image", [
    f'<s:svg xmlns:s="{SVG}"><s:script>alert(1)</s:script><s:g/></s:svg>',
    f'<svg xmlns="{SVG}"><SCRIPT>alert(1)</SCRIPT><g/></svg>',
    f'<svg xmlns="{SVG}"><a href="&#106;avascript:alert(1)">x</a></svg>',
    f'<svg xmlns="{SVG}"><a href="\tJaVa\nScRiPt:alert(1)">x</a></svg>',
    f'<svg xmlns="{SVG}"><a><set attributeName="href" to="javascript:alert(1)"/>x</a></svg>',
    f'<svg xmlns="{SVG}"><a><animate attributeName="xlink:href" values="javascript:alert(1)"/>x</a></svg>',
    f'<svg xmlns="{SVG}"><use href="data:image/svg+xml;base64,PHN2Zy8+#a"/></svg>',
    f'<svg xmlns="{SVG}"><a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a></svg>',
    f'<svg xmlns="{SVG}" xml:base="javascript:/"><a href="alert(1)">x</a></svg>',
    f'<?xml-stylesheet type="text/xsl" href="evil.xsl"?><svg xmlns="{SVG}"/>',
    f'<svg xmlns="{SVG}"><h:iframe xmlns:h="http://www.w3.org/1999/xhtml" src="https://example.org/"/></svg>',
    f'<svg xmlns="{SVG}"><handler xmlns:ev="http://www.w3.org/2001/xml-events" ev:event="load">alert(1)</handler></svg>',
    f'<svg xmlns="{SVG}"><g ONMOUSEOVER="alert(1)"/></svg>',
    f'<!DOCTYPE svg [<!ATTLIST svg onload CDATA "alert(1)">]><svg xmlns="{SVG}"><g/></svg>',  # a default value
])
def test_what_can_run_in_an_svg_is_left_out(image: str) -> None:
    from generator.assets import clean_svg

    cleaned, removed = clean_svg(image.encode())
    assert removed and cleaned != image.encode()
    tree = ET.fromstring(cleaned)
    assert tree.tag == f"{{{SVG}}}svg"
    assert unsafe_parts(cleaned) == []
    assert not any(key.endswith("base") for element in tree.iter() for key in element.attrib)
    assert not any(value.startswith("data:text") or value.startswith("data:image/svg")
                   for element in tree.iter() for value in element.attrib.values())
    assert b"xml-stylesheet" not in cleaned and b"handler" not in cleaned and b"iframe" not in cleaned


def test_svg_images_keep_what_is_safe() -> None:
    from generator.assets import clean_svg

    image = (f'<svg xmlns="{SVG}" xmlns:xlink="http://www.w3.org/1999/xlink" onload="x()">'
             '<style>text &gt; tspan { fill: red }</style>'
             '<image xlink:href="data:image/png;base64,iVBORw0KGgo=" width="1" height="1"/>'
             '<a href="#here"><text xml:space="preserve">A &amp; B &lt; C</text></a>'
             '<animate attributeName="opacity" values="0;1" dur="1s"/><g/></svg>').encode()
    cleaned, removed = clean_svg(image)
    assert removed == ("onload=",)
    assert cleaned.decode() == (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="{SVG}" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<style>text &gt; tspan { fill: red }</style>'
        '<image xlink:href="data:image/png;base64,iVBORw0KGgo=" width="1" height="1"/>'
        '<a href="#here"><text xml:space="preserve">A &amp; B &lt; C</text></a>'
        '<animate attributeName="opacity" values="0;1" dur="1s"/><g/></svg>\n')


def test_a_deep_or_big_svg_is_read_as_it_streams() -> None:
    """Nesting a hundred thousand deep, or megabytes of paths, are no trouble (no recursion, no tree)."""
    from generator.assets import clean_svg

    deep = f'<svg xmlns="{SVG}">'.encode() + b"<g>" * 100_000 + b'<script>x</script>' + b"</g>" * 100_000 + b"</svg>"
    cleaned, removed = clean_svg(deep)
    assert removed == ("<script>",) and b"script" not in cleaned and cleaned.count(b"<g") == 100_000
    big = (f'<svg xmlns="{SVG}">'.encode() + b'<path d="M0 0 L10 10 Z" fill="#123456"/>\n' * 100_000 + b"</svg>")
    started = time.perf_counter()
    assert clean_svg(big) == (big, ())
    assert time.perf_counter() - started < 5


def test_an_svg_error_is_reported_by_check_too(tmp_path: Path) -> None:
    root = svg_site(tmp_path / "site", b"<svg")
    with pytest.raises(ContentError) as caught:
        build(root, BuildOptions(output=root / "output", now=NOW, write=False))
    assert any(p.path.name == "map.svg" and "cannot be read" in p.message for p in caught.value.problems)
