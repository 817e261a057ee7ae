"""Golden tests of the sample site, key facts about it, and determinism.

The golden files in `tests/golden/` hold, for each HTML page, only its
`<main>…</main>` part (whitespace at line ends and blank lines dropped), and
the feeds and sitemap whole. A page without an expected file fails, and so
does an expected file that nothing produced. After an intended change of the
output, rewrite them with

    SERIALIST_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and review the diff of `tests/golden/` before committing it.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from posixpath import dirname, join, normpath

import pytest

from conftest import NOW, REPO, copy_sample, tree_bytes
from generator.build import build
from generator.config import BuildOptions

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("SERIALIST_UPDATE_GOLDEN") == "1"
DRAFT_MARKER = b"DRAFT-MARKER-LANTERN"

SALT = "salt-and-signal"
CART = "the-cartographers-daughter"
FERRY = "the-last-ferry"
CHAPTERS = {  # the published chapters of the sample, in reading order
    SALT: ["1-static", "2-the-keeper", "3-what-the-tide-left"],
    CART: ["01-the-blank-margin", "02-soundings", "03-true-north"],
    FERRY: ["chapter-1"],
}
WITH_NOTES_AFTER = {f"{SALT}/3-what-the-tide-left", f"{CART}/01-the-blank-margin", f"{CART}/02-soundings",
                    f"{FERRY}/chapter-1"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample site built once for this module (as published: no drafts, no future)."""
    root = copy_sample(tmp_path_factory.mktemp("golden") / "sample")
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


@pytest.fixture(scope="module")
def drafts_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("golden-drafts") / "sample")
    build(root, BuildOptions(output=root / "output", now=NOW, drafts=True))
    return root / "output"


# --- helpers ---------------------------------------------------------------------------------------------------

MAIN = re.compile(r"<main\b[^>]*>.*?</main>", re.S)


def normalise(text: str) -> str:
    return "".join(line.strip() + "\n" for line in text.splitlines() if line.strip())


def main_part(html: str) -> str:
    found = MAIN.findall(html)
    assert len(found) == 1, f"expected exactly one <main> element, found {len(found)}"
    return normalise(found[0])


def golden_view(path: Path) -> str:
    """What the golden file of an output file holds."""
    text = path.read_text("utf-8")
    return main_part(text) if path.suffix == ".html" else text


