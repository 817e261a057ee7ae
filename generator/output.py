"""Stage 6, write: all files into a fresh folder, swapped in only when complete.

A failed or killed build leaves the previous output as it was. Files in the
output folder that Serialist did not make (`.git`, `CNAME`, anything else)
are carried over into the new output; the manifest file records which files
the build made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import hashlib
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from generator.errors import OutputError

MANIFEST = ".serialist-manifest"


@dataclass(frozen=True, slots=True)
class OutputFile:
    path: str  # relative to the output root, `/`-separated
    data: bytes


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


def _previous_manifest(output: Path) -> dict[str, str] | None:
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
    made = _previous_manifest(folder) or {}
    made_top = {p.split("/", 1)[0] for p in made}
    return [entry for entry in sorted(os.listdir(folder))
            if entry != MANIFEST and entry not in made_top and entry not in keep_ours]


_RENAME_EXCHANGE = 2


@functools.lru_cache(maxsize=1)
def _renameat2() -> Any:
    """libc's renameat2, or None where there is none (looked up once: find_library is slow)."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        return ctypes.CDLL(libc_name, use_errno=True).renameat2
    except (OSError, AttributeError):
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
        if not stale.is_dir():
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
    """One build at a time per output folder (other builds wait)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(output.parent / f".{output.name}.serialist-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def write_output(files: Iterable[OutputFile], output: Path) -> int:
    """Write `files` as the new content of `output`; returns how many were written."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with _locked(output):
            return _write_locked(files, output)
    except OSError as exc:
        where = exc.filename or output
        raise OutputError(f"cannot write the output to {where}: {exc.strerror or exc}. "
                          f"The previous output is unchanged.") from None


def _write_locked(files: Iterable[OutputFile], output: Path) -> int:
    """Fill a staging folder and swap it in. A file whose bytes did not change is hard-linked from
    the previous output instead of written, so its modification time stays put."""
    recover(output)
    previous = _previous_manifest(output) or {}
    staging = _scratch(output, "new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        made_dirs: set[Path] = set()
        hashes: dict[str, str] = {}
        for item in files:
            target = staging / item.path
            if target.parent not in made_dirs:
                target.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(target.parent)
            hashes[item.path] = file_hash(item.data)
            if previous.get(item.path) == hashes[item.path]:
                try:
                    os.link(output / item.path, target)
                    continue
                except OSError:
                    pass  # gone, or a file system without hard links: write it
            target.write_bytes(item.data)
        manifest = "".join(f"{path}\t{hashes[path]}\n" for path in sorted(hashes))
        (staging / MANIFEST).write_text(manifest, "utf-8")
        _swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(hashes)


def _swap_in(staging: Path, output: Path) -> None:
    foreign = _foreign_entries(output, set(os.listdir(staging)))
    if not output.exists():
        os.rename(staging, output)
        return
    old = _scratch(output, "old")
    shutil.rmtree(old, ignore_errors=True)
    if _exchange(staging, output):
        os.rename(staging, old)  # `staging` now holds the previous output
    else:
        os.rename(output, old)
        os.rename(staging, output)
    for entry in foreign:
        os.rename(old / entry, output / entry)
    shutil.rmtree(old, ignore_errors=True)
