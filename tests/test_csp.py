"""Nothing an author writes becomes a script.

Serialist's own link schemes (`serialist:`, `serialist-file:`) cannot be forged
from a text; no page, feed or book links to `javascript:`, `vbscript:` or
`data:`, whatever the input.
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

import pytest

from conftest import chapter, run_cli, tree_bytes

# --- what the tests look for -------------------------------------------------------------------------------------

# Every attribute whose value a browser (or a feed reader, or an e-reader) may load or follow as a URL.
URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "action", "formaction", "poster", "xlink:href", "data",
                            "background", "cite", "longdesc", "ping", "lowsrc", "dynsrc", "codebase", "usemap",
                            "manifest", "icon", "xml:base", "imagesrcset", "content-location"})
FORBIDDEN_SCHEMES = ("javascript", "vbscript", "data", "serialist", "serialist-file")
# Elements no text may bring into a page (the theme has none of them).
FORBIDDEN_ELEMENTS = frozenset({"script", "iframe", "frame", "object", "embed", "applet", "area", "map", "video",
                                "audio", "source", "svg", "math", "form", "button", "input", "style", "base",
                                "meta", "link"})


def scheme(url: str) -> str:
    """The scheme of `url` as a browser reads it (written here again, not taken from the generator)."""
    url = re.sub(r"[\t\n\r]", "", url.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11"
                                             "\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
    found = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
    return found.group(1).lower() if found else ""


def urls_of(name: str, value: str) -> list[str]:
    if name in ("srcset", "imagesrcset"):
        return [candidate.strip().split(" ")[0] for candidate in value.split(",") if candidate.strip()]
    return [value]


class Elements(HTMLParser):
    """Every element of an HTML document: (tag, attributes), attributes with their references read."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def dangers(html: str, where: str) -> list[str]:
    """Each link or source of `html` that leads to a script, data, or a placeholder; each event handler."""
    problems = []
    for tag, attributes in Elements(html).found:
        for name, value in attributes.items():
            if name.startswith("on"):
                problems.append(f"{where}: <{tag} {name}=…>")
            if name in URL_ATTRIBUTES:
                for url in urls_of(name, value):
                    if scheme(url) in FORBIDDEN_SCHEMES or scheme(url).startswith("serialist"):
                        problems.append(f"{where}: <{tag} {name}={url!r}>")
    return problems


def text_elements(html: str) -> set[str]:
    return {tag for tag, _ in Elements(html).found}


# --- internal link schemes cannot be forged --------------------------------------------------------------------

# Each goes into every Markdown field of a chapter and a story (text, notes, summaries); none may end up as a
# link or a source that runs a script or shows data.
ATTACKS = [
    "[md link](javascript:alert(1))",
    "[md link case](JaVaScRiPt:alert(1))",
    "[md link entity](&#106;avascript&#58;alert(1))",
    "[md link vbscript](vbscript:msgbox(1))",
    "[md link data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![md image data](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![md image js](javascript:alert(1))",
    "[reference][r]\n\n[r]: javascript:alert(1)",
    "<javascript:alert(1)>",
    '<a href="javascript:alert(1)">raw a</a>',
    '<a href=" &#x6A;avascript&colon;alert(1)">raw a, references</a>',
    '<a href="java&#x09;script:alert(1)">raw a, tab</a>',
    '<a href="java\nscript:alert(1)">raw a, line end</a>',
    '<a href="\x01javascript:alert(1)">raw a, control</a>',
    "<a href='vbscript:msgbox(1)'>raw a, vbscript</a>",
    '<a href="data:text/html,<script>alert(1)</script>">raw a, data</a>',
    '<img src="javascript:alert(1)" alt="raw img js">',
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="raw img data">',
    '<img src="images/map.png" srcset="javascript:alert(1) 1x, data:image/png;base64,AA 2x" alt="srcset">',
    '<img src="images/map.png" onerror="alert(1)" alt="onerror">',
    '<map name="m"><area shape="rect" coords="0,0,1,1" href="javascript:alert(1)"></map>',
    '<video poster="javascript:alert(1)" src="javascript:alert(1)"><source src="javascript:alert(1)"></video>',
    '<svg><a xlink:href="javascript:alert(1)"><text>svg link</text></a><image href="javascript:alert(1)"/></svg>',
    '<math><mi xlink:href="javascript:alert(1)">math link</mi></math>',
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">b</button>'
    '<input type="image" src="javascript:alert(1)"></form>',
    '<iframe src="javascript:alert(1)"></iframe><object data="javascript:alert(1)"></object>'
    '<embed src="javascript:alert(1)">',
    '<table><tr><td background="javascript:alert(1)" style="background:url(javascript:alert(1))">cell</td></tr></table>',
    '<q cite="javascript:alert(1)">quote</q> <blockquote cite="vbscript:msgbox(1)">block</blockquote>',
    '<base href="javascript:alert(1)//"><link rel="stylesheet" href="javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<div style="background-image:url(javascript:alert(1))">styled</div>',
    '<a href="https://example.org/" onclick="alert(1)">a web link</a>',
]
SAFE_LINKS = "[a web link](https://example.org/) [next](2-two.md) [map](images/map.png) ![the map](images/map.png)"


