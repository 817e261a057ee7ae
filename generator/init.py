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


def init_site(root: Path) -> tuple[Path, ...]:
    """Write a new site into `root` (created when missing); returns the paths written.

    Refuses, writing nothing, when any of the files already exists.
    """
    if root.exists() and not root.is_dir():
        raise UsageError(f"{display_path(root)} is a file, not a folder; choose a folder for the new site")
    files = starter_files()
    existing = conflicts(root, files)
    if existing:
        names = "\n".join(f"  {display_path(p)}" for p in existing)
        raise UsageError(f"serialist init does not overwrite files, and these already exist:\n{names}\n"
                         "Move them away, or run `serialist init` in a new or empty folder.")
    return tuple(_write(root / item.path, item.data) for item in files)


def _write(target: Path, data: bytes) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as handle:  # "x": never replaces a file made since the check
            handle.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write {display_path(target)}: {exc.strerror or exc}") from None
    return target
