"""The build, as a flat list of named stages:
load → validate → select → render Markdown → render pages → feeds → write.
(On a first build, a process of its own compiles the theme's templates while the site loads; while
worker processes render the Markdown of a big site, the build imports the later stages.)

When nothing changed since the last build (see `stamp.py`) it does nothing,
without even importing the stages.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from generator.cache import CACHE_DIR, Cache
from generator.config import (STATIC_DIR, BuildOptions, SiteConfig, base_url_error, load_config,
                              normalise_base_url)
from generator.errors import ContentError, Problem, ProblemLog, UsageError, display_path
from generator.model import Site

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from generator.markdown import LinkTargets
    from generator.unpublished import NotPublished
from generator.progress import no_progress
from generator.output import MANIFEST, AnyFile, CopiedFile, OutputFile, check_output_location, write_output
from generator.stamp import BuildState, forget_state, input_stamp, load_state, output_stamp, save_state
from generator.theme import Theme, compile_into, find_theme


@dataclass(frozen=True, slots=True)
class BuildResult:
    stories: int
    chapters: int
    words: int
    files_written: int
    seconds: float
    warnings: tuple[Problem, ...] = ()
    timings: tuple[tuple[str, float], ...] = field(default=())
    up_to_date: bool = False
    # The files of content/ that are not published, and why (what `check` lists; not known to `build`).
    not_published: tuple[NotPublished, ...] = ()

    def summary(self, output: Path) -> str:
        if self.up_to_date:
            return (f"Up to date: nothing changed since the last build of {output} "
                    f"({self.stories} {'story' if self.stories == 1 else 'stories'}, "
                    f"{self.chapters} chapter{'s' * (self.chapters != 1)}, {self.words:,} words; "
                    f"{self.seconds:.2f} s)")
        return (f"Built {self.stories} {'story' if self.stories == 1 else 'stories'}, "
                f"{self.chapters} chapter{'s' * (self.chapters != 1)}, {self.words:,} words: "
                f"{self.files_written} files written to {output} in {self.seconds:.2f} s")


class _Stages:
    """Records how long each named stage took."""

    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.timings.append((name, now - self._last))
        self._last = now


def _settings(options: BuildOptions, theme: Theme) -> str:
    """The options and choices that change the output, for the up-to-date stamp."""
    return repr((options.drafts, options.future, options.base_url, options.strict, str(options.output.resolve()),
                 theme.name, [str(f) for f in theme.folders]))


def _up_to_date(root: Path, config: SiteConfig, theme: Theme, options: BuildOptions,
                now: datetime) -> tuple[str, BuildState | None, bool]:
    """The input stamp; the saved state when the output already matches it; and whether the output is as the
    last build left it, as far as is known (False: a file of it was edited, replaced or deleted since)."""
    if not (options.cache and options.write):
        return "", None, True
    inputs = input_stamp(root, [config.content_dir, root / STATIC_DIR, *theme.folders], [config.config_path],
                         _settings(options, theme))
    state = load_state(root, options.output)
    output = output_stamp(options.output, MANIFEST) if state else ""
    if state and state.current(inputs, output, now):
        return inputs, state, True
    return inputs, None, state is None or not state.output_changed(output)


RELEASE_WORDS = 1_000_000  # from here on, what a stage frees is worth giving back (see `_release_memory`)


def _release_memory(site: Site) -> None:
    """Give memory freed by a stage back to the system, which glibc's malloc would otherwise keep: after
    the Markdown of a long serial, that is a hundred megabytes and more. On a smaller site it is not worth
    the collector's pass over every object (tens of milliseconds)."""
    from generator.parallel import give_back_memory

    if sum(story.words for story in site.stories) < RELEASE_WORDS:
        return
    gc.collect()  # what only the collector can free is freed first
    give_back_memory()


def without_markdown(site: Site) -> Site:
    """The site without its chapters' Markdown (the tens of megabytes of a long serial), as a `Snapshot` keeps
    it: an incremental rebuild reads again the chapters it renders."""
    return replace(site, stories=tuple(replace(story, chapters=tuple(replace(chapter, body="")
                                                                     for chapter in story.chapters))
                                       for story in site.stories))


def _compile_ahead(theme: Theme, bytecode_dir: Path | None) -> BaseProcess | None:
    """A process compiling the theme's templates into `bytecode_dir` while this one loads the site and hands
    the Markdown to the workers (a processor would otherwise wait, and compiling a theme takes tens of
    milliseconds), when there are none there yet: on a first build, or after the cache was deleted."""
    if bytecode_dir is None:
        return None
    try:
        if next(os.scandir(bytecode_dir), None) is not None:
            return None  # compiled by an earlier build: only a template edited since is compiled again
    except OSError:
        pass  # not there yet
    from generator.parallel import ahead

    return ahead(partial(compile_into, theme, bytecode_dir))


