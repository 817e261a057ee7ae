"""A site published under a subpath (`https://user.github.io/repo/`) works there.

The sample site is built and served from a loopback HTTP server under `/repo/`
only, the way GitHub Pages serves a project site: folders give their
`index.html`, a missing path gives `404.html` with status 404 at whatever depth
was asked for, and dot-files are not served (`upload-pages-artifact` drops
them). Every link from every page is then fetched.
"""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

from conftest import NOW, tree_bytes
from generator.build import build
from generator.config import BuildOptions

BASE_URL = "https://user.github.io/repo/"
PREFIX = "/repo/"
SKIPPED_SCHEMES = ("mailto:", "javascript:", "data:", "tel:")


# The server ------------------------------------------------------------------------------------------

class PagesHandler(http.server.SimpleHTTPRequestHandler):
    """Serves `directory` under PREFIX only, with GitHub Pages' 404 behaviour."""

    def translate_path(self, path: str) -> str:
        route = urlsplit(path).path
        parts = unquote(route).split("/")
        if not route.startswith(PREFIX) or any(part.startswith(".") for part in parts if part):
            return str(Path(self.directory) / ".missing" / "nothing")  # dot-files are not published
        return super().translate_path("/" + route[len(PREFIX):])

    def list_directory(self, path: str | bytes) -> None:  # a folder without index.html
        self.send_error(404)
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        page = Path(self.directory) / "404.html"
        if code != 404 or not page.is_file():
            super().send_error(code, message, explain)
            return
        body = page.read_bytes()
        self.send_response(404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@dataclass(frozen=True)
class Served:
    output: Path
    origin: str  # http://127.0.0.1:PORT

    @property
    def root(self) -> str:
        return self.origin + PREFIX


@pytest.fixture
def serve() -> Iterator:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(output: Path) -> Served:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(PagesHandler, directory=str(output)))
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        host, port = server.server_address[:2]
        return Served(output, f"http://{host}:{port}")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy for loopback


def fetch(url: str) -> tuple[int, bytes, str]:
    """Status, body and content type of `url`."""
    try:
        with _opener.open(url, timeout=10) as response:
            return response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers.get_content_type()


# Pages and their links ---------------------------------------------------------------------------------

class LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.ids.add(values["name"])
        if tag == "base" and self.base is None:
            self.base = values.get("href")
            return
        self.links += [(tag, attr, values[attr]) for attr in ("href", "src") if attr in values]

    handle_startendtag = handle_starttag


def parse_html(body: bytes) -> LinkParser:
    parser = LinkParser()
    parser.feed(body.decode("utf-8"))
    parser.close()
    return parser


def feed_links(body: bytes) -> list[str]:
    """Every URL in an RSS feed or sitemap: links, self links, locations and links in the item HTML."""
    root = ET.fromstring(body)
    found: list[str] = []
    for element in root.iter():
        name = element.tag.rsplit("}", 1)[-1]
        if name in ("link", "loc") and element.text:
            found.append(element.text.strip())
        if name == "link" and element.get("href"):
            found.append(element.get("href", ""))
        if name == "guid" and element.get("isPermaLink", "true") == "true" and element.text:
            found.append(element.text.strip())
        if name == "description" and element.text and "<" in element.text:
            found += [value for _, _, value in parse_html(element.text.encode()).links]
    return found


@dataclass
class Crawl:
    served: Served
    pages: dict[str, LinkParser] = field(default_factory=dict)  # fetched HTML, by URL
    status: dict[str, int] = field(default_factory=dict)
    checked: list[tuple[str, str, str]] = field(default_factory=list)  # (from, link, resolved)
    broken: list[str] = field(default_factory=list)

    def local(self, url: str) -> str | None:
        """The loopback URL of a link to the site, or None for an external link."""
        if url.startswith(BASE_URL):
            return self.served.root + url[len(BASE_URL):]
        return url if url.startswith(self.served.origin + "/") else None

    def get(self, url: str) -> int:
        if url not in self.status:
            status, body, kind = fetch(url)
            self.status[url] = status
            if status == 200 and kind == "text/html":
                self.pages[url] = parse_html(body)
        return self.status[url]

    def check(self, source: str, link: str, base: str) -> None:
        if link.startswith(SKIPPED_SCHEMES) or not link.strip():
            return
        resolved = urljoin(base, link)
        target = self.local(resolved)
        if target is None:
            return  # another site: not ours to check
        self.checked.append((source, link, resolved))
        address, fragment = urldefrag(target)
        status = self.get(address)
        if status != 200:
            self.broken.append(f"{source}: {link} -> {address} gives {status}")
        elif fragment and (address not in self.pages or unquote(fragment) not in self.pages[address].ids):
            self.broken.append(f"{source}: {link} -> no id `{fragment}` in {address}")

    def check_page(self, url: str) -> None:
        if self.get(url) != 200 or url not in self.pages:
            self.broken.append(f"{url} itself gives {self.status[url]}")
            return
        page = self.pages[url]
        base = urljoin(url, page.base) if page.base else url
        for _, _, link in list(page.links):
            self.check(url, link, base)

    def check_feed(self, url: str) -> None:
        status, body, _ = fetch(url)
        if status != 200:
            self.broken.append(f"{url} gives {status}")
            return
        for link in feed_links(body):
            self.check(url, link, url)


def published_files(output: Path, suffix: str) -> list[str]:
    return sorted(p.relative_to(output).as_posix() for p in output.rglob(f"*{suffix}")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(output).parts))


