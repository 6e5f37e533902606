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

A rollback killed anywhere before 6 leaves no row; running the same command
again recomputes the plan from what live is now and finishes the job (taking
another safety snapshot, of the half-rolled-back state; the row names the
earlier one under `interrupted_safety_snapshots`).
"""

from __future__ import annotations

import hashlib
import re
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pathspec

from .. import proof
from ..config import DrConfig
from ..errors import DrError
from ..history import snapshot_row
from ..index import Index, IndexWriteError, utc_now
from ..interrupt import Interrupted
from ..layout import LABEL_RULE, format_snapshot_id, snapshot_dir
from ..lease import Lease, Notify
from ..manifest import Manifest
from ..parallel import run_parallel
from ..progress import NULL_PROGRESS, Progress
from ..rewrites import read_rewrites
from ..rows import SnapshotRow
from ..stored_snapshot import load_manifest, prove_snapshot_object, recorded_etags
from ..timeparse import iso_utc
from ..transport import S3, ObjectVersion, engine_for
from .leasing import operation_lease
from .snapshot import list_live, take_snapshot, validate_label

SAFETY_PREFIX = "pre-rollback-"
# Snapshot labels are at most 63 characters (see LABEL_RULE).
MAX_LABEL = 63
# A safety label too long to fit keeps this many hex digits of the full label's
# sha256, so two long labels that share a beginning still get distinct labels.
_HASH_CHARS = 8
_LABEL_RE = re.compile(LABEL_RULE)
# How many DeleteObjects keys one request carries (the S3 maximum).
_DELETE_BATCH = 1000

UNVERSIONED_LOUD = (
    "THE BUCKET IS NOT VERSIONED: deletes and overwrites made by this rollback are PERMANENT. "
    "Only the pre-rollback safety snapshot will hold what live has now"
)


# ---------------------------------------------------------------------- labels
def safety_label(label: str) -> str:
    """The label of the safety snapshot taken before rolling back to a snapshot labelled `label`.

    `pre-rollback-<label>` when that is a valid label. Otherwise (the label is
    longer than 50 characters, or was recorded by a tool that allowed other
    characters) the label is cut (and lowercased, other characters becoming
    '-') to fit 63 characters, and ends with `-<first 8 hex digits of the full
    label's sha256>` so it stays distinct and traceable.
    """
    candidate = SAFETY_PREFIX + label
    if _LABEL_RE.fullmatch(candidate) and ".." not in candidate:
        return candidate
    digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    clean = re.sub(r"[^a-z0-9._-]", "-", label.lower())
    while ".." in clean:
        clean = clean.replace("..", ".")
    budget = MAX_LABEL - len(SAFETY_PREFIX) - 1 - _HASH_CHARS
    clean = clean[:budget].rstrip(".-_")
    return validate_label(f"{SAFETY_PREFIX}{clean}-{digest}" if clean else f"{SAFETY_PREFIX}{digest}")


def _first_difference(a: str, b: str) -> int:
    """Byte offset (UTF-8) of the first difference between two labels."""
    ab, bb = a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    for i, (x, y) in enumerate(zip(ab, bb, strict=False)):
        if x != y:
            return i
    return min(len(ab), len(bb))


def check_confirm_label(recorded: str, given: str | None, snap_id: str) -> None:
    """Refuse unless `given` equals the snapshot's recorded label byte for byte (no trimming, no case folding)."""
    if given is None:
        raise DrError(
            f"--apply needs --confirm-label: snapshot {snap_id} is labelled {recorded!r}, "
            "and no --confirm-label was given; nothing was changed",
            f"type the label to confirm: --confirm-label={shlex.quote(recorded)}",
        )
    if given.encode("utf-8", "surrogatepass") != recorded.encode("utf-8", "surrogatepass"):
        at = _first_difference(given, recorded)
        raise DrError(
            f"--confirm-label {given!r} does not match snapshot {snap_id}'s label {recorded!r} "
            f"(they differ at byte {at}; the label must match byte for byte: no trimming, no case folding); "
            "nothing was changed",
            f"check the snapshot id, then use --confirm-label={shlex.quote(recorded)}",
        )


