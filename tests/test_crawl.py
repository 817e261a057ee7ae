"""Crawl every built page and follow every internal link: nothing may be broken.

Links in pages are relative (so the site works under any subpath and from
disk); absolute links to the site's own `base_url` (canonical links) must
also land on a page. `dir/` means `dir/index.html`, and a `#fragment` must be
an id in the target page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from posixpath import dirname, join, normpath
from urllib.parse import unquote, urlsplit

import pytest

from conftest import NOW, STORY, copy_sample, write_files
from generator.build import build
from generator.config import BuildOptions

BASE_URL = "https://example.github.io/serialist/"


class PageParser(HTMLParser):
    """The links (tag, attribute, value), ids and `<base href>` of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if "id" in values:
            self.ids.append(values["id"])
        if tag == "a" and "name" in values:
            self.ids.append(values["name"])
        if tag == "base":
            self.base = values.get("href")
            return
        for attr in ("href", "src", "poster", "data"):
            if attr in values:
                self.links.append((tag, attr, values[attr]))
        if "srcset" in values:
            for candidate in values["srcset"].split(","):
                if candidate.strip():
                    self.links.append((tag, "srcset", candidate.split()[0]))

    handle_startendtag = handle_starttag


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    return parser


@dataclass
class Crawl:
    pages: int = 0
    links: int = 0
    broken: list[str] = field(default_factory=list)


def crawl(out: Path, base_url: str = BASE_URL) -> Crawl:
    """Check every link of every HTML page under `out`."""
    base_path = urlsplit(base_url).path if base_url else "/"
    pages = {p.relative_to(out).as_posix(): parse_page(p) for p in sorted(out.rglob("*.html"))}
    result = Crawl(pages=len(pages))
    for rel, parsed in pages.items():
        if len(set(parsed.ids)) != len(parsed.ids):
            dupes = sorted({i for i in parsed.ids if parsed.ids.count(i) > 1})
            result.broken.append(f"{rel}: duplicate ids {dupes}")
        # A page with `<base href="/site/">` (the 404 page) resolves its links from the site root.
        origin = rel
        if parsed.base is not None:
            if parsed.base != base_path:
                result.broken.append(f"{rel}: <base href={parsed.base!r}> is not the site's path {base_path!r}")
                continue
            origin = "index.html"
        for tag, attr, value in parsed.links:
            result.links += 1
            problem = check_link(out, pages, origin, value, base_url)
            if problem:
                result.broken.append(f"{rel}: <{tag} {attr}={value!r}>: {problem}")
    return result


def check_link(out: Path, pages: dict[str, PageParser], origin: str, value: str, base_url: str) -> str | None:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme in ("mailto", "tel", "data", "javascript"):
        return None
    if parts.scheme or parts.netloc:
        if base_url and url.startswith(base_url):  # an absolute link to the site itself
            path = url[len(base_url):]
            parts = urlsplit(path)
            origin = "index.html"
        else:
            return None  # another site: not ours to check
    elif url.startswith("/"):
        return "root-absolute link: breaks when the site is served under a subpath or from disk"
    if parts.query:
        return "query string in an internal link"
    path = unquote(parts.path)
    if path == "":
        target = origin
    else:
        target = normpath(join(dirname(origin), path))
        if target.startswith("..") or target.startswith("/"):
            return "points outside the site"
        if path.endswith("/"):
            target = f"{target}/index.html" if target != "." else "index.html"
    file = out / target
    if file.is_dir():
        return f"{target} is a folder: link to {target}/ or {target}/index.html"
    if not file.is_file():
        return f"{target} does not exist"
    if parts.fragment:
        if target not in pages:
            return f"fragment #{parts.fragment} on {target}, which is not an HTML page"
        if unquote(parts.fragment) not in pages[target].ids:
            return f"no id {parts.fragment!r} in {target}"
    return None


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("crawl") / "sample")
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


def test_sample_site_has_no_broken_link(sample_out: Path) -> None:
    result = crawl(sample_out)
    assert result.broken == []
    # home, 404, 3 × (story + whole work), 7 chapters; the tag index, 25 tag pages, the series index and page
    assert result.pages == 15 + 1 + 25 + 2
    assert result.links > 150  # the crawl really followed the links


def test_sample_with_drafts_and_future_has_no_broken_link(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "sample")
    build(root, BuildOptions(output=root / "output", now=NOW, drafts=True, future=True))
    result = crawl(root / "output")
    assert result.broken == []
    assert (root / "output" / "salt-and-signal" / "4-the-lighthouse-log" / "index.html").is_file()


