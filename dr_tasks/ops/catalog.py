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
    # Ids a `prune` row says are gone from the bucket; hidden unless asked for.
    pruned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": self.snapshots,
            "pruned": self.pruned,
            "bad_lines": [{"line": b.lineno, "reason": b.reason, "text": b.text} for b in self.bad_lines],
        }


def list_snapshots(cfg: DrConfig, include_pruned: bool = False) -> ListResult:
    from .prune import pruned_ids

    read = Index(cfg.index_path).read()
    gone = pruned_ids(read)
    rows = read.of_kind("snapshot")
    ids = {r.get("id") for r in rows if isinstance(r.get("id"), str)}
    # A garbage row's id may be anything (a mapping, a list): only strings can be pruned ids.
    shown = rows if include_pruned else [r for r in rows if not (isinstance(r.get("id"), str) and r["id"] in gone)]
    return ListResult(shown, read.bad, sorted(gone & ids))


def find_snapshot(cfg: DrConfig, snap_id: str, allow_pruned: bool = False) -> dict[str, Any]:
    """The index row of snapshot `snap_id`, or a DrError that lists the nearest ids."""
    read = Index(cfg.index_path).read()
    row = read.find("snapshot", snap_id)
    if row is not None:
        from .prune import pruned_ids

        if not allow_pruned and snap_id in pruned_ids(read):
            raise DrError(
                f"snapshot {snap_id} was pruned: its objects are gone from the bucket",
                "pick another with `inv dr.list`",
            )
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
    rollbacks = [r for r in read.of_kind("rollback") if snap_id in (r.get("snapshot"), r.get("safety_snapshot"))]
    return ShowResult(row, rollbacks, read.bad)
