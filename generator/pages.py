"""Stage 5, render pages: the model → HTML pages through the theme's templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import jinja2

from generator import urls
from generator.model import Site, Story
from generator.output import OutputFile
from generator.urls import Linker


@dataclass(frozen=True, slots=True)
class Notice:
    """What a reader sees after the newest chapter: pending, scheduled, hiatus, discontinued or the end."""

    kind: str  # "pending" | "scheduled" | "hiatus" | "abandoned" | "end"
    heading: str
    text: str


def end_notice(story: Story) -> Notice:
    """The notice at the end of a story's newest published chapter."""
    if story.is_complete:
        return Notice("end", "The End", "This work is complete.")
    if story.status == "hiatus":
        return Notice("hiatus", "On hiatus",
                      "This story is on hiatus: the author plans to continue it, but not right now.")
    if story.status == "abandoned":
        return Notice("abandoned", "Discontinued", "The author has discontinued this story; no more chapters are planned.")
    number = story.next_number
    of = f" of {story.chapters_planned}" if story.chapters_planned else ""
    if story.next_scheduled:
        return Notice("scheduled", f"Chapter {number}{of} is scheduled",
                      f"Chapter {number} is scheduled for {story.next_scheduled.strftime('%Y-%m-%d')}.")
    return Notice("pending", f"Chapter {number}{of} is pending",
                  "This story is in progress; the next chapter has not been posted yet.")


class PageRenderer:
    """Renders each page of the site with one Jinja2 environment."""

    def __init__(self, site: Site, env: jinja2.Environment):
        self.site = site
        self.env = env
        self.has_feeds = bool(site.config.base_url)

    def _render(self, template: str, page: str, title: str, **context: Any) -> OutputFile:
        link = Linker(page, self.site.config.base_url)
        feeds = []
        if self.has_feeds:
            feeds.append((f"{self.site.config.title} (all stories)", link.url(urls.SITE_FEED)))
            story = context.get("story")
            if story is not None:
                feeds.append((f"{story.title}", link.url(urls.story_feed_path(story))))
        html = self.env.get_template(template).render(
            site=self.site,
            config=self.site.config,
            link=link,
            url=link.url,
            urls=urls,
            page_title=title,
            canonical=link.absolute(page),
            feeds=feeds,
            has_feeds=self.has_feeds,
            **context,
        )
        return OutputFile(urls.file_of(page), html.encode("utf-8"))

    def home(self) -> OutputFile:
        return self._render("home.html", urls.HOME, self.site.config.title, stories=self.site.stories)

    def story(self, story: Story) -> OutputFile:
        return self._render("story.html", urls.story_path(story), f"{story.title} - {self.site.config.title}",
                            story=story, notice=end_notice(story))

    def chapter(self, story: Story, index: int) -> OutputFile:
        chapter = story.chapters[index]
        prev = story.chapters[index - 1] if index > 0 else None
        nxt = story.chapters[index + 1] if index + 1 < len(story.chapters) else None
        title = f"{chapter.heading} - {story.title}" if len(story.chapters) > 1 or not story.single_file else story.title
        return self._render("chapter.html", urls.chapter_path(story, chapter),
                            f"{title} - {self.site.config.title}",
                            story=story, chapter=chapter, prev=prev, next=nxt,
                            is_first=index == 0, is_last=nxt is None,
                            notice=end_notice(story) if nxt is None else None)

    def work(self, story: Story) -> OutputFile:
        return self._render("work.html", urls.work_path(story),
                            f"{story.title} (entire work) - {self.site.config.title}",
                            story=story, notice=end_notice(story))

    def not_found(self) -> OutputFile:
        return self._render("404.html", urls.NOT_FOUND, f"Page not found - {self.site.config.title}",
                            base_path=self.site.config.base_path)


def story_pages(renderer: PageRenderer, story: Story) -> Iterator[OutputFile]:
    yield renderer.story(story)
    yield renderer.work(story)
    for index in range(len(story.chapters)):
        yield renderer.chapter(story, index)


def render_pages(site: Site, env: jinja2.Environment) -> list[OutputFile]:
    renderer = PageRenderer(site, env)
    files = [renderer.home(), renderer.not_found()]
    for story in site.stories:
        files.extend(story_pages(renderer, story))
    return files

