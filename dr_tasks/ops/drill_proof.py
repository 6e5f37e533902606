"""The live drill's byte check: each object it brought back, proven against the snapshot's manifest.

`proof` decides, as everywhere: the manifest's sha256 where recorded, else
the MD5 of the bytes against an ETag recorded for them (a single-part one is
that MD5). Where neither can prove the bytes (a multipart object whose sha256
was never recorded), the primary's version the manifest names is hashed and
compared (what `dr.verify --deep` does the first time); when that version is
gone the object fails as unverifiable. An ETag's shape or a size alone never
passes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import proof
from ..config import DrConfig
from ..errors import DrError
from ..manifest import ManifestEntry
from ..parallel import run_parallel
from ..stored_snapshot import recorded_etags
from ..transport import S3

CHUNK = 1 << 20


@dataclass(frozen=True)
class FailedKey:
    """A manifest key (relative to `prefix`) that did not come back as recorded, and why."""

    key: str
    why: str


@dataclass(frozen=True)
class ProofInput:
    entry: ManifestEntry
    path: Path  # where the drill wrote it
    sha256: str  # of the bytes written, as the engine hashed them


def _md5(path: Path) -> tuple[int, str]:
    h, size = hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def prove_one(cfg: DrConfig, s3: S3, item: ProofInput) -> proof.Proof:
    """Whether the bytes at `item.path` are the ones `item.entry` records."""
    e = item.entry
    size, md5 = _md5(item.path)
    p = proof.by_bytes(
        size, md5, item.sha256, expected_size=e.size, sha256=e.sha256, recorded=recorded_etags(e.to_dict())
    )
    if p.verdict is not proof.Verdict.UNVERIFIABLE or not e.version_id:
        return p
    try:
        d = s3.digest(cfg.bucket, cfg.key_for(e.key), e.version_id)
    except DrError as err:
        return proof.Proof(
            proof.Verdict.UNVERIFIABLE,
            f"{p.why}; the primary's version {e.version_id} it was copied from cannot be read ({err.message}): "
            "record sha256s while it exists with `inv dr.verify --deep`",
        )
    if d.size == size and d.sha256 == item.sha256:
        return proof.PROVEN
    return proof.Proof(
        proof.Verdict.MISMATCH, f"{p.why}; and its sha256 differs from the primary's version {e.version_id}"
    )


def prove_fetched(cfg: DrConfig, s3: S3, items: list[ProofInput]) -> list[FailedKey]:
    """The keys of `items` whose bytes are not proven, each with why, in key order."""
    done, failed = run_parallel(lambda it: prove_one(cfg, s3, it), items, cfg.concurrency)
    bad = [FailedKey(it.entry.key, p.why or p.verdict.value) for it, p in done if not p.proven]
    bad += [FailedKey(f.item.entry.key, f.error.message) for f in failed]
    return sorted(bad, key=lambda f: f.key)
