"""`dr.prune` and `dr.pin`: snapshot retention by counts, never by durations alone.

Which snapshots exist is the bucket's answer (a manifest per snapshot), not the
local index's, so a prune on a fresh laptop sees everything. The rules keep,
as restic does:

- `last N`: the N newest snapshots;
- `daily D`: the newest snapshot of each of the last D days that HAVE snapshots
  (UTC), and likewise `weekly W` (ISO weeks) and `monthly M`;
- always the newest snapshot, and every pinned one.

Counting days that have snapshots, not calendar days, is what keeps a machine
that was offline for months from losing all of them on its first prune.
A prune with no rule at all is refused.

`apply=True` takes the lease, plans again under it, deletes each pruned
snapshot's manifest FIRST and then its objects (batched DeleteObjects), and
appends one `prune` row. Manifest first: a snapshot with a manifest is always
complete, so an interrupted prune leaves at worst a directory without a
manifest, which the next prune removes (`orphans`). On a versioned bucket the
deletes are delete markers: the bytes stay recoverable until the noncurrent
version lifecycle rule (`retention_days`) expires them.

Pins live twice: a `pin` row in the index and a marker object
`.dr-tasks/pins/<id>.json` in the bucket, so a prune run from any machine (or
after the index was lost) honours them. A snapshot is pinned when either says so.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..config import META_PREFIX, DrConfig
from ..errors import DrError
from ..index import Index, IndexRead, IndexWriteError, iso, parse_iso, utc_now
from ..interrupt import Interrupted
from ..lease import Lease, Notify
from ..s3 import S3
from .catalog import find_snapshot
from .leasing import operation_lease
from .snapshot import LABEL_RULE, MANIFEST_SUFFIX, manifest_key, snapshot_dir

PIN_PREFIX = META_PREFIX + "pins/"
SNAPSHOT_ID_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)-(" + LABEL_RULE + ")")
# A snapshot directory without a manifest and without an index row is an
# interrupted snapshot. The lease already keeps prune and snapshot apart; this
# grace keeps a prune from racing a snapshot taken by a tool that ignores it.
ORPHAN_GRACE = timedelta(hours=24)
REASON_MAX = 200


def parse_snapshot_id(snap_id: str) -> tuple[datetime, str] | None:
    """(ts, label) of a well-formed snapshot id, else None."""
    m = SNAPSHOT_ID_RE.fullmatch(snap_id) if isinstance(snap_id, str) else None
    if m is None or ".." in m.group(2):
        return None
    try:
        return parse_iso(m.group(1)), m.group(2)
    except ValueError:
        return None


def pin_key(snap_id: str) -> str:
    return f"{PIN_PREFIX}{snap_id}.json"


def index_pins(read: IndexRead) -> dict[str, bool]:
    """Pin state by snapshot id as the index says: the last `pin` row for an id wins."""
    state: dict[str, bool] = {}
    for r in read.of_kind("pin"):
        if isinstance(r.get("id"), str):
            state[r["id"]] = r.get("pinned", True) is not False
    return state


def list_pin_markers(cfg: DrConfig, s3: S3) -> dict[str, datetime]:
    """Pinned ids as the bucket says (marker objects), with when each marker was written."""
    out: dict[str, datetime] = {}
    for o in s3.iter_objects(cfg.bucket, PIN_PREFIX):
        name = o.key[len(PIN_PREFIX) :]
        if name.endswith(".json") and parse_snapshot_id(name[: -len(".json")]):
            out[name[: -len(".json")]] = o.last_modified
    return out


def pruned_ids(read: IndexRead) -> set[str]:
    """Snapshot ids that a `prune` row says are gone (for listings that hide them).

    In line order: a `snapshot` row after the prune row (what `dr.reindex`
    appends for a pruned snapshot whose delete markers were removed) brings
    that snapshot back.
    """
    gone: set[str] = set()
    for r in read.rows:
        if r.get("kind") == "prune":
            for k in ("deleted", "orphans"):
                ids = r.get(k)
                if isinstance(ids, list):
                    gone.update(i for i in ids if isinstance(i, str))
        elif r.get("kind") == "snapshot" and isinstance(r.get("id"), str):
            gone.discard(r["id"])
    return gone


def undo_points(read: IndexRead) -> dict[str, str]:
    """The newest rollback's safety snapshots (its printed undo command names one): never pruned."""
    rollbacks = read.of_kind("rollback")
    if not rollbacks:
        return {}
    last = rollbacks[-1]
    keep = {i: f"before rollback {last['id']}" for i in last.get("interrupted_safety_snapshots") or []}
    if isinstance(last.get("safety_snapshot"), str):
        keep[last["safety_snapshot"]] = f"undo of rollback {last['id']}"
    return keep


