"""The typed model of a site: Site, Story, Chapter.

The loader builds it from files; later stages return new copies
(`dataclasses.replace`) with more filled in: which chapters are published,
their rendered HTML, their word counts. Nothing here is ever mutated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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


class Extra(Mapping[str, Any]):
    """The author's own fields, from `extra:` in the front matter, for a theme's templates (`story.extra.mood`).

    Immutable like the rest of the model, and so hashable, comparable and picklable: a mapping inside is an
    `Extra` too, and a list a tuple."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | None = None):
        self._items: dict[str, Any] = {str(k): _frozen(v) for k, v in (items or {}).items()}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._items.items()))
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        return (Extra, (self._items,))

    def __repr__(self) -> str:
        return f"Extra({self._items!r})"


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return Extra(value)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_frozen(item) for item in value)
    return value


NO_EXTRA = Extra()

_NUMBER_WORDS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {word: 10 * n for n, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_IN_WORDS = (rf"(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(list(_NUMBER_WORDS)[1:10])}))?"
             rf"|{'|'.join(sorted(_NUMBER_WORDS, key=len, reverse=True))}")
_SEPARATOR = r"[ \t]*[:.\-\u2013\u2014|][ \t]*"
# A title that starts with a chapter number: `Chapter 3`, `Chapter 3: The Letter`, `Ch. 3 - The Letter`,
# `chapter three.` (a number in words only before punctuation or the end, as in `Chapter Three: …`, so that a
# title like `Chapter Three Little Pigs` is not read as one; and not a number like `1.5` or `1-3`).
_NUMBERED = re.compile(rf"(?:chapter|chap\.?|ch\.?)[ \t]*#?[ \t]*"
                       rf"(?:(?P<digits>\d+)(?![.,\-]?\d)(?:{_SEPARATOR}|[ \t]+|$)"
                       rf"|(?P<words>{_IN_WORDS})(?:{_SEPARATOR}|$))", re.IGNORECASE)


def title_number(title: str) -> tuple[int, str] | None:
    """The chapter number a title starts with, and the rest of the title: `Chapter 3: The Letter` → (3, `The
    Letter`); `Chapter 3` → (3, ""); None for a title that does not start with one."""
    match = _NUMBERED.match(title)
    if match is None:
        return None
    if match["digits"] is not None:
        number = int(match["digits"])
    else:
        tens, _, ones = match["words"].lower().replace(" ", "-").partition("-")
        number = _TENS.get(tens, _NUMBER_WORDS.get(tens, 0)) + _NUMBER_WORDS.get(ones, 0)
    return number, title[match.end():].strip()


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
    extra: Extra = NO_EXTRA  # the author's own fields (`extra:`), for themes
    line_breaks: str = ""  # one of `config.LINE_BREAKS`, or "" for the story's
    body: str = ""
    body_line: int = 1  # line of the file where `body` starts
    has_text: bool = True  # whether `body` has any text (still known once the Markdown is let go of)
    aliases: tuple[str, ...] = ()  # the addresses it was published under before, oldest first (`aliases.py`)
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)  # front-matter key → line
    # Filled in by the Markdown stage:
    html: str = ""
    notes_before_html: str = ""
    notes_after_html: str = ""
    summary_html: str = ""
    words: int = 0

    @property
    def own_title(self) -> str:
        """The title without the chapter's own number, when it starts with it (`Chapter 3: The Letter` of
        chapter 3 → `The Letter`, `Chapter 3` → ""), so that the number is shown once; else the title."""
        if not self.title:
            return ""
        numbered = title_number(self.title)
        return numbered[1] if numbered is not None and numbered[0] == self.number else self.title

    @property
    def heading(self) -> str:
        """`Chapter 3: The Letter`, or `Chapter 3` for an untitled chapter. Every page, feed and book that
        names a chapter with its number takes this."""
        title = self.own_title
        return f"Chapter {self.number}: {title}" if title else f"Chapter {self.number}"

    @property
    def display_title(self) -> str:
        """The title beside the number in a table of contents: `The Letter`, or `Chapter 3` when untitled."""
        return self.own_title or f"Chapter {self.number}"

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
    line_breaks: str = "markdown"  # one of `config.LINE_BREAKS`: the default of the story's chapters
    notes_before: str = ""
    notes_after: str = ""
    language: str = "en"
    summary: str = ""
    summary_line: int = 1
    single_file: bool = False
    extra: Extra = NO_EXTRA  # the author's own fields (`extra:`), for themes
    # The files beside the chapters (the story's folder, or a one-shot's `<name>.assets/`) that may be published
    # as they are: as loaded, every one but Markdown, hidden files and backups; once the Markdown is rendered,
    # only those that a published text or the cover refers to (`assets.with_referenced_files`).
    assets: tuple[Asset, ...] = ()
    cover: str = ""  # the cover image's URL path from the site root (an `Asset.url`), or ""
    aliases: tuple[str, ...] = ()  # the story's old addresses (folders), oldest first (`aliases.py`)
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
    def chapters_to_come(self) -> int | None:
        """`chapters_planned` while it is more than the chapters posted, of a story that is not complete: the
        total to show. None when the total is not known, or no longer true (a story still going on with as
        many chapters as were planned, or more, has more than were planned)."""
        planned = self.chapters_planned
        return planned if planned is not None and planned > len(self.chapters) and not self.is_complete else None

    @property
    def chapter_count(self) -> str:
        """AO3's posted/expected: `3/10`, `3/?`, `3/3`; `4/?` for the fourth chapter of three planned, or the
        third of three, of a story that is not complete."""
        posted = len(self.chapters)
        if self.is_complete:
            return f"{posted}/{max(self.chapters_planned or posted, posted)}"
        total = self.chapters_to_come
        return f"{posted}/{total}" if total is not None else f"{posted}/?"

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
