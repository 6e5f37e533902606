"""`snapshots.ndjson`: the append-only index of DR events.

One JSON object a line. Appends are whole lines, flushed and fsynced; nothing
here ever rewrites the file (a failed append takes back only its own bytes). A torn or garbled line is reported by
its line number and the good rows around it are kept.

Rows are parsed once, here: a row of a known kind whose fields have the wrong
types (an `id` that is a list, a count that is a string) is a bad line like a
torn one, so no reader downstream ever meets a field of an unexpected type.
"""

from __future__ import annotations

import errno
import json
import os
import resource
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import DrError
from .interrupt import shielded
from .rows import BackupRow, LockBreakRow, PinRow, PruneRow, RollbackRow, Row, SnapshotRow, parse_rows

VERSION = 1

# The type each field of a known kind must have when present; `id` is required
# of every known kind. "str?" and the like also allow null (older rows and
# "unknown" values). Unknown kinds (a newer tool's) are kept as they are.
_COMMON = {"id": "str", "ts": "str", "v": "int"}
SCHEMA: dict[str, dict[str, str]] = {
    "snapshot": {
        "label": "str",
        "bucket": "str",
        "source": "str",
        "dest": "str",
        "objects": "int",
        "bytes": "int",
        "manifest": "str",
        "versioned": "bool?",
        "reindexed": "bool",
    },
    "rollback": {
        "snapshot": "str",
        "label": "str",
        "safety_snapshot": "str",
        "interrupted_safety_snapshots": "list[str]",
        "bucket": "str",
        "versioned": "bool?",
        "copied": "int",
        "deleted": "int",
        "unchanged": "int",
        "preserved": "int",
        "bytes": "int",
    },
    "cross-region-backup": {
        "source": "str?",
        "dest_bucket": "str",
        "dest": "str?",
        "objects": "int",
        "copied": "int",
        "skipped": "int",
        "deleted": "int",
        "bytes": "int",
        "failed": "int",
        "partial": "bool",
        "mirror": "bool",
    },
    "prune": {"bucket": "str", "deleted": "list[str]", "orphans": "list[str]", "kept": "list[str]", "objects": "int"},
    "pin": {"pinned": "bool", "by": "str?", "reason": "str?", "reindexed": "bool"},
    "drill": {
        "snapshot": "str?",
        "source": "str",
        "objects": "int",
        "bytes": "int",
        "ok": "bool",
        "failed": "list[str]",
        "failed_count": "int",
        "checked": "int",
        "sample": "int?",
        "seed": "int?",
    },
    "lock-break": {
        "bucket": "str",
        "key": "str",
        "operation": "str",
        "by": "str",
        "reason": "str?",
        "automatic": "bool",
    },
}
_REQUIRED = ("id",)


def _is(value: Any, spec: str) -> bool:
    if spec.endswith("?"):
        return value is None or _is(value, spec[:-1])
    if spec == "str":
        return isinstance(value, str)
    if spec == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec == "bool":
        return isinstance(value, bool)
    if spec == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(spec)


_SPOKEN = {"str": "a string", "int": "a whole number", "bool": "true or false", "list[str]": "a list of strings"}


def row_problem(row: dict[str, Any]) -> str | None:
    """Why a parsed row of a known kind cannot be used, or None when every field has its type."""
    kind = row.get("kind")
    if not isinstance(kind, str):
        return "its kind is not a string"
    fields = SCHEMA.get(kind)
    if fields is None:
        return None
    for name in _REQUIRED:
        if name not in row:
            return f"a {kind} row without {name!r}"
    for name, spec in {**_COMMON, **fields}.items():
        if name in row and not _is(row[name], spec):
            want = _SPOKEN[spec.rstrip("?")] + (" or null" if spec.endswith("?") else "")
            return f"{kind} row field {name!r} is {type(row[name]).__name__}, not {want}"
    return None


# "<kind> <id>" of every row this process appended: what a task interrupted by
# a signal reports as already recorded.
APPENDED: list[str] = []

# What a pre-flight check leaves for one row: rows are a few hundred bytes.
ROW_ROOM = 4096


class IndexWriteError(DrError):
    """An append failed; `left` says what of the row stayed in the file (None: nothing)."""

    def __init__(self, path: Path, reason: str, left: str | None) -> None:
        super().__init__(
            f"cannot append to the index {path}: {reason}" + (f"; {left}" if left else ""),
            "free disk space or fix the file's permissions and limits, then run again",
        )
        self.reason = reason
        self.left = left


@dataclass(frozen=True)
class BadLine:
    lineno: int
    text: str
    reason: str

    def describe(self) -> str:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return f"line {self.lineno}: {self.reason}: {shown!r}"


