"""`dr.snapshot`: copy every live key, server-side, to `<snapshot_prefix><id>/`.

Order of work, which is what makes it safe to interrupt:
1. list the current version of every live key once (the snapshot's contents),
   into a temporary on-disk table (`listing_spill`), not memory,
2. copy exactly those version ids in parallel, a chunk of the table at a time,
3. write the manifest beside the snapshot (the bucket alone can rebuild the index),
   streamed from the table through an unlinked temporary file,
4. append the `snapshot` row: the commit point. No row, no snapshot.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..index import Index, IndexRead, IndexWriteError, utc_now
from ..interrupt import Interrupted, shielded
from ..layout import LABEL_RULE, format_snapshot_id, is_label, manifest_key, snapshot_dir
from ..lease import Lease, Notify
from ..listing_spill import ListingSpill
from ..manifest import Manifest, ManifestEntry, write_manifest
from ..progress import NULL_PROGRESS, Progress, counted
from ..timeparse import iso_utc
from ..transport import S3, ObjectVersion, engine_for
from .leasing import operation_lease

# S3's limit on a key's length, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
UNVERSIONED_WARNING = (
    "bucket versioning is not enabled: this snapshot is a plain copy, and point-in-time "
    "restore needs versioning; run `inv dr.versioning --enable`"
)


def validate_label(label: str) -> str:
    """The label itself, or a DrError that shows the rule."""
    if not is_label(label):
        shown = repr(label)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise DrError(
            f"invalid label {shown}: labels must match {LABEL_RULE} with no '..' "
            "(lowercase letters, digits, '.', '_', '-'; at most 63; no '/', spaces or newlines)",
            "use e.g. --label=pre-migration",
        )
    return label


@dataclass
class SnapshotResult:
    id: str
    label: str
    ts: str
    bucket: str
    source: str
    dest: str
    objects: int
    bytes: int
    manifest: str
    versioned: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "snapshot",
            "id": self.id,
            "ts": self.ts,
            "label": self.label,
            "bucket": self.bucket,
            "source": self.source,
            "dest": self.dest,
            "objects": self.objects,
            "bytes": self.bytes,
            "manifest": self.manifest,
            "versioned": self.versioned,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_live(cfg: DrConfig, s3: S3, versioned: bool, progress: Progress = NULL_PROGRESS) -> list[ObjectVersion]:
    """The current version of every live key (snapshots and our bookkeeping excluded), counted on `progress`."""
    skip = cfg.reserved_prefixes()
    listing = counted(s3.iter_current(cfg.bucket, cfg.prefix, versioned, skip), progress)
    return [o for o in listing if cfg.is_live_key(o.key)]


def manifest_head(cfg: DrConfig, snap_id: str, label: str, ts: str, versioned: bool) -> Manifest:
    """The manifest without its objects (`write_manifest` streams those in)."""
    return Manifest(
        id=snap_id,
        label=label,
        ts=ts,
        bucket=cfg.bucket,
        prefix=cfg.prefix,
        source=f"s3://{cfg.bucket}/{cfg.prefix}",
        dest=f"s3://{cfg.bucket}/{snapshot_dir(cfg, snap_id)}",
        versioned=versioned,
        objects=[],
    )


def manifest_entries(cfg: DrConfig, listing: ListingSpill) -> Iterator[ManifestEntry]:
    """One entry per listed object, with `copy_etag` the ETag the server gave the snapshot's copy.

    A server-side copy of a multipart object gets another ETag than its
    source on AWS and moto (the MD5 of the bytes): the copy's own ETag,
    recorded here, is what later checks accept by exact equality.
    """
    for o, copy_etag in listing.objects():
        # No store returns a sha256 in a listing; `dr.verify --deep` fills it in.
        yield ManifestEntry(
            cfg.rel_for(o.key),
            o.size,
            o.etag_plain,
            o.version_id,
            iso_utc(o.last_modified, whole_seconds=True),
            copy_etag=copy_etag,
        )


@dataclass
class SnapshotPlan:
    """What a snapshot will copy, read before anything is written.

    Planning only reads, so `take_snapshot` runs it while the lease settles
    (`hold_lease(prepare=...)`): on a store without conditional PUTs that wait
    is half a second, as long as the listing of a few thousand keys.
    """

    id: str
    label: str
    ts: str
    versioned: bool
    listing: ListingSpill  # on disk: the plan's memory does not grow with the keys
    existing: IndexRead
    started: float

    def close(self) -> None:
        self.listing.close()


def plan_snapshot(
    cfg: DrConfig,
    label: str,
    *,
    progress: Progress = NULL_PROGRESS,
    s3: S3 | None = None,
    now: datetime | None = None,
    check_label: bool = True,
) -> SnapshotPlan:
    """List what a snapshot labelled `label` would copy; raises DrError on a refusal. Writes nothing."""
    if check_label:
        validate_label(label)
    started = time.monotonic()
    ts_dt = (now or utc_now()).replace(microsecond=0)
    snap_id = format_snapshot_id(ts_dt, label)
    existing = Index(cfg.index_path).read()
    if existing.snapshot(snap_id):
        raise DrError(f"snapshot {snap_id} already exists in the index", "wait a second or pick another label")

    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    versioned = s3.versioning(cfg.bucket) == "Enabled"
    mkey = manifest_key(cfg, snap_id)
    if s3.exists(cfg.bucket, mkey):
        raise DrError(
            f"snapshot {snap_id} already exists in the bucket (s3://{cfg.bucket}/{mkey})", "pick another label"
        )
    progress.start("listing live keys")
    listing = ListingSpill()
    too_long: list[str] = []
    try:
        skip = cfg.reserved_prefixes()
        live = (o for o in counted(s3.iter_current(cfg.bucket, cfg.prefix, versioned, skip), progress))
        listing.add(_note_too_long(cfg, snap_id, (o for o in live if cfg.is_live_key(o.key)), too_long))
        _check_key_lengths(cfg, snap_id, too_long)
        _check_unique(cfg, snap_id, listing)
    except BaseException:
        listing.close()
        raise
    finally:
        progress.stop()
    return SnapshotPlan(snap_id, label, iso_utc(ts_dt, whole_seconds=True), versioned, listing, existing, started)


def _check_unique(cfg: DrConfig, snap_id: str, listing: ListingSpill) -> None:
    """Refuse, before any copy, a listing that named a key twice: its manifest could not say which copy is right."""
    count, twice = listing.named_twice()
    if count:
        raise DrError(
            f"snapshot {snap_id} cannot be taken: the listing of s3://{cfg.bucket}/{cfg.prefix} named "
            f"{count} keys more than once ({', '.join(repr(k) for k in twice)}"
            f"{' ...' if count > 3 else ''}); nothing was copied",
            "this S3 server's version listing is inconsistent; report it (with the keys) to its operator",
        )


def _note_too_long(
    cfg: DrConfig, snap_id: str, objects: Iterator[ObjectVersion], too_long: list[str]
) -> Iterator[ObjectVersion]:
    """`objects`, appending to `too_long` each key whose copy would pass S3's 1,024-byte key limit.

    Every copy's key is the live key behind `<snapshot_prefix><id>/`, so a
    live key that fits can be too long as a snapshot key, and the store would
    only say "InvalidObjectName" copy by copy (moto does not even check).
    """
    base = len(snapshot_dir(cfg, snap_id).encode())
    for o in objects:
        if base + len(cfg.rel_for(o.key).encode()) > MAX_KEY_BYTES:
            too_long.append(o.key)
        yield o


def _check_key_lengths(cfg: DrConfig, snap_id: str, too_long: list[str]) -> None:
    """Refuse, before any copy, a snapshot whose copies would pass S3's 1,024-byte key limit."""
    if too_long:
        base = len(snapshot_dir(cfg, snap_id).encode())
        shown = ", ".join(repr(k[:60] + "...") for k in too_long[:3]) + (" ..." if len(too_long) > 3 else "")
        raise DrError(
            f"snapshot {snap_id} cannot be taken: {len(too_long)} live keys would be longer than S3's "
            f"{MAX_KEY_BYTES} bytes under {snapshot_dir(cfg, snap_id)} ({shown}); nothing was copied",
            f"keep live keys under {MAX_KEY_BYTES - base} bytes here (a shorter label or snapshot_prefix leaves "
            "more), or rename those keys",
        )


