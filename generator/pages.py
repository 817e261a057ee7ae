"""Stage 5, render pages: the model → HTML pages through the theme's templates."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import quote

import jinja2

from generator import urls
from generator.csp import SCRIPT_HASHES, with_script_hashes
from generator.markdown import resolve_links
from generator.metadata import page_meta
from generator.model import Chapter, Site, Story
from generator.output import LazyFile, OutputFile
from generator.taxonomy import Series, Tag, build_taxonomy
from generator.theme import compile_templates
from generator.urls import Linker
from generator.xmlchars import xml_utf8

if TYPE_CHECKING:
    from generator.aliases import Redirect


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
    number = (story.next_scheduled_number or story.next_number) if story.next_scheduled else story.next_number
    total = story.chapters_to_come  # none once the planned chapters are all posted: "Chapter 4", not "4 of 3"
    of = f" of {total}" if total is not None and number <= total else ""
    if story.next_scheduled:
        return Notice("scheduled", f"Chapter {number}{of} is scheduled",
                      f"Chapter {number} is scheduled for {story.next_scheduled.strftime('%Y-%m-%d')}.")
    return Notice("pending", f"Chapter {number}{of} is pending",
                  "This story is in progress; the next chapter has not been posted yet.")


def linked_chapter(chapter: Chapter, url: Callable[[str], str], same_story: str | None = None,
                   in_page: frozenset[str] | None = None) -> Chapter:
    """The chapter with its links between chapters resolved for one page."""
    return replace(
        chapter,
        html=resolve_links(chapter.html, url, same_story, in_page),
        notes_before_html=resolve_links(chapter.notes_before_html, url, same_story, in_page),
        notes_after_html=resolve_links(chapter.notes_after_html, url, same_story, in_page),
        summary_html=resolve_links(chapter.summary_html, url, same_story, in_page),
    )


WORK_SPLIT_WORDS = 500_000  # a whole-work page longer than this is split into parts…
WORK_PART_WORDS = 200_000  # …of at most about this many words


@dataclass(frozen=True, slots=True)
class WorkPart:
    """One page of the whole work: all of it, or a run of chapters when the work is very long."""

    number: int
    chapters: tuple[Chapter, ...]
    path: str

    @property
    def words(self) -> int:
        return sum(c.words for c in self.chapters)


def work_parts(story: Story) -> list[WorkPart]:
    groups: list[list[Chapter]] = [[]]
    if story.words > WORK_SPLIT_WORDS:
        words = 0
        for chapter in story.chapters:
            if groups[-1] and words + chapter.words > WORK_PART_WORDS:
                groups.append([])
                words = 0
            groups[-1].append(chapter)
            words += chapter.words
    else:
        groups = [list(story.chapters)]
    return [WorkPart(n, tuple(group), urls.work_part_path(story, n)) for n, group in enumerate(groups, start=1)]


def linked_story(story: Story, url: Callable[[str], str]) -> Story:
    """The story with the links in its summary and notes resolved for one page.

    The same object when there is nothing to resolve (the usual case), so that its totals over
    the chapters are not computed again for every page."""
    summary = resolve_links(story.summary_html, url)
    before = resolve_links(story.notes_before_html, url)
    after = resolve_links(story.notes_after_html, url)
    if summary is story.summary_html and before is story.notes_before_html and after is story.notes_after_html:
        return story
    return replace(story, summary_html=summary, notes_before_html=before, notes_after_html=after)


class PageRenderer:
    """Renders each page of the site with one Jinja2 environment."""

    def __init__(self, site: Site, env: jinja2.Environment):
        self.site = site
        self.env = env
        self.has_feeds = bool(site.config.base_url)
        self.taxonomy = build_taxonomy(site)
        self._fragments: dict[tuple[Any, ...], Any] = {}  # see `_once`

    def _once(self, link: Linker) -> Callable[..., Any]:
        """The templates' `once(macro, story, …)`: what `macro(story, …)` gives, made once for all the pages of
        the story at the same depth (so the same relative links): for a fragment that depends on nothing else,
        like the story's metadata on every chapter page."""
        root = link.root

        def once(macro: Any, story: Story, *args: Any) -> Any:
            key = (root, getattr(macro, "name", macro), story.slug, args)
            if key not in self._fragments:
                self._fragments[key] = macro(story, *args)
            return self._fragments[key]

        return once

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
            meta=page_meta(template, self.site, link, title, context.get("story"), context.get("chapter"),
                           context["part"].chapters if "part" in context else None),
            feeds=feeds,
            has_feeds=self.has_feeds,
            taxonomy=self.taxonomy,
            once=self._once(link),
            inline_script_hashes=SCRIPT_HASHES,
            **context,
        )
        return OutputFile(urls.file_of(link.page), xml_utf8(with_script_hashes(html)))

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
        title = f"{chapter.heading} - {story.title}"  # a one-shot: `Chapter 1 - Title`, unlike its story page
        link = self._link(urls.chapter_path(story, chapter))
        return self._render("chapter.html", link, f"{title} - {self.site.config.title}",
                            story=linked_story(story, link.url), chapter=linked_chapter(chapter, link.url),
                            prev=prev, next=nxt, is_first=index == 0, is_last=nxt is None,
                            notice=end_notice(story) if nxt is None else None)

    def work(self, story: Story, only: Callable[[WorkPart], bool] | None = None) -> Iterator[OutputFile]:
        """The entire work on one page, or on several when it is very long (those parts `only` picks)."""
        parts = work_parts(story)
        for part in parts:
            if only is not None and not only(part):
                continue
            link = self._link(part.path)
            in_page = frozenset(c.slug for c in part.chapters)
            of = f", part {part.number} of {len(parts)}" if len(parts) > 1 else ""
            yield self._render(
                "work.html", link, f"{story.title} (entire work{of}) - {self.site.config.title}",
                story=linked_story(story, link.url),
                part_chapters=tuple(linked_chapter(c, link.url, story.slug, in_page) for c in part.chapters),
                part=part, parts=parts, notice=end_notice(story))

    def tags_index(self) -> OutputFile:
        return self._render("tags.html", self._link(urls.TAGS_INDEX), f"All tags - {self.site.config.title}",
                            groups=self.taxonomy.groups)

    def tag(self, tag: Tag) -> OutputFile:
        link = self._link(urls.tag_path(tag.kind.key, tag.name))
        return self._render("tag.html", link, f"{tag.kind.singular}: {tag.name} - {self.site.config.title}",
                            tag=tag, kind=tag.kind, stories=tuple(linked_story(s, link.url) for s in tag.stories))

    def series_index(self) -> OutputFile:
        return self._render("series_index.html", self._link(urls.SERIES_INDEX),
                            f"All series - {self.site.config.title}", all_series=self.taxonomy.series)

    def series(self, series: Series) -> OutputFile:
        link = self._link(urls.series_path(series.name))
        return self._render("series.html", link, f"Series: {series.name} - {self.site.config.title}",
                            series=series, stories=tuple(linked_story(s, link.url) for s in series.stories))

    def not_found(self) -> OutputFile:
        return self._render("404.html", self._link(urls.NOT_FOUND), f"Page not found - {self.site.config.title}",
                            base_path=self.site.config.base_path)


