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


# ------------------------------------------------------------------ drill
def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class DrillStepRow:
    name: str
    seconds: float
    ok: bool
    bytes: int = 0


@dataclass(frozen=True)
class DrillRow:
    """A `dr.drill --live` run: the snapshot it brought back, from where, and whether every byte matched.

    `failed` names at most FAILED_SHOWN keys (`failed_count` says how many);
    `steps` time each step, `rto_seconds` those that bring the data back.
    """

    id: str
    ts: str | None
    snapshot: str | None
    source: str | None
    objects: int | None
    bytes: int | None
    ok: bool | None
    failed: tuple[str, ...]
    failed_count: int | None
    checked: int | None
    sample: int | None
    seed: int | None
    ttfb_seconds: float | None
    rto_seconds: float | None
    seconds: float | None
    steps: tuple[DrillStepRow, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    FAILED_SHOWN = 20

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> DrillRow | None:
        did = _str(raw.get("id"))
        if did is None:
            return None
        listed = raw.get("steps")
        steps = tuple(
            DrillStepRow(s["name"], _num(s.get("seconds")) or 0.0, s.get("ok") is True, _int(s.get("bytes")) or 0)
            for s in (listed if isinstance(listed, list) else [])
            if isinstance(s, dict) and isinstance(s.get("name"), str)
        )
        return cls(
            did,
            _str(raw.get("ts")),
            _str(raw.get("snapshot")),
            _str(raw.get("source")),
            _int(raw.get("objects")),
            _int(raw.get("bytes")),
            _bool(raw.get("ok")),
            _strs(raw.get("failed")),
            _int(raw.get("failed_count")),
            _int(raw.get("checked")),
            _int(raw.get("sample")),
            _int(raw.get("seed")),
            _num(raw.get("ttfb_seconds")),
            _num(raw.get("rto_seconds")),
            _num(raw.get("seconds")),
            steps,
            raw,
        )

    def format(self) -> dict[str, Any]:
        """The row as the index stores it (`Index.append` adds `v`); `parse(format())` gives it back."""
        return {
            "kind": "drill",
            "id": self.id,
            "ts": self.ts,
            "snapshot": self.snapshot,
            "source": self.source,
            "objects": self.objects,
            "bytes": self.bytes,
            "ok": self.ok,
            "failed": list(self.failed[: self.FAILED_SHOWN]),
            "failed_count": self.failed_count,
            "checked": self.checked,
            "sample": self.sample,
            "seed": self.seed,
            "ttfb_seconds": self.ttfb_seconds,
            "rto_seconds": self.rto_seconds,
            "seconds": self.seconds,
            "steps": [{"name": s.name, "seconds": s.seconds, "ok": s.ok, "bytes": s.bytes} for s in self.steps],
        }

    @property
    def at(self) -> datetime | None:
        try:
            return parse_iso(self.ts) if self.ts is not None else None
        except ValueError:
            return None


def drill_rows(raws: Iterable[dict[str, Any]]) -> list[DrillRow]:
    """The `drill` rows of `raws`, typed, in line order."""
    out: list[DrillRow] = []
    for raw in raws:
        row = DrillRow.parse(raw) if raw.get("kind") == "drill" else None
        if row is not None:
            out.append(row)
    return out
