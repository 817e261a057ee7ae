"""Rebuilds while serving: after a full build, a saved chapter redoes only what it touches.

A change to existing chapter files that leaves the published chapters, their
order and their URLs as they were re-renders those chapters' Markdown, their
pages and their neighbours', the story page, the part of the whole-work page
that holds them, the home page, the feeds and the sitemap, and replaces just
those files (each atomically) in the served folder. Anything else (a new,
deleted or renamed file, `story.md`, `site.toml`, the theme, a chapter that
becomes published or unpublished) gets a full build. Between full builds,
pages that only show totals (tag pages, other chapters' work statistics) and
the story's EPUB may lag behind; the next full build brings them up to date.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from generator.build import BuildResult, Snapshot, build_with_snapshot
from generator.cache import CACHE_DIR, Cache, atomic_write
from generator.config import BuildOptions
from generator.errors import Problem, ProblemLog
from generator.model import Chapter, Site, Story
from generator.output import MANIFEST, OutputFile, file_hash, previous_manifest
from generator.stamp import forget_state


@dataclass(frozen=True, slots=True)
class _Outline:
    """What must stay the same for an incremental rebuild: which chapters are published, where."""

    stories: tuple[tuple[str, tuple[tuple[str, int, str], ...]], ...]

    @classmethod
    def of(cls, site: Site) -> "_Outline":
        return cls(tuple(sorted((s.slug, tuple((c.slug, c.number, str(c.source)) for c in s.chapters))
                                for s in site.stories)))


class BuildSession:
    """Builds one site over and over for `serve`: full builds, and incremental ones where they are safe."""

    def __init__(self, root: Path, options: BuildOptions) -> None:
        self.root = root.resolve()  # chapter sources are then the paths file events name
        self.options = options
        self._snapshot: Snapshot | None = None
        self._env: object | None = None

    def build(self, changed: Iterable[Path] | None = None) -> BuildResult:
        """Build after `changed` files changed (None: everything may have)."""
        if changed is not None and self._snapshot is not None:
            outcome = rebuild_chapters(self._snapshot, frozenset(p.resolve() for p in changed), self._environment)
            if outcome is not None:
                result, self._snapshot = outcome
                return result
        result, snapshot = build_with_snapshot(self.root, self.options)
        if snapshot is not None:
            self._snapshot = snapshot
            self._env = None
        return result

    def _environment(self, snapshot: Snapshot) -> object:
        from generator.theme import make_environment

        if self._env is None:
            self._env = make_environment(snapshot.theme)
        return self._env


def _chapter_index(site: Site) -> dict[Path, tuple[int, int]]:
    return {c.source: (s_index, c_index) for s_index, s in enumerate(site.stories)
            for c_index, c in enumerate(s.chapters) if not s.single_file}


def rebuild_chapters(snap: Snapshot, changed: frozenset[Path],
                     environment: Callable[[Snapshot], Any]) -> tuple[BuildResult, Snapshot] | None:
    """Redo what `changed` chapter files touch; None when that is not safe and a full build is needed."""
    from generator.load import load_chapter
    from generator.markdown import render_site
    from generator.publish import select_published
    from generator.validate import validate_site

    started = time.perf_counter()
    options = snap.options
    index = _chapter_index(snap.everything)
    if not changed or not options.write or any(path not in index or not path.is_file() for path in changed):
        return None
    now = snap.now
    if any(c.date and snap.now < c.date <= _now() for s in snap.everything.stories for c in s.chapters):
        return None  # a scheduled chapter has come due since: the published set changed

    log = ProblemLog()
    stories = list(snap.everything.stories)
    for path in changed:
        s_index, c_index = index[path]
        chapter = load_chapter(path, c_index + 1, snap.config, log)
        if chapter is None:
            log.raise_if_errors(strict=options.strict)
            return None
        chapters = list(stories[s_index].chapters)
        chapters[c_index] = chapter
        stories[s_index] = replace(stories[s_index], chapters=tuple(chapters))
    everything = replace(snap.everything, stories=tuple(stories))
    validate_site(everything, log, now)
    log.raise_if_errors(strict=options.strict)
    published = select_published(everything, now, drafts=options.drafts, future=options.future)
    if _Outline.of(published) != _Outline.of(snap.site):
        return None

    # Markdown: only the changed chapters (story-level texts come from the cache).
    touched = {s.slug: tuple(c for c in s.chapters if c.source in changed) for s in published.stories}
    partial = replace(published, stories=tuple(replace(s, chapters=touched[s.slug]) for s in published.stories
                                               if touched[s.slug]))
    notes: list[str] = []
    rendered = render_site(partial, snap.targets, log,
                           Cache.for_site(snap.root, "markdown", enabled=options.cache), workers=1, warnings=notes)
    log.raise_if_errors(strict=options.strict)
    fresh = {c.source: c for s in rendered.stories for c in s.chapters}
    previous = {s.slug: s for s in snap.site.stories}
    site = replace(published, stories=tuple(_merge(s, previous[s.slug], fresh) for s in published.stories))

    earlier = _by_source(snap.site)
    dates_moved = any((c.date, c.updated) != (earlier[c.source].date, earlier[c.source].updated)
                      for s in published.stories for c in touched[s.slug])
    files = _pages(site, changed, environment(snap), now, sitemap=dates_moved)
    written = _write_changed(files, options.output)
    forget_state(snap.root, options.output)
    result = BuildResult(stories=len(site.stories), chapters=site.chapter_total, words=site.words,
                         files_written=written, seconds=time.perf_counter() - started,
                         warnings=tuple(log.warnings) + tuple(Problem(snap.root / CACHE_DIR, None, note, "warning")
                                                              for note in notes))
    return result, replace(snap, everything=everything, site=site)  # same outline: same link targets


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _merge(story: Story, before: Story, fresh: dict[Path, Chapter]) -> Story:
    """The newly loaded story with rendered HTML: fresh for changed chapters, kept for the others."""
    kept = {c.source: c for c in before.chapters}
    chapters = tuple(fresh.get(c.source) or kept[c.source] for c in story.chapters)
    return replace(story, chapters=chapters, summary_html=before.summary_html,
                   notes_before_html=before.notes_before_html, notes_after_html=before.notes_after_html)


def _by_source(site: Site) -> dict[Path, Chapter]:
    return {c.source: c for s in site.stories for c in s.chapters}


def _pages(site: Site, changed: frozenset[Path], env: Any, now: datetime, sitemap: bool) -> list[OutputFile]:
    """The pages a change to `changed` touches; the sitemap only when a date it lists moved."""
    from generator.feeds import render_feeds, render_sitemap
    from generator.pages import PageRenderer

    renderer = PageRenderer(site, env)
    files = [renderer.home()]
    for story in site.stories:
        positions = {i for i, c in enumerate(story.chapters) if c.source in changed}
        if not positions:
            continue
        files.append(renderer.story(story))
        slugs = {story.chapters[i].slug for i in positions}
        files.extend(renderer.work(story, only=lambda part, slugs=slugs: any(c.slug in slugs for c in part.chapters)))
        for i in sorted({j for p in positions for j in (p - 1, p, p + 1) if 0 <= j < len(story.chapters)}):
            files.append(renderer.chapter(story, i))
    touched = frozenset(s.slug for s in site.stories if any(c.source in changed for c in s.chapters))
    return files + render_feeds(site, now, touched) + (render_sitemap(site) if sitemap else [])


def _write_changed(files: list[OutputFile], output: Path) -> int:
    """Replace each file whose bytes changed, atomically, and keep the manifest true."""
    manifest_path = output / MANIFEST
    hashes = previous_manifest(output) or {}
    written = 0
    for item in files:
        digest = file_hash(item.data)
        if hashes.get(item.path) == digest and (output / item.path).is_file():
            continue
        atomic_write(output / item.path, item.data)
        hashes[item.path] = digest
        written += 1
    if written:
        atomic_write(manifest_path, "".join(f"{p}\t{h}\n" for p, h in sorted(hashes.items())).encode())
    return written


__all__ = ["BuildSession", "rebuild_chapters"]
