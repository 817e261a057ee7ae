"""A one-shot that grows a second chapter: `content/<name>.md` → `content/<slug>/`.

`serialist new chapter <name>` on a one-shot first makes it a story folder, as
`load_oneshot` reads it: the story's fields and the summary go to `story.md`,
the text with the chapter's fields (`date`, `updated`, notes, `warnings`,
`draft`) to `01-chapter-1.md`, and the files of `<name>.assets/` into the folder.
Every address stays: the folder is named after the story's URL name, and the
first chapter says `slug: chapter-1`, the URL name a one-shot's text has, which
also keeps its feed guid (`feeds.guid`). Relative links and images in the text,
the summary and the notes are rewritten for their new place, and the rewrite is
checked by rendering both versions.

Nothing is overwritten: the folder is new, the files are written into it, the
one-shot's files moved in, the result loaded and compared with the one-shot, and
only then are `<name>.md` and the emptied `<name>.assets/` removed. When any step
fails, what was done is undone.
"""

from __future__ import annotations

import os
import re
from html import unescape
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import frontmatter
import yaml

from generator.assets import ASSETS_SUFFIX
from generator.config import CONTENT_DIR, load_config
from generator.errors import ProblemLog, UsageError
from generator.load import (ONESHOT_CHAPTER_SLUG, STORY_FILE, is_ignored_name, load_oneshot, load_story_folder,
                            parse_document, read_text, slugify)
from generator.model import Story

FIRST_CHAPTER_FILE = f"01-{ONESHOT_CHAPTER_SLUG}.md"

# Where the fields of a one-shot go (see `load_oneshot`): `warnings` to both, as a one-shot shows them on the
# work and above its text; `summary` becomes story.md's body; `slug` names the folder; `number` is dropped (a
# one-shot's text is always chapter 1); any other field (unknown ones too) stays with the story.
CHAPTER_FIELDS = ("date", "updated", "notes_before", "notes_after", "warnings", "draft")
_NOT_CARRIED = ("summary", "slug", "number")


# --- links and images: relative to content/, then to content/<slug>/ -------------------------------------------

# A link's or image's destination in Markdown: inline `](dest`, a reference `[label]: dest`, or an HTML
# `src=`/`href=`; one pattern, so that no destination is rewritten twice.
_DESTINATION = re.compile(
    r"(?P<inline>\]\([ \t]*(?:\n[ \t]*)?)(?P<idest><[^<>\n]*>|[^\s()<>]+(?:\([^\s()]*\)[^\s()<>]*)*)"
    r"|^(?P<ref>[ \t]{0,3}\[(?!\^)[^\]\n]+\]:[ \t]*(?:\n[ \t]*)?)(?P<rdest><[^<>\n]*>|\S+)"
    r"|(?P<attr>\s(?:src|href)[ \t]*=[ \t]*)(?P<adest>\"[^\"]*\"|'[^']*'|[^\s>\"']+)",
    re.MULTILINE | re.IGNORECASE)
_PARTS = (("inline", "idest"), ("ref", "rdest"), ("attr", "adest"))


def _is_local(ref: str) -> bool:
    parts = urlsplit(ref)
    return not (parts.scheme or parts.netloc or not parts.path or ref.startswith(("/", "\\")))


class _Move:
    """Where a one-shot's text and files go, and how a reference from it changes."""

    def __init__(self, oneshot: Path, folder: Path):
        self.content = oneshot.parent
        self.stem = oneshot.stem
        self.oneshot = oneshot
        self.assets = oneshot.with_name(oneshot.stem + ASSETS_SUFFIX)
        self.folder = folder
        self.chapter = folder / FIRST_CHAPTER_FILE

    def path(self, ref: str) -> str:
        """A relative path written in the one-shot (from content/), written from the story folder instead."""
        trimmed = ref
        while trimmed.startswith("./"):
            trimmed = trimmed[2:]
        head, _, tail = trimmed.partition("/")
        if unquote(head) == self.stem + ASSETS_SUFFIX:
            return tail or "./"
        if unquote(trimmed) == self.oneshot.name:
            return FIRST_CHAPTER_FILE
        return "../" + ref

    def reference(self, ref: str) -> str:
        if not _is_local(ref):
            return ref
        path = urlsplit(ref).path
        if not ref.startswith(path):
            return ref
        return self.path(path) + ref[len(path):]

    def text(self, markdown: str) -> str:
        """Every relative destination in `markdown` rewritten for the story folder."""
        def one(match: re.Match[str]) -> str:
            lead, dest = next((match.group(before), match.group(name)) for before, name in _PARTS
                              if match.group(name) is not None)
            opener, closer = (dest[0], dest[-1]) if dest[:1] in ("<", '"', "'") and len(dest) > 1 else ("", "")
            inner = dest[len(opener):len(dest) - len(closer)]
            return lead + opener + self.reference(inner) + closer

        return _DESTINATION.sub(one, markdown)

    def moved(self, target: Path) -> Path:
        """Where a file the one-shot refers to is once moved."""
        if target == self.oneshot:
            return self.chapter
        if target == self.assets or target.is_relative_to(self.assets):
            return self.folder / target.relative_to(self.assets)
        return target


