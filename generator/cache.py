"""A persistent, content-addressed cache in the site's `.serialist-cache/` folder.

Values are plain data (str, int, tuples, lists, dicts) stored with `marshal`,
which, unlike pickle, cannot run code from a planted file. Entries are keyed by a hash of everything that went into them (source text,
the settings that matter, the Serialist version), so a stale entry is never
found rather than ever invalidated. A damaged entry is ignored with a warning
and recomputed; the cache can be deleted at any time.
"""

from __future__ import annotations

import hashlib
import os
import marshal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import __version__

CACHE_DIR = ".serialist-cache"


def digest(*parts: str | bytes) -> str:
    """A hex key for `parts` (with the Serialist version, so an upgrade starts afresh)."""
    h = hashlib.blake2b(__version__.encode(), digest_size=20)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@dataclass(frozen=True, slots=True)
class Cache:
    """One namespace of the cache (`markdown`, `epub`, …); `enabled=False` makes every lookup miss."""

    folder: Path
    enabled: bool = True
    writable: bool = True  # False: read what is there, add nothing (`serialist check`)

    @classmethod
    def for_site(cls, root: Path, namespace: str, enabled: bool = True, writable: bool = True) -> "Cache":
        return cls(root / CACHE_DIR / namespace, enabled, writable)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / key[2:]

    def get(self, key: str, warnings: list[str] | None = None) -> Any | None:
        if not self.enabled:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            return marshal.loads(data)
        except Exception:  # noqa: BLE001 - any damage to a cache file means "not cached"
            if warnings is not None:
                warnings.append(f"ignored a damaged cache file {path}; it will be rebuilt")
            return None

    def put(self, key: str, value: Any) -> None:
        if not (self.enabled and self.writable):
            return
        try:
            atomic_write(self._path(key), marshal.dumps(value))
        except OSError:
            pass  # a cache that cannot be written only costs time
