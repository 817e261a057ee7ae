"""The text arrives as the author wrote it: paragraphs pasted from an archive or a word processor (a line each,
with no blank line between them), chapter titles that already say their number, and the count of chapters of a
story that has as many as were planned, or more. Each through a real build: the chapter page, the whole work,
the feeds and the EPUB."""

from __future__ import annotations

import json
import re
import zipfile
from html import unescape
from pathlib import Path

import pytest

from conftest import NOW, write_files
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError

BASE = "https://example.org/fic/"
SITE_TOML = f'title = "Scratch"\nbase_url = "{BASE}"\n'


def story_md(extra: str = "", status: str = "ongoing") -> str:
    return f"---\ntitle: The Box\nauthor: Ann\nstatus: {status}\n{extra}---\nA summary.\n"


def chapter_md(title: str | None, day: int, body: str, extra: str = "") -> str:
    title_line = f"title: {json.dumps(title)}\n" if title is not None else ""
    return f"---\n{title_line}date: 2025-01-{day:02d}\n{extra}---\n{body}\n"


def make(root: Path, files: dict[str, str], toml: str = SITE_TOML) -> Path:
    return write_files(root, {"site.toml": toml, **files})


def build_site(root: Path, **options: object) -> tuple[Path, list[str]]:
    """The output folder and the warnings, as `path:line: message`."""
    result = build(root, BuildOptions(output=root / "output", now=NOW, **options))  # type: ignore[arg-type]
    return root / "output", [f"{Path(w.path).relative_to(root).as_posix()}:{w.line}: {w.message}"
                             for w in result.warnings]


def text(html: bytes | str) -> str:
    """The text of HTML or XHTML, as a reader sees it (one space between words)."""
    html = html.decode("utf-8") if isinstance(html, bytes) else html
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def paragraphs(html: str) -> list[str]:
    """The text of each `<p>` in `html`."""
    return [" ".join(unescape(re.sub(r"<[^>]*>", "", p)).split()) for p in re.findall(r"<p>(.*?)</p>", html, re.S)]


