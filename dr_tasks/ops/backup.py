"""`dr.backup` (`dr.cross-region-backup`): a cold copy of the primary bucket in another region.

The two ends are different endpoints (DigitalOcean Spaces has no bucket
replication and no cross-region CopyObject), so every copied byte streams:
GET from the primary, PutObject / multipart upload to the backup, one part of
one object in memory per worker. Peak memory is concurrency x part size,
whatever the objects' sizes.

What is copied: every live key (under `prefix`, minus our own bookkeeping),
everything under `snapshot_prefix` (snapshot objects and their manifests) and
the pins (`.dr-tasks/pins/`, so a prune after a recover still honours them), to
`<backup.prefix><same key>` in `backup.bucket`.

Incremental by a small state object at the destination,
`<backup.prefix>.dr-tasks/backup-state.json`, mapping each source key to the
source ETag and size it was copied from and the ETag the destination gave it,
and listing the keys the backup still holds that the primary no longer had at
the last run (`gone`: what `dr.recover` leaves out unless asked).
A key is skipped only when the destination listing still shows that exact
object (same size and ETag as recorded) and the source listing shows the same
source ETag and size as recorded. So a run over unchanged objects sends the
listings, one GET of the state, and nothing per object; and an object changed
or deleted behind our back at the destination is copied again.

A backup is bound to its source: the state names the primary it was made from
(server, bucket, prefix), and a run whose primary is another refuses to write
into it (`bind_source`): two repos that share one cold bucket and prefix would
overwrite each other's copies.

The destination is never pruned unless `--mirror`: then keys the primary no
longer has, and that this backup's state recorded copying, are shown, and
deleted only with `--apply`. A mirror that would delete more than
MASS_DELETE_SHARE of the objects the backup holds for this repo (an emptied,
gutted or wrongly configured primary: one surviving key is not proof that the
rest were meant to go) is refused, with the counts, unless
`allow_mass_delete`.

Snapshot objects never change. One whose source differs from what the state
says was copied, while the backup still holds that copy untouched, is not
copied over it: the run is partial and names it, so a corrupted snapshot in
the primary cannot overwrite its good cold copy. The `cross-region-backup`
row is appended last; a run where any object failed still appends a row,
marked `partial`, so the operator sees what happened, and exits 1 (`dr.freshness`
counts only complete rows). Running again copies what is still missing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..backup_rows import BackupDest, newest_backup_row
from ..config import DrConfig, Endpoint
from ..endpoints import same_endpoint
from ..errors import ConfigError, DrError
from ..index import Index, utc_now
from ..lease import Lease, Notify, check_lease
from ..parallel import Failure
from ..progress import NULL_PROGRESS, Progress
from ..rows import BackupRow
from ..timeparse import iso_utc, parse_duration
from ..transport import S3, CopyJob, ObjectVersion, S3Error, StreamedObject, engine_for
from .backup_plan import SHOWN, BackupPlan, MirrorNeedsApply, check_mirror, plan_backup, plan_writes
from .backup_state import save_state
from .leasing import operation_lease

# Objects streamed at once, whatever `concurrency` says. Their parts in memory
# are bounded on their own (s3.STREAM_BUFFERS: about 128 MiB at 8 MiB parts);
# more in flight helps small requests behind latency, not big bodies.
MAX_STREAMS = 16

# Part size of a streamed copy: peak memory is about s3.STREAM_BUFFERS x this.
# S3's minimum part size is 5 MiB.
PART_SIZE = 8 * 1024 * 1024
# A long first run saves its progress this often, so a kill does not lose it all.
CHECKPOINT_SECONDS = 30.0


@dataclass
class BackupResult:
    """One run of dr.backup. `row()` is what the index records."""

    id: str
    ts: str
    source: str
    source_endpoint: str | None
    dest_bucket: str
    dest: str
    dest_endpoint: str | None
    dest_region: str | None
    objects: int = 0
    copied: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mirror: bool = False
    seconds: float = 0.0
    # --if-older-than found a recent enough complete row: nothing was sent.
    not_due: bool = False
    last_complete: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.failed)

    @property
    def ok(self) -> bool:
        return not self.failed

    def backup_row(self) -> BackupRow:
        """The index row of this run."""
        return BackupRow.new(
            id=self.id,
            ts=self.ts,
            source=self.source,
            source_endpoint=self.source_endpoint,
            dest_bucket=self.dest_bucket,
            dest=self.dest,
            dest_endpoint=self.dest_endpoint,
            dest_region=self.dest_region,
            objects=self.objects,
            copied=self.copied,
            skipped=self.skipped,
            deleted=self.deleted,
            bytes=self.bytes,
            failed=len(self.failed),
            mirror=self.mirror,
            seconds=self.seconds,
        )

    def row(self) -> dict[str, Any]:
        """The index line's mapping, `v` first (what a post_backup hook reads)."""
        return {"v": 1, **self.backup_row().format()}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "partial": self.partial, "ok": self.ok}


