"""`dr.list` and `dr.show`: snapshots as the index records them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import DrConfig
from ..history import find_snapshot, pruned_ids
from ..index import BadLine, Index


@dataclass
class ListResult:
    snapshots: list[dict[str, Any]]
    bad_lines: list[BadLine] = field(default_factory=list)
    # Ids a `prune` row says are gone from the bucket; hidden unless asked for.
    pruned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": self.snapshots,
            "pruned": self.pruned,
            "bad_lines": [{"line": b.lineno, "reason": b.reason, "text": b.text} for b in self.bad_lines],
        }


def list_snapshots(cfg: DrConfig, include_pruned: bool = False) -> ListResult:
    read = Index(cfg.index_path).read()
    gone = pruned_ids(read)
    rows = read.snapshots()
    shown = [r.raw for r in rows if include_pruned or r.id not in gone]
    return ListResult(shown, read.bad, sorted(gone & {r.id for r in rows}))


@dataclass
class ShowResult:
    snapshot: dict[str, Any]
    rollbacks: list[dict[str, Any]]
    bad_lines: list[BadLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "rollbacks": self.rollbacks,
            "bad_lines": [{"line": b.lineno, "reason": b.reason, "text": b.text} for b in self.bad_lines],
        }


def show_snapshot(cfg: DrConfig, snap_id: str) -> ShowResult:
    row = find_snapshot(cfg, snap_id, allow_pruned=True)
    read = Index(cfg.index_path).read()
    rollbacks = [r.raw for r in read.rollbacks() if snap_id in (r.snapshot, r.safety_snapshot)]
    return ShowResult(row, rollbacks, read.bad)
