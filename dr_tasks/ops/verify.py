"""`dr.verify [--deep] [--id=ID]`: the whole "is DR working" checklist, one line per check.

Checks, each independent (one failing or erroring never hides the others):
- versioning: versioning Enabled and a noncurrent-version rule of `retention_days`;
- snapshot: the newest snapshot's objects match its manifest (one listing of the
  snapshot dir; size and ETag of every object; nothing missing, nothing extra);
- index: every line of the index reads clean;
- backup: the newest complete cross-region-backup row is within backup.max_age_days;
- restore-dir: `<restore_dir>/` is in .gitignore and denied by `sync_deny`;
- drill (with `drill.max_age_days`): the newest `dr.drill --live` row passed, within that age.

`--deep` re-reads every object of a snapshot (the newest, or `--id`) and checks
its SHA-256 against the manifest. Where the manifest has no SHA-256 yet (the
snapshot was taken without one: no S3-compatible store returns it in a
listing), the object's MD5 is checked against its single-part ETag instead and
the SHA-256 is then recorded IN THE MANIFEST OBJECT ITSELF, rewritten in the
bucket with the null fields filled in (and `sha256_recorded_at`). The manifest
is bucket-side metadata, not the index (which is never rewritten); a rewrite
only fills nulls, never changes a recorded value, and on a versioned bucket the
previous manifest stays as a noncurrent version. A corrupted object is never
recorded: its SHA-256 stays null and the check fails.

A multipart ETag is not a hash of the bytes, so for a multipart object with no
SHA-256 yet the first read is compared with the live version the snapshot was
copied from (the manifest's `version_id`, read by id: while retention keeps it,
it is the original). When that version is gone (expired, or a bucket brought
back by `dr.recover`), the object is reported as unchecked and nothing is
recorded for it: a first read alone would make whatever bytes are there now
the reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .. import proof
from ..config import DrConfig
from ..errors import DrError
from ..gitignore import holding_dir_ignored
from ..guard import Guard
from ..history import find_snapshot, newest_snapshot
from ..index import Index, IndexRead, utc_now
from ..layout import manifest_key, snapshot_dir
from ..lease import Lease, LockHeld, Notify
from ..manifest import Manifest, ManifestError, format_manifest, parse_manifest
from ..parallel import run_parallel
from ..progress import NULL_PROGRESS, Progress
from ..rewrites import read_rewrites
from ..stored_snapshot import load_manifest, prove_snapshot_object, recorded_etags
from ..timeparse import iso_utc
from ..transport import S3, S3Error
from .freshness import Check, backup_check, drill_check, index_check
from .leasing import operation_lease
from .versioning import FIX as VERSIONING_FIX
from .versioning import versioning_status

SHOWN = 5


@dataclass
class VerifyResult:
    checks: list[Check] = field(default_factory=list)
    snapshot: str | None = None
    deep: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshot": self.snapshot,
            "checks": [c.to_dict() for c in self.checks],
            "deep": self.deep,
        }


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def _newest_snapshot_id(read: IndexRead) -> str | None:
    newest = newest_snapshot(read)
    return newest.id if newest is not None else None


# ---------------------------------------------------------------------- checks
def check_versioning(cfg: DrConfig, s3: S3) -> Check:
    r = versioning_status(cfg, s3)
    if r.ok:
        return Check("versioning", True, r.summary())
    return Check("versioning", False, r.summary() + ": " + "; ".join(r.problems), VERSIONING_FIX)


def check_snapshot(cfg: DrConfig, s3: S3, snap_id: str | None) -> Check:
    """Every manifest entry is in the snapshot dir with the same size and ETag; nothing extra."""
    if snap_id is None:
        return Check("snapshot", False, "no snapshot row in the index", "take one: `inv dr.snapshot --label=...`")
    manifest = load_manifest(cfg, s3, snap_id)
    entries = {e.key: e.to_dict() for e in manifest.objects}
    sdir = snapshot_dir(cfg, snap_id)
    listed = {o.key[len(sdir) :]: o for o in s3.iter_objects(cfg.bucket, sdir)}
    missing = sorted(k for k in entries if k not in listed)
    extra = sorted(k for k in listed if k not in entries)
    rewrites = read_rewrites(cfg, s3)
    unproven: list[str] = []
    reread = 0
    for k, e in sorted(entries.items()):
        o = listed.get(k)
        if o is None:
            continue
        # The rollback's own test: a recorded ETag, else the bytes re-read and hashed.
        etags = recorded_etags(e, rewrites, o.key)
        if proof.by_etag(o.size, o.etag_plain, expected_size=_size(e), recorded=etags).verdict is proof.UNVERIFIED:
            reread += 1
        p = prove_snapshot_object(s3, cfg.bucket, {**e, "size": _size(e)}, o, rewrites)
        if not p.proven:
            unproven.append(f"{k} ({p.why})")
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_names(missing)})")
    if unproven:
        problems.append(f"{len(unproven)} not proven intact ({_names(unproven)})")
    if extra:
        problems.append(f"{len(extra)} not in the manifest ({_names(extra)})")
    where = f"snapshot {snap_id} (s3://{cfg.bucket}/{sdir})"
    if problems:
        return Check(
            "snapshot",
            False,
            f"{where} does not match its manifest: " + "; ".join(problems),
            "take a fresh snapshot, and use an older one for restores (`inv dr.list`); "
            "`inv dr.verify --deep` re-reads every object",
        )
    note = f"; {reread} re-read and hashed (their ETag is not a recorded one)" if reread else ""
    return Check("snapshot", True, f"{where}: {len(entries)} objects match the manifest (size, ETag){note}")


def _size(e: dict[str, Any]) -> int:
    """The entry's recorded size; -1 (which no object has) when the manifest gives none."""
    size = e.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) else -1