def backup_endpoint(cfg: DrConfig) -> Endpoint:
    """The backup's endpoint, or the one-line config error that names `dr.backup.bucket`."""
    ep = cfg.backup.endpoint
    if ep is None:
        raise ConfigError(
            "backup.bucket",
            "is not set, so there is nowhere to back up to",
            "add `backup: {bucket: <name>, endpoint_url: <other region's endpoint>}` under `dr:` "
            "in invoke.yaml or export INVOKE_DR_BACKUP_BUCKET",
        )
    if bool(ep.access_key_id) != bool(ep.secret_access_key):
        missing = "backup.secret_access_key" if ep.access_key_id else "backup.access_key_id"
        raise ConfigError(missing, "is not set while its pair is", "set both backup keys, or neither")
    if ep.bucket == cfg.bucket and same_endpoint(ep.endpoint_url, cfg.endpoint.endpoint_url):
        raise ConfigError(
            "backup.bucket",
            f"{ep.bucket!r} at the same endpoint is the primary bucket itself, not a cold copy",
            "point backup.bucket and backup.endpoint_url at a bucket in another region",
        )
    return ep


def _row_id(rows: list[BackupRow], ts: str) -> str:
    taken = {r.id for r in rows if r.id is not None}
    base = f"{ts}-backup"
    n, rid = 1, base
    while rid in taken:
        n += 1
        rid = f"{base}-{n}"
    return rid


def _warn_unversioned(dst: S3, bucket: str, warnings: list[str]) -> None:
    try:
        status = dst.versioning(bucket)
    except S3Error:
        return  # not allowed to ask (a narrow policy): the copies say what they can
    if status != "Enabled":
        warnings.append(
            f"the backup bucket s3://{bucket} is not versioned: what a --mirror deletes or a later run "
            "overwrites there is gone for good; turn versioning on for it in the backup region"
        )


@dataclass(frozen=True)
class BackupOptions:
    """One run of `dr.backup`: its flags."""

    mirror: bool = False
    apply: bool = False
    allow_mass_delete: bool = False
    adopt: bool = False
    # Send nothing (`BackupResult.not_due`) when the last complete backup to this destination is younger: "6d".
    if_older_than: str | timedelta | None = None
    part_size: int = PART_SIZE
    # Take (and take over, when stale) the lease first, whatever the plan.
    break_lock: bool = False
    # The run's time (its row's `ts` and id); now when None.
    now: datetime | None = None


def check_options(cfg: DrConfig, options: BackupOptions) -> Endpoint:
    """The backup's endpoint, once the options make sense together; DrError before anything is read otherwise."""
    ep = backup_endpoint(cfg)
    if options.apply and not options.mirror:
        raise DrError("--apply only confirms the deletes of --mirror", "use --mirror --apply, or neither")
    if options.part_size < 5 * 1024 * 1024:
        raise DrError(f"part size {options.part_size} is below S3's 5 MiB minimum", "use at least 5 MiB")
    return ep


@dataclass(frozen=True)
class NotDue:
    """`--if-older-than` found a complete backup to this destination younger than asked: nothing is sent."""

    last: BackupRow  # that backup's row
    age: timedelta


def backup_not_due(
    cfg: DrConfig, options: BackupOptions, rows: list[BackupRow] | None = None, now: datetime | None = None
) -> NotDue | None:
    """`NotDue` when `options.if_older_than` says there is nothing to do; reads the index (or `rows`), no request."""
    max_age = options.if_older_than
    if isinstance(max_age, str):
        max_age = parse_duration(max_age, "--if-older-than")
    if max_age is None:
        return None
    now = now or utc_now()
    if rows is None:
        rows = Index(cfg.index_path).read().backups()
    last = newest_backup_row(rows, BackupDest.of(cfg), now=now)
    at = last.at if last is not None else None
    if last is None or at is None or now - at >= max_age:
        return None
    return NotDue(last, now - at)


