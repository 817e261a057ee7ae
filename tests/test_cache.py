"""Builds with the cache and the up-to-date shortcut give exactly what a cold build gives."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import generator
from conftest import NOW, STORY, chapter, tree_bytes
from generator.build import build
from generator.cache import CACHE_DIR
from generator.config import BuildOptions

SITE = {
    "site.toml": 'title = "T"\nbase_url = "https://example.org/"\n',
    "content/s/story.md": STORY,
    "content/s/1.md": chapter("One", body="First [next](2.md).[^1]\n\n[^1]: A note."),
    "content/s/2.md": chapter("Two", "2025-01-02", body="Second."),
    "content/s/3.md": chapter("Three", "2025-01-03", body='Third, after [the second][two] and <a href="2.md">'
                              'again</a>.[^1]\n\n[two]: 2.md\n[^1]: A footnote is not a link.'),
    "content/t.md": "---\ntitle: One-shot\ndate: 2025-02-01\n---\nA one-shot.\n",
}


def warm_then_cold(site: Path, tmp_path: Path) -> tuple[dict[str, bytes], dict[str, bytes], object]:
    """Build with the cache (after earlier builds), then the same site cold elsewhere; both trees."""
    warm = build(site, BuildOptions(output=site / "output", now=NOW))
    cold_site = tmp_path / "cold"
    shutil.rmtree(cold_site, ignore_errors=True)
    shutil.copytree(site, cold_site, ignore=shutil.ignore_patterns("output", CACHE_DIR))
    build(cold_site, BuildOptions(output=cold_site / "output", now=NOW, cache=False))
    return tree_bytes(site / "output"), tree_bytes(cold_site / "output"), warm


CHANGES = {
    "chapter-text": lambda s: (s / "content/s/2.md").write_text(chapter("Two", "2025-01-02", body="Changed.")),
    "neighbour-title": lambda s: (s / "content/s/2.md").write_text(chapter("Renamed", "2025-01-02", body="Second.")),
    "story-md": lambda s: (s / "content/s/story.md").write_text(STORY.replace("A summary.", "New summary.")),
    "site-toml": lambda s: (s / "site.toml").write_text('title = "New"\nbase_url = "https://example.org/x/"\n'),
    "link-target-renamed": lambda s: (s / "content/s/2.md").write_text(
        chapter("Two", "2025-01-02", body="Second.", extra="slug: second\n")),
    "chapter-deleted": lambda s: (s / "content/s/3.md").unlink(),
    "chapter-added": lambda s: (s / "content/s/4.md").write_text(chapter("Four", "2025-01-04")),
    "theme-file": lambda s: _site_theme(s, "<!-- changed -->"),
}


def _site_theme(site: Path, marker: str) -> None:
    theme = site / "themes/mine/templates"
    theme.mkdir(parents=True, exist_ok=True)
    (site / "site.toml").write_text('title = "T"\nbase_url = "https://example.org/"\ntheme = "mine"\n')
    (theme / "home.html").write_text('{% extends "default/home.html" %}{% block main %}' + marker +
                                     '{{ super() }}{% endblock %}')


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_gives_the_cold_build(make_site, tmp_path, change):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    build(site, BuildOptions(output=site / "output", now=NOW))
    CHANGES[change](site)
    warm, cold, _ = warm_then_cold(site, tmp_path)
    assert warm == cold
    if change == "chapter-deleted":
        assert "s/3/index.html" not in warm


def test_theme_template_edit_is_picked_up(make_site, tmp_path):
    site = make_site(SITE)
    _site_theme(site, "<!-- first -->")
    build(site, BuildOptions(output=site / "output", now=NOW))
    (site / "themes/mine/templates/home.html").write_text(
        '{% extends "default/home.html" %}{% block main %}<!-- second -->{{ super() }}{% endblock %}')
    warm, cold, _ = warm_then_cold(site, tmp_path)
    assert warm == cold and b"<!-- second -->" in warm["index.html"]


def test_new_version_invalidates_the_cache(make_site, tmp_path, monkeypatch):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    entries = cache_keys(site)
    assert entries
    monkeypatch.setattr(generator, "__version__", "99.0.0")
    monkeypatch.setattr("generator.cache.__version__", "99.0.0")
    result = build(site, BuildOptions(output=site / "output", now=NOW))
    assert not result.up_to_date
    assert cache_keys(site) > entries  # new keys were written


def cache_keys(site: Path) -> set[str]:
    keys = set()
    for path in (site / CACHE_DIR).glob("*.sqlite"):
        with closing(sqlite3.connect(path)) as db:
            keys.update(f"{path.stem}/{key}" for (key,) in db.execute("SELECT key FROM entries"))
    return keys


def test_no_change_rebuild_is_up_to_date_and_touches_nothing(make_site):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    stats = {p: p.stat().st_mtime_ns for p in (site / "output").rglob("*")}
    result = build(site, BuildOptions(output=site / "output", now=NOW))
    assert result.up_to_date and result.files_written == 0
    assert {p: p.stat().st_mtime_ns for p in (site / "output").rglob("*")} == stats


def test_unchanged_files_keep_their_times_after_an_edit(make_site):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    before = (site / "output/t/chapter-1/index.html").stat().st_mtime_ns
    (site / "content/s/2.md").write_text(chapter("Two", "2025-01-02", body="Changed."))
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert (site / "output/t/chapter-1/index.html").stat().st_mtime_ns == before
    assert b"Changed." in (site / "output/s/2/index.html").read_bytes()


def test_scheduled_chapter_coming_due_defeats_the_shortcut(make_site):
    from datetime import timedelta

    site = make_site({**SITE, "content/s/4.md": chapter("Four", "2026-01-05", body="LATER-TEXT")})
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert not (site / "output/s/4").exists()
    result = build(site, BuildOptions(output=site / "output", now=NOW + timedelta(days=10)))
    assert not result.up_to_date
    assert b"LATER-TEXT" in (site / "output/s/4/index.html").read_bytes()


def test_deleted_output_file_defeats_the_shortcut(make_site):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    shutil.rmtree(site / "output")
    result = build(site, BuildOptions(output=site / "output", now=NOW))
    assert not result.up_to_date and (site / "output/index.html").is_file()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_cache_files_are_ignored_with_a_warning(make_site, tmp_path, damage):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    damaged = list((site / CACHE_DIR).glob("*.sqlite"))
    assert "markdown.sqlite" in {path.name for path in damaged}
    for path in damaged:
        if path.is_file():
            data = path.read_bytes()
            path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00\xffnot marshal",
                              "empty": b""}[damage])
    for state in (site / CACHE_DIR).glob("state-*.json"):
        state.write_text("{not json")
    warm, cold, result = warm_then_cold(site, tmp_path)
    assert warm == cold
    assert any("damaged cache file" in w.message for w in result.warnings)


def test_builds_elsewhere_do_not_spoil_the_shortcut(make_site, tmp_path):
    site = make_site(SITE)
    build(site, BuildOptions(output=site / "output", now=NOW))
    build(site, BuildOptions(output=tmp_path / "served", now=NOW, drafts=True))  # as `serve` does
    assert build(site, BuildOptions(output=site / "output", now=NOW)).up_to_date


@pytest.mark.parametrize(("text", "links"), [
    ("Plain prose.[^1]\n\n[^1]: A footnote.", False),
    ("An [inline](2.md) link.", True),
    ("An ![image](a.png).", True),
    ("A [reference][r].\n\n[r]: 2.md", True),
    ("> [r]: 2.md", True),
    ('Raw <a HREF="2.md">HTML</a>.', True),
    ('Raw <img src="a.png">.', True),
])
def test_texts_that_may_link_are_keyed_on_the_link_targets(text, links):
    from generator.markdown import may_link

    assert may_link(text) is links


def test_a_forked_process_uses_a_connection_of_its_own(tmp_path):
    """A worker process forked from a build reads and writes the SQLite cache through a connection of its own
    (one must not cross a fork), writing what it put when it flushes; the build's connection goes on working."""
    import os

    from generator.cache import Cache

    cache = Cache.for_site(tmp_path, "markdown")
    cache.put("kept", "by the build")
    cache.flush()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        found = cache.get("kept")
        cache.put("from a worker", 1)
        cache.flush()
        inherited = cache._db  # the build's connection: never used here
        cache.close()
        os.write(write, repr((found, inherited is not None)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 64) == b"('by the build', True)"
    cache.put("after", 2)  # the build's own connection still works
    assert cache.get("kept") == "by the build" and cache.get("from a worker") == 1 and cache.get("after") == 2
    cache.close()
    assert Cache.for_site(tmp_path, "markdown").get("after") == 2


def test_the_old_cache_folders_are_removed(make_site):
    """A cache of one file per entry, from before the databases, is deleted rather than left to lie."""
    site = make_site(SITE)
    old = site / CACHE_DIR / "markdown" / "ab"
    old.mkdir(parents=True)
    (old / "cdef").write_bytes(b"an old entry")
    build(site, BuildOptions(output=site / "output", now=NOW))
    assert not (site / CACHE_DIR / "markdown").exists() and (site / CACHE_DIR / "markdown.sqlite").is_file()


def test_many_entries_are_looked_up_at_once(tmp_path, monkeypatch):
    """`get_many` finds what `get` finds, for more keys than one query takes; a damaged entry is left out with
    a warning, and a key asked twice or never put is no trouble."""
    import sqlite3

    from generator import cache as cache_module
    from generator.cache import Cache

    monkeypatch.setattr(cache_module, "QUERY_KEYS", 7)
    cache = Cache.for_site(tmp_path, "markdown")
    for n in range(30):
        cache.put(f"k{n}", ("html", n))
    cache.close()
    with sqlite3.connect(tmp_path / CACHE_DIR / "markdown.sqlite") as db:
        db.execute("UPDATE entries SET value = ? WHERE key = 'k5'", (b"\x00\xffnot marshal",))
    cache = Cache.for_site(tmp_path, "markdown")
    warnings: list[str] = []
    keys = [f"k{n}" for n in range(30)] + ["k3", "never put"]
    found = cache.get_many(keys, warnings)
    assert found == {f"k{n}": ("html", n) for n in range(30) if n != 5}
    assert found == {key: cache.get(key) for key in keys if cache.get(key) is not None}
    assert len(warnings) == 1 and "damaged entry" in warnings[0]
    assert Cache.for_site(tmp_path, "other", enabled=False).get_many(keys) == {}


def test_many_entries_are_not_held_twice(tmp_path):
    """A long serial's cached HTML is a hundred megabytes: `get_many` reads a row at a time, so at its
    peak it holds the values and one row, not every row besides."""
    import tracemalloc

    from generator.cache import Cache

    cache = Cache.for_site(tmp_path, "markdown")
    for n in range(40):
        cache.put(f"k{n}", ("x" * 250_000, n))  # 10 MB in all
    cache.close()
    cache = Cache.for_site(tmp_path, "markdown")
    cache.get("k0")  # the database opened
    tracemalloc.start()
    try:
        found = cache.get_many([f"k{n}" for n in range(40)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 40 and peak < 13_000_000, peak
