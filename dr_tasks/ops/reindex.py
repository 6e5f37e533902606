"""`dr.reindex`: rebuild missing index rows from what the bucket holds (the laptop and its index are gone).

Every snapshot has its manifest beside it (`<snapshot_prefix><id>.manifest.json`),
and every pin a marker (`.dr-tasks/pins/<id>.json`), so the bucket alone says
which snapshots exist and which are pinned. A dry run lists the rows that are
missing; `apply=True` appends them, snapshots in (ts, id) order, then pins.
Nothing is ever rewritten: rows already in the index are left as they are, and
a row rebuilt here carries `"reindexed": true` so the audit trail shows it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ..config import DrConfig
from ..errors import DrError
from ..index import BadLine, Index, IndexWriteError, iso
from ..lease import Lease, Notify
from ..manifest import Manifest, ManifestError, parse_manifest
from ..s3 import S3, ObjectVersion
from .leasing import operation_lease
from .prune import index_pins, list_pin_markers, parse_snapshot_id, pruned_ids
from .snapshot import MANIFEST_SUFFIX, manifest_key, snapshot_dir


@dataclass
class ReindexResult:
    bucket: str
    # Rows missing from the index: appended when `applied`.
    rows: list[dict[str, Any]]
    # Snapshots whose row the index already has.
    present: int
    # Manifests that could not be turned into a row, one line each.
    problems: list[str] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    applied: bool = False

    @property
    def snapshot_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["kind"] == "snapshot"]

    @property
    def pin_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["kind"] == "pin"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "applied": self.applied,
            "present": self.present,
            "rows": self.rows,
            "problems": self.problems,
            "bad_lines": [b.describe() for b in self.bad_lines],
        }


def row_from_manifest(cfg: DrConfig, snap_id: str, manifest: Manifest) -> dict[str, Any]:
    """The `snapshot` row a parsed manifest stands for, as `dr.snapshot` writes it, or a DrError naming the flaw."""
    ts, label = manifest.ts, manifest.label
    parsed = parse_snapshot_id(snap_id)
    if parsed is None or ts != iso(parsed[0]) or label != parsed[1]:
        raise DrError("the manifest's ts and label do not match its id")
    return {
        "v": 1,
        "kind": "snapshot",
        "id": snap_id,
        "ts": ts,
        "label": label,
        "bucket": cfg.bucket,
        "source": manifest.source if manifest.source is not None else f"s3://{cfg.bucket}/",
        "dest": f"s3://{cfg.bucket}/{snapshot_dir(cfg, snap_id)}",
        "objects": len(manifest.objects),
        "bytes": manifest.bytes,
        "manifest": manifest_key(cfg, snap_id),
        "versioned": manifest.versioned,
        "reindexed": True,
    }


def _check_unpruned(cfg: DrConfig, s3: S3, snap_id: str, manifest: Manifest) -> None:
    """A pruned snapshot whose manifest is back counts only when every object it names is back too."""
    base = snapshot_dir(cfg, snap_id)
    present = {o.key for o in s3.iter_objects(cfg.bucket, base)}
    missing = [o.key for o in manifest.objects if f"{base}{o.key}" not in present]
    if missing:
        raise DrError(
            f"snapshot {snap_id} was pruned and its manifest is back, but {len(missing)} of its "
            f"{len(manifest.objects)} objects are still deleted (first: {str(missing[0])[:80]}); remove their "
            f"delete markers under s3://{cfg.bucket}/{base} too, then run this again"
        )


def reindex(
    cfg: DrConfig,
    *,
    apply: bool = False,
    s3: S3 | None = None,
    lease: Lease | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
) -> ReindexResult:
    """Find the snapshot (and pin) rows the index lacks; append them when `apply`.

    A dry run takes no lease. With `apply` it looks and appends under the
    bucket's lease (one taken here, or `lease`, one the caller holds), so a
    snapshot or prune in flight cannot add or remove a manifest in between.
    """
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    if not apply:
        return _reindex(cfg, s3, apply=False)
    with operation_lease(cfg, s3, "reindex", lease=lease, break_lock=break_lock, notify=notify) as held:
        return _reindex(cfg, s3, apply=True, lease=held)


def _reindex(cfg: DrConfig, s3: S3, *, apply: bool, lease: Lease | None = None) -> ReindexResult:
    index = Index(cfg.index_path)
    read = index.read()
    # A snapshot a prune row names is not known: if its manifest is back (the
    # undo of a wrong prune), it gets a row again, which un-prunes it.
    pruned = pruned_ids(read)
    # Only string ids: a garbage row may carry anything, even an unhashable mapping.
    known = {r["id"] for r in read.of_kind("snapshot") if isinstance(r.get("id"), str)} - pruned
    _, objects = s3.list_prefixes(cfg.bucket, cfg.snapshot_prefix)
    result = ReindexResult(bucket=cfg.bucket, rows=[], present=0, bad_lines=read.bad)
    snapshots: list[dict[str, Any]] = []
    for o in objects:
        if not o.key.endswith(MANIFEST_SUFFIX):
            continue
        snap_id = o.key[len(cfg.snapshot_prefix) : -len(MANIFEST_SUFFIX)]
        if snap_id in known:
            result.present += 1
            continue
        where = f"s3://{cfg.bucket}/{o.key}"
        if parse_snapshot_id(snap_id) is None:
            result.problems.append(f"{where}: {snap_id[:80]!r} is not a snapshot id")
            continue
        try:
            manifest = parse_manifest(s3.get_bytes(cfg.bucket, o.key), snap_id)
            row = row_from_manifest(cfg, snap_id, manifest)
            if snap_id in pruned:
                _check_unpruned(cfg, s3, snap_id, manifest)
            snapshots.append(row)
        except ManifestError as err:
            result.problems.append(f"{where}: {err.problem}")
        except DrError as err:
            result.problems.append(f"{where}: {err.message}")
    snapshots.sort(key=lambda r: (r["ts"], r["id"]))

    pinned = index_pins(read)
    pins = [
        {"v": 1, "kind": "pin", "id": pin_id, "ts": iso(when), "pinned": True, "reindexed": True}
        for pin_id, when in sorted(list_pin_markers(cfg, s3).items())
        if not pinned.get(pin_id)
    ]
    result.rows = snapshots + pins
    if apply:
        assert lease is not None
        lease.ensure("no row was appended")
        for row in result.rows:
            index.append(row)
        result.applied = True
    return result


# ---------------------------------------------------------------------- unprune
@dataclass
class UnpruneResult:
    id: str
    bucket: str
    # The delete markers that hide the snapshot: (key, marker version id).
    markers: list[tuple[str, str | None]]
    row: dict[str, Any] | None = None
    applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bucket": self.bucket,
            "applied": self.applied,
            "markers": [{"key": k, "version_id": v} for k, v in self.markers],
            "row": self.row,
        }


def _hiding_markers(cfg: DrConfig, s3: S3, snap_id: str) -> list[tuple[str, str | None]]:
    """The delete markers on top of the snapshot's manifest and objects, or a DrError when bytes are gone."""
    base, mkey = snapshot_dir(cfg, snap_id), manifest_key(cfg, snap_id)
    by_key: dict[str, list[ObjectVersion]] = {}
    for v in s3.iter_versions(cfg.bucket, cfg.snapshot_prefix + snap_id):
        if v.key == mkey or v.key.startswith(base):
            by_key.setdefault(v.key, []).append(v)
    if mkey not in by_key:
        raise DrError(
            f"snapshot {snap_id} has no manifest in s3://{cfg.bucket}/{cfg.snapshot_prefix}, not even a deleted one",
            "pick one from `inv dr.list --all`",
        )
    markers: list[tuple[str, str | None]] = []
    lost: list[str] = []
    for key, entries in by_key.items():
        # Each key's entries come newest first: the markers on top hide the newest version below them.
        top = list(itertools.takewhile(lambda e: e.is_delete_marker, entries))
        if len(top) == len(entries):
            lost.append(key)
        markers += [(key, e.version_id) for e in top]
    if lost:
        raise DrError(
            f"snapshot {snap_id} cannot be brought back: {len(lost)} of its keys have no version left under their "
            f"delete markers (first: {lost[0][:120]}); the noncurrent-version rule (retention_days) expired them",
            "bring it back from the cross-region backup (`inv dr.recover`)",
        )
    return markers


