"""Is the output already up to date? A stamp of every input's size and time.

After a successful build the stamp is saved in `.serialist-cache/state-*.json`; the
next build compares a fresh stamp (file stats only: nothing is read or parsed)
and, when nothing changed, no scheduled chapter has come due and the output is
still what the last build wrote, does nothing at all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from generator.cache import CACHE_DIR, atomic_write, digest
from generator.names import walk_inside



def input_stamp(root: Path, folders: list[Path], files: list[Path], settings: str) -> str:
    """A hash of the size and modification time of every file under `folders` and of `files`. Symbolic links
    to folders are followed where the build follows them: to folders inside the site (`walk_inside`)."""
    parts: list[str] = [settings]
    real_root = root.resolve()
    for folder in folders:
        for here, subfolders, filenames in walk_inside(folder, real_root):
            parts.append(f"{here}\t{'/'.join(subfolders)}")  # a new link to a folder, say
            for name in filenames:
                parts.append(_stat_line(here / name))
    parts += [_stat_line(path) for path in files]
    return digest("\n".join(parts))


def _stat_line(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}\t-"
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}"


def output_stamp(output: Path, manifest: str) -> str:
    try:
        return digest((output / manifest).read_bytes())
    except OSError:
        return ""


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
