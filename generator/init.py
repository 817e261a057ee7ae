"""`serialist init`: a new site folder with settings, an example story and a publishing workflow.

The files come from the package data folder `generator/init-template/`. Names there
that would start with a dot start with `dot-` instead (`dot-gitignore` →
`.gitignore`), so that packaging tools and git treat them as plain files.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from generator.errors import UsageError, display_path

STARTER_PACKAGE = "generator"
STARTER_FOLDER = "init-template"  # not a Python name, so setuptools treats it as plain data
DOT_PREFIX = "dot-"


@dataclass(frozen=True, slots=True)
class StarterFile:
    """One file `init` writes: its path inside the new site, `/`-separated, and its bytes."""

    path: str
    data: bytes


def target_name(stored: str) -> str:
    """The site path of a stored starter file: each `dot-x` part becomes `.x`."""
    parts = PurePosixPath(stored).parts
    return "/".join("." + part[len(DOT_PREFIX):] if part.startswith(DOT_PREFIX) else part for part in parts)


def _walk(folder: Traversable, prefix: str = "") -> list[StarterFile]:
    files: list[StarterFile] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__" or entry.name.startswith("."):
            continue
        stored = f"{prefix}{entry.name}"
        if entry.is_dir():
            files.extend(_walk(entry, stored + "/"))
        else:
            files.append(StarterFile(target_name(stored), entry.read_bytes()))
    return files


def starter_files() -> tuple[StarterFile, ...]:
    """Every file of a new site, sorted by path."""
    root = importlib.resources.files(STARTER_PACKAGE) / STARTER_FOLDER
    return tuple(sorted(_walk(root), key=lambda f: f.path))


def _blocked(root: Path, relative: str) -> Path | None:
    """The existing path that stops `relative` from being written under `root`, or None."""
    target = root / relative
    if target.exists() or target.is_symlink():
        return target
    for parent in reversed(target.relative_to(root).parents[:-1]):
        candidate = root / parent
        if (candidate.exists() or candidate.is_symlink()) and not candidate.is_dir():
            return candidate
    return None


def conflicts(root: Path, files: tuple[StarterFile, ...]) -> tuple[Path, ...]:
    """Existing files that writing `files` under `root` would overwrite (or that are in the way)."""
    found = (_blocked(root, f.path) for f in files)
    return tuple(dict.fromkeys(p for p in found if p is not None))


GITIGNORE = ".gitignore"


@dataclass(frozen=True, slots=True)
class Started:
    """What `init_site` did: the files it wrote, and the lines it added to a `.gitignore` already there."""

    written: tuple[Path, ...]
    ignored: tuple[str, ...] = ()  # lines added to the existing `.gitignore` (none when it had them all)
    gitignore: Path | None = None  # that `.gitignore`, when there was one


def init_site(root: Path) -> Started:
    """Write a new site into `root` (created when missing).

    Refuses, writing nothing, when any of the files already exists, but for a `.gitignore` (a fresh clone
    of a repository made on GitHub often has one): the lines it lacks of the new site's are added to it,
    as `cargo init` does.
    """
    if root.exists() and not root.is_dir():
        raise UsageError(f"{display_path(root)} is a file, not a folder; choose a folder for the new site")
    every = starter_files()
    gitignore = root / GITIGNORE
    merge = gitignore.is_file() and not gitignore.is_symlink()
    files = tuple(item for item in every if item.path != GITIGNORE) if merge else every
    existing = conflicts(root, files)
    if existing:
        names = "\n".join(f"  {display_path(p)}" for p in existing)
        raise UsageError(f"serialist init does not overwrite files, and these already exist:\n{names}\n"
                         "Move them away, or run `serialist init` in a new or empty folder.")
    written = tuple(_write(root / item.path, item.data) for item in files)
    if not merge:
        return Started(written)
    ours = next(item.data for item in every if item.path == GITIGNORE)
    return Started(written, _extend_ignore(gitignore, ours), gitignore)


def _extend_ignore(gitignore: Path, ours: bytes) -> tuple[str, ...]:
    """Add to `gitignore` the patterns of `ours` (a `.gitignore`) that it lacks, with their comment; the
    patterns added."""
    try:
        text = gitignore.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise UsageError(f"cannot read {display_path(gitignore)}: {exc.strerror or exc}") from None
    have = {line.strip() for line in text.splitlines()}
    lines = ours.decode("utf-8").splitlines()
    missing = tuple(line for line in lines
                    if line.strip() and not line.startswith("#") and line.strip() not in have)
    if not missing:
        return ()
    comments = [line for line in lines if line.startswith("#")]
    addition = "\n".join([*comments, *missing]) + "\n"
    ended = "" if not text or text.endswith("\n") else "\n"  # the last line ended…
    addition = ended + ("\n" if text.strip() else "") + addition  # …and a blank line before ours
    try:
        with open(gitignore, "a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(addition)
    except OSError as exc:
        raise UsageError(f"cannot write {display_path(gitignore)}: {exc.strerror or exc}") from None
    return missing


def _write(target: Path, data: bytes) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as handle:  # "x": never replaces a file made since the check
            handle.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write {display_path(target)}: {exc.strerror or exc}") from None
    return target