def compared_files(folder: Path) -> dict[str, Path]:
    """Output path → file, for every page, feed and sitemap (what golden files cover)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".html", ".xml")}


def page(site: Path, path: str) -> str:
    return (site / path).read_text("utf-8")


def main_of(site: Path, path: str) -> str:
    return MAIN.findall(page(site, path))[0]


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of the document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def text_of(html: str) -> str:
    return " ".join("".join(parse(html).text).split())


def resolve(from_file: str, href: str) -> str:
    """The output file a relative link on `from_file` points to (fragment dropped)."""
    target = normpath(join(dirname(from_file), href.split("#", 1)[0]))
    return target + "/index.html" if href.split("#", 1)[0].endswith("/") else target


def ids(html: str) -> set[str]:
    return {attrs["id"] for _, attrs in parse(html).tags if "id" in attrs}


def chapter_count(html: str) -> list[str]:
    return re.findall(r'<dd class="chapter-count">([^<]*)</dd>', html)


def section(html: str, css: str) -> list[str]:
    return re.findall(rf'<section class="{css}"[^>]*>.*?</section>', html, re.S)


# --- golden files ----------------------------------------------------------------------------------------------

def test_golden_files(site: Path) -> None:
    produced = compared_files(site)
    assert "index.html" in produced and "feed.xml" in produced and "sitemap.xml" in produced
    if UPDATE:
        if GOLDEN.exists():
            shutil.rmtree(GOLDEN)
        for rel, path in produced.items():
            target = GOLDEN / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(golden_view(path), "utf-8", newline="\n")
    expected = {p.relative_to(GOLDEN).as_posix(): p for p in sorted(GOLDEN.rglob("*")) if p.is_file()}

    problems = []
    for rel in sorted(expected.keys() - produced.keys()):
        problems.append(f"expected file tests/golden/{rel} was not produced by the build")
    for rel in sorted(produced.keys() - expected.keys()):
        problems.append(f"the build produced {rel} but there is no tests/golden/{rel}")
    for rel in sorted(expected.keys() & produced.keys()):
        want = expected[rel].read_text("utf-8")
        got = golden_view(produced[rel])
        if want != got:
            diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                     f"tests/golden/{rel}", f"output/{rel}"))[:60])
            problems.append(f"{rel} differs from its golden file:\n{diff}")
    assert not problems, ("\n\n".join(problems) + "\n\nIf the change is intended, rerun with "
                          "SERIALIST_UPDATE_GOLDEN=1 and review the diff of tests/golden/.")


def test_golden_view_keeps_only_main() -> None:
    html = "<html><head><title>T</title></head><body><header>X</header>\n<main id=m>\n  <p>a</p>\n\n</main>" \
           "<footer>F</footer></body></html>"
    assert main_part(html) == "<main id=m>\n<p>a</p>\n</main>\n"
    with pytest.raises(AssertionError):
        main_part("<body><p>no main</p></body>")


def test_theme_assets_and_nojekyll(site: Path) -> None:
    assert (site / ".nojekyll").read_bytes() == b""
    theme_css = REPO / "themes" / "default" / "static" / "style.css"
    assert (site / "assets" / "style.css").read_bytes() == theme_css.read_bytes()


# --- key facts, asserted directly --------------------------------------------------------------------------------

def test_ongoing_story_shows_unknown_total_and_pending_notice(site: Path) -> None:
    last = f"{SALT}/3-what-the-tide-left/index.html"
    for path in ("index.html", f"{SALT}/index.html", f"{SALT}/all/index.html", last):
        assert "3/?" in chapter_count(page(site, path)), path
    for path in (last, f"{SALT}/all/index.html"):
        main = main_of(site, path)
        notices = section(main, "end-notice end-notice-pending")
        assert len(notices) == 1, path
        assert "Chapter 4 is pending" in text_of(notices[0]), path
        hrefs = [a["href"] for tag, a in parse(notices[0]).tags if tag == "a"]
        assert [resolve(path, h) for h in hrefs] == [f"{SALT}/feed.xml"], path
        assert (site / SALT / "feed.xml").is_file()
        # At the end: after the text (and any end notes) of the last chapter.
        assert main.index("end-notice-pending") > main.rindex('class="chapter-text"'), path
    for slug in CHAPTERS[SALT][:-1]:
        assert "end-notice" not in page(site, f"{SALT}/{slug}/index.html"), slug


def test_complete_story_shows_total_completed_and_end_marker(site: Path) -> None:
    last = f"{CART}/03-true-north/index.html"
    for path in ("index.html", f"{CART}/index.html", f"{CART}/all/index.html", last):
        assert "3/3" in chapter_count(page(site, path)), path
    for path in (f"{CART}/index.html", last):
        assert re.search(r"<dt>Completed:</dt>\s*<dd><time[^>]*>2025-04-03</time>", page(site, path)), path
    for path in (last, f"{CART}/all/index.html"):
        main = main_of(site, path)
        ends = section(main, "end-notice end-notice-end")
        assert len(ends) == 1 and "The End" in text_of(ends[0]), path
        assert main.index("end-notice-end") > main.rindex('class="chapter-text"'), path
    for path in [f"{CART}/index.html", f"{CART}/all/index.html",
                 *(f"{CART}/{slug}/index.html" for slug in CHAPTERS[CART])]:
        html = page(site, path)
        assert "end-notice-pending" not in html and "pending" not in text_of(main_of(site, path)), path


def test_one_shot_shows_unknown_total_and_pending_notice(site: Path) -> None:
    chapter = f"{FERRY}/chapter-1/index.html"
    for path in ("index.html", f"{FERRY}/index.html", f"{FERRY}/all/index.html", chapter):
        assert "1/?" in chapter_count(page(site, path)), path
    for path in (chapter, f"{FERRY}/all/index.html"):
        notices = section(main_of(site, path), "end-notice end-notice-pending")
        assert len(notices) == 1 and "Chapter 2 is pending" in text_of(notices[0]), path
        hrefs = [a["href"] for tag, a in parse(notices[0]).tags if tag == "a"]
        assert [resolve(path, h) for h in hrefs] == [f"{FERRY}/feed.xml"], path
    # The author's open-ending note is there, before the notice.
    main = main_of(site, chapter)
    assert main.index("left the ending open") < main.index("end-notice-pending")


def test_draft_appears_nowhere(site: Path) -> None:
    leaks = [rel for rel, data in tree_bytes(site).items()
             if DRAFT_MARKER in data or b"4-the-lighthouse-log" in data or b"The Lighthouse Log" in data]
    assert leaks == []
    assert not (site / SALT / "4-the-lighthouse-log").exists()


def test_draft_appears_with_drafts(drafts_site: Path) -> None:
    found = {rel for rel, data in tree_bytes(drafts_site).items() if DRAFT_MARKER in data}
    assert {f"{SALT}/4-the-lighthouse-log/index.html", f"{SALT}/all/index.html"} <= found
    assert "DRAFT: this chapter is not published." in page(drafts_site, f"{SALT}/4-the-lighthouse-log/index.html")
    # With the draft shown, chapter 3 leads on to it instead of ending with the notice.
    links = link_rels(page(drafts_site, f"{SALT}/3-what-the-tide-left/index.html"))
    assert resolve(f"{SALT}/3-what-the-tide-left/index.html", links["next"]) == \
        f"{SALT}/4-the-lighthouse-log/index.html"


def test_work_notes_at_start_of_first_chapter_and_end_of_last(site: Path) -> None:
    cart = [main_of(site, f"{CART}/{slug}/index.html") for slug in CHAPTERS[CART]]
    assert [len(section(m, "notes work-notes-before")) for m in cart] == [1, 0, 0]
    assert [len(section(m, "notes work-notes-after")) for m in cart] == [0, 0, 1]
    first, last = cart[0], cart[-1]
    assert "maps that are <em>wrong on purpose</em>" in section(first, "notes work-notes-before")[0]
    assert first.index("work-notes-before") < first.index('class="chapter-text"')
    assert "If you enjoyed it, the sequel-ish one-shot" in section(last, "notes work-notes-after")[0]
    assert last.index("work-notes-after") > last.rindex('class="chapter-text"')
    assert last.index("work-notes-after") < last.index("end-notice-end")

    salt = [main_of(site, f"{SALT}/{slug}/index.html") for slug in CHAPTERS[SALT]]
    assert [len(section(m, "notes work-notes-before")) for m in salt] == [1, 0, 0]
    assert "<strong>work in progress</strong>" in section(salt[0], "notes work-notes-before")[0]
    # Story page and whole work carry the work notes too.
    for path in (f"{CART}/index.html", f"{CART}/all/index.html"):
        main = main_of(site, path)
        assert len(section(main, "notes work-notes-before")) == 1 and len(section(main, "notes work-notes-after")) == 1


def see_end_links(html: str) -> list[str]:
    return re.findall(r'<p class="see-end">\(See the end of the chapter for <a href="([^"]*)">', html)


def test_see_end_of_chapter_link_only_with_end_notes(site: Path) -> None:
    for story, slugs in CHAPTERS.items():
        for slug in slugs:
            path = f"{story}/{slug}/index.html"
            html = page(site, path)
            links = see_end_links(html)
            if f"{story}/{slug}" in WITH_NOTES_AFTER:
                assert len(links) == 1 and links[0].startswith("#"), path
                target = links[0][1:]
                assert target in ids(html), path
                assert re.search(rf'<section class="notes notes-after" id="{re.escape(target)}">', html), path
            else:
                assert links == [] and "See the end of the chapter" not in html, path
    # The whole-work pages: one link per chapter with end notes, each to that chapter's end notes.
    for story, slugs in CHAPTERS.items():
        html = page(site, f"{story}/all/index.html")
        links = see_end_links(html)
        assert len(links) == sum(f"{story}/{s}" in WITH_NOTES_AFTER for s in slugs), story
        for link in links:
            assert link.startswith("#") and link[1:] in ids(html), (story, link)
            assert re.search(rf'<section class="notes notes-after" id="{re.escape(link[1:])}">', html)
        assert len(set(links)) == len(links)


def link_rels(html: str) -> dict[str, str]:
    """`<link rel=…>` prev/next of a page's head."""
    found: dict[str, str] = {}
    for tag, attrs in parse(html).tags:
        if tag == "link" and attrs.get("rel") in ("prev", "next"):
            assert attrs["rel"] not in found, f"two <link rel={attrs['rel']}>"
            found[attrs["rel"]] = attrs["href"]
    return found


