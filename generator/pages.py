"""Stage 5, render pages: the model → HTML pages through the theme's templates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import jinja2

from generator import urls
from generator.markdown import resolve_links
from generator.model import Chapter, Site, Story
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
        number = story.next_scheduled_number or number
        return Notice("scheduled", f"Chapter {number}{of} is scheduled",
                      f"Chapter {number} is scheduled for {story.next_scheduled.strftime('%Y-%m-%d')}.")
    return Notice("pending", f"Chapter {number}{of} is pending",
                  "This story is in progress; the next chapter has not been posted yet.")


def linked_chapter(chapter: Chapter, url: Callable[[str], str], same_story: str | None = None) -> Chapter:
    """The chapter with its links between chapters resolved for one page."""
    return replace(
        chapter,
        html=resolve_links(chapter.html, url, same_story),
        notes_before_html=resolve_links(chapter.notes_before_html, url, same_story),
        notes_after_html=resolve_links(chapter.notes_after_html, url, same_story),
        summary_html=resolve_links(chapter.summary_html, url, same_story),
    )


def linked_story(story: Story, url: Callable[[str], str], whole_work: bool = False) -> Story:
    """The story's summary and notes (and on a whole-work page, its chapters) with links resolved."""
    same = story.slug if whole_work else None
    return replace(
        story,
        summary_html=resolve_links(story.summary_html, url, same),
        notes_before_html=resolve_links(story.notes_before_html, url, same),
        notes_after_html=resolve_links(story.notes_after_html, url, same),
        chapters=tuple(linked_chapter(c, url, same) for c in story.chapters) if whole_work else story.chapters,
    )


class PageRenderer:
    """Renders each page of the site with one Jinja2 environment."""

    def __init__(self, site: Site, env: jinja2.Environment):
        self.site = site
        self.env = env
        self.has_feeds = bool(site.config.base_url)

    def _link(self, page: str) -> Linker:
        return Linker(page, self.site.config.base_url)

    def _render(self, template: str, link: Linker, title: str, **context: Any) -> OutputFile:
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
            canonical=link.absolute(link.page),
            feeds=feeds,
            has_feeds=self.has_feeds,
            **context,
        )
        return OutputFile(urls.file_of(link.page), html.encode("utf-8"))

    def home(self) -> OutputFile:
        link = self._link(urls.HOME)
        stories = tuple(linked_story(s, link.url) for s in self.site.stories)
        return self._render("home.html", link, self.site.config.title, stories=stories)

    def story(self, story: Story) -> OutputFile:
        link = self._link(urls.story_path(story))
        return self._render("story.html", link, f"{story.title} - {self.site.config.title}",
                            story=linked_story(story, link.url), notice=end_notice(story))

    def chapter(self, story: Story, index: int) -> OutputFile:
        chapter = story.chapters[index]
        prev = story.chapters[index - 1] if index > 0 else None
        nxt = story.chapters[index + 1] if index + 1 < len(story.chapters) else None
        title = story.title if story.single_file else f"{chapter.heading} - {story.title}"
        link = self._link(urls.chapter_path(story, chapter))
        return self._render("chapter.html", link, f"{title} - {self.site.config.title}",
                            story=linked_story(story, link.url), chapter=linked_chapter(chapter, link.url),
                            prev=prev, next=nxt, is_first=index == 0, is_last=nxt is None,
                            notice=end_notice(story) if nxt is None else None)

    def work(self, story: Story) -> OutputFile:
        link = self._link(urls.work_path(story))
        return self._render("work.html", link, f"{story.title} (entire work) - {self.site.config.title}",
                            story=linked_story(story, link.url, whole_work=True), notice=end_notice(story))

    def not_found(self) -> OutputFile:
        return self._render("404.html", self._link(urls.NOT_FOUND), f"Page not found - {self.site.config.title}",
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