_RENDERED_URL = re.compile(r"""(\s(?:href|src)\s*=\s*)("[^"]*"|'[^']*'|[^\s>"']+)""", re.IGNORECASE)


def _rendered(markdown: str, base: Path, moved: Callable[[Path], Path]) -> str:
    """The HTML of `markdown` with every relative link and image made the file it names, after the move."""
    from generator.markdown import markdown as parser

    def canonical(match: re.Match[str]) -> str:
        ref = unescape(match.group(2).strip("\"'"))
        if not _is_local(ref):
            return f'{match.group(1)}"{ref}"'
        parts = urlsplit(ref)
        target = moved(Path(os.path.normpath(base / unquote(parts.path))))
        query = f"?{parts.query}" if parts.query else ""
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        return f'{match.group(1)}"file:{target.as_posix()}{query}{fragment}"'

    return _RENDERED_URL.sub(canonical, parser().render(markdown, {"docId": "oneshot"}))


# --- front matter: each field as written, or written anew -----------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """YAML for one field: text of several lines as a `|` block, as authors write notes."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def _dump(key: str, value: Any) -> str:
    return yaml.dump({key: value}, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10**9,
                     default_flow_style=False)


def _written_fields(text: str) -> tuple[str, dict[str, str]]:
    """The front matter's lines before its first field, and each top-level field's lines as written (with the
    comments after it); ({} when its fields do not each start a line of their own)."""
    try:
        fm, _ = frontmatter.YAMLHandler().split(text)
        node = yaml.compose(fm, Loader=yaml.SafeLoader)
    except (ValueError, yaml.YAMLError):
        return "", {}
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        return "", {}
    starts = [(key.start_mark.line, key.start_mark.column, str(key.value)) for key, _ in node.value]
    if any(column != 0 for _, column, _ in starts) or len({line for line, _, _ in starts}) != len(starts):
        return "", {}
    lines = fm.split("\n")
    ends = [line for line, _, _ in starts[1:]] + [len(lines)]
    fields = {key: "\n".join(lines[line:end]).rstrip("\n") + "\n" for (line, _, key), end in zip(starts, ends)}
    head = "\n".join(lines[: starts[0][0]] if starts else lines).strip()
    return (head + "\n" if head else ""), fields


def _front_matter(head: str, written: dict[str, str], values: dict[str, Any], path: Path) -> str:
    """Front matter with `values`: each field as `written` (as the author wrote it), the others written anew;
    all of them anew if that does not read back as `values`."""
    for anew in (False, True):
        parts = [head] if not anew else []
        parts += [written[key] if key in written and not anew else _dump(key, value) for key, value in values.items()]
        text = "---\n" + "".join(parts) + "---\n"
        doc = parse_document(path, text, ProblemLog())
        if doc is not None and doc.meta == values:
            return text
    raise UsageError(f"cannot write the fields of {path.name} into a story folder (they read back differently); "
                     "make the folder by hand, as the README's \"A story\" describes (nothing was changed)")


# --- the move --------------------------------------------------------------------------------------------------

def _files(folder: Path) -> list[Path]:
    """Every file and link in `folder` and below (hidden and temporary ones too), folders not followed."""
    found: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            found += _files(entry)
        else:
            found.append(entry)
    return found


