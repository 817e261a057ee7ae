"""Tags and series: which published stories carry each tag, and the parts of each series.

Built in one pass over the (already published-only) site, so tag and series
pages can never list a draft or a scheduled story. A tag's page is found from
its text alone (`name_slug`), so templates can link every tag without the
index: tag texts that slugify alike share one page, shown under the first
spelling alphabetically. The series rules that span files (duplicate part
numbers, `series_part` without `series`) are checked by `check_series`, run
by the validate stage on every story, published or not.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from generator.errors import ProblemLog, display_path
from generator.load import slugify
from generator.model import RATINGS, Site, Story, archive_warning

# A slug longer than this (in UTF-8 bytes) is cut and given a hash, so a long tag is still a valid file name.
MAX_SLUG_BYTES = 80


def _hash(text: str) -> str:
    return hashlib.sha1(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()[:8]


@lru_cache(maxsize=8192)  # every page links the tags of its stories: the same few texts, many times
def name_slug(text: str) -> str:
    """The URL segment of a tag or series name: `slugify`, or a short hash when that is empty or too long."""
    slug = slugify(text)
    if not slug:
        return "tag-" + _hash(text)
    if len(slug.encode("utf-8")) > MAX_SLUG_BYTES:
        cut = slug.encode("utf-8")[:MAX_SLUG_BYTES - 9].decode("utf-8", "ignore").rstrip("-_")
        return f"{cut}-{_hash(text)}"
    return slug


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of tag, as AO3 groups them."""

    key: str  # the URL folder: tags/<key>/<slug>/
    label: str  # plural, the index heading
    singular: str


KINDS = (
    Kind("ratings", "Ratings", "Rating"),
    Kind("warnings", "Warnings", "Warning"),
    Kind("fandoms", "Fandoms", "Fandom"),
    Kind("relationships", "Relationships", "Relationship"),
    Kind("characters", "Characters", "Character"),
    Kind("freeform", "Additional Tags", "Additional Tag"),
)
KIND_BY_KEY = {kind.key: kind for kind in KINDS}


def story_tags(story: Story, kind: str) -> tuple[str, ...]:
    """The texts of one kind of tag on a story (archive warnings under their canonical name)."""
    if kind == "ratings":
        return (story.rating,)
    if kind == "warnings":
        return tuple(dict.fromkeys(archive_warning(w) or w for w in story.warnings))
    if kind == "freeform":
        return story.tags
    return getattr(story, kind)


def _display_name(names: list[str]) -> str:
    return min(names, key=lambda n: (n.casefold(), n))


@dataclass(frozen=True, slots=True)
class Tag:
    kind: Kind
    slug: str
    name: str  # the spelling shown: the first alphabetically
    names: tuple[str, ...]  # every spelling that leads here, `name` first
    stories: tuple[Story, ...]  # newest update first, as on the home page

    @property
    def other_names(self) -> tuple[str, ...]:
        return self.names[1:]

    @property
    def updated(self) -> datetime | None:
        return max((s.updated for s in self.stories if s.updated), default=None)


@dataclass(frozen=True, slots=True)
class SeriesPart:
    """One published story's place in its series."""

    series: str  # the series' display name
    slug: str  # the series' URL segment
    number: int
    story: Story
    prev: Story | None
    next: Story | None


@dataclass(frozen=True, slots=True)
class Series:
    slug: str
    name: str
    parts: tuple[SeriesPart, ...]

    @property
    def stories(self) -> tuple[Story, ...]:
        return tuple(p.story for p in self.parts)

    @property
    def words(self) -> int:
        return sum(p.story.words for p in self.parts)

    @property
    def published(self) -> datetime | None:
        return min((s.published for s in self.stories if s.published), default=None)

    @property
    def updated(self) -> datetime | None:
        return max((s.updated for s in self.stories if s.updated), default=None)

    @property
    def is_complete(self) -> bool:
        return all(s.is_complete for s in self.stories)


@dataclass(frozen=True, slots=True)
class Taxonomy:
    groups: tuple[tuple[Kind, tuple[Tag, ...]], ...]  # every kind with at least one tag, in KINDS order
    series: tuple[Series, ...]  # by name
    parts: dict[str, SeriesPart] = field(default_factory=dict)  # story slug → its part

    @property
    def tags(self) -> tuple[Tag, ...]:
        return tuple(tag for _, tags in self.groups for tag in tags)

    def part_of(self, story: Story) -> SeriesPart | None:
        return self.parts.get(story.slug)


