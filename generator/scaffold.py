"""`serialist new`: files with the right front matter for a new story or chapter."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Callable

from generator.config import CONTENT_DIR
from generator.errors import UsageError
from generator.load import STORY_FILE, is_ignored_name, is_markdown_name, natural_key, slugify
from generator.oneshot import find_oneshot, grow_oneshot


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def new_story(root: Path, slug: str, title: str | None = None) -> Path:
    clean = slugify(slug)
    if not clean or clean != slug:
        raise UsageError(f"`{slug}` is not a usable story name; use lower-case letters, digits and -, "
                         f"like `{clean or 'my-story'}`")
    folder = root / CONTENT_DIR / clean
    if folder.exists():
        raise UsageError(f"{folder} already exists; choose another name")
    folder.mkdir(parents=True)
    title = title or clean.replace("-", " ").title()
    path = folder / STORY_FILE
    path.write_text(
        "---\n"
        f"title: {_yaml_string(title)}\n"
        "rating: Not Rated  # General Audiences, Teen And Up Audiences, Mature, Explicit\n"
        "warnings: []  # e.g. [No Archive Warnings Apply] or your own content warnings\n"
        "fandoms: []\n"
        "relationships: []\n"
        "characters: []\n"
        "tags: []\n"
        "status: ongoing  # ongoing, complete, hiatus or abandoned\n"
        "# chapters_planned: 10\n"
        "# series: Name of the Series\n"
        "# series_part: 1  # its place in the series\n"
        "notes_before: \"\"\n"
        "notes_after: \"\"\n"
        "---\n"
        "The summary of the story goes here.\n",
        "utf-8",
    )
    return path


def new_chapter(root: Path, story: str, title: str | None = None, today: date | None = None,
                say: Callable[[str], None] = lambda _: None) -> Path:
    """The next chapter of `content/<story>/`, a draft; a one-shot `content/<story>.md` is first made a story
    folder with its text as chapter 1 (`oneshot.grow_oneshot`, which tells `say` what it does)."""
    if not story or story in (".", "..") or "/" in story or "\\" in story:
        raise UsageError(f"`{story}` is not the name of a story; give the name of its folder in content/, "
                         "like `serialist new chapter my-story`")
    folder = root / CONTENT_DIR / story
    if folder.is_symlink() and not folder.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"content/{story} is a symbolic link to {folder.resolve()}, outside the site folder; "
                         "nothing outside the site is written: put the story's folder inside the site")
    oneshot = find_oneshot(root, story) if not (folder / STORY_FILE).is_file() else None
    if oneshot is not None:
        folder = grow_oneshot(root, oneshot, say)
    if not (folder / STORY_FILE).is_file():
        raise UsageError(f"there is no story `{story}` ({folder / STORY_FILE} is missing); "
                         f"create it with `serialist new story {story}`")
    chapters = sorted((p for p in folder.iterdir() if is_markdown_name(p.name) and p.name != STORY_FILE
                       and not is_ignored_name(p.name)),
                      key=lambda p: natural_key(p.name))
    number = len(chapters) + 1
    width = max(2, len(str(number)))
    name = slugify(title) if title else f"chapter-{number}"
    path = folder / f"{number:0{width}d}-{name}.md"
    if path.exists():
        raise UsageError(f"{path} already exists")
    title_line = f"title: {_yaml_string(title)}\n" if title else f"# title: \"Chapter {number}\"\n"
    path.write_text(
        "---\n"
        f"{title_line}"
        f"date: {(today or date.today()).isoformat()}\n"
        "draft: true  # remove this line to publish\n"
        "summary: \"\"\n"
        "warnings: []\n"
        "notes_before: \"\"\n"
        "notes_after: \"\"\n"
        "---\n"
        "The chapter text goes here.\n",
        "utf-8",
    )
    return path
