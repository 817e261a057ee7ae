"""Nothing an author writes becomes a script, and every page says so to the browser.

Serialist's own link schemes (`serialist:`, `serialist-file:`) cannot be forged
from a text; no page, feed or book links to `javascript:`, `vbscript:` or
`data:`, whatever the input; every page carries a Content-Security-Policy that
lets only the site's own scripts run. The browser tests (marked slow) load the
pages in Debian's Chromium with Playwright.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
import threading
import xml.etree.ElementTree as ET
import zipfile
from html import unescape
from html.parser import HTMLParser
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import NOW, STORY, chapter, copy_sample, run_cli, tree_bytes
from served_site import _QuietHandler, browser, build_sample  # noqa: F401 (`browser`: a fixture)

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


# --- the Content-Security-Policy ------------------------------------------------------------------------------

POLICY_META = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


def policy(html: str) -> dict[str, list[str]]:
    found = POLICY_META.search(html)
    assert found is not None, "no Content-Security-Policy"
    directives = [part.split() for part in unescape(found.group(1)).split(";") if part.strip()]
    return {words[0]: words[1:] for words in directives}


class Scripts(HTMLParser):
    """The inline scripts of a page that run (no `src`, a JavaScript type), as the browser reads their text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.inline: list[str] = []
        self._in: dict[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._in, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in is not None:
            if "src" not in self._in and (self._in.get("type") or "text/javascript") in ("text/javascript", "module"):
                self.inline.append("".join(self._text))
            self._in = None


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample site, built: its output."""
    from generator.build import build
    from generator.config import BuildOptions

    root = copy_sample(tmp_path_factory.mktemp("csp") / "sample")
    build(root, BuildOptions(output=root / "output", now=NOW, quiet=True))
    return root / "output"


def test_every_page_has_the_policy_first_in_its_head_with_the_hashes_of_its_own_inline_scripts(sample: Path) -> None:
    pages = sorted(sample.rglob("*.html"))
    assert len(pages) > 20
    for path in pages:
        html = path.read_text("utf-8")
        head = html[:html.index("</head>")]
        assert head.index('<meta http-equiv="Content-Security-Policy"') < min(
            head.index(tag) for tag in ("<script", "<link", "<title") if tag in head), path
        if "<base" in head:
            assert head.index("Content-Security-Policy") < head.index("<base"), path
        rules = policy(html)
        inline = Scripts(html).inline
        assert inline, path  # the reader settings, applied before the first paint
        assert rules["script-src"] == ["'self'", *dict.fromkeys(map(sha256_source, inline))], path
        assert rules["default-src"] == ["'self'"]
        assert rules["object-src"] == ["'none'"] and rules["form-action"] == ["'none'"]
        assert rules["base-uri"] in (["'none'"], ["'self'"])
        assert rules["style-src"] == ["'self'", "'unsafe-inline'"]
        assert rules["img-src"] == ["'self'", "https:", "http:"]
        assert "'unsafe-eval'" not in sum(rules.values(), [])


def test_the_hashes_are_those_of_the_scripts_as_rendered_for_each_site(make_site) -> None:
    """Not written into the theme: the reader script names the site's path, and a theme's own inline script
    (here in the body of the home page) gets its hash too."""
    site = make_site({
        "site.toml": 'title = "T"\ntheme = "mine"\nbase_url = "https://example.org/a/"\n',
        "content/st/story.md": STORY,
        "content/st/1-one.md": chapter("One"),
        "themes/mine/templates/home.html": '{% extends "default/home.html" %}{% block main %}{{ super() }}'
                                           '<script>document.title += " (mine)";</script>{% endblock %}',
    })
    run_cli("build", site, check=True)
    first = policy((site / "output/index.html").read_text("utf-8"))["script-src"]
    mine = sha256_source('document.title += " (mine)";')
    assert mine in first and len(first) == 3
    assert mine not in policy((site / "output/st/index.html").read_text("utf-8"))["script-src"]
    run_cli("build", site, "--base-url", "https://example.org/b/", check=True)
    second = policy((site / "output/index.html").read_text("utf-8"))["script-src"]
    assert second[1] != first[1] and second[2] == mine
    assert second[1] == sha256_source(Scripts((site / "output/index.html").read_text("utf-8")).inline[0])


def test_the_dev_server_serves_pages_with_the_policy_they_are_built_with(sample_copy: Path, tmp_path: Path) -> None:
    """The reload script is a file of the server's own (`script-src 'self'`), not an inline script; the page
    is served with the policy of the file on disk."""
    import http.client

    from generator.config import BuildOptions
    from generator.incremental import BuildSession
    from generator.serve import Console, SiteBuilder
    from generator.server import LIVE_SCRIPT_PATH, LiveReloadServer, listen

    listener = listen("127.0.0.1", 0)
    output = tmp_path / "served"
    builder = SiteBuilder(sample_copy, BuildSession(sample_copy, BuildOptions(output=output, base_url=listener.url)),
                          Console(info=lambda _: None, error=lambda _: None))
    server: LiveReloadServer[Any] = LiveReloadServer(output, builder, listener)
    assert server.rebuild(None).ok

    def get(path: str) -> tuple[str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.getheader("Content-Type") or "", response.read().decode("utf-8")
        finally:
            connection.close()

    with server:
        _, page = get("/salt-and-signal/1-static/")
        kind, script = get(LIVE_SCRIPT_PATH)
    on_disk = (output / "salt-and-signal/1-static/index.html").read_text("utf-8")
    assert POLICY_META.search(page).group(0) == POLICY_META.search(on_disk).group(0)
    assert Scripts(page).inline == Scripts(on_disk).inline  # nothing inline added
    assert f'<script src="{LIVE_SCRIPT_PATH}"></script>' in page
    assert kind.startswith("text/javascript") and "new EventSource" in script


# --- in a browser ----------------------------------------------------------------------------------------------

SITE_PATH = "/serialist/"
PAGES = {"home": "", "story": "salt-and-signal/", "chapter": "salt-and-signal/2-the-keeper/",
         "whole work": "the-cartographers-daughter/all/", "one-shot": "the-last-ferry/", "404": "404.html"}
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
    function (e) { window.__violations.push(e.violatedDirective + " " + e.blockedURI); });
"""


@pytest.fixture(scope="module")
def docroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The sample built under `/serialist/`, served over loopback HTTP: (its folder, its URL)."""
    root = tmp_path_factory.mktemp("csp-served")
    build_sample(root / SITE_PATH.strip("/"))
    (root / "favicon.ico").write_bytes(b"")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root / SITE_PATH.strip("/"), f"http://127.0.0.1:{server.server_address[1]}{SITE_PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def chromium(browser: Any) -> Any:
    """Debian's Chromium, driven by Playwright (served_site's `browser`: skipped, with the reason, without it)."""
    return browser


class Opened:
    """A page in a new browser context, with what its console said and the policy violations it reported."""

    def __init__(self, browser: Any, url: str, init_script: str = "", block_reader_script: bool = False) -> None:
        self.context = browser.new_context()
        self.context.add_init_script(WATCH_VIOLATIONS + init_script)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))
        if block_reader_script:
            self.page.route("**/reader.js", lambda route: route.abort())
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def policy_in_force(self) -> bool:
        """Whether the page has a policy that blocks an inline script it did not come with (a script element
        put in from outside the page, which the policy governs as any other)."""
        return self.page.evaluate("""() => {
            const script = document.createElement("script");
            script.textContent = "window.__probeRan = true;";
            document.body.appendChild(script);
            const ran = window.__probeRan === true;
            window.__violations = window.__violations.filter(v => !v.startsWith("script-src-elem inline"));
            return !ran;
        }""")

    @property
    def violations(self) -> list[str]:
        return self.page.evaluate("window.__violations") + [m for m in self.console if "Content Security" in m]

    def close(self) -> None:
        self.context.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme_", ["http", "file"])
@pytest.mark.parametrize("kind", list(PAGES))
def test_the_sample_pages_break_no_rule_of_their_policy(chromium: Any, docroot: tuple[Path, str], kind: str,
                                                        scheme_: str) -> None:
    folder, url = docroot
    if scheme_ == "file":
        if kind == "404":
            pytest.skip("the 404 page names the site's path from the root of its host (`<base>`): not from disk")
        url = (folder / (PAGES[kind] + ("" if PAGES[kind].endswith(".html") else "index.html"))).as_uri()
    else:
        url += PAGES[kind]
    opened = Opened(chromium, url)
    try:
        assert opened.violations == []
        assert [m for m in opened.console if m.startswith("error")] == []
        assert opened.policy_in_force()
        # The theme's scripts ran: the inline one (class `js`) and reader.js (it shows the settings panel).
        assert opened.page.evaluate("document.documentElement.classList.contains('js')")
        assert opened.page.evaluate("document.getElementById('reader-settings').hidden === false")
    finally:
        opened.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme_", ["http", "file"])
def test_the_reader_settings_apply_before_the_first_paint(chromium: Any, docroot: tuple[Path, str],
                                                          scheme_: str) -> None:
    """The inline script in the head runs under the policy: with reader.js kept from loading, the stored
    theme and size are on `<html>` by the time the body is parsed (DOMContentLoaded)."""
    folder, url = docroot
    url = (folder / "salt-and-signal/1-static/index.html").as_uri() if scheme_ == "file" else url + "salt-and-signal/1-static/"
    store = """
    try { localStorage.setItem("/serialist/reader-settings", JSON.stringify({theme: "dark", size: 150})); }
    catch (e) {}
    document.addEventListener("DOMContentLoaded", function () {
      var h = document.documentElement;
      window.__atReady = [h.getAttribute("data-theme"), h.style.getPropertyValue("--font-scale"),
                          getComputedStyle(document.body).backgroundColor];
    });
    """
    opened = Opened(chromium, url, store, block_reader_script=True)
    try:
        assert opened.violations == []
        theme, scale, background = opened.page.evaluate("window.__atReady")
        assert (theme, scale) == ("dark", "1.5")
        assert opened.policy_in_force()
        light = Opened(chromium, url, block_reader_script=True)
        try:
            assert light.page.evaluate("getComputedStyle(document.body).backgroundColor") != background
        finally:
            light.close()
    finally:
        opened.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme_", ["http", "file"])
def test_a_script_slipped_into_a_built_page_does_not_run(chromium: Any, docroot: tuple[Path, str],
                                                         scheme_: str) -> None:
    folder, url = docroot
    page = (folder / "salt-and-signal/1-static/index.html").read_text("utf-8")
    slipped = folder / "salt-and-signal/1-static/slipped.html"
    slipped.write_text(page.replace("</main>", (
        '<script>window.slipped = "inline";</script>'
        '<img src="../../nothing.png" onerror="window.slipped = \'handler\'" alt="">'
        '<a id="js-link" href="javascript:window.slipped = \'link\'">x</a>'
        '<object data="data:text/html,x" type="text/html"></object></main>')), "utf-8")
    url = slipped.as_uri() if scheme_ == "file" else url + "salt-and-signal/1-static/slipped.html"
    opened = Opened(chromium, url)
    try:
        opened.page.click("#js-link")
        assert opened.page.evaluate("window.slipped") is None
        violations = opened.page.evaluate("window.__violations")
        assert any(v.startswith("script-src") and v.endswith("inline") for v in violations), violations
        assert any(v.startswith("object-src") for v in violations), violations
        assert opened.page.evaluate("document.documentElement.classList.contains('js')")  # the theme's still runs
    finally:
        opened.close()
        slipped.unlink()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")
def test_with_serve_a_save_reloads_the_page_under_its_policy(chromium: Any, make_site) -> None:
    from generator.serve import Console, ServeOptions, serve

    site = make_site({"site.toml": 'title = "Served"\n', "content/s/story.md": STORY,
                      "content/s/1-one.md": chapter("One", body="The first version.")})
    lines: list[str] = []
    started = threading.Event()
    stop = threading.Event()

    def info(line: str) -> None:
        lines.append(line)
        if line.startswith("Serving ") or "raised" in line:
            started.set()

    def run() -> None:
        try:
            serve(ServeOptions(site=site, port=0), Console(info=info, error=info), stop)
        except BaseException as exc:  # noqa: BLE001 (reported through the lines)
            info(f"serve raised {exc!r}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30), lines
    url = re.search(r"http://127\.0\.0\.1:\d+/", next(line for line in lines if line.startswith("Serving ")))
    assert url, lines
    try:
        opened = Opened(chromium, url.group(0) + "s/1-one/")
        try:
            from playwright.sync_api import expect

            opened.page.evaluate("window.notReloaded = true")
            assert opened.violations == []
            source = site / "content/s/1-one.md"
            temp = source.with_name(".1-one.md.tmp")
            temp.write_text(chapter("One", body="The second version."), "utf-8")
            temp.replace(source)
            expect(opened.page.get_by_text("The second version.")).to_be_visible(timeout=10_000)
            assert opened.page.evaluate("window.notReloaded === undefined")
            assert opened.violations == []
            assert [m for m in opened.console if m.startswith("page error")] == []  # (the server has no favicon)
            assert opened.policy_in_force()
        finally:
            opened.close()
    finally:
        stop.set()
        thread.join(10)
