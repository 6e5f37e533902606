"""Typed index rows: parsed once from what the reader kept, raw rows unchanged; the rows we write, byte for byte."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from dr_tasks.index import Index, IndexRead
from dr_tasks.ops.backup import BackupResult
from dr_tasks.rows import BackupRow, LockBreakRow, PinRow, PruneRow, RollbackRow, SnapshotRow, parse_rows

SNAP = {
    "kind": "snapshot",
    "id": "2026-04-15T18:00:07Z-a",
    "ts": "2026-04-15T18:00:07Z",
    "label": "a",
    "bucket": "b",
    "source": "s3://b/state/",
    "dest": "s3://b/snapshots/2026-04-15T18:00:07Z-a/",
    "objects": 2,
    "bytes": 10,
    "manifest": "snapshots/2026-04-15T18:00:07Z-a.manifest.json",
    "versioned": True,
    "future_field": {"kept": 1},
}


def test_rows_are_typed_and_keep_their_raw_mapping(tmp_path: Path) -> None:
    index = Index(tmp_path / "log" / "snapshots.ndjson")
    rows = [
        SNAP,
        {"kind": "rollback", "id": "r1", "ts": "2026-04-15T18:01:00Z", "snapshot": SNAP["id"], "safety_snapshot": "s1"},
        {"kind": "prune", "id": "p1", "ts": "2026-04-15T18:02:00Z", "bucket": "b", "deleted": ["x"], "orphans": []},
        {"kind": "pin", "id": SNAP["id"], "ts": "2026-04-15T18:03:00Z", "pinned": False},
        {"kind": "cross-region-backup", "id": "c1", "ts": "2026-04-15T18:04:00Z", "dest_bucket": "d"},
    ]
    for row in rows:
        index.append(row)
    read = index.read()
    assert read.bad == []
    snap, rollback, prune, pin, backup = read.typed
    assert isinstance(snap, SnapshotRow) and snap.id == SNAP["id"] and snap.objects == 2 and snap.versioned is True
    assert snap.at == datetime(2026, 4, 15, 18, 0, 7, tzinfo=timezone.utc)
    assert snap.raw == {"v": 1, **SNAP} and list(snap.raw) == ["v", *SNAP]
    assert isinstance(rollback, RollbackRow) and rollback.safety_snapshot == "s1"
    assert rollback.interrupted_safety_snapshots == ()
    assert isinstance(prune, PruneRow) and prune.deleted == ("x",) and prune.orphans == ()
    assert isinstance(pin, PinRow) and pin.pinned is False and not pin.pins
    assert read.snapshot(SNAP["id"]) is snap and read.snapshot("nope") is None
    assert read.snapshots() == [snap] and read.rollbacks() == [rollback]
    assert read.prunes() == [prune] and read.pins() == [pin]
    assert isinstance(backup, BackupRow) and read.backups() == [backup] and backup.dest_bucket == "d"
    assert not backup.records_dest_endpoint and backup.partial is None and not backup.complete
    # Parsed once per read.
    assert read.typed is read.typed
    # The file is what was appended, byte for byte.
    lines = (tmp_path / "log" / "snapshots.ndjson").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"v": 1, **r} for r in rows]


def test_absent_fields_are_none_and_a_pin_row_pins_unless_it_says_not() -> None:
    (snap,) = parse_rows([{"kind": "snapshot", "id": "x"}])
    assert isinstance(snap, SnapshotRow)
    assert (snap.ts, snap.label, snap.bucket, snap.objects, snap.versioned, snap.at) == (None,) * 6
    (pin,) = parse_rows([{"kind": "pin", "id": "x"}])
    assert isinstance(pin, PinRow) and pin.pinned is None and pin.pins


def test_hand_built_rows_are_read_leniently() -> None:
    read = IndexRead(
        rows=[
            {"kind": "snapshot", "id": 5},
            {"kind": "pin", "id": ["x"]},
            {"kind": "rollback", "label": "no id"},
            {"kind": "prune", "deleted": ["x", 3], "orphans": "garbage"},
            {"kind": "snapshot", "id": "s", "objects": "7", "versioned": "yes", "ts": 3},
            {"kind": 7},
        ]
    )
    prune, snap = read.typed
    assert isinstance(prune, PruneRow) and prune.id is None and prune.deleted == ("x",) and prune.orphans == ()
    assert isinstance(snap, SnapshotRow) and (snap.objects, snap.versioned, snap.ts) == (None, None, None)


def _line(row: dict[str, object]) -> str:
    """The index line `Index.append` writes for `row`."""
    return json.dumps({"v": 1, **row}, ensure_ascii=False, separators=(",", ":"))


# A cross-region-backup line as dr.backup wrote it before its row was typed.
BACKUP_LINE = (
    '{"v":1,"kind":"cross-region-backup","id":"2026-11-24T23:26:50Z-backup","ts":"2026-11-24T23:26:50Z",'
    '"source":"s3://primary/state/","source_endpoint":"http://127.0.0.1:9000","dest_bucket":"cold",'
    '"dest":"s3://cold/repo-a/","dest_endpoint":null,"dest_region":"eu-west-1","objects":7,"copied":3,'
    '"skipped":4,"deleted":0,"bytes":1234,"failed":1,"partial":true,"mirror":false,"seconds":0.25}'
)


def test_a_backup_row_is_written_byte_for_byte_as_before_and_reads_back(tmp_path: Path) -> None:
    result = BackupResult(
        id="2026-11-24T23:26:50Z-backup",
        ts="2026-11-24T23:26:50Z",
        source="s3://primary/state/",
        source_endpoint="http://127.0.0.1:9000",
        dest_bucket="cold",
        dest="s3://cold/repo-a/",
        dest_endpoint=None,
        dest_region="eu-west-1",
        objects=7,
        copied=3,
        skipped=4,
        bytes=1234,
        failed=["x"],
        seconds=0.25,
    )
    index = Index(tmp_path / "snapshots.ndjson")
    index.append(result.backup_row().format())
    assert (tmp_path / "snapshots.ndjson").read_text() == BACKUP_LINE + "\n"
    # A post_backup hook's `result.row()` is the line's mapping, `v` first.
    assert json.dumps(result.row(), separators=(",", ":")) == BACKUP_LINE
    (row,) = index.read().backups()
    assert row == result.backup_row() and row.format() == result.backup_row().format()
    assert row.partial is True and not row.complete and row.failed == 1 and row.seconds == 0.25
    assert row.records_source_endpoint and row.records_dest_endpoint and row.dest_endpoint is None
    assert row.dest_prefix == "repo-a/" and row.at == datetime(2026, 11, 24, 23, 26, 50, tzinfo=timezone.utc)


def test_a_backup_row_tells_an_unrecorded_field_from_a_recorded_null() -> None:
    old = BackupRow.parse({"kind": "cross-region-backup", "id": "o", "dest_bucket": "cold", "partial": False})
    assert old.complete and old.source is None and old.dest_prefix is None
    assert not old.records_source_endpoint and not old.records_dest_endpoint
    aws = BackupRow.parse({"kind": "cross-region-backup", "id": "a", "source_endpoint": None, "dest_endpoint": None})
    assert aws.records_source_endpoint and aws.records_dest_endpoint
    assert "source_endpoint" not in old.format() and aws.format()["dest_endpoint"] is None
    # Read leniently when built by hand: a field of the wrong type counts as absent.
    odd = BackupRow.parse({"kind": "cross-region-backup", "id": 3, "partial": 1, "dest_endpoint": 9, "seconds": True})
    assert (odd.id, odd.partial, odd.records_dest_endpoint, odd.seconds) == (None, None, False, None)


# A lock-break line as the lease wrote it before its row was typed (docs/maintenance.md shows one).
LOCK_BREAK_LINE = (
    '{"v":1,"kind":"lock-break","id":"2026-11-24T23:44:47Z-snapshot","ts":"2026-11-24T23:44:47Z",'
    '"bucket":"my-state","key":".dr-tasks/lock.json","operation":"snapshot","by":"root@vm pid 19969",'
    '"reason":"it expired at 2026-11-24T23:44:44Z","automatic":false,"broken":{"token":"y","owner":"ann",'
    '"host":"build-01","pid":31337,"operation":"backup","started":"2026-11-24T23:44:43Z","ttl":1.0,'
    '"renewed":"2026-11-24T23:44:43Z","expires":"2026-11-24T23:44:44Z",'
    '"version_ids":["009f87fa-8c64-4026-b3e2-acd0c2c70e6c"],"stale":"it expired at 2026-11-24T23:44:44Z",'
    '"gone":false}}'
)


def test_a_lock_break_row_is_written_byte_for_byte_and_reads_back(tmp_path: Path) -> None:
    broken = json.loads(LOCK_BREAK_LINE)["broken"]
    row = LockBreakRow.new(
        ts="2026-11-24T23:44:47Z",
        bucket="my-state",
        key=".dr-tasks/lock.json",
        operation="snapshot",
        by="root@vm pid 19969",
        reason="it expired at 2026-11-24T23:44:44Z",
        automatic=False,
        broken=broken,
    )
    assert row.id == "2026-11-24T23:44:47Z-snapshot"
    index = Index(tmp_path / "snapshots.ndjson")
    index.append(row.format())
    assert (tmp_path / "snapshots.ndjson").read_text() == LOCK_BREAK_LINE + "\n"
    read = index.read()
    assert read.bad == [] and read.lock_breaks() == [row]
    (back,) = read.lock_breaks()
    assert back.automatic is False and back.broken == broken and back.raw == json.loads(LOCK_BREAK_LINE)
    assert parse_rows([{"kind": "lock-break", "broken": None}]) == []  # no id: left out, as the reader would