FOOTNOTES_SITE = {
    "site.toml": f'title = "Footnotes"\nbase_url = "{BASE_URL}"\n',
    "content/notes/story.md": """\
        ---
        title: Notes Everywhere
        status: hiatus
        notes_before: "A work note with a footnote.[^w]\\n\\n[^w]: The work note's footnote."
        notes_after: "The work's end note.[^w]\\n\\n[^w]: Another footnote with the same label."
        ---
        A summary with a footnote.[^s]

        [^s]: The summary's footnote.
        """,
    "content/notes/1-first.md": """\
        ---
        title: First
        date: 2025-01-01
        notes_before: "Before, with a footnote.[^1]\\n\\n[^1]: A footnote in the notes before."
        notes_after: "After, with a footnote.[^1]\\n\\n[^1]: A footnote in the notes after."
        ---
        The text has a footnote[^1] and cites it twice.[^1] Then another.[^long]

        [^1]: The first footnote of chapter one.
        [^long]: A named footnote.

        * * *

        After the scene break.
        """,
    "content/notes/2-second.md": """\
        ---
        title: Second
        date: 2025-02-01
        notes_after: "Only notes after."
        ---
        Chapter two has a footnote too,[^1] with the same label as chapter one's.

        [^1]: The first footnote of chapter two.
        """,
    "content/notes/3-third.md": """\
        ---
        date: 2025-03-01
        ---
        An untitled chapter, no notes, [a link to chapter one](../1-first/), and a footnote.[^1]

        [^1]: Chapter three's footnote.
        """,
    "content/one-shot.md": """\
        ---
        title: A One-Shot
        status: complete
        date: 2025-04-01
        notes_before: "Before.[^1]\\n\\n[^1]: Note footnote."
        notes_after: "After."
        ---
        One-shot text with a footnote.[^1]

        [^1]: The one-shot's footnote.
        """,
}


def test_footnotes_on_whole_work_pages_have_no_broken_link(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", FOOTNOTES_SITE)
    out = root / "output"
    build(root, BuildOptions(output=out, now=NOW))
    result = crawl(out)
    assert result.broken == []
    whole = parse_page(out / "notes" / "all" / "index.html")
    fragments = [v for tag, attr, v in whole.links if v.startswith("#")]
    # Chapter footnote refs and backrefs of three chapters, the notes' footnotes, see-end links, the TOC.
    assert sum(f.startswith("#fn") for f in fragments) >= 14
    assert len([f for f in fragments if "end-notes" in f]) == 2
    assert len(whole.ids) == len(set(whole.ids))
    one_shot = parse_page(out / "one-shot" / "all" / "index.html")
    assert any(v.startswith("#fn") for _, _, v in one_shot.links)


def test_site_without_base_url_has_no_broken_link(make_site) -> None:
    root = make_site({"content/s/story.md": STORY,
                      "content/s/1-one.md": "---\ndate: 2025-01-01\n---\nSome words.[^1]\n\n[^1]: Note.\n"})
    build(root, BuildOptions(output=root / "output", now=NOW))
    assert not (root / "output" / "feed.xml").exists()
    result = crawl(root / "output", base_url="")
    assert result.broken == [] and result.pages == 5 + 2  # and the tag index, the `Not Rated` page


def test_crawler_finds_broken_links(tmp_path: Path) -> None:
    """The crawler itself: each kind of broken link is reported, good ones are not."""
    out = write_files(tmp_path / "out", {
        "index.html": """\
            <!doctype html><title>x</title><link rel="stylesheet" href="assets/missing.css">
            <main id="top">
            <a href="a/">ok folder</a> <a href="a/index.html#here">ok fragment</a> <a href="#top">ok self</a>
            <a href="a/#nowhere">missing fragment</a> <a href="b/">missing page</a> <a href="a">a folder</a>
            <a href="/a/index.html">root-absolute</a> <img src="pic.png" alt="">
            <a href="https://elsewhere.example/x">external</a> <a href="https://example.github.io/serialist/a/">ok abs</a>
            <a href="https://example.github.io/serialist/gone/">missing abs</a> <a href="feed.xml#x">fragment on xml</a>
            </main>""",
        "a/index.html": '<!doctype html><title>a</title><p id="here"><a href="../index.html#top">back</a></p>',
        "feed.xml": "<rss/>",
    })
    result = crawl(out)
    assert result.pages == 2
    broken = "\n".join(result.broken)
    for expected in ("assets/missing.css does not exist", "no id 'nowhere' in a/index.html",
                     "b/index.html does not exist", "a is a folder", "root-absolute link", "pic.png does not exist",
                     "gone/index.html does not exist", "fragment #x on feed.xml"):
        assert expected in broken
    assert len(result.broken) == 8, broken
