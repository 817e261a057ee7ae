"""Which files of `content/` are not published, and why: what `serialist check` lists under "Not published:".

A file beside the chapters is published only when a published text refers to it or it is a story's cover
(`assets.with_referenced_files`); the rest stays private, as outlines, notes and old versions are meant to.
So that an author sees at a glance what stays private, `check` names each such file with the reason: not
referenced by any published chapter; referenced only by a draft or a scheduled chapter (then it is
published with it: `--drafts`, `--future`, or on the chapter's date); an editor's backup or temporary file;
a second copy of a chapter; Markdown that is not a chapter; not in a story's folder. Hidden files and
folders are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote

from generator.assets import file_references
from generator.errors import display_path
from generator.load import (STORY_FILE, copy_of, is_backup_name, is_ignored_name, is_markdown_name,
                            looks_like_chapter)
from generator.markdown import LinkTargets, _chapter_jobs, _story_jobs, render_job
from generator.model import Asset, Site
from generator.names import walk_inside


@dataclass(frozen=True, slots=True)
class NotPublished:
    """A file of `content/` that the build does not publish, and why, in words."""

    path: Path
    why: str

    def __str__(self) -> str:
        return f"{display_path(self.path)}: {self.why}"


NOT_REFERENCED = "not referenced by any published chapter"


def _real(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def not_published_files(loaded: Site, published: Site, targets: LinkTargets) -> tuple[NotPublished, ...]:
    """The files of `content/` that are neither chapters (or story files) of `loaded` (the site as loaded) nor
    published by `published` (the site as built: its stories' files are those it publishes), with why.
    `targets` are the build's link targets."""
    config = loaded.config
    content = config.content_dir
    texts = {real for story in loaded.stories for path in (story.source, *(c.source for c in story.chapters))
             if (real := _real(path)) is not None}
    shown = {real for story in published.stories for asset in story.assets if (real := _real(asset.source))}
    candidates = {real: asset for story in loaded.stories for asset in story.assets
                  if (real := _real(asset.source)) is not None}
    referrers = _unpublished_references(loaded, published, targets, candidates)
    story_folders = {real for story in loaded.stories if not story.single_file
                     and (real := _real(story.source.parent)) is not None}
    found: list[NotPublished] = []
    for here, _, names in walk_inside(content, config.root.resolve()):
        if any(part.startswith(".") for part in here.relative_to(content).parts):
            continue
        markdown = {name[: -len(Path(name).suffix)].casefold(): here / name for name in names
                    if is_markdown_name(name)}
        for name in names:
            path = here / name
            real = _real(path)
            if name.startswith(".") or real is None or real in texts or real in shown:
                continue
            if is_ignored_name(name):
                why = "an editor's backup" if is_backup_name(name) else "an editor's temporary file"
            elif real in candidates:
                who = referrers.get(real)
                why = f"referenced only by {', '.join(who)}" if who else NOT_REFERENCED
            elif looks_like_chapter(path):
                why = "a chapter saved as .txt: rename it to .md to publish it"
            elif is_markdown_name(name) and (original := copy_of(path, markdown)) is not None:
                why = f"a second copy of {original.name}"
            elif is_markdown_name(name) and any(real.is_relative_to(folder) for folder in story_folders):
                why = "Markdown in a subfolder of a story, which is not a chapter"
            else:
                why = (f"not in a story's folder (one with a {STORY_FILE}) or a one-shot's "
                       "<name>.assets/ folder")
            found.append(NotPublished(path, why))
    return tuple(found)


def not_published_by_name(loaded: Site, published: Site, targets: LinkTargets) -> tuple[NotPublished, ...]:
    """`not_published_files` for a `check` that errors stop before the Markdown is rendered: a file beside the
    chapters counts as published when a published text of its story names it (its path from the text's folder,
    as a link or an image would) or it is the cover; the rest is as `not_published_files` says."""
    stories = []
    for story in published.stories:
        texts = [_read(story.source), *(_read(chapter.source) for chapter in story.chapters)]
        folder = story.source.parent
        kept = tuple(asset for asset in story.assets
                     if (story.cover and unquote(story.cover) == asset.path)
                     or any(_mentions(text, asset.source, folder) for text in texts))
        stories.append(replace(story, assets=kept))
    return not_published_files(loaded, replace(published, stories=tuple(stories)), targets)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return ""


def _mentions(text: str, file: Path, folder: Path) -> bool:
    try:
        relative = file.relative_to(folder).as_posix()
    except ValueError:
        return False
    return relative in text or quote(relative) in text


def _unpublished_references(loaded: Site, published: Site, targets: LinkTargets,
                            candidates: dict[Path, Asset]) -> dict[Path, list[str]]:
    """The files (by resolved path) that texts not published refer to → those texts, in words: the Markdown of
    drafts, scheduled chapters and stories not published yet, rendered (as it would be if it were published)."""
    stories = {story.source for story in published.stories}
    chapters = {chapter.source for story in published.stories for chapter in story.chapters}
    every_file = LinkTargets(targets.published, targets.unpublished,
                             {real: asset.url for real, asset in candidates.items()})
    by_path = {asset.path: real for real, asset in candidates.items()}
    found: dict[Path, list[str]] = {}

    def refer(paths: set[str], who: str) -> None:
        for path in sorted(paths):
            real = by_path.get(path)
            if real is not None and who not in found.setdefault(real, []):
                found[real].append(who)

    for story in loaded.stories:
        for chapter in story.chapters:
            if chapter.source in chapters:
                continue
            who = f"{'a draft' if chapter.draft else 'a scheduled chapter'} ({chapter.source.name})"
            for job in _chapter_jobs(story, chapter):
                refer(file_references(render_job(job, every_file)[0]), who)
            if story.single_file and story.source not in stories:
                for job in _story_jobs(story):
                    refer(file_references(render_job(job, every_file)[0]), who)
                if story.cover:
                    refer({asset.path for asset in story.assets if asset.url == story.cover}, who)
        if not story.single_file and story.source not in stories:
            who = f"{story.source.parent.name}/{STORY_FILE}, of a story with no chapter published yet"
            for job in _story_jobs(story):
                refer(file_references(render_job(job, every_file)[0]), who)
            if story.cover:
                refer({asset.path for asset in story.assets if asset.url == story.cover}, who)
    return found