def check_restore_dir(cfg: DrConfig) -> Check:
    d = cfg.restore_dir
    # By restore's own rule, for a holding dir of a restore's shape.
    ignored = holding_dir_ignored(cfg.root, d, "probe")
    denied = Guard(cfg).restore_dir_denied()
    problems, fixes = [], []
    if not ignored:
        problems.append(f"{d}/ is not in .gitignore")
        fixes.append(f"echo '{d}/' >> {cfg.root / '.gitignore'}")
    if not denied:
        problems.append(f"dr.sync_deny does not deny {d}/** (the guard adds it, but other sync tools read the list)")
        fixes.append(f'add "{d}/**" to dr.sync_deny')
    if problems:
        return Check("restore-dir", False, "; ".join(problems), "; ".join(fixes))
    return Check("restore-dir", True, f"{d}/ is gitignored and denied by dr.sync_deny")


def _guarded(name: str, fn: Any, *args: Any) -> Check:
    """Run one check; an error (S3 down, no manifest) fails that check, not the checklist."""
    try:
        return fn(*args)
    except DrError as err:
        return Check(name, False, err.message, err.hint)


# ---------------------------------------------------------------------- deep
@dataclass
class DeepResult:
    snapshot: str
    objects: int = 0
    bytes: int = 0
    verified: int = 0
    recorded: int = 0
    mismatched: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    # Multipart objects with no recorded SHA-256 and no source version left to compare with.
    unchecked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    manifest_rewritten: bool = False
    # Why sha256s that were checked were not written into the manifest (None when they were, or none were new).
    not_recorded: str | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "objects": self.objects,
            "bytes": self.bytes,
            "verified": self.verified,
            "recorded": self.recorded,
            "mismatched": self.mismatched,
            "unreadable": self.unreadable,
            "unchecked": self.unchecked,
            "errors": self.errors,
            "manifest_rewritten": self.manifest_rewritten,
            "not_recorded": self.not_recorded,
            "ok": self.ok,
        }


