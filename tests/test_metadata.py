"""OpenGraph, the Twitter card and schema.org JSON-LD of every page (no browser).

JSON-LD sits in a `<script>` element, so every value must be escaped for that
context: a title of `</script><script>alert(1)</script>` must parse back out of
the JSON exactly, and must not end the script element or start another.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from posixpath import dirname, join, normpath

import html5lib
import pytest

from conftest import NOW, SAMPLE_SITE, chapter
from generator.build import build
from generator.config import BuildOptions
from generator.metadata import og_locale, plain_text, script_json
from served_site import build_sample

BASE_URL = "https://example.github.io/serialist/"
SITE_TITLE = "Lanternfall Serials"
HOSTILE = "</script><script>alert(1)</script>"
SALT = "salt-and-signal"
CART = "the-cartographers-daughter"
FERRY = "the-last-ferry"


class Head(HTMLParser):
    """The metadata of one page: title, description, canonical, og/twitter tags, JSON-LD texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: list[tuple[str, str]] = []  # (property or name, content), in order
        self.canonical: str | None = None
        self.json_ld: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and ("property" in a or "name" in a):
            self.meta.append((a.get("property") or a["name"], a.get("content", "")))
        elif tag == "link" and a.get("rel") == "canonical":
            self.canonical = a["href"]
        elif tag == "title":
            self._in = "title"
        elif tag == "script" and a.get("type") == "application/ld+json":
            self._in = "ld"
            self.json_ld.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "ld":
            self.json_ld[-1] += data

    def one(self, key: str) -> str | None:
        values = [v for k, v in self.meta if k == key]
        assert len(values) <= 1, f"{key} given {len(values)} times"
        return values[0] if values else None

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.meta if k == key]

    @property
    def data(self) -> dict:
        assert len(self.json_ld) == 1, f"expected one JSON-LD script, found {len(self.json_ld)}"
        return json.loads(self.json_ld[0])


def head(path: Path) -> Head:
    parser = Head()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample(tmp_path_factory.mktemp("metadata") / "output")


def pages_of(out: Path) -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*.html"))}


def kind_of(rel: str) -> str:
    parts = rel.split("/")
    if rel == "index.html":
        return "home"
    if rel == "404.html" or parts[0] in ("tags", "series"):
        return "other"
    if len(parts) == 2:
        return "story"
    return "work" if parts[1] == "all" else "chapter"


# --- OpenGraph and Twitter ---------------------------------------------------------------------------------

def test_every_page_has_opengraph_and_a_twitter_card(out: Path) -> None:
    og_types = {"home": "website", "story": "book", "work": "book", "chapter": "article", "other": "website"}
    checked = set()
    for rel, path in pages_of(out).items():
        h = head(path)
        kind = kind_of(rel)
        checked.add(kind)
        assert h.one("og:type") == og_types[kind], rel
        assert h.one("og:title"), rel
        assert h.one("og:site_name") == SITE_TITLE, rel
        assert h.one("og:locale") == "en_US", rel
        description = h.one("description")
        assert description and h.one("og:description"), rel
        if kind != "other":  # (tag and series pages write their own <meta name="description">)
            assert h.one("og:description") == description, rel
        assert h.one("twitter:card") == "summary", rel
        if rel == "404.html":
            assert h.one("og:url") is None  # served at whatever address was asked for
        else:
            assert h.canonical and h.canonical.startswith(BASE_URL), rel
            assert h.one("og:url") == h.canonical, rel
    assert checked == set(og_types)


def test_titles_and_descriptions_per_page(out: Path) -> None:
    home = head(out / "index.html")
    assert home.one("og:title") == SITE_TITLE
    assert home.one("og:description") == "Original serial fiction: finished works, works in progress, and one-shots."
    story = head(out / CART / "index.html")
    assert story.one("og:title") == "The Cartographer's Daughter"
    assert story.one("og:description").startswith("Marek Vell’s charts of the Saltreach coast")
    assert len(story.one("og:description")) <= 300
    assert head(out / CART / "all/index.html").one("og:title") == "The Cartographer's Daughter (entire work)"
    ch = head(out / CART / "02-soundings/index.html")
    assert ch.one("og:title") == "Chapter 2: Soundings - The Cartographer's Daughter"
    assert ch.one("og:description") == ("Ione borrows a boat and a lead line to measure the blank margin for "
                                        "herself, and the sea measures her back.")
    assert ch.one("article:published_time").startswith("2025-03-16")
    assert "Found Family" in ch.all("article:tag")
    assert head(out / FERRY / "chapter-1/index.html").one("og:title") == "The Last Ferry"


# --- JSON-LD -----------------------------------------------------------------------------------------------