# ---------------------------------------------------------------------- rules
@dataclass(frozen=True)
class KeepRules:
    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DrError(
                    f"--keep-{name} must be a whole number of at least 0, got {str(value)[:40]!r}",
                    f"e.g. --keep-{name}=7",
                )
        if not any(asdict(self).values()):
            raise DrError(
                "refusing to prune with no keep rule: it would delete every snapshot but the newest",
                "give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly",
            )

    @classmethod
    def parse(cls, **flags: Any) -> KeepRules:
        """From task flags (strings, ints or None), naming the flag that is wrong."""
        values: dict[str, int] = {}
        for name, raw in flags.items():
            if raw is None:
                values[name] = 0
                continue
            # `--keep-daily=$DAYS` with DAYS unset must not quietly mean "no daily rule".
            if isinstance(raw, str):
                text = raw
                if not text.isdigit() or not text.isascii() or len(text) > 6:
                    raise DrError(
                        f"--keep-{name} must be a whole number of at least 0, got {raw[:40]!r}",
                        f"e.g. --keep-{name}=7",
                    )
                raw = int(text)
            values[name] = raw
        return cls(**values)


@dataclass
class Decision:
    id: str
    ts: str
    label: str
    keep: bool
    reasons: list[str] = field(default_factory=list)


def _buckets(ts: datetime) -> dict[str, str]:
    year, week, _ = ts.isocalendar()
    return {"daily": ts.strftime("%Y-%m-%d"), "weekly": f"{year}-W{week:02d}", "monthly": ts.strftime("%Y-%m")}


def decide(
    snapshots: list[tuple[str, datetime, str]],
    rules: KeepRules,
    pinned: set[str],
    also_keep: dict[str, str] | None = None,
) -> list[Decision]:
    """Keep/delete for each (id, ts, label), newest first; `also_keep` maps ids to why. Pure: no I/O."""
    ordered = sorted(snapshots, key=lambda s: (s[1], s[0]), reverse=True)
    out = [Decision(i, iso(ts), label, False) for i, ts, label in ordered]
    if not out:
        return out
    out[0].reasons.append("newest")
    for d in out[: rules.last]:
        d.reasons.append("last")
    for rule in ("daily", "weekly", "monthly"):
        limit = getattr(rules, rule)
        seen: list[str] = []
        for d, (_, ts, _) in zip(out, ordered, strict=True):
            b = _buckets(ts)[rule]
            if b in seen:
                continue
            if len(seen) >= limit:
                break
            seen.append(b)
            d.reasons.append(f"{rule} {b}")
    for d in out:
        if d.id in pinned:
            d.reasons.append("pinned")
        if also_keep and d.id in also_keep:
            d.reasons.append(also_keep[d.id])
        d.keep = bool(d.reasons)
    return out


