"""`dr.recover`: bring a lost primary bucket back from the cross-region backup.

The other half of `dr.backup`: the primary's region or bucket is gone, and
the cold copy is all there is. This streams every object the backup holds for
this repo (live keys, snapshots and their manifests) back into the primary
bucket (a new one, once `dr.bucket`/`dr.endpoint_url` point at it), skipping
what is proven already there (equal ETags, or the backup state's or recover's
own record tying the two copies; see `_same`), so an interrupted run just
continues. A key with no record is skipped on its size alone and listed
(`unverified`). It never deletes anything at either end, and it is a dry run unless
`apply` is set. A key the primary still holds with other content is kept and
listed (`differs`), not overwritten, unless `overwrite` is set: the backup may
be older than what survived, and recovering is about what was lost. Keys the
backup still holds only because it never deletes (the primary no longer had
them at the last backup, which the backup state records as `gone`) are left
out and listed (`deleted`) unless `include_deleted` is set: the primary comes
back as it was at the last backup, not as the union of every backup.
Afterwards the index (itself a live key) and every snapshot are back, so
restore and rollback work again.

It recovers only this repo's backup (`backup.whose_backup`): one whose backup
state names this repo's primary, or a source this repo's index records backing
up from into that destination (so a new bucket, after the old one was lost, is
recovered into without a flag). Another source's backup, or objects with no
backup state this repo's index knows nothing of, are refused before anything
is read from them unless `from_other_source` says the operator means it (the
index was lost with the laptop, say).

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

from .. import proof
from ..backup_rows import BackupSource
from ..config import DrConfig
from ..errors import DrError
from ..index import Index
from ..layout import META_PREFIX, PIN_PREFIX
from ..lease import Lease, Notify
from ..progress import NULL_PROGRESS, Progress, counted
from ..rewrites import read_rewrites, save_rewrites
from ..transport import S3, CopyJob, ObjectVersion, S3Error, StreamedObject, engine_for
from .backup import MAX_STREAMS, PART_SIZE, backup_endpoint
from .backup_state import BackupState, read_state, whose_backup
from .leasing import operation_lease

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
    # Keys skipped on their size alone: no record (backup state, rewrite) ties the two copies.
    unverified: list[str] = field(default_factory=list)
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


def _backup_objects(cfg: DrConfig, backup: S3, bucket: str, progress: Progress) -> list[ObjectVersion]:
    """What the backup holds for this repo: live keys, snapshots and pins (not the backup's own state)."""
    bp = cfg.backup.prefix
    out: list[ObjectVersion] = []
    for o in counted(backup.iter_objects(bucket, bp), progress):
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


def _same(cur: ObjectVersion, o: ObjectVersion, rec: list[Any] | None, rewrite: dict[str, Any] | None) -> proof.Proof:
    """Whether the primary's object `cur` holds the bytes of the backup's `o`, on the records' word.

    Equal ETags; or the backup state's record (source ETag, size, backup ETag)
    naming exactly these two objects; or this tool's own record of having
    written `cur` from `o` (`rewrites`). A backup object the state vouches for
    next to a primary object it does not is a mismatch. With no record at all
    the size is all there is: unverifiable, and the caller reports the key.
    """
    if cur.size != o.size:
        return proof.Proof(proof.Verdict.MISMATCH, f"size {cur.size}, the backup's {o.size}")
    if proof.plain(cur.etag) == proof.plain(o.etag):
        return proof.PROVEN
    if (
        isinstance(rewrite, dict)
        and rewrite.get("size") == o.size
        and proof.by_etag(o.size, o.etag, expected_size=o.size, recorded=[rewrite.get("from_etag")]).proven
        and proof.by_etag(cur.size, cur.etag, expected_size=o.size, recorded=[rewrite.get("etag")]).proven
    ):
        return proof.PROVEN
    if rec is not None and proof.by_etag(o.size, o.etag, expected_size=rec[1], recorded=[rec[2]]).proven:
        p = proof.by_etag(cur.size, cur.etag, expected_size=rec[1], recorded=[rec[0]])
        return p if p.proven else proof.Proof(proof.Verdict.MISMATCH, p.why)
    return proof.Proof(proof.Verdict.UNVERIFIABLE, "no record ties the two copies; same size only")


def _record_rewrites(
    cfg: DrConfig,
    primary: S3,
    bp: str,
    state: dict[str, list[Any]],
    rewrites: dict[str, Any],
    done: list[tuple[ObjectVersion, StreamedObject]],
    warnings: list[str],
) -> None:
    """Record the ETag each copy got where it differs from the one its source was recorded with.

    A big object comes back as a multipart upload: its new ETag is accepted
    later (rollback, verify, the next recover) only through this record of
    what it was written from (see `rewrites`).
    """
    changed = False
    for o, moved in done:
        key = o.key[len(bp) :]
        rec = state.get(key)
        source_etag = rec[0] if rec is not None and proof.plain(rec[2]) == proof.plain(moved.src_etag) else None
        if source_etag is not None and proof.plain(source_etag) == proof.plain(moved.dst_etag):
            if rewrites.pop(key, None) is not None:
                changed = True
            continue
        rewrites[key] = {
            "etag": proof.plain(moved.dst_etag),
            "size": moved.size,
            "from_etag": proof.plain(moved.src_etag),
            "source_etag": proof.plain(source_etag) if source_etag else None,
        }
        changed = True
    if not changed:
        return
    try:
        save_rewrites(cfg, primary, rewrites)
    except S3Error as err:
        warnings.append(
            f"could not record the new ETags of {len(done)} recovered objects ({err.message}); "
            "rollback and verify re-read those objects to check them"
        )


class ForeignRecover(DrError):
    """The backup at `backup.prefix` is not provably this repo's: recovering it would bring another's objects in."""

    def __init__(self, cfg: DrConfig, where: str, found: str) -> None:
        super().__init__(
            f"the backup {where} holds {found}, not a backup of this repo's primary {BackupSource.of(cfg)}: "
            "recovering it would bring another source's objects into s3://"
            f"{cfg.bucket}/{cfg.prefix}; refusing, nothing was copied",
            "check dr.backup.bucket / dr.backup.prefix / dr.backup.endpoint_url; if that backup is the one to "
            "bring back (this repo's index was lost, or on purpose), run again with --from-other-source",
        )


def _check_owner(cfg: DrConfig, state: BackupState, held: int, from_other_source: bool, result: RecoverResult) -> None:
    """`ForeignRecover` unless the backup is this repo's (`whose_backup`) or `from_other_source`; notes either way."""
    assert cfg.backup.endpoint is not None
    bucket = cfg.backup.endpoint.bucket
    where = f"s3://{bucket}/{cfg.backup.prefix}"
    owner = whose_backup(cfg, state, held, Index(cfg.index_path).read().backups(), bucket)
    if owner.foreign is not None:
        if not from_other_source:
            raise ForeignRecover(cfg, where, owner.foreign)
        result.warnings.append(f"recovering {where}, which holds {owner.foreign} (--from-other-source)")
    elif owner.moved_from is not None:
        result.warnings.append(f"the backup {where} was made from {owner.moved_from}, which this repo's index records")


def recover_from_backup(
    cfg: DrConfig,
    *,
    apply: bool = False,
    create_bucket: bool = False,
    overwrite: bool = False,
    include_deleted: bool = False,
    from_other_source: bool = False,
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
        sources = _backup_objects(cfg, backup, ep.bucket, progress)
        state = read_state(cfg, backup, ep.bucket, result.warnings)
        # Whose backup it is, before the primary is touched (--create-bucket makes it).
        _check_owner(cfg, state, len(sources), from_other_source, result)
        have = _primary_objects(cfg, primary, create_bucket, result)
    finally:
        progress.stop()
    gone = state.gone
    rewrites = read_rewrites(cfg, primary) if have else {}
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
        result.unverified = []
        todo: list[ObjectVersion] = []
        for o in sources:
            key = o.key[len(bp) :]
            cur = have.get(key)
            same = None if cur is None else _same(cur, o, state.objects.get(key), rewrites.get(key))
            if same is None:
                todo.append(o)
            elif same.proven:
                result.skipped += 1
            elif same.verdict is proof.UNVERIFIED and not overwrite:
                result.skipped += 1
                result.unverified.append(key)
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
        nonlocal have, rewrites
        have = {o.key: o for o in primary.iter_objects(cfg.bucket, "")}
        rewrites = read_rewrites(cfg, primary)

    with operation_lease(
        cfg, primary, "recover", lease=lease, break_lock=break_lock, notify=notify, prepare=replan
    ) as held:
        todo = plan()
        held.ensure("nothing was copied back")
        progress.start(f"copying {len(todo)} objects back into s3://{cfg.bucket}", total=len(todo))
        try:
            items = [(o, CopyJob(o, ep.bucket, o.key, cfg.bucket, o.key[len(bp) :])) for o in todo]
            engine = engine_for(primary, cfg.transfer_client, cfg.concurrency)
            from_backup = engine_for(backup, cfg.transfer_client, cfg.concurrency)
            done, failed = engine.copy_from(from_backup, items, part_size, MAX_STREAMS, progress)
        finally:
            progress.stop()
        held.ensure(
            f"{len(done)} objects were copied back into s3://{cfg.bucket}; the record of their new ETags was not "
            "written"
        )
        _record_rewrites(cfg, primary, bp, state.objects, rewrites, done, result.warnings)
    result.copied = len(done)
    result.bytes = sum(moved.size for _, moved in done)
    result.failed = [f.item.key[len(bp) :] for f in failed]
    result.errors = [f.error.message for f in failed[:SHOWN]]
    result.seconds = round(time.monotonic() - started, 3)
    return result