def test_story_page_is_a_book_with_its_chapters(out: Path) -> None:
    book = head(out / SALT / "index.html").data
    assert book["@context"] == "https://schema.org" and book["@type"] == "Book"
    assert book["name"] == "Salt and Signal"
    assert book["url"] == f"{BASE_URL}{SALT}/"
    assert book["author"] == {"@type": "Person", "name": "Wren Halloway"}
    assert book["inLanguage"] == "en"
    assert book["contentRating"] == "Teen And Up Audiences"
    assert book["creativeWorkStatus"] == "Ongoing"
    assert "Lighthouses" in book["genre"] and "Lighthouses" in book["keywords"]
    assert [(p["@type"], p["position"], p["url"]) for p in book["hasPart"]] == [
        ("Chapter", 1, f"{BASE_URL}{SALT}/1-static/"),
        ("Chapter", 2, f"{BASE_URL}{SALT}/2-the-keeper/"),
        ("Chapter", 3, f"{BASE_URL}{SALT}/3-what-the-tide-left/"),
    ]
    assert [p["name"] for p in book["hasPart"]] == ["Chapter 1: Static", "Chapter 2", "Chapter 3: What the Tide Left"]
    assert head(out / CART / "index.html").data["creativeWorkStatus"] == "Complete"
    # The whole-work page describes the same book.
    assert head(out / SALT / "all/index.html").data == book


def test_chapter_page_is_a_chapter_part_of_its_book(out: Path) -> None:
    data = head(out / CART / "02-soundings/index.html").data
    assert data["@type"] == "Chapter"
    assert data["name"] == "Chapter 2: Soundings"
    assert data["position"] == 2
    assert data["url"] == f"{BASE_URL}{CART}/02-soundings/"
    assert data["datePublished"].startswith("2025-03-16")
    assert data["creativeWorkStatus"] == "Published"
    assert data["contentRating"] == "General Audiences"
    assert data["isPartOf"]["@type"] == "Book"
    assert data["isPartOf"]["name"] == "The Cartographer's Daughter"
    assert data["isPartOf"]["url"] == f"{BASE_URL}{CART}/"
    assert data["isPartOf"]["creativeWorkStatus"] == "Complete"
    ferry = head(out / FERRY / "chapter-1/index.html").data
    assert ferry["name"] == "The Last Ferry" and ferry["position"] == 1
    assert ferry["isPartOf"]["creativeWorkStatus"] == "Ongoing"


def test_og_tags_are_capped_but_json_ld_keeps_every_tag(make_site, tmp_path: Path) -> None:
    tags = "".join(f"  - tag {i}\n" for i in range(100))
    site = make_site({"content/s/story.md": f"---\ntitle: Many\ntags:\n{tags}---\nSummary.\n",
                      "content/s/1-one.md": chapter()})
    build(site, BuildOptions(output=tmp_path / "out", now=NOW))
    story, first = head(tmp_path / "out/s/index.html"), head(tmp_path / "out/s/1-one/index.html")
    assert story.all("book:tag") == [f"tag {i}" for i in range(20)]
    assert first.all("article:tag") == [f"tag {i}" for i in range(20)]
    assert len(story.data["genre"]) == 100 and "tag 99" in story.data["keywords"]


def test_home_page_is_a_website(out: Path) -> None:
    data = head(out / "index.html").data
    assert data["@type"] == "WebSite" and data["name"] == SITE_TITLE and data["url"] == BASE_URL


def test_every_page_has_at_most_one_json_ld_script_that_parses(out: Path) -> None:
    for rel, path in pages_of(out).items():
        h = head(path)
        assert len(h.json_ld) == (0 if kind_of(rel) == "other" else 1), rel
        for text in h.json_ld:
            json.loads(text)


# --- hostile text ------------------------------------------------------------------------------------------

HOSTILE_SITE = {
    "site.toml": f'title = "{HOSTILE} & Co"\nauthor = "{HOSTILE}"\ndescription = "A {HOSTILE}"\n',
    "content/s/story.md": f"""\
        ---
        title: '{HOSTILE}'
        rating: General Audiences
        tags: ['{HOSTILE}', "<!-- & -->"]
        characters: ["O'Brien \\u2028 line"]
        ---
        Summary with {HOSTILE} and <!-- a comment opener.
        """,
    "content/s/1-one.md": chapter(title=f"'{HOSTILE}'", extra="summary: '1 < 2 && 3 > 2 <!--'\n"),
    "content/s/2-two.md": chapter(title="Two", date="2025-01-02"),
}


