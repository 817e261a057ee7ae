"""Stage 6, write: all files into a fresh folder, swapped in only when complete.

A failed or killed build leaves the previous output as it was. Files in the
output folder that Serialist did not make (`.git`, `CNAME`, anything else)
are carried over into the new output; the manifest file records which files
the build made.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import shutil
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from generator.errors import OutputError

MANIFEST = ".serialist-manifest"
WRITERS = 2  # threads writing files
MAX_PENDING = 64  # files handed to them and not yet written, at most


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


def check_output_location(output: Path, site_root: Path, content_dir: Path) -> None:
    """Refuse output folders that would swallow the author's files."""
    out = output.resolve()
    root = site_root.resolve()
    content = content_dir.resolve()
    if out == root:
        raise OutputError(f"the output folder {output} is the site folder itself; use a folder inside it, "
                          "like `--output output`")
    if out == content or out.is_relative_to(content) or content.is_relative_to(out):
        raise OutputError(f"the output folder {output} contains or is inside {content_dir}; choose another "
                          "folder, like `--output output`")
    if root.is_relative_to(out):
        raise OutputError(f"the output folder {output} contains the site folder; choose a folder inside it")


def previous_manifest(output: Path) -> dict[str, str] | None:
    """What the last build wrote: path → hash of its bytes."""
    try:
        lines = (output / MANIFEST).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return dict(line.partition("\t")[::2] for line in lines)


def _foreign_entries(folder: Path, keep_ours: set[str]) -> list[str]:
    """Top-level entries of an output folder that no build of ours wrote, except names in `keep_ours`.

    Without a manifest (a folder Serialist never built into) everything counts as foreign.
    """
    if not folder.is_dir():
        return []
    made = previous_manifest(folder) or {}
    made_top = {p.split("/", 1)[0] for p in made}
    return [entry for entry in sorted(os.listdir(folder))
            if entry != MANIFEST and entry not in made_top and entry not in keep_ours]


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


def _scratch(output: Path, kind: str) -> Path:
    return output.parent / f".{output.name}.serialist-{kind}-{os.getpid()}"


def recover(output: Path) -> None:
    """Finish what a killed build left behind: put carried-over files back, drop scratch folders."""
    parent = output.parent
    if not parent.is_dir():
        return
    for stale in sorted(parent.glob(f".{output.name}.serialist-*")):
        if not stale.is_dir() or stale == _spare(output):
            continue
        if not output.exists() and (stale / MANIFEST).is_file() and "-old-" in stale.name:
            os.rename(stale, output)  # killed between the two renames of a swap
            continue
        if (stale / MANIFEST).is_file() and output.is_dir():
            for entry in _foreign_entries(stale, set()):
                if not (output / entry).exists():
                    os.rename(stale / entry, output / entry)
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def _locked(output: Path) -> Iterator[None]:
    """One build at a time per output folder (other builds wait).

    A POSIX record lock (`lockf`), not `flock`: the processes a build forks to make pages do not
    inherit it, so a build that is killed never leaves its lock held by one of them."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(output.parent / f".{output.name}.serialist-lock", "a") as handle:
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
    temporary = target.with_name(f".{target.name}.serialist-tmp")
    with _read(source) as handle:
        temporary.unlink(missing_ok=True)  # (never written through: it may be a link a killed build left)
        with open(temporary, "xb") as out:
            while size := handle.readinto(buffer):
                digest.update(view[:size])
                out.write(view[:size])
    os.replace(temporary, target)
    return digest.hexdigest()[:32]


def write_output(files: Iterable[AnyFile | Placed] | Callable[[Placing], Iterable[AnyFile | Placed]],
                 output: Path, trusted: bool = True) -> int:
    """Write `files` as the new content of `output`; returns how many were written. `files` may be a function
    of how to put a file in place, for the processes that make files to put them in place themselves, giving
    the `Placed` record of each (see `_write_locked`). Not `trusted`: something else changed the output since
    the last build (a file edited by hand), so none of its files, nor of the spare copy that shares them, is
    taken to be what its manifest says: every file is written afresh."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with _locked(output):
            return _write_locked(files, output, trusted)
    except OSError as exc:
        where = exc.filename or output
        raise OutputError(f"cannot write the output to {where}: {exc.strerror or exc}. "
                          f"The previous output is unchanged.") from None


