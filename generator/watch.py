"""Watching a site folder: which file changes matter, and one rebuild per burst of them.

Every change is classified by where it happened (Zola's `detect_change_kind`):

- `content`: anything under `content/` (chapters, story files, images) or `static/`;
- `config`: `site.toml`;
- `theme`: anything under `themes/`;
- `ignored`: everything else: the output folder, `.git`, `.serialist-cache`, the dev
  server's private build folder, editors' scratch files, hidden files, and files
  the build does not read (README.md, ...).

Changes that are not ignored are collected until the site folder has been quiet
for a moment (`QUIET_SECONDS`), then handed over as one `ChangeBatch`. An
editor's atomic save (write a temp file, rename it onto the real one) is one
burst and names only the real file; copying in 200 chapters is one burst too.

A save that writes an existing file in place (open, write, close) is known to be
over when the system reports the file closed after writing (inotify's
`IN_CLOSE_WRITE`): when every pending change is such a finished in-place write,
the batch goes after a much shorter quiet moment (`WRITTEN_QUIET_SECONDS`), so
that saving a chapter does not wait out the full `QUIET_SECONDS`. Creations,
deletions, renames and attribute changes always wait the full moment.

Symbolic links to folders: the polling observer follows them (so a story folder
linked in from elsewhere is watched). The OS-events observer does not: it watches
every folder inside the site under its own name, so a change in a folder that a
link inside the site points at (`content/story -> ../stories/story`) comes under
the folder's real path, which the build does not read as such. So the watcher
keeps a map of such links (`_LoopGuard.linked`: links whose target is inside the
site folder and not in an ignored folder; links that lead outside the site are
never followed, the build refuses them) and reports such a change under the
link's path as well (`content/story/2.md`), which is what the build reads. The map
is made again when a link or a folder is created, deleted or moved. A link that
leads back into a folder it is reached through (`loop -> ..`, or two links
pointing at each other's folders) would make every walk of the site go on
forever: it is never followed, is watched as a file (its removal is seen), and is
reported once, in both modes, through `on_problem`.
"""

from __future__ import annotations

import enum
import os
import stat
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from generator.config import CONFIG_FILE, CONTENT_DIR, STATIC_DIR
from generator.errors import Problem
from generator.load import is_ignored_name

QUIET_SECONDS = 0.05
# After in-place writes that have all been closed (see the module's doc): long enough for an editor's
# "save all" to write its other files, far shorter than QUIET_SECONDS.
WRITTEN_QUIET_SECONDS = 0.01
POLL_SECONDS = 0.5
OUTPUT_DIR = "output"
CACHE_DIR = ".serialist-cache"
THEMES_DIR = "themes"

# watchdog event types that mean a file's content or existence changed; "attrib" (watchdog >= 5's
# EVENT_TYPE_ATTRIB) is `touch`.
# Opened / closed events are not among them: the build reading a chapter must not trigger a build.
_CHANGE_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, "attrib"})


class ChangeKind(enum.Enum):
    """What a changed file is to the build; later kinds need more rebuilding."""

    IGNORED = "ignored"
    CONTENT = "content"
    THEME = "theme"
    CONFIG = "config"

    @property
    def weight(self) -> int:
        return list(ChangeKind).index(self)


def is_temp_file(name: str) -> bool:
    """Whether a file name is an editor's or the OS's scratch file (or hidden), never part of the site.

    vim's `4913` and `name~`, `.name.swp`/`.swx`, JetBrains' `___jb_tmp___`/`___jb_old___`,
    GNOME's `.goutputstream-*`, emacs' `.#name` and `#name#`, `.DS_Store`. The loader
    skips the same names (`generator.load.is_ignored_name`, the canonical list).
    """
    return is_ignored_name(name)


@dataclass(frozen=True, slots=True)
class SiteLayout:
    """Where things are in a watched site folder."""

    root: Path  # resolved
    ignored: tuple[Path, ...]  # resolved folders whose changes never count

    def ignores(self, path: Path) -> bool:
        """Whether `path` (absolute) is in one of the ignored folders."""
        return any(path.is_relative_to(folder) for folder in self.ignored)

    @classmethod
    def of(cls, root: Path, ignore: Iterable[Path] = ()) -> SiteLayout:
        """The layout of the site in `root`; `ignore` adds folders to leave alone (the private build folder)."""
        root = root.resolve()
        folders = (root / OUTPUT_DIR, root / CACHE_DIR, root / ".git", *ignore)
        return cls(root, tuple(Path(folder).resolve() for folder in folders))


