"""Pins as the index records them (`pin` rows) and as the bucket does (marker objects, see `layout.pin_key`)."""

from __future__ import annotations

from datetime import datetime

from .config import DrConfig
from .index import IndexRead
from .layout import PIN_PREFIX, parse_pin_key
from .transport import S3


def index_pins(read: IndexRead) -> dict[str, bool]:
    """Pin state by snapshot id as the index says: the last `pin` row for an id wins."""
    state: dict[str, bool] = {}
    for r in read.pins():
        state[r.id] = r.pins
    return state


def list_pin_markers(cfg: DrConfig, s3: S3) -> dict[str, datetime]:
    """Pinned ids as the bucket says (marker objects), with when each marker was written."""
    out: dict[str, datetime] = {}
    for o in s3.iter_objects(cfg.bucket, PIN_PREFIX):
        snap_id = parse_pin_key(o.key)
        if snap_id is not None:
            out[snap_id] = o.last_modified
    return out
