"""`dr.recover`: bring a lost primary bucket back from the cross-region backup.

The other half of `dr.backup`: the primary's region or bucket is gone, and
the cold copy is all there is. This streams every object the backup holds for
this repo (live keys, snapshots and their manifests) back into the primary
bucket (a new one, once `dr.bucket`/`dr.endpoint_url` point at it), skipping
what is already there with the same size and ETag, so an interrupted run just
continues. It never deletes anything at either end, and it is a dry run unless
`apply` is set. A key the primary still holds with other content is kept and
listed (`differs`), not overwritten, unless `overwrite` is set: the backup may
be older than what survived, and recovering is about what was lost. Keys the
backup still holds only because it never deletes (the primary no longer had
them at the last backup, which the backup state records as `gone`) are left
out and listed (`deleted`) unless `include_deleted` is set: the primary comes
back as it was at the last backup, not as the union of every backup.
Afterwards the index (itself a live key) and every snapshot are back, so
restore and rollback work again.

An applying run holds
the primary's lease while it plans and copies, as every other writer does: a
backup (which would mirror a half-recovered bucket), a snapshot or a rollback
waits for it. The lease lives in the primary bucket, so it is taken once the
bucket exists (after `create_bucket` made it). A dry run writes nothing and
takes none.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import META_PREFIX, DrConfig
from ..errors import DrError
from ..lock import Lease, Notify
from ..parallel import run_parallel
from ..progress import NULL_PROGRESS, Progress
from ..s3 import S3, ObjectVersion, S3Error
from .backup import MAX_STREAMS, PART_SIZE, backup_endpoint, read_state
from .leasing import operation_lease
from .prune import PIN_PREFIX

SHOWN = 10


@dataclass
class RecoverResult:
    source: str
    dest: str
    apply: bool
    objects: int = 0
    to_copy: list[str] = field(default_factory=list)
    skipped: int = 0
    # Keys the primary holds with other content than the backup's: kept unless `overwrite`.
    differs: list[str] = field(default_factory=list)
    overwrite: bool = False
    # Keys the primary no longer had at the last backup: left out unless `include_deleted`.
    deleted: list[str] = field(default_factory=list)
    include_deleted: bool = False
    copied: int = 0
    bytes: int = 0
    created_bucket: bool = False
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _backup_objects(cfg: DrConfig, backup: S3, bucket: str) -> list[ObjectVersion]:
    """What the backup holds for this repo: live keys, snapshots and pins (not the backup's own state)."""
    bp = cfg.backup.prefix
    out: list[ObjectVersion] = []
    for o in backup.iter_objects(bucket, bp):
        key = o.key[len(bp) :]
        if key.startswith(META_PREFIX) and not key.startswith(PIN_PREFIX):
            continue  # the backup's own state, a lease
        if cfg.is_live_key(key) or key.startswith((cfg.snapshot_prefix, PIN_PREFIX)):
            out.append(o)
    return out


def _primary_objects(cfg: DrConfig, primary: S3, create_bucket: bool, result: RecoverResult) -> dict[str, Any]:
    """The primary's current objects by key; creates the bucket when asked and it is missing."""
    try:
        return {o.key: o for o in primary.iter_objects(cfg.bucket, "")}
    except S3Error as err:
        if "NoSuchBucket" not in err.detail:
            raise
    if not create_bucket:
        raise DrError(
            f"the primary bucket s3://{cfg.bucket} does not exist at {cfg.endpoint.endpoint_url or 'AWS'}",
            "pass --create-bucket to create it (versioned), or point dr.bucket / dr.endpoint_url at the new bucket",
        )
    if result.apply:
        primary.create_bucket(cfg.bucket, versioned=True)
        result.created_bucket = True
    else:
        result.warnings.append(f"s3://{cfg.bucket} does not exist yet; --apply creates it (versioned)")
    return {}


def _same(cur: ObjectVersion, o: ObjectVersion) -> bool:
    """Whether the primary's object is the backup's, as far as the listings can tell.

    A multipart ETag is not the bytes' MD5 (the backup streams objects over
    its part size in parts, so a big object's two copies never share one):
    for those, the same size has to do.
    """
    if cur.size != o.size:
        return False
    return cur.etag_plain == o.etag_plain or "-" in cur.etag_plain or "-" in o.etag_plain


def recover_from_backup(
    cfg: DrConfig,
    *,
    apply: bool = False,
    create_bucket: bool = False,
    overwrite: bool = False,
    include_deleted: bool = False,
    progress: Progress = NULL_PROGRESS,
    primary: S3 | None = None,
    backup: S3 | None = None,
    part_size: int = PART_SIZE,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> RecoverResult:
    """Plan (and with `apply`, run) the copy from the backup bucket back into the primary.

    An applying run takes the primary's lease and plans again under it (see
    the module's docstring); a caller that already holds it passes it as
    `lease`.
    """
    ep = backup_endpoint(cfg)
    started = time.monotonic()
    result = RecoverResult(
        source=f"s3://{ep.bucket}/{cfg.backup.prefix}",
        dest=f"s3://{cfg.bucket}/{cfg.prefix}",
        apply=apply,
        overwrite=overwrite,
        include_deleted=include_deleted,
    )
    backup = backup or S3(ep, cfg.concurrency)
    primary = primary or S3(cfg.endpoint, cfg.concurrency)
    progress.start("listing the backup and the primary")
    try:
        sources = _backup_objects(cfg, backup, ep.bucket)
        have = _primary_objects(cfg, primary, create_bucket, result)
    finally:
        progress.stop()
    gone = read_state(cfg, backup, ep.bucket, result.warnings).gone
    if not include_deleted and gone:
        bp = cfg.backup.prefix
        result.deleted = sorted(o.key[len(bp) :] for o in sources if o.key[len(bp) :] in gone)
        sources = [o for o in sources if o.key[len(bp) :] not in gone]
    if not sources and not result.deleted:
        raise DrError(
            f"the backup s3://{ep.bucket}/{cfg.backup.prefix} holds nothing for this repo",
            "check dr.backup.bucket / dr.backup.prefix (and that `inv dr.backup` ever ran)",
        )
    bp = cfg.backup.prefix
    result.objects = len(sources)

    def plan() -> list[ObjectVersion]:
        result.skipped = 0
        result.differs = []
        todo: list[ObjectVersion] = []
        for o in sources:
            cur = have.get(o.key[len(bp) :])
            if cur is None:
                todo.append(o)
            elif _same(cur, o):
                result.skipped += 1
            elif overwrite:
                todo.append(o)
            else:
                result.differs.append(o.key[len(bp) :])
        result.to_copy = [o.key[len(bp) :] for o in todo]
        return todo

    if not apply:
        plan()
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def replan() -> None:
        # What is in the primary now, read under the lease: a writer that
        # finished before we got it is not overwritten unseen.
        nonlocal have
        have = {o.key: o for o in primary.iter_objects(cfg.bucket, "")}

    def copy_one(o: ObjectVersion) -> int:
        return primary.stream_copy(backup, ep.bucket, o.key, cfg.bucket, o.key[len(bp) :], part_size).size

    with operation_lease(
        cfg, primary, "recover", lease=lease, break_lock=break_lock, notify=notify, prepare=replan
    ) as held:
        todo = plan()
        held.ensure("nothing was copied back")
        progress.start(f"copying {len(todo)} objects back into s3://{cfg.bucket}", total=len(todo))
        try:
            done, failed = run_parallel(copy_one, todo, min(cfg.concurrency, MAX_STREAMS), progress)
        finally:
            progress.stop()
    result.copied = len(done)
    result.bytes = sum(n for _, n in done)
    result.failed = [f.item.key[len(bp) :] for f in failed]
    result.errors = [f.error.message for f in failed[:SHOWN]]
    result.seconds = round(time.monotonic() - started, 3)
    return result
