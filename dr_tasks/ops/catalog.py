"""`dr.list` and `dr.show`: snapshots as the index records them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..index import BadLine, Index


@dataclass
class ListResult:
    snapshots: list[dict[str, Any]]
    bad_lines: list[BadLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": self.snapshots,
            "bad_lines": [{"line": b.lineno, "reason": b.reason, "text": b.text} for b in self.bad_lines],
        }


def list_snapshots(cfg: DrConfig) -> ListResult:
    read = Index(cfg.index_path).read()
    return ListResult(read.of_kind("snapshot"), read.bad)


def find_snapshot(cfg: DrConfig, snap_id: str) -> dict[str, Any]:
    """The index row of snapshot `snap_id`, or a DrError that lists the nearest ids."""
    read = Index(cfg.index_path).read()
    row = read.find("snapshot", snap_id)
    if row is not None:
        return row
    ids = [r["id"] for r in read.of_kind("snapshot") if isinstance(r.get("id"), str)]
    near = difflib.get_close_matches(snap_id, ids, n=3, cutoff=0.3) or ids[-3:]
    shown = snap_id if len(snap_id) <= 80 else snap_id[:77] + "..."
    hint = (
        ("nearest: " + ", ".join(near))
        if near
        else "the index has no snapshots; take one with `inv dr.snapshot --label=...`"
    )
    raise DrError(f"unknown snapshot id {shown!r}", hint + " (all: `inv dr.list`)")


@dataclass
class ShowResult:
    snapshot: dict[str, Any]
    rollbacks: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "rollbacks": self.rollbacks}


def show_snapshot(cfg: DrConfig, snap_id: str) -> ShowResult:
    row = find_snapshot(cfg, snap_id)
    read = Index(cfg.index_path).read()
    rollbacks = [r for r in read.of_kind("rollback") if snap_id in (r.get("snapshot"), r.get("safety_snapshot"))]
    return ShowResult(row, rollbacks)
