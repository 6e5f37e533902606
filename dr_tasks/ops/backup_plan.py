"""`dr.backup`'s plan: what to copy, skip, hold back and (with `--mirror`) delete, from the listings alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..layout import META_PREFIX, PIN_PREFIX
from ..progress import NULL_PROGRESS, Progress, counted
from ..rows import BackupRow
from ..transport import S3, ObjectVersion, S3Error
from .backup_state import BackupState, bind_source, read_state

# How many planned deletes a refusal or a result shows by name.
SHOWN = 20
# A mirror may delete at most this share of the objects the backup holds for
# this repo without --allow-mass-delete: past it, a primary that lost most of
# its keys (or a wrongly configured one) would take the cold copy with it.
MASS_DELETE_SHARE = 0.5


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
    # No readable state names this backup's origin yet: one is written before the first copy (see `backup._run_backup`).
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


class MirrorNeedsApply(DrError):
    """`--mirror` would delete, without `--apply`: the deletes are shown, nothing is sent.

    A mirror that would delete nothing runs as a plain copy and never raises it.
    """

    def __init__(self, plan: BackupPlan, dest: str) -> None:
        shown = "\n".join(f"  delete {dest}{k}" for k in plan.deletes[:SHOWN])
        more = f"\n  ... and {len(plan.deletes) - SHOWN} more" if len(plan.deletes) > SHOWN else ""
        super().__init__(
            f"--mirror would copy {len(plan.to_copy)} objects and delete {len(plan.deletes)} at the destination "
            f"that the primary no longer has:\n{shown}{more}\nrefusing without --apply; nothing was copied or deleted",
            "to apply it, run: inv dr.backup --mirror --apply",
        )
        self.plan = plan


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


def list_sources(cfg: DrConfig, s3: S3, progress: Progress = NULL_PROGRESS) -> list[ObjectVersion]:
    """The primary's current objects to back up: live keys, snapshots and manifests (counted on `progress`)."""
    out: list[ObjectVersion] = []
    for prefix in _source_prefixes(cfg):
        out.extend(o for o in counted(s3.iter_objects(cfg.bucket, prefix), progress) if _is_source_key(cfg, o.key))
    return out


def plan_backup(
    cfg: DrConfig,
    src: S3,
    dst: S3,
    dest_bucket: str,
    *,
    rows: list[BackupRow] | None = None,
    adopt: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> BackupPlan:
    """Listings only (plus the one state object): what to copy, what to skip, what `--mirror` would delete.

    `rows` (this repo's index's backup rows) and `adopt` decide whose backup the
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
        source_listing = pool.submit(list_sources, cfg, src, progress)
        state_read = pool.submit(read_state, cfg, dst, dest_bucket, state_warnings)
        try:
            dest = {o.key: o for o in counted(dst.iter_objects(dest_bucket, bp), progress)}
        except S3Error as err:
            dest_error: S3Error | None = err
        else:
            dest_error = None
        sources = source_listing.result()
    finally:
        pool.shutdown(wait=False)
    if dest_error is not None:
        if "NoSuchBucket" in dest_error.detail:
            raise DrError(
                f"the backup bucket s3://{dest_bucket} does not exist at "
                f"{cfg.backup.endpoint.endpoint_url if cfg.backup.endpoint else None}",
                "create it (versioned) in the backup region, or fix dr.backup.bucket / dr.backup.endpoint_url",
            ) from None
        raise dest_error
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


def check_mirror(cfg: DrConfig, plan: BackupPlan, mirror: bool, dest: str, allow_mass_delete: bool) -> None:
    """Refuse a mirror that would delete more than MASS_DELETE_SHARE of what the backup holds (dry run or not)."""
    if not (mirror and plan.deletes) or allow_mass_delete:
        return
    if plan.present == 0 or len(plan.deletes) > MASS_DELETE_SHARE * plan.backed_up:
        raise MirrorWouldEmpty(cfg, plan, dest)


def plan_writes(plan: BackupPlan, mirror: bool) -> bool:
    """Whether carrying out `plan` writes anything (copies, deletes, the state object)."""
    return bool(plan.to_copy or (mirror and plan.deletes) or plan.state_pruned or plan.gone_changed or plan.rebound)
