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
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..backup_rows import BackupDest, BackupSource, newest_backup_row, row_time
from ..config import DrConfig, Endpoint, same_endpoint
from ..errors import ConfigError, DrError
from ..index import Index, utc_now
from ..layout import META_PREFIX, PIN_PREFIX, backup_state_key
from ..lease import Lease, Notify, check_lease
from ..progress import NULL_PROGRESS, Progress
from ..timeparse import iso_utc, parse_duration
from ..transport import S3, CopyJob, ObjectVersion, S3Error, StreamedObject, engine_for
from .leasing import operation_lease

# Objects streamed at once, whatever `concurrency` says. Their parts in memory
# are bounded on their own (s3.STREAM_BUFFERS: about 128 MiB at 8 MiB parts);
# more in flight helps small requests behind latency, not big bodies.
MAX_STREAMS = 16

KIND = "cross-region-backup"
# Part size of a streamed copy: peak memory is about s3.STREAM_BUFFERS x this.
# S3's minimum part size is 5 MiB.
PART_SIZE = 8 * 1024 * 1024
STATE_VERSION = 1
# A long first run saves its progress this often, so a kill does not lose it all.
CHECKPOINT_SECONDS = 30.0
# How many planned deletes a refusal or a result shows by name.
SHOWN = 20
# A mirror may delete at most this share of the objects the backup holds for
# this repo without --allow-mass-delete: past it, a primary that lost most of
# its keys (or a wrongly configured one) would take the cold copy with it.
MASS_DELETE_SHARE = 0.5


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

    def row(self) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": KIND,
            "id": self.id,
            "ts": self.ts,
            "source": self.source,
            "source_endpoint": self.source_endpoint,
            "dest_bucket": self.dest_bucket,
            "dest": self.dest,
            "dest_endpoint": self.dest_endpoint,
            "dest_region": self.dest_region,
            "objects": self.objects,
            "copied": self.copied,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "bytes": self.bytes,
            "failed": len(self.failed),
            "partial": self.partial,
            "mirror": self.mirror,
            "seconds": self.seconds,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "partial": self.partial, "ok": self.ok}


@dataclass
class BackupPlan:
    """What a run would do, from the listings alone."""

    sources: list[ObjectVersion]
    to_copy: list[ObjectVersion]
    skipped: int
    deletes: list[str]
    state: dict[str, list[Any]]
    # Entries were dropped from the loaded state (their objects are gone), so it must be saved.
    state_pruned: bool = False
    # Keys (source-relative) the backup holds that the primary no longer has; saved when it changed.
    gone: set[str] = field(default_factory=set)
    gone_changed: bool = False
    warnings: list[str] = field(default_factory=list)
    # Source keys the destination already holds (of those it would keep).
    present: int = 0
    # Snapshot objects changed in the primary since their copy: held back, see `_changed_snapshot_object`.
    held: list[str] = field(default_factory=list)
    # The state named another source that this repo may continue from (see `bind_source`): saved under this one.
    rebound: bool = False
    # Keys in this repo's scope at the destination that the primary lacks but no state of ours recorded: never deleted.
    unrecorded: int = 0
    # No readable state names this backup's origin yet: one is written before the first copy (see `_run_backup`).
    unclaimed: bool = False

    @property
    def backed_up(self) -> int:
        """Objects the backup holds for this repo: those the primary still lists, and those a mirror deletes."""
        return self.present + len(self.deletes)


class MirrorWouldEmpty(DrError):
    """`--mirror` would delete more than MASS_DELETE_SHARE of what the backup holds for this repo.

    Refused, apply or not, unless `allow_mass_delete`.
    """

    def __init__(self, cfg: DrConfig, plan: BackupPlan, dest: str) -> None:
        n, held = len(plan.deletes), plan.backed_up
        if plan.present == 0:
            listed = (
                "lists no objects"
                if not plan.sources
                else f"lists {len(plan.sources)} objects, none of which the backup holds"
            )
            what = f"all {n} objects"
        else:
            listed = f"still lists only {plan.present} of them"
            what = f"{n} of the {held} objects ({n / held:.0%}, more than {MASS_DELETE_SHARE:.0%})"
        super().__init__(
            f"--mirror would delete {what} the backup {dest} holds for this repo: "
            f"the primary s3://{cfg.bucket}/{cfg.prefix} {listed}; refusing, nothing was copied or deleted",
            "check dr.bucket, dr.prefix and dr.endpoint_url; after losing the primary, bring it back with "
            "`inv dr.recover --apply`; run without --mirror to copy without deleting, or add --allow-mass-delete "
            "if the primary really dropped them",
        )
        self.deletes = n
        self.held = held


