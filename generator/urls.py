"""Where every page lives, and links between pages.

Paths are relative to the output root. Links in pages are relative (so a site
works under any subpath and from disk) and name `index.html` explicitly;
feeds, the sitemap and canonical links use absolute URLs from `base_url`.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.model import Chapter, Story

HOME = ""
STYLESHEET = "assets/style.css"
SITE_FEED = "feed.xml"
SITEMAP = "sitemap.xml"
NOT_FOUND = "404.html"


def story_path(story: Story) -> str:
    return f"{story.slug}/"


def chapter_path(story: Story, chapter: Chapter) -> str:
    return f"{story.slug}/{chapter.slug}/"


def work_path(story: Story) -> str:
    return f"{story.slug}/all/"


def story_feed_path(story: Story) -> str:
    return f"{story.slug}/feed.xml"


def chapter_anchor(chapter: Chapter) -> str:
    return f"chapter-{chapter.slug}"


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
        return self.base_url + target if self.base_url else ""
