"""A persistent, content-addressed cache in the site's `.serialist-cache/` folder.

Each namespace (`markdown`, `xhtml`) is one SQLite database (Python's own `sqlite3`): a cold build
puts thousands of entries, and one file each cost far more to create than rows of one database.
Values are plain data (str, int, tuples, lists, dicts) stored with `marshal`, which, unlike pickle,
cannot run code from a planted file. Entries are keyed by a hash of everything that went into them
(source text, the settings that matter, the Serialist version), so a stale entry is never found rather
than ever invalidated. A damaged database or entry is ignored with a warning and rebuilt; the cache
can be deleted at any time.

A worker process forked from the build uses a connection of its own (SQLite's connections must not
cross a fork), and writes what it put in one short transaction when it flushes, so that processes
seldom wait for each other's writes.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from generator import __version__

CACHE_DIR = ".serialist-cache"
QUERY_KEYS = 500  # keys looked up in one query (SQLite allows 999 parameters in a statement, in old versions)


def digest(*parts: str | bytes) -> str:
    """A hex key for `parts` (with the Serialist version, so an upgrade starts afresh)."""
    h = hashlib.sha256(__version__.encode())
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:40]


def atomic_write(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except FileNotFoundError:  # the folder's first file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    """The database at `path`, made if need be, in autocommit mode (transactions are begun explicitly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")  # a cache: a crash of the machine may lose it, no more
    db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    return db


class Cache:
    """One namespace of the cache; `enabled=False` makes every lookup miss.

    Puts are kept in one transaction until `flush` (or `close`): a build that dies before it leaves the
    database as it was."""

    def __init__(self, path: Path, enabled: bool = True, writable: bool = True) -> None:
        self.path = path  # the database
        self.enabled = enabled
        self.writable = writable  # False: read what is there, add nothing (`serialist check`)
        self._db: sqlite3.Connection | None = None
        self._unusable = False  # not there to read, or not writable here: every lookup misses
        self._in_transaction = False
        self._process = os.getpid()  # the process that made this object
        self._forked: tuple[int, sqlite3.Connection | None] | None = None  # (a forked process, its connection)
        self._later: dict[str, bytes] = {}  # (in a forked process) what it put, written when it flushes

    @classmethod
    def for_site(cls, root: Path, namespace: str, enabled: bool = True, writable: bool = True) -> "Cache":
        return cls(root / CACHE_DIR / f"{namespace}.sqlite", enabled, writable)

    def _in_fork(self) -> sqlite3.Connection | None:
        """(In a process forked from the one that made this object.) A connection of its own."""
        process = os.getpid()
        if self._forked is None or self._forked[0] != process:
            db: sqlite3.Connection | None = None
            if self.enabled and (self.writable or self.path.is_file()):
                try:
                    db = _connect(self.path, timeout=5)
                except (sqlite3.Error, OSError):
                    db = None  # (damage is dealt with by the process that made this object)
            self._forked, self._later = (process, db), {}
        return self._forked[1]

    def _open(self, warnings: list[str] | None) -> sqlite3.Connection | None:
        if os.getpid() != self._process:
            return self._in_fork()
        if self._db is not None or self._unusable or not self.enabled:
            return self._db
        if not self.writable and not self.path.is_file():
            self._unusable = True
            return None
        if self.path.is_file() and self.path.stat().st_size == 0:  # emptied: no database, though one was made
            self._damaged(sqlite3.DatabaseError("empty"), warnings)
        old_layout = self.path.with_suffix("")  # a folder of one file per entry, from before the database
        if self.writable and old_layout.is_dir():
            shutil.rmtree(old_layout, ignore_errors=True)
        for attempt in range(2):
            try:
                db = _connect(self.path, timeout=2)
                db.execute("SELECT key FROM entries LIMIT 1").fetchall()  # damage shows here, if not before
                self._db = db
                return db
            except sqlite3.DatabaseError as exc:
                if attempt or not self._damaged(exc, warnings):
                    break
            except OSError:
                break
        self._unusable = True
        return None

    def _damaged(self, exc: sqlite3.DatabaseError, warnings: list[str] | None) -> bool:
        """After an error from the database: when it is damage, warn, delete it and say so (to start afresh)."""
        if isinstance(exc, sqlite3.OperationalError) and "malformed" not in str(exc):
            return False  # locked by another build, or the like: not damage
        if warnings is not None:
            warnings.append(f"ignored a damaged cache file {self.path}; it will be rebuilt")
        self.close(commit=False)
        if not self.writable:
            return False
        for leftover in (self.path, self.path.with_name(self.path.name + "-journal")):
            try:
                leftover.unlink()
            except OSError:
                pass
        return True

    def get(self, key: str, warnings: list[str] | None = None) -> Any | None:
        db = self._open(warnings)
        if db is None:
            return None
        try:
            row = db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            if os.getpid() != self._process:
                return None  # (the process that writes deals with damage)
            if self._damaged(exc, warnings):
                self._db, self._unusable = None, False  # a fresh database for what this build puts
            return None
        if row is None:
            return None
        try:
            return marshal.loads(row[0])
        except Exception:  # noqa: BLE001 - any damage to an entry means "not cached"
            if warnings is not None:
                warnings.append(f"ignored a damaged entry in the cache file {self.path}; it will be rebuilt")
            return None

    def get_many(self, keys: list[str], warnings: list[str] | None = None) -> dict[str, Any]:
        """`get` of every key, a few hundred to a query (a query per key costs more than reading the values):
        the values found, by key."""
        found: dict[str, Any] = {}
        db = self._open(warnings) if keys else None
        if db is None:
            return found
        wanted = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(wanted), QUERY_KEYS):
                chunk = wanted[start:start + QUERY_KEYS]
                # A row at a time: a long serial's values are a hundred megabytes, not to be held twice.
                for key, value in db.execute(f"SELECT key, value FROM entries WHERE key IN "
                                             f"({','.join('?' * len(chunk))})", chunk):
                    try:
                        found[key] = marshal.loads(value)
                    except Exception:  # noqa: BLE001 - any damage to an entry means "not cached"
                        if warnings is not None:
                            warnings.append(f"ignored a damaged entry in the cache file {self.path}; "
                                            "it will be rebuilt")
        except sqlite3.DatabaseError as exc:
            if os.getpid() == self._process and self._damaged(exc, warnings):
                self._db, self._unusable = None, False  # a fresh database for what this build puts
            return {}
        return found

    def put(self, key: str, value: Any) -> None:
        if not (self.enabled and self.writable):
            return
        if os.getpid() != self._process:
            if self._in_fork() is not None:
                self._later[key] = marshal.dumps(value)
            return
        db = self._open(None)
        if db is None:
            return
        try:
            if not self._in_transaction:
                db.execute("BEGIN")
                self._in_transaction = True
            db.execute("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", (key, marshal.dumps(value)))
        except sqlite3.Error:
            self.close(commit=False)  # a cache that cannot be written only costs time
            self._unusable = True

    def flush(self) -> None:
        """Make the puts so far last."""
        if os.getpid() != self._process:
            db = self._in_fork()
            if db is not None and self._later:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    db.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", self._later.items())
                    db.execute("COMMIT")
                except sqlite3.Error:  # locked too long by another process, or the like: only costs time
                    try:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
            self._later = {}
            return
        if self._db is not None and self._in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self.close(commit=False)
                self._unusable = True
            self._in_transaction = False

    def close(self, commit: bool = True) -> None:
        if os.getpid() != self._process:  # a forked process: its own connection, never the one it inherited
            if commit:
                self.flush()
            if self._forked is not None and self._forked[0] == os.getpid() and self._forked[1] is not None:
                self._forked[1].close()
            self._forked = None
            return
        if commit:
            self.flush()
        if self._db is not None:
            self._db.close()
        self._db, self._in_transaction = None, False