def rollback_command(
    snap_id: str, label: str, allow_unversioned: bool = False, program: str = "inv dr.rollback"
) -> str:
    """The exact command that applies a rollback to `snap_id`, quoted for a POSIX shell."""
    args = [snap_id, "--apply", f"--confirm-label={label}"]
    if allow_unversioned:
        args.append("--allow-unversioned")
    return " ".join([program, *(shlex.quote(a) for a in args)])


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class PlanItem:
    """One key of the plan, relative to `prefix` (the local path)."""

    key: str
    size: int
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "size": self.size}
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass
class RollbackPlan:
    """What a rollback to `snapshot` would do to live, computed from one listing of each side."""

    snapshot: str
    label: str
    snapshot_ts: str | None
    bucket: str
    prefix: str
    versioned: bool
    copy: list[PlanItem] = field(default_factory=list)
    delete: list[PlanItem] = field(default_factory=list)
    unchanged: list[PlanItem] = field(default_factory=list)
    preserved: list[PlanItem] = field(default_factory=list)
    # The snapshot-dir object each copy reads from, by plan key (not in to_dict).
    sources: dict[str, ObjectVersion] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.copy) + len(self.delete)

    @property
    def copy_bytes(self) -> int:
        return sum(i.size for i in self.copy)

    @property
    def overwrites(self) -> int:
        return sum(1 for i in self.copy if i.reason == "changed")

    @property
    def needs_allow_unversioned(self) -> bool:
        """Deleting or overwriting on an unversioned bucket destroys data the bucket cannot give back."""
        return not self.versioned and (bool(self.delete) or self.overwrites > 0)

    def apply_command(self, program: str = "inv dr.rollback") -> str:
        return rollback_command(self.snapshot, self.label, self.needs_allow_unversioned, program)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "label": self.label,
            "snapshot_ts": self.snapshot_ts,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "versioned": self.versioned,
            "counts": {
                "copy": len(self.copy),
                "delete": len(self.delete),
                "unchanged": len(self.unchanged),
                "preserved": len(self.preserved),
            },
            "copy_bytes": self.copy_bytes,
            "copy": [i.to_dict() for i in self.copy],
            "delete": [i.to_dict() for i in self.delete],
            "unchanged": [i.to_dict() for i in self.unchanged],
            "preserved": [i.to_dict() for i in self.preserved],
            "warnings": list(self.warnings),
            "needs_allow_unversioned": self.needs_allow_unversioned,
            "apply_command": self.apply_command(),
        }


def preserve_matcher(cfg: DrConfig) -> Callable[[str], bool]:
    """Whether a live path is one a rollback never changes.

    The index is matched by its exact path: read as a gitignore pattern, a
    name with `[...]` is a character class and a trailing space is trimmed, so
    the index itself would be copied over while a sibling it "matches" is kept.
    Every other `preserve` entry is a pattern, read the way the guard reads
    SYNC_ALLOW/SYNC_DENY (gitignore style).
    """
    spec = pathspec.GitIgnoreSpec.from_lines([p for p in cfg.preserve if p != cfg.index])
    return lambda rel: rel == cfg.index or bool(spec.match_file(rel))


def _manifest_objects(cfg: DrConfig, snap_id: str, manifest: Manifest) -> list[dict[str, Any]]:
    """The manifest's objects (their shape checked by `parse_manifest`), checked for keys a rollback may write."""
    if manifest.prefix is not None and manifest.prefix != cfg.prefix:
        raise DrError(
            f"snapshot {snap_id} was taken of prefix {manifest.prefix!r}, but dr.prefix is now {cfg.prefix!r}",
            "roll back with the config the snapshot was taken under",
        )
    for e in manifest.objects:
        # A key that would land in the snapshot prefix or our bookkeeping is
        # not live: a rollback must never write there.
        if not cfg.is_live_key(cfg.key_for(e.key)):
            raise DrError(
                f"the manifest of snapshot {snap_id} names {e.key!r}, which is not a live key",
                "the manifest is damaged; pick another snapshot",
            )
    return [e.to_dict() for e in manifest.objects]


def check_snapshot_objects(
    cfg: DrConfig,
    snap_id: str,
    objects: Sequence[dict[str, Any]],
    listing: Iterable[ObjectVersion],
    s3: S3 | None = None,
    rewrites: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
) -> dict[str, ObjectVersion]:
    """Every manifest object is in the snapshot dir and proven intact, or a DrError naming them.

    `rewrites` may be a loader: it is called only when some object's ETag is
    not the manifest's or its copy's, so a plain plan makes no extra request.
    """
    base = snapshot_dir(cfg, snap_id)
    present = {o.key[len(base) :]: o for o in listing if o.key.startswith(base)}
    problems: list[str] = []
    pending: list[tuple[dict[str, Any], ObjectVersion]] = []
    for m in objects:
        got = present.get(m["key"])
        if got is None:
            problems.append(f"{m['key']} (missing)")
            continue
        p = proof.by_etag(got.size, got.etag_plain, expected_size=m["size"], recorded=recorded_etags(m))
        if p.verdict is proof.UNVERIFIED:
            pending.append((m, got))
        elif not p.proven:
            problems.append(f"{m['key']} ({p.why})")
    if pending and callable(rewrites):
        rewrites = rewrites()
    for m, got in pending:
        p = prove_snapshot_object(s3, cfg.bucket, m, got, rewrites if isinstance(rewrites, dict) else None)
        if not p.proven:
            problems.append(f"{m['key']} ({p.why})")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise DrError(
            f"snapshot {snap_id} is incomplete: {len(problems)} of {len(objects)} objects in its manifest are not "
            f"proven intact under s3://{cfg.bucket}/{base}: {shown}; nothing was changed",
            "pick another snapshot with `inv dr.list`, or bring the objects back (a noncurrent version or the "
            "cross-region backup) first",
        )
    return present