def epub_documents(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as book:
        return {name: book.read(name).decode("utf-8") for name in book.namelist()
                if name.endswith((".xhtml", ".opf", ".ncx"))}


def everything(output: Path) -> str:
    """Every page, feed and EPUB document of the output, as one text (for what must appear nowhere)."""
    parts = [p.read_text("utf-8") for p in sorted(output.rglob("*")) if p.suffix in (".html", ".xml")]
    parts += [doc for p in sorted(output.rglob("*.epub")) for doc in epub_documents(p).values()]
    return "\n".join(parts)


# --- titles that say their number -----------------------------------------------------------------------------

TITLES = {1: "Chapter 1: The Beginning", 2: "Chapter 2", 3: "Ch. 3 - The Storm", 4: "chapter 4. Low Tide",
          5: "Ch 5", 6: "Chapter Six: Fog", 7: "The Keeper"}
HEADINGS = {1: "Chapter 1: The Beginning", 2: "Chapter 2", 3: "Chapter 3: The Storm", 4: "Chapter 4: Low Tide",
            5: "Chapter 5", 6: "Chapter 6: Fog", 7: "Chapter 7: The Keeper"}


@pytest.fixture(scope="module")
def titled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    files = {f"content/box/{n}-c.md": chapter_md(title, n, f"Text of chapter {n}.")
             for n, title in TITLES.items()}
    files["content/box/8-wrong.md"] = chapter_md("Chapter 9: Elsewhere", 8, "Text of chapter 8.")
    root = make(tmp_path_factory.mktemp("titled") / "site", {"content/box/story.md": story_md(), **files})
    return build_site(root)


def test_a_title_that_starts_with_its_own_number_is_shown_with_it_once(titled: tuple[Path, list[str]]) -> None:
    """On the chapter page (its heading and `<title>`), the contents, the whole work, the feeds, the JSON-LD
    and the EPUB: `Chapter 1: The Beginning`, never `Chapter 1: Chapter 1: The Beginning`."""
    output, _ = titled
    for n, heading in HEADINGS.items():
        page = (output / f"box/{n}-c/index.html").read_text("utf-8")
        assert f'<h1 class="chapter-title">{heading}</h1>' in page, n
        assert f"<title>{heading} - The Box - Scratch</title>" in page, n
        assert f'"name":"{heading}"' in page, n  # JSON-LD
    all_output = everything(output)
    assert not re.search(r"Chapter (\d+): (Chapter|Ch\.?) ?\1\b", all_output, re.IGNORECASE)
    assert "Chapter 6: Chapter Six" not in all_output
    work = (output / "box/all/index.html").read_text("utf-8")
    feed = (output / "box/feed.xml").read_text("utf-8")
    book = epub_documents(output / "box/box.epub")
    nav = next(doc for name, doc in book.items() if name.endswith("nav.xhtml"))
    for heading in HEADINGS.values():
        assert f'<h2 class="chapter-title">{heading}</h2>' in work
        assert f"<title>The Box - {heading}</title>" in feed
        assert f">{heading}</a>" in nav
        assert any(f'<h1 class="chapter-title">{heading}</h1>' in doc for doc in book.values())
    contents = text((output / "box/index.html").read_text("utf-8"))  # number, then the title without it
    for row in ("1 The Beginning 2025-01-01", "2 Chapter 2 2025-01-02", "3 The Storm", "6 Fog", "7 The Keeper"):
        assert row in contents


def test_a_title_that_starts_with_another_number_is_warned_about(titled: tuple[Path, list[str]]) -> None:
    output, warnings = titled
    assert [w for w in warnings if "the title starts with" in w] == [
        "content/box/8-wrong.md:2: the title starts with Chapter 9 but this is chapter 8 (by its place among the "
        'chapter files, in name order), so it is shown as "Chapter 8: Chapter 9: Elsewhere"; remove the number '
        "from the title, or set `number: 9`"]
    assert "Chapter 8: Chapter 9: Elsewhere" in (output / "box/8-wrong/index.html").read_text("utf-8")


# --- counts that cannot be wrong ------------------------------------------------------------------------------

def counts_and_notices(output: Path) -> tuple[set[str], set[str]]:
    """Every chapter count and every "Chapter N … is pending/scheduled" notice in the pages and the EPUB."""
    pages = [p.read_text("utf-8") for p in output.rglob("*.html")]
    pages += [doc for p in output.rglob("*.epub") for doc in epub_documents(p).values()]
    counts = {c for page in pages for c in re.findall(r'class="chapter-count">([^<]*)<', page)}
    counts |= {c for page in pages for c in re.findall(r"Chapters:\s*(?:</[^>]*>\s*<[^>]*>\s*)?(\d+/[\d?]+)", text(page))}
    notices = {n for page in pages for n in re.findall(r"Chapter \d+(?: of \d+)? is (?:pending|scheduled)", text(page))}
    return counts, notices


def test_all_planned_chapters_posted_on_a_story_not_complete_counts_without_a_total(make_site) -> None:
    """`chapters_planned: 3` with three chapters, still `ongoing`: `3/?` and "Chapter 4 is pending" (not
    `3/3`, which says complete, nor "Chapter 4 of 3"), on every page and in the EPUB; and `check` says how
    to fix the front matter."""
    files = {"content/box/story.md": story_md("chapters_planned: 3\n")}
    files.update({f"content/box/{n}-c.md": chapter_md(f"C{n}", n, "Text.") for n in (1, 2, 3)})
    root = make(make_site({}), files)
    output, warnings = build_site(root)
    assert counts_and_notices(output) == ({"3/?"}, {"Chapter 4 is pending"})
    assert "content/box/story.md:5: all 3 planned chapters are posted but `status` is `ongoing`, so the site " \
           "counts them as 3/? (the total is not known); set `status: complete` if the story is finished, or raise " \
           "`chapters_planned` if more chapters are coming" in warnings


def test_a_draft_beyond_the_planned_chapters_does_not_make_the_count_false(make_site) -> None:
    """Built with the drafts (as `serve` does), a fourth chapter of three planned: `4/?` and "Chapter 5 is
    pending", not `4/3` and "Chapter 5 of 3"."""
    files = {"content/box/story.md": story_md("chapters_planned: 3\n")}
    files.update({f"content/box/{n}-c.md": chapter_md(f"C{n}", n, "Text.") for n in (1, 2, 3)})
    files["content/box/4-c.md"] = "---\ntitle: C4\ndraft: true\n---\nText.\n"
    root = make(make_site({}), files)
    output, _ = build_site(root, drafts=True)
    assert counts_and_notices(output) == ({"4/?"}, {"Chapter 5 is pending"})


def test_more_chapters_than_planned_is_an_error_that_says_the_fix(make_site) -> None:
    files = {"content/box/story.md": story_md("chapters_planned: 3\n")}
    files.update({f"content/box/{n}-c.md": chapter_md(f"C{n}", n, "Text.") for n in (1, 2, 3, 4)})
    root = make(make_site({}), files)
    with pytest.raises(ContentError) as raised:
        build_site(root)
    assert [(p.path, p.line, p.message) for p in raised.value.problems] == [(
        root / "content/box/story.md", 5, "`chapters_planned` is 3 but 4 chapters are posted or scheduled; raise it "
        "(`chapters_planned: 4` if that is all of them, and `status: complete` when the story is finished), or "
        "remove it if the total is unknown")]


def test_a_total_still_to_come_is_shown(make_site) -> None:
    """Fewer chapters than planned: `2/5` and "Chapter 3 of 5 is pending", as before."""
    files = {"content/box/story.md": story_md("chapters_planned: 5\n")}
    files.update({f"content/box/{n}-c.md": chapter_md(f"C{n}", n, "Text.") for n in (1, 2)})
    output, _ = build_site(make(make_site({}), files))
    assert counts_and_notices(output) == ({"2/5"}, {"Chapter 3 of 5 is pending"})