def classify(path: Path, layout: SiteLayout) -> ChangeKind:
    """The kind of change a change to `path` (absolute) is."""
    if layout.ignores(path):
        return ChangeKind.IGNORED
    try:
        parts = path.relative_to(layout.root).parts
    except ValueError:
        return ChangeKind.IGNORED
    if not parts or any(is_temp_file(part) for part in parts):
        return ChangeKind.IGNORED
    if parts == (CONFIG_FILE,):
        return ChangeKind.CONFIG
    if parts[0] in (CONTENT_DIR, STATIC_DIR):
        return ChangeKind.CONTENT
    if parts[0] == THEMES_DIR:
        return ChangeKind.THEME
    return ChangeKind.IGNORED


def written_path(event: FileSystemEvent) -> Path | None:
    """The file a "closed after writing" event names (the end of an in-place save); None for other events."""
    if event.event_type != EVENT_TYPE_CLOSED or event.is_directory or not event.src_path:
        return None
    return Path(os.fsdecode(event.src_path))


def event_paths(event: FileSystemEvent) -> tuple[Path, ...]:
    """The paths a watchdog event changed: both ends of a move; none for opens, closes and folder mtimes."""
    if event.event_type not in _CHANGE_EVENTS:
        return ()
    if event.is_directory and event.event_type in (EVENT_TYPE_MODIFIED, "attrib"):
        return ()  # a folder's mtime changes whenever a file in it does, temp files included
    raw = [event.src_path, event.dest_path] if event.event_type == EVENT_TYPE_MOVED else [event.src_path]
    return tuple(Path(os.fsdecode(p)) for p in raw if p)


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """One burst of changes: what the build callback gets."""

    paths: frozenset[Path]
    kind: ChangeKind  # the kind that needs the most rebuilding (config > theme > content)

    @classmethod
    def of(cls, changes: Mapping[Path, ChangeKind]) -> ChangeBatch:
        kind = max(changes.values(), key=lambda k: k.weight, default=ChangeKind.IGNORED)
        return cls(frozenset(changes), kind)

    def describe(self, root: Path) -> str:
        """`content/story/3.md changed`, `themes/x/style.css and 4 more changed`."""
        names = sorted(_relative(path, root) for path in self.paths)
        if not names:
            return "nothing changed"
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        return f"{names[0]}{more} changed"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class Debouncer:
    """Collects changes and calls `on_batch` once they have stopped coming for `quiet` seconds.

    When every pending change is an in-place write (`add(..., in_place=True)`) that has
    since been reported closed (`written`), `written_quiet` seconds are enough.
    `on_batch` runs on the debouncer's own thread, one batch at a time; changes that
    arrive while it runs make the next batch.
    """

    def __init__(self, on_batch: Callable[[ChangeBatch], object], quiet: float = QUIET_SECONDS,
                 written_quiet: float = WRITTEN_QUIET_SECONDS) -> None:
        self._on_batch = on_batch
        self._quiet = quiet
        self._written_quiet = min(written_quiet, quiet)
        self._pending: dict[Path, ChangeKind] = {}
        self._open: set[Path] = set()  # pending paths written in place and not closed since
        self._other = False  # a pending change that is not an in-place write: wait the full quiet moment
        self._last_change = 0.0
        self._stopped = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="serialist-debounce", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, path: Path, kind: ChangeKind, in_place: bool = False) -> None:
        """A change to `path`; `in_place`: its content was written (a `modified` event), nothing more."""
        with self._wake:
            self._pending[path] = kind
            if in_place:
                self._open.add(path)
            else:
                self._other = True
            self._last_change = time.monotonic()
            self._wake.notify()

    def has_pending(self) -> bool:
        """Whether changes have come that no batch has taken yet (work in between may stop for them)."""
        with self._wake:
            return bool(self._pending)

    def written(self, path: Path) -> None:
        """`path` was closed after writing: an in-place save of it is complete."""
        with self._wake:
            if path in self._open:
                self._open.discard(path)
                self._last_change = time.monotonic()
                self._wake.notify()

    def _current_quiet(self) -> float:
        return self._written_quiet if not (self._other or self._open) else self._quiet

    def stop(self) -> None:
        """Drop pending changes, wait for a running batch to finish."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _next_batch(self) -> ChangeBatch | None:
        with self._wake:
            self._wake.wait_for(lambda: self._stopped or self._pending)
            while not self._stopped:
                remaining = self._last_change + self._current_quiet() - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            if self._stopped:
                return None
            batch = ChangeBatch.of(self._pending)
            self._pending = {}
            self._open = set()
            self._other = False
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._on_batch(batch)
            except Exception:  # a bug in the callback must not stop the watching
                traceback.print_exc()


def symlink_loop(path: str, root: str) -> Problem | None:
    """The problem to report if `path`, reached by walking down from the folder `root`, is a link to a folder the
    walk came through; None for anything else.

    That folder contains `path` again, so following the link never ends (`loop -> ..`), or, through other
    links, leads back to it (`a/to-b -> ../b` beside `b/to-a -> ../a`), or it contains the whole site. The
    problem names the link where it really is.
    """
    if not os.path.islink(path):
        return None
    try:
        target = os.path.realpath(path, strict=True)
        here = os.path.realpath(os.path.dirname(path), strict=True)
    except (OSError, ValueError):
        return None  # points nowhere or at itself: it cannot be walked into (the build reports it)
    if not os.path.isdir(target):
        return None
    inside = target.rstrip(os.sep) + os.sep
    link = Path(here, os.path.basename(path))

    def contained(folder: str) -> bool:
        return folder == target or folder.startswith(inside)

    if contained(here):
        return Problem(link, None, f"this symbolic link points at {target}, a folder that contains it (a loop), so "
                       "its files are not watched for changes; remove it", "warning")
    walked = os.path.relpath(os.path.dirname(path), root).split(os.sep)
    folders = [root] + [os.path.join(root, *walked[:n]) for n in range(1, len(walked))]  # `here`'s, as walked
    for folder in folders:
        try:
            real = os.path.realpath(folder, strict=True)
        except (OSError, ValueError):
            continue
        if contained(real):
            return Problem(link, None, f"this symbolic link points at {target}, and links there lead back to it "
                           "(a loop), so its files are not watched for changes; remove one of the links", "warning")
    return None


class _LoopGuard:
    """Keeps watching away from symbolic-link loops (`symlink_loop`), reporting each loop once.

    `stat` and `listdir` are the polling observer's: a loop is seen as the link itself (never
    walked into), and the ignored folders (output, .git, ...) are not walked at all.
    """

    def __init__(self, layout: SiteLayout, on_problem: Callable[[Problem], object]) -> None:
        self._root = str(layout.root)
        self._ignored = frozenset(str(folder) for folder in layout.ignored)
        self._on_problem = on_problem
        self._reported: set[Path] = set()
        self._lock = threading.Lock()

    def check(self, path: str) -> bool:
        """Whether `path` is a loop; reported if it is one not reported before."""
        problem = symlink_loop(path, self._root)
        if problem is None:
            return False
        with self._lock:
            new = problem.path not in self._reported
            self._reported.add(problem.path)
        if new:
            try:
                self._on_problem(problem)
            except Exception:  # a bug in the callback must not stop the watching
                traceback.print_exc()
        return True

    def stat(self, path: str) -> os.stat_result:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode) and self.check(path):
            return os.lstat(path)
        return info

    def listdir(self, path: str | None) -> list[os.DirEntry[str]]:
        with os.scandir(path) as entries:
            return [entry for entry in entries if os.path.join(path or ".", entry.name) not in self._ignored]

    def linked(self) -> dict[str, tuple[str, ...]]:
        """The folders that symbolic links in the site lead to, each with the paths of the links (as reached by
        walking down from the site folder, through other links) that lead to it.

        Only links to folders inside the site folder and outside the ignored ones are followed (the build
        refuses the others); the loops are reported (the OS-events observer does not walk into links to
        find them)."""
        found: dict[str, list[str]] = {}
        for folder, dirnames, _ in os.walk(self._root, followlinks=True):
            kept = []
            for name in dirnames:
                path = os.path.join(folder, name)
                if path in self._ignored:
                    continue
                if os.path.islink(path):
                    target = self._followed(path)
                    if target is None:
                        continue
                    found.setdefault(target, []).append(path)
                kept.append(name)
            dirnames[:] = kept
        return {target: tuple(links) for target, links in found.items()}

    def _followed(self, link: str) -> str | None:
        """The folder the link `link` leads to when it is to be followed; None for a loop (reported), or
        a link that leads nowhere, outside the site folder or into an ignored folder."""
        if self.check(link):
            return None
        try:
            target = os.path.realpath(link, strict=True)
        except (OSError, ValueError):
            return None
        if not target.startswith(self._root.rstrip(os.sep) + os.sep) or any(
                target == folder or target.startswith(folder + os.sep) for folder in self._ignored):
            return None
        return target


class _Links:
    """The symbolic links to folders inside the site (`_LoopGuard.linked`), for the OS-events observer: the
    paths a change in one of their targets also has, through them."""

    def __init__(self, guard: _LoopGuard) -> None:
        self._guard = guard
        self._targets: dict[str, tuple[str, ...]] = {}
        self._links: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def rescan(self) -> None:
        with self._lock:
            targets = self._guard.linked()
            self._targets, self._links = targets, frozenset(link for links in targets.values() for link in links)

    def aliases(self, path: Path) -> list[Path]:
        """`path` as reached through the links (none when it is under no link's target)."""
        text, found = str(path), []
        for target, links in self._targets.items():
            if text == target or text.startswith(target + os.sep):
                found.extend(Path(link + text[len(target):]) for link in links)
        return found

    def affects(self, path: Path, event: FileSystemEvent) -> bool:
        """Whether the event at `path` may have made, changed or removed a link or a link's target."""
        if event.is_directory:
            return True  # a folder: a link's target, or one holding links (copied or moved in, or away)
        text = str(path)
        if os.path.islink(text) and os.path.isdir(text):
            return True  # a new link to a folder
        return text in self._links or text in self._targets  # a link, or a target, removed or moved away


class _EventHandler(FileSystemEventHandler):
    def __init__(self, layout: SiteLayout, debouncer: Debouncer, guard: _LoopGuard, links: _Links | None) -> None:
        self._layout = layout
        self._debouncer = debouncer
        self._guard = guard
        self._links = links

    def _with_aliases(self, path: Path) -> list[Path]:
        return [path] if self._links is None else [path, *self._links.aliases(path)]

    def on_any_event(self, event: FileSystemEvent) -> None:
        written = written_path(event)
        if written is not None:
            for path in self._with_aliases(written):
                self._debouncer.written(path)
            return
        in_place = event.event_type == EVENT_TYPE_MODIFIED
        changed = event_paths(event)
        paths = [alias for path in changed for alias in self._with_aliases(path)]
        if self._links is not None and not in_place and any(
                self._links.affects(path, event) for path in changed if not self._layout.ignores(path)):
            self._links.rescan()  # then the paths through the links as they are now, too (a new link's target)
            paths += [alias for path in changed for alias in self._with_aliases(path)]
        for path in dict.fromkeys(paths):
            kind = classify(path, self._layout)
            if kind is not ChangeKind.IGNORED:
                if event.event_type in (EVENT_TYPE_CREATED, EVENT_TYPE_MOVED):
                    self._guard.check(str(path))  # a new link: report it if it is a loop
                self._debouncer.add(path, kind, in_place)


class SiteWatcher:
    """Watches a site folder recursively; calls `on_change` with one ChangeBatch per burst of changes.

    `on_problem` gets what is wrong with the folder for watching it (a symbolic-link loop), once each.
    """

    def __init__(self, layout: SiteLayout, on_change: Callable[[ChangeBatch], object], *,
                 poll: bool = False, quiet: float = QUIET_SECONDS,
                 written_quiet: float = WRITTEN_QUIET_SECONDS,
                 on_problem: Callable[[Problem], object] = lambda problem: None) -> None:
        self._debouncer = Debouncer(on_change, quiet, written_quiet)
        self._guard = _LoopGuard(layout, on_problem)
        self._observer: BaseObserver = (PollingObserverVFS(self._guard.stat, self._guard.listdir,
                                                           polling_interval=POLL_SECONDS) if poll else Observer())
        self._links = None if poll else _Links(self._guard)
        self._observer.schedule(_EventHandler(layout, self._debouncer, self._guard, self._links), str(layout.root),
                                recursive=True)

    def start(self) -> None:
        """Start watching; changes made after this returns are seen."""
        self._observer.start()  # first: if the system refuses the watches, no thread is left behind
        if self._links is not None:
            self._links.rescan()  # the links to follow, and the loops (polling finds them in its first walk)
        self._debouncer.start()

    def has_pending(self) -> bool:
        """Whether changes have come that the build has not been called for yet."""
        return self._debouncer.has_pending()

    def stop(self) -> None:
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join()
        self._debouncer.stop()

    def __enter__(self) -> SiteWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
