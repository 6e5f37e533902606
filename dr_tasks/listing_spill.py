"""A snapshot's listing kept on disk, so a snapshot's memory does not grow with the number of keys.

The listing is read once (in the lease's settle wait, before any copy, so a
refusal still comes before anything is written) into a private SQLite
database: SQLite's empty file name is a temporary on-disk database that it
unlinks as soon as it opens it, so nothing is left behind, even by kill -9.
Rows keep the listing's order (the manifest's order) and each key once (a
key named twice is counted, not stored); the copies then read it back a chunk
at a time, and the manifest is written from it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime

from .transport import ObjectVersion

# Objects read back per chunk: a listing page's worth bounds what is held as Python objects.
CHUNK = 1000
# SQLite's page cache for the spill, in KiB (its default, made explicit: memory stays flat past it).
CACHE_KIB = 2048

_SCHEMA = """
CREATE TABLE objects (
    n INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    version_id TEXT,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    copy_etag TEXT
);
CREATE TABLE twice (key TEXT PRIMARY KEY);
"""


class ListingSpill:
    """The live objects a snapshot copies, in listing order, each key once, on disk."""

    def __init__(self) -> None:
        # Written in the lease's settle wait (another thread), read after: one user at a time.
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        self.count = 0
        self.bytes = 0

    def close(self) -> None:
        self._db.close()

    def add(self, objects: Iterable[ObjectVersion]) -> None:
        """Append `objects` (a listing, streamed); a key already added is recorded in `twice` instead."""
        self._db.execute("BEGIN")
        for o in objects:
            row = (o.key, o.version_id, o.size, o.etag, o.last_modified.isoformat())
            try:
                self._db.execute(
                    "INSERT INTO objects (key, version_id, size, etag, last_modified) VALUES (?, ?, ?, ?, ?)", row
                )
            except sqlite3.IntegrityError:
                self._db.execute("INSERT OR IGNORE INTO twice (key) VALUES (?)", (o.key,))
        self._db.execute("COMMIT")
        self.count, self.bytes = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM objects").fetchone()

    def named_twice(self, first: int = 3) -> tuple[int, list[str]]:
        """How many keys the listing named more than once, and the first `first` of them in key order."""
        (count,) = self._db.execute("SELECT count(*) FROM twice").fetchone()
        return count, [k for (k,) in self._db.execute("SELECT key FROM twice ORDER BY key LIMIT ?", (first,))]

    def chunks(self) -> Iterator[list[tuple[int, ObjectVersion, str | None]]]:
        """(row number, listed object, copy's ETag once recorded), in listing order, CHUNK at a time."""
        after = 0
        while True:
            rows = self._db.execute(
                "SELECT n, key, version_id, size, etag, last_modified, copy_etag FROM objects "
                "WHERE n > ? ORDER BY n LIMIT ?",
                (after, CHUNK),
            ).fetchall()
            if not rows:
                return
            yield [
                (n, ObjectVersion(key, vid, size, etag, datetime.fromisoformat(lm)), copy_etag)
                for n, key, vid, size, etag, lm, copy_etag in rows
            ]
            after = rows[-1][0]

    def objects(self) -> Iterator[tuple[ObjectVersion, str | None]]:
        """Every (listed object, copy's ETag or None), in listing order."""
        for chunk in self.chunks():
            for _, o, copy_etag in chunk:
                yield o, copy_etag

    def record_copies(self, done: Iterable[tuple[int, str]]) -> None:
        """Record (row number, copy's ETag) for copies made."""
        self._db.executemany("UPDATE objects SET copy_etag = ? WHERE n = ?", ((etag, n) for n, etag in done))

    def copied_keys(self) -> Iterator[str]:
        """The live keys whose copy was made, in listing order."""
        for (key,) in self._db.execute("SELECT key FROM objects WHERE copy_etag IS NOT NULL ORDER BY n"):
            yield key