def unprune(
    cfg: DrConfig,
    snap_id: str,
    *,
    apply: bool = False,
    s3: S3 | None = None,
    break_lock: bool = False,
    notify: Notify | None = None,
    lease: Lease | None = None,
) -> UnpruneResult:
    """Bring back a pruned snapshot: remove the delete markers that hide it, then append its row again."""
    if parse_snapshot_id(snap_id) is None:
        raise DrError(f"{snap_id[:80]!r} is not a snapshot id", "pick one from `inv dr.list --all`")
    s3 = s3 or S3(cfg.endpoint, cfg.concurrency)
    result = UnpruneResult(snap_id, cfg.bucket, _hiding_markers(cfg, s3, snap_id))

    def listed() -> bool:
        read = Index(cfg.index_path).read()
        return read.find("snapshot", snap_id) is not None and snap_id not in pruned_ids(read)

    if not result.markers and listed():
        raise DrError(f"snapshot {snap_id} is not pruned: nothing to bring back", "see it with `inv dr.show`")
    if not apply:
        return result
    with operation_lease(cfg, s3, "unprune", lease=lease, break_lock=break_lock, notify=notify) as held:
        try:
            Index(cfg.index_path).check_writable()
        except IndexWriteError as err:
            raise DrError(f"{err.message}; nothing was changed", err.hint) from None
        result.markers = _hiding_markers(cfg, s3, snap_id)
        held.ensure("nothing was changed")
        errors = s3.delete_versions(cfg.bucket, result.markers)
        if errors:
            raise DrError(
                f"{len(errors)} of {len(result.markers)} delete markers could not be removed "
                f"(first: {errors[0].message}); no row was written",
                "run the same command again",
            )
        mkey = manifest_key(cfg, snap_id)
        manifest = parse_manifest(s3.get_bytes(cfg.bucket, mkey), snap_id, f"s3://{cfg.bucket}/{mkey}")
        row = row_from_manifest(cfg, snap_id, manifest)
        _check_unpruned(cfg, s3, snap_id, manifest)
        if not listed():
            held.ensure(f"the delete markers hiding snapshot {snap_id} were removed but its row was not appended")
            Index(cfg.index_path).append(row)
            result.row = row
        result.applied = True
    return result
