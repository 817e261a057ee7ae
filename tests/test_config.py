"""site.toml settings that change what is built: timezone, feed_items, base_url, cname, theme."""

from __future__ import annotations

from datetime import datetime, timezone

import feedparser

from conftest import STORY, chapter, run_cli, tree_bytes
from generator.build import build
from generator.config import BuildOptions


def test_timezone_applies_to_dates_without_one(make_site):
    site = make_site({
        "site.toml": 'title = "T"\nbase_url = "https://example.org/"\ntimezone = "America/New_York"\n',
        "content/s/story.md": STORY,
        "content/s/1.md": chapter("One", "2025-03-02 18:30"),
        "content/s/2.md": chapter("Two", "2026-01-01 00:30", body="LATE-TEXT"),
    })
    # 00:30 in New York on 1 January is 05:30 UTC: not yet at 05:00 UTC, published at 06:00 UTC.
    build(site, BuildOptions(output=site / "output", now=datetime(2026, 1, 1, 5, tzinfo=timezone.utc)))
    feed = (site / "output/s/feed.xml").read_text()
    assert "Sun, 02 Mar 2025 18:30:00 -0500" in feed
    assert not (site / "output/s/2").exists()
    build(site, BuildOptions(output=site / "output", now=datetime(2026, 1, 1, 6, tzinfo=timezone.utc)))
    assert b"LATE-TEXT" in (site / "output/s/2/index.html").read_bytes()


def test_unknown_timezone_is_an_error_with_its_line(make_site):
    site = make_site({"site.toml": 'title = "T"\ntimezone = "Mars/Olympus"\n', "content/s/story.md": STORY,
                      "content/s/1.md": chapter()})
    result = run_cli("build", site)
    assert result.returncode == 1 and "site.toml:2: error: unknown timezone `Mars/Olympus`" in result.stderr


def test_feed_items_limits_every_feed(make_site):
    files = {"site.toml": 'title = "T"\nbase_url = "https://example.org/"\nfeed_items = 3\n',
             "content/s/story.md": STORY}
    files.update({f"content/s/{n}.md": chapter(f"C{n}", f"2025-01-{n:02d}") for n in range(1, 8)})
    site = make_site(files)
    run_cli("build", site, check=True)
    for name in ("feed.xml", "s/feed.xml"):
        feed = feedparser.parse((site / "output" / name).read_bytes())
        assert [e.title for e in feed.entries] == ["A Story - Chapter 7: C7", "A Story - Chapter 6: C6",
                                                   "A Story - Chapter 5: C5"]


def test_base_url_with_or_without_slash_and_cname(make_site):
    files = {"content/s/story.md": STORY, "content/s/1.md": chapter()}
    one = make_site({**files, "site.toml": 'base_url = "https://u.github.io/repo"\ncname = "fiction.example.org"\n'},
                    "one")
    two = make_site({**files, "site.toml": 'base_url = "https://u.github.io/repo/"\ncname = "fiction.example.org"\n'},
                    "two")
    run_cli("build", one, check=True)
    run_cli("build", two, check=True)
    assert tree_bytes(one / "output") == tree_bytes(two / "output")
    assert (one / "output/CNAME").read_text() == "fiction.example.org\n"
    assert b'href="https://u.github.io/repo/s/1/"' in (one / "output/s/1/index.html").read_bytes()