def run_backup(
    cfg: DrConfig,
    options: BackupOptions | None = None,
    *,
    progress: Progress = NULL_PROGRESS,
    src: S3 | None = None,
    dst: S3 | None = None,
    lease: Lease | None = None,
    notify: Notify | None = None,
) -> BackupResult:
    """Back up the primary to `backup.bucket`; returns the result (check `.partial`) after appending its row.

    Raises DrError before anything is sent on a config problem,
    `MirrorNeedsApply` when `mirror` would delete and `apply` is not set, `MirrorWouldEmpty`
    when a mirror would delete more than MASS_DELETE_SHARE of what the backup
    holds for this repo (unless `allow_mass_delete`), and `ForeignBackup`
    before anything is written when `backup.prefix` holds another source's
    backup (unless `adopt`: see `bind_source`). With `options.if_older_than`,
    a run that `backup_not_due` finds not due sends nothing and appends no row
    (`result.not_due`).

    It deals with the primary's lease itself, and takes it
    only when the run has something to write: it plans first, read-only, while
    one request checks that nobody holds the lease (held, live or stale: the
    same `LockHeld` as taking it). A run that finds nothing changed appends its
    row without the lease's round trips (on stores that ignore If-None-Match,
    also a 0.5 s settle wait). A run that will write takes the lease and plans
    again under it, overlapping that wait. `options.break_lock` (take over a stale
    lease) takes the lease first, whatever the plan. A caller that already
    holds the lease passes it as `lease`: the run then plans and writes under
    it.

    Why a no-change run needs no lease: it writes nothing to either bucket (the
    row goes to the local index), and its listing is as good as one taken under
    the lease. An operation holding the lease when it is checked stops the run.
    One that held it only while the listing ran either had changed something
    by then, which shows up in the plan as something to copy (so the run takes
    the lease, and plans again under it), or had not, and then the listing is
    the state of the primary at that moment, which is all a backup row claims.
    Live keys change under any backup anyway: the host mirrors them without
    the lease.
    """
    options = options or BackupOptions()
    # A lease taken during the run is released when run_backup returns, after
    # the row, as a caller's `with hold_lease(...)` around the whole run would be.
    with contextlib.ExitStack() as held:
        return _run_backup(cfg, options, progress=progress, src=src, dst=dst, stack=held, lease=lease, notify=notify)


def _run_backup(
    cfg: DrConfig,
    options: BackupOptions,
    *,
    progress: Progress,
    src: S3 | None,
    dst: S3 | None,
    stack: contextlib.ExitStack,
    lease: Lease | None,
    notify: Notify | None,
) -> BackupResult:
    ep = check_options(cfg, options)
    started = time.monotonic()
    ts_dt = (options.now or utc_now()).replace(microsecond=0)
    ts = iso_utc(ts_dt, whole_seconds=True)
    index = Index(cfg.index_path)
    existing = index.read()
    result = _new_result(cfg, ep, _row_id(existing.backups(), ts), ts, options.mirror)
    not_due = backup_not_due(cfg, options, existing.backups(), ts_dt)
    if not_due is not None:
        result.not_due = True
        result.last_complete = not_due.last.ts
        result.seconds = round(time.monotonic() - started, 3)
        return result

    src = src or S3(cfg.endpoint, cfg.concurrency)
    dst = dst or S3(ep, cfg.concurrency)
    if same_endpoint(ep.endpoint_url, cfg.endpoint.endpoint_url, resolve=False):
        result.warnings.append(
            "the backup bucket is at the same endpoint as the primary: it is not a different failure domain"
        )
    plan, held = _plan_with_lease(cfg, options, ep, src, dst, existing.backups(), stack, lease, notify, progress)
    _refuse_mirror(cfg, options, ep, plan)
    _report_plan(options, ep, plan, dst, result)

    _ensure(held, "nothing was copied; no backup row was written")
    checkpoint = _Checkpoint(cfg, dst, ep.bucket, plan)
    if plan.unclaimed and plan.to_copy:
        # The prefix is claimed for this primary before anything lands in it:
        # a first run killed before its first checkpoint leaves copies, and
        # its rerun must find them bound to this source, not to no one.
        checkpoint.save()
    done, failed = _copy_all(cfg, plan.to_copy, src, dst, ep.bucket, options.part_size, checkpoint, progress)
    _report_copies(result, plan, done, failed)
    left = (
        f"{len(done)} objects were copied to s3://{ep.bucket}/{cfg.backup.prefix} and no backup row was written "
        "(the next `inv dr.backup` skips what is there)"
    )
    _ensure(held, left)
    if options.mirror and plan.deletes:
        _mirror_deletes(cfg, plan, dst, ep.bucket, checkpoint, bool(failed), result)
    if checkpoint.dirty or plan.state_pruned or plan.gone_changed or plan.rebound:
        _ensure(held, left + (f"; {result.deleted} mirrored deletes were done" if result.deleted else ""))
        try:
            checkpoint.save()
        except S3Error as err:
            # The copies are there; only the next run's skip list is lost.
            result.warnings.append(f"could not save the backup state ({err.message}); the next run copies more")
    if existing.bad:
        result.warnings.append(
            "the index has unreadable lines (" + "; ".join(b.describe() for b in existing.bad[:3]) + "); "
            "they were kept as they are"
        )
    result.seconds = round(time.monotonic() - started, 3)
    # A no-change run holds no lease, so another backup of this repo may have
    # appended a row with the same second's id since the index was read.
    result.id = _row_id(index.read().backups(), ts)
    _ensure(held, f"the backup ran ({result.copied} copied, {result.deleted} deleted) but no backup row was written")
    index.append(result.backup_row().format())
    return result