@pytest.mark.parametrize("base_url", [BASE_URL, None])
def test_hostile_titles_stay_inside_their_json(make_site, tmp_path: Path, base_url: str | None) -> None:
    site = make_site(HOSTILE_SITE)
    output = tmp_path / "out"
    build(site, BuildOptions(output=output, now=NOW, base_url=base_url))
    pages = pages_of(output)
    assert {"s/index.html", "s/1-one/index.html", "s/all/index.html"} <= pages.keys()
    for rel, path in pages.items():
        text = path.read_text("utf-8")
        document = html5lib.parse(text, namespaceHTMLElements=False)
        scripts = document.findall(".//script")
        # Only the theme's own scripts: the settings script in <head>, reader.js, and the JSON-LD.
        kinds = sorted("src" if s.get("src") else s.get("type", "inline") for s in scripts)
        assert kinds in (["inline", "src"], ["application/ld+json", "inline", "src"]), (rel, kinds)
        for script in scripts:
            assert "alert(1)" not in (script.text or "") or script.get("type") == "application/ld+json", rel
        for script in (s for s in scripts if s.get("type") == "application/ld+json"):
            body = script.text or ""
            assert "<" not in body and ">" not in body and "&" not in body, rel
            data = json.loads(body)
            if rel == "s/index.html":
                assert data["name"] == HOSTILE
                assert data["author"]["name"] == HOSTILE
                assert HOSTILE in data["genre"] and "<!-- & -->" in data["genre"]
                assert data["hasPart"][0]["name"] == f"Chapter 1: {HOSTILE}"
                assert "O'Brien \u2028 line" in data["keywords"]
            if rel == "s/1-one/index.html":
                assert data["name"] == f"Chapter 1: {HOSTILE}"
                assert data["description"] == "1 < 2 && 3 > 2 <!–"  # (-- is typographic)
                assert data["isPartOf"]["name"] == HOSTILE
            if rel == "index.html":
                assert data["name"] == f"{HOSTILE} & Co"
        h = head(path)
        if rel == "s/index.html":
            assert h.one("og:title") == HOSTILE
            assert h.title == f"{HOSTILE} - {HOSTILE} & Co"
        assert h.one("og:site_name") == f"{HOSTILE} & Co"
    # A chapter without a summary is described by its story's summary.
    story_description = head(pages["s/index.html"]).one("og:description")
    assert story_description.startswith("Summary with")
    assert head(pages["s/2-two/index.html"]).one("og:description") == story_description


def test_without_base_url_no_og_url_and_links_are_relative(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(SAMPLE_SITE / "content", site / "content")
    toml = (SAMPLE_SITE / "site.toml").read_text("utf-8")
    (site / "site.toml").write_text("".join(line for line in toml.splitlines(True) if not line.startswith("base_url")))
    out = tmp_path / "output"
    build(site, BuildOptions(output=out, now=NOW))
    for rel, path in pages_of(out).items():
        h = head(path)
        assert h.canonical is None and h.one("og:url") is None, rel
    chapter_page = f"{SALT}/2-the-keeper/index.html"
    data = head(out / chapter_page).data
    for url, target in ((data["url"], chapter_page), (data["isPartOf"]["url"], f"{SALT}/index.html")):
        assert "://" not in url
        assert normpath(join(dirname(chapter_page), url)) == target


# --- units -------------------------------------------------------------------------------------------------

def test_script_json_escapes_and_round_trips() -> None:
    value = {"a": HOSTILE, "b": "<!-- x & y -->", "c": "line\u2028sep\u2029", "d": "naïve “quotes” 日本"}
    text = str(script_json(value))
    assert not set("<>&\u2028\u2029") & set(text)
    assert "naïve “quotes” 日本" in text  # not \u-escaped: readable, and UTF-8 like the page
    assert json.loads(text) == value


def test_plain_text_description() -> None:
    html = ('<p>A <em>storm</em> &amp; a light.<sup class="footnote-ref"><a href="#fn1">[1]</a></sup></p>\n<p>Second.</p>'
            '<hr class="footnotes-sep">\n<section class="footnotes"><ol><li>Footnote text.</li></ol></section>')
    assert plain_text(html) == "A storm & a light. Second."
    long = "<p>" + "word " * 200 + "</p>"
    cut = plain_text(long)
    assert len(cut) <= 300 and cut.endswith("word…")
    assert plain_text("") == ""


@pytest.mark.parametrize(("language", "locale"), [
    ("en", "en_US"), ("en-GB", "en_GB"), ("pt-br", "pt_BR"), ("fr", "fr_FR"), ("zh-Hant-TW", "zh_TW"), ("eo", "eo"),
])
def test_og_locale(language: str, locale: str) -> None:
    assert og_locale(language) == locale
