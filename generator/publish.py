"""Stage 3, select: which chapters and stories this build publishes.

Drafts need `--drafts`; chapters dated after now need `--future`. What is not
published is dropped from the model here, so no later stage can leak it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from generator.model import Chapter, Site, Story


def is_published(chapter: Chapter, now: datetime, drafts: bool, future: bool) -> bool:
    if chapter.draft:
        return drafts
    return future or (chapter.date is not None and chapter.date <= now)


def select_published(site: Site, now: datetime, drafts: bool, future: bool) -> Site:
    """The site with only published chapters, and only stories that have one."""
    stories: list[Story] = []
    for story in site.stories:
        ordered = sorted(story.chapters, key=lambda c: c.number)
        visible = tuple(c for c in ordered if is_published(c, now, drafts, future))
        if not visible:
            continue
        scheduled = [] if future else sorted((c.date, c.number) for c in ordered
                                             if not c.draft and c.date and c.date > now)
        stories.append(replace(story, chapters=visible,
                               next_scheduled=scheduled[0][0] if scheduled else None,
                               next_scheduled_number=scheduled[0][1] if scheduled else None))
    return replace(site, stories=tuple(sorted(stories, key=_newest_first)))


def _newest_first(story: Story) -> tuple[float, str]:
    updated = story.updated
    return (-(updated.timestamp() if updated else 0.0), story.title.casefold())
