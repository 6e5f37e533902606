"""The ETags dr-tasks gave objects it rewrote in the primary bucket (`dr.recover`).

`dr.recover` streams objects back from the backup, and one over the part size
becomes a multipart upload with another ETag than the one a manifest or the
backup state recorded. So that the new ETag can be accepted by exact equality
(see `proof`), recover records, per key, what it wrote and from what:

    {"v": 1, "objects": {key: {"etag": <written>, "size": n,
                               "from_etag": <the backup object's ETag>,
                               "source_etag": <the primary's ETag the backup state says that copy was made of>}}}

in `.dr-tasks/rewrites.json` of the primary bucket (bookkeeping, never live,
never backed up). A check accepts "etag" only for the bytes "source_etag"
names, which it must have recorded itself.
"""

from __future__ import annotations

import json
from typing import Any

from .config import DrConfig
from .layout import REWRITES_KEY
from .transport import S3


def read_rewrites(cfg: DrConfig, s3: S3) -> dict[str, Any]:
    """key -> record; {} when there is none or it is unreadable (then nothing is accepted through it)."""
    raw = s3.get_bytes_or_none(cfg.bucket, REWRITES_KEY)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    objects = doc.get("objects") if isinstance(doc, dict) and doc.get("v") == 1 else None
    if not isinstance(objects, dict):
        return {}
    return {k: v for k, v in objects.items() if isinstance(k, str) and isinstance(v, dict)}


def save_rewrites(cfg: DrConfig, s3: S3, records: dict[str, Any]) -> None:
    """Write `records` (the whole map, already merged with what was there)."""
    doc = {"v": 1, "objects": records}
    data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    s3.put_bytes(cfg.bucket, REWRITES_KEY, data, "application/json")