def _series_order(story: Story) -> tuple[bool, int, float, str, str]:
    """Numbered parts by number, then the rest by first publication date."""
    published = story.published
    return (story.series_part is None, story.series_part or 0,
            published.timestamp() if published else math.inf, story.title.casefold(), story.slug)


def build_taxonomy(site: Site) -> Taxonomy:
    """Every tag with its stories and every series with its parts, in one pass over the site's stories."""
    found: dict[tuple[str, str], tuple[dict[str, None], list[Story]]] = {}
    in_series: dict[str, tuple[dict[str, None], list[Story]]] = {}
    for story in site.stories:
        for kind in KINDS:
            seen: set[str] = set()
            for name in story_tags(story, kind.key):
                slug = name_slug(name)
                names, stories = found.setdefault((kind.key, slug), ({}, []))
                names[name] = None
                if slug not in seen:
                    seen.add(slug)
                    stories.append(story)
        if story.series:
            names, stories = in_series.setdefault(name_slug(story.series), ({}, []))
            names[story.series] = None
            stories.append(story)

    by_kind: dict[str, list[Tag]] = {kind.key: [] for kind in KINDS}
    for (key, slug), (names, stories) in found.items():
        name = _display_name(list(names))
        spellings = (name, *sorted((n for n in names if n != name), key=lambda n: (n.casefold(), n)))
        by_kind[key].append(Tag(KIND_BY_KEY[key], slug, name, spellings, tuple(stories)))
    groups = []
    for kind in KINDS:
        tags = by_kind[kind.key]
        if kind.key == "ratings":
            tags.sort(key=lambda t: RATINGS.index(t.name) if t.name in RATINGS else len(RATINGS))
        else:
            tags.sort(key=lambda t: (t.name.casefold(), t.name))
        if tags:
            groups.append((kind, tuple(tags)))

    all_series = []
    parts: dict[str, SeriesPart] = {}
    for slug, (names, members) in in_series.items():
        name = _display_name(list(names))
        in_order = sorted(members, key=_series_order)
        numbered: list[SeriesPart] = []
        number = 0
        for i, member in enumerate(in_order):
            # A numbered part keeps its number (a missing part leaves a gap); the others count on from it.
            number = member.series_part if member.series_part is not None else number + 1
            part = SeriesPart(name, slug, number, member, in_order[i - 1] if i else None,
                              in_order[i + 1] if i + 1 < len(in_order) else None)
            numbered.append(part)
            parts[member.slug] = part
        all_series.append(Series(slug, name, tuple(numbered)))
    all_series.sort(key=lambda s: (s.name.casefold(), s.name))
    return Taxonomy(tuple(groups), tuple(all_series), parts)


def _where(story: Story, key: str) -> str:
    line = story.lines.get(key)
    return f"{display_path(story.source)}:{line}" if line else display_path(story.source)


def check_series(site: Site, log: ProblemLog) -> None:
    """`series_part` without `series`, two stories with one part number, one series spelled two ways."""
    parts: dict[tuple[str, int], Story] = {}
    first_spelling: dict[str, Story] = {}
    numbered: dict[str, list[Story]] = {}
    unnumbered: dict[str, list[Story]] = {}
    for story in site.stories:
        if not story.series:
            if story.series_part is not None:
                log.error(story.source, story.lines.get("series_part"),
                          f"`series_part: {story.series_part}` but no `series`; add `series: Name of the "
                          "Series`, or remove `series_part`")
            continue
        slug = name_slug(story.series)
        first = first_spelling.setdefault(slug, story)
        if first.series != story.series:
            log.warn(story.source, story.lines.get("series"),
                     f"the series `{story.series}` is written `{first.series}` in {_where(first, 'series')}; "
                     "they are one series, but write its name the same way everywhere")
        if story.series_part is None:
            unnumbered.setdefault(slug, []).append(story)
            continue
        numbered.setdefault(slug, []).append(story)
        other = parts.setdefault((slug, story.series_part), story)
        if other is not story:
            log.error(story.source, story.lines.get("series_part"),
                      f"part {story.series_part} of the series `{story.series}` is also "
                      f"{_where(other, 'series_part')} ({other.title or other.source.name}); give each story "
                      "of a series its own `series_part`")
    for slug, stories in unnumbered.items():
        if slug in numbered:
            for story in stories:
                log.warn(story.source, story.lines.get("series"),
                         f"this story of the series `{story.series}` has no `series_part` while others have one; "
                         "it is placed after the numbered parts. Give it a `series_part`")