def _next_due(site: Site, now: datetime) -> str | None:
    """When the earliest scheduled chapter comes due: the output is stale from then on."""
    due = [c.date for s in site.stories for c in s.chapters if not c.draft and c.date and c.date > now]
    return min(due).isoformat() if due else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a finished build knew: enough for `incremental.py` to redo only what one change touches."""

    root: Path
    options: BuildOptions
    config: SiteConfig
    theme: Theme
    now: datetime
    everything: Site  # every story and chapter as loaded, published or not, without the chapters' Markdown
    site: Site  # the published ones, rendered
    targets: LinkTargets  # where links between files lead


def build(root: Path, options: BuildOptions) -> BuildResult:
    """Build the site in `root` into `options.output`; raises SerialistError on bad input."""
    return build_with_snapshot(root, options, snapshot=False)[0]


def build_with_snapshot(root: Path, options: BuildOptions,
                        snapshot: bool = True) -> tuple[BuildResult, Snapshot | None]:
    """`build`, and what it knew at the end (None when it found the output up to date, or when not asked:
    without a snapshot, the chapters' Markdown is let go of once it is rendered)."""
    ahead: list[BaseProcess] = []
    try:
        return _build(root, options, snapshot, ahead)
    finally:
        for process in ahead:  # a build that failed early leaves nothing at work in its site once it is over
            process.join()


def _build(root: Path, options: BuildOptions, snapshot: bool,
           ahead: list[BaseProcess]) -> tuple[BuildResult, Snapshot | None]:
    """`build_with_snapshot`, which waits for the processes this one starts (`ahead`) to end."""
    started = time.perf_counter()
    stages = _Stages()
    now = options.now or datetime.now(timezone.utc)
    log = ProblemLog()

    config = load_config(root)
    if options.base_url is not None:
        error = base_url_error(options.base_url)
        if error:
            raise UsageError(f"--base-url: {error}")
        config = replace(config, base_url=normalise_base_url(options.base_url))
    if options.write:
        check_output_location(options.output, root, config.content_dir, root / CACHE_DIR)
    theme = find_theme(config)
    stages.done("config")
    inputs, state, trusted = _up_to_date(root, config, theme, options, now)
    if state is not None:
        return BuildResult(state.stories, state.chapters, state.words, 0, time.perf_counter() - started,
                           tuple(Problem(Path(p), line, message, "warning") for p, line, message in state.warnings),
                           tuple(stages.timings), up_to_date=True), None

    bytecode_dir = root / CACHE_DIR / "jinja" if options.cache and options.write else None
    compiling = _compile_ahead(theme, bytecode_dir)
    if compiling is not None:
        ahead.append(compiling)

    # Only a build that has work to do pays for importing the heavy stages.
    from generator.load import load_site
    from generator.markdown import Rendering, link_targets, rendered_site, site_jobs
    from generator.publish import select_published
    from generator.validate import validate_site

    site = load_site(config, log)
    stages.done("load")
    validate_site(site, log, now)
    try:
        log.raise_if_errors(strict=options.strict)
    except ContentError as exc:
        if options.write:
            raise
        from generator.unpublished import not_published_by_name

        published = select_published(site, now, drafts=options.drafts, future=options.future)
        raise ContentError(exc.problems, not_published_by_name(site, published, link_targets(site, published))) \
            from None
    stages.done("validate")
    everything = without_markdown(site) if snapshot else None
    loaded = loaded_pages(site)
    next_due = _next_due(site, now)
    published = select_published(site, now, drafts=options.drafts, future=options.future)
    stages.done("select")
    cache_notes: list[str] = []
    markdown_cache = Cache.for_site(root, "markdown", enabled=options.cache, writable=options.write)
    progress = options.progress or no_progress
    targets = link_targets(site, published)
    as_loaded = site if not options.write else None  # `check` lists the files not published: see below
    del site  # rendered, the chapters no longer hold their Markdown
    with Rendering(site_jobs(published), targets, markdown_cache, os.cpu_count() or 1, cache_notes,
                   progress) as markdown:
        # While worker processes render the Markdown of a big site, this one imports the later stages and
        # compiles the theme's templates. A template's error waits for the Markdown's: they come first.
        from generator.assets import copy_assets, copy_static, with_referenced_files
        from generator.epub import BOOK_IMAGE_LIMIT, EpubCache, render_epubs, too_big_for_books
        from generator.feeds import feed_files, render_sitemap
        from generator.pages import render_pages
        from generator.parallel import made
        from generator.theme import compile_templates, make_environment, static_files, template_problem

        env = make_environment(theme, bytecode_dir, auto_reload=False)
        if compiling is not None:
            compiling.join()  # then the templates are loaded, compiled, from `bytecode_dir`
        template_error: Exception | None = None
        try:
            compile_templates(env)
        except jinja2_errors() as exc:
            template_error = exc
        stages.done("templates")
        site = with_referenced_files(rendered_site(published, markdown.results(), log))
    markdown_cache.close()
    del published, markdown
    _release_memory(site)
    log.raise_if_errors(strict=options.strict)
    if template_error is not None:
        raise ContentError([template_problem(template_error, theme)])
    stages.done("markdown")
    try:
        pages = render_pages(site, env)  # each page is rendered as it is written
    except jinja2_errors() as exc:
        raise ContentError([template_problem(exc, theme)]) from None
    stages.done("pages")
    files: list[AnyFile] = [*pages, *feed_files(site, now), *render_sitemap(site)]
    stages.done("feeds")
    xhtml_cache = Cache.for_site(root, "xhtml", enabled=options.cache)  # open until the books are written
    if options.write:  # `check` has nothing to find in them
        files += render_epubs(site, EpubCache.for_site(root, enabled=options.cache), xhtml_cache,
                              workers=os.cpu_count() or 1)
    for image in too_big_for_books(site):
        size = image.source.stat().st_size
        log.warn(image.source, None, f"this image is {size / 2 ** 20:.0f} MB, more than the "
                 f"{BOOK_IMAGE_LIMIT >> 20} MB an image may be in an EPUB: the site shows it, but the story's EPUB "
                 "shows its description instead; save it smaller (a JPEG, say) to have it in the book")
    _release_memory(site)
    stages.done("epub")
    files += copy_assets(site, [f.path for f in files], log)
    files += [CopiedFile(path, source) for path, source in static_files(theme).items()]
    files.append(OutputFile(".nojekyll", b""))
    if config.cname:
        files.append(OutputFile("CNAME", config.cname.strip().encode() + b"\n"))
    redirects = old_addresses(site, env, files, options.output, loaded, log)
    files += redirects
    files += copy_static(site, {f.path: _what(f) for f in files}, log)
    log.raise_if_errors(strict=options.strict)
    stages.done("files")
    not_published: tuple[NotPublished, ...] = ()
    if as_loaded is not None:
        from generator.unpublished import not_published_files

        not_published = not_published_files(as_loaded, site, targets)
        del as_loaded
    output_notes: list[Problem] = []  # files kept in the output that Serialist did not make
    try:
        if options.write:
            if trusted:  # (the state of an output not to be trusted is kept until a build replaces it: it says so)
                forget_state(root, options.output)  # a build killed from here on must not leave a stale "up to date"
            written = write_output(lambda place: made(files, os.cpu_count() or 1, place, progress), options.output,
                                   scratch=options.scratch or root / CACHE_DIR,
                                   unpublished=options.drafts or options.future, warnings=output_notes,
                                   trusted=trusted)
        else:
            written = 0
            for page in [*pages, *redirects]:  # `check` renders every page all the same, to find the theme's errors
                page.make()
    except jinja2_errors() as exc:
        raise ContentError([template_problem(exc, theme)]) from None
    finally:
        xhtml_cache.close()
    stages.done("render pages and write")

    warnings = list(log.warnings) + [Problem(root / CACHE_DIR, None, note, "warning") for note in cache_notes] \
        + output_notes
    if not config.base_url:
        warnings.append(Problem(config.config_path, None, "no `base_url` is set, so no feeds or sitemap were "
                                "written; add `base_url = \"https://you.github.io/repo/\"` to site.toml "
                                "or pass --base-url", "warning"))
    result = BuildResult(
        stories=len(site.stories),
        chapters=site.chapter_total,
        words=site.words,
        files_written=written,
        seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        timings=tuple(stages.timings),
        not_published=not_published,
    )
    if inputs:
        save_state(root, options.output, BuildState(
            inputs=inputs, output=output_stamp(options.output, MANIFEST),
            valid_until=next_due, stories=result.stories, chapters=result.chapters,
            words=result.words, files=written,
            warnings=tuple((str(w.path), w.line, w.message) for w in warnings)))
    return result, (Snapshot(root, options, config, theme, now, everything, site, targets)
                    if everything is not None else None)


def loaded_pages(site: Site) -> frozenset[str]:
    """The addresses of every story and chapter loaded, published or not."""
    from generator import urls

    return frozenset(page for story in site.stories
                     for page in (urls.story_path(story), *(urls.chapter_path(story, c) for c in story.chapters)))


def old_addresses(site: Site, env: object, files: list[AnyFile], output: Path, loaded: frozenset[str],
                  log: ProblemLog) -> list[AnyFile]:
    """The pages at the site's old addresses (`aliases:`), where no file of the site (`files`, and the EPUBs
    that `check` does not make) is; and a warning for each page the last build wrote into `output` that is
    gone (`aliases.gone_pages`)."""
    from generator import urls
    from generator.aliases import check_redirects, gone_pages, redirects
    from generator.output import previous_manifest
    from generator.pages import render_redirects

    made = {file.path for file in files} | {urls.epub_path(story) for story in site.stories}
    kept = check_redirects(redirects(site), made, log)
    pages: list[AnyFile] = list(render_redirects(site, env, kept))  # type: ignore[arg-type]
    previous = previous_manifest(output)
    if previous:
        gone_pages(previous, made | {page.path for page in pages}, site, loaded, output, site.config.content_dir, log)
    return pages


def _what(file: AnyFile) -> str:
    """What the build puts at `file.path`, in words, for an error about a file of `static/` in its way."""
    if isinstance(file, CopiedFile):
        return display_path(file.source)
    return "the file of `cname` in site.toml" if file.path == "CNAME" else "a page of its own"


def jinja2_errors() -> type[Exception]:
    import jinja2

    return jinja2.TemplateError
