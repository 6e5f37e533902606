"""`dr.restore`: a unit (or a path, or everything) as it was at an instant, into the holding dir.

Nothing live changes: the bucket gets only ListObjectVersions, GetBucketVersioning
and GetObject requests, the live files are only read (for the diff), and no
index row is written. The operator reviews the holding dir and moves files by hand.

Order of work:
1. parse TS and refuse, before any request, what cannot end well: a holding
   dir that git or SYNC_DENY would not ignore, one that exists already (unless
   `force`), a restore dir reached through a symlink;
2. stream the version listing under the scope's prefix and decide key by key
   which entry was current at TS (see `versions_at`), on a thread of its own
   (see `Decisions`), while
3. those exact version ids download in parallel into a staging dir next to the
   holding dir, each through a short temp file that is checked (size, MD5 ETag) and
   renamed into place, with mtime = the version's LastModified;
4. diff the staged tree against the live local files;
5. rename the staging dir to the holding dir (with `force`, swap out the old
   one), then write the receipt `<restore_dir>/<name>.json` beside it.

Keys that would land outside the holding dir (`..`, absolute, empty segment,
NUL, backslash, a file that is also a directory), and keys whose name the
local file system refuses, are never written: they are
listed in `refused`, every other key is still restored, and `ok` is False (the
task then exits 1).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ...config import DrConfig
from ...errors import DrError
from ...layout import parse_snapshot_id
from ...progress import NULL_PROGRESS, Progress, counted
from ...timeparse import compact_utc, iso_utc, parse_ts
from ...transport import S3
from .decide import Decisions, fold_name, folds_names, refuse_empty
from .diff import DIFF_LINE_CAP, compute_diff, diff_file, structural_changes
from .download import download_all
from .holding import Staging, check_holding_free, publish_holding, write_json
from .results import DiffResult, FileDiff, RefusedKey, RestoredFile, RestoreResult
from .scope import Scope, check_restore_dir, resolve_scope
from .versions import AMBIGUOUS_WARNED, KeyAtTs, OrderAmbiguity, versions_at

__all__ = [
    "DIFF_LINE_CAP",
    "DiffResult",
    "FileDiff",
    "KeyAtTs",
    "OrderAmbiguity",
    "RefusedKey",
    "RestoreOptions",
    "RestorePlan",
    "RestoreResult",
    "RestoredFile",
    "Scope",
    "diff_file",
    "fold_name",
    "folds_names",
    "plan_restore",
    "resolve_scope",
    "restore_at",
    "run_restore",
    "structural_changes",
    "versions_at",
]

UNVERSIONED_WARNING = (
    "bucket versioning is not enabled: only each key's current object exists, so keys written after TS "
    "cannot be restored as they were; run `inv dr.versioning --enable`"
)


@dataclass(frozen=True)
class RestoreOptions:
    """What to restore and how: the flags of `dr.restore`."""

    ts: str | datetime
    unit: str | None = None
    path: str | None = None
    all_: bool = False
    # Replace a holding dir an earlier restore of the same scope and instant left.
    force: bool = False
    # Diffs without the per-file line cap.
    full: bool = False
    # "Now" for relative times and the future check (tests pin it).
    now: datetime | None = None


@dataclass(frozen=True)
class RestorePlan:
    """A restore decided before any request: the scope, the instant, where it lands."""

    scope: Scope
    ts: datetime
    ts_input: str
    now: datetime
    name: str  # of the holding dir, inside the restore dir
    holding: Path
    receipt: Path
    force: bool
    full: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def future(self) -> bool:
        return self.ts > self.now

    @property
    def ts_iso(self) -> str:
        return iso_utc(self.ts)


def _instant(cfg: DrConfig, ts: str | datetime, now: datetime) -> datetime:
    if isinstance(ts, str) and parse_snapshot_id(ts.strip()) is not None:
        return _snapshot_instant(cfg, ts.strip())
    if isinstance(ts, str):
        return parse_ts(ts, now)
    if ts.tzinfo is None:
        raise DrError("the point in time has no timezone", "pass an aware datetime, e.g. with tzinfo=timezone.utc")
    return ts.astimezone(timezone.utc)


def _snapshot_instant(cfg: DrConfig, snap_id: str) -> datetime:
    """The instant snapshot `snap_id` was taken, as its index row records it.

    A pruned snapshot's instant still names the versions live had then (they
    are the bucket's history, not the snapshot's copies), so it is accepted.
    """
    # Only a snapshot id as TS reads the index: a plain instant does not load it.
    from ...history import snapshot_row

    row = snapshot_row(cfg, snap_id, allow_pruned=True)
    at = row.at
    if at is None:
        raise DrError(
            f"the index row of snapshot {snap_id} has no readable ts",
            "pass the instant instead, e.g. the time in the snapshot's id: " + snap_id.split("Z-", 1)[0] + "Z",
        )
    return at


def plan_restore(cfg: DrConfig, options: RestoreOptions) -> RestorePlan:
    """Step 1: parse TS and refuse, before any request, what cannot end well (see the module's docstring)."""
    now = options.now or datetime.now(timezone.utc)
    ts = _instant(cfg, options.ts, now)
    scope = resolve_scope(cfg, options.unit, options.path, options.all_)
    name = f"{scope.stem}-{compact_utc(ts)}"
    holding = cfg.restore_path / name
    check_restore_dir(cfg, name)
    check_holding_free(cfg, holding, options.force)
    plan = RestorePlan(
        scope,
        ts,
        options.ts if isinstance(options.ts, str) else iso_utc(options.ts),
        now,
        name,
        holding,
        cfg.restore_path / f"{name}.json",
        options.force,
        options.full,
    )
    if isinstance(options.ts, str) and parse_snapshot_id(options.ts.strip()) is not None:
        plan.warnings.append(
            f"restoring at the instant snapshot {options.ts.strip()} was taken ({plan.ts_iso}, whole seconds): a write "
            "earlier in that same second is not included; the snapshot's own copies come back with `inv dr.rollback`"
        )
    if plan.future:
        plan.warnings.append(
            f"{plan.ts_iso} is in the future (now {iso_utc(now.replace(microsecond=0))}): restoring the current state"
        )
    return plan


def restore_at(
    cfg: DrConfig,
    ts: str | datetime,
    *,
    unit: str | None = None,
    path: str | None = None,
    all_: bool = False,
    force: bool = False,
    full: bool = False,
    progress: Progress = NULL_PROGRESS,
    s3: S3 | None = None,
    now: datetime | None = None,
) -> RestoreResult:
    """`run_restore(cfg, RestoreOptions(ts, unit=..., ...))` in keyword form, kept for the Python API (docs/restore.md).

    It adds nothing: every check and every step is `run_restore`'s.
    """
    options = RestoreOptions(ts, unit=unit, path=path, all_=all_, force=force, full=full, now=now)
    return run_restore(cfg, options, progress=progress, s3=s3)


def run_restore(
    cfg: DrConfig, options: RestoreOptions, *, progress: Progress = NULL_PROGRESS, s3: S3 | None = None
) -> RestoreResult:
    """Restore `options.unit` (or `path`, or everything) as it was at `options.ts` into the holding dir.

    The one entry of the restore: plan (`plan_restore`, no request), then
    apply. Raises DrError on any refusal (bad TS, unsafe or existing holding
    dir, nothing at TS) or download failure, leaving no holding dir behind.
    Keys refused for safety do not raise: they are in `result.refused`, every
    other key was restored, and `result.ok` is False.
    """
    started = time.monotonic()
    plan = plan_restore(cfg, options)
    result = _apply(cfg, plan, s3 or S3(cfg.endpoint, cfg.concurrency), progress)
    result.seconds = round(time.monotonic() - started, 3)
    write_json(plan.receipt, result.receipt_dict(iso_utc(plan.now.replace(microsecond=0))))
    return result


def _ask_versioning(s3: S3, bucket: str) -> Future[str | None]:
    # Asked while the listing runs: the answer only adds a warning, and on a
    # distant region it is one round trip less before the first download.
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dr-versioning")
    versioning = side.submit(s3.versioning, bucket)
    side.shutdown(wait=False)
    return versioning


def _apply(cfg: DrConfig, plan: RestorePlan, s3: S3, progress: Progress) -> RestoreResult:
    """Steps 2 to 5: list and decide, download, diff, publish."""
    scope = plan.scope
    warnings = list(plan.warnings)
    versioning = _ask_versioning(s3, cfg.bucket)
    # 2. which version of each key was current at TS, decided on a thread of
    # its own while 3. downloads what is decided. The probe is looked up here,
    # at run time, so a test can stand in for the file system.
    decisions = Decisions(cfg, scope, plan.ts, probe=folds_names)
    # The bar starts before the listing does: it counts versions as they are
    # listed, and gets its total (files to write) once the listing is through.
    progress.start(f"restoring from s3://{cfg.bucket}/{scope.key_prefix} as at {plan.ts_iso}")
    items = decisions.stream(
        lambda: counted(s3.iter_versions(cfg.bucket, scope.key_prefix, skip=cfg.reserved_prefixes()), progress),
        on_decided=progress.set_total,
    )
    staging = Staging(cfg.restore_path, plan.name)
    refused: list[RefusedKey] = []
    try:
        try:
            restored = download_all(cfg, s3, staging.path, staging.made_at_first(items), refused, progress)
        finally:
            decisions.stop()
            progress.stop()
        refused += decisions.refused
        warnings += _collision_warnings(decisions)
        versioned = versioning.result() == "Enabled"
        if not versioned:
            warnings.append(UNVERSIONED_WARNING)
        if not decisions.emitted and not refused:
            raise refuse_empty(cfg, s3, scope, plan.ts_iso, decisions.decided)
        # Every key refused: the holding dir is still made, empty, so the
        # receipt and the report point at something.
        staging.ensure()
        diff = compute_diff(cfg, scope, staging.path, restored, f"at-{compact_utc(plan.ts)}", plan.full)
        replaced = publish_holding(cfg, staging.path, plan.holding, plan.force)
    finally:
        staging.remove()
    return _result(cfg, plan, decisions, restored, refused, versioned, diff, replaced, warnings)


def _collision_warnings(decisions: Decisions) -> list[str]:
    pairs = decisions.collisions
    if not pairs or decisions.fs_folds():
        return []
    shown = "; ".join(f"{a!r} and {b!r}" for a, b in pairs[:10])
    more = f" and {len(pairs) - 10} more" if len(pairs) > 10 else ""
    return [
        f"{len(pairs)} pairs of keys differ only in case or Unicode normalization: {shown}"
        f"{more}; all restored here, but on a case-insensitive file system (macOS, Windows) each pair "
        "is one file: copy them there by hand and one overwrites the other"
    ]


def _result(
    cfg: DrConfig,
    plan: RestorePlan,
    decisions: Decisions,
    restored: list[RestoredFile],
    refused: list[RefusedKey],
    versioned: bool,
    diff: DiffResult,
    replaced: bool,
    warnings: list[str],
) -> RestoreResult:
    names, decided = decisions.names, decisions.decided
    ambiguous = [d.ambiguity for d in decided if d.ambiguity is not None]
    warnings.extend(f"version order: {a.describe()}" for a in ambiguous[:AMBIGUOUS_WARNED])
    if len(ambiguous) > AMBIGUOUS_WARNED:
        warnings.append(f"version order: {len(ambiguous) - AMBIGUOUS_WARNED} more keys like these (see the receipt)")
    scope = plan.scope
    return RestoreResult(
        scope=scope.kind,
        unit=scope.unit,
        path=scope.path,
        ts=plan.ts_iso,
        ts_input=plan.ts_input,
        future=plan.future,
        bucket=cfg.bucket,
        key_prefix=scope.key_prefix,
        versioned=versioned,
        holding_dir=f"{cfg.restore_dir}/{plan.name}/",
        holding_path=str(plan.holding),
        receipt=f"{cfg.restore_dir}/{plan.name}.json",
        restored=sorted(restored, key=lambda f: f.name),
        deleted_at_ts=sorted(names[d.key] for d in decided if d.state == "deleted"),
        born_after_ts=sorted(names[d.key] for d in decided if d.state == "not-yet"),
        directory_markers=decisions.markers,
        refused=sorted(refused, key=lambda r: r.key),
        diff=diff,
        replaced_existing=replaced,
        warnings=warnings,
        ambiguous=ambiguous,
        name_collisions=decisions.collisions,
    )
