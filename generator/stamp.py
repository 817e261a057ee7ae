"""Is the output already up to date? A stamp of every input's size, times and inode, and of the output's.

After a successful build the stamps are saved in `.serialist-cache/state-*.json`; the
next build compares fresh stamps (file stats only: nothing is read or parsed but the
output's manifest) and, when no input changed, no scheduled chapter has come due and
every file of the output is still the one the last build wrote, does nothing at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from generator.cache import CACHE_DIR, atomic_write, digest


def input_stamp(root: Path, folders: list[Path], files: list[Path], settings: str) -> str:
    """A hash of the size, times and inode of every file under `folders` and of `files`; "" when the inputs
    cannot be vouched for by their stats (a folder of them is reached through a link to outside the site).

    Links to folders are followed, as the build follows them (a story folder linked into `content/`, a theme's
    `templates/`), when they stay inside the site or inside one of `folders`; a folder reached again (a loop,
    or two links to one folder) is stamped once. A link's own text is part of the stamp, so pointing it
    elsewhere is a change even when the files there look the same."""
    inside = [root.resolve(), *(folder.resolve() for folder in folders)]
    parts: list[str] = [settings]
    seen: set[tuple[int, int]] = set()  # the folders walked, by (device, inode)
    for folder in folders:
        if not _walk(str(folder), parts, seen, inside):
            return ""
    parts += [_stat_line(str(path)) for path in files]
    return digest("\n".join(parts))


def _walk(top: str, parts: list[str], seen: set[tuple[int, int]], inside: list[Path]) -> bool:
    """Add the stat line of every file under `top` to `parts`; False when a link leads out of `inside`."""
    waiting = [top]  # (a stack, not recursion: a hostile input may nest folders thousands deep)
    while waiting:
        folder = waiting.pop()
        try:
            status = os.stat(folder)
            key = (status.st_dev, status.st_ino)
            if key in seen:
                parts.append(f"{folder}\tagain")
                continue
            seen.add(key)
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            parts.append(f"{folder}\t-")
            continue
        folders: list[str] = []
        for entry in entries:
            try:
                link = os.readlink(entry.path) if entry.is_symlink() else None
                is_folder = entry.is_dir()  # (through a link)
            except OSError:
                link, is_folder = "?", False
            if link is not None and is_folder:
                if not any(Path(os.path.realpath(entry.path)).is_relative_to(place) for place in inside):
                    return False
                parts.append(f"{entry.path}\t-> {link}")
                folders.append(entry.path)
            elif is_folder:
                folders.append(entry.path)
            else:
                parts.append(_stat_line(entry.path) + (f"\t-> {link}" if link is not None else ""))
        waiting += reversed(folders)
    return True


def _stat_line(path: str) -> str:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return f"{path}\t-"
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}"


OUTPUT_STAMP = "files-"  # how a stamp of the output's files begins (an older one, of the manifest alone, did not)


def output_stamp(output: Path, manifest: str) -> str:
    """A hash of the manifest and of the stat of every file it lists (size, times, inode): a file of the output
    deleted, replaced or edited since the last build changes it, and so does a manifest that is not there ("")."""
    try:
        data = (output / manifest).read_bytes()
    except OSError:
        return ""
    from generator.output import parse_manifest  # (only once a build is known to have written the output)

    manifest = parse_manifest(data)
    if manifest is None:
        return ""
    base = f"{output}/"
    stats = "\n".join(_stat_line(base + path) for path in sorted(manifest.files))
    return OUTPUT_STAMP + digest(data, stats)


@dataclass(frozen=True, slots=True)
class BuildState:
    inputs: str
    output: str
    valid_until: str | None  # ISO date-time when a scheduled chapter comes due
    stories: int
    chapters: int
    words: int
    files: int
    warnings: tuple[str, ...]

    def current(self, inputs: str, output: str, now: datetime) -> bool:
        due = datetime.fromisoformat(self.valid_until) if self.valid_until else None
        return self.inputs == inputs and self.output == output and bool(output) and (due is None or now < due)

    def output_changed(self, output: str) -> bool:
        """Whether something else than a build changed the output (stamped `output` now) since this state's build:
        a file of it edited, replaced or deleted by hand. (Not known from a state of an older kind.)"""
        return bool(output) and self.output.startswith(OUTPUT_STAMP) and output != self.output


def _path(root: Path, output: Path) -> Path:
    """One state per output folder, so that `serve` (which builds elsewhere) and `build` do not undo each other."""
    return root / CACHE_DIR / f"state-{digest(str(output.resolve()))[:16]}.json"


def load_state(root: Path, output: Path) -> BuildState | None:
    try:
        data = json.loads(_path(root, output).read_text("utf-8"))
        data["warnings"] = tuple(data["warnings"])
        return BuildState(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save_state(root: Path, output: Path, state: BuildState) -> None:
    try:
        atomic_write(_path(root, output), json.dumps(asdict(state), indent=1).encode())
    except OSError:
        pass  # only costs the next build its shortcut


def forget_state(root: Path, output: Path) -> None:
    try:
        _path(root, output).unlink()
    except OSError:
        pass