def take_snapshot(
    cfg: DrConfig,
    label: str,
    *,
    progress: Progress = NULL_PROGRESS,
    s3: S3 | None = None,
    now: datetime | None = None,
    check_label: bool = True,
    plan: SnapshotPlan | None = None,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> SnapshotResult:
    """Take a snapshot labelled `label` and record it. Raises DrError on any refusal or failure.

    Holds the bucket's lease while it plans, copies and records: the one it
    takes here (`break_lock` takes over a stale one; `notify` hears the
    lease's notes), or `lease`, one the caller already holds. `plan` is a
    `plan_snapshot` the caller made under that lease; without one the
    snapshot plans under the lease, during its settle wait.
    """
    if check_label:
        validate_label(label)  # before any request
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    if plan is not None and plan.label != label:
        raise ValueError(f"the plan is for label {plan.label!r}, not {label!r}")
    plans = [plan] if plan is not None else []

    def prepare() -> None:
        # Read-only: the lease runs it while it settles (the last run counts).
        plans.append(plan_snapshot(cfg, label, progress=progress, s3=s3, now=now, check_label=False))

    try:
        with operation_lease(
            cfg, s3, "snapshot", lease=lease, break_lock=break_lock, notify=notify, prepare=None if plans else prepare
        ) as held:
            return _take_snapshot(cfg, s3, plans[-1], progress, held)
    finally:
        for made in plans:
            made.close()


def _take_snapshot(cfg: DrConfig, s3: S3, plan: SnapshotPlan, progress: Progress, lease: Lease) -> SnapshotResult:
    snap_id, ts, versioned, listing, existing = plan.id, plan.ts, plan.versioned, plan.listing, plan.existing
    mkey = manifest_key(cfg, snap_id)
    dest_dir = snapshot_dir(cfg, snap_id)
    try:
        Index(cfg.index_path).check_writable()
    except IndexWriteError as err:
        raise DrError(f"snapshot {snap_id} not taken: {err.message}; nothing was copied", err.hint) from None
    # Each write phase starts only while the lease is ours (see Lease.ensure).
    lease.ensure(f"snapshot {snap_id} copied nothing; no index row was written")

    progress.start(f"copying {listing.count} objects to {dest_dir}", total=listing.count)
    copied, failures = 0, _Failures()
    try:
        engine = engine_for(s3, cfg.transfer_client, cfg.concurrency)
        # A chunk of the listing at a time: what is held is one chunk, whatever the number of keys.
        for chunk in listing.chunks():
            pairs = [(n, o, dest_dir + cfg.rel_for(o.key)) for n, o, _ in chunk]
            done, failed = engine.copy_versions(cfg.bucket, pairs, progress)
            listing.record_copies((n, etag) for n, _, etag in done)
            copied += len(done)
            keys = {n: o.key for n, o, _ in chunk} if failed else {}
            failures.add([(keys[f.item], f.error) for f in failed])
    except Interrupted as sig:
        sig.notes.append(_remove_interrupted(cfg, s3, snap_id))
        raise
    finally:
        progress.stop()
    if failures.count:
        # Leave no half snapshot behind; what cannot be removed now is garbage
        # without a manifest or row, which no operation ever reads.
        s3.delete_keys(cfg.bucket, (dest_dir + cfg.rel_for(k) for k in listing.copied_keys()))
        names = ", ".join(failures.keys) + (" ..." if failures.count > len(failures.keys) else "")
        raise DrError(
            f"snapshot {snap_id} failed: {failures.count} of {listing.count} copies failed ({names}); "
            f"first error: {failures.first_error}; no index row was written",
            "run the same command again once the cause is fixed",
        )

    left = (
        f"{copied} copies are left under s3://{cfg.bucket}/{dest_dir} with no manifest and no index row "
        "(no operation reads them; `inv dr.prune --apply` removes them once they are a day old)"
    )
    lease.ensure(left)
    # One entry per listed object (so as many as the listing, none twice: the
    # spill keeps each key once, `_check_unique` refused the rest), each checked
    # as the parser every reader uses checks it, before it is stored: what is
    # committed is what verify, rollback and reindex accept. Written to an
    # unlinked temporary file, not memory: a manifest is ~250 bytes per key.
    with tempfile.TemporaryFile() as data:
        write_manifest(data, manifest_head(cfg, snap_id, plan.label, ts, versioned), manifest_entries(cfg, listing))
        data.seek(0)
        try:
            s3.put_bytes(cfg.bucket, mkey, data, "application/json")
        except Interrupted as sig:
            sig.notes.append(_remove_interrupted(cfg, s3, snap_id))
            raise
    result = SnapshotResult(
        id=snap_id,
        label=plan.label,
        ts=ts,
        bucket=cfg.bucket,
        source=f"s3://{cfg.bucket}/{cfg.prefix}",
        dest=f"s3://{cfg.bucket}/{dest_dir}",
        objects=listing.count,
        bytes=listing.bytes,
        manifest=mkey,
        versioned=versioned,
        seconds=round(time.monotonic() - plan.started, 3),
    )
    if not versioned:
        result.warnings.append(UNVERSIONED_WARNING)
    if existing.bad:
        result.warnings.append(
            "the index has unreadable lines (" + "; ".join(b.describe() for b in existing.bad[:3]) + "); "
            "they were kept as they are"
        )
    # The commit point, only under the lease: a run that lost it leaves a
    # snapshot that `dr.reindex --apply` can still record.
    lease.ensure(
        f"snapshot {snap_id} is complete in the bucket (manifest s3://{cfg.bucket}/{mkey}) but no index row "
        "was written; `inv dr.reindex --apply` records it"
    )
    try:
        Index(cfg.index_path).append(result.row())
    except IndexWriteError as err:
        raise DrError(
            f"snapshot {snap_id} is complete in the bucket (manifest s3://{cfg.bucket}/{mkey}) but its row could "
            f"not be appended to {cfg.index}: {err.reason}" + (f"; {err.left}" if err.left else ""),
            "once the index is writable, `inv dr.reindex --apply` records it from its manifest",
        ) from None
    return result


class _Failures:
    """The copies that failed: how many, the first few keys, and the first error (not every failure)."""

    def __init__(self, shown: int = 5) -> None:
        self.count = 0
        self.keys: list[str] = []
        self.first_error = ""
        self._shown = shown

    def add(self, failed: list[tuple[str, DrError]]) -> None:
        for key, error in failed:
            if not self.count:
                self.first_error = error.message
            self.count += 1
            if len(self.keys) < self._shown:
                self.keys.append(key)


def _remove_interrupted(cfg: DrConfig, s3: S3, snap_id: str) -> str:
    """What a failed snapshot does, after a signal: remove its manifest and copies; say what is left."""
    dest_dir = snapshot_dir(cfg, snap_id)
    where = f"s3://{cfg.bucket}/{dest_dir}"
    mkey = manifest_key(cfg, snap_id)
    # A second signal must not cut the cleanup short.
    with shielded():
        try:
            # By version id: the copies were ours alone, and leave no delete markers behind.
            ours = [
                (v.key, v.version_id)
                for v in s3.iter_versions(cfg.bucket, cfg.snapshot_prefix + snap_id)
                if v.key.startswith(dest_dir) or v.key == mkey
            ]
            errors = s3.delete_versions(cfg.bucket, ours)
        except DrError as err:
            return (
                f"snapshot {snap_id} not taken, no index row was written; its copies under {where} could not be "
                f"removed ({err.message}): `inv dr.prune --apply` removes them after 24 h"
            )
    if errors:
        return (
            f"snapshot {snap_id} not taken, no index row was written; {len(errors)} of its {len(ours)} objects "
            f"are left under {where} (`inv dr.prune --apply` removes them after 24 h)"
        )
    return f"snapshot {snap_id} not taken: removed the {len(ours)} objects it had written under {where}, no index row"
