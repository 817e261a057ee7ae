"""What a file's name may be, and where a symbolic link may lead, checked before anything is read.

A file or folder that is published (a story folder, a chapter, a one-shot, a story's other files, the files
of the site's `static/` folder) must have a name that a URL, a feed and a terminal can show: valid UTF-8,
without control characters (`name_problem`). Its URL name must leave room, in the 255 bytes a file name may
have, for what the build adds to it (`<slug>.epub`, the names of files written first and then moved in
place): `MAX_NAME_BYTES`; and a path in the output, room for the output folder's own path: `MAX_PATH_BYTES`.

Nothing outside the site folder is read (`link_problem`): a symbolic link, to a file or to a folder, is
followed only when what it points at, fully resolved, is inside the site folder, and not a folder that
contains the link (a loop). Only symbolic links are resolved, so the check costs nothing for other files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

from generator.errors import display_path, printable

MAX_NAME_BYTES = 200  # a slug or a published file's name, in UTF-8
MAX_PATH_BYTES = 1024  # a published file's path from the output folder, in UTF-8

# C0 and C1 control characters, DEL, the Unicode line and paragraph separators, and (from a name that is not
# UTF-8, as Python reads it) lone surrogates.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def name_problem(name: str) -> str | None:
    """Why a file or folder called `name` cannot be published, with the fix; None when it can."""
    bad = _UNSHOWABLE.search(name)
    if bad is None:
        return None
    if "\ud800" <= bad.group() <= "\udfff":
        return ("this name is not UTF-8 text, so no web address can hold it; rename it (a file manager shows "
                "the odd letters as `?` or boxes)")
    return (f"this name has a control character ({printable(bad.group())}) in it, which no web address can hold "
            "and a terminal would act on; rename it without it")


def long_name_problem(name: str, what: str, fix: str) -> str | None:
    """Why `name`, the URL name of a `what` (story, chapter, file), is too long to be published; None if it is not."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size <= MAX_NAME_BYTES:
        return None
    return (f"the {what}'s URL name is {size} bytes long, and a name in the output may have at most "
            f"{MAX_NAME_BYTES} (a letter with an accent takes 2 bytes, most other scripts 3); {fix}")


def link_problem(path: Path, root: Path, ancestors: Iterable[Path] = ()) -> str | None:
    """Why the symbolic link `path` is not followed, or None when it is not one or may be: it must point at
    something that exists inside `root` (the site folder, resolved), and not at a folder containing it (the
    folder it is in, resolved, or one of `ancestors`, the resolved folders it was reached through)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "this symbolic link points nowhere or at itself (a loop); remove it"
    if not target.is_relative_to(root):
        return (f"this symbolic link points at {display_path(target)}, outside the site folder, and nothing "
                "outside the site folder is read or published; copy what you want published into the site, "
                "or remove the link")
    if target.is_dir() and (path.parent.resolve().is_relative_to(target) or target in ancestors):
        return f"this symbolic link points at {display_path(target)}, a folder that contains it (a loop); remove it"
    return None


def walk_inside(folder: Path, root: Path, refused: Callable[[Path, str], None] | None = None
                ) -> Iterator[tuple[Path, list[str], list[str]]]:
    """`os.walk` of `folder`, sorted: (each folder, the names of its folders, of its files). It also enters a
    symbolic link to a folder when `link_problem` allows it, each such target once (so no loop of links goes
    on for ever); the links it does not enter for a problem go to `refused`, with why."""
    followed: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        folders = sorted(dirnames)
        entered = []
        for name in folders:
            path = here / name
            if path.is_symlink():
                problem = link_problem(path, root)
                if problem is not None:
                    if refused is not None:
                        refused(path, problem)
                    continue
                target = path.resolve()
                if target in followed:
                    continue
                followed.add(target)
            entered.append(name)
        dirnames[:] = entered
        yield here, folders, sorted(filenames)
