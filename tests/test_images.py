"""Images and other files beside the chapters, and covers: copied, referenced from every page, errors."""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from pathlib import Path
from posixpath import dirname, join, normpath

import feedparser
import pytest

from conftest import NOW, chapter, run_cli, tree_bytes
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError

BASE = "https://example.org/fic/"


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small, valid PNG (epubcheck looks inside images)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


MAP = png(rgb=(1, 2, 3))
COVER = png(3, 4, (9, 9, 9))

SITE = {
    "site.toml": f'title = "Scratch"\nbase_url = "{BASE}"\n',
    "content/tide/story.md": """
        ---
        title: The Tide Clock
        cover: cover.png
        ---
        A summary with a map: ![Summary map](images/map.png)
    """,
    "content/tide/01-one.md": """
        ---
        title: One
        date: 2025-01-01
        ---
        The first line,
        then ![The map](images/map.png "A title") on the second.

        <p>Raw: <img src="images/old%20map.png" alt="Old map"></p>

        Get [the map](images/map.png) or [the notes](notes.txt).
    """,
    "content/tide/cover.png": COVER,
    "content/tide/images/map.png": MAP,
    "content/tide/images/old map.png": png(rgb=(4, 5, 6)),
    "content/tide/images/sub/deep.gif": b"GIF89a-not-really",
    "content/tide/notes.txt": "Research notes.\n",
    "content/tide/images/.hidden.png": b"hidden",
    "content/tide/images/map.png~": b"editor backup",
    "content/tide/.DS_Store": b"mac",
    "content/tide/drafts/ideas.md": "Not a chapter, never published.\n",
    "content/ferry.md": """
        ---
        title: Ferry
        date: 2025-02-01
        cover: ferry.assets/front.png
        ---
        A one-shot with ![a boat](ferry.assets/boat.png).
    """,
    "content/ferry.assets/boat.png": png(rgb=(7, 7, 7)),
    "content/ferry.assets/front.png": png(rgb=(8, 8, 8)),
}