def _same(old: Story, new: Story, texts: dict[str, str]) -> list[str]:
    """What differs between the one-shot and the story folder as loaded (nothing, when all went well)."""
    differ = [name for name in ("slug", "title", "author", "rating", "warnings", "fandoms", "relationships",
                                "characters", "tags", "series", "series_part", "status", "chapters_planned",
                                "language", "cover", "line_breaks")
              if getattr(old, name) != getattr(new, name)]
    if new.summary != texts["summary"].strip():
        differ.append("summary")
    if sorted(a.path for a in old.assets) != sorted(a.path for a in new.assets):
        differ.append("files")
    if len(new.chapters) != 1:
        return differ + ["chapters"]
    was, now = old.chapters[0], new.chapters[0]
    differ += [name for name in ("slug", "number", "title", "date", "updated", "warnings", "draft")
               if getattr(was, name) != getattr(now, name)]
    differ += [name for name in ("notes_before", "notes_after") if getattr(now, name) != texts[name].strip()]
    if now.body != texts["body"]:
        differ.append("text")
    return differ


def find_oneshot(root: Path, name: str) -> Path | None:
    """The one-shot `content/<name>.md`, if there is one."""
    if not name or Path(name).name != name or name in (".", ".."):
        return None
    path = root / CONTENT_DIR / f"{name}.md"
    return path if path.is_file() and not is_ignored_name(path.name) else None


