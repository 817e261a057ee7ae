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

from conftest import NOW, run_cli, write_files
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError

BASE = "https://example.org/fic/"
SITE_TOML = f'title = "Scratch"\nbase_url = "{BASE}"\n'
PASTED_WARNING = "are separate lines with no blank line between them"


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


# --- paragraphs pasted as lines -----------------------------------------------------------------------------------

DIALOGUE = ('"Where were you?" Ruth asked.\n'
            '"Out," said Tamsin.\n'
            '"Out *where?*"\n'
            "She did not answer. The lamp went on turning over the water, and neither of them said a word.")
LINES = ["“Where were you?” Ruth asked.", "“Out,” said Tamsin.", "“Out where?”",
         "She did not answer. The lamp went on turning over the water, and neither of them said a word."]


def test_dialogue_on_single_lines_warns_with_the_line_numbers_and_the_fix(make_site) -> None:
    """A chapter whose lines of dialogue have no blank line between them is shown as one paragraph: `check`
    and `build` say which lines, counted from the top of the file, and how to make each line a paragraph."""
    body = "It was late.\n\n" + DIALOGUE + "\n\nThe end of it.\n\n" + DIALOGUE
    root = make(make_site({}), {"content/box/story.md": story_md(),
                                "content/box/1-talk.md": chapter_md("Talk", 1, body)})
    # Front matter: lines 1-4; "It was late." line 5; the dialogue lines 7-10; then 12; again 14-17.
    result = run_cli("check", cwd=root)
    assert result.returncode == 0, result.stderr
    expected = ("content/box/1-talk.md:7: warning: lines 7\u201310 and 14\u201317 " + PASTED_WARNING
                + ", so each group is shown as one paragraph")
    assert expected in result.stderr, result.stderr
    assert "add `line_breaks: paragraphs` to the chapter's front matter (or to story.md" in result.stderr
    assert 'or `line_breaks = "paragraphs"` to site.toml' in result.stderr
    assert "put a blank line between paragraphs" in result.stderr
    output, warnings = build_site(root)
    assert [w.split(";")[0] for w in warnings if PASTED_WARNING in w] == [expected.replace(" warning:", "")]
    page = (output / "box/1-talk/index.html").read_text("utf-8")
    assert " ".join(LINES) in paragraphs(page)  # as Markdown has it: one paragraph, as the warning says


def test_a_one_shot_pasted_as_lines_warns_too(make_site) -> None:
    root = make(make_site({}), {"content/ferry.md": "---\ntitle: Ferry\ndate: 2025-01-01\n---\n" + DIALOGUE + "\n"})
    _, warnings = build_site(root)
    assert [w for w in warnings if PASTED_WARNING in w] == [
        f"content/ferry.md:5: lines 5\u20138 {PASTED_WARNING}, so they are shown as one paragraph; if each line is "
        "a paragraph, as in text pasted from an archive or a word processor, add `line_breaks: paragraphs` to the "
        'front matter, or `line_breaks = "paragraphs"` to site.toml for every story; or put a blank line between '
        "paragraphs"]


HARD_WRAPPED = """\
The lighthouse had stood dark for eleven years when Tamsin first heard it
speak. She was working the night shift at the coastguard station, alone
with the radio and a flask of tea gone cold, and the voice came in on a
frequency nobody had used since the keeper drowned. It read the weather,
then the tides, then a list of ships that had not sailed those waters in
a generation; and when it signed off, it gave the keeper's name.

"You heard it too," Ruth said in the morning, not quite asking, and put
her coat over the back of the chair as if she meant to stay for a while.
Tamsin said nothing for a long moment, and then she told her everything
she could remember, down to the crackle between the words."""