def build_plan(
    cfg: DrConfig,
    snap_id: str,
    label: str,
    snapshot_ts: str | None,
    versioned: bool,
    objects: Sequence[dict[str, Any]],
    snapshot_objects: dict[str, ObjectVersion],
    live: Iterable[ObjectVersion],
) -> RollbackPlan:
    """Compare the manifest with live by ETag and size: no request is made here."""
    keep = preserve_matcher(cfg)
    plan = RollbackPlan(snap_id, label, snapshot_ts, cfg.bucket, cfg.prefix, versioned)
    live_by_rel = {cfg.rel_for(o.key): o for o in live if cfg.is_live_key(o.key)}
    wanted = {m["key"]: m for m in objects}
    for rel in sorted(set(wanted) | set(live_by_rel)):
        m, cur = wanted.get(rel), live_by_rel.get(rel)
        if keep(rel):
            size = cur.size if cur is not None else (m["size"] if m else 0)
            plan.preserved.append(PlanItem(rel, size))
        elif m is None:
            assert cur is not None
            plan.delete.append(PlanItem(rel, cur.size, "not in snapshot"))
        elif cur is None:
            plan.copy.append(PlanItem(rel, m["size"], "missing"))
            plan.sources[rel] = snapshot_objects[rel]
        else:
            # Live matches when its ETag is the recorded one or the snapshot
            # copy's: after a rollback live holds a copy of the copy, and a
            # server-side copy of a multipart object gets either the MD5 of
            # the bytes (AWS, moto) or the source's multipart ETag (Ceph RGW).
            # So a snapshot object `dr.recover` brought back as a multipart
            # upload, once rolled back, matches one of the two and is not
            # copied again. Unlike the snapshot check, size alone never
            # excuses live: a same-size edit pushed as a multipart upload
            # must still be copied back.
            etags = {m["etag"], snapshot_objects[rel].etag_plain}
            if cur.size == m["size"] and cur.etag_plain in etags:
                plan.unchanged.append(PlanItem(rel, cur.size))
            else:
                plan.copy.append(PlanItem(rel, m["size"], "changed"))
                plan.sources[rel] = snapshot_objects[rel]
    return plan


def _plan(cfg: DrConfig, s3: S3, snap_id: str, label: str, row: SnapshotRow, progress: Progress) -> RollbackPlan:
    versioned = s3.versioning(cfg.bucket) == "Enabled"
    manifest = load_manifest(cfg, s3, snap_id)
    objects = _manifest_objects(cfg, snap_id, manifest)
    progress.start(f"checking snapshot {snap_id}")
    try:
        # ONE listing of the snapshot dir checks every object: no HEAD per object.
        # An object whose ETag is not a recorded one is re-read and hashed.
        present = check_snapshot_objects(
            cfg,
            snap_id,
            objects,
            s3.iter_objects(cfg.bucket, snapshot_dir(cfg, snap_id)),
            s3,
            lambda: read_rewrites(cfg, s3),
        )
        progress.start("listing live keys")
        live = list_live(cfg, s3, versioned, progress)
    finally:
        progress.stop()
    return build_plan(cfg, snap_id, label, row.ts, versioned, objects, present, live)


def label_of(row: SnapshotRow, snap_id: str) -> str:
    label = row.label
    if label is None:
        raise DrError(f"the index row of snapshot {snap_id} records no label", "pick another snapshot")
    return label


def plan_rollback(
    cfg: DrConfig, snap_id: str, *, s3: S3 | None = None, progress: Progress = NULL_PROGRESS
) -> RollbackPlan:
    """What `dr.rollback ID --apply` would do now. Changes nothing."""
    row = snapshot_row(cfg, snap_id)
    label = label_of(row, snap_id)
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    plan = _plan(cfg, s3, snap_id, label, row, progress)
    plan.warnings.extend(_index_warnings(cfg))
    return plan


def _index_warnings(cfg: DrConfig) -> list[str]:
    bad = Index(cfg.index_path).read().bad_summary()
    return [bad] if bad else []


# ---------------------------------------------------------------------- apply
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
    plan = _plan(cfg, s3, snap_id, label, row, progress)
    if plan.needs_allow_unversioned and not allow_unversioned:
        raise DrError(
            f"{UNVERSIONED_LOUD}: {len(plan.delete)} deletes and {plan.overwrites} overwrites would be permanent "
            f"in s3://{cfg.bucket}; nothing was changed",
            "turn versioning on first (`inv dr.versioning --enable`), or accept it: " + plan.apply_command(),
        )
    warnings: list[str] = _index_warnings(cfg)
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