def build_site(make_site, files: dict[str, str | bytes] | None = None) -> Path:
    site = make_site(files or SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    return site / "output"


def resolve(page: str, href: str) -> str:
    """The output file a relative `href` on output file `page` points to."""
    return normpath(join(dirname(page), href.split("#", 1)[0]))


def img_srcs(html: str) -> dict[str, str]:
    """alt → src of every <img> of a page."""
    return {m.group(2): m.group(1) for m in re.finditer(r'<img src="([^"]*)" alt="([^"]*)"', html)}


# --- copying --------------------------------------------------------------------------------------------------

def test_files_beside_the_chapters_are_copied_as_they_are(make_site):
    out = build_site(make_site)
    assert (out / "tide/images/map.png").read_bytes() == MAP
    assert (out / "tide/cover.png").read_bytes() == COVER
    assert (out / "tide/images/old map.png").is_file()
    assert (out / "tide/notes.txt").read_text() == "Research notes.\n"
    # One-shots: `content/<name>.assets/` is the one-shot's folder, published under its URL name.
    assert (out / "ferry/boat.png").is_file() and (out / "ferry/front.png").is_file()
    assert not (out / "ferry.assets").exists() and not (out / "ferry-assets").exists()
    # Hidden files, editors' backups, Markdown and files that nothing published refers to are not published.
    made = set(tree_bytes(out))
    for name in ("tide/images/.hidden.png", "tide/images/map.png~", "tide/.DS_Store", "tide/drafts/ideas.md",
                 "tide/drafts/ideas/index.html", "tide/story.md", "tide/01-one.md", "tide/images/sub/deep.gif"):
        assert name not in made, name


def test_a_file_where_a_page_goes_is_an_error(make_site):
    site = make_site({**SITE, "content/tide/feed.xml": "<rss/>", "content/tide/all": "x",
                      "content/tide/02-two.md": chapter("Two", body="See [the feed](feed.xml) and [all](all).")})
    with pytest.raises(ContentError) as caught:
        build(site, BuildOptions(output=site / "output", now=NOW))
    messages = [str(p) for p in caught.value.problems]
    assert any("feed.xml: error: this file would be published as tide/feed.xml" in m for m in messages), messages
    assert any("all: error: this file would be published as tide/all" in m for m in messages), messages
    assert not (site / "output").exists()


def test_a_folder_of_files_without_its_one_shot_is_not_a_story(make_site):
    site = make_site({**SITE, "content/lost.assets/x.png": png()})
    result = build(site, BuildOptions(output=site / "output", now=NOW))
    assert any("no one-shot lost.md" in p.message for p in result.warnings)
    assert not (site / "output/lost").exists() and not (site / "output/lost-assets").exists()


# --- references from every page -----------------------------------------------------------------------------------

def test_images_work_on_the_chapter_page(make_site):
    out = build_site(make_site)
    page = "tide/01-one/index.html"
    srcs = img_srcs((out / page).read_text())
    assert resolve(page, srcs["The map"]) == "tide/images/map.png"
    assert srcs["Old map"] == "../../tide/images/old%20map.png"
    assert (out / "tide/images/old map.png").is_file()
    links = re.findall(r'<a href="([^"]*)">the (?:map|notes)</a>', (out / page).read_text())
    assert [resolve(page, href) for href in links] == ["tide/images/map.png", "tide/notes.txt"]


def test_images_work_on_the_whole_work_story_and_home_pages(make_site):
    out = build_site(make_site)
    for page, alts in [("tide/all/index.html", ["The map", "Summary map"]), ("tide/index.html", ["Summary map"]),
                       ("index.html", ["Summary map"]), ("ferry/chapter-1/index.html", ["a boat"]),
                       ("ferry/all/index.html", ["a boat"])]:
        srcs = img_srcs((out / page).read_text())
        for alt in alts:
            assert (out / resolve(page, srcs[alt])).is_file(), (page, alt, srcs[alt])


def test_images_in_feeds_are_absolute(make_site):
    out = build_site(make_site)
    feed = feedparser.parse((out / "tide/feed.xml").read_bytes())
    assert not feed.bozo
    html = feed.entries[0].description
    assert f'src="{BASE}tide/images/map.png"' in html
    assert f'src="{BASE}tide/images/old%20map.png"' in html
    assert f'href="{BASE}tide/notes.txt"' in html
    site_feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert f'src="{BASE}ferry/boat.png"' in "".join(e.description for e in site_feed.entries)


def test_images_are_embedded_in_the_epub(make_site):
    out = build_site(make_site)
    with zipfile.ZipFile(out / "tide/tide.epub") as book:
        names = book.namelist()
        chapter = book.read("EPUB/chapter-1.xhtml").decode()
        srcs = img_srcs(chapter)
        assert {"The map", "Old map"} <= srcs.keys()
        for alt in ("The map", "Old map"):
            assert f"EPUB/{srcs[alt]}" in names
        assert book.read(f"EPUB/{srcs['The map']}") == MAP
        assert "EPUB/images/cover.png" in names and book.read("EPUB/images/cover.png") == COVER
        # A link to a file of the site goes to the web site.
        assert f'<a href="{BASE}tide/notes.txt">the notes</a>' in chapter


# --- errors ---------------------------------------------------------------------------------------------------

def test_a_missing_image_is_an_error_naming_file_and_line(make_site):
    site = make_site(SITE)
    assert run_cli("build", site).returncode == 0
    before = tree_bytes(site / "output")
    (site / "content/tide/02-two.md").write_text(
        "---\ntitle: Two\ndate: 2025-01-02\n---\nFirst paragraph.\n\nSome text\nand ![gone](images/nope.png) here.\n"
        "\n<div><img alt='x' src='pics/none.jpg'></div>\n", "utf-8")
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "02-two.md:8: error: the image `images/nope.png` does not exist" in result.stderr, result.stderr
    assert "02-two.md:10: error: the image `pics/none.jpg` does not exist" in result.stderr, result.stderr
    assert "Build failed: 2 errors. The previous output is unchanged." in result.stderr
    assert tree_bytes(site / "output") == before


def test_an_image_in_a_summary_or_note_is_checked_too(make_site):
    site = make_site({**SITE, "content/tide/story.md": "---\ntitle: T\nnotes_before: |\n  Intro,\n  look: ![x](x.png)\n"
                      "---\nSummary ![y](y.png)\n"})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "story.md:5: error: the image `x.png` does not exist" in result.stderr, result.stderr
    assert "story.md:7: error: the image `y.png` does not exist" in result.stderr, result.stderr


def test_an_image_outside_the_story_folder_is_an_error(make_site):
    site = make_site({**SITE, "content/tide/02-two.md": chapter("Two", "2025-01-02", body="![a](../../logo.png)"),
                      "logo.png": png()})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "02-two.md:5: error: the image `../../logo.png` is not published: it is outside the story's folder " \
           "tide/" in result.stderr, result.stderr


def test_remote_images_are_left_alone(make_site):
    site = make_site({**SITE, "content/tide/02-two.md": chapter(
        "Two", "2025-01-02", body="![web](https://example.com/x.png)")})
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert 'src="https://example.com/x.png"' in (site / "output/tide/02-two/index.html").read_text()
    with zipfile.ZipFile(site / "output/tide/tide.epub") as book:  # an EPUB may not load it: its description
        assert '<span class="image-alt">[web]</span>' in book.read("EPUB/chapter-2.xhtml").decode()


# --- covers ---------------------------------------------------------------------------------------------------

def test_cover_on_the_home_and_story_pages(make_site):
    out = build_site(make_site)
    for page, story, cover in [("index.html", "The Tide Clock", "tide/cover.png"),
                               ("index.html", "Ferry", "ferry/front.png"),
                               ("tide/index.html", "The Tide Clock", "tide/cover.png"),
                               ("ferry/index.html", "Ferry", "ferry/front.png")]:
        srcs = {alt: src for src, alt in re.findall(r'<img class="cover[^"]*" src="([^"]*)" alt="([^"]*)"',
                                                    (out / page).read_text())}
        assert resolve(page, srcs[f"Cover of {story}"]) == cover, page


def test_cover_is_the_opengraph_image(make_site):
    out = build_site(make_site)
    for page in ("tide/index.html", "tide/all/index.html", "tide/01-one/index.html"):
        assert f'<meta property="og:image" content="{BASE}tide/cover.png">' in (out / page).read_text(), page
    assert 'property="og:image"' not in (out / "index.html").read_text()


@pytest.mark.parametrize(("cover", "message"), [
    ("nope.png", "story.md:3: error: `cover`: there is no file `nope.png` next to story.md"),
    ("notes.txt", "story.md:3: error: `cover`: `notes.txt` is not a JPEG, PNG, GIF, WebP or SVG image"),
    ("../../logo.png", "story.md:3: error: `cover`: `../../logo.png` is outside the story's folder tide/"),
    ("https://example.com/c.png", "story.md:3: error: `cover`: `https://example.com/c.png` is not a file"),
])
def test_a_wrong_cover_is_an_error_with_its_line(make_site, cover, message):
    site = make_site({**SITE, "content/tide/story.md": f"---\ntitle: T\ncover: {cover}\n---\n", "logo.png": png()})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


def test_one_shot_cover_is_relative_to_its_file(make_site):
    site = make_site({**SITE, "content/ferry.md": "---\ntitle: F\ndate: 2025-02-01\ncover: front.png\n---\nText\n"})
    result = run_cli("build", site)
    assert result.returncode == 1
    assert "ferry.md:4: error: `cover`: there is no file `front.png` next to ferry.md" in result.stderr


def test_an_impossible_image_name_is_an_error_not_a_crash(make_site):
    long_name = "a" * 5000
    site = make_site({**SITE, "content/tide/02-two.md": chapter(
        "Two", "2025-01-02", body=f"![nul](x%00y.png) ![long]({long_name}.png)")})
    with pytest.raises(ContentError) as caught:
        build(site, BuildOptions(output=site / "output", now=NOW))
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 2 and all("does not exist" in m for m in messages), messages
