"""Index rows, typed: each `snapshot`, `rollback`, `prune`, `pin`, `cross-region-backup` and `lock-break` row
becomes one of these once.

`IndexRead.typed` builds them from the rows `Index.read` kept (which already
have every field's type, see `index.row_problem`), so the operations read
attributes instead of checking `isinstance` at each use. A field the row
lacks is None (an empty tuple for lists). Each row keeps its `raw` mapping:
listings print rows exactly as the file has them, unknown fields included,
and the NDJSON format is unchanged.

A row built by hand (a test's `IndexRead(rows=...)`) is read the same way,
leniently: a field of the wrong type counts as absent, and a snapshot,
rollback, pin or lock-break row whose id is not a string is left out, as the
reader would have left out its line.

The rows this package writes from a typed row (`BackupRow`, `LockBreakRow`)
come from its `format()`: the fields in the order docs/DESIGN.md shows, so a
line is byte for byte what it was when the writers built dicts (`Index.append`
puts `v` first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .timeparse import parse_iso


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _recorded(raw: dict[str, Any], name: str) -> tuple[bool, str | None]:
    """(whether the row records `name`, its value): null is a value (AWS), absent is "not recorded"."""
    v = raw.get(name)
    if name in raw and (v is None or isinstance(v, str)):
        return True, v
    return False, None


def _at(ts: str | None) -> datetime | None:
    try:
        return parse_iso(ts) if ts is not None else None
    except ValueError:
        return None


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
        return _at(self.ts)


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


BACKUP_KIND = "cross-region-backup"
LOCK_BREAK_KIND = "lock-break"


@dataclass(frozen=True)
class BackupRow:
    """A `cross-region-backup` row: one run of `dr.backup`.

    Rows written before a field was recorded lack it: `source` and `dest`
    are then None, and `records_source_endpoint` / `records_dest_endpoint`
    are False (an endpoint of None that is recorded means AWS).
    """

    # Never looked up by id: backups are found by destination and time.
    id: str | None
    ts: str | None
    source: str | None  # s3://<bucket>/<prefix> it was read from
    source_endpoint: str | None
    records_source_endpoint: bool
    dest_bucket: str | None
    dest: str | None  # s3://<dest_bucket>/<backup prefix>
    dest_endpoint: str | None
    records_dest_endpoint: bool
    dest_region: str | None
    objects: int | None
    copied: int | None
    skipped: int | None
    deleted: int | None
    bytes: int | None
    failed: int | None  # how many objects failed
    partial: bool | None
    mirror: bool | None
    seconds: float | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> BackupRow:
        has_source_endpoint, source_endpoint = _recorded(raw, "source_endpoint")
        has_dest_endpoint, dest_endpoint = _recorded(raw, "dest_endpoint")
        return cls(
            _str(raw.get("id")),
            _str(raw.get("ts")),
            _str(raw.get("source")),
            source_endpoint,
            has_source_endpoint,
            _str(raw.get("dest_bucket")),
            _str(raw.get("dest")),
            dest_endpoint,
            has_dest_endpoint,
            _str(raw.get("dest_region")),
            _int(raw.get("objects")),
            _int(raw.get("copied")),
            _int(raw.get("skipped")),
            _int(raw.get("deleted")),
            _int(raw.get("bytes")),
            _int(raw.get("failed")),
            _bool(raw.get("partial")),
            _bool(raw.get("mirror")),
            _num(raw.get("seconds")),
            raw,
        )

    @classmethod
    def new(
        cls,
        *,
        id: str,
        ts: str,
        source: str,
        source_endpoint: str | None,
        dest_bucket: str,
        dest: str,
        dest_endpoint: str | None,
        dest_region: str | None,
        objects: int,
        copied: int,
        skipped: int,
        deleted: int,
        bytes: int,
        failed: int,
        mirror: bool,
        seconds: float,
    ) -> BackupRow:
        """The row of a run that just ended (every field recorded; `partial` when any object failed)."""
        row = cls(
            id=id,
            ts=ts,
            source=source,
            source_endpoint=source_endpoint,
            records_source_endpoint=True,
            dest_bucket=dest_bucket,
            dest=dest,
            dest_endpoint=dest_endpoint,
            records_dest_endpoint=True,
            dest_region=dest_region,
            objects=objects,
            copied=copied,
            skipped=skipped,
            deleted=deleted,
            bytes=bytes,
            failed=failed,
            partial=failed > 0,
            mirror=mirror,
            seconds=seconds,
            raw={},
        )
        return replace(row, raw=row.format())

    def format(self) -> dict[str, Any]:
        """The row as its index line holds it (without `v`, which `Index.append` puts first)."""
        out: dict[str, Any] = {"kind": BACKUP_KIND, "id": self.id, "ts": self.ts, "source": self.source}
        if self.records_source_endpoint:
            out["source_endpoint"] = self.source_endpoint
        out["dest_bucket"] = self.dest_bucket
        out["dest"] = self.dest
        if self.records_dest_endpoint:
            out["dest_endpoint"] = self.dest_endpoint
        out.update(
            dest_region=self.dest_region,
            objects=self.objects,
            copied=self.copied,
            skipped=self.skipped,
            deleted=self.deleted,
            bytes=self.bytes,
            failed=self.failed,
            partial=self.partial,
            mirror=self.mirror,
            seconds=self.seconds,
        )
        return out

    @property
    def at(self) -> datetime | None:
        """When it ran, or None when `ts` is missing or not our ISO form."""
        return _at(self.ts)

    @property
    def complete(self) -> bool:
        """Every object was copied: only a row that says `"partial": false` counts as a backup."""
        return self.partial is False

    @property
    def dest_prefix(self) -> str | None:
        """The backup prefix the row records (from `dest`, `s3://<bucket>/<prefix>`), or None."""
        head = f"s3://{self.dest_bucket}/"
        if self.dest is not None and self.dest_bucket is not None and self.dest.startswith(head):
            return self.dest[len(head) :]
        return None


@dataclass(frozen=True)
class LockBreakRow:
    """A `lock-break` row: a stale lease was broken (`--break-lock`) or taken over (its holder provably gone)."""

    id: str
    ts: str | None
    bucket: str | None
    key: str | None
    operation: str | None  # of the run that broke it
    by: str | None  # owner@host pid N of the run that broke it
    reason: str | None  # why the lease was stale
    automatic: bool | None  # taken over without --break-lock
    broken: dict[str, Any] | None  # the holder that was broken, as `Holder.to_dict` gives it
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LockBreakRow | None:
        rid = _str(raw.get("id"))
        if rid is None:
            return None
        broken = raw.get("broken")
        return cls(
            rid,
            _str(raw.get("ts")),
            _str(raw.get("bucket")),
            _str(raw.get("key")),
            _str(raw.get("operation")),
            _str(raw.get("by")),
            _str(raw.get("reason")),
            _bool(raw.get("automatic")),
            broken if isinstance(broken, dict) else None,
            raw,
        )

    @classmethod
    def new(
        cls,
        *,
        ts: str,
        bucket: str,
        key: str,
        operation: str,
        by: str,
        reason: str | None,
        automatic: bool,
        broken: dict[str, Any],
    ) -> LockBreakRow:
        """The row of a break made now, at `ts` (its id: `<ts>-<operation>`)."""
        row = cls(f"{ts}-{operation}", ts, bucket, key, operation, by, reason, automatic, broken, {})
        return replace(row, raw=row.format())

    def format(self) -> dict[str, Any]:
        """The row as its index line holds it (without `v`, which `Index.append` puts first)."""
        return {
            "kind": LOCK_BREAK_KIND,
            "id": self.id,
            "ts": self.ts,
            "bucket": self.bucket,
            "key": self.key,
            "operation": self.operation,
            "by": self.by,
            "reason": self.reason,
            "automatic": self.automatic,
            "broken": self.broken,
        }


Row = SnapshotRow | RollbackRow | PruneRow | PinRow | BackupRow | LockBreakRow
_PARSERS: dict[str, Callable[[dict[str, Any]], Row | None]] = {
    "snapshot": SnapshotRow.parse,
    "rollback": RollbackRow.parse,
    "prune": PruneRow.parse,
    "pin": PinRow.parse,
    BACKUP_KIND: BackupRow.parse,
    LOCK_BREAK_KIND: LockBreakRow.parse,
}


def parse_rows(raws: Iterable[dict[str, Any]]) -> list[Row]:
    """The typed rows of `raws`, in line order; rows of other kinds (restores, drills, ...) are left out."""
    out: list[Row] = []
    for raw in raws:
        kind = raw.get("kind")
        parse = _PARSERS.get(kind) if isinstance(kind, str) else None
        row = parse(raw) if parse is not None else None
        if row is not None:
            out.append(row)
    return out


# ------------------------------------------------------------------ drill
def _float(v: Any) -> float | None:
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
            DrillStepRow(s["name"], _float(s.get("seconds")) or 0.0, s.get("ok") is True, _int(s.get("bytes")) or 0)
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
            _float(raw.get("ttfb_seconds")),
            _float(raw.get("rto_seconds")),
            _float(raw.get("seconds")),
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
