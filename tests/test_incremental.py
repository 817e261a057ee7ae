"""Incremental rebuilds while serving: only what a saved chapter touches, and the same bytes as a full build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import STORY, chapter, tree_bytes
from generator import pages
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError
from generator.incremental import BuildSession
from generator.output import file_hash, previous_manifest

SITE = {
    "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
    "content/s/story.md": STORY,
    **{f"content/s/{n}.md": chapter(f"C{n}", f"2025-01-{n:02d}", body=f"Text {n}.") for n in range(1, 8)},
    "content/t/story.md": STORY.replace("A Story", "Other"),
    "content/t/1.md": chapter("Other one", body="Other text."),
}


def session_for(site: Path) -> tuple[BuildSession, Path]:
    out = site.parent / "served"
    session = BuildSession(site, BuildOptions(output=out, drafts=True))
    assert not session.build(None).up_to_date
    return session, out


def full_build(site: Path, tmp_path: Path) -> dict[str, bytes]:
    copy = tmp_path / "full"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns(".serialist-cache"))
    build(copy, BuildOptions(output=copy / "out", drafts=True, cache=False))
    return tree_bytes(copy / "out")


def test_chapter_edit_rewrites_only_what_it_touches(make_site, tmp_path):
    site = make_site(SITE)
    session, out = session_for(site)
    before = tree_bytes(out)
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*.html")}
    (site / "content/s/4.md").write_text(chapter("C4 renamed", "2025-01-04", body="New text 4."))
    result = session.build([site / "content/s/4.md"])
    after = tree_bytes(out)
    full = full_build(site, tmp_path)
    changed = {name for name in after if after[name] != before.get(name)}
    # The chapter, its neighbours (their prev/next titles), the story page, the whole work, the feeds.
    for name in ["s/4/index.html", "s/3/index.html", "s/5/index.html", "s/index.html", "s/all/index.html",
                 "s/feed.xml", "feed.xml"]:
        assert name in changed, name
        assert after[name] == full[name], name
    assert "t/1/index.html" not in changed and "s/1/index.html" not in changed
    assert out.joinpath("t/1/index.html").stat().st_mtime_ns == times[out / "t/1/index.html"]
    assert result.files_written == len(changed - {".serialist-manifest"})
    assert b"New text 4." in after["s/4/index.html"]


def test_structure_changes_fall_back_to_a_full_build(make_site, tmp_path):
    site = make_site(SITE)
    session, out = session_for(site)
    (site / "content/s/8.md").write_text(chapter("C8", "2025-01-08"))
    session.build([site / "content/s/8.md"])
    assert tree_bytes(out) == full_build(site, tmp_path)  # an added file: a full build
    (site / "content/s/2.md").write_text(chapter("C2", "2025-01-02", extra="slug: two\n"))
    session.build([site / "content/s/2.md"])
    assert tree_bytes(out) == full_build(site, tmp_path)
    (site / "content/s/story.md").write_text(STORY.replace("A summary.", "Changed summary."))
    session.build([site / "content/s/story.md"])
    assert tree_bytes(out) == full_build(site, tmp_path)


def test_errors_keep_the_served_site_and_recover(make_site, tmp_path):
    site = make_site(SITE)
    session, out = session_for(site)
    before = tree_bytes(out)
    (site / "content/s/3.md").write_text("---\ntitle: [broken\n---\nText\n")
    with pytest.raises(ContentError) as error:
        session.build([site / "content/s/3.md"])
    assert "3.md:2" in str(error.value)
    assert tree_bytes(out) == before
    (site / "content/s/3.md").write_text(chapter("C3", "2025-01-03", body="Fixed."))
    session.build([site / "content/s/3.md"])
    assert b"Fixed." in (out / "s/3/index.html").read_bytes()


def test_a_new_date_updates_the_sitemap(make_site, tmp_path):
    site = make_site(SITE)
    session, out = session_for(site)
    (site / "content/s/4.md").write_text(chapter("C4", "2025-01-04", extra="updated: 2025-06-01\n"))
    session.build([site / "content/s/4.md"])
    assert b"2025-06-01" in (out / "sitemap.xml").read_bytes()
    assert (out / "sitemap.xml").read_bytes() == full_build(site, tmp_path)["sitemap.xml"]


def changed_names(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    return {name for name in after if after[name] != before.get(name)}


def manifest_is_true(out: Path) -> bool:
    files = tree_bytes(out)
    del files[".serialist-manifest"]
    return previous_manifest(out) == {name: file_hash(data) for name, data in files.items()}


def differences(out: Path, site: Path, tmp_path: Path) -> set[str]:
    """The files of `out` that a full build of `site` makes otherwise (the manifest aside)."""
    now, full = tree_bytes(out), full_build(site, tmp_path)
    return {name for name in now.keys() | full.keys() if now.get(name) != full.get(name)} - {".serialist-manifest"}


LISTING_PAGES = ["s/index.html", "s/2/index.html", "s/4/index.html", "index.html", "s/feed.xml", "feed.xml"]


def test_a_text_only_edit_leaves_the_pages_that_list_the_chapter_for_after_the_reload(make_site, tmp_path):
    # feed_items = 2: chapter 3 of 7 is in no feed.
    site = make_site({**SITE, "site.toml": SITE["site.toml"] + "feed_items = 2\n"})
    session, out = session_for(site)
    before = tree_bytes(out)
    (site / "content/s/3.md").write_text(chapter("C3", "2025-01-03", body="Other 3."))  # as many words
    result = session.build([site / "content/s/3.md"])
    now = tree_bytes(out)
    # Before the reload: the chapter and the whole work; not even the manifest file.
    assert changed_names(before, now) == {"s/3/index.html", "s/all/index.html"}
    assert result.files_written == 2
    assert session.finish() == 0  # the rest, rendered again, is as it was
    after = tree_bytes(out)
    assert changed_names(before, after) == {"s/3/index.html", "s/all/index.html", ".serialist-manifest"}
    full = full_build(site, tmp_path)
    for name in ["s/3/index.html", "s/all/index.html", *LISTING_PAGES]:
        assert after[name] == full[name], name
    assert manifest_is_true(out)


def edit_before_the_reload(site: Path, tmp_path: Path, name: str, text: str,
                           redone: list[str]) -> tuple[BuildSession, Path, set[str]]:
    """Save `text` as `name` in a session: the files `redone` before the reload are as a full build makes them.
    Returns the session, its output and the names changed before the reload."""
    session, out = session_for(site)
    before = tree_bytes(out)
    (site / name).write_text(text)
    session.build([site / name])
    now = tree_bytes(out)
    full = full_build(site, tmp_path)
    for page in redone:
        assert page in changed_names(before, now), page
        assert now[page] == full[page], page
    return session, out, changed_names(before, now)


def test_a_new_word_count_redoes_the_listing_pages_before_the_reload(make_site, tmp_path):
    site = make_site({**SITE, "site.toml": SITE["site.toml"] + "feed_items = 2\n"})
    session, out, changed = edit_before_the_reload(
        site, tmp_path, "content/s/3.md", chapter("C3", "2025-01-03", body="Text 3 and more."),
        ["s/3/index.html", "s/all/index.html", "s/index.html", "s/2/index.html", "s/4/index.html", "index.html"])
    assert "s/feed.xml" not in changed
    # After the reload, without another: the story's other chapter pages and the tag pages (its word count).
    assert session.finish() == 0
    assert differences(out, site, tmp_path) == {"s/s.epub"}  # the book waits for a full build
    assert manifest_is_true(out)


def test_a_text_only_edit_of_a_chapter_in_the_feeds_redoes_them_before_the_reload(make_site, tmp_path):
    session, _, changed = edit_before_the_reload(
        make_site(SITE), tmp_path, "content/s/7.md", chapter("C7", "2025-01-07", body="Other 7."),
        ["s/7/index.html", "s/feed.xml", "feed.xml"])
    assert "s/index.html" not in changed
    assert session.finish() == 0


def test_a_theme_that_lists_chapter_text_gets_its_pages_after_the_reload(make_site, tmp_path):
    site = make_site({
        **SITE,
        "site.toml": SITE["site.toml"] + "feed_items = 2\ntheme = \"mine\"\n",
        # A table of contents with an excerpt of each chapter: the story page shows chapter text.
        "themes/mine/templates/story.html": '{% extends "default/story.html" %}{% block main %}'
                                            '{% for c in story.chapters %}{{ c.html | safe }}{% endfor %}'
                                            '{{ super() }}{% endblock %}',
    })
    session, out = session_for(site)
    before = tree_bytes(out)
    (site / "content/s/3.md").write_text(chapter("C3", "2025-01-03", body="Other 3."))
    session.build([site / "content/s/3.md"])
    assert b"Other 3." not in (out / "s/index.html").read_bytes()  # not yet
    assert session.finish() == 1
    after = tree_bytes(out)
    assert changed_names(before, after) == {"s/3/index.html", "s/all/index.html", "s/index.html",
                                            ".serialist-manifest"}
    assert after["s/index.html"] == full_build(site, tmp_path)["s/index.html"]
    assert manifest_is_true(out)


def test_chapters_moving_between_parts_of_the_whole_work(make_site, tmp_path, monkeypatch):
    # Parts of at most 4 words: chapters of 2 words make [1, 2] [3, 4] [5, 6] [7].
    monkeypatch.setattr(pages, "WORK_SPLIT_WORDS", 5)
    monkeypatch.setattr(pages, "WORK_PART_WORDS", 4)
    site = make_site(SITE)
    session, out = session_for(site)
    parts = sorted(name for name in tree_bytes(out) if name.startswith("s/all/"))
    assert len(parts) == 4
    (site / "content/s/1.md").write_text(chapter("C1", "2025-01-01", body="Text 1 more."))  # [1] [2, 3] …
    assert session.build([site / "content/s/1.md"]).files_written >= 4
    after, full = tree_bytes(out), full_build(site, tmp_path)
    for name in parts:
        assert after[name] == full[name], name
    (site / "content/s/6.md").write_text(chapter("C6", "2025-01-06", body="Text 6 more."))  # five parts
    session.build([site / "content/s/6.md"])
    session.finish()
    assert tree_bytes(out) == full_build(site, tmp_path)


def test_after_a_failed_full_build_the_next_save_builds_everything(make_site, tmp_path):
    site = make_site({**SITE, "site.toml": SITE["site.toml"] + "theme = \"mine\"\n",
                      "themes/mine/templates/chapter.html": '{% extends "default/chapter.html" %}'
                                                            '{% block main %}v1{{ super() }}{% endblock %}'})
    session, out = session_for(site)
    (site / "themes/mine/templates/chapter.html").write_text(
        '{% extends "default/chapter.html" %}{% block main %}v2{{ super() }}{% endblock %}')
    (site / "content/s/5.md").write_text("---\ntitle: [broken\n---\nText\n")
    with pytest.raises(ContentError):
        session.build(None)
    (site / "content/s/5.md").write_text(chapter("C5", "2025-01-05", body="Text 5."))
    session.build([site / "content/s/5.md"])
    assert all(b"v2" in (out / f"s/{n}/index.html").read_bytes() for n in range(1, 8))


def test_the_session_keeps_no_markdown_between_saves_and_still_knows_an_empty_chapter(make_site, tmp_path):
    """What the session keeps between saves holds no chapter's Markdown (a long serial's is tens of megabytes),
    before and after an incremental rebuild; a chapter without text is still reported on every rebuild."""
    site = make_site({**SITE, "content/s/7.md": chapter("C7", "2025-01-07", body="")})
    session, out = session_for(site)

    def kept() -> list[tuple[str, bool]]:
        assert session._snapshot is not None
        return [(c.body, c.has_text) for s in session._snapshot.everything.stories for c in s.chapters]

    assert kept() == [("", True)] * 6 + [("", False), ("", True)]
    (site / "content/s/4.md").write_text(chapter("C4", "2025-01-04", body="New text 4."))
    result = session.build([site / "content/s/4.md"])
    assert b"New text 4." in (out / "s/4/index.html").read_bytes()
    assert any("no text" in w.message and w.path.name == "7.md" for w in result.warnings), result.warnings
    assert kept() == [("", True)] * 6 + [("", False), ("", True)]
    (site / "content/s/4.md").write_text(chapter("C4", "2025-01-04", body=""))
    result = session.build([site / "content/s/4.md"])
    assert {w.path.name for w in result.warnings if "no text" in w.message} == {"4.md", "7.md"}
    session.finish()  # the pages left for after the reload
    assert differences(out, site, tmp_path) == {"s/s.epub"}


def test_after_the_reload_the_pages_showing_a_storys_totals_are_redone_until_another_save_comes(make_site, tmp_path):
    """Every chapter page shows the story's word count, and so do the parts of its whole work and its tag pages:
    after a save that changes it they are redone after the reload, a page at a time, and the work stops as
    soon as another change is pending, to go on after the next build."""
    site = make_site(SITE)
    session, out = session_for(site)
    (site / "content/s/4.md").write_text(chapter("C4", "2025-01-04", body="Text 4 and three more words."))
    session.build([site / "content/s/4.md"])
    words = b"<dt>Words:</dt><dd>%d</dd>"
    assert words % 14 in (out / "s/1/index.html").read_bytes()  # 7 chapters of 2 words: 18 now, not yet shown
    asked = []
    assert session.finish(lambda: asked.append(1) or True) == 0 and asked  # stopped before the first page
    assert words % 14 in (out / "s/1/index.html").read_bytes()
    (site / "content/s/6.md").write_text(chapter("C6", "2025-01-06", body="Text 6 and one more."))
    session.build([site / "content/s/6.md"])
    session.finish()
    assert differences(out, site, tmp_path) == {"s/s.epub"}
    assert words % 21 in (out / "s/1/index.html").read_bytes()
    assert manifest_is_true(out)
    session.build(None)  # a full build makes the book too
    assert differences(out, site, tmp_path) == set()


def test_after_a_build_the_session_gets_the_markdown_parser_ready_for_the_next_save(make_site, tmp_path):
    from generator.markdown import markdown

    site = make_site(SITE)
    session, _ = session_for(site)
    markdown.cache_clear()  # as after a build that found every text in the cache
    session.warm_up()
    assert markdown.cache_info().currsize == 1
