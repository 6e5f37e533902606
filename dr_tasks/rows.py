"""Index rows, typed: each `snapshot`, `rollback`, `prune` and `pin` row becomes one of these once.

`IndexRead.typed` builds them from the rows `Index.read` kept (which already
have every field's type, see `index.row_problem`), so the operations read
attributes instead of checking `isinstance` at each use. A field the row
lacks is None (an empty tuple for lists). Each row keeps its `raw` mapping:
listings print rows exactly as the file has them, unknown fields included,
and the NDJSON format is unchanged.

A row built by hand (a test's `IndexRead(rows=...)`) is read the same way,
leniently: a field of the wrong type counts as absent, and a snapshot,
rollback or pin row whose id is not a string is left out, as the reader would
have left out its line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .timeparse import parse_iso


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _strs(v: Any) -> tuple[str, ...]:
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list) else ()


@dataclass(frozen=True)
class SnapshotRow:
    id: str
    ts: str | None
    label: str | None
    bucket: str | None
    manifest: str | None
    objects: int | None
    bytes: int | None
    versioned: bool | None
    reindexed: bool | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SnapshotRow | None:
        sid = _str(raw.get("id"))
        if sid is None:
            return None
        return cls(
            sid,
            _str(raw.get("ts")),
            _str(raw.get("label")),
            _str(raw.get("bucket")),
            _str(raw.get("manifest")),
            _int(raw.get("objects")),
            _int(raw.get("bytes")),
            _bool(raw.get("versioned")),
            _bool(raw.get("reindexed")),
            raw,
        )

    @property
    def at(self) -> datetime | None:
        """When it was taken, or None when `ts` is missing or not our whole-second UTC form."""
        try:
            return parse_iso(self.ts) if self.ts is not None else None
        except ValueError:
            return None


@dataclass(frozen=True)
class RollbackRow:
    id: str
    ts: str | None
    snapshot: str | None
    safety_snapshot: str | None
    interrupted_safety_snapshots: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> RollbackRow | None:
        rid = _str(raw.get("id"))
        if rid is None:
            return None
        return cls(
            rid,
            _str(raw.get("ts")),
            _str(raw.get("snapshot")),
            _str(raw.get("safety_snapshot")),
            _strs(raw.get("interrupted_safety_snapshots")),
            raw,
        )


@dataclass(frozen=True)
class PruneRow:
    # Never looked up by id: a prune row counts for the ids it names.
    id: str | None
    ts: str | None
    bucket: str | None
    deleted: tuple[str, ...]
    orphans: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> PruneRow:
        return cls(
            _str(raw.get("id")),
            _str(raw.get("ts")),
            _str(raw.get("bucket")),
            _strs(raw.get("deleted")),
            _strs(raw.get("orphans")),
            raw,
        )


@dataclass(frozen=True)
class PinRow:
    id: str
    ts: str | None
    # None when the row does not say: a pin row pins unless `pinned` is false.
    pinned: bool | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> PinRow | None:
        pid = _str(raw.get("id"))
        if pid is None:
            return None
        return cls(pid, _str(raw.get("ts")), _bool(raw.get("pinned")), raw)

    @property
    def pins(self) -> bool:
        return self.pinned is not False


Row = SnapshotRow | RollbackRow | PruneRow | PinRow
_PARSERS = {"snapshot": SnapshotRow.parse, "rollback": RollbackRow.parse, "prune": PruneRow.parse, "pin": PinRow.parse}


def parse_rows(raws: Iterable[dict[str, Any]]) -> list[Row]:
    """The typed rows of `raws`, in line order; rows of other kinds (backups, drills, ...) are left out."""
    out: list[Row] = []
    for raw in raws:
        kind = raw.get("kind")
        parse = _PARSERS.get(kind) if isinstance(kind, str) else None
        row = parse(raw) if parse is not None else None
        if row is not None:
            out.append(row)
    return out
