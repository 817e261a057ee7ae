"""Stage 6, write: all files into a spare folder, swapped in only when complete.

A failed or killed build leaves the previous output as it was. What the build
deletes or replaces is only ever its own: the files the manifest
(`.serialist-manifest`, JSON) says an earlier build made, inside the output
folder or its spare, each path checked before anything is removed.

- Files in the output folder that Serialist did not make are kept: top-level
  ones (`.git`, `CNAME`) silently, and one inside a folder the build makes
  (`assets/favicon.ico` added by hand) with a warning naming it; both are moved
  into the new output before it is swapped in, so that it is complete the moment
  it appears. A file Serialist did not make at a path the build writes (or in a
  folder of the author's where it would write) is never overwritten: the build
  stops with an error naming it. A manifest that names a path outside the
  folder is ignored, as if Serialist had not built the folder.
- The scratch folders (the spare copy, the lock, the previous output during the
  swap, the note of what a swap under way moved) are kept in the site's
  `.serialist-cache/output/`, one folder per output folder, which `.gitignore`
  keeps out of commits, whatever `--output` says (`serve` keeps them in its
  private folder). A spare there may hold a `--drafts` build: like the rest of
  the cache, it is never published. When the cache is on another file system
  than the output (a rename cannot cross them), the scratch folders go beside
  the output (`.NAME.serialist-spare`), and there a spare that would hold a
  build with drafts or chapters dated in the future (`--drafts`, `--future`, or
  not known) is deleted once the build is done. Scratch folders that earlier
  versions left beside the output are removed.
- The output folder keeps its permissions and, where the system allows, its
  owner; a folder the user cannot write into is not replaced. An output that is a
  symbolic link is written at the folder it points to (when that is empty or was
  built by Serialist). An output folder that cannot be swapped (a mount point,
  such as a Docker volume) is written into file by file instead, each file
  atomically, and what the build no longer makes removed last.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
from bisect import bisect_left
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

from generator.errors import OutputError, Problem, display_path

MANIFEST = ".serialist-manifest"
MANIFEST_FORMAT = 2  # the JSON manifest (format 1: `path<TAB>digest` lines)
WRITERS = 2  # threads writing files
MAX_PENDING = 64  # files handed to them and not yet written, at most
SCRATCH_FOLDER = "output"  # inside the folder given for scratch folders (the site's `.serialist-cache/`)
_TEMPORARY = ".serialist-tmp"  # a file's name ends so while it is being written
_LISTED = 10  # paths named in an error, at most


@dataclass(frozen=True, slots=True)
class OutputFile:
    path: str  # relative to the output root, `/`-separated
    data: bytes


@dataclass(frozen=True, slots=True)
class LazyFile:
    """A file whose bytes are made when they are written (a page): a build never holds every page at once.

    `data` makes them again on every access: read it once."""

    path: str
    make: Callable[[], bytes]
    weight: int = 1  # how big it is likely to be, in pages of a chapter (a page of the whole work: its chapters)
    early: bool = False  # long to make: started before the others when they are made in worker processes

    @property
    def data(self) -> bytes:
        return self.make()


@dataclass(frozen=True, slots=True)
class CopiedFile:
    """A file published as it is (an image beside the chapters, a theme's static file): copied from `source`
    into the output a piece at a time, and hashed as it is read, never held in memory whole."""

    path: str
    source: Path


AnyFile = OutputFile | LazyFile | CopiedFile


@dataclass(frozen=True, slots=True)
class Placed:
    """A file already put into the output being made, by the worker process that made its bytes (see
    `write_output`): only what the build has to know of it."""

    path: str
    digest: str  # `file_hash` of its bytes
    written: bool  # False when it was linked to the same bytes in the current output, or already there


Placing = Callable[[str, bytes], tuple[str, bool]]  # (path, bytes) → (digest, written): `_Spare.place`


def check_output_location(output: Path, site_root: Path, content_dir: Path, cache_dir: Path | None = None) -> None:
    """Refuse output folders that would swallow the author's files, or Serialist's own cache (`cache_dir`), where
    the scratch folders of every output are kept."""
    out = output.resolve()
    root = site_root.resolve()
    content = content_dir.resolve()
    if cache_dir is not None:
        cache = cache_dir.resolve()
        if out == cache or out.is_relative_to(cache) or cache.is_relative_to(out):
            raise OutputError(f"the output folder {display_path(output)} contains or is inside Serialist's cache "
                              f"{display_path(cache_dir)}; choose another folder, like `--output output`")
    if out == root:
        raise OutputError(f"the output folder {output} is the site folder itself; use a folder inside it, "
                          "like `--output output`")
    if out == content or out.is_relative_to(content) or content.is_relative_to(out):
        raise OutputError(f"the output folder {output} contains or is inside {content_dir}; choose another "
                          "folder, like `--output output`")
    if root.is_relative_to(out):
        raise OutputError(f"the output folder {output} contains the site folder; choose a folder inside it")


# Paths ----------------------------------------------------------------------------------------------------

# An empty, `.` or `..` part, a leading `/`, a NUL (and on Windows a `\` or a drive's `:`).
_ESCAPES = re.compile(r"(?:^|/)\.{0,2}(?:/|$)|\x00" + (r"|[\\:]" if os.name == "nt" else ""))


def contained(path: str) -> bool:
    """Whether `path` (relative, `/`-separated) stays inside the folder it is relative to, by its text alone:
    not absolute, and no empty, `.` or `..` part. (Any other character may be in a name, a line break too.)"""
    return _ESCAPES.search(path) is None


def check_path(path: str) -> str:
    """`path`, when it is `contained`; else an OutputError."""
    if not contained(path):
        raise OutputError(f"refusing to write {path!r}: it would lie outside the output folder")
    return path


def _inside(root: Path, path: Path) -> bool:
    """Whether `path` lies inside `root`, symbolic links in either followed but the last part of `path` not
    (it is what gets deleted, not what it may point to). Only for what is deleted: it asks the system."""
    real_root = os.path.realpath(root)
    parent = os.path.realpath(path.parent)
    return (parent == real_root or parent.startswith(real_root.rstrip(os.sep) + os.sep)) \
        and path.name not in ("", ".", "..")


def _delete(root: Path, path: Path) -> None:
    """Remove `path` (a file, a link or a whole folder) if it lies inside `root`; anything else is left alone."""
    if not _inside(root, path):
        return
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


# The manifest ---------------------------------------------------------------------------------------------

_DIGEST = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a build wrote into a folder."""

    files: dict[str, str]  # path → `file_hash` of its bytes ("" while not known: being replaced)
    unpublished: bool  # the build published drafts or chapters dated in the future


def write_manifest(folder: Path, files: Mapping[str, str], unpublished: bool) -> None:
    """Record, atomically, that `folder` holds `files` (path → digest). The only writer of the manifest.

    JSON with every character outside ASCII escaped: a path may hold any character, a line break too,
    and still be one path when it is read back."""
    data = json.dumps({"serialist-manifest": MANIFEST_FORMAT, "unpublished": unpublished,
                       "files": dict(sorted(files.items()))}, separators=(",", ":"))
    temporary = folder / (MANIFEST + _TEMPORARY)
    temporary.write_bytes(data.encode("ascii"))
    os.replace(temporary, folder / MANIFEST)


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of `folder`; None when there is none, or it cannot be trusted: damaged, or naming a path
    that is absolute or leaves the folder (then no file of the folder counts as Serialist's)."""
    try:
        data = (folder / MANIFEST).read_bytes()
    except OSError:
        return None
    return parse_manifest(data)


def parse_manifest(data: bytes) -> Manifest | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        if not isinstance(parsed, dict) or parsed.get("serialist-manifest") != MANIFEST_FORMAT:
            return None
        files, unpublished = parsed.get("files"), parsed.get("unpublished")
        if not isinstance(files, dict) or not isinstance(unpublished, bool):
            return None
        if not all(isinstance(digest, str) and (not digest or _DIGEST.fullmatch(digest)) for digest in files.values()):
            return None
    else:  # the format of earlier versions: a `path<TAB>digest` line for each file, each ended by "\n" alone
        if text and not text.endswith("\n"):
            return None
        files, unpublished = {}, True  # (not recorded: as if it did)
        for line in text.split("\n")[:-1]:
            path, tab, digest = line.rpartition("\t")
            if not tab or not _DIGEST.fullmatch(digest):
                return None
            files[path] = digest
    try:
        if not all(contained(path) for path in files) or any(not os.fsencode(path) for path in files):
            return None
    except UnicodeError:  # not a name this system can have
        return None
    return Manifest(files, unpublished)


def previous_manifest(output: Path) -> dict[str, str] | None:
    """What the last build wrote: path → hash of its bytes."""
    manifest = read_manifest(output)
    return manifest.files if manifest is not None else None


# What is in an output folder that Serialist did not make --------------------------------------------------

def _folders(paths: Iterable[str]) -> set[str]:
    """Every folder (`a`, `a/b`) that holds one of `paths`."""
    folders: set[str] = set()
    for path in paths:
        end = path.rfind("/")
        while end > 0:
            folder = path[:end]
            if folder in folders:
                break
            folders.add(folder)
            end = path.rfind("/", 0, end)
    return folders


@dataclass(frozen=True, slots=True)
class _Found:
    """What a look through an output folder found that its manifest does not list."""

    foreign: list[tuple[str, bool]]  # (path, is a folder): files not listed, folders holding nothing listed
    leftovers: list[str]  # files a killed build was writing


def _look(folder: Path, files: Mapping[str, str]) -> _Found:
    """Walk the folders of `folder` that hold a file of `files` (a folder that holds none is not looked into)."""
    ours = _folders(files)
    foreign: list[tuple[str, bool]] = []
    leftovers: list[str] = []
    stack = [(os.fspath(folder), "")]
    while stack:
        where, prefix = stack.pop()
        try:
            with os.scandir(where) as entries:
                listed = list(entries)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in listed:
            path = prefix + entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir and path in ours:
                stack.append((entry.path, path + "/"))
            elif (not is_dir and path in files) or path == MANIFEST:
                continue
            elif not is_dir and entry.name.startswith(".") and entry.name.endswith(_TEMPORARY):
                leftovers.append(path)
            else:
                foreign.append((path, is_dir))
    return _Found(sorted(foreign), leftovers)


def _files_under(folder: Path, prefix: str) -> list[str]:
    """Every file (or link) in `folder`, as `prefix` + its path inside it."""
    found = []
    for where, dirs, names in os.walk(folder):
        dirs.sort()
        inside = Path(where).relative_to(folder).as_posix()
        links = [name for name in dirs if os.path.islink(os.path.join(where, name))]
        found += [prefix + (name if inside == "." else f"{inside}/{name}") for name in sorted(names + links)]
    return found


def _sort_out(output: Path, foreign: list[tuple[str, bool]], wanted: Mapping[str, str],
              paths: list[str]) -> tuple[list[str], list[str]]:
    """(what is in the way of the new output's files, what to carry over into it) among the `foreign` entries
    of `output`; `paths` is `wanted`, sorted."""
    in_the_way: list[str] = []
    carry: list[str] = []
    for path, is_dir in foreign:
        position = bisect_left(paths, path + "/")
        holds_ours = position < len(paths) and paths[position].startswith(path + "/")  # a folder of the new output
        parents = [path[:end] for end in range(len(path)) if path[end] == "/"]
        if path in wanted or holds_ours or any(parent in wanted for parent in parents):
            if is_dir:  # (an empty folder is in nobody's way)
                in_the_way += _files_under(output / path, path + "/")
            elif not _holds(output / path, wanted.get(path)):  # (the same bytes are nobody's loss)
                in_the_way.append(path)
        else:
            carry.append(path)
    return in_the_way, carry


def _holds(path: Path, digest: str | None) -> bool:
    """Whether `path` is a regular file of the bytes whose `file_hash` is `digest`."""
    if not digest or not _is_file(path):
        return False
    try:
        return file_hash(path.read_bytes()) == digest
    except OSError:
        return False


def _refuse_foreign(output: Path, in_the_way: list[str], manifest_refused: bool) -> None:
    named = ", ".join(in_the_way[:_LISTED]) + (f" and {len(in_the_way) - _LISTED} more" if len(in_the_way) > _LISTED
                                              else "")
    why = (f" Its list of the files Serialist made ({MANIFEST}) is damaged or names files outside the folder, "
           "so none of the files there count as Serialist's." if manifest_refused else "")
    raise OutputError(
        f"the output folder {display_path(output)} holds files that Serialist did not make, where the build "
        f"writes its own: {named}. Serialist never overwrites or deletes a file it did not make.{why} Move them "
        f"out of {display_path(output)} (or delete them, if they are left from an earlier build), or build into "
        "another folder with --output.")


def _foreign_warning(output: Path, path: str) -> Problem:
    return Problem(output / path, None, "this file was not made by Serialist but is in a folder the build makes; "
                   "it is kept as it is in every build. To publish it with the site, put it in the site's own "
                   "files instead (a story's folder, or the theme's `static/` folder), or delete it", "warning")


# Scratch folders ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Scratch:
    """Where the scratch folders of one output folder are: `home` / (`prefix` + kind)."""

    home: Path
    prefix: str
    lock: Path
    private: bool  # in the site's cache (or a folder of the caller's): may hold a build with drafts

    def path(self, kind: str) -> Path:
        return self.home / f"{self.prefix}{kind}"

    @property
    def spare(self) -> Path:
        return self.path("spare")

    @property
    def journal(self) -> Path:
        """What a swap under way moved, for `recover` when the build is killed during it."""
        return self.path("swap.json")

    def stale(self) -> list[Path]:
        """Previous outputs that a build killed during a swap left."""
        try:
            names = os.listdir(self.home)
        except OSError:
            return []
        return [self.home / name for name in sorted(names) if re.fullmatch(re.escape(self.prefix) + r"old-\d+", name)]


def _beside(output: Path) -> _Scratch:
    return _Scratch(output.parent, f".{output.name}.serialist-", output.parent / f".{output.name}.serialist-lock",
                    False)


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def scratch_for(output: Path, scratch: Path | None) -> _Scratch:
    """The scratch folders of `output` (absolute, no link): in `scratch`, one folder per output folder, when it
    is on the same file system; else beside the output (the lock stays in `scratch`)."""
    if scratch is None:
        return _beside(output)
    key = hashlib.sha256(os.fsencode(output)).hexdigest()[:16]
    home = scratch / SCRATCH_FOLDER / f"{output.name[:64]}-{key}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if _same_device(home, output.parent):
            return _Scratch(home, "", home / "lock", True)
    except OSError:
        return _beside(output)
    beside = _beside(output)
    return _Scratch(beside.home, beside.prefix, home / "lock", False)


def _where(output: Path) -> Path:
    """`output` as an absolute path without links (when it is a link: to what it links to, if it can)."""
    absolute = Path(os.path.abspath(output))
    if absolute.is_symlink():
        return absolute.resolve(strict=True)
    return absolute.parent.resolve() / absolute.name


def _target(output: Path) -> Path:
    """The folder to write: `output` as an absolute path, or the folder it links to."""
    absolute = Path(os.path.abspath(output))
    if not absolute.name:
        raise OutputError(f"the output folder {output} is the root of the file system; choose a folder inside it")
    if not absolute.is_symlink():
        if absolute.exists() and not absolute.is_dir():
            raise OutputError(f"the output folder {display_path(output)} is a file, not a folder; move it or "
                              "build into another folder with --output")
        return _where(absolute)
    try:
        target = _where(absolute)
    except (OSError, RuntimeError):
        raise OutputError(f"the output folder {display_path(output)} is a symbolic link to a folder that does not "
                          f"exist ({os.readlink(absolute)}); create that folder, or remove the link") from None
    if not target.is_dir():
        raise OutputError(f"the output folder {display_path(output)} is a symbolic link to {target}, which is not a "
                          "folder; remove the link, or build into another folder with --output")
    if read_manifest(target) is None and any(target.iterdir()):
        raise OutputError(f"the output folder {display_path(output)} is a symbolic link to {target}, which holds "
                          "files Serialist did not make; Serialist writes through a link only into an empty folder "
                          f"or one it built. Build into {target} itself with --output, or empty it")
    return target


def _check_writable(target: Path, output: Path) -> None:
    """Refuse to replace an output folder that the user could not write into (another user's, or read-only)."""
    if not target.is_dir() or os.access(target, os.W_OK | os.X_OK):
        return
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return  # the whole disk is read-only: writing says so
    except (OSError, AttributeError):
        pass
    raise OutputError(f"the output folder {display_path(output)} is not writable for you (it is read-only, or "
                      "belongs to another user), so Serialist will not replace it. Make it writable for you, or "
                      "build into another folder with --output.")


def recover(output: Path, scratch: Path | None = None) -> None:
    """Finish what a killed build left behind: the previous output back where it was, with what was moved out of
    it; no scratch folders of earlier versions beside it. (`scratch`: as given to `write_output`.)"""
    try:
        target = _where(output)
    except (OSError, RuntimeError):  # a link to nothing
        return
    if target.parent.is_dir():
        _recover(target, scratch_for(target, scratch))


def _recover(output: Path, scratch: _Scratch) -> None:
    journal = _read_journal(scratch)
    if journal is not None:
        staging, old, carried = journal
        if not os.path.lexists(output) and old.is_dir() and not old.is_symlink():
            os.rename(old, output)  # killed between the two renames of a swap
        if output.is_dir() and staging.is_dir():
            _uncarry(output, staging, carried)
        scratch.journal.unlink(missing_ok=True)
    for stale in scratch.stale():  # a previous output, the swap done: the next spare
        if not stale.is_symlink() and not os.path.lexists(scratch.spare) and read_manifest(stale) is not None:
            os.rename(stale, scratch.spare)
        else:
            _delete(scratch.home, stale)
    if scratch.private:
        _forget_beside(output)


def _forget_beside(output: Path) -> None:
    """Remove the scratch folders that earlier versions kept beside the output, after finishing a swap they left."""
    beside = _beside(output)
    try:
        names = sorted(os.listdir(beside.home))
    except OSError:
        return
    for name in names:
        kind = name[len(beside.prefix):] if name.startswith(beside.prefix) else ""
        path = beside.home / name
        if kind == "lock" and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            continue
        if not re.fullmatch(r"spare|(?:old|new)-\d+", kind) or path.is_symlink() or not path.is_dir():
            continue
        manifest = read_manifest(path)
        if manifest is not None:
            if kind.startswith("old-") and not os.path.lexists(output):
                os.rename(path, output)  # killed between the two renames of a swap
                continue
            made = {p.split("/", 1)[0] for p in manifest.files}
            if output.is_dir():  # killed before the files it did not make went back into the output
                for entry in sorted(os.listdir(path)):
                    if entry not in made and entry != MANIFEST and not os.path.lexists(output / entry):
                        os.rename(path / entry, output / entry)
        _delete(beside.home, path)


def _write_journal(scratch: _Scratch, staging: Path, old: Path, carried: list[str]) -> None:
    data = json.dumps({"staging": staging.name, "old": old.name, "carried": carried})
    temporary = scratch.path("swap.json" + _TEMPORARY)
    temporary.write_text(data, "ascii")
    os.replace(temporary, scratch.journal)


def _read_journal(scratch: _Scratch) -> tuple[Path, Path, list[str]] | None:
    try:
        text = scratch.journal.read_text("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError):
        text = ""
    try:
        data = json.loads(text)
        staging, old, carried = data["staging"], data["old"], data["carried"]
    except (ValueError, KeyError, TypeError):
        scratch.journal.unlink(missing_ok=True)
        return None
    names_ok = all(isinstance(name, str) and name.startswith(scratch.prefix) and "/" not in name
                   and name not in ("", ".", "..") for name in (staging, old))
    if not names_ok or not isinstance(carried, list) or \
            not all(isinstance(path, str) and contained(path) for path in carried):
        scratch.journal.unlink(missing_ok=True)
        return None
    return scratch.home / staging, scratch.home / old, carried


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """One build at a time per output folder (other builds wait).

    A POSIX record lock (`lockf`), not `flock`: the processes a build forks to make pages do not
    inherit it, so a build that is killed never leaves its lock held by one of them."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(lock, "a") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def file_hash(data: bytes) -> str:
    """A digest of the bytes (SHA-256: twice as fast as BLAKE2 on processors with SHA instructions)."""
    return hashlib.sha256(data).hexdigest()[:32]


COPY_CHUNK = 1 << 20  # what a copied file is read and written in, at a time


def _read(source: Path) -> BinaryIO:
    try:
        return open(source, "rb")
    except OSError as exc:
        raise OutputError(f"cannot read {source}: {exc.strerror or exc}. The previous output is unchanged.") from None


def source_hash(source: Path) -> str:
    """`file_hash` of the bytes of the file `source`, read a piece at a time."""
    with _read(source) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:32]


def _copy_hashing(source: Path, target: Path) -> str:
    """Copy `source` over `target` (atomically, through a new file: `target` may be a hard link to the output's
    own file), a piece at a time; the `file_hash` of what was copied."""
    digest = hashlib.sha256()
    buffer = bytearray(COPY_CHUNK)
    view = memoryview(buffer)
    temporary = target.with_name(f".{target.name}{_TEMPORARY}")
    with _read(source) as handle:
        temporary.unlink(missing_ok=True)  # (never written through: it may be a link a killed build left)
        with open(temporary, "xb") as out:
            while size := handle.readinto(buffer):
                digest.update(view[:size])
                out.write(view[:size])
    os.replace(temporary, target)
    return digest.hexdigest()[:32]


def write_output(files: Iterable[AnyFile | Placed] | Callable[[Placing], Iterable[AnyFile | Placed]],
                 output: Path, *, scratch: Path | None = None, unpublished: bool = False,
                 warnings: list[Problem] | None = None, trusted: bool = True) -> int:
    """Write `files` as the new content of `output`; returns how many were written. `files` may be a function
    of how to put a file in place, for the processes that make files to put them in place themselves, giving
    the `Placed` record of each (see `_write_locked`).

    `scratch`: the folder to keep the scratch folders in (the site's `.serialist-cache/`); None: beside the
    output. `unpublished`: the files include drafts or chapters dated in the future. A warning for each file
    kept that Serialist did not make, inside a folder it makes, is added to `warnings`. Not `trusted`: something
    else changed the output since the last build (a file edited by hand), so none of its files, nor of the spare
    copy that shares them, is taken to be what its manifest says: every file is written afresh."""
    try:
        target = _target(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        places = scratch_for(target, scratch)
        with _locked(places.lock):
            return _write_locked(files, target, places, unpublished, output, warnings, trusted)
    except OSError as exc:
        where = exc.filename or output
        raise OutputError(f"cannot write the output to {where}: {exc.strerror or exc}. "
                          f"The previous output is unchanged.") from None


def _replace_with_link(source: Path, target: Path) -> bool:
    """Make `target` the same file as `source` (atomically); False when the system cannot."""
    temporary = target.with_name(f".{target.name}{_TEMPORARY}")
    try:
        if temporary.exists():
            temporary.unlink()
        os.link(source, temporary)
        os.replace(temporary, target)
        return True
    except OSError:
        return False


def _create(target: Path, data: bytes) -> bool:
    """Write a file where there is none yet, straight in; False, having written nothing, when there is
    something (which may be a hard link to the output's own file: it is replaced, never written through)."""
    try:
        handle = open(target, "xb")
    except FileExistsError:
        return False
    with handle:
        handle.write(data)
    return True


def _overwrite(target: Path, data: bytes) -> bool:
    """Write `data` over a regular file that is the spare's alone, in place: no new file to make and no old one
    to free (on ext4 without a journal, a new file skips, one by one, the files freed in the last minutes). False,
    having written nothing, when it is anything else, above all a hard link to the output's own file, which must
    be replaced, never written through."""
    try:
        handle = os.open(target, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            return False
        with os.fdopen(handle, "wb", closefd=False) as out:
            out.write(data)
        os.ftruncate(handle, len(data))
        return True
    finally:
        os.close(handle)


def _replace_with_bytes(data: bytes, target: Path) -> None:
    temporary = target.with_name(f".{target.name}{_TEMPORARY}")
    temporary.write_bytes(data)
    os.replace(temporary, target)


def _is_file(path: Path) -> bool:
    """A regular file, not a link to one."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _remove(root: Path, paths: Iterable[str], keep: Mapping[str, str]) -> None:
    """Delete `paths` (checked by `contained`) under `root`, and the folders they leave empty; never what `keep`
    lists, or a folder holding any of it (an old file's path can be a folder of new ones now), nor anything
    outside `root` (through a folder replaced by a link)."""
    folders: set[Path] = set()
    checked: dict[Path, bool] = {}
    for path in paths:
        target = root / path
        parent = target.parent
        if parent not in checked:
            checked[parent] = _inside(root, target)
        if not checked[parent]:
            continue
        try:
            target.unlink()
        except (FileNotFoundError, NotADirectoryError):  # gone with a folder that a new file replaced
            pass
        except IsADirectoryError:
            if not any(kept.startswith(path + "/") for kept in keep):
                shutil.rmtree(target, ignore_errors=True)
        folders.update(p for p in target.parents if p != root and p.is_relative_to(root))
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty


def _make_folder(root: Path, folder: Path) -> None:
    """`folder` and its parents under `root`, removing an old file of ours where a folder now goes."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return
    except (FileExistsError, NotADirectoryError):
        pass
    for parent in [*reversed(folder.relative_to(root).parents), folder.relative_to(root)]:
        place = root / parent
        if place != root and (place.is_file() or place.is_symlink()) and _inside(root, place):
            place.unlink(missing_ok=True)  # (another thread may be at it too)
    folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class _Spare:
    """The spare copy of the output being brought up to date (see `_write_locked`): where each file goes.
    Forked worker processes share it, and put the files they make into it themselves."""

    folder: Path
    output: Path
    current: dict[str, str]  # the current output's files → digest
    have: dict[str, str]  # the spare's files → digest, as the build before last left them

    def copy(self, path: str, source: Path, folder_made: bool = False) -> tuple[str, bool]:
        """`place` for a `CopiedFile`: its bytes are read from `source` as they are hashed and copied."""
        digest = source_hash(source)
        target = self.folder / path
        if self.have.get(path) == digest and target.is_file():
            return digest, False
        if not folder_made:
            _make_folder(self.folder, target.parent)
        if target.is_dir() and not target.is_symlink():  # an old folder where a file now goes
            shutil.rmtree(target)
        if self.current.get(path) == digest and _replace_with_link(self.output / path, target):
            return digest, False
        return _copy_hashing(source, target), True  # (what was copied, should `source` have changed since)

    def place(self, path: str, data: bytes, folder_made: bool = False) -> tuple[str, bool]:
        """Put one file into the spare: (its digest, whether its bytes were written rather than linked to the
        current output's same file, or left as the spare already had them). `folder_made`: its folder is
        known to be there already."""
        digest = file_hash(data)
        target = self.folder / check_path(path)
        if self.have.get(path) == digest and _is_file(target):
            return digest, False
        if not folder_made:
            _make_folder(self.folder, target.parent)
        linked = self.current.get(path) == digest
        if not linked and (_create(target, data) or _overwrite(target, data)):
            return digest, True
        if target.is_dir() and not target.is_symlink():  # an old folder where a file now goes
            _delete(self.folder, target)
        if linked and _replace_with_link(self.output / path, target):
            return digest, False
        _replace_with_bytes(data, target)
        return digest, True


def _fresh_spare(folder: Path, home: Path) -> None:
    """An empty spare folder where `folder` is."""
    if os.path.lexists(folder):
        _delete(home, folder)
    folder.mkdir()


def _write_locked(files: Iterable[AnyFile | Placed] | Callable[[Placing], Iterable[AnyFile | Placed]],
                  output: Path, scratch: _Scratch, unpublished: bool, given: Path,
                  warnings: list[Problem] | None, trusted: bool = True) -> int:
    """Bring the spare copy of the output up to date, then swap it in.

    The spare is the output of the build before last, kept in the scratch
    folder (see the module's doc), so only what changed is written and nothing
    has to be deleted wholesale. A file whose bytes did not change is the same
    file (a hard link) as in the current output, so its modification time stays
    put. Until the swap, the output itself is not touched: a build that fails
    or is killed leaves it as it was.

    Files are written as they come (a page's bytes are made only now, see
    `LazyFile`; `files` may be a function of the spare's `place`, for the
    worker processes that make pages to put them in place themselves, see
    `parallel.made`), and what the previous build made and this one did not is
    removed at the end. Meanwhile another thread looks through the output for
    files Serialist did not make (started once the worker processes are forked:
    a process with other threads must not fork).
    """
    _recover(output, scratch)
    _check_writable(output, given)
    previous = read_manifest(output)
    made = previous.files if previous is not None else {}  # what the last build made
    current = made if trusted else {}  # what of it may be reused: nothing, after a hand edit
    in_place = output.is_dir() and os.path.ismount(output)  # it cannot be swapped: written into
    folder = scratch.spare
    have_manifest = read_manifest(folder) if trusted and folder.is_dir() and not folder.is_symlink() else None
    if have_manifest is None:  # no spare, or one a killed build left half-updated
        _fresh_spare(folder, scratch.home)
        have: dict[str, str] = {}
    else:
        have = have_manifest.files
        (folder / MANIFEST).unlink()
    spare = _Spare(folder, output, {} if in_place else current, have)
    wanted: dict[str, str] = {}

    def place(path: str, data: bytes, folder_made: Future[tuple[str, bool]] | None) -> tuple[str, bool]:
        if folder_made is not None:
            folder_made.result()  # the write that makes the folder, submitted earlier: running or done
        return spare.place(path, data, folder_made=folder_made is not None)

    def copy(path: str, source: Path, folder_made: Future[tuple[str, bool]] | None) -> tuple[str, bool]:
        if folder_made is not None:
            folder_made.result()
        return spare.copy(path, source, folder_made=folder_made is not None)

    # The file system's work (a new folder for every chapter's page) and hashing are done on other threads,
    # while this one takes the next pages from the processes that make them: both let go of the GIL.
    folders: dict[Path, Future[tuple[str, bool]]] = {}  # folder → the write that makes it
    pending: deque[tuple[str, Future[tuple[str, bool]]]] = deque()
    written = 0
    looking: Future[_Found] | None = None
    with ThreadPoolExecutor(WRITERS) as writers, ThreadPoolExecutor(1) as looker:
        try:
            for item in files(spare.place) if callable(files) else files:
                if looking is None:
                    looking = looker.submit(_look, output, made)
                if isinstance(item, Placed):
                    wanted[check_path(item.path)] = item.digest
                    written += item.written
                    continue
                parent = (folder / item.path).parent
                if isinstance(item, CopiedFile):  # (read, hashed and copied by the writer thread)
                    future = writers.submit(copy, item.path, item.source, folders.get(parent))
                else:
                    future = writers.submit(place, item.path, item.data, folders.get(parent))
                wanted[item.path] = ""  # (its digest comes with the write, below)
                folders.setdefault(parent, future)
                pending.append((item.path, future))
                while pending and (len(pending) > MAX_PENDING or pending[0][1].done()):
                    written += _done(pending.popleft(), wanted)
            while pending:
                written += _done(pending.popleft(), wanted)
        finally:
            for _, future in pending:
                future.cancel()
        found = looking.result() if looking is not None else _look(output, made)
    _remove(folder, [path for path in have if path not in wanted], wanted)
    write_manifest(folder, wanted, unpublished)

    in_the_way, carry = _sort_out(output, found.foreign, wanted, sorted(wanted))
    if in_the_way:
        _refuse_foreign(given, in_the_way, previous is None and os.path.lexists(output / MANIFEST))
    for path in found.leftovers:
        _delete(output, output / path)
    if warnings is not None:
        warnings += [_foreign_warning(given, path) for path in carry if "/" in path]
    if not in_place:
        try:
            _swap_in(folder, output, carry, scratch)
            spare_unpublished = previous is None or previous.unpublished  # the spare is the previous output
        except _CannotSwap:
            in_place = True
    if in_place:
        _write_in_place(folder, output, made, wanted, unpublished, previous is None or previous.unpublished,
                        given, trusted)
        spare_unpublished = unpublished  # the spare is the new output
    if not scratch.private and spare_unpublished:
        _delete(scratch.home, folder)  # no build with drafts left beside the output
    elif not trusted and not in_place and folder.is_dir():  # the output before, now the spare, is not what
        (folder / MANIFEST).unlink(missing_ok=True)  # its manifest says either
    return written


def _done(write: tuple[str, Future[tuple[str, bool]]], wanted: dict[str, str]) -> bool:
    """Whether a file handed to a writer thread was written (its digest noted in `wanted`)."""
    path, future = write
    wanted[path], written = future.result()
    return written


class _CannotSwap(Exception):
    """The output folder cannot be renamed (a mount point): nothing was changed."""


def _keep_mode_and_owner(output: Path, staging: Path) -> None:
    """Give `staging` the permissions of the output folder it replaces, and its owner where the system allows."""
    status = os.stat(output)
    os.chmod(staging, stat.S_IMODE(status.st_mode))
    mine = os.stat(staging)
    if (mine.st_uid, mine.st_gid) != (status.st_uid, status.st_gid):
        try:
            os.chown(staging, status.st_uid, status.st_gid)
        except OSError:
            try:
                os.chown(staging, -1, status.st_gid)  # (a group of the user's)
            except OSError:
                pass
        os.chmod(staging, stat.S_IMODE(status.st_mode))  # (a change of owner clears set-ID bits)


def _carry(output: Path, staging: Path, carry: list[str], moved: list[str]) -> None:
    """Move the entries `carry` of `output` (what Serialist did not make) to the same place in `staging`, noting
    each in `moved` once it is."""
    for path in carry:
        destination = staging / path
        if os.path.lexists(destination):  # nothing the new output lists (`_sort_out`): left in the spare
            _delete(staging, destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.rename(output / path, destination)
        moved.append(path)


def _uncarry(output: Path, staging: Path, moved: list[str]) -> None:
    """Put back into `output` what `_carry` moved out of it, where it still is in `staging`."""
    for path in reversed(moved):
        source, destination = staging / path, output / path
        if os.path.lexists(source) and not os.path.lexists(destination):
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, destination)


def _swap_in(staging: Path, output: Path, carry: list[str], scratch: _Scratch) -> None:
    """Make `staging` the output, the entries `carry` of the output (what Serialist did not make) moved into it
    first, so that the new output is whole the moment it is there; the previous output becomes `staging` (the
    next build's spare). A build killed on the way is finished by `recover` (from the journal).

    Raises `_CannotSwap`, having changed nothing, when the output folder cannot be renamed (a mount point)."""
    if not os.path.lexists(output):
        os.rename(staging, output)
        return
    _keep_mode_and_owner(output, staging)
    old = scratch.path(f"old-{os.getpid()}")
    _write_journal(scratch, staging, old, carry)
    moved: list[str] = []
    try:
        _carry(output, staging, carry, moved)
        if not _exchange(staging, output):
            os.rename(output, old)
            try:
                os.rename(staging, output)
            except OSError:
                os.rename(old, output)
                raise
            os.rename(old, staging)
    except OSError as exc:
        _uncarry(output, staging, moved)
        scratch.journal.unlink(missing_ok=True)
        if exc.errno in (errno.EBUSY, errno.EXDEV):
            raise _CannotSwap() from exc
        raise
    scratch.journal.unlink(missing_ok=True)


def _write_in_place(staging: Path, output: Path, current: dict[str, str], wanted: dict[str, str],
                    unpublished: bool, was_unpublished: bool, given: Path, trusted: bool = True) -> None:
    """Bring `output` to what `staging` holds file by file, each atomically, removing what it no longer has last:
    for an output folder that cannot be swapped (a mount point). Until it is done, the manifest lists every file
    either build made, those being replaced without a digest, so that a build killed meanwhile leaves nothing
    that the next one would take for the author's. Not `trusted`: every file is written again, none kept as it
    is (something else changed the output since the last build)."""
    meanwhile = {path: "" for path in current.keys() | wanted.keys()}
    meanwhile.update((path, digest) for path, digest in current.items() if wanted.get(path) == digest)
    try:
        write_manifest(output, meanwhile, unpublished or was_unpublished)
        for path, digest in sorted(wanted.items()):
            target = output / path
            if trusted and current.get(path) == digest and _is_file(target):
                continue
            _make_folder(output, target.parent)
            if target.is_dir() and not target.is_symlink():  # an old folder of ours where a file now goes
                _delete(output, target)
            temporary = target.with_name(f".{target.name}{_TEMPORARY}")
            shutil.copyfile(staging / path, temporary)  # (a piece at a time: it may be a large image)
            os.replace(temporary, target)
        _remove(output, [path for path in current if path not in wanted], wanted)
        write_manifest(output, wanted, unpublished)
    except OSError as exc:
        raise OutputError(f"cannot write the output to {exc.filename or given}: {exc.strerror or exc}. The output "
                          f"folder {display_path(given)} cannot be replaced at once (it is a mount point), so it was "
                          "being written file by file: some of its files are new, the others as before. Build "
                          "again once the problem is solved.") from None


_RENAME_EXCHANGE = 2


@functools.lru_cache(maxsize=1)
def _renameat2() -> Any:
    """libc's renameat2 (from the C library this process already has), or None where there is none."""
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when the system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True
