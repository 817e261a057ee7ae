"""Rebuilds while serving: after a full build, a saved chapter redoes only what it touches.

A change to existing chapter files that leaves the published chapters, their
order and their URLs as they were re-renders those chapters' Markdown, their
pages and their neighbours', the story page, the part of the whole-work page
that holds them, the home page, the feeds and the sitemap, and replaces just
those files (each atomically) in the served folder. Anything else (a new,
deleted or renamed file, `story.md`, `site.toml`, the theme, a chapter that
becomes published or unpublished, new `aliases:`, or that shows or links to other files than
before, which may publish or withdraw them) gets a full build. When a story's totals
(words, dates) changed, the pages that show them (its other chapters' work
information, the other parts of the whole work, tag and series pages) are
redone after the reload, quietly and a page at a time, until another change
comes (`BuildSession.finish`); the story's EPUB waits for the next full build.
If a save moves chapters between the parts of a very long whole work, every
part is re-rendered; if it changes how many parts there are, a full build.

What `serve` waits for before it tells open pages to reload is only what the
save can have changed. The chapter's own page and the part of the whole work
that holds it always. The pages that list the chapter without its text (the
home page, the story page with its table of contents, the neighbours' previous
/next links) only when the chapter as they list it changed: its title, dates,
word count, summary, notes, anything but the text itself; the feeds only when
the chapter is among their newest. The rest of those pages, and the manifest
file, are done after the reload (`BuildSession.finish`): rendered again,
compared, and written (with a second reload) only if they did change after all,
as they may with a theme that shows chapter text on them. So a save that only
rewords a chapter of a 3,000-chapter story does not wait for its 3,000-row
table of contents to be rendered again.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from generator.build import BuildResult, Snapshot, build_with_snapshot
from generator.cache import CACHE_DIR, Cache, atomic_write
from generator.config import BuildOptions
from generator.errors import Problem, ProblemLog
from generator.model import Chapter, Site, Story
from generator.output import OutputFile, check_path, file_hash, previous_manifest, write_manifest
from generator.stamp import forget_state


@dataclass(slots=True)
class Known:
    """What incremental builds keep between them: facts that would cost a pass over the whole site each time.

    Made from a full build's snapshot (`Known.of`) and kept true by each incremental build.
    """

    index: dict[Path, tuple[int, int]]  # chapter file → (story, chapter) position in `Snapshot.everything`
    # The real path of a chapter file in a story folder that is a symbolic link → the chapter file (as in `index`).
    linked: dict[Path, Path]
    due: datetime | None  # the earliest chapter date after the snapshot's `now`: a full build is due then
    hashes: dict[str, str]  # the output's manifest (path → hash), ahead of the manifest file until `flush`
    unpublished: bool  # the output holds drafts or chapters dated in the future
    stale: bool = False  # whether the manifest file is behind `hashes`

    @classmethod
    def of(cls, snap: Snapshot) -> "Known":
        index = {c.source: (s_index, c_index) for s_index, s in enumerate(snap.everything.stories)
                 for c_index, c in enumerate(s.chapters) if not s.single_file}
        due = min((c.date for s in snap.everything.stories for c in s.chapters if c.date and c.date > snap.now),
                  default=None)
        linked: dict[Path, Path] = {}
        for story in snap.everything.stories:
            folder = story.source.parent
            if not story.single_file and folder.is_symlink():
                real = folder.resolve()
                linked.update((real / c.source.name, c.source) for c in story.chapters)
        return cls(index, linked, due, previous_manifest(snap.options.output) or {},
                   snap.options.drafts or snap.options.future)

    def source(self, path: Path) -> Path:
        """The chapter file (as the build names it) that the changed file `path` is."""
        real = path.resolve()
        return self.linked.get(real, real)

    def flush(self, output: Path) -> None:
        """Write the manifest file, if it is behind."""
        if self.stale:
            write_manifest(output, self.hashes, self.unpublished)
            self.stale = False


@dataclass(frozen=True, slots=True)
class Rebuild:
    """An incremental build: what it did before the reload, and what it leaves for after it."""

    result: BuildResult
    snapshot: Snapshot
    # The pages the change is expected to leave as they were (see the module's doc), rendered on demand.
    later: Callable[[], list[OutputFile]] | None = None
    # The stories whose other pages show what changed (their totals: words, dates): see `BuildSession.finish`.
    totals: frozenset[str] = frozenset()


class BuildSession:
    """Builds one site over and over for `serve`: full builds, and incremental ones where they are safe.

    After an incremental build, call `finish` once the reload has been announced: it renders
    the pages the change was expected to leave as they were, writes those that changed after
    all, and brings the manifest file up to date. `build` does the first part itself if nobody did.
    Then `finish` redoes, a page at a time, the other pages of a story whose totals changed (every
    chapter page shows its word count and dates, and so do its parts of the whole work and the tag
    and series pages that list it), without a second reload, and stops when `pending()` says another
    change has come: what is left is done after the next build. (The story's EPUB waits for the next
    full build.)
    """

    def __init__(self, root: Path, options: BuildOptions) -> None:
        self.root = root.resolve()  # chapter sources are then the paths file events name
        self.options = options
        self._snapshot: Snapshot | None = None
        self._known: Known | None = None
        self._later: Callable[[], list[OutputFile]] | None = None
        self._totals: set[str] = set()  # stories whose pages showing their totals are still to be redone
        self._env: object | None = None

    def build(self, changed: Iterable[Path] | None = None) -> BuildResult:
        """Build after `changed` files changed (None: everything may have)."""
        self._finish_later()
        if changed is not None and self._snapshot is not None:
            if self._known is None:
                self._known = Known.of(self._snapshot)
            outcome = rebuild_chapters(self._snapshot, frozenset(map(self._known.source, changed)), self._environment,
                                       self._known)
            if outcome is not None:
                self._snapshot, self._later = outcome.snapshot, outcome.later
                self._totals |= outcome.totals
                return outcome.result
        self._known = None  # a full build writes its own manifest
        self._totals.clear()
        gc.unfreeze()  # the last full build's site (see `warm_up`) may be garbage from now on
        try:
            result, snapshot = build_with_snapshot(self.root, self.options)
        except BaseException:
            self._snapshot, self._env = None, None  # what is in the output is not known: build it all next time
            raise
        if snapshot is not None:
            self._snapshot = snapshot
            self._env = None
        return result

    def finish(self, pending: Callable[[], bool] = lambda: False) -> int:
        """Finish the last incremental build: how many of the pages it expected to leave as they were it wrote
        after all (open pages should hear of them). Then the pages of stories whose totals changed, quietly
        (an open page is not reloaded twice for a word count elsewhere), until `pending()` is true."""
        try:
            written = self._finish_later(flush=False)
            self._redo_totals(pending)
            return written
        finally:
            if self._known is not None:
                self._known.flush(self.options.output)

    def _finish_later(self, flush: bool = True) -> int:
        later, self._later = self._later, None
        written = 0
        try:
            if later is not None and self._known is not None:
                written = _write_changed(later(), self.options.output, self._known)
        finally:
            if flush and self._known is not None:
                self._known.flush(self.options.output)
        return written

    def _redo_totals(self, pending: Callable[[], bool]) -> None:
        """The pages of `_totals` stories that show their totals, rendered one at a time and written if changed,
        until `pending()`; a story is done once all of its are."""
        if not self._totals or self._snapshot is None or self._known is None:
            return
        from generator.pages import PageRenderer

        site = self._snapshot.site
        renderer = PageRenderer(site, self._environment(self._snapshot))
        for story in site.stories:
            if story.slug not in self._totals:
                continue
            for render in _pages_showing_totals(renderer, story):
                if pending():
                    return
                _write_changed(render(), self.options.output, self._known)
            self._totals.discard(story.slug)
        self._totals.clear()  # those left are no longer published: a full build follows

    def warm_up(self) -> None:
        """Get ready for the next incremental build (after a full one): what it knows, the templates it renders.

        And the objects the process has now, the built site above all, are moved out of the garbage
        collector's sight (`gc.freeze`) until the next full build: they live as long as it, and a
        collection walking all of them, tens of ms with thousands of chapters, would otherwise come
        every other save or so.
        """
        if self._snapshot is None or not self.options.write:
            return
        fresh = self._known is None
        if fresh:
            self._known = Known.of(self._snapshot)
        from generator.markdown import markdown
        from generator.theme import TEMPLATES

        markdown()  # the parser, which a build that found every text in the cache did not make

        env = self._environment(self._snapshot)
        for name in TEMPLATES:
            try:
                env.get_template(name)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 (only a head start: the build reports template errors)
                pass
        if fresh:
            gc.collect()
            gc.freeze()

    def _environment(self, snapshot: Snapshot) -> object:
        from generator.theme import make_environment

        if self._env is None:
            # The theme cannot change without a full build (which starts a new environment): no reloading.
            cache = self.root / CACHE_DIR / "jinja" if self.options.cache and self.options.write else None
            self._env = make_environment(snapshot.theme, cache, auto_reload=False)
        return self._env


def rebuild_chapters(snap: Snapshot, changed: frozenset[Path], environment: Callable[[Snapshot], Any],
                     known: Known) -> Rebuild | None:
    """Redo what `changed` chapter files touch; None when that is not safe and a full build is needed.

    The pages it writes are in the output when it returns; `known.hashes` follows them, the
    manifest file only once `known.flush` is called. `Rebuild.later` renders the pages left
    for after the reload (`BuildSession.finish`).
    """
    from generator.assets import chapter_references
    from generator.load import load_chapter
    from generator.markdown import render_site
    from generator.pages import work_parts
    from generator.publish import select_published
    from generator.validate import validate_site

    started = time.perf_counter()
    options = snap.options
    index = known.index
    if not changed or not options.write or any(path not in index or not path.is_file() for path in changed):
        return None
    now = snap.now
    if known.due is not None and known.due <= _now():
        return None  # a scheduled chapter has come due since: the published set changed

    log = ProblemLog()
    stories = list(snap.everything.stories)
    kept = list(snap.everything.stories)  # as the next snapshot keeps them: without the chapters' Markdown
    loaded: list[Chapter] = []
    for path in changed:
        s_index, c_index = index[path]
        chapter = load_chapter(path, c_index + 1, snap.config, log)
        if chapter is None:
            log.raise_if_errors(strict=options.strict)
            return None
        loaded.append(chapter)
        for versions, version in ((stories, chapter), (kept, replace(chapter, body=""))):
            chapters = list(versions[s_index].chapters)
            chapters[c_index] = version
            versions[s_index] = replace(versions[s_index], chapters=tuple(chapters))
    everything = replace(snap.everything, stories=tuple(stories))
    validate_site(everything, log, now)
    log.raise_if_errors(strict=options.strict)
    published = select_published(everything, now, drafts=options.drafts, future=options.future)
    slugs = frozenset(snap.everything.stories[index[path][0]].slug for path in changed)  # the stories changed
    previous = {s.slug: s for s in snap.site.stories}
    if not _same_outline(published, previous, slugs):
        return None

    # Markdown: only the changed chapters (story-level texts come from the cache).
    touched = {s.slug: tuple(c for c in s.chapters if c.source in changed) for s in published.stories
               if s.slug in slugs}
    only_touched = replace(published, stories=tuple(replace(s, chapters=touched[s.slug]) for s in published.stories
                                                    if touched.get(s.slug)))
    notes: list[str] = []
    rendered = render_site(only_touched, snap.targets, log,
                           Cache.for_site(snap.root, "markdown", enabled=options.cache), workers=1, warnings=notes)
    log.raise_if_errors(strict=options.strict)
    fresh = {c.source: c for s in rendered.stories for c in s.chapters}
    earlier = {c.source: c for slug in slugs if slug in previous for c in previous[slug].chapters}
    if any(chapter_references(c) != chapter_references(earlier[source]) for source, c in fresh.items()
           if source in earlier):
        return None  # the files published may have changed (`assets.with_referenced_files`)
    # Stories without a changed chapter are selected from the same files as before: the same stories.
    site = replace(published, stories=tuple(_merge(s, previous[s.slug], fresh) if s.slug in slugs
                                            else previous[s.slug] for s in published.stories))

    new = [c for s in site.stories if s.slug in slugs for c in s.chapters if c.source in changed]
    listed = any(_listing(c) != _listing(earlier[c.source]) for c in new)
    dates_moved = any((c.date, c.updated) != (earlier[c.source].date, earlier[c.source].updated) for c in new)
    in_feeds = any(_in_feed(story, changed, now, snap.config.feed_items)
                   for slug in slugs for story in (previous.get(slug), _story(site, slug)) if story is not None)
    all_parts: set[str] = set()
    for slug in slugs:
        story = _story(site, slug)
        if story is None or slug not in previous:
            continue
        before, after = work_parts(previous[slug]), work_parts(story)
        if len(before) != len(after):
            return None  # the whole work's pages are not the same files
        if not _same_groups(before, after):
            all_parts.add(slug)  # the chapters moved between parts: every part's list of parts changed

    now_pages, later_pages = _pages(site, changed, environment(snap), now, listed=listed, feeds=in_feeds,
                                    sitemap=dates_moved, all_parts=all_parts)
    forget_state(snap.root, options.output)  # a rebuild killed from here on must not leave a stale "up to date"
    written = _write_changed(now_pages, options.output, known)
    result = BuildResult(stories=len(site.stories), chapters=site.chapter_total, words=site.words,
                         files_written=written, seconds=time.perf_counter() - started,
                         warnings=tuple(log.warnings) + tuple(Problem(snap.root / CACHE_DIR, None, note, "warning")
                                                              for note in notes))
    known.due = min((d for d in (known.due, *(c.date for c in loaded)) if d is not None and d > now), default=None)
    # The same outline as before: the same link targets.
    return Rebuild(result, replace(snap, everything=replace(everything, stories=tuple(kept)), site=site), later_pages,
                   slugs if listed else frozenset())


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _story(site: Site, slug: str) -> Story | None:
    return next((s for s in site.stories if s.slug == slug), None)


def _same_outline(published: Site, previous: dict[str, Story], slugs: frozenset[str]) -> bool:
    """Whether the same chapters are published at the same places, with the same old addresses (the pages there,
    and the feeds' guids, follow from them): the only stories that can differ are `slugs`."""
    if {s.slug for s in published.stories} != previous.keys():
        return False
    return all([(c.slug, c.number, c.source, c.aliases) for c in s.chapters]
               == [(c.slug, c.number, c.source, c.aliases) for c in previous[s.slug].chapters]
               for s in published.stories if s.slug in slugs)


def _same_groups(before: list[Any], after: list[Any]) -> bool:
    """Whether the parts of the whole work hold the same chapters (by file), whatever their text."""
    return [[c.source for c in p.chapters] for p in before] == [[c.source for c in p.chapters] for p in after]


def _listing(chapter: Chapter) -> Chapter:
    """A chapter as pages other than its own and the whole work's show it: everything but its text."""
    return replace(chapter, body="", body_line=0, html="")


def _in_feed(story: Story, changed: frozenset[Path], now: datetime, limit: int) -> bool:
    """Whether a changed chapter is among the `limit` newest of `story`, which its feed shows.

    The site's feed shows the newest of all stories, so a chapter in it is in its story's too.
    Newer chapters are usually last: counting from the end mostly stops after `limit` of them.
    """
    for chapter in story.chapters:
        if chapter.source not in changed or not chapter.date or chapter.date > now:
            continue
        key = (chapter.date, chapter.number)
        newer = 0
        for other in reversed(story.chapters):
            if other.date and other.date <= now and (other.date, other.number) > key:
                newer += 1
                if newer >= limit:
                    break
        else:
            return True
    return False


def _merge(story: Story, before: Story, fresh: dict[Path, Chapter]) -> Story:
    """The newly loaded story with rendered HTML: fresh for changed chapters, kept for the others, and the files
    it published (the same, as the changed chapters refer to the same files).

    `before` has the same chapters in the same order (`_same_outline`).
    """
    chapters = tuple(fresh.get(c.source) or kept for c, kept in zip(story.chapters, before.chapters))
    return replace(story, chapters=chapters, assets=before.assets, summary_html=before.summary_html,
                   notes_before_html=before.notes_before_html, notes_after_html=before.notes_after_html)


Render = Callable[[], Iterable[OutputFile]]


def _pages(site: Site, changed: frozenset[Path], env: Any, now: datetime, *, listed: bool, feeds: bool,
           sitemap: bool, all_parts: set[str]) -> tuple[list[OutputFile], Callable[[], list[OutputFile]] | None]:
    """The pages a change to `changed` touches: those rendered now, and those left for after the reload.

    Always now: the changed chapters' own pages and the parts of the whole work that hold them
    (every part, for a story in `all_parts`). Now when `listed` (the chapters as other pages list
    them changed), else later: the home page, the story pages and the chapters' neighbours (their
    previous/next links). Now when `feeds` (a changed chapter is among the newest), else later:
    the feeds. The sitemap, only when a date it lists moved (`sitemap`).
    """
    from generator.feeds import render_feeds, render_sitemap
    from generator.pages import PageRenderer

    renderer = PageRenderer(site, env)
    first: list[Render] = []
    last: list[Render] = []
    listing = first if listed else last
    listing.append(partial(_one, renderer.home))
    for story in site.stories:
        positions = {i for i, c in enumerate(story.chapters) if c.source in changed}
        if not positions:
            continue
        listing.append(partial(_one, renderer.story, story))
        slugs = frozenset(story.chapters[i].slug for i in positions)
        first.append(partial(renderer.work, story, None if story.slug in all_parts else partial(_holds, slugs)))
        for i in sorted(positions):
            first.append(partial(_one, renderer.chapter, story, i))
        for i in sorted({j for p in positions for j in (p - 1, p + 1) if 0 <= j < len(story.chapters)} - positions):
            listing.append(partial(_one, renderer.chapter, story, i))
    touched = frozenset(s.slug for s in site.stories if any(c.source in changed for c in s.chapters))
    (first if feeds else last).append(partial(render_feeds, site, now, touched))
    if sitemap:
        first.append(partial(render_sitemap, site))
    return _render(first), partial(_render, last) if last else None


def _pages_showing_totals(renderer: Any, story: Story) -> Iterator[Render]:
    """Every page that shows the story's totals (words, chapters, dates): its chapters' pages, the parts of its
    whole work, and the tag and series pages that list it, with the lists of tags and series."""
    from generator.pages import work_part, work_parts

    for index in range(len(story.chapters)):
        yield partial(_one, renderer.chapter, story, index)
    for part in work_parts(story):
        yield partial(_one, work_part, renderer, story, part.number)
    taxonomy = renderer.taxonomy
    yield partial(_one, renderer.tags_index)
    for tag in taxonomy.tags:
        if any(listed.slug == story.slug for listed in tag.stories):
            yield partial(_one, renderer.tag, tag)
    series = [s for s in taxonomy.series if any(listed.slug == story.slug for listed in s.stories)]
    if series:
        yield partial(_one, renderer.series_index)
    for one in series:
        yield partial(_one, renderer.series, one)


def _one(render: Callable[..., OutputFile], *args: Any) -> list[OutputFile]:
    return [render(*args)]


def _holds(slugs: frozenset[str], part: Any) -> bool:
    return any(c.slug in slugs for c in part.chapters)


def _render(renders: list[Render]) -> list[OutputFile]:
    return [file for render in renders for file in render()]


def _write_changed(files: list[OutputFile], output: Path, known: Known) -> int:
    """Replace each file whose bytes changed, atomically; `known.hashes` follows (the manifest file does not)."""
    written = 0
    for item in files:
        digest = file_hash(item.data)
        if known.hashes.get(item.path) == digest and (output / item.path).is_file():
            continue
        known.stale = True
        atomic_write(output / check_path(item.path), item.data)
        known.hashes[item.path] = digest
        written += 1
    return written


__all__ = ["BuildSession", "Known", "Rebuild", "rebuild_chapters"]
