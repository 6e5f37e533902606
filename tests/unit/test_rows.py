"""Typed index rows: parsed once from what the reader kept, raw rows unchanged."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from dr_tasks.index import Index, IndexRead
from dr_tasks.rows import PinRow, PruneRow, RollbackRow, SnapshotRow, parse_rows

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
    snap, rollback, prune, pin = read.typed
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