def test_link_prev_next(site: Path) -> None:
    for story, slugs in CHAPTERS.items():
        for i, slug in enumerate(slugs):
            path = f"{story}/{slug}/index.html"
            links = link_rels(page(site, path))
            want = {}
            if i > 0:
                want["prev"] = f"{story}/{slugs[i - 1]}/index.html"
            if i + 1 < len(slugs):
                want["next"] = f"{story}/{slugs[i + 1]}/index.html"
            assert {rel: resolve(path, href) for rel, href in links.items()} == want, path
    for path in ("index.html", f"{SALT}/index.html", f"{SALT}/all/index.html"):
        assert link_rels(page(site, path)) == {}, path


def test_home_lists_newest_update_first(site: Path) -> None:
    main = main_of(site, "index.html")
    blurbs = re.findall(r'<article class="blurb">.*?</article>', main, re.S)
    titles = [unescape(re.search(r'class="blurb-title"><a [^>]*>([^<]*)</a>', b).group(1)) for b in blurbs]
    assert titles == ["Salt and Signal", "The Last Ferry", "The Cartographer's Daughter"]
    newest = [max(re.findall(r'<time datetime="([0-9-]+)"', b)) for b in blurbs]
    assert newest == ["2025-11-07", "2025-06-21", "2025-04-03"]
    assert newest == sorted(newest, reverse=True)


