"""What the index's rows say across kinds: which snapshots a prune removed, and a snapshot's row.

Read-only and shared by the operations that look snapshots up (`dr.show`,
`dr.rollback`, `dr.pin`, `dr.verify`, `dr.reindex`), so none of them imports
another operation for it.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

from .config import DrConfig
from .errors import DrError
from .index import Index, IndexRead
from .rows import PruneRow, SnapshotRow


def pruned_ids(read: IndexRead) -> set[str]:
    """Snapshot ids that a `prune` row says are gone (for listings that hide them).

    In line order: a `snapshot` row after the prune row (what `dr.reindex`
    appends for a pruned snapshot whose delete markers were removed) brings
    that snapshot back.
    """
    gone: set[str] = set()
    for r in read.typed:
        if isinstance(r, PruneRow):
            gone.update(r.deleted)
            gone.update(r.orphans)
        elif isinstance(r, SnapshotRow):
            gone.discard(r.id)
    return gone


def newest_snapshot(read: IndexRead) -> SnapshotRow | None:
    """The latest-dated snapshot row (of equal dates, the one appended last); rows with no readable `ts` never are."""
    best: tuple[datetime, SnapshotRow] | None = None
    for r in read.snapshots():
        at = r.at
        if at is not None and (best is None or at >= best[0]):
            best = (at, r)
    return best[1] if best else None


def find_snapshot(cfg: DrConfig, snap_id: str, allow_pruned: bool = False) -> dict[str, Any]:
    """The index row of snapshot `snap_id` as the file has it, or a DrError that lists the nearest ids."""
    return snapshot_row(cfg, snap_id, allow_pruned).raw


def snapshot_row(cfg: DrConfig, snap_id: str, allow_pruned: bool = False) -> SnapshotRow:
    """The index row of snapshot `snap_id`, typed, or a DrError that lists the nearest ids."""
    read = Index(cfg.index_path).read()
    row = read.snapshot(snap_id)
    if row is not None:
        if not allow_pruned and snap_id in pruned_ids(read):
            raise DrError(
                f"snapshot {snap_id} was pruned: its objects are gone from the bucket",
                "pick another with `inv dr.list`",
            )
        return row
    ids = [r.id for r in read.snapshots()]
    near = difflib.get_close_matches(snap_id, ids, n=3, cutoff=0.3) or ids[-3:]
    shown = snap_id if len(snap_id) <= 80 else snap_id[:77] + "..."
    hint = (
        ("nearest: " + ", ".join(near))
        if near
        else "the index has no snapshots; take one with `inv dr.snapshot --label=...`"
    )
    raise DrError(f"unknown snapshot id {shown!r}", hint + " (all: `inv dr.list`)")
