"""`dr.rollback`: make live equal to a snapshot, with a plan first, label friction and an undo.

Order of work, which is what makes it safe to interrupt:
1. find the snapshot in the index and check the confirm label (no request yet),
2. read its manifest and check, with ONE listing of the snapshot dir, that every
   object it names is there and proven intact (`proof`): an ETag recorded for
   it, else its bytes re-read and hashed to a recorded value; never a size alone,
3. plan: the manifest against ONE listing of live current versions (ETag and
   size; no per-object HEAD or GET): copy back, delete, unchanged, preserved,
4. take a `pre-rollback-<label>` safety snapshot of live (its own index row),
5. server-side copies from the snapshot dir, then deletes, in parallel,
6. append the `rollback` row: the commit point. No row, no rollback.
Steps 1 to 3 (and the labels and commands a rollback prints) are
`ops/rollback_plan.py`; this module applies the plan.

A rollback killed anywhere before 6 leaves no row; running the same command
again recomputes the plan from what live is now and finishes the job (taking
another safety snapshot, of the half-rolled-back state; the row names the
earlier one under `interrupted_safety_snapshots`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..history import snapshot_row
from ..index import Index, IndexWriteError, utc_now
from ..interrupt import Interrupted
from ..layout import format_snapshot_id
from ..lease import Lease, Notify
from ..parallel import run_parallel
from ..progress import NULL_PROGRESS, Progress
from ..rows import SnapshotRow
from ..timeparse import iso_utc
from ..transport import S3, engine_for
from .leasing import operation_lease
from .rollback_plan import (
    SAFETY_PREFIX,
    PlanItem,
    RollbackPlan,
    build_plan,
    check_confirm_label,
    check_snapshot_objects,
    index_warnings,
    label_of,
    plan_against_live,
    plan_rollback,
    preserve_matcher,
    rollback_command,
    safety_label,
)
from .snapshot import take_snapshot

# The plan's names stay importable from here: `dr_tasks.ops.rollback` is the operation.
__all__ = [
    "SAFETY_PREFIX",
    "UNVERSIONED_LOUD",
    "PlanItem",
    "RollbackPlan",
    "RollbackResult",
    "apply_rollback",
    "build_plan",
    "check_confirm_label",
    "check_snapshot_objects",
    "label_of",
    "plan_rollback",
    "preserve_matcher",
    "rollback_command",
    "safety_label",
]

# How many DeleteObjects keys one request carries (the S3 maximum).
_DELETE_BATCH = 1000

UNVERSIONED_LOUD = (
    "THE BUCKET IS NOT VERSIONED: deletes and overwrites made by this rollback are PERMANENT. "
    "Only the pre-rollback safety snapshot will hold what live has now"
)


@dataclass
class RollbackResult:
    id: str
    ts: str
    snapshot: str
    label: str
    safety_snapshot: str
    safety_label: str
    bucket: str
    versioned: bool
    copied: int
    deleted: int
    unchanged: int
    preserved: int
    bytes: int
    seconds: float
    plan: RollbackPlan
    interrupted_safety_snapshots: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        r: dict[str, Any] = {
            "v": 1,
            "kind": "rollback",
            "id": self.id,
            "ts": self.ts,
            "snapshot": self.snapshot,
            "label": self.label,
            "safety_snapshot": self.safety_snapshot,
            "bucket": self.bucket,
            "versioned": self.versioned,
            "copied": self.copied,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "preserved": self.preserved,
            "bytes": self.bytes,
        }
        if self.interrupted_safety_snapshots:
            r["interrupted_safety_snapshots"] = list(self.interrupted_safety_snapshots)
        return r

    def undo_command(self, program: str = "inv dr.rollback") -> str:
        """The command that rolls this rollback back (to the safety snapshot)."""
        return rollback_command(self.safety_snapshot, self.safety_label, not self.versioned, program)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.row(),
            "safety_label": self.safety_label,
            "undo_command": self.undo_command(),
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "plan": self.plan.to_dict(),
        }


def _interrupted_safety(cfg: DrConfig, safety: str, snapshot_ts: str | None) -> list[str]:
    """Safety snapshots an earlier, interrupted attempt of this rollback left behind.

    They carry this rollback's safety label, are no older than the target
    snapshot, and no `rollback` row names them. The oldest holds live as it
    was before any attempt, which the new safety snapshot no longer does.
    """
    read = Index(cfg.index_path).read()
    claimed: set[str] = set()
    for r in read.rollbacks():
        if r.safety_snapshot is not None:
            claimed.add(r.safety_snapshot)
        claimed.update(r.interrupted_safety_snapshots)
    return [
        r.id
        for r in read.snapshots()
        if r.label == safety and r.id not in claimed and (snapshot_ts is None or (r.ts or "") >= snapshot_ts)
    ]


def _take_safety(cfg: DrConfig, s3: S3, label: str, progress: Progress, lease: Lease) -> str:
    """The safety snapshot's id, taken under the rollback's lease. Waits out the second when that id is already
    taken (a quick re-run)."""
    index = Index(cfg.index_path)
    deadline = time.monotonic() + 3
    while index.read().snapshot(format_snapshot_id(utc_now(), label)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return take_snapshot(cfg, label, progress=progress, s3=s3, check_label=True, lease=lease).id


def _chunks(items: Sequence[str], n: int) -> list[list[str]]:
    return [list(items[i : i + n]) for i in range(0, len(items), n)]


def apply_rollback(
    cfg: DrConfig,
    snap_id: str,
    confirm_label: str | None,
    *,
    allow_unversioned: bool = False,
    progress: Progress = NULL_PROGRESS,
    s3: S3 | None = None,
    now: datetime | None = None,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> RollbackResult:
    """Make live equal to snapshot `snap_id`. Raises DrError on any refusal or failure (then no row).

    Plans and applies under the bucket's lease: one taken here (`break_lock`
    takes over a stale one; `notify` hears the lease's notes), or `lease`, one
    the caller already holds. The safety snapshot runs under the same lease.
    """
    started = time.monotonic()
    row = snapshot_row(cfg, snap_id)
    label = label_of(row, snap_id)
    # The friction comes before any request: a wrong label costs nothing.
    check_confirm_label(label, confirm_label, snap_id)
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    with operation_lease(cfg, s3, "rollback", lease=lease, break_lock=break_lock, notify=notify) as held:
        return _apply(cfg, s3, snap_id, label, row, allow_unversioned, progress, now, started, held)


def _apply(
    cfg: DrConfig,
    s3: S3,
    snap_id: str,
    label: str,
    row: SnapshotRow,
    allow_unversioned: bool,
    progress: Progress,
    now: datetime | None,
    started: float,
    lease: Lease,
) -> RollbackResult:
    plan = plan_against_live(cfg, s3, snap_id, label, row, progress)
    if plan.needs_allow_unversioned and not allow_unversioned:
        raise DrError(
            f"{UNVERSIONED_LOUD}: {len(plan.delete)} deletes and {plan.overwrites} overwrites would be permanent "
            f"in s3://{cfg.bucket}; nothing was changed",
            "turn versioning on first (`inv dr.versioning --enable`), or accept it: " + plan.apply_command(),
        )
    warnings: list[str] = index_warnings(cfg)
    if not plan.versioned:
        warnings.append(UNVERSIONED_LOUD)

    safety = safety_label(label)
    interrupted = _interrupted_safety(cfg, safety, plan.snapshot_ts)
    # A rollback whose row cannot be written is one nobody can see: find out
    # before the safety snapshot and the first change, not after.
    try:
        Index(cfg.index_path).check_writable()
    except IndexWriteError as err:
        raise DrError(f"{err.message}; live was not touched and no safety snapshot was taken", err.hint) from None
    # The undo point: live exactly as it is before the first change.
    try:
        safety_id = _take_safety(cfg, s3, safety, progress, lease)
    except Interrupted as sig:
        sig.notes.append("live was not touched")
        raise
    except DrError as err:
        raise DrError(
            f"the pre-rollback safety snapshot failed, so live was not touched: {err.message}", err.hint
        ) from None
    undo = rollback_command(safety_id, safety, not plan.versioned)

    def delete_batch(keys: list[str]) -> int:
        errors = s3.delete_keys(cfg.bucket, keys)
        if errors:
            raise DrError(f"{len(errors)} of {len(keys)} deletes failed; first: {errors[0].message}")
        return len(keys)

    safety_note = f"safety snapshot {safety_id} holds live as it was before; undo with `{undo}`"
    lease.ensure(f"live was not touched; {safety_note}")
    failures: list[str] = []
    try:
        progress.start(f"copying {len(plan.copy)} objects back from snapshot {snap_id}", total=len(plan.copy))
        try:
            pairs = [(i, plan.sources[i.key], cfg.key_for(i.key)) for i in plan.copy]
            _, failed = engine_for(s3, cfg.transfer_client, cfg.concurrency).copy_versions(cfg.bucket, pairs, progress)
        finally:
            progress.stop()
        failures += [f"copy {f.item.key}: {f.error.message}" for f in failed]
        lease.ensure(
            f"live is partly rolled back ({len(plan.copy) - len(failed)} of {len(plan.copy)} copied back, "
            f"none of {len(plan.delete)} deletes done) and no rollback row was written; {safety_note}"
        )
        batches = _chunks([cfg.key_for(i.key) for i in plan.delete], _DELETE_BATCH)
        progress.start(f"deleting {len(plan.delete)} keys the snapshot lacks", total=len(batches))
        try:
            _, failed_batches = run_parallel(delete_batch, batches, cfg.concurrency, progress)
        finally:
            progress.stop()
        failures += [f"delete {f.item[0]}...: {f.error.message}" for f in failed_batches]
    except Interrupted as sig:
        sig.notes.append(
            f"live is partly rolled back to {snap_id} and no rollback row was written; safety snapshot {safety_id} "
            f"holds live as it was before: run the same command again (it converges) or undo with `{undo}`"
        )
        raise
    if failures:
        raise DrError(
            f"rollback to {snap_id} failed part-way: {len(failures)} operations failed ({failures[0]}"
            + (f"; and {len(failures) - 1} more" if len(failures) > 1 else "")
            + f"); live is partly rolled back and no rollback row was written; safety snapshot {safety_id} holds "
            "live as it was before",
            f"run the same command again once the cause is fixed (it converges), or undo with `{undo}`",
        )

    ts = iso_utc((now or utc_now()).replace(microsecond=0), whole_seconds=True)
    result = RollbackResult(
        id=f"{ts}-rollback-{label}",
        ts=ts,
        snapshot=snap_id,
        label=label,
        safety_snapshot=safety_id,
        safety_label=safety,
        bucket=cfg.bucket,
        versioned=plan.versioned,
        copied=len(plan.copy),
        deleted=len(plan.delete),
        unchanged=len(plan.unchanged),
        preserved=len(plan.preserved),
        bytes=plan.copy_bytes,
        seconds=0.0,
        plan=plan,
        interrupted_safety_snapshots=interrupted,
        warnings=warnings,
    )
    if interrupted:
        result.warnings.append(
            f"an earlier attempt of this rollback did not finish; its safety snapshot {interrupted[0]} holds live "
            f"as it was before that attempt (the new one, {safety_id}, holds the half-rolled-back state)"
        )
    result.seconds = round(time.monotonic() - started, 3)
    lease.ensure(f"live was rolled back to {snap_id} but no rollback row was written; {safety_note}")
    # The commit point, last of all.
    try:
        Index(cfg.index_path).append(result.row())
    except IndexWriteError as err:
        raise DrError(
            f"live WAS rolled back to {snap_id} ({result.copied} copied back, {result.deleted} deleted), but the "
            f"rollback row could not be appended to {cfg.index}: {err.reason}; "
            + (err.left or "no part of the row was left in the index")
            + f"; safety snapshot {safety_id} holds live as it was before",
            f"undo with `{undo}`; or keep it and, once the index is writable, run the same command again: it "
            "changes nothing more and records the rollback",
        ) from None
    return result
