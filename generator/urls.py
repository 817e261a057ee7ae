"""Where every page lives, and links between pages.

Paths are relative to the output root. Links in pages are relative (so a site
works under any subpath and from disk) and name `index.html` explicitly;
feeds, the sitemap and canonical links use absolute URLs from `base_url` (`absolute_url`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from generator.model import Chapter, Story
from generator.taxonomy import name_slug

HOME = ""
STYLESHEET = "assets/style.css"
READER_SCRIPT = "assets/reader.js"
SITE_FEED = "feed.xml"
SITEMAP = "sitemap.xml"
NOT_FOUND = "404.html"
TAGS_INDEX = "tags/"
SERIES_INDEX = "series/"


def story_path(story: Story) -> str:
    return f"{story.slug}/"


def chapter_path(story: Story, chapter: Chapter) -> str:
    return f"{story.slug}/{chapter.slug}/"


def work_path(story: Story) -> str:
    return f"{story.slug}/all/"


def work_part_path(story: Story, part: int) -> str:
    """Part 1 of a very long whole-work page is the whole-work page itself."""
    return work_path(story) if part == 1 else f"{story.slug}/all/{part}/"


def story_feed_path(story: Story) -> str:
    return f"{story.slug}/feed.xml"


def epub_path(story: Story) -> str:
    """The story's EPUB download."""
    return f"{story.slug}/{story.slug}.epub"


def tag_path(kind: str, name: str) -> str:
    """The page of tag `name` of `kind` (`fandoms`, `freeform`, …); names that slugify alike share it."""
    return f"tags/{kind}/{name_slug(name)}/"


def series_path(name: str) -> str:
    return f"series/{name_slug(name)}/"


def chapter_anchor(chapter: Chapter) -> str:
    return f"chapter-{chapter.slug}"


def absolute_url(base_url: str, path: str) -> str:
    """`path` under `base_url`, as a URL: a non-ASCII story, chapter or tag name (or a space) is
    percent-encoded in UTF-8, as feeds, sitemaps and canonical links need (a browser does it for links in
    a page). A `%` is taken for an escape already made: the paths of the stories' files come escaped, and
    names of stories, chapters and tags have none (`slugify`)."""
    return base_url + quote(path, safe="/%")


def file_of(path: str) -> str:
    """The file a page path is written to: folders get `index.html`."""
    return path + "index.html" if path == "" or path.endswith("/") else path


@dataclass(frozen=True, slots=True)
class Linker:
    """Links from one page: relative to where the page is, absolute from `base_url`."""

    page: str  # the page's own path, like `story/chapter/`
    base_url: str  # with a trailing slash, or "" when unknown

    @property
    def root(self) -> str:
        return "../" * file_of(self.page).count("/")

    def url(self, target: str) -> str:
        return self.root + file_of(target)

    def absolute(self, target: str) -> str:
        return absolute_url(self.base_url, target) if self.base_url else ""