# --- determinism ---------------------------------------------------------------------------------------------

def test_two_builds_give_identical_trees(sample_copy: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    build(sample_copy, BuildOptions(output=first, now=NOW))
    build(sample_copy, BuildOptions(output=second, now=NOW))
    one = tree_bytes(first)
    assert len(one) > 20 and one == tree_bytes(second)
    build(sample_copy, BuildOptions(output=first, now=NOW))  # a rebuild in place, over the previous output
    assert tree_bytes(first) == one


def test_bom_and_crlf_give_the_same_output(sample_copy: Path, tmp_path: Path) -> None:
    windows = tmp_path / "windows"
    shutil.copytree(sample_copy, windows)
    sources = [windows / "site.toml", *sorted((windows / "content").rglob("*.md"))]
    for source in sources:
        text = source.read_bytes().decode("utf-8")
        assert "\r" not in text and not text.startswith("\ufeff")
        source.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    assert len(sources) == 11 and all(b"\r\n" in s.read_bytes() for s in sources)

    build(sample_copy, BuildOptions(output=tmp_path / "plain-out", now=NOW))
    build(windows, BuildOptions(output=tmp_path / "windows-out", now=NOW))
    plain, converted = tree_bytes(tmp_path / "plain-out"), tree_bytes(tmp_path / "windows-out")
    assert plain.keys() == converted.keys()
    assert [rel for rel in plain if plain[rel] != converted[rel]] == []