def deep_verify(
    cfg: DrConfig,
    snap_id: str,
    s3: S3 | None = None,
    progress: Progress = NULL_PROGRESS,
    record: bool = True,
    *,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> DeepResult:
    """Read every object of snapshot `snap_id` and check its bytes; record SHA-256s the manifest lacks.

    Reading needs no lease. Recording rewrites the manifest, so it happens
    under the bucket's lease (one taken then, or `lease`, one the caller
    holds), on the manifest as it is at that moment: one a prune deleted
    meanwhile is not brought back. When another operation holds the lease
    the sums are not recorded, and `not_recorded` says why.
    """
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    manifest = load_manifest(cfg, s3, snap_id)
    entries = [e.to_dict() for e in manifest.objects]
    sdir = snapshot_dir(cfg, snap_id)
    result = DeepResult(snap_id, objects=len(entries))
    lock = threading.Lock()
    new_sha: dict[str, str] = {}

    source_prefix = manifest.prefix if manifest.prefix is not None else cfg.prefix

    rewrites = read_rewrites(cfg, s3)

    def check(e: dict[str, Any]) -> None:
        d = s3.digest(cfg.bucket, sdir + e["key"])
        problems = []
        unchecked = False
        known = e.get("sha256")
        etag = str(e.get("etag") or "")
        etags = recorded_etags(e, rewrites, sdir + e["key"])
        p = proof.by_bytes(d.size, d.md5, d.sha256, expected_size=_size(e), sha256=known, recorded=etags)
        md5_like = [t for t in etags if proof.could_be_md5(t)]
        if p.verdict is proof.UNVERIFIED and proof.could_be_md5(etag):
            problems.append(f"md5 {d.md5}, manifest ETag says {etag} (sha256 not recorded)")
        elif p.verdict is proof.UNVERIFIED:
            # Bytes first: the live version the snapshot copied, read by id
            # while retention keeps it, is the original. Only without it does
            # the GET's own ETag, when it is one recorded for these bytes, vouch.
            source = _source_digest(s3, cfg.bucket, source_prefix + e["key"], e.get("version_id"))
            if source is not None:
                if source.sha256 != d.sha256:
                    problems.append(f"sha256 {d.sha256[:16]}..., its source version has {source.sha256[:16]}...")
            elif proof.by_etag(d.size, d.etag, expected_size=_size(e), recorded=etags).proven:
                pass
            elif md5_like:
                # The copy's recorded ETag can be the bytes' MD5 and it did not match: other bytes.
                problems.append(f"md5 {d.md5}, recorded ETags {', '.join(md5_like)} (sha256 not recorded)")
            else:
                unchecked = True
        elif p.mismatch:
            problems.append(p.why)
        with lock:
            result.bytes += d.size
            if problems:
                result.mismatched.append(e["key"])
                result.errors.append(f"{e['key']}: " + "; ".join(problems))
            elif unchecked:
                result.unchecked.append(e["key"])
            else:
                result.verified += 1
                if not known:
                    new_sha[e["key"]] = d.sha256

    progress.start(f"reading {len(entries)} objects of {snap_id}", total=len(entries))
    try:
        _, failed = run_parallel(check, entries, cfg.concurrency, progress)
    finally:
        progress.stop()
    for f in failed:
        result.unreadable.append(f.item["key"])
        result.errors.append(f.error.message)
    result.mismatched.sort()
    result.unreadable.sort()
    result.unchecked.sort()
    if record and new_sha:
        try:
            with operation_lease(cfg, s3, "verify", lease=lease, break_lock=break_lock, notify=notify) as held:
                _record_sha256(cfg, s3, snap_id, manifest, new_sha, result, held)
        except LockHeld as err:
            result.not_recorded = f"{len(new_sha)} new sha256 not recorded: {err.message}"
    return result


def _record_sha256(
    cfg: DrConfig,
    s3: S3,
    snap_id: str,
    read: Manifest,
    new_sha: dict[str, str],
    result: DeepResult,
    lease: Lease,
) -> None:
    """Write `new_sha` into the manifest as it is now (under the lease), for the very versions that were read."""
    raw = s3.get_bytes_or_none(cfg.bucket, manifest_key(cfg, snap_id))
    if raw is None:
        result.not_recorded = f"{len(new_sha)} new sha256 not recorded: the manifest was deleted meanwhile (pruned)"
        return
    try:
        manifest = parse_manifest(raw, snap_id, f"s3://{cfg.bucket}/{manifest_key(cfg, snap_id)}")
    except ManifestError as err:
        result.not_recorded = f"{len(new_sha)} new sha256 not recorded: the manifest changed: {err.message}"
        return
    was = {e.key: e for e in read.objects}
    recorded = 0
    objects = []
    for e in manifest.objects:
        before = was.get(e.key)
        # Only for the object that was read: same version, size and ETag as in the manifest we read.
        if (
            e.key in new_sha
            and not e.sha256
            and before is not None
            and (e.version_id, e.size, e.etag) == (before.version_id, before.size, before.etag)
        ):
            e = replace(e, sha256=new_sha[e.key])
            recorded += 1
        objects.append(e)
    if not recorded:
        return
    manifest.objects = objects
    manifest.extra["sha256_recorded_at"] = iso_utc(utc_now(), whole_seconds=True)
    lease.ensure("the manifest was not rewritten")
    s3.put_bytes(cfg.bucket, manifest_key(cfg, snap_id), format_manifest(manifest), "application/json")
    result.recorded = recorded
    result.manifest_rewritten = True


def _source_digest(s3: S3, bucket: str, key: str, version_id: Any) -> Any:
    """The digest of the live version a snapshot object was copied from, or None when it is gone."""
    if not isinstance(version_id, str) or version_id in ("", "null"):
        return None  # unversioned: the live object may have changed since, legitimately
    try:
        return s3.digest(bucket, key, version_id)
    except S3Error as err:
        if any(code in err.detail for code in ("NoSuchVersion", "NoSuchKey", "404", "InvalidArgument")):
            return None
        raise


def _deep_check(
    cfg: DrConfig,
    s3: S3,
    snap_id: str | None,
    progress: Progress,
    result: VerifyResult,
    lease: Lease | None,
    break_lock: bool,
    notify: Notify | None,
) -> Check:
    if snap_id is None:
        return Check("deep", False, "no snapshot to read", "take one: `inv dr.snapshot --label=...`")
    d = deep_verify(cfg, snap_id, s3, progress, lease=lease, break_lock=break_lock, notify=notify)
    result.deep = d.to_dict()
    recorded = f"; recorded {d.recorded} new sha256 in {manifest_key(cfg, snap_id)}" if d.recorded else ""
    if d.not_recorded:
        recorded += f"; {d.not_recorded}"
    if d.ok and d.unchecked:
        return Check(
            "deep",
            True,
            f"snapshot {snap_id}: {d.verified} objects match, {d.bytes} bytes re-read; {len(d.unchecked)} multipart "
            f"objects could not be checked (no sha256 recorded, source version gone: "
            f"{', '.join(d.unchecked[:SHOWN])})" + recorded,
        )
    if d.ok:
        return Check(
            "deep",
            True,
            f"snapshot {snap_id}: {d.verified} objects, {d.bytes} bytes re-read, every byte matches" + recorded,
        )
    bad = d.mismatched + d.unreadable
    return Check(
        "deep",
        False,
        f"snapshot {snap_id}: {len(bad)} of {d.objects} objects do not match: "
        + "; ".join(d.errors[:SHOWN])
        + recorded,
        "restore from another snapshot or the cross-region backup; take a fresh snapshot",
    )


# ---------------------------------------------------------------------- checklist
def run_verify(
    cfg: DrConfig,
    *,
    deep: bool = False,
    snapshot_id: str | None = None,
    s3: S3 | None = None,
    progress: Progress = NULL_PROGRESS,
    now: datetime | None = None,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> VerifyResult:
    """Run the checklist; every check appears in the result (see `.ok`).

    Only `deep` writes (the sha256s it records in the manifest), under the
    lease: `lease`, `break_lock` and `notify` are for that (see `deep_verify`).
    """
    now = now or utc_now()
    result = VerifyResult()
    read = Index(cfg.index_path).read()
    if snapshot_id is not None:
        find_snapshot(cfg, snapshot_id)  # an unknown id is a refusal, not a failed check
    snap_id = snapshot_id or _newest_snapshot_id(read)
    result.snapshot = snap_id
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    result.checks.append(_guarded("versioning", check_versioning, cfg, s3))
    result.checks.append(_guarded("snapshot", check_snapshot, cfg, s3, snap_id))
    result.checks.append(index_check(cfg, read))
    result.checks.append(backup_check(cfg, read, now)[0])
    result.checks.append(check_restore_dir(cfg))
    drill = drill_check(cfg, read, now)
    if drill is not None:
        result.checks.append(drill)
    if deep:
        result.checks.append(
            _guarded("deep", _deep_check, cfg, s3, snap_id, progress, result, lease, break_lock, notify)
        )
    return result