class ForeignBackup(DrError):
    """The backup prefix holds a backup made from another source than this repo's primary: refused."""

    def __init__(self, cfg: DrConfig, dest: str, found: str) -> None:
        super().__init__(
            f"the backup {dest} holds {found}, not a backup of this repo's primary {BackupSource.of(cfg)}: "
            "backing up into it would overwrite it (and a --mirror would delete its keys); refusing, nothing was "
            "copied or deleted",
            "give each repo its own backup prefix (set dr.backup.prefix, e.g. `<repo name>/`); if this repo's primary "
            "moved and that backup is this repo's, run again with --adopt-backup",
        )


def _backed_up_to(rows: list[dict[str, Any]], dest: BackupDest, origin: BackupSource | None) -> bool:
    """Whether this repo's index records a backup to `dest` (read from `origin`, when given).

    The index is this repo's own record: a row there means this repo wrote that backup.
    """
    for r in rows:
        if r.get("kind") != KIND or not isinstance(r.get("source"), str) or not dest.holds(r):
            continue
        if origin is None or origin.made(r):
            return True
    return False


@dataclass(frozen=True)
class Ownership:
    """Whose backup `backup.prefix` holds, as `whose_backup` finds it."""

    # What is there when it is not provably this repo's backup (for the refusal); None when it is.
    foreign: str | None
    # The source the state names when that is not this repo's primary, though the index says it is this repo's.
    moved_from: BackupSource | None = None


def whose_backup(
    cfg: DrConfig, state: BackupState, overlap: int, rows: list[dict[str, Any]], dest_bucket: str
) -> Ownership:
    """Whether the backup at `backup.prefix` is this repo's.

    It is when its state names this repo's primary (the server by
    `same_endpoint`, the bucket, the prefix), or names another source that
    this repo's index records backing up from into this destination (the
    primary moved, or is read through another URL: `moved_from`). With no
    readable state, objects at the keys this repo uses (`overlap`) are
    another's or a lost state's: this repo's when its index records a backup
    to this destination; a destination with none of them is free.
    """
    mine = BackupSource.of(cfg)
    ep = cfg.backup.endpoint
    dest = BackupDest(dest_bucket, cfg.backup.prefix, ep.endpoint_url if ep else None)
    origin = state.origin
    if origin is None:
        if overlap == 0 or _backed_up_to(rows, dest, None):
            return Ownership(None)
        return Ownership(
            f"{overlap} objects at the keys this repo's backup uses, with no readable backup state naming their "
            "source and no backup to it in this repo's index"
        )
    if origin.same(mine):
        return Ownership(None)
    if _backed_up_to(rows, dest, origin):
        return Ownership(None, origin)
    return Ownership(f"a backup made from {origin}")


def bind_source(
    cfg: DrConfig,
    state: BackupState,
    overlap: int,
    rows: list[dict[str, Any]],
    dest_bucket: str,
    *,
    adopt: bool,
) -> str | None:
    """`ForeignBackup` unless the backup is this repo's (`whose_backup`) or `adopt`; a warning when it moves.

    A backup continued from another source than its state names is saved
    under this repo's primary from this run on.
    """
    owner = whose_backup(cfg, state, overlap, rows, dest_bucket)
    where = f"s3://{dest_bucket}/{cfg.backup.prefix}"
    mine = BackupSource.of(cfg)
    if owner.foreign is not None and not adopt:
        raise ForeignBackup(cfg, where, owner.foreign)
    if owner.moved_from is not None:
        return f"the backup {where} was made from {owner.moved_from}, which this repo's index records; " + (
            f"it continues from {mine}"
        )
    if owner.foreign is not None and state.origin is not None:
        return f"the backup {where} was made from {state.origin}; adopted (--adopt-backup), it continues from {mine}"
    return None


