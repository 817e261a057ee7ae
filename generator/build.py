"""The build, as a flat list of named stages:
load → validate → select → render Markdown → render pages → feeds → write.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from generator.cache import CACHE_DIR, Cache
from generator.config import BuildOptions, load_config, normalise_base_url, base_url_error
from generator.errors import ContentError, Problem, ProblemLog, UsageError
from generator.feeds import render_feeds, render_sitemap
from generator.load import load_site
from generator.markdown import link_targets, render_site
from generator.output import OutputFile, check_output_location, write_output
from generator.pages import render_pages
from generator.publish import select_published
from generator.theme import find_theme, make_environment, static_files, template_problem
from generator.validate import validate_site


@dataclass(frozen=True, slots=True)
class BuildResult:
    stories: int
    chapters: int
    words: int
    files_written: int
    seconds: float
    warnings: tuple[Problem, ...] = ()
    timings: tuple[tuple[str, float], ...] = field(default=())

    def summary(self, output: Path) -> str:
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


def build(root: Path, options: BuildOptions) -> BuildResult:
    """Build the site in `root` into `options.output`; raises SerialistError on bad input."""
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
        check_output_location(options.output, root, config.content_dir)
    theme = find_theme(config)
    stages.done("config")

    site = load_site(config, log)
    stages.done("load")
    validate_site(site, log, now)
    log.raise_if_errors(strict=options.strict)
    stages.done("validate")
    published = select_published(site, now, drafts=options.drafts, future=options.future)
    stages.done("select")
    cache_notes: list[str] = []
    markdown_cache = Cache.for_site(root, "markdown", enabled=options.cache, writable=options.write)
    site = render_site(published, link_targets(site, published), log, markdown_cache,
                       workers=os.cpu_count() or 1, warnings=cache_notes)
    log.raise_if_errors(strict=options.strict)
    stages.done("markdown")
    env = make_environment(theme)
    try:
        files = render_pages(site, env)
    except jinja2.TemplateError as exc:
        raise ContentError([template_problem(exc, theme)]) from None
    stages.done("pages")
    files += render_feeds(site, now) + render_sitemap(site)
    stages.done("feeds")
    files += [OutputFile(path, source.read_bytes()) for path, source in static_files(theme).items()]
    files.append(OutputFile(".nojekyll", b""))
    if config.cname:
        files.append(OutputFile("CNAME", config.cname.strip().encode() + b"\n"))
    written = write_output(files, options.output) if options.write else 0
    stages.done("write")

    warnings = list(log.warnings) + [Problem(root / CACHE_DIR, None, note, "warning") for note in cache_notes]
    if not config.base_url:
        warnings.append(Problem(config.config_path, None, "no `base_url` is set, so no feeds or sitemap were "
                                "written; add `base_url = \"https://you.github.io/repo/\"` to site.toml "
                                "or pass --base-url", "warning"))
    return BuildResult(
        stories=len(site.stories),
        chapters=site.chapter_total,
        words=site.words,
        files_written=written,
        seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        timings=tuple(stages.timings),
    )
