"""A stored snapshot read back: its manifest, and whether an object of it holds the bytes the manifest records.

Shared by the operations that trust a snapshot (`dr.rollback` before it
copies, `dr.verify` when it checks), so neither imports the other for it.
"""

from __future__ import annotations

from typing import Any

from . import proof
from .config import DrConfig
from .errors import DrError
from .layout import manifest_key
from .manifest import Manifest, parse_manifest
from .transport import S3, ObjectVersion


def load_manifest(cfg: DrConfig, s3: S3, snap_id: str) -> Manifest:
    """The snapshot's manifest, typed (see `dr_tasks.manifest`), or a one-line DrError."""
    key = manifest_key(cfg, snap_id)
    raw = s3.get_bytes_or_none(cfg.bucket, key)
    if raw is None:
        raise DrError(
            f"snapshot {snap_id} has no manifest at s3://{cfg.bucket}/{key}",
            "the snapshot is incomplete or was pruned; pick another with `inv dr.list`",
        )
    return parse_manifest(raw, snap_id, f"s3://{cfg.bucket}/{key}")


def recorded_etags(m: dict[str, Any], rewrites: dict[str, Any] | None = None, key: str = "") -> list[str]:
    """The ETags that prove a snapshot object holds the bytes manifest entry `m` records.

    The manifest's (the source's, which a copy keeps on Ceph RGW), the one the
    server gave the snapshot's copy (`copy_etag`: AWS and moto give a copy of a
    multipart object the MD5 of its bytes), and the one `dr.recover` recorded
    when it wrote `key` back from the backup as a copy of one of those.
    """
    etags = [e for e in (m.get("etag"), m.get("copy_etag")) if isinstance(e, str) and e]
    rw = (rewrites or {}).get(key)
    if (
        isinstance(rw, dict)
        and proof.plain(str(rw.get("source_etag") or "")) in {proof.plain(e) for e in etags}
        and rw.get("size") == m.get("size")
        and isinstance(rw.get("etag"), str)
    ):
        etags.append(rw["etag"])
    return etags


def prove_snapshot_object(
    s3: S3 | None, bucket: str, m: dict[str, Any], got: ObjectVersion, rewrites: dict[str, Any] | None = None
) -> proof.Proof:
    """Whether snapshot object `got` holds the bytes manifest entry `m` records.

    By its ETag when that is one recorded for it; otherwise (an object
    rewritten without a record, or a manifest from before copies' ETags were
    recorded) by re-reading it, when `s3` is given: its SHA-256 against the
    manifest's, or its MD5 against a recorded ETag.
    """
    etags = recorded_etags(m, rewrites, got.key)
    p = proof.by_etag(got.size, got.etag_plain, expected_size=m["size"], recorded=etags)
    if p.verdict is not proof.Verdict.UNVERIFIABLE or s3 is None:
        return p
    d = s3.digest(bucket, got.key, got.version_id)
    read = proof.by_bytes(d.size, d.md5, d.sha256, expected_size=m["size"], sha256=m.get("sha256"), recorded=etags)
    if read.proven:
        return read
    if read.mismatch:
        return proof.Proof(proof.Verdict.MISMATCH, f"{p.why}; re-read: {read.why}")
    return proof.Proof(read.verdict, f"{p.why}; re-read, its MD5 is {d.md5} and no sha256 is recorded")