# ---------------------------------------------------------------------- plan / apply
@dataclass
class PruneResult:
    bucket: str
    rules: KeepRules
    decisions: list[Decision]
    # Snapshot directories without a manifest: removed with --apply.
    orphans: list[str] = field(default_factory=list)
    # Incomplete directories too young to remove (maybe still being written).
    recent_orphans: list[str] = field(default_factory=list)
    # Names under snapshot_prefix that are not snapshot ids: never touched.
    foreign: list[str] = field(default_factory=list)
    applied: bool = False
    objects_deleted: int = 0
    row: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def keep(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def delete(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "rules": asdict(self.rules),
            "applied": self.applied,
            "keep": [asdict(d) for d in self.keep],
            "delete": [asdict(d) for d in self.delete],
            "orphans": self.orphans,
            "recent_orphans": self.recent_orphans,
            "foreign": self.foreign,
            "objects_deleted": self.objects_deleted,
            "row": self.row,
            "warnings": self.warnings,
        }


def plan_prune(cfg: DrConfig, rules: KeepRules, *, s3: S3 | None = None, now: datetime | None = None) -> PruneResult:
    """What a prune would keep and delete. Reads the bucket and the index; changes nothing."""
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    read = Index(cfg.index_path).read()
    indexed = {r["id"] for r in read.of_kind("snapshot") if isinstance(r.get("id"), str)}
    dirs, objects = s3.list_prefixes(cfg.bucket, cfg.snapshot_prefix)
    sp = cfg.snapshot_prefix
    manifests: dict[str, tuple[datetime, str]] = {}
    foreign: list[str] = []
    for o in objects:
        name = o.key[len(sp) :]
        parsed = parse_snapshot_id(name[: -len(MANIFEST_SUFFIX)]) if name.endswith(MANIFEST_SUFFIX) else None
        if parsed is None:
            foreign.append(o.key)
        else:
            manifests[name[: -len(MANIFEST_SUFFIX)]] = parsed
    orphans: list[str] = []
    recent: list[str] = []
    cutoff = (now or utc_now()) - ORPHAN_GRACE
    for d in dirs:
        name = d[len(sp) :].rstrip("/")
        parsed = parse_snapshot_id(name)
        if parsed is None:
            foreign.append(d)
        elif name not in manifests and next(iter(s3.iter_objects(cfg.bucket, d)), None) is not None:
            # (Some servers, moto among them, still list a prefix whose keys
            # are all behind delete markers; only a prefix with objects counts.)
            # With an index row it was complete once: a prune deleted its
            # manifest and was cut off. Without one it is an interrupted
            # snapshot, removed only once it is clearly not still running.
            (orphans if name in indexed or parsed[0] < cutoff else recent).append(name)
    orphans.extend(_pruned_without_row(cfg, s3, read, set(manifests), set(orphans) | set(recent)))
    pinned = {i for i, on in index_pins(read).items() if on} | set(list_pin_markers(cfg, s3))
    decisions = decide([(i, ts, label) for i, (ts, label) in manifests.items()], rules, pinned, undo_points(read))
    result = PruneResult(cfg.bucket, rules, decisions, sorted(orphans), sorted(recent), sorted(foreign))
    bad = read.bad_summary()
    if bad:
        result.warnings.append(bad)
    return result


def _pruned_without_row(cfg: DrConfig, s3: S3, read: IndexRead, manifests: set[str], seen: set[str]) -> list[str]:
    """Indexed snapshots a prune deleted completely but was killed before its row (found by fault tests).

    Without this, the re-run finds nothing left to delete, writes no row, and
    `dr.list` keeps showing snapshots that are gone. Only a delete marker as
    the manifest's latest version counts as proof of a delete: a bucket that
    was emptied or replaced (restored from the backup later) has none, and
    must not get its snapshots recorded as pruned.
    """
    gone = pruned_ids(read)
    out: list[str] = []
    for r in read.of_kind("snapshot"):
        sid = r.get("id")
        if (
            not isinstance(sid, str)
            or sid in manifests
            or sid in seen
            or sid in gone
            or r.get("bucket") != cfg.bucket
            or parse_snapshot_id(sid) is None
        ):
            continue
        entries, _ = s3.key_versions(cfg.bucket, manifest_key(cfg, sid))
        if any(e.is_latest and e.is_delete_marker for e in entries) and sid not in out:
            out.append(sid)
    return out


def _keys_under(s3: S3, bucket: str, prefixes: list[str]) -> Iterator[str]:
    for p in prefixes:
        for o in s3.iter_objects(bucket, p):
            yield o.key


def prune(
    cfg: DrConfig,
    rules: KeepRules,
    *,
    apply: bool = False,
    s3: S3 | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
    now: datetime | None = None,
    lease: Lease | None = None,
) -> PruneResult:
    """Plan a prune; with `apply`, carry it out under the lease and append a `prune` row.

    The lease is one taken here (`break_lock`, `notify` as for every writer),
    or `lease`, one the caller already holds.
    """
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    if not apply:
        return plan_prune(cfg, rules, s3=s3, now=now)
    with operation_lease(cfg, s3, "prune", lease=lease, break_lock=break_lock, notify=notify) as held:
        # Plan again under the lease: the world may have moved since the dry run.
        result = plan_prune(cfg, rules, s3=s3, now=now)
        doomed = [d.id for d in result.delete]
        if not doomed and not result.orphans:
            result.applied = True
            return result
        try:
            Index(cfg.index_path).check_writable()
        except IndexWriteError as err:
            raise DrError(f"{err.message}; nothing was deleted", err.hint) from None
        sp = cfg.snapshot_prefix
        # Manifests first: from here on these snapshots are incomplete, and
        # nothing restores from a snapshot without a manifest.
        counted = 0

        def count(keys: Iterator[str]) -> Iterator[str]:
            nonlocal counted
            for k in keys:
                counted += 1
                yield k

        again = (
            "run the same command again: it finishes what is left (pruned snapshots without a manifest "
            "are removed as incomplete)"
        )
        held.ensure("nothing was deleted")
        try:
            errors = s3.delete_keys(cfg.bucket, [manifest_key(cfg, i) for i in doomed])
            if not errors:
                held.ensure(
                    f"the manifests of {len(doomed)} pruned snapshots were deleted, their objects are left and no "
                    "prune row was written; the next `inv dr.prune --apply` removes them as incomplete"
                )
                dirs = [snapshot_dir(cfg, i) for i in [*doomed, *result.orphans]]
                errors = s3.delete_keys(cfg.bucket, count(_keys_under(s3, cfg.bucket, dirs)))
        except DrError as err:
            raise DrError(f"prune failed: {err.message}; no prune row was written", again) from None
        except Interrupted as sig:
            sig.notes.append(f"prune stopped part-way, no prune row was written: {again}")
            raise
        if errors:
            shown = ", ".join(str(e.key) for e in errors[:5]) + (" ..." if len(errors) > 5 else "")
            raise DrError(
                f"prune failed: {len(errors)} deletes failed ({shown}); first error: {errors[0].message}; "
                "no prune row was written",
                again,
            )
        held.ensure(
            f"{len(doomed)} snapshots were deleted ({counted + len(doomed)} objects) but no prune row was written"
        )
        ts = iso(now or utc_now())
        row = {
            "kind": "prune",
            "id": f"{ts}-prune",
            "ts": ts,
            "bucket": cfg.bucket,
            "rules": asdict(rules),
            "deleted": doomed,
            "orphans": result.orphans,
            "kept": [d.id for d in result.keep],
            "objects": counted + len(doomed),
            "dest": f"s3://{cfg.bucket}/{sp}",
        }
        Index(cfg.index_path).append(row)
        result.applied = True
        result.objects_deleted = counted + len(doomed)
        result.row = {"v": 1, **row}
        return result


# ---------------------------------------------------------------------- pin
@dataclass
class PinResult:
    id: str
    pinned: bool
    # False when it already was as asked: nothing was written.
    changed: bool
    row: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_reason(reason: str | None) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or len(reason) > REASON_MAX or not reason.isprintable():
        raise DrError(
            f"--reason must be one printable line of at most {REASON_MAX} characters", "e.g. --reason='before v2'"
        )
    return reason


def _owner_host() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def pin_snapshot(
    cfg: DrConfig,
    snap_id: str,
    *,
    unpin: bool = False,
    reason: str | None = None,
    s3: S3 | None = None,
    now: datetime | None = None,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> PinResult:
    """Pin (or unpin) a snapshot so prune never deletes it: a `pin` row plus a marker in the bucket.

    Looks and writes under the bucket's lease (one taken here, or `lease`, one
    the caller holds): a prune deciding what to delete never runs meanwhile.
    """
    reason = _check_reason(reason)
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    with operation_lease(cfg, s3, "pin", lease=lease, break_lock=break_lock, notify=notify) as held:
        return _pin(cfg, snap_id, unpin, reason, s3, now, held)


def _pin(
    cfg: DrConfig, snap_id: str, unpin: bool, reason: str | None, s3: S3, now: datetime | None, lease: Lease
) -> PinResult:
    index = Index(cfg.index_path)
    read = index.read()
    if parse_snapshot_id(snap_id) is None:
        find_snapshot(cfg, snap_id)  # raises "unknown snapshot id" with the nearest ones
        raise DrError(f"{snap_id[:80]!r} is not a snapshot id")
    in_index = index_pins(read).get(snap_id, False)
    marker = s3.get_version_or_none(cfg.bucket, pin_key(snap_id), None) is not None
    if not unpin:
        if not s3.exists(cfg.bucket, manifest_key(cfg, snap_id)):
            if read.find("snapshot", snap_id) is None:
                find_snapshot(cfg, snap_id)
            raise DrError(
                f"snapshot {snap_id} has no manifest in s3://{cfg.bucket}/{cfg.snapshot_prefix} "
                "(pruned, or never completed): there is nothing to pin",
                "pick another with `inv dr.list`",
            )
        if in_index and marker:
            return PinResult(snap_id, True, False)
    else:
        if not in_index and not marker:
            if read.find("snapshot", snap_id) is None:
                find_snapshot(cfg, snap_id)
            return PinResult(snap_id, False, False)
    ts = iso(now or utc_now())
    row: dict[str, Any] = {"kind": "pin", "id": snap_id, "ts": ts, "pinned": not unpin, "by": _owner_host()}
    if reason:
        row["reason"] = reason
    lease.ensure("nothing was written")
    if not unpin:
        s3.put_bytes(cfg.bucket, pin_key(snap_id), json.dumps(row).encode(), "application/json")
    else:
        # Every version, by id: an unpinned marker must not linger behind a delete marker.
        entries, _ = s3.key_versions(cfg.bucket, pin_key(snap_id))
        real = [e.version_id for e in entries if e.version_id not in (None, "null")]
        errors = s3.delete_versions(cfg.bucket, [(pin_key(snap_id), v) for v in real]) if real else []
        if any(e.version_id in (None, "null") for e in entries):
            errors += s3.delete_keys(cfg.bucket, [pin_key(snap_id)])
        if errors:
            raise DrError(f"could not remove the pin marker: {errors[0].message}")
    lease.ensure(f"the pin marker of {snap_id} was {'removed' if unpin else 'written'} but no pin row was written")
    index.append(row)
    return PinResult(snap_id, not unpin, True, {"v": 1, **row})