def attack_text(tag: str) -> str:
    return "\n\n".join([f"{tag}: {attack}" for attack in ATTACKS] + [SAFE_LINKS])


def indented(text: str) -> str:
    return "\n".join("  " + line if line else "" for line in text.split("\n"))


PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site with every attack in every Markdown field, built with feeds and books: its output."""
    site = tmp_path_factory.mktemp("attacked") / "site"
    fields = ("notes_before: |\n{nb}\nnotes_after: |\n{na}\nsummary: |\n{s}\n")
    files = {
        "site.toml": 'title = "Attacked"\nbase_url = "https://example.org/attacked/"\n',
        "content/st/story.md": "---\ntitle: A Story\nrating: General Audiences\nstatus: ongoing\n"
                               + fields.format(nb=indented(attack_text("work notes")),
                                               na=indented(attack_text("work end notes")), s="").replace(
                                   "summary: |\n\n", "")
                               + "---\n" + attack_text("story summary") + "\n",
        "content/st/1-one.md": chapter("One", extra=fields.format(
            nb=indented(attack_text("notes")), na=indented(attack_text("end notes")),
            s=indented(attack_text("chapter summary"))), body=attack_text("chapter text")),
        "content/st/2-two.md": chapter("Two", date="2025-01-02"),
    }
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text, "utf-8")
    (site / "content/st/images").mkdir()
    (site / "content/st/images/map.png").write_bytes(PNG)
    result = run_cli("build", site, "--output", site / "output")
    assert result.returncode == 0, result.stdout + result.stderr
    return site / "output"


def documents(output: Path) -> Iterator[tuple[str, str]]:
    """(where, HTML) of every page, every feed item, and every document of every EPUB."""
    for path in sorted(output.rglob("*")):
        name = path.relative_to(output).as_posix()
        if path.suffix == ".html":
            yield name, path.read_text("utf-8")
        elif path.suffix == ".xml" and path.name == "feed.xml":
            for element in ET.fromstring(path.read_bytes()).iter():
                yield f"{name} <{element.tag}> attributes", "<x " + " ".join(
                    f'{k}="{v}"'.replace("&", "&amp;") for k, v in element.attrib.items()) + ">"
                if element.tag == "description" and element.text:
                    yield f"{name} <description>", element.text
        elif path.suffix == ".epub":
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as book:
                for entry in book.namelist():
                    if entry.endswith((".xhtml", ".opf", ".ncx")):
                        yield f"{name}!{entry}", book.read(entry).decode("utf-8")


def test_no_page_feed_or_book_links_to_a_script_or_data_from_any_text(attacked: Path) -> None:
    seen = {where.split(" ")[0].split("!")[0] for where, _ in documents(attacked)}
    assert {"index.html", "st/index.html", "st/1-one/index.html", "st/all/index.html", "feed.xml",
            "st/feed.xml", "st/st.epub"} <= seen
    problems = [problem for where, html in documents(attacked) for problem in dangers(html, where)]
    assert problems == []
    # No element the texts may not have: in the main part of a page, a feed's item, a book's document.
    for where, html in documents(attacked):
        if where.endswith(".html"):
            html = html[html.index("<main"):html.index("</main>")]
        elif where.endswith(".xhtml"):
            html = html[html.index("<body"):]
        elif not where.endswith("<description>"):
            continue
        assert not text_elements(html) & FORBIDDEN_ELEMENTS, where
    # No placeholder of the Markdown stage, sealed or not, is ever written out.
    for name, data in tree_bytes(attacked).items():
        assert not re.search(rb"serialist(-file)?-[0-9a-f]{16}", data), name


def test_the_texts_own_links_and_images_still_work(attacked: Path) -> None:
    """The placeholders the build writes for a text's links are resolved as before."""
    page = (attacked / "st/1-one/index.html").read_text("utf-8")
    links = [attributes for tag, attributes in Elements(page).found if tag in ("a", "img")]
    assert {"href": "../../st/2-two/index.html"} in links
    assert {"href": "../../st/images/map.png"} in links
    assert {"src": "../../st/images/map.png", "alt": "the map"} in links
    assert {"href": "https://example.org/"} in links
    home = (attacked / "index.html").read_text("utf-8")
    assert 'href="st/images/map.png"' in home and 'href="st/2-two/index.html"' in home  # the story's summary
    feed = (attacked / "st/feed.xml").read_text("utf-8")
    assert "https://example.org/attacked/st/images/map.png" in feed
    with zipfile.ZipFile(attacked / "st/st.epub") as book:
        chapter_one = next(book.read(n).decode() for n in book.namelist() if n.endswith("chapter-1.xhtml"))
    assert 'href="chapter-2.xhtml"' in chapter_one and 'src="images/image-1.png"' in chapter_one