NOT_PASTED = {
    "hard-wrapped": HARD_WRAPPED,
    "list": "Things to take:\n\n- a lamp.\n- the log.\n- a coat.\n- the key.\n\n1. First.\n2. Second.\n3. Third.",
    "quote": "She read it out:\n\n> Wind north-east.\n> Sea calm.\n> Visibility good.\n> No ships.",
    "table": "| Tide | Time |\n| --- | --- |\n| High. | 06:10. |\n| Low. | 12:25. |\n| High. | 18:40. |",
    "code": "```\nLOG ENTRY 1.\nLOG ENTRY 2.\nLOG ENTRY 3.\nLOG ENTRY 4.\n```",
    "html": "<div class=\"letter\">\nDear Ruth.\nI am well.\nYours, T.\n</div>",
    "poetry, two spaces": "The lamp goes round.  \nThe sea goes out.  \nThe keeper sleeps.  \nThe ships go by.",
    "poetry, backslash": "The lamp goes round.\\\nThe sea goes out.\\\nThe keeper sleeps.\\\nThe ships go by.",
}


@pytest.fixture(scope="module")
def not_pasted(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    files = {f"content/box/{n}-case.md": chapter_md(name, n, body)
             for n, (name, body) in enumerate(NOT_PASTED.items(), start=1)}
    root = make(tmp_path_factory.mktemp("not-pasted") / "site", {"content/box/story.md": story_md(), **files})
    return build_site(root)[1]


@pytest.mark.parametrize("number", range(1, len(NOT_PASTED) + 1), ids=list(NOT_PASTED))
def test_markdown_that_is_meant_to_span_lines_is_not_warned_about(not_pasted: list[str], number: int) -> None:
    """Lists, quotes, tables, code, HTML, poetry with hard breaks, and prose wrapped at a width as many Markdown
    authors write it (lines of some 75 characters that end in mid-sentence) are not pasted paragraphs."""
    assert not [w for w in not_pasted if w.startswith(f"content/box/{number}-case.md")]


MIXED = ("Things to take:\n\n- a lamp\n- the log\n\n> Wind north-east.\n> Sea calm.\n\n```\nLOG 1.\nLOG 2.\n```\n\n"
         "| Tide | Time |\n| --- | --- |\n| High | 06:10 |\n\n"
         "The lamp goes round.  \nThe sea goes out.\n\n" + DIALOGUE + "\nUnder the lamp\n---\nA new scene.")


def test_line_breaks_paragraphs_makes_each_line_a_paragraph_everywhere(make_site) -> None:
    """`line_breaks: paragraphs` in a chapter's front matter: each line of its text is a paragraph on the
    chapter page, the whole work, the feeds and in the EPUB; lists, quotes, code, tables and hard breaks stay
    what they are, a `---` line is a scene break, and there is no warning."""
    root = make(make_site({}), {"content/box/story.md": story_md(),
                                "content/box/1-talk.md": chapter_md("Talk", 1, MIXED, "line_breaks: paragraphs\n")})
    output, warnings = build_site(root)
    assert not [w for w in warnings if PASTED_WARNING in w]
    page = (output / "box/1-talk/index.html").read_text("utf-8")
    work = (output / "box/all/index.html").read_text("utf-8")
    feed = unescape((output / "box/feed.xml").read_text("utf-8"))
    site_feed = unescape((output / "feed.xml").read_text("utf-8"))
    book = "".join(epub_documents(output / "box/box.epub").values())
    for where, html in (("page", page), ("work", work), ("feed", feed), ("site feed", site_feed), ("epub", book)):
        found = paragraphs(html)
        for line in LINES + ["Under the lamp", "A new scene."]:
            assert line in found, (where, line, found)
        assert re.search(r"<li>a lamp</li>\s*<li>the log</li>", html), where
        assert re.search(r"<blockquote>\s*<p>Wind north-east.</p>\s*<p>Sea calm.</p>\s*</blockquote>", html), where
        assert re.search(r"<code>LOG 1.\nLOG 2.\n</code>", html), where
        assert re.search(r"<td>High</td>\s*<td>06:10</td>", html), where
        assert re.search(r"<p>The lamp goes round.<br\s*/?>\s*The sea goes out.</p>", html), where
        assert re.search(r'<hr class="scene-break"\s*/?>\s*<p>A new scene.</p>', html), where
        assert "<h2" not in html.split("Under the lamp")[1][:40], where  # not a heading's underline


def test_the_setting_goes_from_the_site_to_its_stories_and_from_a_story_to_its_chapters(make_site) -> None:
    """site.toml's `line_breaks` is every story's default, a story's is its chapters', and a chapter or a
    one-shot may say otherwise."""
    files = {
        "content/box/story.md": story_md(),  # the site's: paragraphs
        "content/box/1-a.md": chapter_md("A", 1, DIALOGUE),
        "content/box/2-b.md": chapter_md("B", 2, DIALOGUE, "line_breaks: markdown\n"),
        "content/lamp/story.md": story_md("line_breaks: markdown\n"),
        "content/lamp/1-a.md": chapter_md("A", 1, DIALOGUE),
        "content/lamp/2-b.md": chapter_md("B", 2, DIALOGUE, "line_breaks: paragraphs\n"),
        "content/ferry.md": "---\ntitle: Ferry\ndate: 2025-01-01\n---\n" + DIALOGUE + "\n",
        "content/tide.md": "---\ntitle: Tide\ndate: 2025-01-01\nline_breaks: markdown\n---\n" + DIALOGUE + "\n",
    }
    root = make(make_site({}), files, SITE_TOML + 'line_breaks = "paragraphs"\n')
    output, warnings = build_site(root)
    as_lines = {"box/1-a", "box/2-b", "lamp/1-a", "lamp/2-b", "ferry/chapter-1", "tide/chapter-1"}
    split = {page for page in as_lines
             if LINES[0] in paragraphs((output / page / "index.html").read_text("utf-8"))}
    assert split == {"box/1-a", "lamp/2-b", "ferry/chapter-1"}
    assert sorted(w.split(":")[0] for w in warnings if PASTED_WARNING in w) == [
        "content/box/2-b.md", "content/lamp/1-a.md", "content/tide.md"]


def test_changing_the_setting_renders_the_text_again_rather_than_from_the_cache(make_site) -> None:
    """The setting is part of what a rendered text is cached under: set in site.toml after a build, the next
    build shows each line as a paragraph (and no longer warns)."""
    root = make(make_site({}), {"content/box/story.md": story_md(),
                                "content/box/1-talk.md": chapter_md("Talk", 1, DIALOGUE)})
    output, warnings = build_site(root)
    assert LINES[0] not in paragraphs((output / "box/1-talk/index.html").read_text("utf-8"))
    assert any(PASTED_WARNING in w for w in warnings)
    (root / "site.toml").write_text(SITE_TOML + 'line_breaks = "paragraphs"\n', "utf-8")
    output, warnings = build_site(root)
    assert LINES[0] in paragraphs((output / "box/1-talk/index.html").read_text("utf-8"))
    assert not any(PASTED_WARNING in w for w in warnings)


def test_an_unknown_line_breaks_value_is_an_error_naming_the_file_and_line(make_site) -> None:
    root = make(make_site({}), {"content/box/story.md": story_md(),
                                "content/box/1-a.md": chapter_md("A", 1, "Text.", "line_breaks: lines\n")})
    result = run_cli("check", cwd=root)
    assert result.returncode == 1
    assert "content/box/1-a.md:4: error: `line_breaks`: unknown value `lines`" in result.stderr
    assert "Use one of: markdown, paragraphs" in result.stderr
    (root / "content/box/1-a.md").write_text(chapter_md("A", 1, "Text."), "utf-8")
    (root / "site.toml").write_text(SITE_TOML + 'line_breaks = "lines"\n', "utf-8")
    result = run_cli("check", cwd=root)
    assert result.returncode == 1
    assert 'site.toml:3: error: `line_breaks` must be "markdown"' in result.stderr
    assert "not `lines`" in result.stderr


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