def _later(path: str, render: Callable[[], OutputFile], weight: int = 1) -> LazyFile:
    def make() -> bytes:
        file = render()
        assert file.path == path, (file.path, path)
        return file.data
    return LazyFile(path, make, weight)


def render_pages(site: Site, env: jinja2.Environment) -> list[LazyFile]:
    """Every page of the site, each rendered only when it is written (see `LazyFile` and `parallel.made`)."""
    renderer = PageRenderer(site, env)
    compile_templates(env)
    page = urls.file_of
    files = [_later(page(urls.HOME), renderer.home), _later(page(urls.NOT_FOUND), renderer.not_found),
             _later(page(urls.TAGS_INDEX), renderer.tags_index)]
    files += [_later(page(urls.tag_path(tag.kind.key, tag.name)), partial(renderer.tag, tag))
              for tag in renderer.taxonomy.tags]
    if renderer.taxonomy.series:
        files.append(_later(page(urls.SERIES_INDEX), renderer.series_index))
        files += [_later(page(urls.series_path(series.name)), partial(renderer.series, series))
                  for series in renderer.taxonomy.series]
    for story in site.stories:
        files.append(_later(page(urls.story_path(story)), partial(renderer.story, story)))
        for part in work_parts(story):
            files.append(_later(page(part.path), partial(work_part, renderer, story, part.number),
                                len(part.chapters)))
        files += [_later(page(urls.chapter_path(story, c)), partial(renderer.chapter, story, index))
                  for index, c in enumerate(story.chapters)]
    return files


def work_part(renderer: PageRenderer, story: Story, number: int) -> OutputFile:
    """Part `number` of the story's whole work (see `work_parts`)."""
    return next(renderer.work(story, only=lambda part: part.number == number))


def render_redirect(site: Site, env: jinja2.Environment, redirect: Redirect) -> OutputFile:
    """The page at an old address (`aliases:`), through the theme's `alias.html`. It shows nothing that a
    chapter's file can change (the story's title and language come from its `story.md`), so an incremental
    rebuild need not redo it."""
    link = Linker(redirect.path, site.config.base_url)
    target = quote(link.url(redirect.target), safe="/%")
    html = env.get_template("alias.html").render(
        site=site, config=site.config, link=link, url=link.url, urls=urls, target=target,
        canonical=link.absolute(redirect.target) or target, title=redirect.story.title, lang=redirect.story.language)
    return OutputFile(urls.file_of(redirect.path), html.encode("utf-8"))


def render_redirects(site: Site, env: jinja2.Environment, redirects: list[Redirect]) -> list[LazyFile]:
    """The pages at the old addresses `redirects`, each rendered when it is written."""
    return [_later(urls.file_of(r.path), partial(render_redirect, site, env, r)) for r in redirects]
