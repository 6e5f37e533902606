"""`dr.backup`'s state object at the destination, and whose backup the destination holds.

The state (`<backup.prefix>.dr-tasks/backup-state.json`) maps each source key to
the source ETag and size it was copied from and the ETag the destination gave it,
lists the keys the primary no longer had (`gone`), and names the primary it was
made from (`origin`), which `bind_source` checks before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..backup_rows import BackupDest, BackupSource
from ..config import DrConfig
from ..errors import DrError
from ..index import utc_now
from ..layout import backup_state_key
from ..rows import BackupRow
from ..timeparse import iso_utc
from ..transport import S3

STATE_VERSION = 1


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


def _backed_up_to(rows: list[BackupRow], dest: BackupDest, origin: BackupSource | None) -> bool:
    """Whether this repo's index records a backup to `dest` (read from `origin`, when given).

    The index is this repo's own record: a row there means this repo wrote that backup.
    """
    for r in rows:
        if r.source is None or not dest.holds(r):
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


def whose_backup(cfg: DrConfig, state: BackupState, overlap: int, rows: list[BackupRow], dest_bucket: str) -> Ownership:
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
    rows: list[BackupRow],
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


def _state_key(cfg: DrConfig) -> str:
    return backup_state_key(cfg.backup.prefix)


def _source_id(cfg: DrConfig) -> str:
    """Where the state's entries were read from, for people; `origin` is what `bind_source` checks."""
    return f"{cfg.endpoint.endpoint_url or 'aws'}/{cfg.bucket}"


def read_origin(doc: dict[str, Any]) -> BackupSource | None:
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
        read_origin(doc),
    )


def save_state(cfg: DrConfig, dst: S3, dest_bucket: str, state: dict[str, list[Any]], gone: set[str]) -> None:
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