@dataclass
class IndexRead:
    rows: list[dict[str, Any]] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    # The last line has no newline: a crash cut it (it is in `bad` too when
    # it does not parse).
    torn_tail: bool = False

    @cached_property
    def typed(self) -> list[Row]:
        """The rows of the kinds `dr_tasks.rows` types, typed, in line order."""
        return parse_rows(self.rows)

    def snapshots(self) -> list[SnapshotRow]:
        return [r for r in self.typed if isinstance(r, SnapshotRow)]

    def rollbacks(self) -> list[RollbackRow]:
        return [r for r in self.typed if isinstance(r, RollbackRow)]

    def prunes(self) -> list[PruneRow]:
        return [r for r in self.typed if isinstance(r, PruneRow)]

    def pins(self) -> list[PinRow]:
        return [r for r in self.typed if isinstance(r, PinRow)]

    def backups(self) -> list[BackupRow]:
        return [r for r in self.typed if isinstance(r, BackupRow)]

    def lock_breaks(self) -> list[LockBreakRow]:
        return [r for r in self.typed if isinstance(r, LockBreakRow)]

    def snapshot(self, snap_id: str) -> SnapshotRow | None:
        """The first `snapshot` row with id `snap_id`."""
        return next((r for r in self.snapshots() if r.id == snap_id), None)

    def bad_summary(self, shown: int = 3) -> str | None:
        """One line naming the bad lines by number (every reader warns with it), or None."""
        if not self.bad:
            return None
        more = f" and {len(self.bad) - shown} more" if len(self.bad) > shown else ""
        return (
            f"the index has {len(self.bad)} unreadable line(s), skipped: "
            + "; ".join(b.describe() for b in self.bad[:shown])
            + more
            + " (`inv dr.list` names them all; the file is never rewritten)"
        )


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class Index:
    """The index file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> IndexRead:
        result = IndexRead()
        if not self.path.exists():
            return result
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise DrError(f"cannot read the index {self.path}: {err.strerror}", "check its permissions") from None
        result.torn_tail = bool(data) and not data.endswith(b"\n")
        text = data.decode("utf-8", errors="replace")
        # Line by line, so a bad line is reported by its number and the rows
        # around it are kept (a JSON Lines reader would stop at the first bad line).
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                result.bad.append(BadLine(lineno, line, "not valid JSON"))
                continue
            if not isinstance(row, dict) or "kind" not in row:
                result.bad.append(BadLine(lineno, line[:200], "not an index row"))
                continue
            problem = row_problem(row)
            if problem is not None:
                result.bad.append(BadLine(lineno, line[:200], problem))
                continue
            result.rows.append(row)
        if result.torn_tail and not any(b.lineno == text.count("\n") + 1 for b in result.bad):
            # A cut that still parses as JSON (e.g. `{}` truncated after a
            # closing brace) is still a torn line.
            result.bad.append(BadLine(text.count("\n") + 1, text.rsplit("\n", 1)[-1], "no newline at end (torn write)"))
        return result

    def append(self, row: dict[str, Any]) -> None:
        """Append one row as one whole line, flushed and fsynced; on failure no part of it stays."""
        line = {"v": VERSION, **row}
        payload = json.dumps(line, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
        if "\n" in payload:
            raise DrError("refusing to write an index row that spans lines", "this is a bug; report it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Terminating a torn tail keeps it (still reported on read) rather
        # than gluing our row onto it.
        data = (("\n" if self._needs_newline() else "") + payload + "\n").encode("utf-8")
        # A signal waits until the line is whole (or taken back).
        with shielded():
            self._append(data)
        APPENDED.append(f"{row.get('kind')} {row.get('id')}")

    def _append(self, data: bytes) -> None:
        # O_APPEND: concurrent appenders never interleave within a line.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise IndexWriteError(self.path, err.strerror or str(err), None) from None
        try:
            start = os.fstat(fd).st_size
            written = 0
            try:
                # A full disk or a file size limit (ulimit -f) can take part of a line.
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as err:
                raise IndexWriteError(
                    self.path, err.strerror or str(err), self._take_back(fd, start, written)
                ) from None
        finally:
            os.close(fd)

    def _take_back(self, fd: int, start: int, written: int) -> str | None:
        """Remove the part of our line that did get written; None when none is left, else what is."""
        if written == 0:
            return None
        try:
            # Only our own bytes: another appender's line after them is never cut.
            if os.fstat(fd).st_size == start + written:
                os.ftruncate(fd, start)
                os.fsync(fd)
                return None
        except OSError:
            pass
        return f"a partial line of {written} bytes is left at byte {start} (it reads as a torn line)"

    def check_writable(self, room: int = ROW_ROOM) -> None:
        """Raise IndexWriteError now, before any change, when a row of `room` bytes could not be appended.

        Catches what can be known without writing: a file or directory that
        cannot be opened for writing (read-only, immutable, permissions), a
        full disk, and a file size limit (`ulimit -f`) the row would pass.
        """
        try:
            if self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
                size = self.path.stat().st_size
            else:
                size = 0
                parent = self.path.parent
                while not parent.exists():
                    parent = parent.parent
                if not os.access(parent, os.W_OK):
                    raise PermissionError(errno.EACCES, f"{parent} is not writable")
            where = self.path if self.path.exists() else self.path.parent
            while not where.exists():
                where = where.parent
            fs = os.statvfs(where)
        except OSError as err:
            raise IndexWriteError(self.path, err.strerror or str(err), None) from None
        if fs.f_bavail * fs.f_frsize < room:
            raise IndexWriteError(
                self.path, f"{os.strerror(errno.ENOSPC)} ({fs.f_bavail * fs.f_frsize} bytes free)", None
            )
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and size + room > limit:
            raise IndexWriteError(
                self.path, f"it is {size} bytes and this process may write files of at most {limit} (ulimit -f)", None
            )

    def _needs_newline(self) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size == 0:
            return False
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