def build_sample(site: Path, **options: object) -> Path:
    output = site / "output"
    build(site, BuildOptions(output=output, base_url=BASE_URL, now=NOW, **options))  # type: ignore[arg-type]
    return output


# The tests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"drafts": True, "future": True}], ids=["published", "everything"])
def test_every_link_from_every_page_resolves_under_the_subpath(sample_copy: Path, serve, options: dict) -> None:
    served = serve(build_sample(sample_copy, **options))
    crawl = Crawl(served)
    html_pages = published_files(served.output, ".html")
    assert len(html_pages) > 10
    crawl.check_page(served.root)  # the folder URL itself
    for name in html_pages:
        if name != "404.html":
            crawl.check_page(served.root + name)
    for name in published_files(served.output, ".xml"):
        crawl.check_feed(served.root + name)
    assert crawl.broken == []
    resolved = {r for _, _, r in crawl.checked}
    assert len(crawl.checked) > 100
    assert any(r.endswith("assets/style.css") for r in resolved)  # <link rel=stylesheet>
    assert any(r.endswith("feed.xml") for r in resolved)  # <link rel=alternate> and feed links
    assert any(r.startswith(BASE_URL) for r in resolved)  # canonical and feed URLs, mapped onto the server


@pytest.mark.parametrize("path", ["a/b/missing", "missing", "the-last-ferry/nope/", "x/y/z/w/v.html"])
def test_404_page_works_at_any_depth(sample_copy: Path, serve, path: str) -> None:
    served = serve(build_sample(sample_copy))
    status, body, kind = fetch(served.root + path)
    assert status == 404
    assert kind == "text/html"
    assert body == (served.output / "404.html").read_bytes()
    page = parse_html(body)
    assert page.base == PREFIX
    crawl = Crawl(served)
    base = urljoin(served.root + path, page.base)
    for _, _, link in page.links:
        crawl.check(f"404 at {path}", link, base)
    assert crawl.broken == []
    stylesheets = [urljoin(base, value) for tag, _, value in page.links if tag == "link"]
    assert served.root + "assets/style.css" in stylesheets


def test_paths_outside_the_subpath_are_not_the_site(sample_copy: Path, serve) -> None:
    """The server really serves under /repo/ only, so a root-absolute link would have been caught."""
    served = serve(build_sample(sample_copy))
    assert fetch(served.origin + "/assets/style.css")[0] == 404
    assert fetch(served.root + "assets/style.css")[0] == 200
    assert fetch(served.root + ".nojekyll")[0] == 404


def test_output_needs_no_dot_files_and_has_no_symlinks(sample_copy: Path) -> None:
    output = build_sample(sample_copy)
    entries = list(output.rglob("*"))
    assert not [p for p in entries if p.is_symlink()]
    dot_files = sorted(p.relative_to(output).as_posix() for p in entries
                       if any(part.startswith(".") for part in p.relative_to(output).parts))
    assert dot_files == [".nojekyll", ".serialist-manifest"]


def _set_base_url(site: Path, url: str) -> None:
    settings = site / "site.toml"
    lines = [line for line in settings.read_text("utf-8").splitlines() if not line.startswith("base_url")]
    settings.write_text("\n".join([*lines, f'base_url = "{url}"', ""]), "utf-8")


def test_trailing_slash_makes_no_difference(sample_copy: Path, tmp_path: Path) -> None:
    outputs = []
    for url in ("https://user.github.io/repo", "https://user.github.io/repo/", "https://user.github.io/repo//"):
        _set_base_url(sample_copy, url)
        out = tmp_path / f"out-{len(outputs)}"
        build(sample_copy, BuildOptions(output=out, now=NOW))
        outputs.append(tree_bytes(out))
    for url in ("https://user.github.io/repo", "https://user.github.io/repo/"):
        out = tmp_path / f"out-{len(outputs)}"
        build(sample_copy, BuildOptions(output=out, base_url=url, now=NOW))
        outputs.append(tree_bytes(out))
    assert all(tree == outputs[0] for tree in outputs[1:])
    assert b"https://user.github.io/repo/" in outputs[0]["feed.xml"]
    assert b"https://user.github.io/repo//" not in outputs[0]["feed.xml"]


def test_cname_is_written(sample_copy: Path) -> None:
    settings = sample_copy / "site.toml"
    settings.write_text(settings.read_text("utf-8") + 'cname = "fiction.example.org"\n', "utf-8")
    output = sample_copy / "output"
    build(sample_copy, BuildOptions(output=output, now=NOW))
    assert (output / "CNAME").read_bytes() == b"fiction.example.org\n"


def test_no_cname_without_the_setting(sample_copy: Path) -> None:
    output = build_sample(sample_copy)
    assert not (output / "CNAME").exists()


def test_the_crawl_catches_root_absolute_and_missing_links(sample_copy: Path, serve) -> None:
    output = build_sample(sample_copy)
    home = output / "index.html"
    html = home.read_text("utf-8")
    assert 'href="assets/style.css"' in html
    home.write_text(html.replace('href="assets/style.css"', 'href="/assets/style.css"')
                    .replace("</main>", '<a href="nowhere/index.html">x</a><a href="#no-such-id">y</a></main>'),
                    "utf-8")
    served = serve(output)
    crawl = Crawl(served)
    crawl.check_page(served.root + "index.html")
    assert len(crawl.broken) == 3, crawl.broken