def _new_result(cfg: DrConfig, ep: Endpoint, row_id: str, ts: str, mirror: bool) -> BackupResult:
    return BackupResult(
        id=row_id,
        ts=ts,
        source=f"s3://{cfg.bucket}/{cfg.prefix}",
        source_endpoint=cfg.endpoint.endpoint_url,
        dest_bucket=ep.bucket,
        dest=f"s3://{ep.bucket}/{cfg.backup.prefix}",
        dest_endpoint=ep.endpoint_url,
        dest_region=ep.region,
        mirror=mirror,
    )


def _plan_with_lease(
    cfg: DrConfig,
    options: BackupOptions,
    ep: Endpoint,
    src: S3,
    dst: S3,
    rows: list[BackupRow],
    stack: contextlib.ExitStack,
    lease: Lease | None,
    notify: Notify | None,
    progress: Progress,
) -> tuple[BackupPlan, Lease | None]:
    """The plan, and the lease the run writes under (entered on `stack`) as `run_backup` says; None: no writes."""
    plans: list[BackupPlan] = []
    held: list[Lease] = []

    def make_plan() -> None:
        progress.start("listing the primary and the backup")
        try:
            plans.append(plan_backup(cfg, src, dst, ep.bucket, rows=rows, adopt=options.adopt, progress=progress))
        finally:
            progress.stop()

    def take_lease() -> None:
        held.append(
            stack.enter_context(
                operation_lease(
                    cfg, src, "backup", lease=lease, break_lock=options.break_lock, notify=notify, prepare=make_plan
                )
            )
        )

    if lease is not None or options.break_lock:
        # The caller holds the lease (plan under it), or the operator asked
        # about the lease: take (and break) it whatever the plan.
        take_lease()
        return plans[-1], held[-1]
    # Is the lease free? Asked alongside the listings (one request);
    # a held one stops the run, as taking it would, before any write.
    with ThreadPoolExecutor(max_workers=1) as pool:
        free = pool.submit(check_lease, cfg, src, "backup", notify)
        try:
            make_plan()
        finally:
            free.result()  # LockHeld wins over a listing error, as when the lease came first
    _refuse_mirror(cfg, options, ep, plans[-1])
    if plan_writes(plans[-1], options.mirror):
        # Planned without the lease, so planned again under it (during the
        # lease's settle wait, where the store needs one): what is copied
        # is decided while no snapshot, rollback or prune can run.
        take_lease()
    return plans[-1], held[-1] if held else None


def _ensure(held: Lease | None, left: str) -> None:
    """Stop before a write phase when the lease was lost; `left` says what the run leaves behind."""
    if held is not None:
        held.ensure(left)


def _refuse_mirror(cfg: DrConfig, options: BackupOptions, ep: Endpoint, plan: BackupPlan) -> None:
    """`MirrorWouldEmpty` past the share, `MirrorNeedsApply` for deletes without `apply`: before anything is sent.

    A mirror that would delete nothing is a plain copy: it runs without `apply`.
    """
    check_mirror(cfg, plan, options.mirror, f"s3://{ep.bucket}/{cfg.backup.prefix}", options.allow_mass_delete)
    if options.mirror and not options.apply and plan.deletes:
        raise MirrorNeedsApply(plan, f"s3://{ep.bucket}/")


def _report_plan(options: BackupOptions, ep: Endpoint, plan: BackupPlan, dst: S3, result: BackupResult) -> None:
    result.warnings.extend(plan.warnings)
    if options.mirror and plan.unrecorded:
        result.warnings.append(
            f"{plan.unrecorded} objects at the destination that the primary does not list were not deleted: "
            "this backup's state never recorded copying them (another repo's or tool's, or from before a lost state)"
        )
    result.objects = len(plan.sources)
    result.skipped = plan.skipped
    if (plan.to_copy and plan.present == 0) or (options.mirror and plan.deletes):
        # A first run, or deletes to come: the moments an unversioned backup
        # bucket matters (a mirror's deletes and later overwrites are final
        # there). One request, never on a no-change run.
        _warn_unversioned(dst, ep.bucket, result.warnings)


