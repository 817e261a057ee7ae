"""Incremental rebuilds while serving: only what a saved chapter touches, and the same bytes as a full build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import STORY, chapter, tree_bytes
from generator.build import build
from generator.config import BuildOptions
from generator.errors import ContentError
from generator.incremental import BuildSession

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
