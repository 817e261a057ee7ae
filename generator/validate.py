"""Stage 2, validate: rules across files that loading one file cannot see."""

from __future__ import annotations

from pathlib import Path

from generator.errors import ProblemLog
from generator.load import slugify
from generator.model import Site, Story

RESERVED_STORY_SLUGS = frozenset({"assets", "tags", "series", "404", "feed"})
RESERVED_CHAPTER_SLUGS = frozenset({"all", "images", "feed"})


def _check_slug(slug: str, path: Path, line: int | None, reserved: frozenset[str], what: str,
                log: ProblemLog) -> None:
    if not slug:
        log.error(path, line, f"the {what} has no usable URL name; rename the file or folder to "
                  "contain letters or digits, or set `slug:`")
    elif slug != slugify(slug):
        log.error(path, line, f"unsafe slug `{slug}`: a slug is one URL segment of lower-case letters, "
                  f"digits and `-`, like `{slugify(slug) or 'chapter-one'}`")
    elif slug in reserved:
        log.error(path, line, f"the {what} URL name `{slug}` is reserved for the site's own pages; "
                  f"rename it or set another `slug:`")


def _check_story(story: Story, log: ProblemLog) -> None:
    _check_slug(story.slug, story.source, story.lines.get("slug") if story.single_file else None,
                RESERVED_STORY_SLUGS, "story", log)
    numbers: dict[int, Path] = {}
    slugs: dict[str, Path] = {}
    for chapter in story.chapters:
        line = chapter.lines.get("slug", 1) if "slug" in chapter.lines else None
        if not story.single_file:
            _check_slug(chapter.slug, chapter.source, line, RESERVED_CHAPTER_SLUGS, "chapter", log)
        if chapter.number in numbers:
            log.error(chapter.source, chapter.lines.get("number", 1),
                      f"chapter number {chapter.number} is also used by {numbers[chapter.number].name}; "
                      "give each chapter its own `number:` (or remove `number:` to number by file name)")
        numbers.setdefault(chapter.number, chapter.source)
        if chapter.slug in slugs:
            log.error(chapter.source, line,
                      f"the URL name `{chapter.slug}` is also used by {slugs[chapter.slug].name}; "
                      "rename one file or set another `slug:`")
        slugs.setdefault(chapter.slug, chapter.source)
        if chapter.date is None and not chapter.draft and "date" not in chapter.lines:
            log.error(chapter.source, 1, "the chapter has no `date`; add `date: 2025-03-02` "
                      "(the day it is published) or mark it `draft: true`")
        if chapter.updated and chapter.date and chapter.updated < chapter.date:
            log.warn(chapter.source, chapter.lines.get("updated"), "`updated` is before `date`")


def validate_site(site: Site, log: ProblemLog) -> None:
    """Log every cross-file problem: slugs, numbering, required dates."""
    story_slugs: dict[str, Path] = {}
    for story in site.stories:
        _check_story(story, log)
        if story.slug in story_slugs:
            log.error(story.source, None,
                      f"the story URL name `{story.slug}` is also used by {story_slugs[story.slug]}; "
                      "rename one of them")
        story_slugs.setdefault(story.slug, story.source)