class _Checkpoint:
    """The state as copies land, saved every CHECKPOINT_SECONDS so a long first run killed keeps its progress."""

    def __init__(self, cfg: DrConfig, dst: S3, dest_bucket: str, plan: BackupPlan) -> None:
        self.cfg, self.dst, self.dest_bucket = cfg, dst, dest_bucket
        self.state, self.gone = plan.state, plan.gone
        self.dirty = False
        self._lock = threading.Lock()
        self._last_save = time.monotonic()

    def record(self, key: str, src_etag: str, size: int, dst_etag: str) -> None:
        with self._lock:
            # The ETag the GET returned, not the listing's: if the object
            # changed in between, the next run's listing matches what we hold.
            self.state[key] = [src_etag, size, dst_etag]
            self.dirty = True
            if time.monotonic() - self._last_save > CHECKPOINT_SECONDS:
                save_state(self.cfg, self.dst, self.dest_bucket, dict(self.state), self.gone)
                self._last_save = time.monotonic()

    def forget(self, key: str) -> None:
        """A source key whose copy a mirror deleted."""
        self.state.pop(key, None)
        self.gone.discard(key)
        self.dirty = True

    def save(self) -> None:
        save_state(self.cfg, self.dst, self.dest_bucket, self.state, self.gone)


def _copy_all(
    cfg: DrConfig,
    to_copy: list[ObjectVersion],
    src: S3,
    dst: S3,
    dest_bucket: str,
    part_size: int,
    checkpoint: _Checkpoint,
    progress: Progress,
) -> tuple[list[tuple[ObjectVersion, int]], list[Failure[ObjectVersion]]]:
    """Copy `to_copy` to `<backup.prefix><key>`; what was copied (with its size) and what failed."""
    bp = cfg.backup.prefix

    def copied(o: ObjectVersion, moved: StreamedObject) -> None:
        checkpoint.record(o.key, moved.src_etag, moved.size, moved.dst_etag)

    # The engine copies small objects through awscrt when it can (a GET into
    # memory, then a PUT); big or empty ones stream in parts, memory bounded
    # by the part size.
    engine = engine_for(dst, cfg.transfer_client, cfg.concurrency)
    items = [(o, CopyJob(o, cfg.bucket, o.key, dest_bucket, bp + o.key)) for o in to_copy]
    progress.start(f"copying {len(to_copy)} objects to s3://{dest_bucket}/{bp}", total=len(to_copy))
    try:
        src_engine = engine_for(src, cfg.transfer_client, cfg.concurrency)
        moved, failed = engine.copy_from(src_engine, items, part_size, MAX_STREAMS, progress, copied)
        done = [(o, m.size) for o, m in moved]
    finally:
        progress.stop()
    return done, failed


def _report_copies(
    result: BackupResult,
    plan: BackupPlan,
    done: list[tuple[ObjectVersion, int]],
    failed: list[Failure[ObjectVersion]],
) -> None:
    result.copied = len(done)
    result.bytes = sum(n for _, n in done)
    result.failed = [f.item.key for f in failed]
    result.errors = [f.error.message for f in failed[:SHOWN]]
    if plan.held:
        result.failed += plan.held
        result.errors.append(
            f"{plan.held[0]} changed in the primary since it was backed up, but snapshot objects never change: "
            f"the backup keeps its copy ({len(plan.held)} such objects); check the snapshot with "
            "`inv dr.verify --deep`, and prune it or bring the object back from the backup"
        )


def _mirror_deletes(
    cfg: DrConfig,
    plan: BackupPlan,
    dst: S3,
    dest_bucket: str,
    checkpoint: _Checkpoint,
    copies_failed: bool,
    result: BackupResult,
) -> None:
    """Delete what the primary no longer has (`plan.deletes`), unless a copy failed."""
    if copies_failed:
        result.warnings.append(f"{len(plan.deletes)} deletes were skipped because copies failed; run again to mirror")
        return
    bp = cfg.backup.prefix
    errors = dst.delete_keys(dest_bucket, plan.deletes)
    failed_deletes = {e.key for e in errors}
    for k in plan.deletes:
        if k not in failed_deletes:
            checkpoint.forget(k[len(bp) :])
    result.deleted = len(plan.deletes) - len(failed_deletes)
    result.failed.extend(sorted(k for k in failed_deletes if k))
    result.errors.extend(e.message for e in errors[:SHOWN])
