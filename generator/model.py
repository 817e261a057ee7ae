"""The typed model of a site: Site, Story, Chapter.

The loader builds it from files; later stages return new copies
(`dataclasses.replace`) with more filled in: which chapters are published,
their rendered HTML, their word counts. Nothing here is ever mutated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from generator.config import SiteConfig

RATINGS = ("Not Rated", "General Audiences", "Teen And Up Audiences", "Mature", "Explicit")
RATING_CODES = {  # short codes for compact badges, as AO3's symbols
    "Not Rated": "NR",
    "General Audiences": "G",
    "Teen And Up Audiences": "T",
    "Mature": "M",
    "Explicit": "E",
}
STATUSES = ("ongoing", "complete", "hiatus", "abandoned")
STATUS_LABELS = {"ongoing": "In progress", "complete": "Complete", "hiatus": "On hiatus", "abandoned": "Discontinued"}
ARCHIVE_WARNINGS = (
    "Creator Chose Not To Use Archive Warnings",
    "No Archive Warnings Apply",
    "Graphic Depictions Of Violence",
    "Major Character Death",
    "Rape/Non-Con",
    "Underage Sex",
)
# AO3 stores the first one under a shorter name; authors copy either.
ARCHIVE_WARNING_ALIASES = {"choose not to use archive warnings": "Creator Chose Not To Use Archive Warnings"}


def archive_warning(text: str) -> str | None:
    """The canonical AO3 archive warning `text` names (any case), or None for a free warning."""
    key = text.strip().casefold()
    if key in ARCHIVE_WARNING_ALIASES:
        return ARCHIVE_WARNING_ALIASES[key]
    for warning in ARCHIVE_WARNINGS:
        if warning.casefold() == key:
            return warning
    return None


@dataclass(frozen=True, slots=True)
class Chapter:
    source: Path
    slug: str
    number: int
    title: str | None
    date: datetime | None
    updated: datetime | None = None
    summary: str = ""
    notes_before: str = ""
    notes_after: str = ""
    warnings: tuple[str, ...] = ()
    draft: bool = False
    body: str = ""
    body_line: int = 1  # line of the file where `body` starts
    has_text: bool = True  # whether `body` has any text (still known once the Markdown is let go of)
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)  # front-matter key → line
    # Filled in by the Markdown stage:
    html: str = ""
    notes_before_html: str = ""
    notes_after_html: str = ""
    summary_html: str = ""
    words: int = 0

    @property
    def heading(self) -> str:
        """`Chapter 3: The Letter`, or `Chapter 3` for an untitled chapter."""
        return f"Chapter {self.number}: {self.title}" if self.title else f"Chapter {self.number}"

    @property
    def display_title(self) -> str:
        return self.title or f"Chapter {self.number}"

    @property
    def last_changed(self) -> datetime | None:
        return self.updated or self.date


@dataclass(frozen=True, slots=True)
class Asset:
    """A file beside the chapters (an image, a cover, …) or of the site's `static/` folder, published as it is."""

    source: Path  # the file under content/ (or static/)
    path: str  # where it is published, from the output root: `salt-and-signal/images/map.png`

    @property
    def url(self) -> str:
        """`path` as a URL path, percent-encoded: `salt-and-signal/images/old%20map.png`."""
        return quote(self.path, safe="/")


@dataclass(frozen=True, slots=True)
class Story:
    source: Path  # story.md, or the one-shot's single file
    slug: str
    title: str
    author: str
    rating: str = "Not Rated"
    warnings: tuple[str, ...] = ()
    fandoms: tuple[str, ...] = ()
    relationships: tuple[str, ...] = ()
    characters: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    series: str = ""  # the name of the series the story is part of
    series_part: int | None = None  # its part number; None: by first publication date
    status: str = "ongoing"
    chapters_planned: int | None = None
    notes_before: str = ""
    notes_after: str = ""
    language: str = "en"
    summary: str = ""
    summary_line: int = 1
    single_file: bool = False
    # The files beside the chapters (the story's folder, or a one-shot's `<name>.assets/`) that may be published
    # as they are: as loaded, every one but Markdown, hidden files and backups; once the Markdown is rendered,
    # only those that a published text or the cover refers to (`assets.with_referenced_files`).
    assets: tuple[Asset, ...] = ()
    cover: str = ""  # the cover image's URL path from the site root (an `Asset.url`), or ""
    chapters: tuple[Chapter, ...] = ()  # published (visible) chapters once selected
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    # Filled in by the selection stage: the next chapter not yet published.
    next_scheduled: datetime | None = None
    next_scheduled_number: int | None = None
    # Filled in by the Markdown stage:
    summary_html: str = ""
    notes_before_html: str = ""
    notes_after_html: str = ""

    @property
    def is_complete(self) -> bool:
        return self.status == "complete"

    @property
    def cover_asset(self) -> Asset | None:
        """The file of the cover image, when the story has one."""
        return next((a for a in self.assets if a.url == self.cover), None) if self.cover else None

    # Totals over the chapters, computed once per (immutable) story: pages ask for them again and again.
    _memo: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False, hash=False)

    def _total(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]

    @property
    def words(self) -> int:
        return self._total("words", lambda: sum(c.words for c in self.chapters))

    @property
    def chapter_count(self) -> str:
        """AO3's posted/expected: `3/10`, `3/?`, `3/3`."""
        posted = len(self.chapters)
        if self.chapters_planned is not None:
            return f"{posted}/{max(self.chapters_planned, posted) if self.is_complete else self.chapters_planned}"
        return f"{posted}/{posted}" if self.is_complete else f"{posted}/?"

    @property
    def published(self) -> datetime | None:
        return self._total("published", lambda: min((c.date for c in self.chapters if c.date), default=None))

    @property
    def updated(self) -> datetime | None:
        return self._total("updated", lambda: max((c.last_changed for c in self.chapters if c.last_changed),
                                                  default=None))

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def rating_code(self) -> str:
        return RATING_CODES[self.rating]

    @property
    def archive_warnings(self) -> tuple[str, ...]:
        return tuple(w for w in (archive_warning(x) for x in self.warnings) if w)

    @property
    def content_warnings(self) -> tuple[str, ...]:
        return tuple(w for w in self.warnings if not archive_warning(w))

    @property
    def next_number(self) -> int:
        return (self.chapters[-1].number + 1) if self.chapters else 1


@dataclass(frozen=True, slots=True)
class Site:
    config: SiteConfig
    stories: tuple[Story, ...] = ()
    static: tuple[Asset, ...] = ()  # the files of the site's `static/` folder, published as they are

    @property
    def words(self) -> int:
        return sum(s.words for s in self.stories)

    @property
    def chapter_total(self) -> int:
        return sum(len(s.chapters) for s in self.stories)