class MirrorNeedsApply(DrError):
    """`--mirror` without `--apply`: the deletes are shown, nothing is sent."""

    def __init__(self, plan: BackupPlan, dest: str) -> None:
        shown = "\n".join(f"  delete {dest}{k}" for k in plan.deletes[:SHOWN])
        more = f"\n  ... and {len(plan.deletes) - SHOWN} more" if len(plan.deletes) > SHOWN else ""
        super().__init__(
            f"--mirror would copy {len(plan.to_copy)} objects and delete {len(plan.deletes)} at the destination "
            f"that the primary no longer has:\n{shown}{more}\nrefusing without --apply; nothing was copied or deleted"
            if plan.deletes
            else f"--mirror would copy {len(plan.to_copy)} objects and delete nothing; refusing without --apply; "
            "nothing was copied",
            "run it again with --mirror --apply",
        )
        self.plan = plan


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


def _source_prefixes(cfg: DrConfig) -> list[str]:
    """The listings that cover live keys, snapshots and pins: one when they all lie under `prefix`."""
    return [cfg.prefix] + [p for p in (cfg.snapshot_prefix, PIN_PREFIX) if not p.startswith(cfg.prefix)]


def _is_source_key(cfg: DrConfig, key: str) -> bool:
    return cfg.is_live_key(key) or key.startswith((cfg.snapshot_prefix, PIN_PREFIX))


def _changed_snapshot_object(
    cfg: DrConfig, o: ObjectVersion, rec: list[Any] | None, have: ObjectVersion | None
) -> bool:
    """A snapshot object whose source changed since it was copied, while the backup's copy is still that copy.

    Objects inside `<snapshot_prefix><id>/` are written once; the manifest
    beside the directory is not one of them (`dr.verify --deep` records
    sha256s in it). The source may also carry the copy's own ETag: a recover
    wrote it back from this backup, with the same parts.
    """
    if rec is None or have is None or not o.key.startswith(cfg.snapshot_prefix):
        return False
    if "/" not in o.key[len(cfg.snapshot_prefix) :]:
        return False
    copy_intact = have.size == rec[1] and have.etag_plain == rec[2]
    return copy_intact and (o.size != rec[1] or o.etag_plain not in (rec[0], rec[2]))


def list_sources(cfg: DrConfig, s3: S3) -> list[ObjectVersion]:
    """The primary's current objects to back up: live keys, snapshots and manifests."""
    out: list[ObjectVersion] = []
    for prefix in _source_prefixes(cfg):
        out.extend(o for o in s3.iter_objects(cfg.bucket, prefix) if _is_source_key(cfg, o.key))
    return out


def _state_key(cfg: DrConfig) -> str:
    return backup_state_key(cfg.backup.prefix)


def _source_id(cfg: DrConfig) -> str:
    """Where the state's entries were read from, for people; `origin` is what `bind_source` checks."""
    return f"{cfg.endpoint.endpoint_url or 'aws'}/{cfg.bucket}"


def _read_origin(doc: dict[str, Any]) -> BackupSource | None:
    """The source a state object names: `origin`, or the older `source` string (`<endpoint or aws>/<bucket>`)."""
    o = doc.get("origin")
    if isinstance(o, dict):
        ep, bucket, prefix = o.get("endpoint_url"), o.get("bucket"), o.get("prefix")
        if (ep is None or isinstance(ep, str)) and isinstance(bucket, str) and isinstance(prefix, str):
            return BackupSource(ep, bucket, prefix)
        return None
    legacy = doc.get("source")
    if isinstance(legacy, str) and "/" in legacy:
        # Written before the prefix was recorded: the server and bucket still bind it.
        ep, _, bucket = legacy.rpartition("/")
        return BackupSource(None if ep == "aws" else ep, bucket, None) if bucket else None
    return None