# An author's address with one of Serialist's own schemes, in each kind of text: an error with the file and line.
FORGED = [
    "[Map](serialist-file:javascript:alert(1))",
    '<a href="serialist-file:javascript:alert(1)">raw</a>',
    '<a href="serialist:javascript:alert(1)/x">raw</a>',
    "![Map](serialist-file:javascript:alert(1))",
    '<img src=" SERIALIST-FILE:javascript:alert(1)" alt="">',
    '<a href="&#115;erialist-file:javascript:alert(1)">by reference</a>',
    "<serialist-file:javascript:alert(1)>",
    "[Map][m]\n\n[m]: serialist-file:javascript:alert(1)",
]


def test_an_address_with_serialists_own_scheme_is_an_error_naming_file_and_line(make_site) -> None:
    body = "\n\n".join(f"Line {n}: {attack}" for n, attack in enumerate(FORGED))
    site = make_site({
        "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
        "content/st/story.md": "---\ntitle: A Story\n---\n\n\nSummary: [Map](serialist-file:javascript:alert(1))\n",
        "content/st/1-one.md": chapter("One", body=body,
                                       extra="notes_before: '<a href=\"serialist:javascript:alert(1)/x\">n</a>'\n"),
    })
    previous = {"index.html": b"the previous site"}
    (site / "output").mkdir()
    (site / "output/index.html").write_bytes(previous["index.html"])
    result = run_cli("build", site)
    assert result.returncode != 0
    errors = result.stdout + result.stderr
    body_line = 6  # after the chapter's front matter (5 lines)
    for n, attack in enumerate(FORGED):
        line = body_line + 2 * n
        assert re.search(rf"1-one\.md:{line}: error: the address `[^`]*` starts with `serialist(-file)?:`", errors), \
            (attack, errors)
    assert re.search(r"1-one\.md:4: error: the address `serialist:javascript:alert\(1\)/x`", errors), errors
    assert re.search(r"story\.md:6: error: the address `serialist-file:javascript:alert\(1\)`", errors), errors
    assert "which Serialist keeps for its own links" in errors and "images/map.png" in errors
    assert tree_bytes(site / "output") == previous  # the failed build left the previous output as it was
    assert "Traceback" not in errors
    # A front-matter field that names a file takes none of them either.
    (site / "content/st/story.md").write_text("---\ntitle: A Story\ncover: serialist-file:javascript:x\n---\n")
    result = run_cli("build", site)
    assert result.returncode != 0
    assert re.search(r"story\.md:3: error: `cover`: `serialist-file:javascript:x` is not a file", result.stderr)


@pytest.mark.parametrize("attack", FORGED)
def test_a_forged_placeholder_is_left_out_of_the_html(attack: str, tmp_path: Path) -> None:
    """Besides the error: the sanitiser drops it, so no page made of the text can have it."""
    from generator.errors import ProblemLog
    from generator.markdown import LinkTargets, Origin, render, resolve_links

    (tmp_path / "map.png").write_bytes(PNG)
    targets = LinkTargets({}, frozenset(), {(tmp_path / "map.png").resolve(): "st/map.png"})
    log = ProblemLog()
    html, _ = render(f"[real](map.png) {attack}", "d", Origin(tmp_path / "1.md", 1), targets, log)
    assert log.errors
    assert dangers(html, "rendered") == ["rendered: <a href='serialist-file:st/map.png'>"]  # its own, only
    assert not [value for _, attributes in Elements(html).found for value in attributes.values()
                if "javascript" in value.lower()]
    resolved = resolve_links(html, lambda path: "../" + path)
    assert dangers(resolved, "page") == [] and 'href="../st/map.png"' in resolved


def test_a_link_resolved_for_a_page_that_would_run_a_script_is_left_out() -> None:
    """The last check, after placeholders are resolved: only http(s), mailto and relative links remain."""
    from generator.assets import resolve_files
    from generator.markdown import unseal

    page = resolve_files('<p><img src="serialist-file:x.png" alt=""> <a href="serialist-file:y.png">y</a></p>',
                         lambda path: " JavaScript:alert(1)//" + path)
    assert page == '<p><img alt=""> <a>y</a></p>'
    assert resolve_files('<img src="serialist-file:x.png">', lambda path: "../" + path) == '<img src="../x.png">'
    # Whatever the sanitiser let through that a browser would read as a script is left out of the text's HTML,
    # but a text that says `href="javascript:…"` is still said.
    assert unseal('<a href="java&#9;script:alert(1)" title="t">a</a> href="javascript:x" <img src="data:,x">') \
        == '<a title="t">a</a> href="javascript:x" <img>'
    assert unseal('<a href="https://example.org/">w</a> <a href="#fn1">1</a> <a href="mailto:a@b.c">m</a>') \
        == '<a href="https://example.org/">w</a> <a href="#fn1">1</a> <a href="mailto:a@b.c">m</a>'
