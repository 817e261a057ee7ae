"""Stage 2, validate: rules across files that loading one file cannot see."""

from __future__ import annotations

import difflib
from datetime import datetime
from pathlib import Path

from generator.errors import ProblemLog
from generator.load import STORY_FILE, slugify
from generator.names import long_name_problem
from generator.model import ARCHIVE_WARNINGS, Chapter, Site, Story, archive_warning, title_number
from generator.taxonomy import check_series

RESERVED_STORY_SLUGS = frozenset({"assets", "tags", "series", "404", "feed"})
RESERVED_CHAPTER_SLUGS = frozenset({"all", "images", "feed"})


def _check_slug(slug: str, path: Path, line: int | None, reserved: frozenset[str], what: str,
                log: ProblemLog) -> None:
    if not slug:
        log.error(path, line, f"the {what} has no usable URL name; rename the file or folder to "
                  "contain letters or digits, or set `slug:`")
    elif too_long := long_name_problem(slug, what, _shorter(path, line)):
        log.error(path, line, too_long)
    elif slug != slugify(slug):
        log.error(path, line, f"unsafe slug `{slug}`: a slug is one URL segment of lower-case letters, "
                  f"digits and `-`, like `{slugify(slug) or 'chapter-one'}`")
    elif slug in reserved:
        fix = "set another `slug:`" if what == "chapter" else "rename the folder or file"
        log.error(path, line, f"the {what} URL name `{slug}` is reserved for the site's own pages; {fix}")


def _shorter(path: Path, line: int | None) -> str:
    """How to shorten the URL name of `path`: by its `slug:` (on `line`), or by the name it comes from."""
    if line is not None:
        return "set a shorter `slug:`"
    if path.name == STORY_FILE:
        return "give the story's folder a shorter name"
    return "give the file a shorter name, or set a shorter `slug:`"


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
        _check_title(chapter, log)


def _check_title(chapter: Chapter, log: ProblemLog) -> None:
    """A title that starts with another chapter's number (`Chapter 4: …` for chapter 3), which the pages would
    show after this one's: `Chapter 3: Chapter 4: …`. (One that starts with its own is shown once.)"""
    numbered = title_number(chapter.title) if chapter.title else None
    if numbered is None or numbered[0] == chapter.number:
        return
    number = numbered[0]
    why = "its `number:`" if "number" in chapter.lines else "its place among the chapter files, in name order"
    log.warn(chapter.source, chapter.lines.get("title"),
             f"the title starts with Chapter {number} but this is chapter {chapter.number} (by {why}), so it is "
             f"shown as \"{chapter.heading}\"; remove the number from the title, or set `number: {number}`")


def _check_consistency(story: Story, now: datetime, log: ProblemLog) -> None:
    """What AO3 would refuse or an author would not mean: counts, order, warnings, empty chapters."""
    posted = [c for c in story.chapters if not c.draft]
    planned_line = story.lines.get("chapters_planned")
    if story.chapters_planned is not None and story.chapters_planned < len(posted):
        log.error(story.source, planned_line,
                  f"`chapters_planned` is {story.chapters_planned} but {len(posted)} chapters are posted or "
                  f"scheduled; raise it (`chapters_planned: {len(posted)}` if that is all of them, and "
                  "`status: complete` when the story is finished), or remove it if the total is unknown")
    elif story.chapters_planned == len(posted) and not story.is_complete and story.status != "abandoned":
        log.warn(story.source, planned_line,
                 f"all {len(posted)} planned chapters are posted but `status` is `{story.status}`, so the "
                 f"site counts them as {len(posted)}/? (the total is not known); set `status: complete` if the "
                 "story is finished, or raise `chapters_planned` if more chapters are coming")
    if story.is_complete:
        pending = [c for c in story.chapters if c.draft or (c.date is not None and c.date > now)]
        for chapter in pending:
            kind = "a draft" if chapter.draft else "scheduled"
            log.warn(chapter.source, chapter.lines.get("draft" if chapter.draft else "date"),
                     f"the story is marked `status: complete` but this chapter is {kind}")
    dated = sorted((c for c in posted if c.date), key=lambda c: c.number)
    for before, after in zip(dated, dated[1:]):
        if after.date < before.date:  # type: ignore[operator]
            log.warn(after.source, after.lines.get("date"),
                     f"chapter {after.number} is dated before chapter {before.number} "
                     f"({before.source.name}); check the date or the order of the files")
    for source, lines, warnings in [(story.source, story.lines, story.warnings),
                                    *((c.source, c.lines, c.warnings) for c in story.chapters)]:
        for warning in warnings:
            if archive_warning(warning):
                continue
            close = difflib.get_close_matches(warning.casefold(), [w.casefold() for w in ARCHIVE_WARNINGS],
                                              n=1, cutoff=0.8)
            if close:
                canonical = next(w for w in ARCHIVE_WARNINGS if w.casefold() == close[0])
                log.warn(source, lines.get("warnings"), f"the warning `{warning}` looks like AO3's archive "
                         f"warning `{canonical}`; write it exactly so it is shown as one")
    for chapter in story.chapters:
        if not chapter.has_text:
            log.warn(chapter.source, chapter.body_line, "the chapter has no text")


def validate_site(site: Site, log: ProblemLog, now: datetime) -> None:
    """Log every cross-file problem: slugs, numbering, required dates, consistency."""
    story_slugs: dict[str, Path] = {}
    for story in site.stories:
        _check_story(story, log)
        _check_consistency(story, now, log)
        if story.slug in story_slugs:
            log.error(story.source, None,
                      f"the story URL name `{story.slug}` is also used by {story_slugs[story.slug]}; "
                      "rename one of them")
        story_slugs.setdefault(story.slug, story.source)
    check_series(site, log)
