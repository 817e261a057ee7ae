"""RSS 2.0 feeds (site-wide and per story) and the sitemap.

Items carry the full chapter with its notes, links made absolute from
`base_url`. A chapter's guid is built from the story's and chapter's URL names
(the first ones, when `aliases:` name older ones), so it survives a new title, a new
domain, and a new name given with the old one in `aliases:`. Nothing dated after `now` is listed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from functools import partial
from urllib.parse import urljoin

from generator import urls
from generator.aliases import first_address
from generator.model import Chapter, Site, Story
from generator.output import LazyFile, OutputFile
from generator.pages import linked_chapter
from generator.taxonomy import build_taxonomy
from generator.xmlchars import xml_text

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
ET.register_namespace("atom", ATOM)
ET.register_namespace("dc", DC)

_LINK_ATTR = re.compile(r'(\s(?:href|src)=")([^"]*)(")')


def absolutize(html: str, page_url: str) -> str:
    """Make every `href`/`src` in `html` absolute, as seen from `page_url`."""
    return _LINK_ATTR.sub(lambda m: m.group(1) + urljoin(page_url, m.group(2)) + m.group(3), html)


def guid(story: Story, chapter: Chapter) -> str:
    """`serialist:<story>/<chapter>`, of the address the chapter was first published under (`first_address`):
    its address now, unless its `aliases:` or its story's name an older one."""
    return "serialist:" + first_address(story, chapter).removesuffix("/")


def item_html(story: Story, chapter: Chapter, base_url: str) -> str:
    chapter = linked_chapter(chapter, partial(urls.absolute_url, base_url))
    parts = []
    if chapter.notes_before_html:
        parts.append(f"<h3>Notes</h3>\n{chapter.notes_before_html}")
    parts.append(chapter.html)
    if chapter.notes_after_html:
        parts.append(f"<h3>End notes</h3>\n{chapter.notes_after_html}")
    return absolutize("\n".join(parts), urls.absolute_url(base_url, urls.chapter_path(story, chapter)))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_datetime(moment: datetime) -> str:
    """An RFC 822 date, as `email.utils.format_datetime` gives it (which costs the build process milliseconds to
    import: the `email` package): `Tue, 03 Mar 2026 09:30:00 +0000`, and `-0000` for a time with no zone."""
    zone = moment.strftime("%z") if moment.tzinfo is not None else "-0000"
    return (f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year:04d} "
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {zone}")


def _text(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    """Every text of a feed or the sitemap goes in here: without the characters XML does not allow."""
    element = ET.SubElement(parent, tag, attrib)
    element.text = xml_text(text)
    return element


def _rss(title: str, link: str, self_url: str, description: str, language: str,
         items: list[tuple[Story, Chapter]], base_url: str) -> bytes:
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", title)
    _text(channel, "link", link)
    _text(channel, "description", description or title)
    _text(channel, "language", language)
    ET.SubElement(channel, f"{{{ATOM}}}link", {"href": self_url, "rel": "self", "type": "application/rss+xml"})
    _text(channel, "generator", "Serialist")
    if items:
        _text(channel, "lastBuildDate", format_datetime(max(c.date for _, c in items if c.date)))
    for story, chapter in items:
        item = ET.SubElement(channel, "item")
        _text(item, "title", story.title if story.single_file else f"{story.title} - {chapter.heading}")
        _text(item, "link", urls.absolute_url(base_url, urls.chapter_path(story, chapter)))
        _text(item, "guid", guid(story, chapter), isPermaLink="false")
        if chapter.date:
            _text(item, "pubDate", format_datetime(chapter.date))
        _text(item, f"{{{DC}}}creator", story.author)
        _text(item, "category", story.title)
        _text(item, "description", item_html(story, chapter, base_url))
    ET.indent(rss)
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True) + b"\n"


def _newest(items: list[tuple[Story, Chapter]], now: datetime, limit: int) -> list[tuple[Story, Chapter]]:
    dated = [(s, c) for s, c in items if c.date and c.date <= now]
    dated.sort(key=lambda sc: (sc[1].date, sc[0].slug, sc[1].number), reverse=True)
    return dated[:limit]


def feed_files(site: Site, now: datetime, stories: frozenset[str] | None = None) -> list[LazyFile]:
    """The site's feed and each story's (only those named in `stories`, when given), each made when it is
    written (a feed holds whole chapters: with many stories, that is work for the page workers too)."""
    config = site.config
    base = config.base_url
    if not base:
        return []
    limit = config.feed_items
    everything = [(s, c) for s in site.stories for c in s.chapters]
    site_items = _newest(everything, now, limit)
    files = [LazyFile(urls.SITE_FEED, partial(_rss, config.title, base, urls.absolute_url(base, urls.SITE_FEED),
                                              config.description, config.language, site_items, base), len(site_items))]
    for story in site.stories:
        if stories is not None and story.slug not in stories:
            continue
        items = _newest([(story, c) for c in story.chapters], now, limit)
        files.append(LazyFile(urls.story_feed_path(story), partial(
            _rss, f"{story.title} - {config.title}", urls.absolute_url(base, urls.story_path(story)),
            urls.absolute_url(base, urls.story_feed_path(story)), f"New chapters of {story.title} by {story.author}",
            story.language, items, base), len(items)))
    return files


def render_feeds(site: Site, now: datetime, stories: frozenset[str] | None = None) -> list[OutputFile]:
    """`feed_files`, made now."""
    return [OutputFile(file.path, file.make()) for file in feed_files(site, now, stories)]


def render_sitemap(site: Site) -> list[OutputFile]:
    base = site.config.base_url
    if not base:
        return []
    root = ET.Element("urlset", {"xmlns": SITEMAP_NS})

    def add(path: str, modified: datetime | None) -> None:
        url = ET.SubElement(root, "url")
        _text(url, "loc", urls.absolute_url(base, path))
        if modified:
            _text(url, "lastmod", modified.date().isoformat())

    newest = max((s.updated for s in site.stories if s.updated), default=None)
    add(urls.HOME, newest)
    for story in site.stories:
        add(urls.story_path(story), story.updated)
        add(urls.work_path(story), story.updated)
        for chapter in story.chapters:
            add(urls.chapter_path(story, chapter), chapter.last_changed)
    taxonomy = build_taxonomy(site)
    add(urls.TAGS_INDEX, newest)
    for tag in taxonomy.tags:
        add(urls.tag_path(tag.kind.key, tag.name), tag.updated)
    if taxonomy.series:
        add(urls.SERIES_INDEX, max((s.updated for s in taxonomy.series if s.updated), default=None))
        for series in taxonomy.series:
            add(urls.series_path(series.name), series.updated)
    ET.indent(root)
    return [OutputFile(urls.SITEMAP, ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")]