def _spare(output: Path) -> Path:
    return output.parent / f".{output.name}.serialist-spare"


def _replace_with_link(source: Path, target: Path) -> bool:
    """Make `target` the same file as `source` (atomically); False when the system cannot."""
    temporary = target.with_name(f".{target.name}.serialist-tmp")
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
    temporary = target.with_name(f".{target.name}.serialist-tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)


def _remove(root: Path, paths: Iterable[str], keep: dict[str, str]) -> None:
    """Delete `paths` under `root`, and the folders they leave empty; never what `keep` lists, or a folder
    holding any of it (an old file's path can be a folder of new ones now)."""
    folders: set[Path] = set()
    for path in paths:
        target = root / path
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
        if place != root and (place.is_file() or place.is_symlink()):
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
        target = self.folder / path
        if self.have.get(path) == digest and target.is_file():
            return digest, False
        if not folder_made:
            _make_folder(self.folder, target.parent)
        linked = self.current.get(path) == digest
        if not linked and (_create(target, data) or _overwrite(target, data)):
            return digest, True
        if target.is_dir() and not target.is_symlink():  # an old folder where a file now goes
            shutil.rmtree(target)
        if linked and _replace_with_link(self.output / path, target):
            return digest, False
        _replace_with_bytes(data, target)
        return digest, True


def _write_locked(files: Iterable[AnyFile | Placed] | Callable[[Placing], Iterable[AnyFile | Placed]],
                  output: Path, trusted: bool = True) -> int:
    """Bring the spare copy of the output up to date, then swap it in.

    The spare is the output of the build before last, kept next to the output
    (`.output.serialist-spare`), so only what changed is written and nothing
    has to be deleted wholesale. A file whose bytes did not change is the same
    file (a hard link) as in the current output, so its modification time stays
    put. Until the swap, the output itself is not touched: a build that fails
    or is killed leaves it as it was.

    Files are written as they come (a page's bytes are made only now, see
    `LazyFile`; `files` may be a function of the spare's `place`, for the
    worker processes that make pages to put them in place themselves, see
    `parallel.made`), and what the previous build made and this one did not is
    removed at the end.
    """
    recover(output)
    current = (previous_manifest(output) or {}) if trusted else {}
    folder = _spare(output)
    have = previous_manifest(folder) if trusted and folder.is_dir() else None
    if have is None:  # no spare, or one a killed build left half-updated
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        have = {}
    else:
        (folder / MANIFEST).unlink()
    spare = _Spare(folder, output, current, have)
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
    with ThreadPoolExecutor(WRITERS) as writers:
        try:
            for item in files(spare.place) if callable(files) else files:
                if isinstance(item, Placed):
                    wanted[item.path] = item.digest
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
    _remove(folder, [path for path in have if path not in wanted], wanted)
    manifest = "".join(f"{path}\t{wanted[path]}\n" for path in sorted(wanted))
    (folder / MANIFEST).write_text(manifest, "utf-8")
    _swap_in(folder, output)
    if not trusted:  # the output before, now the spare, is not what its manifest says either
        (folder / MANIFEST).unlink(missing_ok=True)
    return written


def _done(write: tuple[str, Future[tuple[str, bool]]], wanted: dict[str, str]) -> bool:
    """Whether a file handed to a writer thread was written (its digest noted in `wanted`)."""
    path, future = write
    wanted[path], written = future.result()
    return written


def _swap_in(staging: Path, output: Path) -> None:
    """Make `staging` the output; the previous output becomes `staging` (the next build's spare)."""
    foreign = _foreign_entries(output, set(os.listdir(staging)))
    if not output.exists():
        os.rename(staging, output)
        return
    if not _exchange(staging, output):
        old = _scratch(output, "old")
        os.rename(output, old)
        os.rename(staging, output)
        os.rename(old, staging)
    for entry in foreign:
        os.rename(staging / entry, output / entry)