@dataclass
class BackupState:
    """The state object: what each copy was made from, and the keys the primary no longer had."""

    objects: dict[str, list[Any]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    # The primary (server, bucket, prefix) the backup was made from; None when there is no readable state.
    origin: BackupSource | None = None


def read_state(cfg: DrConfig, dst: S3, dest_bucket: str, warnings: list[str]) -> BackupState:
    """The backup state of this repo in `dest_bucket`; empty (with a warning when unreadable) if none."""
    raw = dst.get_bytes_or_none(dest_bucket, _state_key(cfg))
    if raw is None:
        return BackupState()
    try:
        doc = json.loads(raw)
        objects = doc["objects"]
        gone = doc.get("gone", [])
        if doc.get("v") != STATE_VERSION or not isinstance(objects, dict) or not isinstance(gone, list):
            raise ValueError("unknown layout")
    except (ValueError, KeyError, TypeError):
        warnings.append(
            f"the backup state s3://{dest_bucket}/{_state_key(cfg)} is unreadable; every object is copied again"
        )
        return BackupState()
    # Each entry vouches for an exact (source ETag, size, destination ETag)
    # triple that both listings must still show; `origin` says whose backup
    # it is, which `bind_source` checks before anything is written.
    return BackupState(
        {k: v for k, v in objects.items() if isinstance(v, list) and len(v) == 3},
        {k for k in gone if isinstance(k, str)},
        _read_origin(doc),
    )


def _save_state(cfg: DrConfig, dst: S3, dest_bucket: str, state: dict[str, list[Any]], gone: set[str]) -> None:
    doc = {
        "v": STATE_VERSION,
        "source": _source_id(cfg),
        "origin": {"endpoint_url": cfg.endpoint.endpoint_url, "bucket": cfg.bucket, "prefix": cfg.prefix},
        "updated": iso_utc(utc_now(), whole_seconds=True),
        "objects": state,
        "gone": sorted(gone),
    }
    dst.put_bytes(
        dest_bucket,
        _state_key(cfg),
        json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(),
        "application/json",
    )


def plan_backup(
    cfg: DrConfig,
    src: S3,
    dst: S3,
    dest_bucket: str,
    *,
    rows: list[dict[str, Any]] | None = None,
    adopt: bool = False,
) -> BackupPlan:
    """Listings only (plus the one state object): what to copy, what to skip, what `--mirror` would delete.

    `rows` (this repo's index) and `adopt` decide whose backup the
    destination holds (`bind_source`): another source's is `ForeignBackup`.
    """
    warnings: list[str] = []
    bp = cfg.backup.prefix
    # The two regions are listed at the same time, and the state read beside
    # them: on a no-change run these are nearly all of the work, and they wait
    # on different servers.
    pool = ThreadPoolExecutor(max_workers=2)
    state_warnings: list[str] = []
    try:
        source_listing = pool.submit(list_sources, cfg, src)
        state_read = pool.submit(read_state, cfg, dst, dest_bucket, state_warnings)
        try:
            dest = {o.key: o for o in dst.iter_objects(dest_bucket, bp)}
        except S3Error as err:
            dest_error: S3Error | None = err
        else:
            dest_error = None
        sources = source_listing.result()
    finally:
        pool.shutdown(wait=False)
    if dest_error is not None:
        err = dest_error
        if "NoSuchBucket" in err.detail:
            raise DrError(
                f"the backup bucket s3://{dest_bucket} does not exist at "
                f"{cfg.backup.endpoint.endpoint_url if cfg.backup.endpoint else None}",
                "create it (versioned) in the backup region, or fix dr.backup.bucket / dr.backup.endpoint_url",
            ) from None
        raise err
    # The state lives in the destination's listing and vouches only for what
    # is there: an empty destination (a first backup) has none, and its GET is
    # not waited for (a slow 404 on some stores: bench/README.md, finding 12).
    loaded = BackupState()
    if dest:
        loaded = state_read.result()
        warnings += state_warnings
    present = sum(1 for o in sources if bp + o.key in dest)
    rebind = bind_source(cfg, loaded, present, rows or [], dest_bucket, adopt=adopt)
    if rebind:
        warnings.append(rebind)
    state = loaded.objects
    to_copy: list[ObjectVersion] = []
    held: list[str] = []
    skipped = 0
    for o in sources:
        have = dest.get(bp + o.key)
        rec = state.get(o.key)
        if (
            have is not None
            and rec is not None
            and rec == [o.etag_plain, o.size, have.etag_plain]
            and have.size == o.size
        ):
            skipped += 1
        elif _changed_snapshot_object(cfg, o, rec, have):
            held.append(o.key)
        else:
            to_copy.append(o)
    # What the destination holds that the primary no longer has, within the
    # prefixes this repo backs up (never our state), and only what this
    # backup's state recorded copying: a key it never wrote may be another
    # repo's or another tool's, whatever its name.
    wanted = {bp + o.key for o in sources}
    scopes = [bp + p for p in _source_prefixes(cfg)]
    stale = [
        k
        for k in dest
        if k not in wanted
        and k.startswith(tuple(scopes))
        and _is_source_key(cfg, k[len(bp) :])
        and (not k.startswith(bp + META_PREFIX) or k.startswith(bp + PIN_PREFIX))
    ]
    deletes = sorted(k for k in stale if k[len(bp) :] in state)
    # Entries for objects the destination no longer holds are dropped, so the
    # state never vouches for something that is not there.
    kept = {k: v for k, v in state.items() if bp + k in dest}
    # Whoever wrote them, keys the primary no longer has stay out of a recover unless asked.
    gone = {k[len(bp) :] for k in stale}
    return BackupPlan(
        sources,
        to_copy,
        skipped,
        deletes,
        kept,
        state_pruned=len(kept) != len(state),
        gone=gone,
        gone_changed=gone != loaded.gone,
        warnings=warnings,
        present=present,
        held=held,
        rebound=rebind is not None,
        unrecorded=len(stale) - len(deletes),
        unclaimed=loaded.origin is None,
    )


def _row_id(index_rows: list[dict[str, Any]], ts: str) -> str:
    taken = {r.get("id") for r in index_rows if r.get("kind") == KIND and isinstance(r.get("id"), str)}
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


def _check_mirror(cfg: DrConfig, plan: BackupPlan, mirror: bool, dest: str, allow_mass_delete: bool) -> None:
    """Refuse a mirror that would delete more than MASS_DELETE_SHARE of what the backup holds (dry run or not)."""
    if not (mirror and plan.deletes) or allow_mass_delete:
        return
    if plan.present == 0 or len(plan.deletes) > MASS_DELETE_SHARE * plan.backed_up:
        raise MirrorWouldEmpty(cfg, plan, dest)


def _writes(plan: BackupPlan, mirror: bool) -> bool:
    """Whether carrying out `plan` writes anything (copies, deletes, the state object)."""
    return bool(plan.to_copy or (mirror and plan.deletes) or plan.state_pruned or plan.gone_changed or plan.rebound)


def run_backup(
    cfg: DrConfig,
    *,
    mirror: bool = False,
    apply: bool = False,
    allow_mass_delete: bool = False,
    adopt: bool = False,
    if_older_than: str | timedelta | None = None,
    progress: Progress = NULL_PROGRESS,
    src: S3 | None = None,
    dst: S3 | None = None,
    now: datetime | None = None,
    part_size: int = PART_SIZE,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> BackupResult:
    """Back up the primary to `backup.bucket`; returns the result (check `.partial`) after appending its row.

    Raises DrError before anything is sent on a config problem,
    `MirrorNeedsApply` when `mirror` is set without `apply`, `MirrorWouldEmpty`
    when a mirror would delete more than MASS_DELETE_SHARE of what the backup
    holds for this repo (unless `allow_mass_delete`), and `ForeignBackup`
    before anything is written when `backup.prefix` holds another source's
    backup (unless `adopt`: see `bind_source`).

    It deals with the primary's lease itself, and takes it
    only when the run has something to write: it plans first, read-only, while
    one request checks that nobody holds the lease (held, live or stale: the
    same `LockHeld` as taking it). A run that finds nothing changed appends its
    row without the lease's round trips (on stores that ignore If-None-Match,
    also a 0.5 s settle wait). A run that will write takes the lease and plans
    again under it, overlapping that wait. `break_lock` (take over a stale
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
    # A lease taken during the run is released when run_backup returns, after
    # the row, as a caller's `with hold_lease(...)` around the whole run would be.
    with contextlib.ExitStack() as held:
        return _run_backup(
            cfg,
            mirror=mirror,
            apply=apply,
            allow_mass_delete=allow_mass_delete,
            adopt=adopt,
            if_older_than=if_older_than,
            progress=progress,
            src=src,
            dst=dst,
            now=now,
            part_size=part_size,
            stack=held,
            lease=lease,
            break_lock=break_lock,
            notify=notify,
        )


def _run_backup(
    cfg: DrConfig,
    *,
    mirror: bool,
    apply: bool,
    allow_mass_delete: bool,
    adopt: bool,
    if_older_than: str | timedelta | None,
    progress: Progress,
    src: S3 | None,
    dst: S3 | None,
    now: datetime | None,
    part_size: int,
    stack: contextlib.ExitStack,
    lease: Lease | None,
    break_lock: bool,
    notify: Notify | None,
) -> BackupResult:
    ep = backup_endpoint(cfg)
    if apply and not mirror:
        raise DrError("--apply only confirms the deletes of --mirror", "use --mirror --apply, or neither")
    if part_size < 5 * 1024 * 1024:
        raise DrError(f"part size {part_size} is below S3's 5 MiB minimum", "use at least 5 MiB")
    max_age = parse_duration(if_older_than, "--if-older-than") if isinstance(if_older_than, str) else if_older_than
    started = time.monotonic()
    ts_dt = (now or utc_now()).replace(microsecond=0)
    ts = iso_utc(ts_dt, whole_seconds=True)
    index = Index(cfg.index_path)
    existing = index.read()
    result = BackupResult(
        id=_row_id(existing.rows, ts),
        ts=ts,
        source=f"s3://{cfg.bucket}/{cfg.prefix}",
        source_endpoint=cfg.endpoint.endpoint_url,
        dest_bucket=ep.bucket,
        dest=f"s3://{ep.bucket}/{cfg.backup.prefix}",
        dest_endpoint=ep.endpoint_url,
        dest_region=ep.region,
        mirror=mirror,
    )
    if max_age is not None:
        last = newest_backup_row(existing.rows, BackupDest.of(cfg), now=ts_dt)
        last_at = row_time(last) if last else None
        if last is not None and last_at is not None and ts_dt - last_at < max_age:
            result.not_due = True
            result.last_complete = last.get("ts")
            result.seconds = round(time.monotonic() - started, 3)
            return result

    src = src or S3(cfg.endpoint, cfg.concurrency)
    dst = dst or S3(ep, cfg.concurrency)
    if same_endpoint(ep.endpoint_url, cfg.endpoint.endpoint_url, resolve=False):
        result.warnings.append(
            "the backup bucket is at the same endpoint as the primary: it is not a different failure domain"
        )

    plan: BackupPlan | None = None

    def make_plan() -> None:
        nonlocal plan
        progress.start("listing the primary and the backup")
        try:
            plan = plan_backup(cfg, src, dst, ep.bucket, rows=existing.rows, adopt=adopt)
        finally:
            progress.stop()

    # The lease this run writes under; None for a run with nothing to write (see above).
    held: Lease | None = None

    def take_lease() -> None:
        nonlocal held
        held = stack.enter_context(
            operation_lease(cfg, src, "backup", lease=lease, break_lock=break_lock, notify=notify, prepare=make_plan)
        )

    def ensure(left: str) -> None:
        if held is not None:
            held.ensure(left)

    if lease is not None or break_lock:
        # The caller holds the lease (plan under it), or the operator asked
        # about the lease: take (and break) it whatever the plan.
        take_lease()
    else:
        # Is the lease free? Asked alongside the listings (one request);
        # a held one stops the run, as taking it would, before any write.
        with ThreadPoolExecutor(max_workers=1) as pool:
            free = pool.submit(check_lease, cfg, src, "backup", notify)
            try:
                make_plan()
            finally:
                free.result()  # LockHeld wins over a listing error, as when the lease came first
        assert plan is not None
        _check_mirror(cfg, plan, mirror, f"s3://{ep.bucket}/{cfg.backup.prefix}", allow_mass_delete)
        if mirror and not apply:
            raise MirrorNeedsApply(plan, f"s3://{ep.bucket}/")
        if _writes(plan, mirror):
            # Planned without the lease, so planned again under it (during the
            # lease's settle wait, where the store needs one): what is copied
            # is decided while no snapshot, rollback or prune can run.
            take_lease()
    assert plan is not None
    result.warnings.extend(plan.warnings)
    if mirror and plan.unrecorded:
        result.warnings.append(
            f"{plan.unrecorded} objects at the destination that the primary does not list were not deleted: "
            "this backup's state never recorded copying them (another repo's or tool's, or from before a lost state)"
        )
    _check_mirror(cfg, plan, mirror, f"s3://{ep.bucket}/{cfg.backup.prefix}", allow_mass_delete)
    if mirror and not apply:
        raise MirrorNeedsApply(plan, f"s3://{ep.bucket}/")
    result.objects = len(plan.sources)
    result.skipped = plan.skipped
    if (plan.to_copy and plan.present == 0) or (mirror and plan.deletes):
        # A first run, or deletes to come: the moments an unversioned backup
        # bucket matters (a mirror's deletes and later overwrites are final
        # there). One request, never on a no-change run.
        _warn_unversioned(dst, ep.bucket, result.warnings)

    state = plan.state
    ensure("nothing was copied; no backup row was written")
    if plan.unclaimed and plan.to_copy:
        # The prefix is claimed for this primary before anything lands in it:
        # a first run killed before its first checkpoint leaves copies, and
        # its rerun must find them bound to this source, not to no one.
        _save_state(cfg, dst, ep.bucket, state, plan.gone)
    lock = threading.Lock()
    last_save = [time.monotonic()]
    dirty = [False]
    bp = cfg.backup.prefix

    def record(key: str, src_etag: str, size: int, dst_etag: str) -> None:
        with lock:
            # The ETag the GET returned, not the listing's: if the object
            # changed in between, the next run's listing matches what we hold.
            state[key] = [src_etag, size, dst_etag]
            dirty[0] = True
            if time.monotonic() - last_save[0] > CHECKPOINT_SECONDS:
                _save_state(cfg, dst, ep.bucket, dict(state), plan.gone)
                last_save[0] = time.monotonic()

    def copied(o: ObjectVersion, moved: StreamedObject) -> None:
        record(o.key, moved.src_etag, moved.size, moved.dst_etag)

    # The engine copies small objects through awscrt when it can (a GET into
    # memory, then a PUT); big or empty ones stream in parts, memory bounded
    # by the part size.
    engine = engine_for(dst, cfg.transfer_client, cfg.concurrency)
    items = [(o, CopyJob(o, cfg.bucket, o.key, ep.bucket, bp + o.key)) for o in plan.to_copy]
    progress.start(f"copying {len(plan.to_copy)} objects to s3://{ep.bucket}/{bp}", total=len(plan.to_copy))
    try:
        src_engine = engine_for(src, cfg.transfer_client, cfg.concurrency)
        moved, failed = engine.copy_from(src_engine, items, part_size, MAX_STREAMS, progress, copied)
        done = [(o, m.size) for o, m in moved]
    finally:
        progress.stop()
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

    left = (
        f"{len(done)} objects were copied to s3://{ep.bucket}/{bp} and no backup row was written "
        "(the next `inv dr.backup` skips what is there)"
    )
    ensure(left)
    if mirror and plan.deletes:
        if failed:
            result.warnings.append(
                f"{len(plan.deletes)} deletes were skipped because copies failed; run again to mirror"
            )
        else:
            errors = dst.delete_keys(ep.bucket, plan.deletes)
            failed_deletes = {e.key for e in errors}
            for k in plan.deletes:
                if k in failed_deletes:
                    continue
                state.pop(k[len(bp) :], None)
                plan.gone.discard(k[len(bp) :])
                dirty[0] = True
            result.deleted = len(plan.deletes) - len(failed_deletes)
            result.failed.extend(sorted(k for k in failed_deletes if k))
            result.errors.extend(e.message for e in errors[:SHOWN])
    if dirty[0] or plan.state_pruned or plan.gone_changed or plan.rebound:
        ensure(left + (f"; {result.deleted} mirrored deletes were done" if result.deleted else ""))
        try:
            _save_state(cfg, dst, ep.bucket, state, plan.gone)
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
    result.id = _row_id(index.read().rows, ts)
    ensure(f"the backup ran ({result.copied} copied, {result.deleted} deleted) but no backup row was written")
    index.append(result.row())
    return result