def grow_oneshot(root: Path, oneshot: Path, say: Callable[[str], None]) -> Path:
    """Make the one-shot `oneshot` a story folder with its text as chapter 1; the folder. `say` is told each step."""
    config = load_config(root)
    log = ProblemLog()
    story = load_oneshot(oneshot, config, log)
    source = read_text(oneshot, ProblemLog())
    doc = parse_document(oneshot, source, ProblemLog()) if source is not None else None
    if log.errors or story is None or doc is None or source is None:
        first = log.errors[0] if log.errors else None
        where = f"line {first.line}: {first.message}" if first and first.line else first.message if first else ""
        raise UsageError(f"{oneshot} has errors to fix first ({where}); `serialist check` lists them all. "
                         "Then run the command again (nothing was changed)")
    if story.slug != slugify(story.slug) or not story.slug:
        raise UsageError(f"{oneshot} has no usable URL name (`slug: {story.slug}`); fix it first")
    folder = oneshot.parent / story.slug
    move = _Move(oneshot, folder)
    if folder.exists() or folder.is_symlink():
        raise UsageError(f"{folder} already exists, so {oneshot.name} cannot become that story folder; "
                         f"rename or remove {folder.name}/ first (nothing was changed)")
    files = _files(move.assets)
    chapters = [f for f in files if f.parent == move.assets and f.suffix.lower() == ".md"]
    if chapters:
        raise UsageError(f"{chapters[0]} would become a chapter of the story once in {folder.name}/; move it out "
                         f"of {move.assets.name}/ first (nothing was changed)")

    # The texts, rewritten for the folder, and checked: each must render to the same HTML and files.
    texts = {"body": doc.body, "summary": clean(doc.meta.get("summary")),
             "notes_before": raw(doc.meta.get("notes_before")), "notes_after": raw(doc.meta.get("notes_after"))}
    moved = {key: move.text(text) for key, text in texts.items()}
    for key, was in texts.items():
        if _rendered(was, move.content, move.moved) != _rendered(moved[key], folder, lambda p: p):
            where = "text" if key == "body" else f"`{key}`"
            raise UsageError(f"{oneshot}: the links or images of its {where} cannot be rewritten for "
                             f"{folder.name}/ safely; make the story folder by hand (nothing was changed)")

    head, written = _written_fields(source)
    story_values = {k: v for k, v in doc.meta.items()
                    if k == "warnings" or (k not in CHAPTER_FIELDS and k not in _NOT_CARRIED)}
    story_written = dict(written)
    if isinstance(story_values.get("cover"), str):
        story_values["cover"] = move.path(story_values["cover"].strip())
        story_written.pop("cover", None)
    chapter_values: dict[str, Any] = {"slug": ONESHOT_CHAPTER_SLUG}
    chapter_values.update((k, v) for k, v in doc.meta.items() if k in CHAPTER_FIELDS)
    chapter_written = {k: v for k, v in written.items() if k in CHAPTER_FIELDS}
    chapter_written["slug"] = f"slug: {ONESHOT_CHAPTER_SLUG}  # the address it had as a one-shot (and its feed id)\n"
    for key in ("notes_before", "notes_after"):
        if key in chapter_values and moved[key] != texts[key]:
            chapter_values[key] = moved[key]
            chapter_written.pop(key, None)
    summary = moved["summary"].strip()
    story_text = _front_matter(head, story_written, story_values, folder / STORY_FILE)
    story_text += summary + "\n" if summary else ""
    chapter_text = _front_matter("", chapter_written, chapter_values, move.chapter) + moved["body"]

    # Write, move in, check, and only then remove the one-shot.
    made: list[Path] = []
    renamed: list[tuple[Path, Path]] = []
    try:
        folder.mkdir()
        made.append(folder)
        for path, data in ((folder / STORY_FILE, story_text), (move.chapter, chapter_text)):
            with open(path, "x", encoding="utf-8", newline="\n") as out:
                out.write(data)
            made.append(path)
        for file in files:
            target = folder / file.relative_to(move.assets)
            for parent in reversed(target.relative_to(folder).parents[:-1]):
                if not (folder / parent).exists():
                    (folder / parent).mkdir()
                    made.append(folder / parent)
            if target.exists() or target.is_symlink():
                raise FileExistsError(0, "a file of that name is there already", str(target))
            file.rename(target)
            renamed.append((file, target))
        grown = load_story_folder(folder, config, ProblemLog())
        differ = ["everything"] if grown is None else _same(story, grown, moved)
        if differ:
            raise _Undo(f"{folder.name}/ would not show the same as {oneshot.name} ({', '.join(differ)} "
                        "differ); make the story folder by hand (nothing was changed)")
    except (OSError, _Undo) as exc:
        try:
            for file, target in reversed(renamed):
                target.rename(file)
            for path in reversed(made):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
        except OSError as undo:
            raise UsageError(f"cannot make the story folder {folder} ({exc}), nor undo it: {undo.filename}: "
                             f"{undo.strerror}; move the files of {folder.name}/ back by hand") from None
        if isinstance(exc, _Undo):
            raise UsageError(str(exc)) from None
        raise UsageError(f"cannot make the story folder {folder}: {exc.strerror} "
                         f"({exc.filename}); nothing was changed") from None

    say(f"Created {folder}{os.sep}")
    say(f"Wrote {folder / STORY_FILE}: the story's fields and summary, from {oneshot.name}")
    say(f"Wrote {move.chapter}: the text of {oneshot.name} as chapter 1, with its date and notes, "
        f"at the same address (`slug: {ONESHOT_CHAPTER_SLUG}`)")
    for file, target in renamed:
        say(f"Moved {file} to {target}")
    try:
        oneshot.unlink()
        say(f"Removed {oneshot}")
        if move.assets.is_dir() and not move.assets.is_symlink():
            for empty in sorted((p for p in move.assets.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                empty.rmdir()
            move.assets.rmdir()
            say(f"Removed {move.assets}{os.sep} (now empty)")
    except OSError as exc:
        raise UsageError(f"{folder}{os.sep} is made, but {exc.filename} cannot be removed ({exc.strerror}); "
                         "remove it yourself, or the site has the story twice") from None
    for path, line in _mentions(oneshot, folder):
        say(f"Note: {path}:{line} names {oneshot.name} or {move.assets.name}/; a link to the text must now "
            f"name {folder.name}/{FIRST_CHAPTER_FILE}, and a file {folder.name}/… instead")
    return folder


class _Undo(Exception):
    """The story folder came out different from the one-shot: undo the move."""


def clean(value: object) -> str:
    return "" if value is None or isinstance(value, (bool, list, dict)) else str(value).strip()


def raw(value: object) -> str:
    return "" if value is None or isinstance(value, (bool, list, dict)) else str(value)


def _mentions(oneshot: Path, folder: Path) -> list[tuple[Path, int]]:
    """The other Markdown files of the site that name the one-shot or its files (links that no longer lead
    anywhere)."""
    names = (oneshot.name, oneshot.stem + ASSETS_SUFFIX + "/")
    found = []
    for path in sorted(oneshot.parent.rglob("*.md")):
        if path.is_relative_to(folder) or is_ignored_name(path.name) or not path.is_file():
            continue
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.split("\n"), start=1):
            if any(name in line for name in names):
                found.append((path, number))
    return found
